//! Building event logs for the tests: ids, instants and payload constructors.

use chrono::{DateTime, Utc};
use proto_events::event::{
    Assignee, AssignmentReason, BotHandedOff, BusinessHoursSet, ChannelKind, CommentAdded,
    ConversationAssigned, ConversationClosed, ConversationOrigin, ConversationReassigned,
    ConversationReopened, ConversationStarted, ConversationVisibility, Holiday, Identity,
    InboundMessage, MessageReceived, OpeningInterval, ReopenCause, ReplyAuthor, ReplySent,
    TeamMemberAdded, Weekday,
};
use proto_events::{Actor, DomainEvent, Envelope, Metadata};
use rusqlite::Connection;
use switchboard_projector::testing;
use uuid::Uuid;

use response_analytics::ResponseAnalytics;

pub(crate) const ALICE: Uuid = Uuid::from_u128(0xA1);
pub(crate) const BOB: Uuid = Uuid::from_u128(0xB0);
pub(crate) const BOT: Uuid = Uuid::from_u128(0xB07);
pub(crate) const SALES: Uuid = Uuid::from_u128(0x5A1E5);
pub(crate) const SUPPORT: Uuid = Uuid::from_u128(0x5099);
pub(crate) const INBOX_1: Uuid = Uuid::from_u128(0x1B1);
pub(crate) const INBOX_2: Uuid = Uuid::from_u128(0x1B2);
pub(crate) const CHAT: Uuid = Uuid::from_u128(0xC4A7);
pub(crate) const EMAIL: Uuid = Uuid::from_u128(0xE3A1);
pub(crate) const C1: Uuid = Uuid::from_u128(0xC1);
pub(crate) const C2: Uuid = Uuid::from_u128(0xC2);
pub(crate) const C3: Uuid = Uuid::from_u128(0xC3);
pub(crate) const C4: Uuid = Uuid::from_u128(0xC4);

/// An instant from RFC 3339 text.
pub(crate) fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// An event log under construction, positions from 1.
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) events: Vec<Envelope>,
}

impl Log {
    pub(crate) fn at(&mut self, at: &str, payload: impl Into<DomainEvent>) -> &mut Self {
        let payload = payload.into();
        let position = self.events.len() as u64 + 1;
        let occurred_at = t(at);
        self.events.push(Envelope {
            event_id: Uuid::from_u128(0xE000_0000 + u128::from(position)),
            stream: "test".into(),
            stream_version: position - 1,
            position,
            event_type: payload.event_type().into(),
            schema_version: payload.schema_version(),
            recorded_at: occurred_at,
            metadata: Metadata {
                actor: Actor::System {
                    component: "test".into(),
                },
                correlation_id: Uuid::from_u128(1),
                causation_id: Uuid::from_u128(1),
                occurred_at,
                idempotency_key: None,
                command_fingerprint: None,
            },
            payload,
        });
        self
    }
}

/// Builds the read model from `events` at once, in a fresh directory.
pub(crate) fn build(events: &[Envelope]) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = testing::build_at_once(&ResponseAnalytics, dir.path(), events);
    (dir, conn)
}

fn inbox_of(conversation: Uuid) -> Uuid {
    if conversation == C3 { INBOX_2 } else { INBOX_1 }
}

fn channel_of(conversation: Uuid) -> (Uuid, ChannelKind) {
    if conversation == C3 || conversation == C4 {
        (EMAIL, ChannelKind::Email)
    } else {
        (CHAT, ChannelKind::Chat)
    }
}

pub(crate) fn started(conversation: Uuid) -> ConversationStarted {
    let (channel_id, channel_kind) = channel_of(conversation);
    ConversationStarted {
        conversation_id: conversation,
        inbox_id: inbox_of(conversation),
        channel_id,
        channel_kind,
        contact_id: None,
        origin: ConversationOrigin::Inbound,
        visibility: ConversationVisibility::Shared,
    }
}

