//! A read-only handle beside the writing one: what CLI tools use while the server runs.

use switchboard_store::conformance::event;
use switchboard_store::{Direction, EventStore, ExpectedVersion, Position, StoreError, StreamFrom};
use switchboard_store_sqlite::{OpenError, SqliteOptions, SqliteStore};

/// Opening for writing beside the writer: refused at once.
fn second_writer(dir: &std::path::Path) -> Result<SqliteStore, OpenError> {
    SqliteStore::open(
        dir,
        SqliteOptions {
            lock_wait: std::time::Duration::ZERO,
            ..SqliteOptions::default()
        },
    )
}

#[tokio::test]
async fn a_read_only_handle_reads_beside_the_writer_and_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        SqliteStore::open_read_only(dir.path()).is_err(),
        "no store yet"
    );
    let writer = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    for i in 0..5u64 {
        writer
            .append("s-1", ExpectedVersion::Any, vec![event(&format!("e{i}"))])
            .await
            .unwrap();
    }
    // The directory is locked for writers, yet a reader gets in.
    let refused = second_writer(dir.path());
    assert!(matches!(refused, Err(OpenError::Locked(_))), "{refused:?}");
    let reader = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.head().await.unwrap(), Position(5));
    let all = reader.read_all(Position::START, 100).await.unwrap();
    assert_eq!(all, writer.read_all(Position::START, 100).await.unwrap());
    let stream = reader
        .read_stream("s-1", Direction::Forwards, StreamFrom::Start, 100)
        .await
        .unwrap();
    assert_eq!(stream.len(), 5);
    let refused = reader
        .append("s-1", ExpectedVersion::Any, vec![event("nope")])
        .await;
    assert!(matches!(refused, Err(StoreError::Closed)), "{refused:?}");
    // Dropping the reader leaves the writer's lock alone.
    drop(reader);
    let refused = second_writer(dir.path());
    assert!(matches!(refused, Err(OpenError::Locked(_))), "{refused:?}");
    assert_eq!(writer.head().await.unwrap(), Position(5));
}
