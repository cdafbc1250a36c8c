//! Applying events: how each conversation event changes the thread-view tables. Every change
//! depends only on the event (times are `metadata.occurred_at`), so incremental builds equal
//! rebuilds.

use proto_events::event::{
    Assignee, ChannelKind, CommentAdded, ConversationOrigin, ConversationStarted,
    ConversationVisibility, FilterReason, FilteredMessageRestored, Identity, InboundMessage,
    MessageFiltered, MessageReceived, ReplyAuthor, ReplySent,
};
use proto_events::{DomainEvent, Envelope};
use rusqlite::{Transaction, named_params, params};
use switchboard_projector::{ApplyError, CachedStatements};
use uuid::Uuid;

use crate::types::{ConversationStatus, EntryKind};

/// How many characters of a message the header's preview keeps.
const PREVIEW_CHARS: usize = 140;

/// The event being applied: what every change needs.
struct Ctx<'a, 'tx> {
    tx: &'a Transaction<'tx>,
    position: i64,
    at: i64,
    actor: String,
}

/// A timeline row to insert; unset columns stay NULL.
#[derive(Default)]
struct Entry {
    message_id: Option<String>,
    comment_id: Option<String>,
    author_kind: Option<&'static str>,
    author_id: Option<String>,
    author_name: Option<String>,
    author_address: Option<String>,
    subject: Option<String>,
    body_text: Option<String>,
    mentions: Option<String>,
    assignee: Option<(&'static str, String)>,
    previous: Option<(&'static str, String)>,
    reason: Option<String>,
}

/// Applies one event; events of other areas are ignored.
pub(crate) fn apply(tx: &Transaction<'_>, event: &Envelope) -> Result<(), ApplyError> {
    let position = i64::try_from(event.position)
        .map_err(|_| ApplyError::Inconsistent(format!("position {} too large", event.position)))?;
    let ctx = Ctx {
        tx,
        position,
        at: event.metadata.occurred_at.timestamp_micros(),
        actor: json(&event.metadata.actor)?,
    };
    match &event.payload {
        DomainEvent::ConversationStarted(e) => started(&ctx, e),
        DomainEvent::MessageReceived(e) => received(&ctx, e),
        DomainEvent::MessageFiltered(e) => filtered(&ctx, e),
        DomainEvent::FilteredMessageRestored(e) => restored(&ctx, e),
        DomainEvent::ReplySent(e) => replied(&ctx, e),
        DomainEvent::DeliverySucceeded(e) => {
            known(&ctx, e.conversation_id)?;
            delivery(
                &ctx,
                e.conversation_id,
                e.inbox_id,
                e.message_id,
                true,
                None,
                false,
                e.provider_message_id.as_deref(),
            )
        }
        DomainEvent::DeliveryFailed(e) => {
            known(&ctx, e.conversation_id)?;
            delivery(
                &ctx,
                e.conversation_id,
                e.inbox_id,
                e.message_id,
                false,
                Some(&e.reason),
                e.permanent,
                None,
            )
        }
        DomainEvent::CommentAdded(e) => commented(&ctx, e),
        DomainEvent::ConversationAssigned(e) => {
            let entry = Entry {
                assignee: Some(assignee_cols(&e.assignee)),
                reason: Some(json(&e.reason)?),
                ..Entry::default()
            };
            assignment(
                &ctx,
                e.conversation_id,
                e.inbox_id,
                EntryKind::Assigned,
                Some(&e.assignee),
                entry,
            )
        }
        DomainEvent::ConversationReassigned(e) => {
            let entry = Entry {
                assignee: Some(assignee_cols(&e.to)),
                previous: Some(assignee_cols(&e.from)),
                reason: Some(json(&e.reason)?),
                ..Entry::default()
            };
            assignment(
                &ctx,
                e.conversation_id,
                e.inbox_id,
                EntryKind::Reassigned,
                Some(&e.to),
                entry,
            )
        }
        DomainEvent::ConversationUnassigned(e) => {
            let entry = Entry {
                previous: Some(assignee_cols(&e.from)),
                reason: Some(json(&e.reason)?),
                ..Entry::default()
            };
            assignment(
                &ctx,
                e.conversation_id,
                e.inbox_id,
                EntryKind::Unassigned,
                None,
                entry,
            )
        }
        DomainEvent::ConversationQueued(e) => {
            touch(&ctx, e.conversation_id)?;
            let entry = Entry {
                reason: Some(json(&e.decision)?),
                ..Entry::default()
            };
            insert_entry(
                &ctx,
                e.conversation_id,
                e.inbox_id,
                EntryKind::Queued,
                entry,
            )
        }
        DomainEvent::BotHandedOff(e) => {
            touch(&ctx, e.conversation_id)?;
            let entry = Entry {
                author_kind: Some("bot"),
                author_id: Some(e.bot_id.to_string()),
                assignee: e.to.as_ref().map(assignee_cols),
                ..Entry::default()
            };
            insert_entry(
                &ctx,
                e.conversation_id,
                e.inbox_id,
                EntryKind::BotHandedOff,
                entry,
            )
        }
        DomainEvent::ConversationClosed(e) => {
            set_status(
                &ctx,
                e.conversation_id,
                ConversationStatus::Closed,
                Some(ctx.at),
            )?;
            let entry = Entry {
                reason: Some(json(&e.by)?),
                ..Entry::default()
            };
            insert_entry(
                &ctx,
                e.conversation_id,
                e.inbox_id,
                EntryKind::Closed,
                entry,
            )
        }
        DomainEvent::ConversationReopened(e) => {
            set_status(&ctx, e.conversation_id, ConversationStatus::Open, None)?;
            let entry = Entry {
                reason: Some(json(&e.cause)?),
                ..Entry::default()
            };
            insert_entry(
                &ctx,
                e.conversation_id,
                e.inbox_id,
                EntryKind::Reopened,
                entry,
            )
        }
        DomainEvent::ConversationShared(e) => {
            let changed = ctx.tx.execute_cached(
                "UPDATE conversations SET private_owner_id = NULL WHERE conversation_id = ?1",
                params![e.conversation_id.to_string()],
            )?;
            expect_one(changed, e.conversation_id)?;
            let entry = Entry {
                author_kind: Some("user"),
                author_id: Some(e.by_user_id.to_string()),
                ..Entry::default()
            };
            insert_entry(
                &ctx,
                e.conversation_id,
                e.inbox_id,
                EntryKind::Shared,
                entry,
            )
        }
        _ => Ok(()),
    }
}

fn started(ctx: &Ctx<'_, '_>, e: &ConversationStarted) -> Result<(), ApplyError> {
    let owner = match &e.visibility {
        ConversationVisibility::Shared => None,
        ConversationVisibility::Private { owner_user_id } => Some(owner_user_id.to_string()),
    };
    let origin = match e.origin {
        ConversationOrigin::Inbound => "inbound",
        ConversationOrigin::Outbound => "outbound",
    };
    // A conversation that so far held only filtered mail already has a row: it becomes visible.
    ctx.tx.execute_cached(
        "INSERT INTO conversations (conversation_id, inbox_id, channel_id, channel_kind, contact_id,
             origin, private_owner_id, status, created_at, last_activity_at)
         VALUES (:id, :inbox, :channel, :kind, :contact, :origin, :owner, 'open', :at, :at)
         ON CONFLICT (conversation_id) DO UPDATE SET
             channel_id = excluded.channel_id,
             channel_kind = excluded.channel_kind,
             contact_id = COALESCE(excluded.contact_id, conversations.contact_id),
             origin = excluded.origin,
             private_owner_id = excluded.private_owner_id,
             status = 'open',
             created_at = excluded.created_at,
             last_activity_at = MAX(conversations.last_activity_at, excluded.last_activity_at)",
        named_params! {
            ":id": e.conversation_id.to_string(),
            ":inbox": e.inbox_id.to_string(),
            ":channel": e.channel_id.to_string(),
            ":kind": channel_kind_str(e.channel_kind),
            ":contact": e.contact_id.map(|id| id.to_string()),
            ":origin": origin,
            ":owner": owner,
            ":at": ctx.at,
        },
    )?;
    Ok(())
}

fn received(ctx: &Ctx<'_, '_>, e: &MessageReceived) -> Result<(), ApplyError> {
    let m = &e.message;
    let changed = ctx.tx.execute_cached(
        "UPDATE conversations SET
             inbound_count = inbound_count + 1,
             unread_count = unread_count + 1,
             waiting_since = COALESCE(waiting_since, :at),
             subject = COALESCE(subject, :subject),
             contact_id = COALESCE(contact_id, :contact),
             last_message_preview = :preview,
             last_message_at = :at,
             last_activity_at = MAX(last_activity_at, :at)
         WHERE conversation_id = :id",
        named_params! {
            ":id": e.conversation_id.to_string(),
            ":at": ctx.at,
            ":subject": m.subject,
            ":contact": m.contact_id.map(|id| id.to_string()),
            ":preview": preview(&m.body_text),
        },
    )?;
    expect_one(changed, e.conversation_id)?;
    insert_entry(
        ctx,
        e.conversation_id,
        e.inbox_id,
        EntryKind::InboundMessage,
        inbound_entry(m),
    )
}

fn inbound_entry(m: &InboundMessage) -> Entry {
    Entry {
        message_id: Some(m.message_id.to_string()),
        author_kind: Some("contact"),
        author_id: m.contact_id.map(|id| id.to_string()),
        author_name: m.from_name.clone(),
        author_address: Some(identity_str(&m.from).to_owned()),
        subject: m.subject.clone(),
        body_text: Some(m.body_text.clone()),
        ..Entry::default()
    }
}

fn filtered(ctx: &Ctx<'_, '_>, e: &MessageFiltered) -> Result<(), ApplyError> {
    let m = &e.message;
    // Filtered mail for no visible conversation starts a filtered-only one; filtered mail in a
    // visible thread leaves its header alone.
    ctx.tx.execute_cached(
        "INSERT INTO conversations (conversation_id, inbox_id, channel_id, channel_kind, contact_id,
             status, created_at, last_activity_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'filtered', ?6, ?6)
         ON CONFLICT (conversation_id) DO NOTHING",
        params![
            e.conversation_id.to_string(),
            e.inbox_id.to_string(),
            m.channel_id.to_string(),
            channel_kind_str(m.channel_kind),
            m.contact_id.map(|id| id.to_string()),
            ctx.at,
        ],
    )?;
    let reason = json(&e.reason)?;
    ctx.tx.execute_cached(
        "INSERT INTO filtered_messages (position, message_id, conversation_id, inbox_id, channel_id,
             channel_kind, filtered_at, from_address, from_name, contact_id, subject, body_text,
             reason_kind, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            ctx.position,
            m.message_id.to_string(),
            e.conversation_id.to_string(),
            e.inbox_id.to_string(),
            m.channel_id.to_string(),
            channel_kind_str(m.channel_kind),
            ctx.at,
            identity_str(&m.from),
            m.from_name,
            m.contact_id.map(|id| id.to_string()),
            m.subject,
            m.body_text,
            filter_reason_kind(&e.reason),
            reason,
        ],
    )?;
    let entry = Entry {
        reason: Some(reason),
        ..inbound_entry(m)
    };
    insert_entry(
        ctx,
        e.conversation_id,
        e.inbox_id,
        EntryKind::Filtered,
        entry,
    )
}

