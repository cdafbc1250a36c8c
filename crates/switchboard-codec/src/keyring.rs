//! Data subjects' keys: created on a subject's first personal event, kept sealed by the master
//! key in the store's [`SecretStore`] (never in the log), cached in memory, destroyed to erase
//! the subject (ADR 0007).
//!
//! A key is stored as `subject-<id>`, through [`Vault::get_or_insert`]: it is durable before the
//! event sealed with it is appended, and two writers creating the same subject's key at once
//! agree on one. Reading is two steps, because the store is asynchronous and decoding is not:
//! [`Keyring::load`] fetches the keys a batch of events needs, then [`Keyring::open`] opens
//! each event with them. A subject whose key is gone (erased) is remembered as such, and its
//! fields read redacted. What a process remembers of a key is fetched again after
//! [`KEY_TTL`], so an erasure on another node reaches this one within it.
//!
//! [`KeyedStore`] puts this under any [`EventStore`]: everything read through it comes opened,
//! with the stored bytes beside ([`RecordedEvent::sealed_payload`]), so projectors, the API and
//! the write side read personal fields as if they were stored in the clear, and the hash chain,
//! `export` and `audit verify` still see the stored bytes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use proto_events::{DecodeError, DomainEvent, Envelope, Metadata};
use switchboard_store::blob::Blob;
use switchboard_store::secret::Vault;
use switchboard_store::{
    AppendResult, BlobStore, Direction, EventStore, EventStream, ExpectedVersion, Lease, NewEvent,
    Origin, Position, RecordedEvent, SecretStore, StoreError, StreamFrom, WriteIndex,
};
use uuid::Uuid;

use crate::seal::{self, SealError, SubjectKey};

/// How many subjects' keys (or their absence) are kept in memory; past it the cache starts over.
const CACHE_CAPACITY: usize = 200_000;

/// How long a process trusts what it remembers of a key before fetching it again: the longest an
/// erasure on another node takes to reach this one's reads.
pub const KEY_TTL: Duration = Duration::from_secs(60);

/// Subjects' keys, over a vault.
#[derive(Debug)]
pub struct Keyring {
    vault: Vault,
    /// A subject's key, or `None`: it has none (erased, or never had personal data); with when it
    /// was fetched.
    cache: Mutex<HashMap<Uuid, (Option<SubjectKeyBytes>, Instant)>>,
}

/// A cached key; `Debug` prints nothing of it.
#[derive(Clone)]
struct SubjectKeyBytes(SubjectKey);

impl std::fmt::Debug for SubjectKeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(..)")
    }
}

/// Why an event could not be read through the keyring.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A sealed field is malformed or does not open.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The payload does not decode once opened.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A key the event needs was not loaded first ([`Keyring::load`]): a bug of the caller.
    #[error("the key of subject {0} was not loaded before decoding")]
    NotLoaded(Uuid),
}

fn name(subject: Uuid) -> String {
    format!("subject-{subject}")
}

impl Keyring {
    /// A keyring whose keys are sealed by `vault`.
    pub fn new(vault: Vault) -> Keyring {
        Keyring {
            vault,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Option<SubjectKeyBytes>, Instant)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, subject: Uuid, key: Option<SubjectKey>) {
        let mut cache = self.cache();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(subject, (key.map(SubjectKeyBytes), Instant::now()));
    }

    /// The key `subject`'s new events are sealed with, created (and durable) when it has none.
    pub async fn key_for_writing(&self, subject: Uuid) -> Result<SubjectKey, StoreError> {
        if let Some((Some(key), at)) = self.cache().get(&subject)
            && at.elapsed() < KEY_TTL
        {
            return Ok(key.0.clone());
        }
        let fresh = SubjectKey::generate();
        let stored = self.vault.get_or_insert(&name(subject), &fresh.0).await?;
        let key = to_key(subject, &stored)?;
        self.remember(subject, Some(key.clone()));
        Ok(key)
    }

    /// Fetches the keys of the subjects `events` need that are not in memory yet.
    pub async fn load(&self, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let mut missing = Vec::new();
        {
            let cache = self.cache();
            for event in events {
                // A malformed marker is reported by `decode`, with the event.
                if !seal::is_sealed(&event.payload) {
                    continue;
                }
                for subject in seal::subjects(&event.payload).unwrap_or_default() {
                    let fresh = cache
                        .get(&subject)
                        .is_some_and(|(_, at)| at.elapsed() < KEY_TTL);
                    if !fresh && !missing.contains(&subject) {
                        missing.push(subject);
                    }
                }
            }
        }
        for subject in missing {
            let key = match self.vault.get_named(&name(subject)).await? {
                Some(bytes) => Some(to_key(subject, &bytes)?),
                None => None,
            };
            self.remember(subject, key);
        }
        Ok(())
    }

