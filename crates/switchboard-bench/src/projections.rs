//! The projection suite (`projections`): rebuilding every read model from the start of the log,
//! and how long an appended event takes to become visible in all of them under steady load.
//!
//! - `rebuild`: a realistic history (`history`) is written, then every projector is started on
//!   an empty read-model directory and timed until all have reached the head. Baseline: reading
//!   and decoding the same events with no projection at all, in the same run.
//! - `lag`: with the projectors caught up, events are appended at a steady 1,000 events/s; each
//!   append's latency is measured from the append call until every read model includes it
//!   (`wait_for`). Baseline: the same appends, until a bare store subscription delivers them.
//!   `ratio` is baseline p99 / projections p99 (1.0: projecting adds nothing).
//! - `rebuild_sealed` (`--sealed`): the same history with every personal field sealed under its
//!   data subject's key (ADR 0007), rebuilt through the keys (`KeyedStore`). Baseline: the
//!   `rebuild` of the history in the clear, in the same run; the budget is 15 %.

pub(crate) mod history;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use proto_events::event::*;
use proto_events::{Actor, DomainEvent, streams};
use switchboard_projector::{ProjectionRuntime, Projector};
use switchboard_store::{EventStore, ExpectedVersion, NewEvent, Position};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tokio::runtime::Runtime;
use uuid::Uuid;

use self::history::Layout;
use crate::args::{Args, UsageError};

/// Options of the projection suite.
#[derive(Debug)]
pub(crate) struct Options {
    conversations: u128,
    lag_seconds: u64,
    /// Run one projector only (by name), to see what each costs.
    only: Option<String>,
    /// Skip the lag workload.
    rebuild_only: bool,
    /// Where to keep the history's event store, to reuse it in later runs.
    history: Option<std::path::PathBuf>,
    /// How the history's conversations lie in the log.
    layout: Layout,
    /// Rebuild a sealed copy of the history too, against the history in the clear.
    sealed: bool,
}

impl Options {
    pub(crate) fn parse(mut args: Args) -> Result<Options, UsageError> {
        let quick = args.flag("--quick");
        let conversations =
            args.count("--conversations")?
                .unwrap_or(if quick { 5_000 } else { 50_000 });
        let only = args.value("--projector")?;
        let rebuild_only = args.flag("--rebuild-only");
        let history = args.value("--history")?;
        let layout = if args.flag("--contiguous") {
            Layout::Contiguous
        } else {
            Layout::Interleaved
        };
        let sealed = args.flag("--sealed");
        args.finish()?;
        Ok(Options {
            conversations: u128::from(conversations),
            lag_seconds: if quick { 3 } else { 10 },
            only,
            rebuild_only,
            history,
            layout,
            sealed,
        })
    }
}

/// Every projector of the product, as the server runs them, or only the one named.
fn projectors(only: Option<&str>) -> Vec<Arc<dyn Projector>> {
    switchboard_read_models::all()
        .into_iter()
        .filter(|p| only.is_none_or(|names| names.split(',').any(|name| p.name() == name)))
        .collect()
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::Builder::new()
        .prefix("switchboard-bench-projections")
        .tempdir()?;
    let events_dir = dir.path().join("events");
    let events = match &options.history {
        Some(kept) => {
            let events = kept_history(&runtime, kept, options.conversations, options.layout)?;
            // The lag workload appends to the store: it runs on a copy, so the kept history
            // stays the one it is recognised as.
            copy_store(kept, &events_dir)?;
            events
        }
        None => {
            let store = SqliteStore::open(&events_dir, SqliteOptions::default())?;
            write_history(&runtime, &store, options.conversations, options.layout)?
        }
    };
    // Closed and reopened, the store is the settled one a rebuild meets in production, not one
    // still checkpointing the history's write-ahead log behind the measurement's back.
    let store = SqliteStore::open(&events_dir, SqliteOptions::default())?;
    eprintln!("projections: {events} events in the history");
    let only = options.only.as_deref();
    let plain = rebuild(
        &runtime,
        &store,
        dir.path(),
        options.conversations,
        options.layout,
        only,
    )?;
    if options.sealed {
        let sealed_dir = match &options.history {
            Some(kept) => kept.with_extension("sealed"),
            None => dir.path().join("sealed-events"),
        };
        let master = sealed_history(&runtime, &store, &sealed_dir)?;
        // A keyring with nothing in memory, as a server starting a rebuild has.
        let sealed = SqliteStore::open(&sealed_dir, SqliteOptions::default())?;
        let keyring = Arc::new(switchboard_codec::keyring::Keyring::new(
            switchboard_store::secret::Vault::new(sealed.secrets(), &master),
        ));
        let keyed = switchboard_codec::keyring::KeyedStore::new(Arc::new(sealed), keyring);
        rebuild_sealed(
            &runtime,
            keyed,
            dir.path(),
            options.conversations,
            only,
            plain,
        )?;
    }
    if !options.rebuild_only {
        lag(&runtime, &store, dir.path(), options.lag_seconds, only)?;
    }
    Ok(())
}

