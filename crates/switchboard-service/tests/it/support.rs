//! A command service on a fresh embedded store, with an organisation and an admin.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use proto_events::Actor;
use proto_events::clock::ManualClock;
use proto_events::event::Role;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::{Command, CommandMeta, CommandService};
use switchboard_store::EventStore;
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;
use uuid::Uuid;

pub(crate) const ADMIN: Uuid = Uuid::from_u128(11);

pub(crate) fn system() -> Actor {
    Actor::System {
        component: "test".into(),
    }
}

pub(crate) fn admin() -> Actor {
    Actor::User { id: ADMIN }
}

pub(crate) struct App {
    pub(crate) dir: TempDir,
    pub(crate) store: SqliteStore,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) service: CommandService,
}

pub(crate) async fn service_on(dir: TempDir, clock: Arc<ManualClock>) -> App {
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let service = CommandService::open(
        Arc::new(store.clone()) as Arc<dyn EventStore>,
        clock.clone(),
    )
    .await
    .unwrap();
    App {
        dir,
        store,
        clock,
        service,
    }
}

/// A fresh store with an organisation and one admin, set up by the system actor.
pub(crate) async fn app() -> App {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
    ));
    let app = service_on(tempfile::tempdir().unwrap(), clock).await;
    let setup = [
        SetupCommand::CreateOrganisation {
            organisation_id: Uuid::from_u128(1),
            name: "Acme".into(),
            time_zone: "Europe/Paris".into(),
        },
        SetupCommand::CreateUser {
            user_id: ADMIN,
            email: "admin@acme.test".into(),
            name: "Admin".into(),
            role: Role::Admin,
        },
    ];
    for command in setup {
        app.service
            .execute(CommandMeta::by(system()), Command::Setup(command))
            .await
            .unwrap();
    }
    app
}

/// A chat message from `visitor` on `channel_id`.
pub(crate) fn chat(channel_id: Uuid, visitor: &str, text: &str) -> switchboard_service::Command {
    use proto_events::event::{ChannelKind, Identity};
    inbound(
        channel_id,
        ChannelKind::Chat,
        Identity::ChatVisitor {
            visitor_id: visitor.into(),
        },
        text,
    )
}

/// A message from `from` on `channel_id`, a channel of `kind` (not e-mail: no headers).
pub(crate) fn inbound(
    channel_id: Uuid,
    kind: proto_events::event::ChannelKind,
    from: proto_events::event::Identity,
    text: &str,
) -> switchboard_service::Command {
    use proto_events::event::{ChannelKind, InboundMessage};
    switchboard_service::Command::ReceiveMessage {
        channel_id,
        message: Box::new(InboundMessage {
            message_id: Uuid::now_v7(),
            channel_id,
            channel_kind: kind,
            provider_message_id: (kind == ChannelKind::Messenger)
                .then(|| Uuid::now_v7().to_string()),
            from,
            from_name: None,
            contact_id: None,
            subject: None,
            body_text: text.into(),
            body_html: None,
            email: None,
            form_fields: vec![],
            attachments: Vec::new(),
            raw: None,
        }),
        signals: None,
    }
}

/// The conversation a command's outcome wrote to.
pub(crate) fn conversation_of(outcome: &switchboard_service::Outcome) -> Uuid {
    outcome
        .stream
        .strip_prefix("conversation-")
        .unwrap()
        .parse()
        .unwrap()
}

/// Runs `command` as `actor` and expects it to succeed.
pub(crate) async fn run(
    app: &App,
    actor: Actor,
    command: switchboard_service::Command,
) -> switchboard_service::Outcome {
    let name = command.name();
    app.service
        .execute(CommandMeta::by(actor), command)
        .await
        .unwrap_or_else(|e| panic!("{name} failed: {e}"))
}

/// Every event in the store, decoded.
pub(crate) async fn history(app: &App) -> Vec<proto_events::Envelope> {
    let mut all = Vec::new();
    let mut after = switchboard_store::Position::START;
    loop {
        let page = app.store.read_all(after, 1000).await.unwrap();
        let Some(last) = page.last() else { return all };
        after = last.position;
        all.extend(
            page.iter()
                .map(|e| switchboard_service::codec::decode(e).unwrap()),
        );
    }
}

/// Another command service on the same store (a restart, or a second node).
pub(crate) async fn app_service(app: &App) -> CommandService {
    CommandService::open(
        Arc::new(app.store.clone()) as Arc<dyn EventStore>,
        app.clock.clone(),
    )
    .await
    .unwrap()
}

/// The embedded store with instruments: it counts the events `read_all` returns, can refuse
/// the first append to streams of a prefix, as a crash between a command's appends would, and
/// can hold one append, as a slow disk would.
#[derive(Debug)]
pub(crate) struct Instrumented {
    inner: SqliteStore,
    fail_prefix: std::sync::Mutex<Option<String>>,
    pub(crate) events_read: std::sync::atomic::AtomicU64,
    hold: std::sync::Mutex<Option<Hold>>,
    /// Where every subscription started.
    pub(crate) subscribed_after: std::sync::Mutex<Vec<switchboard_store::Position>>,
    /// Whether the next subscription fails at once (as a lost database connection would).
    pub(crate) fail_next_subscription: std::sync::atomic::AtomicBool,
}

