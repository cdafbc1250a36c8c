//! The server's configuration: one typed [`Config`], loaded once at start.
//!
//! Four layers, each overriding the one before: the defaults below, a TOML file (`--config FILE`,
//! or `SWITCHBOARD_CONFIG`), environment variables (`SWITCHBOARD_*`), and command-line flags.
//! [`Config::layered`] is the pure function that combines them, so tests give it explicit
//! environments instead of changing the process's; [`Config::load`] reads the real ones.
//!
//! Every key is documented in `deploy/switchboard.example.toml`. An unknown key in the file is
//! an error that names it (a typo must not silently fall back to a default); an invalid value
//! names the key, variable or flag it came from. Unknown `SWITCHBOARD_*` variables are ignored,
//! because other tools share the prefix (the test suites' `SWITCHBOARD_TEST_POSTGRES_URL`).
//! The JWT secret is a [`Secret`], whose `Debug` never prints it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use switchboard_store::secret::MasterKey;

/// Where the data lives unless configured.
pub const DEFAULT_DATA_DIR: &str = "./switchboard-data";

/// The address the server listens on unless configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The variable naming the configuration file when `--config` is not given.
pub const CONFIG_FILE_VAR: &str = "SWITCHBOARD_CONFIG";

/// A secret that `Debug` and `Display` never print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself: only for the code that signs or checks with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How log lines are written (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format; use text or json")),
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,switchboard_store_sqlite=debug`. `RUST_LOG`,
    /// when set, replaces it.
    pub level: String,
}

/// Where a command that is not `serve` finds its configuration: `--data-dir` and `--config`,
/// layered like the server's (the other keys come from the file and the environment).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// The data directory (default: the configured one, else `./switchboard-data`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A configuration file (default: `SWITCHBOARD_CONFIG`, if set).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration these flags select.
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&Flags {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            ..Flags::default()
        })
    }
}

/// Everything the server is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The address to listen on; port 0 picks a free port (the bound address is printed).
    pub listen: SocketAddr,
    /// The data directory: events in `<dir>/events`, read models in `<dir>/read-models`, the
    /// generated JWT secret in `<dir>/jwt-secret`.
    pub data_dir: PathBuf,
    /// The secret tokens are signed with. When `None`, the server generates one on first start
    /// and keeps it in `<data_dir>/jwt-secret`, so tokens survive restarts.
    pub jwt_secret: Option<Secret>,
    /// The master key channel secrets (IMAP and SMTP passwords, ingest secrets) are sealed with:
    /// 64 hexadecimal digits. When `None`, the server generates one on first start and keeps it
    /// in `<data_dir>/secret-key`.
    pub secret_key: Option<Secret>,
    /// Seed a demo organisation on first start (into an empty store).
    pub demo: bool,
    /// Keep the events in PostgreSQL at this URL instead of the embedded store, so that several
    /// server nodes share one history (each keeps its own read models in its data directory).
    /// May hold a password: never printed.
    pub postgres_url: Option<Secret>,
    /// The PostgreSQL schema of the store's tables.
    pub postgres_schema: String,
    /// Logging.
    pub log: LogConfig,
    /// `/readyz` answers 503 while a read model is more than this many events behind the store.
    pub ready_max_lag: u64,
    /// How long a shutdown waits for in-flight requests before dropping them.
    pub shutdown_timeout: Duration,
    /// The domain of automatic fallback e-mail addresses of inboxes without team e-mail.
    pub fallback_email_domain: String,
    /// How long a `clientMutationId` binds: within it a repeat returns the first result and
    /// another mutation with the key is refused; after it the key may be used again.
    pub idempotency_key_lifetime: Duration,
    /// The issuer (`iss`) and audience (`aud`) of the tokens `switchboard token` mints; tokens
    /// naming others are refused.
    pub tokens: switchboard_api::auth::TokenSettings,
    /// The longest `--ttl` `switchboard token` and `switchboard init` accept.
    pub token_max_ttl: Duration,
    /// Who may introspect the schema: `public`, `authenticated` (default) or `off`.
    pub introspection: switchboard_api::state::Introspection,
    /// An OpenID Connect provider whose tokens are accepted too.
    pub oidc: OidcConfig,
    /// Request limits.
    pub limits: switchboard_api::Limits,
    /// Rate and size limits of web form submissions (`POST /forms/{publicKey}`).
    pub forms: switchboard_api::FormLimits,
    /// Rate and size limits of website chat's visitor routes (`/chat/{publicKey}/...`).
    pub chat: switchboard_api::ChatLimits,
    /// The reverse proxies (networks) whose `X-Forwarded-For` names the client that the
    /// per-address limits of chat and forms count (`[http] trusted_proxies`, or
    /// `SWITCHBOARD_HTTP_TRUSTED_PROXIES` separated by commas); empty: none, the connection's
    /// peer is the client.
    pub trusted_proxies: switchboard_api::TrustedProxies,
    /// The SMTP/LMTP listener for inbound mail.
    pub smtp: SmtpConfig,
    /// IMAP accounts whose mail is imported into their e-mail channels.
    pub imap: Vec<ImapConfig>,
    /// Outbound e-mail.
    pub delivery: DeliveryConfig,
    /// The Facebook Messenger app whose webhook is served: its app secret and verify token.
    pub messenger: MessengerConfig,
    /// Signed anchors of the hash chain (`[audit]`).
    pub audit: AuditConfig,
    /// Seal customers' personal fields with their data subject's key as events are appended
    /// (`[privacy] seal_personal_data`; ADR 0007). Off by default until erasure is complete.
    pub seal_personal_data: bool,
}

/// Signed anchors of the hash chain (`[audit]`; see [`crate::anchor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The Ed25519 key (PKCS#8 PEM file) the server signs the chain's head with every
    /// `anchor_interval`, and `switchboard audit anchor` by default; keep it outside the
    /// database's reach. `None`: the server signs nothing.
    pub anchor_signing_key: Option<PathBuf>,
    /// Where anchors are appended; default `<data_dir>/anchors.ndjson`.
    pub anchors_file: Option<PathBuf>,
    /// How often the server signs the head (when it moved); at least one second.
    pub anchor_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            anchor_signing_key: None,
            anchors_file: None,
            anchor_interval: Duration::from_secs(3_600),
        }
    }
}

impl Config {
    /// The file anchors are appended to.
    pub fn anchors_file(&self) -> PathBuf {
        self.audit
            .anchors_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("anchors.ndjson"))
    }
}

/// The Messenger webhook's secrets (`[messenger]`): both, or neither (no webhook, and no
/// Messenger replies sent); and where the Send API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessengerConfig {
    /// The app secret Meta signs webhook requests with.
    pub app_secret: Option<Secret>,
    /// The token Meta's verification handshake presents.
    pub verify_token: Option<Secret>,
    /// The Graph API's base URL replies are sent to (`graph_url`,
    /// `SWITCHBOARD_MESSENGER_GRAPH_URL`); default Meta's, `https://graph.facebook.com`. Tests
    /// point it at a local stand-in.
    pub graph_url: String,
    /// The Graph API version (`graph_version`, `SWITCHBOARD_MESSENGER_GRAPH_VERSION`).
    pub graph_version: String,
}

impl Default for MessengerConfig {
    fn default() -> MessengerConfig {
        MessengerConfig {
            app_secret: None,
            verify_token: None,
            graph_url: "https://graph.facebook.com".to_owned(),
            graph_version: switchboard_delivery::DEFAULT_GRAPH_VERSION.to_owned(),
        }
    }
}

