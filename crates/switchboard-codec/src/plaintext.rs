//! What a log holds in the clear from before sealing began: `switchboard migrate encrypt`
//! (ADR 0007).
//!
//! Turning sealing on re-writes nothing (the hash chain covers every stored byte). [`migrate`]
//! reads the log once and records, in the key store beside it, which data subjects have
//! personal fields stored in the clear (how many events, the first and last position) and the
//! position from which this log is sealed ([`SEALING_SINCE`]): every node that starts on the
//! store afterwards seals what it writes whatever its configuration says, so a node with an old
//! configuration cannot fall back to writing in the clear. Erasing such a subject redacts those
//! events wherever they are read through the keys (`KeyedStore`, `export`); the record says
//! how much of a person's data is of that kind. Running it again indexes what was written in the
//! clear since the last run (a node not yet restarted), and keeps the first sealing position.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_store::{EventStore, Position, SecretStore, StoreError};
use uuid::Uuid;

use crate::seal;

/// The key store's record of when sealing began.
pub const SEALING_SINCE: &str = "sealing-since";

/// The key store's record of how far the log was searched for fields in the clear.
const INDEX: &str = "plaintext-index";

/// How many events [`migrate`] reads at a time.
const PAGE: usize = 4096;

fn subject_name(subject: Uuid) -> String {
    format!("plaintext-subject-{subject}")
}

/// When sealing began: every event after `position` is written sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealingSince {
    /// The head of the log when sealing was turned on.
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

    fn merge(&mut self, later: InClear) {
        if later.events == 0 {
            return;
        }
        if self.events == 0 {
            self.first = later.first;
        }
        self.events += later.events;
        self.last = later.last;
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Index {
    /// The last position searched.
    through: u64,
    events: u64,
    subjects: u64,
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    /// When sealing began (set by the first run, kept by the later ones).
    pub sealing_since: SealingSince,
    /// Whether this run turned sealing on.
    pub turned_on: bool,
    /// The positions this run searched, `(from, through]`.
    pub searched_from: u64,
    /// The head of the log this run searched to.
    pub searched_through: u64,
    /// Events with personal fields in the clear found by this run.
    pub found_events: u64,
    /// Events with personal fields in the clear in the whole log, by every run.
    pub events_in_clear: u64,
    /// Data subjects those belong to.
    pub subjects_in_clear: u64,
}

/// When sealing began on this log, if `migrate` ran on it.
pub async fn sealing_since(secrets: &dyn SecretStore) -> Result<Option<SealingSince>, StoreError> {
    secrets
        .get(SEALING_SINCE)
        .await?
        .map(|bytes| serde_json::from_slice(&bytes).map_err(StoreError::backend))
        .transpose()
}

/// What the log holds of `subject` in the clear, as far as `migrate` searched it.
pub async fn in_clear(
    secrets: &dyn SecretStore,
    subject: Uuid,
) -> Result<Option<InClear>, StoreError> {
    secrets
        .get(&subject_name(subject))
        .await?
        .map(|bytes| serde_json::from_slice(&bytes).map_err(StoreError::backend))
        .transpose()
}

/// Searches `store`'s log (as stored) from where the last run stopped to its head for personal
/// fields stored in the clear, records them by data subject in `secrets`, and records that
/// sealing began (once). With `dry_run`, records nothing and says what it would.
pub async fn migrate(
    store: &dyn EventStore,
    secrets: &dyn SecretStore,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Migration, StoreError> {
    let index: Index = match secrets.get(INDEX).await? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(StoreError::backend)?,
        None => Index::default(),
    };
    let mut found: HashMap<Uuid, InClear> = HashMap::new();
    let mut found_events = 0;
    let from = index.through;
    let mut after = Position(from);
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
            // A value with no subject names nobody an erasure could name; it stays as it is.
            let Some(subject) = seal::subject_of(&event.event_type, &value) else {
                continue;
            };
            found.entry(subject).or_default().add(event.position.0);
            found_events += 1;
        }
    }
    let mut subjects: Vec<(Uuid, InClear)> = found.into_iter().collect();
    subjects.sort_unstable_by_key(|(subject, _)| *subject);
    let names: Vec<String> = subjects.iter().map(|(s, _)| subject_name(*s)).collect();
    let earlier = secrets.get_many(&names).await?;
    let mut new_subjects = 0;
    let mut records = Vec::with_capacity(subjects.len());
    for ((subject, later), earlier) in subjects.into_iter().zip(earlier) {
        let mut record = match earlier {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(StoreError::backend)?,
            None => {
                new_subjects += 1;
                InClear::default()
            }
        };
        record.merge(later);
        records.push((subject, record));
    }
    let index = Index {
        through: after.0,
        events: index.events + found_events,
        subjects: index.subjects + new_subjects,
    };
    let proposed = SealingSince {
        position: after.0,
        at: now,
    };
    let (sealing_since, turned_on) = if dry_run {
        match sealing_since(secrets).await? {
            Some(since) => (since, false),
            None => (proposed, true),
        }
    } else {
        for (subject, record) in &records {
            let bytes = serde_json::to_vec(record).map_err(StoreError::backend)?;
            secrets.put(&subject_name(*subject), bytes).await?;
        }
        let bytes = serde_json::to_vec(&index).map_err(StoreError::backend)?;
        secrets.put(INDEX, bytes).await?;
        let bytes = serde_json::to_vec(&proposed).map_err(StoreError::backend)?;
        let kept = secrets.put_if_absent(SEALING_SINCE, bytes.clone()).await?;
        let since = serde_json::from_slice(&kept).map_err(StoreError::backend)?;
        (since, kept == bytes)
    };
    Ok(Migration {
        sealing_since,
        turned_on,
        searched_from: from,
        searched_through: after.0,
        found_events,
        events_in_clear: index.events,
        subjects_in_clear: index.subjects,
    })
}