fn restored(ctx: &Ctx<'_, '_>, e: &FilteredMessageRestored) -> Result<(), ApplyError> {
    let changed = ctx.tx.execute_cached(
        "UPDATE filtered_messages SET restored_at = ?1, restored_by = ?2
         WHERE message_id = ?3 AND conversation_id = ?4 AND restored_at IS NULL",
        params![
            ctx.at,
            e.restored_by_user_id.to_string(),
            e.message_id.to_string(),
            e.conversation_id.to_string(),
        ],
    )?;
    if changed == 0 {
        return Err(ApplyError::Inconsistent(format!(
            "restored message {} was not filtered in conversation {}",
            e.message_id, e.conversation_id
        )));
    }
    touch(ctx, e.conversation_id)?;
    let entry = Entry {
        message_id: Some(e.message_id.to_string()),
        author_kind: Some("user"),
        author_id: Some(e.restored_by_user_id.to_string()),
        ..Entry::default()
    };
    insert_entry(
        ctx,
        e.conversation_id,
        e.inbox_id,
        EntryKind::Restored,
        entry,
    )
}

fn replied(ctx: &Ctx<'_, '_>, e: &ReplySent) -> Result<(), ApplyError> {
    let (kind, id, name) = match &e.author {
        ReplyAuthor::User { id } => ("user", Some(id.to_string()), None),
        ReplyAuthor::Bot { id } => ("bot", Some(id.to_string()), None),
        ReplyAuthor::Automation { name } => ("automation", None, Some(name.clone())),
    };
    // Human and bot replies answer the customer; automated messages do not. Unread resets when
    // the assignee itself replies, or, for a team or nobody, when any human does.
    let changed = ctx.tx.execute_cached(
        "UPDATE conversations SET
             outbound_count = outbound_count + 1,
             waiting_since = CASE WHEN :kind IN ('user', 'bot') THEN NULL ELSE waiting_since END,
             unread_count = CASE
                 WHEN assignee_kind = :kind AND assignee_id = :author THEN 0
                 WHEN :kind = 'user' AND (assignee_kind IS NULL OR assignee_kind = 'team') THEN 0
                 ELSE unread_count END,
             subject = COALESCE(subject, :subject),
             last_message_preview = :preview,
             last_message_at = :at,
             last_activity_at = MAX(last_activity_at, :at)
         WHERE conversation_id = :id",
        named_params! {
            ":id": e.conversation_id.to_string(),
            ":kind": kind,
            ":author": id,
            ":subject": e.subject,
            ":preview": preview(&e.body_text),
            ":at": ctx.at,
        },
    )?;
    expect_one(changed, e.conversation_id)?;
    let entry = Entry {
        message_id: Some(e.message_id.to_string()),
        author_kind: Some(kind),
        author_id: id,
        author_name: name,
        subject: e.subject.clone(),
        body_text: Some(e.body_text.clone()),
        ..Entry::default()
    };
    insert_entry(
        ctx,
        e.conversation_id,
        e.inbox_id,
        EntryKind::OutboundMessage,
        entry,
    )
}

