//! How a conversation's timeline rows are stored: packed one after the other into chunks of a
//! few kilobytes (`timeline.entries`), each chunk keyed by the position of its first row.
//!
//! A timeline is only ever read whole, one conversation at a time. One table row per event
//! cost a B-tree insert per event and, once caught up, an index over every one of them; a
//! chunk holds a few dozen rows, so a rebuild writes about one table row per conversation and
//! batch, and a thread is read from a page or two.
//!
//! A chunk is a run of frames: the row's position (varint), its length (varint), then the row
//! as [`crate::entry`] packs it. Rows go into the conversation's last chunk until the next one
//! would take it past [`CHUNK_BYTES`]; then a new chunk starts, keyed by that row's position.
//! The split depends only on the rows in log order, never on where batches were cut, so
//! incremental builds equal rebuilds.

use rusqlite::{OptionalExtension, params};
use switchboard_projector::pack::{Unpack, put_bytes, put_varint};
use switchboard_projector::{BatchMap, BatchTx};
use uuid::Uuid;

/// The size a chunk is filled to: a chunk with its key and record header fits one 4 KB page of
/// the table. A row larger than this gets a chunk of its own.
pub(crate) const CHUNK_BYTES: usize = 3800;

/// The timeline rows a batch appends, by conversation, written at its end ([`Appends::flush`]).
#[derive(Debug, Default)]
pub(crate) struct Appends {
    /// Where the event being applied packs its row ([`Appends::push`] frames it from here).
    pub(crate) packed: Vec<u8>,
    /// Index in `pending` of each conversation's appends.
    by_conversation: BatchMap<Uuid, usize>,
    /// Each conversation's appends, in the order the conversations were first appended to.
    pending: Vec<Pending>,
}

/// One conversation's frames appended in the batch.
#[derive(Debug)]
struct Pending {
    conversation_id: Uuid,
    frames: Vec<u8>,
    /// Where each frame starts in `frames`, with its row's position.
    starts: Vec<(i64, usize)>,
}

impl Appends {
    /// Appends the row in `packed`, the event at `position`'s, to the timeline of
    /// `conversation_id`.
    pub(crate) fn push(&mut self, conversation_id: Uuid, position: i64) {
        let index = *self
            .by_conversation
            .entry(conversation_id)
            .or_insert_with(|| {
                self.pending.push(Pending {
                    conversation_id,
                    frames: Vec::new(),
                    starts: Vec::new(),
                });
                self.pending.len() - 1
            });
        let pending = &mut self.pending[index];
        pending.starts.push((position, pending.frames.len()));
        put_varint(&mut pending.frames, position as u64);
        put_bytes(&mut pending.frames, &self.packed);
    }

    /// Drops what the batch appended to the timeline of `conversation_id` (it was erased), and
    /// returns the positions of the rows dropped.
    pub(crate) fn forget(&mut self, conversation_id: Uuid) -> Vec<i64> {
        let Some(&index) = self.by_conversation.get(&conversation_id) else {
            return Vec::new();
        };
        let pending = &mut self.pending[index];
        pending.frames = Vec::new();
        std::mem::take(&mut pending.starts)
            .into_iter()
            .map(|(position, _)| position)
            .collect()
    }

    /// Writes every conversation's appends: onto its last chunk while it has room, then into
    /// new chunks.
    pub(crate) fn flush(self, tx: &BatchTx<'_>) -> rusqlite::Result<()> {
        for pending in &self.pending {
            if pending.starts.is_empty() {
                continue;
            }
            let key = pending.conversation_id.as_bytes();
            let mut chunk: Option<(i64, usize)> = tx
                .query_row_cached(
                    "SELECT first_position, length(entries) FROM timeline
                     WHERE conversation_id = ?1 ORDER BY first_position DESC LIMIT 1",
                    params![key],
                    |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)),
                )
                .optional()?;
            // Frames `run_from..` of `frames` go onto `chunk` (stored, or new when `fresh`).
            let mut run_from = 0;
            let mut fresh = false;
            let ends = pending.starts.iter().skip(1).map(|&(_, start)| start);
            for (&(position, start), end) in pending
                .starts
                .iter()
                .zip(ends.chain([pending.frames.len()]))
            {
                let frame = end - start;
                let full = chunk.is_none_or(|(_, len)| len > 0 && len + frame > CHUNK_BYTES);
                if full {
                    if let Some((first, _)) = chunk {
                        write(tx, key, first, &pending.frames[run_from..start], fresh)?;
                    }
                    chunk = Some((position, 0));
                    run_from = start;
                    fresh = true;
                }
                if let Some((_, len)) = &mut chunk {
                    *len += frame;
                }
            }
            if let Some((first, _)) = chunk {
                write(tx, key, first, &pending.frames[run_from..], fresh)?;
            }
        }
        Ok(())
    }
}

/// Deletes the stored timeline of `conversation_id` (it was erased), and returns the positions
/// of its rows.
pub(crate) fn delete(tx: &BatchTx<'_>, conversation_id: Uuid) -> rusqlite::Result<Vec<i64>> {
    let key = conversation_id.as_bytes();
    let mut positions = Vec::new();
    tx.with_statement(
        "SELECT entries FROM timeline WHERE conversation_id = ?1",
        |stmt| {
            let mut rows = stmt.query(params![key])?;
            while let Some(row) = rows.next()? {
                let chunk = row.get_ref(0)?.as_blob()?;
                for frame in frames(chunk) {
                    let (position, _) = frame.map_err(|()| malformed(conversation_id))?;
                    positions.push(position as i64);
                }
            }
            Ok(())
        },
    )?;
    tx.execute_cached(
        "DELETE FROM timeline WHERE conversation_id = ?1",
        params![key],
    )?;
    Ok(positions)
}

