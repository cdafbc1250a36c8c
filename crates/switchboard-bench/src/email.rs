//! The inbound e-mail suite (`email`): messages per second through the SMTP listener to durable
//! events, and how long a client waits for its `250`.
//!
//! An organisation with one team address runs on a fresh embedded store; the real listener
//! (`switchboard_email::smtp`) serves it on a loopback port, and 16 clients (one connection
//! each, pipelining each message's envelope as MTAs do) deliver 10 KB messages, one in five with a 200 KB
//! attachment, each a new thread: every message is parsed, its original and attachments go to
//! the blob store, and its events are durable before the `250`. The latency is the client's, from
//! sending the message to its acceptance. The baseline, in the same run on another fresh store,
//! appends the same raw bytes as one event each, by the same number of writers, without parsing
//! or deciding anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use proto_events::Actor;
use proto_events::event::{EmailAccess, Role};
use switchboard_codec::keyring::{KeyedStore, Keyring};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::setup::SetupCommand;
use switchboard_email::Ingester;
use switchboard_email::smtp::{self, SmtpSettings};
use switchboard_service::{Command, CommandMeta, CommandService};
use switchboard_store::secret::{MasterKey, Vault};
use switchboard_store::{EventStore, ExpectedVersion, NewEvent};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use uuid::Uuid;

use crate::args::{Args, UsageError};
use crate::projections::process_cpu_seconds;

/// Targets from the issue, on two cores.
const TARGET_PER_SEC: f64 = 1_000.0;
const TARGET_P99_MS: f64 = 50.0;
const TARGET_RATIO: f64 = 0.5;

/// What the suite was asked to do.
#[derive(Debug)]
pub(crate) struct Options {
    messages: usize,
    clients: usize,
    /// Seal personal fields at append, reading through the keys (`[privacy]
    /// seal_personal_data`; ADR 0007).
    sealed: bool,
}

impl Options {
    pub(crate) fn parse(mut args: Args) -> Result<Options, UsageError> {
        let quick = args.flag("--quick");
        let messages = args
            .count("--messages")?
            .unwrap_or(if quick { 800 } else { 4_000 });
        let clients = args.count("--clients")?.unwrap_or(16);
        let sealed = args.flag("--sealed");
        args.finish()?;
        Ok(Options {
            messages: usize::try_from(messages).unwrap_or(usize::MAX),
            clients: usize::try_from(clients).unwrap_or(1).max(1),
            sealed,
        })
    }
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(measure(options))
}

/// The `n`th message: about 10 KB of text, every fifth with a 200 KB attachment.
fn message(n: usize) -> Vec<u8> {
    let mut body = String::with_capacity(10_240);
    while body.len() < 10_000 {
        body.push_str("Hello, we would like to order 20 seats for our support team. ");
        body.push_str(&n.to_string());
        body.push_str("\r\n");
    }
    let mut mail = format!(
        "From: Customer {n} <customer{n}@example.org>\r\nTo: support@acme.test\r\n\
         Subject: Order {n}\r\nMessage-ID: <bench-{n}@example.org>\r\n\
         Date: Sun, 6 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    );
    if n.is_multiple_of(5) {
        // 150 KB of bytes is 200 KB of base64, in lines of 76.
        let bytes: Vec<u8> = (0..150_000usize).map(|i| (i * 31 + n) as u8).collect();
        let encoded = base64_lines(&bytes);
        mail.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{n}\"\r\n\r\n--b{n}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--b{n}\r\n\
             Content-Type: application/pdf; name=\"order-{n}.pdf\"\r\n\
             Content-Disposition: attachment; filename=\"order-{n}.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{encoded}--b{n}--\r\n"
        ));
    } else {
        mail.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
        ));
    }
    mail.into_bytes()
}

fn base64_lines(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + bytes.len() / 57 * 2 + 4);
    for line in bytes.chunks(57) {
        for group in line.chunks(3) {
            let b = [
                group[0],
                *group.get(1).unwrap_or(&0),
                *group.get(2).unwrap_or(&0),
            ];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= group.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out.push_str("\r\n");
    }
    out
}

