//! The writer task: the only code of a node that writes events, and where group commit happens.
//!
//! Protocol: callers push an [`AppendRequest`] into a bounded queue and wait on its reply channel.
//! The writer waits for the first request, takes every request already queued (up to
//! `max_batch_events` events and [`MAX_BATCH_BYTES`]), and decides and inserts them all in one
//! transaction:
//!
//! 1. `SELECT ... FROM head FOR UPDATE` locks the head row. Writers on every node queue here, so
//!    from now on this transaction alone assigns positions, starting at `head + 1` and chaining to
//!    the head's hash; it also reads the batch's commit timestamp from the database clock, one
//!    clock for all nodes.
//! 2. Each append runs inside its own `SAVEPOINT`: look up its event ids and its stream's version,
//!    decide exactly as the embedded store does, insert. A rejected or failed append is rolled
//!    back to its savepoint and disturbs nothing else, and the transaction stays healthy (an
//!    aborted transaction would turn `COMMIT` silently into a rollback).
//! 3. One statement moves the head row and calls `pg_notify`; PostgreSQL delivers the notification
//!    to every listening node only when the transaction commits.
//! 4. After `COMMIT` the writer answers every caller and only then announces the new head to this
//!    node's subscribers. If anything outside the savepoints fails, every append of the batch is
//!    answered with the error; nothing is acknowledged that might not have committed.
//!
//! Another node's writer blocked on the head row sees the new row version once this commit is
//! visible (`READ COMMITTED` re-reads a locked row), so positions stay dense and in commit order.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use switchboard_store::chain::Canonical;
use switchboard_store::{AppendResult, ExpectedVersion, NewEvent, Origin, Position, StoreError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Statement};
use uuid::Uuid;

use crate::reader::{head_position, to_db};
use crate::schema::Sql;

/// How many appends may wait for the writer before callers are slowed down.
const QUEUE: usize = 4096;

/// The most bytes of metadata and payload one batch gathers, so that a burst of large appends does
/// not become one huge transaction.
pub(crate) const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// One caller's append, waiting for the writer.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub(crate) stream: String,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<NewEvent>,
    /// For a restore: where each event stood in its original log (commit time and hash kept).
    pub(crate) origins: Option<Vec<Origin>>,
    pub(crate) reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

/// The end of the chain: the last position and its hash.
#[derive(Clone, Copy, Debug)]
struct Tip {
    position: Position,
    hash: [u8; 32],
}

/// Why a whole batch failed. Each caller gets its own [`StoreError`] made from it.
#[derive(Clone, Debug)]
enum Failure {
    Closed,
    Backend(Arc<dyn std::error::Error + Send + Sync>),
    Corrupt(String),
}

impl Failure {
    fn to_error(&self) -> StoreError {
        match self {
            Failure::Closed => StoreError::Closed,
            Failure::Backend(e) => StoreError::backend(e.clone()),
            Failure::Corrupt(reason) => StoreError::Corrupt {
                position: Position::START,
                reason: reason.clone(),
            },
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Backend(Arc::new(e))
    }
}

pub(crate) struct Writer {
    pool: Pool,
    sql: Arc<Sql>,
    max_batch_events: usize,
    head: watch::Sender<Position>,
}

/// The statements one batch uses, prepared (or taken from the connection's cache) once per batch.
struct Statements {
    lock_head: Statement,
    now: Statement,
    move_head: Statement,
    find_events: Statement,
    stream_version: Statement,
    insert: Statement,
}

impl Writer {
    /// Starts the writer task; it stops once every sender of the returned queue is gone and every
    /// queued append has been answered.
    pub(crate) fn spawn(
        pool: Pool,
        sql: Arc<Sql>,
        max_batch_events: usize,
        head: watch::Sender<Position>,
    ) -> mpsc::Sender<AppendRequest> {
        let (requests, queue) = mpsc::channel(QUEUE);
        let writer = Writer {
            pool,
            sql,
            max_batch_events: max_batch_events.max(1),
            head,
        };
        tokio::spawn(writer.run(queue));
        requests
    }

