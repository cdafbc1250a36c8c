//! Realistic events to append: `MessageReceived` with the JSON metadata every event carries.
//!
//! The store treats metadata and payload as opaque bytes, so what matters for a benchmark is that
//! their size and shape look like production: UUIDs as strings, RFC 3339 timestamps, a message
//! body of varying length, about 400 bytes per event in all. The JSON is written by hand here
//! rather than with `proto-events`' types so that the benchmark does not move when those do.

use chrono::Utc;
use serde_json::json;
use switchboard_store::NewEvent;
use uuid::Uuid;

/// Message bodies of a few lengths, picked in turn, so that events are not all the same size.
const BODIES: [&str; 4] = [
    "Hi, my order #48213 arrived damaged.",
    "I was charged twice this month, please refund one.",
    "Thanks, that worked.",
    "The tracking link says delivered but nothing is here.",
];

/// The `seq`-th `MessageReceived` event: a customer writing into a conversation.
pub(crate) fn message_received(seq: u64) -> NewEvent {
    let event_id = Uuid::now_v7();
    let contact = Uuid::now_v7();
    let body = BODIES[(seq % BODIES.len() as u64) as usize];
    let metadata = json!({
        "actor": { "kind": "contact", "id": contact },
        "correlation_id": Uuid::now_v7(),
        "causation_id": Uuid::now_v7(),
        "occurred_at": Utc::now(),
        "idempotency_key": null,
    });
    let payload = json!({
        "conversation_id": Uuid::now_v7(),
        "message_id": event_id,
        "body_text": body,
        "body_html": null,
    });
    NewEvent {
        event_id,
        event_type: "MessageReceived".to_owned(),
        schema_version: 2,
        // A `Value` holds only strings and nulls here: serialising it cannot fail.
        metadata: serde_json::to_vec(&metadata).unwrap_or_default(),
        payload: serde_json::to_vec(&payload).unwrap_or_default(),
    }
}

/// The `seq`-th `MessageReceived` of a conversation whose sender is not a contact: the
/// conversation `subject` is its data subject (the same shape as [`message_received`]).
pub(crate) fn message_in(subject: Uuid, seq: u64) -> NewEvent {
    let mut event = message_received(seq);
    let mut payload: serde_json::Value = serde_json::from_slice(&event.payload).unwrap_or_default();
    payload["conversation_id"] = json!(subject);
    event.payload = serde_json::to_vec(&payload).unwrap_or_default();
    event
}

/// Bytes of metadata plus payload, the part of an event that varies.
pub(crate) fn body_bytes(event: &NewEvent) -> u64 {
    (event.metadata.len() + event.payload.len()) as u64
}
