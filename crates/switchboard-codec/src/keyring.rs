//! Data subjects' keys: created on a subject's first personal event, kept sealed by the master
//! key in the store's [`SecretStore`] (never in the log), cached in memory, destroyed to erase
//! the subject (ADR 0007).
//!
//! A subject's key is stored as `subject-<id>` (its key id and key), through
//! [`Vault::get_or_insert`]: it is durable before the event sealed with it is appended, and two
//! writers creating the same subject's key at once agree on one. Erasing a subject first records
//! its key's id as destroyed (`erased-<subject>-<key id>`), then deletes the key: a field
//! sealed with a destroyed key reads redacted, and one whose key is neither here nor destroyed
//! fails to read (the secrets are not this log's), rather than pass lost data off as erased. A
//! subject written to again after its erasure gets a new key, with a new id; fields sealed with
//! the old one stay redacted.
//!
//! Reading is two steps, because the store is asynchronous and decoding is not:
//! [`Keyring::load`] fetches the keys a batch of events needs, and [`Keyring::open`] opens each
//! event with what it returned. What a process remembers of a subject is fetched again after
//! [`KEY_TTL`], so an erasure on another node reaches this one's reads within it.
//!
//! [`KeyedStore`] puts this under any [`EventStore`]: everything read through it comes opened,
//! with the stored bytes beside ([`RecordedEvent::sealed_payload`]), so projectors, the API and
//! the write side read personal fields as if they were stored in the clear, and the hash chain,
//! `export` and `audit verify` still see the stored bytes.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
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

use crate::seal::{self, Lookup, SealError, SubjectKey};

/// How many subjects are remembered; past it the memory starts over.
const CACHE_CAPACITY: usize = 200_000;

/// How long a process trusts what it remembers of a subject's key before fetching it again: the
/// longest an erasure on another node takes to reach this one's reads.
pub const KEY_TTL: Duration = Duration::from_secs(60);

/// What is known of one subject's keys.
#[derive(Clone, Debug, Default)]
pub struct SubjectKeys {
    /// Its key now, if it has one.
    current: Option<SubjectKey>,
    /// The ids of its destroyed keys (it was erased with them).
    destroyed: Vec<Uuid>,
}

impl SubjectKeys {
    /// Whether this says what became of `key_id`: it is the current key, or a destroyed one.
    fn has(&self, key_id: Uuid) -> bool {
        self.current.as_ref().is_some_and(|key| key.id == key_id)
            || self.destroyed.contains(&key_id)
    }

    fn lookup(&self, key_id: Uuid) -> Lookup {
        match &self.current {
            Some(key) if key.id == key_id => Lookup::Key(key.clone()),
            _ if self.destroyed.contains(&key_id) => Lookup::Erased,
            _ => Lookup::Missing,
        }
    }
}

/// The keys a batch of events needs, as [`Keyring::load`] found them.
#[derive(Debug, Default)]
pub struct Keys(HashMap<Uuid, SubjectKeys>);

impl Keys {
    fn lookup(&self, subject: Uuid, key_id: Uuid) -> Lookup {
        self.0
            .get(&subject)
            .map_or(Lookup::Missing, |keys| keys.lookup(key_id))
    }
}

/// Subjects' keys, over a vault (none: a log read without a master key, whose sealed fields
/// cannot be read).
#[derive(Debug)]
pub struct Keyring {
    vault: Option<Vault>,
    /// Where erasures are recorded (`erased-subject-<id>`, `erased-any`): read by name, which
    /// needs no key, so a log read without the master key is redacted too.
    erasures: Option<Arc<dyn SecretStore>>,
    cache: Mutex<HashMap<Uuid, (SubjectKeys, Instant)>>,
    /// Whether subjects were erased, by subject (for events stored in the clear), and whether
    /// any was at all (`None` in the map's place: not known yet).
    erased: Mutex<ErasedCache>,
}

/// What a process remembers of erasures, for reading events stored in the clear.
#[derive(Debug, Default)]
struct ErasedCache {
    /// Whether any subject was ever erased, and when that was read.
    any: Option<(bool, Instant)>,
    /// By subject: erased or not, and when that was read.
    subjects: HashMap<Uuid, (bool, Instant)>,
}

/// Why an event could not be read through the keyring.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A sealed field is malformed, does not open, or its key is missing.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The payload does not decode once opened.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The keys could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key_name(subject: Uuid) -> String {
    format!("subject-{subject}")
}

fn erased_name(subject: Uuid, key_id: Uuid) -> String {
    format!("erased-{subject}-{key_id}")
}

