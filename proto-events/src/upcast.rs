//! Upcasters: how stored payloads of old schema versions become the current shape.
//!
//! History is never rewritten. When a payload's shape changes, its type's version in
//! [`DomainEvent::TYPES`](crate::DomainEvent::TYPES) goes up by one and a step from the previous
//! version is added to [`UPCASTERS`]. Decoding an old payload runs the steps one version at a time
//! on its JSON (`v1 -> v2 -> ... -> current`), then parses the result as the current type. The
//! old version's golden fixture stays in `tests/golden/` and keeps being decoded.
//!
//! # History
//! - `MessageReceived` v1 -> v2: `body` (plain text) became `body_text`, beside a new optional
//!   `body_html`, when e-mail started keeping its HTML part. v1 messages had no HTML.
//! - `MessageFiltered` v1 -> v2: `visibility` was added, so that filtered mail of a private
//!   account names its owner. v1 did not record it; the step sets it to `null` ("not
//!   recorded"), and readers take the channel's access, which is what the write side decided
//!   by.
//! - `MessageReceived` and `MessageFiltered` v2 -> v3: `attachments` (empty) and `raw` (`null`)
//!   were added when e-mail started arriving as MIME, with files and the original kept in the
//!   blob store. Earlier messages had neither.
//! - `ReplySent` v1 -> v2: `attachments` (empty) was added with outbound e-mail.
//! - `DeliveryFailed` v1 -> v2: `status` (the remote server's reply code) was added, `null`
//!   ("not recorded") before.

use serde::de::Error as _;
use serde_json::Value;

use crate::DecodeError;

/// One step of a payload's history: from `from_version` to `from_version + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// The event type this step applies to.
    pub event_type: &'static str,
    /// The version the step reads; it produces the next one.
    pub from_version: u32,
    /// The transformation. It fails if the payload is not of the shape `from_version` promises.
    pub apply: fn(Value) -> Result<Value, serde_json::Error>,
}

/// Every upcasting step ever released. Steps are never removed: old events stay in the store.
pub const UPCASTERS: &[Upcaster] = &[
    Upcaster {
        event_type: "MessageReceived",
        from_version: 1,
        apply: message_received_v1_to_v2,
    },
    Upcaster {
        event_type: "MessageFiltered",
        from_version: 1,
        apply: message_filtered_v1_to_v2,
    },
    Upcaster {
        event_type: "MessageReceived",
        from_version: 2,
        apply: inbound_v2_to_v3,
    },
    Upcaster {
        event_type: "MessageFiltered",
        from_version: 2,
        apply: inbound_v2_to_v3,
    },
    Upcaster {
        event_type: "ReplySent",
        from_version: 1,
        apply: reply_sent_v1_to_v2,
    },
    Upcaster {
        event_type: "DeliveryFailed",
        from_version: 1,
        apply: delivery_failed_v1_to_v2,
    },
];

/// Lifts `payload` of `event_type` from `from_version` to `to_version`, one step at a time.
pub fn upcast(
    event_type: &str,
    from_version: u32,
    to_version: u32,
    mut payload: Value,
) -> Result<Value, DecodeError> {
    for version in from_version..to_version {
        let step = UPCASTERS
            .iter()
            .find(|step| step.event_type == event_type && step.from_version == version)
            .ok_or_else(|| DecodeError::MissingUpcaster {
                event_type: event_type.to_owned(),
                schema_version: from_version,
                from_version: version,
            })?;
        payload = (step.apply)(payload).map_err(|source| DecodeError::MalformedPayload {
            event_type: event_type.to_owned(),
            schema_version: from_version,
            source,
        })?;
    }
    Ok(payload)
}

/// `MessageReceived` v1 -> v2: `body` is renamed `body_text`; `body_html` is added, empty.
fn message_received_v1_to_v2(mut payload: Value) -> Result<Value, serde_json::Error> {
    let fields = payload
        .as_object_mut()
        .ok_or_else(|| serde_json::Error::custom("MessageReceived v1 payload is not an object"))?;
    let body = fields
        .remove("body")
        .ok_or_else(|| serde_json::Error::missing_field("body"))?;
    fields.insert("body_text".to_owned(), body);
    fields.insert("body_html".to_owned(), Value::Null);
    Ok(payload)
}

/// `MessageFiltered` v1 -> v2: `visibility` is added as not recorded (`null`).
fn message_filtered_v1_to_v2(mut payload: Value) -> Result<Value, serde_json::Error> {
    let fields = payload
        .as_object_mut()
        .ok_or_else(|| serde_json::Error::custom("MessageFiltered v1 payload is not an object"))?;
    if fields.contains_key("visibility") {
        return Err(serde_json::Error::custom(
            "MessageFiltered v1 payload already has a visibility",
        ));
    }
    fields.insert("visibility".to_owned(), Value::Null);
    Ok(payload)
}

/// Adds `fields` (name, value) to the object `payload` of `what`; refuses one that has them.
fn add_fields(
    mut payload: Value,
    what: &str,
    fields: &[(&str, Value)],
) -> Result<Value, serde_json::Error> {
    let object = payload
        .as_object_mut()
        .ok_or_else(|| serde_json::Error::custom(format!("{what} payload is not an object")))?;
    for (name, value) in fields {
        if object.contains_key(*name) {
            return Err(serde_json::Error::custom(format!(
                "{what} payload already has `{name}`"
            )));
        }
        object.insert((*name).to_owned(), value.clone());
    }
    Ok(payload)
}

/// `MessageReceived`/`MessageFiltered` v2 -> v3: no attachments, no raw original.
fn inbound_v2_to_v3(payload: Value) -> Result<Value, serde_json::Error> {
    add_fields(
        payload,
        "inbound message v2",
        &[
            ("attachments", Value::Array(Vec::new())),
            ("raw", Value::Null),
        ],
    )
}

/// `ReplySent` v1 -> v2: no attachments.
fn reply_sent_v1_to_v2(payload: Value) -> Result<Value, serde_json::Error> {
    add_fields(
        payload,
        "ReplySent v1",
        &[("attachments", Value::Array(Vec::new()))],
    )
}

/// `DeliveryFailed` v1 -> v2: the status was not recorded.
fn delivery_failed_v1_to_v2(payload: Value) -> Result<Value, serde_json::Error> {
    add_fields(payload, "DeliveryFailed v1", &[("status", Value::Null)])
}
