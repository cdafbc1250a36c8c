//! Reading events: queries on pooled connections, and turning rows back into events.
//!
//! Every read is one statement, so it sees one snapshot. Because appends are serialised on the
//! head row (see [`crate::schema`]), a snapshot that contains position *p* contains every position
//! below it, which is what lets `read_all` and subscriptions be plain range scans.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool, PoolError};
use switchboard_store::subscription::ReadAll;
use switchboard_store::{Direction, Position, RecordedEvent, StoreError, StreamFrom};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::schema::Sql;

/// Read access to the store: the pool and the statements. Cheap to clone; a subscription holds
/// one, which keeps the pool (not the writer) alive.
#[derive(Clone, Debug)]
pub(crate) struct Reader {
    pub(crate) pool: Pool,
    pub(crate) sql: Arc<Sql>,
}

/// A pool failure as the store reports it: a closed pool means a closed store.
pub(crate) fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Closed => StoreError::Closed,
        e => StoreError::backend(e),
    }
}

/// A count or version as PostgreSQL's BIGINT; values beyond it cannot occur and saturate.
pub(crate) fn to_db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Reader {
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    pub(crate) async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.read_all)
            .await
            .map_err(StoreError::backend)?;
        let rows = client
            .query(&stmt, &[&to_db(after.0), &to_db(limit as u64)])
            .await
            .map_err(StoreError::backend)?;
        rows.iter().map(decode_row).collect()
    }

    pub(crate) async fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from: StreamFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (sql, version) = match (direction, from) {
            (Direction::Forwards, StreamFrom::End) => return Ok(Vec::new()),
            (Direction::Forwards, StreamFrom::Start) => (&self.sql.read_forwards, 0),
            (Direction::Forwards, StreamFrom::Version(v)) => (&self.sql.read_forwards, to_db(v)),
            (Direction::Backwards, StreamFrom::Start | StreamFrom::End) => {
                (&self.sql.read_backwards, i64::MAX)
            }
            (Direction::Backwards, StreamFrom::Version(v)) => (&self.sql.read_backwards, to_db(v)),
        };
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(StoreError::backend)?;
        let rows = client
            .query(&stmt, &[&stream, &version, &to_db(limit as u64)])
            .await
            .map_err(StoreError::backend)?;
        rows.iter().map(decode_row).collect()
    }

    pub(crate) async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.stream_version)
            .await
            .map_err(StoreError::backend)?;
        let row = client
            .query_one(&stmt, &[&stream])
            .await
            .map_err(StoreError::backend)?;
        let version: Option<i64> = row.try_get(0).map_err(StoreError::backend)?;
        version
            .map(|v| {
                u64::try_from(v).map_err(|_| StoreError::Corrupt {
                    position: Position::START,
                    reason: format!("stream {stream} has the negative version {v}"),
                })
            })
            .transpose()
    }

    /// The committed head, read from the head row.
    pub(crate) async fn head(&self) -> Result<Position, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.head)
            .await
            .map_err(StoreError::backend)?;
        let row = client
            .query_one(&stmt, &[])
            .await
            .map_err(StoreError::backend)?;
        let position: i64 = row.try_get(0).map_err(StoreError::backend)?;
        head_position(position)
    }
}

/// The head row's position as a [`Position`], refusing a negative one.
pub(crate) fn head_position(position: i64) -> Result<Position, StoreError> {
    u64::try_from(position)
        .map(Position)
        .map_err(|_| StoreError::Corrupt {
            position: Position::START,
            reason: format!("the head row holds the negative position {position}"),
        })
}

#[async_trait]
impl ReadAll for Reader {
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Reader::read_all(self, after, limit).await
    }
}

/// Turns a row selected with the schema's column list into an event, refusing damaged values.
fn decode_row(row: &Row) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.try_get(0).map_err(StoreError::backend)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        position: Position(position.max(0) as u64),
        reason,
    };
    let position = u64::try_from(position)
        .map(Position)
        .map_err(|_| corrupt(format!("negative position {position}")))?;
    let event_id: Uuid = row.try_get(1).map_err(StoreError::backend)?;
    let stream_version: i64 = row.try_get(3).map_err(StoreError::backend)?;
    let schema_version: i64 = row.try_get(5).map_err(StoreError::backend)?;
    let recorded_at: DateTime<Utc> = row
        .try_get(6)
        .map_err(|e| corrupt(format!("recorded_at: {e}")))?;
    let hash: Vec<u8> = row.try_get(9).map_err(StoreError::backend)?;
    Ok(RecordedEvent {
        event_id,
        stream: row.try_get(2).map_err(StoreError::backend)?,
        stream_version: u64::try_from(stream_version)
            .map_err(|_| corrupt(format!("negative stream version {stream_version}")))?,
        position,
        event_type: row.try_get(4).map_err(StoreError::backend)?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt(format!("schema version {schema_version} out of range")))?,
        recorded_at,
        metadata: row.try_get(7).map_err(StoreError::backend)?,
        payload: row.try_get(8).map_err(StoreError::backend)?,
        sealed_payload: None,
        stored_stream: None,
        hash: <[u8; 32]>::try_from(hash.as_slice())
            .map_err(|_| corrupt(format!("hash is {} bytes, not 32", hash.len())))?,
    })
}
