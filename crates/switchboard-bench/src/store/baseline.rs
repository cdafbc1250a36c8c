//! The baselines of the store suite: the same rows written and read with plain `rusqlite`.
//!
//! A baseline is what the hardware and SQLite can do with no store in between: one connection, the
//! store's own schema and pragmas (both come from `switchboard_store_sqlite::schema`, so they cannot
//! drift apart), and rows with the same contents. What the store adds on top (a writer thread and
//! queue, an optimistic-concurrency check and an idempotency lookup per append, a savepoint per
//! append, the SHA-256 chain, decoding into `RecordedEvent`) is exactly what the ratio measures.
//! The baseline stores a constant 32-byte dummy in the `hash` column instead of computing the chain.

use std::hint::black_box;
use std::path::Path;

use anyhow::Context as _;
use chrono::Utc;
use rusqlite::{Connection, TransactionBehavior, params};
use switchboard_store::NewEvent;
use switchboard_store_sqlite::schema;

/// Stands in for the hash chain: the baseline does not compute SHA-256.
const DUMMY_HASH: [u8; 32] = [0x5a; 32];

const INSERT: &str = "INSERT INTO events (position, event_id, stream_id, stream, stream_version, \
                      event_type, schema_version, recorded_at, metadata, payload, hash) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// The stream row every append keeps current, as the store does (one upsert per append).
const UPSERT_STREAM: &str = "INSERT INTO streams (name, version) VALUES (?1, ?2) \
                             ON CONFLICT (name) DO UPDATE SET version = excluded.version \
                             RETURNING id";

const SCAN: &str = "SELECT position, event_id, stream, stream_version, event_type, schema_version, \
                    recorded_at, metadata, payload, hash FROM events ORDER BY position";

/// A raw writer on a fresh database with the store's schema and pragmas.
#[derive(Debug)]
pub(crate) struct RawWriter {
    conn: Connection,
    last_position: i64,
}

impl RawWriter {
    pub(crate) fn create(path: &Path) -> anyhow::Result<RawWriter> {
        let conn = schema::open_writer(path)
            .with_context(|| format!("opening baseline database {}", path.display()))?;
        Ok(RawWriter {
            conn,
            last_position: 0,
        })
    }

    /// Inserts `events` as versions `first_version..` of `stream` in one `BEGIN IMMEDIATE`
    /// transaction (one commit, one fsync), like one store append without the checks.
    pub(crate) fn append(
        &mut self,
        stream: &str,
        first_version: u64,
        events: &[NewEvent],
    ) -> anyhow::Result<()> {
        let recorded_at = Utc::now().timestamp_micros();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let last_version = (first_version + events.len() as u64).saturating_sub(1) as i64;
            let stream_id: i64 = tx
                .prepare_cached(UPSERT_STREAM)?
                .query_row(params![stream, last_version], |row| row.get(0))?;
            let mut insert = tx.prepare_cached(INSERT)?;
            for (i, event) in events.iter().enumerate() {
                let position = self.last_position + 1;
                insert.execute(params![
                    position,
                    event.event_id.as_bytes(),
                    stream_id,
                    stream,
                    (first_version + i as u64) as i64,
                    event.event_type,
                    i64::from(event.schema_version),
                    recorded_at,
                    event.metadata,
                    event.payload,
                    DUMMY_HASH,
                ])?;
                self.last_position = position;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// One row read back as owned values, the least a caller of a scan could ask for.
#[derive(Debug)]
#[expect(dead_code, reason = "only built, to be handed to `black_box`")]
struct RawRow {
    position: i64,
    event_id: Vec<u8>,
    stream: String,
    stream_version: i64,
    event_type: String,
    schema_version: i64,
    recorded_at: i64,
    metadata: Vec<u8>,
    payload: Vec<u8>,
    hash: Vec<u8>,
}

/// Reads every row of the database at `path` in position order into owned values, on a fresh
/// read-only connection opened like the store's readers. Returns how many rows it read.
pub(crate) fn scan(path: &Path) -> anyhow::Result<u64> {
    let conn = schema::open_reader(path)
        .with_context(|| format!("opening {} for the baseline scan", path.display()))?;
    let mut stmt = conn.prepare(SCAN)?;
    let mut rows = stmt.query([])?;
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        black_box(RawRow {
            position: row.get(0)?,
            event_id: row.get(1)?,
            stream: row.get(2)?,
            stream_version: row.get(3)?,
            event_type: row.get(4)?,
            schema_version: row.get(5)?,
            recorded_at: row.get(6)?,
            metadata: row.get(7)?,
            payload: row.get(8)?,
            hash: row.get(9)?,
        });
        count += 1;
    }
    Ok(count)
}