fn commented(ctx: &Ctx<'_, '_>, e: &CommentAdded) -> Result<(), ApplyError> {
    let changed = ctx.tx.execute_cached(
        "UPDATE conversations SET comment_count = comment_count + 1,
             last_activity_at = MAX(last_activity_at, ?1)
         WHERE conversation_id = ?2",
        params![ctx.at, e.conversation_id.to_string()],
    )?;
    expect_one(changed, e.conversation_id)?;
    let entry = Entry {
        comment_id: Some(e.comment_id.to_string()),
        author_kind: Some("user"),
        author_id: Some(e.author_user_id.to_string()),
        body_text: Some(e.body_text.clone()),
        mentions: Some(json(&e.mentions)?),
        ..Entry::default()
    };
    insert_entry(
        ctx,
        e.conversation_id,
        e.inbox_id,
        EntryKind::Comment,
        entry,
    )
}

#[allow(clippy::too_many_arguments)]
fn delivery(
    ctx: &Ctx<'_, '_>,
    conversation_id: Uuid,
    inbox_id: Uuid,
    message_id: Uuid,
    succeeded: bool,
    reason: Option<&str>,
    permanent: bool,
    provider_message_id: Option<&str>,
) -> Result<(), ApplyError> {
    ctx.tx.execute_cached(
        "INSERT INTO deliveries (position, conversation_id, inbox_id, message_id, occurred_at,
             succeeded, reason, permanent, provider_message_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            ctx.position,
            conversation_id.to_string(),
            inbox_id.to_string(),
            message_id.to_string(),
            ctx.at,
            succeeded,
            reason,
            permanent,
            provider_message_id,
        ],
    )?;
    Ok(())
}

