//! Signed anchors of the hash chain.
//!
//! The chain alone is unkeyed: whoever can write the store can rewrite an event and recompute
//! every hash after it, and `audit verify` still passes. An anchor is the head of the chain —
//! position and hash — signed with an Ed25519 key that is kept outside the store. A rewrite
//! changes the hash at every anchored position after it, and without the key nobody can sign new
//! anchors, so `audit verify --anchors` names the first anchor the log no longer matches.
//!
//! Anchors are kept one JSON object per line (`position`, `head_hash`, `previous`, `signed_at`,
//! `public_key`, `signature`). Each names the anchor before it of the same key (`previous`: the
//! SHA-256 of its signature, zeros for the first), so anchors removed from the middle or the start
//! of the file, or reordered, are detected; anchors removed from its end are not, which is why
//! the file belongs on other machines too. The signed bytes are [`Anchor::message`], a line of
//! text, so anyone can check an anchor without Switchboard, e.g. with
//! `openssl pkeyutl -verify -pubin -inkey public.pem -rawin -in message -sigfile sig`. Keys are
//! PKCS#8 PEM files, as `openssl genpkey -algorithm ed25519` writes them (or
//! `switchboard audit keygen`); public keys are PEM files or 64 hexadecimal digits.
//!
//! Signing holds an exclusive lock on the anchors file while it checks that nobody appended since
//! it read it and appends, so the server and `audit anchor` can share one file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard_store::chain::{self, Checkpoint};
use switchboard_store::{EventStore, Position};

use crate::support::refuse;

/// What the first anchor of a key names as the anchor before it.
const NO_PREVIOUS: [u8; 32] = [0; 32];

/// One signed head of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The position of the last event it covers.
    pub position: Position,
    /// That event's hash.
    pub head_hash: [u8; 32],
    /// The [`Anchor::digest`] of the anchor before it of the same key; zeros for the first.
    pub previous: [u8; 32],
    /// When it was signed (to the microsecond).
    pub signed_at: DateTime<Utc>,
    /// The key that signed it.
    pub public_key: VerifyingKey,
    /// The signature of [`Anchor::message`].
    pub signature: Signature,
}

impl Anchor {
    /// Signs `head` now, after `previous` (the key's last anchor).
    pub fn sign(key: &SigningKey, head: Checkpoint, previous: Option<&Anchor>) -> Anchor {
        let now = Utc::now();
        let signed_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let previous = previous.map_or(NO_PREVIOUS, Anchor::digest);
        let message = message(head.position, &head.hash, &previous, signed_at);
        Anchor {
            position: head.position,
            head_hash: head.hash,
            previous,
            signed_at,
            public_key: key.verifying_key(),
            signature: key.sign(message.as_bytes()),
        }
    }

    /// What the next anchor names as its previous one: the SHA-256 of this one's signature.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.signature.to_bytes()).into()
    }

    /// The bytes the signature covers: one line of text, e.g. `switchboard-anchor/1
    /// position=42 head=<64 hex digits> previous=<64 hex digits>
    /// signed-at=2026-12-06T20:00:00.000000Z`.
    pub fn message(&self) -> String {
        message(
            self.position,
            &self.head_hash,
            &self.previous,
            self.signed_at,
        )
    }

    /// Whether `key` signed this anchor.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), String> {
        if &self.public_key != key {
            return Err(format!(
                "it was signed by another key ({})",
                hex::encode(self.public_key.as_bytes())
            ));
        }
        key.verify(self.message().as_bytes(), &self.signature)
            .map_err(|_| "its signature does not verify: the anchor was altered".to_owned())
    }

    /// The anchor as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        let line = AnchorLine {
            position: self.position.0,
            head_hash: hex::encode(self.head_hash),
            previous: hex::encode(self.previous),
            signed_at: self.signed_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            public_key: hex::encode(self.public_key.as_bytes()),
            signature: hex::encode(self.signature.to_bytes()),
        };
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Parses one line of an anchors file.
    pub fn from_line(line: &str) -> Result<Anchor, String> {
        let line: AnchorLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let head_hash = hex_array::<32>(&line.head_hash).map_err(|e| format!("head_hash {e}"))?;
        let previous = hex_array::<32>(&line.previous).map_err(|e| format!("previous {e}"))?;
        let public_key = hex_array::<32>(&line.public_key)
            .map_err(|e| format!("public_key {e}"))
            .and_then(|bytes| {
                VerifyingKey::from_bytes(&bytes)
                    .map_err(|_| "public_key is not an Ed25519 public key".to_owned())
            })?;
        let signature = hex_array::<64>(&line.signature)
            .map(|bytes| Signature::from_bytes(&bytes))
            .map_err(|e| format!("signature {e}"))?;
        let signed_at = DateTime::parse_from_rfc3339(&line.signed_at)
            .map_err(|e| format!("signed_at is not an RFC 3339 time: {e}"))?
            .with_timezone(&Utc);
        Ok(Anchor {
            position: Position(line.position),
            head_hash,
            previous,
            signed_at,
            public_key,
            signature,
        })
    }
}

