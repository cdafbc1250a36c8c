//! The audit-trail read model: one row per event, so auditors can see who did what, when, to
//! which conversation, inbox or contact, and because of what.
//!
//! Every event is kept with its actor (kind and id), action (event type), domain time
//! (`occurred_at`) and store time (`recorded_at`), global position, stream, event id,
//! correlation and causation ids, and the conversation / inbox / contact it concerns (see
//! [`concerns`]). Queries filter by any of those and page by position in both directions;
//! [`by_correlation`] returns a whole causal chain.
//!
//! The payload is not copied: the event store holds it at the entry's position, and whoever
//! shows an entry's payload reads it from there (as KurrentDB's indexing projections write
//! links to events rather than copies). A copy would be most of the read model's bytes and of
//! the time it takes to rebuild.
//!
//! Erasures are entries like any other (`ContactErased`, `ConversationErased`: the actor, the
//! time, the contact and conversation; the reason is in the payload). The only personal data an
//! entry holds is the name of a uniqueness reservation's stream (an address, a visitor id):
//! an erased contact's are redacted ([`erasure`]). Deleted and rewritten rows are overwritten
//! in the file (the runtime's `secure_delete`), so the names do not linger in free space either.
//!
//! # Layout
//! - `schema`: the tables.
//! - `entries`: the entries themselves, packed 16 to a row.
//! - `postings`: the posting lists that serve every filter, one per key, in chunks.
//! - `concerns`: [`concerns`], which conversation, inbox and contact each event type is about.
//! - `erasure`: what an erasure redacts (reservation streams' names), and the merges it follows.
//! - `query`: the query functions and the plain structs they return.

mod concerns;
mod entries;
mod erasure;
mod postings;
mod query;
mod schema;

use proto_events::{Actor, DomainEvent, Envelope};
use rusqlite::{Connection, Transaction, params};
use switchboard_projector::{ApplyError, BatchMap, BatchTx, Event, EventError, Projector};

use crate::entries::Stored;
use crate::postings::{Key, Pending};

pub use crate::concerns::{Concerns, concerns, concerns_in};
pub use crate::query::{
    ActorFilter, ActorKind, AuditEntry, AuditFilter, AuditPage, Page, audit_events, by_correlation,
    by_event_id,
};

/// The audit-trail projector (`audit_trail.sqlite3`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditTrail;

impl Projector for AuditTrail {
    fn name(&self) -> &'static str {
        "audit_trail"
    }

    fn version(&self) -> u32 {
        schema::VERSION
    }

    fn migrate(&self, conn: &Connection) -> rusqlite::Result<()> {
        schema::migrate(conn)
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), ApplyError> {
        self.apply_batch(tx, &[Event::decoded(event)])
            .map_err(|e| e.source)
    }

    fn apply_batch(&self, tx: &Transaction<'_>, events: &[Event<'_>]) -> Result<(), EventError> {
        let tx = &BatchTx::new(tx);
        let mut types = EventTypes::load(tx).map_err(|e| EventError {
            index: 0,
            source: e.into(),
        })?;
        let tail = entries::Tail::load(tx).map_err(|e| EventError {
            index: 0,
            source: e.into(),
        })?;
        let mut batch = Batch {
            types: &mut types,
            postings: Pending::default(),
            stored: Vec::with_capacity(events.len()),
            recorded: tail.last_position(),
            erased: Vec::new(),
        };
        for (index, event) in events.iter().enumerate() {
            record(tx, &mut batch, event).map_err(|source| EventError { index, source })?;
        }
        let at_end = |e: rusqlite::Error| EventError {
            index: events.len().saturating_sub(1),
            source: e.into(),
        };
        tail.append(tx, &batch.stored).map_err(at_end)?;
        batch.postings.write(tx).map_err(at_end)?;
        erasure::redact_recorded(tx, &batch.erased).map_err(at_end)
    }
}

/// The codes of event types (`audit_event_types`), loaded for a batch; a type seen for the
/// first time gets the next code, written at once.
struct EventTypes(BatchMap<String, i64>);

impl EventTypes {
    fn load(tx: &BatchTx<'_>) -> rusqlite::Result<EventTypes> {
        let mut statement = tx.prepare_cached("SELECT name, code FROM audit_event_types")?;
        let codes = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(EventTypes(codes))
    }