/// Writes the history of `conversations` conversations into `store`; returns its events.
fn write_history(
    runtime: &Runtime,
    store: &SqliteStore,
    conversations: u128,
    layout: Layout,
) -> anyhow::Result<u64> {
    eprintln!(
        "projections: writing {conversations} conversations, {}",
        layout.name()
    );
    let started = Instant::now();
    let written = runtime.block_on(history::write(store, conversations, layout))?;
    eprintln!(
        "projections: wrote {written} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // A reused history is recognised by its size alone, so the count must be exact.
    anyhow::ensure!(
        written == history::events(conversations),
        "the history wrote {written} events, not the {} it is expected to have",
        history::events(conversations)
    );
    Ok(written)
}

/// The history kept in `kept`, written there first if it is empty; returns its events.
pub(crate) fn kept_history(
    runtime: &Runtime,
    kept: &std::path::Path,
    conversations: u128,
    layout: Layout,
) -> anyhow::Result<u64> {
    let store = SqliteStore::open(kept, SqliteOptions::default())?;
    let stored = runtime.block_on(store.head())?.0;
    let expected = history::events(conversations);
    // The layout is written beside the store once the history is complete; a history kept
    // before there were layouts is contiguous.
    let marker = kept.join(LAYOUT_FILE);
    if stored == 0 {
        let written = write_history(runtime, &store, conversations, layout)?;
        std::fs::write(&marker, layout.name())
            .with_context(|| format!("writing {}", marker.display()))?;
        return Ok(written);
    }
    anyhow::ensure!(
        stored == expected,
        "{} holds {stored} events, not the {expected} of a history of {conversations} conversations",
        kept.display()
    );
    let found = match std::fs::read_to_string(&marker) {
        Ok(name) => name,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Layout::Contiguous.name().to_owned()
        }
        Err(error) => return Err(error).with_context(|| format!("reading {}", marker.display())),
    };
    anyhow::ensure!(
        found.trim() == layout.name(),
        "{} holds a {} history, not the {} one asked for (--contiguous selects the other)",
        kept.display(),
        found.trim(),
        layout.name()
    );
    eprintln!(
        "projections: reusing the {stored} events in {}",
        kept.display()
    );
    Ok(stored)
}

/// The file beside a kept history's store that names its [`Layout`].
const LAYOUT_FILE: &str = "LAYOUT";

