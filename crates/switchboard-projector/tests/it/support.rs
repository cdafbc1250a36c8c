//! A counting projector, a store with events, and waiting helpers.

use std::sync::Arc;

use proto_events::event::InboxCreated;
use proto_events::{Actor, DomainEvent, Envelope, Metadata};
use rusqlite::{Connection, Transaction, params};
use switchboard_projector::{ApplyError, Projector};
use switchboard_store::{EventStore, ExpectedVersion, NewEvent, Position};
use switchboard_store_sqlite::SqliteStore;
use uuid::Uuid;

/// Records every event it sees once, keyed by position (a second application would violate the
/// key), and counts events per stream.
#[derive(Debug)]
pub(crate) struct Counting {
    pub(crate) name: &'static str,
    /// Fails on the event at this position, when set.
    pub(crate) fail_at: Option<u64>,
}

/// A projector that fails on every event while `failing` is set (to make a rebuild fail).
#[derive(Debug)]
pub(crate) struct Switchable {
    pub(crate) failing: std::sync::atomic::AtomicBool,
}

impl Projector for Switchable {
    fn name(&self) -> &'static str {
        "switchable"
    }

    fn version(&self) -> u32 {
        1
    }

    fn migrate(&self, conn: &Connection) -> rusqlite::Result<()> {
        Counting {
            name: "switchable",
            fail_at: None,
        }
        .migrate(conn)
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), ApplyError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ApplyError::Inconsistent("switched off".into()));
        }
        Counting {
            name: "switchable",
            fail_at: None,
        }
        .apply(tx, event)
    }
}

impl Projector for Counting {
    fn name(&self) -> &'static str {
        self.name
    }

    fn version(&self) -> u32 {
        1
    }

    fn migrate(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE seen (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, event_type TEXT NOT NULL);
             CREATE TABLE per_stream (stream TEXT PRIMARY KEY, events INTEGER NOT NULL);",
        )
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), ApplyError> {
        if self.fail_at == Some(event.position) {
            return Err(ApplyError::Inconsistent(
                "refusing this event on purpose".into(),
            ));
        }
        tx.execute(
            "INSERT INTO seen (position, stream, event_type) VALUES (?1, ?2, ?3)",
            params![event.position as i64, event.stream, event.event_type],
        )?;
        tx.execute(
            "INSERT INTO per_stream (stream, events) VALUES (?1, 1) \
             ON CONFLICT (stream) DO UPDATE SET events = events + 1",
            params![event.stream],
        )?;
        Ok(())
    }
}

pub(crate) fn counting(name: &'static str) -> Arc<dyn Projector> {
    Arc::new(Counting {
        name,
        fail_at: None,
    })
}

/// Appends `n` events over 5 streams, `per_append` at a time.
pub(crate) async fn append(store: &SqliteStore, n: usize, per_append: usize) -> Position {
    let mut last = Position::START;
    let metadata = Metadata {
        actor: Actor::System {
            component: "test".into(),
        },
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        occurred_at: chrono::Utc::now(),
        idempotency_key: None,
        command_fingerprint: None,
    };
    for chunk in (0..n).collect::<Vec<_>>().chunks(per_append) {
        let events = chunk
            .iter()
            .map(|i| {
                let event: DomainEvent = InboxCreated {
                    inbox_id: Uuid::now_v7(),
                    name: format!("Inbox {i}"),
                }
                .into();
                NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: event.event_type().into(),
                    schema_version: event.schema_version(),
                    metadata: metadata.encode(),
                    payload: event.encode(),
                }
            })
            .collect();
        let stream = format!("inbox-{}", chunk[0] % 5);
        last = store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .unwrap()
            .last_position;
    }
    last
}

pub(crate) fn seen(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT count(*), coalesce(max(position), 0) FROM seen",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
