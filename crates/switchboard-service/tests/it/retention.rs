//! The retention reactor against the embedded store, with a manual clock: what it erases (and
//! what it keeps), the files and key an erasure takes with it, reopening, and never erasing
//! twice across restarts and nodes.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use proto_events::clock::Clock as _;
use proto_events::event::{
    Attachment, BlobRef, ChannelKind, EmailAccess, Identity, RawMessage, Role,
};
use proto_events::{Actor, DomainEvent, Envelope, streams};
use switchboard_domain::DomainError;
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::retention::RetentionReactor;
use switchboard_service::{Command, CommandMeta, CommandService, ServiceError};
use switchboard_store::blob::Blob;
use switchboard_store::{Direction, EventStore, StreamFrom};
use uuid::Uuid;

use crate::support::*;

/// An inbox that keeps conversations 30 days once closed.
const KEPT_30_DAYS: Uuid = Uuid::from_u128(0x30);
/// An inbox that keeps them forever.
const KEPT_FOREVER: Uuid = Uuid::from_u128(0x31);
const MAIL_30: Uuid = Uuid::from_u128(0x40);
const MAIL_FOREVER: Uuid = Uuid::from_u128(0x41);
const AGENT: Uuid = Uuid::from_u128(0x12);

/// A service reading the store through a keyring and sealing with it (as `serve` does with
/// `seal_personal_data`), with an inbox kept 30 days and one kept forever, an e-mail channel
/// each, and an agent in both.
async fn retained() -> (App, Arc<dyn EventStore>, Arc<CommandService>) {
    use switchboard_codec::keyring::{KeyedStore, Keyring};
    use switchboard_store::secret::{MasterKey, Vault};
    let app = app().await;
    let keys = Arc::new(Keyring::new(Vault::new(
        app.store.secrets(),
        &MasterKey::generate(),
    )));
    let keyed: Arc<dyn EventStore> =
        Arc::new(KeyedStore::new(Arc::new(app.store.clone()), keys.clone()));
    let service = CommandService::open(keyed.clone(), app.clock.clone())
        .await
        .unwrap()
        .with_keyring(keys);
    let mut commands = vec![Command::Setup(SetupCommand::CreateUser {
        user_id: AGENT,
        email: "agent@acme.test".into(),
        name: "Agent".into(),
        role: Role::Agent,
    })];
    for (inbox_id, channel_id, address) in [
        (KEPT_30_DAYS, MAIL_30, "support@acme.test"),
        (KEPT_FOREVER, MAIL_FOREVER, "legal@acme.test"),
    ] {
        commands.extend([
            Command::Setup(SetupCommand::CreateInbox {
                inbox_id,
                name: address.into(),
            }),
            Command::Setup(SetupCommand::AddInboxMember {
                inbox_id,
                member: proto_events::event::Member::User { id: AGENT },
            }),
            Command::Channel(ChannelCommand::ConnectEmail {
                channel_id,
                inbox_id,
                address: address.into(),
                access: EmailAccess::Shared,
            }),
        ]);
    }
    commands.push(Command::Setup(SetupCommand::SetInboxRetention {
        inbox_id: KEPT_30_DAYS,
        closed_days: Some(30),
    }));
    for command in commands {
        service
            .execute(CommandMeta::by(admin()), command)
            .await
            .unwrap();
    }
    (app, keyed, Arc::new(service))
}

/// A new conversation: an e-mail from `from` on `channel` with `files` attached and `original`
/// as its raw message, sent with the blobs.
async fn mail(
    service: &CommandService,
    channel: Uuid,
    from: &str,
    files: &[&Blob],
    original: &Blob,
) -> Uuid {
    let reference = |blob: &Blob| BlobRef {
        sha256: blob.sha256().to_owned(),
        size: blob.bytes().len() as u64,
    };
    let mut command = inbound(
        channel,
        ChannelKind::Email,
        Identity::Email {
            address: from.into(),
        },
        "see attached",
    );
    if let Command::ReceiveMessage { message, .. } = &mut command {
        message.attachments = files
            .iter()
            .map(|file| Attachment {
                blob: reference(file),
                file_name: Some("scan.pdf".into()),
                content_type: "application/pdf".into(),
                content_id: None,
                inline: false,
            })
            .collect();
        message.raw = Some(RawMessage {
            blob: reference(original),
            warnings: Vec::new(),
        });
    }
    let mut blobs: Vec<Blob> = files.iter().map(|file| (*file).clone()).collect();
    blobs.push(original.clone());
    let outcome = service
        .execute_with_blobs(
            CommandMeta::by(Actor::Channel { id: channel }),
            command,
            blobs,
        )
        .await
        .unwrap();
    conversation_of(&outcome)
}

