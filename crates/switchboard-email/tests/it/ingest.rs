//! Raw e-mails into conversations on a real embedded store.

use proto_events::event::{ChannelKind, Identity};
use proto_events::{Actor, DomainEvent};
use switchboard_domain::conversation::{ConversationCommand, DeliveryOutcome};
use switchboard_email::IngestError;
use switchboard_service::{Command, CommandMeta};
use uuid::Uuid;

use crate::support::{ADMIN, INBOX, SALES, SUPPORT, mail, mailroom};
use proto_events::event::{EmailAccess, Member};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::setup::SetupCommand;

#[tokio::test]
async fn a_mail_becomes_a_message_with_its_original_and_attachments_in_the_blob_store() {
    let room = mailroom().await;
    let raw = b"From: Ada Lovelace <ada@customer.example>\r\n\
To: support@acme.test\r\n\
Subject: Invoice\r\n\
Message-ID: <invoice-1@customer.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\
\r\n\
--m\r\n\
Content-Type: text/plain\r\n\
\r\n\
The invoice is attached.\r\n\
--m\r\n\
Content-Type: application/pdf; name=\"invoice.pdf\"\r\n\
Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjcKJcOkw7zDtsOf\r\n\
--m--\r\n"
        .to_vec();
    let ingested = room
        .ingester
        .ingest(SUPPORT, Some("bounces@customer.example"), raw.clone())
        .await
        .expect("ingested");
    assert!(!ingested.duplicate);

    let events = room.events().await;
    let received = events
        .iter()
        .find_map(|e| match &e.payload {
            DomainEvent::MessageReceived(m) => Some(m),
            _ => None,
        })
        .expect("a MessageReceived");
    let message = &received.message;
    assert_eq!(message.message_id, ingested.message_id);
    assert_eq!(message.channel_kind, ChannelKind::Email);
    assert_eq!(
        message.from,
        Identity::Email {
            address: "ada@customer.example".into()
        }
    );
    assert_eq!(message.from_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(message.subject.as_deref(), Some("Invoice"));
    assert_eq!(message.body_text.trim(), "The invoice is attached.");
    assert_eq!(
        message.body_html, None,
        "no HTML made up from a text-only mail"
    );
    let headers = message.email.as_ref().expect("e-mail headers");
    assert_eq!(headers.message_id, "invoice-1@customer.example");

    let blobs = room.store.blobs();
    let original = message.raw.as_ref().expect("the original is kept");
    assert_eq!(original.blob.size, raw.len() as u64);
    assert_eq!(
        blobs.get(&original.blob.sha256).await.expect("read"),
        Some(raw),
        "the original, byte for byte"
    );
    let [pdf] = &message.attachments[..] else {
        panic!("one attachment: {:?}", message.attachments)
    };
    assert_eq!(pdf.file_name.as_deref(), Some("invoice.pdf"));
    assert_eq!(pdf.content_type, "application/pdf");
    assert_eq!(
        blobs.get(&pdf.blob.sha256).await.expect("read").as_deref(),
        Some("%PDF-1.7\n%äüöß".as_bytes())
    );
    // No bytes in the event itself: only references.
    let stored = serde_json::to_string(&received).expect("json");
    assert!(!stored.contains("JVBERi0"), "{stored}");
}

#[tokio::test]
async fn the_same_message_delivered_twice_on_a_channel_is_one_message() {
    let room = mailroom().await;
    let raw = mail("support@acme.test", "once-1@customer.example", "", "Hello");
    let first = room
        .ingester
        .ingest(SUPPORT, None, raw.clone())
        .await
        .expect("first");
    let again = room
        .ingester
        .ingest(SUPPORT, None, raw.clone())
        .await
        .expect("again");
    assert!(!first.duplicate);
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.message_id, first.message_id);
    let received = room
        .events()
        .await
        .iter()
        .filter(|e| matches!(e.payload, DomainEvent::MessageReceived(_)))
        .count();
    assert_eq!(received, 1);

    // On another channel (the same mail sent to both addresses) it is that channel's message.
    let other = room.ingester.ingest(SALES, None, raw).await.expect("sales");
    assert!(!other.duplicate);
    assert_ne!(other.stream, first.stream);
}

