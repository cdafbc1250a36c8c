//! Subjects' keys over the embedded store's secrets: events sealed at encoding open through a
//! cold keyring, read redacted once the subject's key is destroyed, and need their keys loaded.

use std::sync::Arc;

use proto_events::event::MessageReceived;
use proto_events::{Actor, DomainEvent, Metadata};
use switchboard_codec::keyring::{Keyring, OpenError};
use switchboard_store::secret::{MasterKey, Vault};
use switchboard_store::{EventStore, ExpectedVersion, Position, RecordedEvent};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use uuid::Uuid;

fn message() -> MessageReceived {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../proto-events/tests/golden/MessageReceived.v3.json");
    let bytes = std::fs::read(path).unwrap();
    match DomainEvent::decode("MessageReceived", 3, &bytes).unwrap() {
        DomainEvent::MessageReceived(message) => message,
        other => panic!("{other:?}"),
    }
}

fn metadata() -> Metadata {
    Metadata {
        actor: Actor::System {
            component: "test".into(),
        },
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        occurred_at: chrono::Utc::now(),
        idempotency_key: None,
        command_fingerprint: None,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    master: MasterKey,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        Fixture {
            _dir: dir,
            store,
            master: MasterKey::generate(),
        }
    }

    /// A keyring with nothing in memory.
    fn keyring(&self) -> Keyring {
        Keyring::new(Vault::new(self.store.secrets(), &self.master))
    }

    async fn append(&self, keyring: &Keyring, event: DomainEvent) -> RecordedEvent {
        let new = keyring.encode(&event, &metadata()).await.unwrap();
        let result = self
            .store
            .append(
                &format!("conversation-{}", Uuid::now_v7()),
                ExpectedVersion::Any,
                vec![new],
            )
            .await
            .unwrap();
        self.store
            .read_all(Position(result.first_position.0 - 1), 1)
            .await
            .unwrap()
            .remove(0)
    }
}

fn decoded(keyring: &Keyring, recorded: &RecordedEvent) -> MessageReceived {
    match keyring.decode(recorded).unwrap().payload {
        DomainEvent::MessageReceived(message) => message,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn sealed_events_open_through_a_cold_keyring_until_the_key_is_destroyed() {
    let fixture = Fixture::new();
    let original = message();
    let subject = original.message.contact_id.unwrap();
    let recorded = fixture
        .append(&fixture.keyring(), original.clone().into())
        .await;
    let stored = String::from_utf8_lossy(&recorded.payload).into_owned();
    assert!(!stored.contains(&original.message.body_text), "{stored}");
    assert!(!stored.contains("Ada Lovelace"), "{stored}");

    let cold = fixture.keyring();
    assert!(matches!(
        cold.decode(&recorded),
        Err(OpenError::NotLoaded(s)) if s == subject
    ));
    cold.load(std::slice::from_ref(&recorded)).await.unwrap();
    assert_eq!(decoded(&cold, &recorded), original);

    // Another event of the same subject is sealed with the same key.
    let again = fixture.append(&cold, original.clone().into()).await;
    let third = fixture.keyring();
    third
        .load(&[recorded.clone(), again.clone()])
        .await
        .unwrap();
    assert_eq!(decoded(&third, &again), original);

    assert!(cold.destroy(subject).await.unwrap());
    assert!(!cold.destroy(subject).await.unwrap());
    let erased = decoded(&cold, &recorded);
    assert_eq!(erased.message.body_text, "");
    assert_eq!(erased.message.from_name.as_deref(), Some(""));
    assert_eq!(erased.message.message_id, original.message.message_id);
    assert_eq!(erased.conversation_id, original.conversation_id);
    // A process that still remembers the key reads it until told to forget it.
    assert_eq!(decoded(&third, &recorded), original);
    third.forget(subject);
    third.load(std::slice::from_ref(&recorded)).await.unwrap();
    assert_eq!(decoded(&third, &recorded).message.body_text, "");
    let after = fixture.keyring();
    after.load(std::slice::from_ref(&recorded)).await.unwrap();
    assert_eq!(decoded(&after, &recorded), erased);
}

#[tokio::test]
async fn keyrings_creating_one_subjects_key_at_once_agree_on_it() {
    let fixture = Fixture::new();
    let subject = Uuid::now_v7();
    let keyrings: Vec<Keyring> = (0..6).map(|_| fixture.keyring()).collect();
    let keys = futures::future::join_all(keyrings.iter().map(|k| k.key_for_writing(subject))).await;
    let first = keys[0].as_ref().unwrap().clone();
    for key in keys {
        assert_eq!(key.unwrap(), first);
    }
}

#[tokio::test]
async fn keys_sealed_by_another_master_key_do_not_load() {
    let fixture = Fixture::new();
    let recorded = fixture.append(&fixture.keyring(), message().into()).await;
    let stranger = Keyring::new(Vault::new(fixture.store.secrets(), &MasterKey::generate()));
    assert!(
        stranger
            .load(std::slice::from_ref(&recorded))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn events_without_personal_fields_are_stored_as_encoded() {
    let fixture = Fixture::new();
    let keyring = fixture.keyring();
    let event: DomainEvent = proto_events::event::InboxCreated {
        inbox_id: Uuid::now_v7(),
        name: "Support".into(),
    }
    .into();
    let recorded = fixture.append(&keyring, event.clone()).await;
    assert_eq!(recorded.payload, event.encode());
    assert_eq!(keyring.decode(&recorded).unwrap().payload, event);
}
