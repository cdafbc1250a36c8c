//! SQLite plumbing shared by the embedded event store and the read models.
//!
//! Both keep their databases in WAL mode with one writing connection. SQLite's default is to
//! copy the write-ahead log back into the database file (a checkpoint) inside whichever commit
//! pushes the log past 1,000 pages, so that one commit in a few hundred takes tens of
//! milliseconds of I/O and fsyncs instead of a fraction of one. [`Checkpointer`] moves that work
//! to a thread and connection of its own; the writer turns automatic checkpoints off
//! ([`Checkpointer::spawn`] does it) and nudges the checkpointer after its commits.

use std::path::PathBuf;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Copies a database's write-ahead log into the database file on a thread and connection of its
/// own, at most once per interval, so that commits never pay for it. Checkpoints are `PASSIVE`:
/// they never block the writer or readers. When the checkpointer stops ([`Checkpointer::stop`],
/// or the writer drops it) it folds the whole log into the database and truncates it.
#[derive(Debug)]
pub struct Checkpointer {
    nudges: SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Turns off `writer`'s automatic checkpoints and starts checkpointing the database at
    /// `path` (the writer's) after nudges, at most once per `every`. `name` names the thread.
    pub fn spawn(
        writer: &Connection,
        path: PathBuf,
        name: &str,
        every: Duration,
    ) -> std::io::Result<Checkpointer> {
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(std::io::Error::other)?;
        let (nudges, nudged) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name(format!("{name}-checkpointer"))
            .spawn(move || {
                let conn = match Connection::open(&path) {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "checkpointer cannot open the database; its log will grow");
                        return;
                    }
                };
                if let Err(e) = conn.busy_timeout(Duration::from_secs(5)) {
                    tracing::warn!(error = %e, "checkpointer busy timeout not set");
                }
                'nudged: while nudged.recv().is_ok() {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(path = %path.display(), error = %e, "checkpoint failed; will retry");
                    }
                    // Rate limit: nudges that come meanwhile are covered by the next checkpoint.
                    // A stopping writer ends the wait at once.
                    let next = Instant::now() + every;
                    loop {
                        match nudged.recv_timeout(next.saturating_duration_since(Instant::now())) {
                            Ok(()) => {}
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => break 'nudged,
                        }
                    }
                }
                // The writer has stopped: fold the whole log into the database before closing.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                    tracing::warn!(path = %path.display(), error = %e, "final checkpoint failed");
                }
            })?;
        Ok(Checkpointer { nudges, thread })
    }

    /// Tells the checkpointer the writer committed: a checkpoint is due.
    pub fn nudge(&self) {
        // A full channel means a checkpoint is already due.
        let _ = self.nudges.try_send(());
    }

    /// Stops the checkpointer after its final checkpoint, and waits for it. Blocks: from async
    /// code, call it on the blocking pool.
    pub fn stop(self) {
        drop(self.nudges);
        if self.thread.join().is_err() {
            tracing::error!("checkpointer thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_frames(conn: &Connection) -> i64 {
        // (busy, frames in the log, frames checkpointed) of a no-op passive checkpoint.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap()
    }

    #[test]
    fn commits_do_not_checkpoint_and_stop_truncates_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB);")
            .unwrap();
        let checkpointer =
            Checkpointer::spawn(&writer, path.clone(), "test", Duration::from_secs(3600)).unwrap();
        // Far more than the 1,000 pages after which SQLite would checkpoint on its own.
        for _ in 0..1_500 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(4096))", [])
                .unwrap();
        }
        let autocheckpoint: i64 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(autocheckpoint, 0);
        let wal = dir.path().join("db.sqlite3-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 1_500 * 4096);
        checkpointer.stop();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1_500);
        assert_eq!(wal_frames(&writer), 0);
    }
}
