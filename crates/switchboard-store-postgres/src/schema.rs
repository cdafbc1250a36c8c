//! The tables, triggers and statements of the store, all inside one configurable schema.
//!
//! `events` holds the log. `position` is its primary key, so `read_all` is an index range scan;
//! `(stream, stream_version)` is unique and is the stream index; `event_id` is unique and is the
//! idempotency handle. `head` is a single row holding the last committed position and its hash.
//! Every append transaction locks that row first, which serialises writers across all nodes: the
//! next position is always `head + 1` (no holes), and a transaction holding a larger position
//! cannot commit before the one holding a smaller position has (ADR 0002). The same row gives the
//! writer the previous hash for the chain without reading `events`.
//!
//! Triggers refuse `UPDATE`, `DELETE` and `TRUNCATE` on `events`, and `DELETE` and `TRUNCATE` on
//! `head`. The migration is idempotent and safe to race: it runs under a transaction-scoped
//! advisory lock and records what it applied in a `migrations` table, so several nodes starting
//! at once create the schema exactly once.

use tokio_postgres::Client;

/// The schema version this code writes.
pub const SCHEMA_VERSION: i32 = 6;

/// The longest accepted schema name. PostgreSQL truncates identifiers at 63 bytes, and the
/// notification channel is the schema name plus `_events`.
pub const MAX_SCHEMA_NAME: usize = 56;

/// Checks that `name` is a plain lower-case identifier (`[a-z_][a-z0-9_]*`, at most
/// [`MAX_SCHEMA_NAME`] bytes, not `pg_*`), so that it can be written into SQL without quoting
/// surprises. Returns why not.
pub fn check_schema_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("it is empty".into());
    };
    if name.len() > MAX_SCHEMA_NAME {
        return Err(format!(
            "it is {} bytes long, the limit is {MAX_SCHEMA_NAME}",
            name.len()
        ));
    }
    if !(first.is_ascii_lowercase() || first == '_')
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(
            "use lower-case ASCII letters, digits and '_', not starting with a digit".into(),
        );
    }
    if name.starts_with("pg_") {
        return Err("names starting with pg_ are reserved by PostgreSQL".into());
    }
    Ok(())
}

/// The first migration; `{s}` stands for the quoted schema name.
const MIGRATION_1: &str = r#"
CREATE TABLE {s}.events (
    position       BIGINT      PRIMARY KEY CHECK (position > 0),
    event_id       UUID        NOT NULL UNIQUE,
    stream         TEXT        NOT NULL,
    stream_version BIGINT      NOT NULL CHECK (stream_version >= 0),
    event_type     TEXT        NOT NULL,
    schema_version BIGINT      NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
    recorded_at    TIMESTAMPTZ NOT NULL,
    metadata       BYTEA       NOT NULL,
    payload        BYTEA       NOT NULL,
    hash           BYTEA       NOT NULL CHECK (octet_length(hash) = 32),
    UNIQUE (stream, stream_version)
);

CREATE TABLE {s}.head (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    position  BIGINT  NOT NULL CHECK (position >= 0),
    hash      BYTEA   NOT NULL CHECK (octet_length(hash) = 32)
);
INSERT INTO {s}.head (singleton, position, hash) VALUES (TRUE, 0, decode(repeat('00', 32), 'hex'));

CREATE FUNCTION {s}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME;
END
$$;

CREATE TRIGGER events_are_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER head_is_permanent BEFORE DELETE OR TRUNCATE ON {s}.head
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
"#;

