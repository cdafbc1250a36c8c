//! Every conversation command: its success and each of its rejections, as given history / when
//! command / then events or error.
//!
//! The organisation is `support::organisation()` plus a shared e-mail address, a private e-mail
//! account of the agent, a website chat (all feeding the Support inbox), a Billing team that does
//! not work Support, and two bots.

use chrono::{DateTime, TimeZone, Utc};
use proto_events::event::*;
use proto_events::{Actor, DomainEvent};
use switchboard_domain::conversation::{
    self, Conversation, ConversationCommand as C, Delivery, DeliveryOutcome, Routing, Status,
};
use switchboard_domain::directory::Directory;
use switchboard_domain::{Context, DomainError};
use uuid::Uuid;

use crate::support::{
    ADMIN, AGENT, AUDITOR, OUTSIDER, SALES_TEAM, SUPPORT, directory, id, organisation, system, user,
};

const EMAIL: u128 = 40;
const PRIVATE_EMAIL: u128 = 41;
const CHAT: u128 = 42;
const BILLING_TEAM: u128 = 21;
const BOT: u128 = 50;
const OTHER_BOT: u128 = 51;
const CONTACT: u128 = 60;
const RULE: u128 = 70;
const CONV: u128 = 100;
/// Inbound messages are numbered from 200, replies from 300, comments from 400.
const FIRST: u128 = 200;
const REPLY: u128 = 300;
const COMMENT: u128 = 400;

/// Every decision in these tests happens at this moment.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 9, 30, 0).unwrap()
}

fn channel(n: u128) -> Actor {
    Actor::Channel { id: id(n) }
}

fn bot(n: u128) -> Actor {
    Actor::Bot { id: id(n) }
}

/// The organisation the conversations live in.
fn setup() -> Vec<DomainEvent> {
    let connected = |n: u128, config: ChannelConfig| -> DomainEvent {
        ChannelConnected {
            channel_id: id(n),
            inbox_id: id(SUPPORT),
            config,
        }
        .into()
    };
    let mut events = organisation();
    events.extend([
        connected(
            EMAIL,
            ChannelConfig::Email {
                address: "support@acme.test".into(),
                access: EmailAccess::Shared,
            },
        ),
        connected(
            PRIVATE_EMAIL,
            ChannelConfig::Email {
                address: "agent@acme.test".into(),
                access: EmailAccess::Private {
                    owner_user_id: id(AGENT),
                },
            },
        ),
        connected(
            CHAT,
            ChannelConfig::Chat {
                name: "Website".into(),
            },
        ),
        TeamCreated {
            team_id: id(BILLING_TEAM),
            name: "Billing".into(),
        }
        .into(),
        BotCreated {
            bot_id: id(BOT),
            name: "Greeter".into(),
        }
        .into(),
        BotCreated {
            bot_id: id(OTHER_BOT),
            name: "Surveyor".into(),
        }
        .into(),
    ]);
    events
}

fn disconnected(n: u128) -> DomainEvent {
    ChannelDisconnected {
        channel_id: id(n),
        inbox_id: id(SUPPORT),
    }
    .into()
}

/// A customer's e-mail `n` to the shared address, with `Message-ID` `m<n>@customer.test`.
fn email_in(n: u128) -> InboundMessage {
    InboundMessage {
        message_id: id(n),
        channel_id: id(EMAIL),
        channel_kind: ChannelKind::Email,
        provider_message_id: None,
        from: Identity::Email {
            address: "ada@customer.test".into(),
        },
        from_name: Some("Ada".into()),
        contact_id: Some(id(CONTACT)),
        subject: Some("Invoice question".into()),
        body_text: "Hello".into(),
        body_html: None,
        email: Some(EmailHeaders {
            message_id: format!("m{n}@customer.test"),
            in_reply_to: None,
            references: vec![],
            to: vec!["support@acme.test".into()],
            cc: vec![],
        }),
        form_fields: vec![],
        attachments: Vec::new(),
        raw: None,
    }
}

/// The same e-mail, to the agent's private account.
fn private_in(n: u128) -> InboundMessage {
    InboundMessage {
        channel_id: id(PRIVATE_EMAIL),
        ..email_in(n)
    }
}

/// A visitor's chat message `n`, with provider id `mid.<n>`.
fn chat_in(n: u128) -> InboundMessage {
    InboundMessage {
        message_id: id(n),
        channel_id: id(CHAT),
        channel_kind: ChannelKind::Chat,
        provider_message_id: Some(format!("mid.{n}")),
        from: Identity::ChatVisitor {
            visitor_id: "visitor-1".into(),
        },
        from_name: None,
        contact_id: None,
        subject: None,
        body_text: "Hi there".into(),
        body_html: None,
        email: None,
        form_fields: vec![],
        attachments: Vec::new(),
        raw: None,
    }
}

fn started(message: &InboundMessage, visibility: ConversationVisibility) -> DomainEvent {
    ConversationStarted {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        channel_id: message.channel_id,
        channel_kind: message.channel_kind,
        contact_id: message.contact_id,
        origin: ConversationOrigin::Inbound,
        visibility,
    }
    .into()
}

fn received(message: InboundMessage) -> DomainEvent {
    MessageReceived {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        message,
    }
    .into()
}

fn filtered(message: InboundMessage) -> DomainEvent {
    MessageFiltered {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        reason: FilterReason::BulkMail,
        visibility: Some(ConversationVisibility::Shared),
        message,
    }
    .into()
}

fn restored(n: u128, by: u128) -> DomainEvent {
    FilteredMessageRestored {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        message_id: id(n),
        restored_by_user_id: id(by),
    }
    .into()
}

fn closed_by(actor: Actor) -> DomainEvent {
    ConversationClosed {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        by: actor,
    }
    .into()
}

fn reopened(cause: ReopenCause) -> DomainEvent {
    ConversationReopened {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        cause,
    }
    .into()
}

fn assigned(assignee: Assignee, reason: AssignmentReason) -> DomainEvent {
    ConversationAssigned {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        assignee,
        reason,
    }
    .into()
}

fn reassigned(from: Assignee, to: Assignee, reason: AssignmentReason) -> DomainEvent {
    ConversationReassigned {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        from,
        to,
        reason,
    }
    .into()
}

fn unassigned(from: Assignee, reason: AssignmentReason) -> DomainEvent {
    ConversationUnassigned {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        from,
        reason,
    }
    .into()
}

fn to_user(n: u128) -> Assignee {
    Assignee::User { id: id(n) }
}

fn to_team(n: u128) -> Assignee {
    Assignee::Team { id: id(n) }
}

fn to_bot(n: u128) -> Assignee {
    Assignee::Bot { id: id(n) }
}

fn manual(n: u128) -> AssignmentReason {
    AssignmentReason::Manual { by: user(n) }
}

fn decision() -> RoutingDecision {
    RoutingDecision {
        rule_id: id(RULE),
        strategy: RoutingStrategy::RoundRobin,
        candidates: vec![id(AGENT)],
        skipped: vec![],
    }
}

/// An open e-mail conversation on the shared address, started by e-mail 200.
fn email_thread() -> Vec<DomainEvent> {
    vec![
        started(&email_in(FIRST), ConversationVisibility::Shared),
        received(email_in(FIRST)),
    ]
}

/// An open conversation on the agent's private account.
fn private_thread() -> Vec<DomainEvent> {
    vec![
        started(
            &private_in(FIRST),
            ConversationVisibility::Private {
                owner_user_id: id(AGENT),
            },
        ),
        received(private_in(FIRST)),
    ]
}

/// An open chat conversation.
fn chat_thread() -> Vec<DomainEvent> {
    vec![
        started(&chat_in(FIRST), ConversationVisibility::Shared),
        received(chat_in(FIRST)),
    ]
}

/// A chat conversation that bot-first routing gave to the Greeter bot.
fn bot_thread() -> Vec<DomainEvent> {
    let mut events = chat_thread();
    events.push(assigned(to_bot(BOT), AssignmentReason::Rule(decision())));
    events
}

/// The e-mail conversation, closed by the agent.
fn closed_thread() -> Vec<DomainEvent> {
    let mut events = email_thread();
    events.push(closed_by(user(AGENT)));
    events
}

/// A conversation that exists only in the Filtered view.
fn filtered_only() -> Vec<DomainEvent> {
    vec![filtered(email_in(FIRST))]
}

fn reply_sent(n: u128, author: ReplyAuthor) -> DomainEvent {
    ReplySent {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        message_id: id(n),
        channel_id: id(CHAT),
        channel_kind: ChannelKind::Chat,
        author,
        subject: None,
        body_text: "On it".into(),
        body_html: None,
        email: None,
        attachments: Vec::new(),
    }
    .into()
}

