//! The test history: a realistic run of events with increasing positions and times, and helpers
//! to build it into a read model.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proto_events::event::{
    Assignee, AssignmentReason, BotHandedOff, ChannelKind, CommentAdded, ConversationAssigned,
    ConversationClosed, ConversationOrigin, ConversationQueued, ConversationReassigned,
    ConversationReopened, ConversationStarted, ConversationUnassigned, ConversationVisibility,
    DeliveryFailed, DeliverySucceeded, FilterReason, FilteredMessageRestored, Identity,
    InboundMessage, MessageFiltered, MessageReceived, ReopenCause, ReplyAuthor, ReplySent,
    RoutingDecision, RoutingStrategy, SenderPattern, SkipReason, SkippedCandidate,
};
use proto_events::{Actor, DomainEvent, Envelope, Metadata, streams};
use rusqlite::Connection;
use tempfile::TempDir;
use thread_view::ThreadView;
use uuid::Uuid;

pub(crate) const SUPPORT: Uuid = Uuid::from_u128(0x1);
pub(crate) const SALES: Uuid = Uuid::from_u128(0x2);
pub(crate) const SUPPORT_MAIL: Uuid = Uuid::from_u128(0x11);
pub(crate) const SUPPORT_CHAT: Uuid = Uuid::from_u128(0x12);
pub(crate) const SALES_MAIL: Uuid = Uuid::from_u128(0x21);
pub(crate) const SALES_MESSENGER: Uuid = Uuid::from_u128(0x22);
pub(crate) const ALICE: Uuid = Uuid::from_u128(0xa1);
pub(crate) const BOB: Uuid = Uuid::from_u128(0xa2);
pub(crate) const CAROL: Uuid = Uuid::from_u128(0xa3);
pub(crate) const TEAM: Uuid = Uuid::from_u128(0xb1);
pub(crate) const BOT: Uuid = Uuid::from_u128(0xc1);
pub(crate) const K1: Uuid = Uuid::from_u128(0xd1);
pub(crate) const K2: Uuid = Uuid::from_u128(0xd2);
pub(crate) const K3: Uuid = Uuid::from_u128(0xd3);
const RULE: Uuid = Uuid::from_u128(0x99);

/// Printer trouble by e-mail: assigned, answered (delivery failed), commented, reassigned,
/// closed, reopened by the customer.
pub(crate) const C1: Uuid = Uuid::from_u128(0xe1);
/// A chat a bot answered first, then handed off to a team; Carol replied.
pub(crate) const C2: Uuid = Uuid::from_u128(0xe2);
/// An outbound quote from Carol's private account; the customer answered.
pub(crate) const C3: Uuid = Uuid::from_u128(0xe3);
/// Filtered mail, restored, then queued by routing.
pub(crate) const C4: Uuid = Uuid::from_u128(0xe4);
/// Filtered mail (an out-of-office), never restored.
pub(crate) const C5: Uuid = Uuid::from_u128(0xe5);
/// A Messenger conversation assigned, unassigned and closed by the system.
pub(crate) const C6: Uuid = Uuid::from_u128(0xe6);
/// Two more filtered-only mails in Support.
pub(crate) const F1: Uuid = Uuid::from_u128(0xf1);
pub(crate) const F2: Uuid = Uuid::from_u128(0xf2);
/// The message C4 started with.
pub(crate) const C4_MAIL: Uuid = Uuid::from_u128(0x4401);
/// Carol's reply in C2 and Alice's in C1.
pub(crate) const C1_REPLY: Uuid = Uuid::from_u128(0x1104);
pub(crate) const C2_CAROL_REPLY: Uuid = Uuid::from_u128(0x2215);

/// The ten extra conversations: `E(i)`, even ones in Support chat, odd ones in Sales mail,
/// pairs sharing a minute; every third assigned to Alice.
pub(crate) fn extra(i: u128) -> Uuid {
    Uuid::from_u128(0x1000 + i)
}

/// The time `minute` minutes into the history.
pub(crate) fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 10, 9, 0, 0).unwrap() + Duration::minutes(minute)
}

pub(crate) fn user(id: Uuid) -> Actor {
    Actor::User { id }
}

