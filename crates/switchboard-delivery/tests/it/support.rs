//! What the delivery tests share: a command service on a fresh embedded store with an inbox, an
//! e-mail channel and an agent; the test relay (aiosmtpd, a child process); the worker; waits
//! with deadlines.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use proto_events::clock::{Clock, SystemClock};
use proto_events::event::{
    Attachment, BlobRef, ChannelKind, EmailAccess, EmailHeaders, Identity, InboundMessage, Member,
    Role,
};
use proto_events::{Actor, DomainEvent, Envelope};
use switchboard_delivery::{DeliverySettings, DeliveryWorker, FromName, Relay};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::{Command, CommandMeta, CommandService};
use switchboard_store::secret::{MasterKey, Vault};
use switchboard_store::{EventStore, Position};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;
use tokio::time::Instant;
use uuid::Uuid;

pub(crate) const INBOX: Uuid = Uuid::from_u128(30);
pub(crate) const MAIL: Uuid = Uuid::from_u128(41);
pub(crate) const FORM: Uuid = Uuid::from_u128(42);
pub(crate) const ADMIN: Uuid = Uuid::from_u128(11);
pub(crate) const AGENT: Uuid = Uuid::from_u128(12);

/// How long a test waits for what it expects before failing.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// A command service on a store in a temporary directory.
pub(crate) struct App {
    pub(crate) dir: TempDir,
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) service: Arc<CommandService>,
}

impl App {
    /// The organisation, an admin, the agent Ada, the Support inbox with Ada in it, its shared
    /// address support@acme.test and a contact form.
    pub(crate) async fn new() -> App {
        App::new_on(Arc::new(SystemClock)).await
    }

