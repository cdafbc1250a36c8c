//! Blobs on PostgreSQL: one row per content hash in the store's schema, shared by every node.
//! A blob that stands in another (an e-mail's attachment in the original message) is a row of
//! `blob_parts` naming its range there.
//!
//! **Deleting** ([`BlobStore::delete`], a person's erasure) is one transaction: it locks the
//! rows of the blobs it deletes (`FOR UPDATE`), then the part rows it touches, each kind in the
//! order of their names; stores whole each part standing in a deleted blob that it does not
//! delete too; and deletes. A `put_all` storing parts holds a `FOR KEY SHARE` lock on each of
//! their sources until it commits, so a part is never stored against a source a delete has
//! taken: either the put commits first and the delete finds its parts and keeps them whole, or
//! the delete commits first and the put finds the source gone and stores its parts whole. A put
//! of a blob being deleted behaves as if it came wholly before the delete (which then deletes it)
//! or wholly after (which stores it again). PostgreSQL keeps a deleted row's bytes in dead tuples
//! (of the table and of its TOAST table) and in the WAL until `VACUUM` reclaims them and the WAL
//! is recycled; this store runs no `VACUUM` itself (autovacuum, or the operator, does).

use std::collections::{BTreeSet, HashSet};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use switchboard_store::blob::{Blob, Within, distinct_blob_names, is_blob_hash};
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
        // Each kind in the order of its names, so that two transactions storing the same blobs
        // lock their rows in the same order rather than deadlock.
        let (mut parts, mut wholes): (Vec<&Blob>, Vec<&Blob>) =
            blobs.iter().partition(|blob| blob.within().is_some());
        parts.sort_by(|a, b| a.sha256().cmp(b.sha256()));
        wholes.sort_by(|a, b| a.sha256().cmp(b.sha256()));
        // The sources of the parts that are stored, kept from a delete until this commits (see
        // the module's documentation); locked before anything is written, so that a delete
        // holding one is waited for before this holds any row a delete could wait for.
        let sources: BTreeSet<&str> = parts
            .iter()
            .filter_map(|blob| blob.within())
            .map(|within| within.source.as_str())
            .collect();
        let mut stored: HashSet<String> = if sources.is_empty() {
            HashSet::new()
        } else {
            let sources: Vec<&str> = sources.into_iter().collect();
            tx.query(
                &format!(
                    "SELECT sha256 FROM {s}.blobs WHERE sha256 = ANY($1) \
                     ORDER BY sha256 FOR KEY SHARE"
                ),
                &[&sources],
            )
            .await
            .map_err(StoreError::backend)?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(StoreError::backend)?
        };
        // Whole blobs first: the sources of the parts among them are then stored.
        for blob in wholes {
            tx.execute(&whole, &[&blob.sha256(), &blob.bytes()])
                .await
                .map_err(StoreError::backend)?;
            stored.insert(blob.sha256().to_owned());
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
            for blob in parts {
                let Some(within) = blob.within() else {
                    continue;
                };
                let (start, end) = match (i64::try_from(within.start), i64::try_from(within.end)) {
                    (Ok(start), Ok(end)) => (start, end),
                    _ => (-1, -1),
                };
                if stored.contains(&within.source) && start >= 0 {
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

    /// One transaction (see the module's documentation).
    async fn delete(&self, sha256s: &[String]) -> Result<u64, StoreError> {
        let names = distinct_blob_names(sha256s);
        if names.is_empty() {
            return Ok(0);
        }
        let s = &self.s;
        let backend = StoreError::backend;
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(backend)?;
        // The whole rows first, then the part rows, as `put_all` takes them.
        tx.query(
            &format!(
                "SELECT sha256 FROM {s}.blobs WHERE sha256 = ANY($1) ORDER BY sha256 FOR UPDATE"
            ),
            &[&names],
        )
        .await
        .map_err(backend)?;
        // The parts standing in the blobs deleted, and those named: locked, so that a part a
        // concurrent delete takes is not stored whole again here once it committed.
        let parts = tx
            .query(
                &format!(
                    "SELECT sha256, source, start_byte, end_byte, encoding FROM {s}.blob_parts \
                     WHERE source = ANY($1) OR sha256 = ANY($1) ORDER BY sha256 FOR UPDATE"
                ),
                &[&names],
            )
            .await
            .map_err(backend)?;
        let deleting: HashSet<&str> = names.iter().map(String::as_str).collect();
        for row in parts {
            let part: String = row.try_get(0).map_err(backend)?;
            let source: String = row.try_get(1).map_err(backend)?;
            if deleting.contains(part.as_str()) || !deleting.contains(source.as_str()) {
                continue;
            }
            let whole = tx
                .query_opt(
                    &format!("SELECT 1 FROM {s}.blobs WHERE sha256 = $1"),
                    &[&part],
                )
                .await
                .map_err(backend)?;
            // A part stored whole as well (stored again on its own) keeps that copy.
            if whole.is_none() {
                let within = Within::from_row(
                    &part,
                    source,
                    row.try_get(2).map_err(backend)?,
                    row.try_get(3).map_err(backend)?,
                    row.try_get(4).map_err(backend)?,
                )?;
                let bytes = self.read_range(&tx, &part, within).await?;
                tx.execute(
                    &format!(
                        "INSERT INTO {s}.blobs (sha256, bytes) VALUES ($1, $2) \
                         ON CONFLICT (sha256) DO NOTHING"
                    ),
                    &[&part, &bytes],
                )
                .await
                .map_err(backend)?;
            }
            tx.execute(
                &format!("DELETE FROM {s}.blob_parts WHERE sha256 = $1"),
                &[&part],
            )
            .await
            .map_err(backend)?;
        }
        let mut deleted = BTreeSet::new();
        for table in ["blob_parts", "blobs"] {
            for row in tx
                .query(
                    &format!("DELETE FROM {s}.{table} WHERE sha256 = ANY($1) RETURNING sha256"),
                    &[&names],
                )
                .await
                .map_err(backend)?
            {
                deleted.insert(row.try_get::<_, String>(0).map_err(backend)?);
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(deleted.len() as u64)
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

impl PostgresBlobs {
    /// The bytes of the part `sha256` standing at `within`, read from its source in `tx`,
    /// decoded and checked against its name (see [`Within::read_range`]).
    async fn read_range(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        sha256: &str,
        within: Within,
    ) -> Result<Vec<u8>, StoreError> {
        let s = &self.s;
        // `substring` takes 32-bit bounds; a range past them is past any source (a `bytea` is
        // at most 1 GiB), which the check reports as too short.
        let bounds = i32::try_from(within.start)
            .ok()
            .zip(i32::try_from(within.end - within.start).ok())
            .and_then(|(start, len)| Some((start.checked_add(1)?, len)));
        let row = tx
            .query_opt(
                &format!(
                    "SELECT CASE WHEN $2::int IS NULL THEN ''::bytea \
                                 ELSE substring(bytes FROM $2::int FOR $3::int) END \
                     FROM {s}.blobs WHERE sha256 = $1"
                ),
                &[
                    &within.source,
                    &bounds.map(|(start, _)| start),
                    &bounds.map(|(_, len)| len),
                ],
            )
            .await
            .map_err(StoreError::backend)?;
        let range: Option<Vec<u8>> = row
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(StoreError::backend)?;
        let name = sha256.to_owned();
        if range
            .as_ref()
            .is_some_and(|r| r.len() > DECODE_INLINE_BYTES)
        {
            tokio::task::spawn_blocking(move || within.read_range(&name, range.as_deref()))
                .await
                .map_err(StoreError::backend)?
        } else {
            within.read_range(&name, range.as_deref())
        }
    }
}

/// Parts larger than this are decoded and checked on the blocking pool.
const DECODE_INLINE_BYTES: usize = 64 * 1024;