    async fn run(self, mut queue: mpsc::Receiver<AppendRequest>) {
        while let Some(first) = queue.recv().await {
            let mut events = first.events.len();
            let mut bytes = append_bytes(&first);
            let mut batch = vec![first];
            while events < self.max_batch_events && bytes < MAX_BATCH_BYTES {
                let Ok(next) = queue.try_recv() else { break };
                events += next.events.len();
                bytes += append_bytes(&next);
                batch.push(next);
            }
            self.commit_batch(batch).await;
        }
        tracing::debug!(schema = %self.sql.schema, "event writer stopped");
    }

    #[tracing::instrument(level = "trace", skip_all, fields(appends = batch.len()))]
    async fn commit_batch(&self, batch: Vec<AppendRequest>) {
        match self.try_commit(&batch).await {
            Ok((outcomes, tip)) => {
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    // A caller that stopped waiting is not an error: its events are durable.
                    let _ = request.reply.send(outcome);
                }
                if let Some(tip) = tip {
                    advance(&self.head, tip);
                }
            }
            Err(failure) => {
                tracing::error!(error = ?failure, "event batch failed");
                for request in batch {
                    let _ = request.reply.send(Err(failure.to_error()));
                }
            }
        }
    }

    /// Runs one batch transaction. Returns each append's outcome and, if anything was written,
    /// the new head position.
    async fn try_commit(
        &self,
        batch: &[AppendRequest],
    ) -> Result<(Vec<Result<AppendResult, StoreError>>, Option<Position>), Failure> {
        let mut client = self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Closed => Failure::Closed,
            e => Failure::Backend(Arc::new(e)),
        })?;
        // Read committed whatever the server's default: a writer that waited for the head row
        // must then see the row, and the events, that the previous holder committed.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await?;
        let statements = Statements {
            lock_head: tx.prepare_cached(&self.sql.lock_head).await?,
            now: tx.prepare_cached(&self.sql.now).await?,
            move_head: tx.prepare_cached(&self.sql.move_head).await?,
            find_events: tx.prepare_cached(&self.sql.find_events).await?,
            stream_version: tx.prepare_cached(&self.sql.stream_version).await?,
            insert: tx.prepare_cached(&self.sql.insert).await?,
        };
        // Pipelined, and answered in order: the clock is read only once the lock is held, so
        // commit times follow positions (as far as the database's clock does).
        let (head, now) = tokio::join!(
            tx.query_one(&statements.lock_head, &[]),
            tx.query_one(&statements.now, &[]),
        );
        let head = head?;
        let position: i64 = head.try_get(0)?;
        let hash: Vec<u8> = head.try_get(1)?;
        let recorded_at: DateTime<Utc> = now?.try_get(0)?;
        let start = Tip {
            position: head_position(position).map_err(|e| Failure::Corrupt(e.to_string()))?,
            hash: <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| {
                Failure::Corrupt(format!("the head hash is {} bytes, not 32", hash.len()))
            })?,
        };
        let mut tip = start;
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in batch {
            outcomes.push(append_one(&tx, &statements, &mut tip, request, recorded_at).await?);
        }
        if tip.position == start.position {
            // Nothing written: release the head row without touching it.
            tx.rollback().await?;
            return Ok((outcomes, None));
        }
        let moved = tx
            .query(
                &statements.move_head,
                &[
                    &to_db(tip.position.0),
                    &tip.hash.as_slice(),
                    &self.sql.channel,
                ],
            )
            .await?;
        if moved.len() != 1 {
            return Err(Failure::Corrupt("the head row is missing".into()));
        }
        tx.commit().await?;
        Ok((outcomes, Some(tip.position)))
    }
}

/// Moves a node's announced head forwards (never backwards: the writer and the listener both feed
/// it, in either order).
pub(crate) fn advance(head: &watch::Sender<Position>, to: Position) {
    head.send_if_modified(|current| {
        if to > *current {
            *current = to;
            true
        } else {
            false
        }
    });
}

fn append_bytes(request: &AppendRequest) -> usize {
    request.events.iter().map(NewEvent::size).sum()
}

