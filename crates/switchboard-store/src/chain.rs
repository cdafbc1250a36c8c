//! The hash chain that makes tampering with history evident.
//!
//! Every stored event carries `hash = SHA-256(previous hash ‖ canonical bytes of the event)`, the
//! first event chaining to 32 zero bytes. The canonical bytes are a length-prefixed, big-endian
//! encoding of everything the store keeps about the event, so changing any field, removing an
//! event or swapping two breaks the chain at that point. Every backend uses this one definition.

use sha2::{Digest, Sha256};

use crate::types::{Origin, Position, RecordedEvent};
use crate::{EventStore, StoreError};

/// The hash the first event chains to.
pub const GENESIS: [u8; 32] = [0; 32];

/// The fields of an event that its hash covers, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Canonical<'a> {
    /// Global position.
    pub position: Position,
    /// Stream name.
    pub stream: &'a str,
    /// Version within the stream.
    pub stream_version: u64,
    /// The event id, as 16 bytes.
    pub event_id: &'a [u8; 16],
    /// Event type name.
    pub event_type: &'a str,
    /// Payload schema version.
    pub schema_version: u32,
    /// Commit time, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// Metadata bytes.
    pub metadata: &'a [u8],
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl Canonical<'_> {
    /// `SHA-256(previous ‖ canonical bytes)`.
    pub fn hash(&self, previous: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(previous);
        h.update(self.position.0.to_be_bytes());
        field(&mut h, self.stream.as_bytes());
        h.update(self.stream_version.to_be_bytes());
        h.update(self.event_id);
        field(&mut h, self.event_type.as_bytes());
        h.update(self.schema_version.to_be_bytes());
        h.update(self.recorded_at_micros.to_be_bytes());
        field(&mut h, self.metadata);
        field(&mut h, self.payload);
        h.finalize().into()
    }
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

impl RecordedEvent {
    /// The canonical view of this event.
    pub fn canonical(&self) -> Canonical<'_> {
        Canonical {
            position: self.position,
            stream: self.stored_stream(),
            stream_version: self.stream_version,
            event_id: self.event_id.as_bytes(),
            event_type: &self.event_type,
            schema_version: self.schema_version,
            recorded_at_micros: self.recorded_at.timestamp_micros(),
            metadata: &self.metadata,
            payload: self.stored_payload(),
        }
    }
}

impl Origin {
    /// Whether the event `event_id`, about to be stored at `position` with the hash `computed`,
    /// sits where it stood in its origin, with the same hash.
    pub fn check(
        &self,
        event_id: uuid::Uuid,
        position: Position,
        computed: &[u8; 32],
    ) -> Result<(), StoreError> {
        let reason = if position != self.position {
            format!(
                "it would be stored at position {position}, not at its original position {}",
                self.position
            )
        } else if computed != &self.hash {
            format!(
                "its hash here would be {}, not its original {} (the log before it, or the event, \
                 differs from the original)",
                hex::encode(computed),
                hex::encode(self.hash)
            )
        } else {
            return Ok(());
        };
        Err(StoreError::OriginMismatch { event_id, reason })
    }
}

/// [`EventStore::restore`] for a backend whose writer appends `events` with the commit times of
/// `origins`, checking each new event against its origin (`submit`): the origins' times are cut
/// to the microseconds a store keeps first, and the answer, which may be a retry's answered from
/// the log, is checked against the origins after.
pub async fn restore<F, Fut>(
    store: &dyn EventStore,
    events: Vec<(crate::NewEvent, Origin)>,
    submit: F,
) -> Result<crate::AppendResult, StoreError>
where
    F: FnOnce(Vec<crate::NewEvent>, Vec<Origin>) -> Fut,
    Fut: std::future::Future<Output = Result<crate::AppendResult, StoreError>>,
{
    let (events, mut origins): (Vec<crate::NewEvent>, Vec<Origin>) = events.into_iter().unzip();
    to_micros(&mut origins);
    let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    let result = submit(events, origins.clone()).await?;
    check_restored(store, &result, &ids, &origins).await?;
    Ok(result)
}

