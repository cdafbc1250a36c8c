//! The thread-view queries: one conversation's header and timeline, inbox lists with keyset
//! pagination, badge counts and the Filtered view.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto_events::event::ChannelKind;
use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use switchboard_projector::Scope;
use uuid::Uuid;

use crate::chunks;
use crate::entry::{self, Record};
use crate::types::{
    AssigneeFilter, AssigneeRef, BadgeCounts, ConversationHeader, ConversationStatus, Cursor,
    Delivery, EntryKind, FileRef, FilteredCursor, FilteredMail, ListFilter, Page, PageRequest,
    TimelineEntry,
};

// Every query here goes through `prepare_cached` with SQL that is the same text on every call
// for the same shape of query: compiling a statement (parsing, planning) costs more than running
// these point lookups, and the connection's statement cache is keyed by the SQL text. Read
// connections size that cache for the distinct statements of the read side
// (`switchboard_projector::ReadModel`).

/// The header columns, in the order [`header_from_row`] reads them. A macro so that statements
/// can be built with `concat!` as constants.
macro_rules! header_columns {
    () => {
        "conversation_id, inbox_id, channel_id, channel_kind, contact_id,
    private_owner_id, status, assignee_kind, assignee_id, created_at, last_activity_at, closed_at,
    subject, last_message_preview, last_message_at, unread_count, waiting_since, inbound_count,
    outbound_count, comment_count"
    };
}

const HEADER_COLUMNS: &str = header_columns!();

const CONVERSATION_SQL: &str = concat!(
    "SELECT ",
    header_columns!(),
    " FROM conversations WHERE conversation_id = ?1"
);

const TIMELINE_SQL: &str =
    "SELECT entries FROM timeline WHERE conversation_id = ?1 ORDER BY first_position";

/// One conversation's header, whatever its status; `None` if unknown.
pub fn conversation(
    conn: &Connection,
    conversation_id: Uuid,
) -> rusqlite::Result<Option<ConversationHeader>> {
    conn.prepare_cached(CONVERSATION_SQL)?
        .query_row(params![conversation_id.to_string()], header_from_row)
        .optional()
}

/// The file `sha256` as conversation `conversation_id` shows it (an attachment, or the original
/// of an e-mail), or `None` if it shows no such file.
pub fn file(
    conn: &Connection,
    conversation_id: Uuid,
    sha256: &str,
) -> rusqlite::Result<Option<FileRef>> {
    conn.prepare_cached(
        "SELECT size, content_type, file_name FROM files
         WHERE conversation_id = ?1 AND sha256 = ?2",
    )?
    .query_row(params![conversation_id.to_string(), sha256], |row| {
        Ok(FileRef {
            size: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
            content_type: row.get(1)?,
            file_name: row.get(2)?,
        })
    })
    .optional()
}

/// One conversation's timeline, in log order, with delivery outcomes attached to their
/// outbound messages. Empty if the conversation is unknown.
pub fn timeline(conn: &Connection, conversation_id: Uuid) -> rusqlite::Result<Vec<TimelineEntry>> {
    let mut entries = Vec::new();
    let mut deliveries: BTreeMap<Uuid, Vec<Delivery>> = BTreeMap::new();
    let mut receipts = Vec::new();
    let mut emailed: BTreeMap<Uuid, String> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(TIMELINE_SQL)?;
    let mut rows = stmt.query(params![conversation_id.as_bytes()])?;
    while let Some(row) = rows.next()? {
        let chunk = row.get_ref(0)?.as_blob()?;
        for frame in chunks::frames(chunk) {
            let record = frame
                .ok()
                .and_then(|(position, packed)| entry::read(position, packed));
            match record {
                Some(Record::Entry(entry)) => entries.push(*entry),
                Some(Record::Delivery(message_id, delivery)) => {
                    deliveries.entry(message_id).or_default().push(delivery);
                }
                Some(Record::Receipt(receipt)) => receipts.push(receipt),
                Some(Record::Emailed(message_id, address)) => {
                    emailed.insert(message_id, address);
                }
                None => {
                    return Err(rusqlite::Error::FromSqlConversionFailure(
                        0,
                        Type::Blob,
                        format!("timeline of conversation {conversation_id} is malformed").into(),
                    ));
                }
            }
        }
    }
    for entry in &mut entries {
        if entry.kind == EntryKind::OutboundMessage
            && let Some(found) = entry.message_id.and_then(|id| deliveries.remove(&id))
        {
            entry.deliveries = found;
        }
        if entry.kind == EntryKind::OutboundMessage {
            // Receipts come in log order: the first that covers the message tells when.
            let covering = receipts.iter().filter(|r| r.covers(entry));
            let delivered = covering.clone().map(|r| r.occurred_at).next();
            let read = covering.filter(|r| r.read).map(|r| r.occurred_at).next();
            entry.delivered_at = delivered;
            entry.read_at = read;
            entry.emailed_to = entry.message_id.and_then(|id| emailed.remove(&id));
        }
    }
    Ok(entries)
}

