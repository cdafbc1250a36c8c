//! A batch's transaction with its statements prepared once for the whole batch.
//!
//! rusqlite's statement cache finds a statement by hashing its SQL text, and hashes it again to
//! put it back after each use: for the long INSERTs of a read model that is a few thousand
//! instructions per event, more than SQLite takes to run the statement. [`BatchTx`] takes each
//! statement out of that cache once per batch and keeps it, keyed by the address of its SQL
//! text (a `&'static str`), until the batch ends.

use std::cell::RefCell;
use std::ops::Deref;

use rusqlite::{CachedStatement, Connection, Params, Row};

/// A batch's transaction, for [`crate::Projector::apply_batch`]: use it wherever the
/// transaction goes (it derefs to its connection), and its [`BatchTx::execute_cached`] and
/// [`BatchTx::query_row_cached`] find a statement the batch has already used without hashing
/// its text. Statements go back to the connection's cache when it is dropped, so it must not
/// outlive the batch (it borrows the transaction, so it cannot).
pub struct BatchTx<'a> {
    tx: &'a Connection,
    /// The statements taken from the connection's cache so far, by SQL text address. A batch
    /// runs a few dozen distinct statements at most, so a linear search of pointers is the
    /// cheapest lookup.
    prepared: RefCell<Vec<(&'static str, CachedStatement<'a>)>>,
}

impl std::fmt::Debug for BatchTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchTx")
            .field("prepared", &self.prepared.borrow().len())
            .finish()
    }
}

impl<'a> BatchTx<'a> {
    /// Statements on `tx` (the batch's transaction), prepared once each for as long as this
    /// value lives.
    pub fn new(tx: &'a Connection) -> Self {
        Self {
            tx,
            prepared: RefCell::new(Vec::new()),
        }
    }

    /// The statement for `sql`, taken out of the batch's set (or the connection's cache the
    /// first time). Taken out rather than borrowed, so a closure run while it executes may use
    /// the batch's statements too (a nested use of the same text prepares a second copy).
    fn take(&self, sql: &'static str) -> rusqlite::Result<(&'static str, CachedStatement<'a>)> {
        let found = {
            let mut prepared = self.prepared.borrow_mut();
            prepared
                .iter()
                .position(|(text, _)| same_text(text, sql))
                .map(|index| prepared.swap_remove(index))
        };
        match found {
            Some(entry) => Ok(entry),
            None => Ok((sql, self.tx.prepare_cached(sql)?)),
        }
    }

    /// Keeps `entry` for the rest of the batch, unless a nested use already put the same
    /// statement back: then this copy goes back to the connection's cache.
    fn put_back(&self, entry: (&'static str, CachedStatement<'a>)) {
        let mut prepared = self.prepared.borrow_mut();
        if !prepared.iter().any(|(text, _)| same_text(text, entry.0)) {
            prepared.push(entry);
        }
    }

    /// Runs `f` on the statement for `sql`, prepared once per batch.
    pub fn with_statement<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut CachedStatement<'a>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut entry = self.take(sql)?;
        let result = f(&mut entry.1);
        self.put_back(entry);
        result
    }

    /// `execute`, with the statement prepared once per batch.
    pub fn execute_cached<P: Params>(
        &self,
        sql: &'static str,
        params: P,
    ) -> rusqlite::Result<usize> {
        self.with_statement(sql, |statement| statement.execute(params))
    }

    /// `query_row`, with the statement prepared once per batch.
    pub fn query_row_cached<T, P: Params, F>(
        &self,
        sql: &'static str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>
    where
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.with_statement(sql, |statement| statement.query_row(params, f))
    }
}

/// Whether two SQL texts are the same statement: by address first (a call site's literal is
/// one address), by content when the addresses differ (the same constant may be several).
fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

impl Deref for BatchTx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Self::Target {
        self.tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    const INSERT: &str = "INSERT INTO t (a, b) VALUES (?1, ?2)";
    const SUM: &str = "SELECT sum(b) FROM t WHERE a = ?1";

    #[test]
    fn statements_run_repeatedly_and_nested_and_go_back_to_the_cache() -> rusqlite::Result<()> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch("CREATE TABLE t (a TEXT NOT NULL, b INTEGER NOT NULL)")?;
        let tx = conn.transaction()?;
        {
            let batch = BatchTx::new(&tx);
            for b in 1..=3 {
                assert_eq!(batch.execute_cached(INSERT, rusqlite::params!["x", b])?, 1);
            }
            // A statement used inside another's row closure: the same text again, prepared
            // a second time rather than borrowed twice.
            let nested: i64 = batch.query_row_cached(SUM, ["x"], |row| {
                let inner: i64 = batch.query_row_cached(SUM, ["x"], |r| r.get(0))?;
                Ok(row.get::<_, i64>(0)? + inner)
            })?;
            assert_eq!(nested, 12);
            assert_eq!(batch.prepared.borrow().len(), 2);
            // A failing statement is kept too, and the batch goes on.
            assert!(
                batch
                    .execute_cached("INSERT INTO t (a) VALUES (?1)", ["y"])
                    .is_err()
            );
            assert_eq!(batch.execute_cached(INSERT, rusqlite::params!["y", 5])?, 1);
        }
        tx.commit()?;
        let total: i64 = conn.query_row("SELECT sum(b) FROM t", [], |r| r.get(0))?;
        assert_eq!(total, 11);
        Ok(())
    }
}
