//! Tests of the embedded store: the shared conformance suite, plus what only this backend has
//! (tamper evidence on the file, the immutability triggers, crash safety, the directory lock).

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod blobs;
mod conformance;
mod crash;
mod index;
mod lock;
mod read_only;
mod secrets;
mod tamper;

use std::path::Path;
use std::time::{Duration, Instant};

use switchboard_store_sqlite::{OpenError, SqliteOptions, SqliteStore};

/// Opens the store in `dir` again after the test dropped its handle. The crash tests spawn
/// processes: a child forked while this test's store was open holds its lock file until it
/// executes (the descriptor is close-on-exec), so the lock may outlive the drop for that long.
/// The store waits for that itself (`lock_wait`, 2 s); this waits longer, for a machine so busy
/// that a child takes more than that to reach its program.
pub(crate) fn reopen(dir: &Path, options: SqliteOptions) -> SqliteStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SqliteStore::open(dir, options.clone()) {
            Err(OpenError::Locked(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            opened => return opened.expect("reopen the store"),
        }
    }
}