/// One page of an inbox list: the conversations in `scope` matching `filter`, sorted by last
/// activity descending then conversation id descending, paged by keyset cursors. Filtered-only
/// conversations never appear. A page is full unless it is the last one.
pub fn list_conversations(
    conn: &Connection,
    filter: &ListFilter,
    page: &PageRequest,
    scope: &Scope,
) -> rusqlite::Result<Page<ConversationHeader>> {
    let mut conditions = vec!["status <> 'filtered'".to_owned()];
    let mut args: Vec<Value> = Vec::new();
    if let Some((condition, values)) = scope.condition("inbox_id", "private_owner_id") {
        conditions.push(condition);
        args.extend(values);
    }
    if let Some(inbox) = filter.inbox_id {
        conditions.push("inbox_id = ?".to_owned());
        args.push(Value::Text(inbox.to_string()));
    }
    if let Some(status) = filter.status {
        conditions.push("status = ?".to_owned());
        args.push(Value::Text(status.as_str().to_owned()));
    }
    match filter.assignee {
        AssigneeFilter::Any => {}
        AssigneeFilter::Unassigned => conditions.push("assignee_kind IS NULL".to_owned()),
        AssigneeFilter::User(user) => {
            conditions.push("assignee_kind = 'user' AND assignee_id = ?".to_owned());
            args.push(Value::Text(user.to_string()));
        }
    }
    if let Some(team) = filter.team_id {
        conditions.push("assignee_kind = 'team' AND assignee_id = ?".to_owned());
        args.push(Value::Text(team.to_string()));
    }
    if let Some(channel) = filter.channel_id {
        conditions.push("channel_id = ?".to_owned());
        args.push(Value::Text(channel.to_string()));
    }
    let base = conditions.join(" AND ");
    let key = "(last_activity_at, conversation_id)";
    let cursor_args = |cursor: &Cursor| {
        let mut all = args.clone();
        all.push(Value::Integer(cursor.last_activity_at.timestamp_micros()));
        all.push(Value::Text(cursor.conversation_id.to_string()));
        all
    };
    // The SQL depends only on which filters are set, the cursor's direction and the order (the
    // conditions are added in a fixed order, values and the limit are parameters), so the
    // statement cache hits for every page of the same list.
    let exists = |condition: &str, cursor: &Cursor| -> rusqlite::Result<bool> {
        conn.prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM conversations WHERE {base} AND {key} {condition} (?, ?))"
        ))?
        .query_row(params_from_iter(cursor_args(cursor)), |row| row.get(0))
    };
    let fetch = |condition: Option<(&str, &Cursor)>, order: &str, limit: usize| {
        let (sql_where, mut all) = match condition {
            Some((op, cursor)) => (format!("{base} AND {key} {op} (?, ?)"), cursor_args(cursor)),
            None => (base.clone(), args.clone()),
        };
        all.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {HEADER_COLUMNS} FROM conversations WHERE {sql_where}
             ORDER BY last_activity_at {order}, conversation_id {order} LIMIT ?"
        ))?;
        let rows = stmt.query_map(params_from_iter(all), header_from_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    };
    match *page {
        PageRequest::First { count, after } => {
            let mut items = fetch(
                after.as_ref().map(|c| ("<", c)),
                "DESC",
                count.saturating_add(1),
            )?;
            let has_next_page = items.len() > count;
            items.truncate(count);
            let has_previous_page = match &after {
                Some(cursor) => exists(">=", cursor)?,
                None => false,
            };
            Ok(Page {
                items,
                has_next_page,
                has_previous_page,
            })
        }
        PageRequest::Last { count, before } => {
            let mut items = fetch(
                before.as_ref().map(|c| (">", c)),
                "ASC",
                count.saturating_add(1),
            )?;
            let has_previous_page = items.len() > count;
            items.truncate(count);
            items.reverse();
            let has_next_page = match &before {
                Some(cursor) => exists("<=", cursor)?,
                None => false,
            };
            Ok(Page {
                items,
                has_next_page,
                has_previous_page,
            })
        }
    }
}

