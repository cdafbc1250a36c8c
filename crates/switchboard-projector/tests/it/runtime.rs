//! The runtime: catching up, read-your-writes, restarts, a failing projector, lag, rebuilds.

use std::sync::Arc;
use std::time::Duration;

use switchboard_projector::runtime::Status;
use switchboard_projector::{ProjectionRuntime, RuntimeError, model, testing};
use switchboard_store::{EventStore, Position};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tokio::time::Instant;

use crate::support::*;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_catch_up_and_wait_for_gives_read_your_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).unwrap();
    append(&store, 300, 7).await;
    let runtime = ProjectionRuntime::start(
        Arc::new(store.clone()),
        dir.path().join("models"),
        vec![counting("a"), counting("b")],
    )
    .unwrap();
    for _ in 0..20 {
        let written = append(&store, 5, 2).await;
        runtime.wait_for(written, deadline()).await.unwrap();
        // Right after wait_for, the write is visible in every read model.
        for name in ["a", "b"] {
            let (count, max) = runtime.read_model(name).unwrap().query(seen).await.unwrap();
            assert!(max as u64 >= written.0, "{name} does not include {written}");
            assert_eq!(count, max, "{name}: an event was skipped or applied twice");
        }
    }
    let lag = runtime.lag().await.unwrap();
    assert!(
        lag.iter()
            .all(|l| l.positions_behind == 0 && l.seconds_behind == 0.0 && l.failed.is_none()),
        "{lag:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_runtime_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).unwrap();
    let first = append(&store, 100, 3).await;
    let runtime = ProjectionRuntime::start(
        Arc::new(store.clone()),
        dir.path().join("models"),
        vec![counting("a")],
    )
    .unwrap();
    runtime.wait_for(first, deadline()).await.unwrap();
    // Built from the start of the log without a write-ahead log, the read model writes the
    // batches that follow its catch-up through one.
    let first = append(&store, 20, 2).await;
    runtime.wait_for(first, deadline()).await.unwrap();
    // A connection left open keeps SQLite from folding and deleting the log when the writer
    // closes: shutting down must do it, by waiting for the checkpointer's final checkpoint.
    let reader = rusqlite::Connection::open(dir.path().join("models/a.0.sqlite3")).unwrap();
    reader
        .query_row("SELECT count(*) FROM _projection", [], |_| Ok(()))
        .unwrap();
    let wal = dir.path().join("models/a.0.sqlite3-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    runtime.shutdown().await;
    let size = std::fs::metadata(&wal).unwrap().len();
    assert_eq!(
        size, 0,
        "the read model's write-ahead log was not checkpointed"
    );
    drop(reader);
    drop(runtime);
    let second = append(&store, 100, 3).await;
    let runtime = ProjectionRuntime::start(
        Arc::new(store.clone()),
        dir.path().join("models"),
        vec![counting("a")],
    )
    .unwrap();
    runtime.wait_for(second, deadline()).await.unwrap();
    // The key on position would have refused a second application of the first 100 events.
    let (count, max) = runtime.read_model("a").unwrap().query(seen).await.unwrap();
    assert_eq!((count as u64, max as u64), (second.0, second.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_projector_stops_alone_and_names_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).unwrap();
    let head = append(&store, 50, 1).await;
    let broken: Arc<dyn switchboard_projector::Projector> = Arc::new(Counting {
        name: "broken",
        fail_at: Some(20),
    });
    let runtime = ProjectionRuntime::start(
        Arc::new(store.clone()),
        dir.path().join("models"),
        vec![broken, counting("healthy")],
    )
    .unwrap();
    let error = runtime.wait_for(head, deadline()).await.unwrap_err();
    let RuntimeError::Failed(message) = error else {
        panic!("expected Failed, got {error:?}")
    };
    assert!(
        message.contains("position 20") && message.contains("InboxCreated"),
        "{message}"
    );
    // The healthy projector is not held back.
    let mut healthy = None;
    for (name, status) in runtime.statuses() {
        if name == "healthy" {
            healthy = Some(status);
        }
    }
    let lag = runtime.lag().await.unwrap();
    let healthy_lag = lag.iter().find(|l| l.name == "healthy").unwrap();
    let broken_lag = lag.iter().find(|l| l.name == "broken").unwrap();
    assert!(broken_lag.failed.is_some());
    assert!(
        broken_lag.checkpoint < Position(20),
        "nothing from the failing batch was kept"
    );
    let (count, _) = runtime
        .read_model("broken")
        .unwrap()
        .query(seen)
        .await
        .unwrap();
    assert_eq!(count as u64, broken_lag.checkpoint.0);
    // Wait for the healthy one separately: it reaches the head.
    let deadline = deadline();
    loop {
        let lag = runtime.lag().await.unwrap();
        if lag.iter().find(|l| l.name == "healthy").unwrap().checkpoint >= head {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "healthy projector stuck: {healthy:?} {healthy_lag:?}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_into_a_fresh_copy_swaps_without_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).unwrap();
    let head = append(&store, 200, 4).await;
    let models = dir.path().join("models");
    let runtime =
        ProjectionRuntime::start(Arc::new(store.clone()), &models, vec![counting("a")]).unwrap();
    runtime.wait_for(head, deadline()).await.unwrap();
    let model = runtime.read_model("a").unwrap();
    let before = model.query(|c| Ok(testing::dump(c))).await.unwrap();
    // Queries keep answering while the rebuild runs, and writes keep landing.
    let rebuild = runtime.rebuild("a");
    let writer = async {
        let mut last = head;
        for _ in 0..10 {
            last = append(&store, 3, 1).await;
            let (count, _) = model.query(seen).await.unwrap();
            assert!(
                count as u64 >= head.0,
                "the old read model stopped answering"
            );
        }
        last
    };
    let (rebuilt, last) = tokio::join!(rebuild, writer);
    rebuilt.unwrap();
    runtime.wait_for(last, deadline()).await.unwrap();
    let (count, max) = model.query(seen).await.unwrap();
    assert_eq!((count as u64, max as u64), (last.0, last.0));
    assert!(
        std::fs::read_to_string(models.join("a.current"))
            .unwrap()
            .trim()
            == "1",
        "queries now use generation 1"
    );
    let after = model.query(|c| Ok(testing::dump(c))).await.unwrap();
    let kept = before["seen"]
        .iter()
        .filter(|row| after["seen"].contains(row))
        .count();
    assert!(
        kept == before["seen"].len(),
        "the copy lost {} rows of the old read model",
        before["seen"].len() - kept
    );
    assert!(matches!(runtime.statuses()[0].1, Status::Running(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rebuild_keeps_the_current_read_model_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).unwrap();
    let head = append(&store, 50, 5).await;
    let models = dir.path().join("models");
    let projector = Arc::new(Switchable {
        failing: false.into(),
    });
    let runtime =
        ProjectionRuntime::start(Arc::new(store.clone()), &models, vec![projector.clone()])
            .unwrap();
    runtime.wait_for(head, deadline()).await.unwrap();
    projector
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(runtime.rebuild("switchable").await.is_err());
    projector
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // Still generation 0, still running, still following the log.
    assert!(
        std::fs::read_to_string(models.join("switchable.current"))
            .map_or(true, |g| g.trim() == "0")
    );
    let later = append(&store, 10, 2).await;
    runtime.wait_for(later, deadline()).await.unwrap();
    let (count, max) = runtime
        .read_model("switchable")
        .unwrap()
        .query(seen)
        .await
        .unwrap();
    assert_eq!((count as u64, max as u64), (later.0, later.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_built_from_the_start_is_durable_once_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).unwrap();
    let head = append(&store, 3_000, 50).await;
    let runtime = ProjectionRuntime::start(
        Arc::new(store.clone()),
        dir.path().join("models"),
        vec![counting("a")],
    )
    .unwrap();
    let path = dir.path().join("models/a.0.sqlite3");
    runtime.wait_for(head, deadline()).await.unwrap();
    assert!(
        !model::build_marker(&path).exists(),
        "the build marker outlived the catch-up"
    );
    let mode: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let (count, max) = runtime.read_model("a").unwrap().query(seen).await.unwrap();
    assert_eq!((count as u64, max as u64), (head.0, head.0));
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_build_starts_again_from_an_empty_read_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).unwrap();
    let head = append(&store, 500, 50).await;
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    // What a crash mid-build can leave: a torn database file, and the marker beside it.
    let path = models.join("a.0.sqlite3");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    std::fs::write(model::build_marker(&path), b"").unwrap();
    let runtime =
        ProjectionRuntime::start(Arc::new(store.clone()), &models, vec![counting("a")]).unwrap();
    runtime.wait_for(head, deadline()).await.unwrap();
    let (count, max) = runtime.read_model("a").unwrap().query(seen).await.unwrap();
    assert_eq!((count as u64, max as u64), (head.0, head.0));
    runtime.shutdown().await;
    assert!(!model::build_marker(&path).exists());
}

#[tokio::test]
async fn a_build_ended_early_keeps_its_batches_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events"), SqliteOptions::default()).unwrap();
    append(&store, 10, 10).await;
    let events: Vec<_> = store
        .read_all(Position::START, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| switchboard_codec::decode(e).unwrap())
        .collect();
    let path = dir.path().join("a.sqlite3");
    let projector = Counting {
        name: "a",
        fail_at: None,
    };
    let (mut conn, checkpoint) = model::open_for_writing(&path, &projector).unwrap();
    assert_eq!(checkpoint.position.0, 0);
    assert!(model::begin_build(&conn, &path).unwrap());
    model::apply_batch(&mut conn, &projector, &events).unwrap();
    model::finish_build(&conn, &path).unwrap();
    drop(conn);
    assert!(!model::build_marker(&path).exists());
    let (conn, checkpoint) = model::open_for_writing(&path, &projector).unwrap();
    assert_eq!(checkpoint.position.0, 10, "the build's batches were lost");
    assert_eq!(seen(&conn).unwrap(), (10, 10));
}
