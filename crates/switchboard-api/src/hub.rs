//! The live feed behind subscriptions: one task follows the store's log and broadcasts each
//! event once every read model includes it, so a subscriber that reads the read models on an
//! event sees that event's effects.
//!
//! Started by the first subscription, from the store's head then ([`Hub::start`]). Each
//! subscriber has `Limits::live_buffer` events of room; one that falls further behind is told so
//! (`RecvError::Lagged`) and reads what it missed from the store (see `subscription`).
//!
//! What subscribers read on an event is read once for all of them: the conversation an event
//! belongs to is looked up in the thread view on the first subscriber's request and shared
//! ([`Announced::conversation`]), so an inbound message costs one read-model query however many
//! `viewerEvents` subscribers judge it.
//!
//! When the store's feed fails (or ends while the server runs), the task follows it again from
//! the last event it announced, after a backoff that doubles from [`FIRST_BACKOFF`] up to
//! [`MAX_BACKOFF`], so no event is skipped. If it has not recovered within
//! `Limits::feed_recovery`, it gives up: every subscriber is sent [`Announcement::Failed`]
//! (their subscriptions end with UNAVAILABLE) and the next subscription starts a new feed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use proto_events::Envelope;
use switchboard_projector::{ProjectionRuntime, RuntimeError};
use switchboard_store::{EventStore, Position, RecordedEvent};
use thread_view::ConversationHeader;
use tokio::sync::{OnceCell, broadcast};
use tokio::time::Instant;

use crate::error::{ApiError, ApiResult};
use crate::state::Inner;
use crate::types::event::conversation_of;

/// The first wait before following the store again after its feed failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long an event waits for the read models before it is announced anyway: a stalled
/// projector must not stop live updates. The wait is once per spell of lag, not once per
/// event ([`Patience`]).
pub(crate) const ANNOUNCE_WAIT: Duration = Duration::from_secs(10);

/// How long the feed still waits for read models that are behind: one deadline from the first
/// event they did not show in time, shared by every event after it until they have caught up
/// with what was announced. A read model that stalls (running, but not getting on), or falls
/// far behind, then holds live updates back by [`ANNOUNCE_WAIT`] once; with a wait of its own
/// for each event, the n-th event queued behind it went out up to n × [`ANNOUNCE_WAIT`] late (a
/// greeting, then a visitor's message, each ten seconds later). A read model whose projector
/// failed is not waited for at all (`wait_for` says so at once), as before.
#[derive(Debug, Default)]
struct Patience {
    /// The deadline of the current spell of lag; `None` while the read models keep up.
    until: Option<Instant>,
}

impl Patience {
    /// Until when to wait for the read models to show the next event, now being `now`.
    fn deadline(&mut self, now: Instant) -> Instant {
        *self.until.get_or_insert(now + ANNOUNCE_WAIT)
    }

    /// The read models showed the event: the next one that they do not gets a full wait.
    fn kept_up(&mut self) {
        self.until = None;
    }

    /// Whether the current spell of lag has used up its wait (the read models are behind).
    fn given_up(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now >= until)
    }
}

/// An event of the log, ready to be sent to subscribers.
#[derive(Debug)]
pub(crate) struct Announced {
    pub(crate) envelope: Envelope,
    /// The conversation the event belongs to, as the thread view had it when first asked.
    conversation: OnceCell<Option<ConversationHeader>>,
}

impl Announced {
    pub(crate) fn new(envelope: Envelope) -> Announced {
        Announced {
            envelope,
            conversation: OnceCell::new(),
        }
    }

    /// The conversation the event belongs to (none for other events), as the thread view has
    /// it: read on the first call, shared by every later one.
    pub(crate) async fn conversation(
        &self,
        inner: &Inner,
    ) -> ApiResult<Option<ConversationHeader>> {
        let Some(id) = conversation_of(&self.envelope.stream) else {
            return Ok(None);
        };
        let header = self
            .conversation
            .get_or_try_init(|| async {
                inner.metrics.subscription_read();
                inner
                    .query("thread_view", move |conn| {
                        thread_view::conversation(conn, id)
                    })
                    .await
            })
            .await?;
        Ok(header.clone())
    }
}

/// What the feed broadcasts.
#[derive(Debug, Clone)]
pub(crate) enum Announcement {
    /// The next event of the log.
    Event(Arc<Announced>),
    /// The feed gave up following the store; nothing follows.
    Failed,
}

/// The feed.
#[derive(Debug)]
pub(crate) struct Hub {
    sender: broadcast::Sender<Announcement>,
    /// Set (before [`Announcement::Failed`] is sent) when the feed gives up.
    failed: Arc<AtomicBool>,
    /// The position of the last event announced (set before it is sent).
    announced: Arc<AtomicU64>,
}

impl Hub {
    /// Starts following the log from its head, on the current runtime.
    pub(crate) async fn start(inner: &Inner) -> ApiResult<Hub> {
        let head = inner.store.head().await?;
        let (sender, _) = broadcast::channel(inner.limits.live_buffer.max(1));
        let failed = Arc::new(AtomicBool::new(false));
        let announced = Arc::new(AtomicU64::new(head.0));
        let feed = Feed {
            announced: announced.clone(),
            store: inner.store.clone(),
            projections: inner.projections.clone(),
            sender: sender.clone(),
            failed: failed.clone(),
            recovery: inner.limits.feed_recovery,
            patience: Patience::default(),
        };
        let closing = inner.closing();
        tokio::spawn(async move {
            tokio::select! {
                () = feed.follow(head) => {}
                () = closing => {}
            }
        });
        Ok(Hub {
            sender,
            failed,
            announced,
        })
    }

