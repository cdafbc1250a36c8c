//! The writer thread: the only code that writes events, and where group commit happens.
//!
//! Protocol: callers push an [`AppendRequest`] into a bounded queue and wait on its reply channel.
//! The writer blocks for the first request, then takes every request already queued (up to
//! `max_batch_events`) and decides and inserts them all in one `BEGIN IMMEDIATE` transaction, each
//! inside its own savepoint so that one rejected append does not disturb the others. After the
//! single `COMMIT` (one fsync of the WAL) it answers every caller and only then announces the new
//! head to subscribers. If the commit fails, every append of the batch is answered with the error
//! and the in-memory chain state is restored, so nothing acknowledged is ever missing.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};
use switchboard_store::chain::{Canonical, GENESIS};
use switchboard_store::{AppendResult, ExpectedVersion, NewEvent, Position, StoreError};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::{CommitClock, SqliteOptions};

/// How many appends may wait for the writer before callers are slowed down.
const QUEUE: usize = 4096;

/// One caller's append, waiting for the writer.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub(crate) stream: String,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) reply: oneshot::Sender<Result<AppendResult, StoreError>>,
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
    head: watch::Sender<Position>,
}

/// What the writer hands back to the store handle.
pub(crate) struct Spawned {
    pub(crate) requests: SyncSender<AppendRequest>,
    pub(crate) head: watch::Receiver<Position>,
    pub(crate) thread: JoinHandle<()>,
}

impl Writer {
    pub(crate) fn spawn(conn: Connection, options: &SqliteOptions) -> rusqlite::Result<Spawned> {
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
        let (head, head_rx) = watch::channel(tip.position);
        let (requests, queue) = sync_channel(QUEUE);
        let writer = Writer {
            conn,
            clock: options.clock.clone(),
            max_batch_events: options.max_batch_events.max(1),
            tip,
            head,
        };
        let thread = std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Spawned {
            requests,
            head: head_rx,
            thread,
        })
    }

    /// Serves batches until every sender is gone.
    fn run(mut self, queue: Receiver<AppendRequest>) {
        while let Ok(first) = queue.recv() {
            let mut events = first.events.len();
            let mut batch = vec![first];
            while events < self.max_batch_events {
                let Ok(next) = queue.try_recv() else { break };
                events += next.events.len();
                batch.push(next);
            }
            self.commit_batch(batch);
        }
        tracing::debug!("event writer stopped");
    }

    #[tracing::instrument(level = "trace", skip_all, fields(appends = batch.len()))]
    fn commit_batch(&mut self, batch: Vec<AppendRequest>) {
        let before = self.tip;
        let recorded_at = (self.clock)().timestamp_micros();
        let mut outcomes = Vec::with_capacity(batch.len());
        let committed = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(mut tx) => {
                for request in &batch {
                    let outcome = append_one(&mut tx, &mut self.tip, request, recorded_at);
                    outcomes.push(outcome);
                }
                tx.commit().map_err(|e| {
                    tracing::error!(error = %e, "event batch commit failed");
                    e
                })
            }
            Err(e) => Err(e),
        };
        if let Err(e) = committed {
            self.tip = before;
            let reason = e.to_string();
            for request in batch {
                let _ = request
                    .reply
                    .send(Err(StoreError::backend(std::io::Error::other(format!(
                        "commit failed: {reason}"
                    )))));
            }
            return;
        }
        for (request, outcome) in batch.into_iter().zip(outcomes) {
            // A caller that stopped waiting is not an error: its events are durable regardless.
            let _ = request.reply.send(outcome);
        }
        if self.tip.position != before.position {
            self.head.send_replace(self.tip.position);
        }
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

/// Decides and inserts one append inside the batch transaction; on any error its inserts are
/// rolled back and `tip` is left as it was.
fn append_one(
    tx: &mut Transaction<'_>,
    tip: &mut Tip,
    request: &AppendRequest,
    recorded_at: i64,
) -> Result<AppendResult, StoreError> {
    let stream = request.stream.as_str();
    let first_id = request.events[0].event_id;
    if let Some((stored_stream, version, position)) = find_event(tx, first_id)? {
        return replay(tx, request, &stored_stream, version, position);
    }
    let current = stream_version(tx, stream)?;
    if !request.expected.matches(current) {
        return Err(StoreError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected: request.expected,
            actual: current,
        });
    }
    let first_version = current.map_or(0, |v| v + 1);
    let start = *tip;
    let mut next = start;
    let savepoint = tx.savepoint().map_err(backend)?;
    {
        let mut insert = savepoint
            .prepare_cached(
                "INSERT INTO events (position, event_id, stream, stream_version, event_type, \
                 schema_version, recorded_at, metadata, payload, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(backend)?;
        for (i, event) in request.events.iter().enumerate() {
            let position = next.position.next();
            let version = first_version + i as u64;
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
            let inserted = insert.execute(params![
                position.0 as i64,
                event.event_id.as_bytes(),
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
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == ErrorCode::ConstraintViolation =>
                {
                    // The first id was new, so a later one repeats an earlier append.
                    return Err(StoreError::IdempotencyConflict {
                        stream: stream.to_owned(),
                        event_id: event.event_id,
                    });
                }
                Err(e) => return Err(backend(e)),
            }
            next = Tip { position, hash };
        }
    }
    savepoint.commit().map_err(backend)?;
    *tip = next;
    Ok(AppendResult {
        stream_version: first_version + request.events.len() as u64 - 1,
        first_position: start.position.next(),
        last_position: next.position,
    })
}

/// The append's first event is stored already: it is a retry if every event sits, in order, where
/// this append would have put it; otherwise it conflicts.
fn replay(
    tx: &Transaction<'_>,
    request: &AppendRequest,
    stored_stream: &str,
    first_version: u64,
    first_position: Position,
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
            actual: stream_version(tx, stream)?,
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

fn stream_version(tx: &Transaction<'_>, stream: &str) -> Result<Option<u64>, StoreError> {
    let mut stmt = tx
        .prepare_cached("SELECT max(stream_version) FROM events WHERE stream = ?1")
        .map_err(backend)?;
    let version: Option<i64> = stmt
        .query_row([stream], |row| row.get(0))
        .map_err(backend)?;
    Ok(version.map(|v| v as u64))
}
