//! The write side's index: what deciding looks up beyond an aggregate's stream that is too big
//! to hold in memory, kept beside the log in the same backend.
//!
//! - **Idempotency keys.** One row per `(scope, key)` (the scope is the actor): a command with a
//!   key *claims* it before it writes anything ([`WriteIndex::claim`]), so of two requests with
//!   one key only one runs, on any node; the claim's `owner` (one per attempt) records what it
//!   did ([`WriteIndex::finish`]): done, freed when it surely wrote nothing, or abandoned when
//!   that is unknown (a store failure), for the next request to settle. A pending use whose main
//!   append shows up in the log is done whatever became of its owner (the fold settles it). A
//!   row is never deleted: an expired key keeps its `salt`, which the next use raises, so the
//!   event ids a keyed command derives from key and salt never repeat those of an earlier use.
//! - **E-mail threads.** The conversation of every Message-ID seen on a channel.
//! - **Links.** Which aggregates' streams hold an association with an aggregate, so that a
//!   merge can carry over associations recorded in a third aggregate's stream.
//! - **Snapshots.** What the write side does hold in memory (the directory, routing's state),
//!   serialised by its owner, with the log position it reflects, so a start reads only the
//!   events after it.
//! - **Cursors.** How far a channel has read a source outside the log (an IMAP mailbox's
//!   UIDVALIDITY and last UID), by name, opaque to the store, durable when saved. Unlike
//!   everything else here they cannot be rebuilt from the log: a lost cursor makes its owner
//!   read its source again from the start, which its deduplication must make harmless.
//!
//! Everything but pending claims and cursors can be rebuilt from the log: the keys from the metadata of
//! the events, the threads from the messages. [`WriteIndex::apply`] folds what a catch-up read
//! and records how far it got ([`WriteIndex::position`]); applying the same batch twice changes
//! nothing, so a crash between the log and the index costs a second fold, never a wrong answer.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Position, StoreError};

/// Where a key's use stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// A request holds the key and is running its command.
    Pending,
    /// The command ran and wrote this.
    Done(KeyOutcome),
    /// The command wrote nothing (refused, failed); the key may be used again.
    Free,
}

impl KeyState {
    /// The state as a table stores it: its name (`pending`, `done`, `free`) and the outcome
    /// columns.
    pub fn to_columns(&self) -> (&'static str, Option<&KeyOutcome>) {
        match self {
            KeyState::Pending => ("pending", None),
            KeyState::Done(outcome) => ("done", Some(outcome)),
            KeyState::Free => ("free", None),
        }
    }

    /// The state from a table's columns (`stream`, `stream_version`, `first_position`,
    /// `last_position`); a `done` row without its outcome reads as free.
    pub fn from_columns(
        state: &str,
        stream: Option<String>,
        numbers: [Option<i64>; 3],
    ) -> KeyState {
        match (state, stream, numbers) {
            ("pending", _, _) => KeyState::Pending,
            ("done", Some(stream), [Some(version), Some(first), Some(last)]) => {
                KeyState::Done(KeyOutcome {
                    stream,
                    stream_version: version as u64,
                    first_position: Position(first as u64),
                    last_position: Position(last as u64),
                })
            }
            _ => KeyState::Free,
        }
    }
}

/// What a keyed command appended: its main stream (the last it wrote to) and the span of its
/// events in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOutcome {
    /// The stream.
    pub stream: String,
    /// The stream's version after the command.
    pub stream_version: u64,
    /// Its first event's position.
    pub first_position: Position,
    /// Its last event's position.
    pub last_position: Position,
}

/// One use of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// The digest of the request the key came with (`None`: not bound to a request).
    pub fingerprint: Option<String>,
    /// The correlation id of the use's events: the same for every attempt of one use (a
    /// request taking over keeps it), so the log's events tell which use they belong to.
    pub correlation_id: Uuid,
    /// The attempt that holds a pending claim (a fresh id per attempt).
    pub owner: Uuid,
    /// When it was claimed (domain time).
    pub used_at: DateTime<Utc>,
    /// Raised on every new use of the key; goes into the ids of the events the use writes.
    pub salt: u64,
    /// Where it stands.
    pub state: KeyState,
}

