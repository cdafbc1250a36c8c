//! [`Reactor`]: a reactor's task, and how far it has got, as its starter holds them.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use switchboard_store::Position;
use tokio::sync::watch;

use crate::ServiceError;

/// A running reactor of kind `R` (routing, bots, retention): each kind starts with its own
/// `spawn`.
pub struct Reactor<R> {
    /// The last position folded and acted upon.
    pub processed: watch::Receiver<Position>,
    /// The task; it ends with the store's subscription, or with the error that stopped it.
    pub task: tokio::task::JoinHandle<Result<(), ServiceError>>,
    kind: PhantomData<R>,
}

impl<R> Reactor<R> {
    /// Spawns `run`, which reports each position it has folded and acted upon.
    pub(crate) fn start<F>(run: impl FnOnce(watch::Sender<Position>) -> F) -> Reactor<R>
    where
        F: Future<Output = Result<(), ServiceError>> + Send + 'static,
    {
        let (processed_tx, processed) = watch::channel(Position::START);
        Reactor {
            processed,
            task: tokio::spawn(run(processed_tx)),
            kind: PhantomData,
        }
    }
}

impl<R> fmt::Debug for Reactor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("kind", &std::any::type_name::<R>())
            .field("processed", &*self.processed.borrow())
            .finish_non_exhaustive()
    }
}
