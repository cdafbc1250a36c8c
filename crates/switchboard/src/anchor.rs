//! Signed anchors of the hash chain.
//!
//! The chain alone is unkeyed: whoever can write the store can rewrite an event and recompute
//! every hash after it, and `audit verify` still passes. An anchor is the head of the chain —
//! position and hash — signed with an Ed25519 key that is kept outside the store. A rewrite
//! changes the hash at every anchored position after it, and without the key nobody can sign new
//! anchors, so `audit verify --anchors` names the first anchor the log no longer matches.
//!
//! Anchors are kept one JSON object per line (`position`, `head_hash`, `signed_at`,
//! `public_key`, `signature`, the last three hex or RFC 3339). The signed bytes are
//! [`Anchor::message`], a line of text, so anyone can check an anchor without Switchboard, e.g.
//! with `openssl pkeyutl -verify -pubin -inkey public.pem -rawin -in message -sigfile sig`.
//! Keys are PKCS#8 PEM files, as `openssl genpkey -algorithm ed25519` writes them (or
//! `switchboard audit keygen`); public keys are PEM files or 64 hexadecimal digits.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use switchboard_store::chain::{self, Checkpoint};
use switchboard_store::{EventStore, Position};

use crate::support::refuse;

/// One signed head of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The position of the last event it covers.
    pub position: Position,
    /// That event's hash.
    pub head_hash: [u8; 32],
    /// When it was signed (to the microsecond).
    pub signed_at: DateTime<Utc>,
    /// The key that signed it.
    pub public_key: VerifyingKey,
    /// The signature of [`Anchor::message`].
    pub signature: Signature,
}

impl Anchor {
    /// Signs `head` now.
    pub fn sign(key: &SigningKey, head: Checkpoint) -> Anchor {
        let now = Utc::now();
        let signed_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let message = message(head.position, &hex::encode(head.hash), signed_at);
        Anchor {
            position: head.position,
            head_hash: head.hash,
            signed_at,
            public_key: key.verifying_key(),
            signature: key.sign(message.as_bytes()),
        }
    }

    /// The bytes the signature covers: one line of text, e.g.
    /// `switchboard-anchor/1 position=42 head=<64 hex digits> signed-at=2026-12-06T20:00:00.000000Z`.
    pub fn message(&self) -> String {
        message(self.position, &hex::encode(self.head_hash), self.signed_at)
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
            signed_at,
            public_key,
            signature,
        })
    }
}

fn message(position: Position, head_hex: &str, signed_at: DateTime<Utc>) -> String {
    format!(
        "switchboard-anchor/1 position={} head={head_hex} signed-at={}",
        position.0,
        signed_at.to_rfc3339_opts(SecondsFormat::Micros, true)
    )
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorLine {
    position: u64,
    head_hash: String,
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

/// Every anchor of a file, with its line number; a missing file has none. A line that is not an
/// anchor is refused, naming it.
pub fn read_anchors(path: &Path) -> anyhow::Result<Vec<(usize, Anchor)>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut anchors = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match Anchor::from_line(&line) {
            Ok(anchor) => anchors.push((i + 1, anchor)),
            Err(e) => refuse!("{} line {}: not an anchor: {e}", path.display(), i + 1),
        }
    }
    Ok(anchors)
}

/// Appends `anchor` to the file (created when missing) and makes it durable.
pub fn append_anchor(path: &Path, anchor: &Anchor) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(format!("{}\n", anchor.to_line()).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("appending to {}", path.display()))
}

/// Why no anchor was signed.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The log does not verify after the last anchor (or from the start): signing its head would
    /// vouch for a rewritten history.
    #[error("not signed: the chain is broken at position {position}: {reason}")]
    Broken {
        /// Where.
        position: Position,
        /// What is wrong there.
        reason: String,
    },
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

/// Walks the log from `last` (the last anchor this key signed, or the start) and signs its head;
/// `None` when nothing was appended since `last` (or the log is empty).
pub async fn sign_head(
    store: &dyn EventStore,
    key: &SigningKey,
    last: Option<&Anchor>,
) -> Result<Option<Anchor>, AnchorError> {
    let from = last.map_or(Checkpoint::GENESIS, |anchor| Checkpoint {
        position: anchor.position,
        hash: anchor.head_hash,
    });
    let head = store.head().await?;
    if head < from.position {
        return Err(AnchorError::Truncated {
            head,
            anchored: from.position,
        });
    }
    let walked = chain::walk(store, from, |_| Ok(())).await?;
    if let Some((position, reason)) = walked.broken {
        let reason = match last {
            Some(anchor) if position == anchor.position.next() => format!(
                "{reason}: the log no longer continues the last anchor (position {}, signed at \
                 {}), so history before it was rewritten",
                anchor.position, anchor.signed_at
            ),
            _ => reason,
        };
        return Err(AnchorError::Broken { position, reason });
    }
    if walked.events == 0 {
        return Ok(None);
    }
    Ok(Some(Anchor::sign(key, walked.last)))
}

