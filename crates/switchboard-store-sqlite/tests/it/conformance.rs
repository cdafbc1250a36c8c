//! The shared conformance suite, run against a fresh embedded store per test.

use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;

async fn open() -> Option<(SqliteStore, TempDir)> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = SqliteOptions {
        max_append_bytes: 64 * 1024,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path(), options).expect("open store");
    Some((store, dir))
}

switchboard_store::conformance_suite!(open);
