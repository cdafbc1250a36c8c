//! Sealing personal fields: over every event type's golden payload, opened with the key, without
//! it (erased), with another key, and moved to another event.

use std::collections::BTreeMap;
use std::path::Path;

use proto_events::DomainEvent;
use proto_events::personal::{self, Class};
use serde_json::Value;
use switchboard_codec::seal::{self, SealError, SubjectKey};
use uuid::Uuid;

/// The current-version golden payload of every event type, parsed.
fn goldens() -> BTreeMap<&'static str, Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto-events/tests/golden");
    DomainEvent::TYPES
        .iter()
        .map(|(event_type, version)| {
            let path = dir.join(format!("{event_type}.v{version}.json"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (*event_type, serde_json::from_slice(&bytes).unwrap())
        })
        .collect()
}

/// Every string of at least four characters in the personal fields of `payload`, but enum tags
/// (`kind`), which say what a value is and nothing of the person.
fn personal_strings(event_type: &str, payload: &Value) -> Vec<String> {
    fn strings(value: &Value, path: &str, classes: &personal::EventClasses, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    strings(value, &path, classes, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    strings(item, path, classes, out);
                }
            }
            Value::String(text)
                if text.chars().count() >= 4
                    && !path.ends_with("kind")
                    && classes.class_of(path) == Some(Class::Personal) =>
            {
                out.push(text.clone());
            }
            _ => {}
        }
    }
    let classes = personal::classes(event_type).unwrap();
    let mut out = Vec::new();
    strings(payload, "", classes, &mut out);
    out
}

fn decode(event_type: &str, bytes: &[u8]) -> DomainEvent {
    let version = DomainEvent::current_version(event_type).unwrap();
    DomainEvent::decode(event_type, version, bytes)
        .unwrap_or_else(|e| panic!("{event_type}: {e}: {}", String::from_utf8_lossy(bytes)))
}

#[test]
fn sealed_payloads_hide_every_personal_string_and_open_to_the_same_event() {
    let key = SubjectKey::generate();
    let mut sealed_types = 0;
    for (event_type, golden) in goldens() {
        let plain = serde_json::to_vec(&golden).unwrap();
        let event_id = Uuid::now_v7();
        let Some(subject) = seal::subject_of(event_type, &golden) else {
            assert!(
                !seal::has_personal_fields(event_type),
                "{event_type} has personal fields but its golden payload names no subject"
            );
            continue;
        };
        let sealed = seal::seal(event_type, event_id, &plain, subject, &key).unwrap();
        let secrets = personal_strings(event_type, &golden);
        let text = String::from_utf8_lossy(&sealed);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{event_type}: {secret:?} in {text}"
            );
        }
        if !secrets.is_empty() {
            sealed_types += 1;
            assert!(seal::is_sealed(&sealed), "{event_type}");
        }
        let expected = if seal::is_sealed(&sealed) {
            vec![subject]
        } else {
            Vec::new()
        };
        assert_eq!(seal::subjects(&sealed).unwrap(), expected, "{event_type}");

        let opened =
            seal::open(event_id, &sealed, |s| (s == subject).then(|| key.clone())).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&opened).unwrap(),
            golden,
            "{event_type}"
        );
        assert_eq!(decode(event_type, &opened), decode(event_type, &plain));
    }
    assert!(
        sealed_types >= 12,
        "only {sealed_types} types had personal strings"
    );
}

#[test]
fn without_the_key_every_payload_decodes_redacted() {
    let key = SubjectKey::generate();
    for (event_type, golden) in goldens() {
        let Some(subject) = seal::subject_of(event_type, &golden) else {
            continue;
        };
        let event_id = Uuid::now_v7();
        let plain = serde_json::to_vec(&golden).unwrap();
        let sealed = seal::seal(event_type, event_id, &plain, subject, &key).unwrap();
        let erased = seal::open(event_id, &sealed, |_| None).unwrap();
        let text = String::from_utf8_lossy(&erased);
        for secret in personal_strings(event_type, &golden) {
            assert!(
                !text.contains(secret.as_str()),
                "{event_type}: {secret:?} in {text}"
            );
        }
        // Still the event, with its ids: read models can show that something was erased.
        let event = decode(event_type, &erased);
        let ids: Vec<&str> = ["conversation_id", "contact_id", "message_id"]
            .iter()
            .filter_map(|field| golden.get(*field)?.as_str())
            .collect();
        let json = serde_json::to_string(&event).unwrap();
        for id in ids {
            assert!(json.contains(id), "{event_type}: {id} lost in {json}");
        }
    }
}

