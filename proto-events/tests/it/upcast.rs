//! The upcaster chain: the real `MessageReceived` and `MessageFiltered` v1 -> v2 steps, and the
//! registry's completeness.

use std::fs;

use proto_events::upcast::{UPCASTERS, upcast};
use proto_events::{DecodeError, DomainEvent};
use serde_json::{Value, json};

use crate::golden::fixture_path;

#[test]
fn message_received_v1_fixture_decodes_as_v2() {
    let bytes = fs::read(fixture_path("MessageReceived", 1)).unwrap();
    let v1: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        v1.get("body_text").is_none(),
        "the v1 fixture must keep its v1 shape"
    );

    let DomainEvent::MessageReceived(event) =
        DomainEvent::decode("MessageReceived", 1, &bytes).unwrap()
    else {
        panic!("decoded as another type");
    };
    assert_eq!(json!(event.message.body_text), v1["body"]);
    assert_eq!(event.message.body_html, None);
    assert_eq!(json!(event.message.message_id), v1["message_id"]);
    assert_eq!(json!(event.conversation_id), v1["conversation_id"]);
}

#[test]
fn message_filtered_v1_fixture_decodes_as_v2_without_a_visibility() {
    let bytes = fs::read(fixture_path("MessageFiltered", 1)).unwrap();
    let v1: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        v1.get("visibility").is_none(),
        "the v1 fixture must keep its v1 shape"
    );
    let DomainEvent::MessageFiltered(event) =
        DomainEvent::decode("MessageFiltered", 1, &bytes).unwrap()
    else {
        panic!("decoded as another type");
    };
    assert_eq!(event.visibility, None, "v1 did not record it");
    assert_eq!(json!(event.message.message_id), v1["message_id"]);
    // A v2 payload names its visibility, and a v1 step refuses one that already has it.
    let v2 = fs::read(fixture_path("MessageFiltered", 2)).unwrap();
    let DomainEvent::MessageFiltered(event) =
        DomainEvent::decode("MessageFiltered", 2, &v2).unwrap()
    else {
        panic!("decoded as another type");
    };
    assert!(matches!(
        event.visibility,
        Some(proto_events::event::ConversationVisibility::Private { .. })
    ));
    assert!(DomainEvent::decode("MessageFiltered", 1, &v2).is_err());
}

#[test]
fn a_v1_payload_without_body_is_malformed() {
    let error = DomainEvent::decode(
        "MessageReceived",
        1,
        br#"{"conversation_id":"00000000-0000-0000-0000-000000000071"}"#,
    )
    .unwrap_err();
    assert!(
        matches!(
            &error,
            DecodeError::MalformedPayload { event_type, schema_version: 1, .. }
                if event_type == "MessageReceived"
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("body"), "{error}");
}

#[test]
fn every_old_version_has_a_chain_to_the_current_one() {
    for &(event_type, current) in DomainEvent::TYPES {
        for from in 1..current {
            let steps = UPCASTERS
                .iter()
                .filter(|step| step.event_type == event_type && step.from_version == from)
                .count();
            assert_eq!(steps, 1, "{event_type}: {steps} upcasters from v{from}");
        }
    }
    for step in UPCASTERS {
        let current = DomainEvent::current_version(step.event_type)
            .unwrap_or_else(|| panic!("upcaster for unknown type {}", step.event_type));
        assert!(
            (1..current).contains(&step.from_version),
            "{} v{} is not an old version",
            step.event_type,
            step.from_version,
        );
    }
}

#[test]
fn a_missing_step_is_reported() {
    let error = upcast("ConversationClosed", 1, 2, json!({})).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::MissingUpcaster {
                from_version: 1,
                ..
            }
        ),
        "{error:?}"
    );
}