fn contact(id: Uuid) -> Actor {
    Actor::Contact { id }
}

pub(crate) fn router() -> Actor {
    Actor::System {
        component: "router".to_owned(),
    }
}

fn decision(skipped: Vec<SkippedCandidate>) -> RoutingDecision {
    RoutingDecision {
        rule_id: RULE,
        strategy: RoutingStrategy::RoundRobin,
        candidates: vec![ALICE, BOB],
        skipped,
    }
}

#[derive(Default)]
pub(crate) struct Builder {
    pub(crate) events: Vec<Envelope>,
    versions: HashMap<String, u64>,
}

impl Builder {
    /// A builder that appends to `events`.
    pub(crate) fn after(events: Vec<Envelope>) -> Builder {
        let mut versions = HashMap::new();
        for e in &events {
            versions.insert(e.stream.clone(), e.stream_version + 1);
        }
        Builder { events, versions }
    }

    pub(crate) fn push(
        &mut self,
        minute: i64,
        actor: Actor,
        conversation: Uuid,
        payload: impl Into<DomainEvent>,
    ) {
        self.push_in(streams::conversation(conversation), minute, actor, payload);
    }

    /// Appends `payload` to `stream` (an event of another aggregate than a conversation).
    pub(crate) fn push_in(
        &mut self,
        stream: String,
        minute: i64,
        actor: Actor,
        payload: impl Into<DomainEvent>,
    ) {
        let payload = payload.into();
        let occurred_at = at(minute);
        if let Some(last) = self.events.last() {
            assert!(
                last.metadata.occurred_at <= occurred_at,
                "history must not go back in time"
            );
        }
        let version = self.versions.entry(stream.clone()).or_insert(0);
        let position = self.events.len() as u64 + 1;
        self.events.push(Envelope {
            event_id: Uuid::from_u128(0xeee0_0000 + u128::from(position)),
            stream,
            stream_version: *version,
            position,
            event_type: payload.event_type().to_owned(),
            schema_version: payload.schema_version(),
            recorded_at: occurred_at + Duration::milliseconds(5),
            metadata: Metadata {
                actor,
                correlation_id: Uuid::from_u128(position.into()),
                causation_id: Uuid::from_u128(position.into()),
                occurred_at,
                idempotency_key: None,
                command_fingerprint: None,
            },
            payload,
        });
        *version += 1;
    }

