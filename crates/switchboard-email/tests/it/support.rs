//! An organisation with a Support inbox whose team address is `support@acme.test`, on a fresh
//! embedded store, and an ingester for it.

use std::sync::Arc;

use proto_events::event::{EmailAccess, Role};
use proto_events::{Actor, Envelope};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::setup::SetupCommand;
use switchboard_email::Ingester;
use switchboard_service::{Command, CommandMeta, CommandService};
use switchboard_store::{EventStore, Position};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;
use uuid::Uuid;

pub(crate) const ADMIN: Uuid = Uuid::from_u128(11);
pub(crate) const INBOX: Uuid = Uuid::from_u128(21);
pub(crate) const SUPPORT: Uuid = Uuid::from_u128(31);
pub(crate) const SALES: Uuid = Uuid::from_u128(32);

pub(crate) struct Mailroom {
    pub(crate) _dir: TempDir,
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) service: Arc<CommandService>,
    pub(crate) ingester: Ingester,
}

/// The organisation, with `support@acme.test` and `sales@acme.test` connected to one inbox.
pub(crate) async fn mailroom() -> Mailroom {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn EventStore> = Arc::new(
        SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).expect("store"),
    );
    let service = Arc::new(
        CommandService::open(store.clone(), Arc::new(proto_events::clock::SystemClock))
            .await
            .expect("service"),
    );
    let system = CommandMeta::by(Actor::System {
        component: "test".into(),
    });
    let setup = [
        Command::Setup(SetupCommand::CreateOrganisation {
            organisation_id: Uuid::from_u128(1),
            name: "Acme".into(),
            time_zone: "Europe/Berlin".into(),
        }),
        Command::Setup(SetupCommand::CreateUser {
            user_id: ADMIN,
            email: "admin@acme.test".into(),
            name: "Admin".into(),
            role: Role::Admin,
        }),
        Command::Setup(SetupCommand::CreateInbox {
            inbox_id: INBOX,
            name: "Support".into(),
        }),
        Command::Channel(ChannelCommand::ConnectEmail {
            channel_id: SUPPORT,
            inbox_id: INBOX,
            address: "support@acme.test".into(),
            access: EmailAccess::Shared,
        }),
        Command::Channel(ChannelCommand::ConnectEmail {
            channel_id: SALES,
            inbox_id: INBOX,
            address: "Sales@Acme.test".into(),
            access: EmailAccess::Shared,
        }),
    ];
    for command in setup {
        let meta = match command {
            Command::Setup(SetupCommand::CreateOrganisation { .. })
            | Command::Setup(SetupCommand::CreateUser { .. }) => system.clone(),
            _ => CommandMeta::by(Actor::User { id: ADMIN }),
        };
        service.execute(meta, command).await.expect("setup");
    }
    let ingester = Ingester::new(service.clone(), store.clone());
    Mailroom {
        _dir: dir,
        store,
        service,
        ingester,
    }
}

impl Mailroom {
    /// Every event of the log, decoded.
    pub(crate) async fn events(&self) -> Vec<Envelope> {
        let mut all = Vec::new();
        let mut after = Position::START;
        loop {
            let page = self.store.read_all(after, 500).await.expect("read");
            let Some(last) = page.last() else { break };
            after = last.position;
            all.extend(
                page.iter()
                    .map(|e| switchboard_codec::decode(e).expect("decodes")),
            );
        }
        all
    }
}

/// A plain message from Ada to `to`, with `extra` headers.
pub(crate) fn mail(to: &str, message_id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Ada Lovelace <ada@customer.example>\r\nTo: {to}\r\nSubject: Pricing\r\n\
         Message-ID: <{message_id}>\r\nDate: Sun, 6 Dec 2026 09:00:00 +0000\r\n{extra}\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}
