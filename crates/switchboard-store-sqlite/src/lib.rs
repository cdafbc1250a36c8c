//! The embedded event store: the default backend, one data directory and no server.
//!
//! Events live in one SQLite file (`events.sqlite3`) in WAL mode with `synchronous = FULL`, so an
//! acknowledged append survives a crash or power loss. A single writer thread owns the only
//! writing connection and practises **group commit**: appends that arrive while it is busy are
//! gathered into one transaction and one fsync, and each caller is answered only after that commit.
//! Readers use their own connections and, thanks to WAL, never wait for the writer. Triggers refuse
//! `UPDATE` and `DELETE` on events; a `LOCK` file keeps a second process out of the directory.
//!
//! # Layout
//! - [`schema`]: the tables, triggers and pragmas, and opening connections.
//! - `writer`: the writer thread and its group commit.
//! - `reader`: a small pool of read connections and row decoding.
//! - `tail`: where the events not yet in the stream index are, kept by the writer for readers.
//! - [`index`]: the write side's index, a file of its own beside the log.
//! - [`secrets`]: sealed channel secrets, a file of its own beside the log.
//! - `blobs`: attachments and raw e-mails, a table of the event database written with the
//!   appends that reference them, and deleted by the same writer.

mod blobs;
pub mod index;
mod reader;
pub mod schema;
pub mod secrets;
mod tail;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use switchboard_store::blob::{Blob, FileBlobs};
use switchboard_store::error::validate_append;
use switchboard_store::index::MemoryIndex;
use switchboard_store::{
    AppendResult, BlobStore, Direction, EventStore, EventStream, ExpectedVersion, NewEvent, Origin,
    Position, RecordedEvent, SecretStore, StoreError, StreamFrom, WriteIndex,
};
use tokio::sync::{oneshot, watch};

use crate::reader::ReadPool;
use crate::tail::Tail;
use crate::writer::{AppendRequest, DeleteRequest, Request, Writer};

/// The file name of the event database inside the data directory.
pub const DATABASE_FILE: &str = "events.sqlite3";

/// The directory, inside the store's, where earlier versions kept blobs as files; they are
/// still read from there.
pub const BLOB_DIR: &str = "blobs";

/// A source of commit timestamps, replaceable in tests.
pub type CommitClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How often [`SqliteStore::open`] tries the directory's lock again while it waits.
const LOCK_RETRY: Duration = Duration::from_millis(10);

/// How to open the embedded store.
#[derive(Clone)]
pub struct SqliteOptions {
    /// Largest accepted append, in bytes of metadata, payload and type names together.
    pub max_append_bytes: usize,
    /// Most events committed in one group-commit transaction.
    pub max_batch_events: usize,
    /// How many read connections to keep.
    pub read_connections: usize,
    /// How many events may wait before the writer adds them to the stream index (see
    /// [`schema`]). Stream reads find those events in the writer's map of them (`tail`); a
    /// read-only handle scans them.
    pub index_lag: u64,
    /// Where commit timestamps (`recorded_at`) come from.
    pub clock: CommitClock,
    /// How long [`SqliteStore::open`] waits for another holder of the directory's lock to let
    /// go before refusing with [`OpenError::Locked`]: a server finishing its shutdown while its
    /// successor starts (if it finishes within this time), or a child process started by this
    /// one that holds a copy of the lock's descriptor until it executes its program (it is
    /// closed on exec).
    pub lock_wait: Duration,
}

impl std::fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("max_append_bytes", &self.max_append_bytes)
            .field("max_batch_events", &self.max_batch_events)
            .field("read_connections", &self.read_connections)
            .field("index_lag", &self.index_lag)
            .field("lock_wait", &self.lock_wait)
            .finish_non_exhaustive()
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_append_bytes: 4 * 1024 * 1024,
            max_batch_events: 8192,
            read_connections: 4,
            index_lag: 2048,
            clock: Arc::new(Utc::now),
            lock_wait: Duration::from_secs(2),
        }
    }
}

