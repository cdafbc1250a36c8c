//! Decoding a store row into an `Envelope`, and every way it can fail.

use std::fs;

use chrono::{TimeZone, Utc};
use proto_events::{Actor, DecodeError, DomainEvent, Envelope, RawEvent, new_event_id};

use crate::golden::{fixture_path, golden_dir};
use crate::samples::id;

fn metadata_bytes() -> Vec<u8> {
    fs::read(golden_dir().join("metadata/user.json")).unwrap()
}

fn raw<'a>(
    event_type: &'a str,
    schema_version: u32,
    metadata: &'a [u8],
    payload: &'a [u8],
) -> RawEvent<'a> {
    RawEvent {
        event_id: id(0xe1),
        stream: "conversation-00000000-0000-0000-0000-000000000071",
        stream_version: 0,
        position: 1,
        event_type,
        schema_version,
        recorded_at: Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 54).unwrap(),
        metadata,
        payload,
    }
}

#[test]
fn decodes_a_stored_event() {
    let metadata = metadata_bytes();
    let payload = fs::read(fixture_path("ConversationClosed", 1)).unwrap();
    let envelope = Envelope::decode(raw("ConversationClosed", 1, &metadata, &payload)).unwrap();

    assert_eq!(envelope.event_id, id(0xe1));
    assert_eq!(
        envelope.stream,
        "conversation-00000000-0000-0000-0000-000000000071"
    );
    assert_eq!((envelope.stream_version, envelope.position), (0, 1));
    assert_eq!(envelope.event_type, "ConversationClosed");
    assert_eq!(envelope.schema_version, 1);
    assert_eq!(envelope.metadata.actor, Actor::User { id: id(0x11) });
    assert_eq!(
        envelope.metadata.idempotency_key.as_deref(),
        Some("mutation-7f3a")
    );
    assert!(envelope.metadata.occurred_at < envelope.recorded_at);
    assert!(matches!(
        envelope.payload,
        DomainEvent::ConversationClosed(_)
    ));
}

#[test]
fn keeps_the_stored_version_and_upcasts_the_payload() {
    let metadata = metadata_bytes();
    let payload = fs::read(fixture_path("MessageReceived", 1)).unwrap();
    let envelope = Envelope::decode(raw("MessageReceived", 1, &metadata, &payload)).unwrap();
    assert_eq!(envelope.schema_version, 1);
    assert_eq!(envelope.payload.schema_version(), 2);
}

#[test]
fn rejects_an_unknown_type() {
    let error = DomainEvent::decode("ConversationTeleported", 1, b"{}").unwrap_err();
    assert!(
        matches!(&error, DecodeError::UnknownEventType { event_type, schema_version: 1 }
        if event_type == "ConversationTeleported")
    );
    assert!(
        error.to_string().contains("ConversationTeleported"),
        "{error}"
    );
}

#[test]
fn rejects_future_and_zero_versions() {
    for version in [0, 3] {
        let error = DomainEvent::decode("MessageReceived", version, b"{}").unwrap_err();
        assert!(
            matches!(error, DecodeError::UnsupportedVersion { schema_version, current: 2, .. }
                if schema_version == version),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains(&format!("MessageReceived v{version}")),
            "{error}"
        );
    }
}

#[test]
fn rejects_malformed_payloads() {
    let closed = fs::read(fixture_path("ConversationClosed", 1)).unwrap();
    let mut trailing = closed.clone();
    trailing.extend_from_slice(b" {}");
    // A byte that is not UTF-8 inside a string of an otherwise valid payload.
    let text = String::from_utf8(closed.clone()).unwrap();
    let at = text.find(": \"").expect("a string value") + 3;
    let mut not_utf8 = closed.clone();
    not_utf8.insert(at, 0xff);
    for payload in [&b"not json"[..], b"{}", b"[]", &trailing, &not_utf8] {
        let error = DomainEvent::decode("ConversationClosed", 1, payload).unwrap_err();
        assert!(
            matches!(&error, DecodeError::MalformedPayload { event_type, schema_version: 1, .. }
                if event_type == "ConversationClosed"),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("malformed payload of ConversationClosed v1"),
            "{error}"
        );
    }
}

#[test]
fn rejects_malformed_metadata() {
    let payload = fs::read(fixture_path("ConversationClosed", 1)).unwrap();
    for metadata in [&br#"{"actor":{"kind":"robot"}}"#[..], b"{\"actor\xff\":1}"] {
        let error = Envelope::decode(raw("ConversationClosed", 1, metadata, &payload)).unwrap_err();
        assert!(
            matches!(&error, DecodeError::MalformedMetadata { event_id, event_type, schema_version: 1, .. }
                if *event_id == id(0xe1) && event_type == "ConversationClosed"),
            "{error:?}"
        );
    }
}

#[test]
fn new_event_ids_are_uuid_v7_in_creation_order() {
    let first = new_event_id();
    let second = new_event_id();
    assert_eq!(first.get_version_num(), 7);
    assert!(first < second);
}
