//! Posting lists: for every filter key (a conversation, an inbox, an actor, an event type, a day
//! of `occurred_at`, ...) the positions of the events it matches, in ascending order, stored in
//! chunks of up to [`CHUNK`] positions (`audit_postings`).
//!
//! They take the place of one B-tree index per filter. A rebuild writes one chunk per key per
//! batch instead of one index entry per event and filter, and has no index to sort once it has
//! caught up. A key's positions fill its chunks in order, each exactly to [`CHUNK`] before the
//! next one starts, so the rows are the same however the events were batched.
//!
//! A key may stand for more than one value: a system component's name is cut to fit, an event
//! id is filed under its first six bytes (a UUIDv7's millisecond) and a correlation id under
//! its first five (a UUIDv7's quarter second). Queries therefore
//! check every entry a posting list names against the whole filter ([`crate::query`]).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use switchboard_projector::{BatchMap, BatchTx};
use uuid::Uuid;

use crate::query::ActorKind;

/// The most positions one chunk holds.
pub(crate) const CHUNK: usize = 256;

/// The table.
pub(crate) const TABLE: &str = "
CREATE TABLE audit_postings (
    key       BLOB    NOT NULL,   -- a dimension's tag byte, then the key's bytes
    first     INTEGER NOT NULL,   -- the chunk's first position
    last      INTEGER NOT NULL,   -- its last position
    count     INTEGER NOT NULL,   -- how many positions it holds, at most CHUNK
    positions BLOB    NOT NULL,   -- the positions after `first`, as LEB128 deltas
    PRIMARY KEY (key, first)
) STRICT, WITHOUT ROWID;
";

/// What a key is about: its first byte.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Dimension {
    Conversation = 1,
    Inbox = 2,
    Contact = 3,
    Actor = 4,
    ActorKind = 5,
    EventType = 6,
    Correlation = 7,
    Day = 8,
    EventId = 9,
}

/// The longest key: a tag, an actor kind and 22 bytes of the actor's id or name.
const KEY_BYTES: usize = 24;

/// One posting list's key: a dimension's tag and up to 23 bytes, compared as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    len: u8,
    bytes: [u8; KEY_BYTES],
}

impl Key {
    fn new(dimension: Dimension, parts: &[&[u8]]) -> Key {
        let mut key = Key {
            len: 1,
            bytes: [0; KEY_BYTES],
        };
        key.bytes[0] = dimension as u8;
        for part in parts {
            for &byte in *part {
                if usize::from(key.len) == KEY_BYTES {
                    return key;
                }
                key.bytes[usize::from(key.len)] = byte;
                key.len += 1;
            }
        }
        key
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub(crate) fn conversation(id: &Uuid) -> Key {
        Key::new(Dimension::Conversation, &[id.as_bytes()])
    }

    pub(crate) fn inbox(id: &Uuid) -> Key {
        Key::new(Dimension::Inbox, &[id.as_bytes()])
    }

    pub(crate) fn contact(id: &Uuid) -> Key {
        Key::new(Dimension::Contact, &[id.as_bytes()])
    }

    /// One actor: its kind and id (a system component's name, cut to fit).
    pub(crate) fn actor(kind: ActorKind, id: &[u8]) -> Key {
        Key::new(Dimension::Actor, &[&[kind.code() as u8], id])
    }

    pub(crate) fn actor_kind(kind: ActorKind) -> Key {
        Key::new(Dimension::ActorKind, &[&[kind.code() as u8]])
    }

    /// An event type, by its code in `audit_event_types`.
    pub(crate) fn event_type(code: i64) -> Key {
        Key::new(Dimension::EventType, &[&code.to_be_bytes()])
    }

    /// The causal chains whose correlation id starts with the same five bytes: for UUIDv7
    /// ids, the chains begun in the same quarter second (262 ms). Most commands make a single
    /// event, so a list per chain cost a list read and written back for nearly every event.
    pub(crate) fn correlation(id: &Uuid) -> Key {
        Key::new(Dimension::Correlation, &[&id.as_bytes()[..5]])
    }

    /// The UTC day `at` falls on; days compare in time order.
    pub(crate) fn day(at: DateTime<Utc>) -> Key {
        Key::day_of_micros(at.timestamp_micros())
    }

    /// The UTC day of a time in microseconds since the epoch.
    pub(crate) fn day_of_micros(micros: i64) -> Key {
        let day = micros.div_euclid(86_400_000_000);
        Key::new(Dimension::Day, &[&((day as u64) ^ (1 << 63)).to_be_bytes()])
    }

    /// The events whose id starts with the same six bytes (for UUIDv7, the same millisecond).
    pub(crate) fn event_id(id: &Uuid) -> Key {
        Key::new(Dimension::EventId, &[&id.as_bytes()[..6]])
    }
}

/// Positions gathered while a batch is applied, written to their chunks at its end.
#[derive(Debug, Default)]
pub(crate) struct Pending(BatchMap<Key, Vec<i64>>);

impl Pending {
    pub(crate) fn add(&mut self, key: Key, position: i64) {
        self.0.entry(key).or_default().push(position);
    }

