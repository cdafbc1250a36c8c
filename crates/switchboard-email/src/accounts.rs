//! The IMAP accounts channels were given through the API (`EmailServersSet`): one importer per
//! connected e-mail channel with an IMAP mailbox, started when its settings are set, started
//! again when they change, stopped when they are removed or the channel is disconnected.
//!
//! One node imports at a time: the one holding the store's `imap` lease (on PostgreSQL; every
//! node on the embedded store, which one process writes). What runs is decided from the write
//! side's directory alone, whenever the log records a
//! change to channels (and once a minute, so that an account whose password could not be read
//! is tried again). An importer's checkpoint is its channel's cursor, so a restarted importer,
//! or another node's after a take-over, imports nothing twice. Passwords are opened from the
//! vault when an importer starts and kept in it only.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use proto_events::event::{ChannelConfig, ImapServer};
use switchboard_service::CommandService;
use switchboard_store::EventStore;
use switchboard_store::secret::{SecretId, Vault};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::Ingester;
use crate::imap::{self, ImapAccount, ImapSettings, ImapStatus, Importer, Password};

/// Event types after which the set of accounts may have changed.
const CHANNEL_EVENTS: [&str; 4] = [
    "EmailServersSet",
    "ChannelConnected",
    "ChannelDisconnected",
    "ChannelMoved",
];

/// The lease ([`EventStore::lease`]) a node must hold to import.
pub const LEASE: &str = "imap";

/// How often the accounts are compared with the directory without a change in the log.
const RECHECK: Duration = Duration::from_secs(60);

/// The running importers' statuses, by channel.
pub type Statuses = watch::Receiver<HashMap<Uuid, watch::Receiver<ImapStatus>>>;

/// A running supervisor.
#[derive(Debug)]
pub struct Accounts {
    /// Each running importer's status, by channel.
    pub statuses: Statuses,
    /// The supervisor; it ends with `shutdown`, after stopping its importers.
    pub task: tokio::task::JoinHandle<()>,
}

/// One running importer.
#[derive(Debug)]
struct Running {
    server: ImapServer,
    stop: oneshot::Sender<()>,
    importer: Importer,
}

/// Starts importing every channel's IMAP mailbox, except `skip`'s (channels whose account the
/// configuration file names), until `shutdown` resolves.
pub fn supervise(
    service: Arc<CommandService>,
    vault: Vault,
    settings: ImapSettings,
    skip: HashSet<Uuid>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Accounts {
    let (statuses_tx, statuses) = watch::channel(HashMap::new());
    let task = tokio::spawn(async move {
        let mut supervisor = Supervisor {
            service,
            vault,
            settings,
            skip,
            running: HashMap::new(),
            statuses: statuses_tx,
        };
        let mut shutdown = std::pin::pin!(shutdown);
        supervisor.follow(shutdown.as_mut()).await;
        supervisor.stop_all().await;
    });
    Accounts { statuses, task }
}

struct Supervisor {
    service: Arc<CommandService>,
    vault: Vault,
    settings: ImapSettings,
    skip: HashSet<Uuid>,
    running: HashMap<Uuid, Running>,
    statuses: watch::Sender<HashMap<Uuid, watch::Receiver<ImapStatus>>>,
}

impl Supervisor {
    /// Reconciles at the start, after every channel change in the log and every [`RECHECK`],
    /// until `shutdown`.
    async fn follow(
        &mut self,
        mut shutdown: std::pin::Pin<&mut (impl Future<Output = ()> + Send)>,
    ) {
        let store: Arc<dyn EventStore> = self.service.store().clone();
        // Follow from the head: what came before is in the directory `reconcile` reads.
        let mut after = loop {
            match store.head().await {
                Ok(head) => break head,
                Err(error) => {
                    tracing::warn!(%error, "the store's head could not be read; trying again");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        let mut events = store.subscribe_all(after);
        // One node at a time imports (several share a PostgreSQL store).
        let mut lease = store.lease(LEASE);
        self.reconcile(lease.is_held()).await;
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                Ok(()) = lease.held.changed() => {
                    let held = lease.is_held();
                    tracing::info!(held, "the IMAP lease changed hands");
                    self.reconcile(held).await;
                }
                _ = recheck.tick() => self.reconcile(lease.is_held()).await,
                next = events.next() => match next {
                    Some(Ok(recorded)) => {
                        after = recorded.position;
                        if CHANNEL_EVENTS.contains(&recorded.event_type.as_str()) {
                            self.reconcile(lease.is_held()).await;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "reading the log failed; following it again");
                        tokio::select! {
                            () = &mut shutdown => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        events = store.subscribe_all(after);
                    }
                    None => return,
                },
            }
        }
    }

    /// Starts, restarts and stops importers until they match the directory (none when this node
    /// does not hold the lease).
    async fn reconcile(&mut self, held: bool) {
        if !held {
            self.stop_all().await;
            return;
        }
        let wanted: HashMap<Uuid, (ImapServer, String)> = match self.service.view().await {
            Ok(view) => view
                .directory
                .channels
                .values()
                .filter(|c| c.connected && !self.skip.contains(&c.id))
                .filter_map(|c| match (&c.config, &c.servers.imap) {
                    (ChannelConfig::Email { address, .. }, Some(server)) => {
                        Some((c.id, (server.clone(), address.clone())))
                    }
                    _ => None,
                })
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "the directory could not be read; accounts unchanged");
                return;
            }
        };
        let stale: Vec<Uuid> = self
            .running
            .iter()
            .filter(|(id, running)| wanted.get(id).is_none_or(|(s, _)| *s != running.server))
            .map(|(id, _)| *id)
            .collect();
        for channel_id in stale {
            if let Some(running) = self.running.remove(&channel_id) {
                tracing::info!(%channel_id, "stopping an IMAP import: its settings changed or went");
                stop(running).await;
            }
        }
        for (channel_id, (server, address)) in wanted {
            if self.running.contains_key(&channel_id) {
                continue;
            }
            let password = match self.vault.get(SecretId(server.password_secret)).await {
                Ok(Some(password)) => password,
                Ok(None) => {
                    tracing::error!(%channel_id, "the channel's IMAP password is missing; set it again");
                    continue;
                }
                Err(error) => {
                    tracing::error!(%channel_id, %error, "the channel's IMAP password could not be opened");
                    continue;
                }
            };
            let mut account =
                ImapAccount::for_server(channel_id, &server, Password::new(password.expose()));
            account.address = Some(address);
            tracing::info!(%channel_id, host = %server.host, "importing an IMAP account");
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let ingester = Ingester::new(self.service.clone(), self.service.store().clone());
            let importer = imap::spawn(
                account,
                self.settings.clone(),
                ingester,
                self.service.store().write_index(),
                async move {
                    let _ = stop_rx.await;
                },
            );
            self.running.insert(
                channel_id,
                Running {
                    server,
                    stop: stop_tx,
                    importer,
                },
            );
        }
        self.publish();
    }

    fn publish(&self) {
        self.statuses.send_replace(
            self.running
                .iter()
                .map(|(id, running)| (*id, running.importer.status()))
                .collect(),
        );
    }

    async fn stop_all(&mut self) {
        for (_, running) in self.running.drain() {
            stop(running).await;
        }
        self.publish();
    }
}

/// Stops an importer and waits for it, so that two never import one channel at once.
async fn stop(running: Running) {
    let _ = running.stop.send(());
    if let Err(error) = running.importer.stopped().await {
        tracing::error!(%error, "an IMAP importer ended abnormally");
    }
}
