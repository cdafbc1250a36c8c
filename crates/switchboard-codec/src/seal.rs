//! Personal fields sealed with their data subject's key (ADR 0007).
//!
//! [`seal`] replaces each personal field of a payload (as [`proto_events::personal`] classes
//! them) with a marker object holding the field's JSON, encrypted with XChaCha20-Poly1305 under
//! the key of the event's data subject. [`open`] puts the plaintext back, or, when the subject was
//! erased, a redaction of the same shape: strings empty, numbers zero, arrays empty, maps of
//! user-chosen names ([`proto_events::personal::FREE_MAPS`]) empty, other objects with their
//! `kind` tags kept. The store hashes and keeps the sealed bytes, so the chain verifies before and
//! after an erasure, and a copy of the log without the keys reveals no personal field.
//!
//! A marker is the JSON object
//! `{"$sb":"1~<path>~<subject>~<key id>~<sealed>~<redaction>"}`: format version `1`, the
//! field's path, the subject's id, the id of the key (a subject erased and written to again has a
//! new one), base64url (no padding) of the 24-byte nonce followed by the ciphertext and its tag,
//! and base64url of the redaction's JSON. The associated data binds the ciphertext to its event
//! id, path, subject, key id and redaction, and [`open`] checks that a marker sits at the field
//! its path names, so a sealed value cannot be moved to another event or field, nor its
//! redaction changed. JSON escapes a `"` inside a string, so `{"$sb":"` occurs in a payload only
//! where an object with that key begins (and only markers have it: the one free-form map,
//! contact properties, takes names that start with a letter): [`open`] splices markers without
//! parsing the payload, and a payload without one is returned as it is, borrowed.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use memchr::memmem;
use serde_json::Value;
use uuid::Uuid;

/// Where a marker begins, in a payload's bytes.
const MARKER: &[u8] = b"{\"$sb\":\"";

/// The bytes of a marker's nonce, before its ciphertext.
const NONCE_BYTES: usize = 24;

/// The bytes of the Poly1305 tag, after the ciphertext.
const TAG_BYTES: usize = 16;

/// The marker format this module writes.
const FORMAT: &str = "1";

/// A data subject's key, with its id. Its `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey {
    /// The key's id, named in every marker sealed with it.
    pub id: Uuid,
    /// The key.
    pub bytes: [u8; 32],
}

impl SubjectKey {
    /// A new random key with a new id.
    pub fn generate() -> SubjectKey {
        SubjectKey {
            id: Uuid::now_v7(),
            bytes: rand::random(),
        }
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectKey({}, ..)", self.id)
    }
}

/// What the reader has of the key a marker names.
#[derive(Debug)]
pub enum Lookup {
    /// The key: the field opens.
    Key(SubjectKey),
    /// The subject was erased (that key destroyed): the field reads redacted.
    Erased,
    /// Neither: the key store is not this log's, or was lost. Reading fails rather than pass
    /// the field off as erased.
    Missing,
}

/// Why a payload could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The payload is not a JSON object.
    #[error("the payload is not a JSON object: {0}")]
    Json(String),
    /// A marker is malformed.
    #[error("a sealed field is malformed: {0}")]
    Malformed(String),
    /// The ciphertext does not open with the subject's key: altered, moved, or another key.
    #[error("the sealed field {path} does not open with its subject's key")]
    Tampered {
        /// The field.
        path: String,
    },
    /// The key that sealed a field is neither here nor erased.
    #[error(
        "the key {key_id} of data subject {subject} that sealed a field is missing: the secrets \
         beside this log are not the ones it was written with (copy them, with the secret_key, \
         along with the log)"
    )]
    KeyMissing {
        /// The subject.
        subject: Uuid,
        /// The key.
        key_id: Uuid,
    },
    /// Personal fields with no subject to seal them for.
    #[error("{event_type} has personal fields but names no data subject")]
    NoSubject {
        /// The event type.
        event_type: String,
    },
}

