//! IMAP accounts: a mailbox hosted elsewhere (a user's private account, a team address at
//! another provider) read into its e-mail channel.
//!
//! What it does, and what it never does:
//!
//! - It logs in (`LOGIN`, over implicit TLS, STARTTLS, or plain TCP for loopback tests),
//!   `SELECT`s the account's mailbox and imports every message whose UID is above its
//!   checkpoint, in UID order and in bounded batches (`UID FETCH … (UID BODY.PEEK[])`), each
//!   through [`Ingester::ingest`]. It never changes the mailbox: `BODY.PEEK` leaves `\Seen`
//!   alone, and nothing is flagged, moved or expunged.
//! - **The checkpoint** (UIDVALIDITY and the last UID imported) is saved in the store's cursors
//!   ([`WriteIndex::save_cursor`], name `imap-<channel id>-<digest of server, login and
//!   mailbox>`) after each message is durable, so a
//!   restart neither skips nor fetches again what was imported. A crash between the two costs
//!   one message fetched twice, which ingestion deduplicates by `Message-ID`. When the server
//!   changes the mailbox's UIDVALIDITY (its UIDs were renumbered) the import starts again from
//!   UID 1, deduplicated the same way.
//! - Then it waits: with `IDLE` when the server offers it, else by polling every
//!   [`ImapSettings::poll_interval`]. Any failure (network, login, storage) closes the
//!   connection and retries with exponential backoff; the failure is readable in
//!   [`ImapStatus`] and logged, never a panic.
//! - It refuses to lose mail: a message ingestion refuses ([`IngestError::Refused`]) stops the
//!   account at that UID, as a failure an operator sees, rather than being skipped. The one
//!   exception is a message larger than [`ImapSettings::max_message_bytes`], which is skipped
//!   with a warning (it stays in the mailbox).
//! - The password is sent in `LOGIN` and nowhere else: [`Password`]'s `Debug` prints `***`,
//!   and errors carry the server's words, never the command. async-imap itself writes every
//!   command it sends, `LOGIN` with the password included, to the `log` crate at trace level:
//!   a process that runs importers and forwards `log` records (tracing-subscriber's `init`
//!   does) must add [`LOG_DIRECTIVE`] to its filter.
//!
//! Accounts come from the caller: [`spawn`] takes one [`ImapAccount`] (the configuration's
//! `[[imap]]`, or [`crate::accounts`] for those set through the API); [`check`] is the API's
//! connection test.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_imap::imap_proto::{MailboxDatum, RequestId, Response, Status};
use async_imap::types::{Fetch, UnsolicitedResponse};
use async_imap::{Client, Session};
use futures::TryStreamExt;
use switchboard_store::index::WriteIndex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};
use uuid::Uuid;

use crate::ingest::{IngestError, Ingester};

/// The `tracing` filter directive that keeps async-imap's trace of the commands it sends
/// (`LOGIN` with the password among them) out of the logs, whatever else the filter allows.
pub const LOG_DIRECTIVE: &str = "async_imap::imap_stream=debug";

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS, usually port 993).
    Tls,
    /// Plain TCP upgraded with `STARTTLS` before logging in (usually port 143).
    StartTls,
    /// No encryption at all: for a server on loopback (tests), never across a network.
    Plain,
}

/// A password that does not show itself: its `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The password itself, for `LOGIN`.
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One mailbox to import, and the channel it feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapAccount {
    /// The e-mail channel its messages are recorded on.
    pub channel_id: Uuid,
    /// The server's host name (also the name its TLS certificate must carry).
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// How the connection is secured.
    pub tls: TlsMode,
    /// The login name.
    pub username: String,
    /// The login password.
    pub password: Password,
    /// The mailbox read (`INBOX` unless configured).
    pub mailbox: String,
    /// The account's e-mail address, given to ingestion as the envelope sender the way SMTP's
    /// `MAIL FROM` is (the sender when a message's headers name none); the username when unset.
    pub address: Option<String>,
}

