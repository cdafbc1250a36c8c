//! The bot reactor against the embedded store, beside the routing reactor that gives it
//! conversations: greeting, questions into the contact, keyword answers, the three handoffs,
//! silence afterwards and elsewhere, and never acting twice across restarts or beside a second
//! reactor.

use std::sync::Arc;
use std::time::Duration;

use proto_events::event::{
    Assignee, BotAnswer, BotCollects, BotHandoffPolicy, BotQuestion, ChannelKind, Identity, Member,
    ReplyAuthor, Role, RoutingStrategy, RuleScope,
};
use proto_events::{Actor, DomainEvent};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::chatbot::ChatBotSettings;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::Command;
use switchboard_service::bot::BotReactor;
use switchboard_service::reactor::RoutingReactor;
use switchboard_store::{Direction, EventStore, Position, StreamFrom};
use tokio::sync::watch;
use uuid::Uuid;

use crate::support::*;

const INBOX: Uuid = Uuid::from_u128(30);
const CHAT: Uuid = Uuid::from_u128(40);
const MESSENGER: Uuid = Uuid::from_u128(41);
const BOT: Uuid = Uuid::from_u128(60);
const AGENT: Uuid = Uuid::from_u128(101);

fn settings() -> ChatBotSettings {
    ChatBotSettings {
        bot_id: BOT,
        enabled: true,
        greeting: "Hi, I am the Acme bot.".into(),
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
            reply: "Plans start at 10 EUR.".into(),
        }],
        handoff: BotHandoffPolicy {
            phrases: vec!["human".into(), "agent".into()],
            on_no_match: false,
            timeout_seconds: Some(60),
            message: Some("A person will take over.".into()),
        },
    }
}

/// An inbox with one available agent, a chat channel and a Messenger page whose bot-first
/// rules give new conversations to the bot, the agent after a handoff; the chat's bot
/// configured with `settings`.
async fn bot_inbox(app: &App, settings: ChatBotSettings) {
    let mut commands = vec![
        Command::Setup(SetupCommand::CreateInbox {
            inbox_id: INBOX,
            name: "Support".into(),
        }),
        Command::Setup(SetupCommand::CreateUser {
            user_id: AGENT,
            email: "agent@acme.test".into(),
            name: "Agent".into(),
            role: Role::Agent,
        }),
        Command::Setup(SetupCommand::AddInboxMember {
            inbox_id: INBOX,
            member: Member::User { id: AGENT },
        }),
        Command::Setup(SetupCommand::SetAvailability {
            user_id: AGENT,
            availability: proto_events::event::Availability::Available,
        }),
        Command::Setup(SetupCommand::CreateBot {
            bot_id: BOT,
            name: "Acme bot".into(),
        }),
        Command::Channel(ChannelCommand::ConnectChat {
            channel_id: CHAT,
            inbox_id: INBOX,
            name: "Website".into(),
        }),
        Command::Channel(ChannelCommand::ConnectMessenger {
            channel_id: MESSENGER,
            inbox_id: INBOX,
            page_id: "1234".into(),
            page_name: "Acme".into(),
        }),
    ];
    for channel in [CHAT, MESSENGER] {
        commands.push(Command::Channel(ChannelCommand::SetRoutingRule {
            rule_id: Uuid::now_v7(),
            scope: RuleScope::Channel { id: channel },
            strategy: RoutingStrategy::BotFirst,
            targets: vec![Member::User { id: AGENT }],
            bot_id: Some(BOT),
        }));
    }
    for command in commands {
        run(app, admin(), command).await;
    }
    configure(app, settings).await;
}

/// Configures the chat's bot with `settings`.
async fn configure(app: &App, settings: ChatBotSettings) {
    let command = ChannelCommand::ConfigureChatBot {
        channel_id: CHAT,
        settings,
    };
    run(app, admin(), Command::Channel(command)).await;
}

/// The routing and bot reactors, running.
struct Reactors {
    routing: RoutingReactor,
    bot: BotReactor,
}

async fn reactors(app: &App) -> Reactors {
    Reactors {
        routing: RoutingReactor::spawn(Arc::new(app_service(app).await)),
        bot: BotReactor::spawn(Arc::new(app_service(app).await)),
    }
}

/// Waits until `processed` has reached `head`.
async fn reached(processed: &mut watch::Receiver<Position>, head: Position) {
    tokio::time::timeout(Duration::from_secs(30), processed.wait_for(|p| *p >= head))
        .await
        .expect("a reactor did not catch up in time")
        .unwrap();
}

/// Waits until both reactors have processed everything and nothing more is written.
async fn settle(app: &App, r: &mut Reactors) {
    loop {
        let head = app.store.head().await.unwrap();
        reached(&mut r.routing.processed, head).await;
        reached(&mut r.bot.processed, head).await;
        if app.store.head().await.unwrap() == head {
            return;
        }
    }
}

