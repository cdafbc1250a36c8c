//! One sample value per event type, with readable fixed ids.
//!
//! The samples seed the golden fixtures of new event types (see `golden.rs`) and are round-tripped
//! themselves. `every_type_has_exactly_one_sample` fails when a type is added to `DomainEvent`
//! without a sample here.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use proto_events::event::*;
use proto_events::{Actor, DomainEvent, Metadata};
use uuid::Uuid;

pub(crate) fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const ORGANISATION: u128 = 0x01;
const ALICE: u128 = 0x11;
const BOB: u128 = 0x12;
const TEAM: u128 = 0x21;
const BOT: u128 = 0x31;
const INBOX: u128 = 0x41;
const OTHER_INBOX: u128 = 0x42;
const CHANNEL: u128 = 0x51;
const RULE: u128 = 0x61;
const CONVERSATION: u128 = 0x71;
const MESSAGE: u128 = 0x72;
const CONTACT: u128 = 0x81;
const OTHER_CONTACT: u128 = 0x82;
const COMPANY: u128 = 0x91;
const DEAL: u128 = 0xa1;
const TICKET: u128 = 0xb1;

fn time(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).expect("valid time")
}

fn email_headers() -> EmailHeaders {
    EmailHeaders {
        message_id: "reply-2@mail.example.com".into(),
        in_reply_to: Some("first-1@customer.example.org".into()),
        references: vec!["first-1@customer.example.org".into()],
        to: vec!["ada@customer.example.org".into()],
        cc: vec![],
    }
}

pub(crate) fn inbound_message() -> InboundMessage {
    InboundMessage {
        message_id: id(MESSAGE),
        channel_id: id(CHANNEL),
        channel_kind: ChannelKind::Email,
        provider_message_id: None,
        from: Identity::Email {
            address: "Ada@Customer.example.org".into(),
        },
        from_name: Some("Ada Lovelace".into()),
        contact_id: Some(id(CONTACT)),
        subject: Some("Pricing for 20 seats".into()),
        body_text: "Hello, what would 20 seats cost?".into(),
        body_html: Some("<p>Hello, what would 20 seats cost?</p>".into()),
        email: Some(EmailHeaders {
            message_id: "first-1@customer.example.org".into(),
            in_reply_to: None,
            references: vec![],
            to: vec!["sales@example.com".into()],
            cc: vec!["grace@customer.example.org".into()],
        }),
        form_fields: vec![],
        attachments: vec![Attachment {
            blob: BlobRef {
                sha256: "9f2b6c1d4e8a0b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e5f1c8e3a".into(),
                size: 48_213,
            },
            file_name: Some("seats.pdf".into()),
            content_type: "application/pdf".into(),
            content_id: None,
            inline: false,
        }],
        raw: Some(RawMessage {
            blob: BlobRef {
                sha256: "0b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e5f1c8e3a9f2b6c1d4e8a".into(),
                size: 66_020,
            },
            warnings: vec!["an attachment's charset `x-unknown` was read as UTF-8".into()],
        }),
    }
}

fn routing_decision() -> RoutingDecision {
    RoutingDecision {
        rule_id: id(RULE),
        strategy: RoutingStrategy::RoundRobin,
        candidates: vec![id(ALICE), id(BOB)],
        skipped: vec![SkippedCandidate {
            user_id: id(ALICE),
            why: SkipReason::Away,
        }],
    }
}

fn contact_ref() -> RecordRef {
    RecordRef {
        kind: RecordKind::Contact,
        id: id(CONTACT),
    }
}

fn company_ref() -> RecordRef {
    RecordRef {
        kind: RecordKind::Company,
        id: id(COMPANY),
    }
}

