//! The write side's index of the embedded store: a SQLite file of its own beside the log
//! (`write-index.sqlite3`), so that claiming a key never waits for the log's writer.
//!
//! It runs with `synchronous = NORMAL`: a power loss may take its last transactions, never
//! corrupt it, and what it loses is folded again from the durable log on the next start (a
//! pending claim lost that way belonged to a command that was not acknowledged). Cursors are
//! the exception: nothing in the log says how far a channel read its source, so saving one
//! commits with `synchronous = FULL` (the write-ahead log synced, with everything before it). One
//! connection behind a mutex serialises claims, which is all the locking they need.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use switchboard_store::index::{
    Claim, Finish, IndexBatch, KeyState, KeyUse, WriteIndex, decide_claim, finished, fold_logged,
};
use switchboard_store::{Position, StoreError};
use uuid::Uuid;

/// The file name of the index inside the data directory.
pub const INDEX_FILE: &str = "write-index.sqlite3";

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 5000;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT,
    correlation_id BLOB NOT NULL,
    owner BLOB NOT NULL,
    used_at INTEGER NOT NULL,
    salt INTEGER NOT NULL,
    state TEXT NOT NULL,
    stream TEXT,
    stream_version INTEGER,
    first_position INTEGER,
    last_position INTEGER,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS email_threads (
    channel_id BLOB NOT NULL,
    message_id TEXT NOT NULL,
    conversation_id BLOB NOT NULL,
    PRIMARY KEY (channel_id, message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS links (
    other BLOB NOT NULL,
    holder BLOB NOT NULL,
    PRIMARY KEY (other, holder)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS folded (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    position INTEGER NOT NULL
);
INSERT OR IGNORE INTO folded (only, position) VALUES (1, 0);
";

/// The embedded store's [`WriteIndex`].
#[derive(Debug, Clone)]
pub struct SqliteIndex {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteIndex {
    /// Opens (creating if needed) the index file in `dir`.
    pub fn open(dir: &Path) -> rusqlite::Result<SqliteIndex> {
        let conn = Connection::open(dir.join(INDEX_FILE))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteIndex {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `work` on the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut conn)
        })
        .await
        .map_err(StoreError::backend)?
        .map_err(StoreError::backend)
    }
}

const KEY_COLUMNS: &str = "fingerprint, correlation_id, used_at, salt, state, stream, \
                           stream_version, first_position, last_position, owner";

fn read_key(conn: &Connection, scope: &str, key: &str) -> rusqlite::Result<Option<KeyUse>> {
    conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM idempotency_keys WHERE scope = ?1 AND key = ?2"
    ))?
    .query_row(params![scope, key], |row| {
        let state: String = row.get(4)?;
        Ok(KeyUse {
            fingerprint: row.get(0)?,
            correlation_id: Uuid::from_slice(&row.get::<_, Vec<u8>>(1)?).unwrap_or_default(),
            used_at: DateTime::from_timestamp_micros(row.get(2)?).unwrap_or_default(),
            salt: row.get::<_, i64>(3)? as u64,
            owner: Uuid::from_slice(&row.get::<_, Vec<u8>>(9)?).unwrap_or_default(),
            state: KeyState::from_columns(
                &state,
                row.get(5)?,
                [row.get(6)?, row.get(7)?, row.get(8)?],
            ),
        })
    })
    .optional()
}

fn write_key(conn: &Connection, scope: &str, key: &str, row: &KeyUse) -> rusqlite::Result<()> {
    let (state, outcome) = row.state.to_columns();
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO idempotency_keys (scope, key, {KEY_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        scope,
        key,
        row.fingerprint,
        row.correlation_id.as_bytes().as_slice(),
        row.used_at.timestamp_micros(),
        row.salt as i64,
        state,
        outcome.map(|o| o.stream.as_str()),
        outcome.map(|o| o.stream_version as i64),
        outcome.map(|o| o.first_position.0 as i64),
        outcome.map(|o| o.last_position.0 as i64),
        row.owner.as_bytes().as_slice(),
    ])?;
    Ok(())
}