impl ImapAccount {
    /// An account reading `INBOX` of `username` on `host:port` into `channel_id`.
    pub fn new(
        channel_id: Uuid,
        host: impl Into<String>,
        port: u16,
        tls: TlsMode,
        username: impl Into<String>,
        password: Password,
    ) -> ImapAccount {
        ImapAccount {
            channel_id,
            host: host.into(),
            port,
            tls,
            username: username.into(),
            password,
            mailbox: "INBOX".to_owned(),
            address: None,
        }
    }

    /// The account a channel's `EmailServersSet` describes, logging in with `password`.
    pub fn for_server(
        channel_id: Uuid,
        server: &proto_events::event::ImapServer,
        password: Password,
    ) -> ImapAccount {
        use proto_events::event::ServerSecurity;
        let mut account = ImapAccount::new(
            channel_id,
            server.host.clone(),
            server.port,
            match server.security {
                ServerSecurity::Tls => TlsMode::Tls,
                ServerSecurity::StartTls => TlsMode::StartTls,
                ServerSecurity::Plain => TlsMode::Plain,
            },
            server.username.clone(),
            password,
        );
        account.mailbox.clone_from(&server.mailbox);
        account
    }

    /// The name of the account's checkpoint in the store's cursors: its channel and a digest of
    /// the server, login and mailbox it reads, so that a channel given another mailbox (whose
    /// UIDVALIDITY may happen to be the same number) starts from UID 1 rather than skipping
    /// what lies below the old mailbox's checkpoint.
    pub fn cursor_name(&self) -> String {
        // FNV-1a: stable across builds and versions, unlike std's hasher.
        let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
        let port = self.port.to_string();
        let host = self.host.to_ascii_lowercase();
        for part in [host.as_str(), &port, &self.username, &self.mailbox] {
            for byte in part.bytes().chain([0]) {
                digest ^= u64::from(byte);
                digest = digest.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{}-{digest:016x}", cursor_name(self.channel_id))
    }

    fn envelope_from(&self) -> &str {
        self.address.as_deref().unwrap_or(&self.username)
    }
}

/// The prefix of the checkpoints of the IMAP accounts feeding `channel_id` (see
/// [`ImapAccount::cursor_name`]).
pub fn cursor_name(channel_id: Uuid) -> String {
    format!("imap-{channel_id}")
}

/// How an importer behaves; the defaults suit a real server.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    /// How often a server without `IDLE` is asked for new mail (60 s).
    pub poll_interval: Duration,
    /// How long one `IDLE` lasts before it is renewed, below the 29 minutes after which servers
    /// may drop an idle client (10 min). A dead connection is noticed then at the latest.
    pub idle_renewal: Duration,
    /// The longest wait for the server in a connection, a command or a batch (120 s).
    pub command_timeout: Duration,
    /// Most messages fetched in one `UID FETCH` (50).
    pub batch_messages: usize,
    /// Most bytes (as the server reports the messages' sizes) fetched in one `UID FETCH`
    /// (16 MiB); a larger message is fetched alone.
    pub batch_bytes: u64,
    /// Larger messages are not imported (skipped with a warning; 25 MiB, like the SMTP
    /// listener).
    pub max_message_bytes: u64,
    /// The first wait after a failure (1 s); it doubles with every failure in a row.
    pub backoff_initial: Duration,
    /// The longest wait after a failure (5 min).
    pub backoff_max: Duration,
}

impl Default for ImapSettings {
    fn default() -> ImapSettings {
        ImapSettings {
            poll_interval: Duration::from_secs(60),
            idle_renewal: Duration::from_secs(10 * 60),
            command_timeout: Duration::from_secs(120),
            batch_messages: 50,
            batch_bytes: 16 * 1024 * 1024,
            max_message_bytes: 25 * 1024 * 1024,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5 * 60),
        }
    }
}

/// How far a mailbox has been imported: every message with a UID up to `last_uid` under this
/// `uid_validity` is durable (or was skipped as too large).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The mailbox's UIDVALIDITY the UIDs belong to.
    pub uid_validity: u32,
    /// The last UID imported.
    pub last_uid: u32,
}

