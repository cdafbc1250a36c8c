//! The audit trail's tables: the entries, one per event without its payload (the store has it
//! at that position), packed sixteen to a row ([`crate::entries`]); the posting lists that serve
//! every filter ([`crate::postings`]); and the codes of event types. Event types and actor kinds
//! are stored as small integer codes, UUIDs as their 16 bytes, times as microseconds since the
//! epoch.

use rusqlite::Connection;

/// The version of the tables and of what their rows mean; bump it to rebuild from the log.
pub(crate) const VERSION: u32 = 7;

/// The event types' codes.
const TABLE: &str = "
CREATE TABLE audit_event_types (
    code            INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE
) STRICT;
";

/// Creates the tables.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TABLE)?;
    conn.execute_batch(crate::entries::TABLE)?;
    conn.execute_batch(crate::postings::TABLE)
}
