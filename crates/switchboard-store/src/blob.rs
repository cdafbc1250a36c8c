//! The blob store beside the log: attachments and raw e-mails, content-addressed by SHA-256.
//!
//! Events carry references to blobs (hash, size, name, type), never their bytes, so the log
//! stays small and a blob can be deleted (a person's erasure) without touching history. Storing
//! the same bytes twice stores them once. Every backend keeps its blobs where it keeps its log:
//! a table of the embedded store's event database (which still reads the files under its
//! directory, [`FileBlobs`], that earlier versions wrote), a table in PostgreSQL.

use std::fmt::Debug;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// Blobs by content.
#[async_trait]
pub trait BlobStore: Send + Sync + Debug {
    /// Stores `bytes` and returns their SHA-256 (lower-case hex). Returns once the bytes are
    /// durable; storing bytes already stored writes nothing.
    async fn put(&self, bytes: Vec<u8>) -> Result<String, StoreError>;

    /// Stores every blob of `blobs`, once all are durable: a backend that commits in groups
    /// stores them with one commit.
    async fn put_all(&self, blobs: Vec<Blob>) -> Result<(), StoreError> {
        for blob in blobs {
            self.put(blob.into_bytes()).await?;
        }
        Ok(())
    }

    /// The bytes whose SHA-256 is `sha256` (lower-case hex), or `None` if none are stored (or
    /// `sha256` is not such a hash).
    async fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Bytes on their way to a blob store, named by their SHA-256 (computed when made, on the
/// caller's thread rather than the store's writer). Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    sha256: String,
    bytes: Arc<Vec<u8>>,
}

impl Blob {
    /// `bytes`, hashed.
    pub fn new(bytes: Vec<u8>) -> Blob {
        Blob {
            sha256: blob_hash(&bytes),
            bytes: Arc::new(bytes),
        }
    }

    /// The name: SHA-256, lower-case hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, copied only if the blob was cloned.
    pub fn into_bytes(self) -> Vec<u8> {
        Arc::unwrap_or_clone(self.bytes)
    }
}

impl Debug for Blob {
    /// The name and size, never the bytes (they may be anyone's mail).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob")
            .field("sha256", &self.sha256)
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// The SHA-256 of `bytes`, lower-case hex: a blob's name.
pub fn blob_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `text` is a blob's name: 64 lower-case hex digits.
pub fn is_blob_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Blobs as files under a directory: `<dir>/<first two hex digits>/<hash>`. Each is written to
/// a temporary file, synced, renamed into place and its directory synced, so a blob is either
/// whole or absent after a crash.
#[derive(Debug, Clone)]
pub struct FileBlobs {
    dir: PathBuf,
    writable: bool,
}

impl FileBlobs {
    /// Blobs under `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> FileBlobs {
        FileBlobs {
            dir: dir.into(),
            writable: true,
        }
    }

    /// Blobs under `dir`, for reading only (a tool beside a running server): `put` fails with
    /// [`StoreError::Closed`].
    pub fn read_only(dir: impl Into<PathBuf>) -> FileBlobs {
        FileBlobs {
            dir: dir.into(),
            writable: false,
        }
    }

    fn path(dir: &Path, sha256: &str) -> PathBuf {
        dir.join(&sha256[..2]).join(sha256)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn write_file(dir: &Path, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = FileBlobs::path(dir, sha256);
    let parent = path.parent().unwrap_or(dir);
    if path.is_file() {
        // Stored before, perhaps by a writer that crashed before its directory was synced.
        return sync_dir(parent);
    }
    if !parent.is_dir() {
        // New directories are entries of their parents, which must reach the disk too.
        let new_root = !dir.is_dir();
        std::fs::create_dir_all(parent)?;
        sync_dir(dir)?;
        if new_root && let Some(above) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(above)?;
        }
    }
    let mut temp = tempfile::NamedTempFile::new_in(parent)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(&path).map_err(|e| e.error)?;
    sync_dir(parent)
}

#[async_trait]
impl BlobStore for FileBlobs {
    async fn put(&self, bytes: Vec<u8>) -> Result<String, StoreError> {
        if !self.writable {
            return Err(StoreError::Closed);
        }
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let sha256 = blob_hash(&bytes);
            write_file(&dir, &sha256, &bytes).map(|()| sha256)
        })
        .await
        .map_err(StoreError::backend)?
        .map_err(StoreError::backend)
    }

    async fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_blob_hash(sha256) {
            return Ok(None);
        }
        let path = FileBlobs::path(&self.dir, sha256);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::backend(e)),
        }
    }
}
