//! The worker against a real SMTP server (aiosmtpd) acting as the relay: what arrives, what is
//! recorded, refusals, a relay that is down, restarts, form conversations, and chat replies a
//! visitor did not see.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use mail_parser::{MessageParser, MimeHeaders};
use proto_events::clock::ManualClock;
use proto_events::event::{ChannelKind, Identity, InboundMessage};
use proto_events::{Actor, DomainEvent};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_service::{Command, CommandMeta};

use crate::support::*;

const PDF: &[u8] = b"%PDF-1.4\n\x00\x01\x02\xff binary quote \r\n\r\n.\r\n end";

#[tokio::test]
async fn a_reply_arrives_at_the_relay_threaded_with_its_attachment_and_is_recorded_delivered() {
    let Some(relay) = TestRelay::start(None) else {
        return;
    };
    let app = App::new().await;
    let conversation = app
        .customer_writes("grace@customer.test", "c1@customer.test", None)
        .await;
    let reply = app
        .agent_replies(
            conversation,
            "It is 200 EUR a month.",
            &[("quote.pdf", "application/pdf", PDF)],
        )
        .await;
    let worker = app.worker(&relay.url(), Duration::from_secs(60));

    let (_, provider_id) = app
        .event(|e| match &e.payload {
            DomainEvent::DeliverySucceeded(d) if d.message_id == reply => {
                assert_eq!(
                    e.metadata.actor,
                    Actor::System {
                        component: "delivery".into()
                    }
                );
                Some(d.provider_message_id.clone())
            }
            DomainEvent::DeliveryFailed(d) => panic!("delivery failed: {}", d.reason),
            _ => None,
        })
        .await;
    assert_eq!(provider_id.as_deref(), Some("RELAY1"));

    let mail = relay.wait_for(1).await.remove(0);
    let recorded = reply_sent(&app.history().await, reply);
    let headers = recorded.email.expect("e-mail headers");
    let parsed = MessageParser::default().parse(&mail).expect("MIME");
    let from = parsed.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some("support@acme.test"));
    assert_eq!(from.name(), Some("Ada Agent via Support"));
    let to = parsed.to().and_then(|a| a.first()).expect("To");
    assert_eq!(to.address(), Some("grace@customer.test"));
    assert_eq!(parsed.subject(), Some("Re: Pricing for 20 seats"));
    assert_eq!(parsed.message_id(), Some(headers.message_id.as_str()));
    assert!(headers.message_id.ends_with("@acme.test"), "{headers:?}");
    assert_eq!(parsed.in_reply_to().as_text(), Some("c1@customer.test"));
    let references: Vec<&str> = match parsed.references().as_text_list() {
        Some(list) => list.iter().map(|r| r.as_ref()).collect(),
        None => parsed.references().as_text().into_iter().collect(),
    };
    assert_eq!(references, ["older@customer.test", "c1@customer.test"]);
    assert_eq!(
        parsed.body_text(0).as_deref().map(str::trim),
        Some("It is 200 EUR a month.")
    );
    assert_eq!(
        parsed.body_html(0).as_deref().map(str::trim),
        Some("<p>It is 200 EUR a month.</p>")
    );
    assert_eq!(parsed.attachment_count(), 1);
    let attachment = parsed.attachment(0).expect("the attachment");
    assert_eq!(attachment.attachment_name(), Some("quote.pdf"));
    let content_type = attachment.content_type().expect("its type");
    assert_eq!(
        (content_type.ctype(), content_type.subtype()),
        ("application", Some("pdf"))
    );
    assert_eq!(attachment.contents(), PDF, "byte for byte");
    worker.task.abort();
}