/// Metadata samples, one per actor kind: the seeds of `tests/golden/metadata/<kind>.json`.
pub(crate) fn metadata_samples() -> Vec<(&'static str, Metadata)> {
    let actors = [
        ("user", Actor::User { id: id(ALICE) }),
        ("contact", Actor::Contact { id: id(CONTACT) }),
        ("bot", Actor::Bot { id: id(BOT) }),
        (
            "system",
            Actor::System {
                component: "router".into(),
            },
        ),
        ("channel", Actor::Channel { id: id(CHANNEL) }),
    ];
    actors
        .into_iter()
        .map(|(kind, actor)| {
            let metadata = Metadata {
                actor,
                correlation_id: id(0xc1),
                causation_id: id(0xc2),
                occurred_at: Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 53).unwrap(),
                idempotency_key: (kind == "user").then(|| "mutation-7f3a".to_owned()),
                command_fingerprint: None,
            };
            (kind, metadata)
        })
        .collect()
}

/// One sample of every event type.
pub(crate) fn samples() -> Vec<DomainEvent> {
    vec![
        // Organisation and people.
        OrganisationCreated {
            organisation_id: id(ORGANISATION),
            name: "Example Ltd".into(),
            time_zone: "Europe/London".into(),
        }
        .into(),
        OrganisationTimeZoneSet {
            organisation_id: id(ORGANISATION),
            time_zone: "Europe/Paris".into(),
        }
        .into(),
        BusinessHoursSet {
            organisation_id: id(ORGANISATION),
            time_zone: "Europe/Paris".into(),
            weekly: vec![
                OpeningInterval {
                    day: Weekday::Monday,
                    opens: time(9, 0),
                    closes: time(17, 30),
                },
                OpeningInterval {
                    day: Weekday::Friday,
                    opens: time(22, 0),
                    closes: time(6, 0),
                },
            ],
            holidays: vec![Holiday {
                date: NaiveDate::from_ymd_opt(2025, 12, 25).unwrap(),
                name: "Christmas Day".into(),
            }],
        }
        .into(),
        UserCreated {
            user_id: id(ALICE),
            email: "alice@example.com".into(),
            name: "Alice Agent".into(),
            role: Role::Agent,
            availability: Availability::Available,
        }
        .into(),
        UserRoleChanged {
            user_id: id(ALICE),
            role: Role::SuperAdmin,
        }
        .into(),
        UserAvailabilityChanged {
            user_id: id(ALICE),
            availability: Availability::Away,
        }
        .into(),
        UserCapacitySet {
            user_id: id(ALICE),
            max_open_conversations: Some(12),
        }
        .into(),
        UserDeactivated {
            user_id: id(BOB),
            by: Actor::User { id: id(ALICE) },
            at: Utc.with_ymd_and_hms(2025, 3, 4, 17, 30, 0).unwrap(),
        }
        .into(),
        UserReactivated {
            user_id: id(BOB),
            by: Actor::User { id: id(ALICE) },
        }
        .into(),
        UserTokensRevoked {
            user_id: id(ALICE),
            by: Actor::User { id: id(ALICE) },
            not_before: Utc.with_ymd_and_hms(2025, 3, 5, 9, 0, 0).unwrap(),
        }
        .into(),
        NotificationPreferencesChanged {
            user_id: id(ALICE),
            new_conversation_in_my_inboxes: false,
            assigned_to_me: true,
            new_message_on_my_conversations: true,
            mentioned_in_comment: true,
        }
        .into(),
        TeamCreated {
            team_id: id(TEAM),
            name: "Tier 1".into(),
        }
        .into(),
        TeamRenamed {
            team_id: id(TEAM),
            name: "First line".into(),
        }
        .into(),
        TeamMemberAdded {
            team_id: id(TEAM),
            user_id: id(BOB),
        }
        .into(),
        TeamMemberRemoved {
            team_id: id(TEAM),
            user_id: id(BOB),
        }
        .into(),
        BotCreated {
            bot_id: id(BOT),
            name: "Greeter".into(),
        }
        .into(),
        // Inboxes, channels, routing and filters.
        InboxCreated {
            inbox_id: id(INBOX),
            name: "Sales".into(),
        }
        .into(),
        InboxRenamed {
            inbox_id: id(INBOX),
            name: "Sales EMEA".into(),
        }
        .into(),
        InboxMemberAdded {
            inbox_id: id(INBOX),
            member: Member::Team { id: id(TEAM) },
        }
        .into(),
        InboxMemberRemoved {
            inbox_id: id(INBOX),
            member: Member::User { id: id(BOB) },
        }
        .into(),
        InboxRestricted {
            inbox_id: id(INBOX),
            team_ids: vec![id(TEAM)],
        }
        .into(),
        InboxRestrictionLifted {
            inbox_id: id(INBOX),
        }
        .into(),
        InboxRetentionSet {
            inbox_id: id(INBOX),
            closed_days: Some(30),
        }
        .into(),
        ChannelConnected {
            channel_id: id(CHANNEL),
            inbox_id: id(INBOX),
            config: ChannelConfig::Email {
                address: "alice@example.com".into(),
                access: EmailAccess::Private {
                    owner_user_id: id(ALICE),
                },
            },
        }
        .into(),
        ChannelDisconnected {
            channel_id: id(CHANNEL),
            inbox_id: id(INBOX),
        }
        .into(),
        ChannelMoved {
            channel_id: id(CHANNEL),
            from_inbox_id: id(INBOX),
            to_inbox_id: id(OTHER_INBOX),
        }
        .into(),
        FallbackAddressAssigned {
            channel_id: id(CHANNEL),
            inbox_id: id(INBOX),
            address: "inbox-41@in.switchboard.example".into(),
        }
        .into(),
        RoutingRuleSet {
            rule_id: id(RULE),
            scope: RuleScope::Channel { id: id(CHANNEL) },
            strategy: RoutingStrategy::BotFirst,
            targets: vec![
                Member::User { id: id(ALICE) },
                Member::Team { id: id(TEAM) },
            ],
            bot_id: Some(id(BOT)),
        }
        .into(),
        RoutingRuleRemoved {
            rule_id: id(RULE),
            scope: RuleScope::Inbox { id: id(INBOX) },
        }
        .into(),
        EmailServersSet {
            channel_id: id(CHANNEL),
            imap: Some(ImapServer {
                host: "imap.example.com".into(),
                port: 993,
                security: ServerSecurity::Tls,
                username: "support@example.com".into(),
                password_secret: id(0x5ec1),
                mailbox: "INBOX".into(),
            }),
            smtp: Some(SmtpServer {
                host: "smtp.example.com".into(),
                port: 587,
                security: ServerSecurity::StartTls,
                username: Some("support@example.com".into()),
                password_secret: Some(id(0x5ec2)),
            }),
            ingest_secret: Some(id(0x5ec3)),
        }
        .into(),
        MessengerReceiptReceived {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            channel_id: id(CHANNEL),
            kind: ReceiptKind::Delivered,
            watermark: Utc.with_ymd_and_hms(2025, 3, 14, 9, 31, 0).unwrap(),
            mids: vec!["m_out_1".into()],
        }
        .into(),
        ChatVisitorEmailLeft {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            address: "ada@example.org".into(),
        }
        .into(),
        ChatRepliesSeen {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            message_ids: vec![id(MESSAGE)],
        }
        .into(),
        ChatReplyEmailed {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            message_id: id(MESSAGE),
            email_channel_id: id(CHANNEL),
            subject: "Your chat with Acme".into(),
            email: EmailHeaders {
                message_id: format!("{}@acme.example", id(MESSAGE)),
                in_reply_to: None,
                references: Vec::new(),
                to: vec!["ada@example.org".into()],
                cc: Vec::new(),
            },
        }
        .into(),
        MessengerPageSet {
            channel_id: id(CHANNEL),
            page_token_secret: Some(id(0x5ec4)),
            human_agent_tag: true,
        }
        .into(),
        FormConfigured {
            channel_id: id(CHANNEL),
            public_key: "f0rm-Key_8wJ2kQx9TzV3nL5mR7pYa4".into(),
            fields: vec![
                FormFieldSpec {
                    name: "email".into(),
                    label: "Your e-mail address".into(),
                    kind: FormFieldKind::Email,
                    required: true,
                    options: vec![],
                },
                FormFieldSpec {
                    name: "topic".into(),
                    label: "Topic".into(),
                    kind: FormFieldKind::Select,
                    required: false,
                    options: vec!["Sales".into(), "Support".into()],
                },
            ],
            allowed_origins: vec!["https://www.example.com".into()],
            honeypot_field: Some("website".into()),
        }
        .into(),
        ChatBotConfigured {
            channel_id: id(CHANNEL),
            bot_id: id(0xb07),
            enabled: true,
            greeting: "Hi! I am the Acme bot.".into(),
            questions: vec![
                BotQuestion {
                    prompt: "What is your name?".into(),
                    collects: BotCollects::Name,
                },
                BotQuestion {
                    prompt: "What is your e-mail address?".into(),
                    collects: BotCollects::Email,
                },
            ],
            answers: vec![BotAnswer {
                phrases: vec!["price".into(), "how much".into()],
                reply: "Plans start at 10 EUR a month.".into(),
            }],
            handoff: BotHandoffPolicy {
                phrases: vec!["human".into(), "agent".into()],
                on_no_match: false,
                timeout_seconds: Some(120),
                message: Some("Connecting you with a person.".into()),
            },
        }
        .into(),
        ChatWidgetConfigured {
            channel_id: id(CHANNEL),
            public_key: "ch4t-Key_3nL5mR7pYa4f0rm8wJ2kQx".into(),
            allowed_origins: vec!["https://www.example.com".into()],
            team_name: "Example Support".into(),
            expected_reply: Some("We usually reply in a few minutes".into()),
        }
        .into(),
        BuiltInEmailFiltersSet {
            channel_id: id(CHANNEL),
            automated_replies: true,
            bulk_mail: true,
            role_addresses: false,
            unsubscribe_header: true,
        }
        .into(),
        EmailFilterRuleAdded {
            rule_id: id(RULE),
            channel_id: id(CHANNEL),
            action: FilterAction::Deny,
            pattern: SenderPattern::Domain {
                domain: "spam.example.net".into(),
            },
        }
        .into(),
        EmailFilterRuleRemoved {
            rule_id: id(RULE),
            channel_id: id(CHANNEL),
        }
        .into(),
        // Conversations.
        ConversationStarted {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            channel_id: id(CHANNEL),
            channel_kind: ChannelKind::Email,
            contact_id: Some(id(CONTACT)),
            origin: ConversationOrigin::Inbound,
            visibility: ConversationVisibility::Private {
                owner_user_id: id(ALICE),
            },
        }
        .into(),
        MessageReceived {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            message: inbound_message(),
        }
        .into(),
        MessageFiltered {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            reason: FilterReason::DenyRule {
                rule_id: id(RULE),
                pattern: SenderPattern::Address {
                    address: "news@spam.example.net".into(),
                },
            },
            visibility: Some(ConversationVisibility::Private {
                owner_user_id: id(ALICE),
            }),
            message: InboundMessage {
                from: Identity::Email {
                    address: "news@spam.example.net".into(),
                },
                from_name: None,
                contact_id: None,
                subject: Some("Spring deals".into()),
                body_text: "Our best offers of the season.".into(),
                body_html: None,
                ..inbound_message()
            },
        }
        .into(),
        FilteredMessageRestored {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            message_id: id(MESSAGE),
            restored_by_user_id: id(ALICE),
        }
        .into(),
        ReplySent {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            message_id: id(0x73),
            channel_id: id(CHANNEL),
            channel_kind: ChannelKind::Email,
            author: ReplyAuthor::User { id: id(ALICE) },
            subject: Some("Re: Pricing for 20 seats".into()),
            body_text: "Hi Ada, 20 seats are 400 EUR a month.".into(),
            body_html: Some("<p>Hi Ada, 20 seats are 400 EUR a month.</p>".into()),
            email: Some(email_headers()),
            attachments: vec![Attachment {
                blob: BlobRef {
                    sha256: "c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e5f1c8e3a9f2b6c1d4e8a0b3"
                        .into(),
                    size: 20_480,
                },
                file_name: Some("quote.pdf".into()),
                content_type: "application/pdf".into(),
                content_id: None,
                inline: false,
            }],
        }
        .into(),
        DeliverySucceeded {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            message_id: id(0x73),
            channel_id: id(CHANNEL),
            provider_message_id: Some("smtp-queue-4F2A1".into()),
        }
        .into(),
        DeliveryFailed {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            message_id: id(0x73),
            channel_id: id(CHANNEL),
            reason: "550 5.1.1 mailbox unavailable".into(),
            permanent: true,
            status: Some("550 5.1.1".into()),
        }
        .into(),
        CommentAdded {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            comment_id: id(0x74),
            author_user_id: id(ALICE),
            body_text: "@Bob can you give them the volume discount?".into(),
            mentions: vec![id(BOB)],
        }
        .into(),
        ConversationAssigned {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            assignee: Assignee::User { id: id(BOB) },
            reason: AssignmentReason::Rule(routing_decision()),
        }
        .into(),
        ConversationReassigned {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            from: Assignee::User { id: id(BOB) },
            to: Assignee::Team { id: id(TEAM) },
            reason: AssignmentReason::Manual {
                by: Actor::User { id: id(BOB) },
            },
        }
        .into(),
        ConversationUnassigned {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            from: Assignee::Bot { id: id(BOT) },
            reason: AssignmentReason::BotHandoff { bot_id: id(BOT) },
        }
        .into(),
        ConversationQueued {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            decision: RoutingDecision {
                strategy: RoutingStrategy::LeastLoaded,
                skipped: vec![
                    SkippedCandidate {
                        user_id: id(ALICE),
                        why: SkipReason::AtCapacity,
                    },
                    SkippedCandidate {
                        user_id: id(BOB),
                        why: SkipReason::NoAccess,
                    },
                ],
                ..routing_decision()
            },
        }
        .into(),
        BotHandedOff {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            bot_id: id(BOT),
            to: Some(Assignee::Team { id: id(TEAM) }),
        }
        .into(),
        ConversationClosed {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            by: Actor::Bot { id: id(BOT) },
        }
        .into(),
        ConversationErased {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            contact_id: Some(id(OTHER_CONTACT)),
            reason: "Art. 17 request, ticket 4711".into(),
        }
        .into(),
        ConversationReopened {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            cause: ReopenCause::CustomerWrote {
                message_id: id(0x75),
            },
        }
        .into(),
        ConversationShared {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            by_user_id: id(ALICE),
        }
        .into(),
        // Contacts and records.
        ContactRecordCreated {
            contact_id: id(CONTACT),
            identities: vec![
                Identity::ChatVisitor {
                    visitor_id: "v-9c1e7a".into(),
                },
                Identity::Messenger {
                    psid: "6254815712345678".into(),
                },
            ],
            properties: BTreeMap::from([
                ("first_name".to_owned(), "Ada".to_owned()),
                ("last_name".to_owned(), "Lovelace".to_owned()),
            ]),
            from_conversation_id: Some(id(CONVERSATION)),
        }
        .into(),
        ContactPropertiesChanged {
            contact_id: id(CONTACT),
            changes: BTreeMap::from([
                ("job_title".to_owned(), Some("CTO".to_owned())),
                ("phone".to_owned(), None),
            ]),
        }
        .into(),
        ContactIdentityLinked {
            contact_id: id(CONTACT),
            identity: Identity::Email {
                address: "ada@customer.example.org".into(),
            },
        }
        .into(),
        ContactOwnerChanged {
            contact_id: id(CONTACT),
            owner_user_id: Some(id(ALICE)),
        }
        .into(),
        ContactsMerged {
            survivor_id: id(CONTACT),
            merged_id: id(OTHER_CONTACT),
        }
        .into(),
        ContactErased {
            contact_id: id(OTHER_CONTACT),
            conversation_ids: vec![id(CONVERSATION)],
            reason: "Art. 17 request, ticket 4711".into(),
        }
        .into(),
        CompanyCreated {
            company_id: id(COMPANY),
            name: "Analytical Engines plc".into(),
            domain: Some("customer.example.org".into()),
        }
        .into(),
        DealCreated {
            deal_id: id(DEAL),
            name: "20 seats".into(),
            stage: Some("qualified".into()),
            owner_user_id: Some(id(BOB)),
        }
        .into(),
        TicketCreated {
            ticket_id: id(TICKET),
            subject: "Invoice address wrong".into(),
            from_conversation_id: Some(id(CONVERSATION)),
        }
        .into(),
        AssociationAdded {
            from: contact_ref(),
            to: company_ref(),
        }
        .into(),
        AssociationRemoved {
            from: RecordRef {
                kind: RecordKind::Conversation,
                id: id(CONVERSATION),
            },
            to: RecordRef {
                kind: RecordKind::Deal,
                id: id(DEAL),
            },
        }
        .into(),
        // Uniqueness reservations.
        UniqueValueReserved {
            scope: UniqueScope::ContactEmail,
            value: "ada@customer.example.org".into(),
            owner_stream: proto_events::streams::contact(id(CONTACT)),
        }
        .into(),
        UniqueValueReleased {
            scope: UniqueScope::ContactEmail,
            value: "ada@customer.example.org".into(),
            owner_stream: proto_events::streams::contact(id(OTHER_CONTACT)),
        }
        .into(),
        HistoryRechained {
            by: "Ada Lovelace <ada@example.com>".into(),
            reason: "restoring the 2025-03 backup, whose export was cut at line 80,113".into(),
            events: 80_112,
            broken_at: Some(BrokenChain {
                position: 80_113,
                reason: "event missing".into(),
            }),
            input_head_hash: Some(
                "5f1c8e3a0b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e".into(),
            ),
        }
        .into(),
    ]
}