/// The chat conversation with our reply 300 on its way.
fn replied_thread() -> Vec<DomainEvent> {
    let mut events = chat_thread();
    events.push(reply_sent(REPLY, ReplyAuthor::User { id: id(AGENT) }));
    events
}

fn receive(message: InboundMessage) -> C {
    receive_filtered(message, None)
}

fn receive_filtered(message: InboundMessage, filter: Option<FilterReason>) -> C {
    C::ReceiveMessage {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        channel_id: message.channel_id,
        message,
        filter,
    }
}

fn reply(n: u128, text: &str) -> C {
    C::SendReply {
        message_id: id(n),
        body_text: text.into(),
        body_html: None,
        subject: None,
        attachments: Vec::new(),
    }
}

fn comment(text: &str, mentions: Vec<Uuid>) -> C {
    C::AddComment {
        comment_id: id(COMMENT),
        body_text: text.into(),
        mentions,
    }
}

fn delivered(provider_message_id: &str) -> C {
    C::RecordDelivery {
        message_id: id(REPLY),
        outcome: DeliveryOutcome::Succeeded {
            provider_message_id: Some(provider_message_id.into()),
        },
    }
}

fn failed(reason: &str, permanent: bool) -> C {
    C::RecordDelivery {
        message_id: id(REPLY),
        outcome: DeliveryOutcome::Failed {
            reason: reason.into(),
            permanent,
            status: None,
        },
    }
}

/// A conversation scenario: the organisation, the conversation's history, then one command.
struct Scenario {
    organisation: Vec<DomainEvent>,
    history: Vec<DomainEvent>,
}

fn given(history: Vec<DomainEvent>) -> Scenario {
    Scenario {
        organisation: setup(),
        history,
    }
}

impl Scenario {
    /// More conversation history.
    fn and(mut self, more: impl IntoIterator<Item = DomainEvent>) -> Scenario {
        self.history.extend(more);
        self
    }

    /// More organisation history (a channel disconnected, a role changed).
    fn with_organisation(mut self, more: impl IntoIterator<Item = DomainEvent>) -> Scenario {
        self.organisation.extend(more);
        self
    }

    fn when(self, actor: Actor, command: C) -> Outcome {
        let directory: Directory = directory(&self.organisation);
        let state = Conversation::from_history(&self.history);
        let ctx = Context {
            directory: &directory,
            actor: &actor,
            now: now(),
        };
        let result = conversation::decide(&state, &command, &ctx);
        Outcome { result, state }
    }
}

struct Outcome {
    result: Result<Vec<DomainEvent>, DomainError>,
    state: Conversation,
}

impl Outcome {
    /// Expects exactly these events, and returns the conversation after them.
    fn then(self, events: Vec<DomainEvent>) -> Conversation {
        let decided = self
            .result
            .unwrap_or_else(|e| panic!("expected events, got {e:?}"));
        assert_eq!(decided, events);
        let mut state = self.state;
        for event in &decided {
            state.evolve(event);
        }
        state
    }

    /// Expects the command to be accepted with nothing to write.
    fn then_nothing(self) {
        self.then(vec![]);
    }

    fn then_error(self, expected: DomainError) {
        assert_eq!(self.result, Err(expected));
    }

    fn then_not_found(self, what: &'static str) {
        self.then_error(DomainError::NotFound { what });
    }

    fn then_rejected(self, expected_code: &str, expected_field: Option<&str>) {
        match self.result {
            Err(DomainError::Rejected { code, field, .. }) => {
                assert_eq!(code, expected_code);
                assert_eq!(field, expected_field, "field of {code}");
            }
            other => panic!("expected rejection {expected_code}, got {other:?}"),
        }
    }

    fn then_invalid(self, expected_field: &str) {
        match self.result {
            Err(DomainError::Invalid { field, .. }) => assert_eq!(field, expected_field),
            other => panic!("expected invalid {expected_field}, got {other:?}"),
        }
    }

    fn then_forbidden(self) {
        match self.result {
            Err(DomainError::Forbidden { .. }) => {}
            other => panic!("expected forbidden, got {other:?}"),
        }
    }
}

// ReceiveMessage

#[test]
fn a_first_message_starts_a_shared_conversation() {
    let state = given(vec![])
        .when(channel(EMAIL), receive(email_in(FIRST)))
        .then(email_thread());
    assert_eq!(state.status, Status::Open);
    assert_eq!(state.id, id(CONV));
    assert_eq!(state.contact_id, Some(id(CONTACT)));
    assert_eq!(state.subject.as_deref(), Some("Invoice question"));
    assert_eq!(state.private_owner, None);
}

#[test]
fn mail_to_a_private_account_starts_a_private_conversation() {
    let state = given(vec![])
        .when(channel(PRIVATE_EMAIL), receive(private_in(FIRST)))
        .then(private_thread());
    assert_eq!(state.private_owner, Some(id(AGENT)));
}

#[test]
fn a_message_into_an_open_conversation_is_received() {
    let state = given(email_thread())
        .when(channel(EMAIL), receive(email_in(201)))
        .then(vec![received(email_in(201))]);
    assert_eq!(state.status, Status::Open);
    assert!(state.message_ids.contains(&id(201)));
}

#[test]
fn a_senders_name_is_recorded_without_bidi_or_control_characters() {
    // An isolate and an override around the name would make it read otherwise than it is.
    let named = |name: &str| InboundMessage {
        message_id: id(201),
        provider_message_id: Some("mid.201".into()),
        from_name: Some(name.into()),
        ..chat_in(201)
    };
    given(chat_thread())
        .when(
            channel(CHAT),
            receive(named("\u{2066}Ann\u{202E}nimda\u{202C}\u{2069}\u{7}\u{9b}")),
        )
        .then(vec![received(named("Annnimda"))]);
    // Nothing but invisible characters: no name.
    given(chat_thread())
        .when(channel(CHAT), receive(named("\u{200F}\u{061C} \u{1b}")))
        .then(vec![received(InboundMessage {
            from_name: None,
            ..named("")
        })]);
}

#[test]
fn the_customer_writing_again_reopens_a_closed_conversation() {
    let state = given(closed_thread())
        .when(channel(EMAIL), receive(email_in(201)))
        .then(vec![
            reopened(ReopenCause::CustomerWrote {
                message_id: id(201),
            }),
            received(email_in(201)),
        ]);
    assert_eq!(state.status, Status::Open);
}

#[test]
fn a_message_delivered_twice_is_recorded_once() {
    // The same message again.
    given(email_thread())
        .when(channel(EMAIL), receive(email_in(FIRST)))
        .then_nothing();
    // The same e-mail fetched again under a new id of ours: same Message-ID.
    let refetched = InboundMessage {
        message_id: id(201),
        ..email_in(FIRST)
    };
    given(email_thread())
        .when(channel(EMAIL), receive(refetched))
        .then_nothing();
    // A redelivered webhook: same provider id.
    let redelivered = InboundMessage {
        message_id: id(201),
        ..chat_in(FIRST)
    };
    given(chat_thread())
        .when(channel(CHAT), receive(redelivered))
        .then_nothing();
    // Filtered mail is remembered too.
    given(filtered_only())
        .when(
            channel(EMAIL),
            receive_filtered(email_in(FIRST), Some(FilterReason::BulkMail)),
        )
        .then_nothing();
}

#[test]
fn filtered_mail_goes_to_the_filtered_view_only() {
    // New: the conversation exists in the Filtered view only.
    let state = given(vec![])
        .when(
            channel(EMAIL),
            receive_filtered(email_in(FIRST), Some(FilterReason::BulkMail)),
        )
        .then(filtered_only());
    assert_eq!(state.status, Status::Filtered);
    assert!(!state.is_started());
    assert!(state.filtered.contains_key(&id(FIRST)));
    // Into an open thread: filtered, not received.
    given(email_thread())
        .when(
            channel(EMAIL),
            receive_filtered(email_in(201), Some(FilterReason::AutomatedReply)),
        )
        .then(vec![
            MessageFiltered {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                reason: FilterReason::AutomatedReply,
                visibility: Some(ConversationVisibility::Shared),
                message: email_in(201),
            }
            .into(),
        ]);
    // Into a closed thread: no reopening for an out-of-office reply.
    let state = given(closed_thread())
        .when(
            channel(EMAIL),
            receive_filtered(email_in(201), Some(FilterReason::BulkMail)),
        )
        .then(vec![filtered(email_in(201))]);
    assert_eq!(state.status, Status::Closed);
}

