//! The error of this crate: what can go wrong turning stored bytes back into events.
//!
//! Every variant names the event type and schema version it failed on, because the first question
//! when a replay stops is "which event, written by which release?".

use uuid::Uuid;

/// A stored event could not be decoded.
///
/// None of these is retryable: the stored bytes will not change. They mean either that this build
/// is older than the data (upgrade the reader) or that the contract was broken (a bug to fix, never
/// by rewriting history).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The event type is not one this build knows: the store was written by a newer release, or
    /// the type name was mistyped. Upgrade the reader; a projector may choose to skip the event.
    #[error("unknown event type {event_type:?} (schema version {schema_version})")]
    UnknownEventType {
        /// The type name as stored.
        event_type: String,
        /// The schema version as stored.
        schema_version: u32,
    },

    /// The schema version is newer than this build's (or 0, which no release writes). Upgrade the
    /// reader.
    #[error("{event_type} v{schema_version} is not supported: this build reads v1 to v{current}")]
    UnsupportedVersion {
        /// The type name as stored.
        event_type: String,
        /// The schema version as stored.
        schema_version: u32,
        /// The newest version this build knows.
        current: u32,
    },

    /// An old version has no upcaster chain to the current one. A bug in [`crate::upcast`]:
    /// the golden tests should have caught it.
    #[error("{event_type} v{schema_version}: no upcaster from v{from_version}")]
    MissingUpcaster {
        /// The type name as stored.
        event_type: String,
        /// The schema version as stored.
        schema_version: u32,
        /// The version the chain stopped at.
        from_version: u32,
    },

    /// The payload is not valid JSON of the shape its type and version promise (or an upcaster
    /// rejected it). Stored history is never rewritten, so this is a bug to fix in the reader.
    #[error("malformed payload of {event_type} v{schema_version}: {source}")]
    MalformedPayload {
        /// The type name as stored.
        event_type: String,
        /// The schema version as stored.
        schema_version: u32,
        /// What serde found wrong.
        source: serde_json::Error,
    },

    /// The metadata bytes are not a valid [`crate::Metadata`].
    #[error("malformed metadata of {event_type} v{schema_version} (event {event_id}): {source}")]
    MalformedMetadata {
        /// The event whose metadata failed.
        event_id: Uuid,
        /// The type name as stored.
        event_type: String,
        /// The schema version as stored.
        schema_version: u32,
        /// What serde found wrong.
        source: serde_json::Error,
    },
}