#[tokio::test]
async fn a_recipient_the_relay_refuses_is_a_permanent_failure_with_its_status() {
    let Some(relay) = TestRelay::start(None) else {
        return;
    };
    let app = App::new().await;
    let conversation = app
        .customer_writes("bounce-me@customer.test", "c2@customer.test", None)
        .await;
    let reply = app.agent_replies(conversation, "Hello?", &[]).await;
    let worker = app.worker(&relay.url(), Duration::from_secs(60));
    let (_, failed) = app
        .event(|e| match &e.payload {
            DomainEvent::DeliveryFailed(d) if d.message_id == reply => Some(d.clone()),
            DomainEvent::DeliverySucceeded(_) => panic!("delivered to a refused recipient"),
            _ => None,
        })
        .await;
    assert!(failed.permanent, "{failed:?}");
    assert_eq!(failed.status.as_deref(), Some("550 5.1.1"));
    assert!(failed.reason.contains("User unknown"), "{}", failed.reason);
    assert!(relay.received().is_empty());
    worker.task.abort();
}

#[tokio::test]
async fn a_relay_that_is_down_is_retried_then_the_reply_fails_after_the_window() {
    let app = App::new().await;
    let conversation = app
        .customer_writes("grace@customer.test", "c3@customer.test", None)
        .await;
    let reply = app.agent_replies(conversation, "Anyone there?", &[]).await;
    let window = Duration::from_secs(2);
    let url = format!("smtp://127.0.0.1:{}?tls=none", closed_port());
    let worker = app.worker(&url, window);
    let (temporary_at, temporary) = app
        .event(|e| match &e.payload {
            DomainEvent::DeliveryFailed(d) if d.message_id == reply => Some(d.clone()),
            _ => None,
        })
        .await;
    assert!(
        !temporary.permanent,
        "first a temporary failure: {temporary:?}"
    );
    assert_eq!(temporary.status, None);
    let (final_at, last) = app
        .event(|e| match &e.payload {
            DomainEvent::DeliveryFailed(d) if d.message_id == reply && d.permanent => {
                Some((d.clone(), e.metadata.occurred_at))
            }
            DomainEvent::DeliverySucceeded(_) => panic!("delivered through a closed port"),
            _ => None,
        })
        .await;
    let (last, failed_at) = last;
    assert!(final_at > temporary_at);
    assert!(
        last.reason.starts_with("not delivered within 2s"),
        "{}",
        last.reason
    );
    let history = app.history().await;
    let written_at = history
        .iter()
        .find(|e| matches!(&e.payload, DomainEvent::ReplySent(r) if r.message_id == reply))
        .map(|e| e.metadata.occurred_at)
        .expect("the reply");
    assert!(
        failed_at - written_at >= chrono::Duration::from_std(window).unwrap(),
        "gave up {} after the reply, before the window of {window:?} had passed",
        failed_at - written_at
    );
    // The same temporary reason is recorded once, not at every attempt.
    let temporaries = history
        .iter()
        .filter(|e| matches!(&e.payload, DomainEvent::DeliveryFailed(d) if !d.permanent))
        .count();
    assert_eq!(temporaries, 1);
    worker.task.abort();
}

#[tokio::test]
async fn after_a_restart_a_delivered_reply_is_not_sent_again() {
    let Some(relay) = TestRelay::start(None) else {
        return;
    };
    let app = App::new().await;
    let conversation = app
        .customer_writes("grace@customer.test", "c4@customer.test", None)
        .await;
    let first = app.agent_replies(conversation, "First answer", &[]).await;
    let worker = app.worker(&relay.url(), Duration::from_secs(60));
    app.event(|e| match &e.payload {
        DomainEvent::DeliverySucceeded(d) if d.message_id == first => Some(()),
        _ => None,
    })
    .await;
    worker.task.abort();
    let _ = worker.task.await;
    let App {
        dir,
        store,
        service,
    } = app;
    drop((store, service));

    // The same data directory opened again, as a restarted server does.
    let app = App::open(dir).await;
    let second = app.agent_replies(conversation, "Second answer", &[]).await;
    let worker = app.worker(&relay.url(), Duration::from_secs(60));
    app.event(|e| match &e.payload {
        DomainEvent::DeliverySucceeded(d) if d.message_id == second => Some(()),
        _ => None,
    })
    .await;
    let mails = relay.wait_for(2).await;
    assert_eq!(mails.len(), 2, "the first reply was sent again");
    let subjects: Vec<String> = mails
        .iter()
        .map(|m| {
            let parsed = MessageParser::default().parse(m).expect("MIME");
            parsed.body_text(0).unwrap_or_default().trim().to_owned()
        })
        .collect();
    assert_eq!(subjects, ["First answer", "Second answer"]);
    let succeeded = app
        .history()
        .await
        .iter()
        .filter(|e| matches!(e.payload, DomainEvent::DeliverySucceeded(_)))
        .count();
    assert_eq!(succeeded, 2);
    worker.task.abort();
}