/// An organisation with `support@acme.test` on a fresh store in `dir`; with personal fields
/// sealed when `sealed`.
async fn organisation(
    dir: &std::path::Path,
    sealed: bool,
) -> anyhow::Result<(Arc<dyn EventStore>, Ingester)> {
    let mut store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(
        dir.join("events"),
        SqliteOptions::default(),
    )?);
    let mut keyring = None;
    if sealed {
        let vault = Vault::new(store.secrets(), &MasterKey::generate());
        let keys = Arc::new(Keyring::new(vault));
        store = Arc::new(KeyedStore::new(store, keys.clone()));
        keyring = Some(keys);
    }
    let mut service =
        CommandService::open(store.clone(), Arc::new(proto_events::clock::SystemClock)).await?;
    if let Some(keyring) = keyring {
        service = service.with_keyring(keyring);
    }
    let service = Arc::new(service);
    let admin = Uuid::now_v7();
    let inbox = Uuid::now_v7();
    let system = CommandMeta::by(Actor::System {
        component: "bench".into(),
    });
    let by_admin = CommandMeta::by(Actor::User { id: admin });
    let commands = [
        (
            system.clone(),
            Command::Setup(SetupCommand::CreateOrganisation {
                organisation_id: Uuid::now_v7(),
                name: "Acme".into(),
                time_zone: "Europe/Berlin".into(),
            }),
        ),
        (
            system,
            Command::Setup(SetupCommand::CreateUser {
                user_id: admin,
                email: "admin@acme.test".into(),
                name: "Admin".into(),
                role: Role::Admin,
            }),
        ),
        (
            by_admin.clone(),
            Command::Setup(SetupCommand::CreateInbox {
                inbox_id: inbox,
                name: "Support".into(),
            }),
        ),
        (
            by_admin,
            Command::Channel(ChannelCommand::ConnectEmail {
                channel_id: Uuid::now_v7(),
                inbox_id: inbox,
                address: "support@acme.test".into(),
                access: EmailAccess::Shared,
            }),
        ),
    ];
    for (meta, command) in commands {
        service.execute(meta, command).await?;
    }
    Ok((store.clone(), Ingester::new(service, store)))
}

/// Spreads `messages` over `clients` tasks running `send` on each of theirs; each returns the
/// latency of every message. Returns all latencies and the elapsed time.
async fn spread<F, Fut>(
    messages: Arc<Vec<Vec<u8>>>,
    clients: usize,
    send: F,
) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Box<dyn ClientFn>>> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let messages = messages.clone();
        let send = send.clone();
        tasks.push(tokio::spawn(async move {
            let mut one = send(client).await?;
            let mut latencies = Vec::new();
            for (n, raw) in messages.iter().enumerate().skip(client).step_by(clients) {
                let at = Instant::now();
                one.send(n, raw).await?;
                latencies.push(at.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(messages.len());
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((all, started.elapsed()))
}

/// One client's way of delivering a message.
trait ClientFn: Send {
    fn send<'a>(
        &'a mut self,
        n: usize,
        raw: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>>;
}

/// An SMTP client on one connection, as an MTA such as Postfix delivers to a server that offers
/// `PIPELINING`: each message's `MAIL`, `RCPT` and `DATA` in one write, then its dot-stuffed
/// body and terminator in another. (lettre's transport sends each command alone and stuffs the
/// body a byte at a time: on two cores its work was a tenth of the run, taken from the server.)
struct SmtpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
}

impl SmtpClient {
    /// Connects to the listener on `port` and says `EHLO`.
    async fn connect(port: u16) -> anyhow::Result<SmtpClient> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        let mut client = SmtpClient {
            reader: BufReader::new(reader),
            writer,
            line: String::new(),
        };
        client.expect(220).await?;
        client
            .writer
            .write_all(b"EHLO bench.example.org\r\n")
            .await?;
        client.expect(250).await?;
        Ok(client)
    }

    /// Reads one reply, of as many lines as it has, and checks its code.
    async fn expect(&mut self, code: u16) -> anyhow::Result<()> {
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line).await? == 0 {
                anyhow::bail!("the server closed the connection");
            }
            let got: u16 = self.line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            anyhow::ensure!(
                got == code,
                "expected {code}, got {:?}",
                self.line.trim_end()
            );
            if self.line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }
}

/// `raw` as `DATA` sends it: lines starting with a dot get another, then `<CRLF>.<CRLF>`.
fn stuffed(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 5);
    for line in raw.split_inclusive(|b| *b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

impl ClientFn for SmtpClient {
    /// Sends `raw`, already stuffed ([`stuffed`]): the client's work, like the messages'
    /// making, is done before the clock starts.
    fn send<'a>(
        &'a mut self,
        n: usize,
        raw: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let envelope = format!(
                "MAIL FROM:<customer{n}@example.org> SIZE={}\r\nRCPT TO:<support@acme.test>\r\nDATA\r\n",
                raw.len()
            );
            self.writer.write_all(envelope.as_bytes()).await?;
            self.expect(250).await?;
            self.expect(250).await?;
            self.expect(354).await?;
            self.writer.write_all(raw).await?;
            self.expect(250).await
        })
    }
}

/// A writer appending each message's bytes as one event.
struct Appender(Arc<dyn EventStore>);

impl ClientFn for Appender {
    fn send<'a>(
        &'a mut self,
        _n: usize,
        raw: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let event = NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "RawMailReceived".to_owned(),
                schema_version: 1,
                metadata: b"{}".to_vec(),
                payload: raw.to_vec(),
            };
            let stream = format!("raw-{}", Uuid::now_v7());
            self.0
                .append(&stream, ExpectedVersion::NoStream, vec![event])
                .await?;
            Ok(())
        })
    }
}