impl Checkpoint {
    /// The checkpoint as stored: `{"uid_validity":…,"last_uid":…}`.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::json!({ "uid_validity": self.uid_validity, "last_uid": self.last_uid })
            .to_string()
            .into_bytes()
    }

    /// A stored checkpoint; `None` when it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let field = |name| {
            value
                .get(name)
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        Some(Checkpoint {
            uid_validity: field("uid_validity")?,
            last_uid: field("last_uid")?,
        })
    }

    /// Where to go on in a mailbox of `uid_validity`: from `saved` when the UIDs are still
    /// those it counted, else from the start.
    pub fn resume(saved: Option<Checkpoint>, uid_validity: u32) -> Checkpoint {
        match saved {
            Some(c) if c.uid_validity == uid_validity => c,
            _ => Checkpoint {
                uid_validity,
                last_uid: 0,
            },
        }
    }
}

/// Why an account could not be read. Every one of them is retried with backoff by [`spawn`];
/// [`check`] returns it for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImapError {
    /// The server could not be reached (name, connection, timeout, a closed connection): a
    /// network or address problem, or a server down.
    #[error("cannot reach the IMAP server: {0}")]
    Connect(String),
    /// TLS failed (handshake, certificate, or a server that does not do `STARTTLS`): check the
    /// host name, port and TLS mode.
    #[error("TLS with the IMAP server failed: {0}")]
    Tls(String),
    /// The server refused the login: user name or password wrong (or the account locked).
    #[error("the IMAP server refused the login: {0}")]
    Login(String),
    /// The mailbox cannot be selected (it does not exist, or is not readable).
    #[error("the IMAP server refused the mailbox {mailbox}: {reason}")]
    Mailbox {
        /// The mailbox.
        mailbox: String,
        /// What the server said.
        reason: String,
    },
    /// The server answered something this client cannot work with.
    #[error("the IMAP server misbehaved: {0}")]
    Protocol(String),
    /// A message could not be recorded; it is imported again after the backoff.
    #[error("message UID {uid} could not be recorded: {error}")]
    Ingest {
        /// Its UID.
        uid: u32,
        /// Why.
        error: IngestError,
    },
    /// The checkpoint could not be read or saved.
    #[error("the import checkpoint could not be stored: {0}")]
    Store(String),
}

/// Most characters of a library's error message kept: async-imap puts the whole unparsable
/// response in its message, which may hold a message's body.
const MAX_ERROR_CHARS: usize = 200;

fn clipped(message: String) -> String {
    if message.chars().count() <= MAX_ERROR_CHARS {
        return message;
    }
    let mut cut: String = message.chars().take(MAX_ERROR_CHARS).collect();
    cut.push_str("...");
    cut
}

impl From<async_imap::error::Error> for ImapError {
    fn from(e: async_imap::error::Error) -> ImapError {
        use async_imap::error::Error as E;
        match e {
            E::Io(e) => ImapError::Connect(clipped(e.to_string())),
            E::ConnectionLost => ImapError::Connect("the connection was closed".to_owned()),
            e => ImapError::Protocol(clipped(e.to_string())),
        }
    }
}

impl From<std::io::Error> for ImapError {
    fn from(e: std::io::Error) -> ImapError {
        ImapError::Connect(e.to_string())
    }
}

/// What an importer is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImapState {
    /// Connecting and logging in.
    Connecting,
    /// Fetching and recording new messages.
    Importing,
    /// Up to date, waiting in `IDLE` for the server to announce mail.
    Idle,
    /// Up to date, asking again after the poll interval (the server has no `IDLE`).
    Polling,
    /// The last attempt failed; the next one starts after `retry_in`.
    Failed {
        /// Why.
        error: ImapError,
        /// Failures in a row.
        attempts: u32,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// Shut down.
    Stopped,
}