/// A visitor writes `text` on `channel`; returns the conversation.
async fn visitor_writes(
    app: &App,
    r: &mut Reactors,
    channel: Uuid,
    visitor: &str,
    text: &str,
) -> Uuid {
    let command = if channel == CHAT {
        chat(CHAT, visitor, text)
    } else {
        let psid = Identity::Messenger {
            psid: visitor.into(),
        };
        inbound(channel, ChannelKind::Messenger, psid, text)
    };
    let outcome = run(app, Actor::Channel { id: channel }, command).await;
    settle(app, r).await;
    conversation_of(&outcome)
}

/// What the bot said in `conversation`, in order.
async fn bot_said(app: &App, conversation: Uuid) -> Vec<String> {
    history(app)
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            DomainEvent::ReplySent(r)
                if r.conversation_id == conversation
                    && r.author == (ReplyAuthor::Bot { id: BOT }) =>
            {
                assert_eq!(e.metadata.actor, Actor::Bot { id: BOT });
                Some(r.body_text)
            }
            _ => None,
        })
        .collect()
}

/// The handoffs of `conversation`.
async fn handoffs(app: &App, conversation: Uuid) -> usize {
    history(app)
        .await
        .iter()
        .filter(|e| matches!(&e.payload, DomainEvent::BotHandedOff(h) if h.conversation_id == conversation))
        .count()
}

/// Who `conversation` is assigned to now.
async fn assignee(app: &App, conversation: Uuid) -> Option<Assignee> {
    let mut assignee = None;
    for e in history(app).await {
        match e.payload {
            DomainEvent::ConversationAssigned(a) if a.conversation_id == conversation => {
                assignee = Some(a.assignee)
            }
            DomainEvent::ConversationReassigned(a) if a.conversation_id == conversation => {
                assignee = Some(a.to)
            }
            DomainEvent::ConversationUnassigned(a) if a.conversation_id == conversation => {
                assignee = None
            }
            _ => {}
        }
    }
    assignee
}

fn visitor(id: &str) -> Identity {
    Identity::ChatVisitor {
        visitor_id: id.into(),
    }
}

fn email(address: &str) -> Identity {
    Identity::Email {
        address: address.into(),
    }
}

