//! The write side's index on PostgreSQL: tables in the store's schema, shared by every node.
//!
//! A claim is decided under the key's row lock (`INSERT ... ON CONFLICT DO NOTHING`, then
//! `SELECT ... FOR UPDATE`), so two nodes claiming one key at once see each other. Folding is
//! idempotent, so every node folds the log into the same tables without coordination: the first
//! conversation of a Message-ID stays, a key's row only moves forwards, and the folded position
//! is the largest any node reached.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use switchboard_store::index::{
    Claim, Finish, IndexBatch, KeyState, KeyUse, LoggedKey, WriteIndex, decide_claim, fold_logged,
};
use switchboard_store::{Position, StoreError};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::reader::pool_error;
use crate::schema::quote;

/// The PostgreSQL store's [`WriteIndex`].
#[derive(Debug, Clone)]
pub(crate) struct PostgresIndex {
    pool: Pool,
    /// The quoted schema name.
    s: String,
}

const KEY_COLUMNS: &str = "fingerprint, correlation_id, used_at, salt, state, stream, \
                           stream_version, first_position, last_position, owner";

fn key_from(row: &Row) -> Result<KeyUse, tokio_postgres::Error> {
    let state: String = row.try_get(4)?;
    Ok(KeyUse {
        fingerprint: row.try_get(0)?,
        correlation_id: row.try_get(1)?,
        used_at: row.try_get(2)?,
        salt: row.try_get::<_, i64>(3)? as u64,
        owner: row.try_get(9)?,
        state: KeyState::from_columns(
            &state,
            row.try_get(5)?,
            [row.try_get(6)?, row.try_get(7)?, row.try_get(8)?],
        ),
    })
}

impl PostgresIndex {
    pub(crate) fn new(pool: Pool, schema: &str) -> PostgresIndex {
        PostgresIndex {
            pool,
            s: quote(schema),
        }
    }