/// Decides and inserts one append inside its own savepoint. The outer `Err` means the
/// transaction itself failed and the whole batch must fail; the inner result is this append's.
async fn append_one(
    tx: &Transaction<'_>,
    statements: &Statements,
    tip: &mut Tip,
    request: &AppendRequest,
    recorded_at: DateTime<Utc>,
) -> Result<Result<AppendResult, StoreError>, Failure> {
    let ids: Vec<Uuid> = request.events.iter().map(|e| e.event_id).collect();
    let stream = request.stream.as_str();
    let find_params: [&(dyn ToSql + Sync); 1] = [&ids];
    let version_params: [&(dyn ToSql + Sync); 1] = [&stream];
    // Pipelined: the three statements go out together and are answered in order.
    let (savepoint, found, current) = tokio::join!(
        tx.batch_execute("SAVEPOINT append"),
        tx.query(&statements.find_events, &find_params),
        tx.query_one(&statements.stream_version, &version_params),
    );
    savepoint?;
    let decided = match (found, current) {
        (Ok(found), Ok(current)) => decide(request, &ids, &found, &current),
        (Err(e), _) | (_, Err(e)) => Err(StoreError::backend(e)),
    };
    let outcome = match decided {
        Ok(Decision::Replay(result)) => Ok(result),
        Ok(Decision::Insert { first_version }) => {
            insert(tx, statements, tip, request, first_version, recorded_at).await
        }
        Err(e) => Err(Rejected::Store(e)),
    };
    match outcome {
        Ok(result) => {
            tx.batch_execute("RELEASE SAVEPOINT append").await?;
            Ok(Ok(result))
        }
        Err(rejected) => {
            // Undo whatever this append did; if even that fails, the transaction is unusable.
            tx.batch_execute("ROLLBACK TO SAVEPOINT append; RELEASE SAVEPOINT append")
                .await?;
            Ok(Err(match rejected {
                Rejected::Store(e) => e,
                Rejected::StreamMoved => {
                    let row = tx.query_one(&statements.stream_version, &[&stream]).await?;
                    let actual: Option<i64> = row.try_get(0)?;
                    StoreError::WrongExpectedVersion {
                        stream: stream.to_owned(),
                        expected: request.expected,
                        actual: actual.and_then(|v| u64::try_from(v).ok()),
                    }
                }
            }))
        }
    }
}

/// Why an insert was refused.
enum Rejected {
    /// The answer for the caller.
    Store(StoreError),
    /// Another writer took one of the stream versions: the caller gets `WrongExpectedVersion`
    /// with the version read again once the savepoint is rolled back.
    StreamMoved,
}

/// What to do with an append, decided from what is stored.
enum Decision {
    /// It repeats an earlier append exactly: answer with that append's result.
    Replay(AppendResult),
    /// It is new and its expectation holds: insert from this stream version.
    Insert { first_version: u64 },
}

/// Where a stored event is: stream, version, position.
type Stored = (String, u64, Position);

/// The same rules as the embedded store's writer: if the first id is stored, the append is a
/// retry when every event sits where this append would have put it, and a conflict otherwise;
/// if it is new, the expectation must hold and no other id may be stored.
fn decide(
    request: &AppendRequest,
    ids: &[Uuid],
    found: &[tokio_postgres::Row],
    current: &tokio_postgres::Row,
) -> Result<Decision, StoreError> {
    let stream = request.stream.as_str();
    let current: Option<i64> = current.try_get(0).map_err(StoreError::backend)?;
    let current = current
        .map(|v| {
            u64::try_from(v).map_err(|_| StoreError::Corrupt {
                position: Position::START,
                reason: format!("stream {stream} has the negative version {v}"),
            })
        })
        .transpose()?;
    let mut stored: HashMap<Uuid, Stored> = HashMap::with_capacity(found.len());
    for row in found {
        let id: Uuid = row.try_get(0).map_err(StoreError::backend)?;
        let version: i64 = row.try_get(2).map_err(StoreError::backend)?;
        let position: i64 = row.try_get(3).map_err(StoreError::backend)?;
        let (Ok(version), Ok(position)) = (u64::try_from(version), u64::try_from(position)) else {
            return Err(StoreError::Corrupt {
                position: Position::START,
                reason: format!("event {id} has a negative version or position"),
            });
        };
        stored.insert(
            id,
            (
                row.try_get(1).map_err(StoreError::backend)?,
                version,
                Position(position),
            ),
        );
    }
    let conflict = |event_id| StoreError::IdempotencyConflict {
        stream: stream.to_owned(),
        event_id,
    };
    if let Some((stored_stream, first_version, first_position)) = stored.get(&ids[0]) {
        if stored_stream != stream {
            return Err(conflict(ids[0]));
        }
        let mut last_position = *first_position;
        for (i, id) in ids.iter().enumerate().skip(1) {
            match stored.get(id) {
                Some((s, v, p)) if s == stream && *v == first_version + i as u64 => {
                    last_position = *p;
                }
                _ => return Err(conflict(*id)),
            }
        }
        if !request.expected.admits_replay_at(*first_version) {
            return Err(StoreError::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected: request.expected,
                actual: current,
            });
        }
        return Ok(Decision::Replay(AppendResult {
            stream_version: first_version + ids.len() as u64 - 1,
            first_position: *first_position,
            last_position,
        }));
    }
    if !request.expected.matches(current) {
        return Err(StoreError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected: request.expected,
            actual: current,
        });
    }
    // The first id is new, so a stored later one means this partly repeats an earlier append.
    if let Some(id) = ids.iter().find(|id| stored.contains_key(id)) {
        return Err(conflict(*id));
    }
    Ok(Decision::Insert {
        first_version: current.map_or(0, |v| v + 1),
    })
}

