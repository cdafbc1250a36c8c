//! Blobs of the embedded store: a table of the event database (`blobs`, migration 2), written by
//! the event writer. A blob that stands in another (an e-mail's base64 attachment in the
//! original message) is a row of `blob_parts` (migration 3) naming its range there instead:
//! the bytes are kept once, and a read decodes the range and checks it against the name.
//!
//! An append that carries the blobs its events reference
//! ([`EventStore::append_with_blobs`](switchboard_store::EventStore::append_with_blobs), what
//! inbound e-mail uses) stores them in its own savepoint of the batch transaction, so a message's
//! original, its attachments and its events are durable with one fsync, shared with every append
//! of the batch, and a refused append leaves no blob behind. A blob stored on its own
//! ([`BlobStore::put`]) joins the next batch the same way. Files per blob needed two fsyncs each
//! (the file, then its directory) before the event naming them could be appended: under a stream
//! of incoming mail, most of a message's wait (docs/benchmarks.md).
//!
//! Data directories written before the table existed kept their blobs as files under
//! `blobs/<first two hex digits>/<hash>` ([`FileBlobs`]): they are still read from there, and
//! nothing moves them.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use switchboard_store::blob::{Blob, FileBlobs, Within, is_blob_hash};
use switchboard_store::{BlobStore, StoreError};

use crate::SqliteStore;

/// The embedded store's [`BlobStore`]: a handle on the store.
#[derive(Debug, Clone)]
pub(crate) struct SqliteBlobs {
    pub(crate) store: SqliteStore,
    /// Blobs written as files by earlier versions.
    pub(crate) legacy: FileBlobs,
}

/// Inserts `blobs` that are not stored yet; part of the caller's transaction. A blob that
/// stands in another one ([`Blob::within`]) is kept as a reference to its range when that other
/// one is stored (before, or in this call), and whole otherwise.
pub(crate) fn insert(conn: &Connection, blobs: &[Blob]) -> rusqlite::Result<()> {
    // Whole blobs first: the sources of the parts among them are then stored.
    let (parts, wholes): (Vec<&Blob>, Vec<&Blob>) =
        blobs.iter().partition(|blob| blob.within().is_some());
    for blob in wholes {
        // Stored before, or earlier in this transaction: the same bytes, kept once.
        if !stored_whole(conn, blob.sha256())? {
            insert_whole(conn, blob)?;
        }
    }
    for blob in parts {
        let Some(within) = blob.within() else {
            continue;
        };
        let mut part_exists = conn.prepare_cached("SELECT 1 FROM blob_parts WHERE sha256 = ?1")?;
        if stored_whole(conn, blob.sha256())? || part_exists.exists([blob.sha256()])? {
            continue;
        }
        if !stored_whole(conn, &within.source)? {
            insert_whole(conn, blob)?;
            continue;
        }
        conn.prepare_cached(
            "INSERT INTO blob_parts (sha256, size, source, start_byte, end_byte, encoding) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            blob.sha256(),
            blob.bytes().len() as i64,
            within.source,
            within.start as i64,
            within.end as i64,
            within.encoding.as_str(),
        ])?;
    }
    Ok(())
}

fn stored_whole(conn: &Connection, sha256: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM blobs WHERE sha256 = ?1")?
        .exists([sha256])
}

fn insert_whole(conn: &Connection, blob: &Blob) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO blobs (sha256, size, bytes) VALUES (?1, ?2, ?3)")?
        .execute(params![
            blob.sha256(),
            blob.bytes().len() as i64,
            blob.bytes()
        ])?;
    Ok(())
}

/// The bytes of the blob `sha256`, if the tables have it: stored whole, or as a range of
/// another blob (only the range is read, then decoded and checked against the name). A database
/// that has no table yet (a read-only handle on a data directory an earlier version wrote) has
/// none.
fn select(conn: &Connection, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
    if let Some(bytes) = select_whole(conn, sha256).map_err(StoreError::backend)? {
        return Ok(Some(bytes));
    }
    let statement = match conn.prepare_cached(
        "SELECT p.source, p.start_byte, p.end_byte, p.encoding, \
                substr(b.bytes, p.start_byte + 1, p.end_byte - p.start_byte) \
         FROM blob_parts p LEFT JOIN blobs b ON b.sha256 = p.source \
         WHERE p.sha256 = ?1",
    ) {
        Ok(statement) => statement,
        Err(e) if e.to_string().contains("no such table") => return Ok(None),
        Err(e) => return Err(StoreError::backend(e)),
    };
    let mut statement = statement;
    let row = statement
        .query_row([sha256], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<Vec<u8>>>(4)?,
            ))
        })
        .optional()
        .map_err(StoreError::backend)?;
    let Some((source, start, end, encoding, range)) = row else {
        return Ok(None);
    };
    Within::from_row(sha256, source, start, end, &encoding)?
        .read_range(sha256, range.as_deref())
        .map(Some)
}

/// The bytes of a blob stored whole.
fn select_whole(conn: &Connection, sha256: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    let statement = match conn.prepare_cached("SELECT bytes FROM blobs WHERE sha256 = ?1") {
        Ok(statement) => statement,
        Err(e) if e.to_string().contains("no such table") => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut statement = statement;
    statement.query_row([sha256], |row| row.get(0)).optional()
}

/// Puts larger than this are hashed on the blocking pool.
const HASH_INLINE_BYTES: usize = 64 * 1024;

#[async_trait]
impl BlobStore for SqliteBlobs {
    async fn put(&self, bytes: Vec<u8>) -> Result<String, StoreError> {
        let blob = if bytes.len() <= HASH_INLINE_BYTES {
            Blob::new(bytes)
        } else {
            tokio::task::spawn_blocking(move || Blob::new(bytes))
                .await
                .map_err(StoreError::backend)?
        };
        let sha256 = blob.sha256().to_owned();
        self.store.store_blobs(vec![blob]).await?;
        Ok(sha256)
    }

    async fn put_all(&self, blobs: Vec<Blob>) -> Result<(), StoreError> {
        if blobs.is_empty() {
            return Ok(());
        }
        self.store.store_blobs(blobs).await
    }

    async fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_blob_hash(sha256) {
            return Ok(None);
        }
        let name = sha256.to_owned();
        let found = self
            .store
            .inner
            .reads
            .run(move |reader| select(reader.conn, &name))
            .await?;
        match found {
            Some(bytes) => Ok(Some(bytes)),
            None => self.legacy.get(sha256).await,
        }
    }
}
