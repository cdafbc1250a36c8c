//! What every command shares: the data directory's layout, opening the configured store, and
//! the error type for requests the binary refuses (exit code 2) rather than fails at (exit code
//! 3).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use switchboard_codec::keyring::{KeyedStore, Keyring};
use switchboard_store::EventStore;
use switchboard_store::secret::{MasterKey, Vault};
use switchboard_store_postgres::{ConnectError, PostgresOptions, PostgresStore};
use switchboard_store_sqlite::{DATABASE_FILE, OpenError, SqliteOptions, SqliteStore};

use crate::config::{Config, ConfigArgs};

/// A request the binary will not carry out as given: the user has to change something (a path,
/// the input, the target store). `main` maps it to exit code 2.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Returns early with a [`Refused`] error.
macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::support::Refused(format!($($arg)*))))
    };
}
pub(crate) use refuse;

/// The directory of the event store inside a data directory.
pub(crate) fn events_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("events")
}

/// The directory of the read models inside a data directory.
pub(crate) fn read_models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("read-models")
}

/// Opens the store of a data directory that must already hold one: reading commands must not
/// quietly create an empty store where the user mistyped a path.
pub(crate) fn open_existing(data_dir: &Path) -> anyhow::Result<SqliteStore> {
    if !data_dir.is_dir() {
        refuse!("data directory {} does not exist", data_dir.display());
    }
    let events = events_dir(data_dir);
    if !events.join(DATABASE_FILE).is_file() {
        refuse!(
            "no event store in {} (expected {})",
            data_dir.display(),
            events.join(DATABASE_FILE).display()
        );
    }
    open(data_dir)
}

/// Opens the store of a data directory for reading only, as it is now: works beside a running
/// server (the commands that only read — `token`, `export`, `audit verify` — use it).
pub(crate) fn open_for_reading(data_dir: &Path) -> anyhow::Result<SqliteStore> {
    if !data_dir.is_dir() {
        refuse!("data directory {} does not exist", data_dir.display());
    }
    let events = events_dir(data_dir);
    if !events.join(DATABASE_FILE).is_file() {
        refuse!(
            "no event store in {} (expected {})",
            data_dir.display(),
            events.join(DATABASE_FILE).display()
        );
    }
    match SqliteStore::open_read_only(&events) {
        Ok(store) => Ok(store),
        Err(e @ OpenError::NewerSchema { .. }) => refuse!("{e}"),
        Err(e) => {
            Err(e).with_context(|| format!("opening the event store in {}", events.display()))
        }
    }
}

/// Opens (creating if needed) the store of a data directory. A directory that another process
/// (a running server) holds is refused with a message saying so.
pub(crate) fn open(data_dir: &Path) -> anyhow::Result<SqliteStore> {
    let events = events_dir(data_dir);
    match SqliteStore::open(&events, SqliteOptions::default()) {
        Ok(store) => Ok(store),
        Err(OpenError::Locked(_)) => refuse!(
            "the data directory {} is in use by another switchboard process (a running server?); \
             stop it first",
            data_dir.display()
        ),
        Err(e @ OpenError::NewerSchema { .. }) => refuse!("{e}"),
        Err(e) => {
            Err(e).with_context(|| format!("opening the event store in {}", events.display()))
        }
    }
}

/// The configuration `args` select; an unusable one is refused (exit code 2).
pub(crate) fn load_config(args: &ConfigArgs) -> anyhow::Result<Config> {
    match args.load() {
        Ok(config) => Ok(config),
        Err(e) => refuse!("{e}"),
    }
}

/// What a command needs of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreUse {
    /// Reading what is there, beside a running server, personal fields opened (`token`).
    Read,
    /// Reading what is there, beside a running server, as stored: what the hash chain covers
    /// (`export`, `audit verify`, `audit anchor`).
    ReadAsStored,
    /// Writing, beside nothing else (`import`).
    Write,
    /// Reading a store that must already exist, and writing read models next to it
    /// (`projections rebuild`).
    Existing,
    /// Reading a store that must already exist as stored, and writing beside it, beside nothing
    /// else (`migrate encrypt`).
    ExistingAsStored,
}

