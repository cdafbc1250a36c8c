//! The event table, its guards, and how connections are opened.
//!
//! `position` is the rowid, so the global order is the table's physical order and reading it is a
//! sequential scan. `(stream_id, stream_version)` and `event_id` are unique: the first is the stream
//! index and the last line of defence against two writers, the second the idempotency handle.
//!
//! Streams get a small integer id in `streams`, which also holds each stream's last version. The
//! stream index is keyed by that integer rather than the name: with names as keys, every append to
//! a different stream dirtied its own index page, and the write-ahead log grew by several pages per
//! event under concurrent load. Each event row still carries its stream's name, so global reads
//! need no join and the hash chain covers the name.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const MIGRATION_1: &str = "
CREATE TABLE streams (
    id      INTEGER PRIMARY KEY,
    name    TEXT    NOT NULL UNIQUE,
    version INTEGER NOT NULL
) STRICT;

CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    event_id       BLOB    NOT NULL UNIQUE,
    stream_id      INTEGER NOT NULL REFERENCES streams (id),
    stream         TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    metadata       BLOB    NOT NULL,
    payload        BLOB    NOT NULL,
    hash           BLOB    NOT NULL,
    UNIQUE (stream_id, stream_version)
) STRICT;

CREATE TRIGGER events_are_immutable BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE is refused');
END;

CREATE TRIGGER events_are_permanent BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: DELETE is refused');
END;

CREATE TRIGGER streams_are_permanent BEFORE DELETE ON streams
BEGIN
    SELECT RAISE(ABORT, 'streams are append-only: DELETE is refused');
END;
";

/// Pragmas shared by every connection: WAL, and full fsync on every commit so that an
/// acknowledged append is durable.
const COMMON_PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA busy_timeout = 5000;
PRAGMA cache_size = -65536;
PRAGMA temp_store = MEMORY;
";

/// Opens the writing connection, creating and migrating the database as needed.
pub fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch(COMMON_PRAGMAS)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a read-only connection to an existing database.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(
        "PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -65536;
         PRAGMA mmap_size = 1073741824;
         PRAGMA query_only = 1;",
    )?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    tx.execute_batch(MIGRATION_1)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}