#[tokio::test]
async fn a_form_conversation_is_answered_by_email_from_the_inbox_address() {
    let Some(relay) = TestRelay::start(Some("switchboard:s3cret pass")) else {
        return;
    };
    let app = App::new().await;
    let conversation = app.visitor_submits_form("visitor@prospect.test").await;
    let reply = app
        .agent_replies(conversation, "Happy to show you around.", &[])
        .await;
    let url = format!(
        "smtp://switchboard:s3cret%20pass@127.0.0.1:{}?tls=none",
        relay.port
    );
    let worker = app.worker(&url, Duration::from_secs(60));
    let mail = delivered_to_visitor(&app, &relay, reply).await;
    let parsed = MessageParser::default().parse(&mail).expect("MIME");
    assert_eq!(parsed.subject(), Some("Re: Demo request"));
    let recorded = reply_sent(&app.history().await, reply);
    assert_eq!(
        parsed.message_id(),
        recorded.email.as_ref().map(|h| h.message_id.as_str())
    );
    worker.task.abort();
}

#[tokio::test]
async fn a_refused_login_is_retried_as_the_relays_problem_then_fails_after_the_window() {
    let Some(relay) = TestRelay::start(Some("switchboard:right")) else {
        return;
    };
    let app = App::new().await;
    let conversation = app
        .customer_writes("grace@customer.test", "c5@customer.test", None)
        .await;
    let reply = app.agent_replies(conversation, "Hi", &[]).await;
    let url = format!("smtp://switchboard:wrong@127.0.0.1:{}?tls=none", relay.port);
    let worker = app.worker(&url, Duration::from_secs(1));
    let (_, temporary) = app
        .event(|e| match &e.payload {
            DomainEvent::DeliveryFailed(d) if d.message_id == reply => Some(d.clone()),
            DomainEvent::DeliverySucceeded(_) => panic!("delivered with a wrong password"),
            _ => None,
        })
        .await;
    assert!(!temporary.permanent, "{temporary:?}");
    assert_eq!(temporary.status.as_deref(), Some("535 5.7.8"));
    let (_, last) = app
        .event(|e| match &e.payload {
            DomainEvent::DeliveryFailed(d) if d.message_id == reply && d.permanent => {
                Some(d.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(last.status.as_deref(), Some("535 5.7.8"));
    assert!(relay.received().is_empty());
    worker.task.abort();
}

#[tokio::test]
async fn a_reply_first_seen_after_its_window_is_failed_without_being_sent() {
    let Some(relay) = TestRelay::start(None) else {
        return;
    };
    let app = App::new().await;
    let conversation = app
        .customer_writes("grace@customer.test", "c6@customer.test", None)
        .await;
    let reply = app
        .agent_replies(conversation, "Sorry for the wait", &[])
        .await;
    // The worker starts a day and an hour after the reply was written.
    let later = Arc::new(ManualClock::new(Utc::now() + chrono::Duration::hours(25)));
    let worker = app.worker_on(&relay.url(), Duration::from_secs(24 * 3_600), later);
    let (_, failed) = app
        .event(|e| match &e.payload {
            DomainEvent::DeliveryFailed(d) if d.message_id == reply => Some(d.clone()),
            DomainEvent::DeliverySucceeded(_) => panic!("a day-old reply was sent"),
            _ => None,
        })
        .await;
    assert!(failed.permanent, "{failed:?}");
    assert!(failed.reason.starts_with("not sent"), "{}", failed.reason);
    assert!(relay.received().is_empty());
    worker.task.abort();
}

/// Waits until `reply` is recorded delivered, and returns the relay's one mail, checked to go
/// from the inbox's address to the visitor's.
async fn delivered_to_visitor(app: &App, relay: &TestRelay, reply: uuid::Uuid) -> Vec<u8> {
    app.event(|e| match &e.payload {
        DomainEvent::DeliverySucceeded(d) if d.message_id == reply => Some(()),
        DomainEvent::DeliveryFailed(d) => panic!("delivery failed: {}", d.reason),
        _ => None,
    })
    .await;
    let mail = relay.wait_for(1).await.remove(0);
    let parsed = MessageParser::default().parse(&mail).expect("MIME");
    let from = parsed.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some("support@acme.test"));
    let to = parsed.to().and_then(|a| a.first()).expect("To");
    assert_eq!(to.address(), Some("visitor@prospect.test"));
    mail
}

/// The admin runs `command`.
async fn admin(app: &App, command: ChannelCommand) {
    app.service
        .execute(
            CommandMeta::by(Actor::User { id: ADMIN }),
            Command::Channel(command),
        )
        .await
        .unwrap();
}

/// A chat visitor of the Website chat (connected to Support here) writes; returns the
/// conversation.
async fn visitor_chats(app: &App, chat: uuid::Uuid) -> uuid::Uuid {
    admin(
        app,
        ChannelCommand::ConnectChat {
            channel_id: chat,
            inbox_id: INBOX,
            name: "Website".into(),
        },
    )
    .await;
    visitor_writes(app, chat, "visitor-1").await
}

/// `visitor` writes in the Website chat; returns the conversation.
async fn visitor_writes(app: &App, chat: uuid::Uuid, visitor: &str) -> uuid::Uuid {
    let message = InboundMessage {
        message_id: uuid::Uuid::now_v7(),
        channel_id: chat,
        channel_kind: ChannelKind::Chat,
        provider_message_id: None,
        from: Identity::ChatVisitor {
            visitor_id: visitor.into(),
        },
        from_name: None,
        contact_id: None,
        subject: None,
        body_text: "Anyone there?".into(),
        body_html: None,
        email: None,
        form_fields: vec![],
        attachments: Vec::new(),
        raw: None,
    };
    app.receive(chat, message).await
}

/// What the chat channel reports for its visitor in `conversation`.
async fn chat_reports(
    app: &App,
    chat: uuid::Uuid,
    conversation: uuid::Uuid,
    command: ConversationCommand,
) {
    app.service
        .execute(
            CommandMeta::by(Actor::Channel { id: chat }),
            Command::Conversation {
                conversation_id: conversation,
                command: Box::new(command),
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_chat_reply_the_visitor_did_not_see_is_emailed_to_the_address_they_left() {
    let Some(relay) = TestRelay::start(None) else {
        return;
    };
    let app = App::new().await;
    let chat = uuid::Uuid::from_u128(43);
    // The visitor chats, leaves an address, and sees the first answer in the widget; then goes
    // away, and the second answer goes unseen.
    let conversation = visitor_chats(&app, chat).await;
    let address = ConversationCommand::RecordVisitorEmail {
        address: "visitor@prospect.test".into(),
    };
    chat_reports(&app, chat, conversation, address).await;
    let seen = app
        .agent_replies(conversation, "Hello! Looking.", &[])
        .await;
    let seen_command = ConversationCommand::RecordRepliesSeen {
        message_ids: vec![seen],
    };
    chat_reports(&app, chat, conversation, seen_command).await;
    let unseen = app
        .agent_replies(conversation, "Found it: your order left today.", &[])
        .await;

    // The worker's clock is ten minutes on: two minutes unseen is long past.
    let later = Arc::new(ManualClock::new(Utc::now() + chrono::Duration::minutes(10)));
    let worker = app.worker_with(
        &relay.url(),
        Duration::from_secs(3_600),
        later,
        Some(Duration::from_secs(120)),
    );
    let mail = delivered_to_visitor(&app, &relay, unseen).await;
    let parsed = MessageParser::default().parse(&mail).expect("MIME");
    let from = parsed.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.name(), Some("Ada Agent via Support"));
    assert_eq!(parsed.subject(), Some("Your chat with Support"));
    assert_eq!(
        parsed.body_text(0).as_deref().map(str::trim),
        Some("Found it: your order left today.")
    );
    // The seen reply was never e-mailed.
    let history = app.history().await;
    let emailed: Vec<_> = history
        .iter()
        .filter_map(|e| match &e.payload {
            DomainEvent::ChatReplyEmailed(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(emailed.len(), 1, "{emailed:?}");
    assert_eq!(emailed[0].message_id, unseen);
    assert_eq!(
        parsed.message_id(),
        Some(emailed[0].email.message_id.as_str())
    );
    let outcome_of_seen = |e: &proto_events::Envelope| match &e.payload {
        DomainEvent::DeliverySucceeded(d) => d.message_id == seen,
        DomainEvent::DeliveryFailed(d) => d.message_id == seen,
        _ => false,
    };
    assert!(!history.iter().any(outcome_of_seen));

    // The visitor answers the e-mail: it continues the chat conversation.
    let answered = app
        .customer_writes(
            "visitor@prospect.test",
            "v1@prospect.test",
            Some(&emailed[0].email.message_id),
        )
        .await;
    assert_eq!(answered, conversation);
    assert_eq!(relay.received().len(), 1);
    worker.task.abort();
}

/// The visitor of `conversation` leaves `address`, then an agent replies; returns the reply.
async fn unseen_reply(
    app: &App,
    chat: uuid::Uuid,
    conversation: uuid::Uuid,
    address: &str,
) -> uuid::Uuid {
    let left = ConversationCommand::RecordVisitorEmail {
        address: address.into(),
    };
    chat_reports(app, chat, conversation, left).await;
    app.agent_replies(conversation, "Found it.", &[]).await
}

/// The chat replies asked to be e-mailed, in log order.
async fn emailed(app: &App) -> Vec<uuid::Uuid> {
    app.history()
        .await
        .iter()
        .filter_map(|e| match &e.payload {
            DomainEvent::ChatReplyEmailed(m) => Some(m.message_id),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_chat_reply_older_than_the_delivery_window_is_never_emailed_even_after_a_restart() {
    let Some(relay) = TestRelay::start(None) else {
        return;
    };
    // A reply written two hours ago, in a conversation with an address (a worker started now
    // folds it from the log), and one written now.
    let service_clock = Arc::new(ManualClock::new(Utc::now() - chrono::Duration::hours(2)));
    let app = App::new_on(service_clock.clone()).await;
    let chat = uuid::Uuid::from_u128(43);
    let old = visitor_chats(&app, chat).await;
    let old_reply = unseen_reply(&app, chat, old, "old@prospect.test").await;
    service_clock.set(Utc::now());
    let fresh = visitor_writes(&app, chat, "visitor-2").await;
    let fresh_reply = unseen_reply(&app, chat, fresh, "visitor@prospect.test").await;

    let later = Arc::new(ManualClock::new(Utc::now() + chrono::Duration::minutes(10)));
    let worker = app.worker_with(
        &relay.url(),
        Duration::from_secs(3_600),
        later,
        Some(Duration::from_secs(120)),
    );
    // Both are due on the same pass, the old one first: only the fresh one is asked for.
    delivered_to_visitor(&app, &relay, fresh_reply).await;
    assert_eq!(emailed(&app).await, [fresh_reply]);
    assert_ne!(old_reply, fresh_reply);
    assert_eq!(relay.received().len(), 1);
    worker.task.abort();
}

#[tokio::test]
async fn an_emailed_chat_reply_goes_out_from_the_channel_the_domain_chose() {
    let Some(relay) = TestRelay::start(None) else {
        return;
    };
    let app = App::new().await;
    let chat = uuid::Uuid::from_u128(43);
    let conversation = visitor_chats(&app, chat).await;
    let reply = unseen_reply(&app, chat, conversation, "visitor@prospect.test").await;
    // Decided from support@ (the inbox's only address) ...
    app.service
        .execute(
            CommandMeta::by(Actor::System {
                component: "delivery".into(),
            }),
            Command::Conversation {
                conversation_id: conversation,
                command: Box::new(ConversationCommand::EmailUnseenReply { message_id: reply }),
            },
        )
        .await
        .unwrap();
    // ... before the inbox got another address that it would pick now.
    admin(
        &app,
        ChannelCommand::ConnectEmail {
            channel_id: uuid::Uuid::from_u128(2),
            inbox_id: INBOX,
            address: "other@acme.test".into(),
            access: proto_events::event::EmailAccess::Shared,
        },
    )
    .await;
    let worker = app.worker_with(
        &relay.url(),
        Duration::from_secs(3_600),
        Arc::new(proto_events::clock::SystemClock),
        Some(Duration::from_secs(120)),
    );
    delivered_to_visitor(&app, &relay, reply).await;
    worker.task.abort();
}

/// A message opening a thread of its own from `from`.
fn new_thread(from: &str, id: &str) -> InboundMessage {
    InboundMessage {
        message_id: uuid::Uuid::now_v7(),
        channel_id: MAIL,
        channel_kind: ChannelKind::Email,
        provider_message_id: None,
        from: Identity::Email {
            address: from.into(),
        },
        from_name: None,
        contact_id: None,
        subject: Some("Hello".into()),
        body_text: "Hello".into(),
        body_html: None,
        email: Some(proto_events::event::EmailHeaders {
            message_id: id.into(),
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

/// A reply written before its conversation was erased (with its contact, or by retention) is
/// never sent: the worker drops what it had pending for the conversation.
#[tokio::test]
async fn a_reply_pending_for_an_erased_conversation_is_not_sent() {
    let Some(relay) = TestRelay::start(None) else {
        return;
    };
    let app = App::new().await;
    let erased = app
        .receive(
            MAIL,
            new_thread("zelda@quibble.example", "z1@quibble.example"),
        )
        .await;
    app.agent_replies(erased, "Your passport scan is fine", &[])
        .await;
    app.service
        .execute(
            CommandMeta::by(Actor::System {
                component: "retention".into(),
            }),
            Command::Conversation {
                conversation_id: erased,
                command: Box::new(ConversationCommand::Erase {
                    contact_id: None,
                    reason: "closed more than 30 days ago".into(),
                }),
            },
        )
        .await
        .unwrap();
    // Written after it, due after it: it arrives after the erased one would have.
    let other = app
        .receive(MAIL, new_thread("otto@example.org", "o1@example.org"))
        .await;
    assert_ne!(other, erased);
    app.agent_replies(other, "Otto's answer", &[]).await;
    let worker = app.worker(&relay.url(), Duration::from_secs(60));
    let received = relay.wait_for(1).await;
    assert_eq!(received.len(), 1);
    let text = String::from_utf8_lossy(&received[0]);
    assert!(text.contains("Otto's answer"), "{text}");
    assert!(
        !relay.received().iter().any(
            |path| String::from_utf8_lossy(&std::fs::read(path).unwrap()).contains("passport")
        ),
        "the erased conversation's reply was sent"
    );
    worker.task.abort();
}
