//! What a projector is.

use proto_events::Envelope;
use rusqlite::{Connection, Transaction};

/// Folds events into tables it owns, in a SQLite database of its own.
///
/// Rules a projector keeps, so that a read model built incrementally equals one rebuilt from
/// scratch: its rows depend only on the events applied (never on the wall clock, randomness or
/// another read model), and `apply` does all its work through `tx`.
pub trait Projector: Send + Sync + 'static {
    /// A stable name: the read model lives in `<name>.sqlite3`. Lower-case, `[a-z0-9_-]`.
    fn name(&self) -> &'static str;

    /// The version of the tables and of what their rows mean. Changing it makes the runtime
    /// rebuild the read model from the log.
    fn version(&self) -> u32;

    /// Creates the tables and indexes in an empty database.
    fn migrate(&self, conn: &Connection) -> rusqlite::Result<()>;

    /// Applies one event, in log order, inside the batch's transaction. Events the projector
    /// does not care about are ignored (return `Ok`).
    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), ApplyError>;

    /// Applies a batch of events, in log order, inside one transaction (the one that also moves
    /// the checkpoint). The default applies them one by one with [`Projector::apply`].
    ///
    /// A projector overrides this to keep the rows many events of a batch touch (a
    /// conversation's header, its current cycle) in memory for the batch and write each once at
    /// its end ([`crate::BatchRows`]), instead of reading and writing it back for every event.
    /// Whatever it keeps must
    /// start from the tables at the beginning of the batch and be written to them before it
    /// returns: nothing may outlive the batch, so a restart (or a batch cut elsewhere) gives
    /// the same rows. Its statements should go through a [`crate::BatchTx`] made for the batch,
    /// so each is prepared once per batch rather than looked up by its text at every event.
    fn apply_batch(&self, tx: &Transaction<'_>, events: &[Event<'_>]) -> Result<(), EventError> {
        for (index, event) in events.iter().enumerate() {
            self.apply(tx, event.envelope)
                .map_err(|source| EventError { index, source })?;
        }
        Ok(())
    }

    /// Called in the transaction of a batch that brought the read model up to the head of the
    /// log as it was when read: the last batch of a catch-up (a rebuild, a start after
    /// downtime) and then every live batch. A read model that leaves work for when it has
    /// caught up, such as creating indexes it does not need while catching up, does it here;
    /// it must be cheap when there is nothing left to do. The default does nothing.
    fn caught_up(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let _ = tx;
        Ok(())
    }
}

/// One event of a batch, as the runtime hands it to [`Projector::apply_batch`].
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The decoded event (payload in the current schema version).
    pub envelope: &'a Envelope,
}

impl<'a> Event<'a> {
    /// The event of a batch for `envelope`.
    pub fn decoded(envelope: &'a Envelope) -> Self {
        Self { envelope }
    }
}

/// An event of a batch that [`Projector::apply_batch`] could not apply.
#[derive(Debug, thiserror::Error)]
#[error("event {index} of the batch: {source}")]
pub struct EventError {
    /// Its index in the batch.
    pub index: usize,
    /// Why.
    #[source]
    pub source: ApplyError,
}

/// Why a projector could not apply an event. The runtime stops that projector (only that one)
/// and reports the event's position and type with this error.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The read model's database failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The event contradicts what the read model holds (a bug in a projector or a decider).
    #[error("inconsistent event: {0}")]
    Inconsistent(String),
}
