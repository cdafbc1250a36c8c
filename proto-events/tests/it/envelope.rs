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
    assert_eq!(envelope.payload.schema_version(), 3);
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
    for version in [0, 4] {
        let error = DomainEvent::decode("MessageReceived", version, b"{}").unwrap_err();
        assert!(
            matches!(error, DecodeError::UnsupportedVersion { schema_version, current: 3, .. }
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

/// The tagged shapes every event carries (actors, assignees, reply authors) decode through flat
/// structs rather than serde's buffering of tagged enums: the same values from the same JSON,
/// whatever the order of its fields, and errors where the derive had them.
#[test]
fn tagged_shapes_decode_in_any_field_order_and_refuse_what_they_lack() {
    use proto_events::event::{Assignee, ReplyAuthor};
    use serde_json::{from_str, to_string};

    let user = id(7);
    let actors = [
        Actor::User { id: user },
        Actor::Contact { id: user },
        Actor::Bot { id: user },
        Actor::Channel { id: user },
        Actor::System {
            component: "router \"main\"".into(),
        },
    ];
    for actor in actors {
        let written = to_string(&actor).unwrap();
        assert_eq!(from_str::<Actor>(&written).unwrap(), actor, "{written}");
    }
    let reversed = format!(r#"{{"id":"{user}","extra":1,"kind":"bot"}}"#);
    assert_eq!(
        from_str::<Actor>(&reversed).unwrap(),
        Actor::Bot { id: user }
    );
    for author in [
        ReplyAuthor::User { id: user },
        ReplyAuthor::Bot { id: user },
        ReplyAuthor::Automation {
            name: "Auto-ack".into(),
        },
    ] {
        let written = to_string(&author).unwrap();
        assert_eq!(from_str::<ReplyAuthor>(&written).unwrap(), author);
    }
    for assignee in [
        Assignee::User { id: user },
        Assignee::Team { id: user },
        Assignee::Bot { id: user },
    ] {
        let written = to_string(&assignee).unwrap();
        assert_eq!(from_str::<Assignee>(&written).unwrap(), assignee);
    }

    let refused = |json: &str| -> String {
        let errors = [
            from_str::<Actor>(json).err().map(|e| e.to_string()),
            from_str::<Assignee>(json).err().map(|e| e.to_string()),
            from_str::<ReplyAuthor>(json).err().map(|e| e.to_string()),
        ];
        assert!(errors.iter().all(Option::is_some), "{json} accepted");
        errors.into_iter().flatten().collect::<Vec<_>>().join(" | ")
    };
    assert!(refused(r#"{"kind":"user"}"#).contains("missing field `id`"));
    assert!(refused(r#"{"kind":"user","id":null}"#).contains("missing field `id`"));
    assert!(refused(r#"{"kind":"user","id":"not-a-uuid"}"#).contains("UUID"));
    assert!(
        refused(r#"{"kind":"alien","id":"00000000-0000-0000-0000-000000000007"}"#)
            .contains("unknown variant `alien`")
    );
    assert!(
        refused(r#"{"id":"00000000-0000-0000-0000-000000000007"}"#)
            .contains("missing field `kind`")
    );
    let no_component = from_str::<Actor>(r#"{"kind":"system"}"#).unwrap_err();
    assert!(
        no_component
            .to_string()
            .contains("missing field `component`")
    );
    let no_name = from_str::<ReplyAuthor>(r#"{"kind":"automation"}"#).unwrap_err();
    assert!(no_name.to_string().contains("missing field `name`"));
}

/// Identities decode through a flat struct too, and inbound messages, written with their
/// message's fields beside the conversation's, are read without serde's buffering of flattened
/// structs: the same values, and errors naming the field.
#[test]
fn identities_and_inbound_messages_decode_flat() {
    use proto_events::event::{
        ConversationVisibility, FilterReason, Identity, MessageFiltered, MessageReceived,
    };
    use serde_json::{from_str, from_value, to_string, to_value};

    let identities = [
        Identity::Email {
            address: "ada@example.org".into(),
        },
        Identity::ChatVisitor {
            visitor_id: "v-1".into(),
        },
        Identity::Messenger { psid: "123".into() },
    ];
    for identity in &identities {
        let written = to_string(identity).unwrap();
        assert_eq!(&from_str::<Identity>(&written).unwrap(), identity);
    }
    let no_psid = from_str::<Identity>(r#"{"kind":"messenger","address":"x"}"#).unwrap_err();
    assert!(no_psid.to_string().contains("missing field `psid`"));

    let received = MessageReceived {
        conversation_id: id(1),
        inbox_id: id(2),
        message: crate::samples::inbound_message(),
    };
    let written = to_value(&received).unwrap();
    assert_eq!(written["body_text"], "Hello, what would 20 seats cost?");
    assert_eq!(
        from_value::<MessageReceived>(written.clone()).unwrap(),
        received
    );

    let filtered = MessageFiltered {
        conversation_id: id(1),
        inbox_id: id(2),
        reason: FilterReason::BulkMail,
        visibility: Some(ConversationVisibility::Shared),
        message: crate::samples::inbound_message(),
    };
    let written_filtered = to_value(&filtered).unwrap();
    assert_eq!(
        from_value::<MessageFiltered>(written_filtered.clone()).unwrap(),
        filtered
    );
    let no_reason = from_value::<MessageFiltered>(written).unwrap_err();
    assert!(no_reason.to_string().contains("missing field `reason`"));
    let mut no_body = written_filtered;
    no_body.as_object_mut().unwrap().remove("body_text");
    let refused = from_value::<MessageReceived>(no_body).unwrap_err();
    assert!(refused.to_string().contains("missing field `body_text`"));
}

/// Visibilities, assignment reasons (a rule's decision beside its `kind`) and reopen causes
/// decode through flat structs: the same values as written, and errors naming the field.
#[test]
fn visibilities_assignment_reasons_and_reopen_causes_decode_flat() {
    use proto_events::event::{
        AssignmentReason, ConversationVisibility, ReopenCause, RoutingDecision, RoutingStrategy,
        SkipReason, SkippedCandidate,
    };
    use serde_json::{from_str, to_string};

    fn round_trips<T>(values: &[T])
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        for value in values {
            let written = to_string(value).unwrap();
            assert_eq!(&from_str::<T>(&written).unwrap(), value, "{written}");
        }
    }
    round_trips(&[
        ConversationVisibility::Shared,
        ConversationVisibility::Private {
            owner_user_id: id(1),
        },
    ]);
    round_trips(&[
        AssignmentReason::Rule(RoutingDecision {
            rule_id: id(2),
            strategy: RoutingStrategy::LeastLoaded,
            candidates: vec![id(3), id(4)],
            skipped: vec![SkippedCandidate {
                user_id: id(4),
                why: SkipReason::Away,
            }],
        }),
        AssignmentReason::Manual {
            by: Actor::User { id: id(5) },
        },
        AssignmentReason::BotHandoff { bot_id: id(6) },
    ]);
    round_trips(&[
        ReopenCause::CustomerWrote { message_id: id(7) },
        ReopenCause::Manual {
            by: Actor::System {
                component: "api".into(),
            },
        },
    ]);

    let refused = |error: serde_json::Error, field: &str| {
        assert!(
            error
                .to_string()
                .contains(&format!("missing field `{field}`")),
            "{error}"
        );
    };
    refused(
        from_str::<ConversationVisibility>(r#"{"kind":"private"}"#).unwrap_err(),
        "owner_user_id",
    );
    refused(
        from_str::<AssignmentReason>(r#"{"kind":"rule","strategy":"round_robin"}"#).unwrap_err(),
        "rule_id",
    );
    refused(
        from_str::<AssignmentReason>(r#"{"kind":"manual"}"#).unwrap_err(),
        "by",
    );
    refused(
        from_str::<ReopenCause>(r#"{"kind":"customer_wrote"}"#).unwrap_err(),
        "message_id",
    );
    assert!(from_str::<ReopenCause>(r#"{"kind":"elsewhere"}"#).is_err());
}