/// Copies the closed store in `from` into the new directory `to` (all but its lock file).
pub(crate) fn copy_store(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() != "LOCK" && entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The sealed copy of `plain` in `dir` (ADR 0007): every event's personal fields sealed with its
/// data subject's key, as `[privacy] seal_personal_data` writes them; written there first when
/// `dir` holds no complete copy. Returns the master key its subjects' keys are sealed with
/// (kept in `dir`'s `secret-key`). The store in `dir` is closed again on return.
fn sealed_history(
    runtime: &Runtime,
    plain: &SqliteStore,
    dir: &std::path::Path,
) -> anyhow::Result<switchboard_store::secret::MasterKey> {
    use switchboard_store::secret::{MasterKey, Vault};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_file = dir.join("secret-key");
    let master = match std::fs::read_to_string(&key_file) {
        Ok(hex) => MasterKey::from_hex(hex.trim()).map_err(anyhow::Error::msg)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            std::fs::write(&key_file, key.to_hex())
                .with_context(|| format!("writing {}", key_file.display()))?;
            key
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", key_file.display())),
    };
    let store = SqliteStore::open(dir, SqliteOptions::default())?;
    let keyring = Arc::new(switchboard_codec::keyring::Keyring::new(Vault::new(
        store.secrets(),
        &master,
    )));
    runtime.block_on(async {
        let head = plain.head().await?;
        let mut after = store.head().await?;
        if after == head {
            eprintln!(
                "projections: reusing the sealed history in {}",
                dir.display()
            );
            return anyhow::Ok(());
        }
        anyhow::ensure!(
            after == Position::START,
            "{} holds {} events of a sealed history, not the {} of this one",
            dir.display(),
            after.0,
            head.0
        );
        eprintln!("projections: sealing the history into {}", dir.display());
        let started = Instant::now();
        loop {
            let page = plain.read_all(after, 4096).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            // Sealed concurrently (a new subject's key is one durable write), appended in order.
            let sealed = futures::stream::iter(page.into_iter().map(|recorded| {
                let keyring = keyring.clone();
                async move {
                    let new = NewEvent {
                        event_id: recorded.event_id,
                        event_type: recorded.event_type,
                        schema_version: recorded.schema_version,
                        metadata: recorded.metadata,
                        payload: recorded.payload,
                    };
                    anyhow::Ok((recorded.stream, keyring.seal(new).await?))
                }
            }))
            .buffered(64)
            .collect::<Vec<_>>()
            .await;
            for event in sealed {
                let (stream, event) = event?;
                store
                    .append(&stream, ExpectedVersion::Any, vec![event])
                    .await?;
            }
        }
        eprintln!(
            "projections: sealed {} events in {:.1} s",
            after.0,
            started.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    })?;
    Ok(master)
}

/// Rebuilds every read model from the sealed history, read through its keys, against the
/// rebuild of the same history in the clear (`plain`, events per second, from [`rebuild`]).
fn rebuild_sealed(
    runtime: &Runtime,
    store: switchboard_codec::keyring::KeyedStore,
    dir: &std::path::Path,
    conversations: u128,
    only: Option<&str>,
    plain: f64,
) -> anyhow::Result<()> {
    eprintln!("projections: rebuilding every read model from the sealed history");
    let head = runtime.block_on(store.head())?;
    let (elapsed, cpu) = timed_rebuild(
        runtime,
        Arc::new(store),
        head,
        &dir.join("rebuild-sealed"),
        only,
    )?;
    let rate = head.0 as f64 / elapsed.as_secs_f64();
    print_line(&serde_json::json!({
        "workload": "rebuild_sealed",
        "events": head.0,
        "conversations": conversations,
        "projectors": projectors(only).iter().map(|p| p.name()).collect::<Vec<_>>(),
        "seconds": elapsed.as_secs_f64(),
        "events_per_sec": rate.round(),
        "cpu_seconds": cpu,
        "cpu_us_per_event": cpu.map(|c| c * 1e6 / head.0.max(1) as f64),
        "baseline_events_per_sec": plain.round(),
        "ratio": rate / plain,
        "baseline": "the same rebuild of the history in the clear (workload rebuild)",
        "target": "ratio >= 0.85 (sealing costs at most 15 % of rebuild throughput)",
        "target_met": rate / plain >= 0.85,
    }));
    Ok(())
}

/// Runs every projector (or `only` those) on an empty read-model directory `dir` until all
/// have reached `head` of `store`; returns the wall time and the process's CPU seconds.
fn timed_rebuild(
    runtime: &Runtime,
    store: Arc<dyn EventStore>,
    head: Position,
    dir: &std::path::Path,
    only: Option<&str>,
) -> anyhow::Result<(Duration, Option<f64>)> {
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    runtime.block_on(async {
        let projections = ProjectionRuntime::start(store, dir.to_owned(), projectors(only))?;
        projections
            .wait_for(
                head,
                tokio::time::Instant::now() + Duration::from_secs(3600),
            )
            .await
            .context("the rebuild did not finish")?;
        projections.shutdown().await;
        anyhow::Ok(())
    })?;
    let elapsed = started.elapsed();
    let cpu = process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    Ok((elapsed, cpu))
}

/// Rebuilds every read model from `store`; returns the events per second.
fn rebuild(
    runtime: &Runtime,
    store: &SqliteStore,
    dir: &std::path::Path,
    conversations: u128,
    layout: Layout,
    only: Option<&str>,
) -> anyhow::Result<f64> {
    eprintln!("projections: baseline, reading and decoding every event");
    let started = Instant::now();
    let decoded = runtime.block_on(async {
        let mut after = Position::START;
        let mut decoded = 0u64;
        loop {
            let page = store.read_all(after, 4096).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            for recorded in &page {
                std::hint::black_box(switchboard_codec::decode(recorded)?);
                decoded += 1;
            }
        }
        anyhow::Ok(decoded)
    })?;
    let baseline = started.elapsed();

    eprintln!("projections: rebuilding every read model from position 0");
    let head = runtime.block_on(store.head())?;
    let (elapsed, cpu) = timed_rebuild(
        runtime,
        Arc::new(store.clone()),
        head,
        &dir.join("rebuild"),
        only,
    )?;
    let rate = head.0 as f64 / elapsed.as_secs_f64();
    let baseline_rate = decoded as f64 / baseline.as_secs_f64();
    print_line(&serde_json::json!({
        "workload": "rebuild",
        "events": head.0,
        "conversations": conversations,
        "history": layout.name(),
        "projectors": projectors(only).iter().map(|p| p.name()).collect::<Vec<_>>(),
        "seconds": elapsed.as_secs_f64(),
        "events_per_sec": rate.round(),
        "cpu_seconds": cpu,
        "cpu_us_per_event": cpu.map(|c| c * 1e6 / head.0.max(1) as f64),
        "baseline_events": decoded,
        "baseline_seconds": baseline.as_secs_f64(),
        "baseline_events_per_sec": baseline_rate.round(),
        "ratio": rate / baseline_rate,
        "baseline": "read_all and decode every event, no projection",
        "target": "events_per_sec >= 250000",
        "target_met": rate >= 250_000.0,
    }));
    Ok(rate)
}

/// Two events (a conversation starting with a message) per append, at `rate` events/s.
fn conversation(n: u128) -> (String, Vec<NewEvent>) {
    let conversation = Uuid::now_v7();
    let (inbox, channel) = (Uuid::from_u128(200 + n % 3), Uuid::from_u128(300 + n % 3));
    let events: Vec<DomainEvent> = vec![
        ConversationStarted {
            conversation_id: conversation,
            inbox_id: inbox,
            channel_id: channel,
            channel_kind: ChannelKind::Chat,
            contact_id: None,
            origin: ConversationOrigin::Inbound,
            visibility: ConversationVisibility::Shared,
        }
        .into(),
        MessageReceived {
            conversation_id: conversation,
            inbox_id: inbox,
            message: InboundMessage {
                message_id: Uuid::now_v7(),
                channel_id: channel,
                channel_kind: ChannelKind::Chat,
                provider_message_id: None,
                from: Identity::ChatVisitor {
                    visitor_id: format!("live-{n}"),
                },
                from_name: None,
                contact_id: None,
                subject: None,
                body_text: "Is anyone there?".into(),
                body_html: None,
                email: None,
                form_fields: vec![],
                attachments: Vec::new(),
                raw: None,
            },
        }
        .into(),
    ];
    let actor = Actor::Channel { id: channel };
    let now = chrono::Utc::now();
    let events: Vec<_> = events
        .into_iter()
        .map(|e| (e, actor.clone(), now))
        .collect();
    let encoded = history::encode(&events);
    (streams::conversation(conversation), encoded)
}

/// Appends at 1,000 events/s for `seconds` and returns each append's latency until `visible`
/// says its position is visible.
async fn paced<F, Fut>(
    store: &SqliteStore,
    seconds: u64,
    visible: F,
) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(Position) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let appends = seconds * 500;
    let mut ticks = tokio::time::interval(Duration::from_millis(2));
    let mut waits = tokio::task::JoinSet::new();
    for n in 0..appends {
        ticks.tick().await;
        let (stream, events) = conversation(u128::from(n));
        let start = Instant::now();
        let position = store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await?
            .last_position;
        let visible = visible.clone();
        waits.spawn(async move {
            visible(position).await?;
            anyhow::Ok(start.elapsed())
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = waits.join_next().await {
        latencies.push(done??);
    }
    latencies.sort_unstable();
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn lag(
    runtime: &Runtime,
    store: &SqliteStore,
    dir: &std::path::Path,
    seconds: u64,
    only: Option<&str>,
) -> anyhow::Result<()> {
    eprintln!("projections: lag baseline, a bare subscription, {seconds} s at 1000 events/s");
    let baseline = runtime.block_on(async {
        let head = store.head().await?;
        let (seen_tx, seen) = tokio::sync::watch::channel(head);
        let mut subscription = store.subscribe_all(head);
        let follower = tokio::spawn(async move {
            while let Some(Ok(event)) = subscription.next().await {
                seen_tx.send_replace(event.position);
            }
        });
        let latencies = paced(store, seconds, move |position| {
            let mut seen = seen.clone();
            async move {
                seen.wait_for(|p| *p >= position).await?;
                Ok(())
            }
        })
        .await;
        follower.abort();
        latencies
    })?;

    eprintln!("projections: lag with every projector, {seconds} s at 1000 events/s");
    let measured = runtime.block_on(async {
        let projections = Arc::new(ProjectionRuntime::start(
            Arc::new(store.clone()),
            dir.join("rebuild"),
            projectors(only),
        )?);
        let head = store.head().await?;
        projections
            .wait_for(
                head,
                tokio::time::Instant::now() + Duration::from_secs(3600),
            )
            .await?;
        let waiting = projections.clone();
        let latencies = paced(store, seconds, move |position| {
            let projections = waiting.clone();
            async move {
                projections
                    .wait_for(
                        position,
                        tokio::time::Instant::now() + Duration::from_secs(60),
                    )
                    .await?;
                Ok(())
            }
        })
        .await;
        projections.shutdown().await;
        latencies
    })?;
    let (p50, p99) = (percentile(&measured, 50.0), percentile(&measured, 99.0));
    let (b50, b99) = (percentile(&baseline, 50.0), percentile(&baseline, 99.0));
    print_line(&serde_json::json!({
        "workload": "lag",
        "events": measured.len() * 2,
        "seconds": seconds,
        "events_per_sec": 1000,
        "p50_ms": p50,
        "p99_ms": p99,
        "baseline_p50_ms": b50,
        "baseline_p99_ms": b99,
        "ratio": b99 / p99.max(f64::MIN_POSITIVE),
        "baseline": "the same appends until a bare store subscription delivers them",
        "target": "p99_ms < 10",
        "target_met": p99 < 10.0,
    }));
    Ok(())
}

/// User and system CPU time of this process so far (Linux: `/proc/self/stat`), to show what a
/// workload costs beside how long it takes; `None` where that file is missing.
pub(crate) fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: utime and
    // stime are the 12th and 13th of them, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

fn print_line(value: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}