#[async_trait]
impl WriteIndex for SqliteIndex {
    async fn position(&self) -> Result<Position, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT position FROM folded", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|p| Position(p as u64))
        })
        .await
    }

    async fn apply(&self, batch: IndexBatch) -> Result<(), StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction()?;
            for logged in &batch.keys {
                let current = read_key(&tx, &logged.scope, &logged.key)?;
                if let Some(row) = fold_logged(current.as_ref(), logged) {
                    write_key(&tx, &logged.scope, &logged.key, &row)?;
                }
            }
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO email_threads (channel_id, message_id, conversation_id)
                     VALUES (?1, ?2, ?3)",
                )?;
                for thread in &batch.threads {
                    insert.execute(params![
                        thread.channel_id.as_bytes().as_slice(),
                        thread.message_id,
                        thread.conversation_id.as_bytes().as_slice(),
                    ])?;
                }
            }
            for link in &batch.links {
                let sql = if link.present {
                    "INSERT OR IGNORE INTO links (other, holder) VALUES (?1, ?2)"
                } else {
                    "DELETE FROM links WHERE other = ?1 AND holder = ?2"
                };
                tx.prepare_cached(sql)?.execute(params![
                    link.other.as_bytes().as_slice(),
                    link.holder.as_bytes().as_slice(),
                ])?;
            }
            tx.execute(
                "UPDATE folded SET position = MAX(position, ?1)",
                [batch.position.0 as i64],
            )?;
            tx.commit()
        })
        .await
    }

    async fn email_thread(
        &self,
        channel_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        let message_id = message_id.to_owned();
        self.with(move |conn| {
            conn.prepare_cached(
                "SELECT conversation_id FROM email_threads WHERE channel_id = ?1 AND message_id = ?2",
            )?
            .query_row(
                params![channel_id.as_bytes().as_slice(), message_id],
                |row| row.get::<_, Vec<u8>>(0),
            )
            .optional()
            .map(|id| id.and_then(|id| Uuid::from_slice(&id).ok()))
        })
        .await
    }

    async fn links_to(&self, other: Uuid) -> Result<Vec<Uuid>, StoreError> {
        self.with(move |conn| {
            let mut statement =
                conn.prepare_cached("SELECT holder FROM links WHERE other = ?1 ORDER BY holder")?;
            let holders = statement
                .query_map([other.as_bytes().as_slice()], |row| {
                    row.get::<_, Vec<u8>>(0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(holders
                .iter()
                .filter_map(|id| Uuid::from_slice(id).ok())
                .collect())
        })
        .await
    }

    async fn key(&self, scope: &str, key: &str) -> Result<Option<KeyUse>, StoreError> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.with(move |conn| read_key(conn, &scope, &key)).await
    }

    async fn claim(
        &self,
        scope: &str,
        key: &str,
        claim: &KeyUse,
        live_since: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let (scope, key, claim) = (scope.to_owned(), key.to_owned(), claim.clone());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let current = read_key(&tx, &scope, &key)?;
            let answer = match decide_claim(current.as_ref(), &claim, live_since) {
                Ok(row) => {
                    write_key(&tx, &scope, &key, &row)?;
                    Claim::Won {
                        salt: row.salt,
                        correlation_id: row.correlation_id,
                    }
                }
                Err(held) => Claim::Held(*held),
            };
            tx.commit()?;
            Ok(answer)
        })
        .await
    }

    async fn take_over(
        &self,
        scope: &str,
        key: &str,
        stale: Uuid,
        claim: &KeyUse,
    ) -> Result<bool, StoreError> {
        let (scope, key, claim) = (scope.to_owned(), key.to_owned(), claim.clone());
        self.with(move |conn| {
            conn.execute(
                "UPDATE idempotency_keys SET owner = ?1, used_at = ?2
                 WHERE scope = ?3 AND key = ?4 AND state = 'pending' AND owner = ?5",
                params![
                    claim.owner.as_bytes().as_slice(),
                    claim.used_at.timestamp_micros(),
                    scope,
                    key,
                    stale.as_bytes().as_slice(),
                ],
            )
            .map(|changed| changed == 1)
        })
        .await
    }

    async fn finish(
        &self,
        scope: &str,
        key: &str,
        owner: Uuid,
        how: Finish,
    ) -> Result<(), StoreError> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            if let Some(row) = read_key(&tx, &scope, &key)?
                && row.state == KeyState::Pending
                && row.owner == owner
            {
                write_key(&tx, &scope, &key, &finished(row, how))?;
            }
            tx.commit()
        })
        .await
    }

    async fn snapshot(&self, name: &str) -> Result<Option<(Position, Vec<u8>)>, StoreError> {
        let name = name.to_owned();
        self.with(move |conn| {
            conn.query_row(
                "SELECT position, body FROM snapshots WHERE name = ?1",
                [name],
                |row| Ok((Position(row.get::<_, i64>(0)? as u64), row.get(1)?)),
            )
            .optional()
        })
        .await
    }

    async fn save_snapshot(
        &self,
        name: &str,
        position: Position,
        body: Vec<u8>,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO snapshots (name, position, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position, body = excluded.body
                 WHERE excluded.position >= snapshots.position",
                params![name, position.0 as i64, body],
            )
            .map(|_| ())
        })
        .await
    }

    async fn cursor(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_owned();
        self.with(move |conn| {
            conn.query_row("SELECT value FROM cursors WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()
        })
        .await
    }

    async fn save_cursor(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.with(move |conn| {
            // The only write of this file that must survive a power loss: synced at its commit.
            conn.pragma_update(None, "synchronous", "FULL")?;
            let saved = conn.execute(
                "INSERT INTO cursors (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            );
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            saved.map(|_| ())
        })
        .await
    }
}
