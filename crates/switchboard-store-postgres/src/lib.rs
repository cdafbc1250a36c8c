//! The PostgreSQL event store: the backend for several API nodes sharing one database.
//!
//! All state lives in one schema (default `switchboard`), created by an idempotent migration when
//! a node connects. Positions stay contiguous and in commit order across nodes because every
//! append transaction first locks the one-row `head` table, takes `head + 1` onwards, and moves
//! the head before committing (ADR 0002). Within a node, a writer task practises **group
//! commit**: appends that arrive while a transaction is running are gathered into the next one,
//! each in its own savepoint, so the head row is locked once per batch rather than once per
//! append. Subscribers follow the head through `LISTEN/NOTIFY` (the notification is sent inside
//! the append transaction, so it is delivered at commit, to every node), with a slow poll of the
//! head row as a safety net. Triggers refuse `UPDATE`, `DELETE` and `TRUNCATE` on events.
//!
//! Connections come from a `deadpool-postgres` pool shared by reads and the writer; the listener
//! has a connection of its own. TLS is not supported yet: use a private network or a local socket.
//!
//! # Layout
//! - [`schema`]: the tables, triggers and statements, and the migration.
//! - `writer`: the writer task and its group commit.
//! - `reader`: queries on pooled connections and row decoding.
//! - `listener`: `LISTEN` and the head poll that move subscribers.

mod blobs;
mod index;
mod lease;
mod listener;
mod reader;
pub mod schema;
mod secrets;
mod writer;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use switchboard_store::error::validate_append;
use switchboard_store::{
    AppendResult, BlobStore, Direction, EventStore, EventStream, ExpectedVersion, NewEvent, Origin,
    Position, RecordedEvent, SecretStore, StoreError, StreamFrom, WriteIndex,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

use crate::reader::Reader;
use crate::schema::Sql;
use crate::writer::{AppendRequest, Writer};

/// The schema used when none is configured.
pub const DEFAULT_SCHEMA: &str = "switchboard";

/// How to connect to the PostgreSQL store.
#[derive(Clone)]
pub struct PostgresOptions {
    /// A `postgres://` URL or a `key=value` connection string. It may hold a password, so it is
    /// never printed.
    pub url: String,
    /// The schema holding the store's tables: lower-case letters, digits and `_`, at most
    /// [`schema::MAX_SCHEMA_NAME`] bytes. Several stores can share one database in different
    /// schemas.
    pub schema: String,
    /// Largest accepted append, in bytes of metadata, payload and type names together.
    pub max_append_bytes: usize,
    /// Most events committed in one group-commit transaction.
    pub max_batch_events: usize,
    /// Most pooled connections, shared by reads and the writer (at least 2). The listener holds
    /// one more connection of its own.
    pub pool_size: usize,
    /// How often the head row is read in case a notification was lost (for example while the
    /// listener reconnected). Subscribers normally move on notifications, well before this.
    pub head_poll_interval: Duration,
    /// How long a read or an append waits for a free pooled connection before failing.
    pub wait_timeout: Duration,
}

impl PostgresOptions {
    /// Options for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            max_append_bytes: 4 * 1024 * 1024,
            max_batch_events: 8192,
            pool_size: 8,
            head_poll_interval: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("PostgresOptions")
            .field("schema", &self.schema)
            .field("max_append_bytes", &self.max_append_bytes)
            .field("max_batch_events", &self.max_batch_events)
            .field("pool_size", &self.pool_size)
            .field("head_poll_interval", &self.head_poll_interval)
            .field("wait_timeout", &self.wait_timeout)
            .finish_non_exhaustive()
    }
}

/// Why the PostgreSQL store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a valid connection string. Fix the configuration.
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// The schema name is not a plain lower-case identifier. Fix the configuration.
    #[error("invalid schema name {name:?}: {reason}")]
    InvalidSchema {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection pool could not be built or could not reach the server. Check the URL, the
    /// credentials and that the server is up; retry with backoff.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Creating or migrating the schema failed (missing privileges, an incompatible schema of the
    /// same name). Not retryable without operator action.
    #[error("cannot migrate schema {schema}: {source}")]
    Migrate {
        /// The schema.
        schema: String,
        /// The database's refusal.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A newer version of Switchboard migrated the schema: this one would not read everything
    /// it stores (attachments kept as ranges, for one). Run the newer version; going back is
    /// not supported.
    #[error(
        "schema {schema} is at version {version}, written by a newer Switchboard; this one knows version {known}: run the newer version (going back is not supported)",
        known = schema::SCHEMA_VERSION
    )]
    NewerSchema {
        /// The schema.
        schema: String,
        /// Its version.
        version: i32,
    },
    /// The head row does not match the last stored event: the schema was altered behind the
    /// store's back. Run `verify` and investigate before writing anything.
    #[error("schema {schema} is inconsistent: head row at {head}, last stored event at {last}")]
    Inconsistent {
        /// The schema.
        schema: String,
        /// The position in the head row.
        head: i64,
        /// The largest stored position.
        last: i64,
    },
}

/// The PostgreSQL event store. Cheap to clone; all clones share one pool, one writer task and one
/// listener. It must be used within a Tokio runtime; it shuts down when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Always `Some` until drop, which closes the queue so the writer finishes and stops.
    requests: Option<mpsc::Sender<AppendRequest>>,
    listener: JoinHandle<()>,
    /// The last committed position this node knows of; moved by the writer and the listener.
    head: watch::Receiver<Position>,
    reader: Reader,
    max_append_bytes: usize,
    /// The write side's index, in tables of the same schema.
    index: Arc<dyn WriteIndex>,
    /// Blobs, in a table of the same schema.
    blobs: Arc<dyn BlobStore>,
    /// Sealed secrets, in a table of the same schema.
    secrets: Arc<dyn SecretStore>,
    /// How to connect, for the connections leases keep of their own.
    config: tokio_postgres::Config,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.reader.sql.schema)
            .field("head", &*self.head.borrow())
            .field("pool", &self.reader.pool.status())
            .field("max_append_bytes", &self.max_append_bytes)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer stops once it has answered everything queued; the listener stops now. With
        // both gone the head's senders are dropped and subscriptions end after delivering what
        // was announced.
        self.requests.take();
        self.listener.abort();
    }
}