/// Records that `subject` was erased, key or no key: its fields stored in the clear (events
/// written while sealing was off) read redacted from then on.
fn erased_subject_name(subject: Uuid) -> String {
    format!("erased-subject-{subject}")
}

/// Records that some subject was erased: until it exists, reads skip looking for erased
/// subjects in events stored in the clear.
const ANY_ERASED: &str = "erased-any";

impl Keyring {
    /// A keyring whose keys are sealed by `vault`.
    pub fn new(vault: Vault) -> Keyring {
        Keyring {
            erasures: Some(vault.store().clone()),
            vault: Some(vault),
            cache: Mutex::new(HashMap::new()),
            erased: Mutex::new(ErasedCache::default()),
        }
    }

    /// A keyring without keys, for a log read with no master key: events without sealed fields
    /// read as they are; reading the others fails, saying that no `secret_key` is configured.
    pub fn without_keys() -> Keyring {
        Keyring {
            vault: None,
            erasures: None,
            cache: Mutex::new(HashMap::new()),
            erased: Mutex::new(ErasedCache::default()),
        }
    }

    /// [`Keyring::without_keys`] that still knows which subjects were erased, from `secrets`
    /// (by name, no key needed): what they wrote in the clear reads redacted.
    pub fn without_keys_over(secrets: Arc<dyn SecretStore>) -> Keyring {
        Keyring {
            erasures: Some(secrets),
            ..Keyring::without_keys()
        }
    }

    /// The key that names customers' reservation streams (ADR 0007), when the keyring has
    /// the master key.
    pub fn names(&self) -> Option<proto_events::streams::NameKey> {
        let vault = self.vault.as_ref()?;
        Some(proto_events::streams::NameKey::new(vault.name_key()))
    }

    fn vault(&self) -> Result<&Vault, StoreError> {
        self.vault.as_ref().ok_or_else(|| {
            StoreError::backend(std::io::Error::other(
                "personal data cannot be sealed or opened: no secret_key is configured",
            ))
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (SubjectKeys, Instant)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, subject: Uuid, keys: SubjectKeys) {
        let mut cache = self.cache();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(subject, (keys, Instant::now()));
    }

    fn remembered(&self, subject: Uuid) -> Option<SubjectKeys> {
        self.cache()
            .get(&subject)
            .filter(|(_, at)| at.elapsed() < KEY_TTL)
            .map(|(keys, _)| keys.clone())
    }

    /// The key `subject`'s new events are sealed with, created (and durable) when it has none.
    pub async fn key_for_writing(&self, subject: Uuid) -> Result<SubjectKey, StoreError> {
        if let Some(SubjectKeys {
            current: Some(key), ..
        }) = self.remembered(subject)
        {
            return Ok(key);
        }
        let vault = self.vault()?;
        for _ in 0..3 {
            let fresh = SubjectKey::generate();
            let mut bytes = fresh.id.as_bytes().to_vec();
            bytes.extend_from_slice(&fresh.bytes);
            let stored = vault.get_or_insert(&key_name(subject), &bytes).await?;
            let key = to_key(subject, &stored)?;
            // Remembered unless an erasure in this process destroyed it meanwhile; then the
            // next try finds it gone and creates another.
            let mut cache = self.cache();
            let mut known = cache
                .get(&subject)
                .map(|(keys, _)| keys.clone())
                .unwrap_or_default();
            if known.destroyed.contains(&key.id) {
                continue;
            }
            known.current = Some(key.clone());
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(subject, (known, Instant::now()));
            return Ok(key);
        }
        Err(StoreError::backend(std::io::Error::other(format!(
            "the key of data subject {subject} was destroyed as fast as it was created"
        ))))
    }

    /// The keys the sealed fields of `events` need: remembered ones, and the others fetched
    /// (once per call and key: a key id not remembered may be another node's, one created after
    /// an erasure, or a destroyed one), all in one read of the key store, and the records of
    /// destroyed keys for those still unknown in a second.
    pub async fn load(&self, events: &[RecordedEvent]) -> Result<Keys, StoreError> {
        let mut keys = Keys::default();
        let mut seen = HashSet::new();
        let mut wanted: Vec<(Uuid, Uuid)> = Vec::new();
        for event in events {
            if !seal::is_sealed(&event.payload) {
                continue;
            }
            for (subject, key_id) in seal::keys_needed(&event.payload) {
                if !seen.insert((subject, key_id))
                    || keys.0.get(&subject).is_some_and(|known| known.has(key_id))
                {
                    continue;
                }
                match self.remembered(subject) {
                    Some(known) if known.has(key_id) => {
                        keys.0.insert(subject, known);
                    }
                    _ => wanted.push((subject, key_id)),
                }
            }
        }
        if wanted.is_empty() {
            return Ok(keys);
        }
        let vault = self.vault()?;
        let mut subjects: Vec<Uuid> = wanted.iter().map(|(subject, _)| *subject).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let names: Vec<String> = subjects.iter().map(|subject| key_name(*subject)).collect();
        let current = vault.get_named_many(&names).await?;
        let mut fetched = HashMap::with_capacity(subjects.len());
        for (subject, bytes) in subjects.into_iter().zip(current) {
            let mut known = keys
                .0
                .remove(&subject)
                .or_else(|| self.remembered(subject))
                .unwrap_or_default();
            known.current = bytes
                .map(|bytes| to_key(subject, &bytes))
                .transpose()?
                // Read before an erasure in this process destroyed it: gone all the same.
                .filter(|key| !known.destroyed.contains(&key.id));
            fetched.insert(subject, known);
        }
        let unknown: Vec<(Uuid, Uuid)> = wanted
            .into_iter()
            .filter(|(subject, key_id)| !fetched.get(subject).is_some_and(|k| k.has(*key_id)))
            .collect();
        if !unknown.is_empty() {
            let names: Vec<String> = unknown
                .iter()
                .map(|(subject, key_id)| erased_name(*subject, *key_id))
                .collect();
            let erased = vault.get_named_many(&names).await?;
            for ((subject, key_id), erased) in unknown.into_iter().zip(erased) {
                if erased.is_some()
                    && let Some(known) = fetched.get_mut(&subject)
                {
                    known.destroyed.push(key_id);
                }
            }
        }
        for (subject, known) in fetched {
            self.remember(subject, known.clone());
            keys.0.insert(subject, known);
        }
        Ok(keys)
    }

    /// The payload of `recorded` with its sealed fields opened with `keys` (from
    /// [`Keyring::load`]), or redacted where the subject was erased.
    pub fn open<'a>(
        &self,
        keys: &Keys,
        recorded: &'a RecordedEvent,
    ) -> Result<Cow<'a, [u8]>, SealError> {
        seal::open(recorded.event_id, &recorded.payload, |subject, key_id| {
            keys.lookup(subject, key_id)
        })
    }

