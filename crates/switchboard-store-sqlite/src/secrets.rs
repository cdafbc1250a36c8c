//! Sealed secrets of the embedded store: a SQLite file of its own beside the log
//! (`secrets.sqlite3`), written with `synchronous = FULL` (nothing in the log can bring a lost
//! password back), one connection behind a mutex. The bytes are sealed before they get here
//! (see [`switchboard_store::secret`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use switchboard_store::{SecretStore, StoreError};

/// The file name of the secrets inside the data directory.
pub const SECRETS_FILE: &str = "secrets.sqlite3";

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA secure_delete = ON;
PRAGMA busy_timeout = 5000;
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    stored_at INTEGER NOT NULL DEFAULT (unixepoch())
);
";

/// The embedded store's [`SecretStore`].
#[derive(Debug, Clone)]
pub struct SqliteSecrets {
    /// `None`: opened read-only and there is no file yet, so there are no secrets.
    conn: Option<Arc<Mutex<Connection>>>,
    writable: bool,
}

impl SqliteSecrets {
    /// Opens (creating if needed) the secrets file in `dir`.
    pub fn open(dir: &Path) -> rusqlite::Result<SqliteSecrets> {
        let conn = Connection::open(dir.join(SECRETS_FILE))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteSecrets {
            conn: Some(Arc::new(Mutex::new(conn))),
            writable: true,
        })
    }

    /// Opens the secrets file in `dir` for reading only, beside a running server; writes fail
    /// with [`StoreError::Closed`].
    pub fn open_read_only(dir: &Path) -> rusqlite::Result<SqliteSecrets> {
        let path = dir.join(SECRETS_FILE);
        let conn = if path.is_file() {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            Some(Arc::new(Mutex::new(conn)))
        } else {
            None
        };
        Ok(SqliteSecrets {
            conn,
            writable: false,
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        write: bool,
        absent: T,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        if write && !self.writable {
            return Err(StoreError::Closed);
        }
        let Some(conn) = self.conn.clone() else {
            return Ok(absent);
        };
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            work(&conn)
        })
        .await
        .map_err(StoreError::backend)?
        .map_err(StoreError::backend)
    }
}

/// Copies the write-ahead log into the database and empties it, so that a deleted value leaves
/// no earlier image of its page there (see [`crate::schema::empty_log`]). A reader in another
/// process (a maintenance command) can hold the checkpoint back; it is retried for up to five
/// seconds, then the delete fails rather than report a value gone that is not.
fn truncate_log(conn: &Connection) -> rusqlite::Result<()> {
    crate::schema::empty_log(conn, "secrets'", std::time::Duration::from_secs(5))
}

#[async_trait]
impl SecretStore for SqliteSecrets {
    async fn put(&self, name: &str, sealed: Vec<u8>) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.with(true, (), move |conn| {
            conn.execute(
                "INSERT INTO secrets (name, sealed) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed,
                                                  stored_at = excluded.stored_at",
                params![name, sealed],
            )
            .map(|_| ())
        })
        .await
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_owned();
        self.with(false, None, move |conn| {
            conn.query_row(
                "SELECT sealed FROM secrets WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn get_many(&self, names: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let names = names.to_vec();
        let absent = vec![None; names.len()];
        self.with(false, absent, move |conn| {
            let mut statement =
                conn.prepare_cached("SELECT sealed FROM secrets WHERE name = ?1")?;
            names
                .iter()
                .map(|name| statement.query_row([name], |row| row.get(0)).optional())
                .collect()
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.with(true, false, move |conn| {
            let deleted = conn.execute("DELETE FROM secrets WHERE name = ?1", [name])? > 0;
            // Also when nothing was deleted: a retry after a checkpoint that timed out.
            truncate_log(conn)?;
            Ok(deleted)
        })
        .await
    }

    async fn put_if_absent(&self, name: &str, sealed: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let name = name.to_owned();
        self.with(true, Vec::new(), move |conn| {
            conn.execute(
                "INSERT INTO secrets (name, sealed) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, sealed],
            )?;
            conn.query_row(
                "SELECT sealed FROM secrets WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
        })
        .await
    }
}
