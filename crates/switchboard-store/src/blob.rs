//! The blob store beside the log: attachments and raw e-mails, content-addressed by SHA-256.
//!
//! Events carry references to blobs (hash, size, name, type), never their bytes, so the log
//! stays small and a blob can be deleted (a person's erasure, [`BlobStore::delete`]) without
//! touching history. Storing the same bytes twice stores them once. Every backend keeps its
//! blobs where it keeps its log: a table of the embedded store's event database (which still
//! reads, and deletes, the files under its directory, [`FileBlobs`], that earlier versions
//! wrote), a table in PostgreSQL.

use std::fmt::Debug;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// Blobs by content.
///
/// A blob may be kept as a range of another ([`Blob::part_of`], `blob_parts` in both backends):
/// the first message to bring an attachment in holds its bytes for every later one with the
/// same content, whoever sent it. So a blob named as a source must not be deleted (a person's
/// erasure) before each part standing in it is stored whole or is itself deleted: what
/// [`delete`](BlobStore::delete) does, in the transaction that deletes the source.
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

    /// Deletes the blobs named in `sha256s` (a person's erasure) and returns how many of them
    /// were stored. Names that are not stored, or are not blob names, are passed over, and a
    /// name given twice counts once, so repeating a delete is harmless (it returns 0). Returns
    /// once the deletion is durable; after an error it may be done or not: repeat the call.
    ///
    /// - A part (kept as a range of another blob) is deleted alone: its source stays.
    /// - A blob that parts stand in is deleted after each of those parts that this call does
    ///   not delete too is stored whole (its range decoded and checked against its name), in
    ///   the same transaction, so no crash leaves a part whose source is gone. The parts this
    ///   call deletes too are simply deleted. A part whose range does not decode to its name
    ///   refuses the call with [`StoreError::CorruptBlob`] and nothing is deleted: its bytes
    ///   are lost already, and naming it in the call too deletes it with its source.
    /// - A put or an append carrying one of the blobs at the same time is ordered wholly before
    ///   the delete (which then deletes it) or wholly after (which stores it again); each
    ///   backend says where the line falls.
    /// - Where the deleted bytes may still be found (free pages, a write-ahead log, dead rows)
    ///   depends on the backend, which says so.
    async fn delete(&self, sha256s: &[String]) -> Result<u64, StoreError>;
}

/// Bytes on their way to a blob store, named by their SHA-256 (computed when made, on the
/// caller's thread rather than the store's writer). Cheap to clone.
///
/// A blob that is a part of another one (an e-mail's attachment, as it stands base64-encoded
/// in the original message) knows where ([`Blob::part_of`]): a store keeps such a blob as a
/// reference to its range of the original, so the original's bytes are not stored twice.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    sha256: String,
    bytes: Arc<Vec<u8>>,
    within: Option<Within>,
}

/// Where a blob's bytes stand inside another blob: `source[start..end]`, in `encoding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Within {
    /// The SHA-256 of the blob that holds them.
    pub source: String,
    /// The first byte of the range in the source.
    pub start: u64,
    /// The byte after the range.
    pub end: u64,
    /// How the range encodes the bytes.
    pub encoding: PartEncoding,
}

/// How a range of a blob encodes another blob's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartEncoding {
    /// The range is the bytes.
    Identity,
    /// MIME base64: line breaks and blanks between the characters, padding at the end.
    Base64,
}

impl PartEncoding {
    /// The name a store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            PartEncoding::Identity => "identity",
            PartEncoding::Base64 => "base64",
        }
    }

    /// The encoding named `name` by [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<PartEncoding> {
        match name {
            "identity" => Some(PartEncoding::Identity),
            "base64" => Some(PartEncoding::Base64),
            _ => None,
        }
    }
}

impl PartEncoding {
    /// The bytes `range` encodes, or `None` if it does not decode.
    pub fn decode(self, range: &[u8]) -> Option<Vec<u8>> {
        match self {
            PartEncoding::Identity => Some(range.to_vec()),
            PartEncoding::Base64 => {
                use base64::Engine as _;
                let mut compact = Vec::with_capacity(range.len());
                compact.extend(
                    range
                        .iter()
                        .copied()
                        .filter(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t')),
                );
                base64::engine::general_purpose::STANDARD
                    .decode(&compact)
                    .ok()
            }
        }
    }
}

impl PartEncoding {
    /// Whether `range` decodes to exactly `expected`, as [`decode`](Self::decode) would, but a
    /// piece at a time on the stack: checking that an attachment stands in its original costs
    /// no copy of either (a 200 KB attachment's check allocated 350 KB of fresh pages).
    pub fn decodes_to(self, range: &[u8], expected: &[u8]) -> bool {
        match self {
            PartEncoding::Identity => range == expected,
            PartEncoding::Base64 => base64_decodes_to(range, expected),
        }
    }
}

/// How many base64 characters [`base64_decodes_to`] decodes at once (a multiple of 4).
const BASE64_PIECE: usize = 4096;

fn base64_decodes_to(range: &[u8], expected: &[u8]) -> bool {
    let mut check = Base64Check {
        piece: [0; BASE64_PIECE],
        filled: 0,
        decoded: [0; BASE64_PIECE / 4 * 3],
        matched: 0,
        expected,
    };
    // The characters come in runs between blanks (lines of 76, usually), copied a run at a time.
    range
        .split(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        .all(|run| check.feed(run))
        && check.flush(true)
}

/// [`base64_decodes_to`]'s state: characters gathered into a piece, decoded and compared with
/// the expected bytes a piece at a time.
struct Base64Check<'a> {
    piece: [u8; BASE64_PIECE],
    filled: usize,
    decoded: [u8; BASE64_PIECE / 4 * 3],
    matched: usize,
    expected: &'a [u8],
}

impl Base64Check<'_> {
    /// Adds characters; false once what came so far cannot be the expected bytes.
    fn feed(&mut self, mut run: &[u8]) -> bool {
        while !run.is_empty() {
            // A full piece is decoded once more characters follow it: it is not the last.
            if self.filled == BASE64_PIECE && !self.flush(false) {
                return false;
            }
            let n = run.len().min(BASE64_PIECE - self.filled);
            self.piece[self.filled..self.filled + n].copy_from_slice(&run[..n]);
            self.filled += n;
            run = &run[n..];
        }
        true
    }