#[test]
fn an_unfiltered_message_starts_a_conversation_that_was_only_filtered() {
    let state = given(filtered_only())
        .when(channel(EMAIL), receive(email_in(201)))
        .then(vec![
            started(&email_in(201), ConversationVisibility::Shared),
            received(email_in(201)),
        ]);
    assert_eq!(state.status, Status::Open);
    assert!(
        state.filtered.contains_key(&id(FIRST)),
        "the filtered message stays restorable"
    );
}

#[test]
fn only_the_delivering_channel_injects_messages() {
    given(vec![])
        .when(user(ADMIN), receive(email_in(FIRST)))
        .then_forbidden();
    given(vec![])
        .when(bot(BOT), receive(chat_in(FIRST)))
        .then_forbidden();
    given(vec![])
        .when(channel(CHAT), receive(email_in(FIRST)))
        .then_forbidden();
    given(vec![])
        .when(Actor::Contact { id: id(61) }, receive(email_in(FIRST)))
        .then_forbidden();
    // The system (e.g. an import) and the recognised contact themselves may.
    given(vec![])
        .when(system(), receive(email_in(FIRST)))
        .then(email_thread());
    given(vec![])
        .when(Actor::Contact { id: id(CONTACT) }, receive(email_in(FIRST)))
        .then(email_thread());
}

#[test]
fn a_disconnected_channel_delivers_nothing() {
    given(email_thread())
        .with_organisation([disconnected(EMAIL)])
        .when(channel(EMAIL), receive(email_in(201)))
        .then_rejected("CHANNEL_DISCONNECTED", Some("channelId"));
    let unknown = InboundMessage {
        channel_id: id(49),
        ..email_in(FIRST)
    };
    given(vec![])
        .when(channel(49), receive(unknown))
        .then_not_found("channel");
}

#[test]
fn a_message_must_fit_its_channel_conversation_and_inbox() {
    let wrong_kind = InboundMessage {
        channel_kind: ChannelKind::Chat,
        ..email_in(FIRST)
    };
    given(vec![])
        .when(channel(EMAIL), receive(wrong_kind))
        .then_invalid("message");
    let other_channel = C::ReceiveMessage {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        channel_id: id(EMAIL),
        message: chat_in(FIRST),
        filter: None,
    };
    given(vec![])
        .when(channel(EMAIL), other_channel)
        .then_invalid("message");
    let other_conversation = C::ReceiveMessage {
        conversation_id: id(101),
        inbox_id: id(SUPPORT),
        channel_id: id(EMAIL),
        message: email_in(201),
        filter: None,
    };
    given(email_thread())
        .when(channel(EMAIL), other_conversation)
        .then_invalid("conversationId");
    let other_inbox = C::ReceiveMessage {
        conversation_id: id(CONV),
        inbox_id: id(31),
        channel_id: id(EMAIL),
        message: email_in(FIRST),
        filter: None,
    };
    given(vec![])
        .when(channel(EMAIL), other_inbox)
        .then_invalid("inboxId");
}

#[test]
fn a_conversation_stays_in_its_inbox_when_its_channel_moves() {
    let moved = ChannelMoved {
        channel_id: id(EMAIL),
        from_inbox_id: id(SUPPORT),
        to_inbox_id: id(31),
    };
    given(email_thread())
        .with_organisation([moved.into()])
        .when(channel(EMAIL), receive(email_in(201)))
        .then(vec![received(email_in(201))]);
}

// RestoreFilteredMessage

#[test]
fn restoring_filtered_mail_starts_its_conversation() {
    let state = given(filtered_only())
        .when(
            user(AGENT),
            C::RestoreFilteredMessage {
                message_id: id(FIRST),
            },
        )
        .then(vec![
            restored(FIRST, AGENT),
            started(&email_in(FIRST), ConversationVisibility::Shared),
            received(email_in(FIRST)),
        ]);
    assert_eq!(state.status, Status::Open);
    assert!(state.filtered.is_empty());
}

#[test]
fn restoring_filtered_private_mail_keeps_it_private() {
    given(vec![filtered(private_in(FIRST))])
        .when(
            user(AGENT),
            C::RestoreFilteredMessage {
                message_id: id(FIRST),
            },
        )
        .then(vec![
            restored(FIRST, AGENT),
            started(
                &private_in(FIRST),
                ConversationVisibility::Private {
                    owner_user_id: id(AGENT),
                },
            ),
            received(private_in(FIRST)),
        ]);
    given(vec![filtered(private_in(FIRST))])
        .when(
            user(AUDITOR),
            C::RestoreFilteredMessage {
                message_id: id(FIRST),
            },
        )
        .then_not_found("conversation");
}

#[test]
fn restoring_into_a_thread_receives_the_message_and_reopens_a_closed_one() {
    given(email_thread())
        .and([filtered(email_in(201))])
        .when(
            user(AGENT),
            C::RestoreFilteredMessage {
                message_id: id(201),
            },
        )
        .then(vec![restored(201, AGENT), received(email_in(201))]);
    let state = given(closed_thread())
        .and([filtered(email_in(201))])
        .when(
            user(AGENT),
            C::RestoreFilteredMessage {
                message_id: id(201),
            },
        )
        .then(vec![
            restored(201, AGENT),
            reopened(ReopenCause::CustomerWrote {
                message_id: id(201),
            }),
            received(email_in(201)),
        ]);
    assert_eq!(state.status, Status::Open);
}

#[test]
fn restoring_needs_a_filtered_message_and_a_user_who_may_work_it() {
    let restore = C::RestoreFilteredMessage {
        message_id: id(FIRST),
    };
    given(email_thread())
        .when(user(AGENT), restore.clone())
        .then_rejected("NOT_FILTERED", Some("messageId"));
    given(filtered_only())
        .when(
            user(AGENT),
            C::RestoreFilteredMessage {
                message_id: id(299),
            },
        )
        .then_not_found("message");
    given(filtered_only())
        .and([restored(FIRST, AGENT)])
        .and([
            started(&email_in(FIRST), ConversationVisibility::Shared),
            received(email_in(FIRST)),
        ])
        .when(user(ADMIN), restore.clone())
        .then_rejected("NOT_FILTERED", Some("messageId"));
    given(filtered_only())
        .when(user(OUTSIDER), restore.clone())
        .then_not_found("conversation");
    given(filtered_only())
        .when(user(AUDITOR), restore.clone())
        .then_forbidden();
    given(filtered_only())
        .when(system(), restore.clone())
        .then_forbidden();
    given(vec![])
        .when(user(ADMIN), restore)
        .then_not_found("conversation");
}

// SendReply

/// The agent's first reply to e-mail 200, as sent.
fn first_email_reply() -> DomainEvent {
    ReplySent {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        message_id: id(REPLY),
        channel_id: id(EMAIL),
        channel_kind: ChannelKind::Email,
        author: ReplyAuthor::User { id: id(AGENT) },
        subject: Some("Re: Invoice question".into()),
        body_text: "Here is your invoice.".into(),
        body_html: None,
        email: Some(EmailHeaders {
            message_id: format!("{}@acme.test", id(REPLY)),
            in_reply_to: Some("m200@customer.test".into()),
            references: vec!["m200@customer.test".into()],
            to: vec!["ada@customer.test".into()],
            cc: vec![],
        }),
        attachments: Vec::new(),
    }
    .into()
}

#[test]
fn an_email_reply_threads_to_the_customers_last_message() {
    let state = given(email_thread())
        .when(user(AGENT), reply(REPLY, "Here is your invoice."))
        .then(vec![first_email_reply()]);
    assert_eq!(state.outbound[&id(REPLY)].delivery, Delivery::Awaiting);
}

