//! [`ApiState`]: what every request shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Context;
use switchboard_domain::directory::Directory;
use switchboard_projector::{ProjectionRuntime, ReadModel};
use switchboard_service::CommandService;
use switchboard_service::view::WriteView;
use switchboard_store::{EventStore, Position};
use tokio::sync::watch;
use uuid::Uuid;

use crate::access::Access;
use crate::auth::oidc::{OidcSettings, Provider};
use crate::auth::{Authentication, Keys, SEND_A_TOKEN, TokenSettings, Viewer};
use crate::consistency::TokenKey;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;

/// Limits that protect the server from expensive requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest selection nesting allowed, not counting `__schema` and `__type` subtrees (see
    /// `schema::Shape`).
    pub max_depth: usize,
    /// Highest query complexity allowed (each field costs 1, a list multiplies by its page size,
    /// an analytics field that reads every measurement of a metric adds 200).
    pub max_complexity: usize,
    /// Most aliased fields in one document.
    pub max_aliases: usize,
    /// Largest request body, in bytes (a JSON request; for a multipart upload, its
    /// `operations` and `map` parts each).
    pub max_body_bytes: usize,
    /// Largest file of a multipart upload (GraphQL multipart request spec), in bytes.
    pub max_upload_file_bytes: usize,
    /// Largest sum of the files of one multipart upload, in bytes.
    pub max_upload_bytes: usize,
    /// Most files in one multipart upload.
    pub max_upload_files: usize,
    /// Largest `first`/`last` of a connection.
    pub max_page_size: usize,
    /// Page size when neither `first` nor `last` is given.
    pub default_page_size: usize,
    /// Longest a request carrying a consistency token waits for the read models.
    pub consistency_wait: Duration,
    /// Longest a subscription connection may take to send `connection_init` (then it is
    /// closed with 4408).
    pub connection_init_timeout: Duration,
    /// How long the live feed of subscriptions keeps trying to follow the store again after
    /// it failed (with exponential backoff) before it gives up and ends every subscription
    /// with UNAVAILABLE.
    pub feed_recovery: Duration,
    /// Events the live feed buffers for each subscriber. A subscriber that falls further behind
    /// (a slow client) reads what it missed from the store and goes on, missing nothing; one
    /// more than 100,000 events behind is ended with CONFLICT instead.
    pub live_buffer: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 12,
            max_complexity: 5_000,
            max_aliases: 30,
            max_body_bytes: 1 << 20,
            // What mail providers commonly take in one message (before base64).
            max_upload_file_bytes: 25 << 20,
            max_upload_bytes: 25 << 20,
            max_upload_files: 20,
            max_page_size: 100,
            default_page_size: 20,
            consistency_wait: Duration::from_secs(5),
            connection_init_timeout: Duration::from_secs(10),
            feed_recovery: Duration::from_secs(30),
            live_buffer: 4096,
        }
    }
}

/// Who may introspect the schema (`__schema`, `__type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Introspection {
    /// Anyone, without a token (GraphiQL and code generators need no setup).
    Public,
    /// Only requests with a valid token, as GitHub's API: the schema does not tell strangers
    /// what the server can do. The default.
    #[default]
    Authenticated,
    /// Nobody; the committed SDL is the schema's documentation.
    Off,
}

impl std::str::FromStr for Introspection {
    type Err = String;

    fn from_str(text: &str) -> Result<Introspection, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "public" => Ok(Introspection::Public),
            "authenticated" => Ok(Introspection::Authenticated),
            "off" => Ok(Introspection::Off),
            other => Err(format!(
                "{other:?} is not an introspection setting; use public, authenticated or off"
            )),
        }
    }
}

/// The API's settings.
#[derive(Clone)]
pub struct ApiSettings {
    /// The secret tokens are signed with.
    pub jwt_secret: String,
    /// The issuer and audience of Switchboard's own tokens.
    pub tokens: TokenSettings,
    /// An OpenID Connect provider whose tokens are accepted too.
    pub oidc: Option<OidcSettings>,
    /// Who may introspect the schema.
    pub introspection: Introspection,
    /// Request limits.
    pub limits: Limits,
    /// `/readyz` answers 503 while a read model is more positions behind the store than this.
    pub ready_max_lag: u64,
    /// E-mail channels' secrets, connection tests and HTTP ingestion.
    pub mail: MailSettings,
    /// The Messenger app whose webhook this installation serves; `None`: no webhook.
    pub messenger: Option<crate::messenger::MessengerSettings>,
    /// Rate and size limits of `POST /forms/{publicKey}`.
    pub forms: crate::forms::FormLimits,
    /// Rate and size limits of website chat's visitor routes (`/chat/{publicKey}/...`).
    pub chat: crate::chat::ChatLimits,
    /// The reverse proxies whose `X-Forwarded-For` names the client the per-address limits
    /// count (chat, forms); none by default.
    pub trusted_proxies: crate::client::TrustedProxies,
}

