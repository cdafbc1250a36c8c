//! Hand-built histories with chosen actors and causal chains, and one shared sample history.

use std::collections::HashMap;

use audit_trail::AuditTrail;
use chrono::{DateTime, Duration, TimeZone, Utc};
use proto_events::event::{
    Assignee, AssignmentReason, ChannelKind, CommentAdded, ContactRecordCreated, ContactsMerged,
    ConversationAssigned, ConversationOrigin, ConversationStarted, ConversationVisibility,
    Identity, InboundMessage, InboxCreated, MessageReceived, UniqueScope, UniqueValueReserved,
    UserCreated,
};
use proto_events::{Actor, DomainEvent, Envelope, Metadata, streams};
use rusqlite::Connection;
use switchboard_projector::testing;
use tempfile::TempDir;
use uuid::Uuid;

pub(crate) fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

pub(crate) fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap() + Duration::minutes(minute)
}

/// The id of the event at `position` in every [`History`].
pub(crate) fn event_id(position: u64) -> Uuid {
    Uuid::from_u128(0xE000_0000 + u128::from(position))
}

#[derive(Default)]
pub(crate) struct History {
    pub(crate) events: Vec<Envelope>,
    versions: HashMap<String, u64>,
}

impl History {
    /// Appends an event caused by `actor` at `minute`, starting its own causal chain.
    pub(crate) fn push(
        &mut self,
        stream: String,
        actor: Actor,
        minute: i64,
        payload: impl Into<DomainEvent>,
    ) -> Uuid {
        let next = event_id(self.events.len() as u64 + 1);
        self.push_caused(stream, actor, minute, (next, next), payload)
    }

    /// Appends an event with the given (correlation, causation) ids.
    pub(crate) fn push_caused(
        &mut self,
        stream: String,
        actor: Actor,
        minute: i64,
        (correlation_id, causation_id): (Uuid, Uuid),
        payload: impl Into<DomainEvent>,
    ) -> Uuid {
        let payload = payload.into();
        let position = self.events.len() as u64 + 1;
        let version = self.versions.entry(stream.clone()).or_insert(0);
        let event_id = event_id(position);
        self.events.push(Envelope {
            event_id,
            stream,
            stream_version: *version,
            position,
            event_type: payload.event_type().to_owned(),
            schema_version: payload.schema_version(),
            recorded_at: at(minute) + Duration::seconds(2),
            metadata: Metadata {
                actor,
                correlation_id,
                causation_id,
                occurred_at: at(minute),
                idempotency_key: None,
                command_fingerprint: None,
            },
            payload,
        });
        *version += 1;
        event_id
    }
}

pub(crate) fn build(events: &[Envelope]) -> (TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = testing::build_at_once(&AuditTrail, dir.path(), events);
    (dir, conn)
}

pub(crate) const AGENT: u128 = 500;
pub(crate) const INBOX: u128 = 700;
pub(crate) const CONVERSATION: u128 = 100;
pub(crate) const ADA: u128 = 1;
pub(crate) const BEA: u128 = 2;

pub(crate) fn agent() -> Actor {
    Actor::User { id: id(AGENT) }
}

pub(crate) fn router() -> Actor {
    Actor::System {
        component: "router".into(),
    }
}

/// Positions: 1 UserCreated (admin), 2 InboxCreated (admin), 3 ContactRecordCreated Ada
/// (agent), 4 ConversationStarted (channel) and 5 MessageReceived (contact Ada) correlated with
/// 4, 6 ConversationAssigned (router) caused by 5, 7 CommentAdded (agent), 8 ContactsMerged Bea
/// into Ada (agent), 9 UniqueValueReserved for Ada (system).
pub(crate) fn sample() -> History {
    let (inbox, conv, ada, bea) = (id(INBOX), id(CONVERSATION), id(ADA), id(BEA));
    let admin = Actor::User { id: id(501) };
    let mut h = History::default();
    h.push(
        streams::user(id(AGENT)),
        admin.clone(),
        0,
        UserCreated {
            user_id: id(AGENT),
            email: "agent@example.com".into(),
            name: "Agent".into(),
            role: proto_events::event::Role::Agent,
            availability: proto_events::event::Availability::Available,
        },
    );
    h.push(
        streams::inbox(inbox),
        admin,
        1,
        InboxCreated {
            inbox_id: inbox,
            name: "Support".into(),
        },
    );
    h.push(
        streams::contact(ada),
        agent(),
        2,
        ContactRecordCreated {
            contact_id: ada,
            identities: vec![],
            properties: Default::default(),
            from_conversation_id: None,
        },
    );
    let chain = h.push(
        streams::conversation(conv),
        Actor::Channel { id: id(900) },
        10,
        ConversationStarted {
            conversation_id: conv,
            inbox_id: inbox,
            channel_id: id(900),
            channel_kind: ChannelKind::Email,
            contact_id: Some(ada),
            origin: ConversationOrigin::Inbound,
            visibility: ConversationVisibility::Shared,
        },
    );
    let message = h.push_caused(
        streams::conversation(conv),
        Actor::Contact { id: ada },
        10,
        (chain, chain),
        MessageReceived {
            conversation_id: conv,
            inbox_id: inbox,
            message: InboundMessage {
                message_id: id(1001),
                channel_id: id(900),
                channel_kind: ChannelKind::Email,
                provider_message_id: None,
                from: Identity::Email {
                    address: "ada@example.com".into(),
                },
                from_name: None,
                contact_id: Some(ada),
                subject: None,
                body_text: "help".into(),
                body_html: None,
                email: None,
                form_fields: vec![],
                attachments: Vec::new(),
                raw: None,
            },
        },
    );
    h.push_caused(
        streams::conversation(conv),
        router(),
        11,
        (chain, message),
        ConversationAssigned {
            conversation_id: conv,
            inbox_id: inbox,
            assignee: Assignee::User { id: id(AGENT) },
            reason: AssignmentReason::Manual { by: router() },
        },
    );
    h.push(
        streams::conversation(conv),
        agent(),
        20,
        CommentAdded {
            conversation_id: conv,
            inbox_id: inbox,
            comment_id: id(2001),
            author_user_id: id(AGENT),
            body_text: "on it".into(),
            mentions: vec![],
        },
    );
    h.push(
        streams::contact(ada),
        agent(),
        30,
        ContactsMerged {
            survivor_id: ada,
            merged_id: bea,
        },
    );
    h.push(
        streams::unique(UniqueScope::ContactEmail, "ada@example.com"),
        Actor::System {
            component: "contacts".into(),
        },
        31,
        UniqueValueReserved {
            scope: UniqueScope::ContactEmail,
            value: "ada@example.com".into(),
            owner_stream: streams::contact(ada),
        },
    );
    h
}
