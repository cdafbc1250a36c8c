//! Every field of every event type is classed as personal or not (`proto_events::personal`,
//! ADR 0007): a field added without a class fails here.

use std::collections::BTreeSet;

use proto_events::DomainEvent;
use proto_events::personal::{self, CLASSES, Class};
use serde_json::Value;
use uuid::Uuid;

use crate::samples::samples;

/// The paths of `value`'s leaves (scalars, nulls, empty arrays and objects), arrays transparent.
fn leaves(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                leaves(value, &join(key), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                leaves(item, path, out);
            }
        }
        _ => {
            out.insert(path.to_owned());
        }
    }
}

#[test]
fn every_event_type_is_classed_once() {
    for (event_type, _) in DomainEvent::TYPES {
        assert!(
            personal::classes(event_type).is_some(),
            "{event_type} has no entry in proto_events::personal::CLASSES"
        );
    }
    let mut seen = BTreeSet::new();
    for classes in CLASSES {
        assert!(
            DomainEvent::TYPES
                .iter()
                .any(|(event_type, _)| *event_type == classes.event_type),
            "{} is classed but is no event type",
            classes.event_type
        );
        assert!(
            seen.insert(classes.event_type),
            "{} is classed twice",
            classes.event_type
        );
        let paths: BTreeSet<_> = classes.fields.iter().map(|(path, _)| path).collect();
        assert_eq!(
            paths.len(),
            classes.fields.len(),
            "{} classes a path twice",
            classes.event_type
        );
    }
}

#[test]
fn every_field_of_every_sample_is_classed_and_every_class_is_used() {
    let mut failures = Vec::new();
    for event in samples() {
        let event_type = event.event_type();
        let classes = personal::classes(event_type).unwrap();
        let mut paths = BTreeSet::new();
        leaves(&serde_json::to_value(&event).unwrap(), "", &mut paths);
        for path in &paths {
            if classes.class_of(path).is_none() {
                failures.push(format!(
                    "{event_type}.{path} is not classed: say in proto_events::personal whether \
                     it is personal"
                ));
            }
        }
        for (classed, _) in classes.fields {
            let used = paths
                .iter()
                .any(|path| path == classed || path.starts_with(&format!("{classed}.")));
            if !used {
                failures.push(format!(
                    "{event_type}.{classed} is classed but the sample has no such field (a renamed \
                     field, or a sample that leaves it out)"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The subject of an event: the id in the first subject field that is not null.
fn subject(event: &DomainEvent) -> Option<Uuid> {
    let classes = personal::classes(event.event_type()).unwrap();
    let json = serde_json::to_value(event).unwrap();
    classes.subject.iter().find_map(|field| {
        let text = json.get(*field)?.as_str()?;
        Uuid::parse_str(text).ok().or_else(|| {
            let (_, id) = text.split_once('-')?;
            Uuid::parse_str(id).ok()
        })
    })
}

#[test]
fn events_with_personal_fields_name_their_subject() {
    for event in samples() {
        let classes = personal::classes(event.event_type()).unwrap();
        if classes.personal().next().is_some() {
            assert!(
                subject(&event).is_some(),
                "{}: none of the subject fields {:?} holds an id",
                event.event_type(),
                classes.subject
            );
        } else {
            assert!(
                classes.subject.is_empty(),
                "{} names a subject but has no personal field",
                event.event_type()
            );
        }
    }
}

#[test]
fn a_nested_class_wins_over_its_parents() {
    let filtered = personal::classes("MessageFiltered").unwrap();
    assert_eq!(filtered.class_of("reason.kind"), Some(Class::NotPersonal));
    assert_eq!(
        filtered.class_of("reason.pattern.address"),
        Some(Class::Personal)
    );
    assert_eq!(filtered.class_of("reasonable"), None);
    assert_eq!(filtered.class_of("body_text"), Some(Class::Personal));
    assert_eq!(
        personal::classes("UserCreated").unwrap().class_of("email"),
        Some(Class::Staff)
    );
}

#[test]
fn free_maps_are_personal_maps() {
    for (event_type, path) in personal::FREE_MAPS {
        let classes = personal::classes(event_type).unwrap();
        assert_eq!(
            classes.class_of(path),
            Some(Class::Personal),
            "{event_type}.{path}"
        );
        let sample = samples()
            .into_iter()
            .find(|e| e.event_type() == *event_type)
            .unwrap();
        let json = serde_json::to_value(&sample).unwrap();
        assert!(json[*path].is_object(), "{event_type}.{path} is not a map");
    }
}
