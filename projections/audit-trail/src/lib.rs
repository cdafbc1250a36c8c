//! The audit-trail read model: one row per event, so auditors can see who did what, when, to
//! which conversation, inbox or contact, and because of what.
//!
//! Every event is kept with its actor (kind and id), action (event type), domain time
//! (`occurred_at`) and store time (`recorded_at`), global position, stream, event id,
//! correlation and causation ids, the conversation / inbox / contact it concerns (see
//! [`concerns`]) and its payload as JSON. Queries filter by any of those and page by position in
//! both directions; [`by_correlation`] returns a whole causal chain.
//!
//! # Layout
//! - `schema`: the table and its indexes.
//! - `concerns`: [`concerns`], which conversation, inbox and contact each event type is about.
//! - `query`: the query functions and the plain structs they return.

mod concerns;
mod query;
mod schema;

use proto_events::{Actor, Envelope};
use rusqlite::{Connection, Transaction, params};
use switchboard_projector::{ApplyError, CachedStatements, Projector};

pub use crate::concerns::{Concerns, concerns};
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
        1
    }

    fn migrate(&self, conn: &Connection) -> rusqlite::Result<()> {
        schema::migrate(conn)
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), ApplyError> {
        let (actor_kind, actor_id) = actor_columns(&event.metadata.actor);
        let concerns = concerns(&event.payload);
        let payload = serde_json::to_string(&event.payload)
            .map_err(|e| ApplyError::Inconsistent(format!("payload does not serialise: {e}")))?;
        let position = i64::try_from(event.position).map_err(|_| {
            ApplyError::Inconsistent(format!("position {} out of range", event.position))
        })?;
        let stream_version = i64::try_from(event.stream_version).map_err(|_| {
            ApplyError::Inconsistent(format!(
                "stream version {} out of range",
                event.stream_version
            ))
        })?;
        // INSERT OR IGNORE: an event already recorded (same position) is not recorded twice.
        tx.execute_cached(
            "INSERT OR IGNORE INTO audit_events (
                 position, event_id, stream, stream_version, event_type, schema_version,
                 actor_kind, actor_id, occurred_at, recorded_at, correlation_id, causation_id,
                 conversation_id, inbox_id, contact_id, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                position,
                event.event_id.to_string(),
                event.stream,
                stream_version,
                event.event_type,
                event.schema_version,
                actor_kind.as_str(),
                actor_id,
                event.metadata.occurred_at.timestamp_micros(),
                event.recorded_at.timestamp_micros(),
                event.metadata.correlation_id.to_string(),
                event.metadata.causation_id.to_string(),
                concerns.conversation_id.map(|u| u.to_string()),
                concerns.inbox_id.map(|u| u.to_string()),
                concerns.contact_id.map(|u| u.to_string()),
                payload,
            ],
        )?;
        Ok(())
    }
}

/// The stored kind and id of an actor: a UUID, or a system component's name.
pub(crate) fn actor_columns(actor: &Actor) -> (ActorKind, String) {
    match actor {
        Actor::User { id } => (ActorKind::User, id.to_string()),
        Actor::Contact { id } => (ActorKind::Contact, id.to_string()),
        Actor::Bot { id } => (ActorKind::Bot, id.to_string()),
        Actor::System { component } => (ActorKind::System, component.clone()),
        Actor::Channel { id } => (ActorKind::Channel, id.to_string()),
    }
}