    /// The position of the last event announced: a receiver made before reading it gets every
    /// event after it, or is told it lagged.
    pub(crate) fn announced(&self) -> Position {
        Position(self.announced.load(Ordering::SeqCst))
    }

    /// Whether the feed gave up.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// A receiver of every event announced from now on; UNAVAILABLE if the feed gave up.
    pub(crate) fn subscribe(&self) -> ApiResult<broadcast::Receiver<Announcement>> {
        let receiver = self.sender.subscribe();
        // The flag is set before `Failed` is sent: a receiver made after the send sees it.
        if self.failed() {
            return Err(unavailable());
        }
        Ok(receiver)
    }
}

/// The error a subscription ends with when the feed gave up.
pub(crate) fn unavailable() -> ApiError {
    ApiError::Unavailable(
        "live updates stopped: the server could not follow the event store; subscribe again \
         later, with `after`, to miss nothing"
            .to_owned(),
    )
}

/// The task that follows the store.
struct Feed {
    announced: Arc<AtomicU64>,
    store: Arc<dyn EventStore>,
    projections: Arc<ProjectionRuntime>,
    sender: broadcast::Sender<Announcement>,
    failed: Arc<AtomicBool>,
    recovery: Duration,
    /// How long announcing still waits for the read models.
    patience: Patience,
}

impl Feed {
    /// Announces every event after `after`, following the store again whenever its feed
    /// fails, until it has not recovered for `recovery`.
    async fn follow(mut self, mut after: Position) {
        let mut backoff = FIRST_BACKOFF;
        let mut failing_since: Option<Instant> = None;
        loop {
            let opened = Instant::now();
            let mut progressed = false;
            let mut events = self.store.subscribe_all(after);
            let failure = loop {
                match events.next().await {
                    Some(Ok(recorded)) => {
                        progressed = true;
                        after = recorded.position;
                        self.announce(&recorded).await;
                    }
                    Some(Err(e)) => break e.to_string(),
                    None => break "the store's feed ended".to_owned(),
                }
            };
            // A feed that delivered, or lasted, was a recovery: count anew from this failure.
            if progressed || opened.elapsed() >= self.recovery {
                failing_since = None;
                backoff = FIRST_BACKOFF;
            }
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.recovery {
                tracing::error!(error = %failure, after = after.0,
                    "subscriptions: the store's feed did not recover; ending every subscription");
                self.failed.store(true, Ordering::SeqCst);
                let _ = self.sender.send(Announcement::Failed);
                return;
            }
            tracing::warn!(error = %failure, after = after.0, retry_in = ?backoff,
                "subscriptions: the store's feed failed; following it again");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Sends `recorded` to every subscriber once the read models include it.
    async fn announce(&mut self, recorded: &RecordedEvent) {
        let envelope = match switchboard_codec::decode(recorded) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::error!(position = recorded.position.0, error = %e,
                    "subscriptions: an event does not decode; skipped");
                return;
            }
        };
        let now = Instant::now();
        if self.patience.given_up(now) {
            // The spell is over once the read models show what was announced before this
            // event: from then on each event waits for them again.
            let previous = Position(self.announced.load(Ordering::SeqCst));
            if self.projections.wait_for(previous, now).await.is_ok() {
                self.patience.kept_up();
                tracing::info!(
                    position = previous.0,
                    "subscriptions: the read models caught up with the live feed"
                );
            }
        }
        let waited_out = self.patience.given_up(now);
        let deadline = self.patience.deadline(now);
        match self.projections.wait_for(recorded.position, deadline).await {
            Ok(()) => self.patience.kept_up(),
            // Lag: said once per spell, not for every event of it.
            Err(e @ RuntimeError::Timeout { .. }) => {
                if !waited_out {
                    tracing::warn!(position = recorded.position.0, error = %e,
                        "subscriptions: announcing events the read models do not show yet");
                }
            }
            // A failed projector is not lag (`wait_for` answers at once, as it always did):
            // nothing to wait out.
            Err(e) => {
                self.patience.kept_up();
                tracing::warn!(position = recorded.position.0, error = %e,
                    "subscriptions: announcing an event the read models do not show yet");
            }
        }
        self.announced.store(recorded.position.0, Ordering::SeqCst);
        // No receivers is fine: nobody is subscribed right now.
        let _ = self
            .sender
            .send(Announcement::Event(Arc::new(Announced::new(envelope))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spell_of_lag_waits_once_for_all_its_events() {
        let start = Instant::now();
        let mut patience = Patience::default();
        // The first event the read models do not show waits the full time...
        assert_eq!(patience.deadline(start), start + ANNOUNCE_WAIT);
        assert!(!patience.given_up(start));
        // ...and every event after it shares that deadline, however late it comes.
        let later = start + Duration::from_secs(3);
        assert_eq!(patience.deadline(later), start + ANNOUNCE_WAIT);
        let past = start + ANNOUNCE_WAIT + Duration::from_secs(1);
        assert!(patience.given_up(past));
        assert_eq!(patience.deadline(past), start + ANNOUNCE_WAIT);
        // Once the read models show an event again, the next spell gets a full wait.
        patience.kept_up();
        assert!(!patience.given_up(past));
        assert_eq!(patience.deadline(past), past + ANNOUNCE_WAIT);
    }
}