/// A new conversation with no files, from a fresh sender.
async fn plain_mail(service: &CommandService, channel: Uuid) -> Uuid {
    let original = Blob::new(format!("From: someone\r\n\r\n{}", Uuid::now_v7()).into_bytes());
    mail(
        service,
        channel,
        &format!("{}@example.org", Uuid::now_v7().simple()),
        &[],
        &original,
    )
    .await
}

/// Runs a conversation command as the admin.
async fn act(service: &CommandService, conversation_id: Uuid, command: ConversationCommand) {
    service
        .execute(
            CommandMeta::by(admin()),
            Command::Conversation {
                conversation_id,
                command: Box::new(command),
            },
        )
        .await
        .unwrap();
}

/// The conversation's events, read through the keys.
async fn stream(store: &Arc<dyn EventStore>, conversation_id: Uuid) -> Vec<Envelope> {
    store
        .read_stream(
            &streams::conversation(conversation_id),
            Direction::Forwards,
            StreamFrom::Start,
            1_000,
        )
        .await
        .unwrap()
        .iter()
        .map(|e| switchboard_service::codec::decode(e).unwrap())
        .collect()
}

/// The erasures of the conversation, with their envelopes.
async fn erasures(store: &Arc<dyn EventStore>, conversation_id: Uuid) -> Vec<Envelope> {
    stream(store, conversation_id)
        .await
        .into_iter()
        .filter(|e| matches!(e.payload, DomainEvent::ConversationErased(_)))
        .collect()
}

/// The id of the conversation's last `ConversationClosed`.
async fn last_closing(store: &Arc<dyn EventStore>, conversation_id: Uuid) -> Uuid {
    stream(store, conversation_id)
        .await
        .iter()
        .rev()
        .find(|e| matches!(e.payload, DomainEvent::ConversationClosed(_)))
        .map(|e| e.event_id)
        .expect("closed")
}

/// Waits (30 s at most) until the reactor has finished `sweeps` sweeps.
async fn swept(reactor: &mut RetentionReactor, sweeps: u64) {
    tokio::time::timeout(
        Duration::from_secs(30),
        reactor.sweeps.wait_for(|done| *done >= sweeps),
    )
    .await
    .expect("the retention reactor did not sweep in time")
    .expect("the retention reactor stopped");
}

/// Waits for a sweep that begins after now (the one under way may have read the clock before
/// it moved).
async fn next_full_sweep(reactor: &mut RetentionReactor) {
    let now = *reactor.sweeps.borrow();
    swept(reactor, now + 2).await;
}