/// The data subject of an event of `event_type` with the payload `payload`: the id in the first
/// of its subject fields that holds one (a stream name's id counts). `None` when the type has no
/// personal field, or every subject field is null.
pub fn subject_of(event_type: &str, payload: &Value) -> Option<Uuid> {
    let classes = proto_events::personal::classes(event_type)?;
    classes.subject.iter().find_map(|field| {
        let text = payload.get(*field)?.as_str()?;
        Uuid::parse_str(text).ok().or_else(|| {
            let (_, id) = text.split_once('-')?;
            Uuid::parse_str(id).ok()
        })
    })
}

/// Whether events of `event_type` have personal fields to seal.
pub fn has_personal_fields(event_type: &str) -> bool {
    proto_events::personal::classes(event_type).is_some_and(|c| c.personal().next().is_some())
}

/// `payload` (of `event_type`, stored as `event_id`) with its personal fields sealed under
/// `key`, the key of `subject`. Null fields stay null (there is nothing to hide). A type without
/// personal fields comes back unchanged.
pub fn seal(
    event_type: &str,
    event_id: Uuid,
    payload: &[u8],
    subject: Uuid,
    key: &SubjectKey,
) -> Result<Vec<u8>, SealError> {
    if !has_personal_fields(event_type) {
        return Ok(payload.to_vec());
    }
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| SealError::Json(e.to_string()))?;
    seal_value(event_type, event_id, value, subject, key)
}

/// [`seal`] of a payload already parsed.
pub fn seal_value(
    event_type: &str,
    event_id: Uuid,
    mut value: Value,
    subject: Uuid,
    key: &SubjectKey,
) -> Result<Vec<u8>, SealError> {
    let Some(classes) = proto_events::personal::classes(event_type) else {
        return serde_json::to_vec(&value).map_err(|e| SealError::Json(e.to_string()));
    };
    let cipher = XChaCha20Poly1305::new((&key.bytes).into());
    for path in classes.personal() {
        let Some(field) = field_mut(&mut value, path) else {
            continue;
        };
        if field.is_null() {
            continue;
        }
        let plaintext = field.to_string();
        let redaction = if proto_events::personal::is_free_map(event_type, path) {
            Value::Object(serde_json::Map::new())
        } else {
            redact(field)
        }
        .to_string();
        let nonce: [u8; 24] = rand::random();
        let aad = associated_data(event_id, path, subject, key.id, redaction.as_bytes());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Malformed("encryption failed".to_owned()))?;
        let mut sealed = Vec::with_capacity(nonce.len() + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        let marker = format!(
            "{FORMAT}~{path}~{subject}~{}~{}~{}",
            key.id,
            URL_SAFE_NO_PAD.encode(&sealed),
            URL_SAFE_NO_PAD.encode(redaction.as_bytes())
        );
        *field = serde_json::json!({ "$sb": marker });
    }
    serde_json::to_vec(&value).map_err(|e| SealError::Json(e.to_string()))
}

/// `value` (a payload of `event_type` stored in the clear) with every personal field redacted
/// as an erased sealed field reads ([`open`]): what a plaintext event of an erased subject
/// reads as.
pub fn redact_value(event_type: &str, mut value: Value) -> Value {
    let Some(classes) = proto_events::personal::classes(event_type) else {
        return value;
    };
    for path in classes.personal() {
        let Some(field) = field_mut(&mut value, path) else {
            continue;
        };
        if field.is_null() {
            continue;
        }
        *field = if proto_events::personal::is_free_map(event_type, path) {
            Value::Object(serde_json::Map::new())
        } else {
            redact(field)
        };
    }
    value
}

/// Whether `payload` (of `event_type`) has a personal field that is not null: one that needs a
/// subject to be sealed for.
pub fn has_personal_values(event_type: &str, payload: &Value) -> bool {
    let Some(classes) = proto_events::personal::classes(event_type) else {
        return false;
    };
    classes.personal().any(|path| {
        path.split('.')
            .try_fold(payload, |value, key| value.get(key))
            .is_some_and(|value| !value.is_null())
    })
}

/// The field at `path` (object keys joined by `.`), if the payload has it.
fn field_mut<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.')
        .try_fold(value, |value, key| value.get_mut(key))
}

