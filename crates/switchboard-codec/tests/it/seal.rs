//! Sealing personal fields: over every event type's golden payload, opened with the key, without
//! it (erased), with another key, and moved to another event.

use std::collections::BTreeMap;
use std::path::Path;

use proto_events::DomainEvent;
use proto_events::personal::{self, Class};
use serde_json::Value;
use switchboard_codec::seal::{self, Lookup, SealError, SubjectKey};
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
            vec![(subject, key.id)]
        } else {
            Vec::new()
        };
        assert_eq!(seal::keys_needed(&sealed), expected, "{event_type}");

        let opened = seal::open(event_id, &sealed, |s, id| {
            if s == subject && id == key.id {
                Lookup::Key(key.clone())
            } else {
                Lookup::Missing
            }
        })
        .unwrap();
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
        let erased = seal::open(event_id, &sealed, |_, _| Lookup::Erased).unwrap();
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
        seal::open(event_id, &sealed, |_, _| Lookup::Key(other.clone())),
        Err(SealError::Tampered { .. })
    ));
    assert!(matches!(
        seal::open(Uuid::now_v7(), &sealed, |_, _| Lookup::Key(key.clone())),
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
        seal::open(event_id, &moved, |_, _| Lookup::Key(key.clone())),
        Err(SealError::Tampered { .. })
    ));

    // The whole marker of one field moved under another: its place gives it away.
    let mut value: Value = serde_json::from_slice(&sealed).unwrap();
    value["subject"] = value["body_text"].clone();
    let moved = serde_json::to_vec(&value).unwrap();
    assert!(matches!(
        seal::open(event_id, &moved, |_, _| Lookup::Key(key.clone())),
        Err(SealError::Tampered { path }) if path == "body_text"
    ));
    // A redaction changed in the stored bytes does not open either.
    let mut value: Value = serde_json::from_slice(&sealed).unwrap();
    let marker = value["body_text"]["$sb"].as_str().unwrap().to_owned();
    let (rest, _) = marker.rsplit_once('~').unwrap();
    let forged = base64_url(br#""an injected body""#);
    value["body_text"]["$sb"] = Value::String(format!("{rest}~{forged}"));
    let forged = serde_json::to_vec(&value).unwrap();
    assert!(matches!(
        seal::open(event_id, &forged, |_, _| Lookup::Key(key.clone())),
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
        seal::open(Uuid::now_v7(), plain, |_, _| Lookup::Erased).unwrap(),
        std::borrow::Cow::Borrowed(_)
    ));
    const ID: &str = "00000000-0000-0000-0000-000000000001";
    for broken in [
        r#"{"a":{"$sb":"1~a~b"}}"#.to_owned(),
        format!(r#"{{"a":{{"$sb":"9~a~{ID}~{ID}~AA~AA"}}}}"#),
        format!(r#"{{"a":{{"$sb":"1~a~{ID}~{ID}~AA~AA","x":1}}}}"#),
        format!(r#"{{"a":{{"$sb":"1~a~{ID}~{ID}~AA~%%"}}}}"#),
        format!(r#"{{"a":{{"$sb":"1~a~{ID}~nope~AA~AA"}}}}"#),
        r#"{"a":{"$sb":"1~a~"#.to_owned(),
    ] {
        let broken = broken.as_bytes();
        let opened = seal::open(Uuid::now_v7(), broken, |_, _| Lookup::Erased);
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
        let opened = seal::open(event_id, &sealed, |_, _| Lookup::Key(key.clone())).unwrap();
        proptest::prop_assert_eq!(decode("MessageReceived", &opened), decode("MessageReceived", &plain));
        let erased = seal::open(event_id, &sealed, |_, _| Lookup::Erased).unwrap();
        decode("MessageReceived", &erased);
    }
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[test]
fn an_erased_contact_keeps_none_of_their_property_names() {
    let goldens = goldens();
    let mut golden = goldens["ContactRecordCreated"].clone();
    golden["properties"]["kind"] = Value::String("allergic to peanuts".into());
    golden["properties"]["favourite_colour"] = Value::String("teal".into());
    let plain = serde_json::to_vec(&golden).unwrap();
    let subject = seal::subject_of("ContactRecordCreated", &golden).unwrap();
    let key = SubjectKey::generate();
    let event_id = Uuid::now_v7();
    let sealed = seal::seal("ContactRecordCreated", event_id, &plain, subject, &key).unwrap();
    let erased = seal::open(event_id, &sealed, |_, _| Lookup::Erased).unwrap();
    for text in [&sealed[..], &erased[..]] {
        let text = String::from_utf8_lossy(text);
        for secret in ["peanuts", "favourite_colour", "teal"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    let erased: Value = serde_json::from_slice(&erased).unwrap();
    assert_eq!(erased["properties"], serde_json::json!({}));
    decode(
        "ContactRecordCreated",
        &serde_json::to_vec(&erased).unwrap(),
    );
}

#[test]
fn personal_values_without_a_subject_are_detected() {
    let goldens = goldens();
    let mut ticket = goldens["TicketCreated"].clone();
    ticket["from_conversation_id"] = Value::Null;
    assert_eq!(
        seal::subject_of("TicketCreated", &ticket).map(|s| s.to_string()),
        ticket["ticket_id"].as_str().map(str::to_owned),
        "a ticket from no conversation is its own subject"
    );
    let mut message = goldens["MessageReceived"].clone();
    message["contact_id"] = Value::Null;
    message["conversation_id"] = Value::Null;
    assert_eq!(seal::subject_of("MessageReceived", &message), None);
    assert!(seal::has_personal_values("MessageReceived", &message));
    assert!(!seal::has_personal_values(
        "InboxCreated",
        &goldens["InboxCreated"]
    ));
}

/// The workspace builds Poly1305 in its portable form (.cargo/config.toml): its AVX2 form made
/// opening a short field about 3.5 times as slow (docs/benchmarks.md, "Sealed history"). A
/// `RUSTFLAGS` in the environment replaces the setting; this says so rather than let the
/// slowdown pass unnoticed.
#[test]
#[allow(clippy::assertions_on_constants)] // The constant is the build's setting under test.
fn poly1305_is_built_in_its_portable_form() {
    assert!(
        cfg!(poly1305_force_soft),
        "built without --cfg poly1305_force_soft: RUSTFLAGS (or CARGO_ENCODED_RUSTFLAGS, or a \
         target's rustflags) replaced .cargo/config.toml's; add the flag to it"
    );
}
