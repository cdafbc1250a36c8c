//! What a log holds in the clear from before sealing began: `switchboard migrate encrypt`
//! (ADR 0007).
//!
//! Turning sealing on re-writes nothing (the hash chain covers every stored byte). [`migrate`]
//! first records, in the key store beside the log, the position from which this log is sealed
//! ([`SEALING_SINCE`], written once): every node that starts on the store afterwards seals what
//! it writes whatever its configuration says, so an old configuration cannot fall back to
//! writing in the clear. It then reads the log and records which data subjects have personal
//! fields stored in the clear (how many events, the first and last position), in one record
//! written at once, so a run that stops half-way leaves the last complete one. Erasing such a
//! subject redacts those events wherever they are read through the keys (`KeyedStore`,
//! `export`); the record says how much of a person's data is of that kind. A node already
//! running when sealing began writes in the clear until it restarts (PostgreSQL): running
//! `migrate` again indexes what was written since the last run, and keeps the first sealing
//! position. Two runs at once each write a complete record; the later one wins.
//!
//! These records hold ids and positions, no personal data, and are stored unsealed, like the
//! records of erasures, so that reading them needs no key.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_store::{EventStore, Position, SecretStore, StoreError};
use uuid::Uuid;

use crate::seal;

/// The key store's record of when sealing began.
pub const SEALING_SINCE: &str = "sealing-since";

/// The key store's record of what the log holds in the clear, and how far it was searched.
const INDEX: &str = "plaintext-index";

/// How many events [`migrate`] reads at a time.
const PAGE: usize = 4096;

/// When sealing began: nodes started after `at` seal every event they write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealingSince {
    /// The head of the log when sealing was turned on (a node already running then writes in
    /// the clear until it restarts).
    pub position: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// One data subject's personal fields stored in the clear.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InClear {
    /// How many events hold them.
    pub events: u64,
    /// The position of the first.
    pub first: u64,
    /// The position of the last.
    pub last: u64,
}

impl InClear {
    fn add(&mut self, position: u64) {
        if self.events == 0 {
            self.first = position;
        }
        self.events += 1;
        self.last = position;
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Index {
    /// The last position searched.
    through: u64,
    /// By data subject.
    subjects: BTreeMap<Uuid, InClear>,
    /// Events with personal values that name no data subject: no erasure redacts them.
    without_subject: u64,
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    /// When sealing began (set by the first run, kept by the later ones).
    pub sealing_since: SealingSince,
    /// Whether this run turned sealing on.
    pub turned_on: bool,
    /// The positions this run searched, after this one...
    pub searched_from: u64,
    /// ...up to this one (the head when it got there).
    pub searched_through: u64,
    /// Events with personal fields in the clear found by this run.
    pub found_events: u64,
    /// Events with personal fields in the clear in the whole log, by every run (those naming
    /// no data subject included).
    pub events_in_clear: u64,
    /// Data subjects those belong to.
    pub subjects_in_clear: u64,
    /// Events with personal values in the clear that name no data subject, which no erasure
    /// redacts (none in the event types of today; counted should one appear).
    pub without_subject: u64,
}

/// When sealing began on this log, if `migrate` ran on it.
pub async fn sealing_since(secrets: &dyn SecretStore) -> Result<Option<SealingSince>, StoreError> {
    secrets
        .get(SEALING_SINCE)
        .await?
        .map(|bytes| serde_json::from_slice(&bytes).map_err(StoreError::backend))
        .transpose()
}

async fn read_index(secrets: &dyn SecretStore) -> Result<Index, StoreError> {
    match secrets.get(INDEX).await? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(StoreError::backend),
        None => Ok(Index::default()),
    }
}

/// Records that sealing begins (at `store`'s head, unless an earlier run recorded it), then
/// searches the log (as stored) from where the last run stopped to its head for personal fields
/// stored in the clear, and records them by data subject in `secrets`. With `dry_run`, records
/// nothing and says what it would.
pub async fn migrate(
    store: &dyn EventStore,
    secrets: &dyn SecretStore,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Migration, StoreError> {
    let proposed = SealingSince {
        position: store.head().await?.0,
        at: now,
    };
    let (sealing_since, turned_on) = match sealing_since(secrets).await? {
        Some(since) => (since, false),
        None if dry_run => (proposed, true),
        None => {
            let bytes = serde_json::to_vec(&proposed).map_err(StoreError::backend)?;
            let kept = secrets.put_if_absent(SEALING_SINCE, bytes.clone()).await?;
            let since = serde_json::from_slice(&kept).map_err(StoreError::backend)?;
            (since, kept == bytes)
        }
    };
    let mut index = read_index(secrets).await?;
    let from = index.through;
    let mut after = Position(from);
    let mut found_events = 0;
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in &page {
            let payload = event.stored_payload();
            if !seal::has_personal_fields(&event.event_type) || seal::is_sealed(payload) {
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_slice(payload).map_err(|e| StoreError::Corrupt {
                    position: event.position,
                    reason: e.to_string(),
                })?;
            if !seal::has_personal_values(&event.event_type, &value) {
                continue;
            }
            found_events += 1;
            match seal::subject_of(&event.event_type, &value) {
                Some(subject) => index
                    .subjects
                    .entry(subject)
                    .or_default()
                    .add(event.position.0),
                None => index.without_subject += 1,
            }
        }
    }
    index.through = after.0;
    if !dry_run {
        let bytes = serde_json::to_vec(&index).map_err(StoreError::backend)?;
        secrets.put(INDEX, bytes).await?;
    }
    Ok(Migration {
        sealing_since,
        turned_on,
        searched_from: from,
        searched_through: after.0,
        found_events,
        events_in_clear: index.subjects.values().map(|s| s.events).sum::<u64>()
            + index.without_subject,
        subjects_in_clear: index.subjects.len() as u64,
        without_subject: index.without_subject,
    })
}