#[tokio::test]
async fn a_conversation_closed_longer_ago_than_its_inbox_keeps_it_is_erased_with_only_its_files() {
    let (app, keyed, service) = retained().await;
    let shared = Blob::new(b"the price list everyone sends".to_vec());
    let hers = Blob::new(b"Zelda's own scan of her passport".to_vec());
    let her_mail = Blob::new(b"From: zelda@quibble.example\r\n\r\nZelda's original".to_vec());
    let otto_mail = Blob::new(b"From: otto@example.org\r\n\r\nOtto's original".to_vec());
    let old = mail(
        &service,
        MAIL_30,
        "zelda@quibble.example",
        &[&hers, &shared],
        &her_mail,
    )
    .await;
    // Otto sent the same price list; his conversation stays open.
    let open = mail(
        &service,
        MAIL_30,
        "otto@example.org",
        &[&shared],
        &otto_mail,
    )
    .await;
    let forever = plain_mail(&service, MAIL_FOREVER).await;
    act(&service, old, ConversationCommand::Close).await;
    act(&service, forever, ConversationCommand::Close).await;
    let closing = last_closing(&keyed, old).await;
    // Closed two days later: 29 days ago when the reactor sweeps.
    app.clock.advance(TimeDelta::days(2));
    let recent = plain_mail(&service, MAIL_30).await;
    act(&service, recent, ConversationCommand::Close).await;
    app.clock.advance(TimeDelta::days(29));

    let mut reactor = RetentionReactor::spawn(service.clone());
    swept(&mut reactor, 1).await;

    let erased = erasures(&keyed, old).await;
    assert_eq!(erased.len(), 1, "erased once");
    let erasure = &erased[0];
    let DomainEvent::ConversationErased(payload) = &erasure.payload else {
        unreachable!()
    };
    assert_eq!(payload.contact_id, None);
    assert_eq!(payload.inbox_id, KEPT_30_DAYS);
    assert_eq!(
        payload.reason,
        "retention: closed more than 30 days ago (inbox policy)"
    );
    assert_eq!(
        erasure.metadata.actor,
        Actor::System {
            component: "retention".into()
        }
    );
    assert_eq!(erasure.metadata.causation_id, closing);
    assert_eq!(
        erasure.metadata.idempotency_key.as_deref(),
        Some(format!("retention:{old}:{closing}").as_str())
    );
    assert_eq!(erasure.metadata.occurred_at, app.clock.now());

    // Only it: not the open one, nor one closed 29 days ago, nor one of an inbox that keeps
    // conversations forever.
    for kept in [open, recent, forever] {
        assert!(erasures(&keyed, kept).await.is_empty(), "{kept} kept");
    }

    // Its own files are gone, the one Otto's open conversation shows too stays.
    let blobs = keyed.blobs();
    assert_eq!(blobs.get(hers.sha256()).await.unwrap(), None);
    assert_eq!(blobs.get(her_mail.sha256()).await.unwrap(), None);
    assert_eq!(
        blobs.get(shared.sha256()).await.unwrap().as_deref(),
        Some(shared.bytes())
    );
    assert_eq!(
        blobs.get(otto_mail.sha256()).await.unwrap().as_deref(),
        Some(otto_mail.bytes())
    );

    // Its key is destroyed: what its sender wrote reads as erased.
    let body = stream(&keyed, old)
        .await
        .into_iter()
        .find_map(|e| match e.payload {
            DomainEvent::MessageReceived(e) => Some(e.message.body_text),
            _ => None,
        });
    assert_eq!(body.as_deref(), Some(""), "sealed fields read redacted");

    // It refuses every command from now on.
    let reopened = service
        .execute(
            CommandMeta::by(admin()),
            Command::Conversation {
                conversation_id: old,
                command: Box::new(ConversationCommand::Reopen),
            },
        )
        .await;
    assert!(
        matches!(
            reopened,
            Err(ServiceError::Domain(DomainError::Rejected {
                code: "ERASED",
                ..
            }))
        ),
        "{reopened:?}"
    );
    reactor.reactor.task.abort();
}

#[tokio::test]
async fn a_file_only_erased_conversations_share_goes_with_the_last_of_them() {
    let (app, keyed, service) = retained().await;
    let shared = Blob::new(b"the form both of them filled in".to_vec());
    let mut conversations = Vec::new();
    for from in ["ada@example.org", "bo@example.org"] {
        let original = Blob::new(format!("From: {from}\r\n\r\nthe form").into_bytes());
        let conversation = mail(&service, MAIL_30, from, &[&shared], &original).await;
        act(&service, conversation, ConversationCommand::Close).await;
        conversations.push(conversation);
    }
    // A third, of an inbox that keeps conversations, erased before by an admin.
    let third_original = Blob::new(b"From: cy@example.org\r\n\r\nthe form".to_vec());
    let third = mail(
        &service,
        MAIL_FOREVER,
        "cy@example.org",
        &[&shared],
        &third_original,
    )
    .await;
    app.clock.advance(TimeDelta::days(31));
    service
        .execute(
            CommandMeta::by(admin()),
            Command::EraseConversation {
                conversation_id: third,
                reason: "asked to".into(),
                prepared: None,
            },
        )
        .await
        .unwrap();
    let blobs = keyed.blobs();
    assert!(blobs.get(shared.sha256()).await.unwrap().is_some());
    assert_eq!(blobs.get(third_original.sha256()).await.unwrap(), None);

    let mut reactor = RetentionReactor::spawn(service.clone());
    swept(&mut reactor, 1).await;
    for conversation in conversations {
        assert_eq!(erasures(&keyed, conversation).await.len(), 1);
    }
    assert_eq!(
        blobs.get(shared.sha256()).await.unwrap(),
        None,
        "no conversation left standing shows it"
    );
    reactor.reactor.task.abort();
}

