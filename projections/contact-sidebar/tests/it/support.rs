//! Hand-built histories: envelopes with increasing positions, stream versions and times, and
//! shorthands for the payloads the tests use.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use contact_sidebar::ContactSidebar;
use proto_events::event::{
    ChannelKind, ConversationOrigin, ConversationStarted, ConversationVisibility, Identity,
    InboundMessage, MessageReceived, ReplyAuthor, ReplySent,
};
use proto_events::{Actor, DomainEvent, Envelope, Metadata};
use rusqlite::Connection;
use switchboard_projector::testing;
use tempfile::TempDir;
use uuid::Uuid;

/// A small deterministic id.
pub(crate) fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// The time `minute` minutes into the test day.
pub(crate) fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap() + Duration::minutes(minute)
}

/// An event log under construction.
#[derive(Default)]
pub(crate) struct History {
    pub(crate) events: Vec<Envelope>,
    versions: HashMap<String, u64>,
}

impl History {
    /// Appends `payload` to `stream`, occurring at `minute`.
    pub(crate) fn push(&mut self, stream: String, minute: i64, payload: impl Into<DomainEvent>) {
        let payload = payload.into();
        let position = self.events.len() as u64 + 1;
        let version = self.versions.entry(stream.clone()).or_insert(0);
        let event_id = Uuid::from_u128(0xE000_0000 + u128::from(position));
        self.events.push(Envelope {
            event_id,
            stream,
            stream_version: *version,
            position,
            event_type: payload.event_type().to_owned(),
            schema_version: payload.schema_version(),
            recorded_at: at(minute) + Duration::seconds(1),
            metadata: Metadata {
                actor: Actor::System {
                    component: "test".into(),
                },
                correlation_id: event_id,
                causation_id: event_id,
                occurred_at: at(minute),
                idempotency_key: None,
                command_fingerprint: None,
            },
            payload,
        });
        *version += 1;
    }
}

/// The read model built from `events` in one batch (keep the directory alive while querying).
pub(crate) fn build(events: &[Envelope]) -> (TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = testing::build_at_once(&ContactSidebar, dir.path(), events);
    (dir, conn)
}

pub(crate) fn email(address: &str) -> Identity {
    Identity::Email {
        address: address.into(),
    }
}

pub(crate) fn started(
    conversation: Uuid,
    inbox: Uuid,
    contact: Option<Uuid>,
    private_owner: Option<Uuid>,
) -> ConversationStarted {
    ConversationStarted {
        conversation_id: conversation,
        inbox_id: inbox,
        channel_id: id(900),
        channel_kind: ChannelKind::Email,
        contact_id: contact,
        origin: ConversationOrigin::Inbound,
        visibility: match private_owner {
            Some(owner_user_id) => ConversationVisibility::Private { owner_user_id },
            None => ConversationVisibility::Shared,
        },
    }
}

pub(crate) fn received(
    conversation: Uuid,
    inbox: Uuid,
    contact: Option<Uuid>,
    body: &str,
) -> MessageReceived {
    MessageReceived {
        conversation_id: conversation,
        inbox_id: inbox,
        message: InboundMessage {
            message_id: Uuid::new_v5(&conversation, body.as_bytes()),
            channel_id: id(900),
            channel_kind: ChannelKind::Email,
            provider_message_id: None,
            from: email("ada@example.com"),
            from_name: None,
            contact_id: contact,
            subject: Some(format!("About {body}")),
            body_text: body.into(),
            body_html: None,
            email: None,
            form_fields: Vec::new(),
            attachments: Vec::new(),
            raw: None,
        },
    }
}

pub(crate) fn reply(conversation: Uuid, inbox: Uuid, body: &str) -> ReplySent {
    ReplySent {
        conversation_id: conversation,
        inbox_id: inbox,
        message_id: Uuid::new_v5(&conversation, body.as_bytes()),
        channel_id: id(900),
        channel_kind: ChannelKind::Email,
        author: ReplyAuthor::User { id: id(500) },
        subject: None,
        body_text: body.into(),
        body_html: None,
        email: None,
        attachments: Vec::new(),
    }
}
