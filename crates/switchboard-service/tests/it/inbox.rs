//! Inbound messages through the service: conversations found or started, threading, contacts
//! recognised, filters, reopening, access.

use proto_events::event::{
    ChannelKind, EmailAccess, EmailHeaders, Identity, InboundMessage, Member, Role,
};
use proto_events::{Actor, DomainEvent};
use switchboard_domain::DomainError;
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_domain::filter::MailSignals;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::{Command, CommandMeta, ServiceError};
use switchboard_store::EventStore;
use uuid::Uuid;

use crate::support::*;

const INBOX: Uuid = Uuid::from_u128(30);
const CHAT: Uuid = Uuid::from_u128(40);
const MAIL: Uuid = Uuid::from_u128(41);
const AGENT: Uuid = Uuid::from_u128(12);
const OUTSIDER: Uuid = Uuid::from_u128(13);

async fn inbox() -> App {
    let app = app().await;
    for command in [
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
        Command::Setup(SetupCommand::CreateUser {
            user_id: OUTSIDER,
            email: "out@acme.test".into(),
            name: "Out".into(),
            role: Role::Agent,
        }),
        Command::Setup(SetupCommand::AddInboxMember {
            inbox_id: INBOX,
            member: Member::User { id: AGENT },
        }),
        Command::Channel(ChannelCommand::ConnectChat {
            channel_id: CHAT,
            inbox_id: INBOX,
            name: "Website".into(),
        }),
        Command::Channel(ChannelCommand::ConnectEmail {
            channel_id: MAIL,
            inbox_id: INBOX,
            address: "support@acme.test".into(),
            access: EmailAccess::Shared,
        }),
    ] {
        run(&app, admin(), command).await;
    }
    app
}

fn mail(message_id: &str, in_reply_to: Option<&str>, from: &str) -> InboundMessage {
    InboundMessage {
        message_id: Uuid::now_v7(),
        channel_id: MAIL,
        channel_kind: ChannelKind::Email,
        provider_message_id: None,
        from: Identity::Email {
            address: from.into(),
        },
        from_name: None,
        contact_id: None,
        subject: Some("Pricing".into()),
        body_text: "How much?".into(),
        body_html: None,
        email: Some(EmailHeaders {
            message_id: message_id.into(),
            in_reply_to: in_reply_to.map(Into::into),
            references: in_reply_to.into_iter().map(Into::into).collect(),
            to: vec!["support@acme.test".into()],
            cc: vec![],
        }),
        form_fields: vec![],
        attachments: Vec::new(),
        raw: None,
    }
}

fn receive(message: InboundMessage, signals: Option<MailSignals>) -> Command {
    Command::ReceiveMessage {
        channel_id: message.channel_id,
        message: Box::new(message),
        signals,
    }
}

fn channel() -> Actor {
    Actor::Channel { id: MAIL }
}

#[tokio::test]
async fn an_email_reply_threads_into_its_conversation_and_reopens_it() {
    let app = inbox().await;
    let first = run(
        &app,
        channel(),
        receive(mail("a1@customer.test", None, "ada@customer.test"), None),
    )
    .await;
    let conversation = conversation_of(&first);
    // The agent replies; the customer answers the reply: same conversation.
    let reply = Uuid::now_v7();
    run(
        &app,
        Actor::User { id: AGENT },
        Command::Conversation {
            conversation_id: conversation,
            command: Box::new(ConversationCommand::SendReply {
                message_id: reply,
                body_text: "10 EUR".into(),
                body_html: None,
                subject: None,
                attachments: Vec::new(),
            }),
        },
    )
    .await;
    let our_message_id = history(&app).await.iter().find_map(|e| match &e.payload {
        DomainEvent::ReplySent(r) => r.email.as_ref().map(|h| h.message_id.clone()),
        _ => None,
    });
    let our_message_id = our_message_id.expect("the reply has a Message-ID");
    run(
        &app,
        Actor::User { id: AGENT },
        Command::Conversation {
            conversation_id: conversation,
            command: Box::new(ConversationCommand::Close),
        },
    )
    .await;
    let answer = run(
        &app,
        channel(),
        receive(
            mail(
                "a2@customer.test",
                Some(&our_message_id),
                "ada@customer.test",
            ),
            None,
        ),
    )
    .await;
    assert_eq!(
        conversation_of(&answer),
        conversation,
        "threaded by In-Reply-To"
    );
    let events = history(&app).await;
    let tail: Vec<&str> = events
        .iter()
        .rev()
        .take(2)
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        tail,
        vec!["MessageReceived", "ConversationReopened"],
        "a closed conversation reopens when the customer writes"
    );
    // A new e-mail without references starts another conversation.
    let other = run(
        &app,
        channel(),
        receive(mail("b1@customer.test", None, "ada@customer.test"), None),
    )
    .await;
    assert_ne!(conversation_of(&other), conversation);
}

