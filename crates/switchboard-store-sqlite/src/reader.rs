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

const COLUMNS: &str = "position, event_id, stream, stream_version, event_type, schema_version, \
                       recorded_at, metadata, payload, hash";

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
}

impl ReadPool {
    pub(crate) fn open(path: &Path, keep: usize) -> rusqlite::Result<ReadPool> {
        // Open one connection now so that a broken database fails at startup, not on first read.
        let first = schema::open_reader(path)?;
        Ok(ReadPool {
            inner: Arc::new(PoolInner {
                path: path.to_owned(),
                keep,
                idle: Mutex::new(vec![first]),
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
            let result = f(&Reader { conn: &conn });
            if let Ok(mut idle) = inner.idle.lock()
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
    conn: &'c Connection,
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
        self.query(&sql, params![to_i64(after.0), to_i64(limit as u64)], limit)
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
        // Positions grow with versions within a stream, so ordering by position is ordering by
        // version. The indexed part and the unindexed tail are read in one statement, so they
        // come from one snapshot and never overlap or leave a gap.
        let sql = format!(
            "WITH s AS (SELECT id FROM streams WHERE name = ?1) \
             SELECT {COLUMNS} FROM events WHERE position IN ( \
                 SELECT position FROM ( \
                     SELECT position FROM stream_index \
                     WHERE stream_id = (SELECT id FROM s) AND stream_version {op} ?2 \
                     ORDER BY stream_version {order} LIMIT ?3) \
                 UNION ALL \
                 SELECT position FROM events \
                 WHERE position > (SELECT indexed_upto FROM index_state) \
                   AND stream_id = (SELECT id FROM s) AND stream_version {op} ?2) \
             ORDER BY position {order} LIMIT ?3"
        );
        self.query(&sql, params![stream, version, to_i64(limit as u64)], limit)
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

    fn query(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(StoreError::backend)?;
        let mut rows = stmt.query(params).map_err(StoreError::backend)?;
        let mut events = Vec::with_capacity(limit.min(4096));
        while let Some(row) = rows.next().map_err(StoreError::backend)? {
            events.push(decode_row(row)?);
        }
        Ok(events)
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
        hash,
    })
}