/// The configured store: PostgreSQL when `postgres_url` is set (whatever the data directory),
/// else the embedded store of the data directory, opened as `usage` needs.
pub(crate) async fn configured_store(
    config: &Config,
    usage: StoreUse,
) -> anyhow::Result<Arc<dyn EventStore>> {
    let store: Arc<dyn EventStore> = if config.postgres_url.is_some() {
        Arc::new(connect_postgres(config).await?)
    } else {
        match usage {
            StoreUse::Read | StoreUse::ReadAsStored => {
                Arc::new(open_for_reading(&config.data_dir)?)
            }
            StoreUse::Write => Arc::new(open(&config.data_dir)?),
            StoreUse::Existing | StoreUse::ExistingAsStored => {
                Arc::new(open_existing(&config.data_dir)?)
            }
        }
    };
    // Commands that decode events read personal fields opened; the others read or copy the log
    // as stored.
    match usage {
        StoreUse::Read | StoreUse::Existing => keyed(config, store),
        StoreUse::ReadAsStored | StoreUse::Write | StoreUse::ExistingAsStored => Ok(store),
    }
}

/// The vault over `store`'s secrets with `key` (the configured master key,
/// `config::secret_key`), checked to be the key they were sealed with: another key is refused
/// (exit code 2) rather than fail on every secret later.
pub(crate) async fn checked_vault(
    config: &Config,
    store: &dyn EventStore,
    key: &MasterKey,
) -> anyhow::Result<Vault> {
    let vault = Vault::new(store.secrets(), key);
    match vault.check_key().await {
        Ok(()) => Ok(vault),
        Err(switchboard_store::StoreError::Unsealable { .. }) => refuse!(
            "secret_key (SWITCHBOARD_SECRET_KEY, or {}) is not the key the channel secrets \
             stored beside this log were sealed with: set the key they were sealed with (with \
             PostgreSQL, the same secret_key on every node)",
            config.secret_key_file().display()
        ),
        Err(e) => Err(e).context("checking the secret key"),
    }
}

/// The data subjects' keys of `store`, with the master key when there is one.
pub(crate) fn keyring(config: &Config, store: &dyn EventStore) -> anyhow::Result<Keyring> {
    Ok(match crate::config::existing_secret_key(config)? {
        Some(key) => Keyring::new(Vault::new(store.secrets(), &key)),
        // Sealed fields cannot be opened, but erasures are still known.
        None => Keyring::without_keys_over(store.secrets()),
    })
}

/// `store`, read through the data subjects' keys (personal fields opened, or redacted where
/// erased) with the master key when there is one.
pub(crate) fn keyed(
    config: &Config,
    store: Arc<dyn EventStore>,
) -> anyhow::Result<Arc<dyn EventStore>> {
    // Without a master key, sealed fields fail to read, saying so, rather than reach read
    // models sealed.
    let keyring = keyring(config, store.as_ref())?;
    Ok(Arc::new(KeyedStore::new(store, Arc::new(keyring))))
}

/// Where the configured store is, for messages: the PostgreSQL schema, or the embedded store's
/// directory.
pub fn describe_store(config: &Config) -> String {
    match config.postgres_url {
        Some(_) => format!("the PostgreSQL store (schema {})", config.postgres_schema),
        None => events_dir(&config.data_dir).display().to_string(),
    }
}

/// Connects to the configured PostgreSQL store (creating its schema if needed).
pub(crate) async fn connect_postgres(config: &Config) -> anyhow::Result<PostgresStore> {
    let Some(url) = &config.postgres_url else {
        anyhow::bail!("no postgres_url configured");
    };
    let mut options = PostgresOptions::new(url.expose());
    options.schema = config.postgres_schema.clone();
    match PostgresStore::connect(options).await {
        Ok(store) => Ok(store),
        Err(e @ ConnectError::NewerSchema { .. }) => refuse!("{e}"),
        Err(e) => Err(e).with_context(|| format!("connecting to {}", describe_store(config))),
    }
}
