//! The shared conformance suite, run against a fresh embedded store per test, twice: with the
//! default stream-index lag (stream reads come from the unindexed tail), and with a lag of 3
//! events (nearly every stream read combines the index and the tail).

use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;

async fn open() -> Option<(SqliteStore, TempDir)> {
    open_with(SqliteOptions::default().index_lag)
}

async fn open_eagerly_indexed() -> Option<(SqliteStore, TempDir)> {
    open_with(3)
}

fn open_with(index_lag: u64) -> Option<(SqliteStore, TempDir)> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = SqliteOptions {
        max_append_bytes: 64 * 1024,
        index_lag,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path(), options).expect("open store");
    Some((store, dir))
}

switchboard_store::conformance_suite!(open);

mod eagerly_indexed {
    use super::open_eagerly_indexed;

    switchboard_store::conformance_suite!(open_eagerly_indexed);
}
