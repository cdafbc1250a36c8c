//! The contact-sidebar tables. Ids are stored as hyphenated lower-case UUID text, times as
//! microseconds since the epoch (domain time, `occurred_at`).

use rusqlite::Connection;
use switchboard_projector::model::create_indexes_once;

/// Every table and index, created in an empty database.
const SCHEMA: &str = "
-- One row per contact ever seen. `merged_into` is the final survivor of a merged contact
-- (always one hop: a later merge of the survivor re-points earlier merged contacts too).
CREATE TABLE contacts (
    contact_id    TEXT PRIMARY KEY,
    owner_user_id TEXT,
    created_at    INTEGER,
    merged_into   TEXT,
    merged_at     INTEGER
) STRICT;
CREATE INDEX contacts_by_survivor ON contacts (merged_into) WHERE merged_into IS NOT NULL;

-- Current property values of live contacts (a merged contact's move to its survivor).
CREATE TABLE contact_properties (
    contact_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (contact_id, key)
) STRICT;

-- Identities by normalised value (as for uniqueness reservations); `value` is as written.
CREATE TABLE contact_identities (
    kind       TEXT NOT NULL,
    normalised TEXT NOT NULL,
    value      TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    PRIMARY KEY (kind, normalised)
) STRICT;
CREATE INDEX contact_identities_by_contact ON contact_identities (contact_id);

-- Companies, deals and tickets: what the sidebar shows of them. A ticket made from a
-- conversation names it: its subject is that conversation's, erased with it.
CREATE TABLE records (
    kind                 TEXT NOT NULL,
    record_id            TEXT NOT NULL,
    name                 TEXT NOT NULL,
    stage                TEXT,
    domain               TEXT,
    from_conversation_id TEXT,
    PRIMARY KEY (kind, record_id)
) STRICT;
CREATE INDEX records_by_conversation ON records (from_conversation_id)
    WHERE from_conversation_id IS NOT NULL;

-- Associations, one row per direction: (kind, id) is associated with (other_kind, other_id).
CREATE TABLE associations (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    other_kind TEXT NOT NULL,
    other_id   TEXT NOT NULL,
    PRIMARY KEY (kind, id, other_kind, other_id)
) STRICT;

-- Conversations, whether or not their contact is known yet.
CREATE TABLE conversations (
    conversation_id       TEXT PRIMARY KEY,
    contact_id            TEXT,
    inbox_id              TEXT NOT NULL,
    status                TEXT NOT NULL,
    private_owner_user_id TEXT,
    subject               TEXT,
    last_preview          TEXT,
    last_direction        TEXT,
    -- The contact who wrote the last message, if recognised: its erasure empties the preview.
    last_sender_id        TEXT,
    -- The contact whose message gave it its subject, if recognised: its erasure clears it.
    subject_sender_id     TEXT,
    started_at            INTEGER,
    last_activity         INTEGER NOT NULL
) STRICT;
-- Merges re-point a contact's conversations by it, while the read model catches up; once it
-- has, `conversations_by_contact` (which starts with the same column) takes its place.
CREATE INDEX conversations_of_contact ON conversations (contact_id);
";

/// The index the contact's conversation list pages by. Every message moves its conversation's
/// entry (the last activity is part of the key), at a place that depends on the contact: kept
/// through a catch-up that was most of a rebuild's time in this read model, so a read model
/// rebuilt from the log gets it once it has caught up ([`create_indexes`]), sorted once, and
/// keeps it from then on. Until then the list scans its contact's conversations and sorts them:
/// slower, with the same answers.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS conversations_by_contact
    ON conversations (contact_id, last_activity DESC, conversation_id DESC);
DROP INDEX IF EXISTS conversations_of_contact;
";

/// Creates the tables and the indexes applying events needs.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

/// Creates the query index (and drops the one it replaces) unless that was done.
pub(crate) fn create_indexes(conn: &Connection) -> rusqlite::Result<()> {
    create_indexes_once(conn, "conversations_by_contact", INDEXES)
}
