//! Crash safety: a child process runs the runtime and is killed with SIGKILL at random moments,
//! mid-batch; after each restart the read model must equal one rebuilt from scratch.
//!
//! The child is this test binary re-run on `crash_child`, which does nothing without the
//! environment variable naming its directory.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use switchboard_projector::{ProjectionRuntime, testing};
use switchboard_store::EventStore;
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};

use crate::support::*;

const CHILD_DIR: &str = "SWITCHBOARD_PROJECTION_CRASH_DIR";

/// The child: projects whatever is in the store, for as long as it lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let store = SqliteStore::open(dir.join("events"), SqliteOptions::default()).unwrap();
    let head = store.head().await.unwrap();
    let runtime =
        ProjectionRuntime::start(Arc::new(store), dir.join("models"), vec![counting("a")]).unwrap();
    println!("started");
    std::io::stdout().flush().unwrap();
    runtime
        .wait_for(head, tokio::time::Instant::now() + Duration::from_secs(600))
        .await
        .unwrap();
    println!("caught up");
    std::io::stdout().flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_batch_the_read_model_equals_a_rebuild() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    let mut killed_while_projecting = 0;
    for round in 0..6 {
        {
            let store =
                SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).unwrap();
            append(&store, 8_000, 100).await;
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill once it has started projecting, at a random moment.
        loop {
            let line = lines.next().expect("child ended before starting").unwrap();
            // libtest may print the test's name on the same line first.
            if line.ends_with("started") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(1..120)));
        child.kill().unwrap();
        child.wait().unwrap();
        if !lines.any(|line| line.is_ok_and(|l| l.ends_with("caught up"))) {
            killed_while_projecting += 1;
        }

        // Restart: the runtime resumes from the checkpoint and must end equal to a rebuild.
        let store = SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).unwrap();
        let head = store.head().await.unwrap();
        let runtime = ProjectionRuntime::start(
            Arc::new(store.clone()),
            dir.path().join("models"),
            vec![counting("a")],
        )
        .unwrap();
        runtime
            .wait_for(head, tokio::time::Instant::now() + Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let resumed = runtime
            .read_model("a")
            .unwrap()
            .query(|c| Ok(testing::dump(c)))
            .await
            .unwrap();
        runtime.shutdown().await;
        let fresh_dir = tempfile::tempdir().unwrap();
        let rebuilt = ProjectionRuntime::start(
            Arc::new(store.clone()),
            fresh_dir.path(),
            vec![counting("a")],
        )
        .unwrap();
        rebuilt
            .wait_for(head, tokio::time::Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        let fresh = rebuilt
            .read_model("a")
            .unwrap()
            .query(|c| Ok(testing::dump(c)))
            .await
            .unwrap();
        rebuilt.shutdown().await;
        assert!(
            resumed == fresh,
            "round {round}: the resumed read model differs from a rebuild"
        );
        assert_eq!(resumed["seen"].len() as u64, head.0);
    }
    assert!(
        killed_while_projecting >= 3,
        "only {killed_while_projecting} of 6 kills hit a projecting child"
    );
}