static NEXT_MESSAGE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn message_id() -> Uuid {
    Uuid::from_u128(
        0x3E55_0000 + u128::from(NEXT_MESSAGE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
    )
}

pub(crate) fn customer(conversation: Uuid) -> MessageReceived {
    let (channel_id, channel_kind) = channel_of(conversation);
    MessageReceived {
        conversation_id: conversation,
        inbox_id: inbox_of(conversation),
        message: InboundMessage {
            message_id: message_id(),
            channel_id,
            channel_kind,
            provider_message_id: None,
            from: Identity::ChatVisitor {
                visitor_id: "visitor".into(),
            },
            from_name: None,
            contact_id: None,
            subject: None,
            body_text: "hello?".into(),
            body_html: None,
            email: None,
            form_fields: Vec::new(),
            attachments: Vec::new(),
            raw: None,
        },
    }
}

fn reply(conversation: Uuid, author: ReplyAuthor) -> ReplySent {
    let (channel_id, channel_kind) = channel_of(conversation);
    ReplySent {
        conversation_id: conversation,
        inbox_id: inbox_of(conversation),
        message_id: message_id(),
        channel_id,
        channel_kind,
        author,
        subject: None,
        body_text: "reply".into(),
        body_html: None,
        email: None,
        attachments: Vec::new(),
    }
}

pub(crate) fn agent_reply(conversation: Uuid, user: Uuid) -> ReplySent {
    reply(conversation, ReplyAuthor::User { id: user })
}

pub(crate) fn bot_reply(conversation: Uuid) -> ReplySent {
    reply(conversation, ReplyAuthor::Bot { id: BOT })
}

pub(crate) fn automated_reply(conversation: Uuid) -> ReplySent {
    reply(
        conversation,
        ReplyAuthor::Automation {
            name: "acknowledgement".into(),
        },
    )
}

pub(crate) fn comment(conversation: Uuid, user: Uuid) -> CommentAdded {
    CommentAdded {
        conversation_id: conversation,
        inbox_id: inbox_of(conversation),
        comment_id: message_id(),
        author_user_id: user,
        body_text: "internal note".into(),
        mentions: Vec::new(),
    }
}

pub(crate) fn assigned(conversation: Uuid, user: Uuid) -> ConversationAssigned {
    ConversationAssigned {
        conversation_id: conversation,
        inbox_id: inbox_of(conversation),
        assignee: Assignee::User { id: user },
        reason: AssignmentReason::BotHandoff { bot_id: BOT },
    }
}

pub(crate) fn reassigned(conversation: Uuid, from: Uuid, to: Uuid) -> ConversationReassigned {
    ConversationReassigned {
        conversation_id: conversation,
        inbox_id: inbox_of(conversation),
        from: Assignee::User { id: from },
        to: Assignee::User { id: to },
        reason: AssignmentReason::Manual {
            by: Actor::User { id: from },
        },
    }
}

pub(crate) fn handed_off(conversation: Uuid) -> BotHandedOff {
    BotHandedOff {
        conversation_id: conversation,
        inbox_id: inbox_of(conversation),
        bot_id: BOT,
        to: None,
    }
}

pub(crate) fn closed(conversation: Uuid) -> ConversationClosed {
    ConversationClosed {
        conversation_id: conversation,
        inbox_id: inbox_of(conversation),
        by: Actor::System {
            component: "test".into(),
        },
    }
}

pub(crate) fn reopened(conversation: Uuid) -> ConversationReopened {
    ConversationReopened {
        conversation_id: conversation,
        inbox_id: inbox_of(conversation),
        cause: ReopenCause::CustomerWrote {
            message_id: Uuid::from_u128(7),
        },
    }
}

pub(crate) fn joined(team: Uuid, user: Uuid) -> TeamMemberAdded {
    TeamMemberAdded {
        team_id: team,
        user_id: user,
    }
}

/// Opening hours `opens`-`closes` on `days`, in `zone`.
pub(crate) fn hours(
    zone: &str,
    days: &[Weekday],
    opens: &str,
    closes: &str,
    holidays: &[&str],
) -> BusinessHoursSet {
    BusinessHoursSet {
        organisation_id: Uuid::from_u128(0x0A6),
        time_zone: zone.into(),
        weekly: days
            .iter()
            .map(|&day| OpeningInterval {
                day,
                opens: opens.parse().unwrap(),
                closes: closes.parse().unwrap(),
            })
            .collect(),
        holidays: holidays
            .iter()
            .map(|d| Holiday {
                date: d.parse().unwrap(),
                name: "holiday".into(),
            })
            .collect(),
    }
}

pub(crate) const WEEKDAYS: [Weekday; 5] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
];
