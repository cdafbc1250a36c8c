//! `Event`: one event of the log as stored, for analysts and auditors.

use async_graphql::{ID, Json, Object};
use chrono::{DateTime, Utc};
use switchboard_store::RecordedEvent;
use uuid::Uuid;

use crate::ids::{self, Kind};

/// One event of the append-only log, as stored (its payload in the shape of its
/// `schemaVersion`).
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) recorded: RecordedEvent,
    pub(crate) metadata: Option<proto_events::Metadata>,
}

impl Event {
    /// The event of `recorded`.
    pub(crate) fn new(recorded: RecordedEvent) -> Event {
        let metadata = proto_events::Metadata::decode(switchboard_codec::raw(&recorded)).ok();
        Event { recorded, metadata }
    }
}

#[Object]
impl Event {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(Kind::Event, self.recorded.event_id)
    }
    /// The event's own id.
    async fn event_id(&self) -> Uuid {
        self.recorded.event_id
    }
    /// Its place in the global order, from 1, without gaps.
    async fn position(&self) -> u64 {
        self.recorded.position.0
    }
    /// The stream it belongs to, e.g. `conversation-<uuid>`.
    async fn stream(&self) -> &str {
        &self.recorded.stream
    }
    /// Its version within the stream, from 0.
    async fn stream_version(&self) -> u64 {
        self.recorded.stream_version
    }
    /// The stable name of its type, e.g. `MessageReceived`.
    #[graphql(name = "type")]
    async fn event_type(&self) -> &str {
        &self.recorded.event_type
    }
    /// The version of its payload's shape.
    async fn schema_version(&self) -> u32 {
        self.recorded.schema_version
    }
    /// When the store committed it.
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.recorded.recorded_at
    }
    /// When it happened in the domain (the command's clock).
    async fn occurred_at(&self) -> Option<DateTime<Utc>> {
        self.metadata.as_ref().map(|m| m.occurred_at)
    }
    /// Who caused it (`{"kind": "user", "id": ...}` and so on).
    async fn actor(&self) -> Option<Json<serde_json::Value>> {
        self.metadata
            .as_ref()
            .and_then(|m| serde_json::to_value(&m.actor).ok())
            .map(Json)
    }
    /// The conversation of requests and events it belongs to.
    async fn correlation_id(&self) -> Option<Uuid> {
        self.metadata.as_ref().map(|m| m.correlation_id)
    }
    /// The request or event that caused it.
    async fn causation_id(&self) -> Option<Uuid> {
        self.metadata.as_ref().map(|m| m.causation_id)
    }
    /// The payload as stored.
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_slice(&self.recorded.payload).unwrap_or_default())
    }
    /// The hash chain's link: SHA-256 of the previous event's hash and this event's canonical
    /// bytes, hex. `switchboard audit verify` checks the chain.
    async fn hash(&self) -> String {
        hex::encode(self.recorded.hash)
    }
}
