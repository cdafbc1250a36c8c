//! The queries the sidebar is served from, and the plain structs they return.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto_events::event::{Identity, RecordKind, RecordRef};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use switchboard_projector::Scope;
use uuid::Uuid;

use crate::apply::resolve;
use crate::sql::{identity_from, identity_key, kind_at, kind_str, opt_uuid_at, time_from, uuid_at};

/// A contact as the sidebar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The contact's id: the survivor's when the id asked for was merged into it.
    pub contact_id: Uuid,
    /// The contact's owner, if any.
    pub owner_user_id: Option<Uuid>,
    /// Property values by key (`name`, `phone`, ...).
    pub properties: BTreeMap<String, String>,
    /// How the contact is recognised, sorted by kind then normalised value.
    pub identities: Vec<Identity>,
    /// The contacts merged into this one, sorted.
    pub merged_ids: Vec<Uuid>,
    /// When the contact record was created, if its creation has been seen.
    pub created_at: Option<DateTime<Utc>>,
}

/// A record associated with another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociatedRecord {
    /// Which record.
    pub record: RecordRef,
    /// Its display name: a company's or deal's name, a ticket's subject, a contact's `name`
    /// property, a conversation's subject; `None` if unknown (e.g. not created yet).
    pub name: Option<String>,
    /// A deal's pipeline stage.
    pub stage: Option<String>,
    /// A company's web domain.
    pub domain: Option<String>,
}

/// Whether a conversation is open (started or reopened) or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationStatus {
    /// Started or reopened, not closed since.
    Open,
    /// Closed.
    Closed,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageDirection {
    /// From the customer.
    Inbound,
    /// To the customer (an agent's, a bot's or an automatic reply).
    Outbound,
}

/// One of a contact's conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactConversation {
    /// The conversation.
    pub conversation_id: Uuid,
    /// Its inbox; the API checks the viewer may see it.
    pub inbox_id: Uuid,
    /// Open or closed.
    pub status: ConversationStatus,
    /// The owner of the private e-mail account it came through, while it is not shared: only
    /// that user (and admins) may see it.
    pub private_owner_user_id: Option<Uuid>,
    /// The first subject line seen (e-mail, forms).
    pub subject: Option<String>,
    /// The start of the last message in or out (whitespace collapsed, at most 140 characters).
    pub last_message_preview: Option<String>,
    /// Which way the last message went.
    pub last_message_direction: Option<MessageDirection>,
    /// The latest of its start, its messages in and out, and its closing and reopening.
    pub last_activity: DateTime<Utc>,
}

impl ContactConversation {
    /// The cursor pointing just after this conversation.
    pub fn cursor(&self) -> ConversationCursor {
        ConversationCursor {
            last_activity: self.last_activity,
            conversation_id: self.conversation_id,
        }
    }
}

/// A keyset cursor in a contact's conversations (ordered by last activity, newest first, then
/// by id): the page after it starts with the conversation following this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConversationCursor {
    /// The last activity of the conversation the cursor points at.
    pub last_activity: DateTime<Utc>,
    /// Its id, breaking ties between equal activity times.
    pub conversation_id: Uuid,
}

/// A page of a contact's conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationPage {
    /// At most the number asked for, newest activity first.
    pub conversations: Vec<ContactConversation>,
    /// Where the next page starts, if there is one.
    pub next: Option<ConversationCursor>,
}

/// The live contact an id stands for (itself, or the survivor it was merged into); `None` if
/// the id is unknown.
pub fn resolve_contact(conn: &Connection, contact_id: Uuid) -> rusqlite::Result<Option<Uuid>> {
    let id = resolve(conn, contact_id)?;
    conn.prepare_cached("SELECT contact_id FROM contacts WHERE contact_id = ?1")?
        .query_row([&id], |r| uuid_at(r, 0))
        .optional()
}

