//! A contact's messages in conversations that are not theirs, and what erasing the contact
//! does to them.
//!
//! An erasure drops the conversations that are the person's (each gets `ConversationErased`),
//! but a person also writes where the conversation is someone else's: copied on another
//! customer's thread, or recognised as a contact in a thread whose contact is another. Those
//! conversations stay, and what the person wrote in them goes: on `ContactErased` their rows
//! are rewritten with the author's address and name, the subject, the body and the files
//! blanked ([`crate::entry::redacted`]), their filtered-mail rows too, the files only they
//! showed leave the conversation, a preview made from their words is emptied, and a
//! conversation subject taken from their message becomes the next message's. A log whose
//! personal fields were sealed and whose keys are destroyed rebuilds to the same rows: its
//! messages arrive blank, and are rewritten the same way.
//!
//! Which rows those are is noted as they arrive (`foreign_messages`, keyed by contact: one row
//! per message with a recognised sender, wherever it is; at the erasure, those in the
//! conversations erased with the contact are left to their `ConversationErased`), with the
//! merges (`merged_contacts`, so that erasing a contact finds the messages of those merged into
//! it). Every message is noted, not only those whose sender differs from the conversation's
//! contact as the header has it then: that contact can change afterwards (a conversation
//! started by filtered mail, then by someone else's message), and which conversations an erasure
//! takes is the write side's decision, named in `ContactErased`.

use std::collections::{BTreeMap, BTreeSet};

use proto_events::event::{ContactErased, ContactsMerged};
use rusqlite::params;
use switchboard_projector::{ApplyError, BatchTx};
use uuid::Uuid;

use crate::chunks;
use crate::entry::{self, Record};
use crate::types::EntryKind;

/// The tables.
pub(crate) const TABLES: &str = "
-- Messages by their recognised sender: what erasing that sender rewrites in the conversations
-- that stay.
CREATE TABLE foreign_messages (
    contact_id      BLOB    NOT NULL,
    position        INTEGER NOT NULL,
    conversation_id BLOB    NOT NULL,
    PRIMARY KEY (contact_id, position)
) STRICT, WITHOUT ROWID;