#[test]
fn the_next_reply_answers_the_customers_answer_and_references_the_whole_thread() {
    let ours = format!("{}@acme.test", id(REPLY));
    let answer = InboundMessage {
        subject: Some("RE: Invoice question".into()),
        email: Some(EmailHeaders {
            message_id: "m201@customer.test".into(),
            in_reply_to: Some(ours.clone()),
            references: vec!["m200@customer.test".into(), ours.clone()],
            to: vec!["support@acme.test".into()],
            cc: vec![],
        }),
        ..email_in(201)
    };
    let next = C::SendReply {
        message_id: id(301),
        body_text: "Anything else?".into(),
        body_html: Some("<p>Anything else?</p>".into()),
        subject: Some("  ".into()),
        attachments: Vec::new(),
    };
    given(email_thread())
        .and([first_email_reply(), received(answer)])
        .when(user(AGENT), next)
        .then(vec![
            ReplySent {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                message_id: id(301),
                channel_id: id(EMAIL),
                channel_kind: ChannelKind::Email,
                author: ReplyAuthor::User { id: id(AGENT) },
                // A blank subject answers the thread's, without a second "Re:".
                subject: Some("Re: Invoice question".into()),
                body_text: "Anything else?".into(),
                body_html: Some("<p>Anything else?</p>".into()),
                email: Some(EmailHeaders {
                    message_id: format!("{}@acme.test", id(301)),
                    in_reply_to: Some("m201@customer.test".into()),
                    references: vec![
                        "m200@customer.test".into(),
                        ours,
                        "m201@customer.test".into(),
                    ],
                    to: vec!["ada@customer.test".into()],
                    cc: vec![],
                }),
                attachments: Vec::new(),
            }
            .into(),
        ]);
}

#[test]
fn a_chat_reply_carries_no_mail_fields() {
    let command = C::SendReply {
        message_id: id(REPLY),
        body_text: "On it".into(),
        body_html: Some("<b>On it</b>".into()),
        subject: Some("ignored".into()),
        attachments: Vec::new(),
    };
    given(chat_thread())
        .when(user(AGENT), command)
        .then(vec![reply_sent(REPLY, ReplyAuthor::User { id: id(AGENT) })]);
}

