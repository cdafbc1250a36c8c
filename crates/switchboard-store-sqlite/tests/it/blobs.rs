//! The embedded store's blobs: in the event database, written with the appends that reference
//! them; what earlier versions kept as files; a read-only handle beside the writer.

use switchboard_store::blob::{Blob, blob_hash};
use switchboard_store::conformance::event;
use switchboard_store::{EventStore, ExpectedVersion, StoreError};
use switchboard_store_sqlite::{BLOB_DIR, OpenError, SqliteOptions, SqliteStore};

use crate::reopen;

#[tokio::test]
async fn blobs_outlive_the_store_and_are_read_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let original = Blob::new(b"From: ada@example.org\r\n\r\nHello".to_vec());
    let attachment = Blob::new((0..300_000u32).map(|i| (i % 253) as u8).collect());
    {
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        store
            .append_with_blobs(
                "conversation-1",
                ExpectedVersion::NoStream,
                vec![event("MessageReceived")],
                vec![original.clone(), attachment.clone()],
            )
            .await
            .unwrap();
    }
    let store = reopen(dir.path(), SqliteOptions::default());
    assert_eq!(
        store
            .blobs()
            .get(attachment.sha256())
            .await
            .unwrap()
            .as_deref(),
        Some(attachment.bytes())
    );
    let reader = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(
        reader
            .blobs()
            .get(original.sha256())
            .await
            .unwrap()
            .as_deref(),
        Some(original.bytes())
    );
    let refused = reader.blobs().put(b"nope".to_vec()).await;
    assert!(matches!(refused, Err(StoreError::Closed)), "{refused:?}");
    // What the writer stores afterwards, a reader opened afterwards reads.
    let later = store.blobs().put(b"later".to_vec()).await.unwrap();
    let reader = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(
        reader.blobs().get(&later).await.unwrap(),
        Some(b"later".to_vec())
    );
}

#[tokio::test]
async fn a_refused_append_leaves_none_of_its_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    store
        .append(
            "conversation-1",
            ExpectedVersion::NoStream,
            vec![event("a")],
        )
        .await
        .unwrap();
    // Refused for its version, alone and inside a batch of concurrent appends that land.
    for single in [true, false] {
        let refused_blob = Blob::new(format!("refused {single}").into_bytes());
        let landed_blob = Blob::new(format!("landed {single}").into_bytes());
        let refused = store.append_with_blobs(
            "conversation-1",
            ExpectedVersion::NoStream,
            vec![event("b")],
            vec![refused_blob.clone()],
        );
        let landed = async {
            if single {
                return Ok(None);
            }
            store
                .append_with_blobs(
                    "conversation-2",
                    ExpectedVersion::NoStream,
                    vec![event("c"), event("d")],
                    vec![landed_blob.clone()],
                )
                .await
                .map(Some)
        };
        let (refused, landed) = tokio::join!(refused, landed);
        assert!(
            matches!(refused, Err(StoreError::WrongExpectedVersion { .. })),
            "{refused:?}"
        );
        assert_eq!(
            store.blobs().get(refused_blob.sha256()).await.unwrap(),
            None
        );
        if landed.unwrap().is_some() {
            assert_eq!(
                store
                    .blobs()
                    .get(landed_blob.sha256())
                    .await
                    .unwrap()
                    .as_deref(),
                Some(landed_blob.bytes())
            );
        }
    }
}

#[tokio::test]
async fn blobs_that_earlier_versions_kept_as_files_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = b"an attachment from before the blob table".to_vec();
    let name = blob_hash(&bytes);
    let folder = dir.path().join(BLOB_DIR).join(&name[..2]);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(&name), &bytes).unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    assert_eq!(store.blobs().get(&name).await.unwrap(), Some(bytes.clone()));
    // Storing the same bytes again keeps one readable copy.
    assert_eq!(store.blobs().put(bytes.clone()).await.unwrap(), name);
    assert_eq!(store.blobs().get(&name).await.unwrap(), Some(bytes));
    assert_eq!(
        store.blobs().get(&blob_hash(b"absent")).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_read_only_handle_on_a_database_without_the_blob_table_reads_the_files() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    // As an earlier version left it: no table, blobs as files.
    let conn = rusqlite::Connection::open(dir.path().join("events.sqlite3")).unwrap();
    conn.execute_batch("DROP TABLE blobs; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);
    let bytes = b"kept as a file".to_vec();
    let name = blob_hash(&bytes);
    let folder = dir.path().join(BLOB_DIR).join(&name[..2]);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(&name), &bytes).unwrap();
    let reader = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.blobs().get(&name).await.unwrap(), Some(bytes));
    assert_eq!(
        reader.blobs().get(&blob_hash(b"absent")).await.unwrap(),
        None
    );
}

