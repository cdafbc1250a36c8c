//! Reading events: a small pool of read-only connections used from tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::DateTime;
use rusqlite::{Connection, OptionalExtension, Row, params};
use switchboard_store::subscription::ReadAll;
use switchboard_store::{Direction, Position, RecordedEvent, StoreError, StreamFrom};
use uuid::Uuid;

use crate::schema;
use crate::tail::Tail;

const COLUMNS: &str = "position, event_id, stream, stream_version, event_type, schema_version, \
                       recorded_at, metadata, payload, hash";

/// [`COLUMNS`] of `events e`, in a join with the stream index.
const INDEXED_COLUMNS: &str = "e.position, e.event_id, e.stream, e.stream_version, e.event_type, \
                               e.schema_version, e.recorded_at, e.metadata, e.payload, e.hash";

/// Read connections, opened lazily and kept for reuse. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ReadPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    path: PathBuf,
    keep: usize,
    idle: Mutex<Vec<Connection>>,
    tail: Option<Arc<Tail>>,
}

impl ReadPool {
    /// A pool on the database at `path`, keeping up to `keep` connections; `tail` is the
    /// writer's map of the unindexed tail (`None` for a read-only handle: stream reads scan).
    pub(crate) fn open(
        path: &Path,
        keep: usize,
        tail: Option<Arc<Tail>>,
    ) -> rusqlite::Result<ReadPool> {
        // Open one connection now so that a broken database fails at startup, not on first read.
        let first = schema::open_reader(path)?;
        Ok(ReadPool {
            inner: Arc::new(PoolInner {
                path: path.to_owned(),
                keep,
                idle: Mutex::new(vec![first]),
                tail,
            }),
        })
    }

    /// Runs `f` on a pooled connection on the blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.idle.lock().ok().and_then(|mut idle| idle.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => schema::open_reader(&inner.path).map_err(StoreError::backend)?,
            };
            let result = f(&Reader {
                conn: &conn,
                tail: inner.tail.as_deref(),
            });
            // A connection still inside a transaction (a failed rollback) would keep its old
            // snapshot for every later read: it is closed instead.
            if conn.is_autocommit()
                && let Ok(mut idle) = inner.idle.lock()
                && idle.len() < inner.keep
            {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(StoreError::backend)?
    }
}

#[async_trait]
impl ReadAll for ReadPool {
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.run(move |r| r.read_all(after, limit)).await
    }
}

