//! The embedded store's blobs: in the event database, written with the appends that reference
//! them; what earlier versions kept as files; a read-only handle beside the writer.

use switchboard_store::blob::{Blob, blob_hash};
use switchboard_store::conformance::event;
use switchboard_store::{EventStore, ExpectedVersion, Position, StoreError};
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

/// How many times `needle` occurs in the event database and its write-ahead log.
fn occurrences_in_database(dir: &std::path::Path, needle: &[u8]) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("events.sqlite3"))
        })
        .map(|path| {
            std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .filter(|window| *window == needle)
                .count()
        })
        .sum()
}

/// Bytes made of `marker` followed by a counter, again and again, `records` times: any page or
/// piece of a page of them holds the marker.
fn marked(marker: &str, records: usize) -> Vec<u8> {
    (0..records)
        .flat_map(|i| format!("{marker}{i:06}").into_bytes())
        .collect()
}

/// A deleted blob leaves no copy of its bytes in the database file or its write-ahead log once
/// the delete returns: small (on a page with other rows) or large (on pages of its own), and a
/// source whose part is kept whole.
#[tokio::test]
async fn a_deleted_blob_leaves_no_bytes_behind() {
    use switchboard_store::blob::{PartEncoding, Within};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let blobs = store.blobs();
    let small = Blob::new(marked("<forget-small>", 4));
    let large = Blob::new(marked("<forget-large>", 20_000));
    let kept = Blob::new(b"another person's attachment".to_vec());
    let source = Blob::new([marked("<forget-source>", 50), kept.bytes().to_vec()].concat());
    let end = source.bytes().len() as u64;
    let part = Blob::part_of(
        kept.bytes().to_vec(),
        &source,
        Within {
            source: String::new(),
            start: end - kept.bytes().len() as u64,
            end,
            encoding: PartEncoding::Identity,
        },
    );
    assert!(part.within().is_some());
    let others: Vec<Blob> = (0..50)
        .map(|i| Blob::new(format!("someone else's blob {i}").into_bytes()))
        .collect();
    blobs.put_all(others.clone()).await.unwrap();
    store
        .append_with_blobs(
            "conversation-1",
            ExpectedVersion::NoStream,
            vec![event("MessageReceived")],
            vec![small.clone(), large.clone(), source.clone(), part.clone()],
        )
        .await
        .unwrap();
    blobs.put_all(others[..10].to_vec()).await.unwrap();
    for marker in ["<forget-small>", "<forget-large>", "<forget-source>"] {
        assert!(
            occurrences_in_database(dir.path(), marker.as_bytes()) > 0,
            "the test cannot see {marker}"
        );
    }
    let names = [small.sha256(), large.sha256(), source.sha256()].map(str::to_owned);
    assert_eq!(blobs.delete(&names).await.unwrap(), 3);
    for marker in ["<forget-small>", "<forget-large>", "<forget-source>"] {
        assert_eq!(
            occurrences_in_database(dir.path(), marker.as_bytes()),
            0,
            "{marker} is still in the files"
        );
    }
    assert_eq!(
        blobs.get(part.sha256()).await.unwrap().as_deref(),
        Some(kept.bytes())
    );
    for other in &others {
        assert_eq!(
            blobs.get(other.sha256()).await.unwrap().as_deref(),
            Some(other.bytes())
        );
    }
}

/// A delete among a stream of appends (the writer rarely idle, readers reading) empties the log
/// all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_among_appends_leaves_no_bytes_behind() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let erased = Blob::new(marked("<forget-busy>", 5_000));
    store.blobs().put_all(vec![erased.clone()]).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (store, stop, appended) = (store.clone(), stop.clone(), appended.clone());
            tokio::spawn(async move {
                let stream = format!("busy-{w}");
                let mut expected = ExpectedVersion::NoStream;
                while !stop.load(Ordering::Relaxed) {
                    let blob = Blob::new(format!("busy {w} {expected:?}").into_bytes());
                    let done = store
                        .append_with_blobs(&stream, expected, vec![event("e")], vec![blob])
                        .await
                        .unwrap();
                    let _ = store.read_all(Position::START, 50).await.unwrap();
                    expected = ExpectedVersion::Exact(done.stream_version);
                    appended.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Under way before the delete.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while appended.load(Ordering::Relaxed) < 100 {
        assert!(std::time::Instant::now() < deadline, "appends do not go on");
        tokio::task::yield_now().await;
    }
    assert_eq!(
        store
            .blobs()
            .delete(&[erased.sha256().to_owned()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(occurrences_in_database(dir.path(), b"<forget-busy>"), 0);
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
}

/// Blobs that earlier versions kept as files are deleted from the disk too, counted once when
/// the table has them as well; a read-only handle deletes nothing.
#[tokio::test]
async fn deleting_removes_the_files_of_earlier_versions() {
    let dir = tempfile::tempdir().unwrap();
    let file_only = b"an attachment kept as a file".to_vec();
    let both = b"kept as a file and stored again".to_vec();
    let path = |bytes: &[u8]| {
        let name = blob_hash(bytes);
        dir.path().join(BLOB_DIR).join(&name[..2]).join(name)
    };
    for bytes in [&file_only, &both] {
        std::fs::create_dir_all(path(bytes).parent().unwrap()).unwrap();
        std::fs::write(path(bytes), bytes).unwrap();
    }
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    store.blobs().put(both.clone()).await.unwrap();
    let reader = SqliteStore::open_read_only(dir.path()).unwrap();
    let names = [blob_hash(&file_only), blob_hash(&both)];
    let refused = reader.blobs().delete(&names).await;
    assert!(matches!(refused, Err(StoreError::Closed)), "{refused:?}");
    assert!(path(&file_only).is_file());
    assert_eq!(store.blobs().delete(&names).await.unwrap(), 2);
    for bytes in [&file_only, &both] {
        assert!(!path(bytes).exists());
        assert_eq!(store.blobs().get(&blob_hash(bytes)).await.unwrap(), None);
    }
    assert_eq!(store.blobs().delete(&names).await.unwrap(), 0);
}
