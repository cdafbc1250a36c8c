//! `Event`: one event of the log as stored, for analysts and auditors, and [`LogGate`], which
//! leaves out the events of conversations the reader may not see.

use std::collections::HashMap;

use async_graphql::{ID, Json, Object};
use chrono::{DateTime, Utc};
use proto_events::DomainEvent;
use proto_events::event::ConversationVisibility;
use switchboard_store::{Direction, RecordedEvent, StreamFrom};
use uuid::Uuid;

use crate::access::Access;
use crate::error::ApiResult;
use crate::ids::{self, Kind};
use crate::state::Inner;
use crate::types::audit::{Whereabouts, whereabouts};

/// Which events of the raw log a reader may read: every event, except those of conversations
/// the reader may not see (for auditors and analysts, other users' private conversations),
/// which are left out entirely (not redacted: a private conversation's stream name, times and
/// actors are already more than PRODUCT.md lets them see).
///
/// An event concerns a conversation as the audit trail files it (`audit_trail::concerns`): when
/// it is in the conversation's stream, creates a contact or ticket from it, or associates a
/// record with it.
/// A conversation's visibility is its thread-view header's (what every other read of it uses,
/// so a conversation shared since is readable whole); a conversation the read model does not
/// show yet is judged by the first event of its stream, as the write side recorded it, and one
/// whose stream does not start as a conversation does is never shown. It is remembered for the
/// gate's life (at most [`GATE_MEMORY`] conversations), except that a `ConversationShared` read
/// through the gate makes it shared, from that event on.
#[derive(Debug, Default)]
pub(crate) struct LogGate {
    /// Each conversation met so far: its inbox and private owner (`None`: not found).
    conversations: HashMap<Uuid, Option<Whereabouts>>,
}

/// The most conversations a [`LogGate`] remembers before it forgets them all (and looks them up
/// again as they come).
const GATE_MEMORY: usize = 100_000;

impl LogGate {
    /// Whether the reader with `access` may read each of `events`.
    pub(crate) async fn admit(
        &mut self,
        inner: &Inner,
        access: &Access,
        events: &[RecordedEvent],
    ) -> ApiResult<Vec<bool>> {
        if access.sees_everything() {
            return Ok(vec![true; events.len()]);
        }
        if self.conversations.len() > GATE_MEMORY {
            self.conversations.clear();
        }
        let concerned: Vec<Option<Uuid>> = events.iter().map(concerned_conversation).collect();
        let mut missing: Vec<Uuid> = concerned
            .iter()
            .flatten()
            .copied()
            .filter(|id| !self.conversations.contains_key(id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            for (id, whereabouts) in whereabouts(inner, missing).await? {
                let whereabouts = match whereabouts {
                    Some(known) => Some(known),
                    None => started_as(inner, id).await?,
                };
                self.conversations.insert(id, whereabouts);
            }
        }
        Ok(events
            .iter()
            .zip(concerned)
            .map(|(event, concerned)| {
                if crate::access::ADMINS_ONLY.contains(&event.event_type.as_str()) {
                    return false;
                }
                let Some(id) = concerned else {
                    return true;
                };
                // From the share on (the share itself included), the conversation is shared.
                if event.event_type == "ConversationShared"
                    && let Some(Some((_, owner))) = self.conversations.get_mut(&id)
                {
                    *owner = None;
                }
                matches!(
                    self.conversations.get(&id),
                    Some(Some((inbox, owner))) if access.conversation(*inbox, *owner)
                )
            })
            .collect())
    }
}

/// The conversation an event concerns, if any, as the audit trail files it (see [`LogGate`]).
/// An event of a conversation stream is judged by its stream without decoding it; one that does
/// not decode, by its stream alone.
fn concerned_conversation(event: &RecordedEvent) -> Option<Uuid> {
    if let Some(id) = conversation_of(&event.stream) {
        return Some(id);
    }
    let envelope = switchboard_codec::decode(event).ok()?;
    audit_trail::concerns(&envelope.payload).conversation_id
}

/// The conversation a stream holds, if it is a conversation stream.
pub(crate) fn conversation_of(stream: &str) -> Option<Uuid> {
    stream
        .strip_prefix(proto_events::streams::CONVERSATION)?
        .strip_prefix('-')
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// A conversation's inbox and private owner as its stream's first event recorded them, for a
/// conversation the thread view does not show yet. `None` if the stream is empty or does not
/// start as a conversation does (then nothing of it is shown).
async fn started_as(
    inner: &Inner,
    conversation_id: Uuid,
) -> ApiResult<Option<(Uuid, Option<Uuid>)>> {
    let stream = proto_events::streams::conversation(conversation_id);
    let first = inner
        .store
        .read_stream(&stream, Direction::Forwards, StreamFrom::Start, 1)
        .await?;
    let Some(envelope) = first
        .first()
        .and_then(|recorded| switchboard_codec::decode(recorded).ok())
    else {
        return Ok(None);
    };
    let owner = |visibility: &ConversationVisibility| match visibility {
        ConversationVisibility::Shared => None,
        ConversationVisibility::Private { owner_user_id } => Some(*owner_user_id),
    };
    Ok(match &envelope.payload {
        DomainEvent::ConversationStarted(e) => Some((e.inbox_id, owner(&e.visibility))),
        DomainEvent::MessageFiltered(e) => {
            let private = match &e.visibility {
                Some(visibility) => owner(visibility),
                // Recorded before v2: the channel's access decided it.
                None => {
                    let view = inner.directory().await?;
                    view.directory
                        .channels
                        .get(&e.message.channel_id)
                        .and_then(|channel| channel.private_owner())
                }
            };
            Some((e.inbox_id, private))
        }
        _ => None,
    })
}

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
