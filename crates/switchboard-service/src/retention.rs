//! The retention reactor: per inbox, "erase conversations closed more than N days ago" (ADR
//! 0007), each erasure an event.
//!
//! It follows the event log and keeps, folded from it alone (never from read models), each
//! inbox's retention period (`InboxRetentionSet`) and each closed conversation: its inbox, the
//! event that closed it and when that was recorded, and its stream's version. A reopening
//! forgets the conversation until it is closed again, which starts the count afresh; an erasure
//! (by retention, or with its contact) forgets it for good. Open conversations, and mail that was
//! only ever filtered, are never erased by retention.
//!
//! Once it has folded the log up to the head it found at its start, and then every `interval`
//! ([`DEFAULT_INTERVAL`] unless told otherwise) after the end of the last, it **sweeps**: every
//! conversation of an inbox that keeps conversations N days, closed more than N days ago by the
//! service's clock, is erased with [`Command::EraseConversation`] by
//! `Actor::System { component: "retention" }`, caused by the closing event, with the idempotency
//! key `retention:<conversation>:<closing event>`, the reason `retention: closed more than N days
//! ago (inbox policy)` and the stream's version it folded as expected version, so a conversation
//! that moved meanwhile (reopened, written to) is left to the next sweep, decided on what the log
//! then says. The service then deletes the files only erased conversations reference and destroys
//! the conversation's key. A sweep with something to erase reads the whole log once for the files
//! ([`CommandService::prepare_conversation_erasure`]), and only what came since before each
//! erasure. Failures never stop the reactor: what was not erased is tried again at the next
//! sweep.
//!
//! It never erases twice: a start folds the log (from its snapshot in the write index, saved
//! every [`SNAPSHOT_EVERY`] events and after every sweep that erased something) before sweeping;
//! the key makes a second erasure of one closing (a crash between sending and folding, the
//! reactor of another node sweeping at the same time) a repeat that writes nothing; and an erased
//! conversation refuses every command. A retention erasure it folds that this process did not see
//! through (a process may have stopped between the event and the deletion of the files) is sent
//! again with its key at the next sweep, a repeat after which the service finishes the files and
//! the key, unless the key store records its key destroyed (the last step); a service that
//! destroys no keys keeps no such record, and then only those recorded less than
//! [`FINISH_WITHIN`] ago are sent again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use proto_events::{Actor, DomainEvent, streams};
use serde::{Deserialize, Serialize};
use switchboard_store::{EventStore, Position, RecordedEvent};
use tokio::sync::watch;
use uuid::Uuid;

use switchboard_codec as codec;

use crate::running::Reactor;
use crate::subject::{self, Scan};
use crate::{Command, CommandMeta, CommandService, ServiceError, snapshot};

/// How long after the end of one sweep the next begins unless configured: an hour.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// The shortest and longest interval between sweeps; a configured one is brought within them.
const INTERVAL_BOUNDS: (Duration, Duration) = (
    Duration::from_millis(1),
    Duration::from_secs(366 * 24 * 3600),
);

/// The component name of the actor the reactor erases as.
pub const COMPONENT: &str = "retention";

/// Without a key store's record of what was seen through, a retention erasure folded from the
/// log that this process did not see through is sent again if it was recorded less than this
/// long ago (a process stopped between the event and the files); older ones are taken as seen
/// through by the process that made them, or by an earlier start.
pub const FINISH_WITHIN: chrono::Duration = chrono::Duration::hours(24);

/// The name of the reactor's snapshot in the write index.
const SNAPSHOT: &str = "retention";

/// The layout of the snapshot; one of another layout is ignored (and the log folded again).
/// 2: unfinished erasures of any age, with when they were recorded.
const SNAPSHOT_FORMAT: u32 = 2;

/// How many events may pass between snapshots: a start folds at most about this many.
pub const SNAPSHOT_EVERY: u64 = 20_000;

/// A closed conversation, as retention sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Closed {
    /// Its inbox (a conversation never changes inbox).
    inbox_id: Uuid,
    /// The event that closed it: its erasure's cause and part of its key.
    closed_by: Uuid,
    /// When that event was recorded (its domain time).
    closed_at: DateTime<Utc>,
    /// The conversation stream's version as last folded: its erasure's expected version.
    version: u64,
}

