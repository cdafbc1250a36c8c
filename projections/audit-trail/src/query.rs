//! Audit queries: filter the trail, page through it by position, follow a causal chain.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use proto_events::Actor;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension};
use uuid::Uuid;

use crate::actor_columns;
use crate::concerns::Concerns;
use crate::entries::{self, Stored};
use crate::postings::{self, Cursor, Direction, Key};

/// The kinds of [`Actor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// A signed-in user.
    User,
    /// A customer.
    Contact,
    /// A bot.
    Bot,
    /// Switchboard itself.
    System,
    /// A channel integration.
    Channel,
}

impl ActorKind {
    /// The stored code.
    pub(crate) fn code(self) -> i64 {
        match self {
            Self::User => 0,
            Self::Contact => 1,
            Self::Bot => 2,
            Self::System => 3,
            Self::Channel => 4,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        [
            Self::User,
            Self::Contact,
            Self::Bot,
            Self::System,
            Self::Channel,
        ]
        .into_iter()
        .find(|kind| kind.code() == code)
    }

    /// The name: `user`, `contact`, `bot`, `system`, `channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Contact => "contact",
            Self::Bot => "bot",
            Self::System => "system",
            Self::Channel => "channel",
        }
    }
}

/// Which actors' events to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorFilter {
    /// Every actor of a kind, e.g. everything the system did.
    Kind(ActorKind),
    /// One actor.
    Is(Actor),
}

/// What to return: every field set must match (an empty filter returns everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Who caused the event.
    pub actor: Option<ActorFilter>,
    /// The conversation it concerns.
    pub conversation_id: Option<Uuid>,
    /// The inbox it concerns.
    pub inbox_id: Option<Uuid>,
    /// The contact it concerns.
    pub contact_id: Option<Uuid>,
    /// Its type, e.g. `"ConversationReassigned"`.
    pub event_type: Option<String>,
    /// It occurred at or after this time.
    pub occurred_from: Option<DateTime<Utc>>,
    /// It occurred before this time (exclusive).
    pub occurred_until: Option<DateTime<Utc>>,
    /// Its correlation id.
    pub correlation_id: Option<Uuid>,
}

/// Which page to return, by keyset on the global position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The first `first` matching events after position `after` (from the start if `None`).
    Forward {
        /// Exclusive lower bound.
        after: Option<u64>,
        /// How many at most.
        first: usize,
    },
    /// The last `last` matching events before position `before` (from the end if `None`).
    Backward {
        /// Exclusive upper bound.
        before: Option<u64>,
        /// How many at most.
        last: usize,
    },
}

/// A page of the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The events, always in ascending position order, whichever the direction.
    pub entries: Vec<AuditEntry>,
    /// Whether more matching events lie beyond this page in the direction it was read (after
    /// the last entry going forward, before the first going backward).
    pub has_more: bool,
}

/// One event in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Global position in the store.
    pub position: u64,
    /// The event's id.
    pub event_id: Uuid,
    /// Its stream.
    pub stream: String,
    /// Its index in the stream.
    pub stream_version: u64,
    /// The action: the event's type.
    pub event_type: String,
    /// The schema version it was stored in.
    pub schema_version: u32,
    /// Who caused it.
    pub actor: Actor,
    /// Domain time: when it happened.
    pub occurred_at: DateTime<Utc>,
    /// Store time: when it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// The outside request it follows from.
    pub correlation_id: Uuid,
    /// What directly caused it (a command id or an event id).
    pub causation_id: Uuid,
    /// The conversation, inbox and contact it concerns.
    pub concerns: Concerns,
}

/// A page of the events matching `filter`.
///
/// Of the filter's keys, the shortest posting list (or the union of the period's days) is
/// walked, and each entry it names is checked against the whole filter; an
/// empty filter walks the table by position.
pub fn audit_events(
    conn: &Connection,
    filter: &AuditFilter,
    page: Page,
) -> rusqlite::Result<AuditPage> {
    let to_i64 = |p: u64| i64::try_from(p).unwrap_or(i64::MAX);
    let (direction, bound, limit) = match page {
        Page::Forward { after, first } => (Direction::Forward, after.map_or(0, to_i64), first),
        Page::Backward { before, last } => {
            (Direction::Backward, before.map_or(i64::MAX, to_i64), last)
        }
    };
    let snapshot = snapshot(conn)?;
    let mut entries = Vec::new();
    match walk(conn, filter, direction, bound)? {
        Walk::Nothing => {}
        Walk::Table => {
            let forward = direction == Direction::Forward;
            let types = EventTypeNames::load(conn)?;
            entries = entries::walk(conn, forward, bound, limit.saturating_add(1))?
                .into_iter()
                .map(|stored| entry(stored, &types))
                .collect::<rusqlite::Result<Vec<_>>>()?;
        }
        Walk::Postings(mut cursors) => {
            let types = EventTypeNames::load(conn)?;
            let mut lookup = entries::Lookup::default();
            while entries.len() <= limit {
                let Some(position) = next_of(conn, &mut cursors, direction)? else {
                    break;
                };
                if let Some(found) = at_position(conn, &mut lookup, &types, position)?
                    && matches(filter, &found)
                {
                    entries.push(found);
                }
            }
        }
    }
    drop(snapshot);
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    if direction == Direction::Backward {
        entries.reverse();
    }
    Ok(AuditPage { entries, has_more })
}

