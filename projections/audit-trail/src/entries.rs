//! The audit entries themselves, packed [`CHUNK`] to a row.
//!
//! One SQLite row per event cost more to write than everything else the audit trail does for an
//! event together (binding fifteen values, building the record, the B-tree insert), and what a
//! row costs is per row, not per byte. So entries are stored in position order in chunks: a row
//! per [`CHUNK`] consecutive entries, keyed by its first position, its entries packed in a
//! compact binary form ([`encode`]). A chunk fills up to [`CHUNK`] before the next one starts, so
//! the rows do not depend on how the log was batched. Queries read the chunk that holds a
//! position and unpack it; a chunk is 3 KB or so, one page.

use rusqlite::{Connection, OptionalExtension, params};
use switchboard_projector::BatchTx;
use switchboard_projector::pack::{
    Unpack, optional, put_bytes, put_id, put_signed, put_str, put_varint,
};

use crate::query::ActorKind;

/// The most entries one chunk holds.
pub(crate) const CHUNK: usize = 16;

/// The table.
pub(crate) const TABLE: &str = "
CREATE TABLE audit_entries (
    first   INTEGER PRIMARY KEY,   -- the position of the chunk's first entry
    last    INTEGER NOT NULL,      -- the position of its last
    count   INTEGER NOT NULL,      -- how many entries it holds, at most CHUNK
    entries BLOB    NOT NULL       -- the entries, packed (entries::encode)
) STRICT;
";

/// One event as the audit trail keeps it. Ids are a UUID's 16 bytes; an actor id is a UUID's
/// bytes or a system component's name; times are microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) position: i64,
    pub(crate) event_id: [u8; 16],
    pub(crate) stream: String,
    pub(crate) stream_version: i64,
    /// The event type's code in `audit_event_types`.
    pub(crate) event_type: i64,
    pub(crate) schema_version: u32,
    pub(crate) actor_kind: ActorKind,
    pub(crate) actor_id: Vec<u8>,
    pub(crate) occurred_at: i64,
    pub(crate) recorded_at: i64,
    pub(crate) correlation_id: [u8; 16],
    pub(crate) causation_id: [u8; 16],
    pub(crate) conversation_id: Option<[u8; 16]>,
    pub(crate) inbox_id: Option<[u8; 16]>,
    pub(crate) contact_id: Option<[u8; 16]>,
}

/// A chunk that does not unpack: the read model is damaged (rebuild it).
#[derive(Debug, thiserror::Error)]
#[error("audit entries chunk at position {first} is malformed")]
pub(crate) struct Malformed {
    first: i64,
}

fn malformed(first: i64) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        3,
        rusqlite::types::Type::Blob,
        Box::new(Malformed { first }),
    )
}

/// The last chunk as a batch finds it, read once by its key (chunks are in position order): the
/// highest position recorded, and where the batch's entries go first.
pub(crate) struct Tail(Option<LastChunk>);

struct LastChunk {
    first: i64,
    last: i64,
    count: i64,
    packed: Vec<u8>,
}

impl Tail {
    pub(crate) fn load(tx: &BatchTx<'_>) -> rusqlite::Result<Tail> {
        let chunk = tx
            .query_row_cached(
                "SELECT first, last, count, entries FROM audit_entries
                  ORDER BY first DESC LIMIT 1",
                [],
                |r| {
                    Ok(LastChunk {
                        first: r.get(0)?,
                        last: r.get(1)?,
                        count: r.get(2)?,
                        packed: r.get(3)?,
                    })
                },
            )
            .optional()?;
        Ok(Tail(chunk))
    }

    /// The highest position recorded, 0 for none.
    pub(crate) fn last_position(&self) -> i64 {
        self.0.as_ref().map_or(0, |chunk| chunk.last)
    }

    /// Appends `entries` (ascending, all above [`Tail::last_position`]): into the last chunk
    /// while it has room, then into new chunks.
    pub(crate) fn append(self, tx: &BatchTx<'_>, entries: &[Stored]) -> rusqlite::Result<()> {
        let mut rest = entries;
        if let Some(mut chunk) = self.0 {
            let held = usize::try_from(chunk.count).unwrap_or(CHUNK);
            let take = CHUNK.saturating_sub(held).min(rest.len());
            if take > 0 {
                let (added, left) = rest.split_at(take);
                encode(&mut chunk.packed, chunk.last, added);
                tx.execute_cached(
                    "UPDATE audit_entries SET last = ?2, count = ?3, entries = ?4 WHERE first = ?1",
                    params![
                        chunk.first,
                        added[take - 1].position,
                        chunk.count + take as i64,
                        chunk.packed
                    ],
                )?;
                rest = left;
            }
        }
        for chunk in rest.chunks(CHUNK) {
            let mut packed = Vec::with_capacity(chunk.len() * 200);
            encode(&mut packed, chunk[0].position, chunk);
            tx.execute_cached(
                "INSERT INTO audit_entries (first, last, count, entries) VALUES (?1, ?2, ?3, ?4)",
                params![
                    chunk[0].position,
                    chunk[chunk.len() - 1].position,
                    chunk.len() as i64,
                    packed
                ],
            )?;
        }
        Ok(())
    }
}