#[test]
fn attachments_go_by_email_only() {
    let file = Attachment {
        blob: BlobRef {
            sha256: "ab".repeat(32),
            size: 3,
        },
        file_name: Some("invoice.pdf".into()),
        content_type: "application/pdf".into(),
        content_id: None,
        inline: false,
    };
    let with_file = |n| C::SendReply {
        message_id: id(n),
        body_text: "Attached.".into(),
        body_html: None,
        subject: None,
        attachments: vec![file.clone()],
    };
    given(chat_thread())
        .when(user(AGENT), with_file(REPLY))
        .then_invalid("attachments");
    let outcome = given(email_thread()).when(user(AGENT), with_file(REPLY));
    let events = outcome.result.expect("an e-mail reply with a file");
    match &events[..] {
        [DomainEvent::ReplySent(reply)] => {
            assert_eq!(reply.attachments, std::slice::from_ref(&file))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn replying_to_a_closed_conversation_does_not_reopen_it() {
    let state = given(chat_thread())
        .and([closed_by(user(AGENT))])
        .when(user(AGENT), reply(REPLY, "On it"))
        .then(vec![reply_sent(REPLY, ReplyAuthor::User { id: id(AGENT) })]);
    assert_eq!(state.status, Status::Closed);
}

#[test]
fn bots_reply_while_handling_and_automations_reply_as_themselves() {
    given(bot_thread())
        .when(bot(BOT), reply(REPLY, "On it"))
        .then(vec![reply_sent(REPLY, ReplyAuthor::Bot { id: id(BOT) })]);
    given(bot_thread())
        .when(bot(OTHER_BOT), reply(REPLY, "On it"))
        .then_forbidden();
    given(chat_thread())
        .when(bot(BOT), reply(REPLY, "On it"))
        .then_forbidden();
    given(chat_thread())
        .when(
            Actor::System {
                component: "acknowledgement".into(),
            },
            reply(REPLY, "On it"),
        )
        .then(vec![reply_sent(
            REPLY,
            ReplyAuthor::Automation {
                name: "acknowledgement".into(),
            },
        )]);
}

#[test]
fn a_reply_needs_a_body_a_connected_channel_and_someone_to_write_to() {
    given(email_thread())
        .when(user(AGENT), reply(REPLY, " \n "))
        .then_invalid("bodyText");
    given(email_thread())
        .with_organisation([disconnected(EMAIL)])
        .when(user(AGENT), reply(REPLY, "Hello"))
        .then_rejected("CHANNEL_DISCONNECTED", Some("channelId"));
    given(vec![started(
        &email_in(FIRST),
        ConversationVisibility::Shared,
    )])
    .when(user(AGENT), reply(REPLY, "Hello"))
    .then_rejected("NO_RECIPIENT", None);
    given(filtered_only())
        .when(user(AGENT), reply(REPLY, "Hello"))
        .then_rejected("FILTERED", None);
    given(email_thread())
        .when(channel(EMAIL), reply(REPLY, "Hello"))
        .then_forbidden();
}

#[test]
fn a_reply_sent_twice_is_recorded_once() {
    given(replied_thread())
        .when(user(AGENT), reply(REPLY, "On it"))
        .then_nothing();
}

// RecordDelivery

#[test]
fn delivery_outcomes_are_recorded_once_final() {
    let state = given(replied_thread())
        .when(channel(CHAT), delivered("mid.300"))
        .then(vec![
            DeliverySucceeded {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                message_id: id(REPLY),
                channel_id: id(CHAT),
                provider_message_id: Some("mid.300".into()),
            }
            .into(),
        ]);
    assert_eq!(state.outbound[&id(REPLY)].delivery, Delivery::Succeeded);
    let bounced = given(replied_thread())
        .when(system(), failed("recipient unknown", true))
        .then(vec![
            DeliveryFailed {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                message_id: id(REPLY),
                channel_id: id(CHAT),
                reason: "recipient unknown".into(),
                permanent: true,
                status: None,
            }
            .into(),
        ]);
    assert_eq!(bounced.outbound[&id(REPLY)].delivery, Delivery::Failed);
    // After a success, a repeat or a temporary failure writes nothing; a bounce (the relay took
    // it, the recipient's server returned it) fails it for good, once.
    let after_success = || {
        let mut events = replied_thread();
        events.push(
            DeliverySucceeded {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                message_id: id(REPLY),
                channel_id: id(CHAT),
                provider_message_id: Some("mid.300".into()),
            }
            .into(),
        );
        events
    };
    given(after_success())
        .when(channel(CHAT), delivered("mid.300"))
        .then_nothing();
    given(after_success())
        .when(channel(CHAT), failed("try later", false))
        .then_nothing();
    let late_bounce = DeliveryFailed {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        message_id: id(REPLY),
        channel_id: id(CHAT),
        reason: "late bounce".into(),
        permanent: true,
        status: None,
    };
    let bounced = given(after_success())
        .when(channel(CHAT), failed("late bounce", true))
        .then(vec![late_bounce.clone().into()]);
    assert_eq!(bounced.outbound[&id(REPLY)].delivery, Delivery::Failed);
    let mut twice = after_success();
    twice.push(late_bounce.into());
    given(twice)
        .when(channel(CHAT), failed("late bounce", true))
        .then_nothing();
}

#[test]
fn a_temporary_failure_still_awaits_an_outcome() {
    let temporary = DeliveryFailed {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        message_id: id(REPLY),
        channel_id: id(CHAT),
        reason: "rate limited".into(),
        permanent: false,
        status: None,
    };
    let state = given(replied_thread())
        .when(channel(CHAT), failed("rate limited", false))
        .then(vec![temporary.clone().into()]);
    assert!(!state.outbound[&id(REPLY)].delivery.is_final());
    given(replied_thread())
        .and([temporary.clone().into()])
        .when(channel(CHAT), failed("rate limited", false))
        .then_nothing();
    given(replied_thread())
        .and([temporary.into()])
        .when(channel(CHAT), delivered("mid.300"))
        .then(vec![
            DeliverySucceeded {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                message_id: id(REPLY),
                channel_id: id(CHAT),
                provider_message_id: Some("mid.300".into()),
            }
            .into(),
        ]);
}

#[test]
fn delivery_is_reported_by_its_channel_for_a_known_message() {
    given(replied_thread())
        .when(
            channel(CHAT),
            C::RecordDelivery {
                message_id: id(FIRST),
                outcome: DeliveryOutcome::Succeeded {
                    provider_message_id: None,
                },
            },
        )
        .then_not_found("message");
    given(replied_thread())
        .when(channel(EMAIL), delivered("x"))
        .then_forbidden();
    given(replied_thread())
        .when(user(AGENT), delivered("x"))
        .then_forbidden();
    given(replied_thread())
        .when(user(OUTSIDER), delivered("x"))
        .then_not_found("conversation");
    given(vec![])
        .when(channel(CHAT), delivered("x"))
        .then_not_found("conversation");
}

// AddComment

#[test]
fn a_comment_mentions_each_user_once() {
    let state = given(email_thread())
        .when(
            user(AGENT),
            comment(
                "@admin can you check?",
                vec![id(ADMIN), id(ADMIN), id(AGENT)],
            ),
        )
        .then(vec![
            CommentAdded {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                comment_id: id(COMMENT),
                author_user_id: id(AGENT),
                body_text: "@admin can you check?".into(),
                mentions: vec![id(ADMIN), id(AGENT)],
            }
            .into(),
        ]);
    assert!(state.comment_ids.contains(&id(COMMENT)));
    assert!(state.outbound.is_empty(), "a comment is never sent out");
}

#[test]
fn only_users_who_see_the_conversation_can_be_mentioned() {
    given(email_thread())
        .when(user(AGENT), comment("fyi", vec![id(OUTSIDER)]))
        .then_rejected("MENTION_NO_ACCESS", Some("mentions"));
    given(email_thread())
        .when(user(AGENT), comment("fyi", vec![id(404)]))
        .then_rejected("MENTION_NO_ACCESS", Some("mentions"));
    // A private conversation: the auditor, who reads shared ones, does not see it.
    given(private_thread())
        .when(user(AGENT), comment("fyi", vec![id(AUDITOR)]))
        .then_rejected("MENTION_NO_ACCESS", Some("mentions"));
}

#[test]
fn a_comment_needs_a_body_and_a_user_who_may_write() {
    given(email_thread())
        .when(user(AGENT), comment("  ", vec![]))
        .then_invalid("bodyText");
    given(email_thread())
        .when(bot(BOT), comment("hi", vec![]))
        .then_forbidden();
    given(filtered_only())
        .when(user(AGENT), comment("spam?", vec![]))
        .then_rejected("FILTERED", None);
    let commented = CommentAdded {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        comment_id: id(COMMENT),
        author_user_id: id(AGENT),
        body_text: "hi".into(),
        mentions: vec![],
    };
    given(email_thread())
        .and([commented.into()])
        .when(user(AGENT), comment("hi", vec![]))
        .then_nothing();
}

// Assign, Unassign

#[test]
fn a_user_assigns_and_reassigns_by_hand() {
    let state = given(email_thread())
        .when(user(AGENT), C::Assign { to: to_user(AGENT) })
        .then(vec![assigned(to_user(AGENT), manual(AGENT))]);
    assert_eq!(state.assignee, Some(to_user(AGENT)));
    given(email_thread())
        .and([assigned(to_user(AGENT), manual(AGENT))])
        .when(user(ADMIN), C::Assign { to: to_user(ADMIN) })
        .then(vec![reassigned(
            to_user(AGENT),
            to_user(ADMIN),
            manual(ADMIN),
        )]);
    given(email_thread())
        .and([assigned(to_user(AGENT), manual(AGENT))])
        .when(user(ADMIN), C::Assign { to: to_user(AGENT) })
        .then_rejected("UNCHANGED", Some("to"));
    // Closed conversations can still change hands.
    given(closed_thread())
        .when(user(AGENT), C::Assign { to: to_user(AGENT) })
        .then(vec![assigned(to_user(AGENT), manual(AGENT))]);
}

#[test]
fn a_user_assignee_must_see_the_conversation_and_write() {
    given(email_thread())
        .when(
            user(AGENT),
            C::Assign {
                to: to_user(OUTSIDER),
            },
        )
        .then_rejected("ASSIGNEE_NO_ACCESS", Some("to"));
    given(email_thread())
        .when(
            user(AGENT),
            C::Assign {
                to: to_user(AUDITOR),
            },
        )
        .then_rejected("ASSIGNEE_NO_ACCESS", Some("to"));
    given(private_thread())
        .when(user(ADMIN), C::Assign { to: to_user(ADMIN) })
        .then(vec![assigned(to_user(ADMIN), manual(ADMIN))]);
    given(email_thread())
        .when(user(AGENT), C::Assign { to: to_user(404) })
        .then_not_found("user");
}

#[test]
fn a_team_assignee_must_work_the_inbox() {
    given(email_thread())
        .when(
            user(AGENT),
            C::Assign {
                to: to_team(SALES_TEAM),
            },
        )
        .then(vec![assigned(to_team(SALES_TEAM), manual(AGENT))]);
    given(email_thread())
        .when(
            user(AGENT),
            C::Assign {
                to: to_team(BILLING_TEAM),
            },
        )
        .then_rejected("ASSIGNEE_NO_ACCESS", Some("to"));
    // A member team outside the inbox's restriction does not work it either.
    let billing_member = InboxMemberAdded {
        inbox_id: id(SUPPORT),
        member: Member::Team {
            id: id(BILLING_TEAM),
        },
    };
    let restricted = InboxRestricted {
        inbox_id: id(SUPPORT),
        team_ids: vec![id(SALES_TEAM)],
    };
    given(email_thread())
        .with_organisation([billing_member.clone().into()])
        .when(
            user(AGENT),
            C::Assign {
                to: to_team(BILLING_TEAM),
            },
        )
        .then(vec![assigned(to_team(BILLING_TEAM), manual(AGENT))]);
    given(email_thread())
        .with_organisation([billing_member.into(), restricted.into()])
        .when(
            user(AGENT),
            C::Assign {
                to: to_team(BILLING_TEAM),
            },
        )
        .then_rejected("ASSIGNEE_NO_ACCESS", Some("to"));
    given(private_thread())
        .when(
            user(AGENT),
            C::Assign {
                to: to_team(SALES_TEAM),
            },
        )
        .then_rejected("ASSIGNEE_NO_ACCESS", Some("to"));
    given(email_thread())
        .when(user(AGENT), C::Assign { to: to_team(404) })
        .then_not_found("team");
}

#[test]
fn a_bot_assignee_must_exist() {
    let state = given(chat_thread())
        .when(user(AGENT), C::Assign { to: to_bot(BOT) })
        .then(vec![assigned(to_bot(BOT), manual(AGENT))]);
    assert_eq!(state.bot(), Some(id(BOT)));
    given(chat_thread())
        .when(user(AGENT), C::Assign { to: to_bot(404) })
        .then_not_found("bot");
}

#[test]
fn taking_a_conversation_from_a_bot_by_hand_is_a_plain_reassignment() {
    let state = given(bot_thread())
        .when(user(AGENT), C::Assign { to: to_user(AGENT) })
        .then(vec![reassigned(to_bot(BOT), to_user(AGENT), manual(AGENT))]);
    assert_eq!(state.bot(), None);
    assert_eq!(state.handed_off_by_bot, None);
}

#[test]
fn assigning_is_for_users_who_may_work_the_conversation() {
    let assign = C::Assign { to: to_user(AGENT) };
    given(email_thread())
        .when(system(), assign.clone())
        .then_forbidden();
    given(filtered_only())
        .when(user(AGENT), assign)
        .then_rejected("FILTERED", None);
}

#[test]
fn a_user_unassigns_by_hand() {
    let state = given(email_thread())
        .and([assigned(to_user(AGENT), manual(AGENT))])
        .when(user(ADMIN), C::Unassign)
        .then(vec![unassigned(to_user(AGENT), manual(ADMIN))]);
    assert_eq!(state.assignee, None);
    given(email_thread())
        .when(user(ADMIN), C::Unassign)
        .then_rejected("NOT_ASSIGNED", None);
    given(email_thread())
        .and([assigned(to_user(AGENT), manual(AGENT))])
        .when(bot(BOT), C::Unassign)
        .then_forbidden();
}

// ApplyRouting

#[test]
fn routing_assigns_or_queues_an_unassigned_conversation() {
    let state = given(email_thread())
        .when(
            system(),
            C::ApplyRouting {
                routing: Routing::Assign {
                    assignee: to_user(AGENT),
                    decision: decision(),
                },
            },
        )
        .then(vec![assigned(
            to_user(AGENT),
            AssignmentReason::Rule(decision()),
        )]);
    assert!(!state.queued);
    let state = given(email_thread())
        .when(
            system(),
            C::ApplyRouting {
                routing: Routing::Queue {
                    decision: decision(),
                },
            },
        )
        .then(vec![
            ConversationQueued {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                decision: decision(),
            }
            .into(),
        ]);
    assert!(state.queued);
}

#[test]
fn routing_leaves_alone_what_someone_already_took() {
    let routing = C::ApplyRouting {
        routing: Routing::Assign {
            assignee: to_user(AGENT),
            decision: decision(),
        },
    };
    given(email_thread())
        .and([assigned(to_user(ADMIN), manual(ADMIN))])
        .when(system(), routing.clone())
        .then_nothing();
    given(closed_thread())
        .when(system(), routing.clone())
        .then_nothing();
    given(filtered_only())
        .when(system(), routing.clone())
        .then_nothing();
    given(email_thread())
        .when(user(AGENT), routing.clone())
        .then_forbidden();
    given(vec![])
        .when(system(), routing)
        .then_not_found("conversation");
}

// Close, Reopen

#[test]
fn a_user_closes_and_reopens() {
    let state = given(email_thread())
        .when(user(AGENT), C::Close)
        .then(vec![closed_by(user(AGENT))]);
    assert_eq!(state.status, Status::Closed);
    given(closed_thread())
        .when(user(AGENT), C::Close)
        .then_rejected("ALREADY_CLOSED", None);
    let state = given(closed_thread())
        .when(user(ADMIN), C::Reopen)
        .then(vec![reopened(ReopenCause::Manual { by: user(ADMIN) })]);
    assert_eq!(state.status, Status::Open);
    given(email_thread())
        .when(user(ADMIN), C::Reopen)
        .then_rejected("ALREADY_OPEN", None);
}

#[test]
fn the_handling_bot_and_the_system_may_close_too() {
    given(bot_thread())
        .when(bot(BOT), C::Close)
        .then(vec![closed_by(bot(BOT))]);
    given(bot_thread())
        .when(bot(OTHER_BOT), C::Close)
        .then_forbidden();
    given(email_thread())
        .when(system(), C::Close)
        .then(vec![closed_by(system())]);
    given(email_thread())
        .when(channel(EMAIL), C::Close)
        .then_forbidden();
    given(filtered_only())
        .when(user(AGENT), C::Close)
        .then_rejected("FILTERED", None);
}

// HandOffFromBot

#[test]
fn a_bot_hands_off_to_a_user() {
    let state = given(bot_thread())
        .when(
            bot(BOT),
            C::HandOffFromBot {
                to: Some(to_user(AGENT)),
            },
        )
        .then(vec![
            BotHandedOff {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                bot_id: id(BOT),
                to: Some(to_user(AGENT)),
            }
            .into(),
            reassigned(
                to_bot(BOT),
                to_user(AGENT),
                AssignmentReason::BotHandoff { bot_id: id(BOT) },
            ),
        ]);
    assert_eq!(state.bot(), None);
    assert_eq!(state.handed_off_by_bot, Some(id(BOT)));
}

#[test]
fn a_handoff_to_nobody_leaves_the_conversation_to_routing() {
    let handed_off = given(bot_thread())
        .when(user(AGENT), C::HandOffFromBot { to: None })
        .then(vec![
            BotHandedOff {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                bot_id: id(BOT),
                to: None,
            }
            .into(),
            unassigned(
                to_bot(BOT),
                AssignmentReason::BotHandoff { bot_id: id(BOT) },
            ),
        ]);
    assert_eq!(handed_off.assignee, None);
    // So the router's next decision lands.
    let mut history = bot_thread();
    history.extend([
        BotHandedOff {
            conversation_id: id(CONV),
            inbox_id: id(SUPPORT),
            bot_id: id(BOT),
            to: None,
        }
        .into(),
        unassigned(
            to_bot(BOT),
            AssignmentReason::BotHandoff { bot_id: id(BOT) },
        ),
    ]);
    given(history)
        .when(
            system(),
            C::ApplyRouting {
                routing: Routing::Assign {
                    assignee: to_user(AGENT),
                    decision: decision(),
                },
            },
        )
        .then(vec![assigned(
            to_user(AGENT),
            AssignmentReason::Rule(decision()),
        )]);
}

#[test]
fn only_a_conversation_with_a_bot_is_handed_off_by_that_bot() {
    given(chat_thread())
        .when(bot(BOT), C::HandOffFromBot { to: None })
        .then_rejected("NO_BOT", None);
    given(bot_thread())
        .when(bot(OTHER_BOT), C::HandOffFromBot { to: None })
        .then_forbidden();
    given(bot_thread())
        .when(system(), C::HandOffFromBot { to: None })
        .then_forbidden();
    given(bot_thread())
        .when(
            bot(BOT),
            C::HandOffFromBot {
                to: Some(to_bot(OTHER_BOT)),
            },
        )
        .then_invalid("to");
    given(bot_thread())
        .when(
            bot(BOT),
            C::HandOffFromBot {
                to: Some(to_user(OUTSIDER)),
            },
        )
        .then_rejected("ASSIGNEE_NO_ACCESS", Some("to"));
}

// Share

#[test]
fn the_owner_or_an_admin_shares_a_private_conversation() {
    given(private_thread())
        .when(user(AUDITOR), C::Reopen)
        .then_not_found("conversation");
    let shared = ConversationShared {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        by_user_id: id(AGENT),
    };
    let state = given(private_thread())
        .when(user(AGENT), C::Share)
        .then(vec![shared.into()]);
    assert_eq!(state.private_owner, None);
    given(private_thread())
        .when(user(ADMIN), C::Share)
        .then(vec![
            ConversationShared {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                by_user_id: id(ADMIN),
            }
            .into(),
        ]);
    // Once shared, the inbox (and its auditors) see it.
    given(private_thread())
        .and([ConversationShared {
            conversation_id: id(CONV),
            inbox_id: id(SUPPORT),
            by_user_id: id(AGENT),
        }
        .into()])
        .when(user(AUDITOR), C::Reopen)
        .then_forbidden();
}

#[test]
fn only_private_conversations_are_shared() {
    given(email_thread())
        .when(user(AGENT), C::Share)
        .then_rejected("NOT_PRIVATE", None);
    given(private_thread())
        .when(user(OUTSIDER), C::Share)
        .then_not_found("conversation");
    given(private_thread())
        .when(system(), C::Share)
        .then_forbidden();
}

// Access on every command

fn every_command() -> Vec<C> {
    vec![
        receive(email_in(201)),
        C::RestoreFilteredMessage {
            message_id: id(FIRST),
        },
        reply(REPLY, "Hello"),
        delivered("x"),
        comment("hi", vec![]),
        C::Assign { to: to_user(AGENT) },
        C::Unassign,
        C::ApplyRouting {
            routing: Routing::Queue {
                decision: decision(),
            },
        },
        C::Close,
        C::Reopen,
        C::HandOffFromBot { to: None },
        C::Share,
        erase(),
    ]
}

fn erase() -> C {
    C::Erase {
        contact_id: None,
        reason: "closed more than 30 days ago".into(),
    }
}

// Erase

#[test]
fn admins_and_the_retention_rules_erase_conversations_which_then_refuse_everything() {
    let erased = |contact_id: Option<u128>| ConversationErased {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        contact_id: contact_id.map(id),
        reason: "closed more than 30 days ago".into(),
    };
    let state = given(email_thread())
        .when(system(), erase())
        .then(vec![erased(None).into()]);
    assert!(state.erased);
    given(private_thread())
        .when(
            user(ADMIN),
            C::Erase {
                contact_id: Some(id(77)),
                reason: " closed more than 30 days ago ".into(),
            },
        )
        .then(vec![erased(Some(77)).into()]);
    given(email_thread())
        .when(user(AGENT), erase())
        .then_forbidden();
    given(email_thread())
        .when(bot(BOT), erase())
        .then_forbidden();
    given(email_thread())
        .when(
            system(),
            C::Erase {
                contact_id: None,
                reason: "\n".into(),
            },
        )
        .then_invalid("reason");

    // Afterwards every command is refused, whoever sends it, new mail included.
    for command in every_command() {
        given(email_thread())
            .and([erased(None).into()])
            .when(user(ADMIN), command.clone())
            .then_rejected("ERASED", None);
        given(email_thread())
            .and([erased(None).into()])
            .when(system(), command)
            .then_rejected("ERASED", None);
    }
}

#[test]
fn users_who_cannot_see_a_conversation_learn_nothing_about_it() {
    for command in every_command() {
        let expected = if matches!(command, C::ReceiveMessage { .. }) {
            // Users never inject messages, seen or not.
            Err(DomainError::Forbidden {
                reason: String::new(),
            })
        } else {
            Err(DomainError::NotFound {
                what: "conversation",
            })
        };
        let outcome = given(email_thread()).when(user(OUTSIDER), command.clone());
        assert_same_kind(&outcome.result, &expected, &command);
        let outcome = given(private_thread()).when(user(OUTSIDER), command.clone());
        assert_same_kind(&outcome.result, &expected, &command);
        let outcome = given(email_thread()).when(user(404), command.clone());
        assert_same_kind(&outcome.result, &expected, &command);
        if !matches!(command, C::ReceiveMessage { .. }) {
            // Erased, it is not found for them either (not ERASED).
            let outcome = given(email_thread())
                .and([ConversationErased {
                    conversation_id: id(CONV),
                    inbox_id: id(SUPPORT),
                    contact_id: None,
                    reason: "retention".into(),
                }
                .into()])
                .when(user(OUTSIDER), command.clone());
            assert_same_kind(&outcome.result, &expected, &command);
        }
    }
}

#[test]
fn auditors_who_see_a_conversation_change_nothing() {
    for command in every_command() {
        let outcome = given(email_thread()).when(user(AUDITOR), command.clone());
        assert!(
            matches!(outcome.result, Err(DomainError::Forbidden { .. })),
            "{command:?} by an auditor: {:?}",
            outcome.result
        );
    }
    // Nor does an agent demoted to analyst.
    let demoted = UserRoleChanged {
        user_id: id(AGENT),
        role: Role::Analyst,
    };
    given(email_thread())
        .with_organisation([demoted.into()])
        .when(user(AGENT), C::Close)
        .then_forbidden();
}

#[test]
fn commands_on_a_conversation_that_never_started_are_not_found() {
    for command in every_command() {
        if matches!(command, C::ReceiveMessage { .. }) {
            continue; // The one command that creates it.
        }
        given(vec![])
            .when(user(ADMIN), command.clone())
            .then_not_found("conversation");
    }
}

/// Compares errors by variant (and `what`), since reasons are prose.
fn assert_same_kind(
    actual: &Result<Vec<DomainEvent>, DomainError>,
    expected: &Result<Vec<DomainEvent>, DomainError>,
    command: &C,
) {
    let same = match (actual, expected) {
        (Err(DomainError::Forbidden { .. }), Err(DomainError::Forbidden { .. })) => true,
        (a, e) => a == e,
    };
    assert!(same, "{command:?}: expected {expected:?}, got {actual:?}");
}

// Threading helpers

#[test]
fn reply_subjects_do_not_stack_re() {
    assert_eq!(conversation::reply_subject("Invoice"), "Re: Invoice");
    assert_eq!(conversation::reply_subject("RE: Invoice"), "RE: Invoice");
    assert_eq!(conversation::reply_subject("re:Invoice"), "re:Invoice");
    assert_eq!(conversation::reply_subject("Résumé"), "Re: Résumé");
}

#[test]
fn minted_message_ids_use_the_sending_domain() {
    assert_eq!(
        conversation::message_id_for(id(REPLY), Some("Support@ACME.test")),
        format!("{}@acme.test", id(REPLY))
    );
    assert_eq!(
        conversation::message_id_for(id(REPLY), None),
        format!("{}@switchboard.invalid", id(REPLY))
    );
}

// Deactivated users

fn deactivated(n: u128) -> DomainEvent {
    UserDeactivated {
        user_id: id(n),
        by: user(ADMIN),
        at: now(),
    }
    .into()
}

#[test]
fn a_deactivated_user_cannot_be_given_a_conversation() {
    given(email_thread())
        .with_organisation([deactivated(AGENT)])
        .when(user(ADMIN), C::Assign { to: to_user(AGENT) })
        .then_rejected("ASSIGNEE_DEACTIVATED", Some("to"));
    given(bot_thread())
        .with_organisation([deactivated(AGENT)])
        .when(
            bot(BOT),
            C::HandOffFromBot {
                to: Some(to_user(AGENT)),
            },
        )
        .then_rejected("ASSIGNEE_DEACTIVATED", Some("to"));
}

#[test]
fn the_system_releases_a_deactivated_assignees_open_conversation() {
    let release = || C::ReleaseFromDeactivated { user_id: id(AGENT) };
    let state = given(email_thread())
        .and([assigned(to_user(AGENT), manual(AGENT))])
        .with_organisation([deactivated(AGENT)])
        .when(system(), release())
        .then(vec![unassigned(
            to_user(AGENT),
            AssignmentReason::AssigneeDeactivated { user_id: id(AGENT) },
        )]);
    assert_eq!(state.assignee, None);
    // Only the system does it.
    given(email_thread())
        .and([assigned(to_user(AGENT), manual(AGENT))])
        .with_organisation([deactivated(AGENT)])
        .when(user(ADMIN), release())
        .then_forbidden();
    // Overtaken: reassigned meanwhile, closed, or the user active again.
    given(email_thread())
        .and([
            assigned(to_user(AGENT), manual(AGENT)),
            reassigned(to_user(AGENT), to_user(ADMIN), manual(ADMIN)),
        ])
        .with_organisation([deactivated(AGENT)])
        .when(system(), release())
        .then_nothing();
    given(closed_thread())
        .and([assigned(to_user(AGENT), manual(AGENT))])
        .with_organisation([deactivated(AGENT)])
        .when(system(), release())
        .then_nothing();
    given(email_thread())
        .and([assigned(to_user(AGENT), manual(AGENT))])
        .when(system(), release())
        .then_nothing();
}

// --- Messenger's reply windows (issue 20) ---

const PAGE: u128 = 43;

/// The organisation with a Messenger page (with the human-agent tag or not), and a
/// conversation whose customer last wrote `ago` before [`now`].
fn messenger_conversation(
    human_agent_tag: bool,
    ago: chrono::TimeDelta,
) -> (Directory, Conversation) {
    let mut organisation = setup();
    organisation.push(
        ChannelConnected {
            channel_id: id(PAGE),
            inbox_id: id(SUPPORT),
            config: ChannelConfig::Messenger {
                page_id: "104729".into(),
                page_name: "Acme".into(),
            },
        }
        .into(),
    );
    organisation.push(
        MessengerPageSet {
            channel_id: id(PAGE),
            page_token_secret: Some(id(0x61)),
            human_agent_tag,
        }
        .into(),
    );
    let message = InboundMessage {
        channel_id: id(PAGE),
        channel_kind: ChannelKind::Messenger,
        provider_message_id: Some("m_1".into()),
        from: Identity::Messenger {
            psid: "psid-ada".into(),
        },
        subject: None,
        email: None,
        ..email_in(FIRST)
    };
    let mut state = Conversation::default();
    let at = now() - ago;
    state.evolve_at(&started(&message, ConversationVisibility::Shared), at);
    state.evolve_at(&received(message), at);
    (directory(&organisation), state)
}

fn messenger_reply(
    human_agent_tag: bool,
    ago: chrono::TimeDelta,
) -> Result<Vec<DomainEvent>, DomainError> {
    let (directory, state) = messenger_conversation(human_agent_tag, ago);
    let actor = user(AGENT);
    let ctx = Context {
        directory: &directory,
        actor: &actor,
        now: now(),
    };
    conversation::decide(&state, &reply(REPLY, "Here you are"), &ctx)
}

#[test]
fn a_messenger_reply_is_refused_outside_the_24_hour_window_unless_the_page_has_the_tag() {
    let day = chrono::TimeDelta::hours(24);
    let minute = chrono::TimeDelta::minutes(1);
    assert!(
        messenger_reply(false, day).is_ok(),
        "24 hours is still inside"
    );
    let refused = messenger_reply(false, day + minute);
    match refused {
        Err(DomainError::Rejected { code, field, .. }) => {
            assert_eq!(code, "OUTSIDE_MESSAGING_WINDOW");
            assert_eq!(field, Some("conversationId"));
        }
        other => panic!("expected the window's refusal, got {other:?}"),
    }
    // With the human-agent tag: up to 7 days.
    assert!(messenger_reply(true, chrono::TimeDelta::days(3)).is_ok());
    assert!(matches!(
        messenger_reply(true, chrono::TimeDelta::days(7) + minute),
        Err(DomainError::Rejected { .. })
    ));
}

#[test]
fn a_receipt_is_recorded_by_the_pages_channel_once_per_newer_watermark() {
    let (directory, mut state) = messenger_conversation(false, chrono::TimeDelta::minutes(5));
    let decide = |state: &Conversation, actor: Actor, watermark: DateTime<Utc>| {
        let ctx = Context {
            directory: &directory,
            actor: &actor,
            now: now(),
        };
        let command = C::RecordReceipt {
            kind: ReceiptKind::Read,
            watermark,
            mids: Vec::new(),
        };
        conversation::decide(state, &command, &ctx)
    };
    let events = decide(&state, channel(PAGE), now()).expect("recorded");
    assert_eq!(
        events,
        vec![
            MessengerReceiptReceived {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                channel_id: id(PAGE),
                kind: ReceiptKind::Read,
                watermark: now(),
                mids: Vec::new(),
            }
            .into()
        ]
    );
    state.evolve(&events[0]);
    assert_eq!(decide(&state, channel(PAGE), now()), Ok(Vec::new()));
    assert!(matches!(
        decide(
            &state,
            channel(EMAIL),
            now() + chrono::TimeDelta::minutes(1)
        ),
        Err(DomainError::Forbidden { .. })
    ));
}

// --- end Messenger's reply windows ---

// --- Chat replies by e-mail (ADR 0006) ---

fn address_left(address: &str) -> DomainEvent {
    ChatVisitorEmailLeft {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        address: address.into(),
    }
    .into()
}

fn email_unseen(n: u128) -> C {
    C::EmailUnseenReply { message_id: id(n) }
}

#[test]
fn the_chat_channel_records_the_visitors_address_once() {
    let state = given(chat_thread())
        .when(
            channel(CHAT),
            C::RecordVisitorEmail {
                address: " Visitor@Prospect.TEST ".into(),
            },
        )
        .then(vec![address_left("visitor@prospect.test")]);
    assert_eq!(
        state.visitor_email.as_deref(),
        Some("visitor@prospect.test")
    );
    given(chat_thread())
        .and([address_left("visitor@prospect.test")])
        .when(
            channel(CHAT),
            C::RecordVisitorEmail {
                address: "visitor@prospect.test".into(),
            },
        )
        .then_nothing();
    // One strict validator: a bare addr-spec, nothing around it.
    for bad in [
        "not an address",
        "x<victim@y.com>",
        "Victim <victim@y.com>",
        "\"a b\"@y.com",
        "a..b@y.com",
        ".a@y.com",
        "a@y",
        "a@-y.com",
        "a@y..com",
        "a@b@y.com",
        "a(comment)@y.com",
    ] {
        given(chat_thread())
            .when(
                channel(CHAT),
                C::RecordVisitorEmail {
                    address: bad.into(),
                },
            )
            .then_invalid("email");
    }
    given(chat_thread())
        .when(
            channel(CHAT),
            C::RecordVisitorEmail {
                address: "o'brien+chat@mail.example.ie".into(),
            },
        )
        .then(vec![address_left("o'brien+chat@mail.example.ie")]);
    // Another channel, or anyone else, does not speak for the visitor.
    for actor in [channel(EMAIL), user(AGENT), system()] {
        given(chat_thread())
            .when(
                actor,
                C::RecordVisitorEmail {
                    address: "visitor@prospect.test".into(),
                },
            )
            .then_forbidden();
    }
    given(email_thread())
        .when(
            channel(EMAIL),
            C::RecordVisitorEmail {
                address: "visitor@prospect.test".into(),
            },
        )
        .then_rejected("NOT_CHAT", None);
}

#[test]
fn an_unseen_reply_goes_out_by_email_from_the_inbox_address_threaded() {
    let state = given(replied_thread())
        .and([address_left("visitor@prospect.test")])
        .when(system(), email_unseen(REPLY))
        .then(vec![
            ChatReplyEmailed {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                message_id: id(REPLY),
                email_channel_id: id(EMAIL),
                subject: "Your chat with Support".into(),
                email: EmailHeaders {
                    message_id: format!("{}@acme.test", id(REPLY)),
                    in_reply_to: None,
                    references: Vec::new(),
                    to: vec!["visitor@prospect.test".into()],
                    cc: Vec::new(),
                },
            }
            .into(),
        ]);
    // Once: asking again writes nothing, and the next e-mail references this one.
    assert!(state.unseen_replies.is_empty());
    assert_eq!(
        state.thread.references,
        vec![format!("{}@acme.test", id(REPLY))]
    );
}

#[test]
fn a_seen_reply_is_not_emailed_and_an_emailed_one_is_not_recorded_seen() {
    let seen = C::RecordRepliesSeen {
        message_ids: vec![id(REPLY), id(FIRST)],
    };
    // Only our unseen replies are recorded: the visitor's own message is left out.
    let seen_event: DomainEvent = ChatRepliesSeen {
        conversation_id: id(CONV),
        inbox_id: id(SUPPORT),
        message_ids: vec![id(REPLY)],
    }
    .into();
    given(replied_thread())
        .when(channel(CHAT), seen.clone())
        .then(vec![seen_event.clone()]);
    given(replied_thread())
        .and([address_left("visitor@prospect.test"), seen_event])
        .when(system(), email_unseen(REPLY))
        .then_nothing();
    let emailed = given(replied_thread())
        .and([address_left("visitor@prospect.test")])
        .when(system(), email_unseen(REPLY))
        .result
        .expect("e-mailed");
    given(replied_thread())
        .and(emailed.clone())
        .when(channel(CHAT), seen)
        .then_nothing();
    given(replied_thread())
        .and(emailed)
        .when(system(), email_unseen(REPLY))
        .then_nothing();
}

#[test]
fn an_unseen_reply_needs_an_address_and_the_delivery_worker() {
    given(replied_thread())
        .when(system(), email_unseen(REPLY))
        .then_rejected("NO_RECIPIENT", None);
    given(replied_thread())
        .and([address_left("visitor@prospect.test")])
        .when(system(), email_unseen(COMMENT))
        .then_not_found("message");
    given(replied_thread())
        .and([address_left("visitor@prospect.test")])
        .when(user(AGENT), email_unseen(REPLY))
        .then_forbidden();
    given(replied_thread())
        .and([address_left("visitor@prospect.test")])
        .with_organisation([disconnected(EMAIL)])
        .when(system(), email_unseen(REPLY))
        .then_rejected("NO_SENDER_ADDRESS", None);
}

// --- end chat replies by e-mail ---

#[test]
fn only_users_chat_replies_are_tracked_unseen_and_e_mailed() {
    // A bot answers while the visitor is there: its reply is never e-mailed, nor recorded seen.
    let mut events = chat_thread();
    events.push(reply_sent(REPLY, ReplyAuthor::Bot { id: id(BOT) }));
    given(events.clone())
        .and([address_left("visitor@prospect.test")])
        .when(system(), email_unseen(REPLY))
        .then_nothing();
    given(events)
        .when(
            channel(CHAT),
            C::RecordRepliesSeen {
                message_ids: vec![id(REPLY)],
            },
        )
        .then_nothing();
}

/// E-mail `n` from `address`, recognised as `contact`.
fn mail_from(n: u128, address: &str, contact: Option<Uuid>) -> InboundMessage {
    InboundMessage {
        message_id: id(n),
        from: Identity::Email {
            address: address.into(),
        },
        contact_id: contact,
        ..email_in(n)
    }
}

/// Zelda, a contact, copied on someone else's thread.
fn zelda_copied() -> InboundMessage {
    mail_from(
        FIRST + 1,
        "zelda@quibble.example",
        Some(Uuid::from_u128(0x2e1da)),
    )
}

/// A conversation's contact is its first sender's: a recognised contact writing in a thread
/// whose first sender was not recognised (copied on it) does not make it theirs, the first
/// sender recognised later does.
#[test]
fn only_the_first_senders_contact_becomes_the_conversations() {
    let otto = mail_from(FIRST, "Otto@Example.org", None);
    let mut state = Conversation::default();
    state.evolve(&started(&otto, ConversationVisibility::Shared));
    state.evolve(&received(otto));
    state.evolve(&received(zelda_copied()));
    assert_eq!(
        state.contact_id, None,
        "Zelda's reply does not make it hers"
    );
    let later = mail_from(FIRST + 2, "otto@example.org", Some(Uuid::from_u128(0x0770)));
    state.evolve(&received(later));
    assert_eq!(state.contact_id, Some(Uuid::from_u128(0x0770)));
}

/// Filtered mail from Otto first; then Zelda's mail starts the conversation (a contact's mail
/// passes the filters): it is still Otto's, not Zelda's; and once Zelda is erased (her message
/// reads blank) replies still go to Otto.
#[test]
fn a_conversation_started_after_someone_elses_filtered_mail_stays_theirs() {
    let zelda = zelda_copied();
    let mut state = Conversation::default();
    state.evolve(&filtered(mail_from(FIRST, "otto@example.org", None)));
    state.evolve(&started(&zelda, ConversationVisibility::Shared));
    state.evolve(&received(zelda.clone()));
    assert_eq!(state.contact_id, None, "Zelda's mail does not make it hers");
    assert_eq!(state.customer, Some(zelda.from.clone()));
    let blank = InboundMessage {
        message_id: id(FIRST + 2),
        from: Identity::Email {
            address: String::new(),
        },
        email: None,
        ..zelda
    };
    let customer = state.customer.clone();
    state.evolve(&received(blank));
    assert_eq!(
        state.customer, customer,
        "a blank sender is nobody to reply to"
    );
}
