//! The read model's tables. Instants are microseconds since the Unix epoch (UTC). Conversation
//! ids, which every row carries and the keys and joins compare, are their 16 bytes; the other
//! ids are hyphenated UUID text (teams are matched inside `teams` by text).
//!
//! The indexes only queries use are not created with the tables: a read model rebuilt from the
//! log gets them once it has caught up ([`create_indexes`]); until then queries scan.

use rusqlite::Connection;
use switchboard_projector::model::create_indexes_once;

/// The indexes only queries use (the fold reads rows by key).
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS conversations_inbox ON conversations (inbox_id, status);
CREATE INDEX IF NOT EXISTS measurements_metric ON measurements (metric, start_at);
";

/// Creates the query indexes unless they exist.
pub(crate) fn create_indexes(conn: &Connection) -> rusqlite::Result<()> {
    create_indexes_once(conn, "measurements_metric", INDEXES)
}

/// Creates every table and the indexes the fold needs.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "
        -- One row per conversation: what it is, and the running state the fold needs.
        CREATE TABLE conversations (
            conversation_id   BLOB    PRIMARY KEY,
            inbox_id          TEXT    NOT NULL,
            channel_id        TEXT    NOT NULL,
            channel_kind      TEXT    NOT NULL,
            -- The owner of a private conversation (private e-mail account); NULL once shared.
            private_owner     TEXT,
            status            TEXT    NOT NULL,          -- 'open' | 'closed' | 'erased'
            cycle_no          INTEGER NOT NULL,          -- the current cycle, from 1
            assignee_kind     TEXT,                      -- 'user' | 'team' | 'bot' | NULL
            assignee_id       TEXT,
            -- The user assignment still waiting for that user's first reply.
            pending_user_id   TEXT,
            pending_since     INTEGER,
            -- The start of the customer message run waiting for a human reply.
            run_start         INTEGER,
            -- Next sequence number of a measurement of this conversation.
            next_seq          INTEGER NOT NULL,
            -- The position of the event that started it; its measurements' ids follow from it.
            first_position    INTEGER NOT NULL
        ) STRICT;

        -- One row per cycle (start or reopen -> close).
        CREATE TABLE cycles (
            conversation_id   BLOB    NOT NULL,
            cycle_no          INTEGER NOT NULL,
            started_at        INTEGER NOT NULL,
            closed_at         INTEGER,
            first_inbound_at  INTEGER,
            handoff_at        INTEGER,
            -- Where first response time starts: first inbound message, or the handoff.
            fr_start          INTEGER,
            first_response_at INTEGER,
            first_responder   TEXT,
            human_replies     INTEGER NOT NULL,
            bot_replies       INTEGER NOT NULL,
            PRIMARY KEY (conversation_id, cycle_no)
        ) STRICT;

        -- Every completed measured interval; durations are derived at query time. The id is
        -- the conversation's first position shifted left 23 bits, plus `seq`
        -- (fold::measurement_id): a conversation's measurements are one range of the table,
        -- in order, unique by (conversation_id, seq), with no index to maintain or build. The
        -- inbox and channel are the conversation's, which never change: queries join
        -- `conversations`.
        CREATE TABLE measurements (
            id                INTEGER PRIMARY KEY,
            conversation_id   BLOB    NOT NULL,
            seq               INTEGER NOT NULL,
            cycle_no          INTEGER NOT NULL,
            metric            INTEGER NOT NULL,          -- Metric::code
            agent_id          TEXT,                      -- the user measured, if any
            bot_id            TEXT,                      -- the bot measured, if any
            teams             TEXT    NOT NULL,          -- ',t1,t2,' at completion time
            start_at          INTEGER NOT NULL,
            end_at            INTEGER NOT NULL
        ) STRICT;

        -- Every human reply, keyed by the position of its ReplySent (rows are appended in
        -- log order; the queries scan them).
        CREATE TABLE replies (
            position          INTEGER PRIMARY KEY,
            message_id        BLOB    NOT NULL,
            conversation_id   BLOB    NOT NULL,
            cycle_no          INTEGER NOT NULL,
            inbox_id          TEXT    NOT NULL,
            channel_id        TEXT    NOT NULL,
            channel_kind      TEXT    NOT NULL,
            agent_id          TEXT    NOT NULL,
            teams             TEXT    NOT NULL,
            sent_at           INTEGER NOT NULL
        ) STRICT;

        -- A bot's part in one cycle of a conversation.
        CREATE TABLE bot_cycles (
            conversation_id   BLOB    NOT NULL,
            cycle_no          INTEGER NOT NULL,
            bot_id            TEXT    NOT NULL,
            inbox_id          TEXT    NOT NULL,
            channel_id        TEXT    NOT NULL,
            channel_kind      TEXT    NOT NULL,
            took_part_at      INTEGER NOT NULL,
            first_reply_at    INTEGER,
            handed_off_at     INTEGER,
            human_replied     INTEGER NOT NULL,
            closed_at         INTEGER,
            PRIMARY KEY (conversation_id, cycle_no, bot_id)
        ) STRICT;

        -- Current team membership, to stamp measurements with the agent's teams.
        CREATE TABLE team_members (
            team_id           TEXT    NOT NULL,
            user_id           TEXT    NOT NULL,
            PRIMARY KEY (team_id, user_id)
        ) STRICT;

        -- The current opening hours (the last BusinessHoursSet).
        CREATE TABLE business_hours (
            id                INTEGER PRIMARY KEY CHECK (id = 1),
            time_zone         TEXT    NOT NULL
        ) STRICT;
        CREATE TABLE opening_intervals (
            day               INTEGER NOT NULL,          -- 0 = Monday .. 6 = Sunday
            opens             TEXT    NOT NULL,          -- HH:MM:SS local
            closes            TEXT    NOT NULL,
            PRIMARY KEY (day, opens, closes)
        ) STRICT;
        CREATE TABLE holidays (
            date              TEXT    PRIMARY KEY,       -- YYYY-MM-DD local
            name              TEXT    NOT NULL
        ) STRICT;
        ",
    )
}
