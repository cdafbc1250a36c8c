//! Blobs on PostgreSQL: one row per content hash in the store's schema, shared by every node.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use switchboard_store::blob::{Blob, Within, is_blob_hash};
use switchboard_store::{BlobStore, StoreError};

use crate::reader::pool_error;
use crate::schema::quote;

/// The PostgreSQL store's [`BlobStore`].
#[derive(Debug, Clone)]
pub(crate) struct PostgresBlobs {
    pool: Pool,
    /// The quoted schema name.
    s: String,
}

impl PostgresBlobs {
    pub(crate) fn new(pool: Pool, schema: &str) -> PostgresBlobs {
        PostgresBlobs {
            pool,
            s: quote(schema),
        }
    }
}

#[async_trait]
impl BlobStore for PostgresBlobs {
    async fn put(&self, bytes: Vec<u8>) -> Result<String, StoreError> {
        let blob = Blob::new(bytes);
        let sha256 = blob.sha256().to_owned();
        self.put_all(vec![blob]).await?;
        Ok(sha256)
    }

    /// One transaction for all of them, named by the hashes they carry. A blob that stands in
    /// another ([`Blob::within`]) is kept as a reference to its range when that other one is
    /// stored (before, or in this call), and whole otherwise.
    async fn put_all(&self, blobs: Vec<Blob>) -> Result<(), StoreError> {
        if blobs.is_empty() {
            return Ok(());
        }
        let s = &self.s;
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(StoreError::backend)?;
        let whole = tx
            .prepare_cached(&format!(
                "INSERT INTO {s}.blobs (sha256, bytes) VALUES ($1, $2) \
                 ON CONFLICT (sha256) DO NOTHING"
            ))
            .await
            .map_err(StoreError::backend)?;
        // Whole blobs first: the sources of the parts among them are then stored. Each kind in
        // the order of its names, so that two transactions storing the same blobs lock their
        // rows in the same order rather than deadlock.
        let (mut parts, mut wholes): (Vec<&Blob>, Vec<&Blob>) =
            blobs.iter().partition(|blob| blob.within().is_some());
        parts.sort_by(|a, b| a.sha256().cmp(b.sha256()));
        wholes.sort_by(|a, b| a.sha256().cmp(b.sha256()));
        for blob in wholes {
            tx.execute(&whole, &[&blob.sha256(), &blob.bytes()])
                .await
                .map_err(StoreError::backend)?;
        }
        if !parts.is_empty() {
            // A part whose source is stored becomes a reference, unless it is stored already
            // (whole or as a part); one whose source is not is stored whole.
            let part = tx
                .prepare_cached(&format!(
                    "INSERT INTO {s}.blob_parts (sha256, source, start_byte, end_byte, encoding) \
                     SELECT $1, $2, $3, $4, $5 \
                     WHERE NOT EXISTS (SELECT 1 FROM {s}.blobs WHERE sha256 = $1) \
                     ON CONFLICT (sha256) DO NOTHING"
                ))
                .await
                .map_err(StoreError::backend)?;
            let source_stored = tx
                .prepare_cached(&format!("SELECT 1 FROM {s}.blobs WHERE sha256 = $1"))
                .await
                .map_err(StoreError::backend)?;
            for blob in parts {
                let Some(within) = blob.within() else {
                    continue;
                };
                let (start, end) = match (i64::try_from(within.start), i64::try_from(within.end)) {
                    (Ok(start), Ok(end)) => (start, end),
                    _ => (-1, -1),
                };
                let stored = tx
                    .query_opt(&source_stored, &[&within.source])
                    .await
                    .map_err(StoreError::backend)?
                    .is_some();
                if stored && start >= 0 {
                    tx.execute(
                        &part,
                        &[
                            &blob.sha256(),
                            &within.source,
                            &start,
                            &end,
                            &within.encoding.as_str(),
                        ],
                    )
                    .await
                    .map_err(StoreError::backend)?;
                } else {
                    tx.execute(&whole, &[&blob.sha256(), &blob.bytes()])
                        .await
                        .map_err(StoreError::backend)?;
                }
            }
        }
        tx.commit().await.map_err(StoreError::backend)
    }

    async fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_blob_hash(sha256) {
            return Ok(None);
        }
        let s = &self.s;
        let client = self.pool.get().await.map_err(pool_error)?;
        let whole = client
            .prepare_cached(&format!("SELECT bytes FROM {s}.blobs WHERE sha256 = $1"))
            .await
            .map_err(StoreError::backend)?;
        if let Some(row) = client
            .query_opt(&whole, &[&sha256])
            .await
            .map_err(StoreError::backend)?
        {
            return row.try_get(0).map(Some).map_err(StoreError::backend);
        }
        // Only the range of the source, which a damaged row leaves NULL (then refused below).
        let part = client
            .prepare_cached(&format!(
                "SELECT p.source, p.start_byte, p.end_byte, p.encoding, \
                        CASE WHEN p.start_byte >= 0 AND p.end_byte >= p.start_byte \
                                  AND p.end_byte < 2147483647 \
                             THEN substring(b.bytes FROM (p.start_byte + 1)::int \
                                                    FOR (p.end_byte - p.start_byte)::int) \
                        END \
                 FROM {s}.blob_parts p LEFT JOIN {s}.blobs b ON b.sha256 = p.source \
                 WHERE p.sha256 = $1"
            ))
            .await
            .map_err(StoreError::backend)?;
        let Some(row) = client
            .query_opt(&part, &[&sha256])
            .await
            .map_err(StoreError::backend)?
        else {
            return Ok(None);
        };
        drop(client);
        let within = Within::from_row(
            sha256,
            row.try_get(0).map_err(StoreError::backend)?,
            row.try_get(1).map_err(StoreError::backend)?,
            row.try_get(2).map_err(StoreError::backend)?,
            row.try_get(3).map_err(StoreError::backend)?,
        )?;
        let range: Option<Vec<u8>> = row.try_get(4).map_err(StoreError::backend)?;
        let name = sha256.to_owned();
        // Decoding and hashing a large part would hold a runtime thread for milliseconds.
        if range
            .as_ref()
            .is_some_and(|r| r.len() > DECODE_INLINE_BYTES)
        {
            tokio::task::spawn_blocking(move || within.read_range(&name, range.as_deref()))
                .await
                .map_err(StoreError::backend)?
                .map(Some)
        } else {
            within.read_range(&name, range.as_deref()).map(Some)
        }
    }
}

/// Parts larger than this are decoded and checked on the blocking pool.
const DECODE_INLINE_BYTES: usize = 64 * 1024;