fn assignment(
    ctx: &Ctx<'_, '_>,
    conversation_id: Uuid,
    inbox_id: Uuid,
    kind: EntryKind,
    to: Option<&Assignee>,
    entry: Entry,
) -> Result<(), ApplyError> {
    let (to_kind, to_id) = match to.map(assignee_cols) {
        Some((kind, id)) => (Some(kind), Some(id)),
        None => (None, None),
    };
    let changed = ctx.tx.execute_cached(
        "UPDATE conversations SET assignee_kind = ?1, assignee_id = ?2, unread_count = 0,
             last_activity_at = MAX(last_activity_at, ?3)
         WHERE conversation_id = ?4",
        params![to_kind, to_id, ctx.at, conversation_id.to_string()],
    )?;
    expect_one(changed, conversation_id)?;
    insert_entry(ctx, conversation_id, inbox_id, kind, entry)
}

fn set_status(
    ctx: &Ctx<'_, '_>,
    conversation_id: Uuid,
    status: ConversationStatus,
    closed_at: Option<i64>,
) -> Result<(), ApplyError> {
    let changed = ctx.tx.execute_cached(
        "UPDATE conversations SET status = ?1, closed_at = ?2,
             last_activity_at = MAX(last_activity_at, ?3)
         WHERE conversation_id = ?4",
        params![
            status.as_str(),
            closed_at,
            ctx.at,
            conversation_id.to_string()
        ],
    )?;
    expect_one(changed, conversation_id)
}

