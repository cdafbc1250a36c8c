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
//! nothing moves them; a delete removes them.
//!
//! **Deleting** (a person's erasure, [`BlobStore::delete`]) goes through the event writer as
//! well, in the batch transaction among the appends ([`delete`]): an append carrying one of the
//! blobs that reached the writer's queue before the delete is deleted by it, one that reached it
//! after stores the blob again. Parts standing in a deleted blob and not deleted with it are
//! stored whole first, in the same transaction. The writer's connection runs with
//! `secure_delete` (checked before each deletion), so the deleted rows and the pages they free
//! are overwritten with zeros; once committed, the write-ahead log, which still holds earlier
//! images of those pages, is copied into the file and emptied (`wal_checkpoint(TRUNCATE)`, on a
//! connection of its own, see [`empty_event_log`]: appends wait only while it holds the write
//! lock, to copy and for at most a tenth of a second of readers). The delete returns after
//! that, and after removing the files of earlier versions: by then no byte of a deleted blob is
//! left in either file. Should readers hold the log for seconds (a tool in another process), the
//! delete fails, committed but with the log not emptied; repeating it empties the log.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use switchboard_store::blob::{Blob, FileBlobs, Within, distinct_blob_names, is_blob_hash};
use switchboard_store::{BlobStore, StoreError};

use crate::SqliteStore;

/// The embedded store's [`BlobStore`]: a handle on the store.
#[derive(Debug, Clone)]
pub(crate) struct SqliteBlobs {
    pub(crate) store: SqliteStore,
    /// Blobs written as files by earlier versions: read, and deleted (never written).
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
    insert_bytes(conn, blob.sha256(), blob.bytes())
}

fn insert_bytes(conn: &Connection, sha256: &str, bytes: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO blobs (sha256, size, bytes) VALUES (?1, ?2, ?3)")?
        .execute(params![sha256, bytes.len() as i64, bytes])?;
    Ok(())
}

/// Whether `conn` overwrites deleted content with zeros, free pages included (`secure_delete`
/// is 1; 2, "fast", leaves it in free pages).
pub(crate) fn secure_delete(conn: &Connection) -> rusqlite::Result<bool> {
    let mode: i64 = conn.query_row("PRAGMA secure_delete", [], |row| row.get(0))?;
    Ok(mode == 1)
}

/// Deletes the blobs `names` (blob names, each once) and returns those that were stored, whole
/// or as a part; part of the caller's transaction (the writer's, see the module's
/// documentation). Each part standing in one of them that is not among them is stored whole
/// first: its range read from the source, decoded and checked against its name (a part that
/// does not decode is [`StoreError::CorruptBlob`], and the caller rolls everything back).
pub(crate) fn delete(conn: &Connection, names: &[String]) -> Result<Vec<String>, StoreError> {
    let deleting: HashSet<&str> = names.iter().map(String::as_str).collect();
    let backend = StoreError::backend;
    for source in names {
        let parts: Vec<(String, i64, i64, String)> = conn
            .prepare_cached(
                "SELECT sha256, start_byte, end_byte, encoding FROM blob_parts WHERE source = ?1",
            )
            .map_err(backend)?
            .query_map([source], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        for (part, start, end, encoding) in parts {
            if deleting.contains(part.as_str()) {
                continue;
            }
            // A part stored whole as well (stored again on its own) keeps that copy.
            if !stored_whole(conn, &part).map_err(backend)? {
                let within = Within::from_row(&part, source.clone(), start, end, &encoding)?;
                let range: Option<Vec<u8>> = conn
                    .prepare_cached(
                        "SELECT substr(bytes, ?2 + 1, ?3 - ?2) FROM blobs WHERE sha256 = ?1",
                    )
                    .map_err(backend)?
                    .query_row(params![source, start, end], |row| row.get(0))
                    .optional()
                    .map_err(backend)?;
                let bytes = within.read_range(&part, range.as_deref())?;
                insert_bytes(conn, &part, &bytes).map_err(backend)?;
            }
            conn.prepare_cached("DELETE FROM blob_parts WHERE sha256 = ?1")
                .map_err(backend)?
                .execute([&part])
                .map_err(backend)?;
        }
    }
    let mut deleted = Vec::new();
    for name in names {
        let rows = conn
            .prepare_cached("DELETE FROM blob_parts WHERE sha256 = ?1")
            .map_err(backend)?
            .execute([name])
            .map_err(backend)?
            + conn
                .prepare_cached("DELETE FROM blobs WHERE sha256 = ?1")
                .map_err(backend)?
                .execute([name])
                .map_err(backend)?;
        if rows > 0 {
            deleted.push(name.clone());
        }
    }
    Ok(deleted)
}

/// How long one attempt to empty the event database's log waits for the writer or a reader:
/// while it holds the write lock waiting for readers, appends wait too.
const EMPTY_LOG_WAIT: Duration = Duration::from_millis(100);

/// How long attempts to empty the log go on before the delete fails.
const EMPTY_LOG_PATIENCE: Duration = Duration::from_secs(5);

/// Copies the event database's write-ahead log into the file and empties it, on a connection
/// of its own (see [`crate::schema::empty_log`]). The checkpoint needs the write lock, so the
/// writer waits while it copies; each attempt waits at most [`EMPTY_LOG_WAIT`] for the writer's
/// transaction or for readers, with pauses between attempts in which the writer goes on.
fn empty_event_log(path: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(EMPTY_LOG_WAIT)?;
    crate::schema::empty_log(&conn, "event database's", EMPTY_LOG_PATIENCE)
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

    async fn delete(&self, sha256s: &[String]) -> Result<u64, StoreError> {
        let names = distinct_blob_names(sha256s);
        if names.is_empty() {
            return Ok(0);
        }
        let mut deleted: BTreeSet<String> = self
            .store
            .delete_blobs(names.clone())
            .await?
            .into_iter()
            .collect();
        // Also when nothing was deleted: a retry after a log that could not be emptied.
        let path = self.store.inner.path.clone();
        tokio::task::spawn_blocking(move || empty_event_log(&path))
            .await
            .map_err(StoreError::backend)?
            .map_err(StoreError::backend)?;
        deleted.extend(self.legacy.remove(&names).await?);
        Ok(deleted.len() as u64)
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
