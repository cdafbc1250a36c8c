//! Helpers for projector tests: build a read model from a list of events, the way the runtime
//! would (in batches, reopening between them as after a restart) or all at once (a rebuild), and
//! dump every table of a read model row by row so that two builds can be compared exactly.

// Test support compiled into the library: failures must panic with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use proto_events::Envelope;
use rusqlite::Connection;
use rusqlite::types::Value;

use crate::model::{apply_batch, open_for_writing};
use crate::projector::Projector;

/// Builds the read model of `projector` in `dir` from `events`, `batch` events per transaction,
/// closing and reopening the database between batches (a restart each time).
pub fn build_in_batches(
    projector: &dyn Projector,
    dir: &Path,
    events: &[Envelope],
    batch: usize,
) -> Connection {
    let path = dir.join(format!("{}.sqlite3", projector.name()));
    for chunk in events.chunks(batch.max(1)) {
        let (mut conn, checkpoint) = open_for_writing(&path, projector).expect("open read model");
        let fresh: Vec<Envelope> = chunk
            .iter()
            .filter(|e| e.position > checkpoint.position.0)
            .cloned()
            .collect();
        apply_batch(&mut conn, projector, &fresh).unwrap_or_else(|e| panic!("{e}"));
    }
    open_for_writing(&path, projector)
        .expect("open read model")
        .0
}

/// Builds the read model in one batch: what a rebuild produces.
pub fn build_at_once(projector: &dyn Projector, dir: &Path, events: &[Envelope]) -> Connection {
    build_in_batches(projector, dir, events, events.len().max(1))
}

/// Every row of every table the projector owns (not the runtime's `_projection`), sorted, as
/// printable values: equal dumps mean equal read models.
pub fn dump(conn: &Connection) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut tables = BTreeMap::new();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_projection' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for name in names {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows: Vec<Vec<String>> = stmt
            .query_map([], |row| {
                (0..columns)
                    .map(|i| row.get::<_, Value>(i).map(|v| format!("{v:?}")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        tables.insert(name, rows);
    }
    tables
}

/// The names of a read model's own indexes (not SQLite's automatic ones), sorted: what a test
/// of indexes built once caught up compares.
pub fn indexes(conn: &Connection) -> Vec<String> {
    conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .unwrap()
    .query_map([], |r| r.get(0))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}