/// Moves the last activity forward; fails if the conversation is unknown.
fn touch(ctx: &Ctx<'_, '_>, conversation_id: Uuid) -> Result<(), ApplyError> {
    let changed = ctx.tx.execute_cached(
        "UPDATE conversations SET last_activity_at = MAX(last_activity_at, ?1)
         WHERE conversation_id = ?2",
        params![ctx.at, conversation_id.to_string()],
    )?;
    expect_one(changed, conversation_id)
}

/// Fails if the conversation is unknown.
fn known(ctx: &Ctx<'_, '_>, conversation_id: Uuid) -> Result<(), ApplyError> {
    let count: i64 = ctx.tx.query_row_cached(
        "SELECT COUNT(*) FROM conversations WHERE conversation_id = ?1",
        params![conversation_id.to_string()],
        |row| row.get(0),
    )?;
    expect_one(usize::try_from(count).unwrap_or_default(), conversation_id)
}

fn expect_one(changed: usize, conversation_id: Uuid) -> Result<(), ApplyError> {
    if changed == 1 {
        Ok(())
    } else {
        Err(ApplyError::Inconsistent(format!(
            "unknown conversation {conversation_id}"
        )))
    }
}

fn insert_entry(
    ctx: &Ctx<'_, '_>,
    conversation_id: Uuid,
    inbox_id: Uuid,
    kind: EntryKind,
    entry: Entry,
) -> Result<(), ApplyError> {
    let (assignee_kind, assignee_id) = entry.assignee.unzip();
    let (previous_kind, previous_id) = entry.previous.unzip();
    ctx.tx.execute_cached(
        "INSERT INTO timeline (position, conversation_id, inbox_id, occurred_at, kind, actor,
             message_id, comment_id, author_kind, author_id, author_name, author_address, subject,
             body_text, mentions, assignee_kind, assignee_id, previous_kind, previous_id, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19, ?20)",
        params![
            ctx.position,
            conversation_id.to_string(),
            inbox_id.to_string(),
            ctx.at,
            kind.as_str(),
            ctx.actor,
            entry.message_id,
            entry.comment_id,
            entry.author_kind,
            entry.author_id,
            entry.author_name,
            entry.author_address,
            entry.subject,
            entry.body_text,
            entry.mentions,
            assignee_kind,
            assignee_id,
            previous_kind,
            previous_id,
            entry.reason,
        ],
    )?;
    Ok(())
}

fn assignee_cols(assignee: &Assignee) -> (&'static str, String) {
    match assignee {
        Assignee::User { id } => ("user", id.to_string()),
        Assignee::Team { id } => ("team", id.to_string()),
        Assignee::Bot { id } => ("bot", id.to_string()),
    }
}

/// The stored spelling of a channel kind (its serde name).
pub(crate) fn channel_kind_str(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Email => "email",
        ChannelKind::Chat => "chat",
        ChannelKind::Messenger => "messenger",
        ChannelKind::Form => "form",
    }
}

fn identity_str(identity: &Identity) -> &str {
    match identity {
        Identity::Email { address } => address,
        Identity::ChatVisitor { visitor_id } => visitor_id,
        Identity::Messenger { psid } => psid,
    }
}

fn filter_reason_kind(reason: &FilterReason) -> &'static str {
    match reason {
        FilterReason::AutomatedReply => "automated_reply",
        FilterReason::BulkMail => "bulk_mail",
        FilterReason::RoleAddress => "role_address",
        FilterReason::UnsubscribeHeader => "unsubscribe_header",
        FilterReason::DenyRule { .. } => "deny_rule",
    }
}

/// The body with whitespace collapsed, cut to [`PREVIEW_CHARS`] characters.
fn preview(body: &str) -> String {
    let collapsed = body.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(PREVIEW_CHARS).collect()
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, ApplyError> {
    serde_json::to_string(value)
        .map_err(|e| ApplyError::Inconsistent(format!("cannot encode JSON: {e}")))
}
