//! What the trail redacts when a contact is erased.
//!
//! An entry keeps no payload, so nothing of a person is in the trail but one thing: the name
//! of a uniqueness reservation's stream, which is made of the value reserved
//! (`unique-contact-email-<address>`, ADR 0007). When a contact is erased, the entries of the
//! reservation streams it owns, and those of the contacts merged into it (a merge makes the
//! merged contact's data the survivor's), are renamed `unique-<scope>-(erased)`: the entries
//! already recorded once the batch is written, and any recorded later (a release of the values
//! after the erasure) as they are recorded. Everything else of an entry stays, so the trail
//! still shows who did what and when, the erasures included.
//!
//! The merges and the erased contacts are kept in tables of their own (ids only), so that a
//! rebuild redacts the same entries.

use proto_events::event::{ContactErased, ContactsMerged, UniqueScope};
use proto_events::streams;
use rusqlite::{OptionalExtension, params};
use switchboard_projector::BatchTx;
use uuid::Uuid;

use crate::entries;
use crate::postings::{Cursor, Direction, Key};

/// The tables.
pub(crate) const TABLE: &str = "
-- The contact each merged contact now belongs to: the final survivor (re-pointed when a
-- survivor is merged in turn, so always one hop).
CREATE TABLE audit_merged (
    merged   BLOB PRIMARY KEY,
    survivor BLOB NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX audit_merged_by_survivor ON audit_merged (survivor);

-- Erased contacts, with the contacts merged into them: their reservations' names are redacted.
CREATE TABLE audit_erased (
    contact BLOB PRIMARY KEY
) STRICT, WITHOUT ROWID;
";

/// What stands for the value in a redacted reservation stream's name.
const ERASED: &str = "(erased)";

/// Notes that `e.merged_id` is `e.survivor_id`'s from now on, with the contacts merged into it
/// before. Recorded in both contacts' streams: the second time changes nothing.
pub(crate) fn merged(tx: &BatchTx<'_>, e: &ContactsMerged) -> rusqlite::Result<()> {
    let (survivor, merged) = (e.survivor_id.as_bytes(), e.merged_id.as_bytes());
    tx.execute_cached(
        "UPDATE audit_merged SET survivor = ?1 WHERE survivor = ?2",
        params![survivor, merged],
    )?;
    tx.execute_cached(
        "INSERT OR REPLACE INTO audit_merged (merged, survivor) VALUES (?2, ?1)",
        params![survivor, merged],
    )?;
    Ok(())
}

/// Notes that `e.contact_id` and the contacts merged into it are erased, and returns them: the
/// entries already recorded of their reservations are to be redacted ([`redact_recorded`]).
pub(crate) fn erased(tx: &BatchTx<'_>, e: &ContactErased) -> rusqlite::Result<Vec<Uuid>> {
    let mut contacts = vec![e.contact_id];
    tx.with_statement(
        "SELECT merged FROM audit_merged WHERE survivor = ?1 ORDER BY merged",
        |stmt| {
            let merged = stmt.query_map([e.contact_id.as_bytes()], |r| {
                let bytes: [u8; 16] = r.get(0)?;
                Ok(Uuid::from_bytes(bytes))
            })?;
            for contact in merged {
                contacts.push(contact?);
            }
            Ok(())
        },
    )?;
    for contact in &contacts {
        tx.execute_cached(
            "INSERT OR IGNORE INTO audit_erased (contact) VALUES (?1)",
            [contact.as_bytes()],
        )?;
    }
    Ok(contacts)
}

/// The name an entry of `stream` keeps, about `contact`: redacted for a reservation stream of
/// an erased contact, `None` (as it is) otherwise. One lookup per reservation, none for other
/// streams.
pub(crate) fn recorded_name(
    tx: &BatchTx<'_>,
    stream: &str,
    contact: Option<&Uuid>,
) -> rusqlite::Result<Option<String>> {
    let Some(contact) = contact else {
        return Ok(None);
    };
    if streams::category(stream) != streams::UNIQUE {
        return Ok(None);
    }
    let erased = tx
        .query_row_cached(
            "SELECT 1 FROM audit_erased WHERE contact = ?1",
            [contact.as_bytes()],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    Ok(erased.then(|| redacted(stream)))
}

/// Redacts the entries recorded so far of the reservation streams `contacts` own, found
/// through their posting lists. Runs once the batch's entries and postings are written, so it
/// finds the batch's own.
pub(crate) fn redact_recorded(tx: &BatchTx<'_>, contacts: &[Uuid]) -> rusqlite::Result<()> {
    for contact in contacts {
        let mut positions = Vec::new();
        let mut cursor = Cursor::new(Key::contact(contact), Direction::Forward, 0);
        while let Some(position) = cursor.next(tx)? {
            positions.push(position);
        }
        entries::rename_streams(tx, &positions, |stream| {
            (streams::category(stream) == streams::UNIQUE).then(|| redacted(stream))
        })?;
    }
    Ok(())
}

/// `unique-<scope>-(erased)` for a reservation stream's name; `unique-(erased)` if its scope is
/// unknown. Redacting a redacted name gives it back unchanged.
fn redacted(stream: &str) -> String {
    let scopes = [
        UniqueScope::ContactEmail,
        UniqueScope::ContactChatVisitor,
        UniqueScope::ContactMessenger,
        UniqueScope::UserEmail,
        UniqueScope::ChannelEmail,
    ];
    let prefix = scopes
        .into_iter()
        .map(|scope| format!("{}-{}-", streams::UNIQUE, scope.as_str()))
        .find(|prefix| stream.starts_with(prefix.as_str()))
        .unwrap_or_else(|| format!("{}-", streams::UNIQUE));
    format!("{prefix}{ERASED}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_names_lose_their_value_and_keep_their_scope() {
        let email = streams::unique(UniqueScope::ContactEmail, "Ada@Example.com");
        assert_eq!(redacted(&email), "unique-contact-email-(erased)");
        let chat = streams::unique(UniqueScope::ContactChatVisitor, "visitor-1");
        assert_eq!(redacted(&chat), "unique-contact-chat-visitor-(erased)");
        assert_eq!(redacted(&redacted(&chat)), redacted(&chat));
        assert_eq!(redacted("unique-something-else"), "unique-(erased)");
    }
}