#[tokio::test]
async fn the_same_message_delivered_twice_is_recorded_once() {
    let app = inbox().await;
    let message = mail("dup@customer.test", None, "bob@customer.test");
    let first = run(&app, channel(), receive(message.clone(), None)).await;
    let mut again = message;
    again.message_id = Uuid::now_v7();
    let second = run(&app, channel(), receive(again, None)).await;
    assert_eq!(second.stream, first.stream);
    assert_eq!(
        second.last_position,
        app.store.head().await.unwrap(),
        "nothing new written"
    );
    let received = history(&app)
        .await
        .iter()
        .filter(|e| e.event_type == "MessageReceived")
        .count();
    assert_eq!(received, 1);
}

#[tokio::test]
async fn chat_visitors_keep_their_conversation_and_known_contacts_are_recognised() {
    let app = inbox().await;
    let contact = Uuid::now_v7();
    run(
        &app,
        admin(),
        Command::CreateContact {
            contact_id: contact,
            identities: vec![Identity::ChatVisitor {
                visitor_id: "v-1".into(),
            }],
            properties: Default::default(),
            from_conversation: None,
        },
    )
    .await;
    let a = run(
        &app,
        Actor::Channel { id: CHAT },
        chat(CHAT, "v-1", "hello"),
    )
    .await;
    let b = run(
        &app,
        Actor::Channel { id: CHAT },
        chat(CHAT, "v-1", "anyone?"),
    )
    .await;
    let c = run(&app, Actor::Channel { id: CHAT }, chat(CHAT, "v-2", "hi")).await;
    assert_eq!(a.stream, b.stream);
    assert_ne!(a.stream, c.stream);
    let started: Vec<Option<Uuid>> = history(&app)
        .await
        .iter()
        .filter_map(|e| match &e.payload {
            DomainEvent::ConversationStarted(s) => Some(s.contact_id),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![Some(contact), None]);
}

#[tokio::test]
async fn filtered_mail_is_recorded_and_known_contacts_are_never_filtered() {
    let app = inbox().await;
    let signals = |from: &str| MailSignals {
        from: from.into(),
        auto_submitted: None,
        precedence: Some("bulk".into()),
        list_unsubscribe: true,
        list_id: true,
        x_autoreply: false,
        x_autorespond: false,
        x_auto_response_suppress: None,
        subject: Some("Newsletter".into()),
    };
    let news = run(
        &app,
        channel(),
        receive(
            mail("n1@news.test", None, "news@news.test"),
            Some(signals("news@news.test")),
        ),
    )
    .await;
    let events = history(&app).await;
    let last = events.last().unwrap();
    assert_eq!(
        last.event_type, "MessageFiltered",
        "bulk mail goes to the Filtered view, not lost"
    );
    assert_eq!(news.last_position.0, last.position);
    run(
        &app,
        admin(),
        Command::CreateContact {
            contact_id: Uuid::now_v7(),
            identities: vec![Identity::Email {
                address: "friend@news.test".into(),
            }],
            properties: Default::default(),
            from_conversation: None,
        },
    )
    .await;
    run(
        &app,
        channel(),
        receive(
            mail("n2@news.test", None, "friend@news.test"),
            Some(signals("friend@news.test")),
        ),
    )
    .await;
    assert_eq!(
        history(&app).await.last().unwrap().event_type,
        "MessageReceived"
    );
}

#[tokio::test]
async fn an_agent_outside_the_inbox_can_do_nothing_and_learns_nothing() {
    let app = inbox().await;
    let outcome = run(
        &app,
        Actor::Channel { id: CHAT },
        chat(CHAT, "v-9", "hello"),
    )
    .await;
    let conversation = conversation_of(&outcome);
    let head = app.store.head().await.unwrap();
    let comment = ConversationCommand::AddComment {
        comment_id: Uuid::now_v7(),
        body_text: "hi".into(),
        mentions: vec![],
    };
    let result = app
        .service
        .execute(
            CommandMeta::by(Actor::User { id: OUTSIDER }),
            Command::Conversation {
                conversation_id: conversation,
                command: Box::new(comment.clone()),
            },
        )
        .await;
    assert!(
        matches!(
            result,
            Err(ServiceError::Domain(DomainError::NotFound {
                what: "conversation"
            }))
        ),
        "{result:?}"
    );
    let missing = app
        .service
        .execute(
            CommandMeta::by(Actor::User { id: OUTSIDER }),
            Command::Conversation {
                conversation_id: Uuid::now_v7(),
                command: Box::new(comment.clone()),
            },
        )
        .await;
    assert!(
        matches!(
            missing,
            Err(ServiceError::Domain(DomainError::NotFound {
                what: "conversation"
            }))
        ),
        "same answer as for a conversation that does not exist"
    );
    assert_eq!(app.store.head().await.unwrap(), head);
    run(
        &app,
        Actor::User { id: AGENT },
        Command::Conversation {
            conversation_id: conversation,
            command: Box::new(comment),
        },
    )
    .await;
}

#[tokio::test]
async fn a_second_channel_on_a_connected_address_is_refused() {
    let app = inbox().await;
    let again = Command::Channel(ChannelCommand::ConnectEmail {
        channel_id: Uuid::now_v7(),
        inbox_id: INBOX,
        address: "Support@acme.test".into(),
        access: EmailAccess::Shared,
    });
    match app.service.execute(CommandMeta::by(admin()), again).await {
        Err(ServiceError::Domain(DomainError::Rejected { code: "TAKEN", .. })) => {}
        other => panic!("expected TAKEN, got {other:?}"),
    }
}

#[tokio::test]
async fn an_inbox_without_team_email_gets_a_fallback_address_and_keeps_it() {
    let app = app().await;
    let sales = Uuid::now_v7();
    run(
        &app,
        admin(),
        Command::Setup(SetupCommand::CreateInbox {
            inbox_id: sales,
            name: "Sales & Deals".into(),
        }),
    )
    .await;
    let fallback = |events: &[proto_events::Envelope]| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match &e.payload {
                DomainEvent::FallbackAddressAssigned(f) if f.inbox_id == sales => {
                    Some(f.address.clone())
                }
                _ => None,
            })
            .collect()
    };
    let addresses = fallback(&history(&app).await);
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    assert!(
        addresses[0].starts_with("sales-deals-")
            && addresses[0].ends_with("@inbox.switchboard.invalid"),
        "{}",
        addresses[0]
    );
    // Connecting and disconnecting team e-mail does not add a second fallback.
    let mail = Uuid::now_v7();
    run(
        &app,
        admin(),
        Command::Channel(ChannelCommand::ConnectEmail {
            channel_id: mail,
            inbox_id: sales,
            address: "sales@acme.test".into(),
            access: EmailAccess::Shared,
        }),
    )
    .await;
    run(
        &app,
        admin(),
        Command::Channel(ChannelCommand::Disconnect { channel_id: mail }),
    )
    .await;
    assert_eq!(fallback(&history(&app).await).len(), 1);
    // An inbox created with the same key twice (a retried mutation) gets one fallback too.
    let inbox = inbox().await;
    let support_fallbacks = history(&inbox)
        .await
        .iter()
        .filter(|e| matches!(&e.payload, DomainEvent::FallbackAddressAssigned(f) if f.inbox_id == INBOX))
        .count();
    assert_eq!(
        support_fallbacks, 1,
        "the Support inbox got its fallback before its team e-mail was connected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_connections_of_one_address_connect_one_channel() {
    let app = std::sync::Arc::new(inbox().await);
    for round in 0..10 {
        let address = format!("race{round}@acme.test");
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (app, address) = (app.clone(), address.clone());
            tasks.push(tokio::spawn(async move {
                let connect = Command::Channel(ChannelCommand::ConnectEmail {
                    channel_id: Uuid::now_v7(),
                    inbox_id: INBOX,
                    address,
                    access: EmailAccess::Shared,
                });
                app.service.execute(CommandMeta::by(admin()), connect).await
            }));
        }
        let mut connected = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => connected += 1,
                Err(ServiceError::Domain(DomainError::Rejected { code: "TAKEN", .. })) => {}
                Err(other) => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(connected, 1, "round {round}: one channel per address");
    }
}
