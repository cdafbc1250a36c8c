//! The event table, its guards, and how connections are opened.
//!
//! `position` is the rowid, so the global order is the table's physical order and reading it is a
//! sequential scan. `event_id` is unique: the idempotency handle.
//!
//! Streams get a small integer id in `streams`, which also holds each stream's last version (the
//! expected-version check is one point lookup). Each event row carries its stream's name too, so
//! global reads need no join and the hash chain covers the name.
//!
//! **The stream index is written lazily.** A B-tree keyed by `(stream, version)` and updated on
//! every append dirties one index page per stream an append touches: under concurrent appends to
//! many streams that is a page per event, written to the log and then checkpointed, several times
//! the event's own size. Instead, `stream_index` (a `WITHOUT ROWID` table keyed by stream id and
//! version) is filled by the writer in sorted batches once `SqliteOptions::index_lag` events have
//! accumulated past `index_state.indexed_upto`, touching each page once per batch. Reads of a
//! stream combine the index with the unindexed tail (`position > indexed_upto`) in one read
//! transaction and so one snapshot: the writer keeps the tail's positions per stream in memory
//! (`crate::tail`), and a reader without that map (a read-only handle) scans the tail. The index's
//! primary key still refuses a duplicate version, at indexing time; at append time the single
//! writer's check against `streams.version` guarantees it.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 3;

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
    hash           BLOB    NOT NULL
) STRICT;

CREATE TABLE stream_index (
    stream_id      INTEGER NOT NULL,
    stream_version INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    PRIMARY KEY (stream_id, stream_version)
) STRICT, WITHOUT ROWID;

CREATE TABLE index_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto INTEGER NOT NULL
) STRICT;

INSERT INTO index_state (id, indexed_upto) VALUES (1, 0);

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

/// Blobs (see `crate::blobs`): written by the event writer, in the transactions of the appends
/// that reference them. Unlike events, a blob may be deleted (a person's erasure).
const MIGRATION_2: &str = "
CREATE TABLE blobs (
    sha256 TEXT    PRIMARY KEY,
    size   INTEGER NOT NULL,
    bytes  BLOB    NOT NULL
) STRICT;
";

/// Blobs kept as a range of another blob (see `crate::blobs`), findable by their source: one
/// to be deleted must first have the parts standing in it stored whole (see
/// `switchboard_store::blob::BlobStore`).
const MIGRATION_3: &str = "
CREATE TABLE blob_parts (
    sha256     TEXT    PRIMARY KEY,
    size       INTEGER NOT NULL,
    source     TEXT    NOT NULL,
    start_byte INTEGER NOT NULL,
    end_byte   INTEGER NOT NULL,
    encoding   TEXT    NOT NULL
) STRICT;

CREATE INDEX blob_parts_by_source ON blob_parts (source);
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

/// Keeps cached statements prepared. Without the query planner stability guarantee, SQLite
/// (3.50, built with `SQLITE_ENABLE_STAT4`) lets the value bound to a `LIMIT ?` shape the plan,
/// so clearing the bindings when a cached statement goes back to the cache marks it expired and
/// its next use compiles it again: every stream and page read paid a full prepare. Our plans do
/// not depend on bound values (nothing runs `ANALYZE`), so the guarantee costs nothing.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Opens the writing connection, creating and migrating the database as needed (a database of
/// a newer schema is left as it is: the caller refuses it, see [`version`]). Deleted blobs
/// are overwritten in the file (`secure_delete`), and the write-ahead log goes back to at most
/// 64 MiB once checkpointed, whatever a burst of large mail made of it.
///
/// Its page cache is 16 MiB, a quarter of the readers': writing needs the B-trees' hot pages
/// only, and SQLite scans the whole cache at the end of every write transaction after a
/// B-tree balance (it renumbers a page to the locking page's number for a moment, and the
/// cache then truncates everything past the file's end): with 64 MiB that scan was a fifth of
/// the writer's time under a stream of large mail.
pub fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    stable_plans(&conn)?;
    conn.execute_batch(COMMON_PRAGMAS)?;
    conn.execute_batch(
        "PRAGMA secure_delete = ON; PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -16384;",
    )?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Copies the write-ahead log of the database on `conn` into the database file and empties it
/// (`wal_checkpoint(TRUNCATE)`): `secure_delete` zeroes a deleted row in the database file, but
/// the log still holds earlier images of its page until then. A reader on an older snapshot
/// (of this process, or of another such as a maintenance command) holds the checkpoint back: it
/// is retried, each attempt waiting at most `conn`'s busy timeout, for up to `patience`; then
/// it fails (`what` names the database) rather than let a caller report bytes gone that are
/// not.
pub(crate) fn empty_log(conn: &Connection, what: &str, patience: Duration) -> rusqlite::Result<()> {
    let deadline = Instant::now() + patience;
    loop {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some(format!(
                    "the {what} log could not be emptied: a reader holds it"
                )),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a read-only connection to an existing database.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    stable_plans(&conn)?;
    conn.execute_batch(
        "PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -65536;
         PRAGMA mmap_size = 1073741824;
         PRAGMA query_only = 1;",
    )?;
    Ok(conn)
}

/// Every migration, in order: the schema version is their number.
const MIGRATIONS: [&str; 3] = [MIGRATION_1, MIGRATION_2, MIGRATION_3];
const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

/// The schema version of the database on `conn` (`PRAGMA user_version`).
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Brings the database to [`SCHEMA_VERSION`]. The caller has refused one a newer version
/// wrote ([`version`]).
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version = version(conn)?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for migration in &MIGRATIONS[version.max(0) as usize..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    // Test code: a failed expectation must panic.
    #![allow(clippy::unwrap_used)]

    use rusqlite::StatementStatus;

    use super::*;

    /// A cached statement with a bound `LIMIT` is compiled once, however often it is reused with
    /// other limits (see [`stable_plans`]).
    #[test]
    fn cached_statements_with_a_bound_limit_are_not_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        drop(open_writer(&path).unwrap());
        let conn = open_reader(&path).unwrap();
        let sql = "SELECT position FROM events WHERE position > ?1 ORDER BY position LIMIT ?2";
        for limit in 1..5 {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let rows: Vec<i64> = stmt
                .query_map([0, limit], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(rows.is_empty());
        }
        let stmt = conn.prepare_cached(sql).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }
}