/// Every event of one causal chain (sharing a correlation id), in position order.
pub fn by_correlation(
    conn: &Connection,
    correlation_id: Uuid,
) -> rusqlite::Result<Vec<AuditEntry>> {
    let filter = AuditFilter {
        correlation_id: Some(correlation_id),
        ..AuditFilter::default()
    };
    let page = Page::Forward {
        after: None,
        first: usize::MAX,
    };
    Ok(audit_events(conn, &filter, page)?.entries)
}

/// One event by id: e.g. the cause named by another entry's `causation_id`.
pub fn by_event_id(conn: &Connection, event_id: Uuid) -> rusqlite::Result<Option<AuditEntry>> {
    let _snapshot = snapshot(conn)?;
    let types = EventTypeNames::load(conn)?;
    let mut lookup = entries::Lookup::default();
    let mut cursor = Cursor::new(Key::event_id(&event_id), Direction::Forward, 0);
    while let Some(position) = cursor.next(conn)? {
        if let Some(found) = at_position(conn, &mut lookup, &types, position)?
            && found.event_id == event_id
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// A read transaction unless one is open, so that every chunk and row a query reads comes from
/// one snapshot: a batch committed in between could otherwise fill a chunk after it was read.
fn snapshot(conn: &Connection) -> rusqlite::Result<Option<rusqlite::Transaction<'_>>> {
    conn.is_autocommit()
        .then(|| conn.unchecked_transaction())
        .transpose()
}

/// How a query finds its candidates.
enum Walk {
    /// No event can match.
    Nothing,
    /// Every event, by position.
    Table,
    /// The union of these posting lists.
    Postings(Vec<Cursor>),
}

/// Picks the shortest posting list among the filter's keys (as far as [`postings::count`]
/// counts), or the table when it has none.
fn walk(
    conn: &Connection,
    filter: &AuditFilter,
    direction: Direction,
    bound: i64,
) -> rusqlite::Result<Walk> {
    // Most selective first: lists too long to count whole tie, and the first of them wins.
    let mut keys = Vec::new();
    keys.extend(filter.correlation_id.as_ref().map(Key::correlation));
    keys.extend(filter.conversation_id.as_ref().map(Key::conversation));
    keys.extend(filter.contact_id.as_ref().map(Key::contact));
    if let Some(ActorFilter::Is(actor)) = &filter.actor {
        let (kind, id) = actor_columns(actor);
        keys.push(Key::actor(kind, id));
    }
    keys.extend(filter.inbox_id.as_ref().map(Key::inbox));
    if let Some(name) = &filter.event_type {
        let code: Option<i64> = conn
            .prepare_cached("SELECT code FROM audit_event_types WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        match code {
            Some(code) => keys.push(Key::event_type(code)),
            None => return Ok(Walk::Nothing),
        }
    }
    if let Some(ActorFilter::Kind(kind)) = &filter.actor {
        keys.push(Key::actor_kind(*kind));
    }
    let mut best: Option<(i64, Vec<Key>)> = None;
    for key in keys {
        let count = postings::count(conn, &key)?;
        if best.as_ref().is_none_or(|(fewest, _)| count < *fewest) {
            best = Some((count, vec![key]));
        }
    }
    if filter.occurred_from.is_some() || filter.occurred_until.is_some() {
        let (from, until) = period(filter);
        if from >= until {
            return Ok(Walk::Nothing);
        }
        let (days, count) = postings::days(
            conn,
            Key::day_of_micros(from),
            Key::day_of_micros(until - 1),
        )?;
        if best.as_ref().is_none_or(|(fewest, _)| count < *fewest) {
            best = Some((count, days));
        }
    }
    Ok(match best {
        None => Walk::Table,
        Some((0, _)) => Walk::Nothing,
        Some((_, keys)) => Walk::Postings(
            keys.into_iter()
                .map(|key| Cursor::new(key, direction, bound))
                .collect(),
        ),
    })
}

/// The next position of the union of `cursors` in walking order.
fn next_of(
    conn: &Connection,
    cursors: &mut [Cursor],
    direction: Direction,
) -> rusqlite::Result<Option<i64>> {
    let mut next: Option<i64> = None;
    for cursor in cursors.iter_mut() {
        if let Some(position) = cursor.peek(conn)? {
            next = Some(match (next, direction) {
                (None, _) => position,
                (Some(n), Direction::Forward) => n.min(position),
                (Some(n), Direction::Backward) => n.max(position),
            });
        }
    }
    if let Some(position) = next {
        for cursor in cursors.iter_mut() {
            if cursor.peek(conn)? == Some(position) {
                cursor.next(conn)?;
            }
        }
    }
    Ok(next)
}

/// The entry at `position`.
fn at_position(
    conn: &Connection,
    lookup: &mut entries::Lookup,
    types: &EventTypeNames,
    position: i64,
) -> rusqlite::Result<Option<AuditEntry>> {
    lookup
        .at(conn, position)?
        .map(|stored| entry(stored, types))
        .transpose()
}

/// The names of the event types' codes, for the entries of one query.
struct EventTypeNames(HashMap<i64, String>);

impl EventTypeNames {
    fn load(conn: &Connection) -> rusqlite::Result<EventTypeNames> {
        let mut statement = conn.prepare_cached("SELECT code, name FROM audit_event_types")?;
        let names = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(EventTypeNames(names))
    }
}

/// The filter's period in stored microseconds, `[from, until)`; a bound finer than a
/// microsecond is cut to the microsecond, as times are stored.
fn period(filter: &AuditFilter) -> (i64, i64) {
    let micros = |at: Option<DateTime<Utc>>, open: i64| at.map_or(open, |t| t.timestamp_micros());
    (
        micros(filter.occurred_from, i64::MIN),
        micros(filter.occurred_until, i64::MAX),
    )
}

/// Whether `entry` matches every field of `filter`.
fn matches(filter: &AuditFilter, entry: &AuditEntry) -> bool {
    let actor = match &filter.actor {
        None => true,
        Some(ActorFilter::Kind(kind)) => actor_columns(&entry.actor).0 == *kind,
        Some(ActorFilter::Is(actor)) => entry.actor == *actor,
    };
    let concerns = &entry.concerns;
    let is = |wanted: Option<Uuid>, found: Option<Uuid>| wanted.is_none_or(|w| found == Some(w));
    actor
        && is(filter.conversation_id, concerns.conversation_id)
        && is(filter.inbox_id, concerns.inbox_id)
        && is(filter.contact_id, concerns.contact_id)
        && is(filter.correlation_id, Some(entry.correlation_id))
        && filter
            .event_type
            .as_ref()
            .is_none_or(|t| *t == entry.event_type)
        && {
            let (from, until) = period(filter);
            (from..until).contains(&entry.occurred_at.timestamp_micros())
        }
}

/// The entry as the queries return it.
fn entry(stored: Stored, types: &EventTypeNames) -> rusqlite::Result<AuditEntry> {
    let uuid = Uuid::from_bytes;
    let actor = match stored.actor_kind {
        ActorKind::System => Actor::System {
            component: String::from_utf8(stored.actor_id).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(3, Type::Blob, Box::new(e))
            })?,
        },
        kind => {
            let id = Uuid::from_slice(&stored.actor_id).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(3, Type::Blob, Box::new(e))
            })?;
            match kind {
                ActorKind::User => Actor::User { id },
                ActorKind::Contact => Actor::Contact { id },
                ActorKind::Bot => Actor::Bot { id },
                _ => Actor::Channel { id },
            }
        }
    };
    let event_type = types.0.get(&stored.event_type).cloned().ok_or(
        rusqlite::Error::IntegralValueOutOfRange(3, stored.event_type),
    )?;
    Ok(AuditEntry {
        position: non_negative(stored.position, 3)?,
        event_id: uuid(stored.event_id),
        stream: stored.stream,
        stream_version: non_negative(stored.stream_version, 3)?,
        event_type,
        schema_version: stored.schema_version,
        actor,
        occurred_at: time(stored.occurred_at)?,
        recorded_at: time(stored.recorded_at)?,
        correlation_id: uuid(stored.correlation_id),
        causation_id: uuid(stored.causation_id),
        concerns: Concerns {
            conversation_id: stored.conversation_id.map(uuid),
            inbox_id: stored.inbox_id.map(uuid),
            contact_id: stored.contact_id.map(uuid),
        },
    })
}

fn time(micros: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(3, micros))
}

fn non_negative(value: i64, idx: usize) -> rusqlite::Result<u64> {
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}
