//! The lazily written stream index: stream reads agree with the global log whatever part of a
//! stream is indexed and whatever part is still in the tail (found through the writer's map of
//! it, or scanned by a read-only handle), also across a restart and while appends and indexing
//! race the reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use switchboard_store::conformance::event;
use switchboard_store::{
    Direction, EventStore, ExpectedVersion, Position, RecordedEvent, StreamFrom,
};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};

use crate::reopen;

async fn everything(store: &SqliteStore) -> Vec<RecordedEvent> {
    store.read_all(Position::START, 10_000).await.unwrap()
}

/// Reads `stream` page by page in both directions and checks it against the global log.
async fn check(store: &SqliteStore, stream: &str, all: &[RecordedEvent]) {
    let expected: Vec<&RecordedEvent> = all.iter().filter(|e| e.stream == stream).collect();
    let mut forwards = Vec::new();
    loop {
        let from = StreamFrom::Version(forwards.len() as u64);
        let page = store
            .read_stream(stream, Direction::Forwards, from, 4)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        forwards.extend(page);
    }
    assert_eq!(
        forwards.iter().collect::<Vec<_>>(),
        expected,
        "forwards, {stream}"
    );
    let mut backwards = store
        .read_stream(stream, Direction::Backwards, StreamFrom::End, 10_000)
        .await
        .unwrap();
    backwards.reverse();
    assert_eq!(
        backwards.iter().collect::<Vec<_>>(),
        expected,
        "backwards, {stream}"
    );
    let middle = expected.len() as u64 / 2;
    let down = store
        .read_stream(stream, Direction::Backwards, StreamFrom::Version(middle), 3)
        .await
        .unwrap();
    let versions: Vec<u64> = down.iter().map(|e| e.stream_version).collect();
    assert_eq!(
        versions,
        (middle.saturating_sub(2)..=middle)
            .rev()
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn stream_reads_agree_with_the_log_across_index_and_tail() {
    let dir = tempfile::tempdir().unwrap();
    let options = || SqliteOptions {
        index_lag: 7,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path(), options()).unwrap();
    for i in 0..120 {
        let stream = format!("s-{}", i % 3);
        let batch = (0..(1 + i % 4))
            .map(|n| event(&format!("{i}-{n}")))
            .collect();
        store
            .append(&stream, ExpectedVersion::Any, batch)
            .await
            .unwrap();
    }
    let all = everything(&store).await;
    // A read-only handle has no map of the tail: it scans it, with the same answers.
    let scanning = SqliteStore::open_read_only(dir.path()).unwrap();
    for stream in ["s-0", "s-1", "s-2"] {
        check(&store, stream, &all).await;
        check(&scanning, stream, &all).await;
    }
    drop(scanning);
    drop(store);
    // Reopened with a lag that leaves a long tail: the persisted index and the tail still agree.
    let store = reopen(
        dir.path(),
        SqliteOptions {
            index_lag: 1_000,
            ..SqliteOptions::default()
        },
    );
    for i in 0..10 {
        store
            .append(
                "s-1",
                ExpectedVersion::Any,
                vec![event(&format!("late-{i}"))],
            )
            .await
            .unwrap();
    }
    let all = everything(&store).await;
    for stream in ["s-0", "s-1", "s-2"] {
        check(&store, stream, &all).await;
    }
}

/// Checks that `read` holds versions `from`, `from + 1`, ... (or, backwards, down from its first).
fn gapless(read: &[RecordedEvent], stream: &str, direction: Direction) {
    for pair in read.windows(2) {
        let step = match direction {
            Direction::Forwards => pair[0].stream_version + 1 == pair[1].stream_version,
            Direction::Backwards => pair[0].stream_version == pair[1].stream_version + 1,
        };
        assert!(
            step,
            "{stream} {direction:?}: a gap or a repeat in {read:?}"
        );
        assert!(pair[0].position < pair[1].position || direction == Direction::Backwards);
    }
    assert!(read.iter().all(|e| e.stream == stream));
}

/// Reads race appends and indexing (every five events): each read is a run of versions without
/// a gap, and holds every event acknowledged before it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_reads_racing_appends_and_indexing_miss_nothing() {
    const STREAMS: usize = 3;
    const APPENDS: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        dir.path(),
        SqliteOptions {
            index_lag: 5,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..STREAMS).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    // One writer per stream, so its acknowledged length only grows, and one on streams of its
    // own, so commits mix streams.
    for s in 0..=STREAMS {
        let (store, acked) = (store.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..APPENDS {
                let stream = if s == STREAMS {
                    format!("other-{}", i % 7)
                } else {
                    format!("s-{s}")
                };
                let batch = (0..1 + i % 3)
                    .map(|n| event(&format!("{s}-{i}-{n}")))
                    .collect();
                let written = store
                    .append(&stream, ExpectedVersion::Any, batch)
                    .await
                    .unwrap();
                if let Some(acked) = acked.get(s) {
                    acked.store(written.stream_version + 1, Ordering::SeqCst);
                }
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..3 {
        let (store, acked, done) = (store.clone(), acked.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) || reads < 10 {
                let s = (reads + r) % STREAMS;
                let stream = format!("s-{s}");
                let before = acked[s].load(Ordering::SeqCst);
                let forwards = store
                    .read_stream(&stream, Direction::Forwards, StreamFrom::Start, 100_000)
                    .await
                    .unwrap();
                gapless(&forwards, &stream, Direction::Forwards);
                assert_eq!(forwards.first().map_or(0, |e| e.stream_version), 0);
                assert!(
                    forwards.len() as u64 >= before,
                    "{stream}: missed acknowledged events"
                );
                let backwards = store
                    .read_stream(&stream, Direction::Backwards, StreamFrom::End, 4)
                    .await
                    .unwrap();
                gapless(&backwards, &stream, Direction::Backwards);
                let last = backwards.first().map_or(0, |e| e.stream_version + 1);
                assert!(last >= before, "{stream}: the end was missed backwards");
                let middle = before / 2;
                let page = store
                    .read_stream(&stream, Direction::Forwards, StreamFrom::Version(middle), 6)
                    .await
                    .unwrap();
                gapless(&page, &stream, Direction::Forwards);
                if before > middle {
                    assert_eq!(page.first().map(|e| e.stream_version), Some(middle));
                    assert!(page.len() as u64 >= (before - middle).min(6));
                }
                reads += 1;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    let all = everything(&store).await;
    for s in 0..STREAMS {
        check(&store, &format!("s-{s}"), &all).await;
    }
}

/// A saved cursor is there after the store is closed and opened again.
#[tokio::test]
async fn cursors_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let index = store.write_index();
    index
        .save_cursor("imap-a", b"first".to_vec())
        .await
        .unwrap();
    index
        .save_cursor("imap-a", b"second".to_vec())
        .await
        .unwrap();
    drop(index);
    drop(store);
    let store = reopen(dir.path(), SqliteOptions::default());
    assert_eq!(
        store.write_index().cursor("imap-a").await.unwrap(),
        Some(b"second".to_vec())
    );
}