    /// Decodes the piece gathered and compares it; with `last`, also that nothing expected is
    /// left over.
    fn flush(&mut self, last: bool) -> bool {
        use base64::Engine as _;
        let piece = &self.piece[..self.filled];
        self.filled = 0;
        // Padding is only valid in the last quantum of the whole: decoding everything at once
        // would refuse it anywhere else.
        if !last && piece.contains(&b'=') {
            return false;
        }
        let Ok(length) =
            base64::engine::general_purpose::STANDARD.decode_slice(piece, &mut self.decoded)
        else {
            return false;
        };
        let Some(want) = self.expected.get(self.matched..self.matched + length) else {
            return false;
        };
        if want != &self.decoded[..length] {
            return false;
        }
        self.matched += length;
        !last || self.matched == self.expected.len()
    }
}

impl Within {
    /// The bytes this range of `source` encodes, or `None` if it is out of `source` or does
    /// not decode.
    pub fn decode(&self, source: &[u8]) -> Option<Vec<u8>> {
        let start = usize::try_from(self.start).ok()?;
        let end = usize::try_from(self.end).ok()?;
        self.encoding.decode(source.get(start..end)?)
    }

    /// Whether this range of `source` is in `source` and decodes to exactly `expected`
    /// (without copying either; see [`PartEncoding::decodes_to`]).
    pub fn decodes_to(&self, source: &[u8], expected: &[u8]) -> bool {
        let (Ok(start), Ok(end)) = (usize::try_from(self.start), usize::try_from(self.end)) else {
            return false;
        };
        source
            .get(start..end)
            .is_some_and(|range| self.encoding.decodes_to(range, expected))
    }

    /// A part as a store keeps it (`blob_parts`: source, range, encoding name), checked: a
    /// negative or inverted range or an unknown encoding is [`StoreError::CorruptBlob`].
    pub fn from_row(
        sha256: &str,
        source: String,
        start: i64,
        end: i64,
        encoding: &str,
    ) -> Result<Within, StoreError> {
        let range = u64::try_from(start)
            .ok()
            .zip(u64::try_from(end).ok())
            .filter(|(start, end)| start <= end);
        match (range, PartEncoding::parse(encoding)) {
            (Some((start, end)), Some(encoding)) => Ok(Within {
                source,
                start,
                end,
                encoding,
            }),
            _ => Err(StoreError::CorruptBlob {
                sha256: sha256.to_owned(),
                reason: format!("its part row is damaged ({start}..{end}, {encoding:?})"),
            }),
        }
    }

    /// The bytes of the blob named `sha256` that stands here, from `range`: the bytes
    /// `source[start..end]` as the store fetched them (`None`: the source is not stored).
    /// Decoded and checked against the name; anything else is [`StoreError::CorruptBlob`], never
    /// other bytes. A source is deleted only after the parts that stand in it are stored whole
    /// (see `crate::blob`), so a missing one means damage too.
    pub fn read_range(&self, sha256: &str, range: Option<&[u8]>) -> Result<Vec<u8>, StoreError> {
        let corrupt = |reason: String| StoreError::CorruptBlob {
            sha256: sha256.to_owned(),
            reason,
        };
        let Some(range) = range else {
            return Err(corrupt(format!(
                "its source blob {} is missing",
                self.source
            )));
        };
        if range.len() as u64 != self.end - self.start {
            return Err(corrupt(format!(
                "its source blob {} is shorter than its range {}..{}",
                self.source, self.start, self.end
            )));
        }
        match self.encoding.decode(range) {
            Some(bytes) if blob_hash(&bytes) == sha256 => Ok(bytes),
            _ => Err(corrupt(format!(
                "its range {}..{} of blob {} does not decode to it",
                self.start, self.end, self.source
            ))),
        }
    }
}