#[test]
fn every_type_has_exactly_one_sample() {
    let samples = samples();
    let sampled: BTreeSet<&str> = samples.iter().map(DomainEvent::event_type).collect();
    let declared: BTreeSet<&str> = DomainEvent::TYPES.iter().map(|&(name, _)| name).collect();
    assert_eq!(sampled, declared, "samples and DomainEvent::TYPES differ");
    assert_eq!(
        samples.len(),
        DomainEvent::TYPES.len(),
        "a type has two samples"
    );
    assert_eq!(
        declared.len(),
        DomainEvent::TYPES.len(),
        "a type is declared twice"
    );
}

#[test]
fn samples_round_trip_through_encode_and_decode() {
    for sample in samples() {
        let decoded = DomainEvent::decode(
            sample.event_type(),
            sample.schema_version(),
            &sample.encode(),
        )
        .unwrap_or_else(|error| panic!("{}: {error}", sample.event_type()));
        assert_eq!(decoded, sample);
    }
}

#[test]
fn schema_version_matches_the_declared_current_version() {
    for sample in samples() {
        assert_eq!(
            DomainEvent::current_version(sample.event_type()),
            Some(sample.schema_version()),
        );
    }
}

#[test]
fn an_unassignment_for_a_deactivated_assignee_round_trips() {
    let event: DomainEvent = ConversationUnassigned {
        conversation_id: id(CONVERSATION),
        inbox_id: id(INBOX),
        from: Assignee::User { id: id(BOB) },
        reason: AssignmentReason::AssigneeDeactivated { user_id: id(BOB) },
    }
    .into();
    let json: serde_json::Value = serde_json::from_slice(&event.encode()).unwrap();
    assert_eq!(
        json["reason"],
        serde_json::json!({"kind": "assignee_deactivated", "user_id": id(BOB)})
    );
    let decoded = DomainEvent::decode(event.event_type(), 1, &event.encode()).unwrap();
    assert_eq!(decoded, event);
}