impl Instrumented {
    pub(crate) fn new(inner: SqliteStore) -> Instrumented {
        Instrumented {
            inner,
            fail_prefix: std::sync::Mutex::new(None),
            events_read: 0.into(),
            hold: std::sync::Mutex::new(None),
            subscribed_after: std::sync::Mutex::new(Vec::new()),
            fail_next_subscription: false.into(),
        }
    }

    /// Refuses the next append to a stream starting with `prefix` (once).
    pub(crate) fn fail_first_append_to(&self, prefix: &str) {
        *self.fail_prefix.lock().unwrap() = Some(prefix.to_owned());
    }

    /// Holds the next append to a stream starting with `prefix` before it reaches the store,
    /// as a slow disk would: the first receiver is told when it is held, the append goes on
    /// when the sender is used (or dropped).
    pub(crate) fn hold_next_append_to(
        &self,
        prefix: &str,
    ) -> (
        tokio::sync::oneshot::Receiver<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (held, reached) = tokio::sync::oneshot::channel();
        let (release, released) = tokio::sync::oneshot::channel();
        *self.hold.lock().unwrap() = Some(Hold {
            prefix: prefix.to_owned(),
            held,
            released,
        });
        (reached, release)
    }
}

/// An append to hold (see [`Instrumented::hold_next_append_to`]).
#[derive(Debug)]
struct Hold {
    prefix: String,
    held: tokio::sync::oneshot::Sender<()>,
    released: tokio::sync::oneshot::Receiver<()>,
}

#[async_trait::async_trait]
impl EventStore for Instrumented {
    async fn append(
        &self,
        stream: &str,
        expected: switchboard_store::ExpectedVersion,
        events: Vec<switchboard_store::NewEvent>,
    ) -> Result<switchboard_store::AppendResult, switchboard_store::StoreError> {
        let fail = {
            let mut prefix = self.fail_prefix.lock().unwrap();
            let fail = prefix.as_deref().is_some_and(|p| stream.starts_with(p));
            if fail {
                *prefix = None;
            }
            fail
        };
        if fail {
            return Err(switchboard_store::StoreError::Closed);
        }
        let hold = {
            let mut hold = self.hold.lock().unwrap();
            match hold.as_ref() {
                Some(h) if stream.starts_with(&h.prefix) => hold.take(),
                _ => None,
            }
        };
        if let Some(hold) = hold {
            let _ = hold.held.send(());
            let _ = hold.released.await;
        }
        self.inner.append(stream, expected, events).await
    }
    async fn restore(
        &self,
        stream: &str,
        expected: switchboard_store::ExpectedVersion,
        events: Vec<(switchboard_store::NewEvent, switchboard_store::Origin)>,
    ) -> Result<switchboard_store::AppendResult, switchboard_store::StoreError> {
        self.inner.restore(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &str,
        direction: switchboard_store::Direction,
        from: switchboard_store::StreamFrom,
        limit: usize,
    ) -> Result<Vec<switchboard_store::RecordedEvent>, switchboard_store::StoreError> {
        self.inner.read_stream(stream, direction, from, limit).await
    }
    async fn read_all(
        &self,
        after: switchboard_store::Position,
        limit: usize,
    ) -> Result<Vec<switchboard_store::RecordedEvent>, switchboard_store::StoreError> {
        let events = self.inner.read_all(after, limit).await?;
        self.events_read
            .fetch_add(events.len() as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(events)
    }
    async fn stream_version(
        &self,
        stream: &str,
    ) -> Result<Option<u64>, switchboard_store::StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn head(&self) -> Result<switchboard_store::Position, switchboard_store::StoreError> {
        self.inner.head().await
    }
    fn subscribe_all(&self, after: switchboard_store::Position) -> switchboard_store::EventStream {
        self.subscribed_after.lock().unwrap().push(after);
        if self
            .fail_next_subscription
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            let lost =
                switchboard_store::StoreError::backend(std::io::Error::other("connection lost"));
            return futures::StreamExt::boxed(futures::stream::once(async move { Err(lost) }));
        }
        self.inner.subscribe_all(after)
    }
    fn max_append_bytes(&self) -> usize {
        self.inner.max_append_bytes()
    }
    fn write_index(&self) -> Arc<dyn switchboard_store::WriteIndex> {
        self.inner.write_index()
    }

    fn blobs(&self) -> Arc<dyn switchboard_store::BlobStore> {
        self.inner.blobs()
    }

    fn secrets(&self) -> Arc<dyn switchboard_store::SecretStore> {
        self.inner.secrets()
    }
}
