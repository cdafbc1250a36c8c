//! The live feed behind subscriptions: one task follows the store's log and broadcasts each
//! event once every read model includes it, so a subscriber that reads the read models on an
//! event sees that event's effects.
//!
//! Started on the first subscription. A subscriber that falls more than [`CAPACITY`] events
//! behind is told so and its subscription ends (it resubscribes, or replays with `events`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use proto_events::Envelope;
use tokio::sync::broadcast;

use crate::state::Inner;

/// Events buffered per subscriber.
pub(crate) const CAPACITY: usize = 4096;

/// The feed.
#[derive(Debug)]
pub(crate) struct Hub {
    sender: broadcast::Sender<Arc<Envelope>>,
}

impl Hub {
    /// Starts following the log from its head, on the current runtime.
    pub(crate) fn start(inner: &Inner) -> Hub {
        let (sender, _) = broadcast::channel(CAPACITY);
        let store = inner.store.clone();
        let projections = inner.projections.clone();
        let feed = sender.clone();
        tokio::spawn(async move {
            let head = match store.head().await {
                Ok(head) => head,
                Err(e) => {
                    tracing::error!(error = %e, "subscriptions: cannot read the store's head");
                    return;
                }
            };
            let mut events = store.subscribe_all(head);
            while let Some(next) = events.next().await {
                let recorded = match next {
                    Ok(recorded) => recorded,
                    Err(e) => {
                        tracing::error!(error = %e, "subscriptions: the store's feed failed");
                        return;
                    }
                };
                let envelope = match switchboard_codec::decode(&recorded) {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        tracing::error!(position = recorded.position.0, error = %e,
                            "subscriptions: an event does not decode; skipped");
                        continue;
                    }
                };
                // Announce it once the read models show it; a stopped projector must not stop
                // live updates, so after a bound it is announced anyway.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                if let Err(e) = projections.wait_for(recorded.position, deadline).await {
                    tracing::warn!(position = recorded.position.0, error = %e,
                        "subscriptions: announcing an event the read models do not show yet");
                }
                // No receivers is fine: nobody is subscribed right now.
                let _ = feed.send(Arc::new(envelope));
            }
        });
        Hub { sender }
    }

    /// A receiver of every event from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.sender.subscribe()
    }
}
