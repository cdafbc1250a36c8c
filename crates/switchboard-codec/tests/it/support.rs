//! What the tests share: a golden message and system metadata.

use proto_events::event::MessageReceived;
use proto_events::{Actor, DomainEvent, Metadata};
use uuid::Uuid;

/// The golden `MessageReceived` (v3) of proto-events.
pub(crate) fn message() -> MessageReceived {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../proto-events/tests/golden/MessageReceived.v3.json");
    match DomainEvent::decode("MessageReceived", 3, &std::fs::read(path).unwrap()).unwrap() {
        DomainEvent::MessageReceived(message) => message,
        other => panic!("{other:?}"),
    }
}

/// Metadata of an event the system wrote now.
pub(crate) fn metadata() -> Metadata {
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
