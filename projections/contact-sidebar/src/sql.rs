//! Conversions between the values events and queries use (UUIDs, times, record kinds,
//! identities) and what the tables store.

use chrono::{DateTime, Utc};
use proto_events::event::{Identity, RecordKind, UniqueScope};
use rusqlite::Row;
use rusqlite::types::Type;
use uuid::Uuid;

/// A required UUID column.
pub(crate) fn uuid_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(idx)?;
    Uuid::parse_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

/// An optional UUID column.
pub(crate) fn opt_uuid_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Uuid>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| {
        Uuid::parse_str(&t)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
    })
    .transpose()
}

/// A time stored as microseconds.
pub(crate) fn time_from(micros: i64, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(idx, micros))
}

/// The stored name of a record kind.
pub(crate) fn kind_str(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Contact => "contact",
        RecordKind::Company => "company",
        RecordKind::Deal => "deal",
        RecordKind::Ticket => "ticket",
        RecordKind::Conversation => "conversation",
    }
}

/// The record kind of a stored name.
pub(crate) fn kind_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<RecordKind> {
    let text: String = row.get(idx)?;
    Ok(match text.as_str() {
        "contact" => RecordKind::Contact,
        "company" => RecordKind::Company,
        "deal" => RecordKind::Deal,
        "ticket" => RecordKind::Ticket,
        "conversation" => RecordKind::Conversation,
        _ => return Err(rusqlite::Error::InvalidColumnType(idx, text, Type::Text)),
    })
}

/// An identity as stored: kind, normalised value (the lookup key) and value as written.
pub(crate) fn identity_key(identity: &Identity) -> (&'static str, String, &str) {
    let (scope, value) = UniqueScope::of_identity(identity);
    let kind = match identity {
        Identity::Email { .. } => "email",
        Identity::ChatVisitor { .. } => "chat_visitor",
        Identity::Messenger { .. } => "messenger",
    };
    (kind, scope.normalise(value), value)
}

/// The identity of a stored kind and value.
pub(crate) fn identity_from(kind: &str, value: String, idx: usize) -> rusqlite::Result<Identity> {
    Ok(match kind {
        "email" => Identity::Email { address: value },
        "chat_visitor" => Identity::ChatVisitor { visitor_id: value },
        "messenger" => Identity::Messenger { psid: value },
        _ => {
            return Err(rusqlite::Error::InvalidColumnType(
                idx,
                kind.to_owned(),
                Type::Text,
            ));
        }
    })
}