impl MessengerConfig {
    /// The API's settings, when both are set.
    pub fn settings(&self) -> Option<switchboard_api::messenger::MessengerSettings> {
        match (&self.app_secret, &self.verify_token) {
            (Some(app_secret), Some(verify_token)) => {
                Some(switchboard_api::messenger::MessengerSettings {
                    app_secret: app_secret.expose().to_owned(),
                    verify_token: verify_token.expose().to_owned(),
                    trusted_origin: switchboard_delivery::messenger::origin_of(&self.graph_url),
                })
            }
            _ => None,
        }
    }
}

/// An IMAP account, as configured (`[[imap]]`): imported into the connected e-mail channel of
/// `address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapConfig {
    /// The address of the connected e-mail channel its mail belongs to.
    pub address: String,
    /// The server's host name.
    pub host: String,
    /// The server's port (993 with `tls`, 143 otherwise, unless given).
    pub port: u16,
    /// `tls` (implicit), `starttls`, or `plain` (loopback only).
    pub tls: switchboard_email::imap::TlsMode,
    /// The login name.
    pub username: String,
    /// The login password: never printed.
    pub password: Secret,
    /// The mailbox read.
    pub mailbox: String,
}

/// The SMTP/LMTP listener, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// Where to listen; `None`: no listener (with `--demo`, 127.0.0.1:2525).
    pub listen: Option<SocketAddr>,
    /// The name it greets with.
    pub hostname: String,
    /// The largest message accepted, in bytes.
    pub max_message_bytes: usize,
    /// The PEM certificate chain `STARTTLS` offers (with `tls_key`); none: not offered.
    pub tls_certificate: Option<PathBuf>,
    /// The PEM private key of `tls_certificate`.
    pub tls_key: Option<PathBuf>,
}

impl Default for SmtpConfig {
    fn default() -> SmtpConfig {
        let defaults = switchboard_email::smtp::SmtpSettings::default();
        SmtpConfig {
            listen: None,
            hostname: defaults.hostname,
            max_message_bytes: defaults.max_message_bytes,
            tls_certificate: None,
            tls_key: None,
        }
    }
}

/// Outbound e-mail: the relay replies are sent through, and the delivery worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// The SMTP relay, e.g. `smtp://user:password@mail.example.com:587` (STARTTLS),
    /// `smtps://…:465` (implicit TLS) or `smtp://127.0.0.1:25?tls=none`; see
    /// [`switchboard_delivery::RelayUrl`]. May hold a password: never printed. Without it, e-mail
    /// replies are recorded but not sent.
    pub smtp_relay_url: Option<Secret>,
    /// Whether this node runs the delivery worker. Exactly one node of a PostgreSQL cluster
    /// should: every node that runs it sends every reply.
    pub worker: bool,
    /// How long temporary failures are retried, counted from the reply; then it fails.
    pub retry_for: Duration,
    /// The display name of a reply's `From`: `agent`, `inbox` or `agent_via_inbox`.
    pub from_name: switchboard_delivery::FromName,
    /// How long an agent's chat reply may go unseen by a visitor who left an e-mail address
    /// before it goes out to them by e-mail (`[chat] email_unseen_after`, at least 10 seconds;
    /// ADR 0006); `None` (`"off"`): chat replies are never e-mailed.
    pub chat_email_unseen_after: Option<Duration>,
}

impl Default for DeliveryConfig {
    fn default() -> DeliveryConfig {
        DeliveryConfig {
            smtp_relay_url: None,
            worker: true,
            retry_for: Duration::from_secs(24 * 3_600),
            from_name: switchboard_delivery::FromName::default(),
            chat_email_unseen_after: Some(Duration::from_secs(120)),
        }
    }
}

impl DeliveryConfig {
    /// The relay, when one is configured (and valid: [`Config::layered`] checked it).
    pub fn relay_url(&self) -> Option<Result<switchboard_delivery::RelayUrl, String>> {
        self.smtp_relay_url
            .as_ref()
            .map(|url| url.expose().parse().map_err(|e| format!("{e}")))
    }
}

/// An OpenID Connect provider, as configured: all of issuer, audience and key set URL, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The provider's issuer (`iss` of its tokens).
    pub issuer: Option<String>,
    /// The audience its tokens must carry (Switchboard's client id there).
    pub audience: Option<String>,
    /// The URL of its JSON Web Key Set.
    pub jwks_url: Option<String>,
    /// Keys older than this are fetched again.
    pub jwks_refresh: Duration,
    /// At most one fetch of the keys per this interval (a token naming an unknown key fetches
    /// them again, no more often than this).
    pub jwks_min_interval: Duration,
}

impl Default for OidcConfig {
    fn default() -> OidcConfig {
        OidcConfig {
            issuer: None,
            audience: None,
            jwks_url: None,
            jwks_refresh: Duration::from_secs(3_600),
            jwks_min_interval: Duration::from_secs(30),
        }
    }
}

impl OidcConfig {
    /// The provider's settings, when one is configured.
    pub fn settings(&self) -> Option<switchboard_api::auth::oidc::OidcSettings> {
        Some(switchboard_api::auth::oidc::OidcSettings {
            issuer: self.issuer.clone()?,
            audience: self.audience.clone()?,
            jwks_url: self.jwks_url.clone()?,
            jwks_refresh: self.jwks_refresh,
            jwks_min_interval: self.jwks_min_interval,
        })
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            jwt_secret: None,
            secret_key: None,
            demo: false,
            postgres_url: None,
            postgres_schema: "switchboard".to_owned(),
            log: LogConfig {
                format: LogFormat::Text,
                level: "info".to_owned(),
            },
            ready_max_lag: 1_000,
            shutdown_timeout: Duration::from_secs(10),
            fallback_email_domain: switchboard_service::service::DEFAULT_FALLBACK_DOMAIN.to_owned(),
            idempotency_key_lifetime: Duration::from_secs(24 * 3_600),
            tokens: switchboard_api::auth::TokenSettings::default(),
            token_max_ttl: Duration::from_secs(30 * 86_400),
            introspection: switchboard_api::state::Introspection::default(),
            oidc: OidcConfig::default(),
            limits: switchboard_api::Limits::default(),
            forms: switchboard_api::FormLimits::default(),
            chat: switchboard_api::ChatLimits::default(),
            trusted_proxies: switchboard_api::TrustedProxies::default(),
            smtp: SmtpConfig::default(),
            messenger: MessengerConfig::default(),
            imap: Vec::new(),
            delivery: DeliveryConfig::default(),
            audit: AuditConfig::default(),
            seal_personal_data: false,
        }
    }
}

/// What the command line sets; `None` (or `false`) leaves the lower layers' value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--listen ADDR`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--log-format text|json`.
    pub log_format: Option<LogFormat>,
    /// `--log-level FILTER`.
    pub log_level: Option<String>,
    /// `--demo`.
    pub demo: bool,
}

