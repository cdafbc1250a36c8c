//! The `store` suite: how fast the embedded SQLite event store appends and reads, next to raw SQLite.
//!
//! Three workloads run in order, each on fresh temporary directories, each printing one
//! [`Report`] line:
//! - `append_concurrent`: many tokio tasks, each appending one event at a time to its own stream
//!   with an exact expected version, which is what command handlers do. Group commit is what makes
//!   this fast; the baseline commits each event in its own transaction on one connection.
//! - `append_batched`: one writer appending large batches, each to a new stream; the baseline
//!   inserts the same rows in transactions of the same size. Both are timed per batch around the
//!   write only (generating the events is not timed), alternating batch by batch so that both see
//!   the same disk conditions.
//! - `read_all`: paging through everything `append_batched` wrote, in global order; the baseline
//!   is one raw ordered scan of the same file.
//! - `append_concurrent_sealed`: `append_concurrent` with each event's personal fields (the
//!   body) sealed with its data subject's key before the append, as `[privacy]
//!   seal_personal_data` writes (ADR 0007): one subject per writer, its key made before the
//!   clock starts (a subject writing again, the usual case; a new subject's key costs a durable
//!   write of its own). Baseline: the same appends unsealed, on a fresh store, in the same run;
//!   each side runs twice, alternated; issue 21's budget is 15 %.
//!
//! # Layout
//! - `sample`: the events appended.
//! - `baseline`: the raw-`rusqlite` baselines.

mod baseline;
mod sample;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use switchboard_store::{EventStore, ExpectedVersion, NewEvent, Position};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::args::{Args, UsageError};
use crate::report::{Measurement, Report, Target, Workload};

/// The workloads, in the order they run.
const WORKLOADS: [&str; 4] = [
    "append_concurrent",
    "append_concurrent_sealed",
    "append_batched",
    "read_all",
];

/// File name of a baseline database inside its own temporary directory.
const BASELINE_FILE: &str = "baseline.sqlite3";

/// The suite's settings, from the command line.
#[derive(Debug)]
pub(crate) struct Options {
    /// Total events of `append_concurrent`.
    concurrent_events: u64,
    /// Tasks appending concurrently in `append_concurrent`.
    writers: u64,
    /// Total events of `append_batched`, and so of `read_all`.
    batched_events: u64,
    /// Events per append in `append_batched`.
    batch: u64,
    /// Events per `read_all` call.
    page: u64,
    /// Run only this workload (`read_all` still writes its data with `append_batched` first,
    /// without reporting it); `None` runs them all.
    only: Option<String>,
    /// The longest the one-event-per-transaction baseline may run; it is fsync-bound and would
    /// otherwise dominate the suite. If it stops early, its report says how many events it did.
    baseline_budget: Duration,
}

impl Options {
    pub(crate) fn parse(mut args: Args) -> Result<Options, UsageError> {
        let quick = args.flag("--quick");
        let events = args.count("--events")?;
        let writers = args.count("--writers")?.unwrap_or(64);
        let batch = args.count("--batch")?.unwrap_or(1_000);
        let page = args.count("--page")?.unwrap_or(4_096);
        let only = args.value::<String>("--only")?;
        if let Some(name) = &only
            && !WORKLOADS.contains(&name.as_str())
        {
            return Err(UsageError(format!(
                "--only: unknown workload `{name}`, expected one of {}",
                WORKLOADS.join(", ")
            )));
        }
        args.finish()?;
        let (concurrent, batched, budget) = if quick {
            (20_000, 100_000, 15)
        } else {
            (200_000, 1_000_000, 120)
        };
        Ok(Options {
            concurrent_events: events.unwrap_or(concurrent),
            writers,
            batched_events: events.unwrap_or(batched),
            batch,
            page,
            only,
            baseline_budget: Duration::from_secs(budget),
        })
    }
}

