//! Sealed secrets on PostgreSQL: one row per name in the store's schema, shared by every node.
//! The bytes are sealed before they get here (see [`switchboard_store::secret`]).

use async_trait::async_trait;
use deadpool_postgres::Pool;
use switchboard_store::{SecretStore, StoreError};

use crate::reader::pool_error;
use crate::schema::quote;

/// The PostgreSQL store's [`SecretStore`].
#[derive(Debug, Clone)]
pub(crate) struct PostgresSecrets {
    pool: Pool,
    /// The quoted schema name.
    s: String,
}

impl PostgresSecrets {
    pub(crate) fn new(pool: Pool, schema: &str) -> PostgresSecrets {
        PostgresSecrets {
            pool,
            s: quote(schema),
        }
    }

    async fn run(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let statement = client
            .prepare_cached(&sql.replace("{s}", &self.s))
            .await
            .map_err(StoreError::backend)?;
        client
            .query(&statement, params)
            .await
            .map_err(StoreError::backend)
    }
}

#[async_trait]
impl SecretStore for PostgresSecrets {
    async fn put(&self, name: &str, sealed: Vec<u8>) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO {s}.secrets (name, sealed) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, stored_at = now()",
            &[&name, &sealed],
        )
        .await
        .map(|_| ())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self
            .run("SELECT sealed FROM {s}.secrets WHERE name = $1", &[&name])
            .await?;
        rows.first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(StoreError::backend)
    }

    async fn get_many(&self, names: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let rows = self
            .run(
                "SELECT name, sealed FROM {s}.secrets WHERE name = ANY($1)",
                &[&names],
            )
            .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get(0).map_err(StoreError::backend)?;
            let sealed: Vec<u8> = row.try_get(1).map_err(StoreError::backend)?;
            found.insert(name, sealed);
        }
        Ok(names.iter().map(|name| found.get(name).cloned()).collect())
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        let rows = self
            .run(
                "DELETE FROM {s}.secrets WHERE name = $1 RETURNING name",
                &[&name],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn put_if_absent(&self, name: &str, sealed: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        // The insert either stores the row or finds the one a concurrent first writer committed
        // (`ON CONFLICT` waits for it), so the select that follows sees it in both cases.
        self.run(
            "INSERT INTO {s}.secrets (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &sealed],
        )
        .await?;
        let rows = self
            .run("SELECT sealed FROM {s}.secrets WHERE name = $1", &[&name])
            .await?;
        let row = rows.first().ok_or_else(|| {
            StoreError::backend(std::io::Error::other(format!(
                "secret {name} vanished as it was stored"
            )))
        })?;
        row.try_get(0).map_err(StoreError::backend)
    }
}
