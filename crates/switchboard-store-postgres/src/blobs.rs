//! Blobs on PostgreSQL: one row per content hash in the store's schema, shared by every node.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use switchboard_store::blob::{Blob, is_blob_hash};
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

    /// One transaction for all of them, named by the hashes they carry.
    async fn put_all(&self, blobs: Vec<Blob>) -> Result<(), StoreError> {
        if blobs.is_empty() {
            return Ok(());
        }
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(StoreError::backend)?;
        let statement = tx
            .prepare_cached(&format!(
                "INSERT INTO {}.blobs (sha256, bytes) VALUES ($1, $2) \
                 ON CONFLICT (sha256) DO NOTHING",
                self.s
            ))
            .await
            .map_err(StoreError::backend)?;
        for blob in &blobs {
            tx.execute(&statement, &[&blob.sha256(), &blob.bytes()])
                .await
                .map_err(StoreError::backend)?;
        }
        tx.commit().await.map_err(StoreError::backend)
    }

    async fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_blob_hash(sha256) {
            return Ok(None);
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT bytes FROM {}.blobs WHERE sha256 = $1",
                self.s
            ))
            .await
            .map_err(StoreError::backend)?;
        let row = client
            .query_opt(&statement, &[&sha256])
            .await
            .map_err(StoreError::backend)?;
        row.map(|row| row.try_get(0))
            .transpose()
            .map_err(StoreError::backend)
    }
}