/// Runs every workload of the suite and prints their reports.
pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let wanted = |name: &str| options.only.as_deref().is_none_or(|only| only == name);
    if wanted("append_concurrent") {
        append_concurrent(&runtime, &options)?.emit()?;
    }
    if wanted("append_concurrent_sealed") {
        append_concurrent_sealed(&runtime, &options)?.emit()?;
    }
    if wanted("append_batched") || wanted("read_all") {
        let (report, written) = append_batched(&runtime, &options)?;
        if wanted("append_batched") {
            report.emit()?;
        }
        if wanted("read_all") {
            read_all(&runtime, &options, &written)?.emit()?;
        }
    }
    Ok(())
}

/// A fresh directory under the system's temporary directory, removed when dropped.
fn fresh_dir(label: &str) -> anyhow::Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("switchboard-bench-{label}-"))
        .tempdir_in(std::env::temp_dir())
        .with_context(|| format!("creating a temporary directory for {label}"))
}

fn open_store(dir: &Path) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(dir, SqliteOptions::default())
        .with_context(|| format!("opening the store in {}", dir.display()))
}

fn stream_name() -> String {
    format!("conversation-{}", Uuid::now_v7())
}

/// One writer's share of `append_concurrent`: its stream and the events it appends in order.
#[derive(Clone, Debug)]
struct Share {
    stream: String,
    events: Vec<NewEvent>,
}

fn append_concurrent(runtime: &Runtime, options: &Options) -> anyhow::Result<Report> {
    let total = options.concurrent_events;
    let writers = options.writers.min(total);
    eprintln!("store: append_concurrent: generating {total} events for {writers} writers");
    let mut seq = 0;
    let shares: Vec<Share> = (0..writers)
        .map(|w| {
            let count = total / writers + u64::from(w < total % writers);
            let events = (0..count)
                .map(|_| {
                    seq += 1;
                    sample::message_received(seq)
                })
                .collect();
            Share {
                stream: stream_name(),
                events,
            }
        })
        .collect();
    let bytes: u64 = shares
        .iter()
        .flat_map(|s| &s.events)
        .map(sample::body_bytes)
        .sum();
    let baseline_shares = shares.clone();

    eprintln!("store: append_concurrent: store, {writers} tasks");
    let dir = fresh_dir("append-concurrent")?;
    let store = open_store(dir.path())?;
    let measured = runtime.block_on(concurrent_appends(&store, shares, None))?;
    runtime.block_on(check_versions(&store, &baseline_shares))?;
    drop(store);

    eprintln!(
        "store: append_concurrent: baseline, one transaction per event (budget {:?})",
        options.baseline_budget
    );
    let baseline_dir = fresh_dir("append-concurrent-baseline")?;
    let mut raw = baseline::RawWriter::create(&baseline_dir.path().join(BASELINE_FILE))?;
    let start = Instant::now();
    let mut done = 0u64;
    let longest = baseline_shares
        .iter()
        .map(|s| s.events.len())
        .max()
        .unwrap_or(0);
    // Round robin over the writers' streams, the order the store would roughly see them in.
    'rounds: for version in 0..longest {
        for share in &baseline_shares {
            if let Some(event) = share.events.get(version) {
                let event = NewEvent {
                    event_id: Uuid::now_v7(),
                    ..event.clone()
                };
                raw.append(&share.stream, version as u64, std::slice::from_ref(&event))?;
                done += 1;
            }
            if start.elapsed() > options.baseline_budget {
                break 'rounds;
            }
        }
    }
    let baseline = Measurement {
        events: done,
        elapsed: start.elapsed(),
    };

    Ok(Report::new(
        Workload {
            name: "append_concurrent",
            event_bytes: bytes as f64 / total.max(1) as f64,
            writers: Some(writers),
            batch: Some(1),
            page: None,
            baseline: "raw rusqlite, one connection, one BEGIN IMMEDIATE transaction per event, \
                       store schema and pragmas, dummy hash",
            target: Target::EventsPerSec(50_000.0),
        },
        measured,
        baseline,
    ))
}