fn message(
    position: Position,
    head: &[u8; 32],
    previous: &[u8; 32],
    signed_at: DateTime<Utc>,
) -> String {
    format!(
        "switchboard-anchor/1 position={} head={} previous={} signed-at={}",
        position.0,
        hex::encode(head),
        hex::encode(previous),
        signed_at.to_rfc3339_opts(SecondsFormat::Micros, true)
    )
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorLine {
    position: u64,
    head_hash: String,
    previous: String,
    signed_at: String,
    public_key: String,
    signature: String,
}

fn hex_array<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(text).map_err(|_| "is not hexadecimal".to_owned())?;
    bytes
        .try_into()
        .map_err(|_| format!("is not {} hexadecimal digits", N * 2))
}

/// A new signing key, written to `path` as PKCS#8 PEM, readable by its owner only; refused when
/// the file exists.
pub fn generate_key(path: &Path) -> anyhow::Result<SigningKey> {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the key")?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            refuse!(
                "{} exists already: keys are never overwritten",
                path.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

/// The public key as PEM (SubjectPublicKeyInfo), as `openssl pkey -pubout` writes it.
pub fn public_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
}

/// Reads a signing key: a PKCS#8 PEM file.
pub fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => refuse!("cannot read the signing key {}: {e}", path.display()),
    };
    match SigningKey::from_pkcs8_pem(&text) {
        Ok(key) => Ok(key),
        Err(e) => refuse!(
            "{} is not an Ed25519 private key in PKCS#8 PEM (as `switchboard audit keygen` or \
             `openssl genpkey -algorithm ed25519` write): {e}",
            path.display()
        ),
    }
}

/// Reads a public key given as 64 hexadecimal digits or as the path of a PEM file.
pub fn read_public_key(given: &str) -> anyhow::Result<VerifyingKey> {
    if let Ok(bytes) = hex_array::<32>(given.trim()) {
        return match VerifyingKey::from_bytes(&bytes) {
            Ok(key) => Ok(key),
            Err(_) => refuse!("--public-key: {given} is not an Ed25519 public key"),
        };
    }
    let text = match std::fs::read_to_string(given) {
        Ok(text) => text,
        Err(e) => refuse!(
            "--public-key: {given} is neither 64 hexadecimal digits nor a readable file: {e}"
        ),
    };
    match VerifyingKey::from_public_key_pem(&text) {
        Ok(key) => Ok(key),
        Err(e) => refuse!("--public-key: {given} is not an Ed25519 public key in PEM: {e}"),
    }
}

/// An anchors file as read.
#[derive(Debug, Default)]
pub struct AnchorsFile {
    /// Its anchors, with their line numbers, in file order.
    pub anchors: Vec<(usize, Anchor)>,
    /// Lines that are not anchors, with why.
    pub malformed: Vec<(usize, String)>,
    /// Where an unfinished last line starts (an append cut short by a crash): not an anchor, and
    /// cut off before the next append.
    pub torn_tail: Option<u64>,
    /// The file's length when read.
    len: u64,
}

impl AnchorsFile {
    /// Checks the anchors of `key`, in file order: each signed by it, following the one before
    /// it, never going back in position. Returns the last (the one the next anchor follows), or
    /// what is wrong, naming the line.
    pub fn chain_of(&self, key: &VerifyingKey) -> Result<Option<&Anchor>, String> {
        let mut previous: Option<&Anchor> = None;
        for (line, anchor) in &self.anchors {
            if &anchor.public_key != key {
                continue;
            }
            anchor
                .verify_signature(key)
                .map_err(|reason| format!("{}: {reason}", describe(*line, anchor)))?;
            if anchor.previous != previous.map_or(NO_PREVIOUS, Anchor::digest) {
                return Err(format!(
                    "{} does not follow the anchor before it in the file: anchors were removed, \
                     reordered or inserted",
                    describe(*line, anchor)
                ));
            }
            if let Some(before) = previous
                && anchor.position < before.position
            {
                return Err(format!(
                    "{} goes back from position {}",
                    describe(*line, anchor),
                    before.position
                ));
            }
            previous = Some(anchor);
        }
        Ok(previous)
    }