    /// Appends every key's positions to its chunks: first into its last chunk while that has
    /// room, then into new chunks. A position not above the key's last is already recorded and
    /// skipped.
    pub(crate) fn write(self, tx: &BatchTx<'_>) -> rusqlite::Result<()> {
        let mut keys: Vec<(Key, Vec<i64>)> = self.0.into_iter().collect();
        keys.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut last_chunk = tx.prepare_cached(
            "SELECT first, last, count, positions FROM audit_postings
              WHERE key = ?1 ORDER BY first DESC LIMIT 1",
        )?;
        let mut extend = tx.prepare_cached(
            "UPDATE audit_postings SET last = ?3, count = ?4, positions = ?5
              WHERE key = ?1 AND first = ?2",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit_postings (key, first, last, count, positions)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (key, positions) in keys {
            let key = key.as_bytes();
            let existing = last_chunk
                .query_row([key], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .optional()?;
            let mut last = existing.as_ref().map_or(i64::MIN, |chunk| chunk.1);
            let mut fresh = Vec::with_capacity(positions.len());
            for position in positions {
                if position > last {
                    fresh.push(position);
                    last = position;
                }
            }
            let mut rest = &fresh[..];
            if let Some((first, last, count, mut deltas)) = existing {
                let room = CHUNK.saturating_sub(usize::try_from(count).unwrap_or(CHUNK));
                let take = room.min(rest.len());
                if take > 0 {
                    let (added, left) = rest.split_at(take);
                    push_deltas(&mut deltas, last, added);
                    extend.execute(params![
                        key,
                        first,
                        added[take - 1],
                        count + take as i64,
                        deltas
                    ])?;
                    rest = left;
                }
            }
            for chunk in rest.chunks(CHUNK) {
                let mut deltas = Vec::with_capacity(chunk.len() * 2);
                push_deltas(&mut deltas, chunk[0], &chunk[1..]);
                insert.execute(params![
                    key,
                    chunk[0],
                    chunk[chunk.len() - 1],
                    chunk.len() as i64,
                    deltas
                ])?;
            }
        }
        Ok(())
    }
}

/// Appends `positions` (ascending, all above `previous`) as LEB128 deltas.
fn push_deltas(out: &mut Vec<u8>, mut previous: i64, positions: &[i64]) {
    for &position in positions {
        switchboard_projector::pack::put_varint(out, position.abs_diff(previous));
        previous = position;
    }
}

/// The positions of one chunk, ascending; `None` if its deltas are malformed.
fn decode(first: i64, deltas: &[u8]) -> Option<Vec<i64>> {
    let mut positions = vec![first];
    let mut current = first;
    let mut delta: u64 = 0;
    let mut shift = 0u32;
    for &byte in deltas {
        delta |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            current = current.checked_add(i64::try_from(delta).ok()?)?;
            positions.push(current);
            delta = 0;
            shift = 0;
        } else {
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }
    (shift == 0).then_some(positions)
}

/// Which way a [`Cursor`] walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Ascending positions above a bound.
    Forward,
    /// Descending positions below a bound.
    Backward,
}

/// Walks one key's positions beyond an exclusive bound, one chunk at a time.
#[derive(Debug)]
pub(crate) struct Cursor {
    key: Key,
    direction: Direction,
    /// The exclusive bound the walk started from.
    bound: i64,
    /// The `first` of the chunk loaded last (going forward, the bound until one is), `None`
    /// before the first load.
    chunk: Option<i64>,
    /// The loaded chunk's positions left to hand out, in walking order reversed.
    buffer: Vec<i64>,
    done: bool,
}

impl Cursor {
    /// Positions above `bound` going forward, below it going backward.
    pub(crate) fn new(key: Key, direction: Direction, bound: i64) -> Cursor {
        Cursor {
            key,
            direction,
            bound,
            chunk: None,
            buffer: Vec::new(),
            done: false,
        }
    }

    /// The next position, without moving past it.
    pub(crate) fn peek(&mut self, conn: &rusqlite::Connection) -> rusqlite::Result<Option<i64>> {
        while self.buffer.is_empty() && !self.done {
            self.load(conn)?;
        }
        Ok(self.buffer.last().copied())
    }

    /// The next position.
    pub(crate) fn next(&mut self, conn: &rusqlite::Connection) -> rusqlite::Result<Option<i64>> {
        self.peek(conn)?;
        Ok(self.buffer.pop())
    }