/// Checks that the events a restore answered for (`result`, perhaps the answer to a retry of an
/// earlier restore or append of the same ids) are stored where and as `origins` say.
async fn check_restored(
    store: &dyn EventStore,
    result: &crate::AppendResult,
    ids: &[uuid::Uuid],
    origins: &[Origin],
) -> Result<(), StoreError> {
    let stored = store
        .read_all(
            Position(result.first_position.0.saturating_sub(1)),
            origins.len(),
        )
        .await?;
    for (i, (id, origin)) in ids.iter().zip(origins).enumerate() {
        let Some(event) = stored.get(i).filter(|e| e.event_id == *id) else {
            return Err(StoreError::OriginMismatch {
                event_id: *id,
                reason: "it is stored, but not where the restore would have put it".to_owned(),
            });
        };
        if event.recorded_at.timestamp_micros() != origin.recorded_at.timestamp_micros() {
            return Err(StoreError::OriginMismatch {
                event_id: *id,
                reason: format!(
                    "it is stored already, with another commit time ({})",
                    event.recorded_at
                ),
            });
        }
        origin.check(*id, event.position, &event.hash)?;
    }
    Ok(())
}

/// `origins` with their commit times cut to the microseconds a store keeps (and hashes).
pub fn to_micros(origins: &mut [Origin]) {
    for origin in origins {
        if let Some(cut) =
            chrono::DateTime::from_timestamp_micros(origin.recorded_at.timestamp_micros())
        {
            origin.recorded_at = cut;
        }
    }
}

/// The outcome of walking the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every event chains to its predecessor.
    Intact {
        /// How many events were checked.
        events: u64,
        /// The hash of the last event (hex), worth recording outside the store: a truncated tail
        /// can only be detected against a head hash kept elsewhere.
        head_hash: String,
    },
    /// The first place where history does not match its chain.
    Broken {
        /// The first position that does not verify.
        position: Position,
        /// What is wrong there.
        reason: String,
    },
}

/// A verified point of the chain: an event's position and hash ([`Position::START`] and
/// [`GENESIS`] before the first event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The event's position.
    pub position: Position,
    /// Its hash.
    pub hash: [u8; 32],
}

impl Checkpoint {
    /// Before the first event.
    pub const GENESIS: Checkpoint = Checkpoint {
        position: Position::START,
        hash: GENESIS,
    };
}

/// Walks the whole log in global order and checks every hash and that positions have no holes.
pub async fn verify(store: &dyn EventStore) -> Result<Verification, StoreError> {
    let walked = walk(store, Checkpoint::GENESIS, |_| Ok(())).await?;
    Ok(match walked.broken {
        Some((position, reason)) => Verification::Broken { position, reason },
        None => Verification::Intact {
            events: walked.events,
            head_hash: hex::encode(walked.last.hash),
        },
    })
}

/// How far a [`walk`] got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walked {
    /// The last event that verified (`from` when none did).
    pub last: Checkpoint,
    /// How many events verified.
    pub events: u64,
    /// Where the walk stopped early and why: a link that does not verify, or what `visit`
    /// refused.
    pub broken: Option<(Position, String)>,
}

/// Walks the log after `from` (trusted: a verified checkpoint), checking that positions have no
/// holes and that every event chains to its predecessor, and hands each verified event to
/// `visit`, which may stop the walk with a reason.
pub async fn walk(
    store: &dyn EventStore,
    from: Checkpoint,
    mut visit: impl FnMut(Checkpoint) -> Result<(), String>,
) -> Result<Walked, StoreError> {
    const PAGE: usize = 4096;
    let mut last = from;
    let mut count = 0u64;
    loop {
        let page = store.read_all(last.position, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            let expected = last.position.next();
            let broken = |position, reason| Walked {
                last,
                events: count,
                broken: Some((position, reason)),
            };
            if event.position != expected {
                return Ok(broken(
                    expected,
                    format!(
                        "event missing: the next stored position is {}",
                        event.position
                    ),
                ));
            }
            let computed = event.canonical().hash(&last.hash);
            if computed != event.hash {
                return Ok(broken(
                    event.position,
                    format!(
                        "hash mismatch: stored {}, computed {}",
                        hex::encode(event.hash),
                        hex::encode(computed)
                    ),
                ));
            }
            let here = Checkpoint {
                position: event.position,
                hash: event.hash,
            };
            if let Err(reason) = visit(here) {
                return Ok(broken(event.position, reason));
            }
            last = here;
            count += 1;
        }
    }
    Ok(Walked {
        last,
        events: count,
        broken: None,
    })
}
