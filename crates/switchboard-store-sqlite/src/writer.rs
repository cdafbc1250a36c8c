//! The writer thread: the only code that writes events, and where group commit happens.
//!
//! Protocol: callers push an [`AppendRequest`] into a bounded queue and wait on its reply channel.
//! The writer blocks for the first request, then takes every request already queued (up to
//! `max_batch_events`) and decides and inserts them all in one `BEGIN IMMEDIATE` transaction, each
//! inside its own savepoint (or, for one event on an existing stream, as one atomic statement) so
//! that one rejected append does not disturb the others. After the
//! single `COMMIT` (one fsync of the WAL) it announces the new head to subscribers and then
//! answers every caller, so a caller that reads the head after its append sees it. If the commit fails, every append of the batch is answered with the error
//! and the in-memory chain state is restored, so nothing acknowledged is ever missing.
//!
//! Blob deletions (a person's erasure) queue here too, so that they take their place among the
//! appends: each runs in the batch transaction, in its own savepoint, after the requests queued
//! before it and before those queued after it (see `crate::blobs::delete`).
//!
//! Checkpoints (copying the log into the database file) run on a checkpointer thread of their own,
//! nudged after commits, so no commit waits for one.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};
use switchboard_sqlite::Checkpointer;
use switchboard_store::blob::Blob;
use switchboard_store::chain::{Canonical, GENESIS};
use switchboard_store::{AppendResult, ExpectedVersion, NewEvent, Origin, Position, StoreError};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::tail::{Appended, Tail};
use crate::{CommitClock, SqliteOptions};

/// How many appends may wait for the writer before callers are slowed down.
const QUEUE: usize = 4096;

/// The longest the writer waits to fill a group commit under concurrent load. A commit costs
/// an fsync of a millisecond or more: callers whose work between two appends varies (an SMTP
/// session parsing and reading before its next one) arrive spread out, and waiting up to a
/// millisecond gathers them into one commit (measured with `switchboard-bench email`: about 13%
/// more messages a second than with 200 µs, and a lower p99).
const FILL_WAIT: Duration = Duration::from_micros(1000);

/// The blob bytes past which a batch takes no more appends (one larger append is committed
/// alone), so that a burst of large mail does not hold every other append for long.
const MAX_BATCH_BLOB_BYTES: usize = 32 * 1024 * 1024;

/// The least time between two checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// What a caller waits on the writer for.
#[derive(Debug)]
pub(crate) enum Request {
    Append(AppendRequest),
    DeleteBlobs(DeleteRequest),
}

/// One caller's append, waiting for the writer.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub(crate) stream: String,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<NewEvent>,
    /// For a restore: where each event stood in its original log (commit time and hash kept).
    pub(crate) origins: Option<Vec<Origin>>,
    /// Blobs to store with the events, in the same savepoint (see `crate::blobs`). A request
    /// without events only stores its blobs; its answer names the head.
    pub(crate) blobs: Vec<Blob>,
    pub(crate) reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

/// Blobs to delete (see `crate::blobs::delete`), waiting for the writer; answered with the
/// names that were stored, once the deletion is committed.
#[derive(Debug)]
pub(crate) struct DeleteRequest {
    /// Blob names, each once.
    pub(crate) names: Vec<String>,
    pub(crate) reply: oneshot::Sender<Result<Vec<String>, StoreError>>,
}

/// What the writer did for a request.
enum Done {
    Appended(AppendResult),
    Deleted(Vec<String>),
}

impl Request {
    fn events(&self) -> usize {
        match self {
            Request::Append(request) => request.events.len(),
            Request::DeleteBlobs(_) => 0,
        }
    }

    /// The bytes of the blobs it carries.
    fn blob_bytes(&self) -> usize {
        match self {
            Request::Append(request) => request.blobs.iter().map(|b| b.bytes().len()).sum(),
            Request::DeleteBlobs(_) => 0,
        }
    }

    /// Answers the caller. A caller that stopped waiting is not an error: what it asked for is
    /// durable regardless.
    fn answer(self, outcome: Result<Done, StoreError>) {
        let mismatch = || StoreError::backend(std::io::Error::other("the writer mixed up answers"));
        match self {
            Request::Append(request) => {
                let _ = request.reply.send(outcome.and_then(|done| match done {
                    Done::Appended(result) => Ok(result),
                    Done::Deleted(_) => Err(mismatch()),
                }));
            }
            Request::DeleteBlobs(request) => {
                let _ = request.reply.send(outcome.and_then(|done| match done {
                    Done::Deleted(names) => Ok(names),
                    Done::Appended(_) => Err(mismatch()),
                }));
            }
        }
    }
}