/// `append_concurrent`'s appends with sealed personal fields, against the same appends in the
/// clear (see the module docs).
fn append_concurrent_sealed(runtime: &Runtime, options: &Options) -> anyhow::Result<Report> {
    use switchboard_codec::keyring::Keyring;
    use switchboard_store::secret::{MasterKey, Vault};

    let total = options.concurrent_events;
    let writers = options.writers.min(total);
    eprintln!("store: append_concurrent_sealed: generating {total} events for {writers} writers");
    let mut seq = 0;
    let shares: Vec<(Uuid, Share)> = (0..writers)
        .map(|w| {
            let count = total / writers + u64::from(w < total % writers);
            let subject = Uuid::now_v7();
            let events = (0..count)
                .map(|_| {
                    seq += 1;
                    sample::message_in(subject, seq)
                })
                .collect();
            let share = Share {
                stream: format!("conversation-{subject}"),
                events,
            };
            (subject, share)
        })
        .collect();
    let bytes: u64 = shares
        .iter()
        .flat_map(|(_, s)| &s.events)
        .map(sample::body_bytes)
        .sum();

    let plain: Vec<Share> = shares.iter().map(|(_, share)| share.clone()).collect();
    // Each side runs twice, in the order clear, sealed, sealed, clear, each on a fresh store,
    // so that neither gains from going first or last.
    let mut baseline = Measurement {
        events: 0,
        elapsed: Duration::ZERO,
    };
    let mut measured = baseline;
    for sealed in [false, true, true, false] {
        let side = if sealed { "sealed" } else { "in the clear" };
        eprintln!("store: append_concurrent_sealed: {side}, {writers} tasks");
        let dir = fresh_dir("append-concurrent-sealed")?;
        let store = open_store(dir.path())?;
        let keyring = if sealed {
            let keyring = Arc::new(Keyring::new(Vault::new(
                store.secrets(),
                &MasterKey::generate(),
            )));
            runtime.block_on(async {
                for (subject, _) in &shares {
                    keyring.key_for_writing(*subject).await?;
                }
                anyhow::Ok(())
            })?;
            Some(keyring)
        } else {
            None
        };
        let run = runtime.block_on(concurrent_appends(&store, plain.clone(), keyring))?;
        runtime.block_on(check_versions(&store, &plain))?;
        let stored = runtime.block_on(store.read_all(Position::START, total as usize))?;
        ensure!(
            stored.len() as u64 == total
                && stored
                    .iter()
                    .all(|e| switchboard_codec::seal::is_sealed(&e.payload) == sealed),
            "the {side} run stored an event otherwise"
        );
        let sum = if sealed { &mut measured } else { &mut baseline };
        sum.events += run.events;
        sum.elapsed += run.elapsed;
    }

    Ok(Report::new(
        Workload {
            name: "append_concurrent_sealed",
            event_bytes: bytes as f64 / total.max(1) as f64,
            writers: Some(writers),
            batch: Some(1),
            page: None,
            baseline: "the same appends with the body in the clear, fresh store, same run",
            target: Target::Ratio(0.85),
        },
        measured,
        baseline,
    ))
}

