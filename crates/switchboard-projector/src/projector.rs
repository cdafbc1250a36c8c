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

/// Statements through SQLite's prepared-statement cache. Projectors run the same few statements
/// for every event; parsing and planning them each time costs more than executing them, so
/// `apply` should use these rather than `Connection::execute` and `Connection::query_row`.
pub trait CachedStatements {
    /// `execute`, with the statement prepared once per connection.
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;

    /// `query_row`, with the statement prepared once per connection.
    fn query_row_cached<T, P: rusqlite::Params, F>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>
    where
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl CachedStatements for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P: rusqlite::Params, F>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>
    where
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}