/// An attachment that stands base64-encoded in its original message is kept as a reference
/// to that range, not a second copy; a damaged reference, or one whose original is gone, reads
/// as corrupt, never as other bytes or as deleted.
#[tokio::test]
async fn an_attachment_is_kept_as_its_range_of_the_original_and_checked_when_read() {
    use switchboard_store::blob::{PartEncoding, Within};
    let dir = tempfile::tempdir().unwrap();
    let attachment: Vec<u8> = (0..3_000u32).map(|i| (i % 241) as u8).collect();
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&attachment)
    };
    let head = b"Content-Transfer-Encoding: base64\r\n\r\n";
    let original = Blob::new([head.as_slice(), encoded.as_bytes(), b"\r\n"].concat());
    let part = Blob::part_of(
        attachment.clone(),
        &original,
        Within {
            source: String::new(),
            start: head.len() as u64,
            end: (head.len() + encoded.len()) as u64,
            encoding: PartEncoding::Base64,
        },
    );
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    store
        .append_with_blobs(
            "conversation-1",
            ExpectedVersion::NoStream,
            vec![event("MessageReceived")],
            vec![part.clone(), original.clone()],
        )
        .await
        .unwrap();
    assert_eq!(
        store.blobs().get(part.sha256()).await.unwrap(),
        Some(attachment)
    );
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("events.sqlite3")).unwrap();
    let whole: i64 = conn
        .query_row("SELECT count(*) FROM blobs", [], |row| row.get(0))
        .unwrap();
    assert_eq!(whole, 1, "only the original is stored whole");
    conn.execute("UPDATE blob_parts SET end_byte = end_byte - 4", [])
        .unwrap();
    drop(conn);
    let corrupt = |damage: &str| {
        // Each damage on top of the last (the last one puts the start back).
        let conn = rusqlite::Connection::open(dir.path().join("events.sqlite3")).unwrap();
        conn.execute_batch(damage).unwrap();
    };
    let expect_corrupt = |store: &SqliteStore, why: &str| {
        let store = store.clone();
        let name = part.sha256().to_owned();
        let why = why.to_owned();
        async move {
            match store.blobs().get(&name).await {
                Err(StoreError::CorruptBlob { sha256, reason }) => {
                    assert_eq!(sha256, name);
                    assert!(reason.contains(&why), "{reason}");
                }
                other => panic!("expected a corrupt blob ({why}), got {other:?}"),
            }
        }
    };
    corrupt("UPDATE blob_parts SET end_byte = end_byte - 4");
    let store = reopen(dir.path(), SqliteOptions::default());
    expect_corrupt(&store, "does not decode to it").await;
    drop(store);
    corrupt("UPDATE blob_parts SET end_byte = end_byte + 1000");
    let store = reopen(dir.path(), SqliteOptions::default());
    expect_corrupt(&store, "shorter than its range").await;
    drop(store);
    corrupt("UPDATE blob_parts SET start_byte = -1");
    let store = reopen(dir.path(), SqliteOptions::default());
    expect_corrupt(&store, "part row is damaged").await;
    drop(store);
    corrupt(&format!(
        "UPDATE blob_parts SET start_byte = {}; DELETE FROM blobs",
        head.len()
    ));
    let store = reopen(dir.path(), SqliteOptions::default());
    expect_corrupt(&store, "is missing").await;
}

/// A database a newer version wrote (a schema this one does not know) is refused with a message
/// that says so, rather than read without what that version stores.
#[tokio::test]
async fn a_database_of_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("events.sqlite3")).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    // A crash test's child may still hold the directory on a busy machine: wait for it.
    let options = SqliteOptions {
        lock_wait: std::time::Duration::from_secs(30),
        ..SqliteOptions::default()
    };
    let refused = SqliteStore::open(dir.path(), options).expect_err("refused");
    assert!(
        matches!(refused, OpenError::NewerSchema { version: 99, .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("newer Switchboard"),
        "{refused}"
    );
    // A tool's read-only handle refuses it too.
    let refused = SqliteStore::open_read_only(dir.path()).expect_err("refused");
    assert!(
        matches!(refused, OpenError::NewerSchema { version: 99, .. }),
        "{refused}"
    );
}
