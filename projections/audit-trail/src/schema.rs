//! The audit-trail table: one row per event, keyed by global position, without the payload (the
//! store has it at that position). Event types and actor kinds are small integer codes, so the
//! indexes on them compare integers. UUIDs are stored as their 16 bytes (byte order is UUID order, and every
//! index stays less than half the size of one on hyphenated text), times as microseconds since
//! the epoch.
//!
//! The table has no index besides its position: the filters are served by posting lists
//! ([`crate::postings`]), written with each batch.

use rusqlite::Connection;

/// The version of the table and of what its rows mean; bump it to rebuild from the log.
pub(crate) const VERSION: u32 = 4;

/// The table.
const TABLE: &str = "
CREATE TABLE audit_events (
    position        INTEGER PRIMARY KEY,
    event_id        BLOB    NOT NULL,
    stream          TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    event_type      INTEGER NOT NULL,   -- audit_event_types.code
    schema_version  INTEGER NOT NULL,
    actor_kind      INTEGER NOT NULL,   -- ActorKind::code
    actor_id        BLOB    NOT NULL,   -- a UUID's bytes, or a system component's name
    occurred_at     INTEGER NOT NULL,
    recorded_at     INTEGER NOT NULL,
    correlation_id  BLOB    NOT NULL,
    causation_id    BLOB    NOT NULL,
    conversation_id BLOB,
    inbox_id        BLOB,
    contact_id      BLOB
) STRICT;
CREATE TABLE audit_event_types (
    code            INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE
) STRICT;
";

/// Creates the tables.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TABLE)?;
    conn.execute_batch(crate::postings::TABLE)
}