    pub(crate) fn started(
        &mut self,
        minute: i64,
        id: Uuid,
        inbox: Uuid,
        channel: Uuid,
        kind: ChannelKind,
        contact: Option<Uuid>,
    ) {
        self.started_as(
            minute,
            id,
            inbox,
            channel,
            kind,
            contact,
            ConversationOrigin::Inbound,
            ConversationVisibility::Shared,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn started_as(
        &mut self,
        minute: i64,
        id: Uuid,
        inbox: Uuid,
        channel: Uuid,
        kind: ChannelKind,
        contact_id: Option<Uuid>,
        origin: ConversationOrigin,
        visibility: ConversationVisibility,
    ) {
        let actor = Actor::Channel { id: channel };
        let started = ConversationStarted {
            conversation_id: id,
            inbox_id: inbox,
            channel_id: channel,
            channel_kind: kind,
            contact_id,
            origin,
            visibility,
        };
        self.push(minute, actor, id, started);
    }

    pub(crate) fn received(
        &mut self,
        minute: i64,
        conversation: Uuid,
        inbox: Uuid,
        message: InboundMessage,
    ) {
        let actor = message.contact_id.map_or(
            Actor::Channel {
                id: message.channel_id,
            },
            contact,
        );
        self.push(
            minute,
            actor,
            conversation,
            MessageReceived {
                conversation_id: conversation,
                inbox_id: inbox,
                message,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reply(
        &mut self,
        minute: i64,
        conversation: Uuid,
        inbox: Uuid,
        message: Uuid,
        channel: (Uuid, ChannelKind),
        author: ReplyAuthor,
        subject: Option<&str>,
        body: &str,
    ) {
        let actor = match &author {
            ReplyAuthor::User { id } => user(*id),
            ReplyAuthor::Bot { id } => Actor::Bot { id: *id },
            ReplyAuthor::Automation { name } => Actor::System {
                component: name.clone(),
            },
        };
        let sent = ReplySent {
            conversation_id: conversation,
            inbox_id: inbox,
            message_id: message,
            channel_id: channel.0,
            channel_kind: channel.1,
            author,
            subject: subject.map(str::to_owned),
            body_text: body.to_owned(),
            body_html: None,
            email: None,
            attachments: Vec::new(),
        };
        self.push(minute, actor, conversation, sent);
    }
}

/// An inbound message.
pub(crate) fn mail(
    id: u128,
    channel: Uuid,
    kind: ChannelKind,
    from: &str,
    contact: Option<Uuid>,
    subject: Option<&str>,
    body: &str,
) -> InboundMessage {
    let from = match kind {
        ChannelKind::Chat => Identity::ChatVisitor {
            visitor_id: from.to_owned(),
        },
        ChannelKind::Messenger => Identity::Messenger {
            psid: from.to_owned(),
        },
        ChannelKind::Email | ChannelKind::Form => Identity::Email {
            address: from.to_owned(),
        },
    };
    InboundMessage {
        message_id: Uuid::from_u128(id),
        channel_id: channel,
        channel_kind: kind,
        provider_message_id: None,
        from,
        from_name: Some("Customer".to_owned()),
        contact_id: contact,
        subject: subject.map(str::to_owned),
        body_text: body.to_owned(),
        body_html: None,
        email: None,
        form_fields: Vec::new(),
        attachments: Vec::new(),
        raw: None,
    }
}

/// The whole history, in log order.
pub(crate) fn history() -> Vec<Envelope> {
    use ChannelKind::{Chat, Email, Messenger};
    let mut h = Builder {
        events: Vec::new(),
        versions: HashMap::new(),
    };
    let k1 = "kim@customer.example";

    // C1: e-mail to Support.
    h.started(1, C1, SUPPORT, SUPPORT_MAIL, Email, Some(K1));
    h.received(
        1,
        C1,
        SUPPORT,
        mail(
            0x1101,
            SUPPORT_MAIL,
            Email,
            k1,
            Some(K1),
            Some("Printer broken"),
            "My printer is   broken.\nHelp!",
        ),
    );
    h.push(
        2,
        router(),
        C1,
        ConversationAssigned {
            conversation_id: C1,
            inbox_id: SUPPORT,
            assignee: Assignee::User { id: ALICE },
            reason: AssignmentReason::Rule(decision(vec![])),
        },
    );
    h.received(
        3,
        C1,
        SUPPORT,
        mail(
            0x1103,
            SUPPORT_MAIL,
            Email,
            k1,
            Some(K1),
            Some("Re: Printer broken"),
            "Any news?",
        ),
    );
    h.reply(
        4,
        C1,
        SUPPORT,
        C1_REPLY,
        (SUPPORT_MAIL, Email),
        ReplyAuthor::User { id: ALICE },
        Some("Re: Printer broken"),
        "Try turning it off and on.",
    );
    h.push(
        5,
        Actor::Channel { id: SUPPORT_MAIL },
        C1,
        DeliveryFailed {
            conversation_id: C1,
            inbox_id: SUPPORT,
            message_id: C1_REPLY,
            channel_id: SUPPORT_MAIL,
            reason: "mailbox full".to_owned(),
            permanent: false,
            status: None,
        },
    );
    h.push(
        6,
        user(ALICE),
        C1,
        CommentAdded {
            conversation_id: C1,
            inbox_id: SUPPORT,
            comment_id: Uuid::from_u128(0x1106),
            author_user_id: ALICE,
            body_text: "@bob can you take this one?".to_owned(),
            mentions: vec![BOB],
        },
    );
    h.push(
        7,
        user(ALICE),
        C1,
        ConversationReassigned {
            conversation_id: C1,
            inbox_id: SUPPORT,
            from: Assignee::User { id: ALICE },
            to: Assignee::User { id: BOB },
            reason: AssignmentReason::Manual { by: user(ALICE) },
        },
    );
    h.received(
        8,
        C1,
        SUPPORT,
        mail(
            0x1108,
            SUPPORT_MAIL,
            Email,
            k1,
            Some(K1),
            Some("Re: Printer broken"),
            "Didn't get your mail",
        ),
    );
    h.push(
        9,
        user(BOB),
        C1,
        ConversationClosed {
            conversation_id: C1,
            inbox_id: SUPPORT,
            by: user(BOB),
        },
    );
    let m4 = Uuid::from_u128(0x1110);
    h.push(
        10,
        contact(K1),
        C1,
        ConversationReopened {
            conversation_id: C1,
            inbox_id: SUPPORT,
            cause: ReopenCause::CustomerWrote { message_id: m4 },
        },
    );
    h.received(
        10,
        C1,
        SUPPORT,
        mail(
            0x1110,
            SUPPORT_MAIL,
            Email,
            k1,
            Some(K1),
            None,
            "Still broken",
        ),
    );

    // C2: chat, bot first, handed off to a team.
    h.started(11, C2, SUPPORT, SUPPORT_CHAT, Chat, None);
    h.received(
        11,
        C2,
        SUPPORT,
        mail(
            0x2211,
            SUPPORT_CHAT,
            Chat,
            "visitor-7",
            None,
            None,
            "Hi, pricing?",
        ),
    );
    h.push(
        12,
        router(),
        C2,
        ConversationAssigned {
            conversation_id: C2,
            inbox_id: SUPPORT,
            assignee: Assignee::Bot { id: BOT },
            reason: AssignmentReason::Rule(decision(vec![])),
        },
    );
    h.reply(
        12,
        C2,
        SUPPORT,
        Uuid::from_u128(0x2212),
        (SUPPORT_CHAT, Chat),
        ReplyAuthor::Bot { id: BOT },
        None,
        "Hello, I am a bot.",
    );
    h.received(
        13,
        C2,
        SUPPORT,
        mail(
            0x2213,
            SUPPORT_CHAT,
            Chat,
            "visitor-7",
            None,
            None,
            "Human please",
        ),
    );
    h.push(
        14,
        Actor::Bot { id: BOT },
        C2,
        BotHandedOff {
            conversation_id: C2,
            inbox_id: SUPPORT,
            bot_id: BOT,
            to: Some(Assignee::Team { id: TEAM }),
        },
    );
    h.push(
        14,
        Actor::Bot { id: BOT },
        C2,
        ConversationReassigned {
            conversation_id: C2,
            inbox_id: SUPPORT,
            from: Assignee::Bot { id: BOT },
            to: Assignee::Team { id: TEAM },
            reason: AssignmentReason::BotHandoff { bot_id: BOT },
        },
    );
    h.reply(
        15,
        C2,
        SUPPORT,
        C2_CAROL_REPLY,
        (SUPPORT_CHAT, Chat),
        ReplyAuthor::User { id: CAROL },
        None,
        "Hi, Carol here",
    );
    h.push(
        15,
        Actor::Channel { id: SUPPORT_CHAT },
        C2,
        DeliverySucceeded {
            conversation_id: C2,
            inbox_id: SUPPORT,
            message_id: C2_CAROL_REPLY,
            channel_id: SUPPORT_CHAT,
            provider_message_id: None,
        },
    );

    // C3: outbound from Carol's private account.
    h.started_as(
        16,
        C3,
        SALES,
        SALES_MAIL,
        Email,
        Some(K2),
        ConversationOrigin::Outbound,
        ConversationVisibility::Private {
            owner_user_id: CAROL,
        },
    );
    let quote = Uuid::from_u128(0x3316);
    h.reply(
        16,
        C3,
        SALES,
        quote,
        (SALES_MAIL, Email),
        ReplyAuthor::User { id: CAROL },
        Some("Your quote"),
        "Please find the quote.",
    );
    h.push(
        17,
        Actor::Channel { id: SALES_MAIL },
        C3,
        DeliverySucceeded {
            conversation_id: C3,
            inbox_id: SALES,
            message_id: quote,
            channel_id: SALES_MAIL,
            provider_message_id: Some("smtp-1".to_owned()),
        },
    );
    h.received(
        18,
        C3,
        SALES,
        mail(
            0x3318,
            SALES_MAIL,
            Email,
            "lee@buyer.example",
            Some(K2),
            Some("Re: Your quote"),
            "Looks good, a discount?",
        ),
    );

    // C4: filtered bulk mail, restored, queued.
    let news = mail(
        0x4401,
        SALES_MAIL,
        Email,
        "news@vendor.example",
        None,
        Some("Newsletter?"),
        "Is this a newsletter?",
    );
    h.push(
        19,
        Actor::System {
            component: "email_filter".to_owned(),
        },
        C4,
        MessageFiltered {
            conversation_id: C4,
            inbox_id: SALES,
            reason: FilterReason::BulkMail,
            visibility: Some(ConversationVisibility::Shared),
            message: news.clone(),
        },
    );
    // C5: an out-of-office, left filtered.
    h.push(
        20,
        Actor::System {
            component: "email_filter".to_owned(),
        },
        C5,
        MessageFiltered {
            conversation_id: C5,
            inbox_id: SALES,
            reason: FilterReason::AutomatedReply,
            visibility: Some(ConversationVisibility::Shared),
            message: mail(
                0x5520,
                SALES_MAIL,
                Email,
                "ooo@buyer.example",
                None,
                Some("Out of office"),
                "I am away.",
            ),
        },
    );
    h.push(
        21,
        user(ALICE),
        C4,
        FilteredMessageRestored {
            conversation_id: C4,
            inbox_id: SALES,
            message_id: C4_MAIL,
            restored_by_user_id: ALICE,
        },
    );
    h.started(21, C4, SALES, SALES_MAIL, Email, None);
    h.received(21, C4, SALES, news);
    h.push(
        22,
        router(),
        C4,
        ConversationQueued {
            conversation_id: C4,
            inbox_id: SALES,
            decision: decision(vec![
                SkippedCandidate {
                    user_id: ALICE,
                    why: SkipReason::Away,
                },
                SkippedCandidate {
                    user_id: BOB,
                    why: SkipReason::AtCapacity,
                },
            ]),
        },
    );

    // C6: Messenger, assigned, unassigned, closed by the system.
    h.started(23, C6, SALES, SALES_MESSENGER, Messenger, Some(K3));
    h.received(
        23,
        C6,
        SALES,
        mail(
            0x6623,
            SALES_MESSENGER,
            Messenger,
            "psid-3",
            Some(K3),
            None,
            "Do you ship to Norway?",
        ),
    );
    h.push(
        24,
        user(ALICE),
        C6,
        ConversationAssigned {
            conversation_id: C6,
            inbox_id: SALES,
            assignee: Assignee::User { id: ALICE },
            reason: AssignmentReason::Manual { by: user(ALICE) },
        },
    );
    h.push(
        25,
        user(ALICE),
        C6,
        ConversationUnassigned {
            conversation_id: C6,
            inbox_id: SALES,
            from: Assignee::User { id: ALICE },
            reason: AssignmentReason::Manual { by: user(ALICE) },
        },
    );
    h.push(
        26,
        router(),
        C6,
        ConversationClosed {
            conversation_id: C6,
            inbox_id: SALES,
            by: router(),
        },
    );

    // Ten more conversations, two per minute (ties on last activity).
    for i in 0..10u128 {
        let minute = 30 + i64::try_from(i / 2).unwrap();
        let id = extra(i);
        let (inbox, channel, kind, from) = if i % 2 == 0 {
            (SUPPORT, SUPPORT_CHAT, Chat, format!("visitor-{i}"))
        } else {
            (SALES, SALES_MAIL, Email, format!("c{i}@example.com"))
        };
        h.started(minute, id, inbox, channel, kind, None);
        h.received(
            minute,
            id,
            inbox,
            mail(
                0x7000 + i,
                channel,
                kind,
                &from,
                None,
                Some("Question"),
                &format!("Question {i}"),
            ),
        );
        if i % 3 == 0 {
            h.push(
                minute,
                router(),
                id,
                ConversationAssigned {
                    conversation_id: id,
                    inbox_id: inbox,
                    assignee: Assignee::User { id: ALICE },
                    reason: AssignmentReason::Rule(decision(vec![])),
                },
            );
        }
    }

    // Two filtered-only mails in Support.
    h.push(
        35,
        Actor::System {
            component: "email_filter".to_owned(),
        },
        F1,
        MessageFiltered {
            conversation_id: F1,
            inbox_id: SUPPORT,
            reason: FilterReason::RoleAddress,
            visibility: Some(ConversationVisibility::Shared),
            message: mail(
                0xf135,
                SUPPORT_MAIL,
                Email,
                "noreply@shop.example",
                None,
                Some("Your order"),
                "Order shipped.",
            ),
        },
    );
    h.push(
        36,
        Actor::System {
            component: "email_filter".to_owned(),
        },
        F2,
        MessageFiltered {
            conversation_id: F2,
            inbox_id: SUPPORT,
            reason: FilterReason::DenyRule {
                rule_id: RULE,
                pattern: SenderPattern::Domain {
                    domain: "spam.example".to_owned(),
                },
            },
            visibility: Some(ConversationVisibility::Shared),
            message: mail(
                0xf236,
                SUPPORT_MAIL,
                Email,
                "win@spam.example",
                None,
                Some("You won"),
                "Claim your prize.",
            ),
        },
    );
    h.events
}

/// A conversation whose thread fills several timeline chunks ([`long_history`]).
pub(crate) const LONG: Uuid = Uuid::from_u128(0xe7);
/// How many long e-mails, and answers, [`LONG`] has.
pub(crate) const LONG_MESSAGES: u128 = 12;

/// The body of [`LONG`]'s `n`th e-mail (inbound when `inbound`), some 700 bytes.
pub(crate) fn long_body(n: u128, inbound: bool) -> String {
    let (head, word) = if inbound {
        ("Message", "lorem ")
    } else {
        ("Answer", "ipsum ")
    };
    format!("{head} {n}: {}", word.repeat(115))
}

/// [`history`], then [`LONG`]: long e-mails answered one by one, each answer delivered, with
/// comments on C1 in between, so that two conversations' timelines grow in the same batches.
pub(crate) fn long_history() -> Vec<Envelope> {
    use ChannelKind::Email;
    let events = history();
    let mut versions = HashMap::new();
    for event in &events {
        versions.insert(event.stream.clone(), event.stream_version + 1);
    }
    let mut minute = events
        .last()
        .map_or(0, |e| (e.metadata.occurred_at - at(0)).num_minutes() + 1);
    let mut h = Builder { events, versions };
    h.started(minute, LONG, SUPPORT, SUPPORT_MAIL, Email, Some(K3));
    for n in 0..LONG_MESSAGES {
        minute += 1;
        let mail = mail(
            0x7700 + n,
            SUPPORT_MAIL,
            Email,
            "long@customer.example",
            Some(K3),
            Some("A long story"),
            &long_body(n, true),
        );
        h.received(minute, LONG, SUPPORT, mail);
        h.push(
            minute,
            user(ALICE),
            C1,
            CommentAdded {
                conversation_id: C1,
                inbox_id: SUPPORT,
                comment_id: Uuid::from_u128(0x7600 + n),
                author_user_id: ALICE,
                body_text: format!("Still following the long story, part {n}."),
                mentions: vec![],
            },
        );
        h.reply(
            minute,
            LONG,
            SUPPORT,
            Uuid::from_u128(0x7800 + n),
            (SUPPORT_MAIL, Email),
            ReplyAuthor::User { id: ALICE },
            Some("Re: A long story"),
            &long_body(n, false),
        );
        h.push(
            minute,
            Actor::Channel { id: SUPPORT_MAIL },
            LONG,
            DeliverySucceeded {
                conversation_id: LONG,
                inbox_id: SUPPORT,
                message_id: Uuid::from_u128(0x7800 + n),
                channel_id: SUPPORT_MAIL,
                provider_message_id: None,
            },
        );
    }
    h.events
}

/// The read model of [`history`], built in one batch, with the directory that holds it.
pub(crate) fn built() -> (TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = switchboard_projector::testing::build_at_once(&ThreadView, dir.path(), &history());
    (dir, conn)
}