impl KeyUse {
    /// The outcome of a finished use.
    pub fn outcome(&self) -> Option<&KeyOutcome> {
        match &self.state {
            KeyState::Done(outcome) => Some(outcome),
            KeyState::Pending | KeyState::Free => None,
        }
    }

    /// The salt the next use of the key takes, given this (its last) use: the same while this
    /// one is pending or binds, or was freed (it wrote nothing keyed), one more once it expired.
    pub fn next_salt(&self, live_since: DateTime<Utc>) -> u64 {
        match self.state {
            KeyState::Pending | KeyState::Free => self.salt,
            KeyState::Done(_) if self.used_at >= live_since => self.salt,
            KeyState::Done(_) => self.salt.saturating_add(1),
        }
    }
}

/// How a claim's owner ends it (see [`WriteIndex::finish`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The command ran and wrote this.
    Done(KeyOutcome),
    /// The command surely wrote nothing keyed (refused, conflicted): the key is free again, with
    /// the same salt.
    Free,
    /// Unknown whether the command's main append committed (a store failure): the claim stays
    /// pending but stale at once, for the next request with the key to settle from the log or
    /// take over.
    Abandoned,
}

/// What [`WriteIndex::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is the caller's now, with this salt.
    Won {
        /// The salt of this use.
        salt: u64,
        /// The correlation id its events carry (the claim's own, or that of the use it resumes).
        correlation_id: Uuid,
    },
    /// Another use holds the key: pending, or done and still binding.
    Held(KeyUse),
}

/// An e-mail's Message-ID on a channel, and its conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// The channel the mail went through.
    pub channel_id: Uuid,
    /// Its Message-ID.
    pub message_id: String,
    /// The conversation it belongs to.
    pub conversation_id: Uuid,
}

/// An association between two aggregates, recorded in the stream of `holder` (see
/// [`WriteIndex::links_to`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The aggregate whose stream holds the association.
    pub holder: Uuid,
    /// The other end.
    pub other: Uuid,
    /// Added (`true`) or removed.
    pub present: bool,
}

/// A key's use as the log shows it (see [`WriteIndex::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedKey {
    /// The actor, serialised.
    pub scope: String,
    /// The key.
    pub key: String,
    /// The request digest from the events' metadata.
    pub fingerprint: Option<String>,
    /// The events' correlation id.
    pub correlation_id: Uuid,
    /// The events' domain time.
    pub used_at: DateTime<Utc>,
    /// The stream and span of one append of the use (a multi-stream command logs several; the
    /// last is its main stream).
    pub outcome: KeyOutcome,
}

/// What one catch-up found in the log, up to `position`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexBatch {
    /// Keyed appends, in log order.
    pub keys: Vec<LoggedKey>,
    /// Message-IDs, in log order (the first one of a Message-ID on a channel wins).
    pub threads: Vec<Thread>,
    /// Associations added and removed, in log order.
    pub links: Vec<Link>,
    /// The position everything up to has been folded.
    pub position: Position,
}

/// The write side's index of one backend.
#[async_trait]
pub trait WriteIndex: Send + Sync + Debug {
    /// How far the log has been folded into the index.
    async fn position(&self) -> Result<Position, StoreError>;

    /// Folds what a catch-up found. A logged key use is taken unless a pending claim holds the
    /// key (its owner records the outcome) or the row already reflects a later position; the
    /// appends of one use extend its span. The first conversation of a Message-ID on a channel
    /// stays. The position only moves forwards.
    async fn apply(&self, batch: IndexBatch) -> Result<(), StoreError>;