/// What an importer reports about its account (see [`Importer::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapStatus {
    /// What it is doing.
    pub state: ImapState,
    /// Whether the server offers `IDLE` (known once logged in).
    pub idle_offered: Option<bool>,
    /// The saved checkpoint (known once the mailbox is selected).
    pub checkpoint: Option<Checkpoint>,
    /// Messages whose bodies this importer fetched.
    pub fetched: u64,
    /// Messages it recorded that were new (not duplicates).
    pub recorded: u64,
    /// Messages skipped as larger than the limit.
    pub skipped: u64,
}

/// A running importer.
#[derive(Debug)]
pub struct Importer {
    status: watch::Receiver<ImapStatus>,
    task: JoinHandle<()>,
}

impl Importer {
    /// Its status, updated as it goes.
    pub fn status(&self) -> watch::Receiver<ImapStatus> {
        self.status.clone()
    }

    /// Waits until it has stopped (after the shutdown signal); an error if its task panicked
    /// or was aborted.
    pub async fn stopped(self) -> Result<(), tokio::task::JoinError> {
        self.task.await
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Whether the server offers `IDLE`.
    pub idle_offered: bool,
    /// The mailbox's UIDVALIDITY.
    pub uid_validity: u32,
    /// How many messages are in the mailbox.
    pub messages: u32,
}

/// Logs in to `account`, selects its mailbox and logs out: what a connection test reports.
pub async fn check(account: &ImapAccount, settings: &ImapSettings) -> Result<Probe, ImapError> {
    let (mut session, idle_offered) = open(account, settings).await?;
    let (uid_validity, messages) = select(&mut session, account, settings).await?;
    let _ = tokio::time::timeout(settings.command_timeout, session.logout()).await;
    Ok(Probe {
        idle_offered,
        uid_validity,
        messages,
    })
}

/// Starts importing `account` into its channel on a task of its own, until `shutdown`
/// resolves. Checkpoints are kept in `index`'s cursors.
pub fn spawn(
    account: ImapAccount,
    settings: ImapSettings,
    ingester: Ingester,
    index: Arc<dyn WriteIndex>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Importer {
    let (status_tx, status) = watch::channel(ImapStatus {
        state: ImapState::Connecting,
        idle_offered: None,
        checkpoint: None,
        fetched: 0,
        recorded: 0,
        skipped: 0,
    });
    let run = Run {
        account,
        settings,
        ingester,
        index,
        status: status_tx,
    };
    let mut stop = Stop {
        signal: Box::pin(shutdown),
        stopped: false,
    };
    let task = tokio::spawn(async move { run.run(&mut stop).await });
    Importer { status, task }
}

/// The shutdown signal, which may be awaited at every waiting point.
struct Stop {
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
    stopped: bool,
}

impl Stop {
    async fn wait(&mut self) {
        if !self.stopped {
            self.signal.as_mut().await;
            self.stopped = true;
        }
    }

    /// `work`'s output, or `None` when the signal came first.
    async fn or<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        if self.stopped {
            return None;
        }
        tokio::select! {
            biased;
            () = self.wait() => None,
            output = work => Some(output),
        }
    }
}

/// Whether to go on.
enum Flow {
    Continue,
    Stopped,
}

/// An importer's account and where it reports.
struct Run {
    account: ImapAccount,
    settings: ImapSettings,
    ingester: Ingester,
    index: Arc<dyn WriteIndex>,
    status: watch::Sender<ImapStatus>,
}

impl Run {
    async fn run(&self, stop: &mut Stop) {
        let mut attempts = 0u32;
        let mut backoff = self.settings.backoff_initial;
        loop {
            let mut healthy = false;
            let Err(error) = self.session(stop, &mut healthy).await else {
                break;
            };
            if healthy {
                // The connection got as far as waiting for mail: this failure starts afresh.
                attempts = 0;
                backoff = self.settings.backoff_initial;
            }
            attempts = attempts.saturating_add(1);
            tracing::warn!(
                channel_id = %self.account.channel_id,
                host = %self.account.host,
                username = %self.account.username,
                attempts,
                retry_in = ?backoff,
                %error,
                "IMAP import failed"
            );
            self.status.send_modify(|s| {
                s.state = ImapState::Failed {
                    error,
                    attempts,
                    retry_in: backoff,
                }
            });
            if stop.or(tokio::time::sleep(backoff)).await.is_none() {
                break;
            }
            backoff = (backoff * 2).min(self.settings.backoff_max);
        }
        self.status.send_modify(|s| s.state = ImapState::Stopped);
    }

