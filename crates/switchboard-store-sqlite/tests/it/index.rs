//! The lazily written stream index: stream reads agree with the global log whatever part of a
//! stream is indexed and whatever part is still in the tail, also across a restart.

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
    for stream in ["s-0", "s-1", "s-2"] {
        check(&store, stream, &all).await;
    }
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