/// Why the embedded store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory or its lock file could not be created.
    #[error("cannot use data directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another store of this one) has the directory open, and kept it
    /// for all of [`SqliteOptions::lock_wait`]. Stop it, or use another directory.
    #[error("data directory {0} is in use by another process")]
    Locked(PathBuf),
    /// A newer version of Switchboard migrated the database: this one would not read
    /// everything it stores (attachments kept as ranges of their originals, for one). Run the
    /// newer version; going back is not supported.
    #[error(
        "the event database {path} has schema {version}, written by a newer Switchboard; this one knows schema {known}: run the newer version (going back is not supported)",
        known = schema::SCHEMA_VERSION
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        version: i64,
    },
    /// SQLite refused to open or migrate the database.
    #[error("cannot open event database: {0}")]
    Database(#[from] rusqlite::Error),
}

/// Refuses the database on `conn` (at `path`) if a newer version migrated it.
fn refuse_newer(path: &Path, conn: &rusqlite::Connection) -> Result<(), OpenError> {
    let version = schema::version(conn)?;
    if version > schema::SCHEMA_VERSION {
        return Err(OpenError::NewerSchema {
            path: path.to_owned(),
            version,
        });
    }
    Ok(())
}

/// The embedded event store. Cheap to clone; all clones share one writer.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// Always `Some` until drop, which closes the queue so the writer finishes and stops.
    requests: Option<std::sync::mpsc::SyncSender<Request>>,
    writer: Option<std::thread::JoinHandle<()>>,
    head: watch::Receiver<Position>,
    reads: ReadPool,
    max_append_bytes: usize,
    /// The write side's index: [`index::SqliteIndex`], or an in-memory one when read-only.
    index: Arc<dyn WriteIndex>,
    /// Where earlier versions kept blobs as files.
    blob_dir: PathBuf,
    /// Sealed secrets, in `<dir>/secrets.sqlite3`.
    secrets: Arc<dyn SecretStore>,
    /// Held (and locked) for as long as the store is open for writing; `None` when read-only.
    _lock: Option<File>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue stops the writer once it has answered everything queued; waiting for
        // it means the directory is free again when the last handle is gone.
        self.requests.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("event writer thread panicked");
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`, and starts its writer thread. Another
    /// holder of the directory is waited for up to [`SqliteOptions::lock_wait`], then refused
    /// with [`OpenError::Locked`].
    pub fn open(dir: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, OpenError> {
        let dir = dir.as_ref();
        let io = |source| OpenError::Directory {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io)?;
        // A wait too long to add to now has no deadline.
        let deadline = Instant::now().checked_add(options.lock_wait);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock)
                    if deadline.is_none_or(|deadline| Instant::now() < deadline) =>
                {
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(OpenError::Locked(dir.to_owned()));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        let path = dir.join(DATABASE_FILE);
        let conn = schema::open_writer(&path)?;
        refuse_newer(&path, &conn)?;
        let tail = Arc::new(Tail::new());
        let reads = ReadPool::open(&path, options.read_connections.max(1), Some(tail.clone()))?;
        let writer = Writer::spawn(conn, &path, &options, tail)?;
        let index = Arc::new(index::SqliteIndex::open(dir)?);
        let secrets = Arc::new(secrets::SqliteSecrets::open(dir)?);
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                requests: Some(writer.requests),
                writer: Some(writer.thread),
                head: writer.head,
                reads,
                max_append_bytes: options.max_append_bytes,
                index,
                blob_dir: dir.join(BLOB_DIR),
                secrets,
                _lock: Some(lock),
            }),
        })
    }

    /// Opens an existing store in `dir` for reading only, as it is at this moment, beside a
    /// process that has it open for writing (SQLite's WAL lets readers of other processes in).
    /// For command-line tools that must work while the server runs (`switchboard token`,
    /// `export`, `audit verify`). Appends fail with [`StoreError::Closed`]; the head stays at
    /// what it was when opened, so subscriptions end there.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<SqliteStore, OpenError> {
        let dir = dir.as_ref();
        let path = dir.join(DATABASE_FILE);
        if !path.is_file() {
            return Err(OpenError::Directory {
                path: dir.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no {DATABASE_FILE} here"),
                ),
            });
        }
        let conn = schema::open_reader(&path)?;
        refuse_newer(&path, &conn)?;
        let reads = ReadPool::open(&path, 2, None)?;
        let head: i64 =
            conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |row| {
                row.get(0)
            })?;
        let (_, head) = watch::channel(Position(u64::try_from(head).unwrap_or(0)));
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                requests: None,
                writer: None,
                head,
                reads,
                max_append_bytes: SqliteOptions::default().max_append_bytes,
                index: Arc::new(MemoryIndex::default()),
                blob_dir: dir.join(BLOB_DIR),
                secrets: Arc::new(secrets::SqliteSecrets::open_read_only(dir)?),
                _lock: None,
            }),
        })
    }

    /// Hands an append (or, with `origins`, a restore) to the writer, with the blobs to store in
    /// its transaction, and waits for its answer.
    async fn submit(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        origins: Option<Vec<Origin>>,
        blobs: Vec<Blob>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream, &events, self.inner.max_append_bytes)?;
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            stream: stream.to_owned(),
            expected,
            events,
            origins,
            blobs,
            reply,
        };
        self.send(Request::Append(request), answer).await
    }

    /// Stores `blobs` with the writer's next commit (see `blobs`).
    async fn store_blobs(&self, blobs: Vec<Blob>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            stream: String::new(),
            expected: ExpectedVersion::Any,
            events: Vec::new(),
            origins: None,
            blobs,
            reply,
        };
        self.send(Request::Append(request), answer).await.map(drop)
    }

    /// Deletes the blobs `names` (blob names, each once) with the writer's next commit (see
    /// `blobs`), and returns those that were stored in the database.
    async fn delete_blobs(&self, names: Vec<String>) -> Result<Vec<String>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::DeleteBlobs(DeleteRequest { names, reply }), answer)
            .await
    }

    /// Queues `request` for the writer and waits for its `answer`.
    async fn send<T>(
        &self,
        request: Request,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let sender = self.inner.requests.clone().ok_or(StoreError::Closed)?;
        // The queue is bounded; a full queue blocks, so hand the send to the blocking pool only
        // when it would block.
        match sender.try_send(request) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(request)) => {
                tokio::task::spawn_blocking(move || sender.send(request))
                    .await
                    .map_err(StoreError::backend)?
                    .map_err(|_| StoreError::Closed)?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The path of the SQLite file holding the events.
    pub fn database_path(&self) -> &Path {
        &self.inner.path
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    #[tracing::instrument(level = "trace", skip(self, events), fields(events = events.len()))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.submit(stream, expected, events, None, Vec::new())
            .await
    }

    #[tracing::instrument(level = "trace", skip(self, events, blobs), fields(events = events.len(), blobs = blobs.len()))]
    async fn append_with_blobs(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        blobs: Vec<Blob>,
    ) -> Result<AppendResult, StoreError> {
        self.submit(stream, expected, events, None, blobs).await
    }

    #[tracing::instrument(level = "trace", skip(self, events), fields(events = events.len()))]
    async fn restore(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<(NewEvent, Origin)>,
    ) -> Result<AppendResult, StoreError> {
        switchboard_store::chain::restore(self, events, |events, origins| {
            self.submit(stream, expected, events, Some(origins), Vec::new())
        })
        .await
    }
    async fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from: StreamFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_owned();
        self.inner
            .reads
            .run(move |r| r.read_stream(&stream, direction, from, limit))
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner
            .reads
            .run(move |r| r.read_all(after, limit))
            .await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let stream = stream.to_owned();
        self.inner
            .reads
            .run(move |r| r.stream_version(&stream))
            .await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        Ok(*self.inner.head.borrow())
    }

    fn subscribe_all(&self, after: Position) -> EventStream {
        // The subscription holds only the read pool, so it does not keep the writer alive.
        switchboard_store::subscription::catch_up(
            Arc::new(self.inner.reads.clone()),
            after,
            self.inner.head.clone(),
        )
    }

    fn max_append_bytes(&self) -> usize {
        self.inner.max_append_bytes
    }

    fn write_index(&self) -> Arc<dyn WriteIndex> {
        self.inner.index.clone()
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        // Files are never written any more, only read and, by a store open for writing, deleted.
        let legacy = if self.inner.requests.is_some() {
            FileBlobs::new(&self.inner.blob_dir)
        } else {
            FileBlobs::read_only(&self.inner.blob_dir)
        };
        Arc::new(blobs::SqliteBlobs {
            store: self.clone(),
            legacy,
        })
    }

    fn secrets(&self) -> Arc<dyn SecretStore> {
        self.inner.secrets.clone()
    }
}