    /// One connection: log in, import, wait for news, import, … until stopped (`Ok`) or
    /// failed.
    async fn session(&self, stop: &mut Stop, healthy: &mut bool) -> Result<(), ImapError> {
        self.status.send_modify(|s| s.state = ImapState::Connecting);
        let Some(opened) = stop.or(open(&self.account, &self.settings)).await else {
            return Ok(());
        };
        let (mut session, idle_offered) = opened?;
        let selected = stop.or(select(&mut session, &self.account, &self.settings));
        let Some(selected) = selected.await else {
            return Ok(());
        };
        let (uid_validity, _) = selected?;
        let name = self.account.cursor_name();
        let saved = self
            .index
            .cursor(&name)
            .await
            .map_err(|e| ImapError::Store(e.to_string()))?;
        let saved = saved.and_then(|bytes| {
            let decoded = Checkpoint::decode(&bytes);
            if decoded.is_none() {
                tracing::warn!(cursor = %name, "unreadable IMAP checkpoint; importing from UID 1");
            }
            decoded
        });
        if saved.is_some_and(|c| c.uid_validity != uid_validity) {
            tracing::info!(
                channel_id = %self.account.channel_id,
                uid_validity,
                "the mailbox's UIDVALIDITY changed; importing from UID 1 (duplicates are recognised)"
            );
        }
        let mut checkpoint = Checkpoint::resume(saved, uid_validity);
        self.status.send_modify(|s| {
            s.idle_offered = Some(idle_offered);
            s.checkpoint = saved.filter(|c| c.uid_validity == uid_validity);
        });
        loop {
            self.status.send_modify(|s| s.state = ImapState::Importing);
            // Mail announced while importing (an `EXISTS` among the answers to the fetches)
            // would not be announced again in `IDLE`: import until none came.
            loop {
                while session.unsolicited_responses.try_recv().is_ok() {}
                if let Flow::Stopped = self.import(&mut session, &mut checkpoint, stop).await? {
                    return Ok(());
                }
                let mut announced = false;
                while let Ok(response) = session.unsolicited_responses.try_recv() {
                    announced |= matches!(response, UnsolicitedResponse::Exists(_));
                }
                if !announced {
                    break;
                }
            }
            *healthy = true;
            if idle_offered {
                self.status.send_modify(|s| s.state = ImapState::Idle);
                if let Flow::Stopped = idle(&mut session, &self.settings, stop).await? {
                    return Ok(());
                }
            } else {
                self.status.send_modify(|s| s.state = ImapState::Polling);
                let waited = stop.or(tokio::time::sleep(self.settings.poll_interval));
                if waited.await.is_none() {
                    return Ok(());
                }
                timed(&self.settings, session.noop()).await??;
            }
        }
    }