fn associated_data(
    event_id: Uuid,
    path: &str,
    subject: Uuid,
    key_id: Uuid,
    redaction: &[u8],
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(3 + 16 + path.len() + 1 + 32 + redaction.len());
    associated_data_into(&mut aad, event_id, path, subject, key_id, redaction);
    aad
}

/// [`associated_data`] written into `aad` (emptied first).
fn associated_data_into(
    aad: &mut Vec<u8>,
    event_id: Uuid,
    path: &str,
    subject: Uuid,
    key_id: Uuid,
    redaction: &[u8],
) {
    aad.clear();
    aad.extend_from_slice(b"sb1");
    aad.extend_from_slice(event_id.as_bytes());
    aad.extend_from_slice(path.as_bytes());
    aad.push(0);
    aad.extend_from_slice(subject.as_bytes());
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(redaction);
}

/// The value an erased field reads as: the same shape, with nothing of the person in it.
fn redact(value: &Value) -> Value {
    match value {
        Value::Null => Value::Null,
        Value::Bool(_) => Value::Bool(false),
        Value::Number(_) => Value::from(0),
        Value::String(_) => Value::String(String::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = if key == "kind" {
                        value.clone()
                    } else {
                        redact(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
    }
}

/// Whether `payload` holds sealed fields.
pub fn is_sealed(payload: &[u8]) -> bool {
    find(payload, 0).is_some()
}

fn find(payload: &[u8], from: usize) -> Option<usize> {
    /// Built once: building a searcher for every payload cost as much as searching it.
    static FINDER: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(MARKER));
    FINDER.find(payload.get(from..)?).map(|at| at + from)
}

/// One marker, as found in a payload.
struct Marker<'a> {
    /// Where the marker object begins and ends (exclusive) in the payload.
    start: usize,
    end: usize,
    path: &'a str,
    subject: Uuid,
    key_id: Uuid,
    sealed: &'a str,
    redaction: &'a str,
}

/// The markers of `payload`, in order.
fn markers(payload: &[u8]) -> impl Iterator<Item = Result<Marker<'_>, SealError>> {
    let mut from = 0;
    std::iter::from_fn(move || {
        let start = find(payload, from)?;
        let text_start = start + MARKER.len();
        let Some(length) = payload[text_start..].iter().position(|b| *b == b'"') else {
            from = payload.len();
            return Some(Err(SealError::Malformed(
                "an unterminated marker".to_owned(),
            )));
        };
        let text_end = text_start + length;
        let end = text_end + 2;
        from = end;
        if payload.get(text_end..end) != Some(b"\"}") {
            return Some(Err(SealError::Malformed(
                "a marker with more than its text".to_owned(),
            )));
        }
        Some(
            parse_marker(&payload[text_start..text_end]).and_then(|mut marker| {
                marker.start = start;
                marker.end = end;
                check_location(payload, &marker)?;
                Ok(marker)
            }),
        )
    })
}

fn parse_marker(text: &[u8]) -> Result<Marker<'_>, SealError> {
    let malformed = |what: &str| SealError::Malformed(what.to_owned());
    let text = std::str::from_utf8(text).map_err(|_| malformed("not UTF-8"))?;
    let mut parts = text.split('~');
    let (
        Some(format),
        Some(path),
        Some(subject),
        Some(key_id),
        Some(sealed),
        Some(redaction),
        None,
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return Err(malformed("not six parts"));
    };
    if format != FORMAT {
        return Err(SealError::Malformed(format!("unknown format {format:?}")));
    }
    let subject = Uuid::parse_str(subject).map_err(|_| malformed("a subject that is no id"))?;
    let key_id = Uuid::parse_str(key_id).map_err(|_| malformed("a key id that is no id"))?;
    Ok(Marker {
        start: 0,
        end: 0,
        path,
        subject,
        key_id,
        sealed,
        redaction,
    })
}