    fn code(&mut self, tx: &BatchTx<'_>, name: &str) -> rusqlite::Result<i64> {
        if let Some(code) = self.0.get(name) {
            return Ok(*code);
        }
        let code = i64::try_from(self.0.len()).unwrap_or(i64::MAX);
        tx.execute_cached(
            "INSERT INTO audit_event_types (code, name) VALUES (?1, ?2)",
            params![code, name],
        )?;
        self.0.insert(name.to_owned(), code);
        Ok(code)
    }
}

/// What a batch gathers, written at its end.
struct Batch<'a> {
    types: &'a mut EventTypes,
    /// The positions of each posting list.
    postings: Pending,
    /// The entries.
    stored: Vec<Stored>,
    /// The highest position recorded so far (entries only ever go in in log order).
    recorded: i64,
    /// The contacts erased, whose entries recorded so far are redacted once written.
    erased: Vec<uuid::Uuid>,
}

/// Records one event: its entry into `stored`, its positions into `postings`, and what it
/// changes of erasures. An event at or below `recorded` is recorded already and is not
/// recorded twice.
fn record(tx: &BatchTx<'_>, batch: &mut Batch<'_>, event: &Event<'_>) -> Result<(), ApplyError> {
    let envelope = event.envelope;
    let position = i64::try_from(envelope.position).map_err(|_| {
        ApplyError::Inconsistent(format!("position {} out of range", envelope.position))
    })?;
    if position <= batch.recorded {
        return Ok(());
    }
    let (actor_kind, actor_id) = actor_columns(&envelope.metadata.actor);
    let event_type = batch.types.code(tx, &envelope.event_type)?;
    let concerns = concerns_in(&envelope.stream, &envelope.payload);
    match &envelope.payload {
        DomainEvent::ContactsMerged(e) => erasure::merged(tx, e)?,
        DomainEvent::ContactErased(e) => batch.erased.extend(erasure::erased(tx, e)?),
        _ => {}
    }
    let stream = erasure::recorded_name(tx, &envelope.stream, concerns.contact_id.as_ref())?
        .unwrap_or_else(|| envelope.stream.clone());
    let stream_version = i64::try_from(envelope.stream_version).map_err(|_| {
        ApplyError::Inconsistent(format!(
            "stream version {} out of range",
            envelope.stream_version
        ))
    })?;
    let metadata = &envelope.metadata;
    let blob = |id: &uuid::Uuid| -> [u8; 16] { *id.as_bytes() };
    batch.stored.push(Stored {
        position,
        event_id: blob(&envelope.event_id),
        stream,
        stream_version,
        event_type,
        schema_version: envelope.schema_version,
        actor_kind,
        actor_id: actor_id.to_vec(),
        occurred_at: metadata.occurred_at.timestamp_micros(),
        recorded_at: envelope.recorded_at.timestamp_micros(),
        correlation_id: blob(&metadata.correlation_id),
        causation_id: blob(&metadata.causation_id),
        conversation_id: concerns.conversation_id.as_ref().map(blob),
        inbox_id: concerns.inbox_id.as_ref().map(blob),
        contact_id: concerns.contact_id.as_ref().map(blob),
    });
    batch.recorded = position;
    let postings = &mut batch.postings;
    postings.add(Key::actor(actor_kind, actor_id), position);
    postings.add(Key::actor_kind(actor_kind), position);
    postings.add(Key::event_type(event_type), position);
    postings.add(Key::correlation(&metadata.correlation_id), position);
    postings.add(Key::day(metadata.occurred_at), position);
    postings.add(Key::event_id(&envelope.event_id), position);
    if let Some(id) = &concerns.conversation_id {
        postings.add(Key::conversation(id), position);
    }
    if let Some(id) = &concerns.inbox_id {
        postings.add(Key::inbox(id), position);
    }
    if let Some(id) = &concerns.contact_id {
        postings.add(Key::contact(id), position);
    }
    Ok(())
}

/// The stored kind and id of an actor: a UUID's 16 bytes, or a system component's name.
pub(crate) fn actor_columns(actor: &Actor) -> (ActorKind, &[u8]) {
    match actor {
        Actor::User { id } => (ActorKind::User, id.as_bytes()),
        Actor::Contact { id } => (ActorKind::Contact, id.as_bytes()),
        Actor::Bot { id } => (ActorKind::Bot, id.as_bytes()),
        Actor::System { component } => (ActorKind::System, component.as_bytes()),
        Actor::Channel { id } => (ActorKind::Channel, id.as_bytes()),
    }
}
