//! Blobs on PostgreSQL: one row per content hash in the store's schema, shared by every node.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use switchboard_store::blob::{Blob, PartEncoding, Within, is_blob_hash};
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
        // Whole blobs first: the sources of the parts among them are then stored.
        let (parts, wholes): (Vec<&Blob>, Vec<&Blob>) =
            blobs.iter().partition(|blob| blob.within().is_some());
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
                     WHERE EXISTS (SELECT 1 FROM {s}.blobs WHERE sha256 = $2) \
                       AND NOT EXISTS (SELECT 1 FROM {s}.blobs WHERE sha256 = $1) \
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
        // The blob's own bytes, or else those of the blob it is a range of, with the range.
        let statement = client
            .prepare_cached(&format!(
                "SELECT bytes, NULL::text, NULL::bigint, NULL::bigint, NULL::text \
                 FROM {s}.blobs WHERE sha256 = $1 \
                 UNION ALL \
                 SELECT b.bytes, p.source, p.start_byte, p.end_byte, p.encoding \
                 FROM {s}.blob_parts p JOIN {s}.blobs b ON b.sha256 = p.source \
                 WHERE p.sha256 = $1 \
                 LIMIT 1"
            ))
            .await
            .map_err(StoreError::backend)?;
        let Some(row) = client
            .query_opt(&statement, &[&sha256])
            .await
            .map_err(StoreError::backend)?
        else {
            return Ok(None);
        };
        let bytes: Vec<u8> = row.try_get(0).map_err(StoreError::backend)?;
        let Some(source) = row
            .try_get::<_, Option<String>>(1)
            .map_err(StoreError::backend)?
        else {
            return Ok(Some(bytes));
        };
        let corrupt = |reason: &str| StoreError::CorruptBlob {
            sha256: sha256.to_owned(),
            reason: reason.to_owned(),
        };
        let number = |i: usize| -> Result<u64, StoreError> {
            row.try_get::<_, i64>(i)
                .map_err(StoreError::backend)
                .and_then(|n| u64::try_from(n).map_err(|_| corrupt("a negative range")))
        };
        let encoding: String = row.try_get(4).map_err(StoreError::backend)?;
        let within = Within {
            source,
            start: number(2)?,
            end: number(3)?,
            encoding: PartEncoding::parse(&encoding)
                .ok_or_else(|| corrupt("an unknown encoding"))?,
        };
        within.read(sha256, &bytes).map(Some)
    }
}
