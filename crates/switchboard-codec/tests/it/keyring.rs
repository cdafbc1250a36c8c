//! Subjects' keys over the embedded store's secrets: events sealed at encoding open through a
//! cold keyring; an erased subject's fields read redacted, even those a stale writer sealed
//! after the erasure, and a subject written to again gets a new key; a key that is neither here
//! nor erased fails the read.

use std::sync::Arc;

use proto_events::DomainEvent;
use proto_events::event::MessageReceived;
use switchboard_codec::keyring::{Keyring, OpenError};
use switchboard_codec::seal::SealError;
use switchboard_store::secret::{MasterKey, Vault};
use switchboard_store::{EventStore, ExpectedVersion, Position, RecordedEvent};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use uuid::Uuid;

use crate::support::{message, metadata};

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

async fn decoded(keyring: &Keyring, recorded: &RecordedEvent) -> MessageReceived {
    match keyring.decode(recorded).await.unwrap().payload {
        DomainEvent::MessageReceived(message) => message,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn sealed_events_open_through_a_cold_keyring_until_the_subject_is_erased() {
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
    assert_eq!(decoded(&cold, &recorded).await, original);
    // Another event of the same subject is sealed with the same key.
    let again = fixture.append(&cold, original.clone().into()).await;
    let third = fixture.keyring();
    assert_eq!(decoded(&third, &again).await, original);

    assert!(cold.destroy(subject).await.unwrap());
    assert!(!cold.destroy(subject).await.unwrap(), "erasing twice");
    let erased = decoded(&cold, &recorded).await;
    assert_eq!(erased.message.body_text, "");
    assert_eq!(erased.message.from_name.as_deref(), Some(""));
    assert_eq!(erased.message.message_id, original.message.message_id);
    assert_eq!(erased.conversation_id, original.conversation_id);
    // A process that remembers the key reads it until it forgets it (or the memory expires).
    assert_eq!(decoded(&third, &recorded).await, original);
    third.forget(subject);
    assert_eq!(decoded(&third, &recorded).await.message.body_text, "");
    assert_eq!(decoded(&fixture.keyring(), &recorded).await, erased);
}

#[tokio::test]
async fn a_stale_writer_after_an_erasure_writes_nothing_readable_and_new_writes_get_a_new_key() {
    let fixture = Fixture::new();
    let original = message();
    let subject = original.message.contact_id.unwrap();
    let stale = fixture.keyring();
    let before = fixture.append(&stale, original.clone().into()).await;

    // Another node erases the subject while `stale` still remembers its key.
    fixture.keyring().destroy(subject).await.unwrap();
    let late = fixture.append(&stale, original.clone().into()).await;
    let reader = fixture.keyring();
    assert_eq!(decoded(&reader, &before).await.message.body_text, "");
    assert_eq!(
        decoded(&reader, &late).await.message.body_text,
        "",
        "sealed with the destroyed key: erased too, and readable"
    );

    // Written to again by a writer that knows of the erasure: a new key, which opens.
    let fresh = fixture.keyring();
    let after = fixture.append(&fresh, original.clone().into()).await;
    let reader = fixture.keyring();
    assert_eq!(decoded(&reader, &after).await, original);
    assert_eq!(decoded(&reader, &before).await.message.body_text, "");
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
async fn keys_that_are_missing_or_sealed_by_another_master_key_fail_the_read() {
    let fixture = Fixture::new();
    let recorded = fixture.append(&fixture.keyring(), message().into()).await;
    let stranger = Keyring::new(Vault::new(fixture.store.secrets(), &MasterKey::generate()));
    assert!(
        stranger
            .load(std::slice::from_ref(&recorded))
            .await
            .is_err()
    );

    // Another store's secrets (a log copied without them): not passed off as erased.
    let elsewhere = Fixture::new();
    let lost = Keyring::new(Vault::new(elsewhere.store.secrets(), &fixture.master));
    assert!(matches!(
        lost.decode(&recorded).await,
        Err(OpenError::Seal(SealError::KeyMissing { .. }))
    ));
    let error = Keyring::without_keys()
        .decode(&recorded)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no secret_key"), "{error}");
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
    assert_eq!(keyring.decode(&recorded).await.unwrap().payload, event);
    assert_eq!(
        Keyring::without_keys()
            .decode(&recorded)
            .await
            .unwrap()
            .payload,
        event
    );
}

#[tokio::test]
async fn a_key_lost_after_an_erasure_is_missing_not_erased() {
    let fixture = Fixture::new();
    let original = message();
    let subject = original.message.contact_id.unwrap();
    fixture
        .append(&fixture.keyring(), original.clone().into())
        .await;
    fixture.keyring().destroy(subject).await.unwrap();
    let after = fixture
        .append(&fixture.keyring(), original.clone().into())
        .await;
    // The new key goes missing (a restore without it): not passed off as the erasure.
    fixture
        .store
        .secrets()
        .delete(&format!("subject-{subject}"))
        .await
        .unwrap();
    assert!(matches!(
        fixture.keyring().decode(&after).await,
        Err(OpenError::Seal(SealError::KeyMissing { .. }))
    ));
}

#[tokio::test]
async fn every_key_a_subject_was_erased_with_stays_erased() {
    let fixture = Fixture::new();
    let original = message();
    let subject = original.message.contact_id.unwrap();
    let first = fixture
        .append(&fixture.keyring(), original.clone().into())
        .await;
    fixture.keyring().destroy(subject).await.unwrap();
    let second = fixture
        .append(&fixture.keyring(), original.clone().into())
        .await;
    // Erased again, by two processes at once: neither erasure undoes the other's record.
    let (a, b) = (fixture.keyring(), fixture.keyring());
    let (x, y) = tokio::join!(a.destroy(subject), b.destroy(subject));
    assert!(x.unwrap() || y.unwrap(), "the second key was destroyed");
    let reader = fixture.keyring();
    for event in [&first, &second] {
        assert_eq!(decoded(&reader, event).await.message.body_text, "");
    }
}

/// An erasure counts as seen through only once its record is written and the key is gone:
/// `destroy` records first and deletes after, and may stop in between.
#[tokio::test]
async fn an_erasure_is_finished_once_recorded_and_its_key_gone() {
    let fixture = Fixture::new();
    let keyring = fixture.keyring();
    let (done, half, never) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for subject in [done, half] {
        keyring.key_for_writing(subject).await.unwrap();
    }
    keyring.destroy(done).await.unwrap();
    // Stopped between the record and the deletion of the key.
    let secrets = fixture.store.secrets();
    secrets
        .put(&format!("erased-subject-{half}"), b"erased".to_vec())
        .await
        .unwrap();
    assert_eq!(
        keyring.were_erased(&[done, half, never]).await.unwrap(),
        [true, false, false]
    );
}
