//! The write-side view: what deciding needs to know beyond the target aggregate, kept at the
//! store's head.
//!
//! It is a fold over the log, caught up before every decision, so a command is always decided
//! against everything committed before it started. In memory: the directory (access rules) and
//! the version of every directory stream (expected versions for setup commands), snapshotted
//! into the store's write index every [`SNAPSHOT_EVERY`] events, so a start folds only the
//! events after the last snapshot. What grows with history goes into the write index instead
//! (indexed tables of the backend, see `switchboard_store::index`): the conversation of every
//! e-mail Message-ID (threading), the contacts holding an association with each contact
//! (merges), and the use of every idempotency key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use proto_events::event::RecordKind;
use proto_events::{Actor, DomainEvent, Metadata, streams};
use serde::{Deserialize, Serialize};
use switchboard_domain::directory::Directory;
use switchboard_store::index::{IndexBatch, KeyOutcome, Link, LoggedKey, Thread};
use switchboard_store::{EventStore, Position, RecordedEvent};
use tokio::sync::{Mutex, RwLock, RwLockReadGuard};

use crate::ServiceError;
use switchboard_codec as codec;

/// How many events one catch-up read fetches.
const PAGE: usize = 4096;

/// The write side's knowledge of the log up to [`position`](Self::position).
#[derive(Debug, Default)]
pub struct WriteView {
    /// The last event folded in. It moves on while readers hold the view when the events
    /// folded in change nothing here (only the write index): what a reader sees is the log up
    /// to it.
    position: AtomicU64,
    /// The last directory event folded in: the directory is as of it.
    directory_position: Position,
    /// Users, teams, inboxes, channels and rules.
    pub directory: Directory,
    /// The last version of every directory stream.
    versions: HashMap<String, u64>,
}

/// The name of the view's snapshot in the write index.
const SNAPSHOT: &str = "write-view";

/// The layout of the snapshot; one of another layout is ignored (and the log folded again).
const SNAPSHOT_FORMAT: u32 = 1;

/// How many events may pass between snapshots: a start folds at most about this many.
const SNAPSHOT_EVERY: u64 = 20_000;

/// What a snapshot holds.
#[derive(Deserialize)]
struct Snapshot {
    format: u32,
    directory: Directory,
    versions: HashMap<String, u64>,
}

/// A [`Snapshot`] to save, borrowing the view.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: u32,
    directory: &'a Directory,
    versions: &'a HashMap<String, u64>,
}

/// The events whose e-mail Message-IDs are indexed for threading.
const THREADED: [&str; 4] = [
    "MessageReceived",
    "MessageFiltered",
    "ReplySent",
    "ChatReplyEmailed",
];

/// The events whose associations between contacts are indexed, for merges.
const LINKED: [&str; 2] = ["AssociationAdded", "AssociationRemoved"];

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

/// The view behind its lock, caught up by one task at a time.
///
/// Readers hold the view while they decide and append; catching up takes the write lock only
/// to fold in directory events, which are rare. Everything else a catch-up folds goes into the
/// store's write index, so commands in flight (waiting for their append to be durable) do not
/// hold back the next ones' catch-up, as they did when every catch-up took the write lock.
#[derive(Debug)]
pub(crate) struct SharedView {
    view: RwLock<WriteView>,
    /// Held while catching up; where the last snapshot was saved (or loaded from).
    folding: Mutex<Position>,
}