/// What the API needs for e-mail channels.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The key channel secrets are sealed with (`secret_key`).
    pub secret_key: switchboard_store::secret::MasterKey,
    /// The installation's relay, which `testEmailChannel` logs in to for a channel without an
    /// SMTP server of its own.
    pub relay: Option<switchboard_delivery::RelayUrl>,
    /// The largest message `POST /ingest/email/{channel}` takes, in bytes.
    pub max_message_bytes: usize,
    /// How long each step of a connection test may take.
    pub check_timeout: std::time::Duration,
}

impl Default for MailSettings {
    /// A fresh random key (secrets last as long as the process: for tests), no relay, 25 MiB.
    fn default() -> MailSettings {
        MailSettings {
            secret_key: switchboard_store::secret::MasterKey::generate(),
            relay: None,
            max_message_bytes: 25 * 1024 * 1024,
            check_timeout: std::time::Duration::from_secs(20),
        }
    }
}

impl ApiSettings {
    /// Settings with `jwt_secret` and defaults for the rest.
    pub fn new(jwt_secret: impl Into<String>) -> ApiSettings {
        ApiSettings {
            jwt_secret: jwt_secret.into(),
            tokens: TokenSettings::default(),
            oidc: None,
            introspection: Introspection::default(),
            limits: Limits::default(),
            ready_max_lag: 1_000,
            mail: MailSettings::default(),
            messenger: None,
            forms: crate::forms::FormLimits::default(),
            chat: crate::chat::ChatLimits::default(),
            trusted_proxies: crate::client::TrustedProxies::default(),
        }
    }
}

impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSettings")
            .field("jwt_secret", &"<secret>")
            .field("tokens", &self.tokens)
            .field("oidc", &self.oidc)
            .field("introspection", &self.introspection)
            .field("limits", &self.limits)
            .field("ready_max_lag", &self.ready_max_lag)
            .field("mail", &self.mail)
            .field("messenger", &self.messenger)
            .field("forms", &self.forms)
            .field("chat", &self.chat)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// What every request shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState(Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) service: Arc<CommandService>,
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) projections: Arc<ProjectionRuntime>,
    pub(crate) keys: Keys,
    /// The OpenID Connect provider, when one is configured.
    pub(crate) oidc: Option<Provider>,
    pub(crate) introspection: Introspection,
    pub(crate) tokens: TokenKey,
    /// Signs the download links of files.
    pub(crate) file_links: crate::files::FileLinks,
    pub(crate) limits: Limits,
    pub(crate) ready_max_lag: u64,
    pub(crate) metrics: Metrics,
    /// Seals and opens channel secrets.
    pub(crate) vault: switchboard_store::secret::Vault,
    /// Takes mail posted to `POST /ingest/email/{channel}`.
    pub(crate) ingester: switchboard_email::Ingester,
    pub(crate) mail: MailSettings,
    pub(crate) messenger: Option<crate::messenger::MessengerSettings>,
    /// Limits and rate limiters of `POST /forms/{publicKey}`.
    pub(crate) forms: crate::forms::Forms,
    /// Website chat: limits, rate limiters, visitor tokens, typing signals.
    pub(crate) chat: crate::chat::Chat,
    /// Whose `X-Forwarded-For` is believed (see `client`).
    pub(crate) trusted_proxies: crate::client::TrustedProxies,
    /// Becomes true when the server shuts down: subscriptions end.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Held (read) by background work that records what requests and sockets left behind,
    /// such as a chat socket's last seen acknowledgements; [`ApiState::finish_background`]
    /// waits for it (write).
    pub(crate) background: Arc<tokio::sync::RwLock<()>>,
    /// The live feed of subscriptions, started by the first one, and again by the first one
    /// after it gave up.
    hub: tokio::sync::Mutex<Option<Arc<crate::hub::Hub>>>,
    /// Each recent viewer's [`Access`], with the directory position it was computed at. An
    /// entry is used only while the directory stands at that same position, so any event
    /// (a mutation earlier in the same request included) makes it be computed again.
    access: Mutex<HashMap<Uuid, (Position, Arc<Access>)>>,
}

/// Most viewers whose access [`Inner::access`] keeps.
const ACCESS_CACHE: usize = 1_024;

