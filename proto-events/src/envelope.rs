//! The envelope: what surrounds every payload in the store.
//!
//! The store keeps, per event, a few columns it assigns or indexes itself (id, stream, versions,
//! position, type, times) plus two opaque blobs: the payload and the [`Metadata`]. [`RawEvent`] is
//! that row borrowed from the store; [`Envelope::decode`] turns it into typed data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::wire::MissingField;
use crate::{DecodeError, DomainEvent};

/// A fresh event id: a UUIDv7, so ids sort by creation time and index well.
///
/// The event id is also the idempotency handle of an append: appending an event whose id is
/// already stored is a no-op, not a duplicate.
pub fn new_event_id() -> Uuid {
    Uuid::now_v7()
}

/// Who caused an event. Recorded on every event, so auditors can ask "who did this".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "ActorWire")]
pub enum Actor {
    /// A signed-in user (agent, admin, ...).
    User {
        /// The user's id.
        id: Uuid,
    },
    /// A customer, e.g. by writing a message.
    Contact {
        /// The contact's id.
        id: Uuid,
    },
    /// A bot answering on a channel.
    Bot {
        /// The bot's id.
        id: Uuid,
    },
    /// Switchboard itself, e.g. the router or the e-mail filter.
    System {
        /// Which part of the system, e.g. `"router"`; free text for audit display.
        component: String,
    },
    /// A channel integration, e.g. an inbound mail or a Messenger webhook, before any contact is
    /// known.
    Channel {
        /// The channel's id.
        id: Uuid,
    },
}

/// The kinds of [`Actor`], as stored in its `kind` field.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ActorKind {
    User,
    Contact,
    Bot,
    System,
    Channel,
}

/// An [`Actor`] as stored: one object whose `kind` says which other field it has. Decoded as a
/// plain struct, in one pass, and then checked: serde's own decoding of an internally tagged
/// enum buffers the whole object first, and every event has an actor or several.
#[derive(Deserialize)]
struct ActorWire {
    kind: ActorKind,
    id: Option<Uuid>,
    component: Option<String>,
}

impl TryFrom<ActorWire> for Actor {
    type Error = MissingField;

    fn try_from(wire: ActorWire) -> Result<Self, Self::Error> {
        let id = || wire.id.ok_or(MissingField("id"));
        Ok(match wire.kind {
            ActorKind::User => Actor::User { id: id()? },
            ActorKind::Contact => Actor::Contact { id: id()? },
            ActorKind::Bot => Actor::Bot { id: id()? },
            ActorKind::Channel => Actor::Channel { id: id()? },
            ActorKind::System => Actor::System {
                component: wire.component.ok_or(MissingField("component"))?,
            },
        })
    }
}

/// Who caused an event, when, and because of what: the event's metadata blob in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Who caused the event.
    pub actor: Actor,
    /// The id shared by everything that follows from one outside request (a mutation, a webhook):
    /// the command's id, carried along by every event and command it leads to.
    pub correlation_id: Uuid,
    /// The id of what directly caused this event: the command id, or the event id of the event a
    /// process manager reacted to.
    pub causation_id: Uuid,
    /// Domain time: when it happened, from the decider's [`Clock`](crate::clock::Clock). Response
    /// metrics are computed from this, not from the store's `recorded_at`.
    #[serde(deserialize_with = "crate::wire::utc_time")]
    pub occurred_at: DateTime<Utc>,
    /// The idempotency key the client sent with the command, if any: a retried command with the
    /// same key returns the events already recorded instead of deciding again.
    pub idempotency_key: Option<String>,
    /// A digest of the request the idempotency key was sent with, so that a different command
    /// with a used key is refused rather than answered with the first one's result. Absent
    /// without a key, and in events recorded before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_fingerprint: Option<String>,
}

impl Metadata {
    /// The JSON bytes the store keeps as the event's metadata.
    pub fn encode(&self) -> Vec<u8> {
        // Only strings, UUIDs and timestamps: serialising cannot fail.
        serde_json::to_vec(self).expect("metadata always serialises to JSON")
    }

    /// Decodes the metadata of a stored event alone, without its payload.
    pub fn decode(raw: RawEvent<'_>) -> Result<Metadata, DecodeError> {
        if let Some(metadata) = crate::wire::canonical_metadata(raw.metadata) {
            return Ok(metadata);
        }
        // Checked once as a whole, as payloads are (`DomainEvent::decode`).
        match std::str::from_utf8(raw.metadata) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(raw.metadata),
        }
        .map_err(|source| DecodeError::MalformedMetadata {
            event_id: raw.event_id,
            event_type: raw.event_type.to_owned(),
            schema_version: raw.schema_version,
            source,
        })
    }
}

/// One stored event as the store hands it over, before decoding.
///
/// The store applies upcasters before building it, or leaves that to [`Envelope::decode`]; either
/// way `schema_version` must be the version `payload` is in.
#[derive(Debug, Clone, Copy)]
pub struct RawEvent<'a> {
    /// The event's id (UUIDv7).
    pub event_id: Uuid,
    /// The stream the event belongs to, see [`crate::streams`].
    pub stream: &'a str,
    /// The event's index in its stream; the first event of a stream is version 0.
    pub stream_version: u64,
    /// The event's position in the whole store, assigned by the store; the first event is 1.
    pub position: u64,
    /// The stable type name, e.g. `"MessageReceived"`.
    pub event_type: &'a str,
    /// The schema version of `payload`.
    pub schema_version: u32,
    /// Store time: when the store committed the event.
    pub recorded_at: DateTime<Utc>,
    /// The JSON bytes of the [`Metadata`].
    pub metadata: &'a [u8],
    /// The JSON bytes of the payload.
    pub payload: &'a [u8],
}

/// A stored event, decoded: position data from the store, metadata, and the payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope<E = DomainEvent> {
    /// The event's id (UUIDv7), its idempotency handle.
    pub event_id: Uuid,
    /// The stream the event belongs to, see [`crate::streams`].
    pub stream: String,
    /// The event's index in its stream, from 0.
    pub stream_version: u64,
    /// The event's position in the whole store, from 1. Read models remember the last position
    /// they applied; it is also the read-your-writes token.
    pub position: u64,
    /// The stable type name.
    pub event_type: String,
    /// The schema version the payload was stored in. `payload` itself is always in the current
    /// version (see [`DomainEvent::schema_version`]).
    pub schema_version: u32,
    /// Store time: when the store committed the event.
    pub recorded_at: DateTime<Utc>,
    /// Who caused the event, when, and because of what.
    pub metadata: Metadata,
    /// The domain event.
    pub payload: E,
}

impl Envelope {
    /// Decodes a stored event, upcasting its payload to the current schema version if needed.
    pub fn decode(raw: RawEvent<'_>) -> Result<Self, DecodeError> {
        let metadata = Metadata::decode(raw)?;
        let payload = DomainEvent::decode(raw.event_type, raw.schema_version, raw.payload)?;
        Ok(Self {
            event_id: raw.event_id,
            stream: raw.stream.to_owned(),
            stream_version: raw.stream_version,
            position: raw.position,
            event_type: raw.event_type.to_owned(),
            schema_version: raw.schema_version,
            recorded_at: raw.recorded_at,
            metadata,
            payload,
        })
    }
}
