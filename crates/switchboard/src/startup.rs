//! [`Application`]: the server, built from a [`Config`] and run until a shutdown future
//! resolves.
//!
//! Building opens everything in order: the data directory and its JWT secret, the event store
//! (the embedded one in `<data-dir>/events`, or PostgreSQL when `postgres_url` is set), the
//! vault of channel secrets (its key checked against the store's) and, over it, the data
//! subjects' keys everything reads the log through (`switchboard_codec::keyring`), the listening
//! socket (early, so a taken port fails before any work), the demo seeding when asked for and the
//! store is empty, the command service on the system clock, the routing, bot and retention
//! reactors, the delivery worker and the IMAP accounts' supervisor (when this node runs the
//! workers), the projection runtime (`<data-dir>/read-models`) and the API. Running serves HTTP
//! until the shutdown future resolves, then: subscriptions are closed
//! ([`ApiState::begin_shutdown`]), in-flight requests get `shutdown_timeout` to finish, the
//! projectors stop after their current batch, the IMAP importers stop between messages, and the
//! reactors and the delivery worker stop.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use proto_events::clock::SystemClock;
use switchboard_api::{ApiSettings, ApiState, MailSettings};
use switchboard_codec::keyring::{KeyedStore, Keyring};
use switchboard_delivery::{DeliverySettings, DeliveryWorker, Relay};
use switchboard_projector::ProjectionRuntime;
use switchboard_service::CommandService;
use switchboard_service::bot::BotReactor;
use switchboard_service::reactor::RoutingReactor;
use switchboard_service::retention::RetentionReactor;
use switchboard_store::EventStore;
use switchboard_store::secret::Vault;
use tokio::net::TcpListener;

use crate::config::{self, Config};
use crate::demo::{self, Seeded};
use crate::support::{self, refuse};

/// The configured event store: PostgreSQL when `postgres_url` is set (several nodes may share
/// it), else the embedded store in the data directory.
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    if config.postgres_url.is_some() && config.jwt_secret.is_none() {
        tracing::warn!(
            "a PostgreSQL store with a generated JWT secret: tokens work on this node only; \
             set jwt_secret on every node to share them"
        );
    }
    support::configured_store(config, support::StoreUse::Write).await
}

/// Where `serve --demo` receives mail unless `smtp.listen` says otherwise (a free port when
/// it is taken).
pub const DEMO_SMTP: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 2525);

/// The SMTP listener, bound, with what it delivers to.
#[derive(Debug)]
struct Smtp {
    listener: TcpListener,
    ingester: switchboard_email::Ingester,
    settings: switchboard_email::smtp::SmtpSettings,
}

/// How long the token printed by `serve --demo` is valid.
const DEMO_TOKEN_TTL: TimeDelta = TimeDelta::days(7);

/// A built server, bound to its address, not yet serving.
#[derive(Debug)]
pub struct Application {
    config: Config,
    listener: TcpListener,
    local_addr: SocketAddr,
    state: ApiState,
    projections: Arc<ProjectionRuntime>,
    reactor: RoutingReactor,
    /// Chat channels' bots (see `switchboard_service::bot`).
    bots: BotReactor,
    /// Inboxes' retention periods (see `switchboard_service::retention`).
    retention: RetentionReactor,
    delivery: Option<DeliveryWorker>,
    admin_token: Option<String>,
    seeded: Option<Seeded>,
    smtp: Option<Smtp>,
    /// IMAP accounts to import, with what they deliver to.
    imap: Vec<(
        switchboard_email::imap::ImapAccount,
        switchboard_email::Ingester,
    )>,
    /// Where importers keep their checkpoints.
    index: Arc<dyn switchboard_store::WriteIndex>,
    /// The IMAP accounts set through the API are imported (this node runs the workers).
    accounts: Option<(Arc<CommandService>, Vault)>,
    /// Signs the chain's head periodically (`audit.anchor_signing_key`).
    anchoring: Option<crate::anchor::Anchoring>,
}

impl Application {
    /// Opens the store, seeds the demo if asked for (and the store is empty), starts the
    /// command service, the routing, bot and retention reactors and the projections, and binds
    /// the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        let secret = config::jwt_secret(&config, true)?
            .context("no JWT secret configured and none could be generated")?;
        let store = open_store(&config).await?;
        let secret_key = config::secret_key(&config)?;
        if config.postgres_url.is_some() && config.secret_key.is_none() {
            tracing::warn!(
                "a PostgreSQL store with a generated secret_key: channel passwords and customers' \
                 personal data written through this node open on this node only; set secret_key \
                 on every node"
            );
        }
        let vault = support::checked_vault(&config, store.as_ref(), &secret_key).await?;
        // Anchoring hashes the log as stored: it needs no key.
        let anchoring = crate::anchor::Anchoring::open(&config, store.clone())?;
        // Everything else reads the log through the data subjects' keys (ADR 0007).
        let keyring = Arc::new(Keyring::new(vault.clone()));
        let store: Arc<dyn EventStore> = Arc::new(KeyedStore::new(store, keyring.clone()));
        let listener = match TcpListener::bind(config.listen).await {
            Ok(listener) => listener,
            Err(e) => refuse!("cannot listen on {}: {e}", config.listen),
        };
        let local_addr = listener.local_addr().context("reading the bound address")?;

