//! IMAP accounts against a real Dovecot (Debian's `dovecot-imapd`), started by each test as a
//! child process with a configuration of its own: loopback, a free port, plaintext login, one
//! user in a passwd file, maildirs in the test's temporary directory. Messages reach the mailbox
//! by `APPEND` from a second IMAP client.

use std::time::{Duration, Instant};

use async_imap::types::Flag;
use futures::TryStreamExt;
use proto_events::event::{EmailAccess, InboundMessage};
use proto_events::{Actor, DomainEvent};
use switchboard_domain::channel::ChannelCommand;
use switchboard_email::imap::{
    self, Checkpoint, ImapAccount, ImapError, ImapSettings, ImapState, ImapStatus, Importer,
    Password, TlsMode,
};
use switchboard_service::{Command as ServiceCommand, CommandMeta};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::dovecot::{Dovecot, PASSWORD, USER, dovecot_available};
use crate::support::{ADMIN, INBOX, Mailroom, mailroom};

/// How long a test waits for something asynchronous before failing.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long the wrong-password test waits for two more refusals, which Dovecot delays.
const LOGIN_DEADLINE: Duration = Duration::from_secs(60);
/// The admin's private account, connected by each test.
const PRIVATE: Uuid = Uuid::from_u128(33);

/// The admin's account on `dovecot`, feeding the private channel.
fn account_on(dovecot: &Dovecot, password: &str) -> ImapAccount {
    let mut account = ImapAccount::new(
        PRIVATE,
        "127.0.0.1",
        dovecot.port,
        TlsMode::Plain,
        USER,
        Password::new(password),
    );
    account.address = Some("admin@mail.acme.test".to_owned());
    account
}

/// A plain message from Ada with `subject` and `body`.
fn mail(message_id: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Ada Lovelace <ada@customer.example>\r\nTo: admin@mail.acme.test\r\n\
         Subject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Sun, 6 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn three_mails() -> Vec<Vec<u8>> {
    vec![
        mail("one@customer.example", "Pricing", "How much for 20 seats?"),
        mail("two@customer.example", "Invoice", "Where is my invoice?"),
        mail("three@customer.example", "Grüße", "Viele Grüße aus Köln"),
    ]
}

/// The organisation, with the admin's private account connected as a channel.
async fn room_with_private_account() -> Mailroom {
    let room = mailroom().await;
    room.service
        .execute(
            CommandMeta::by(Actor::User { id: ADMIN }),
            ServiceCommand::Channel(ChannelCommand::ConnectEmail {
                channel_id: PRIVATE,
                inbox_id: INBOX,
                address: "admin@mail.acme.test".into(),
                access: EmailAccess::Private {
                    owner_user_id: ADMIN,
                },
            }),
        )
        .await
        .expect("private account connected");
    room
}

/// The messages received on the private channel, in log order.
async fn received(room: &Mailroom) -> Vec<InboundMessage> {
    room.events()
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            DomainEvent::MessageReceived(m) if m.message.channel_id == PRIVATE => Some(m.message),
            _ => None,
        })
        .collect()
}

/// Settings for tests: quick retries, and polling so rare that only `IDLE` can bring mail in
/// within a test's deadline.
fn settings() -> ImapSettings {
    ImapSettings {
        poll_interval: Duration::from_secs(3600),
        command_timeout: DEADLINE,
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..ImapSettings::default()
    }
}

/// An importer of `account` into `room`, and the sender that stops it.
fn start(room: &Mailroom, account: ImapAccount) -> (Importer, oneshot::Sender<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let importer = imap::spawn(
        account,
        settings(),
        room.ingester.clone(),
        room.store.write_index(),
        async move {
            let _ = stopped.await;
        },
    );
    (importer, stop)
}

/// Waits until the importer's status satisfies `done`, failing after the deadline.
async fn wait_for(
    importer: &Importer,
    what: &str,
    done: impl Fn(&ImapStatus) -> bool,
) -> ImapStatus {
    wait_within(DEADLINE, importer, what, done).await
}

/// [`wait_for`] with a deadline of its own.
async fn wait_within(
    deadline: Duration,
    importer: &Importer,
    what: &str,
    done: impl Fn(&ImapStatus) -> bool,
) -> ImapStatus {
    let mut status = importer.status();
    let reached = tokio::time::timeout(deadline, async {
        status.wait_for(|s| done(s)).await.map(|s| s.clone())
    })
    .await;
    match reached {
        Ok(Ok(s)) => s,
        _ => panic!(
            "not reached in time: {what}; status: {:?}",
            *status.borrow()
        ),
    }
}