/// Why the configuration cannot be used. Every variant names where the bad value came from; the
/// binary prints it and exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A value is not acceptable.
    #[error("{origin}: {message}")]
    Invalid {
        /// Where it came from: `listen in FILE`, `SWITCHBOARD_LISTEN`, `--listen`.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The file's shape: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    jwt_secret: Option<String>,
    secret_key: Option<String>,
    demo: Option<bool>,
    postgres_url: Option<String>,
    postgres_schema: Option<String>,
    ready_max_lag: Option<u64>,
    shutdown_timeout: Option<String>,
    fallback_email_domain: Option<String>,
    idempotency_key_lifetime: Option<String>,
    token_issuer: Option<String>,
    token_audience: Option<String>,
    token_max_ttl: Option<String>,
    introspection: Option<String>,
    smtp_relay_url: Option<String>,
    delivery_worker: Option<bool>,
    delivery_retry_for: Option<String>,
    delivery_from_name: Option<String>,
    #[serde(default)]
    oidc: FileOidc,
    #[serde(default)]
    log: FileLog,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    forms: FileForms,
    #[serde(default)]
    chat: FileChat,
    #[serde(default)]
    http: FileHttp,
    #[serde(default)]
    smtp: FileSmtp,
    #[serde(default)]
    messenger: FileMessenger,
    #[serde(default)]
    imap: Vec<FileImap>,
    #[serde(default)]
    audit: FileAudit,
    #[serde(default)]
    privacy: FilePrivacy,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrivacy {
    seal_personal_data: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAudit {
    anchor_signing_key: Option<PathBuf>,
    anchors_file: Option<PathBuf>,
    anchor_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileImap {
    address: String,
    host: String,
    port: Option<u16>,
    tls: Option<String>,
    username: String,
    password: String,
    mailbox: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMessenger {
    app_secret: Option<String>,
    verify_token: Option<String>,
    graph_url: Option<String>,
    graph_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForms {
    per_address_per_minute: Option<u32>,
    per_address_burst: Option<u32>,
    per_form_per_minute: Option<u32>,
    per_form_burst: Option<u32>,
    max_body_bytes: Option<usize>,
    max_files: Option<usize>,
    max_file_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileChat {
    per_visitor_per_minute: Option<u32>,
    per_visitor_burst: Option<u32>,
    per_address_per_minute: Option<u32>,
    per_address_burst: Option<u32>,
    max_body_bytes: Option<usize>,
    max_message_chars: Option<usize>,
    email_unseen_after: Option<String>,
    max_sockets_per_visitor: Option<usize>,
    max_sockets_per_address: Option<usize>,
    ping_interval: Option<String>,
    idle_timeout: Option<String>,
    send_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSmtp {
    listen: Option<String>,
    hostname: Option<String>,
    max_message_bytes: Option<usize>,
    tls_certificate: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOidc {
    issuer: Option<String>,
    audience: Option<String>,
    jwks_url: Option<String>,
    jwks_refresh: Option<String>,
    jwks_min_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_depth: Option<usize>,
    max_complexity: Option<usize>,
    max_aliases: Option<usize>,
    max_body_bytes: Option<usize>,
    max_upload_file_bytes: Option<usize>,
    max_upload_bytes: Option<usize>,
    max_upload_files: Option<usize>,
    max_page_size: Option<usize>,
    default_page_size: Option<usize>,
    consistency_wait: Option<String>,
}

/// Parses a duration such as `500ms`, `5s`, `2m`, `24h` or `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a duration; write a number and a unit: 500ms, 5s, 2m, 24h, 7d")
    })?;
    let seconds = |factor: u64| {
        number
            .checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long"))
    };
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3_600),
        "d" => seconds(86_400),
        _ => Err(format!(
            "{text:?} has no known unit; write a number and a unit: 500ms, 5s, 2m, 24h, 7d"
        )),
    }
}

/// Where a value came from, for error messages.
#[derive(Clone, Copy)]
enum Origin<'a> {
    File(&'a Path),
    Env,
}

impl Config {
    /// Reads the file named by `flags.config` or `SWITCHBOARD_CONFIG` (if any) and the process
    /// environment, and combines them with `flags` (see [`Config::layered`]).
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("SWITCHBOARD_"))
            .collect();
        let path = flags
            .config
            .clone()
            .or_else(|| env.get(CONFIG_FILE_VAR).map(PathBuf::from));
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some((path, text))
            }
            None => None,
        };
        Config::layered(
            file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
            &env,
            flags,
        )
    }

    /// Combines the layers: defaults < `file` (its path, for messages, and its text) < `env` <
    /// `flags`, then checks the result as a whole.
    pub fn layered(
        file: Option<(&Path, &str)>,
        env: &HashMap<String, String>,
        flags: &Flags,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some((path, text)) = file {
            let parsed: FileConfig = toml::from_str(text).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                message: e.to_string().trim_end().to_owned(),
            })?;
            config.apply_file(path, parsed)?;
        }
        config.apply_env(env)?;
        config.apply_flags(flags);
        config.check()?;
        Ok(config)
    }

    fn apply_file(&mut self, path: &Path, file: FileConfig) -> Result<(), ConfigError> {
        let at = Origin::File(path);
        if let Some(v) = file.listen {
            self.listen = parse(at, "listen", &v, parse_listen)?;
        }
        if let Some(v) = file.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = file.jwt_secret {
            self.jwt_secret = Some(Secret(v));
        }
        if let Some(v) = file.secret_key {
            self.secret_key = Some(Secret(v));
        }
        if let Some(v) = file.demo {
            self.demo = v;
        }
        if let Some(v) = file.postgres_url {
            self.postgres_url = Some(Secret(v));
        }
        if let Some(v) = file.postgres_schema {
            self.postgres_schema = v;
        }
        if let Some(v) = file.smtp_relay_url {
            self.delivery.smtp_relay_url = Some(Secret(v)).filter(|v| !v.0.trim().is_empty());
        }
        if let Some(v) = file.delivery_worker {
            self.delivery.worker = v;
        }
        if let Some(v) = file.delivery_retry_for {
            self.delivery.retry_for = parse(at, "delivery_retry_for", &v, parse_duration)?;
        }
        if let Some(v) = file.delivery_from_name {
            self.delivery.from_name = parse(at, "delivery_from_name", &v, str::parse)?;
        }
        if let Some(v) = file.ready_max_lag {
            self.ready_max_lag = v;
        }
        if let Some(v) = file.shutdown_timeout {
            self.shutdown_timeout = parse(at, "shutdown_timeout", &v, parse_duration)?;
        }
        if let Some(v) = file.fallback_email_domain {
            self.fallback_email_domain = v;
        }
        if let Some(v) = file.idempotency_key_lifetime {
            self.idempotency_key_lifetime =
                parse(at, "idempotency_key_lifetime", &v, parse_duration)?;
        }
        if let Some(v) = file.token_issuer {
            self.tokens.issuer = v;
        }
        if let Some(v) = file.token_audience {
            self.tokens.audience = v;
        }
        if let Some(v) = file.token_max_ttl {
            self.token_max_ttl = parse(at, "token_max_ttl", &v, parse_duration)?;
        }
        if let Some(v) = file.introspection {
            self.introspection = parse(at, "introspection", &v, str::parse)?;
        }
        let o = file.oidc;
        if o.issuer.is_some() {
            self.oidc.issuer = o.issuer;
        }
        if o.audience.is_some() {
            self.oidc.audience = o.audience;
        }
        if o.jwks_url.is_some() {
            self.oidc.jwks_url = o.jwks_url;
        }
        if let Some(v) = o.jwks_refresh {
            self.oidc.jwks_refresh = parse(at, "oidc.jwks_refresh", &v, parse_duration)?;
        }
        if let Some(v) = o.jwks_min_interval {
            self.oidc.jwks_min_interval = parse(at, "oidc.jwks_min_interval", &v, parse_duration)?;
        }
        for (i, account) in file.imap.into_iter().enumerate() {
            let key = format!("imap[{i}].tls");
            let tls = match account.tls.as_deref().unwrap_or("tls") {
                "tls" => switchboard_email::imap::TlsMode::Tls,
                "starttls" => switchboard_email::imap::TlsMode::StartTls,
                "plain" => switchboard_email::imap::TlsMode::Plain,
                other => {
                    return Err(ConfigError::Invalid {
                        origin: format!("{key} in {}", path.display()),
                        message: format!("{other:?} is not one of tls, starttls, plain"),
                    });
                }
            };
            let port = account.port.unwrap_or(match tls {
                switchboard_email::imap::TlsMode::Tls => 993,
                _ => 143,
            });
            self.imap.push(ImapConfig {
                address: account.address,
                host: account.host,
                port,
                tls,
                username: account.username,
                password: Secret(account.password),
                mailbox: account.mailbox.unwrap_or_else(|| "INBOX".to_owned()),
            });
        }
        if let Some(v) = file.messenger.app_secret {
            self.messenger.app_secret = Some(Secret(v));
        }
        if let Some(v) = file.messenger.verify_token {
            self.messenger.verify_token = Some(Secret(v));
        }
        if let Some(v) = file.messenger.graph_url {
            self.messenger.graph_url = v;
        }
        if let Some(v) = file.messenger.graph_version {
            self.messenger.graph_version = v;
        }
        if let Some(v) = file.smtp.listen {
            self.smtp.listen = Some(parse(at, "smtp.listen", &v, parse_listen)?);
        }
        if let Some(v) = file.smtp.hostname {
            self.smtp.hostname = v;
        }
        if let Some(v) = file.smtp.max_message_bytes {
            self.smtp.max_message_bytes = v;
        }
        if file.smtp.tls_certificate.is_some() {
            self.smtp.tls_certificate = file.smtp.tls_certificate;
        }
        if file.smtp.tls_key.is_some() {
            self.smtp.tls_key = file.smtp.tls_key;
        }
        if let Some(v) = file.log.format {
            self.log.format = v;
        }
        if let Some(v) = file.log.level {
            self.log.level = v;
        }
        let l = &mut self.limits;
        let f = file.limits;
        if let Some(v) = f.max_depth {
            l.max_depth = v;
        }
        if let Some(v) = f.max_complexity {
            l.max_complexity = v;
        }
        if let Some(v) = f.max_aliases {
            l.max_aliases = v;
        }
        if let Some(v) = f.max_body_bytes {
            l.max_body_bytes = v;
        }
        if let Some(v) = f.max_upload_file_bytes {
            l.max_upload_file_bytes = v;
        }
        if let Some(v) = f.max_upload_bytes {
            l.max_upload_bytes = v;
        }
        if let Some(v) = f.max_upload_files {
            l.max_upload_files = v;
        }
        if let Some(v) = f.max_page_size {
            l.max_page_size = v;
        }
        if let Some(v) = f.default_page_size {
            l.default_page_size = v;
        }
        if let Some(v) = f.consistency_wait {
            l.consistency_wait = parse(at, "limits.consistency_wait", &v, parse_duration)?;
        }
        let (forms, f) = (&mut self.forms, file.forms);
        for (value, slot) in [
            (f.per_address_per_minute, &mut forms.per_address_per_minute),
            (f.per_address_burst, &mut forms.per_address_burst),
            (f.per_form_per_minute, &mut forms.per_form_per_minute),
            (f.per_form_burst, &mut forms.per_form_burst),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
        for (value, slot) in [
            (f.max_body_bytes, &mut forms.max_body_bytes),
            (f.max_files, &mut forms.max_files),
            (f.max_file_bytes, &mut forms.max_file_bytes),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
        let (chat, f) = (&mut self.chat, file.chat);
        if let Some(v) = &f.email_unseen_after {
            self.delivery.chat_email_unseen_after =
                parse(at, "chat.email_unseen_after", v, parse_unseen_after)?;
        }
        for (value, slot) in [
            (f.per_visitor_per_minute, &mut chat.per_visitor_per_minute),
            (f.per_visitor_burst, &mut chat.per_visitor_burst),
            (f.per_address_per_minute, &mut chat.per_address_per_minute),
            (f.per_address_burst, &mut chat.per_address_burst),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
        for (value, slot) in [
            (f.max_body_bytes, &mut chat.max_body_bytes),
            (f.max_message_chars, &mut chat.max_message_chars),
            (f.max_sockets_per_visitor, &mut chat.max_sockets_per_visitor),
            (f.max_sockets_per_address, &mut chat.max_sockets_per_address),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
        for (name, value, slot) in [
            (
                "chat.ping_interval",
                f.ping_interval,
                &mut chat.ping_interval,
            ),
            ("chat.idle_timeout", f.idle_timeout, &mut chat.idle_timeout),
            ("chat.send_timeout", f.send_timeout, &mut chat.send_timeout),
        ] {
            if let Some(v) = value {
                *slot = parse(at, name, &v, parse_duration)?;
            }
        }
        if let Some(networks) = &file.http.trusted_proxies {
            self.trusted_proxies = parse_trusted_proxies(networks)
                .map_err(|message| invalid(at, "http.trusted_proxies", message))?;
        }
        if file.audit.anchor_signing_key.is_some() {
            self.audit.anchor_signing_key = file.audit.anchor_signing_key;
        }
        if file.audit.anchors_file.is_some() {
            self.audit.anchors_file = file.audit.anchors_file;
        }
        if let Some(v) = file.audit.anchor_interval {
            self.audit.anchor_interval = parse(at, "audit.anchor_interval", &v, parse_duration)?;
        }
        if let Some(v) = file.privacy.seal_personal_data {
            self.seal_personal_data = v;
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        let at = Origin::Env;
        let var = |name: &str| env.get(name).map(String::as_str);
        if let Some(v) = var("SWITCHBOARD_LISTEN") {
            self.listen = parse(at, "SWITCHBOARD_LISTEN", v, parse_listen)?;
        }
        if let Some(v) = var("SWITCHBOARD_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = var("SWITCHBOARD_JWT_SECRET") {
            self.jwt_secret = Some(Secret(v.to_owned()));
        }
        if let Some(v) = var("SWITCHBOARD_SECRET_KEY") {
            self.secret_key = Some(Secret(v.to_owned()));
        }
        if let Some(v) = var("SWITCHBOARD_DEMO") {
            self.demo = parse(at, "SWITCHBOARD_DEMO", v, parse_bool)?;
        }
        if let Some(v) = var("SWITCHBOARD_POSTGRES_URL") {
            self.postgres_url = Some(Secret(v.to_owned()));
        }
        if let Some(v) = var("SWITCHBOARD_POSTGRES_SCHEMA") {
            self.postgres_schema = v.to_owned();
        }
        if let Some(v) = var("SWITCHBOARD_SMTP_RELAY_URL") {
            self.delivery.smtp_relay_url =
                Some(Secret(v.to_owned())).filter(|v| !v.0.trim().is_empty());
        }
        if let Some(v) = var("SWITCHBOARD_DELIVERY_WORKER") {
            self.delivery.worker = parse(at, "SWITCHBOARD_DELIVERY_WORKER", v, parse_bool)?;
        }
        if let Some(v) = var("SWITCHBOARD_DELIVERY_RETRY_FOR") {
            self.delivery.retry_for =
                parse(at, "SWITCHBOARD_DELIVERY_RETRY_FOR", v, parse_duration)?;
        }
        if let Some(v) = var("SWITCHBOARD_DELIVERY_FROM_NAME") {
            self.delivery.from_name = parse(at, "SWITCHBOARD_DELIVERY_FROM_NAME", v, str::parse)?;
        }
        if let Some(v) = var("SWITCHBOARD_READY_MAX_LAG") {
            self.ready_max_lag = parse(at, "SWITCHBOARD_READY_MAX_LAG", v, parse_number)?;
        }
        if let Some(v) = var("SWITCHBOARD_SHUTDOWN_TIMEOUT") {
            self.shutdown_timeout = parse(at, "SWITCHBOARD_SHUTDOWN_TIMEOUT", v, parse_duration)?;
        }
        if let Some(v) = var("SWITCHBOARD_FALLBACK_EMAIL_DOMAIN") {
            self.fallback_email_domain = v.to_owned();
        }
        if let Some(v) = var("SWITCHBOARD_IDEMPOTENCY_KEY_LIFETIME") {
            self.idempotency_key_lifetime = parse(
                at,
                "SWITCHBOARD_IDEMPOTENCY_KEY_LIFETIME",
                v,
                parse_duration,
            )?;
        }
        if let Some(v) = var("SWITCHBOARD_TOKEN_ISSUER") {
            self.tokens.issuer = v.to_owned();
        }
        if let Some(v) = var("SWITCHBOARD_TOKEN_AUDIENCE") {
            self.tokens.audience = v.to_owned();
        }
        if let Some(v) = var("SWITCHBOARD_TOKEN_MAX_TTL") {
            self.token_max_ttl = parse(at, "SWITCHBOARD_TOKEN_MAX_TTL", v, parse_duration)?;
        }
        if let Some(v) = var("SWITCHBOARD_INTROSPECTION") {
            self.introspection = parse(at, "SWITCHBOARD_INTROSPECTION", v, str::parse)?;
        }
        for (name, slot) in [
            ("SWITCHBOARD_OIDC_ISSUER", &mut self.oidc.issuer),
            ("SWITCHBOARD_OIDC_AUDIENCE", &mut self.oidc.audience),
            ("SWITCHBOARD_OIDC_JWKS_URL", &mut self.oidc.jwks_url),
        ] {
            if let Some(v) = var(name) {
                *slot = Some(v.to_owned()).filter(|v| !v.trim().is_empty());
            }
        }
        if let Some(v) = var("SWITCHBOARD_OIDC_JWKS_REFRESH") {
            self.oidc.jwks_refresh = parse(at, "SWITCHBOARD_OIDC_JWKS_REFRESH", v, parse_duration)?;
        }
        if let Some(v) = var("SWITCHBOARD_OIDC_JWKS_MIN_INTERVAL") {
            self.oidc.jwks_min_interval =
                parse(at, "SWITCHBOARD_OIDC_JWKS_MIN_INTERVAL", v, parse_duration)?;
        }
        if let Some(v) = var("SWITCHBOARD_MESSENGER_APP_SECRET") {
            self.messenger.app_secret = Some(Secret(v.to_owned()));
        }
        if let Some(v) = var("SWITCHBOARD_MESSENGER_VERIFY_TOKEN") {
            self.messenger.verify_token = Some(Secret(v.to_owned()));
        }
        if let Some(v) = var("SWITCHBOARD_MESSENGER_GRAPH_URL") {
            self.messenger.graph_url = v.to_owned();
        }
        if let Some(v) = var("SWITCHBOARD_MESSENGER_GRAPH_VERSION") {
            self.messenger.graph_version = v.to_owned();
        }
        if let Some(v) = var("SWITCHBOARD_SMTP_LISTEN") {
            self.smtp.listen = Some(parse(at, "SWITCHBOARD_SMTP_LISTEN", v, parse_listen)?);
        }
        if let Some(v) = var("SWITCHBOARD_SMTP_HOSTNAME") {
            self.smtp.hostname = v.to_owned();
        }
        if let Some(v) = var("SWITCHBOARD_SMTP_TLS_CERTIFICATE") {
            self.smtp.tls_certificate = Some(PathBuf::from(v));
        }
        if let Some(v) = var("SWITCHBOARD_SMTP_TLS_KEY") {
            self.smtp.tls_key = Some(PathBuf::from(v));
        }
        if let Some(v) = var("SWITCHBOARD_SMTP_MAX_MESSAGE_BYTES") {
            self.smtp.max_message_bytes =
                parse(at, "SWITCHBOARD_SMTP_MAX_MESSAGE_BYTES", v, parse_number)?;
        }
        if let Some(v) = var("SWITCHBOARD_LOG_FORMAT") {
            self.log.format = parse(at, "SWITCHBOARD_LOG_FORMAT", v, LogFormat::from_str)?;
        }
        if let Some(v) = var("SWITCHBOARD_LOG_LEVEL") {
            self.log.level = v.to_owned();
        }
        let l = &mut self.limits;
        for (name, slot) in [
            ("SWITCHBOARD_MAX_DEPTH", &mut l.max_depth),
            ("SWITCHBOARD_MAX_COMPLEXITY", &mut l.max_complexity),
            ("SWITCHBOARD_MAX_ALIASES", &mut l.max_aliases),
            ("SWITCHBOARD_MAX_BODY_BYTES", &mut l.max_body_bytes),
            (
                "SWITCHBOARD_MAX_UPLOAD_FILE_BYTES",
                &mut l.max_upload_file_bytes,
            ),
            ("SWITCHBOARD_MAX_UPLOAD_BYTES", &mut l.max_upload_bytes),
            ("SWITCHBOARD_MAX_UPLOAD_FILES", &mut l.max_upload_files),
            ("SWITCHBOARD_MAX_PAGE_SIZE", &mut l.max_page_size),
            ("SWITCHBOARD_DEFAULT_PAGE_SIZE", &mut l.default_page_size),
        ] {
            if let Some(v) = var(name) {
                *slot = parse(at, name, v, parse_number)?;
            }
        }
        if let Some(v) = var("SWITCHBOARD_CONSISTENCY_WAIT") {
            l.consistency_wait = parse(at, "SWITCHBOARD_CONSISTENCY_WAIT", v, parse_duration)?;
        }
        let forms = &mut self.forms;
        for (name, slot) in [
            (
                "SWITCHBOARD_FORMS_PER_ADDRESS_PER_MINUTE",
                &mut forms.per_address_per_minute,
            ),
            (
                "SWITCHBOARD_FORMS_PER_ADDRESS_BURST",
                &mut forms.per_address_burst,
            ),
            (
                "SWITCHBOARD_FORMS_PER_FORM_PER_MINUTE",
                &mut forms.per_form_per_minute,
            ),
            (
                "SWITCHBOARD_FORMS_PER_FORM_BURST",
                &mut forms.per_form_burst,
            ),
        ] {
            if let Some(v) = var(name) {
                *slot = parse(at, name, v, parse_number)?;
            }
        }
        for (name, slot) in [
            (
                "SWITCHBOARD_FORMS_MAX_BODY_BYTES",
                &mut forms.max_body_bytes,
            ),
            ("SWITCHBOARD_FORMS_MAX_FILES", &mut forms.max_files),
            (
                "SWITCHBOARD_FORMS_MAX_FILE_BYTES",
                &mut forms.max_file_bytes,
            ),
        ] {
            if let Some(v) = var(name) {
                *slot = parse(at, name, v, parse_number)?;
            }
        }
        if let Some(v) = var("SWITCHBOARD_CHAT_EMAIL_UNSEEN_AFTER") {
            self.delivery.chat_email_unseen_after = parse(
                at,
                "SWITCHBOARD_CHAT_EMAIL_UNSEEN_AFTER",
                v,
                parse_unseen_after,
            )?;
        }
        let chat = &mut self.chat;
        for (name, slot) in [
            (
                "SWITCHBOARD_CHAT_PER_VISITOR_PER_MINUTE",
                &mut chat.per_visitor_per_minute,
            ),
            (
                "SWITCHBOARD_CHAT_PER_VISITOR_BURST",
                &mut chat.per_visitor_burst,
            ),
            (
                "SWITCHBOARD_CHAT_PER_ADDRESS_PER_MINUTE",
                &mut chat.per_address_per_minute,
            ),
            (
                "SWITCHBOARD_CHAT_PER_ADDRESS_BURST",
                &mut chat.per_address_burst,
            ),
        ] {
            if let Some(v) = var(name) {
                *slot = parse(at, name, v, parse_number)?;
            }
        }
        for (name, slot) in [
            ("SWITCHBOARD_CHAT_MAX_BODY_BYTES", &mut chat.max_body_bytes),
            (
                "SWITCHBOARD_CHAT_MAX_MESSAGE_CHARS",
                &mut chat.max_message_chars,
            ),
            (
                "SWITCHBOARD_CHAT_MAX_SOCKETS_PER_VISITOR",
                &mut chat.max_sockets_per_visitor,
            ),
            (
                "SWITCHBOARD_CHAT_MAX_SOCKETS_PER_ADDRESS",
                &mut chat.max_sockets_per_address,
            ),
        ] {
            if let Some(v) = var(name) {
                *slot = parse(at, name, v, parse_number)?;
            }
        }
        for (name, slot) in [
            ("SWITCHBOARD_CHAT_PING_INTERVAL", &mut chat.ping_interval),
            ("SWITCHBOARD_CHAT_IDLE_TIMEOUT", &mut chat.idle_timeout),
            ("SWITCHBOARD_CHAT_SEND_TIMEOUT", &mut chat.send_timeout),
        ] {
            if let Some(v) = var(name) {
                *slot = parse(at, name, v, parse_duration)?;
            }
        }
        if let Some(v) = var("SWITCHBOARD_AUDIT_ANCHOR_SIGNING_KEY") {
            self.audit.anchor_signing_key = Some(PathBuf::from(v)).filter(|_| !v.is_empty());
        }
        if let Some(v) = var("SWITCHBOARD_AUDIT_ANCHORS_FILE") {
            self.audit.anchors_file = Some(PathBuf::from(v)).filter(|_| !v.is_empty());
        }
        if let Some(v) = var("SWITCHBOARD_PRIVACY_SEAL_PERSONAL_DATA") {
            self.seal_personal_data =
                parse(at, "SWITCHBOARD_PRIVACY_SEAL_PERSONAL_DATA", v, parse_bool)?;
        }
        if let Some(v) = var("SWITCHBOARD_AUDIT_ANCHOR_INTERVAL") {
            self.audit.anchor_interval =
                parse(at, "SWITCHBOARD_AUDIT_ANCHOR_INTERVAL", v, parse_duration)?;
        }
        if let Some(v) = var("SWITCHBOARD_HTTP_TRUSTED_PROXIES") {
            let networks: Vec<&str> = v.split(',').filter(|n| !n.trim().is_empty()).collect();
            self.trusted_proxies = parse_trusted_proxies(&networks)
                .map_err(|message| invalid(at, "SWITCHBOARD_HTTP_TRUSTED_PROXIES", message))?;
        }
        Ok(())
    }

    fn apply_flags(&mut self, flags: &Flags) {
        if let Some(v) = flags.listen {
            self.listen = v;
        }
        if let Some(v) = &flags.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = flags.log_format {
            self.log.format = v;
        }
        if let Some(v) = &flags.log_level {
            self.log.level = v.clone();
        }
        if flags.demo {
            self.demo = true;
        }
    }

    /// Checks what no single value shows: consistency between values, and values that parse
    /// but cannot work.
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |origin: &str, message: String| {
            Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                message,
            })
        };
        if let Some(key) = &self.secret_key
            && let Err(message) = MasterKey::from_hex(key.expose())
        {
            return invalid(
                "secret_key (SWITCHBOARD_SECRET_KEY)",
                format!(
                    "{message}, e.g. the output of `openssl rand -hex 32`; or leave it unset to \
                     have one generated in the data directory"
                ),
            );
        }
        if let Some(secret) = &self.jwt_secret
            && secret.0.len() < 32
        {
            return invalid(
                "jwt_secret (SWITCHBOARD_JWT_SECRET)",
                format!(
                    "is {} bytes long; use at least 32 random bytes (e.g. `openssl rand -hex 32`), \
                     or leave it unset to have one generated in the data directory",
                    secret.0.len()
                ),
            );
        }
        for (value, name, least) in [
            (
                &self.messenger.app_secret,
                "messenger.app_secret (SWITCHBOARD_MESSENGER_APP_SECRET)",
                16,
            ),
            (
                &self.messenger.verify_token,
                "messenger.verify_token (SWITCHBOARD_MESSENGER_VERIFY_TOKEN)",
                8,
            ),
        ] {
            if let Some(secret) = value
                && secret.0.trim().chars().count() < least
            {
                return invalid(
                    name,
                    format!(
                        "is too short: use at least {least} characters (an empty one would let \
                         anyone sign webhook requests)"
                    ),
                );
            }
        }
        if self.messenger.app_secret.is_some() != self.messenger.verify_token.is_some() {
            return invalid(
                "messenger.app_secret and messenger.verify_token \
                 (SWITCHBOARD_MESSENGER_APP_SECRET, SWITCHBOARD_MESSENGER_VERIFY_TOKEN)",
                "give both, or neither".to_owned(),
            );
        }
        if self.audit.anchor_interval < Duration::from_secs(1) {
            return invalid(
                "audit.anchor_interval (SWITCHBOARD_AUDIT_ANCHOR_INTERVAL)",
                "must be at least one second".to_owned(),
            );
        }
        if self.smtp.tls_certificate.is_some() != self.smtp.tls_key.is_some() {
            return invalid(
                "smtp.tls_certificate and smtp.tls_key (SWITCHBOARD_SMTP_TLS_CERTIFICATE, \
                 SWITCHBOARD_SMTP_TLS_KEY)",
                "give both, or neither".to_owned(),
            );
        }
        let forms = &self.forms;
        if [
            forms.per_address_per_minute,
            forms.per_address_burst,
            forms.per_form_per_minute,
            forms.per_form_burst,
        ]
        .contains(&0)
        {
            return invalid(
                "forms.per_address_per_minute, per_address_burst, per_form_per_minute, \
                 per_form_burst (SWITCHBOARD_FORMS_...)",
                "must be at least 1: a form that takes nothing is a disconnected form".to_owned(),
            );
        }
        if forms.max_file_bytes > forms.max_body_bytes || forms.max_body_bytes < 1024 {
            return invalid(
                "forms.max_body_bytes and forms.max_file_bytes (SWITCHBOARD_FORMS_MAX_BODY_BYTES, \
                 SWITCHBOARD_FORMS_MAX_FILE_BYTES)",
                format!(
                    "a body of {} bytes cannot hold a file of {} bytes; bodies need at least 1024",
                    forms.max_body_bytes, forms.max_file_bytes
                ),
            );
        }
        let chat = &self.chat;
        if [
            chat.per_visitor_per_minute,
            chat.per_visitor_burst,
            chat.per_address_per_minute,
            chat.per_address_burst,
        ]
        .contains(&0)
        {
            return invalid(
                "chat.per_visitor_per_minute, per_visitor_burst, per_address_per_minute, \
                 per_address_burst (SWITCHBOARD_CHAT_...)",
                "must be at least 1: a chat that takes nothing is a disconnected chat".to_owned(),
            );
        }
        if chat.max_body_bytes < 1024 || chat.max_message_chars == 0 {
            return invalid(
                "chat.max_body_bytes and chat.max_message_chars (SWITCHBOARD_CHAT_MAX_BODY_BYTES, \
                 SWITCHBOARD_CHAT_MAX_MESSAGE_CHARS)",
                "bodies need at least 1024 bytes, and messages at least one character".to_owned(),
            );
        }
        if chat.max_sockets_per_visitor == 0 || chat.max_sockets_per_address == 0 {
            return invalid(
                "chat.max_sockets_per_visitor and chat.max_sockets_per_address \
                 (SWITCHBOARD_CHAT_MAX_SOCKETS_PER_...)",
                "must be at least 1: visitors need a socket for live chat".to_owned(),
            );
        }
        if [chat.ping_interval, chat.idle_timeout, chat.send_timeout].contains(&Duration::ZERO)
            || chat.idle_timeout < chat.ping_interval * 2
        {
            // One lost or late pong must not close a live visitor's socket.
            return invalid(
                "chat.ping_interval, idle_timeout, send_timeout (SWITCHBOARD_CHAT_...)",
                "must be more than zero, and idle_timeout at least twice ping_interval".to_owned(),
            );
        }
        if self.smtp.max_message_bytes < 1024 {
            return invalid(
                "smtp.max_message_bytes (SWITCHBOARD_SMTP_MAX_MESSAGE_BYTES)",
                format!(
                    "is {} bytes; an e-mail's headers alone need more: use at least 1024",
                    self.smtp.max_message_bytes
                ),
            );
        }
        for (name, value) in [
            (
                "token_issuer (SWITCHBOARD_TOKEN_ISSUER)",
                &self.tokens.issuer,
            ),
            (
                "token_audience (SWITCHBOARD_TOKEN_AUDIENCE)",
                &self.tokens.audience,
            ),
        ] {
            if value.trim().is_empty() {
                return invalid(name, "must not be empty".to_owned());
            }
        }
        if self.token_max_ttl.is_zero() {
            return invalid(
                "token_max_ttl (SWITCHBOARD_TOKEN_MAX_TTL)",
                "must be longer than 0s".to_owned(),
            );
        }
        let o = &self.oidc;
        let named = [
            ("oidc.issuer (SWITCHBOARD_OIDC_ISSUER)", &o.issuer),
            ("oidc.audience (SWITCHBOARD_OIDC_AUDIENCE)", &o.audience),
            ("oidc.jwks_url (SWITCHBOARD_OIDC_JWKS_URL)", &o.jwks_url),
        ];
        if named.iter().any(|(_, v)| v.is_some())
            && let Some((missing, _)) = named.iter().find(|(_, v)| v.is_none())
        {
            return invalid(
                missing,
                "is not set; an OpenID Connect provider needs its issuer, audience and key set \
                 URL"
                .to_owned(),
            );
        }
        if let Some(url) = &o.jwks_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return invalid(
                "oidc.jwks_url (SWITCHBOARD_OIDC_JWKS_URL)",
                format!("{url:?} is not an http(s) URL"),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return invalid(
                "log.level (SWITCHBOARD_LOG_LEVEL, --log-level)",
                format!("{:?} is not a tracing filter: {e}", self.log.level),
            );
        }
        let l = &self.limits;
        for (name, value) in [
            ("limits.max_depth", l.max_depth),
            ("limits.max_complexity", l.max_complexity),
            ("limits.max_aliases", l.max_aliases),
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_upload_file_bytes", l.max_upload_file_bytes),
            ("limits.max_upload_bytes", l.max_upload_bytes),
            ("limits.max_upload_files", l.max_upload_files),
            ("limits.max_page_size", l.max_page_size),
            ("limits.default_page_size", l.default_page_size),
        ] {
            if value == 0 {
                return invalid(name, "must be at least 1".to_owned());
            }
        }
        if l.default_page_size > l.max_page_size {
            return invalid(
                "limits.default_page_size",
                format!(
                    "{} is larger than limits.max_page_size ({})",
                    l.default_page_size, l.max_page_size
                ),
            );
        }
        if let Some(Err(message)) = self.delivery.relay_url() {
            // The message names what is wrong, never the password.
            return invalid(
                "smtp_relay_url (SWITCHBOARD_SMTP_RELAY_URL)",
                message
                    .strip_prefix("smtp_relay_url ")
                    .unwrap_or(&message)
                    .to_owned(),
            );
        }
        if self.delivery.retry_for.is_zero() {
            return invalid(
                "delivery_retry_for (SWITCHBOARD_DELIVERY_RETRY_FOR)",
                "must be longer than 0s".to_owned(),
            );
        }
        if self.fallback_email_domain.trim().is_empty() || !self.fallback_email_domain.contains('.')
        {
            return invalid(
                "fallback_email_domain",
                format!("{:?} is not a domain name", self.fallback_email_domain),
            );
        }
        Ok(())
    }

    /// The data directory's event store.
    pub fn events_dir(&self) -> PathBuf {
        self.data_dir.join("events")
    }

    /// The data directory's read models.
    pub fn read_models_dir(&self) -> PathBuf {
        self.data_dir.join("read-models")
    }

    /// The file a generated JWT secret is kept in.
    pub fn jwt_secret_file(&self) -> PathBuf {
        self.data_dir.join("jwt-secret")
    }

    /// Where a generated secret key is kept.
    pub fn secret_key_file(&self) -> PathBuf {
        self.data_dir.join("secret-key")
    }
}

/// Shortest `email_unseen_after`: a visitor needs a moment to look at the widget.
const MIN_UNSEEN_AFTER: Duration = Duration::from_secs(10);

/// `email_unseen_after`: a duration of at least [`MIN_UNSEEN_AFTER`], or `off`.
fn parse_unseen_after(value: &str) -> Result<Option<Duration>, String> {
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let after = parse_duration(value)?;
    if after < MIN_UNSEEN_AFTER {
        return Err(format!(
            "must be at least {}s, or \"off\"",
            MIN_UNSEEN_AFTER.as_secs()
        ));
    }
    Ok(Some(after))
}

fn parse<T>(
    origin: Origin<'_>,
    name: &str,
    value: &str,
    parser: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    parser(value).map_err(|message| invalid(origin, name, message))
}

/// The error of key or variable `name` from `origin`, saying `message`.
fn invalid(origin: Origin<'_>, name: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        origin: match origin {
            Origin::File(path) => format!("{name} in {}", path.display()),
            Origin::Env => name.to_owned(),
        },
        message,
    }
}