    /// Refuses a file with lines that are not anchors, naming the first.
    pub fn refuse_malformed(&self, path: &Path) -> anyhow::Result<()> {
        if let Some((line, why)) = self.malformed.first() {
            refuse!("{} line {line}: not an anchor: {why}", path.display());
        }
        Ok(())
    }
}

/// Reads an anchors file; a missing file has no anchors.
pub fn read_anchors(path: &Path) -> anyhow::Result<AnchorsFile> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    }
    Ok(parse_anchors(&bytes))
}

fn parse_anchors(bytes: &[u8]) -> AnchorsFile {
    let mut file = AnchorsFile {
        len: bytes.len() as u64,
        ..AnchorsFile::default()
    };
    let mut offset = 0u64;
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let start = offset;
        offset += line.len() as u64 + 1;
        let last = i + 1 == count;
        let text = String::from_utf8_lossy(line);
        if text.trim().is_empty() {
            continue;
        }
        match Anchor::from_line(&text) {
            Ok(anchor) => file.anchors.push((i + 1, anchor)),
            // The last line, without its newline, cut short: an append that did not finish.
            Err(_)
                if last
                    && serde_json::from_str::<serde_json::Value>(&text)
                        .is_err_and(|e| e.is_eof()) =>
            {
                file.torn_tail = Some(start);
            }
            Err(why) => file.malformed.push((i + 1, why)),
        }
    }
    file
}

/// Appends `anchor` to the file at `path` (created when missing) and makes it durable, provided
/// that `expected` is still the last anchor of its key there; otherwise, appends nothing and
/// returns false (someone else anchored meanwhile). Holds an exclusive lock on the file
/// throughout; cuts off a torn last line first.
pub fn append_anchor(
    path: &Path,
    anchor: &Anchor,
    expected: Option<&Anchor>,
) -> anyhow::Result<bool> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    let current = parse_anchors(&bytes);
    match current.chain_of(&anchor.public_key) {
        Ok(last) if last == expected => {}
        Ok(_) => return Ok(false),
        Err(reason) => refuse!("{}: {reason}", path.display()),
    }
    let mut end = current.len;
    if let Some(torn) = current.torn_tail {
        file.set_len(torn)
            .with_context(|| format!("cutting the torn last line of {}", path.display()))?;
        end = torn;
    }
    let mut line = String::new();
    if end > 0 && bytes.get(end as usize - 1) != Some(&b'\n') {
        line.push('\n');
    }
    line.push_str(&anchor.to_line());
    line.push('\n');
    file.seek(std::io::SeekFrom::Start(end))
        .and_then(|_| file.write_all(line.as_bytes()))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("appending to {}", path.display()))?;
    if current.len == 0 {
        // A new file: its directory entry must be durable too.
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("syncing {}", parent.display()))?;
    }
    Ok(true)
}

/// Why no anchor was signed.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The log does not verify after the last anchor (or from the start), or no longer has the
    /// event the last anchor signed: signing its head would vouch for a rewritten history.
    #[error("not signed: the chain is broken at position {position}: {reason}")]
    Broken {
        /// Where.
        position: Position,
        /// What is wrong there.
        reason: String,
    },
    /// The anchors file's anchors of the key do not hold together (see
    /// [`AnchorsFile::chain_of`]): signing after them would hide that.
    #[error("not signed: the anchors file was changed: {0}")]
    Anchors(String),
    /// The log is shorter than the last anchor.
    #[error(
        "not signed: the log ends at position {head}, before the last anchor's position {anchored}: events were removed"
    )]
    Truncated {
        /// The log's head.
        head: Position,
        /// The last anchor's position.
        anchored: Position,
    },
    /// Reading the store failed.
    #[error("reading the event log: {0}")]
    Store(#[from] switchboard_store::StoreError),
}

/// Checks the log against `last` (the last anchor of the key, or the start) and signs its head;
/// `None` when nothing was appended since `last` (or the log is empty).
pub async fn sign_head(
    store: &dyn EventStore,
    key: &SigningKey,
    last: Option<&Anchor>,
) -> Result<Option<Anchor>, AnchorError> {
    let from = match last {
        Some(anchor) => {
            check_anchored_event(store, anchor).await?;
            Checkpoint {
                position: anchor.position,
                hash: anchor.head_hash,
            }
        }
        None => Checkpoint::GENESIS,
    };
    let walked = chain::walk(store, from, |_| Ok(())).await?;
    if let Some((position, reason)) = walked.broken {
        let reason = match last {
            Some(anchor) if position == anchor.position.next() => format!(
                "{reason}: the log no longer continues the last anchor (position {}, signed at \
                 {}): it was changed at or before that position",
                anchor.position, anchor.signed_at
            ),
            _ => reason,
        };
        return Err(AnchorError::Broken { position, reason });
    }
    if walked.events == 0 {
        return Ok(None);
    }
    Ok(Some(Anchor::sign(key, walked.last, last)))
}

