//! A deleted secret (a destroyed data subject's key) leaves no copy of its bytes in the secrets
//! file or its write-ahead log.

use switchboard_store::EventStore;
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        name.starts_with("secrets.sqlite3")
            && std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle)
    })
}

#[tokio::test]
async fn a_deleted_secret_leaves_no_bytes_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let secrets = store.secrets();
    let needle: Vec<u8> = b"subject-key:".iter().copied().chain(0..=255u8).collect();
    for i in 0..20 {
        secrets
            .put(&format!("other-{i}"), vec![i; 64])
            .await
            .unwrap();
    }
    secrets
        .put_if_absent("subject-1", needle.clone())
        .await
        .unwrap();
    assert!(
        files_contain(dir.path(), &needle),
        "the test cannot see the bytes"
    );
    assert!(secrets.delete("subject-1").await.unwrap());
    assert!(
        !files_contain(dir.path(), &needle),
        "the deleted secret's bytes are still in the files"
    );
    assert_eq!(secrets.get("other-3").await.unwrap(), Some(vec![3; 64]));
}
