//! Tamper evidence and immutability: history altered behind the store's back is caught by
//! `verify`, and the database itself refuses to change or remove events.

use std::path::Path;

use rusqlite::Connection;
use switchboard_store::chain::{self, Verification};
use switchboard_store::conformance::event;
use switchboard_store::{EventStore, ExpectedVersion, Position};
use switchboard_store_sqlite::{DATABASE_FILE, SqliteOptions, SqliteStore};
use tempfile::TempDir;

use crate::reopen;

/// A closed store holding 20 events over 3 streams.
async fn written_store() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    for i in 0..20 {
        store
            .append(
                &format!("stream-{}", i % 3),
                ExpectedVersion::Any,
                vec![event(&i.to_string())],
            )
            .await
            .unwrap();
    }
    drop(store);
    dir
}

/// A raw connection with the immutability triggers removed, as an attacker with file access would.
fn tamper(dir: &Path) -> Connection {
    let conn = Connection::open(dir.join(DATABASE_FILE)).unwrap();
    conn.execute_batch("DROP TRIGGER events_are_immutable; DROP TRIGGER events_are_permanent;")
        .unwrap();
    conn
}

async fn verify(dir: &Path) -> Verification {
    let store = reopen(dir, SqliteOptions::default());
    chain::verify(&store).await.unwrap()
}

fn broken_at(verification: Verification) -> u64 {
    match verification {
        Verification::Broken { position, .. } => position.0,
        intact => panic!("tampering went unnoticed: {intact:?}"),
    }
}

#[tokio::test]
async fn untouched_history_verifies() {
    let dir = written_store().await;
    match verify(dir.path()).await {
        Verification::Intact { events, head_hash } => {
            assert_eq!(events, 20);
            assert_eq!(head_hash.len(), 64);
        }
        broken => panic!("{broken:?}"),
    }
}

#[tokio::test]
async fn altered_payload_is_caught_at_its_position() {
    let dir = written_store().await;
    tamper(dir.path())
        .execute(
            "UPDATE events SET payload = CAST('{\"label\":\"forged\"}' AS BLOB) WHERE position = 7",
            [],
        )
        .unwrap();
    assert_eq!(broken_at(verify(dir.path()).await), 7);
}

#[tokio::test]
async fn altered_metadata_with_recomputed_hash_is_caught_at_the_next_event() {
    let dir = written_store().await;
    let conn = tamper(dir.path());
    let store = reopen(dir.path(), SqliteOptions::default());
    let mut forged = store.read_all(Position(11), 1).await.unwrap().remove(0);
    let previous = store
        .read_all(Position(10), 1)
        .await
        .unwrap()
        .remove(0)
        .hash;
    drop(store);
    forged.metadata = br#"{"actor":{"kind":"user","id":"someone-else"}}"#.to_vec();
    let hash = forged.canonical().hash(&previous);
    conn.execute(
        "UPDATE events SET metadata = ?1, hash = ?2 WHERE position = 12",
        rusqlite::params![forged.metadata, hash],
    )
    .unwrap();
    assert_eq!(broken_at(verify(dir.path()).await), 13);
}

#[tokio::test]
async fn deleted_event_is_caught_where_it_was() {
    let dir = written_store().await;
    tamper(dir.path())
        .execute("DELETE FROM events WHERE position = 5", [])
        .unwrap();
    assert_eq!(broken_at(verify(dir.path()).await), 5);
}

#[tokio::test]
async fn swapped_events_are_caught_at_the_first() {
    let dir = written_store().await;
    let conn = tamper(dir.path());
    // Swap everything but the position (and so the global order) of events 3 and 8.
    conn.execute_batch(
        "UPDATE events SET position = -3 WHERE position = 3;
         UPDATE events SET position = 3 WHERE position = 8;
         UPDATE events SET position = 8 WHERE position = -3;",
    )
    .unwrap();
    assert_eq!(broken_at(verify(dir.path()).await), 3);
}

#[tokio::test]
async fn the_database_refuses_update_and_delete() {
    let dir = written_store().await;
    let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
    let update = conn.execute("UPDATE events SET payload = x'00' WHERE position = 1", []);
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = conn.execute("DELETE FROM events WHERE position = 1", []);
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    assert!(matches!(
        verify(dir.path()).await,
        Verification::Intact { events: 20, .. }
    ));
}

#[tokio::test]
async fn reopening_continues_the_chain() {
    let dir = written_store().await;
    let store = reopen(dir.path(), SqliteOptions::default());
    assert_eq!(store.head().await.unwrap(), Position(20));
    let r = store
        .append("stream-0", ExpectedVersion::Exact(6), vec![event("after")])
        .await
        .unwrap();
    assert_eq!(r.first_position, Position(21));
    drop(store);
    assert!(matches!(
        verify(dir.path()).await,
        Verification::Intact { events: 21, .. }
    ));
}