    /// The conversation an e-mail with `message_id` belongs to on `channel_id`.
    async fn email_thread(
        &self,
        channel_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Uuid>, StoreError>;

    /// The aggregates whose streams hold an association with `other` (an association lives in
    /// one stream only, so the other end cannot see it in its own).
    async fn links_to(&self, other: Uuid) -> Result<Vec<Uuid>, StoreError>;

    /// The last use of `key` in `scope`.
    async fn key(&self, scope: &str, key: &str) -> Result<Option<KeyUse>, StoreError>;

    /// Claims `key` for `claim` (whose state and salt are ignored) unless a pending use holds it
    /// or a done one used at or after `live_since` does. A pending claim of the same owner is
    /// the caller's own: claimed again, it is won with its salt.
    async fn claim(
        &self,
        scope: &str,
        key: &str,
        claim: &KeyUse,
        live_since: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;

    /// Hands the pending claim of owner `stale` over to `claim`'s owner, keeping its salt and
    /// correlation id: for a request whose first attempt stopped without finishing. False when
    /// the key is no longer pending under `stale`.
    async fn take_over(
        &self,
        scope: &str,
        key: &str,
        stale: Uuid,
        claim: &KeyUse,
    ) -> Result<bool, StoreError>;

    /// Ends the pending claim of `owner` as `how`. Nothing happens when the claim is not (or no
    /// longer) theirs.
    async fn finish(
        &self,
        scope: &str,
        key: &str,
        owner: Uuid,
        how: Finish,
    ) -> Result<(), StoreError>;

    /// The snapshot saved under `name`, with the position it reflects.
    async fn snapshot(&self, name: &str) -> Result<Option<(Position, Vec<u8>)>, StoreError>;

    /// Saves a snapshot under `name` unless one of a later position is there already.
    async fn save_snapshot(
        &self,
        name: &str,
        position: Position,
        body: Vec<u8>,
    ) -> Result<(), StoreError>;

    /// The cursor saved under `name`.
    async fn cursor(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Saves `value` as the cursor `name`, replacing what was there; durable when it returns.
    async fn save_cursor(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError>;
}

/// Decides a claim on the row `current` (shared by the backends, which run it under a lock or
/// a row lock): the row to write, or the use that holds the key.
pub fn decide_claim(
    current: Option<&KeyUse>,
    claim: &KeyUse,
    live_since: DateTime<Utc>,
) -> Result<KeyUse, Box<KeyUse>> {
    let (salt, correlation_id) = match current {
        None => (0, claim.correlation_id),
        Some(held) if held.state == KeyState::Pending => {
            if held.owner != claim.owner {
                return Err(Box::new(held.clone()));
            }
            (held.salt, held.correlation_id)
        }
        Some(held) if matches!(held.state, KeyState::Done(_)) && held.used_at >= live_since => {
            return Err(Box::new(held.clone()));
        }
        Some(last) => (last.next_salt(live_since), claim.correlation_id),
    };
    Ok(KeyUse {
        salt,
        correlation_id,
        state: KeyState::Pending,
        ..claim.clone()
    })
}

/// The row a [`Finish`] leaves of `row` (a pending claim of the finishing owner).
pub fn finished(row: KeyUse, how: Finish) -> KeyUse {
    match how {
        Finish::Done(outcome) => KeyUse {
            state: KeyState::Done(outcome),
            ..row
        },
        Finish::Free => KeyUse {
            state: KeyState::Free,
            ..row
        },
        Finish::Abandoned => KeyUse {
            used_at: DateTime::<Utc>::UNIX_EPOCH,
            ..row
        },
    }
}

/// Folds a logged key use into the row `current`: the row to write, or `None` to leave it. Only
/// a command's main append carries its key, so a logged use of a pending claim's correlation id
/// means that command is done, whatever became of its owner.
pub fn fold_logged(current: Option<&KeyUse>, logged: &LoggedKey) -> Option<KeyUse> {
    let fresh = |salt| KeyUse {
        fingerprint: logged.fingerprint.clone(),
        correlation_id: logged.correlation_id,
        owner: logged.correlation_id,
        used_at: logged.used_at,
        salt,
        state: KeyState::Done(logged.outcome.clone()),
    };
    let Some(row) = current else {
        return Some(fresh(0));
    };
    let last = match &row.state {
        KeyState::Pending if row.correlation_id == logged.correlation_id => {
            return Some(KeyUse {
                state: KeyState::Done(logged.outcome.clone()),
                ..row.clone()
            });
        }
        KeyState::Pending => return None,
        KeyState::Done(outcome) => outcome.last_position,
        KeyState::Free => Position::START,
    };
    if logged.outcome.last_position <= last {
        return None;
    }
    if row.correlation_id != logged.correlation_id {
        return Some(fresh(row.salt.saturating_add(1)));
    }
    // The same use, appending again: the same stream extends its span, another stream (the
    // main one after reservations) takes over.
    let mut outcome = logged.outcome.clone();
    if let KeyState::Done(before) = &row.state
        && before.stream == outcome.stream
    {
        outcome.first_position = before.first_position;
    }
    Some(KeyUse {
        state: KeyState::Done(outcome),
        ..row.clone()
    })
}

/// A [`WriteIndex`] in memory: for stores opened read-only (a command-line tool beside a running
/// server), whose index is rebuilt from the log on every open and forgotten on exit.
#[derive(Debug, Default)]
pub struct MemoryIndex {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    position: Position,
    keys: HashMap<(String, String), KeyUse>,
    threads: HashMap<(Uuid, String), Uuid>,
    links: HashMap<Uuid, std::collections::BTreeSet<Uuid>>,
    snapshots: HashMap<String, (Position, Vec<u8>)>,
    cursors: HashMap<String, Vec<u8>>,
}

impl MemoryIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // The map stays consistent whatever panicked while it was held.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl WriteIndex for MemoryIndex {
    async fn position(&self) -> Result<Position, StoreError> {
        Ok(self.lock().position)
    }

    async fn apply(&self, batch: IndexBatch) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for logged in &batch.keys {
            let id = (logged.scope.clone(), logged.key.clone());
            if let Some(row) = fold_logged(inner.keys.get(&id), logged) {
                inner.keys.insert(id, row);
            }
        }
        for thread in batch.threads {
            inner
                .threads
                .entry((thread.channel_id, thread.message_id))
                .or_insert(thread.conversation_id);
        }
        for link in batch.links {
            let holders = inner.links.entry(link.other).or_default();
            if link.present {
                holders.insert(link.holder);
            } else {
                holders.remove(&link.holder);
            }
        }
        inner.position = inner.position.max(batch.position);
        Ok(())
    }

    async fn email_thread(
        &self,
        channel_id: Uuid,
        message_id: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(self
            .lock()
            .threads
            .get(&(channel_id, message_id.to_owned()))
            .copied())
    }

    async fn links_to(&self, other: Uuid) -> Result<Vec<Uuid>, StoreError> {
        Ok(self
            .lock()
            .links
            .get(&other)
            .map(|holders| holders.iter().copied().collect())
            .unwrap_or_default())
    }

    async fn key(&self, scope: &str, key: &str) -> Result<Option<KeyUse>, StoreError> {
        Ok(self
            .lock()
            .keys
            .get(&(scope.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn claim(
        &self,
        scope: &str,
        key: &str,
        claim: &KeyUse,
        live_since: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let mut inner = self.lock();
        let id = (scope.to_owned(), key.to_owned());
        Ok(match decide_claim(inner.keys.get(&id), claim, live_since) {
            Ok(row) => {
                let won = Claim::Won {
                    salt: row.salt,
                    correlation_id: row.correlation_id,
                };
                inner.keys.insert(id, row);
                won
            }
            Err(held) => Claim::Held(*held),
        })
    }

    async fn take_over(
        &self,
        scope: &str,
        key: &str,
        stale: Uuid,
        claim: &KeyUse,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.keys.get_mut(&(scope.to_owned(), key.to_owned())) {
            Some(row) if row.state == KeyState::Pending && row.owner == stale => {
                row.owner = claim.owner;
                row.used_at = claim.used_at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn finish(
        &self,
        scope: &str,
        key: &str,
        owner: Uuid,
        how: Finish,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(row) = inner.keys.get_mut(&(scope.to_owned(), key.to_owned()))
            && row.state == KeyState::Pending
            && row.owner == owner
        {
            *row = finished(row.clone(), how);
        }
        Ok(())
    }

    async fn snapshot(&self, name: &str) -> Result<Option<(Position, Vec<u8>)>, StoreError> {
        Ok(self.lock().snapshots.get(name).cloned())
    }

    async fn save_snapshot(
        &self,
        name: &str,
        position: Position,
        body: Vec<u8>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let newer = inner
            .snapshots
            .get(name)
            .is_none_or(|(saved, _)| *saved <= position);
        if newer {
            inner.snapshots.insert(name.to_owned(), (position, body));
        }
        Ok(())
    }

    async fn cursor(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().cursors.get(name).cloned())
    }

    async fn save_cursor(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.lock().cursors.insert(name.to_owned(), value);
        Ok(())
    }
}