impl ApiState {
    /// The state of an API over `service` (and its store) and `projections`.
    pub fn new(
        service: Arc<CommandService>,
        projections: Arc<ProjectionRuntime>,
        settings: ApiSettings,
    ) -> ApiState {
        let store = service.store().clone();
        ApiState(Arc::new(Inner {
            chat: crate::chat::Chat::new(settings.chat, &settings.mail.secret_key),
            trusted_proxies: settings.trusted_proxies,
            vault: switchboard_store::secret::Vault::new(
                store.secrets(),
                &settings.mail.secret_key,
            ),
            ingester: switchboard_email::Ingester::new(service.clone(), store.clone()),
            service,
            store,
            projections,
            keys: Keys::new(settings.jwt_secret.as_bytes(), settings.tokens),
            oidc: settings.oidc.map(Provider::new),
            introspection: settings.introspection,
            tokens: TokenKey::new(settings.jwt_secret.as_bytes()),
            file_links: crate::files::FileLinks::new(settings.jwt_secret.as_bytes()),
            limits: settings.limits,
            ready_max_lag: settings.ready_max_lag,
            metrics: Metrics::new(),
            mail: settings.mail,
            messenger: settings.messenger,
            forms: crate::forms::Forms::new(settings.forms),
            shutdown: watch::channel(false).0,
            background: Arc::default(),
            hub: tokio::sync::Mutex::new(None),
            access: Mutex::new(HashMap::new()),
        }))
    }

    /// The keys tokens are minted and checked with.
    pub fn keys(&self) -> &Keys {
        &self.0.keys
    }

    /// The Prometheus metrics; the server adds its own observations.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Ends every open subscription (their connections close) and refuses new ones: call when
    /// the server starts shutting down, so that draining HTTP requests can finish.
    pub fn begin_shutdown(&self) {
        self.0.shutdown.send_replace(true);
    }

    /// Waits, for at most `timeout`, until the background work that sockets and requests
    /// left behind is recorded (after [`ApiState::begin_shutdown`], once HTTP has stopped).
    /// Whether all of it finished.
    pub async fn finish_background(&self, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, self.0.background.write())
            .await
            .is_ok()
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    /// Checks the token of an `Authorization` header value, if any: Switchboard's own (HS256),
    /// or the OpenID Connect provider's (RS256, ES256), whose e-mail is looked up in the
    /// directory. The viewer is checked against the directory again by every resolver.
    pub(crate) async fn authenticate(&self, header: Option<&str>) -> Authentication {
        let Some(header) = header else {
            return Authentication::Refused(SEND_A_TOKEN.to_owned());
        };
        let Some(token) = crate::auth::bearer(header) else {
            return Authentication::Refused(
                "the Authorization header must be `Bearer <token>`".to_owned(),
            );
        };
        let from_provider =
            jsonwebtoken::decode_header(token).is_ok_and(|header| Provider::signs_with(header.alg));
        let viewer = match (&self.oidc, from_provider) {
            (Some(provider), true) => self.provider_viewer(provider, token).await,
            (None, true) => Err(ApiError::Unauthenticated(
                "the token is signed with an algorithm not accepted here: no OpenID Connect \
                 provider is configured"
                    .to_owned(),
            )),
            (_, false) => self.keys.verify(token).map(|claims| Viewer {
                user_id: claims.sub,
                issued_at: claims.iat,
            }),
        };
        match viewer {
            Ok(viewer) => Authentication::Viewer(viewer),
            Err(e) => Authentication::Refused(e.message()),
        }
    }

    /// The user a provider's token names by e-mail.
    async fn provider_viewer(&self, provider: &Provider, token: &str) -> ApiResult<Viewer> {
        let verified = provider.verify(token).await?;
        let view = self.directory().await?;
        let user = view
            .directory
            .user_by_email(&verified.email)
            .ok_or_else(|| {
                ApiError::Unauthenticated(format!(
                    "no user with e-mail {} in this organisation; an admin adds users with \
                 createUser",
                    verified.email
                ))
            })?;
        Ok(Viewer {
            user_id: user.id,
            issued_at: verified.issued_at,
        })
    }

    /// The live feed: the running one, or a new one when none runs (first use, or the last
    /// one gave up).
    pub(crate) async fn hub(&self) -> ApiResult<Arc<crate::hub::Hub>> {
        let mut hub = self.hub.lock().await;
        if let Some(running) = hub.as_ref().filter(|h| !h.failed()) {
            return Ok(running.clone());
        }
        let started = Arc::new(crate::hub::Hub::start(self).await?);
        *hub = Some(started.clone());
        Ok(started)
    }

    /// A future that resolves when the server begins shutting down
    /// ([`ApiState::begin_shutdown`]).
    pub(crate) fn closing(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut rx = self.shutdown.subscribe();
        async move {
            // An error means the sender is gone, which only happens with the state itself.
            let _ = rx.wait_for(|down| *down).await;
        }
    }