        let seeded = if config.demo && demo::should_seed(store.as_ref()).await? {
            tracing::info!(
                conversations = demo::CONVERSATIONS,
                "seeding the demo organisation"
            );
            let seeded = demo::seed(
                store.clone(),
                Utc::now(),
                demo::CONVERSATIONS,
                &config.fallback_email_domain,
                keyring.names(),
            )
            .await
            .context("seeding the demo organisation")?;
            tracing::info!(
                commands = seeded.commands,
                refused = seeded.refused,
                events = seeded.events,
                seconds = seeded.elapsed.as_secs_f64(),
                "demo organisation seeded"
            );
            Some(seeded)
        } else {
            None
        };

        let mut service = CommandService::open(store.clone(), Arc::new(SystemClock))
            .await
            .context("opening the command service")?
            .with_fallback_domain(config.fallback_email_domain.clone())
            .with_key_lifetime(
                chrono::Duration::from_std(config.idempotency_key_lifetime)
                    .unwrap_or(switchboard_service::service::DEFAULT_KEY_LIFETIME),
            );
        // `migrate encrypt` turned sealing on for this store: no node writes in the clear again.
        let sealing_since = switchboard_codec::plaintext::sealing_since(store.secrets().as_ref())
            .await
            .context("reading whether this store seals personal data")?;
        if let Some(since) = &sealing_since
            && !config.seal_personal_data
        {
            tracing::info!(
                position = since.position,
                at = %since.at,
                "sealing personal data: this store was migrated (switchboard migrate encrypt)"
            );
        }
        service = if config.seal_personal_data || sealing_since.is_some() {
            service.with_keyring(keyring)
        } else {
            service.with_erasure_keys(keyring)
        };
        let service = Arc::new(service);
        let reactor = RoutingReactor::spawn(service.clone());
        let bots = BotReactor::spawn(service.clone());
        let retention = RetentionReactor::spawn(service.clone());
        let mut imap = Vec::new();
        for account in &config.imap {
            let ingester = switchboard_email::Ingester::new(service.clone(), store.clone());
            let Some(channel_id) = ingester.account_channel(&account.address).await? else {
                refuse!(
                    "IMAP account {}: no connected e-mail channel has that address; connect it \
                     first (connectEmailChannel)",
                    account.address
                );
            };
            let mut imported = switchboard_email::imap::ImapAccount::new(
                channel_id,
                account.host.clone(),
                account.port,
                account.tls,
                account.username.clone(),
                switchboard_email::imap::Password::new(account.password.expose()),
            );
            imported.mailbox.clone_from(&account.mailbox);
            imported.address = Some(account.address.clone());
            imap.push((imported, ingester));
        }
        let index = store.write_index();
        let tls = match (&config.smtp.tls_certificate, &config.smtp.tls_key) {
            (Some(certificate), Some(key)) => {
                match switchboard_email::smtp::tls_acceptor(certificate, key) {
                    Ok(acceptor) => Some(acceptor),
                    Err(e) => refuse!(
                        "smtp.tls_certificate / smtp.tls_key (SWITCHBOARD_SMTP_TLS_CERTIFICATE, \
                         SWITCHBOARD_SMTP_TLS_KEY): {e}"
                    ),
                }
            }
            _ => None,
        };
        let smtp = match bind_smtp(&config).await? {
            Some(listener) => Some(Smtp {
                listener,
                ingester: switchboard_email::Ingester::new(service.clone(), store.clone()),
                settings: switchboard_email::smtp::SmtpSettings {
                    hostname: config.smtp.hostname.clone(),
                    max_message_bytes: config.smtp.max_message_bytes,
                    tls,
                    ..switchboard_email::smtp::SmtpSettings::default()
                },
            }),
            None => None,
        };
        let delivery = start_delivery(&config, &service, &vault)?;
        let accounts = config
            .delivery
            .worker
            .then(|| (service.clone(), vault.clone()));
        let read_models = config.read_models_dir();
        let projections = Arc::new(
            ProjectionRuntime::start(store, &read_models, switchboard_read_models::all())
                .with_context(|| {
                    format!("starting the projections in {}", read_models.display())
                })?,
        );
        let state = ApiState::new(
            service.clone(),
            projections.clone(),
            ApiSettings {
                jwt_secret: secret.expose().to_owned(),
                tokens: config.tokens.clone(),
                oidc: config.oidc.settings(),
                introspection: config.introspection,
                limits: config.limits.clone(),
                ready_max_lag: config.ready_max_lag,
                messenger: config.messenger.settings(),
                mail: MailSettings {
                    secret_key,
                    relay: config.delivery.relay_url().and_then(Result::ok),
                    max_message_bytes: config.smtp.max_message_bytes,
                    ..MailSettings::default()
                },
                forms: config.forms.clone(),
                chat: config.chat.clone(),
                trusted_proxies: config.trusted_proxies.clone(),
            },
        );
        if config.demo {
            demo::site::prepare(&service, demo::site::origins(local_addr))
                .await
                .context("configuring the demo site's chat widget and form")?;
        }
        let admin_token = if config.demo {
            demo::admin(&service)
                .await?
                .map(|(id, email)| state.keys().mint(id, &email, Utc::now(), DEMO_TOKEN_TTL))
        } else {
            None
        };
        Ok(Application {
            config,
            listener,
            local_addr,
            state,
            projections,
            reactor,
            bots,
            retention,
            delivery,
            admin_token,
            seeded,
            smtp,
            imap,
            index,
            accounts,
            anchoring,
        })
    }

    /// Where the SMTP/LMTP listener is bound, if it runs.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp
            .as_ref()
            .and_then(|s| s.listener.local_addr().ok())
    }

    /// The port the server is bound to (the real one when configured with port 0).
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// With `--demo`: a token for the demo's super admin ([`demo::ADMIN_EMAIL`]).
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// What seeding did, if this start seeded the demo.
    pub fn seeded(&self) -> Option<&Seeded> {
        self.seeded.as_ref()
    }

    /// The configuration the application was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The API's state (for tests that drive the router without a socket).
    pub fn state(&self) -> &ApiState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then shuts down in order (see the module docs).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            config,
            listener,
            state,
            projections,
            reactor,
            bots,
            retention,
            smtp,
            delivery,
            imap,
            index,
            accounts,
            anchoring,
            ..
        } = self;
        let (stop_smtp, smtp_stopped) = tokio::sync::watch::channel(false);
        let anchoring = anchoring.map(|anchoring| {
            let mut stopped = smtp_stopped.clone();
            tokio::spawn(anchoring.run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }))
        });
        let configured: std::collections::HashSet<uuid::Uuid> =
            imap.iter().map(|(account, _)| account.channel_id).collect();
        let accounts = if let Some((service, vault)) = accounts {
            let mut stopped = smtp_stopped.clone();
            Some(switchboard_email::accounts::supervise(
                service,
                vault,
                switchboard_email::imap::ImapSettings::default(),
                configured,
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            ))
        } else {
            None
        };
        for (account, ingester) in imap {
            let mut stopped = smtp_stopped.clone();
            tracing::info!(address = ?account.address, host = %account.host,
                "importing an IMAP account");
            // Its status is not shown anywhere yet; it stops with the server.
            drop(switchboard_email::imap::spawn(
                account,
                switchboard_email::imap::ImapSettings::default(),
                ingester,
                index.clone(),
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            ));
        }
        if let Some(Smtp {
            listener,
            ingester,
            settings,
        }) = smtp
        {
            let mut stopped = smtp_stopped.clone();
            tokio::spawn(switchboard_email::smtp::serve(
                listener,
                ingester,
                settings,
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            ));
        }
        let mut router = switchboard_api::router(state.clone());
        if config.demo {
            router = router.merge(demo::site::router());
        }
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let closing = state.clone();
        let graceful = async move {
            shutdown.await;
            tracing::info!("shutting down: closing subscriptions and draining requests");
            closing.begin_shutdown();
            let _ = stop_smtp.send(true);
            let _ = signalled_tx.send(());
        };
        // With the peer's address: form submissions are rate-limited per client address.
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(graceful)
        .into_future();
        let mut server = std::pin::pin!(server);
        let served = tokio::select! {
            served = &mut server => served,
            Ok(()) = signalled_rx => {
                match tokio::time::timeout(config.shutdown_timeout, &mut server).await {
                    Ok(served) => served,
                    Err(_) => {
                        tracing::warn!(
                            timeout = ?config.shutdown_timeout,
                            "requests still running at the end of the shutdown timeout were dropped"
                        );
                        Ok(())
                    }
                }
            }
        };
        // Chat sockets closed by the shutdown record their visitors' last acknowledgements.
        if !state.finish_background(config.shutdown_timeout).await {
            tracing::warn!("background work still running at the shutdown timeout was dropped");
        }
        tracing::info!(
            "HTTP stopped; stopping the projections, the reactors and the delivery worker"
        );
        if let Some(anchoring) = anchoring {
            // It signs the head once more on its way out.
            if tokio::time::timeout(config.shutdown_timeout, anchoring)
                .await
                .is_err()
            {
                tracing::warn!("the last anchor was not signed by the shutdown timeout");
            }
        }
        projections.shutdown().await;
        reactor.task.abort();
        // Aborted is the normal end; an error means it had stopped on its own before.
        if let Ok(Err(error)) = reactor.task.await {
            tracing::error!(%error, "the routing reactor had stopped");
        }
        bots.task.abort();
        if let Ok(Err(error)) = bots.task.await {
            tracing::error!(%error, "the bot reactor had stopped");
        }
        retention.reactor.task.abort();
        if let Ok(Err(error)) = retention.reactor.task.await {
            tracing::error!(%error, "the retention reactor had stopped");
        }
        if let Some(accounts) = accounts {
            // Its importers stop between messages (a checkpoint is saved only once its message
            // is durable), so a bounded wait loses nothing.
            match tokio::time::timeout(config.shutdown_timeout, accounts.task).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "the IMAP accounts' supervisor failed"),
                Err(_) => tracing::warn!("IMAP importers still running at the shutdown timeout"),
            }
        }
        if let Some(delivery) = delivery {
            // Stopped between two attempts or in one: what it had not recorded is sent again by
            // the next start (see switchboard-delivery's crate docs).
            delivery.task.abort();
            if let Ok(Err(error)) = delivery.task.await {
                tracing::error!(%error, "the delivery worker had stopped");
            }
        }
        served.context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How long one SMTP command to the relay may wait for its answer.
const SMTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long one Send API request may take before it is retried as a timeout.
const GRAPH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Starts the delivery worker when this node runs it. Without a relay it still sends the replies
/// of channels with an SMTP server of their own; the others fail saying no relay is configured.
fn start_delivery(
    config: &Config,
    service: &Arc<CommandService>,
    vault: &Vault,
) -> anyhow::Result<Option<DeliveryWorker>> {
    if !config.delivery.worker {
        tracing::info!("delivery_worker = false: this node sends no e-mail replies");
        return Ok(None);
    }
    let relay = match config.delivery.relay_url() {
        None => None,
        Some(Ok(url)) => Some(Relay::new(&url, SMTP_TIMEOUT).context("setting up the SMTP relay")?),
        Some(Err(message)) => refuse!("{message}"),
    };
    // Messenger replies are sent where the webhook is served: an installation without a
    // Messenger app has no Messenger conversations to answer.
    let messenger = match config.messenger.settings() {
        None => None,
        Some(_) => Some(
            switchboard_delivery::GraphApi::new(
                &config.messenger.graph_url,
                &config.messenger.graph_version,
                GRAPH_TIMEOUT,
            )
            .context("setting up the Messenger Send API (messenger.graph_url)")?,
        ),
    };
    Ok(Some(DeliveryWorker::spawn(
        service.clone(),
        DeliverySettings {
            relay,
            vault: Some(vault.clone()),
            retry_for: config.delivery.retry_for,
            from_name: config.delivery.from_name,
            clock: Arc::new(SystemClock),
            messenger,
            chat_email_unseen_after: config.delivery.chat_email_unseen_after,
        },
    )))
}

/// A future that resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this
/// is called, not when the future is first polled: call it before announcing the server, so
/// that a signal sent right after the `listening on` line (or during demo seeding) stops the
/// server gracefully instead of killing it.
#[cfg(unix)]
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

/// A future that resolves on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received");
        } else {
            std::future::pending::<()>().await;
        }
    })
}

/// The SMTP listener's socket: at `smtp.listen`, or with `--demo` at [`DEMO_SMTP`] (another
/// free port if that one is taken, so that several demos can run side by side).
async fn bind_smtp(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    let (address, demo) = match (config.smtp.listen, config.demo) {
        (Some(address), _) => (address, false),
        (None, true) => (DEMO_SMTP, true),
        (None, false) => return Ok(None),
    };
    match TcpListener::bind(address).await {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if demo && e.kind() == std::io::ErrorKind::AddrInUse => {
            let listener = TcpListener::bind(SocketAddr::new(address.ip(), 0))
                .await
                .context("binding the demo's SMTP listener")?;
            tracing::warn!(taken = %address, "the demo's SMTP port is taken; using another");
            Ok(Some(listener))
        }
        Err(e) => refuse!("cannot listen for SMTP on {address}: {e}"),
    }
}