#[tokio::test]
async fn a_reopened_conversation_is_kept_and_closing_it_again_starts_the_count_afresh() {
    let (app, keyed, service) = retained().await;
    let again = plain_mail(&service, MAIL_30).await;
    let reopened = plain_mail(&service, MAIL_30).await;
    for conversation in [again, reopened] {
        act(&service, conversation, ConversationCommand::Close).await;
    }
    app.clock.advance(TimeDelta::days(10));
    for conversation in [again, reopened] {
        act(&service, conversation, ConversationCommand::Reopen).await;
    }
    app.clock.advance(TimeDelta::days(10));
    act(&service, again, ConversationCommand::Close).await;
    let second_closing = last_closing(&keyed, again).await;
    // 31 days after the first closing, 11 after the second.
    app.clock.advance(TimeDelta::days(11));

    let mut reactor = RetentionReactor::spawn_every(service.clone(), Duration::from_millis(20));
    swept(&mut reactor, 1).await;
    assert!(erasures(&keyed, again).await.is_empty());
    assert!(erasures(&keyed, reopened).await.is_empty());

    // 31 days after the second closing, the reactor sweeping as it goes.
    app.clock.advance(TimeDelta::days(20));
    next_full_sweep(&mut reactor).await;
    let erased = erasures(&keyed, again).await;
    assert_eq!(erased.len(), 1);
    assert_eq!(
        erased[0].metadata.idempotency_key.as_deref(),
        Some(format!("retention:{again}:{second_closing}").as_str()),
        "counted from the second closing"
    );
    assert!(
        erasures(&keyed, reopened).await.is_empty(),
        "an open conversation is never erased"
    );
    reactor.reactor.task.abort();
}

#[tokio::test]
async fn setting_and_clearing_an_inbox_s_retention_is_followed() {
    let (app, keyed, service) = retained().await;
    let forever = plain_mail(&service, MAIL_FOREVER).await;
    let cleared = plain_mail(&service, MAIL_30).await;
    for conversation in [forever, cleared] {
        act(&service, conversation, ConversationCommand::Close).await;
    }
    let retention = |inbox_id, closed_days| {
        Command::Setup(SetupCommand::SetInboxRetention {
            inbox_id,
            closed_days,
        })
    };
    service
        .execute(CommandMeta::by(admin()), retention(KEPT_30_DAYS, None))
        .await
        .unwrap();
    app.clock.advance(TimeDelta::days(400));
    let mut reactor = RetentionReactor::spawn_every(service.clone(), Duration::from_millis(20));
    swept(&mut reactor, 1).await;
    assert!(
        erasures(&keyed, cleared).await.is_empty(),
        "retention cleared"
    );
    assert!(erasures(&keyed, forever).await.is_empty(), "never set");

    // Set while the reactor runs, on conversations closed long before.
    service
        .execute(CommandMeta::by(admin()), retention(KEPT_FOREVER, Some(365)))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while erasures(&keyed, forever).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not erased after its inbox's retention was set"
        );
        next_full_sweep(&mut reactor).await;
    }
    assert!(erasures(&keyed, cleared).await.is_empty());
    reactor.reactor.task.abort();
}

