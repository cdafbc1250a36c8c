//! Audit queries: filter the trail, page through it by position, follow a causal chain.

use chrono::{DateTime, Utc};
use proto_events::Actor;
use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use uuid::Uuid;

use crate::actor_columns;
use crate::concerns::Concerns;

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

    fn from_code(code: i64) -> Option<Self> {
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

/// Every column of an entry.
const COLUMNS: &str = "position, event_id, stream, stream_version, \
     (SELECT t.name FROM audit_event_types t WHERE t.code = audit_events.event_type), schema_version, actor_kind, \
     actor_id, occurred_at, recorded_at, correlation_id, causation_id, conversation_id, inbox_id, contact_id";

/// A page of the events matching `filter`.
pub fn audit_events(
    conn: &Connection,
    filter: &AuditFilter,
    page: Page,
) -> rusqlite::Result<AuditPage> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut value = |clause, value: Value| {
        clauses.push(clause);
        args.push(value);
    };
    match &filter.actor {
        Some(ActorFilter::Kind(kind)) => value("actor_kind = ?", Value::Integer(kind.code())),
        Some(ActorFilter::Is(actor)) => {
            let (kind, id) = actor_columns(actor);
            value("actor_kind = ?", Value::Integer(kind.code()));
            value("actor_id = ?", Value::Blob(id.to_vec()));
        }
        None => {}
    }
    for (clause, id) in [
        ("conversation_id = ?", filter.conversation_id),
        ("inbox_id = ?", filter.inbox_id),
        ("contact_id = ?", filter.contact_id),
        ("correlation_id = ?", filter.correlation_id),
    ] {
        if let Some(id) = id {
            value(clause, Value::Blob(id.as_bytes().to_vec()));
        }
    }
    if let Some(event_type) = &filter.event_type {
        value(
            "event_type = (SELECT code FROM audit_event_types WHERE name = ?)",
            Value::Text(event_type.clone()),
        );
    }
    let mut integer = |clause, value: i64| {
        clauses.push(clause);
        args.push(Value::Integer(value));
    };
    if let Some(from) = filter.occurred_from {
        integer("occurred_at >= ?", from.timestamp_micros());
    }
    if let Some(until) = filter.occurred_until {
        integer("occurred_at < ?", until.timestamp_micros());
    }
    let (bound, limit, order) = match page {
        Page::Forward { after, first } => (after.map(|p| ("position > ?", p)), first, "ASC"),
        Page::Backward { before, last } => (before.map(|p| ("position < ?", p)), last, "DESC"),
    };
    if let Some((clause, position)) = bound {
        integer(clause, i64::try_from(position).unwrap_or(i64::MAX));
    }
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    args.push(Value::Integer(fetch));
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_events {filter_sql} ORDER BY position {order} LIMIT ?"
    );
    let mut entries = conn
        .prepare(&sql)?
        .query_map(params_from_iter(args), entry)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    if matches!(page, Page::Backward { .. }) {
        entries.reverse();
    }
    Ok(AuditPage { entries, has_more })
}

/// Every event of one causal chain (sharing a correlation id), in position order.
pub fn by_correlation(
    conn: &Connection,
    correlation_id: Uuid,
) -> rusqlite::Result<Vec<AuditEntry>> {
    conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_events WHERE correlation_id = ?1 ORDER BY position"
    ))?
    .query_map([correlation_id.as_bytes()], entry)?
    .collect()
}

/// One event by id: e.g. the cause named by another entry's `causation_id`.
pub fn by_event_id(conn: &Connection, event_id: Uuid) -> rusqlite::Result<Option<AuditEntry>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM audit_events WHERE event_id = ?1"),
        [event_id.as_bytes()],
        entry,
    )
    .optional()
}

fn entry(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let code: i64 = r.get(6)?;
    let kind =
        ActorKind::from_code(code).ok_or(rusqlite::Error::IntegralValueOutOfRange(6, code))?;
    let actor = match kind {
        ActorKind::User => Actor::User { id: uuid_at(r, 7)? },
        ActorKind::Contact => Actor::Contact { id: uuid_at(r, 7)? },
        ActorKind::Bot => Actor::Bot { id: uuid_at(r, 7)? },
        ActorKind::Channel => Actor::Channel { id: uuid_at(r, 7)? },
        ActorKind::System => Actor::System {
            component: String::from_utf8(r.get::<_, Vec<u8>>(7)?).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(7, Type::Blob, Box::new(e))
            })?,
        },
    };
    Ok(AuditEntry {
        position: non_negative(r.get(0)?, 0)?,
        event_id: uuid_at(r, 1)?,
        stream: r.get(2)?,
        stream_version: non_negative(r.get(3)?, 3)?,
        event_type: r.get(4)?,
        schema_version: r.get(5)?,
        actor,
        occurred_at: time_at(r, 8)?,
        recorded_at: time_at(r, 9)?,
        correlation_id: uuid_at(r, 10)?,
        causation_id: uuid_at(r, 11)?,
        concerns: Concerns {
            conversation_id: opt_uuid_at(r, 12)?,
            inbox_id: opt_uuid_at(r, 13)?,
            contact_id: opt_uuid_at(r, 14)?,
        },
    })
}

fn uuid_at(r: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    opt_uuid_at(r, idx)?.ok_or(rusqlite::Error::InvalidColumnType(
        idx,
        "NULL".to_owned(),
        Type::Null,
    ))
}

fn opt_uuid_at(r: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Uuid>> {
    r.get_ref(idx)?
        .as_blob_or_null()?
        .map(|bytes| {
            Uuid::from_slice(bytes).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(idx, Type::Blob, Box::new(e))
            })
        })
        .transpose()
}

fn time_at(r: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let micros: i64 = r.get(idx)?;
    DateTime::from_timestamp_micros(micros)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(idx, micros))
}

fn non_negative(value: i64, idx: usize) -> rusqlite::Result<u64> {
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}