    /// Waits until every read model includes `position`, for at most the configured
    /// consistency wait (then CONSISTENCY_TIMEOUT).
    pub(crate) async fn caught_up_to(
        &self,
        position: switchboard_store::Position,
    ) -> ApiResult<()> {
        let deadline = tokio::time::Instant::now() + self.limits.consistency_wait;
        self.projections.wait_for(position, deadline).await?;
        Ok(())
    }

    /// The read model of projector `name`.
    pub(crate) fn model(&self, name: &str) -> ApiResult<Arc<ReadModel>> {
        self.projections
            .read_model(name)
            .ok_or_else(|| ApiError::internal(format!("read model {name} is not running")))
    }

    /// Runs `f` on read model `name` on the blocking pool.
    pub(crate) async fn query<T, F>(&self, name: &str, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        Ok(self.model(name)?.query(f).await?)
    }

    /// The directory, caught up with the store (access rules are always checked on it).
    pub(crate) async fn directory(
        &self,
    ) -> ApiResult<tokio::sync::RwLockReadGuard<'_, switchboard_service::view::WriteView>> {
        self.service.view().await.map_err(ApiError::from)
    }
}

/// The shared state of a resolver's request.
pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a Inner {
    // The schema is always built with the state as data (see `schema::build`).
    ctx.data_unchecked::<ApiState>().inner()
}

/// The viewer the request's token names, not yet checked against the directory.
fn token_viewer(ctx: &Context<'_>) -> ApiResult<Viewer> {
    match ctx.data_opt::<Authentication>() {
        Some(Authentication::Viewer(v)) => Ok(*v),
        Some(Authentication::Refused(why)) => Err(ApiError::Unauthenticated(why.clone())),
        None => Err(ApiError::Unauthenticated("no token was sent".to_owned())),
    }
}

/// UNAUTHENTICATED unless `viewer` is an active user of `directory` whose token was issued
/// after their latest revocation. Checked on every request, after the token cache: a
/// deactivation or revocation refuses the tokens at once.
pub(crate) fn check_viewer(directory: &Directory, viewer: &Viewer) -> ApiResult<()> {
    let Some(user) = directory.user(viewer.user_id) else {
        return Err(ApiError::Unauthenticated(
            "the token's user does not exist in this organisation".to_owned(),
        ));
    };
    if !user.active {
        return Err(ApiError::Unauthenticated(
            "the token's user is deactivated".to_owned(),
        ));
    }
    if !user.accepts_token_issued_at(viewer.issued_at) {
        return Err(ApiError::Unauthenticated(
            "the token was revoked: it was issued before its user's tokens were revoked; sign \
             in again"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The viewer of a resolver's request, or UNAUTHENTICATED.
pub(crate) async fn viewer(ctx: &Context<'_>) -> ApiResult<Viewer> {
    let viewer = token_viewer(ctx)?;
    let view = state(ctx).directory().await?;
    check_viewer(&view.directory, &viewer)?;
    Ok(viewer)
}

/// The viewer and what they may see: computed once per viewer and directory position (see
/// [`Inner::access`]), always against the directory caught up with the store, as every check
/// is.
pub(crate) async fn access(ctx: &Context<'_>) -> ApiResult<Arc<Access>> {
    let viewer = token_viewer(ctx)?;
    let inner = state(ctx);
    let view = inner.directory().await?;
    check_viewer(&view.directory, &viewer)?;
    inner.access(&view, viewer.user_id)
}

impl Inner {
    /// The access of `user_id` in `view`'s directory, from the cache while the directory has
    /// not moved since it was computed.
    pub(crate) fn access(&self, view: &WriteView, user_id: Uuid) -> ApiResult<Arc<Access>> {
        if let Ok(cache) = self.access.lock()
            && let Some((position, access)) = cache.get(&user_id)
            && *position == view.directory_position()
        {
            return Ok(access.clone());
        }
        let access = Arc::new(Access::of(&view.directory, user_id)?);
        if let Ok(mut cache) = self.access.lock() {
            if cache.len() >= ACCESS_CACHE {
                cache.retain(|_, (position, _)| *position == view.directory_position());
                if cache.len() >= ACCESS_CACHE {
                    cache.clear();
                }
            }
            // Never replace an entry computed at a later position by this older one.
            let newer = cache
                .get(&user_id)
                .is_some_and(|(position, _)| *position > view.directory_position());
            if !newer {
                cache.insert(user_id, (view.directory_position(), access.clone()));
            }
        }
        Ok(access)
    }
}