/// Badge counts per inbox (sorted by inbox id), or of one inbox, of the conversations and
/// filtered mail in `scope`: each count is the length of the list the same scope gets. Inboxes
/// with nothing in them are absent.
pub fn badge_counts(
    conn: &Connection,
    inbox_id: Option<Uuid>,
    scope: &Scope,
) -> rusqlite::Result<Vec<BadgeCounts>> {
    let (visible, scope_args) = scope
        .condition("inbox_id", "private_owner_id")
        .unwrap_or_else(|| ("1".to_owned(), Vec::new()));
    let args = |inbox: Option<String>| {
        let mut all = vec![inbox.map_or(Value::Null, Value::Text)];
        all.extend(scope_args.iter().cloned());
        all
    };
    let inbox = inbox_id.map(|id| id.to_string());
    let mut counts: BTreeMap<String, BadgeCounts> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT inbox_id,
             SUM(status = 'open'), SUM(status = 'closed'),
             SUM(status = 'open' AND assignee_kind IS NULL)
         FROM conversations
         WHERE status <> 'filtered' AND (?1 IS NULL OR inbox_id = ?1) AND {visible}
         GROUP BY inbox_id"
    ))?;
    let rows = stmt.query_map(params_from_iter(args(inbox.clone())), |row| {
        Ok((
            row.get::<_, String>(0)?,
            uuid_at(row, 0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
        ))
    })?;
    for row in rows {
        let (key, inbox_id, open, closed, unassigned) = row?;
        counts.insert(
            key,
            BadgeCounts {
                inbox_id,
                open,
                closed,
                unassigned,
                filtered: 0,
            },
        );
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT inbox_id, COUNT(*) FROM filtered_messages
         WHERE restored_at IS NULL AND (?1 IS NULL OR inbox_id = ?1) AND {visible}
         GROUP BY inbox_id"
    ))?;
    let rows = stmt.query_map(params_from_iter(args(inbox)), |row| {
        Ok((
            row.get::<_, String>(0)?,
            uuid_at(row, 0)?,
            row.get::<_, u32>(1)?,
        ))
    })?;
    for row in rows {
        let (key, inbox_id, filtered) = row?;
        counts
            .entry(key)
            .or_insert(BadgeCounts {
                inbox_id,
                open: 0,
                closed: 0,
                unassigned: 0,
                filtered: 0,
            })
            .filtered = filtered;
    }
    Ok(counts.into_values().collect())
}

/// One page of an inbox's Filtered view: filtered messages in `scope` not restored, newest
/// first, the first `count` after `after`.
pub fn filtered_mail(
    conn: &Connection,
    inbox_id: Uuid,
    count: usize,
    after: Option<FilteredCursor>,
    scope: &Scope,
) -> rusqlite::Result<Page<FilteredMail>> {
    let (visible, scope_args) = scope
        .condition("inbox_id", "private_owner_id")
        .unwrap_or_else(|| ("1".to_owned(), Vec::new()));
    let (at, position) = match after {
        Some(cursor) => (
            Some(cursor.filtered_at.timestamp_micros()),
            Some(i64::try_from(cursor.position).unwrap_or(i64::MAX)),
        ),
        None => (None, None),
    };
    let limit = i64::try_from(count.saturating_add(1)).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT position, message_id, conversation_id, inbox_id, channel_id, filtered_at,
             from_address, from_name, subject, body_text, reason_kind, reason, private_owner_id
         FROM filtered_messages
         WHERE inbox_id = ? AND restored_at IS NULL
             AND (? IS NULL OR (filtered_at, position) < (?, ?)) AND {visible}
         ORDER BY filtered_at DESC, position DESC LIMIT ?"
    ))?;
    let at = at.map_or(Value::Null, Value::Integer);
    let mut args = vec![
        Value::Text(inbox_id.to_string()),
        at.clone(),
        at,
        position.map_or(Value::Null, Value::Integer),
    ];
    args.extend(scope_args);
    args.push(Value::Integer(limit));
    let rows = stmt.query_map(params_from_iter(args), |row| {
        Ok(FilteredMail {
            position: u64_at(row, 0)?,
            message_id: uuid_at(row, 1)?,
            conversation_id: uuid_at(row, 2)?,
            inbox_id: uuid_at(row, 3)?,
            channel_id: uuid_at(row, 4)?,
            filtered_at: time_at(row, 5)?,
            from_address: row.get(6)?,
            from_name: row.get(7)?,
            subject: row.get(8)?,
            body_text: row.get(9)?,
            reason_kind: row.get(10)?,
            reason_json: row.get(11)?,
            private_owner_id: opt_uuid_at(row, 12)?,
        })
    })?;
    let mut items = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let has_next_page = items.len() > count;
    items.truncate(count);
    Ok(Page {
        items,
        has_next_page,
        has_previous_page: after.is_some(),
    })
}