/// Queries on one connection.
pub(crate) struct Reader<'c> {
    pub(crate) conn: &'c Connection,
    /// The writer's map of the unindexed tail, when the writer runs in this process.
    tail: Option<&'c Tail>,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Reader<'_> {
    pub(crate) fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2");
        let mut events = Vec::with_capacity(limit.min(4096));
        self.query_into(
            &sql,
            params![to_i64(after.0), to_i64(limit as u64)],
            &mut events,
        )?;
        Ok(events)
    }

    pub(crate) fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from: StreamFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (op, order, version) = match (direction, from) {
            (Direction::Forwards, StreamFrom::End) => return Ok(Vec::new()),
            (Direction::Forwards, StreamFrom::Start) => (">=", "ASC", 0),
            (Direction::Forwards, StreamFrom::Version(v)) => (">=", "ASC", to_i64(v)),
            (Direction::Backwards, StreamFrom::Start | StreamFrom::End) => ("<=", "DESC", i64::MAX),
            (Direction::Backwards, StreamFrom::Version(v)) => ("<=", "DESC", to_i64(v)),
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        // One read transaction: the stream's id, how far the index reaches, and the events all
        // come from one snapshot, so the indexed part and the tail never overlap or leave a gap.
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::backend)?;
        let found: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT s.id, i.indexed_upto FROM streams s, index_state i WHERE s.name = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([stream], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(StoreError::backend)?;
        // A stream that does not exist (a command's new conversation, say) costs one lookup.
        let Some((stream_id, indexed_upto)) = found else {
            return Ok(Vec::new());
        };
        let wanted = |v: u64| match direction {
            Direction::Forwards => to_i64(v) >= version,
            Direction::Backwards => to_i64(v) <= version,
        };
        let tail = self
            .tail
            .and_then(|tail| tail.events(stream_id, indexed_upto as u64, wanted));
        let Some(mut tail) = tail else {
            return self.scan_stream(stream_id, indexed_upto, (op, order, version), limit);
        };
        let indexed = |limit: usize, events: &mut Vec<RecordedEvent>| {
            let sql = format!(
                "SELECT {INDEXED_COLUMNS} FROM stream_index i JOIN events e \
                 ON e.position = i.position \
                 WHERE i.stream_id = ?1 AND i.stream_version {op} ?2 \
                 ORDER BY i.stream_version {order} LIMIT ?3"
            );
            self.query_into(
                &sql,
                params![stream_id, version, to_i64(limit as u64)],
                events,
            )
        };
        let mut events = Vec::with_capacity(limit.min(tail.len() + 64));
        if direction == Direction::Backwards {
            tail.reverse();
        } else {
            indexed(limit, &mut events)?;
        }
        let mut lookup = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events WHERE position = ?1 AND stream_id = ?2"
            ))
            .map_err(StoreError::backend)?;
        for (_, position) in tail {
            if events.len() >= limit {
                break;
            }
            // Absent: committed after this snapshot began, or about to be.
            let mut rows = lookup
                .query(params![to_i64(position), stream_id])
                .map_err(StoreError::backend)?;
            if let Some(row) = rows.next().map_err(StoreError::backend)? {
                events.push(decode_row(row)?);
            }
        }
        drop(lookup);
        if direction == Direction::Backwards && events.len() < limit {
            indexed(limit - events.len(), &mut events)?;
        }
        Ok(events)
    }

    /// Reads stream `stream_id` from the index and a scan of the events past `indexed_upto`: for
    /// a connection without the writer's map of the tail (a read-only handle), or a snapshot the
    /// map no longer serves.
    fn scan_stream(
        &self,
        stream_id: i64,
        indexed_upto: i64,
        (op, order, version): (&str, &str, i64),
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Positions grow with versions within a stream, so ordering by position is ordering by
        // version.
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE position IN ( \
                 SELECT position FROM ( \
                     SELECT position FROM stream_index \
                     WHERE stream_id = ?1 AND stream_version {op} ?2 \
                     ORDER BY stream_version {order} LIMIT ?3) \
                 UNION ALL \
                 SELECT position FROM events \
                 WHERE position > ?4 AND stream_id = ?1 AND stream_version {op} ?2) \
             ORDER BY position {order} LIMIT ?3"
        );
        let mut events = Vec::new();
        self.query_into(
            &sql,
            params![stream_id, version, to_i64(limit as u64), indexed_upto],
            &mut events,
        )?;
        Ok(events)
    }

    pub(crate) fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT version FROM streams WHERE name = ?1")
            .map_err(StoreError::backend)?;
        let version: Option<i64> = stmt
            .query_row([stream], |row| row.get(0))
            .optional()
            .map_err(StoreError::backend)?;
        Ok(version.map(|v| v as u64))
    }

    fn query_into(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        events: &mut Vec<RecordedEvent>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(StoreError::backend)?;
        let mut rows = stmt.query(params).map_err(StoreError::backend)?;
        while let Some(row) = rows.next().map_err(StoreError::backend)? {
            events.push(decode_row(row)?);
        }
        Ok(())
    }
}

/// Turns a row selected with `COLUMNS` into an event, refusing damaged values.
fn decode_row(row: &Row<'_>) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.get(0).map_err(StoreError::backend)?;
    let position = Position(position as u64);
    let corrupt = |reason: String| StoreError::Corrupt { position, reason };
    let id: [u8; 16] = row.get(1).map_err(|e| corrupt(format!("event_id: {e}")))?;
    let recorded_at: i64 = row.get(6).map_err(StoreError::backend)?;
    let hash: [u8; 32] = row.get(9).map_err(|e| corrupt(format!("hash: {e}")))?;
    let stream_version: i64 = row.get(3).map_err(StoreError::backend)?;
    let schema_version: i64 = row.get(5).map_err(StoreError::backend)?;
    Ok(RecordedEvent {
        event_id: Uuid::from_bytes(id),
        stream: row.get(2).map_err(StoreError::backend)?,
        stream_version: u64::try_from(stream_version)
            .map_err(|_| corrupt(format!("negative stream version {stream_version}")))?,
        position,
        event_type: row.get(4).map_err(StoreError::backend)?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt(format!("schema version {schema_version} out of range")))?,
        recorded_at: DateTime::from_timestamp_micros(recorded_at)
            .ok_or_else(|| corrupt(format!("recorded_at {recorded_at} out of range")))?,
        metadata: row.get(7).map_err(StoreError::backend)?,
        payload: row.get(8).map_err(StoreError::backend)?,
        sealed_payload: None,
        stored_stream: None,
        hash,
    })
}