    async fn read_key(
        &self,
        client: &impl GenericClient,
        scope: &str,
        key: &str,
        lock: bool,
    ) -> Result<Option<KeyUse>, tokio_postgres::Error> {
        let s = &self.s;
        let lock = if lock { " FOR UPDATE" } else { "" };
        let statement = client
            .prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM {s}.idempotency_keys WHERE scope = $1 AND key = $2{lock}"
            ))
            .await?;
        client
            .query_opt(&statement, &[&scope, &key])
            .await?
            .map(|row| key_from(&row))
            .transpose()
    }

    async fn write_key(
        &self,
        client: &impl GenericClient,
        scope: &str,
        key: &str,
        row: &KeyUse,
    ) -> Result<(), tokio_postgres::Error> {
        let s = &self.s;
        let (state, outcome) = row.state.to_columns();
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO {s}.idempotency_keys (scope, key, {KEY_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (scope, key) DO UPDATE SET
                     fingerprint = excluded.fingerprint, correlation_id = excluded.correlation_id,
                     owner = excluded.owner,
                     used_at = excluded.used_at, salt = excluded.salt, state = excluded.state,
                     stream = excluded.stream, stream_version = excluded.stream_version,
                     first_position = excluded.first_position,
                     last_position = excluded.last_position"
            ))
            .await?;
        client
            .execute(
                &statement,
                &[
                    &scope,
                    &key,
                    &row.fingerprint,
                    &row.correlation_id,
                    &row.used_at,
                    &(row.salt as i64),
                    &state,
                    &outcome.map(|o| o.stream.as_str()),
                    &outcome.map(|o| o.stream_version as i64),
                    &outcome.map(|o| o.first_position.0 as i64),
                    &outcome.map(|o| o.last_position.0 as i64),
                    &row.owner,
                ],
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl WriteIndex for PostgresIndex {
    async fn position(&self) -> Result<Position, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_one(
                &format!("SELECT position FROM {}.folded WHERE singleton", self.s),
                &[],
            )
            .await
            .map_err(StoreError::backend)?;
        let position: i64 = row.try_get(0).map_err(StoreError::backend)?;
        Ok(Position(position as u64))
    }

    async fn apply(&self, batch: IndexBatch) -> Result<(), StoreError> {
        let s = &self.s;
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let work = async {
            let tx = client.transaction().await?;
            // Row locks in one order on every node (by key, each key's uses in log order), so two
            // nodes folding overlapping windows cannot deadlock.
            let mut keys: Vec<&LoggedKey> = batch.keys.iter().collect();
            keys.sort_by(|a, b| (&a.scope, &a.key).cmp(&(&b.scope, &b.key)));
            for logged in keys {
                let current = self.read_key(&tx, &logged.scope, &logged.key, true).await?;
                if let Some(row) = fold_logged(current.as_ref(), logged) {
                    self.write_key(&tx, &logged.scope, &logged.key, &row)
                        .await?;
                }
            }
            if !batch.threads.is_empty() {
                let (channels, message_ids, conversations): (Vec<Uuid>, Vec<&str>, Vec<Uuid>) =
                    batch.threads.iter().fold(
                        (Vec::new(), Vec::new(), Vec::new()),
                        |(mut c, mut m, mut v), t| {
                            c.push(t.channel_id);
                            m.push(t.message_id.as_str());
                            v.push(t.conversation_id);
                            (c, m, v)
                        },
                    );
                // In log order, the first of a Message-ID on a channel wins, also within
                // one batch (`DISTINCT ON` keeps the first row by ordinality).
                tx.execute(
                    &format!(
                        "INSERT INTO {s}.email_threads (channel_id, message_id, conversation_id)
                         SELECT DISTINCT ON (c, m) c, m, v
                         FROM UNNEST($1::uuid[], $2::text[], $3::uuid[]) WITH ORDINALITY AS t(c, m, v, n)
                         ORDER BY c, m, n
                         ON CONFLICT DO NOTHING"
                    ),
                    &[&channels, &message_ids, &conversations],
                )
                .await?;
            }
            for link in &batch.links {
                let sql = if link.present {
                    format!(
                        "INSERT INTO {s}.links (other, holder) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING"
                    )
                } else {
                    format!("DELETE FROM {s}.links WHERE other = $1 AND holder = $2")
                };
                tx.execute(&sql, &[&link.other, &link.holder]).await?;
            }
            tx.execute(
                &format!("UPDATE {s}.folded SET position = greatest(position, $1) WHERE singleton"),
                &[&(batch.position.0 as i64)],
            )
            .await?;
            tx.commit().await
        };
        work.await.map_err(StoreError::backend)
    }

    async fn email_thread(
        &self,
        channel_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT conversation_id FROM {}.email_threads
                 WHERE channel_id = $1 AND message_id = $2",
                self.s
            ))
            .await
            .map_err(StoreError::backend)?;
        let row = client
            .query_opt(&statement, &[&channel_id, &message_id])
            .await
            .map_err(StoreError::backend)?;
        row.map(|row| row.try_get(0))
            .transpose()
            .map_err(StoreError::backend)
    }

    async fn links_to(&self, other: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                &format!(
                    "SELECT holder FROM {}.links WHERE other = $1 ORDER BY holder",
                    self.s
                ),
                &[&other],
            )
            .await
            .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(StoreError::backend)
    }

    async fn key(&self, scope: &str, key: &str) -> Result<Option<KeyUse>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        self.read_key(&client, scope, key, false)
            .await
            .map_err(StoreError::backend)
    }

    async fn claim(
        &self,
        scope: &str,
        key: &str,
        claim: &KeyUse,
        live_since: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let s = &self.s;
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let work = async {
            let tx = client.transaction().await?;
            // A first use inserts its row at once; racing claimants wait on it.
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO {s}.idempotency_keys (scope, key, {KEY_COLUMNS})
                         VALUES ($1, $2, $3, $4, $5, 0, 'pending', NULL, NULL, NULL, NULL, $6)
                         ON CONFLICT DO NOTHING"
                    ),
                    &[
                        &scope,
                        &key,
                        &claim.fingerprint,
                        &claim.correlation_id,
                        &claim.used_at,
                        &claim.owner,
                    ],
                )
                .await?;
            let answer = if inserted == 1 {
                Claim::Won {
                    salt: 0,
                    correlation_id: claim.correlation_id,
                }
            } else {
                let current = self.read_key(&tx, scope, key, true).await?;
                match decide_claim(current.as_ref(), claim, live_since) {
                    Ok(row) => {
                        self.write_key(&tx, scope, key, &row).await?;
                        Claim::Won {
                            salt: row.salt,
                            correlation_id: row.correlation_id,
                        }
                    }
                    Err(held) => Claim::Held(*held),
                }
            };
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(answer)
        };
        work.await.map_err(StoreError::backend)
    }

    async fn take_over(
        &self,
        scope: &str,
        key: &str,
        stale: Uuid,
        claim: &KeyUse,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let changed = client
            .execute(
                &format!(
                    "UPDATE {}.idempotency_keys SET owner = $1, used_at = $2
                     WHERE scope = $3 AND key = $4 AND state = 'pending' AND owner = $5",
                    self.s
                ),
                &[&claim.owner, &claim.used_at, &scope, &key, &stale],
            )
            .await
            .map_err(StoreError::backend)?;
        Ok(changed == 1)
    }

    async fn finish(
        &self,
        scope: &str,
        key: &str,
        owner: Uuid,
        how: Finish,
    ) -> Result<(), StoreError> {
        // One conditional statement (every keyed command pays it): what `finished` makes of
        // the owner's pending row.
        let s = &self.s;
        let client = self.pool.get().await.map_err(pool_error)?;
        let mine = "WHERE scope = $1 AND key = $2 AND state = 'pending' AND owner = $3";
        let done = match how {
            Finish::Abandoned => {
                client
                    .execute(
                        &format!("UPDATE {s}.idempotency_keys SET used_at = $4 {mine}"),
                        &[&scope, &key, &owner, &DateTime::<Utc>::UNIX_EPOCH],
                    )
                    .await
            }
            Finish::Done(_) | Finish::Free => {
                let state = match how {
                    Finish::Done(outcome) => KeyState::Done(outcome),
                    _ => KeyState::Free,
                };
                let (state, o) = state.to_columns();
                client
                    .execute(
                        &format!(
                            "UPDATE {s}.idempotency_keys SET state = $4, stream = $5,
                                 stream_version = $6, first_position = $7, last_position = $8
                             {mine}"
                        ),
                        &[
                            &scope,
                            &key,
                            &owner,
                            &state,
                            &o.map(|o| o.stream.as_str()),
                            &o.map(|o| o.stream_version as i64),
                            &o.map(|o| o.first_position.0 as i64),
                            &o.map(|o| o.last_position.0 as i64),
                        ],
                    )
                    .await
            }
        };
        done.map(|_| ()).map_err(StoreError::backend)
    }

    async fn snapshot(&self, name: &str) -> Result<Option<(Position, Vec<u8>)>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT position, body FROM {}.snapshots WHERE name = $1",
                    self.s
                ),
                &[&name],
            )
            .await
            .map_err(StoreError::backend)?;
        row.map(|row| {
            Ok::<_, tokio_postgres::Error>((
                Position(row.try_get::<_, i64>(0)? as u64),
                row.try_get(1)?,
            ))
        })
        .transpose()
        .map_err(StoreError::backend)
    }

    async fn save_snapshot(
        &self,
        name: &str,
        position: Position,
        body: Vec<u8>,
    ) -> Result<(), StoreError> {
        let s = &self.s;
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.snapshots (name, position, body) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET position = excluded.position,
                         body = excluded.body
                     WHERE excluded.position >= {s}.snapshots.position"
                ),
                &[&name, &(position.0 as i64), &body],
            )
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }

    async fn cursor(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                &format!("SELECT value FROM {}.cursors WHERE name = $1", self.s),
                &[&name],
            )
            .await
            .map_err(StoreError::backend)?;
        row.map(|row| row.try_get(0))
            .transpose()
            .map_err(StoreError::backend)
    }

    async fn save_cursor(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                &format!(
                    "INSERT INTO {}.cursors (name, value) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    self.s
                ),
                &[&name, &value],
            )
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }
}
