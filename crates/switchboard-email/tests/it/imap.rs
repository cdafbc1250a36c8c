//! IMAP accounts against a real Dovecot (Debian's `dovecot-imapd`), started by each test as a
//! child process with a configuration of its own: loopback, a free port, plaintext login, one
//! user in a passwd file, maildirs in the test's temporary directory. Messages reach the mailbox
//! by `APPEND` from a second IMAP client.

use std::path::Path;
use std::process::{Child, Command, Stdio};
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
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::support::{ADMIN, INBOX, Mailroom, mailroom};

const DOVECOT: &str = "/usr/sbin/dovecot";
/// How long a test waits for something asynchronous before failing.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long the wrong-password test waits for two more refusals, which Dovecot delays.
const LOGIN_DEADLINE: Duration = Duration::from_secs(60);
/// The admin's private account, connected by each test.
const PRIVATE: Uuid = Uuid::from_u128(33);
const USER: &str = "admin";
const PASSWORD: &str = "correct horse battery staple";

/// Whether Dovecot can run here: installed, and this process is root (the configuration runs
/// the mail processes as Debian's `dovecot` user). Without it the test is skipped, loudly,
/// unless `SWITCHBOARD_REQUIRE_TOOLS=1` (as `.ci/run` sets, after installing it) makes that a
/// failure.
fn dovecot_available() -> bool {
    let installed = Path::new(DOVECOT).exists();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    if !(installed && root) {
        let why = if installed {
            "the tests start it as root, and this is not root"
        } else {
            "it is not installed: apt-get install dovecot-imapd"
        };
        assert!(
            std::env::var("SWITCHBOARD_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "Dovecot is required (SWITCHBOARD_REQUIRE_TOOLS=1) but cannot run: {why}"
        );
        eprintln!("SKIPPED: Dovecot (Debian package `dovecot-imapd`) cannot run: {why}");
    }
    installed && root
}

/// A Dovecot of the test's own, stopped when dropped.
struct Dovecot {
    child: Child,
    dir: TempDir,
    port: u16,
}

impl Dovecot {
    /// Starts Dovecot with one user, `USER` with `PASSWORD`, and waits until it greets.
    fn start() -> Dovecot {
        // Another process may take the free port between our probe and Dovecot's bind.
        for _ in 0..5 {
            if let Some(dovecot) = Dovecot::try_start() {
                return dovecot;
            }
        }
        panic!("Dovecot did not start in five attempts");
    }

    fn try_start() -> Option<Dovecot> {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        // The login and mail processes drop root: they must reach the run and mail directories.
        let open = |path: &Path, mode| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .expect("permissions");
        };
        open(root, 0o755);
        std::fs::create_dir(root.join("mail")).expect("mail dir");
        open(&root.join("mail"), 0o777);
        std::fs::write(
            root.join("users"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
        )
        .expect("users");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let root_str = root.display();
        let config = format!(
            "base_dir = {root_str}/run
state_dir = {root_str}/state
log_path = {root_str}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{root_str}/mail/%u/Maildir
# Notice new mail within a second even where inotify is unavailable.
mailbox_idle_check_interval = 1 secs
# Refuse a wrong password at once: no delay, no growing penalty for the same address.
auth_failure_delay = 0 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root_str}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root_str}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"
        );
        let config_path = root.join("dovecot.conf");
        std::fs::write(&config_path, config).expect("config");
        let output = std::fs::File::create(root.join("dovecot.out")).expect("output file");
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("output file"))
            .stderr(output)
            .spawn()
            .expect("dovecot starts");
        let mut dovecot = Dovecot { child, dir, port };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = dovecot.child.try_wait() {
                let log = dovecot.log();
                if log.contains("Address already in use") {
                    return None;
                }
                panic!("dovecot exited with {status}:\n{log}");
            }
            if greets(port) {
                return Some(dovecot);
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not greet in time:\n{}",
                dovecot.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What Dovecot printed and logged.
    fn log(&self) -> String {
        let read = |name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("dovecot.out"), read("dovecot.log"))
    }

    /// The admin's account on this server, feeding the private channel.
    fn account(&self, password: &str) -> ImapAccount {
        let mut account = ImapAccount::new(
            PRIVATE,
            "127.0.0.1",
            self.port,
            TlsMode::Plain,
            USER,
            Password::new(password),
        );
        account.address = Some("admin@mail.acme.test".to_owned());
        account
    }

    /// A second client, logged in.
    async fn client(&self) -> async_imap::Session<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("greeting")
            .expect("greeting");
        client
            .login(USER, PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .expect("login")
    }

    /// Appends `messages` to `mailbox` through a second client.
    async fn append(&self, mailbox: &str, messages: &[Vec<u8>]) {
        let mut session = self.client().await;
        for raw in messages {
            session
                .append(mailbox, None, None, raw)
                .await
                .expect("append");
        }
        session.logout().await.expect("logout");
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its login, auth and mail processes; SIGKILL if it hangs.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether an IMAP server on `port` greets.
fn greets(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let mut greeting = [0u8; 4];
    tcp.read_exact(&mut greeting).is_ok() && &greeting == b"* OK"
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

    let (importer, stopper) = start(&room, dovecot.account(PASSWORD));
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
    let probe = imap::check(&dovecot.account(PASSWORD), &settings())
        .await
        .expect("the account answers");
    assert_eq!(probe.messages, 3);

    let (first, stopper) = start(&room, dovecot.account(PASSWORD));
    wait_for(&first, "three messages imported", idle_at(3)).await;
    stop(first, stopper).await;

    // The checkpoint as stored: this mailbox's UIDVALIDITY and the last UID, 3.
    let name = imap::cursor_name(PRIVATE);
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

    let (second, stopper) = start(&room, dovecot.account(PASSWORD));
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
    let (importer, stopper) = start(&room, dovecot.account(PASSWORD));
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

    let refused = imap::check(&dovecot.account(wrong), &settings()).await;
    let Err(ImapError::Login(reason)) = &refused else {
        panic!("expected a refused login, got {refused:?}");
    };
    let shown = format!("{} {refused:?}", refused.clone().unwrap_err());
    assert!(!shown.contains(wrong), "the password shows: {shown}");
    assert!(
        reason.to_lowercase().contains("authentication failed"),
        "{reason}"
    );

    let (importer, stopper) = start(&room, dovecot.account(wrong));
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
    let mut account = dovecot.account(PASSWORD);
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
