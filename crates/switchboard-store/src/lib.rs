//! The event store contract of Switchboard.
//!
//! Every backend (the embedded SQLite store and PostgreSQL today; KurrentDB is planned) implements
//! [`EventStore`]; the rest of the system sees nothing else. The store is deliberately ignorant of the domain: it keeps
//! opaque metadata and payload bytes, assigns stream versions and global positions, and chains every
//! event to its predecessor with SHA-256 so that tampering with history can be detected.
//!
//! # Layout
//! - [`blob`]: attachments and raw e-mails beside the log, by SHA-256, [`BlobStore`].
//! - [`types`]: positions, expected versions, events going in and coming out.
//! - [`error`]: [`StoreError`], and what a caller should do about each variant.
//! - [`chain`]: the canonical bytes of an event, the hash chain and [`chain::verify`].
//! - [`subscription`]: catch-up-then-live subscriptions built on `read_all` and a head notifier.
//! - [`secret`]: channel passwords and ingest secrets beside the log, sealed with a master key
//!   ([`SecretStore`], [`secret::Vault`]).
//! - [`index`]: the write side's index beside the log (idempotency keys, e-mail threads,
//!   snapshots), [`WriteIndex`].
//! - [`Lease`]: singleton tasks (e-mail delivery, IMAP import) on one node at a time.
//! - `conformance` (feature `conformance`): the behaviour every backend must show, as tests.

pub mod blob;
pub mod chain;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod index;
pub mod secret;
pub mod subscription;
pub mod types;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

pub use crate::blob::BlobStore;
pub use crate::error::StoreError;
pub use crate::index::WriteIndex;
pub use crate::secret::SecretStore;
pub use crate::subscription::EventStream;
pub use crate::types::{
    AppendResult, Direction, ExpectedVersion, NewEvent, Origin, Position, RecordedEvent, StreamFrom,
};

/// An append-only log of events, grouped into streams, in one global order.
///
/// Streams are versioned from 0; global positions start at 1 and are contiguous, in commit order.
/// [`Position::START`] (0) means "before the first event".
#[async_trait]
pub trait EventStore: Send + Sync + Debug {
    /// Appends `events` to `stream` if its current version matches `expected`.
    ///
    /// The call returns only once the events are durable. Appending event ids that are already
    /// stored, at the same place, returns the original result and writes nothing (see
    /// [`StoreError::IdempotencyConflict`] for the partial case).
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// [`append`], with the blobs its events reference (a message's original and attachments):
    /// when it returns `Ok`, blobs and events are durable. A backend that can commits them
    /// together, in one transaction; otherwise the blobs are stored first. A refused append may
    /// leave its blobs stored, unreferenced. A retry answered by the append it repeats (the
    /// same event ids) stores nothing: the first append stored its blobs.
    ///
    /// [`append`]: EventStore::append
    async fn append_with_blobs(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        blobs: Vec<blob::Blob>,
    ) -> Result<AppendResult, StoreError> {
        if !blobs.is_empty() {
            self.blobs().put_all(blobs).await?;
        }
        self.append(stream, expected, events).await
    }

    /// Appends events copied from another store's log (`switchboard import`) as [`append`] does,
    /// except that each keeps the commit time it had there, so that it keeps its position and
    /// hash too. An event that would land at another position or get another hash (this log is
    /// not the one the copy was made after, or the copy was changed) is refused with
    /// [`StoreError::OriginMismatch`], and nothing of the append is written.
    ///
    /// [`append`]: EventStore::append
    async fn restore(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<(NewEvent, Origin)>,
    ) -> Result<AppendResult, StoreError>;

    /// Reads up to `limit` events of one stream, starting at `from` (inclusive) in `direction`.
    /// A stream that does not exist reads as empty.
    async fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from: StreamFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `limit` events in global order with a position greater than `after`.
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The version of the last event of `stream`, or `None` when the stream does not exist.
    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError>;

    /// The position of the last committed event ([`Position::START`] for an empty store).
    async fn head(&self) -> Result<Position, StoreError>;

    /// Every event after `after`: first those already stored, then live ones as they commit, with
    /// no gap and no duplicate, in commit order. The stream ends when the store shuts down.
    fn subscribe_all(&self, after: Position) -> EventStream;

    /// The largest append this store accepts, in bytes of metadata and payload together.
    fn max_append_bytes(&self) -> usize;

    /// The write side's index kept beside this log (see [`index`]).
    fn write_index(&self) -> Arc<dyn WriteIndex>;

    /// The blobs kept beside this log (see [`blob`]).
    fn blobs(&self) -> Arc<dyn BlobStore>;

    /// The sealed secrets kept beside this log (see [`secret`]).
    fn secrets(&self) -> Arc<dyn SecretStore>;

    /// A lease on the singleton task `name` (a worker that must run on one node at a time, such
    /// as e-mail delivery): [`Lease::held`] says, and tells when it changes, whether this node
    /// holds it. A backend only one process can write (the embedded store) holds every lease at
    /// once; a shared one (PostgreSQL) grants each to one node at a time, and to another when
    /// that node goes away. Dropping the lease gives it up.
    fn lease(&self, name: &str) -> Lease {
        let _ = name;
        Lease::always()
    }
}

/// See [`EventStore::lease`].
#[derive(Debug)]
pub struct Lease {
    /// Whether this node holds the lease now; changes are announced.
    pub held: tokio::sync::watch::Receiver<bool>,
    /// What keeps it (a task holding a connection), stopped when the lease is dropped.
    keeper: Option<tokio::task::JoinHandle<()>>,
}

impl Lease {
    /// A lease held from the start, for good.
    pub fn always() -> Lease {
        let (tx, held) = tokio::sync::watch::channel(true);
        // A receiver whose sender is gone still reads the last value.
        drop(tx);
        Lease { held, keeper: None }
    }

    /// A lease kept by `keeper`, which sends whether it is held on the other end of `held`.
    pub fn kept_by(
        held: tokio::sync::watch::Receiver<bool>,
        keeper: tokio::task::JoinHandle<()>,
    ) -> Lease {
        Lease {
            held,
            keeper: Some(keeper),
        }
    }

    /// Whether this node holds it now.
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
    }
}
