//! The audit trail's tables: the entries, one per event without its payload (the store has it
//! at that position), packed sixteen to a row ([`crate::entries`]); the posting lists that serve
//! every filter ([`crate::postings`]); the codes of event types; and the merges and erased
//! contacts that decide which entries are redacted ([`crate::erasure`]). Event types and actor
//! kinds are stored as small integer codes, UUIDs as their 16 bytes, times as microseconds since
//! the epoch.

use rusqlite::Connection;

/// The version of the tables and of what their rows mean; bump it to rebuild from the log.
/// 8: erasure (`audit_merged`, `audit_erased`, reservation names redacted); deleted and
/// rewritten rows are overwritten, so a file written before (with old rows' bytes in free
/// space) is built again.
pub(crate) const VERSION: u32 = 8;

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
    conn.execute_batch(crate::postings::TABLE)?;
    conn.execute_batch(crate::erasure::TABLE)
}