impl SharedView {
    /// The view at the store's head: from the last snapshot, with the events after it folded in.
    pub(crate) async fn open(store: &dyn EventStore) -> Result<SharedView, ServiceError> {
        let mut view = WriteView::default();
        let mut snapshot_at = Position::START;
        let head = store.head().await?;
        if let Some((position, body)) = store.write_index().snapshot(SNAPSHOT).await? {
            match serde_json::from_slice::<Snapshot>(&body) {
                // A snapshot past the head belongs to another log (one restored from a backup
                // beside a newer index): fold this one.
                Ok(_) if position > head => {
                    tracing::warn!(%position, %head, "write view snapshot past the log's head: folding the log");
                }
                Ok(snapshot) if snapshot.format == SNAPSHOT_FORMAT => {
                    view.position = AtomicU64::new(position.0);
                    view.directory_position = position;
                    snapshot_at = position;
                    view.directory = snapshot.directory;
                    view.versions = snapshot.versions;
                }
                Ok(_) => tracing::info!("write view snapshot of another format: folding the log"),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable write view snapshot: folding the log");
                }
            }
        }
        let shared = SharedView {
            view: RwLock::new(view),
            folding: Mutex::new(snapshot_at),
        };
        shared.catch_up(store, head).await?;
        Ok(shared)
    }

    /// The view as far as it has been folded.
    pub(crate) async fn as_is(&self) -> RwLockReadGuard<'_, WriteView> {
        self.view.read().await
    }

    /// The view, with at least everything up to `head` folded in.
    pub(crate) async fn at(
        &self,
        store: &dyn EventStore,
        head: Position,
    ) -> Result<RwLockReadGuard<'_, WriteView>, ServiceError> {
        {
            let view = self.view.read().await;
            if view.position() >= head {
                return Ok(view);
            }
        }
        self.catch_up(store, head).await?;
        Ok(self.view.read().await)
    }

    /// Folds in everything committed after the view's position, unless another task already
    /// folded up to `head` while this one waited for its turn: the directory here, Message-IDs
    /// and keyed commands into the store's write index.
    async fn catch_up(&self, store: &dyn EventStore, head: Position) -> Result<(), ServiceError> {
        let mut snapshot_at = self.folding.lock().await;
        let index = store.write_index();
        let mut from = self.view.read().await.position();
        if from >= head {
            return Ok(());
        }
        // Up to `head`, not on to whatever was appended meanwhile: commands keep appending
        // while this runs, and the tasks waiting their turn here need no more than their own
        // heads (each checks again when it gets its turn).
        while from < head {
            let page = store.read_all(from, PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            let mut batch = IndexBatch {
                position: last.position,
                ..IndexBatch::default()
            };
            let mut directory = Vec::new();
            for recorded in &page {
                directory.extend(read(recorded, &mut batch)?);
            }
            // The index first, then the view: a failure or a cancelled request leaves the
            // view where it was, and the page is read again (folding it into the index twice
            // changes nothing).
            if !batch.keys.is_empty() || !batch.threads.is_empty() || !batch.links.is_empty() {
                index.apply(batch).await?;
            }
            if directory.is_empty() {
                self.view.read().await.advance(last.position);
            } else {
                let mut view = self.view.write().await;
                for (position, stream, version, event) in directory {
                    view.directory.evolve(&event);
                    view.versions.insert(stream, version);
                    view.directory_position = position;
                }
                view.advance(last.position);
            }
            from = last.position;
        }
        if from.0 >= snapshot_at.0 + SNAPSHOT_EVERY {
            // A snapshot is an optimisation: failing to save one only makes the next start
            // fold more.
            let body = {
                let view = self.view.read().await;
                serde_json::to_vec(&SnapshotRef {
                    format: SNAPSHOT_FORMAT,
                    directory: &view.directory,
                    versions: &view.versions,
                })
            };
            let saved = match body {
                Ok(body) => index
                    .save_snapshot(SNAPSHOT, from, body)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = saved {
                tracing::warn!(error = %e, "saving the write view's snapshot failed");
            }
            *snapshot_at = from;
        }
        Ok(())
    }
}

impl WriteView {
    /// The last event folded in: the view holds the log up to it.
    pub fn position(&self) -> Position {
        Position(self.position.load(Ordering::Acquire))
    }

    /// The last directory event folded in: the directory has not changed since (what caches
    /// of values computed from the directory are keyed by).
    pub fn directory_position(&self) -> Position {
        self.directory_position
    }

    fn advance(&self, to: Position) {
        self.position.fetch_max(to.0, Ordering::AcqRel);
    }

    /// The version of a directory stream, `None` if it does not exist.
    pub fn version(&self, stream: &str) -> Option<u64> {
        self.versions.get(stream).copied()
    }
}

/// Reads one event: what it adds to the index goes into `batch`; a directory event is
/// returned, with its position, stream and version, for the caller to fold in.
fn read(
    recorded: &RecordedEvent,
    batch: &mut IndexBatch,
) -> Result<Option<(Position, String, u64, DomainEvent)>, ServiceError> {
    let mut directory = None;
    let metadata = if is_directory_stream(&recorded.stream) {
        let envelope = codec::decode(recorded)?;
        directory = Some((
            recorded.position,
            recorded.stream.clone(),
            recorded.stream_version,
            envelope.payload,
        ));
        envelope.metadata
    } else if THREADED.contains(&recorded.event_type.as_str()) {
        let envelope = codec::decode(recorded)?;
        batch.threads.extend(thread(&envelope.payload));
        envelope.metadata
    } else if LINKED.contains(&recorded.event_type.as_str()) {
        let envelope = codec::decode(recorded)?;
        batch.links.extend(link(&envelope.payload));
        envelope.metadata
    } else {
        // Other events matter only for their idempotency keys: decode the metadata alone.
        Metadata::decode(codec::raw(recorded))?
    };
    let Some(key) = metadata.idempotency_key else {
        return Ok(directory);
    };
    let outcome = KeyOutcome {
        stream: recorded.stream.clone(),
        stream_version: recorded.stream_version,
        first_position: recorded.position,
        last_position: recorded.position,
    };
    // A command's events are contiguous in one append: extend the previous one's span.
    if let Some(last) = batch.keys.last_mut()
        && last.correlation_id == metadata.correlation_id
        && last.key == key
        && last.outcome.stream == outcome.stream
        && last.outcome.last_position.next() == outcome.first_position
    {
        last.outcome.stream_version = outcome.stream_version;
        last.outcome.last_position = outcome.last_position;
        return Ok(directory);
    }
    batch.keys.push(LoggedKey {
        scope: key_scope(&metadata.actor),
        key,
        fingerprint: metadata.command_fingerprint,
        correlation_id: metadata.correlation_id,
        used_at: metadata.occurred_at,
        outcome,
    });
    Ok(directory)
}

/// The scope of an actor's idempotency keys in the write index.
pub(crate) fn key_scope(actor: &Actor) -> String {
    serde_json::to_string(actor).unwrap_or_default()
}

/// An association between two contacts, held in the stream of the first: a merge of the
/// second carries it over (see `CommandService::merge_contacts`).
fn link(event: &DomainEvent) -> Option<Link> {
    let (from, to, present) = match event {
        DomainEvent::AssociationAdded(e) => (e.from, e.to, true),
        DomainEvent::AssociationRemoved(e) => (e.from, e.to, false),
        _ => return None,
    };
    (from.kind == RecordKind::Contact && to.kind == RecordKind::Contact).then_some(Link {
        holder: from.id,
        other: to.id,
        present,
    })
}

/// The Message-ID of an e-mail in or out of a conversation, on the channel it came or went
/// through.
fn thread(event: &DomainEvent) -> Option<Thread> {
    let (conversation_id, channel_id, email) = match event {
        DomainEvent::MessageReceived(e) => {
            (e.conversation_id, e.message.channel_id, &e.message.email)
        }
        DomainEvent::MessageFiltered(e) => {
            (e.conversation_id, e.message.channel_id, &e.message.email)
        }
        DomainEvent::ReplySent(e) => (e.conversation_id, e.channel_id, &e.email),
        // A chat reply e-mailed from the inbox's address: the visitor's answer comes back
        // through that address's channel and continues the chat conversation.
        DomainEvent::ChatReplyEmailed(e) => {
            return Some(Thread {
                channel_id: e.email_channel_id,
                message_id: e.email.message_id.clone(),
                conversation_id: e.conversation_id,
            });
        }
        _ => return None,
    };
    email.as_ref().map(|email| Thread {
        channel_id,
        message_id: email.message_id.clone(),
        conversation_id,
    })
}