/// The end of the chain: the last committed position and its hash.
#[derive(Clone, Copy)]
struct Tip {
    position: Position,
    hash: [u8; 32],
}

pub(crate) struct Writer {
    conn: Connection,
    clock: CommitClock,
    max_batch_events: usize,
    tip: Tip,
    /// Events up to here are in the stream index.
    indexed_upto: u64,
    /// Index once this many events are past `indexed_upto`.
    index_lag: u64,
    /// Where the events past `indexed_upto` are, for readers (see [`crate::tail`]).
    tail: Arc<Tail>,
    head: watch::Sender<Position>,
}

/// What the writer hands back to the store handle.
pub(crate) struct Spawned {
    pub(crate) requests: SyncSender<Request>,
    pub(crate) head: watch::Receiver<Position>,
    pub(crate) thread: JoinHandle<()>,
}

impl Writer {
    pub(crate) fn spawn(
        conn: Connection,
        path: &Path,
        options: &SqliteOptions,
        tail: Arc<Tail>,
    ) -> rusqlite::Result<Spawned> {
        let tip = conn
            .query_row(
                "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1",
                [],
                |row| {
                    Ok(Tip {
                        position: Position(row.get::<_, i64>(0)? as u64),
                        hash: row.get(1)?,
                    })
                },
            )
            .optional()?
            .unwrap_or(Tip {
                position: Position::START,
                hash: GENESIS,
            });
        let indexed_upto: i64 = conn.query_row(
            "SELECT indexed_upto FROM index_state WHERE id = 1",
            [],
            |row| row.get(0),
        )?;
        let (head, head_rx) = watch::channel(tip.position);
        let (requests, queue) = sync_channel(QUEUE);
        let mut writer = Writer {
            conn,
            clock: options.clock.clone(),
            max_batch_events: options.max_batch_events.max(1),
            tip,
            indexed_upto: indexed_upto as u64,
            index_lag: options.index_lag.max(1),
            tail,
            head,
        };
        // What a crash left unindexed is indexed now, so the map of the tail starts at the head
        // and readers scan nothing. Should that fail, readers scan it until the next indexing.
        writer.index_tail();
        writer.tail.start(writer.tip.position.0);
        let io = |e: std::io::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(e));
        let checkpointer =
            Checkpointer::spawn(&writer.conn, path.to_owned(), "event", CHECKPOINT_EVERY)
                .map_err(io)?;
        let thread = std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || writer.run(queue, checkpointer))
            .map_err(io)?;
        Ok(Spawned {
            requests,
            head: head_rx,
            thread,
        })
    }

    /// Serves batches until every sender is gone.
    fn run(mut self, queue: Receiver<Request>, checkpointer: Checkpointer) {
        let mut last_batch = 1;
        while let Ok(first) = queue.recv() {
            let mut events = first.events();
            let mut bytes = first.blob_bytes();
            let mut batch = vec![first];
            let room = |events: usize, bytes: usize| {
                events < self.max_batch_events && bytes < MAX_BATCH_BLOB_BYTES
            };
            while room(events, bytes) {
                let Ok(next) = queue.try_recv() else { break };
                events += next.events();
                bytes += next.blob_bytes();
                batch.push(next);
            }
            // Under concurrent load, the callers answered by the last commit are about to send
            // their next appends: waiting a moment for them fills the commit (one fsync for many)
            // instead of committing a batch smaller than the last. A lone caller never waits.
            if last_batch > 1 {
                let deadline = Instant::now() + FILL_WAIT;
                while batch.len() < last_batch && room(events, bytes) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let Ok(next) = queue.recv_timeout(left) else {
                        break;
                    };
                    events += next.events();
                    bytes += next.blob_bytes();
                    batch.push(next);
                }
            }
            last_batch = batch.len();
            self.commit_batch(batch);
            if self.tip.position.0.saturating_sub(self.indexed_upto) >= self.index_lag {
                self.index_tail();
            }
            checkpointer.nudge();
        }
        self.index_tail();
        checkpointer.stop();
        tracing::debug!("event writer stopped");
    }

    /// Adds every event past `indexed_upto` to the stream index, in one transaction. On failure
    /// the tail simply stays unindexed (reads still find it) and the next attempt retries.
    #[tracing::instrument(level = "debug", skip_all, fields(from = self.indexed_upto, to = self.tip.position.0))]
    fn index_tail(&mut self) {
        let upto = self.tip.position.0;
        if upto <= self.indexed_upto {
            return;
        }
        let result = self.conn.transaction().and_then(|tx| {
            tx.execute(
                "INSERT INTO stream_index (stream_id, stream_version, position) \
                 SELECT stream_id, stream_version, position FROM events \
                 WHERE position > ?1 AND position <= ?2 ORDER BY stream_id, stream_version",
                params![self.indexed_upto as i64, upto as i64],
            )?;
            tx.execute(
                "UPDATE index_state SET indexed_upto = ?1 WHERE id = 1",
                params![upto as i64],
            )?;
            tx.commit()
        });
        match result {
            Ok(()) => {
                self.indexed_upto = upto;
                self.tail.indexed(upto);
            }
            Err(e) => {
                tracing::error!(error = %e, "indexing streams failed; reads scan a longer tail")
            }
        }
    }

    #[tracing::instrument(level = "trace", skip_all, fields(appends = batch.len()))]
    fn commit_batch(&mut self, batch: Vec<Request>) {
        let before = self.tip;
        let recorded_at = (self.clock)().timestamp_micros();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut appended = Vec::with_capacity(batch.len());
        let committed = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(mut tx) => {
                let mut poisoned = None;
                for request in &batch {
                    let done = match request {
                        Request::Append(request) => {
                            append_one(&mut tx, &mut self.tip, request, recorded_at).map(
                                |(result, written)| {
                                    appended.extend(written);
                                    Done::Appended(result)
                                },
                            )
                        }
                        Request::DeleteBlobs(request) => {
                            delete_blobs(&mut tx, &request.names).map(Done::Deleted)
                        }
                    };
                    match done {
                        Ok(done) => outcomes.push(Ok(done)),
                        Err(Failure::Rejected(e)) => outcomes.push(Err(e)),
                        // `append_one` resolves this itself; it never reaches here.
                        Err(Failure::KnownId) => outcomes.push(Err(StoreError::backend(
                            std::io::Error::other("unresolved duplicate event id"),
                        ))),
                        Err(Failure::Poisoned(e) | Failure::Fatal(e)) => {
                            poisoned = Some(e.to_string());
                            break;
                        }
                    }
                }
                match poisoned {
                    // Dropping the transaction rolls the whole batch back.
                    Some(reason) => Err(reason),
                    None => {
                        // Before the commit: a reader whose snapshot holds these events must
                        // find them in the map (see `crate::tail`).
                        self.tail.add(&appended);
                        tx.commit().map_err(|e| e.to_string())
                    }
                }
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = committed {
            tracing::error!(error = %reason, "event batch rolled back");
            // Before these positions are used again, perhaps by other streams.
            self.tail.forget_after(before.position.0);
            self.tip = before;
            for request in batch {
                request.answer(Err(StoreError::backend(std::io::Error::other(format!(
                    "commit failed: {reason}"
                )))));
            }
            return;
        }
        // The head moves before anyone is answered, so a caller that reads the head after its
        // append returns always finds its own events included.
        if self.tip.position != before.position {
            self.head.send_replace(self.tip.position);
        }
        for (request, outcome) in batch.into_iter().zip(outcomes) {
            request.answer(outcome);
        }
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

/// Decides and inserts one append inside the batch transaction; on any error its inserts are
/// rolled back and `tip` is left as it was. Returns, with its answer, the events it wrote
/// (`None` for a retry answered by what it wrote before).
fn append_one(
    tx: &mut Transaction<'_>,
    tip: &mut Tip,
    request: &AppendRequest,
    recorded_at: i64,
) -> Result<(AppendResult, Option<Appended>), Failure> {
    if request.events.is_empty() {
        crate::blobs::insert(tx, &request.blobs).map_err(|e| Failure::Fatal(backend(e)))?;
        let head = AppendResult {
            stream_version: 0,
            first_position: tip.position,
            last_position: tip.position,
        };
        return Ok((head, None));
    }
    let stream = request.stream.as_str();
    let known = stream_row(tx, stream)?;
    let current = known.map(|(_, version)| version);
    if !request.expected.matches(current) {
        // Perhaps the retry of an append that did land: then it gets its original answer.
        if let Some(found) = find_event(tx, request.events[0].event_id)? {
            return Ok((replay(tx, request, found)?, None));
        }
        return Err(Failure::Rejected(StoreError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected: request.expected,
            actual: current,
        }));
    }
    let first_version = current.map_or(0, |v| v + 1);
    let target = Target {
        stream,
        known_id: known.map(|(id, _)| id),
        first_version,
        recorded_at,
    };
    // A single event on an existing stream is one INSERT, atomic on its own, then one UPDATE:
    // no savepoint is needed to undo a rejected append. Anything bigger gets one, and so do
    // blobs, which go first and go away with the events if they are refused.
    let origins = request.origins.as_deref();
    let written = if request.events.len() == 1 && known.is_some() && request.blobs.is_empty() {
        write(tx, &target, &request.events, origins, *tip)
    } else {
        let savepoint = tx.savepoint().map_err(backend)?;
        crate::blobs::insert(&savepoint, &request.blobs).map_err(|e| Failure::Fatal(backend(e)))?;
        match write(&savepoint, &target, &request.events, origins, *tip) {
            Ok(next) => savepoint
                .commit()
                .map(|()| next)
                .map_err(|e| Failure::Fatal(backend(e))),
            // Rolling the savepoint back (on drop) undoes the partial write.
            Err(Failure::Poisoned(e)) => Err(Failure::Rejected(e)),
            Err(other) => Err(other),
        }
    };
    let (next, stream_id) = match written {
        Ok(written) => written,
        // The first event is stored already: a retry, answered by what it did the first time
        // (ids are looked up only here, off the common path).
        Err(Failure::KnownId) => {
            let found = find_event(tx, request.events[0].event_id)?
                .ok_or_else(|| backend(rusqlite::Error::QueryReturnedNoRows))?;
            return Ok((replay(tx, request, found)?, None));
        }
        Err(other) => return Err(other),
    };
    let first_position = tip.position.next();
    *tip = next;
    let count = request.events.len() as u64;
    Ok((
        AppendResult {
            stream_version: first_version + count - 1,
            first_position,
            last_position: next.position,
        },
        Some(Appended {
            stream_id,
            first_version,
            first_position: first_position.0,
            count,
        }),
    ))
}

/// Deletes blobs inside the batch transaction, in a savepoint: a deletion refused (a part that
/// does not decode, see `crate::blobs::delete`) leaves nothing of it, and the batch goes on.
/// Refused too if this connection would leave the deleted bytes in free pages.
fn delete_blobs(tx: &mut Transaction<'_>, names: &[String]) -> Result<Vec<String>, Failure> {
    if !crate::blobs::secure_delete(tx).map_err(|e| Failure::Fatal(backend(e)))? {
        return Err(Failure::Rejected(StoreError::backend(
            std::io::Error::other(
                "the event writer's connection runs without secure_delete: deleted blobs would stay in the file",
            ),
        )));
    }
    let savepoint = tx.savepoint().map_err(|e| Failure::Fatal(backend(e)))?;
    // Dropping the savepoint on an error rolls it back.
    let deleted = crate::blobs::delete(&savepoint, names)?;
    savepoint
        .commit()
        .map(|()| deleted)
        .map_err(|e| Failure::Fatal(backend(e)))
}

/// Why an append failed, and whether the batch transaction is still sound.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing of this append was written: answer its caller, go on with the batch.
    Rejected(StoreError),
    /// Part of this append was written and cannot be undone alone: the whole batch must roll back.
    Poisoned(StoreError),
    /// The first event's id is stored already and nothing was written: see whether this is a
    /// retry.
    KnownId,
    /// SQLite failed for a reason other than a constraint (I/O, disk full, out of memory). It may
    /// have rolled the whole transaction back already, so nothing after it can be trusted: the
    /// whole batch is rolled back and every caller told.
    Fatal(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            e @ StoreError::Backend(_) => Failure::Fatal(e),
            e => Failure::Rejected(e),
        }
    }
}

