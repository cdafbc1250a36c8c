//! One read model's database: created and migrated for its projector, with the projector's
//! checkpoint in the same database, so a batch and its checkpoint commit together.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use proto_events::Envelope;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use switchboard_store::Position;

use crate::projector::{ApplyError, Event, Projector};

/// The runtime's own bookkeeping table in every read model.
const META: &str = "CREATE TABLE IF NOT EXISTS _projection (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    checkpoint  INTEGER NOT NULL,
    recorded_at INTEGER
) STRICT";

/// Pragmas of a read model's writing connection. A read model can always be rebuilt from the
/// log, and its checkpoint commits with its rows, so `synchronous = NORMAL` (no fsync per
/// commit in WAL mode) loses at most the last batches on power loss, never consistency. A large
/// cache and rarer checkpoints keep a rebuild from rereading and rewriting hot pages. The
/// runtime's writers turn automatic checkpoints off and checkpoint on a thread of their own
/// ([`switchboard_sqlite::Checkpointer`]). What is deleted or rewritten is overwritten in the
/// file (`secure_delete`): an erased person's text (ADR 0007) must not stay in free pages, nor
/// in the unused space of pages where earlier versions of rewritten rows would linger.
const WRITER_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
    PRAGMA busy_timeout = 5000; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; \
    PRAGMA wal_autocheckpoint = 8192; PRAGMA foreign_keys = OFF; PRAGMA threads = 0; \
    PRAGMA mmap_size = 0; PRAGMA secure_delete = ON;";

/// Pragmas of a read model while it is built from the start of the log ([`begin_build`]): the
/// rollback journal in memory (a failed batch still rolls back) and no fsync. A crash mid-build
/// can leave the file torn, which is why a build leaves a marker beside it until it is done:
/// a read model found with its marker is discarded and built again ([`open_for_writing`]).
///
/// Two more for the end of a build, when a projector's `caught_up` creates its query indexes
/// over every row: the sorter may use a second thread (by then the other projectors have
/// mostly finished, and a core would sit idle), and the table is read through a memory map
/// rather than copied page by page out of the kernel for each index. [`WRITER_PRAGMAS`] turns
/// both off again.
const BUILDING_PRAGMAS: &str =
    "PRAGMA synchronous = OFF; PRAGMA threads = 2; PRAGMA mmap_size = 4294967296;";

/// Prepared statements kept per writing connection.
const STATEMENT_CACHE: usize = 128;

/// Idle read-only connections a [`ReadModel`] keeps. Queries run on tokio's blocking pool, so as
/// many run at once as requests are in flight; a connection that finds the pool full is closed,
/// and the next query to need one opens it again (open, pragmas, schema parse) and starts with
/// an empty statement cache. Enough for the connections of a busy server; each idle connection
/// costs its page cache and compiled statements (a few MB at most).
const READ_POOL: usize = 64;

/// Prepared statements kept per read-only connection: the read side's queries are a few dozen
/// distinct statements (the inbox lists' one per combination of filters in use).
const READ_STATEMENT_CACHE: usize = 64;

/// Pragmas of a read-only connection.
const READER_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA query_only = 1;";

/// An event a projector could not apply, named so an operator can find it.
#[derive(Debug, thiserror::Error)]
#[error("projector {projector} failed on event {event_type} at position {position}: {source}")]
pub struct BatchError {
    /// The projector.
    pub projector: &'static str,
    /// The event's global position.
    pub position: Position,
    /// The event's type.
    pub event_type: String,
    /// Why.
    #[source]
    pub source: ApplyError,
}

/// Where a read model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// The last event applied.
    pub position: Position,
    /// When the store recorded it, microseconds since the epoch.
    pub recorded_at_micros: Option<i64>,
}

