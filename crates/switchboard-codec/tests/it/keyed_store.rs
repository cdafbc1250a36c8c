//! [`KeyedStore`]: the conformance suite over the embedded store read through a keyring, and
//! sealed events read opened through every read path, with the chain over the stored bytes.

use std::sync::Arc;

use futures::StreamExt;
use proto_events::DomainEvent;
use proto_events::event::InboxCreated;
use switchboard_codec::keyring::{KeyedStore, Keyring};
use switchboard_store::chain::{self, Verification};
use switchboard_store::secret::{MasterKey, Vault};
use switchboard_store::{Direction, EventStore, ExpectedVersion, Position, StreamFrom};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;
use uuid::Uuid;

use crate::support::{message, metadata};

fn keyed(dir: &std::path::Path, master: &MasterKey) -> KeyedStore {
    let options = SqliteOptions {
        max_append_bytes: 64 * 1024,
        ..SqliteOptions::default()
    };
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir, options).unwrap());
    let keyring = Arc::new(Keyring::new(Vault::new(store.secrets(), master)));
    KeyedStore::new(store, keyring)
}

async fn open() -> Option<(KeyedStore, TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = keyed(dir.path(), &MasterKey::generate());
    Some((store, dir))
}

switchboard_store::conformance_suite!(open);

fn payload_of(event: &switchboard_store::RecordedEvent) -> DomainEvent {
    switchboard_codec::decode(event).unwrap().payload
}

#[tokio::test]
async fn sealed_events_read_opened_everywhere_and_verify_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let store = keyed(dir.path(), &master);
    let original = message();
    let subject = original.message.contact_id.unwrap();
    let stream = format!("conversation-{}", original.conversation_id);
    let plain: DomainEvent = InboxCreated {
        inbox_id: Uuid::now_v7(),
        name: "Support".into(),
    }
    .into();
    let mut events = Vec::new();
    for event in [&plain, &original.clone().into()] {
        events.push(store.keyring().encode(event, &metadata()).await.unwrap());
    }
    store
        .append(&stream, ExpectedVersion::NoStream, events)
        .await
        .unwrap();

    // A fresh process (nothing in memory) reads them opened, from every read path.
    let reopened = {
        drop(store);
        keyed(dir.path(), &master)
    };
    let all = reopened.read_all(Position::START, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(payload_of(&all[0]), plain);
    assert!(all[0].sealed_payload.is_none(), "nothing personal to seal");
    assert_eq!(payload_of(&all[1]), original.clone().into());
    let stored = String::from_utf8_lossy(all[1].stored_payload()).into_owned();
    assert!(!stored.contains(&original.message.body_text), "{stored}");
    let by_stream = reopened
        .read_stream(&stream, Direction::Backwards, StreamFrom::End, 1)
        .await
        .unwrap();
    assert_eq!(payload_of(&by_stream[0]), original.clone().into());
    let live: Vec<_> = reopened
        .subscribe_all(Position::START)
        .take(2)
        .collect()
        .await;
    assert_eq!(
        payload_of(live[1].as_ref().unwrap()),
        original.clone().into()
    );
    match chain::verify(&reopened).await.unwrap() {
        Verification::Intact { events: 2, .. } => {}
        other => panic!("{other:?}"),
    }

    // Erased: the same reads come back redacted, and the chain still verifies.
    assert!(reopened.keyring().destroy(subject).await.unwrap());
    let erased = reopened.read_all(Position(1), 1).await.unwrap().remove(0);
    let DomainEvent::MessageReceived(erased) = payload_of(&erased) else {
        panic!("not a message");
    };
    assert_eq!(erased.message.body_text, "");
    assert_eq!(erased.message.message_id, original.message.message_id);
    let after = {
        drop(reopened);
        keyed(dir.path(), &master)
    };
    let again = after.read_all(Position(1), 1).await.unwrap().remove(0);
    assert_eq!(payload_of(&again), DomainEvent::MessageReceived(erased));
    match chain::verify(&after).await.unwrap() {
        Verification::Intact { events: 2, .. } => {}
        other => panic!("{other:?}"),
    }
}

/// A reservation stream named by a customer's address in the clear (written before names were
/// keyed): once its holder is erased, it reads as `unique-contact-email-(erased)` through the
/// keys and in an export, with its value redacted, and the chain still verifies over the
/// stored name; another customer's reservation is untouched.
#[tokio::test]
async fn a_plain_reservation_name_reads_redacted_once_its_holder_is_erased() {
    use proto_events::event::{UniqueScope, UniqueValueReserved};
    use proto_events::streams;
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let store = keyed(dir.path(), &master);
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    for (contact, address) in [(ada, "ada@example.com"), (bob, "bob@example.com")] {
        let event: DomainEvent = UniqueValueReserved {
            scope: UniqueScope::ContactEmail,
            value: address.into(),
            owner_stream: streams::contact(contact),
        }
        .into();
        store
            .append(
                &streams::unique(UniqueScope::ContactEmail, address),
                ExpectedVersion::NoStream,
                vec![switchboard_codec::encode(&event, &metadata())],
            )
            .await
            .unwrap();
    }
    store.keyring().destroy(ada).await.unwrap();

    let after = {
        drop(store);
        keyed(dir.path(), &master)
    };
    let all = after.read_all(Position::START, 10).await.unwrap();
    assert_eq!(all[0].stream, "unique-contact-email-(erased)");
    assert_eq!(
        all[0].stored_stream(),
        streams::unique(UniqueScope::ContactEmail, "ada@example.com")
    );
    let DomainEvent::UniqueValueReserved(reserved) = payload_of(&all[0]) else {
        panic!("not a reservation");
    };
    assert_eq!(reserved.value, "");
    assert_eq!(all[1].stream, "unique-contact-email-bob@example.com");
    assert_eq!(all[1].stored_stream, None);
    match chain::verify(&after).await.unwrap() {
        Verification::Intact { events: 2, .. } => {}
        other => panic!("{other:?}"),
    }

    // As `export` reads it: the log as stored, redacted through the keyring.
    drop(after);
    let raw = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let keyring = Keyring::new(Vault::new(raw.secrets(), &master));
    let mut stored = raw.read_all(Position::START, 10).await.unwrap();
    assert!(keyring.redact_erased(&mut stored[0]).await.unwrap());
    assert_eq!(stored[0].stream, "unique-contact-email-(erased)");
    assert!(!keyring.redact_erased(&mut stored[1]).await.unwrap());
}