    /// [`App::new`], its service's time read from `clock`.
    pub(crate) async fn new_on(clock: Arc<dyn Clock>) -> App {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open_on(dir, clock).await;
        let system = Actor::System {
            component: "test".into(),
        };
        let admin = Actor::User { id: ADMIN };
        let setup = [
            (
                system.clone(),
                Command::Setup(SetupCommand::CreateOrganisation {
                    organisation_id: Uuid::from_u128(1),
                    name: "Acme".into(),
                    time_zone: "Europe/Paris".into(),
                }),
            ),
            (
                system,
                Command::Setup(SetupCommand::CreateUser {
                    user_id: ADMIN,
                    email: "admin@acme.test".into(),
                    name: "Admin".into(),
                    role: Role::Admin,
                }),
            ),
            (
                admin.clone(),
                Command::Setup(SetupCommand::CreateUser {
                    user_id: AGENT,
                    email: "ada@acme.test".into(),
                    name: "Ada Agent".into(),
                    role: Role::Agent,
                }),
            ),
            (
                admin.clone(),
                Command::Setup(SetupCommand::CreateInbox {
                    inbox_id: INBOX,
                    name: "Support".into(),
                }),
            ),
            (
                admin.clone(),
                Command::Setup(SetupCommand::AddInboxMember {
                    inbox_id: INBOX,
                    member: Member::User { id: AGENT },
                }),
            ),
            (
                admin.clone(),
                Command::Channel(ChannelCommand::ConnectEmail {
                    channel_id: MAIL,
                    inbox_id: INBOX,
                    address: "support@acme.test".into(),
                    access: EmailAccess::Shared,
                }),
            ),
            (
                admin,
                Command::Channel(ChannelCommand::ConnectForm {
                    channel_id: FORM,
                    inbox_id: INBOX,
                    name: "Contact us".into(),
                }),
            ),
        ];
        for (actor, command) in setup {
            let name = command.name();
            app.service
                .execute(CommandMeta::by(actor), command)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        app
    }

    /// The service on the store in `dir` (new, or a restart).
    pub(crate) async fn open(dir: TempDir) -> App {
        App::open_on(dir, Arc::new(SystemClock)).await
    }

    /// [`App::open`], the service's time read from `clock`.
    pub(crate) async fn open_on(dir: TempDir, clock: Arc<dyn Clock>) -> App {
        let store: Arc<dyn EventStore> =
            Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        let service = Arc::new(CommandService::open(store.clone(), clock).await.unwrap());
        App {
            dir,
            store,
            service,
        }
    }

    /// A customer's e-mail to support@ with Message-ID `message_id` (answering
    /// `in_reply_to`, if any); returns its conversation.
    pub(crate) async fn customer_writes(
        &self,
        from: &str,
        message_id: &str,
        in_reply_to: Option<&str>,
    ) -> Uuid {
        let message = InboundMessage {
            message_id: Uuid::now_v7(),
            channel_id: MAIL,
            channel_kind: ChannelKind::Email,
            provider_message_id: None,
            from: Identity::Email {
                address: from.into(),
            },
            from_name: Some("Grace Customer".into()),
            contact_id: None,
            subject: Some("Pricing for 20 seats".into()),
            body_text: "How much would it be?".into(),
            body_html: None,
            email: Some(EmailHeaders {
                message_id: message_id.into(),
                in_reply_to: in_reply_to.map(Into::into),
                references: vec!["older@customer.test".into()]
                    .into_iter()
                    .chain(in_reply_to.map(Into::into))
                    .collect(),
                to: vec!["support@acme.test".into()],
                cc: vec![],
            }),
            form_fields: vec![],
            attachments: Vec::new(),
            raw: None,
        };
        self.receive(MAIL, message).await
    }

    /// A form submission by a visitor who left `email`; returns its conversation.
    pub(crate) async fn visitor_submits_form(&self, email: &str) -> Uuid {
        let message = InboundMessage {
            message_id: Uuid::now_v7(),
            channel_id: FORM,
            channel_kind: ChannelKind::Form,
            provider_message_id: None,
            from: Identity::Email {
                address: email.into(),
            },
            from_name: Some("Visitor".into()),
            contact_id: None,
            subject: Some("Demo request".into()),
            body_text: "Please call me.".into(),
            body_html: None,
            email: None,
            form_fields: vec![],
            attachments: Vec::new(),
            raw: None,
        };
        self.receive(FORM, message).await
    }

    /// `message` received through `channel_id`; returns its conversation.
    pub(crate) async fn receive(&self, channel_id: Uuid, message: InboundMessage) -> Uuid {
        let outcome = self
            .service
            .execute(
                CommandMeta::by(Actor::Channel { id: channel_id }),
                Command::ReceiveMessage {
                    channel_id,
                    message: Box::new(message),
                    signals: None,
                },
            )
            .await
            .unwrap();
        outcome
            .stream
            .strip_prefix("conversation-")
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Ada replies in `conversation` with `files` (name, type, bytes) put in the blob store;
    /// returns the reply's message id.
    pub(crate) async fn agent_replies(
        &self,
        conversation: Uuid,
        text: &str,
        files: &[(&str, &str, &[u8])],
    ) -> Uuid {
        let mut attachments = Vec::new();
        for (name, content_type, bytes) in files {
            let sha256 = self.store.blobs().put(bytes.to_vec()).await.unwrap();
            attachments.push(Attachment {
                blob: BlobRef {
                    sha256,
                    size: bytes.len() as u64,
                },
                file_name: Some((*name).into()),
                content_type: (*content_type).into(),
                content_id: None,
                inline: false,
            });
        }
        let message_id = Uuid::now_v7();
        self.service
            .execute(
                CommandMeta::by(Actor::User { id: AGENT }),
                Command::Conversation {
                    conversation_id: conversation,
                    command: Box::new(ConversationCommand::SendReply {
                        message_id,
                        body_text: text.into(),
                        body_html: Some(format!("<p>{text}</p>")),
                        subject: None,
                        attachments,
                    }),
                },
            )
            .await
            .unwrap();
        message_id
    }

    /// Starts the worker with the relay at `url`.
    /// The vault channel passwords are sealed in (a fixed test key).
    pub(crate) fn vault(&self) -> Vault {
        Vault::new(self.store.secrets(), &MasterKey::from_bytes([7; 32]))
    }

    pub(crate) fn worker(&self, url: &str, retry_for: Duration) -> DeliveryWorker {
        self.worker_on(url, retry_for, Arc::new(SystemClock))
    }

    /// Starts the worker with the relay at `url`, its time read from `clock`.
    pub(crate) fn worker_on(
        &self,
        url: &str,
        retry_for: Duration,
        clock: Arc<dyn Clock>,
    ) -> DeliveryWorker {
        self.worker_with(url, retry_for, clock, None)
    }

    /// [`App::worker_on`], e-mailing chat replies unseen for `chat_email_unseen_after`.
    pub(crate) fn worker_with(
        &self,
        url: &str,
        retry_for: Duration,
        clock: Arc<dyn Clock>,
        chat_email_unseen_after: Option<Duration>,
    ) -> DeliveryWorker {
        let relay = Relay::new(&url.parse().unwrap(), Duration::from_secs(10)).unwrap();
        DeliveryWorker::spawn(
            self.service.clone(),
            DeliverySettings {
                relay: Some(relay),
                vault: Some(self.vault()),
                retry_for,
                from_name: FromName::AgentViaInbox,
                clock,
                messenger: None,
                chat_email_unseen_after,
            },
        )
    }

    /// Waits for the first event after `after` that `matches` picks, and returns it.
    pub(crate) async fn event<T>(
        &self,
        mut matches: impl FnMut(&Envelope) -> Option<T>,
    ) -> (Position, T) {
        let mut events = self.store.subscribe_all(Position::START);
        let wait = async {
            while let Some(recorded) = events.next().await {
                let recorded = recorded.unwrap();
                let envelope = switchboard_service::codec::decode(&recorded).unwrap();
                if let Some(found) = matches(&envelope) {
                    return (recorded.position, found);
                }
            }
            panic!("the store's subscription ended");
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .expect("the expected event within the deadline")
    }

    /// Every event of the log, decoded.
    pub(crate) async fn history(&self) -> Vec<Envelope> {
        let mut all = Vec::new();
        let mut after = Position::START;
        loop {
            let page = self.store.read_all(after, 1000).await.unwrap();
            let Some(last) = page.last() else { return all };
            after = last.position;
            all.extend(
                page.iter()
                    .map(|e| switchboard_service::codec::decode(e).unwrap()),
            );
        }
    }
}

/// The recorded `ReplySent` of `message_id`.
pub(crate) fn reply_sent(history: &[Envelope], message_id: Uuid) -> proto_events::event::ReplySent {
    history
        .iter()
        .find_map(|e| match &e.payload {
            DomainEvent::ReplySent(r) if r.message_id == message_id => Some(r.clone()),
            _ => None,
        })
        .expect("the reply was recorded")
}

/// aiosmtpd, running `relay.py` as a child process; killed when dropped.
pub(crate) struct TestRelay {
    child: Child,
    pub(crate) port: u16,
    pub(crate) dir: TempDir,
}

impl TestRelay {
    /// Starts the relay, or `None` (the test is skipped) when aiosmtpd is not installed and
    /// `SWITCHBOARD_REQUIRE_TOOLS` is not `1`. `.ci/run` installs it and sets both
    /// variables; `SWITCHBOARD_TEST_PYTHON` names the interpreter (default `python3`).
    pub(crate) fn start(auth: Option<&str>) -> Option<TestRelay> {
        let python = std::env::var("SWITCHBOARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let installed = Process::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            let required = std::env::var("SWITCHBOARD_REQUIRE_TOOLS").as_deref() == Ok("1");
            assert!(
                !required,
                "aiosmtpd is not importable by {python}; run .ci/run's install step"
            );
            eprintln!("skipped: aiosmtpd is not importable by {python}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/relay.py");
        let mut command = Process::new(&python);
        command.arg(&script).arg(dir.path());
        if let Some(credentials) = auth {
            command.args(["--auth", credentials]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the relay prints its port");
        Some(TestRelay { child, port, dir })
    }

    /// The URL the worker sends to.
    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// The messages received so far, in order.
    pub(crate) fn received(&self) -> Vec<PathBuf> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|entry| {
                let path = entry.unwrap().path();
                let n = path.file_stem()?.to_str()?.parse().ok()?;
                (path.extension()? == "eml").then_some((n, path))
            })
            .collect();
        files.sort();
        files.into_iter().map(|(_, path)| path).collect()
    }

    /// Waits until `count` messages were received, and returns them.
    pub(crate) async fn wait_for(&self, count: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let files = self.received();
            if files.len() >= count {
                return files.iter().map(|p| std::fs::read(p).unwrap()).collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} message(s) received, {count} expected",
                files.len()
            );
            // Polling a directory: the relay is another process, with nothing else to wait on.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on: bound, then let go.
pub(crate) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
