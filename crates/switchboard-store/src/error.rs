//! The store's one error type, shared by every backend.

use uuid::Uuid;

use crate::types::{ExpectedVersion, Position};

/// Why a store operation failed. Each variant says how a caller should react.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream was not at the expected version; nothing was written. Re-read the stream and
    /// decide again (a command may be retried), or report a conflict (HTTP 409).
    #[error("wrong expected version on stream {stream}: expected {expected}, actual {}", display_version(*.actual))]
    WrongExpectedVersion {
        /// The stream appended to.
        stream: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's actual last version, `None` if it does not exist.
        actual: Option<u64>,
    },
    /// Some of the event ids are stored already, but not as this exact append (a different stream,
    /// other versions, or only part of the batch). Nothing was written. Not retryable: a bug or a
    /// reused id (HTTP 409).
    #[error(
        "event {event_id} is already stored elsewhere: the append on {stream} only partly repeats an earlier one"
    )]
    IdempotencyConflict {
        /// The stream appended to.
        stream: String,
        /// The first id that did not line up.
        event_id: Uuid,
    },
    /// A restored event ([`crate::EventStore::restore`]) would not get the position or hash it
    /// had in its origin: this log is not the prefix the copy had before it, or the copy was
    /// changed. Nothing of the append was written. Not retryable.
    #[error("event {event_id} cannot be restored with its original hash: {reason}")]
    OriginMismatch {
        /// The first event that would not match its origin.
        event_id: Uuid,
        /// What differs.
        reason: String,
    },
    /// The append held no event (HTTP 400).
    #[error("an append needs at least one event")]
    EmptyAppend,
    /// The same event id appears twice in one append (HTTP 400).
    #[error("event id {event_id} appears twice in one append")]
    DuplicateEventId {
        /// The repeated id.
        event_id: Uuid,
    },
    /// The append is larger than the store accepts; split it (HTTP 413).
    #[error("append of {bytes} bytes exceeds the limit of {limit} bytes")]
    AppendTooLarge {
        /// Size of the rejected append.
        bytes: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A stream name is empty or too long (HTTP 400).
    #[error("invalid stream name: {0}")]
    InvalidStreamName(String),
    /// The store is shutting down or its writer stopped; retry against a running node (HTTP 503).
    #[error("the event store is closed")]
    Closed,
    /// A stored row could not be read back as an event: the data is damaged. Run `verify`.
    #[error("stored event at position {position} is corrupt: {reason}")]
    Corrupt {
        /// Where.
        position: Position,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored blob does not read back as the bytes it is named after: the data is damaged.
    #[error("stored blob {sha256} is corrupt: {reason}")]
    CorruptBlob {
        /// The blob's name (SHA-256).
        sha256: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A sealed secret does not open: another master key is configured, or its bytes are
    /// damaged. The message names the secret, never its bytes.
    #[error("secret {name} does not open with the configured secret_key (another key, or damaged)")]
    Unsealable {
        /// The secret's name in the store.
        name: String,
    },
    /// The backend failed (I/O, database, network). May be transient; retry with backoff, and
    /// report INTERNAL if it persists. The source is for logs, not for clients.
    #[error("event store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

fn display_version(version: Option<u64>) -> String {
    match version {
        Some(v) => v.to_string(),
        None => "no stream".to_owned(),
    }
}

impl StoreError {
    /// Wraps a backend failure.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend(Box::new(error))
    }
}

/// Checks a stream name every backend accepts: 1 to 256 bytes, no control characters.
pub fn validate_stream_name(stream: &str) -> Result<(), StoreError> {
    if stream.is_empty() {
        return Err(StoreError::InvalidStreamName("it is empty".into()));
    }
    if stream.len() > 256 {
        return Err(StoreError::InvalidStreamName(format!(
            "it is {} bytes long, the limit is 256",
            stream.len()
        )));
    }
    if stream.chars().any(char::is_control) {
        return Err(StoreError::InvalidStreamName(
            "it contains a control character".into(),
        ));
    }
    Ok(())
}

/// The checks every backend makes before it touches storage: a valid stream, at least one event,
/// no id twice, and a size within `limit`.
pub fn validate_append(
    stream: &str,
    events: &[crate::NewEvent],
    limit: usize,
) -> Result<(), StoreError> {
    validate_stream_name(stream)?;
    if events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    let bytes: usize = events.iter().map(crate::NewEvent::size).sum();
    if bytes > limit {
        return Err(StoreError::AppendTooLarge { bytes, limit });
    }
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    for event in events {
        if !seen.insert(event.event_id) {
            return Err(StoreError::DuplicateEventId {
                event_id: event.event_id,
            });
        }
    }
    Ok(())
}