fn header_from_row(row: &Row<'_>) -> rusqlite::Result<ConversationHeader> {
    let kind_text: String = row.get(3)?;
    let channel_kind = parse_channel_kind(&kind_text).ok_or_else(|| bad_text(3, &kind_text))?;
    let status_text: String = row.get(6)?;
    let status =
        ConversationStatus::parse(&status_text).ok_or_else(|| bad_text(6, &status_text))?;
    Ok(ConversationHeader {
        conversation_id: uuid_at(row, 0)?,
        inbox_id: uuid_at(row, 1)?,
        channel_id: uuid_at(row, 2)?,
        channel_kind,
        contact_id: opt_uuid_at(row, 4)?,
        private_owner_id: opt_uuid_at(row, 5)?,
        status,
        assignee: assignee_at(row, 7, 8)?,
        created_at: time_at(row, 9)?,
        last_activity_at: time_at(row, 10)?,
        closed_at: opt_time_at(row, 11)?,
        subject: row.get(12)?,
        last_message_preview: row.get(13)?,
        last_message_at: opt_time_at(row, 14)?,
        unread_count: row.get(15)?,
        waiting_since: opt_time_at(row, 16)?,
        inbound_count: row.get(17)?,
        outbound_count: row.get(18)?,
        comment_count: row.get(19)?,
    })
}

fn parse_channel_kind(text: &str) -> Option<ChannelKind> {
    [
        ChannelKind::Email,
        ChannelKind::Chat,
        ChannelKind::Messenger,
        ChannelKind::Form,
    ]
    .into_iter()
    .find(|kind| crate::apply::channel_kind_str(*kind) == text)
}

/// The author columns starting at `idx`: kind, id, name, address.
fn assignee_at(
    row: &Row<'_>,
    kind_idx: usize,
    id_idx: usize,
) -> rusqlite::Result<Option<AssigneeRef>> {
    let kind: Option<String> = row.get(kind_idx)?;
    let id = opt_uuid_at(row, id_idx)?;
    Ok(match (kind.as_deref(), id) {
        (Some("user"), Some(id)) => Some(AssigneeRef::User(id)),
        (Some("team"), Some(id)) => Some(AssigneeRef::Team(id)),
        (Some("bot"), Some(id)) => Some(AssigneeRef::Bot(id)),
        (None, None) => None,
        (kind, _) => return Err(bad_text(kind_idx, kind.unwrap_or("NULL"))),
    })
}

fn bad_text(idx: usize, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        Type::Text,
        format!("unexpected value {text:?}").into(),
    )
}

fn uuid_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(idx)?;
    Uuid::parse_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn opt_uuid_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Uuid>> {
    match row.get::<_, Option<String>>(idx)? {
        Some(text) => Uuid::parse_str(&text)
            .map(Some)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))),
        None => Ok(None),
    }
}

fn time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let micros: i64 = row.get(idx)?;
    DateTime::from_timestamp_micros(micros)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(idx, micros))
}

fn opt_time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(idx)? {
        Some(micros) => DateTime::from_timestamp_micros(micros)
            .map(Some)
            .ok_or(rusqlite::Error::IntegralValueOutOfRange(idx, micros)),
        None => Ok(None),
    }
}

fn u64_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}
