//! The directory lock: one process writes a store at a time, and opening waits a little for a
//! holder that is letting go.

use std::fs::File;
use std::time::{Duration, Instant};

use switchboard_store_sqlite::{OpenError, SqliteOptions, SqliteStore};

use crate::reopen;

/// The directory's lock file, locked on a descriptor of its own: what another process (or a
/// child that inherited the store's descriptor) holding the directory looks like from here.
fn hold_lock(dir: &std::path::Path) -> File {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .unwrap();
    file.try_lock().unwrap();
    file
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let wait = Duration::from_millis(100);
    let started = Instant::now();
    let second = SqliteStore::open(
        dir.path(),
        SqliteOptions {
            lock_wait: wait,
            ..SqliteOptions::default()
        },
    );
    assert!(matches!(second, Err(OpenError::Locked(_))), "{second:?}");
    assert!(started.elapsed() >= wait, "refused without waiting");
    drop(first);
    reopen(dir.path(), SqliteOptions::default()); // the lock is released on drop
}

#[test]
fn a_directory_held_for_a_moment_opens_once_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let holder = hold_lock(dir.path());
    // The holder lets go a little after the store starts asking, well within `lock_wait`.
    let letting_go = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        let before_unlock = Instant::now();
        holder.unlock().unwrap();
        before_unlock
    });
    let opened = SqliteStore::open(
        dir.path(),
        SqliteOptions {
            lock_wait: Duration::from_secs(60),
            ..SqliteOptions::default()
        },
    );
    let returned = Instant::now();
    let before_unlock = letting_go.join().unwrap();
    let store = opened.expect("open once the holder let go");
    assert!(
        returned > before_unlock,
        "opened while the lock was still held"
    );
    drop(store);
}

#[test]
fn a_holder_that_stays_is_named_after_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let _holder = hold_lock(dir.path());
    let refused = SqliteStore::open(
        dir.path(),
        SqliteOptions {
            lock_wait: Duration::from_millis(50),
            ..SqliteOptions::default()
        },
    );
    let Err(OpenError::Locked(path)) = refused else {
        panic!("expected Locked, got {refused:?}");
    };
    assert_eq!(path, dir.path());
}
