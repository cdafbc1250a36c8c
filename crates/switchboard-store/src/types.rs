//! The values that cross the store boundary: what goes in, what comes out, and where it is.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A place in the global order of all events. Positions of stored events start at 1 and have no
/// holes; [`Position::START`] is the position before the first event.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    /// Before the first event: reading or subscribing "after START" starts at the beginning.
    pub const START: Position = Position(0);

    /// The position right after this one.
    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What the writer believes about a stream before appending to it (optimistic concurrency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's state.
    Any,
    /// The stream must not exist yet: its first event gets version 0.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (`None`: no stream) satisfies this.
    pub fn matches(self, current: Option<u64>) -> bool {
        match (self, current) {
            (ExpectedVersion::Any, _) => true,
            (ExpectedVersion::NoStream, None) => true,
            (ExpectedVersion::StreamExists, Some(_)) => true,
            (ExpectedVersion::Exact(expected), Some(actual)) => expected == actual,
            _ => false,
        }
    }

    /// Whether an earlier append whose first event got `first_version` was made with this
    /// expectation, so that repeating it is a retry and not a new write.
    pub fn admits_replay_at(self, first_version: u64) -> bool {
        match self {
            ExpectedVersion::Any | ExpectedVersion::StreamExists => true,
            ExpectedVersion::NoStream => first_version == 0,
            ExpectedVersion::Exact(v) => v.checked_add(1) == Some(first_version),
        }
    }
}

/// An event to append. The store does not look inside `metadata` or `payload`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique among all events ever stored; the handle for idempotent retries (UUIDv7).
    pub event_id: Uuid,
    /// The stable name of the event's type, e.g. `MessageReceived`.
    pub event_type: String,
    /// The version of the payload's shape.
    pub schema_version: u32,
    /// Encoded metadata (actor, correlation, causation, domain time).
    pub metadata: Vec<u8>,
    /// Encoded payload.
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// The bytes this event counts for against [`crate::EventStore::max_append_bytes`].
    pub fn size(&self) -> usize {
        self.metadata.len() + self.payload.len() + self.event_type.len()
    }
}

/// Where an event copied from another store's log stood there (see
/// [`crate::EventStore::restore`]): restored at the same position, after the same events, with
/// the same commit time, it gets the same hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Its position there, which it must get here too.
    pub position: Position,
    /// Its commit time there, which it keeps (microsecond precision).
    pub recorded_at: DateTime<Utc>,
    /// Its hash there, which it must get here too.
    pub hash: [u8; 32],
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The id the writer gave it.
    pub event_id: Uuid,
    /// The stream it belongs to.
    pub stream: String,
    /// Its version within the stream, from 0.
    pub stream_version: u64,
    /// Its place in the global order, from 1.
    pub position: Position,
    /// The stable name of its type.
    pub event_type: String,
    /// The version of its payload's shape.
    pub schema_version: u32,
    /// When the store committed it (microsecond precision).
    pub recorded_at: DateTime<Utc>,
    /// Encoded metadata, as appended.
    pub metadata: Vec<u8>,
    /// Encoded payload, as appended; with its personal fields opened (decrypted, or redacted
    /// once their data subject was erased) when it was read through a store that holds the keys
    /// (see `switchboard_codec::keyring`).
    pub payload: Vec<u8>,
    /// The payload as stored, when `payload` was opened from it: what the hash covers, and what
    /// an export carries. `None`: `payload` is as stored.
    pub sealed_payload: Option<Vec<u8>>,
    /// The stream's name as stored, when `stream` was redacted on reading: a reservation
    /// stream named by an erased customer's value in the clear (ADR 0007). `None`: `stream` is
    /// as stored.
    pub stored_stream: Option<String>,
    /// `SHA-256(hash of the previous event ‖ canonical bytes of this one)`, see [`crate::chain`].
    pub hash: [u8; 32],
}

impl RecordedEvent {
    /// The payload as stored (see [`RecordedEvent::sealed_payload`]).
    pub fn stored_payload(&self) -> &[u8] {
        self.sealed_payload.as_deref().unwrap_or(&self.payload)
    }

    /// The stream's name as stored (see [`RecordedEvent::stored_stream`]).
    pub fn stored_stream(&self) -> &str {
        self.stored_stream.as_deref().unwrap_or(&self.stream)
    }
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// The version of the stream's last event after the append: the next `ExpectedVersion::Exact`.
    pub stream_version: u64,
    /// Position of the first event of the append.
    pub first_position: Position,
    /// Position of the last event of the append.
    pub last_position: Position,
}

/// Which way to read a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Increasing versions.
    Forwards,
    /// Decreasing versions.
    Backwards,
}

/// Where to start reading a stream (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFrom {
    /// Version 0 forwards, or the last version backwards.
    Start,
    /// The last version (backwards) or past it (forwards: nothing).
    End,
    /// This version.
    Version(u64),
}
