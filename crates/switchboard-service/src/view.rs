//! The write-side view: what deciding needs to know beyond the target aggregate, kept at the
//! store's head.
//!
//! It is a fold over the whole log, rebuilt at startup and caught up before every decision, so a
//! command is always decided against everything committed before it started: the directory
//! (access rules), the version of every directory stream (expected versions for setup commands),
//! the conversation of every e-mail Message-ID (threading), and the outcome of every command that
//! carried an idempotency key (so repeating it, even after a restart, returns the same result and
//! writes nothing).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use proto_events::{Actor, DomainEvent, Metadata, streams};
use switchboard_domain::directory::Directory;
use switchboard_store::{EventStore, Position, RecordedEvent};
use uuid::Uuid;

use crate::ServiceError;
use crate::service::Outcome;
use switchboard_codec as codec;

/// How many events one catch-up read fetches.
const PAGE: usize = 4096;

/// The write side's knowledge of the log up to `position`.
#[derive(Debug, Default)]
pub struct WriteView {
    /// The last event folded in.
    pub position: Position,
    /// Users, teams, inboxes, channels and rules.
    pub directory: Directory,
    /// The last version of every directory stream.
    versions: HashMap<String, u64>,
    /// Outcomes of commands by `(actor, idempotency key)`.
    idempotent: HashMap<(Actor, String), KeyUse>,
    /// The conversation of every e-mail Message-ID seen, in or out, by the channel it went
    /// through, for threading replies within their channel.
    email_threads: HashMap<(Uuid, String), Uuid>,
}

/// The use of an idempotency key: what the command did, and what the key is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// What the command did (with `replayed` set, as a repeat reports it).
    pub outcome: Outcome,
    /// The digest of the request the key was sent with (`None`: not bound).
    pub fingerprint: Option<String>,
    /// The correlation id of the command that used it.
    pub correlation_id: Uuid,
    /// When it was used (domain time).
    pub occurred_at: DateTime<Utc>,
}

impl KeyUse {
    /// Whether the key still binds at `now`: used less than `lifetime` ago.
    pub fn live(&self, now: DateTime<Utc>, lifetime: chrono::Duration) -> bool {
        now - self.occurred_at < lifetime
    }

    /// Whether a command with `fingerprint` may repeat this use: the same request, or either
    /// side not bound.
    pub fn matches(&self, fingerprint: Option<&str>) -> bool {
        match (self.fingerprint.as_deref(), fingerprint) {
            (Some(used), Some(now)) => used == now,
            _ => true,
        }
    }
}

/// The events whose e-mail Message-IDs are indexed for threading.
const THREADED: [&str; 3] = ["MessageReceived", "MessageFiltered", "ReplySent"];

/// The streams the directory is folded from.
fn is_directory_stream(stream: &str) -> bool {
    matches!(
        streams::category(stream),
        streams::ORGANISATION
            | streams::USER
            | streams::TEAM
            | streams::BOT
            | streams::INBOX
            | streams::CHANNEL
    )
}

impl WriteView {
    /// Folds in everything committed after `self.position`.
    pub async fn catch_up(&mut self, store: &dyn EventStore) -> Result<(), ServiceError> {
        loop {
            let page = store.read_all(self.position, PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            let last = last.position;
            for recorded in &page {
                self.apply(recorded)?;
            }
            self.position = last;
        }
    }

    fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), ServiceError> {
        if is_directory_stream(&recorded.stream) {
            let envelope = codec::decode(recorded)?;
            self.directory.evolve(&envelope.payload);
            self.versions
                .insert(recorded.stream.clone(), recorded.stream_version);
            self.remember(recorded, envelope.metadata);
        } else if THREADED.contains(&recorded.event_type.as_str()) {
            let envelope = codec::decode(recorded)?;
            self.thread(&envelope.payload);
            self.remember(recorded, envelope.metadata);
        } else {
            // Other events matter only for their idempotency keys: decode the metadata alone.
            let metadata = Metadata::decode(codec::raw(recorded))?;
            self.remember(recorded, metadata);
        }
        Ok(())
    }

    /// Records the outcome of a command that carried an idempotency key. A command's events are
    /// contiguous in one append, so the outcome spans from its first to its last event; for a
    /// command that appended to several streams, the last append (its main stream) wins.
    fn remember(&mut self, recorded: &RecordedEvent, metadata: Metadata) {
        let Some(key) = metadata.idempotency_key else {
            return;
        };
        let fresh = Outcome {
            stream: recorded.stream.clone(),
            stream_version: recorded.stream_version,
            first_position: recorded.position,
            last_position: recorded.position,
            replayed: true,
            written: 0,
        };
        let fresh = KeyUse {
            outcome: fresh,
            fingerprint: metadata.command_fingerprint,
            correlation_id: metadata.correlation_id,
            occurred_at: metadata.occurred_at,
        };
        let used = self
            .idempotent
            .entry((metadata.actor, key))
            .or_insert_with(|| fresh.clone());
        let same_use = used.correlation_id == fresh.correlation_id;
        let outcome = &mut used.outcome;
        if same_use
            && outcome.stream == recorded.stream
            && outcome.last_position.next() == recorded.position
        {
            outcome.stream_version = recorded.stream_version;
            outcome.last_position = recorded.position;
        } else if outcome.last_position != recorded.position {
            *used = fresh;
        }
    }

    /// Indexes the Message-ID of an e-mail in or out of a conversation.
    fn thread(&mut self, event: &DomainEvent) {
        let (conversation_id, channel_id, email) = match event {
            DomainEvent::MessageReceived(e) => {
                (e.conversation_id, e.message.channel_id, &e.message.email)
            }
            DomainEvent::MessageFiltered(e) => {
                (e.conversation_id, e.message.channel_id, &e.message.email)
            }
            DomainEvent::ReplySent(e) => (e.conversation_id, e.channel_id, &e.email),
            _ => return,
        };
        if let Some(email) = email {
            self.email_threads
                .entry((channel_id, email.message_id.clone()))
                .or_insert(conversation_id);
        }
    }

    /// The conversation an e-mail with this Message-ID belongs to on `channel_id`, if one was
    /// seen there. Threading never crosses channels: a Message-ID cited in mail to one address
    /// (a private account, say) must not attach it to a conversation of another.
    pub fn email_thread(&self, channel_id: Uuid, message_id: &str) -> Option<Uuid> {
        self.email_threads
            .get(&(channel_id, message_id.to_owned()))
            .copied()
    }

    /// The version of a directory stream, `None` if it does not exist.
    pub fn version(&self, stream: &str) -> Option<u64> {
        self.versions.get(stream).copied()
    }

    /// The last use of `key` by `actor`, if there was one (live or expired).
    pub fn idempotent(&self, actor: &Actor, key: &str) -> Option<&KeyUse> {
        self.idempotent.get(&(actor.clone(), key.to_owned()))
    }
}