#[test]
fn a_sealed_field_opens_only_with_its_key_in_its_event() {
    let goldens = goldens();
    let golden = &goldens["MessageReceived"];
    let subject = seal::subject_of("MessageReceived", golden).unwrap();
    assert_eq!(
        subject.to_string(),
        golden["contact_id"].as_str().unwrap(),
        "a contact's message is the contact's"
    );
    let key = SubjectKey::generate();
    let event_id = Uuid::now_v7();
    let plain = serde_json::to_vec(golden).unwrap();
    let sealed = seal::seal("MessageReceived", event_id, &plain, subject, &key).unwrap();

    let other = SubjectKey::generate();
    assert!(matches!(
        seal::open(event_id, &sealed, |_| Some(other.clone())),
        Err(SealError::Tampered { .. })
    ));
    assert!(matches!(
        seal::open(Uuid::now_v7(), &sealed, |_| Some(key.clone())),
        Err(SealError::Tampered { .. })
    ));
    // A field's ciphertext swapped into another field does not open either.
    let mut value: Value = serde_json::from_slice(&sealed).unwrap();
    let body = value["body_text"]["$sb"].as_str().unwrap().to_owned();
    let subject_field = value["subject"]["$sb"].as_str().unwrap().to_owned();
    let swapped = body.replacen("~body_text~", "~subject~", 1);
    assert_ne!(swapped, subject_field);
    value["subject"]["$sb"] = Value::String(swapped);
    let moved = serde_json::to_vec(&value).unwrap();
    assert!(matches!(
        seal::open(event_id, &moved, |_| Some(key.clone())),
        Err(SealError::Tampered { .. })
    ));

    // A conversation's message from someone not yet a contact is the conversation's.
    let mut anonymous = golden.clone();
    anonymous["contact_id"] = Value::Null;
    assert_eq!(
        seal::subject_of("MessageReceived", &anonymous)
            .unwrap()
            .to_string(),
        golden["conversation_id"].as_str().unwrap()
    );
}

#[test]
fn unsealed_payloads_are_borrowed_and_broken_markers_are_errors() {
    let plain = br#"{"body_text":"hello {\"$sb\":\"x\"}"}"#;
    assert!(
        !seal::is_sealed(plain),
        "an escaped marker inside a string is text"
    );
    assert!(matches!(
        seal::open(Uuid::now_v7(), plain, |_| None).unwrap(),
        std::borrow::Cow::Borrowed(_)
    ));
    for broken in [
        &br#"{"a":{"$sb":"1~a~b"}}"#[..],
        br#"{"a":{"$sb":"9~a~00000000-0000-0000-0000-000000000001~AA~AA"}}"#,
        br#"{"a":{"$sb":"1~a~00000000-0000-0000-0000-000000000001~AA~AA","x":1}}"#,
        br#"{"a":{"$sb":"1~a~00000000-0000-0000-0000-000000000001~AA~%%"}}"#,
        br#"{"a":{"$sb":"1~a~"#,
    ] {
        let opened = seal::open(Uuid::now_v7(), broken, |_| None);
        assert!(
            matches!(opened, Err(SealError::Malformed(_))),
            "{}: {opened:?}",
            String::from_utf8_lossy(broken)
        );
    }
}

proptest::proptest! {
    /// Whatever a customer writes comes back exactly, and never shows in the sealed bytes.
    #[test]
    fn any_text_round_trips(body in "\\PC{12,200}", name in proptest::option::of("\\PC{4,40}")) {
        let goldens = goldens();
        let mut golden = goldens["MessageReceived"].clone();
        golden["body_text"] = Value::String(body.clone());
        golden["from_name"] = name.clone().map_or(Value::Null, Value::String);
        let plain = serde_json::to_vec(&golden).unwrap();
        let key = SubjectKey::generate();
        let subject = seal::subject_of("MessageReceived", &golden).unwrap();
        let event_id = Uuid::now_v7();
        let sealed = seal::seal("MessageReceived", event_id, &plain, subject, &key).unwrap();
        let escaped = serde_json::to_string(&body).unwrap();
        proptest::prop_assert!(!String::from_utf8_lossy(&sealed).contains(escaped.trim_matches('"')));
        let opened = seal::open(event_id, &sealed, |_| Some(key.clone())).unwrap();
        proptest::prop_assert_eq!(decode("MessageReceived", &opened), decode("MessageReceived", &plain));
        let erased = seal::open(event_id, &sealed, |_| None).unwrap();
        decode("MessageReceived", &erased);
    }
}