/// Renames the streams of the entries at `positions` (ascending) that `rename` gives a new
/// name, rewriting each chunk that holds one. A chunk is packed again whole, the same bytes as
/// if its entries had been recorded renamed, so the rows still do not depend on the batching.
pub(crate) fn rename_streams(
    tx: &BatchTx<'_>,
    positions: &[i64],
    rename: impl Fn(&str) -> Option<String>,
) -> rusqlite::Result<()> {
    // The chunk being changed: its first position and entries, and whether any changed.
    let mut chunk: Option<(i64, Vec<Stored>, bool)> = None;
    for &position in positions {
        let held = chunk
            .as_ref()
            .is_some_and(|(_, entries, _)| entries.last().is_some_and(|e| e.position >= position));
        if !held {
            if let Some((first, entries, true)) = chunk.take() {
                rewrite(tx, first, &entries)?;
            }
            chunk = tx
                .query_row_cached(
                    "SELECT first, entries FROM audit_entries WHERE first <= ?1
                      ORDER BY first DESC LIMIT 1",
                    [position],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
                )
                .optional()?
                .map(|(first, packed)| {
                    decode(first, &packed)
                        .map(|entries| (first, entries, false))
                        .ok_or_else(|| malformed(first))
                })
                .transpose()?;
        }
        if let Some((_, entries, changed)) = &mut chunk
            && let Some(entry) = entries.iter_mut().find(|e| e.position == position)
            && let Some(name) = rename(&entry.stream)
            && name != entry.stream
        {
            entry.stream = name;
            *changed = true;
        }
    }
    if let Some((first, entries, true)) = chunk {
        rewrite(tx, first, &entries)?;
    }
    Ok(())
}

/// Stores the entries of the chunk starting at `first` again.
fn rewrite(tx: &BatchTx<'_>, first: i64, entries: &[Stored]) -> rusqlite::Result<()> {
    let mut packed = Vec::with_capacity(entries.len() * 200);
    encode(&mut packed, first, entries);
    tx.execute_cached(
        "UPDATE audit_entries SET entries = ?2 WHERE first = ?1",
        params![first, packed],
    )?;
    Ok(())
}

/// Entries found by position for one query: the chunk last unpacked is kept, since the
/// positions a posting list names often lie close together.
#[derive(Debug, Default)]
pub(crate) struct Lookup {
    chunk: Vec<Stored>,
}