#[tokio::test]
async fn a_reply_joins_its_conversation_within_the_channel_only() {
    let room = mailroom().await;
    let first = mail("support@acme.test", "first-1@customer.example", "", "Hello");
    let first = room
        .ingester
        .ingest(SUPPORT, None, first)
        .await
        .expect("first");
    let reply = mail(
        "support@acme.test",
        "second-2@customer.example",
        "In-Reply-To: <first-1@customer.example>\r\nReferences: <first-1@customer.example>\r\n",
        "Anyone?",
    );
    let second = room
        .ingester
        .ingest(SUPPORT, None, reply.clone())
        .await
        .expect("second");
    assert_eq!(second.stream, first.stream, "threaded by In-Reply-To");
    // The same reply reaching another channel does not join Support's conversation.
    let elsewhere = room
        .ingester
        .ingest(SALES, None, reply)
        .await
        .expect("sales");
    assert_ne!(elsewhere.stream, first.stream);
}

#[tokio::test]
async fn a_bounce_marks_our_reply_failed_with_the_remote_status() {
    let room = mailroom().await;
    let first = mail("support@acme.test", "ask-1@customer.example", "", "Hello");
    let first = room
        .ingester
        .ingest(SUPPORT, None, first)
        .await
        .expect("first");
    let conversation_id: Uuid = first
        .stream
        .strip_prefix("conversation-")
        .and_then(|id| id.parse().ok())
        .expect("a conversation stream");
    let reply_id = Uuid::now_v7();
    room.service
        .execute(
            CommandMeta::by(Actor::User { id: ADMIN }),
            Command::Conversation {
                conversation_id,
                command: Box::new(ConversationCommand::SendReply {
                    message_id: reply_id,
                    body_text: "20 seats are 400 EUR.".into(),
                    body_html: None,
                    subject: None,
                    attachments: Vec::new(),
                }),
            },
        )
        .await
        .expect("reply");
    let sent = room
        .events()
        .await
        .into_iter()
        .find_map(|e| match e.payload {
            DomainEvent::ReplySent(r) => r.email.map(|h| h.message_id),
            _ => None,
        })
        .expect("the reply's Message-ID");
    // The relay took it (as the delivery worker records); the bounce comes later.
    room.service
        .execute(
            CommandMeta::by(Actor::System {
                component: "delivery".into(),
            }),
            Command::Conversation {
                conversation_id,
                command: Box::new(ConversationCommand::RecordDelivery {
                    message_id: reply_id,
                    outcome: DeliveryOutcome::Succeeded {
                        provider_message_id: Some("QUEUED1".into()),
                    },
                }),
            },
        )
        .await
        .expect("delivered");

    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n\
To: support@acme.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\
Message-ID: <dsn-1@mx.customer.example>\r\nAuto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example\r\n\r\n\
Final-Recipient: rfc822; ada@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 Mailbox does not exist\r\n\
--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@acme.test\r\n\
Message-ID: <{sent}>\r\n--b--\r\n"
    );
    let bounce = room
        .ingester
        .ingest(SUPPORT, Some(""), dsn.into_bytes())
        .await
        .expect("the bounce is taken");
    assert_eq!(bounce.bounced, Some(reply_id));
    let failed = room
        .events()
        .await
        .into_iter()
        .find_map(|e| match e.payload {
            DomainEvent::DeliveryFailed(f) => Some(f),
            _ => None,
        })
        .expect("DeliveryFailed");
    assert_eq!(failed.message_id, reply_id);
    assert_eq!(failed.status.as_deref(), Some("550 5.1.1"));
    assert!(failed.permanent);
    assert!(
        failed.reason.contains("Mailbox does not exist"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_message_without_any_sender_is_refused_and_nothing_is_recorded() {
    let room = mailroom().await;
    let before = room.events().await.len();
    let raw = b"To: support@acme.test\r\nSubject: who?\r\n\r\nNo From.\r\n".to_vec();
    match room.ingester.ingest(SUPPORT, Some(""), raw.clone()).await {
        Err(IngestError::NoSender) => {}
        other => panic!("expected NoSender, got {other:?}"),
    }
    assert_eq!(room.events().await.len(), before);
    // With the envelope's sender, it is taken.
    let taken = room
        .ingester
        .ingest(SUPPORT, Some("ada@customer.example"), raw)
        .await
        .expect("taken");
    assert!(!taken.duplicate);
}

#[tokio::test]
async fn recipients_are_the_connected_channels_addresses_in_any_case() {
    let room = mailroom().await;
    let find = |a: &'static str| {
        let ingester = room.ingester.clone();
        async move { ingester.channel_for(a).await.expect("lookup") }
    };
    assert_eq!(find("support@acme.test").await, Some(SUPPORT));
    assert_eq!(find("SUPPORT@ACME.TEST").await, Some(SUPPORT));
    assert_eq!(find("sales@acme.test").await, Some(SALES));
    assert_eq!(find("nobody@acme.test").await, None);

    // A private account's address: its mail comes over IMAP, never through the listener.
    let private = Uuid::from_u128(33);
    for command in [
        Command::Setup(SetupCommand::AddInboxMember {
            inbox_id: INBOX,
            member: Member::User { id: ADMIN },
        }),
        Command::Channel(ChannelCommand::ConnectEmail {
            channel_id: private,
            inbox_id: INBOX,
            address: "admin.own@acme.test".into(),
            access: EmailAccess::Private {
                owner_user_id: ADMIN,
            },
        }),
    ] {
        room.service
            .execute(CommandMeta::by(Actor::User { id: ADMIN }), command)
            .await
            .expect("setup");
    }
    assert_eq!(find("admin.own@acme.test").await, None);
    assert_eq!(
        room.ingester
            .account_channel("admin.own@acme.test")
            .await
            .expect("lookup"),
        Some(private)
    );
}

#[tokio::test]
async fn mail_for_a_channel_disconnected_meanwhile_is_refused_and_nothing_is_recorded() {
    let room = mailroom().await;
    // The listener looks recipients up in the write view as it is: right after the
    // disconnection it may still show the channel connected.
    assert_eq!(
        room.ingester
            .channel_for("sales@acme.test")
            .await
            .expect("lookup"),
        Some(SALES)
    );
    room.service
        .execute(
            CommandMeta::by(Actor::User { id: ADMIN }),
            Command::Channel(ChannelCommand::Disconnect { channel_id: SALES }),
        )
        .await
        .expect("disconnect");
    let before = room.events().await.len();

    let refused = room
        .ingester
        .ingest(
            SALES,
            None,
            mail("sales@acme.test", "late@customer.example", "", "Hello?"),
        )
        .await;
    assert!(
        matches!(&refused, Err(IngestError::Refused(reason)) if reason.contains("disconnected")),
        "{refused:?}"
    );
    assert_eq!(room.events().await.len(), before, "nothing recorded");
    assert_eq!(
        room.ingester
            .channel_for("sales@acme.test")
            .await
            .expect("lookup"),
        None,
        "once the view has caught up, the address is unknown"
    );
}

#[tokio::test]
async fn a_mail_too_big_for_an_event_is_kept_whole_and_shown_cut() {
    let room = mailroom().await;
    let body = "All work and no play makes Jack a dull boy.\r\n".repeat(120_000);
    let raw = mail("support@acme.test", "long-1@customer.example", "", &body);
    assert!(raw.len() > 5 * 1024 * 1024);
    let ingested = room
        .ingester
        .ingest(SUPPORT, None, raw.clone())
        .await
        .expect("taken, not refused nor deferred");
    assert!(
        ingested
            .warnings
            .iter()
            .any(|w| w.contains("the text body is")),
        "{:?}",
        ingested.warnings
    );
    let events = room.events().await;
    let message = events
        .iter()
        .find_map(|e| match &e.payload {
            DomainEvent::MessageReceived(m) => Some(&m.message),
            _ => None,
        })
        .expect("received");
    assert!(message.body_text.len() <= switchboard_email::parse::MAX_TEXT_BYTES);
    let original = message.raw.as_ref().expect("the original");
    assert_eq!(
        room.store
            .blobs()
            .get(&original.blob.sha256)
            .await
            .expect("read"),
        Some(raw),
        "whole"
    );
}