/// A retention erasure in the log whose files and key may not have been seen to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unfinished {
    /// The erasure's idempotency key: sent again with it, the erasure is a repeat.
    key: String,
    /// The event that caused it (the closing).
    cause: Option<Uuid>,
    /// Its reason.
    reason: String,
    /// When it was recorded.
    erased_at: DateTime<Utc>,
}

/// Everything the reactor knows, folded from the log (and what its own sweeps did since).
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Each inbox's retention period in days; inboxes that keep conversations forever are not
    /// here.
    retention: HashMap<Uuid, u32>,
    /// Closed conversations, neither reopened nor erased since.
    closed: HashMap<Uuid, Closed>,
    /// Retention erasures to send again (see [`FINISH_WITHIN`]), by conversation.
    unfinished: BTreeMap<Uuid, Unfinished>,
    /// Conversations this reactor erased and saw through whose erasure it has not folded yet:
    /// folding it then leaves nothing to finish.
    finished: HashSet<Uuid>,
}

impl State {
    /// Folds one event in.
    fn fold(&mut self, recorded: &RecordedEvent) -> Result<(), ServiceError> {
        if !matches!(
            recorded.event_type.as_str(),
            "InboxRetentionSet"
                | "ConversationClosed"
                | "ConversationReopened"
                | "ConversationErased"
        ) {
            // Anything else written to a closed conversation (a late reply, a comment, a
            // delivery report) moves the version its erasure expects.
            if let Some(closed) = conversation_of(&recorded.stream)
                .and_then(|conversation_id| self.closed.get_mut(&conversation_id))
            {
                closed.version = recorded.stream_version;
            }
            return Ok(());
        }
        let envelope = codec::decode(recorded)?;
        match envelope.payload {
            DomainEvent::InboxRetentionSet(e) => match e.closed_days {
                Some(days) => {
                    self.retention.insert(e.inbox_id, days);
                }
                None => {
                    self.retention.remove(&e.inbox_id);
                }
            },
            DomainEvent::ConversationClosed(e) => {
                self.closed.insert(
                    e.conversation_id,
                    Closed {
                        inbox_id: e.inbox_id,
                        closed_by: recorded.event_id,
                        closed_at: envelope.metadata.occurred_at,
                        version: recorded.stream_version,
                    },
                );
            }
            DomainEvent::ConversationReopened(e) => {
                self.closed.remove(&e.conversation_id);
            }
            DomainEvent::ConversationErased(e) => {
                self.closed.remove(&e.conversation_id);
                let seen_through = self.finished.remove(&e.conversation_id);
                let by_retention = matches!(
                    &envelope.metadata.actor,
                    Actor::System { component } if component == COMPONENT
                );
                if by_retention
                    && !seen_through
                    && let Some(key) = envelope.metadata.idempotency_key
                {
                    self.unfinished.insert(
                        e.conversation_id,
                        Unfinished {
                            key,
                            cause: Some(envelope.metadata.causation_id),
                            reason: e.reason,
                            erased_at: envelope.metadata.occurred_at,
                        },
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The conversations to erase at `now`, oldest closing first: each with its closing and
    /// its inbox's retention period.
    fn due(&self, now: DateTime<Utc>) -> Vec<(Uuid, Closed, u32)> {
        let mut due: Vec<(Uuid, Closed, u32)> = self
            .closed
            .iter()
            .filter_map(|(conversation_id, closed)| {
                let days = *self.retention.get(&closed.inbox_id)?;
                let period = chrono::Duration::days(i64::from(days));
                (now - closed.closed_at > period).then(|| (*conversation_id, closed.clone(), days))
            })
            .collect();
        due.sort_by_key(|(conversation_id, closed, _)| (closed.closed_at, *conversation_id));
        due
    }
}

/// The conversation whose stream `stream` is, if it is one.
fn conversation_of(stream: &str) -> Option<Uuid> {
    let (category, id) = stream.split_once('-')?;
    if category != streams::CONVERSATION {
        return None;
    }
    Uuid::parse_str(id).ok()
}

/// The retention reactor's kind of [`Reactor`].
#[derive(Debug)]
pub enum RetentionKind {}

/// The running retention reactor.
#[derive(Debug)]
pub struct RetentionReactor {
    /// Its task, and the last position it has folded.
    pub reactor: Reactor<RetentionKind>,
    /// How many sweeps it has finished: the first once it has folded the log up to the head it
    /// found at its start, then one per interval.
    pub sweeps: watch::Receiver<u64>,
}

impl RetentionReactor {
    /// Starts the reactor on `service`'s store, sweeping every [`DEFAULT_INTERVAL`].
    pub fn spawn(service: Arc<CommandService>) -> RetentionReactor {
        RetentionReactor::spawn_every(service, DEFAULT_INTERVAL)
    }

    /// Starts the reactor on `service`'s store, sweeping `interval` after the end of each sweep
    /// (brought between a millisecond and a year).
    pub fn spawn_every(service: Arc<CommandService>, interval: Duration) -> RetentionReactor {
        let interval = interval.clamp(INTERVAL_BOUNDS.0, INTERVAL_BOUNDS.1);
        let (swept, sweeps) = watch::channel(0);
        let reactor = Reactor::start(move |processed| run(service, interval, processed, swept));
        RetentionReactor { reactor, sweeps }
    }
}

#[tracing::instrument(skip_all, name = "retention_reactor")]
async fn run(
    service: Arc<CommandService>,
    interval: Duration,
    processed: watch::Sender<Position>,
    swept: watch::Sender<u64>,
) -> Result<(), ServiceError> {
    let store: Arc<dyn EventStore> = service.store().clone();
    let index = store.write_index();
    let start_head = store.head().await?;
    let (mut state, mut saved): (State, Position) =
        snapshot::load(index.as_ref(), SNAPSHOT, SNAPSHOT_FORMAT, start_head).await?;
    let mut folded = saved;
    processed.send_replace(saved);
    let mut events = store.subscribe_all(saved);
    let next_sweep = tokio::time::sleep(interval);
    tokio::pin!(next_sweep);
    // Nothing is erased before the whole history up to the start is folded in.
    let mut caught_up = start_head <= saved;
    let mut sweep_now = caught_up;
    loop {
        if sweep_now {
            sweep_now = false;
            if sweep(&service, &mut state).await {
                // What the sweep saw through is remembered, so a start folding its erasures
                // does not send them again.
                save(index.as_ref(), &state, folded).await;
                saved = folded;
            }
            swept.send_modify(|sweeps| *sweeps += 1);
            next_sweep
                .as_mut()
                .reset(tokio::time::Instant::now() + interval);
        }
        tokio::select! {
            biased;
            () = &mut next_sweep, if caught_up => sweep_now = true,
            next = events.next() => {
                let Some(recorded) = next else {
                    return Ok(());
                };
                let recorded = recorded?;
                state.fold(&recorded)?;
                folded = recorded.position;
                if !caught_up && folded >= start_head {
                    caught_up = true;
                    sweep_now = true;
                }
                processed.send_replace(folded);
                if folded.0 >= saved.0 + SNAPSHOT_EVERY {
                    save(index.as_ref(), &state, folded).await;
                    saved = folded;
                }
            }
        }
    }
}

/// Saves the state, folded up to `position`. A snapshot is an optimisation: failing to save one
/// only makes the next start fold (and perhaps finish) more.
async fn save(index: &dyn switchboard_store::WriteIndex, state: &State, position: Position) {
    if let Err(e) = snapshot::save(index, SNAPSHOT, SNAPSHOT_FORMAT, state, position).await {
        tracing::warn!(error = %e, "saving retention's snapshot failed");
    }
}

/// The metadata of the reactor's erasures.
fn erasing(key: String, cause: Option<Uuid>, expected_version: Option<u64>) -> CommandMeta {
    CommandMeta {
        actor: Actor::System {
            component: COMPONENT.into(),
        },
        correlation_id: None,
        causation_id: cause,
        idempotency_key: Some(key),
        fingerprint: None,
        expected_version,
    }
}

/// Erases what is due at the service's clock and sends again the erasures left unfinished.
/// True when it erased or finished anything.
async fn sweep(service: &CommandService, state: &mut State) -> bool {
    let now = service.clock().now();
    let due = state.due(now);
    let mut unfinished: Vec<(Uuid, Unfinished)> = state
        .unfinished
        .iter()
        .map(|(conversation_id, unfinished)| (*conversation_id, unfinished.clone()))
        .collect();
    if !unfinished.is_empty() {
        let ids: Vec<Uuid> = unfinished.iter().map(|(id, _)| *id).collect();
        match service.erasures_seen_through(&ids).await {
            Ok(Some(seen_through)) => {
                for (id, seen_through) in ids.iter().zip(seen_through) {
                    if seen_through {
                        state.unfinished.remove(id);
                    }
                }
            }
            Ok(None) => state
                .unfinished
                .retain(|_, unfinished| now - unfinished.erased_at < FINISH_WITHIN),
            Err(error) => {
                tracing::warn!(%error, "reading which retention erasures were seen through failed; will retry");
            }
        }
        unfinished.retain(|(id, _)| state.unfinished.contains_key(id));
    }
    if due.is_empty() && unfinished.is_empty() {
        return false;
    }
    let mut scan = match service.prepare_conversation_erasure().await {
        Ok(scan) => scan,
        Err(error) => {
            tracing::warn!(%error, "retention deferred: reading the log for files failed");
            return false;
        }
    };
    let mut done = false;
    for (conversation_id, unfinished) in unfinished {
        if let Err(error) = bring_up_to_date(service, &mut scan).await {
            tracing::warn!(%error, "retention deferred: reading the log for files failed");
            return done;
        }
        let meta = erasing(unfinished.key, unfinished.cause, None);
        let command = Command::EraseConversation {
            conversation_id,
            reason: unfinished.reason,
            prepared: Some(scan.clone()),
        };
        match service.execute(meta, command).await {
            // A repeat: its files and key are seen to; or it cannot be erased by retention any
            // more (and never will).
            Ok(_) | Err(ServiceError::Domain(_)) => {
                state.unfinished.remove(&conversation_id);
                done = true;
            }
            Err(error) => {
                tracing::warn!(%conversation_id, %error, "finishing a retention erasure failed; will retry");
            }
        }
    }
    for (conversation_id, closed, days) in due {
        if let Err(error) = bring_up_to_date(service, &mut scan).await {
            tracing::warn!(%error, "retention deferred: reading the log for files failed");
            return done;
        }
        let key = format!("retention:{conversation_id}:{}", closed.closed_by);
        let meta = erasing(key, Some(closed.closed_by), Some(closed.version));
        let command = Command::EraseConversation {
            conversation_id,
            reason: format!("retention: closed more than {days} days ago (inbox policy)"),
            prepared: Some(scan.clone()),
        };
        match service.execute(meta, command).await {
            Ok(outcome) => {
                if !outcome.replayed {
                    tracing::info!(%conversation_id, days, "conversation erased by retention");
                }
                state.closed.remove(&conversation_id);
                state.finished.insert(conversation_id);
                done = true;
            }
            // Written to since it was folded (reopened by the customer, a late reply): the
            // next sweep decides on what the log then says.
            Err(ServiceError::Conflict { .. }) => {
                tracing::debug!(%conversation_id, "moved since it was folded; left to the next sweep");
            }
            // Erased meanwhile (with its contact): folding that forgets it.
            Err(ServiceError::Domain(error)) => {
                tracing::debug!(%conversation_id, %error, "not erased by retention");
            }
            Err(error) => {
                tracing::warn!(%conversation_id, %error, "retention erasure failed; will retry");
            }
        }
    }
    done
}

/// Brings `scan` up to the store's head. The commands that were given it have returned (so
/// dropped their handles): it is extended in place, not copied.
async fn bring_up_to_date(
    service: &CommandService,
    scan: &mut Arc<Scan>,
) -> Result<(), ServiceError> {
    let later =
        subject::scan_after(service.store().as_ref(), scan.head, &BTreeSet::new(), &[]).await?;
    Arc::make_mut(scan).extend(later);
    Ok(())
}