/// Where an append goes.
struct Target<'a> {
    stream: &'a str,
    /// The stream's id, `None` for a new stream.
    known_id: Option<i64>,
    first_version: u64,
    recorded_at: i64,
}

/// Inserts the events (and creates or moves the stream row), chaining from `tip`; returns the new
/// tip and the stream's id. Restored events (`origins`) keep their commit times and must get their original hashes.
/// Any failure after the first write is `Poisoned`.
fn write(
    conn: &Connection,
    target: &Target<'_>,
    events: &[NewEvent],
    origins: Option<&[Origin]>,
    tip: Tip,
) -> Result<(Tip, i64), Failure> {
    let stream = target.stream;
    let last_version = target.first_version + events.len() as u64 - 1;
    let mut wrote = false;
    let failed = |wrote: bool, e: StoreError| {
        if wrote {
            Failure::Poisoned(e)
        } else {
            Failure::Rejected(e)
        }
    };
    let stream_id = match target.known_id {
        Some(id) => id,
        None => {
            conn.prepare_cached("INSERT INTO streams (name, version) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![stream, last_version as i64]))
                .map_err(|e| Failure::Fatal(backend(e)))?;
            wrote = true;
            conn.last_insert_rowid()
        }
    };
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (position, event_id, stream_id, stream, stream_version, \
             event_type, schema_version, recorded_at, metadata, payload, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(|e| Failure::Fatal(backend(e)))?;
    let mut next = tip;
    for (i, event) in events.iter().enumerate() {
        let position = next.position.next();
        let version = target.first_version + i as u64;
        let origin = origins.and_then(|o| o.get(i));
        let recorded_at = origin.map_or(target.recorded_at, |o| o.recorded_at.timestamp_micros());
        let hash = Canonical {
            position,
            stream,
            stream_version: version,
            event_id: event.event_id.as_bytes(),
            event_type: &event.event_type,
            schema_version: event.schema_version,
            recorded_at_micros: recorded_at,
            metadata: &event.metadata,
            payload: &event.payload,
        }
        .hash(&next.hash);
        if let Some(origin) = origin {
            origin
                .check(event.event_id, position, &hash)
                .map_err(|e| failed(wrote, e))?;
        }
        let inserted = insert.execute(params![
            position.0 as i64,
            event.event_id.as_bytes(),
            stream_id,
            stream,
            version as i64,
            event.event_type,
            i64::from(event.schema_version),
            recorded_at,
            event.metadata,
            event.payload,
            hash,
        ]);
        match inserted {
            Ok(_) => wrote = true,
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == ErrorCode::ConstraintViolation && i == 0 =>
            {
                return Err(Failure::KnownId);
            }
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == ErrorCode::ConstraintViolation =>
            {
                // The first id was new, so a later one repeats an earlier append.
                let conflict = StoreError::IdempotencyConflict {
                    stream: stream.to_owned(),
                    event_id: event.event_id,
                };
                return Err(failed(wrote, conflict));
            }
            Err(e) => return Err(Failure::Fatal(backend(e))),
        }
        next = Tip { position, hash };
    }
    if target.known_id.is_some() {
        conn.prepare_cached("UPDATE streams SET version = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![stream_id, last_version as i64]))
            .map_err(|e| Failure::Fatal(backend(e)))?;
    }
    Ok((next, stream_id))
}

/// The append's first event is stored already: it is a retry if every event sits, in order, where
/// this append would have put it; otherwise it conflicts.
fn replay(
    tx: &Transaction<'_>,
    request: &AppendRequest,
    (stored_stream, first_version, first_position): (String, u64, Position),
) -> Result<AppendResult, StoreError> {
    let stream = request.stream.as_str();
    let conflict = |event_id| StoreError::IdempotencyConflict {
        stream: stream.to_owned(),
        event_id,
    };
    if stored_stream != stream {
        return Err(conflict(request.events[0].event_id));
    }
    let mut last_position = first_position;
    for (i, event) in request.events.iter().enumerate().skip(1) {
        match find_event(tx, event.event_id)? {
            Some((s, v, p)) if s == stream && v == first_version + i as u64 => last_position = p,
            _ => return Err(conflict(event.event_id)),
        }
    }
    if !request.expected.admits_replay_at(first_version) {
        return Err(StoreError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected: request.expected,
            actual: stream_row(tx, stream)?.map(|(_, version)| version),
        });
    }
    Ok(AppendResult {
        stream_version: first_version + request.events.len() as u64 - 1,
        first_position,
        last_position,
    })
}

fn find_event(
    tx: &Transaction<'_>,
    id: Uuid,
) -> Result<Option<(String, u64, Position)>, StoreError> {
    let mut stmt = tx
        .prepare_cached("SELECT stream, stream_version, position FROM events WHERE event_id = ?1")
        .map_err(backend)?;
    stmt.query_row([id.as_bytes()], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)? as u64,
            Position(row.get::<_, i64>(2)? as u64),
        ))
    })
    .optional()
    .map_err(backend)
}

/// The stream's id and last version, if it exists.
fn stream_row(tx: &Transaction<'_>, stream: &str) -> Result<Option<(i64, u64)>, StoreError> {
    let mut stmt = tx
        .prepare_cached("SELECT id, version FROM streams WHERE name = ?1")
        .map_err(backend)?;
    stmt.query_row([stream], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)? as u64))
    })
    .optional()
    .map_err(backend)
}