impl Lookup {
    /// The entry at `position`, if recorded.
    pub(crate) fn at(
        &mut self,
        conn: &Connection,
        position: i64,
    ) -> rusqlite::Result<Option<Stored>> {
        let held = |chunk: &[Stored]| {
            chunk.first().is_some_and(|e| e.position <= position)
                && chunk.last().is_some_and(|e| e.position >= position)
        };
        if !held(&self.chunk) {
            let found: Option<(i64, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT first, entries FROM audit_entries WHERE first <= ?1
                      ORDER BY first DESC LIMIT 1",
                )?
                .query_row([position], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            self.chunk = match found {
                Some((first, packed)) => decode(first, &packed).ok_or_else(|| malformed(first))?,
                None => Vec::new(),
            };
        }
        Ok(self.chunk.iter().find(|e| e.position == position).cloned())
    }
}

/// Up to `limit` entries beyond the exclusive `bound`, in walking order: ascending positions
/// above it (`forward`) or descending below it.
pub(crate) fn walk(
    conn: &Connection,
    forward: bool,
    bound: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Stored>> {
    // Forward: the chunk holding `bound` (its first is at or below it), then the ones after;
    // backward: the chunks starting below `bound`, last first.
    let sql = if forward {
        "SELECT first, entries FROM audit_entries
          WHERE first >= coalesce((SELECT max(first) FROM audit_entries WHERE first <= ?1), 0)
          ORDER BY first ASC"
    } else {
        "SELECT first, entries FROM audit_entries WHERE first < ?1 ORDER BY first DESC"
    };
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query([bound])?;
    let mut found = Vec::new();
    while found.len() < limit
        && let Some(row) = rows.next()?
    {
        let first: i64 = row.get(0)?;
        let packed = row.get_ref(1)?.as_blob()?;
        let mut entries = decode(first, packed).ok_or_else(|| malformed(first))?;
        if !forward {
            entries.reverse();
        }
        let beyond = |e: &Stored| {
            if forward {
                e.position > bound
            } else {
                e.position < bound
            }
        };
        found.extend(entries.into_iter().filter(beyond).take(limit - found.len()));
    }
    Ok(found)
}

/// Appends `entries` to `out`, each position as its distance from the one before (`previous`
/// for the first).
fn encode(out: &mut Vec<u8>, mut previous: i64, entries: &[Stored]) {
    for e in entries {
        put_varint(out, e.position.abs_diff(previous));
        previous = e.position;
        put_id(out, &e.event_id);
        put_str(out, &e.stream);
        put_signed(out, e.stream_version);
        put_signed(out, e.event_type);
        put_varint(out, u64::from(e.schema_version));
        out.push(e.actor_kind.code() as u8);
        put_bytes(out, &e.actor_id);
        put_signed(out, e.occurred_at);
        put_signed(out, e.recorded_at);
        put_id(out, &e.correlation_id);
        put_id(out, &e.causation_id);
        let ids = [e.conversation_id, e.inbox_id, e.contact_id];
        let present = ids
            .iter()
            .enumerate()
            .fold(0u8, |bits, (i, id)| bits | (u8::from(id.is_some()) << i));
        out.push(present);
        for id in ids.iter().flatten() {
            put_id(out, id);
        }
    }
}

/// The entries of the chunk starting at `first`; `None` if `packed` is malformed.
fn decode(first: i64, packed: &[u8]) -> Option<Vec<Stored>> {
    let mut input = Unpack::new(packed);
    let mut entries = Vec::with_capacity(CHUNK);
    let mut position = first;
    while !input.is_empty() {
        let delta = i64::try_from(input.varint()?).ok()?;
        position = position.checked_add(delta)?;
        let event_id = input.id()?;
        let stream = input.str()?.to_owned();
        let stream_version = input.signed()?;
        let event_type = input.signed()?;
        let schema_version = u32::try_from(input.varint()?).ok()?;
        let actor_kind = ActorKind::from_code(i64::from(input.byte()?))?;
        let actor_id = input.bytes()?.to_vec();
        let occurred_at = input.signed()?;
        let recorded_at = input.signed()?;
        let correlation_id = input.id()?;
        let causation_id = input.id()?;
        let present = input.byte()?;
        if present > 0b111 {
            return None;
        }
        let mut id = |bit: u8| optional(present & (1 << bit) != 0, || input.id());
        let conversation_id = id(0)?;
        let inbox_id = id(1)?;
        let contact_id = id(2)?;
        entries.push(Stored {
            position,
            event_id,
            stream,
            stream_version,
            event_type,
            schema_version,
            actor_kind,
            actor_id,
            occurred_at,
            recorded_at,
            correlation_id,
            causation_id,
            conversation_id,
            inbox_id,
            contact_id,
        });
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(position: i64, kind: ActorKind, optional: bool) -> Stored {
        let id = |n: u8| [n; 16];
        Stored {
            position,
            event_id: id(1),
            stream: format!("conversation-{position}"),
            stream_version: position / 3,
            event_type: position % 7,
            schema_version: 2,
            actor_kind: kind,
            actor_id: match kind {
                ActorKind::System => b"router \xc3\xa9".to_vec(),
                _ => id(9).to_vec(),
            },
            occurred_at: -1_000_000 + position,
            recorded_at: i64::MAX - position,
            correlation_id: id(2),
            causation_id: id(3),
            conversation_id: optional.then_some(id(4)),
            inbox_id: Some(id(5)),
            contact_id: optional.then_some(id(6)),
        }
    }

    #[test]
    fn entries_pack_and_unpack_unchanged() {
        let entries: Vec<Stored> = [1i64, 2, 5, 300, 70_000, 1 << 40]
            .iter()
            .zip([
                ActorKind::User,
                ActorKind::System,
                ActorKind::Contact,
                ActorKind::Bot,
                ActorKind::Channel,
                ActorKind::System,
            ])
            .enumerate()
            .map(|(i, (&p, kind))| stored(p, kind, i % 2 == 0))
            .collect();
        let mut packed = Vec::new();
        encode(&mut packed, 1, &entries);
        assert_eq!(decode(1, &packed), Some(entries));
        assert_eq!(decode(1, &[]), Some(Vec::new()));
    }

    #[test]
    fn a_damaged_chunk_does_not_unpack() {
        let mut packed = Vec::new();
        encode(&mut packed, 10, &[stored(10, ActorKind::User, true)]);
        for cut in 1..packed.len() {
            assert_eq!(decode(10, &packed[..cut]), None, "cut at {cut}");
        }
        let mut bad_kind = packed.clone();
        let kind_at = 1 + 16 + 1 + "conversation-10".len() + 3;
        bad_kind[kind_at] = 99;
        assert_eq!(decode(10, &bad_kind), None);
        assert_eq!(decode(10, &[0xff; 12]), None);
    }
}
