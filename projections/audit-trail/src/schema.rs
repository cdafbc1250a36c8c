//! The audit-trail table: one row per event, keyed by global position. Ids are hyphenated
//! lower-case UUID text, times microseconds since the epoch.

use rusqlite::Connection;

/// The table and one index per filter, each ending in `position` so every filter pages by
/// keyset without sorting.
const SCHEMA: &str = "
CREATE TABLE audit_events (
    position        INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    stream          TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    actor_kind      TEXT    NOT NULL,
    actor_id        TEXT    NOT NULL,
    occurred_at     INTEGER NOT NULL,
    recorded_at     INTEGER NOT NULL,
    correlation_id  TEXT    NOT NULL,
    causation_id    TEXT    NOT NULL,
    conversation_id TEXT,
    inbox_id        TEXT,
    contact_id      TEXT,
    payload         TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_by_actor        ON audit_events (actor_kind, actor_id, position);
CREATE INDEX audit_by_conversation ON audit_events (conversation_id, position) WHERE conversation_id IS NOT NULL;
CREATE INDEX audit_by_inbox        ON audit_events (inbox_id, position) WHERE inbox_id IS NOT NULL;
CREATE INDEX audit_by_contact      ON audit_events (contact_id, position) WHERE contact_id IS NOT NULL;
CREATE INDEX audit_by_type         ON audit_events (event_type, position);
CREATE INDEX audit_by_occurred_at  ON audit_events (occurred_at, position);
CREATE INDEX audit_by_correlation  ON audit_events (correlation_id, position);
";

/// Creates the table and indexes.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}
