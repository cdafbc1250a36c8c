//! One event as one NDJSON line: the shape `export` writes and `import` reads.
//!
//! Metadata and payload are embedded as the JSON the store holds, byte for byte
//! ([`RawValue`]), so an import stores exactly the bytes that were exported.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchboard_store::{Origin, RecordedEvent};
use uuid::Uuid;

/// An event as `export` writes it.
#[derive(Debug, Serialize)]
pub(crate) struct ExportedLine<'a> {
    pub(crate) event_id: Uuid,
    pub(crate) stream: &'a str,
    pub(crate) stream_version: u64,
    pub(crate) position: u64,
    pub(crate) event_type: &'a str,
    pub(crate) schema_version: u32,
    /// RFC 3339, microseconds, UTC.
    pub(crate) recorded_at: String,
    pub(crate) metadata: Box<RawValue>,
    pub(crate) payload: Box<RawValue>,
    /// Lower-case hex.
    pub(crate) hash: String,
    /// The payload's personal fields were redacted (an erased person's, stored in the clear):
    /// it no longer matches `hash`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) redacted: bool,
}

impl<'a> ExportedLine<'a> {
    /// The line for `event`, or why its metadata or payload is not JSON.
    pub(crate) fn new(event: &'a RecordedEvent) -> Result<ExportedLine<'a>, String> {
        Ok(ExportedLine {
            event_id: event.event_id,
            stream: &event.stream,
            stream_version: event.stream_version,
            position: event.position.0,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            recorded_at: event
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            metadata: json(&event.metadata).map_err(|e| format!("metadata: {e}"))?,
            // As stored: an export carries sealed personal fields sealed.
            payload: json(event.stored_payload()).map_err(|e| format!("payload: {e}"))?,
            hash: hex::encode(event.hash),
            redacted: false,
        })
    }

    /// The line for `event` whose payload was redacted ([`Keyring::redact_erased`]): the
    /// redacted payload, marked.
    ///
    /// [`Keyring::redact_erased`]: switchboard_codec::keyring::Keyring::redact_erased
    pub(crate) fn redacted(event: &'a RecordedEvent) -> Result<ExportedLine<'a>, String> {
        Ok(ExportedLine {
            payload: json(&event.payload).map_err(|e| format!("payload: {e}"))?,
            redacted: true,
            ..ExportedLine::new(event)?
        })
    }
}

/// Stored bytes as embeddable JSON: as stored when they fit on one line, else re-serialised
/// compactly (JSON allows line breaks only as whitespace, so nothing is lost but whitespace).
fn json(bytes: &[u8]) -> Result<Box<RawValue>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    if text.contains(['\n', '\r']) {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        return serde_json::value::to_raw_value(&value).map_err(|e| e.to_string());
    }
    RawValue::from_string(text.to_owned()).map_err(|e| format!("not JSON: {e}"))
}

/// An event as `import` reads it. `recorded_at` and `hash` are the source store's: `import`
/// checks the input's hash chain with them (see [`ImportedLine::origin`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportedLine {
    pub(crate) event_id: Uuid,
    pub(crate) stream: String,
    pub(crate) stream_version: u64,
    pub(crate) position: u64,
    pub(crate) event_type: String,
    pub(crate) schema_version: u32,
    #[serde(default)]
    pub(crate) recorded_at: Option<String>,
    pub(crate) metadata: Box<RawValue>,
    pub(crate) payload: Box<RawValue>,
    #[serde(default)]
    pub(crate) hash: Option<String>,
    /// Redacted by `export` (an erased person's fields): its hash no longer holds.
    #[serde(default)]
    pub(crate) redacted: bool,
}

impl ImportedLine {
    /// Where this event stood in its history (position, commit time, hash) if it chains to
    /// `previous`, or why not.
    pub(crate) fn origin(&self, previous: &[u8; 32]) -> Result<Origin, String> {
        let recorded_at = self.recorded_at.as_deref().ok_or("it has no recorded_at")?;
        let recorded_at = chrono::DateTime::parse_from_rfc3339(recorded_at)
            .map_err(|e| format!("its recorded_at is not RFC 3339: {e}"))?;
        // The store keeps microseconds, and the hash covers exactly those.
        let recorded_at = chrono::DateTime::from_timestamp_micros(recorded_at.timestamp_micros())
            .ok_or("its recorded_at is out of range")?;
        let stated = self.hash.as_deref().ok_or("it has no hash")?;
        let computed = switchboard_store::chain::Canonical {
            position: switchboard_store::Position(self.position),
            stream: &self.stream,
            stream_version: self.stream_version,
            event_id: self.event_id.as_bytes(),
            event_type: &self.event_type,
            schema_version: self.schema_version,
            recorded_at_micros: recorded_at.timestamp_micros(),
            metadata: self.metadata.get().as_bytes(),
            payload: self.payload.get().as_bytes(),
        }
        .hash(previous);
        if hex::encode(computed) != stated.to_ascii_lowercase() {
            return Err(
                "its hash does not match its content and the hash before it (the event, or \
                 one before it, was changed, removed or moved)"
                    .to_owned(),
            );
        }
        Ok(Origin {
            position: switchboard_store::Position(self.position),
            recorded_at,
            hash: computed,
        })
    }
}