-- The contact each merged contact now belongs to: the final survivor (re-pointed when a
-- survivor is merged in turn, so always one hop).
CREATE TABLE merged_contacts (
    merged   BLOB PRIMARY KEY,
    survivor BLOB NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX merged_contacts_by_survivor ON merged_contacts (survivor);
";

/// Notes that the message at `position` in `conversation_id` came from `contact_id`.
pub(crate) fn note(
    tx: &BatchTx<'_>,
    contact_id: Uuid,
    position: i64,
    conversation_id: Uuid,
) -> rusqlite::Result<()> {
    tx.execute_cached(
        "INSERT OR IGNORE INTO foreign_messages (contact_id, position, conversation_id)
         VALUES (?1, ?2, ?3)",
        params![contact_id.as_bytes(), position, conversation_id.as_bytes()],
    )?;
    Ok(())
}

/// Notes that `e.merged_id` is `e.survivor_id`'s from now on, with the contacts merged into it
/// before. Recorded in both contacts' streams: the second time changes nothing.
pub(crate) fn merged(tx: &BatchTx<'_>, e: &ContactsMerged) -> rusqlite::Result<()> {
    let (survivor, merged) = (e.survivor_id.as_bytes(), e.merged_id.as_bytes());
    tx.execute_cached(
        "UPDATE merged_contacts SET survivor = ?1 WHERE survivor = ?2",
        params![survivor, merged],
    )?;
    tx.execute_cached(
        "INSERT OR REPLACE INTO merged_contacts (merged, survivor) VALUES (?2, ?1)",
        params![survivor, merged],
    )?;
    Ok(())
}

/// The messages of `e.contact_id` and the contacts merged into it in conversations other than
/// those erased with it, by conversation, with their positions; their notes are removed.
pub(crate) fn take_erased(
    tx: &BatchTx<'_>,
    e: &ContactErased,
) -> rusqlite::Result<BTreeMap<Uuid, BTreeSet<i64>>> {
    let mut family = vec![e.contact_id];
    tx.with_statement(
        "SELECT merged FROM merged_contacts WHERE survivor = ?1",
        |stmt| {
            let rows = stmt.query_map([e.contact_id.as_bytes()], |r| {
                r.get::<_, [u8; 16]>(0).map(Uuid::from_bytes)
            })?;
            for merged in rows {
                family.push(merged?);
            }
            Ok(())
        },
    )?;
    let erased: BTreeSet<Uuid> = e.conversation_ids.iter().copied().collect();
    let mut found: BTreeMap<Uuid, BTreeSet<i64>> = BTreeMap::new();
    for contact in &family {
        tx.with_statement(
            "SELECT position, conversation_id FROM foreign_messages WHERE contact_id = ?1",
            |stmt| {
                let rows = stmt.query_map([contact.as_bytes()], |r| {
                    Ok((r.get::<_, i64>(0)?, Uuid::from_bytes(r.get(1)?)))
                })?;
                for row in rows {
                    let (position, conversation_id) = row?;
                    if !erased.contains(&conversation_id) {
                        found.entry(conversation_id).or_default().insert(position);
                    }
                }
                Ok(())
            },
        )?;
        tx.execute_cached(
            "DELETE FROM foreign_messages WHERE contact_id = ?1",
            [contact.as_bytes()],
        )?;
    }
    Ok(found)
}

/// What rewriting a conversation's rows changed beyond them.
#[derive(Debug, Default)]
pub(crate) struct Rewritten {
    /// Whether the conversation's last message (in or out) is one of the rows: its preview
    /// came from them.
    pub(crate) last_message_redacted: bool,
    /// The conversation's subject when it came from one of the rows (the first message in or
    /// out with a subject): that of the first such message left, if any.
    pub(crate) subject: Option<Option<String>>,
}

/// Rewrites the stored rows at `positions` of `conversation_id`'s timeline blanked (every row
/// of the conversation must be stored: the batch's appends flushed first), drops the files
/// only those rows showed, and blanks their filtered-mail rows.
pub(crate) fn redact(
    tx: &BatchTx<'_>,
    conversation_id: Uuid,
    positions: &BTreeSet<i64>,
) -> Result<Rewritten, ApplyError> {
    let key = conversation_id.as_bytes();
    let mut stored: Vec<(i64, Vec<u8>)> = Vec::new();
    tx.with_statement(
        "SELECT first_position, entries FROM timeline
         WHERE conversation_id = ?1 ORDER BY first_position",
        |stmt| {
            let rows = stmt.query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                stored.push(row?);
            }
            Ok(())
        },
    )?;
    let malformed = || {
        ApplyError::Inconsistent(format!(
            "a timeline chunk of conversation {conversation_id} is malformed"
        ))
    };
    let mut dropped = BTreeSet::new();
    // The files the rows that stay show, each as the first of them to show it has it.
    let mut kept: BTreeMap<String, FileRow> = BTreeMap::new();
    let mut last_message_redacted = false;
    // Whether the first message with a subject is one of the rows, and the first left.
    let mut subject_from_rows: Option<bool> = None;
    let mut first_subject_left: Option<String> = None;
    for (first, chunk) in stored {
        let mut rewritten = Vec::with_capacity(chunk.len());
        let mut changed = false;
        for frame in chunks::frames(&chunk) {
            let (position, row) = frame.map_err(|()| malformed())?;
            let record = entry::read(position, row).ok_or_else(malformed)?;
            let ours = i64::try_from(position).is_ok_and(|p| positions.contains(&p));
            if let Record::Entry(entry) = &record {
                let files = entry.files_json.as_deref().map(file_rows);
                for (sha256, row) in files.into_iter().flatten() {
                    if ours {
                        dropped.insert(sha256);
                    } else {
                        kept.entry(sha256).or_insert(row);
                    }
                }
                if matches!(
                    entry.kind,
                    EntryKind::InboundMessage | EntryKind::OutboundMessage
                ) {
                    last_message_redacted = ours;
                    if entry.subject.is_some() {
                        subject_from_rows.get_or_insert(ours);
                        if !ours && first_subject_left.is_none() {
                            first_subject_left.clone_from(&entry.subject);
                        }
                    }
                }
            }
            if ours {
                let blank = entry::redacted(row).ok_or_else(malformed)?;
                chunks::put_frame(&mut rewritten, position, &blank);
                changed = true;
            } else {
                chunks::put_frame(&mut rewritten, position, row);
            }
        }
        if changed {
            tx.execute_cached(
                "UPDATE timeline SET entries = ?2 WHERE first_position = ?1",
                params![first, rewritten],
            )?;
        }
    }
    let conversation = conversation_id.to_string();
    for sha256 in &dropped {
        match kept.get(sha256) {
            // Shown by someone else too: as they sent it (the name may have been the erased
            // sender's).
            Some((size, content_type, file_name)) => tx.execute_cached(
                "UPDATE files SET size = ?3, content_type = ?4, file_name = ?5
                 WHERE conversation_id = ?1 AND sha256 = ?2",
                params![conversation, sha256, size, content_type, file_name],
            )?,
            None => tx.execute_cached(
                "DELETE FROM files WHERE conversation_id = ?1 AND sha256 = ?2",
                params![conversation, sha256],
            )?,
        };
    }
    for position in positions {
        tx.execute_cached(
            "UPDATE filtered_messages
             SET from_address = '', from_name = NULL, subject = NULL, body_text = ''
             WHERE position = ?1 AND conversation_id = ?2",
            params![position, conversation],
        )?;
    }
    Ok(Rewritten {
        last_message_redacted,
        subject: (subject_from_rows == Some(true)).then_some(first_subject_left),
    })
}

/// A file as the `files` table keeps it: size, type and name.
type FileRow = (i64, String, Option<String>);

/// Every file a row's files JSON names (`{"attachments": [...], "raw": ...}`), by SHA-256, as
/// `record_files` stores them: attachments with their type and name, the original as
/// `message/rfc822` named `original.eml`. Files without a hash (blanked) are left out.
fn file_rows(files_json: &str) -> Vec<(String, FileRow)> {
    use serde_json::Value;
    let Ok(files) = serde_json::from_str::<Value>(files_json) else {
        return Vec::new();
    };
    let blob = |file: &Value| {
        let sha256 = file["blob"]["sha256"].as_str().filter(|h| !h.is_empty())?;
        let size = file["blob"]["size"]
            .as_u64()
            .map_or(i64::MAX, |size| i64::try_from(size).unwrap_or(i64::MAX));
        Some((sha256.to_owned(), size))
    };
    let mut rows = Vec::new();
    for attachment in files["attachments"].as_array().into_iter().flatten() {
        if let Some((sha256, size)) = blob(attachment) {
            let content_type = attachment["content_type"].as_str().unwrap_or_default();
            let file_name = attachment["file_name"].as_str().map(str::to_owned);
            rows.push((sha256, (size, content_type.to_owned(), file_name)));
        }
    }
    if let Some((sha256, size)) = blob(&files["raw"]) {
        let row = (
            size,
            "message/rfc822".to_owned(),
            Some("original.eml".to_owned()),
        );
        rows.push((sha256, row));
    }
    rows
}