fn malformed(conversation_id: Uuid) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        2,
        rusqlite::types::Type::Blob,
        format!("malformed timeline chunk of conversation {conversation_id}").into(),
    )
}

/// Writes `frames` as the new chunk `first` of `key`'s timeline, or onto the end of that stored
/// chunk.
fn write(
    tx: &BatchTx<'_>,
    key: &[u8; 16],
    first: i64,
    frames: &[u8],
    fresh: bool,
) -> rusqlite::Result<()> {
    if frames.is_empty() {
        return Ok(());
    }
    if fresh {
        tx.execute_cached(
            "INSERT INTO timeline (first_position, conversation_id, entries) VALUES (?1, ?2, ?3)",
            params![first, key, frames],
        )?;
    } else {
        tx.execute_cached(
            // `||` makes text of the bytes (unchanged in a UTF-8 database); the cast keeps the
            // column's type.
            "UPDATE timeline SET entries = CAST(entries || ?2 AS BLOB) WHERE first_position = ?1",
            params![first, frames],
        )?;
    }
    Ok(())
}

/// Writes the frame of the row `row` at `position` onto `out`, as chunks hold it.
pub(crate) fn put_frame(out: &mut Vec<u8>, position: u64, row: &[u8]) {
    put_varint(out, position);
    put_bytes(out, row);
}

/// The rows of a chunk in order, each with its position; an `Err` item (and nothing after it)
/// if the chunk is malformed.
pub(crate) fn frames(chunk: &[u8]) -> impl Iterator<Item = Result<(u64, &[u8]), ()>> {
    let mut input = Unpack::new(chunk);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || input.is_empty() {
            return None;
        }
        let frame = input.varint().zip(input.bytes());
        failed = frame.is_none();
        Some(frame.ok_or(()))
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// Appends rows of the given sizes (positions from `first` on) in one transaction.
    fn append(conn: &Connection, conversation: Uuid, first: i64, sizes: &[usize]) {
        let tx = conn.unchecked_transaction().unwrap();
        let batch = BatchTx::new(&tx);
        let mut appends = Appends::default();
        for (n, &size) in sizes.iter().enumerate() {
            let position = first + n as i64;
            appends.packed = vec![position as u8; size];
            appends.push(conversation, position);
        }
        appends.flush(&batch).unwrap();
        drop(batch);
        tx.commit().unwrap();
    }

    /// Each chunk of `conversation`: its key and its rows' (position, size).
    fn chunks(conn: &Connection, conversation: Uuid) -> Vec<(i64, Vec<(u64, usize)>)> {
        let mut stmt = conn
            .prepare(
                "SELECT first_position, entries FROM timeline WHERE conversation_id = ?1
                 ORDER BY first_position",
            )
            .unwrap();
        stmt.query_map([conversation.as_bytes()], |r| {
            let chunk: Vec<u8> = r.get(1)?;
            let rows = frames(&chunk)
                .map(|frame| frame.map(|(position, row)| (position, row.len())))
                .collect::<Result<_, ()>>()
                .unwrap();
            Ok((r.get(0)?, rows))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&conn).unwrap();
        conn
    }

    #[test]
    fn chunks_fill_in_order_and_a_row_larger_than_a_chunk_gets_one_of_its_own() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        // A row of 1,000 bytes takes 1,003 with its frame: three fit in 3,800, a fourth not.
        let sizes = [1000, 1000, 1000, 1000, 10_000, 50, 50];
        let in_one = table();
        append(&in_one, a, 1, &sizes);
        let expected = vec![
            (1, vec![(1, 1000), (2, 1000), (3, 1000)]),
            (4, vec![(4, 1000)]),
            (5, vec![(5, 10_000)]),
            (6, vec![(6, 50), (7, 50)]),
        ];
        assert_eq!(chunks(&in_one, a), expected);

        // Row by row, with another conversation's rows in the same transactions: the same
        // chunks, whatever the batching.
        let by_row = table();
        for (n, &size) in sizes.iter().enumerate() {
            let position = 1 + n as i64;
            let tx = by_row.unchecked_transaction().unwrap();
            let batch = BatchTx::new(&tx);
            let mut appends = Appends {
                packed: vec![position as u8; size],
                ..Appends::default()
            };
            appends.push(a, position);
            appends.packed = vec![0; 10];
            appends.push(b, 100 + position);
            appends.flush(&batch).unwrap();
            drop(batch);
            tx.commit().unwrap();
        }
        assert_eq!(chunks(&by_row, a), expected);
        assert_eq!(chunks(&by_row, b).len(), 1);
        assert_eq!(chunks(&by_row, b)[0].1.len(), sizes.len());
        // The rows come back as they were packed.
        let stored: Vec<u8> = by_row
            .query_row(
                "SELECT entries FROM timeline WHERE first_position = 4",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let (position, row) = frames(&stored).next().unwrap().unwrap();
        assert_eq!((position, row), (4, &[4u8; 1000][..]));
    }

    #[test]
    fn a_malformed_chunk_ends_in_an_error() {
        let mut chunk = Vec::new();
        put_varint(&mut chunk, 7);
        put_bytes(&mut chunk, b"row");
        chunk.extend_from_slice(&[9, 200]); // a position, then a length past the end
        let read: Vec<_> = frames(&chunk).collect();
        assert_eq!(read, [Ok((7, &b"row"[..])), Err(())]);
    }
}