/// The second migration: the write side's index (see `crate::index`).
const MIGRATION_2: &str = r#"
CREATE TABLE {s}.idempotency_keys (
    scope          TEXT        NOT NULL,
    key            TEXT        NOT NULL,
    fingerprint    TEXT,
    correlation_id UUID        NOT NULL,
    owner          UUID        NOT NULL,
    used_at        TIMESTAMPTZ NOT NULL,
    salt           BIGINT      NOT NULL,
    state          TEXT        NOT NULL CHECK (state IN ('pending', 'done', 'free')),
    stream         TEXT,
    stream_version BIGINT,
    first_position BIGINT,
    last_position  BIGINT,
    PRIMARY KEY (scope, key)
);
CREATE TABLE {s}.email_threads (
    channel_id      UUID NOT NULL,
    message_id      TEXT NOT NULL,
    conversation_id UUID NOT NULL,
    PRIMARY KEY (channel_id, message_id)
);
CREATE TABLE {s}.links (
    other  UUID NOT NULL,
    holder UUID NOT NULL,
    PRIMARY KEY (other, holder)
);
CREATE TABLE {s}.snapshots (
    name     TEXT   PRIMARY KEY,
    position BIGINT NOT NULL,
    body     BYTEA  NOT NULL
);
CREATE TABLE {s}.folded (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    position  BIGINT  NOT NULL
);
INSERT INTO {s}.folded (singleton, position) VALUES (TRUE, 0);
"#;

/// Blobs (attachments, raw e-mails) by content hash.
const MIGRATION_3: &str = r#"
CREATE TABLE {s}.blobs (
    sha256    TEXT        PRIMARY KEY,
    bytes     BYTEA       NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"#;

/// Named cursors of channels reading sources outside the log (see
/// `switchboard_store::index`).
const MIGRATION_4: &str = r#"
CREATE TABLE {s}.cursors (
    name  TEXT  PRIMARY KEY,
    value BYTEA NOT NULL
);
"#;

/// Sealed secrets (channel passwords, ingest secrets; see `switchboard_store::secret`).
const MIGRATION_5: &str = r#"
CREATE TABLE {s}.secrets (
    name      TEXT        PRIMARY KEY,
    sealed    BYTEA       NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"#;

/// Blobs kept as a range of another blob (an e-mail's attachment in the original message),
/// findable by their source: one to be deleted must first have the parts standing in it stored
/// whole (see `switchboard_store::blob::BlobStore`).
const MIGRATION_6: &str = r#"
CREATE TABLE {s}.blob_parts (
    sha256     TEXT        PRIMARY KEY,
    source     TEXT        NOT NULL,
    start_byte BIGINT      NOT NULL,
    end_byte   BIGINT      NOT NULL,
    encoding   TEXT        NOT NULL,
    stored_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX blob_parts_by_source ON {s}.blob_parts (source);
"#;

/// Every migration, in order: the schema version is their number.
const MIGRATIONS: [&str; 6] = [
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    MIGRATION_5,
    MIGRATION_6,
];
const _: () = assert!(MIGRATIONS.len() as i32 == SCHEMA_VERSION);

/// What [`migrate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Migrated {
    /// The schema is at [`SCHEMA_VERSION`] (now).
    Current,
    /// A newer version of Switchboard migrated the schema to this version: left as it is.
    Newer(i32),
}

/// Creates the schema and its tables if needed, under an advisory lock so that nodes starting
/// together do not race.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
) -> Result<Migrated, tokio_postgres::Error> {
    let s = quote(schema);
    let tx = client.transaction().await?;
    // Two keys: one fixed for "switchboard migrations", one per schema.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('switchboard.migrate'), hashtext($1))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.migrations (
             version    INTEGER     PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );"
    ))
    .await?;
    let applied: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {s}.migrations"),
            &[],
        )
        .await?
        .try_get(0)?;
    if applied > SCHEMA_VERSION {
        tx.rollback().await?;
        return Ok(Migrated::Newer(applied));
    }
    for (version, migration) in (1i32..).zip(MIGRATIONS) {
        if version <= applied {
            continue;
        }
        tx.batch_execute(&migration.replace("{s}", &s)).await?;
        tx.execute(
            &format!("INSERT INTO {s}.migrations (version) VALUES ($1)"),
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Migrated::Current)
}

/// A checked schema name as an SQL identifier.
pub(crate) fn quote(schema: &str) -> String {
    format!("\"{schema}\"")
}