/// Checks that `marker` is the value of the field its path ends with (`"<name>":` right before
/// it, as serde_json writes objects): a marker moved to another field does not open. Only the
/// last segment is checked, so a marker moved to a field of the same name at another depth
/// would pass this check; the event types classed today have no such pair of personal fields.
fn check_location(payload: &[u8], marker: &Marker<'_>) -> Result<(), SealError> {
    let name = marker.path.rsplit('.').next().unwrap_or(marker.path);
    let before = &payload[..marker.start];
    let named = before
        .strip_suffix(b"\":")
        .and_then(|before| before.strip_suffix(name.as_bytes()))
        .is_some_and(|before| before.ends_with(b"\""));
    if named {
        Ok(())
    } else {
        Err(SealError::Tampered {
            path: marker.path.to_owned(),
        })
    }
}

/// `payload` with its sealed fields opened with the keys `key_of` gives for their subjects and
/// key ids, and redacted where it says the subject was erased. A payload without sealed fields is
/// returned as it is. Each field is decoded and decrypted in place in buffers the whole payload
/// shares: a rebuild opens millions of fields.
pub fn open<'a>(
    event_id: Uuid,
    payload: &'a [u8],
    mut key_of: impl FnMut(Uuid, Uuid) -> Lookup,
) -> Result<Cow<'a, [u8]>, SealError> {
    if !is_sealed(payload) {
        return Ok(Cow::Borrowed(payload));
    }
    let mut opened = Vec::with_capacity(payload.len());
    let mut redaction = Vec::new();
    let mut sealed = Vec::new();
    let mut aad = Vec::new();
    let mut copied = 0;
    for marker in markers(payload) {
        let marker = marker?;
        opened.extend_from_slice(&payload[copied..marker.start]);
        copied = marker.end;
        redaction.clear();
        URL_SAFE_NO_PAD
            .decode_vec(marker.redaction, &mut redaction)
            .map_err(|_| SealError::Malformed("redaction not base64url".to_owned()))?;
        match key_of(marker.subject, marker.key_id) {
            Lookup::Key(key) => {
                sealed.clear();
                URL_SAFE_NO_PAD
                    .decode_vec(marker.sealed, &mut sealed)
                    .map_err(|_| SealError::Malformed("sealed bytes not base64url".to_owned()))?;
                if sealed.len() < NONCE_BYTES + TAG_BYTES {
                    return Err(SealError::Malformed("sealed bytes too short".to_owned()));
                }
                let (nonce, rest) = sealed.split_at_mut(NONCE_BYTES);
                let (ciphertext, tag) = rest.split_at_mut(rest.len() - TAG_BYTES);
                associated_data_into(
                    &mut aad,
                    event_id,
                    marker.path,
                    marker.subject,
                    marker.key_id,
                    &redaction,
                );
                XChaCha20Poly1305::new((&key.bytes).into())
                    .decrypt_in_place_detached(
                        XNonce::from_slice(nonce),
                        &aad,
                        ciphertext,
                        Tag::from_slice(tag),
                    )
                    .map_err(|_| SealError::Tampered {
                        path: marker.path.to_owned(),
                    })?;
                opened.extend_from_slice(ciphertext);
            }
            Lookup::Erased => {
                serde_json::from_slice::<serde::de::IgnoredAny>(&redaction)
                    .map_err(|_| SealError::Malformed("redaction not JSON".to_owned()))?;
                opened.extend_from_slice(&redaction);
            }
            Lookup::Missing => {
                return Err(SealError::KeyMissing {
                    subject: marker.subject,
                    key_id: marker.key_id,
                });
            }
        }
    }
    opened.extend_from_slice(&payload[copied..]);
    Ok(Cow::Owned(opened))
}

/// The (subject, key id) pairs whose keys `payload`'s sealed fields need. Markers that do not
/// parse are left out: [`open`] reports them.
pub fn keys_needed(payload: &[u8]) -> Vec<(Uuid, Uuid)> {
    let mut needed = Vec::new();
    for marker in markers(payload).flatten() {
        let pair = (marker.subject, marker.key_id);
        if !needed.contains(&pair) {
            needed.push(pair);
        }
    }
    needed
}