impl Blob {
    /// `bytes`, hashed.
    pub fn new(bytes: Vec<u8>) -> Blob {
        Blob {
            sha256: blob_hash(&bytes),
            bytes: Arc::new(bytes),
            within: None,
        }
    }

    /// `bytes`, hashed, known to stand in `source` at `within` (whose `source` is set here)
    /// when decoding that range gives exactly `bytes`; otherwise a blob of its own.
    pub fn part_of(bytes: Vec<u8>, source: &Blob, mut within: Within) -> Blob {
        within.source = source.sha256.clone();
        let mut blob = Blob::new(bytes);
        if within.decodes_to(source.bytes(), blob.bytes()) {
            blob.within = Some(within);
        }
        blob
    }

    /// Where the bytes stand in another blob, if they do.
    pub fn within(&self) -> Option<&Within> {
        self.within.as_ref()
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
            .field("within", &self.within)
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

/// The blob names among `names`, each once, in order: what [`BlobStore::delete`] works on (a
/// backend that locks rows locks them in this order, as every transaction of it does).
pub fn distinct_blob_names(names: &[String]) -> Vec<String> {
    let mut names: Vec<String> = names
        .iter()
        .filter(|name| is_blob_hash(name))
        .cloned()
        .collect();
    names.sort_unstable();
    names.dedup();
    names
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

    /// Blobs under `dir`, for reading only (a tool beside a running server): `put` and
    /// `delete` fail with [`StoreError::Closed`].
    pub fn read_only(dir: impl Into<PathBuf>) -> FileBlobs {
        FileBlobs {
            dir: dir.into(),
            writable: false,
        }
    }

    fn path(dir: &Path, sha256: &str) -> PathBuf {
        dir.join(&sha256[..2]).join(sha256)
    }

    /// Removes the files of the blobs named in `sha256s` and returns the names that had one
    /// ([`BlobStore::delete`] counts them). Durable when it returns: each directory a file left
    /// is synced. The file system may keep the freed blocks until it reuses them; unlike the
    /// tables' pages, they are not overwritten.
    pub async fn remove(&self, sha256s: &[String]) -> Result<Vec<String>, StoreError> {
        if !self.writable {
            return Err(StoreError::Closed);
        }
        let names = distinct_blob_names(sha256s);
        if names.is_empty() {
            return Ok(names);
        }
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || remove_files(&dir, names))
            .await
            .map_err(StoreError::backend)?
            .map_err(StoreError::backend)
    }
}

fn remove_files(dir: &Path, names: Vec<String>) -> std::io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in names {
        let path = FileBlobs::path(dir, &name);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(path.parent().unwrap_or(dir))?;
                removed.push(name);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
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

    async fn delete(&self, sha256s: &[String]) -> Result<u64, StoreError> {
        Ok(self.remove(sha256s).await?.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    /// MIME base64 of `bytes`: 76 characters a line, CRLF between lines.
    fn mime_base64(bytes: &[u8]) -> Vec<u8> {
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        text.as_bytes()
            .chunks(76)
            .collect::<Vec<_>>()
            .join(&b"\r\n"[..])
    }

    /// The piecewise check answers as decoding the whole range and comparing does, for ranges
    /// around the piece size, damaged ranges, and other bytes expected.
    #[test]
    fn the_piecewise_check_agrees_with_decoding_the_whole() {
        let mut checked = 0;
        for length in [0, 1, 2, 3, 100, 3071, 3072, 3073, 6144, 6145, 20_000] {
            let bytes: Vec<u8> = (0..length).map(|_| rand::random()).collect();
            let encoded = mime_base64(&bytes);
            let mut ranges = vec![encoded.clone()];
            if !encoded.is_empty() {
                // Padding in the middle, a bad character, a character short, one too many.
                let mut padded = encoded.clone();
                padded[encoded.len() / 2] = b'=';
                let mut bad = encoded.clone();
                bad[encoded.len() / 3] = b'*';
                ranges.push(padded);
                ranges.push(bad);
                ranges.push(encoded[..encoded.len() - 1].to_vec());
                ranges.push([&encoded[..], b"A"].concat());
            }
            let mut expectations = vec![bytes.clone(), [&bytes[..], b"x"].concat()];
            if let Some((_, shorter)) = bytes.split_last() {
                expectations.push(shorter.to_vec());
                let mut other = bytes.clone();
                other[length / 2] ^= 1;
                expectations.push(other);
            }
            assert!(PartEncoding::Base64.decodes_to(&ranges[0], &expectations[0]));
            checked += 1;
            for range in &ranges {
                for expected in &expectations {
                    let whole = PartEncoding::Base64.decode(range).as_ref() == Some(expected);
                    assert_eq!(
                        PartEncoding::Base64.decodes_to(range, expected),
                        whole,
                        "length {length}, range of {} characters",
                        range.len()
                    );
                }
            }
        }
        assert_eq!(checked, 11);
        assert!(PartEncoding::Identity.decodes_to(b"abc", b"abc"));
        assert!(!PartEncoding::Identity.decodes_to(b"abc", b"abd"));
    }
}