const GREETING: &str = "Hi, I am the Acme bot.";
const NAME: &str = "What is your name?";
const EMAIL: &str = "What is your e-mail address?";
const PRICE: &str = "Plans start at 10 EUR.";
const HANDOFF: &str = "A person will take over.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_greets_collects_name_and_email_into_the_contact_and_answers_keywords() {
    let app = app().await;
    bot_inbox(&app, settings()).await;
    let mut r = reactors(&app).await;

    let c = visitor_writes(&app, &mut r, CHAT, "v1", "Hello, how much is it?").await;
    assert_eq!(assignee(&app, c).await, Some(Assignee::Bot { id: BOT }));
    assert_eq!(bot_said(&app, c).await, [GREETING, PRICE, NAME]);

    visitor_writes(&app, &mut r, CHAT, "v1", "  Ada Lovelace ").await;
    assert_eq!(bot_said(&app, c).await, [GREETING, PRICE, NAME, EMAIL]);
    let contact = app
        .service
        .contact_holding(&visitor("v1"))
        .await
        .unwrap()
        .expect("the bot made the visitor a contact");
    let named = history(&app).await.into_iter().any(|e| match e.payload {
        DomainEvent::ContactRecordCreated(c) => {
            c.contact_id == contact
                && c.properties.get("name").map(String::as_str) == Some("Ada Lovelace")
        }
        _ => false,
    });
    assert!(named, "the contact is named after the answer");

    // A malformed address is asked again; a good one becomes the contact's identity.
    visitor_writes(&app, &mut r, CHAT, "v1", "ada at example").await;
    assert_eq!(
        bot_said(&app, c).await,
        [GREETING, PRICE, NAME, EMAIL, EMAIL]
    );
    visitor_writes(&app, &mut r, CHAT, "v1", "ada@example.com").await;
    assert_eq!(
        app.service
            .contact_holding(&email("ada@example.com"))
            .await
            .unwrap(),
        Some(contact)
    );
    assert_eq!(
        bot_said(&app, c).await.len(),
        5,
        "nothing to say after the last answer"
    );

    visitor_writes(&app, &mut r, CHAT, "v1", "And the PRICE for two?").await;
    assert_eq!(
        bot_said(&app, c).await.last().map(String::as_str),
        Some(PRICE)
    );
    assert_eq!(handoffs(&app, c).await, 0);
    assert_eq!(assignee(&app, c).await, Some(Assignee::Bot { id: BOT }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_of_a_known_contact_is_only_a_claim_and_changes_nothing_of_theirs() {
    let app = app().await;
    bot_inbox(&app, settings()).await;
    let known = Uuid::from_u128(0xc0);
    run(
        &app,
        admin(),
        Command::CreateContact {
            contact_id: known,
            identities: vec![email("grace@example.com")],
            properties: Default::default(),
            from_conversation: None,
        },
    )
    .await;
    let known_stream = proto_events::streams::contact(known);
    let before = app.store.stream_version(&known_stream).await.unwrap();
    let mut r = reactors(&app).await;
    // With a name first, then the address: the bot's contact for the visitor keeps the claim.
    visitor_writes(&app, &mut r, CHAT, "v2", "hello").await;
    visitor_writes(&app, &mut r, CHAT, "v2", "Mallory").await;
    visitor_writes(&app, &mut r, CHAT, "v2", "Grace@Example.com").await;
    // Without a name: a contact for the visitor is made with the claim.
    let mut no_name = settings();
    no_name.questions.remove(0);
    configure(&app, no_name).await;
    visitor_writes(&app, &mut r, CHAT, "v3", "hello").await;
    visitor_writes(&app, &mut r, CHAT, "v3", "grace@example.com").await;
    for v in ["v2", "v3"] {
        let holder = app.service.contact_holding(&visitor(v)).await.unwrap();
        assert!(
            holder.is_some_and(|c| c != known),
            "{v} is not recognised as the known contact: {holder:?}"
        );
        let stream = proto_events::streams::contact(holder.unwrap());
        let claims = app
            .store
            .read_stream(&stream, Direction::Forwards, StreamFrom::Start, 100)
            .await
            .unwrap()
            .iter()
            .filter(|e| String::from_utf8_lossy(&e.payload).contains("\"claimed_email\""))
            .count();
        assert_eq!(claims, 1, "{v}'s contact keeps the address as a claim");
    }
    assert_eq!(
        app.service
            .contact_holding(&email("grace@example.com"))
            .await
            .unwrap(),
        Some(known)
    );
    assert_eq!(
        app.store.stream_version(&known_stream).await.unwrap(),
        before,
        "nothing was written to the known contact: not renamed, not linked, not merged into"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_a_human_hands_off_to_routing_and_the_bot_is_silent_afterwards() {
    let app = app().await;
    bot_inbox(&app, settings()).await;
    let mut r = reactors(&app).await;
    let c = visitor_writes(&app, &mut r, CHAT, "v1", "hello").await;
    visitor_writes(&app, &mut r, CHAT, "v1", "Can I talk to a real HUMAN?").await;
    assert_eq!(bot_said(&app, c).await, [GREETING, NAME, HANDOFF]);
    assert_eq!(handoffs(&app, c).await, 1);
    assert_eq!(assignee(&app, c).await, Some(Assignee::User { id: AGENT }));

    visitor_writes(&app, &mut r, CHAT, "v1", "how much? human?").await;
    assert_eq!(bot_said(&app, c).await.len(), 3, "silent after the handoff");
    assert_eq!(handoffs(&app, c).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_an_answer_hands_off_when_configured() {
    let app = app().await;
    let mut s = settings();
    s.questions.clear();
    s.handoff.on_no_match = true;
    s.handoff.timeout_seconds = None;
    bot_inbox(&app, s).await;
    let mut r = reactors(&app).await;
    let c = visitor_writes(&app, &mut r, CHAT, "v1", "hello").await;
    visitor_writes(&app, &mut r, CHAT, "v1", "price?").await;
    assert_eq!(handoffs(&app, c).await, 0);
    visitor_writes(&app, &mut r, CHAT, "v1", "my parcel is late").await;
    assert_eq!(bot_said(&app, c).await, [GREETING, PRICE, HANDOFF]);
    assert_eq!(handoffs(&app, c).await, 1);
    assert_eq!(assignee(&app, c).await, Some(Assignee::User { id: AGENT }));
}

/// Waits, up to 30 s, until `conversation` has been handed off.
async fn until_handed_off(app: &App, r: &mut Reactors, conversation: Uuid) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handoffs(app, conversation).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no handoff in time");
        // Wakes when the reactor folds something new (its own handoff), at the latest after
        // the bot's tick.
        let _ = tokio::time::timeout(Duration::from_millis(200), r.bot.processed.changed()).await;
    }
    settle(app, r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_message_hands_off_after_the_timeout_also_after_a_restart() {
    let app = app().await;
    let mut s = settings();
    s.questions.clear();
    bot_inbox(&app, s).await;
    let mut r = reactors(&app).await;
    let c = visitor_writes(&app, &mut r, CHAT, "v1", "hello").await;
    visitor_writes(&app, &mut r, CHAT, "v1", "tell me a joke").await;
    assert_eq!(bot_said(&app, c).await, [GREETING]);

    // 59 s later nothing has happened yet (two of the bot's ticks pass meanwhile).
    app.clock.advance(chrono::Duration::seconds(59));
    let head = app.store.head().await.unwrap();
    tokio::time::sleep(TWO_TICKS).await;
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "not before the timeout"
    );

    // The reactor stops; the deadline passes; a new one knows it from the log.
    r.bot.task.abort();
    app.clock.advance(chrono::Duration::seconds(2));
    r.bot = BotReactor::spawn(Arc::new(app_service(&app).await));
    until_handed_off(&app, &mut r, c).await;
    assert_eq!(bot_said(&app, c).await, [GREETING, HANDOFF]);
    assert_eq!(assignee(&app, c).await, Some(Assignee::User { id: AGENT }));

    // An answered message stops the clock.
    let c2 = visitor_writes(&app, &mut r, CHAT, "v2", "hello").await;
    visitor_writes(&app, &mut r, CHAT, "v2", "a joke?").await;
    visitor_writes(&app, &mut r, CHAT, "v2", "ok, the price then").await;
    app.clock.advance(chrono::Duration::seconds(120));
    let head = app.store.head().await.unwrap();
    tokio::time::sleep(TWO_TICKS).await;
    assert_eq!(app.store.head().await.unwrap(), head);
    assert_eq!(handoffs(&app, c2).await, 0);
}

/// Long enough for the bot reactor to look at its deadlines twice.
pub(crate) const TWO_TICKS: Duration = Duration::from_millis(2_200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_and_second_reactors_send_nothing_twice() {
    let app = app().await;
    bot_inbox(&app, settings()).await;
    let mut r = reactors(&app).await;
    // A second bot reactor beside the first, over the same log.
    let mut second = BotReactor::spawn(Arc::new(app_service(&app).await));
    let c = visitor_writes(&app, &mut r, CHAT, "v1", "hello").await;
    visitor_writes(&app, &mut r, CHAT, "v1", "Ada").await;
    visitor_writes(&app, &mut r, CHAT, "v1", "ada@example.com").await;
    visitor_writes(&app, &mut r, CHAT, "v1", "price").await;
    visitor_writes(&app, &mut r, CHAT, "v1", "agent please").await;
    let head = app.store.head().await.unwrap();
    reached(&mut second.processed, head).await;
    settle(&app, &mut r).await;
    assert_eq!(
        bot_said(&app, c).await,
        [GREETING, NAME, EMAIL, PRICE, HANDOFF]
    );
    assert_eq!(handoffs(&app, c).await, 1);
    let contacts = history(&app)
        .await
        .iter()
        .filter(|e| matches!(e.payload, DomainEvent::ContactRecordCreated(_)))
        .count();
    assert_eq!(contacts, 1);

    // A restart folds the log and writes nothing.
    second.task.abort();
    r.bot.task.abort();
    let head = app.store.head().await.unwrap();
    r.bot = BotReactor::spawn(Arc::new(app_service(&app).await));
    settle(&app, &mut r).await;
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "a restarted bot acted twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_is_silent_on_other_channels_and_when_disabled() {
    let app = app().await;
    let mut s = settings();
    s.enabled = false;
    bot_inbox(&app, s).await;
    let mut r = reactors(&app).await;
    // Messenger: bot-first routing gives the bot the conversation, but no chat bot speaks there.
    let m = visitor_writes(&app, &mut r, MESSENGER, "psid-1", "hello, human?").await;
    assert_eq!(assignee(&app, m).await, Some(Assignee::Bot { id: BOT }));
    let c = visitor_writes(&app, &mut r, CHAT, "v1", "hello, human?").await;
    assert_eq!(assignee(&app, c).await, Some(Assignee::Bot { id: BOT }));
    assert!(bot_said(&app, m).await.is_empty());
    assert!(bot_said(&app, c).await.is_empty());
    assert_eq!(handoffs(&app, m).await + handoffs(&app, c).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_bot_hands_off_what_it_holds_silently() {
    let app = app().await;
    bot_inbox(&app, settings()).await;
    let mut r = reactors(&app).await;
    let c = visitor_writes(&app, &mut r, CHAT, "v1", "hello").await;
    assert_eq!(bot_said(&app, c).await, [GREETING, NAME]);
    let mut off = settings();
    off.enabled = false;
    configure(&app, off).await;
    settle(&app, &mut r).await;
    assert_eq!(handoffs(&app, c).await, 1);
    assert_eq!(bot_said(&app, c).await, [GREETING, NAME]);
    assert_eq!(assignee(&app, c).await, Some(Assignee::User { id: AGENT }));
}