/// The contact with this id, or the survivor it was merged into.
pub fn contact_by_id(conn: &Connection, contact_id: Uuid) -> rusqlite::Result<Option<Contact>> {
    let Some(contact_id) = resolve_contact(conn, contact_id)? else {
        return Ok(None);
    };
    let id = contact_id.to_string();
    let (owner_user_id, created_at) = conn
        .prepare_cached("SELECT owner_user_id, created_at FROM contacts WHERE contact_id = ?1")?
        .query_row([&id], |r| {
            Ok((
                opt_uuid_at(r, 0)?,
                r.get::<_, Option<i64>>(1)?
                    .map(|t| time_from(t, 1))
                    .transpose()?,
            ))
        })?;
    let properties = conn
        .prepare_cached(
            "SELECT key, value FROM contact_properties WHERE contact_id = ?1 ORDER BY key",
        )?
        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let identities = conn
        .prepare_cached("SELECT kind, value FROM contact_identities WHERE contact_id = ?1 ORDER BY kind, normalised")?
        .query_map([&id], |r| identity_from(&r.get::<_, String>(0)?, r.get(1)?, 0))?
        .collect::<rusqlite::Result<_>>()?;
    let merged_ids = conn
        .prepare_cached(
            "SELECT contact_id FROM contacts WHERE merged_into = ?1 ORDER BY contact_id",
        )?
        .query_map([&id], |r| uuid_at(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(Contact {
        contact_id,
        owner_user_id,
        properties,
        identities,
        merged_ids,
        created_at,
    }))
}

/// The contact recognised by an identity (e-mail compared case-insensitively).
pub fn contact_by_identity(
    conn: &Connection,
    identity: &Identity,
) -> rusqlite::Result<Option<Contact>> {
    let (kind, normalised, _) = identity_key(identity);
    let contact = conn
        .prepare_cached(
            "SELECT contact_id FROM contact_identities WHERE kind = ?1 AND normalised = ?2",
        )?
        .query_row(params![kind, normalised], |r| uuid_at(r, 0))
        .optional()?;
    match contact {
        Some(contact) => contact_by_id(conn, contact),
        None => Ok(None),
    }
}

/// Every record associated with `record`, whichever of the two the association was recorded
/// on, sorted by kind then id. A merged contact's associations are its survivor's.
pub fn associations_of(
    conn: &Connection,
    record: RecordRef,
) -> rusqlite::Result<Vec<AssociatedRecord>> {
    associated(conn, record, false)
}

/// The companies, deals and tickets associated with a contact (or the survivor it was merged
/// into), sorted by kind (company, deal, ticket) then id.
pub fn records_of_contact(
    conn: &Connection,
    contact_id: Uuid,
) -> rusqlite::Result<Vec<AssociatedRecord>> {
    associated(
        conn,
        RecordRef {
            kind: RecordKind::Contact,
            id: contact_id,
        },
        true,
    )
}

fn associated(
    conn: &Connection,
    record: RecordRef,
    records_only: bool,
) -> rusqlite::Result<Vec<AssociatedRecord>> {
    let id = match record.kind {
        RecordKind::Contact => resolve(conn, record.id)?,
        _ => record.id.to_string(),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT a.other_kind, a.other_id,
             CASE a.other_kind
                 WHEN 'contact' THEN (SELECT p.value FROM contact_properties p
                                      WHERE p.contact_id = a.other_id AND p.key = 'name')
                 WHEN 'conversation' THEN (SELECT c.subject FROM conversations c
                                           WHERE c.conversation_id = a.other_id)
                 ELSE r.name END,
             r.stage, r.domain
         FROM associations a
         LEFT JOIN records r ON r.kind = a.other_kind AND r.record_id = a.other_id
         WHERE a.kind = ?1 AND a.id = ?2
           AND (?3 = 0 OR a.other_kind IN ('company', 'deal', 'ticket'))
         ORDER BY a.other_kind, a.other_id",
    )?;
    stmt.query_map(params![kind_str(record.kind), id, records_only], |r| {
        Ok(AssociatedRecord {
            record: RecordRef {
                kind: kind_at(r, 0)?,
                id: uuid_at(r, 1)?,
            },
            name: r.get(2)?,
            stage: r.get(3)?,
            domain: r.get(4)?,
        })
    })?
    .collect()
}

/// A page of a contact's conversations (or its survivor's) in `scope`, newest activity first:
/// at most `limit`, starting after `after` (from the start if `None`). A page is full unless it
/// is the last one.
pub fn conversations_of_contact(
    conn: &Connection,
    contact_id: Uuid,
    after: Option<ConversationCursor>,
    limit: usize,
    scope: &Scope,
) -> rusqlite::Result<ConversationPage> {
    let id = resolve(conn, contact_id)?;
    let (after_time, after_id) = match after {
        Some(c) => (
            Some(c.last_activity.timestamp_micros()),
            Some(c.conversation_id.to_string()),
        ),
        None => (None, None),
    };
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let (visible, scope_args) = scope
        .condition("inbox_id", "private_owner_user_id")
        .unwrap_or_else(|| ("1".to_owned(), Vec::new()));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT conversation_id, inbox_id, status, private_owner_user_id, subject, last_preview,
                last_direction, last_activity
         FROM conversations
         WHERE contact_id = ?
           AND (? IS NULL OR last_activity < ? OR (last_activity = ? AND conversation_id < ?))
           AND {visible}
         ORDER BY last_activity DESC, conversation_id DESC
         LIMIT ?"
    ))?;
    let after_time = after_time.map_or(Value::Null, Value::Integer);
    let mut args = vec![
        Value::Text(id),
        after_time.clone(),
        after_time.clone(),
        after_time,
        after_id.map_or(Value::Null, Value::Text),
    ];
    args.extend(scope_args);
    args.push(Value::Integer(fetch));
    let mut conversations = stmt
        .query_map(params_from_iter(args), |r| {
            let status = match r.get::<_, String>(2)?.as_str() {
                "closed" => ConversationStatus::Closed,
                _ => ConversationStatus::Open,
            };
            let direction = r.get::<_, Option<String>>(6)?.map(|d| match d.as_str() {
                "inbound" => MessageDirection::Inbound,
                _ => MessageDirection::Outbound,
            });
            Ok(ContactConversation {
                conversation_id: uuid_at(r, 0)?,
                inbox_id: uuid_at(r, 1)?,
                status,
                private_owner_user_id: opt_uuid_at(r, 3)?,
                subject: r.get(4)?,
                last_message_preview: r.get(5)?,
                last_message_direction: direction,
                last_activity: time_from(r.get(7)?, 7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next = if conversations.len() > limit {
        conversations.truncate(limit);
        conversations.last().map(ContactConversation::cursor)
    } else {
        None
    };
    Ok(ConversationPage {
        conversations,
        next,
    })
}