/// The statements of the store, written once for its schema.
#[derive(Debug)]
pub(crate) struct Sql {
    /// The schema name, unquoted.
    pub(crate) schema: String,
    /// The notification channel appends announce their new head on.
    pub(crate) channel: String,
    /// `LISTEN` on that channel.
    pub(crate) listen: String,
    /// Locks the head row.
    pub(crate) lock_head: String,
    /// The database clock, read once the head row is locked: the batch's commit timestamp.
    pub(crate) now: String,
    /// Moves the head row and notifies every node, in one statement.
    pub(crate) move_head: String,
    /// The committed head position.
    pub(crate) head: String,
    /// The head and the last stored position, read in one snapshot, to check they agree.
    pub(crate) consistency: String,
    /// Where some event ids are stored.
    pub(crate) find_events: String,
    /// The last version of a stream.
    pub(crate) stream_version: String,
    /// Inserts one append's events from arrays.
    pub(crate) insert: String,
    /// Events after a position.
    pub(crate) read_all: String,
    /// A stream from a version upwards.
    pub(crate) read_forwards: String,
    /// A stream from a version downwards.
    pub(crate) read_backwards: String,
}

/// The columns `reader::decode_row` expects, in order.
const COLUMNS: &str = "position, event_id, stream, stream_version, event_type, schema_version, \
                       recorded_at, metadata, payload, hash";

impl Sql {
    pub(crate) fn new(schema: &str) -> Sql {
        let s = quote(schema);
        let channel = format!("{schema}_events");
        Sql {
            schema: schema.to_owned(),
            listen: format!("LISTEN \"{channel}\""),
            channel,
            lock_head: format!("SELECT position, hash FROM {s}.head WHERE singleton FOR UPDATE"),
            now: "SELECT clock_timestamp()".to_owned(),
            move_head: format!(
                "WITH moved AS (UPDATE {s}.head SET position = $1, hash = $2 WHERE singleton \
                 RETURNING position) SELECT pg_notify($3, position::text) FROM moved"
            ),
            head: format!("SELECT position FROM {s}.head WHERE singleton"),
            consistency: format!(
                "SELECT h.position, (SELECT coalesce(max(position), 0) FROM {s}.events) \
                 FROM {s}.head h WHERE h.singleton"
            ),
            find_events: format!(
                "SELECT event_id, stream, stream_version, position FROM {s}.events \
                 WHERE event_id = ANY($1::uuid[])"
            ),
            stream_version: format!(
                "SELECT max(stream_version) FROM {s}.events WHERE stream = $1::text"
            ),
            insert: format!(
                "INSERT INTO {s}.events ({COLUMNS}) \
                 SELECT u.position, u.event_id, $3::text, u.stream_version, u.event_type, \
                        u.schema_version, u.recorded_at, u.metadata, u.payload, u.hash \
                 FROM UNNEST($1::bigint[], $2::uuid[], $4::bigint[], $5::text[], $6::bigint[], \
                             $7::timestamptz[], $8::bytea[], $9::bytea[], $10::bytea[]) \
                      AS u(position, event_id, stream_version, event_type, schema_version, \
                           recorded_at, metadata, payload, hash)"
            ),
            read_all: format!(
                "SELECT {COLUMNS} FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2"
            ),
            read_forwards: format!(
                "SELECT {COLUMNS} FROM {s}.events WHERE stream = $1 AND stream_version >= $2 \
                 ORDER BY stream_version LIMIT $3"
            ),
            read_backwards: format!(
                "SELECT {COLUMNS} FROM {s}.events WHERE stream = $1 AND stream_version <= $2 \
                 ORDER BY stream_version DESC LIMIT $3"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_schema_name;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["switchboard", "_x", "test_0123abcd", "a1_b2"] {
            assert_eq!(check_schema_name(good), Ok(()), "{good}");
        }
        let long = "a".repeat(57);
        for bad in [
            "",
            "1abc",
            "Switchboard",
            "a-b",
            "a\"b",
            "pg_events",
            "sch ema",
            &long,
        ] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }
}