/// Opens (creating or rebuilding as needed) the writing connection of `projector`'s read model
/// at `path`. A database written by another version of the projector is emptied and starts
/// again from the beginning of the log.
pub fn open_for_writing(
    path: &Path,
    projector: &dyn Projector,
) -> Result<(Connection, Checkpoint), rusqlite::Error> {
    let marker = build_marker(path);
    if marker.exists() {
        tracing::warn!(
            projector = projector.name(),
            "the read model's build from the log was interrupted: building it again"
        );
        remove_database(path).map_err(io_failure)?;
        std::fs::remove_file(&marker).map_err(io_failure)?;
    }
    let mut conn = Connection::open(path)?;
    conn.execute_batch(WRITER_PRAGMAS)?;
    conn.execute_batch(META)?;
    let stored: Option<(String, u32)> = conn
        .query_row(
            "SELECT name, version FROM _projection WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let current = stored
        .as_ref()
        .is_some_and(|(name, version)| name == projector.name() && *version == projector.version());
    if !current {
        if stored.is_some() {
            tracing::info!(
                projector = projector.name(),
                "read model version changed: rebuilding from the log"
            );
        }
        drop(conn);
        remove_database(path).map_err(io_failure)?;
        conn = Connection::open(path)?;
        conn.execute_batch(WRITER_PRAGMAS)?;
        create(&mut conn, projector)?;
    }
    // Projectors run a few dozen distinct statements per batch; rusqlite keeps 16 by default,
    // and a statement evicted from the cache is parsed and planned again on its next use.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let checkpoint = checkpoint(&conn)?;
    Ok((conn, checkpoint))
}

/// Removes a database file with its write-ahead log and shared-memory index.
fn remove_database(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn io_failure(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// The file that says the read model at `path` is being built ([`begin_build`]).
pub fn build_marker(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.building", path.display()))
}

/// Switches the empty read model at `path` (checkpoint 0), open on `conn`, to building: the
/// whole log is about to be applied to it, and it is nobody's answer until that is done, so
/// its commits need neither a write-ahead log nor fsyncs. Writing each page once instead of
/// twice (log, then database) and never waiting for the disk is what makes a rebuild fast.
///
/// A marker file beside the database, durable before the first batch, says a build is under
/// way; [`finish_build`] removes it. If the process dies in between, the file may be torn, and
/// [`open_for_writing`] finds the marker and starts the build again from an empty database.
///
/// Returns whether it switched: not when another connection holds the database (SQLite keeps
/// the write-ahead log then), in which case the read model is written as usual.
pub fn begin_build(conn: &Connection, path: &Path) -> std::io::Result<bool> {
    let marker = build_marker(path);
    let file = std::fs::File::create(&marker)?;
    file.sync_all()?;
    sync_parent(path)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = MEMORY", [], |r| r.get(0))
        .map_err(std::io::Error::other)?;
    if !mode.eq_ignore_ascii_case("memory") {
        std::fs::remove_file(&marker)?;
        return Ok(false);
    }
    conn.execute_batch(BUILDING_PRAGMAS)
        .map_err(std::io::Error::other)?;
    Ok(true)
}

/// Ends a build ([`begin_build`]): back to the write-ahead log and the usual pragmas, the
/// database flushed to disk, then the marker removed. From here on every commit is durable and
/// crash-safe again, and the read model resumes from its checkpoint after a restart.
pub fn finish_build(conn: &Connection, path: &Path) -> std::io::Result<()> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(std::io::Error::other)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(std::io::Error::other(format!(
            "could not switch the read model back to the write-ahead log (journal mode {mode})"
        )));
    }
    conn.execute_batch(WRITER_PRAGMAS)
        .map_err(std::io::Error::other)?;
    std::fs::File::open(path)?.sync_all()?;
    std::fs::remove_file(build_marker(path))?;
    sync_parent(path)
}

/// Makes a file's creation or removal in its directory durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Runs `sql`, the statements creating the indexes a read model leaves for when it has caught
/// up (and dropping any they replace), unless the index named `last`, the last `sql` creates,
/// is already there. What a projector's [`Projector::caught_up`] calls: one cached lookup
/// every time after the first. It runs in the batch's transaction, so `sql` is applied whole
/// or not at all, and `last` existing means all of it was.
pub fn create_indexes_once(conn: &Connection, last: &str, sql: &str) -> rusqlite::Result<()> {
    let done: bool = conn
        .prepare_cached(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = ?1",
        )?
        .query_row([last], |r| r.get(0))?;
    if !done {
        conn.execute_batch(sql)?;
    }
    Ok(())
}

/// The checkpoint stored in a read model.
pub fn checkpoint(conn: &Connection) -> rusqlite::Result<Checkpoint> {
    conn.query_row(
        "SELECT checkpoint, recorded_at FROM _projection WHERE id = 1",
        [],
        |r| {
            Ok(Checkpoint {
                position: Position(r.get::<_, i64>(0)? as u64),
                recorded_at_micros: r.get(1)?,
            })
        },
    )
}

/// Applies `events` (in order, all after the checkpoint) and moves the checkpoint to the last,
/// in one transaction: either the whole batch is in the read model, or none of it.
pub fn apply_batch(
    conn: &mut Connection,
    projector: &dyn Projector,
    events: &[Envelope],
) -> Result<Checkpoint, BatchError> {
    let events: Vec<Event<'_>> = events.iter().map(Event::decoded).collect();
    apply_events(conn, projector, &events, true)
}

/// [`apply_batch`] for the events of a batch the runtime read from the store.
/// `at_head` says whether they reach the head of the log as it was when they were read; then
/// the projector's [`Projector::caught_up`] runs in the same transaction.
pub fn apply_events(
    conn: &mut Connection,
    projector: &dyn Projector,
    events: &[Event<'_>],
    at_head: bool,
) -> Result<Checkpoint, BatchError> {
    let fail = |event: &Envelope, source: ApplyError| BatchError {
        projector: projector.name(),
        position: Position(event.position),
        event_type: event.event_type.clone(),
        source,
    };
    let Some(last) = events.last().map(|e| e.envelope) else {
        return checkpoint(conn).map_err(|e| sqlite_failure(projector, e));
    };
    let tx = conn.transaction().map_err(|e| fail(last, e.into()))?;
    projector.apply_batch(&tx, events).map_err(|e| {
        let event = events.get(e.index).map_or(last, |e| e.envelope);
        fail(event, e.source)
    })?;
    if at_head {
        projector.caught_up(&tx).map_err(|e| fail(last, e.into()))?;
    }
    let recorded_at = last.recorded_at.timestamp_micros();
    tx.prepare_cached("UPDATE _projection SET checkpoint = ?1, recorded_at = ?2 WHERE id = 1")
        .and_then(|mut update| update.execute(params![last.position as i64, recorded_at]))
        .map_err(|e| fail(last, e.into()))?;
    tx.commit().map_err(|e| fail(last, e.into()))?;
    Ok(Checkpoint {
        position: Position(last.position),
        recorded_at_micros: Some(recorded_at),
    })
}

fn sqlite_failure(projector: &dyn Projector, e: rusqlite::Error) -> BatchError {
    BatchError {
        projector: projector.name(),
        position: Position::START,
        event_type: String::new(),
        source: e.into(),
    }
}

/// A read model for queries: read-only connections to the projector's current database file.
/// A rebuild swaps the file underneath; connections opened before the swap are dropped.
#[derive(Debug)]
pub struct ReadModel {
    name: &'static str,
    inner: Mutex<Files>,
}

#[derive(Debug)]
struct Files {
    path: PathBuf,
    generation: u64,
    idle: Vec<(u64, Connection)>,
}

impl ReadModel {
    /// Queries on the read model at `path`.
    pub fn new(name: &'static str, path: PathBuf) -> Arc<ReadModel> {
        Arc::new(ReadModel {
            name,
            inner: Mutex::new(Files {
                path,
                generation: 0,
                idle: Vec::new(),
            }),
        })
    }

    /// The projector's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Points queries at a new file (after a rebuild into a fresh copy).
    pub fn swap(&self, path: PathBuf) {
        if let Ok(mut files) = self.inner.lock() {
            files.path = path;
            files.generation += 1;
            files.idle.clear();
        }
    }

    /// Runs `f` on a read-only connection, on tokio's blocking pool.
    pub async fn query<T, F>(self: &Arc<Self>, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let model = self.clone();
        tokio::task::spawn_blocking(move || model.query_blocking(f))
            .await
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
    }

    /// [`Self::query`] on the calling thread.
    pub fn query_blocking<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let (generation, path, pooled) = {
            let mut files = self
                .inner
                .lock()
                .map_err(|_| rusqlite::Error::InvalidQuery)?;
            let generation = files.generation;
            let pooled = files
                .idle
                .pop()
                .filter(|(g, _)| *g == generation)
                .map(|(_, c)| c);
            (generation, files.path.clone(), pooled)
        };
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.execute_batch(READER_PRAGMAS)?;
                conn.set_prepared_statement_cache_capacity(READ_STATEMENT_CACHE);
                conn
            }
        };
        let result = f(&conn);
        if let Ok(mut files) = self.inner.lock()
            && files.generation == generation
            && files.idle.len() < READ_POOL
        {
            files.idle.push((generation, conn));
        }
        result
    }
}

/// A throwaway read model of `projector` in memory, for folding a slice of the log on demand
/// (e.g. a conversation as it stood at a past position). Apply events with [`apply_batch`].
pub fn open_in_memory(projector: &dyn Projector) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    create(&mut conn, projector)?;
    Ok(conn)
}

/// Creates `projector`'s tables and its checkpoint at 0 in an empty database, in one
/// transaction.
fn create(conn: &mut Connection, projector: &dyn Projector) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(META)?;
    projector.migrate(&tx)?;
    tx.execute(
        "INSERT INTO _projection (id, name, version, checkpoint) VALUES (1, ?1, ?2, 0)",
        params![projector.name(), projector.version()],
    )?;
    tx.commit()
}