/// Every share appended by its own task, one event per append, all at once.
/// With `keyring`, each event's personal fields are sealed (in the writer's task, as the command
/// service does) before its append.
async fn concurrent_appends(
    store: &SqliteStore,
    shares: Vec<Share>,
    keyring: Option<Arc<switchboard_codec::keyring::Keyring>>,
) -> anyhow::Result<Measurement> {
    let total = shares.iter().map(|s| s.events.len() as u64).sum();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for share in shares {
        let store = store.clone();
        let keyring = keyring.clone();
        tasks.spawn(async move {
            let mut expected = ExpectedVersion::NoStream;
            for mut event in share.events {
                // Ids are minted when a command is decided, just before its append, as the
                // command service does; minting them all up front, writer by writer, would
                // scatter the inserts over the event-id index in a way no real load does.
                event.event_id = Uuid::now_v7();
                if let Some(keyring) = &keyring {
                    event = keyring.seal(event).await?;
                }
                let appended = store.append(&share.stream, expected, vec![event]).await?;
                expected = ExpectedVersion::Exact(appended.stream_version);
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a writer task panicked")??;
    }
    Ok(Measurement {
        events: total,
        elapsed: start.elapsed(),
    })
}

/// Checks that every writer's stream ends where it should.
async fn check_versions(store: &SqliteStore, shares: &[Share]) -> anyhow::Result<()> {
    for share in shares {
        let version = store.stream_version(&share.stream).await?;
        let expected = (share.events.len() as u64).checked_sub(1);
        ensure!(
            version == expected,
            "stream {} is at version {version:?}, expected {expected:?}",
            share.stream
        );
    }
    Ok(())
}

/// What `append_batched` leaves behind for `read_all`.
#[derive(Debug)]
struct Written {
    store: SqliteStore,
    events: u64,
    event_bytes: f64,
    /// Keeps the directory until the suite is done.
    _dir: TempDir,
}

fn append_batched(runtime: &Runtime, options: &Options) -> anyhow::Result<(Report, Written)> {
    let total = options.batched_events;
    eprintln!(
        "store: append_batched: {total} events in appends of {}, store and baseline alternating",
        options.batch
    );
    let dir = fresh_dir("append-batched")?;
    let store = open_store(dir.path())?;
    let baseline_dir = fresh_dir("append-batched-baseline")?;
    let mut raw = baseline::RawWriter::create(&baseline_dir.path().join(BASELINE_FILE))?;

    let mut store_time = Duration::ZERO;
    let mut baseline_time = Duration::ZERO;
    let mut bytes = 0u64;
    let mut written = 0u64;
    let mut next_progress = total / 10;
    while written < total {
        let count = options.batch.min(total - written);
        let events: Vec<NewEvent> = (written..written + count)
            .map(sample::message_received)
            .collect();
        bytes += events.iter().map(sample::body_bytes).sum::<u64>();
        let stream = stream_name();

        let start = Instant::now();
        raw.append(&stream, 0, &events)?;
        baseline_time += start.elapsed();

        let start = Instant::now();
        runtime.block_on(store.append(&stream, ExpectedVersion::NoStream, events))?;
        store_time += start.elapsed();

        written += count;
        if written >= next_progress && written < total {
            eprintln!("store: append_batched: {written}/{total}");
            next_progress += total / 10;
        }
    }
    // `read_all` checks that every event can be read back.
    let event_bytes = bytes as f64 / total.max(1) as f64;
    let report = Report::new(
        Workload {
            name: "append_batched",
            event_bytes,
            writers: Some(1),
            batch: Some(options.batch),
            page: None,
            baseline: "raw rusqlite, one connection, one BEGIN IMMEDIATE transaction per batch, \
                       cached prepared insert, store schema and pragmas, dummy hash",
            target: Target::Ratio(0.7),
        },
        Measurement {
            events: total,
            elapsed: store_time,
        },
        Measurement {
            events: total,
            elapsed: baseline_time,
        },
    );
    Ok((
        report,
        Written {
            store,
            events: total,
            event_bytes,
            _dir: dir,
        },
    ))
}

fn read_all(runtime: &Runtime, options: &Options, written: &Written) -> anyhow::Result<Report> {
    let page = usize::try_from(options.page).context("--page is too large")?;
    eprintln!(
        "store: read_all: {} events in pages of {page}, then the baseline scan",
        written.events
    );
    let store = &written.store;
    let measured = runtime.block_on(async {
        let start = Instant::now();
        let mut after = Position::START;
        let mut events = 0u64;
        loop {
            let batch = store.read_all(after, page).await?;
            let Some(last) = batch.last() else { break };
            after = last.position;
            events += batch.len() as u64;
            black_box(batch);
        }
        anyhow::Ok(Measurement {
            events,
            elapsed: start.elapsed(),
        })
    })?;
    ensure!(
        measured.events == written.events,
        "read_all returned {} events, {} were written",
        measured.events,
        written.events
    );

    let start = Instant::now();
    let scanned = baseline::scan(store.database_path())?;
    let baseline = Measurement {
        events: scanned,
        elapsed: start.elapsed(),
    };
    ensure!(
        scanned == written.events,
        "the baseline scan read {scanned} rows, {} were written",
        written.events
    );

    Ok(Report::new(
        Workload {
            name: "read_all",
            event_bytes: written.event_bytes,
            writers: None,
            batch: None,
            page: Some(options.page),
            baseline: "raw rusqlite SELECT of the same columns ORDER BY position on a fresh \
                       read-only connection to the same file, each column into an owned value",
            target: Target::EventsPerSec(1_000_000.0),
        },
        measured,
        baseline,
    ))
}