    /// Imports every message above the checkpoint, in UID order, saving the checkpoint after
    /// each. A shutdown interrupts the fetches, never a message being recorded.
    async fn import(
        &self,
        session: &mut Session<Conn>,
        checkpoint: &mut Checkpoint,
        stop: &mut Stop,
    ) -> Result<Flow, ImapError> {
        if checkpoint.last_uid == u32::MAX {
            return Ok(Flow::Continue);
        }
        let from = checkpoint.last_uid + 1;
        // `n:*` includes the highest UID even when it is below n, so the list is filtered.
        let listing = timed(&self.settings, async {
            session
                .uid_fetch(format!("{from}:*"), "(UID RFC822.SIZE)")
                .await?
                .try_collect::<Vec<Fetch>>()
                .await
        });
        let Some(listed) = stop.or(listing).await else {
            return Ok(Flow::Stopped);
        };
        let mut pending: Vec<(u32, u64)> = listed??
            .iter()
            .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
            .filter(|(uid, _)| *uid >= from)
            .collect();
        pending.sort_unstable();
        pending.dedup_by_key(|(uid, _)| *uid);

        let mut rest = &pending[..];
        while let Some(&(first, size)) = rest.first() {
            if size > self.settings.max_message_bytes {
                tracing::warn!(
                    channel_id = %self.account.channel_id,
                    uid = first,
                    size,
                    limit = self.settings.max_message_bytes,
                    "IMAP message larger than the limit not imported; it stays in the mailbox"
                );
                self.advance(checkpoint, first).await?;
                self.status.send_modify(|s| s.skipped += 1);
                rest = &rest[1..];
                continue;
            }
            // A batch: up to the message and byte limits, at least the first message.
            let mut bytes = 0u64;
            let batch: Vec<u32> = rest
                .iter()
                .take(self.settings.batch_messages.max(1))
                .take_while(|(uid, size)| {
                    bytes = bytes.saturating_add(*size);
                    *size <= self.settings.max_message_bytes
                        && (bytes <= self.settings.batch_bytes || *uid == first)
                })
                .map(|(uid, _)| *uid)
                .collect();
            rest = &rest[batch.len()..];
            let set = batch
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let fetching = timed(&self.settings, async {
                session
                    .uid_fetch(&set, "(UID BODY.PEEK[])")
                    .await?
                    .try_collect::<Vec<Fetch>>()
                    .await
            });
            let Some(fetched) = stop.or(fetching).await else {
                return Ok(Flow::Stopped);
            };
            let fetched = fetched??;
            for uid in batch {
                // The answer may hold other FETCHes of the UID (a flag changed by another
                // client meanwhile): the one with the body counts. A UID missing from the
                // answer altogether was expunged since it was listed; one answered without a
                // body is retried, never skipped.
                let answered = fetched.iter().any(|f| f.uid == Some(uid));
                let body = fetched
                    .iter()
                    .filter(|f| f.uid == Some(uid))
                    .find_map(Fetch::body);
                if answered && body.is_none() {
                    return Err(ImapError::Protocol(format!(
                        "the server answered UID {uid} without its body"
                    )));
                }
                if let Some(body) = body {
                    self.status.send_modify(|s| s.fetched += 1);
                    let ingested = self
                        .ingester
                        .ingest(
                            self.account.channel_id,
                            Some(self.account.envelope_from()),
                            body.to_vec(),
                        )
                        .await
                        .map_err(|error| ImapError::Ingest { uid, error })?;
                    if !ingested.duplicate {
                        self.status.send_modify(|s| s.recorded += 1);
                    }
                }
                self.advance(checkpoint, uid).await?;
            }
        }
        Ok(Flow::Continue)
    }