#[tokio::test]
async fn neither_a_restart_nor_a_second_node_erases_twice() {
    let (app, keyed, service) = retained().await;
    let old = plain_mail(&service, MAIL_30).await;
    act(&service, old, ConversationCommand::Close).await;
    app.clock.advance(TimeDelta::days(31));

    // Two nodes sweep at once.
    let second_node = Arc::new(
        CommandService::open(keyed.clone(), app.clock.clone())
            .await
            .unwrap(),
    );
    let mut first = RetentionReactor::spawn(service.clone());
    let mut second = RetentionReactor::spawn(second_node.clone());
    swept(&mut first, 1).await;
    swept(&mut second, 1).await;
    assert_eq!(erasures(&keyed, old).await.len(), 1);
    first.reactor.task.abort();
    second.reactor.task.abort();

    // A restart, and another one that folds the log afresh (no snapshot), the erasure recent.
    let head = keyed.head().await.unwrap();
    for fresh in [false, true] {
        if fresh {
            app.store
                .write_index()
                .save_snapshot(
                    "retention",
                    switchboard_store::Position::START,
                    b"{}".to_vec(),
                )
                .await
                .unwrap();
        }
        let restarted = Arc::new(
            CommandService::open(keyed.clone(), app.clock.clone())
                .await
                .unwrap(),
        );
        let mut reactor = RetentionReactor::spawn(restarted);
        swept(&mut reactor, 1).await;
        reactor.reactor.task.abort();
    }
    assert_eq!(erasures(&keyed, old).await.len(), 1);
    assert_eq!(
        keyed.head().await.unwrap(),
        head,
        "nothing more was written"
    );
}

#[tokio::test]
async fn an_erasure_left_before_its_files_is_finished_by_the_next_start() {
    let (app, keyed, service) = retained().await;
    let file = Blob::new(b"a file only this conversation has".to_vec());
    let original = Blob::new(b"From: zelda@quibble.example\r\n\r\nher original".to_vec());
    let old = mail(
        &service,
        MAIL_30,
        "zelda@quibble.example",
        &[&file],
        &original,
    )
    .await;
    act(&service, old, ConversationCommand::Close).await;
    let closing = last_closing(&keyed, old).await;
    app.clock.advance(TimeDelta::days(31));
    // The erasure's event alone, as a process stopping right after it leaves it.
    service
        .execute(
            CommandMeta {
                causation_id: Some(closing),
                idempotency_key: Some(format!("retention:{old}:{closing}")),
                ..CommandMeta::by(Actor::System {
                    component: "retention".into(),
                })
            },
            Command::Conversation {
                conversation_id: old,
                command: Box::new(ConversationCommand::Erase {
                    contact_id: None,
                    reason: "retention: closed more than 30 days ago (inbox policy)".into(),
                }),
            },
        )
        .await
        .unwrap();
    let blobs = keyed.blobs();
    assert!(blobs.get(file.sha256()).await.unwrap().is_some());
    let destroyed = format!("erased-subject-{old}");
    assert_eq!(keyed.secrets().get(&destroyed).await.unwrap(), None);
    // Nothing runs for days: what is left is still finished, however old.
    app.clock.advance(TimeDelta::days(3));

    let head = keyed.head().await.unwrap();
    let mut reactor = RetentionReactor::spawn(service.clone());
    swept(&mut reactor, 1).await;
    assert_eq!(blobs.get(file.sha256()).await.unwrap(), None);
    assert_eq!(blobs.get(original.sha256()).await.unwrap(), None);
    assert!(
        keyed.secrets().get(&destroyed).await.unwrap().is_some(),
        "its key was destroyed"
    );
    assert_eq!(erasures(&keyed, old).await.len(), 1);
    assert_eq!(
        keyed.head().await.unwrap(),
        head,
        "nothing more was written"
    );
    reactor.reactor.task.abort();
}

#[tokio::test]
async fn admins_and_the_system_erase_a_conversation_agents_do_not() {
    let (_app, keyed, service) = retained().await;
    let conversation = plain_mail(&service, MAIL_30).await;
    let erase = || Command::EraseConversation {
        conversation_id: conversation,
        reason: "asked to".into(),
        prepared: None,
    };
    let refused = service
        .execute(CommandMeta::by(Actor::User { id: AGENT }), erase())
        .await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::Domain(DomainError::Forbidden { .. }))
        ),
        "{refused:?}"
    );
    assert!(erasures(&keyed, conversation).await.is_empty());
    service
        .execute(CommandMeta::by(admin()), erase())
        .await
        .unwrap();
    assert_eq!(erasures(&keyed, conversation).await.len(), 1);
    let again = service.execute(CommandMeta::by(system()), erase()).await;
    assert!(
        matches!(
            again,
            Err(ServiceError::Domain(DomainError::Rejected {
                code: "ERASED",
                ..
            }))
        ),
        "{again:?}"
    );
}
