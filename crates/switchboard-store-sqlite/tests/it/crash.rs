//! Crash safety: a child process appends concurrently and reports every acknowledged append; it
//! is killed with SIGKILL at random moments. After each kill the store must hold every
//! acknowledged event intact, no batch partially, and a chain that verifies.
//!
//! The child is this same test binary, re-run on the `crash_child` test with an environment
//! variable naming the data directory; without that variable `crash_child` does nothing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::Rng;
use switchboard_store::chain::{self, Verification};
use switchboard_store::{EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use uuid::Uuid;

const CHILD_DIR: &str = "SWITCHBOARD_CRASH_CHILD_DIR";
const ROUNDS: usize = 20;

/// The child: 16 writers appending batches of 1 to 20 events as fast as they can, printing
/// `ack <first position> <last position> <event ids>` after each acknowledged append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let store = SqliteStore::open(&dir, SqliteOptions::default()).unwrap();
    let mut writers = Vec::new();
    for w in 0..16 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0u64.. {
                let size = 1 + (i * 7 + w) % 20;
                let batch = Uuid::now_v7();
                let events: Vec<NewEvent> = (0..size)
                    .map(|n| NewEvent {
                        event_id: Uuid::now_v7(),
                        event_type: "CrashTestAppended".into(),
                        schema_version: 1,
                        metadata: b"{}".to_vec(),
                        payload: serde_json::to_vec(&serde_json::json!({
                            "batch": batch, "size": size, "n": n, "filler": "x".repeat(300),
                        }))
                        .unwrap(),
                    })
                    .collect();
                let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
                let r = store
                    .append(&format!("crash-{w}"), ExpectedVersion::Any, events)
                    .await
                    .unwrap();
                let line = format!(
                    "ack {} {} {}\n",
                    r.first_position,
                    r.last_position,
                    ids.join(",")
                );
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes()).unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
}

struct Ack {
    first: u64,
    last: u64,
    ids: Vec<Uuid>,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ack ")?.split(' ');
    Some(Ack {
        first: parts.next()?.parse().ok()?,
        last: parts.next()?.parse().ok()?,
        ids: parts
            .next()?
            .split(',')
            .map(|id| id.parse().ok())
            .collect::<Option<_>>()?,
    })
}

/// Runs the child until it has acknowledged something, lets it go on for a random while, kills it
/// and returns what it acknowledged.
fn run_and_kill(dir: &std::path::Path, rng: &mut impl Rng) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut acks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait for the first acknowledgement, so that every round kills a process mid-work.
    while acks.is_empty() {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the child acknowledged nothing in time");
        acks.extend(parse_ack(&line));
    }
    std::thread::sleep(Duration::from_millis(rng.random_range(5..250)));
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    // Only complete lines count: a line cut by the kill is an ack the child never finished making.
    acks.extend(received.try_iter().filter_map(|l| parse_ack(&l)));
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    let mut acknowledged: HashMap<Uuid, u64> = HashMap::new();
    for round in 0..ROUNDS {
        for ack in run_and_kill(dir.path(), &mut rng) {
            assert_eq!(ack.last - ack.first + 1, ack.ids.len() as u64);
            for (i, id) in ack.ids.into_iter().enumerate() {
                acknowledged.insert(id, ack.first + i as u64);
            }
        }
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        let stored = read_everything(&store).await;
        let at: HashMap<Uuid, &RecordedEvent> = stored.iter().map(|e| (e.event_id, e)).collect();
        for (id, position) in &acknowledged {
            let event = at
                .get(id)
                .unwrap_or_else(|| panic!("round {round}: acknowledged event {id} is lost"));
            assert_eq!(
                event.position,
                Position(*position),
                "round {round}: event {id} moved"
            );
        }
        let mut batches: HashMap<String, (u64, u64)> = HashMap::new();
        for event in &stored {
            let payload: serde_json::Value =
                serde_json::from_slice(&event.payload).expect("intact payload");
            let entry = batches.entry(payload["batch"].to_string()).or_default();
            entry.0 = payload["size"].as_u64().unwrap();
            entry.1 += 1;
        }
        for (batch, (size, present)) in batches {
            assert_eq!(size, present, "round {round}: batch {batch} is partial");
        }
        match chain::verify(&store).await.unwrap() {
            Verification::Intact { events, .. } => assert_eq!(events, stored.len() as u64),
            broken => panic!("round {round}: chain broken after a crash: {broken:?}"),
        }
    }
    assert!(
        acknowledged.len() > ROUNDS,
        "the children acknowledged too little to prove anything"
    );
}

async fn read_everything(store: &SqliteStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let after = all
            .last()
            .map_or(Position::START, |e: &RecordedEvent| e.position);
        let page = store.read_all(after, 4096).await.unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}