    /// Saves the checkpoint at `uid`, durably.
    async fn advance(&self, checkpoint: &mut Checkpoint, uid: u32) -> Result<(), ImapError> {
        let next = Checkpoint {
            uid_validity: checkpoint.uid_validity,
            last_uid: uid,
        };
        self.index
            .save_cursor(&self.account.cursor_name(), next.encode())
            .await
            .map_err(|e| ImapError::Store(e.to_string()))?;
        *checkpoint = next;
        self.status.send_modify(|s| s.checkpoint = Some(next));
        Ok(())
    }
}

/// The connection under a session: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}

type Conn = Box<dyn Io>;

/// `work`, or a timeout error after the command timeout.
async fn timed<T>(settings: &ImapSettings, work: impl Future<Output = T>) -> Result<T, ImapError> {
    tokio::time::timeout(settings.command_timeout, work)
        .await
        .map_err(|_| {
            ImapError::Connect(format!(
                "no answer within {} s",
                settings.command_timeout.as_secs()
            ))
        })
}

/// Connects and logs in; also whether the server offers `IDLE`.
async fn open(
    account: &ImapAccount,
    settings: &ImapSettings,
) -> Result<(Session<Conn>, bool), ImapError> {
    let address = (account.host.as_str(), account.port);
    let tcp = timed(settings, TcpStream::connect(address))
        .await?
        .map_err(|e| ImapError::Connect(format!("{}:{}: {e}", account.host, account.port)))?;
    let stream: Conn = match account.tls {
        TlsMode::Plain => Box::new(tcp),
        TlsMode::Tls => timed(settings, tls(tcp, &account.host)).await??,
        TlsMode::StartTls => {
            let mut client = Client::new(tcp);
            timed(settings, greeting(&mut client)).await??;
            timed(settings, client.run_command_and_check_ok("STARTTLS", None))
                .await?
                .map_err(|e| ImapError::Tls(format!("STARTTLS was refused: {e}")))?;
            // No greeting follows the upgrade.
            timed(settings, tls(client.into_inner(), &account.host)).await??
        }
    };
    let mut client = Client::new(stream);
    if account.tls != TlsMode::StartTls {
        timed(settings, greeting(&mut client)).await??;
    }
    let logged_in = timed(
        settings,
        client.login(&account.username, account.password.expose()),
    )
    .await?;
    let mut session = logged_in.map_err(|(error, _client)| login_error(error))?;
    let capabilities = timed(settings, session.capabilities()).await??;
    Ok((session, capabilities.has_str("IDLE")))
}

/// What a failed `LOGIN` means, without ever showing the command (it holds the password).
fn login_error(error: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error as E;
    match error {
        E::No(reason) | E::Bad(reason) => ImapError::Login(reason),
        E::Validate(_) => ImapError::Login(
            "the user name or password holds a line break, which IMAP cannot send".to_owned(),
        ),
        e => ImapError::from(e),
    }
}

/// Reads the server's greeting: `OK` (or `PREAUTH`) to go on, anything else is a refusal.
async fn greeting<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug>(
    client: &mut Client<T>,
) -> Result<(), ImapError> {
    let Some(response) = client.read_response().await? else {
        return Err(ImapError::Connect(
            "the server closed the connection before greeting".to_owned(),
        ));
    };
    match response.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            ..
        } => Ok(()),
        Response::Data {
            status, outcome, ..
        } => Err(ImapError::Connect(format!(
            "the server greeted with {status:?}: {}",
            outcome.information.as_deref().unwrap_or("")
        ))),
        other => Err(ImapError::Protocol(format!(
            "unexpected greeting: {other:?}"
        ))),
    }
}

/// TLS over `tcp`, checking the certificate against the system's trusted roots and `host`.
async fn tls(tcp: TcpStream, host: &str) -> Result<Conn, ImapError> {
    let config = tls_config()?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| ImapError::Tls(format!("{host} is not a valid server name: {e}")))?;
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ImapError::Tls(e.to_string()))?;
    Ok(Box::new(stream))
}

/// The TLS client configuration, built once: the system's roots, aws-lc-rs named explicitly
/// (so that another provider compiled into the binary cannot make the choice ambiguous).
fn tls_config() -> Result<Arc<ClientConfig>, ImapError> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no trusted root certificates found on this system ({} errors)",
                    found.errors.len()
                ));
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(ImapError::Tls)
}

/// Selects the account's mailbox: its UIDVALIDITY and number of messages.
async fn select(
    session: &mut Session<Conn>,
    account: &ImapAccount,
    settings: &ImapSettings,
) -> Result<(u32, u32), ImapError> {
    let mailbox = timed(settings, session.select(&account.mailbox))
        .await?
        .map_err(|e| match e {
            async_imap::error::Error::No(reason) | async_imap::error::Error::Bad(reason) => {
                ImapError::Mailbox {
                    mailbox: account.mailbox.clone(),
                    reason,
                }
            }
            e => ImapError::from(e),
        })?;
    let uid_validity = mailbox.uid_validity.ok_or_else(|| {
        ImapError::Protocol(format!(
            "the mailbox {} has no UIDVALIDITY, so its UIDs cannot be checkpointed",
            account.mailbox
        ))
    })?;
    Ok((uid_validity, mailbox.exists))
}