/// Stops the importer and checks that it ended without panicking.
async fn stop(importer: Importer, stop: oneshot::Sender<()>) {
    let status = importer.status();
    let _ = stop.send(());
    let ended = tokio::time::timeout(DEADLINE, importer.stopped())
        .await
        .expect("the importer stops in time");
    assert!(ended.is_ok(), "the importer's task failed: {ended:?}");
    assert_eq!(status.borrow().state, ImapState::Stopped);
}

fn idle_at(last_uid: u32) -> impl Fn(&ImapStatus) -> bool {
    move |s| s.state == ImapState::Idle && s.checkpoint.is_some_and(|c| c.last_uid == last_uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_mailbox_is_imported_without_marking_anything_seen() {
    if !dovecot_available() {
        return;
    }
    let dovecot = Dovecot::start();
    let room = room_with_private_account().await;
    dovecot.append("INBOX", &three_mails()).await;

    let (importer, stopper) = start(&room, account_on(&dovecot, PASSWORD));
    let status = wait_for(&importer, "three messages imported", idle_at(3)).await;
    assert_eq!((status.fetched, status.recorded), (3, 3));

    let messages = received(&room).await;
    let read: Vec<(Option<&str>, &str)> = messages
        .iter()
        .map(|m| (m.subject.as_deref(), m.body_text.trim()))
        .collect();
    assert_eq!(
        read,
        [
            (Some("Pricing"), "How much for 20 seats?"),
            (Some("Invoice"), "Where is my invoice?"),
            (Some("Grüße"), "Viele Grüße aus Köln"),
        ]
    );
    // Each kept byte for byte as the server holds it.
    let blobs = room.store.blobs();
    for (message, sent) in messages.iter().zip(three_mails()) {
        let raw = message.raw.as_ref().expect("the original is kept");
        let stored = blobs.get(&raw.blob.sha256).await.expect("read");
        assert_eq!(stored, Some(sent));
    }
    stop(importer, stopper).await;

    // Reading with BODY.PEEK left every message unseen.
    let mut client = dovecot.client().await;
    client.select("INBOX").await.expect("select");
    let flags: Vec<bool> = client
        .fetch("1:*", "FLAGS")
        .await
        .expect("fetch")
        .map_ok(|f| f.flags().any(|flag| flag == Flag::Seen))
        .try_collect()
        .await
        .expect("flags");
    assert_eq!(flags, [false, false, false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_importer_neither_fetches_nor_records_anything_again() {
    if !dovecot_available() {
        return;
    }
    let dovecot = Dovecot::start();
    let room = room_with_private_account().await;
    dovecot.append("INBOX", &three_mails()).await;
    let probe = imap::check(&account_on(&dovecot, PASSWORD), &settings())
        .await
        .expect("the account answers");
    assert_eq!(probe.messages, 3);

    let (first, stopper) = start(&room, account_on(&dovecot, PASSWORD));
    wait_for(&first, "three messages imported", idle_at(3)).await;
    stop(first, stopper).await;

    // The checkpoint as stored: this mailbox's UIDVALIDITY and the last UID, 3.
    let name = account_on(&dovecot, PASSWORD).cursor_name();
    assert!(name.starts_with(&imap::cursor_name(PRIVATE)), "{name}");
    let mut elsewhere = account_on(&dovecot, PASSWORD);
    elsewhere.mailbox = "Archive".into();
    assert_ne!(
        elsewhere.cursor_name(),
        name,
        "another mailbox, another checkpoint"
    );
    let stored = room
        .store
        .write_index()
        .cursor(&name)
        .await
        .expect("read")
        .expect("a checkpoint");
    let expected = Checkpoint {
        uid_validity: probe.uid_validity,
        last_uid: 3,
    };
    assert_eq!(Checkpoint::decode(&stored), Some(expected));
    let json: serde_json::Value = serde_json::from_slice(&stored).expect("JSON");
    assert_eq!(json["last_uid"], 3);
    assert_eq!(json["uid_validity"], probe.uid_validity);

    let (second, stopper) = start(&room, account_on(&dovecot, PASSWORD));
    let status = wait_for(&second, "up to date again", |s| s.state == ImapState::Idle).await;
    assert_eq!(status.checkpoint, Some(expected));
    assert_eq!(
        (status.fetched, status.recorded),
        (0, 0),
        "nothing is fetched again"
    );
    assert_eq!(received(&room).await.len(), 3);
    stop(second, stopper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_appended_while_running_arrives_through_idle() {
    if !dovecot_available() {
        return;
    }
    let dovecot = Dovecot::start();
    let room = room_with_private_account().await;
    dovecot
        .append("INBOX", &[mail("first@customer.example", "First", "Hello")])
        .await;
    let (importer, stopper) = start(&room, account_on(&dovecot, PASSWORD));
    let status = wait_for(&importer, "waiting in IDLE", idle_at(1)).await;
    assert_eq!(status.idle_offered, Some(true), "Dovecot offers IDLE");

    dovecot
        .append(
            "INBOX",
            &[mail(
                "later@customer.example",
                "Arrived later",
                "Are you there?",
            )],
        )
        .await;
    // Polling is an hour apart in these settings: only IDLE can bring it in time.
    let deadline = Instant::now() + DEADLINE;
    let later = loop {
        let messages = received(&room).await;
        if let Some(later) = messages
            .into_iter()
            .find(|m| m.subject.as_deref() == Some("Arrived later"))
        {
            break later;
        }
        assert!(
            Instant::now() < deadline,
            "the appended message did not arrive in time; status: {:?}",
            *importer.status().borrow()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(later.body_text.trim(), "Are you there?");
    wait_for(&importer, "idle again after the new message", idle_at(2)).await;
    stop(importer, stopper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_reported_and_retried_without_a_panic() {
    if !dovecot_available() {
        return;
    }
    let dovecot = Dovecot::start();
    let room = room_with_private_account().await;
    let wrong = "not-the-password-1234";

    let refused = imap::check(&account_on(&dovecot, wrong), &settings()).await;
    let Err(ImapError::Login(reason)) = &refused else {
        panic!("expected a refused login, got {refused:?}");
    };
    let shown = format!("{} {refused:?}", refused.clone().unwrap_err());
    assert!(!shown.contains(wrong), "the password shows: {shown}");
    assert!(
        reason.to_lowercase().contains("authentication failed"),
        "{reason}"
    );

    let (importer, stopper) = start(&room, account_on(&dovecot, wrong));
    // Dovecot's penalty for failed logins from one address doubles with every one (2, 4, … s).
    let status = wait_within(LOGIN_DEADLINE, &importer, "the login failed twice", |s| {
        matches!(&s.state, ImapState::Failed { error: ImapError::Login(_), attempts, .. } if *attempts >= 2)
    })
    .await;
    assert_eq!(status.fetched, 0);
    let ImapState::Failed { retry_in, .. } = status.state else {
        unreachable!()
    };
    assert!(
        retry_in >= Duration::from_millis(200),
        "backoff grows: {retry_in:?}"
    );
    stop(importer, stopper).await;
    assert!(received(&room).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_uid_validity_imports_again_from_uid_1_without_duplicates() {
    if !dovecot_available() {
        return;
    }
    let dovecot = Dovecot::start();
    let room = room_with_private_account().await;
    let mut client = dovecot.client().await;
    client.create("Support").await.expect("create");
    let mails = three_mails();
    dovecot.append("Support", &mails[..2]).await;
    let mut account = account_on(&dovecot, PASSWORD);
    account.mailbox = "Support".to_owned();
    let before = imap::check(&account, &settings()).await.expect("probe");

    let (first, stopper) = start(&room, account.clone());
    wait_for(&first, "two messages imported", idle_at(2)).await;
    stop(first, stopper).await;

    // The mailbox is made anew: same name, new UIDVALIDITY, the two messages and a third.
    client.delete("Support").await.expect("delete");
    client.create("Support").await.expect("create");
    client.logout().await.expect("logout");
    dovecot.append("Support", &mails).await;
    let after = imap::check(&account, &settings()).await.expect("probe");
    assert_ne!(after.uid_validity, before.uid_validity);

    let (second, stopper) = start(&room, account);
    let status = wait_for(&second, "imported again from UID 1", idle_at(3)).await;
    assert_eq!(
        status.checkpoint.map(|c| c.uid_validity),
        Some(after.uid_validity)
    );
    assert_eq!(
        (status.fetched, status.recorded),
        (3, 1),
        "all three fetched, one new"
    );
    assert_eq!(received(&room).await.len(), 3);
    stop(second, stopper).await;
}

/// Waits until the supervisor's running importers are exactly `channels`.
async fn running(accounts: &switchboard_email::accounts::Accounts, channels: &[Uuid]) {
    let mut statuses = accounts.statuses.clone();
    let mut wanted: Vec<Uuid> = channels.to_vec();
    wanted.sort();
    tokio::time::timeout(
        DEADLINE,
        statuses.wait_for(|running| {
            let mut ids: Vec<Uuid> = running.keys().copied().collect();
            ids.sort();
            ids == wanted
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("the importers running never became {wanted:?}"))
    .expect("the supervisor runs");
}

/// Sets (or, with `None`, clears) the private channel's IMAP mailbox as its owner would.
async fn set_mailbox(room: &Mailroom, server: Option<switchboard_domain::channel::ImapSettings>) {
    use switchboard_domain::channel::Setting;
    room.service
        .execute(
            CommandMeta::by(Actor::User { id: ADMIN }),
            ServiceCommand::Channel(ChannelCommand::SetEmailServers {
                channel_id: PRIVATE,
                imap: server.map_or(Setting::Clear, Setting::Set),
                smtp: Setting::Keep,
                ingest_secret: Setting::Keep,
            }),
        )
        .await
        .expect("mailbox set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_set_through_the_channel_is_imported_and_stopped_when_removed() {
    use switchboard_store::secret::{MasterKey, SecretValue, Vault};
    if !dovecot_available() {
        return;
    }
    let dovecot = Dovecot::start();
    let room = room_with_private_account().await;
    dovecot.append("INBOX", &three_mails()).await;
    let vault = Vault::new(room.store.secrets(), &MasterKey::from_bytes([9; 32]));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let accounts = switchboard_email::accounts::supervise(
        room.service.clone(),
        vault.clone(),
        settings(),
        Default::default(),
        async move {
            let _ = stop_rx.await;
        },
    );
    running(&accounts, &[]).await;

    // The owner sets the mailbox: the supervisor opens the sealed password and imports.
    let password = vault
        .put(&SecretValue::new(PASSWORD))
        .await
        .expect("sealed");
    let mailbox = switchboard_domain::channel::ImapSettings {
        host: "127.0.0.1".into(),
        port: dovecot.port,
        security: proto_events::event::ServerSecurity::Plain,
        username: USER.into(),
        password_secret: Some(password.0),
        mailbox: None,
    };
    set_mailbox(&room, Some(mailbox.clone())).await;
    running(&accounts, &[PRIVATE]).await;
    let deadline = Instant::now() + DEADLINE;
    while received(&room).await.len() < 3 {
        assert!(Instant::now() < deadline, "the mailbox was not imported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = accounts.statuses.borrow()[&PRIVATE].clone();
    let mut status = status;
    tokio::time::timeout(DEADLINE, status.wait_for(idle_at(3)))
        .await
        .expect("idle after the three messages")
        .expect("status");

    // Removed: the importer stops. Set again: it resumes from its checkpoint, importing only
    // what is new.
    set_mailbox(&room, None).await;
    running(&accounts, &[]).await;
    dovecot
        .append(
            "INBOX",
            &[mail("four@customer.example", "Later", "One more thing")],
        )
        .await;
    set_mailbox(&room, Some(mailbox)).await;
    running(&accounts, &[PRIVATE]).await;
    let deadline = Instant::now() + DEADLINE;
    while received(&room).await.len() < 4 {
        assert!(Instant::now() < deadline, "the fourth message never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut status = accounts.statuses.borrow()[&PRIVATE].clone();
    let status = tokio::time::timeout(DEADLINE, status.wait_for(idle_at(4)))
        .await
        .expect("idle after the fourth message")
        .expect("status")
        .clone();
    assert_eq!(status.fetched, 1, "only the new message was fetched again");
    assert_eq!(received(&room).await.len(), 4);

    let _ = stop_tx.send(());
    tokio::time::timeout(DEADLINE, accounts.task)
        .await
        .expect("the supervisor stops in time")
        .expect("the supervisor's task ends normally");
}
