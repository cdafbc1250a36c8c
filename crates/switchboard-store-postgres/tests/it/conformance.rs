//! The shared conformance suite, run against a fresh schema per test.

use switchboard_store_postgres::PostgresStore;

use crate::pg::{self, TestSchema};

async fn open() -> Option<(PostgresStore, TestSchema)> {
    // `server` said loudly why when it is unreachable, or panicked if the server is required.
    let url = pg::server().await?;
    let schema = TestSchema::new(&url);
    let store = schema.connect(|o| o.max_append_bytes = 64 * 1024).await;
    Some((store, schema))
}

switchboard_store::conformance_suite!(open);