/// Waits in `IDLE` (RFC 2177) until the server announces a message, the renewal time passes
/// or the shutdown signal comes; then ends it with `DONE`. Written on the session's own
/// command and response primitives so that every answer of the server is checked here.
async fn idle(
    session: &mut Session<Conn>,
    settings: &ImapSettings,
    stop: &mut Stop,
) -> Result<Flow, ImapError> {
    let tag = session.run_command("IDLE").await?;
    loop {
        let response = timed(settings, session.read_response())
            .await??
            .ok_or_else(|| ImapError::Connect("the connection was closed in IDLE".to_owned()))?;
        match response.parsed() {
            Response::Continue(_) => break,
            Response::Done {
                tag: done, outcome, ..
            } if *done == tag => {
                return Err(ImapError::Protocol(format!(
                    "IDLE was refused: {}",
                    outcome.information.as_deref().unwrap_or("")
                )));
            }
            _ => {}
        }
    }
    loop {
        let Some(next) = stop
            .or(tokio::time::timeout(
                settings.idle_renewal,
                session.read_response(),
            ))
            .await
        else {
            // Closing the connection ends the IDLE as well as `DONE` would.
            return Ok(Flow::Stopped);
        };
        let Ok(read) = next else {
            break; // Time to renew.
        };
        let response = read?
            .ok_or_else(|| ImapError::Connect("the connection was closed in IDLE".to_owned()))?;
        match response.parsed() {
            Response::MailboxData(MailboxDatum::Exists(_)) => break,
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                return Err(ImapError::Connect(format!(
                    "the server ended the session: {}",
                    outcome.information.as_deref().unwrap_or("")
                )));
            }
            Response::Done { tag: done, .. } if *done == tag => return Ok(Flow::Continue),
            // Keep-alives, expunges, flag changes.
            _ => {}
        }
    }
    session.run_command_untagged("DONE").await?;
    finish(session, settings, &tag).await?;
    Ok(Flow::Continue)
}

/// Reads up to the tagged answer to `tag`, which must be `OK`.
async fn finish(
    session: &mut Session<Conn>,
    settings: &ImapSettings,
    tag: &RequestId,
) -> Result<(), ImapError> {
    loop {
        let response = timed(settings, session.read_response())
            .await??
            .ok_or_else(|| ImapError::Connect("the connection was closed".to_owned()))?;
        if let Response::Done {
            tag: done,
            status,
            outcome,
        } = response.parsed()
            && done == tag
        {
            return match status {
                Status::Ok => Ok(()),
                _ => Err(ImapError::Protocol(format!(
                    "the server answered {status:?}: {}",
                    outcome.information.as_deref().unwrap_or("")
                ))),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_garbage_reads_as_none() {
        let c = Checkpoint {
            uid_validity: u32::MAX,
            last_uid: 3,
        };
        assert_eq!(Checkpoint::decode(&c.encode()), Some(c));
        for bad in [
            &b""[..],
            b"{}",
            b"null",
            br#"{"uid_validity":1}"#,
            br#"{"uid_validity":4294967296,"last_uid":1}"#,
            br#"{"uid_validity":-1,"last_uid":1}"#,
            b"\xff\x00",
        ] {
            assert_eq!(Checkpoint::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_changed_uid_validity_starts_again_from_one() {
        let c = Checkpoint {
            uid_validity: 7,
            last_uid: 41,
        };
        let fresh = |uid_validity| Checkpoint {
            uid_validity,
            last_uid: 0,
        };
        assert_eq!(Checkpoint::resume(Some(c), 7), c);
        assert_eq!(Checkpoint::resume(Some(c), 8), fresh(8));
        assert_eq!(Checkpoint::resume(None, 7), fresh(7));
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let account = ImapAccount::new(
            Uuid::nil(),
            "imap.example.com",
            993,
            TlsMode::Tls,
            "ada",
            Password::new("hunter2-secret"),
        );
        let shown = format!("{account:?} {:#?}", account);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