    /// The typed envelope of `recorded`, its sealed fields opened (see [`Keyring::open`]).
    pub async fn decode(&self, recorded: &RecordedEvent) -> Result<Envelope, OpenError> {
        let keys = self.load(std::slice::from_ref(recorded)).await?;
        let payload = self.open(&keys, recorded)?;
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
    /// none). Its event id is bound into the seal: set it first. Personal values with no subject
    /// to seal them for are refused, never stored in the clear.
    pub async fn seal(&self, mut new: NewEvent) -> Result<NewEvent, StoreError> {
        if !seal::has_personal_fields(&new.event_type) || seal::is_sealed(&new.payload) {
            return Ok(new);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&new.payload).map_err(StoreError::backend)?;
        let Some(subject) = seal::subject_of(&new.event_type, &value) else {
            if seal::has_personal_values(&new.event_type, &value) {
                return Err(StoreError::backend(SealError::NoSubject {
                    event_type: new.event_type.clone(),
                }));
            }
            return Ok(new);
        };
        let key = self.key_for_writing(subject).await?;
        new.payload = seal::seal_value(&new.event_type, new.event_id, value, subject, &key)
            .map_err(StoreError::backend)?;
        Ok(new)
    }

    /// Erases `subject`: records its key's id as destroyed (`erased-<subject>-<key id>`, one
    /// record per key, so concurrent erasures cannot undo each other), then destroys the key, so
    /// that every field sealed for it reads redacted from now on, here at once and in other
    /// processes within [`KEY_TTL`]. Repeating it is harmless. True when it had a key.
    pub async fn destroy(&self, subject: Uuid) -> Result<bool, StoreError> {
        let vault = self.vault()?;
        vault.put_named(ANY_ERASED, b"erased").await?;
        vault
            .put_named(&erased_subject_name(subject), b"erased")
            .await?;
        {
            let mut erased = self.erased_cache();
            erased.any = Some((true, Instant::now()));
            erased.subjects.insert(subject, (true, Instant::now()));
        }
        let current = match vault.get_named(&key_name(subject)).await? {
            Some(bytes) => Some(to_key(subject, &bytes)?),
            None => None,
        };
        let mut known = self.remembered(subject).unwrap_or_default();
        known.current = None;
        let Some(key) = current else {
            self.remember(subject, known);
            return Ok(false);
        };
        vault
            .put_named(&erased_name(subject, key.id), b"erased")
            .await?;
        let deleted = vault.delete_named(&key_name(subject)).await?;
        if !known.destroyed.contains(&key.id) {
            known.destroyed.push(key.id);
        }
        self.remember(subject, known);
        Ok(deleted)
    }

    /// Drops what this process remembers of `subject` (another process erased it).
    pub fn forget(&self, subject: Uuid) {
        self.cache().remove(&subject);
        self.erased_cache().subjects.remove(&subject);
    }

    fn erased_cache(&self) -> std::sync::MutexGuard<'_, ErasedCache> {
        self.erased.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any subject was ever erased (remembered for [`KEY_TTL`]). False without keys.
    async fn any_erased(&self) -> Result<bool, StoreError> {
        let Some(erasures) = &self.erasures else {
            return Ok(false);
        };
        if let Some((any, at)) = self.erased_cache().any
            && (any || at.elapsed() < KEY_TTL)
        {
            return Ok(any);
        }
        let any = erasures.get(ANY_ERASED).await?.is_some();
        self.erased_cache().any = Some((any, Instant::now()));
        Ok(any)
    }

    /// Which of `subjects` were erased to the end: their erasure recorded and their key gone
    /// ([`Keyring::destroy`] records the erasure first, then deletes the key, and may stop in
    /// between), read in one go by name, which needs no key.
    pub async fn were_erased(&self, subjects: &[Uuid]) -> Result<Vec<bool>, StoreError> {
        let Some(erasures) = &self.erasures else {
            return Ok(vec![false; subjects.len()]);
        };
        let names: Vec<String> = subjects
            .iter()
            .flat_map(|subject| [erased_subject_name(*subject), key_name(*subject)])
            .collect();
        let found = erasures.get_many(&names).await?;
        Ok(found
            .chunks(2)
            .map(|pair| matches!(pair, [Some(_), None]))
            .collect())
    }

    /// Whether `subject` was erased (remembered for [`KEY_TTL`]; once erased, for good).
    async fn is_erased(&self, subject: Uuid) -> Result<bool, StoreError> {
        let Some(erasures) = &self.erasures else {
            return Ok(false);
        };
        if let Some(&(erased, at)) = self.erased_cache().subjects.get(&subject)
            && (erased || at.elapsed() < KEY_TTL)
        {
            return Ok(erased);
        }
        let erased = erasures.get(&erased_subject_name(subject)).await?.is_some();
        let mut cache = self.erased_cache();
        if cache.subjects.len() >= CACHE_CAPACITY {
            cache.subjects.clear();
        }
        cache.subjects.insert(subject, (erased, Instant::now()));
        Ok(erased)
    }

    /// Redacts `event`'s fields stored in the clear when its subject was erased, as reading
    /// through [`KeyedStore`] does (for `export`, which otherwise writes events as stored).
    /// True when it did.
    pub async fn redact_erased(&self, event: &mut RecordedEvent) -> Result<bool, StoreError> {
        if !self.any_erased().await? {
            return Ok(false);
        }
        self.redact_if_erased(event).await?;
        self.redact_name_if_erased(event).await?;
        Ok(event.sealed_payload.is_some() || event.stored_stream.is_some())
    }

    /// Renames `event`'s stream when it is a reservation stream named by a customer's value in
    /// the clear (written before such names were keyed, `proto_events::streams::NameKey`) and
    /// the event's holder was erased: `unique-<scope>-(erased)`, the stored name kept in
    /// [`RecordedEvent::stored_stream`] (which the chain covers). The payload's own value is
    /// sealed or redacted like every personal field; the name is the only other place it is.
    async fn redact_name_if_erased(&self, event: &mut RecordedEvent) -> Result<(), StoreError> {
        let Some(erased) = proto_events::streams::erased_reservation_name(&event.stream) else {
            return Ok(());
        };
        let value: serde_json::Value =
            serde_json::from_slice(event.stored_payload()).map_err(|e| StoreError::Corrupt {
                position: event.position,
                reason: e.to_string(),
            })?;
        let Some(subject) = seal::subject_of(&event.event_type, &value) else {
            return Ok(());
        };
        if self.is_erased(subject).await? {
            event.stored_stream = Some(std::mem::replace(&mut event.stream, erased));
        }
        Ok(())
    }

    /// `event`, stored in the clear, with its personal fields redacted when its subject was
    /// erased (the stored bytes go to [`RecordedEvent::sealed_payload`], which the chain and
    /// `export` read); unchanged otherwise.
    async fn redact_if_erased(&self, event: &mut RecordedEvent) -> Result<(), StoreError> {
        if seal::is_sealed(&event.payload) || !seal::has_personal_fields(&event.event_type) {
            return Ok(());
        }
        let corrupt = |reason: String| StoreError::Corrupt {
            position: event.position,
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&event.payload).map_err(|e| corrupt(e.to_string()))?;
        let Some(subject) = seal::subject_of(&event.event_type, &value) else {
            return Ok(());
        };
        if !self.is_erased(subject).await? {
            return Ok(());
        }
        let redacted = serde_json::to_vec(&seal::redact_value(&event.event_type, value))
            .map_err(|e| corrupt(e.to_string()))?;
        event.sealed_payload = Some(std::mem::replace(&mut event.payload, redacted));
        Ok(())
    }
}

fn to_key(subject: Uuid, bytes: &[u8]) -> Result<SubjectKey, StoreError> {
    let unsealable = || StoreError::Unsealable {
        name: key_name(subject),
    };
    let (id, key) = bytes.split_at_checked(16).ok_or_else(unsealable)?;
    Ok(SubjectKey {
        id: Uuid::from_slice(id).map_err(|_| unsealable())?,
        bytes: key.try_into().map_err(|_| unsealable())?,
    })
}

/// A spawned task, aborted when this is dropped: a subscription dropped while a run is being
/// opened stops opening it.
struct Aborting<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for Aborting<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// The most events a subscription through [`KeyedStore`] opens together.
const SUBSCRIBE_RUN: usize = 4096;

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
    if keyring.any_erased().await? {
        for event in &mut events {
            keyring.redact_if_erased(event).await?;
            keyring.redact_name_if_erased(event).await?;
        }
    }
    if !events.iter().any(|e| seal::is_sealed(&e.payload)) {
        return Ok(events);
    }
    let keys = keyring.load(&events).await?;
    for event in &mut events {
        open_in_place(keyring, &keys, event)?;
    }
    Ok(events)
}