/// Checks that the event `anchor` signed is still there, with the hash it signed, and that its
/// stored bytes still give that hash.
async fn check_anchored_event(store: &dyn EventStore, anchor: &Anchor) -> Result<(), AnchorError> {
    let position = anchor.position;
    let head = store.head().await?;
    if head < position {
        return Err(AnchorError::Truncated {
            head,
            anchored: position,
        });
    }
    if position == Position::START {
        return Ok(());
    }
    let missing = || AnchorError::Broken {
        position,
        reason: "the anchored event is missing".to_owned(),
    };
    // The anchored event, and the hash it chains to.
    let (previous, event) = if position.0 == 1 {
        let mut events = store.read_all(Position::START, 1).await?;
        (chain::GENESIS, events.pop().ok_or_else(missing)?)
    } else {
        let mut events = store.read_all(Position(position.0 - 2), 2).await?;
        let event = events.pop().ok_or_else(missing)?;
        let before = events.pop().ok_or_else(missing)?;
        (before.hash, event)
    };
    if event.position != position {
        return Err(missing());
    }
    if event.hash != anchor.head_hash || event.canonical().hash(&previous) != event.hash {
        return Err(AnchorError::Broken {
            position,
            reason: format!(
                "the event the last anchor signed (signed at {}) is no longer the one it signed: \
                 the log at or before it was changed",
                anchor.signed_at
            ),
        });
    }
    Ok(())
}

/// The outcome of checking a log against its anchors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnchoredVerification {
    /// The chain verifies and every anchor of the key holds.
    Intact {
        /// Events checked.
        events: u64,
        /// The head's hash (hex).
        head_hash: String,
        /// Anchors checked.
        anchors: usize,
        /// The last of them.
        last: Box<Anchor>,
        /// Anchors of other keys, not checked.
        other_keys: usize,
    },
    /// The first anchor that fails, or the first link of the chain that does.
    Failed {
        /// What failed, in a sentence naming the anchor's line and position.
        reason: String,
    },
}

/// Walks the whole chain and checks every anchor of `key` in the file: its signature, that it
/// follows the anchor before it, and that the log's hash at its position is the one it signed.
/// A file with no anchor of the key, or with lines that are not anchors, fails.
pub async fn verify(
    store: &dyn EventStore,
    file: &AnchorsFile,
    key: &VerifyingKey,
) -> Result<AnchoredVerification, switchboard_store::StoreError> {
    let failed = |reason: String| Ok(AnchoredVerification::Failed { reason });
    if let Some((line, why)) = file.malformed.first() {
        return failed(format!(
            "line {line} of the anchors file is not an anchor: {why}"
        ));
    }
    let last = match file.chain_of(key) {
        Ok(Some(last)) => last,
        Ok(None) => {
            return failed(format!(
                "the anchors file has no anchor signed by this key ({} of other keys)",
                file.anchors.len()
            ));
        }
        Err(reason) => return failed(reason),
    };
    let mut mine: Vec<&(usize, Anchor)> = file
        .anchors
        .iter()
        .filter(|(_, anchor)| &anchor.public_key == key)
        .collect();
    let other_keys = file.anchors.len() - mine.len();
    mine.sort_by_key(|(line, anchor)| (anchor.position, *line));
    let mut next = 0;
    let mut held: Option<&Anchor> = None;
    let mut anchor_failed = false;
    let walked = chain::walk(store, Checkpoint::GENESIS, |here| {
        while let Some((line, anchor)) = mine.get(next)
            && anchor.position == here.position
        {
            if anchor.head_hash != here.hash {
                anchor_failed = true;
                return Err(format!(
                    "{} does not hold: the log's hash at position {} is {}, the anchor signed {}; \
                     history up to position {} was rewritten after it was signed{}",
                    describe(*line, anchor),
                    here.position,
                    hex::encode(here.hash),
                    hex::encode(anchor.head_hash),
                    here.position,
                    since(held)
                ));
            }
            held = Some(anchor);
            next += 1;
        }
        Ok(())
    })
    .await?;
    if let Some((position, reason)) = walked.broken {
        return failed(if anchor_failed {
            reason
        } else {
            format!("chain broken at position {position}: {reason}")
        });
    }
    if let Some((line, anchor)) = mine.get(next) {
        return failed(format!(
            "{} does not hold: the log ends at position {}, before the anchored position; \
             events were removed{}",
            describe(*line, anchor),
            walked.last.position,
            since(held)
        ));
    }
    Ok(AnchoredVerification::Intact {
        events: walked.events,
        head_hash: hex::encode(walked.last.hash),
        anchors: mine.len(),
        last: Box::new(last.clone()),
        other_keys,
    })
}

