//! The thread-view tables. Ids are stored as hyphenated lower-case UUID text (so text order is
//! UUID order) and times as microseconds since the epoch (so keyset comparisons are integer
//! comparisons). The tables queried by inbox carry `inbox_id`, the column access rules filter
//! on; the timeline is reached through its conversation's header, and keys its rows by the
//! conversation's 16 bytes, its entries packed (`crate::entry`).
//!
//! The indexes that serve queries only (lists, timelines) are not created with the tables: a
//! read model rebuilt from the log gets them once it has caught up ([`create_indexes`]), when
//! sorting each table once costs a fraction of keeping the index current through every insert
//! and header update of the catch-up. Until then queries scan: slower, with the same answers.

use rusqlite::Connection;
use switchboard_projector::model::create_indexes_once;

/// The version of the tables and of what their rows mean; bump it to rebuild from the log.
/// 7: erased conversations are dropped, and deleted rows overwritten (`secure_delete`), so a
/// file written before keeps old rows' text in free space: it is built again.
/// 8: an erased contact's messages in conversations that stay are blanked (`foreign`), which
/// needs the notes of such messages from the start.
/// 9: every message with a recognised sender is noted, and a shared file keeps the name of a
/// sender not erased: a file built at 8 lacks notes.
pub(crate) const VERSION: u32 = 9;

const TABLES: &str = "
CREATE TABLE conversations (
    conversation_id      TEXT    PRIMARY KEY,
    inbox_id             TEXT    NOT NULL,
    channel_id           TEXT    NOT NULL,
    channel_kind         TEXT    NOT NULL,
    contact_id           TEXT,
    origin               TEXT,
    private_owner_id     TEXT,
    status               TEXT    NOT NULL,
    assignee_kind        TEXT,
    assignee_id          TEXT,
    created_at           INTEGER NOT NULL,
    last_activity_at     INTEGER NOT NULL,
    closed_at            INTEGER,
    subject              TEXT,
    last_message_preview TEXT,
    last_message_at      INTEGER,
    unread_count         INTEGER NOT NULL DEFAULT 0,
    waiting_since        INTEGER,
    inbound_count        INTEGER NOT NULL DEFAULT 0,
    outbound_count       INTEGER NOT NULL DEFAULT 0,
    comment_count        INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Each conversation's thread: one row per event it shows, delivery outcomes included, packed
-- (entry.rs) and gathered into chunks of a few KB keyed by their first row's position
-- (chunks.rs). A timeline is only read whole, by conversation.
CREATE TABLE timeline (
    first_position  INTEGER PRIMARY KEY,
    conversation_id BLOB    NOT NULL,
    entries         BLOB    NOT NULL
) STRICT;
-- Applying events appends to a conversation's last chunk; queries read its chunks in order.
CREATE INDEX timeline_by_conversation ON timeline (conversation_id, first_position);

CREATE TABLE filtered_messages (
    position        INTEGER PRIMARY KEY,
    message_id      TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    inbox_id        TEXT    NOT NULL,
    channel_id      TEXT    NOT NULL,
    channel_kind    TEXT    NOT NULL,
    filtered_at     INTEGER NOT NULL,
    from_address    TEXT    NOT NULL,
    from_name       TEXT,
    contact_id      TEXT,
    subject         TEXT,
    body_text       TEXT    NOT NULL,
    private_owner_id TEXT,
    reason_kind     TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    restored_at     INTEGER,
    restored_by     TEXT
) STRICT;
-- Restoring a filtered message finds it by id while applying events.
CREATE INDEX filtered_by_message ON filtered_messages (message_id);

-- The private e-mail accounts' channels and their owners (a channel's access never changes):
-- `MessageFiltered` recorded before its schema v2 names no visibility, and the channel's
-- decides it, as it did on the write side.
-- The blobs each conversation shows (attachments, originals of e-mails): the download route
-- serves a blob only for a conversation that shows it, to who may see that conversation.
CREATE TABLE files (
    conversation_id TEXT    NOT NULL,
    sha256          TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    content_type    TEXT    NOT NULL,
    file_name       TEXT,
    PRIMARY KEY (conversation_id, sha256)
) STRICT, WITHOUT ROWID;

CREATE TABLE private_channels (
    channel_id TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL
) STRICT;
";

/// The indexes queries use, each ending in the keyset the lists and timelines page by.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS conversations_by_activity
    ON conversations (last_activity_at DESC, conversation_id DESC);
CREATE INDEX IF NOT EXISTS conversations_by_inbox
    ON conversations (inbox_id, status, last_activity_at DESC, conversation_id DESC);
CREATE INDEX IF NOT EXISTS conversations_by_assignee
    ON conversations (assignee_id, last_activity_at DESC, conversation_id DESC);
CREATE INDEX IF NOT EXISTS filtered_by_inbox
    ON filtered_messages (inbox_id, restored_at, filtered_at DESC, position DESC);
";

/// Creates the tables (without the query indexes) in an empty database.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TABLES)?;
    conn.execute_batch(crate::foreign::TABLES)
}

/// Creates the query indexes unless they exist.
pub(crate) fn create_indexes(conn: &Connection) -> rusqlite::Result<()> {
    create_indexes_once(conn, "filtered_by_inbox", INDEXES)
}