/// The process's CPU seconds since `before` (both from [`process_cpu_seconds`]).
fn cpu_since(before: Option<f64>) -> Option<f64> {
    Some(process_cpu_seconds()? - before?)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1_000.0
}

async fn measure(options: Options) -> anyhow::Result<()> {
    let Options {
        messages,
        clients,
        sealed,
    } = options;
    let batch: Arc<Vec<Vec<u8>>> = Arc::new((1..=messages).map(message).collect());
    let mean_bytes = batch.iter().map(Vec::len).sum::<usize>() as f64 / messages.max(1) as f64;

    // The listener, on its own store.
    let dir = tempfile::tempdir()?;
    let (store, ingester) = organisation(dir.path(), sealed).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(smtp::serve(
        listener,
        ingester,
        SmtpSettings::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    eprintln!("email: {messages} messages by {clients} SMTP clients");
    let connect = move |_client: usize| async move {
        Ok(Box::new(SmtpClient::connect(port).await?) as Box<dyn ClientFn>)
    };
    let wire: Arc<Vec<Vec<u8>>> = Arc::new(batch.iter().map(|raw| stuffed(raw)).collect());
    let cpu_before = process_cpu_seconds();
    let (mut latencies, elapsed) = spread(wire, clients, connect).await?;
    let cpu = cpu_since(cpu_before);
    let _ = stop.send(());
    let _ = server.await;
    let (recorded, commits) = count_committed(store.as_ref(), "MessageReceived").await?;
    anyhow::ensure!(
        recorded == messages,
        "{recorded} of {messages} messages were recorded"
    );
    drop(store);

    // The baseline: the same bytes, appended as they are.
    let baseline_dir = tempfile::tempdir()?;
    let baseline_store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(
        baseline_dir.path().join("events"),
        SqliteOptions::default(),
    )?);
    eprintln!("email: baseline, {messages} raw appends by {clients} writers");
    let appender = {
        let store = baseline_store.clone();
        move |_client: usize| {
            let store = store.clone();
            async move { Ok(Box::new(Appender(store)) as Box<dyn ClientFn>) }
        }
    };
    let cpu_before = process_cpu_seconds();
    let (_, baseline_elapsed) = spread(batch, clients, appender).await?;
    let baseline_cpu = cpu_since(cpu_before);
    let (_, baseline_commits) = count_committed(baseline_store.as_ref(), "RawMailReceived").await?;

    latencies.sort();
    let per_sec = messages as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let baseline_per_sec = messages as f64 / baseline_elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let ratio = per_sec / baseline_per_sec.max(f64::MIN_POSITIVE);
    let p99 = percentile(&latencies, 0.99);
    let line = serde_json::json!({
        "workload": "email_smtp",
        "sealed": sealed,
        "messages": messages,
        "clients": clients,
        "with_attachment": messages / 5,
        "message_bytes": mean_bytes.round(),
        "seconds": elapsed.as_secs_f64(),
        "messages_per_sec": per_sec,
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": p99,
        "max_ms": latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1_000.0),
        "cpu_ms_per_message": cpu.map(|cpu| cpu * 1_000.0 / messages as f64),
        "messages_per_commit": messages as f64 / commits.max(1) as f64,
        "baseline": "the same raw bytes appended as one event each by as many writers, no parsing",
        "baseline_seconds": baseline_elapsed.as_secs_f64(),
        "baseline_messages_per_sec": baseline_per_sec,
        "baseline_cpu_ms_per_message": baseline_cpu.map(|cpu| cpu * 1_000.0 / messages as f64),
        "baseline_messages_per_commit": messages as f64 / baseline_commits.max(1) as f64,
        "ratio": ratio,
        "target": format!(
            ">= {TARGET_PER_SEC} messages/s, p99 < {TARGET_P99_MS} ms, ratio >= {TARGET_RATIO}"
        ),
        "target_met": per_sec >= TARGET_PER_SEC && p99 < TARGET_P99_MS && ratio >= TARGET_RATIO,
    });
    println!("{line}");
    Ok(())
}

/// How many `MessageReceived` events `store` holds.
/// How many events of `event_type` the log holds, and in how many commits (the embedded store
/// stamps every event of one commit with the same time).
async fn count_committed(
    store: &dyn EventStore,
    event_type: &str,
) -> anyhow::Result<(usize, usize)> {
    let mut after = switchboard_store::Position::START;
    let mut count = 0;
    let mut commits = std::collections::HashSet::new();
    loop {
        let page = store.read_all(after, 4096).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in page.iter().filter(|e| e.event_type == event_type) {
            count += 1;
            commits.insert(event.recorded_at);
        }
    }
    Ok((count, commits.len()))
}
