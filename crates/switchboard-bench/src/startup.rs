//! The start-up suite (`startup`): how long `switchboard serve` takes to be ready on a big
//! history, and how much memory it holds then.
//!
//! The history is the projection suite's (50,000 conversations, about a million events). The
//! real binary runs as a child process on a copy of it: a first start builds the read models,
//! the write index and their snapshots; the measured start is the next one, as after a restart
//! or a deploy. The baseline, in the same run, is that start again with the write index deleted,
//! so the write view and routing fold the whole log as every start did before the index. Ready
//! means `GET /readyz` answers 200 (the store answers, the read models are caught up); the RSS
//! is the child's `VmRSS` at that moment.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use switchboard_store_sqlite::SqliteStore;

use crate::args::{Args, UsageError};
use crate::projections::{self, history::Layout};

/// How long a start may take before the suite gives up.
const START_DEADLINE: Duration = Duration::from_secs(1800);

/// Targets from the issue: a restart on a million events.
const TARGET_SECONDS: f64 = 3.0;
const TARGET_RSS_MB: f64 = 300.0;

/// What the suite was asked to do.
#[derive(Debug)]
pub(crate) struct Options {
    conversations: u128,
    history: Option<PathBuf>,
    binary: Option<PathBuf>,
}

impl Options {
    pub(crate) fn parse(mut args: Args) -> Result<Options, UsageError> {
        let quick = args.flag("--quick");
        let conversations =
            args.count("--conversations")?
                .unwrap_or(if quick { 5_000 } else { 50_000 });
        let history = args.value("--history")?;
        let binary = args.value("--binary")?;
        args.finish()?;
        Ok(Options {
            conversations: u128::from(conversations),
            history,
            binary,
        })
    }
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let binary = match options.binary {
        Some(binary) => binary,
        None => std::env::current_exe()?
            .parent()
            .context("the bench binary's directory")?
            .join("switchboard"),
    };
    anyhow::ensure!(
        binary.is_file(),
        "no switchboard binary at {} (build it, or pass --binary)",
        binary.display()
    );
    let scratch = tempfile::tempdir()?;
    let history = match &options.history {
        Some(kept) => kept.clone(),
        None => scratch.path().join("history"),
    };
    let events = {
        let runtime = tokio::runtime::Runtime::new()?;
        projections::kept_history(
            &runtime,
            &history,
            options.conversations,
            Layout::Interleaved,
        )?
    };
    let data = scratch.path().join("data");
    projections::copy_store(&history, &data.join("events"))?;
    // The history holds no store of this layout yet: open it once so its files are current.
    drop(SqliteStore::open(
        data.join("events"),
        switchboard_store_sqlite::SqliteOptions::default(),
    )?);

    eprintln!("startup: first start on {events} events (builds read models and the index)");
    let first = start(&binary, &data)?;
    eprintln!("startup: first start ready in {:.1} s", first.seconds);
    let warm = start(&binary, &data)?;
    eprintln!("startup: restart ready in {:.2} s", warm.seconds);
    for file in [
        "write-index.sqlite3",
        "write-index.sqlite3-wal",
        "write-index.sqlite3-shm",
    ] {
        let path = data.join("events").join(file);
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
    }
    let cold = start(&binary, &data)?;
    eprintln!(
        "startup: restart without the write index ready in {:.2} s",
        cold.seconds
    );

    let met = warm.seconds < TARGET_SECONDS && warm.settled_rss_mb < TARGET_RSS_MB;
    let line = serde_json::json!({
        "workload": "startup",
        "events": events,
        "seconds": warm.seconds,
        "rss_mb": warm.rss_mb,
        "settled_rss_mb": warm.settled_rss_mb,
        "baseline": "the same restart with the write index deleted (the whole log folded)",
        "baseline_seconds": cold.seconds,
        "baseline_rss_mb": cold.rss_mb,
        "baseline_settled_rss_mb": cold.settled_rss_mb,
        "ratio": cold.seconds / warm.seconds.max(f64::MIN_POSITIVE),
        "first_start_seconds": first.seconds,
        "first_start_rss_mb": first.rss_mb,
        "target": format!("restart < {TARGET_SECONDS} s, settled RSS < {TARGET_RSS_MB} MB"),
        "target_met": met,
    });
    println!("{line}");
    Ok(())
}

/// One start: seconds to ready, RSS then, and RSS once the server settled (its background
/// work after ready, such as routing catching up from its snapshot, done).
struct Started {
    seconds: f64,
    rss_mb: f64,
    settled_rss_mb: f64,
}

/// How long a server must use no CPU to count as settled, and the most a settling may take.
const IDLE_FOR: Duration = Duration::from_secs(1);
const SETTLE_DEADLINE: Duration = Duration::from_secs(120);

/// Starts `switchboard serve` on `data`, waits until it is ready, measures, stops it.
fn start(binary: &Path, data: &Path) -> anyhow::Result<Started> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let began = Instant::now();
    let mut child = Command::new(binary)
        .arg("serve")
        .env("SWITCHBOARD_DATA_DIR", data)
        .env("SWITCHBOARD_LISTEN", address.to_string())
        .env("SWITCHBOARD_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let measured = wait_ready(&mut child, address, began).and_then(|seconds| {
        let at_ready = rss_mb(child.id())?;
        settle(child.id())?;
        Ok(Started {
            seconds,
            rss_mb: at_ready,
            settled_rss_mb: rss_mb(child.id())?,
        })
    });
    stop(&mut child)?;
    measured
}

/// Seconds from `began` until `/readyz` on `address` answers 200.
fn wait_ready(child: &mut Child, address: SocketAddr, began: Instant) -> anyhow::Result<f64> {
    loop {
        if ready(address) {
            return Ok(began.elapsed().as_secs_f64());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("switchboard serve exited before it was ready: {status}");
        }
        anyhow::ensure!(
            began.elapsed() < START_DEADLINE,
            "not ready after {START_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `GET /readyz` answers 200.
fn ready(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// Waits until process `pid` has used no CPU for [`IDLE_FOR`] (a measurement, polled; bounded
/// by [`SETTLE_DEADLINE`]).
fn settle(pid: u32) -> anyhow::Result<()> {
    let began = Instant::now();
    let mut last = (cpu_ticks(pid)?, Instant::now());
    while began.elapsed() < SETTLE_DEADLINE {
        std::thread::sleep(Duration::from_millis(100));
        let ticks = cpu_ticks(pid)?;
        if ticks != last.0 {
            last = (ticks, Instant::now());
        } else if last.1.elapsed() >= IDLE_FOR {
            return Ok(());
        }
    }
    anyhow::bail!("the server did not settle within {SETTLE_DEADLINE:?}")
}

/// User plus system CPU ticks of process `pid` so far.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which may hold spaces) start after its `)`.
    let rest = stat.rsplit_once(')').context("no ) in /proc/<pid>/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        Ok(fields.get(n).context("short /proc/<pid>/stat")?.parse()?)
    };
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Ok(field(11)? + field(12)?)
}

/// The resident set of process `pid`, in MB.
fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kb / 1024.0)
}

/// Stops the server the way an operator does (SIGTERM) and waits for it.
fn stop(child: &mut Child) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM failed");
    child.wait()?;
    Ok(())
}
