//! Tamper evidence and immutability: history altered behind the store's back (by a superuser who
//! disables the triggers) is caught by `verify`, the triggers refuse changes while enabled, and a
//! store refuses to start on a schema whose head row disagrees with its events.

use switchboard_store::chain::{self, Verification};
use switchboard_store::conformance::event;
use switchboard_store::{EventStore, ExpectedVersion, Position};
use switchboard_store_postgres::{ConnectError, PostgresOptions, PostgresStore};
use tokio_postgres::Client;

use crate::pg::{self, TestSchema};

/// A schema holding 20 events over 3 streams, and an administrator's connection to it.
async fn written(url: &str) -> (TestSchema, Client) {
    let schema = TestSchema::new(url);
    let store = schema.connect(|_| {}).await;
    for i in 0..20 {
        store
            .append(
                &format!("stream-{}", i % 3),
                ExpectedVersion::Any,
                vec![event(&i.to_string())],
            )
            .await
            .unwrap();
    }
    (schema, pg::raw(url).await.unwrap())
}

/// Runs `sql` on the events table with its triggers disabled, as a superuser could.
async fn tamper(admin: &Client, schema: &TestSchema, sql: &str) {
    let events = schema.table("events");
    admin
        .batch_execute(&format!(
            "BEGIN;
             ALTER TABLE {events} DISABLE TRIGGER ALL;
             {sql};
             ALTER TABLE {events} ENABLE TRIGGER ALL;
             COMMIT;"
        ))
        .await
        .unwrap();
}

async fn verify(schema: &TestSchema) -> Verification {
    let store = schema.connect(|_| {}).await;
    chain::verify(&store).await.unwrap()
}

fn broken_at(verification: Verification) -> u64 {
    match verification {
        Verification::Broken { position, .. } => position.0,
        intact => panic!("tampering went unnoticed: {intact:?}"),
    }
}

#[tokio::test]
async fn untouched_history_verifies() {
    let Some(url) = pg::server().await else {
        return;
    };
    let (schema, _admin) = written(&url).await;
    match verify(&schema).await {
        Verification::Intact { events, head_hash } => {
            assert_eq!(events, 20);
            assert_eq!(head_hash.len(), 64);
        }
        broken => panic!("{broken:?}"),
    }
}

#[tokio::test]
async fn altered_payload_is_caught_at_its_position() {
    let Some(url) = pg::server().await else {
        return;
    };
    let (schema, admin) = written(&url).await;
    let events = schema.table("events");
    tamper(
        &admin,
        &schema,
        &format!(
            "UPDATE {events} SET payload = convert_to('{{\"label\":\"forged\"}}', 'UTF8') \
             WHERE position = 7"
        ),
    )
    .await;
    assert_eq!(broken_at(verify(&schema).await), 7);
}

#[tokio::test]
async fn altered_metadata_with_recomputed_hash_is_caught_at_the_next_event() {
    let Some(url) = pg::server().await else {
        return;
    };
    let (schema, admin) = written(&url).await;
    let store = schema.connect(|_| {}).await;
    let mut forged = store.read_all(Position(11), 1).await.unwrap().remove(0);
    let previous = store
        .read_all(Position(10), 1)
        .await
        .unwrap()
        .remove(0)
        .hash;
    forged.metadata = br#"{"actor":{"kind":"user","id":"someone-else"}}"#.to_vec();
    let hash = forged.canonical().hash(&previous);
    let events = schema.table("events");
    tamper(
        &admin,
        &schema,
        &format!(
            "UPDATE {events} SET metadata = decode('{}', 'hex'), hash = decode('{}', 'hex') \
             WHERE position = 12",
            hex(&forged.metadata),
            hex(&hash)
        ),
    )
    .await;
    assert_eq!(broken_at(verify(&schema).await), 13);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn deleted_event_is_caught_where_it_was() {
    let Some(url) = pg::server().await else {
        return;
    };
    let (schema, admin) = written(&url).await;
    let events = schema.table("events");
    tamper(
        &admin,
        &schema,
        &format!("DELETE FROM {events} WHERE position = 5"),
    )
    .await;
    assert_eq!(broken_at(verify(&schema).await), 5);
}

#[tokio::test]
async fn the_database_refuses_update_delete_and_truncate() {
    let Some(url) = pg::server().await else {
        return;
    };
    let (schema, admin) = written(&url).await;
    let (events, head) = (schema.table("events"), schema.table("head"));
    for sql in [
        format!("UPDATE {events} SET payload = '\\x00' WHERE position = 1"),
        format!("UPDATE {events} SET payload = payload"),
        format!("DELETE FROM {events} WHERE position = 1"),
        format!("TRUNCATE {events}"),
        format!("DELETE FROM {head}"),
        format!("TRUNCATE {head}"),
    ] {
        // Even a superuser is refused while the triggers are enabled.
        let error = admin.batch_execute(&sql).await.unwrap_err();
        let message = error.as_db_error().map(|e| e.message()).unwrap_or("");
        assert!(message.contains("append-only"), "{sql}: {error}");
    }
    assert!(matches!(
        verify(&schema).await,
        Verification::Intact { events: 20, .. }
    ));
}

#[tokio::test]
async fn reconnecting_continues_the_chain() {
    let Some(url) = pg::server().await else {
        return;
    };
    let (schema, _admin) = written(&url).await;
    let store = schema.connect(|_| {}).await;
    assert_eq!(store.head().await.unwrap(), Position(20));
    let r = store
        .append("stream-0", ExpectedVersion::Exact(6), vec![event("after")])
        .await
        .unwrap();
    assert_eq!(r.first_position, Position(21));
    assert!(matches!(
        chain::verify(&store).await.unwrap(),
        Verification::Intact { events: 21, .. }
    ));
}

#[tokio::test]
async fn a_head_out_of_step_with_the_events_is_refused() {
    let Some(url) = pg::server().await else {
        return;
    };
    let (schema, admin) = written(&url).await;
    let events = schema.table("events");
    tamper(
        &admin,
        &schema,
        &format!("DELETE FROM {events} WHERE position = 20"),
    )
    .await;
    match PostgresStore::connect(schema.options()).await {
        Err(ConnectError::Inconsistent { head, last, .. }) => assert_eq!((head, last), (20, 19)),
        other => panic!("expected Inconsistent, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_configuration_is_refused_before_connecting() {
    let mut options = PostgresOptions::new("postgres://nobody@127.0.0.1:1/none");
    options.schema = "Not-A-Schema".into();
    assert!(matches!(
        PostgresStore::connect(options).await,
        Err(ConnectError::InvalidSchema { .. })
    ));
    let options = PostgresOptions::new("postgres://[::1");
    assert!(matches!(
        PostgresStore::connect(options).await,
        Err(ConnectError::InvalidUrl(_))
    ));
}
