//! The write-side view: what deciding needs to know beyond the target aggregate, kept at the
//! store's head.
//!
//! It is a fold over the log, caught up before every decision, so a command is always decided
//! against everything committed before it started (and followed in the background as the log
//! grows, so that catching up is rarely left to the command). In memory: the directory (access rules) and
//! the version of every directory stream (expected versions for setup commands), snapshotted
//! into the store's write index every [`SNAPSHOT_EVERY`] events, so a start folds only the
//! events after the last snapshot. What grows with history goes into the write index instead
//! (indexed tables of the backend, see `switchboard_store::index`): the conversation of every
//! e-mail Message-ID (threading), the contacts holding an association with each contact
//! (merges), and the use of every idempotency key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures::StreamExt;

use proto_events::event::RecordKind;
use proto_events::{Actor, DomainEvent, Metadata, streams};
use serde::{Deserialize, Serialize};
use switchboard_domain::directory::Directory;
use switchboard_store::index::{IndexBatch, KeyOutcome, Link, LoggedKey, Thread, WriteIndex};
use switchboard_store::{EventStore, Position, RecordedEvent};
use tokio::sync::{Mutex, RwLock, RwLockReadGuard};
use tokio::task::AbortHandle;

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
    /// The task following the log ([`follow`]), stopped with the view.
    follower: OnceLock<AbortHandle>,
}

impl Drop for SharedView {
    fn drop(&mut self) {
        if let Some(follower) = self.follower.get() {
            follower.abort();
        }
    }
}

impl SharedView {
    /// The view at the store's head: from the last snapshot, with the events after it folded in,
    /// and from then on following the head in the background ([`follow`]).
    pub(crate) async fn open(store: &Arc<dyn EventStore>) -> Result<Arc<SharedView>, ServiceError> {
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
        let shared = Arc::new(SharedView {
            view: RwLock::new(view),
            folding: Mutex::new(snapshot_at),
            follower: OnceLock::new(),
        });
        shared.catch_up(store.as_ref(), head).await?;
        let follower = tokio::spawn(follow(Arc::downgrade(&shared), Arc::downgrade(store)));
        let _ = shared.follower.set(follower.abort_handle());
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

    /// Folds in everything committed after the view's position, unless another task (or the
    /// follower) already folded up to `head` while this one waited for its turn.
    async fn catch_up(&self, store: &dyn EventStore, head: Position) -> Result<(), ServiceError> {
        let mut snapshot_at = self.folding.lock().await;
        let index = store.write_index();
        let mut from = self.view.read().await.position();
        // Up to `head`, not on to whatever was appended meanwhile: commands keep appending
        // while this runs, and the tasks waiting their turn here need no more than their own
        // heads (each checks again when it gets its turn).
        while from < head {
            let page = store.read_all(from, PAGE).await?;
            if page.is_empty() {
                break;
            }
            from = self.fold(&page, index.as_ref()).await?;
        }
        self.snapshot(&mut snapshot_at, index.as_ref()).await;
        Ok(())
    }

    /// Folds in the events of `page` (consecutive in the log) past the view's position: the
    /// directory here, Message-IDs, associations and keyed commands into the store's write
    /// index. The caller holds `folding`. Returns the view's position after.
    async fn fold(
        &self,
        page: &[RecordedEvent],
        index: &dyn WriteIndex,
    ) -> Result<Position, ServiceError> {
        let from = self.view.read().await.position();
        let fresh = &page[page.partition_point(|e| e.position <= from)..];
        let Some(last) = fresh.last() else {
            return Ok(from);
        };
        let mut batch = IndexBatch {
            position: last.position,
            ..IndexBatch::default()
        };
        let mut directory = Vec::new();
        for recorded in fresh {
            directory.extend(read(recorded, &mut batch)?);
        }
        // The index first, then the view: a failure or a cancelled request leaves the view
        // where it was, and the page is read again (folding it into the index twice changes
        // nothing).
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
        Ok(last.position)
    }

    /// Saves a snapshot if [`SNAPSHOT_EVERY`] events passed since the last; the caller holds
    /// `folding` (`snapshot_at`).
    async fn snapshot(&self, snapshot_at: &mut Position, index: &dyn WriteIndex) {
        let at = self.view.read().await.position();
        if at.0 < snapshot_at.0 + SNAPSHOT_EVERY {
            return;
        }
        // A snapshot is an optimisation: failing to save one only makes the next start fold
        // more.
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
                .save_snapshot(SNAPSHOT, at, body)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = saved {
            tracing::warn!(error = %e, "saving the write view's snapshot failed");
        }
        *snapshot_at = at;
    }
}

/// Folds the log into the view as it is committed, so that a command rarely finds the view
/// behind the head it saw and has to fold (and wait for others' folding) before deciding: under
/// `switchboard-bench email` that wait was 1.3 ms of an incoming e-mail's 7.3 ms to its `250`,
/// 0.9 ms with the follower. Commands still catch up themselves when the follower is behind,
/// and whichever folds an event first folds it; the other skips it.
///
/// Holds neither the store nor the view between pages (the store closes when its users let it
/// go, which ends the subscription; the view's drop stops this task). After an error (a lost
/// database connection, a key that does not load) it subscribes again from the view's
/// position, after a pause that doubles up to [`FOLLOW_PAUSE_MAX`]; commands fold on their
/// own meanwhile, as they always can.
async fn follow(view: Weak<SharedView>, store: Weak<dyn EventStore>) {
    let mut pause = FOLLOW_PAUSE;
    loop {
        let (events, index) = {
            let (Some(store), Some(shared)) = (store.upgrade(), view.upgrade()) else {
                return;
            };
            let after = shared.view.read().await.position();
            (store.subscribe_all(after), store.write_index())
        };
        let mut pages = events.ready_chunks(PAGE);
        let error = loop {
            let Some(page) = pages.next().await else {
                // The store closed.
                return;
            };
            let Some(shared) = view.upgrade() else {
                return;
            };
            let mut events = Vec::with_capacity(page.len());
            let mut failed = None;
            for item in page {
                match item {
                    Ok(event) => events.push(event),
                    Err(e) => {
                        failed = Some(ServiceError::from(e));
                        break;
                    }
                }
            }
            let mut snapshot_at = shared.folding.lock().await;
            let folded = shared.fold(&events, index.as_ref()).await;
            shared.snapshot(&mut snapshot_at, index.as_ref()).await;
            drop(snapshot_at);
            if let Some(e) = failed.or(folded.err()) {
                break e;
            }
            pause = FOLLOW_PAUSE;
        };
        tracing::warn!(error = %error, pause_ms = pause.as_millis() as u64, "the write view stopped following the log; following again after a pause (commands fold it themselves meanwhile)");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(FOLLOW_PAUSE_MAX);
    }
}

/// The first pause of [`follow`] after an error.
const FOLLOW_PAUSE: Duration = Duration::from_millis(250);

/// The longest pause of [`follow`] after errors.
const FOLLOW_PAUSE_MAX: Duration = Duration::from_secs(30);

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