fn describe(line: usize, anchor: &Anchor) -> String {
    format!(
        "the anchor on line {line} (position {}, signed at {})",
        anchor.position,
        anchor.signed_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

fn since(held: Option<&Anchor>) -> String {
    match held {
        Some(anchor) => format!(
            " (the anchor before it, at position {}, holds)",
            anchor.position
        ),
        None => String::new(),
    }
}

/// Reads the file, checks the log since the key's last anchor there, signs the head and appends
/// the anchor, again if someone else anchored meanwhile. `Ok(None)`: nothing to sign.
pub async fn anchor_file(
    store: &dyn EventStore,
    key: &SigningKey,
    path: &Path,
) -> anyhow::Result<Result<Option<Anchor>, AnchorError>> {
    for _ in 0..5 {
        let file = read_blocking(path.to_owned()).await?;
        file.refuse_malformed(path)?;
        let last = match file.chain_of(&key.verifying_key()) {
            Ok(last) => last.cloned(),
            Err(reason) => return Ok(Err(AnchorError::Anchors(reason))),
        };
        let anchor = match sign_head(store, key, last.as_ref()).await {
            Ok(Some(anchor)) => anchor,
            other => return Ok(other),
        };
        let (target, written) = (path.to_owned(), anchor.clone());
        let appended =
            tokio::task::spawn_blocking(move || append_anchor(&target, &written, last.as_ref()))
                .await
                .context("appending the anchor")??;
        if appended {
            return Ok(Ok(Some(anchor)));
        }
    }
    anyhow::bail!(
        "{} kept changing while anchoring: another signer is appending to it",
        path.display()
    )
}

async fn read_blocking(path: PathBuf) -> anyhow::Result<AnchorsFile> {
    tokio::task::spawn_blocking(move || read_anchors(&path))
        .await
        .context("reading the anchors file")?
}

/// The server's anchoring (`audit.anchor_signing_key`): signs the head every `anchor_interval`
/// when it moved, and once more on shutdown. It refuses to go on, loudly, when an anchor it
/// signed has gone from the file.
#[derive(Debug)]
pub struct Anchoring {
    store: std::sync::Arc<dyn EventStore>,
    key: SigningKey,
    path: PathBuf,
    interval: std::time::Duration,
    /// The last anchor this process signed.
    signed: Option<Anchor>,
}

impl Anchoring {
    /// The configured anchoring, its key read; `None` when no key is configured. `store` is read
    /// as stored (the chain covers the stored bytes).
    pub fn open(
        config: &crate::Config,
        store: std::sync::Arc<dyn EventStore>,
    ) -> anyhow::Result<Option<Anchoring>> {
        let Some(key_path) = &config.audit.anchor_signing_key else {
            return Ok(None);
        };
        Ok(Some(Anchoring {
            store,
            key: read_signing_key(key_path)?,
            path: config.anchors_file(),
            interval: config.audit.anchor_interval,
            signed: None,
        }))
    }

    /// Signs the head now and every interval until `stop` resolves, then once more.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tracing::info!(file = %self.path.display(), interval = ?self.interval,
            public_key = %hex::encode(self.key.verifying_key().as_bytes()),
            "anchoring the hash chain");
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = std::pin::pin!(stop);
        loop {
            let stopping = tokio::select! {
                _ = ticks.tick() => false,
                () = &mut stop => true,
            };
            if let Err(error) = self.once().await {
                tracing::error!(error = %format!("{error:#}"), "the hash chain was not anchored");
            }
            if stopping {
                break;
            }
        }
    }

    async fn once(&mut self) -> anyhow::Result<()> {
        if let Some(signed) = &self.signed {
            let file = read_blocking(self.path.clone()).await?;
            if !file.anchors.iter().any(|(_, anchor)| anchor == signed) {
                anyhow::bail!(
                    "the anchor this server signed at position {} is gone from {}: anchors were \
                     removed, so the log is not anchored again until someone looks",
                    signed.position,
                    self.path.display()
                );
            }
        }
        match anchor_file(self.store.as_ref(), &self.key, &self.path).await? {
            Ok(Some(anchor)) => {
                tracing::info!(position = %anchor.position,
                    head_hash = %hex::encode(anchor.head_hash), "hash chain anchored");
                self.signed = Some(anchor);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}