    /// The payload of `recorded` with its sealed fields opened, or redacted where the subject's
    /// key is gone. The keys must have been [`loaded`](Keyring::load).
    pub fn open<'a>(&self, recorded: &'a RecordedEvent) -> Result<Cow<'a, [u8]>, OpenError> {
        if !seal::is_sealed(&recorded.payload) {
            return Ok(Cow::Borrowed(&recorded.payload));
        }
        let mut not_loaded = None;
        let opened = {
            let cache = self.cache();
            seal::open(
                recorded.event_id,
                &recorded.payload,
                |subject| match cache.get(&subject) {
                    Some((key, _)) => key.as_ref().map(|key| key.0.clone()),
                    None => {
                        not_loaded = Some(subject);
                        None
                    }
                },
            )?
        };
        match not_loaded {
            Some(subject) => Err(OpenError::NotLoaded(subject)),
            None => Ok(opened),
        }
    }

    /// The typed envelope of `recorded`, its sealed fields opened (see [`Keyring::open`]).
    pub fn decode(&self, recorded: &RecordedEvent) -> Result<Envelope, OpenError> {
        let payload = self.open(recorded)?;
        let mut raw = crate::raw(recorded);
        raw.payload = &payload;
        Ok(Envelope::decode(raw)?)
    }

    /// A store event for `event`, its personal fields sealed with its subject's key (created
    /// when the subject has none).
    pub async fn encode(
        &self,
        event: &DomainEvent,
        metadata: &Metadata,
    ) -> Result<NewEvent, StoreError> {
        self.seal(crate::encode(event, metadata)).await
    }

    /// `new` with its personal fields sealed with its subject's key (created when the subject has
    /// none). Its event id is bound into the seal: set it first.
    pub async fn seal(&self, mut new: NewEvent) -> Result<NewEvent, StoreError> {
        if !seal::has_personal_fields(&new.event_type) || seal::is_sealed(&new.payload) {
            return Ok(new);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&new.payload).map_err(StoreError::backend)?;
        let Some(subject) = seal::subject_of(&new.event_type, &value) else {
            return Ok(new);
        };
        let key = self.key_for_writing(subject).await?;
        new.payload = seal::seal(&new.event_type, new.event_id, &new.payload, subject, &key)
            .map_err(StoreError::backend)?;
        Ok(new)
    }

    /// Destroys `subject`'s key: every field sealed with it reads redacted from now on, here at
    /// once, and in other processes once they [`forget`](Keyring::forget) it or within
    /// [`KEY_TTL`]. True when it had one.
    pub async fn destroy(&self, subject: Uuid) -> Result<bool, StoreError> {
        let destroyed = self.vault.delete_named(&name(subject)).await?;
        self.remember(subject, None);
        Ok(destroyed)
    }

    /// Drops what this process remembers of `subject`'s key (another process destroyed it).
    pub fn forget(&self, subject: Uuid) {
        self.cache().remove(&subject);
    }
}

fn to_key(subject: Uuid, bytes: &[u8]) -> Result<SubjectKey, StoreError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Unsealable {
        name: name(subject),
    })?;
    Ok(SubjectKey(bytes))
}

/// Any [`EventStore`], read through a [`Keyring`]: events come back opened (see the module docs);
/// everything else is the store's own.
#[derive(Debug, Clone)]
pub struct KeyedStore {
    inner: Arc<dyn EventStore>,
    keyring: Arc<Keyring>,
}

impl KeyedStore {
    /// `inner`, read through `keyring`.
    pub fn new(inner: Arc<dyn EventStore>, keyring: Arc<Keyring>) -> KeyedStore {
        KeyedStore { inner, keyring }
    }

    /// The keyring reads go through (the write side seals with it).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    async fn opened(&self, events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, StoreError> {
        open_all(&self.keyring, events).await
    }
}

/// `events` with their sealed fields opened through `keyring`.
async fn open_all(
    keyring: &Keyring,
    mut events: Vec<RecordedEvent>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if !events.iter().any(|e| seal::is_sealed(&e.payload)) {
        return Ok(events);
    }
    keyring.load(&events).await?;
    for event in &mut events {
        open_in_place(keyring, event)?;
    }
    Ok(events)
}

fn open_in_place(keyring: &Keyring, event: &mut RecordedEvent) -> Result<(), StoreError> {
    let opened = match keyring.open(event) {
        Ok(Cow::Borrowed(_)) => return Ok(()),
        Ok(Cow::Owned(opened)) => opened,
        Err(error) => {
            return Err(StoreError::Corrupt {
                position: event.position,
                reason: error.to_string(),
            });
        }
    };
    event.sealed_payload = Some(std::mem::replace(&mut event.payload, opened));
    Ok(())
}

#[async_trait]
impl EventStore for KeyedStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.inner.append(stream, expected, events).await
    }

    async fn append_with_blobs(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        blobs: Vec<Blob>,
    ) -> Result<AppendResult, StoreError> {
        self.inner
            .append_with_blobs(stream, expected, events, blobs)
            .await
    }

    async fn restore(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<(NewEvent, Origin)>,
    ) -> Result<AppendResult, StoreError> {
        self.inner.restore(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from: StreamFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self
            .inner
            .read_stream(stream, direction, from, limit)
            .await?;
        self.opened(events).await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_all(after, limit).await?;
        self.opened(events).await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }

    fn subscribe_all(&self, after: Position) -> EventStream {
        let keyring = self.keyring.clone();
        self.inner
            .subscribe_all(after)
            .then(move |item| {
                let keyring = keyring.clone();
                async move {
                    let event = item?;
                    let mut opened = open_all(&keyring, vec![event]).await?;
                    opened.pop().ok_or(StoreError::Closed)
                }
            })
            .boxed()
    }

    fn max_append_bytes(&self) -> usize {
        self.inner.max_append_bytes()
    }

    fn write_index(&self) -> Arc<dyn WriteIndex> {
        self.inner.write_index()
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.inner.blobs()
    }

    fn secrets(&self) -> Arc<dyn SecretStore> {
        self.inner.secrets()
    }

    fn lease(&self, name: &str) -> Lease {
        self.inner.lease(name)
    }
}