fn open_in_place(
    keyring: &Keyring,
    keys: &Keys,
    event: &mut RecordedEvent,
) -> Result<(), StoreError> {
    let opened = match keyring.open(keys, event) {
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

    /// The inner store's subscription, opened a run at a time: whatever it has ready (up to
    /// [`SUBSCRIBE_RUN`] events) is opened together, with one look-up of their keys, as reads
    /// are. One at a time, a catching-up projector got its events as a trickle and committed a
    /// batch for each (a sealed rebuild ran at a fifteenth of the speed of one in the clear).
    /// A run is opened on a task of its own while the one before is consumed, so that opening
    /// (decryption) and projecting use both cores; runs come out in order.
    fn subscribe_all(&self, after: Position) -> EventStream {
        let keyring = self.keyring.clone();
        self.inner
            .subscribe_all(after)
            .ready_chunks(SUBSCRIBE_RUN)
            .map(move |items| {
                let keyring = keyring.clone();
                let opening = async move {
                    let mut events = Vec::with_capacity(items.len());
                    let mut failed = None;
                    for item in items {
                        match item {
                            Ok(event) => events.push(event),
                            Err(error) => {
                                failed = Some(error);
                                break;
                            }
                        }
                    }
                    let mut out: Vec<Result<RecordedEvent, StoreError>> =
                        match open_all(&keyring, events).await {
                            Ok(opened) => opened.into_iter().map(Ok).collect(),
                            Err(error) => vec![Err(error)],
                        };
                    out.extend(failed.map(Err));
                    out
                };
                // On a task of its own where there is a runtime to run it (always, in the
                // server); else when the stream is polled.
                let opening = match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        let task = Aborting(runtime.spawn(opening));
                        futures::FutureExt::boxed(async move {
                            match task.await {
                                Ok(opened) => opened,
                                // A panic while opening is the subscriber's, as it would be
                                // without the task.
                                Err(error) if error.is_panic() => {
                                    std::panic::resume_unwind(error.into_panic())
                                }
                                Err(error) => vec![Err(StoreError::backend(error))],
                            }
                        })
                    }
                    Err(_) => futures::FutureExt::boxed(opening),
                };
                futures::FutureExt::map(opening, futures::stream::iter)
            })
            .buffered(2)
            .flatten()
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