/// The last anchor `key` signed, of those read.
pub fn last_signed_by<'a>(
    anchors: &'a [(usize, Anchor)],
    key: &VerifyingKey,
) -> Option<&'a Anchor> {
    anchors
        .iter()
        .map(|(_, anchor)| anchor)
        .filter(|anchor| &anchor.public_key == key && anchor.verify_signature(key).is_ok())
        .max_by_key(|anchor| anchor.position)
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
        /// The last of them, when any.
        last: Option<Box<Anchor>>,
        /// Anchors of other keys, not checked.
        other_keys: usize,
    },
    /// The first anchor that fails, or the first link of the chain that does.
    Failed {
        /// What failed, in a sentence naming the anchor's line and position.
        reason: String,
    },
}

/// Walks the whole chain and checks every anchor of `key` in the file: its signature, and that
/// the log's hash at its position is the one it signed.
pub async fn verify(
    store: &dyn EventStore,
    anchors: &[(usize, Anchor)],
    key: &VerifyingKey,
) -> Result<AnchoredVerification, switchboard_store::StoreError> {
    let mut mine: Vec<&(usize, Anchor)> = Vec::new();
    let mut other_keys = 0;
    for entry in anchors {
        let (line, anchor) = entry;
        if &anchor.public_key != key {
            other_keys += 1;
            continue;
        }
        if let Err(reason) = anchor.verify_signature(key) {
            return Ok(AnchoredVerification::Failed {
                reason: format!("{}: {reason}", describe(*line, anchor)),
            });
        }
        mine.push(entry);
    }
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
        return Ok(AnchoredVerification::Failed {
            reason: if anchor_failed {
                reason
            } else {
                format!("chain broken at position {position}: {reason}")
            },
        });
    }
    if let Some((line, anchor)) = mine.get(next) {
        return Ok(AnchoredVerification::Failed {
            reason: format!(
                "{} does not hold: the log ends at position {}, before the anchored position; \
                 events were removed{}",
                describe(*line, anchor),
                walked.last.position,
                since(held)
            ),
        });
    }
    Ok(AnchoredVerification::Intact {
        events: walked.events,
        head_hash: hex::encode(walked.last.hash),
        anchors: mine.len(),
        last: held.cloned().map(Box::new),
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

/// The server's anchoring (`audit.anchor_signing_key`): signs the head every `anchor_interval`
/// when it moved, and once more on shutdown.
#[derive(Debug)]
pub struct Anchoring {
    store: std::sync::Arc<dyn EventStore>,
    key: SigningKey,
    path: std::path::PathBuf,
    interval: std::time::Duration,
    last: Option<Anchor>,
}

impl Anchoring {
    /// The configured anchoring, its key read and its file checked; `None` when no key is
    /// configured.
    pub fn open(
        config: &crate::Config,
        store: std::sync::Arc<dyn EventStore>,
    ) -> anyhow::Result<Option<Anchoring>> {
        let Some(key_path) = &config.audit.anchor_signing_key else {
            return Ok(None);
        };
        let key = read_signing_key(key_path)?;
        let path = config.anchors_file();
        let last = last_signed_by(&read_anchors(&path)?, &key.verifying_key()).cloned();
        Ok(Some(Anchoring {
            store,
            key,
            path,
            interval: config.audit.anchor_interval,
            last,
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
            self.once().await;
            if stopping {
                break;
            }
        }
    }

    async fn once(&mut self) {
        let anchor = match sign_head(self.store.as_ref(), &self.key, self.last.as_ref()).await {
            Ok(Some(anchor)) => anchor,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, "the hash chain was not anchored");
                return;
            }
        };
        let path = self.path.clone();
        let written = anchor.clone();
        match tokio::task::spawn_blocking(move || append_anchor(&path, &written)).await {
            Ok(Ok(())) => {
                tracing::info!(position = %anchor.position,
                    head_hash = %hex::encode(anchor.head_hash), "hash chain anchored");
                self.last = Some(anchor);
            }
            Ok(Err(error)) => tracing::error!(error = %format!("{error:#}"),
                "the anchor could not be written"),
            Err(error) => tracing::error!(%error, "the anchor could not be written"),
        }
    }
}