    fn load(&mut self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        let sql = match (self.direction, self.chunk) {
            // The chunk the bound falls in (or the last before it), then each following one:
            // both are seeks on the primary key.
            (Direction::Forward, None) => {
                "SELECT first, positions FROM audit_postings
                  WHERE key = ?1 AND first <= ?2 ORDER BY first DESC LIMIT 1"
            }
            (Direction::Forward, Some(_)) => {
                "SELECT first, positions FROM audit_postings
                  WHERE key = ?1 AND first > ?2 ORDER BY first LIMIT 1"
            }
            (Direction::Backward, _) => {
                "SELECT first, positions FROM audit_postings
                  WHERE key = ?1 AND first < ?2 ORDER BY first DESC LIMIT 1"
            }
        };
        let from = self.chunk.unwrap_or(self.bound);
        let row = conn
            .prepare_cached(sql)?
            .query_row(params![self.key.as_bytes(), from], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .optional()?;
        let Some((first, deltas)) = row else {
            match (self.direction, self.chunk) {
                // No chunk starts at or before the bound: the walk goes on from the bound.
                (Direction::Forward, None) => self.chunk = Some(self.bound),
                _ => self.done = true,
            }
            return Ok(());
        };
        self.chunk = Some(first);
        let mut positions = decode(first, &deltas).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Blob,
                format!("malformed posting chunk at position {first}").into(),
            )
        })?;
        let bound = self.bound;
        match self.direction {
            Direction::Forward => {
                positions.retain(|&p| p > bound);
                positions.reverse();
            }
            Direction::Backward => positions.retain(|&p| p < bound),
        }
        self.buffer = positions;
        Ok(())
    }
}

/// How many chunks [`count`] and [`days`] read at most: enough to tell a small list from a
/// large one without reading a large one whole.
const COUNTED_CHUNKS: i64 = 64;

/// How many positions a key holds, counted up to [`COUNTED_CHUNKS`] chunks.
pub(crate) fn count(conn: &rusqlite::Connection, key: &Key) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT coalesce(sum(count), 0) FROM
           (SELECT count FROM audit_postings WHERE key = ?1 LIMIT ?2)",
    )?
    .query_row(params![key.as_bytes(), COUNTED_CHUNKS], |r| r.get(0))
}

/// The day keys from `from`'s day to `until`'s day (both included) that hold positions, each
/// found by one seek, and how many positions they hold, counted up to [`COUNTED_CHUNKS`] chunks.
pub(crate) fn days(
    conn: &rusqlite::Connection,
    from: Key,
    until: Key,
) -> rusqlite::Result<(Vec<Key>, i64)> {
    let counted: i64 = conn
        .prepare_cached(
            "SELECT coalesce(sum(count), 0) FROM
               (SELECT count FROM audit_postings WHERE key >= ?1 AND key <= ?2 LIMIT ?3)",
        )?
        .query_row(
            params![from.as_bytes(), until.as_bytes(), COUNTED_CHUNKS],
            |r| r.get(0),
        )?;
    let mut first = conn.prepare_cached(
        "SELECT key FROM audit_postings WHERE key >= ?1 AND key <= ?2 ORDER BY key LIMIT 1",
    )?;
    let mut next = conn.prepare_cached(
        "SELECT key FROM audit_postings WHERE key > ?1 AND key <= ?2 ORDER BY key LIMIT 1",
    )?;
    let mut keys = Vec::new();
    let mut found = first
        .query_row(params![from.as_bytes(), until.as_bytes()], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .optional()?;
    while let Some(bytes) = found {
        let mut key = Key {
            len: 0,
            bytes: [0; KEY_BYTES],
        };
        let len = bytes.len().min(KEY_BYTES);
        key.bytes[..len].copy_from_slice(&bytes[..len]);
        key.len = len as u8;
        keys.push(key);
        found = next
            .query_row(params![bytes, until.as_bytes()], |r| r.get::<_, Vec<u8>>(0))
            .optional()?;
    }
    Ok((keys, counted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_round_trip() {
        let positions = [5, 6, 200, 70_000, 70_001, 1 << 40];
        let mut deltas = Vec::new();
        push_deltas(&mut deltas, positions[0], &positions[1..]);
        assert_eq!(decode(positions[0], &deltas), Some(positions.to_vec()));
    }

    #[test]
    fn truncated_deltas_are_refused() {
        assert_eq!(decode(1, &[0x80]), None);
        assert_eq!(decode(1, &[0xff; 11]), None);
    }

    #[test]
    fn day_keys_sort_in_time_order() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let days = [
            Key::day(at("1969-12-30T12:00:00Z")),
            Key::day(at("1969-12-31T23:59:59Z")),
            Key::day(at("1970-01-01T00:00:00Z")),
            Key::day(at("2026-12-02T13:00:00Z")),
        ];
        assert!(days.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
        assert_eq!(Key::day(at("2026-12-02T00:00:00Z")), days[3]);
    }

    #[test]
    fn long_names_are_cut_to_fit() {
        let key = Key::actor(ActorKind::System, &[b'x'; 100]);
        assert_eq!(key.as_bytes().len(), KEY_BYTES);
    }
}