/// Chains and inserts the events of one append in one statement; moves `tip` only on success.
async fn insert(
    tx: &Transaction<'_>,
    statements: &Statements,
    tip: &mut Tip,
    request: &AppendRequest,
    first_version: u64,
    recorded_at: DateTime<Utc>,
) -> Result<AppendResult, Rejected> {
    let stream = request.stream.as_str();
    let n = request.events.len();
    let mut next = *tip;
    let mut recorded = Vec::with_capacity(n);
    let mut positions = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut schema_versions = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    for (i, event) in request.events.iter().enumerate() {
        let position = next.position.next();
        let version = first_version + i as u64;
        let origin = request.origins.as_ref().and_then(|o| o.get(i));
        let recorded_at = origin.map_or(recorded_at, |o| o.recorded_at);
        let hash = Canonical {
            position,
            stream,
            stream_version: version,
            event_id: event.event_id.as_bytes(),
            event_type: &event.event_type,
            schema_version: event.schema_version,
            recorded_at_micros: recorded_at.timestamp_micros(),
            metadata: &event.metadata,
            payload: &event.payload,
        }
        .hash(&next.hash);
        if let Some(origin) = origin {
            origin
                .check(event.event_id, position, &hash)
                .map_err(Rejected::Store)?;
        }
        recorded.push(recorded_at);
        positions.push(to_db(position.0));
        ids.push(event.event_id);
        versions.push(to_db(version));
        types.push(event.event_type.as_str());
        schema_versions.push(i64::from(event.schema_version));
        hashes.push(hash);
        next = Tip { position, hash };
    }
    let metadata: Vec<&[u8]> = request
        .events
        .iter()
        .map(|e| e.metadata.as_slice())
        .collect();
    let payloads: Vec<&[u8]> = request
        .events
        .iter()
        .map(|e| e.payload.as_slice())
        .collect();
    let hash_refs: Vec<&[u8]> = hashes.iter().map(|h| h.as_slice()).collect();
    let inserted = tx
        .execute(
            &statements.insert,
            &[
                &positions,
                &ids,
                &stream,
                &versions,
                &types,
                &schema_versions,
                &recorded,
                &metadata,
                &payloads,
                &hash_refs,
            ],
        )
        .await;
    match inserted {
        Ok(_) => {}
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            // Not reachable while every writer holds the head row; kept so that a writer that
            // bypasses it still gets the contract's answer rather than a backend error.
            let constraint = e.as_db_error().and_then(|d| d.constraint()).unwrap_or("");
            return Err(if constraint.contains("event_id") {
                Rejected::Store(StoreError::IdempotencyConflict {
                    stream: stream.to_owned(),
                    event_id: request.events[0].event_id,
                })
            } else if constraint.contains("stream_version") {
                Rejected::StreamMoved
            } else {
                // A taken position means the head row and the events disagree.
                Rejected::Store(StoreError::Corrupt {
                    position: tip.position.next(),
                    reason: format!("position already taken: {e}"),
                })
            });
        }
        Err(e) => return Err(Rejected::Store(StoreError::backend(e))),
    }
    let result = AppendResult {
        stream_version: first_version + n as u64 - 1,
        first_position: tip.position.next(),
        last_position: next.position,
    };
    *tip = next;
    Ok(result)
}
