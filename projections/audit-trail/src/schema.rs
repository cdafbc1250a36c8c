//! The audit-trail table: one row per event, keyed by global position, without the payload (the
//! store has it at that position). Event types and actor kinds are small integer codes, so the
//! indexes on them compare integers. UUIDs are stored as their 16 bytes (byte order is UUID order, and every
//! index stays less than half the size of one on hyphenated text), times as microseconds since
//! the epoch.
//!
//! The filter indexes are not created with the table: a read model rebuilt from the log gets
//! them once it has caught up ([`create_indexes`]), when sorting the whole table once per index
//! costs a fraction of keeping eight indexes current through a million inserts. Until then
//! queries scan by position: slower, with the same answers.

use rusqlite::Connection;

/// The version of the table and of what its rows mean; bump it to rebuild from the log.
pub(crate) const VERSION: u32 = 3;

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

/// The event-id lookup and one index per filter, each ending in `position` so every filter
/// pages by keyset without sorting.
const INDEXES: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS audit_by_event_id ON audit_events (event_id);
CREATE INDEX IF NOT EXISTS audit_by_actor        ON audit_events (actor_kind, actor_id, position);
CREATE INDEX IF NOT EXISTS audit_by_conversation ON audit_events (conversation_id, position) WHERE conversation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_inbox        ON audit_events (inbox_id, position) WHERE inbox_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_contact      ON audit_events (contact_id, position) WHERE contact_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_type         ON audit_events (event_type, position);
CREATE INDEX IF NOT EXISTS audit_by_occurred_at  ON audit_events (occurred_at, position);
CREATE INDEX IF NOT EXISTS audit_by_correlation  ON audit_events (correlation_id, position);
";

/// How many indexes [`INDEXES`] creates.
const INDEX_COUNT: i64 = 8;

/// Creates the table (without the indexes).
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TABLE)
}

/// Creates the indexes unless they exist.
pub(crate) fn create_indexes(conn: &Connection) -> rusqlite::Result<()> {
    let existing: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events'
               AND name LIKE 'audit_by_%'",
        )?
        .query_row([], |r| r.get(0))?;
    if existing < INDEX_COUNT {
        conn.execute_batch(INDEXES)?;
    }
    Ok(())
}