/// A socket address such as `127.0.0.1:8080` or `[::]:8080`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("{text:?} is not a socket address; write IP:PORT, e.g. 0.0.0.0:8080 or [::]:8080")
    })
}

/// Networks in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address is itself alone).
fn parse_trusted_proxies<S: AsRef<str>>(
    networks: &[S],
) -> Result<switchboard_api::TrustedProxies, String> {
    networks
        .iter()
        .map(|n| {
            n.as_ref()
                .parse()
                .map_err(|e: switchboard_api::CidrError| e.to_string())
        })
        .collect::<Result<_, _>>()
        .map(switchboard_api::TrustedProxies::new)
}

fn parse_number<T: FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a non-negative whole number"))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean; use true or false")),
    }
}

/// The JWT secret to sign with: the configured one, else the one kept in the data directory,
/// else (when `create`) a new random one written there with mode 0600. `None` when there is
/// none and `create` is false.
pub fn jwt_secret(config: &Config, create: bool) -> anyhow::Result<Option<Secret>> {
    use anyhow::Context;
    if let Some(secret) = &config.jwt_secret {
        return Ok(Some(secret.clone()));
    }
    let path = config.jwt_secret_file();
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(Some(Secret(text.trim().to_owned()))),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    if !create {
        return Ok(None);
    }
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    let secret = hex::encode(bytes);
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    write_private(&path, secret.as_bytes())
        .with_context(|| format!("writing the generated JWT secret to {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a JWT secret");
    Ok(Some(Secret(secret)))
}

/// The master key channel secrets are sealed with: the configured one, else the one kept in the
/// data directory, else a new random one written there with mode 0600.
pub fn secret_key(config: &Config) -> anyhow::Result<MasterKey> {
    use anyhow::Context;
    if let Some(key) = existing_secret_key(config)? {
        return Ok(key);
    }
    let path = config.secret_key_file();
    let key = MasterKey::generate();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    write_private(&path, key.to_hex().as_bytes())
        .with_context(|| format!("writing the generated secret key to {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a secret key for channel secrets");
    Ok(key)
}

/// The master key, when one is configured or kept in the data directory: `None` when there is
/// none yet (nothing was sealed with one).
pub fn existing_secret_key(config: &Config) -> anyhow::Result<Option<MasterKey>> {
    use anyhow::Context;
    if let Some(key) = &config.secret_key {
        return MasterKey::from_hex(key.expose())
            .map(Some)
            .map_err(|message| anyhow::anyhow!("secret_key (SWITCHBOARD_SECRET_KEY) {message}"));
    }
    let path = config.secret_key_file();
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => MasterKey::from_hex(&text)
            .map(Some)
            .map_err(|message| anyhow::anyhow!("{}: {message}", path.display())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `bytes` to a new file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_only() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn tokens_introspection_and_oidc_are_layered_and_checked() {
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let file = "token_issuer = \"acme\"\ntoken_max_ttl = \"2h\"\nintrospection = \"off\"\n\
                    [oidc]\nissuer = \"https://login.acme.test/\"\naudience = \"switchboard\"\n\
                    jwks_url = \"https://login.acme.test/keys\"\njwks_refresh = \"10m\"\n";
        let config = Config::layered(
            Some((Path::new("c.toml"), file)),
            &env(&[("SWITCHBOARD_INTROSPECTION", "public")]),
            &Flags::default(),
        )
        .expect("valid");
        assert_eq!(config.tokens.issuer, "acme");
        assert_eq!(
            config.tokens.audience,
            switchboard_api::auth::DEFAULT_AUDIENCE
        );
        assert_eq!(config.token_max_ttl, Duration::from_secs(7_200));
        assert_eq!(
            config.introspection,
            switchboard_api::state::Introspection::Public
        );
        let oidc = config.oidc.settings().expect("configured");
        assert_eq!(oidc.jwks_refresh, Duration::from_secs(600));
        assert_eq!(oidc.jwks_min_interval, Duration::from_secs(30));
        assert_eq!(Config::default().oidc.settings(), None);
        let refused = |file: &str, vars: &[(&str, &str)]| {
            Config::layered(
                Some((Path::new("c.toml"), file)),
                &env(vars),
                &Flags::default(),
            )
            .expect_err("refused")
            .to_string()
        };
        assert!(refused("", &[("SWITCHBOARD_INTROSPECTION", "maybe")]).contains("public"));
        assert!(
            refused("[oidc]\nissuer = \"https://login.acme.test/\"\n", &[])
                .contains("oidc.audience")
        );
        assert!(refused("token_max_ttl = \"0s\"\n", &[]).contains("token_max_ttl"));
        assert!(refused("[oidc]\nbogus = 1\n", &[]).contains("bogus"));
    }

    #[test]
    fn delivery_is_layered_and_checked() {
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let defaults = Config::default().delivery;
        assert_eq!(defaults.smtp_relay_url, None);
        assert!(defaults.worker);
        assert_eq!(defaults.retry_for, Duration::from_secs(86_400));
        let file = "smtp_relay_url = \"smtp://out:pw@mail.acme.test\"\n\
                    delivery_retry_for = \"2h\"\ndelivery_from_name = \"inbox\"\n";
        let config = Config::layered(
            Some((Path::new("c.toml"), file)),
            &env(&[
                ("SWITCHBOARD_DELIVERY_WORKER", "false"),
                (
                    "SWITCHBOARD_SMTP_RELAY_URL",
                    "smtps://out:s3cret-pw@mail.acme.test",
                ),
            ]),
            &Flags::default(),
        )
        .expect("valid");
        let relay = config.delivery.relay_url().expect("set").expect("valid");
        assert_eq!(relay.security, switchboard_delivery::Security::Implicit);
        assert_eq!(relay.port, 465);
        assert!(!config.delivery.worker);
        assert_eq!(config.delivery.retry_for, Duration::from_secs(7_200));
        assert_eq!(
            config.delivery.from_name,
            switchboard_delivery::FromName::Inbox
        );
        assert!(!format!("{config:?}").contains("s3cret-pw"));
        let refused = |vars: &[(&str, &str)]| {
            Config::layered(None, &env(vars), &Flags::default())
                .expect_err("refused")
                .to_string()
        };
        let bad = refused(&[(
            "SWITCHBOARD_SMTP_RELAY_URL",
            "smtp://u:s3cret-pw@h?tls=nope",
        )]);
        assert!(
            bad.contains("smtp_relay_url") && bad.contains("tls"),
            "{bad}"
        );
        assert!(!bad.contains("s3cret-pw"), "{bad}");
        assert!(
            refused(&[("SWITCHBOARD_DELIVERY_RETRY_FOR", "0s")]).contains("delivery_retry_for")
        );
        assert!(refused(&[("SWITCHBOARD_DELIVERY_FROM_NAME", "ceo")]).contains("agent_via_inbox"));
    }

    #[test]
    fn form_limits_are_layered_and_checked() {
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            Config::default().forms,
            switchboard_api::FormLimits::default()
        );
        let file = "[forms]\nper_address_per_minute = 2\nmax_files = 1\n";
        let config = Config::layered(
            Some((Path::new("c.toml"), file)),
            &env(&[
                ("SWITCHBOARD_FORMS_PER_ADDRESS_PER_MINUTE", "4"),
                ("SWITCHBOARD_FORMS_PER_FORM_BURST", "7"),
            ]),
            &Flags::default(),
        )
        .expect("valid");
        assert_eq!(config.forms.per_address_per_minute, 4);
        assert_eq!(config.forms.per_form_burst, 7);
        assert_eq!(config.forms.max_files, 1);
        let refused = |vars: &[(&str, &str)]| {
            Config::layered(None, &env(vars), &Flags::default())
                .expect_err("refused")
                .to_string()
        };
        assert!(refused(&[("SWITCHBOARD_FORMS_PER_FORM_PER_MINUTE", "0")]).contains("forms."));
        assert!(
            refused(&[("SWITCHBOARD_FORMS_MAX_FILE_BYTES", "999999999")])
                .contains("forms.max_body_bytes")
        );
    }

    #[test]
    fn secrets_are_never_printed() {
        let config = Config {
            jwt_secret: Some(Secret::new("super-secret-value-that-is-long-enough")),
            ..Config::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("super-secret"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}
