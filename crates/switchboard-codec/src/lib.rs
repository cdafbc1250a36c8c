//! Turning domain events into store events and back, in one place.
//!
//! The store keeps bytes and knows nothing of `proto-events`; the contract crate knows nothing of
//! the store. The write side and the projection runtime both meet them here.
//!
//! [`seal`]: personal fields encrypted with their data subject's key, and opened or redacted;
//! [`keyring`]: the subjects' keys, kept sealed beside the log (ADR 0007); [`plaintext`]: what
//! the log holds in the clear from before sealing began.

pub mod keyring;
pub mod plaintext;
pub mod seal;

use proto_events::{DecodeError, DomainEvent, Envelope, Metadata, RawEvent};
use switchboard_store::{NewEvent, RecordedEvent};

/// A store event for `event`, with a fresh UUIDv7 id.
pub fn encode(event: &DomainEvent, metadata: &Metadata) -> NewEvent {
    NewEvent {
        event_id: proto_events::new_event_id(),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        metadata: metadata.encode(),
        payload: event.encode(),
    }
}

/// The typed envelope of a stored event (upcast to the current schema).
pub fn decode(recorded: &RecordedEvent) -> Result<Envelope, DecodeError> {
    Envelope::decode(raw(recorded))
}

/// The borrowed row view `proto-events` decodes from.
pub fn raw(recorded: &RecordedEvent) -> RawEvent<'_> {
    RawEvent {
        event_id: recorded.event_id,
        stream: &recorded.stream,
        stream_version: recorded.stream_version,
        position: recorded.position.0,
        event_type: &recorded.event_type,
        schema_version: recorded.schema_version,
        recorded_at: recorded.recorded_at,
        metadata: &recorded.metadata,
        payload: &recorded.payload,
    }
}