impl PostgresStore {
    /// Connects, creates or migrates the schema, and starts the writer and the listener.
    pub async fn connect(options: PostgresOptions) -> Result<PostgresStore, ConnectError> {
        schema::check_schema_name(&options.schema).map_err(|reason| {
            ConnectError::InvalidSchema {
                name: options.schema.clone(),
                reason,
            }
        })?;
        let mut config =
            tokio_postgres::Config::from_str(&options.url).map_err(ConnectError::InvalidUrl)?;
        if config.get_application_name().is_none() {
            config.application_name("switchboard");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.wait_timeout))
            .build()
            .map_err(|e| ConnectError::Connect(Box::new(e)))?;
        let schema = options.schema.clone();
        let mut client = pool
            .get()
            .await
            .map_err(|e| ConnectError::Connect(Box::new(e)))?;
        let migrated = schema::migrate(&mut client, &schema)
            .await
            .map_err(|source| ConnectError::Migrate {
                schema: schema.clone(),
                source,
            })?;
        if let schema::Migrated::Newer(version) = migrated {
            return Err(ConnectError::NewerSchema { schema, version });
        }
        let sql = Arc::new(Sql::new(&schema));
        let row = client
            .query_one(&sql.consistency, &[])
            .await
            .map_err(|source| ConnectError::Migrate {
                schema: schema.clone(),
                source,
            })?;
        let (head, last): (i64, i64) = row
            .try_get(0)
            .and_then(|h| Ok((h, row.try_get(1)?)))
            .map_err(|source| ConnectError::Migrate {
                schema: schema.clone(),
                source,
            })?;
        drop(client);
        let start = match u64::try_from(head) {
            Ok(position) if head == last => Position(position),
            _ => return Err(ConnectError::Inconsistent { schema, head, last }),
        };

        let (head_tx, head_rx) = watch::channel(start);
        let requests = Writer::spawn(
            pool.clone(),
            sql.clone(),
            options.max_batch_events,
            head_tx.clone(),
        );
        let lease_config = config.clone();
        let mut listen_config = config;
        let listener_name = format!(
            "{}-listener",
            listen_config
                .get_application_name()
                .unwrap_or("switchboard")
        );
        listen_config.application_name(listener_name);
        let listener = listener::spawn(
            listen_config,
            sql.clone(),
            head_tx,
            options.head_poll_interval.max(Duration::from_millis(10)),
        );
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                requests: Some(requests),
                listener,
                head: head_rx,
                index: Arc::new(index::PostgresIndex::new(pool.clone(), &sql.schema)),
                blobs: Arc::new(blobs::PostgresBlobs::new(pool.clone(), &sql.schema)),
                secrets: Arc::new(secrets::PostgresSecrets::new(pool.clone(), &sql.schema)),
                config: lease_config,
                reader: Reader { pool, sql },
                max_append_bytes: options.max_append_bytes,
            }),
        })
    }

    /// Hands an append (or, with `origins`, a restore) to the writer and waits for its answer.
    async fn submit(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        origins: Option<Vec<Origin>>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream, &events, self.inner.max_append_bytes)?;
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            stream: stream.to_owned(),
            expected,
            events,
            origins,
            reply,
        };
        let requests = self.inner.requests.as_ref().ok_or(StoreError::Closed)?;
        requests
            .send(request)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The schema this store keeps its tables in.
    pub fn schema(&self) -> &str {
        &self.inner.reader.sql.schema
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    #[tracing::instrument(level = "trace", skip(self, events), fields(events = events.len()))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.submit(stream, expected, events, None).await
    }

    #[tracing::instrument(level = "trace", skip(self, events), fields(events = events.len()))]
    async fn restore(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<(NewEvent, Origin)>,
    ) -> Result<AppendResult, StoreError> {
        switchboard_store::chain::restore(self, events, |events, origins| {
            self.submit(stream, expected, events, Some(origins))
        })
        .await
    }

    async fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from: StreamFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner
            .reader
            .read_stream(stream, direction, from, limit)
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.reader.read_all(after, limit).await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        self.inner.reader.stream_version(stream).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        // The head row, not this node's announced head: other nodes may have committed since
        // their notification arrived.
        self.inner.reader.head().await
    }

    fn subscribe_all(&self, after: Position) -> EventStream {
        // The subscription holds only the reader, so it does not keep the writer alive.
        switchboard_store::subscription::catch_up(
            Arc::new(self.inner.reader.clone()),
            after,
            self.inner.head.clone(),
        )
    }

    fn max_append_bytes(&self) -> usize {
        self.inner.max_append_bytes
    }

    fn write_index(&self) -> Arc<dyn WriteIndex> {
        self.inner.index.clone()
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.inner.blobs.clone()
    }

    fn secrets(&self) -> Arc<dyn SecretStore> {
        self.inner.secrets.clone()
    }

    fn lease(&self, name: &str) -> switchboard_store::Lease {
        let mut config = self.inner.config.clone();
        let application = format!(
            "{}-lease",
            config.get_application_name().unwrap_or("switchboard")
        );
        config.application_name(application);
        lease::keep(
            config,
            self.inner.reader.sql.schema.clone(),
            name.to_owned(),
        )
    }
}
