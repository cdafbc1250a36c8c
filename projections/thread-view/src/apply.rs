//! Applying events: how each conversation event changes the thread-view tables. Every change
//! depends only on the event (times are `metadata.occurred_at`), so incremental builds equal
//! rebuilds.
//!
//! A batch keeps the conversation headers its events touch in memory ([`Headers`]): each is read
//! from `conversations` at most once per batch, changed by every event of the batch, and written
//! back once at its end. Timeline rows (delivery outcomes included) are gathered by conversation
//! and written at the end too, into chunks ([`crate::chunks`]); filtered-mail rows go straight
//! to their table.

use proto_events::event::{
    Assignee, Attachment, ChannelConfig, ChannelConnected, ChannelKind, CommentAdded,
    ContactErased, ConversationOrigin, ConversationStarted, ConversationVisibility, EmailAccess,
    FilterReason, FilteredMessageRestored, Identity, InboundMessage, MessageFiltered,
    MessageReceived, RawMessage, ReceiptKind, ReplyAuthor, ReplySent,
};

use proto_events::{Actor, DomainEvent, Envelope};
use rusqlite::{OptionalExtension, Transaction, params};
use switchboard_projector::{ApplyError, BatchMap, BatchRows, BatchTx, Event, EventError};
use uuid::Uuid;

use crate::chunks::{self, Appends};
use crate::entry::{self, Fields, Outcome};
use crate::foreign;
use crate::types::{AssigneeRef, Author, ConversationStatus, EntryKind};

/// How many characters of a message the header's preview keeps.
const PREVIEW_CHARS: usize = 140;

/// The event being applied: what every change needs.
struct Ctx<'a, 'tx, 'e> {
    tx: &'a BatchTx<'tx>,
    headers: &'a mut Headers,
    /// The body of each conversation's last message so far in the batch: its header's preview
    /// is made once, from the last, when the batch ends.
    previews: &'a mut BatchMap<Uuid, &'e str>,
    /// The timeline rows of the batch, written at its end.
    timeline: &'a mut Appends,
    position: i64,
    at: i64,
    actor: &'e Actor,
}

/// One row of `conversations`, as the batch holds it.
#[derive(Debug, Clone)]
struct Header {
    inbox_id: String,
    channel_id: String,
    channel_kind: String,
    contact_id: Option<String>,
    origin: Option<String>,
    private_owner_id: Option<String>,
    status: String,
    assignee_kind: Option<String>,
    assignee_id: Option<String>,
    created_at: i64,
    last_activity_at: i64,
    closed_at: Option<i64>,
    subject: Option<String>,
    last_message_preview: Option<String>,
    last_message_at: Option<i64>,
    unread_count: i64,
    waiting_since: Option<i64>,
    inbound_count: i64,
    outbound_count: i64,
    comment_count: i64,
}

impl Header {
    /// Moves the last activity forward (never back: events of one conversation may carry
    /// domain times out of log order).
    fn touch(&mut self, at: i64) {
        self.last_activity_at = self.last_activity_at.max(at);
    }
}

/// The headers a batch has read or written, by conversation id; `None` for a conversation
/// known not to exist. Written back by [`Headers::flush`] in the order first touched.
#[derive(Debug, Default)]
struct Headers(BatchRows<Uuid, Header>);

impl Headers {
    fn slot<'a>(
        &'a mut self,
        tx: &BatchTx<'_>,
        id: Uuid,
    ) -> rusqlite::Result<&'a mut (Option<Header>, bool)> {
        self.0.slot(id, |id| load_header(tx, *id))
    }

    /// The header of `id`, if the conversation exists.
    fn get<'a>(
        &'a mut self,
        tx: &BatchTx<'_>,
        id: Uuid,
    ) -> rusqlite::Result<Option<&'a mut Header>> {
        self.0.get(id, |id| load_header(tx, *id))
    }

    /// The header of `id`; fails if the conversation is unknown.
    fn existing<'a>(
        &'a mut self,
        tx: &BatchTx<'_>,
        id: Uuid,
    ) -> Result<&'a mut Header, ApplyError> {
        self.get(tx, id)?.ok_or_else(|| unknown(id))
    }

    /// Writes every changed header back.
    fn flush(mut self, tx: &BatchTx<'_>) -> rusqlite::Result<()> {
        for (id, h) in self.0.take_changed() {
            tx.execute_cached(
                "INSERT INTO conversations (conversation_id, inbox_id, channel_id, channel_kind,
                     contact_id, origin, private_owner_id, status, assignee_kind, assignee_id,
                     created_at, last_activity_at, closed_at, subject, last_message_preview,
                     last_message_at, unread_count, waiting_since, inbound_count, outbound_count,
                     comment_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18, ?19, ?20, ?21)
                 ON CONFLICT (conversation_id) DO UPDATE SET
                     inbox_id = excluded.inbox_id,
                     channel_id = excluded.channel_id,
                     channel_kind = excluded.channel_kind,
                     contact_id = excluded.contact_id,
                     origin = excluded.origin,
                     private_owner_id = excluded.private_owner_id,
                     status = excluded.status,
                     assignee_kind = excluded.assignee_kind,
                     assignee_id = excluded.assignee_id,
                     created_at = excluded.created_at,
                     last_activity_at = excluded.last_activity_at,
                     closed_at = excluded.closed_at,
                     subject = excluded.subject,
                     last_message_preview = excluded.last_message_preview,
                     last_message_at = excluded.last_message_at,
                     unread_count = excluded.unread_count,
                     waiting_since = excluded.waiting_since,
                     inbound_count = excluded.inbound_count,
                     outbound_count = excluded.outbound_count,
                     comment_count = excluded.comment_count",
                params![
                    id.to_string(),
                    h.inbox_id,
                    h.channel_id,
                    h.channel_kind,
                    h.contact_id,
                    h.origin,
                    h.private_owner_id,
                    h.status,
                    h.assignee_kind,
                    h.assignee_id,
                    h.created_at,
                    h.last_activity_at,
                    h.closed_at,
                    h.subject,
                    h.last_message_preview,
                    h.last_message_at,
                    h.unread_count,
                    h.waiting_since,
                    h.inbound_count,
                    h.outbound_count,
                    h.comment_count,
                ],
            )?;
        }
        Ok(())
    }
}

/// The stored header of conversation `id`, if any.
fn load_header(tx: &BatchTx<'_>, id: Uuid) -> rusqlite::Result<Option<Header>> {
    tx.query_row_cached(
        "SELECT inbox_id, channel_id, channel_kind, contact_id, origin, private_owner_id,
                     status, assignee_kind, assignee_id, created_at, last_activity_at, closed_at,
                     subject, last_message_preview, last_message_at, unread_count, waiting_since,
                     inbound_count, outbound_count, comment_count
                 FROM conversations WHERE conversation_id = ?1",
        params![id.to_string()],
        |r| {
            Ok(Header {
                inbox_id: r.get(0)?,
                channel_id: r.get(1)?,
                channel_kind: r.get(2)?,
                contact_id: r.get(3)?,
                origin: r.get(4)?,
                private_owner_id: r.get(5)?,
                status: r.get(6)?,
                assignee_kind: r.get(7)?,
                assignee_id: r.get(8)?,
                created_at: r.get(9)?,
                last_activity_at: r.get(10)?,
                closed_at: r.get(11)?,
                subject: r.get(12)?,
                last_message_preview: r.get(13)?,
                last_message_at: r.get(14)?,
                unread_count: r.get(15)?,
                waiting_since: r.get(16)?,
                inbound_count: r.get(17)?,
                outbound_count: r.get(18)?,
                comment_count: r.get(19)?,
            })
        },
    )
    .optional()
}

/// Applies a batch of events in log order; events of other areas are ignored.
///
/// The runtime's connection overwrites what it deletes (`secure_delete`): an erased
/// conversation's text must not stay in free pages of the file, nor in the unused space of pages
/// holding other rows (earlier versions of rewritten rows, such as a timeline chunk before its
/// last append).
pub(crate) fn apply_batch(tx: &Transaction<'_>, events: &[Event<'_>]) -> Result<(), EventError> {
    let tx = &BatchTx::new(tx);
    let mut headers = Headers::default();
    let mut previews = BatchMap::default();
    let mut timeline = Appends::default();
    for (index, event) in events.iter().enumerate() {
        apply(
            tx,
            &mut headers,
            &mut previews,
            &mut timeline,
            event.envelope,
        )
        .map_err(|source| EventError { index, source })?;
    }
    let last = events.len().saturating_sub(1);
    for (id, body) in previews {
        let header = headers.existing(tx, id).map_err(|source| EventError {
            index: last,
            source,
        })?;
        header.last_message_preview = Some(preview(body));
    }
    headers
        .flush(tx)
        .and_then(|()| timeline.flush(tx))
        .map_err(|e| EventError {
            index: last,
            source: e.into(),
        })
}

/// Applies one event, keeping the headers it changes in `headers`.
fn apply<'e>(
    tx: &BatchTx<'_>,
    headers: &mut Headers,
    previews: &mut BatchMap<Uuid, &'e str>,
    timeline: &mut Appends,
    event: &'e Envelope,
) -> Result<(), ApplyError> {
    if !concerns_thread_view(&event.payload) {
        return Ok(());
    }
    let position = i64::try_from(event.position)
        .map_err(|_| ApplyError::Inconsistent(format!("position {} too large", event.position)))?;
    let mut ctx = Ctx {
        tx,
        headers,
        previews,
        timeline,
        position,
        at: event.metadata.occurred_at.timestamp_micros(),
        actor: &event.metadata.actor,
    };
    let ctx = &mut ctx;
    match &event.payload {
        DomainEvent::ChannelConnected(e) => connected(ctx, e),
        DomainEvent::ConversationStarted(e) => started(ctx, e),
        DomainEvent::MessageReceived(e) => received(ctx, e),
        DomainEvent::MessageFiltered(e) => filtered(ctx, e),
        DomainEvent::FilteredMessageRestored(e) => restored(ctx, e),
        DomainEvent::ReplySent(e) => replied(ctx, e),
        DomainEvent::DeliverySucceeded(e) => {
            known(ctx, e.conversation_id)?;
            let outcome = Outcome {
                succeeded: true,
                permanent: false,
                reason: None,
                provider_message_id: e.provider_message_id.as_deref(),
                status: None,
            };
            delivery(ctx, e.conversation_id, e.message_id, outcome)
        }
        DomainEvent::DeliveryFailed(e) => {
            known(ctx, e.conversation_id)?;
            let outcome = Outcome {
                succeeded: false,
                permanent: e.permanent,
                reason: Some(&e.reason),
                provider_message_id: None,
                status: e.status.as_deref(),
            };
            delivery(ctx, e.conversation_id, e.message_id, outcome)
        }
        DomainEvent::MessengerReceiptReceived(e) => {
            known(ctx, e.conversation_id)?;
            ctx.timeline.packed.clear();
            entry::put_receipt(
                &mut ctx.timeline.packed,
                ctx.at,
                e.kind == ReceiptKind::Read,
                e.watermark.timestamp_micros(),
                &e.mids,
            );
            ctx.timeline.push(e.conversation_id, ctx.position);
            Ok(())
        }
        DomainEvent::ChatReplyEmailed(e) => {
            known(ctx, e.conversation_id)?;
            ctx.timeline.packed.clear();
            let to = e.email.to.join(", ");
            entry::put_emailed(&mut ctx.timeline.packed, ctx.at, e.message_id, &to);
            ctx.timeline.push(e.conversation_id, ctx.position);
            Ok(())
        }
        DomainEvent::CommentAdded(e) => commented(ctx, e),
        DomainEvent::ConversationAssigned(e) => {
            let entry = Fields {
                assignee: Some(assignee_ref(&e.assignee)),
                reason: Some(json(&e.reason)?),
                ..Fields::default()
            };
            assignment(
                ctx,
                e.conversation_id,
                EntryKind::Assigned,
                Some(&e.assignee),
                entry,
            )
        }
        DomainEvent::ConversationReassigned(e) => {
            let entry = Fields {
                assignee: Some(assignee_ref(&e.to)),
                previous: Some(assignee_ref(&e.from)),
                reason: Some(json(&e.reason)?),
                ..Fields::default()
            };
            assignment(
                ctx,
                e.conversation_id,
                EntryKind::Reassigned,
                Some(&e.to),
                entry,
            )
        }
        DomainEvent::ConversationUnassigned(e) => {
            let entry = Fields {
                previous: Some(assignee_ref(&e.from)),
                reason: Some(json(&e.reason)?),
                ..Fields::default()
            };
            assignment(ctx, e.conversation_id, EntryKind::Unassigned, None, entry)
        }
        DomainEvent::ConversationQueued(e) => {
            touch(ctx, e.conversation_id)?;
            let entry = Fields {
                reason: Some(json(&e.decision)?),
                ..Fields::default()
            };
            insert_entry(ctx, e.conversation_id, EntryKind::Queued, entry)
        }
        DomainEvent::BotHandedOff(e) => {
            touch(ctx, e.conversation_id)?;
            let entry = Fields {
                author: Some(Author::Bot(e.bot_id)),
                assignee: e.to.as_ref().map(assignee_ref),
                ..Fields::default()
            };
            insert_entry(ctx, e.conversation_id, EntryKind::BotHandedOff, entry)
        }
        DomainEvent::ConversationClosed(e) => {
            set_status(
                ctx,
                e.conversation_id,
                ConversationStatus::Closed,
                Some(ctx.at),
            )?;
            let entry = Fields {
                reason: Some(json(&e.by)?),
                ..Fields::default()
            };
            insert_entry(ctx, e.conversation_id, EntryKind::Closed, entry)
        }
        DomainEvent::ConversationReopened(e) => {
            set_status(ctx, e.conversation_id, ConversationStatus::Open, None)?;
            let entry = Fields {
                reason: Some(json(&e.cause)?),
                ..Fields::default()
            };
            insert_entry(ctx, e.conversation_id, EntryKind::Reopened, entry)
        }
        DomainEvent::ConversationErased(e) => erased(ctx, e.conversation_id),
        DomainEvent::ContactsMerged(e) => Ok(foreign::merged(ctx.tx, e)?),
        DomainEvent::ContactErased(e) => contact_erased(ctx, e),
        DomainEvent::ConversationShared(e) => {
            ctx.headers
                .existing(ctx.tx, e.conversation_id)?
                .private_owner_id = None;
            // Its filtered mail is shared with it (a rare event: the scan is fine).
            ctx.tx.execute_cached(
                "UPDATE filtered_messages SET private_owner_id = NULL
                 WHERE inbox_id = ?1 AND conversation_id = ?2",
                params![e.inbox_id.to_string(), e.conversation_id.to_string()],
            )?;
            let entry = Fields {
                author: Some(Author::User(e.by_user_id)),
                ..Fields::default()
            };
            insert_entry(ctx, e.conversation_id, EntryKind::Shared, entry)
        }
        _ => Ok(()),
    }
}

/// Whether the thread view changes on `event`: conversation events, and the connection of a
/// channel (private accounts' owners). Checked before anything is computed for the event (the
/// actor's JSON, times).
fn concerns_thread_view(event: &DomainEvent) -> bool {
    matches!(
        event,
        DomainEvent::ChannelConnected(_)
            | DomainEvent::ConversationStarted(_)
            | DomainEvent::MessageReceived(_)
            | DomainEvent::MessageFiltered(_)
            | DomainEvent::FilteredMessageRestored(_)
            | DomainEvent::ReplySent(_)
            | DomainEvent::DeliverySucceeded(_)
            | DomainEvent::DeliveryFailed(_)
            | DomainEvent::MessengerReceiptReceived(_)
            | DomainEvent::ChatReplyEmailed(_)
            | DomainEvent::CommentAdded(_)
            | DomainEvent::ConversationAssigned(_)
            | DomainEvent::ConversationReassigned(_)
            | DomainEvent::ConversationUnassigned(_)
            | DomainEvent::ConversationQueued(_)
            | DomainEvent::BotHandedOff(_)
            | DomainEvent::ConversationClosed(_)
            | DomainEvent::ConversationReopened(_)
            | DomainEvent::ConversationShared(_)
            | DomainEvent::ConversationErased(_)
            | DomainEvent::ContactsMerged(_)
            | DomainEvent::ContactErased(_)
    )
}

/// Drops an erased conversation: its header, its timeline, the files it shows and its filtered
/// mail, whether written by earlier batches or still held by this one, so the read model is as
/// if it had never been there. Nothing follows for it (it refuses every command), and erasing
/// one the thread view no longer holds changes nothing.
///
/// Its filtered mail is found by position: each filtered message has a timeline row at the
/// position of its `MessageFiltered` (the key of `filtered_messages`), so no index by
/// conversation is kept for the rare erasure.
fn erased(ctx: &mut Ctx<'_, '_, '_>, conversation_id: Uuid) -> Result<(), ApplyError> {
    *ctx.headers.slot(ctx.tx, conversation_id)? = (None, false);
    ctx.previews.remove(&conversation_id);
    let mut positions = ctx.timeline.forget(conversation_id);
    positions.extend(chunks::delete(ctx.tx, conversation_id)?);
    let id = conversation_id.to_string();
    for position in positions {
        ctx.tx.execute_cached(
            "DELETE FROM filtered_messages WHERE position = ?1 AND conversation_id = ?2",
            params![position, id],
        )?;
    }
    ctx.tx
        .execute_cached("DELETE FROM files WHERE conversation_id = ?1", params![id])?;
    ctx.tx.execute_cached(
        "DELETE FROM conversations WHERE conversation_id = ?1",
        params![id],
    )?;
    Ok(())
}

/// A contact erased: what they (and the contacts merged into them) wrote in conversations that
/// stay is blanked ([`crate::foreign`]); their own conversations go with their own
/// `ConversationErased`.
fn contact_erased(ctx: &mut Ctx<'_, '_, '_>, e: &ContactErased) -> Result<(), ApplyError> {
    let found = foreign::take_erased(ctx.tx, e)?;
    if found.is_empty() {
        return Ok(());
    }
    // Only stored rows are rewritten: the batch's rows so far are written first (where a batch
    // ends does not change how rows are chunked, see `crate::chunks`).
    std::mem::take(&mut *ctx.timeline).flush(ctx.tx)?;
    for (conversation_id, positions) in &found {
        let rewritten = foreign::redact(ctx.tx, *conversation_id, positions)?;
        if rewritten.last_message_redacted {
            ctx.previews.remove(conversation_id);
            ctx.headers
                .existing(ctx.tx, *conversation_id)?
                .last_message_preview = Some(preview(""));
        }
        if let Some(subject) = rewritten.subject {
            ctx.headers.existing(ctx.tx, *conversation_id)?.subject = subject;
        }
    }
    Ok(())
}

/// Remembers the owner of a private e-mail account's channel.
fn connected(ctx: &mut Ctx<'_, '_, '_>, e: &ChannelConnected) -> Result<(), ApplyError> {
    if let ChannelConfig::Email {
        access: EmailAccess::Private { owner_user_id },
        ..
    } = &e.config
    {
        ctx.tx.execute_cached(
            "INSERT OR REPLACE INTO private_channels (channel_id, owner_id) VALUES (?1, ?2)",
            params![e.channel_id.to_string(), owner_user_id.to_string()],
        )?;
    }
    Ok(())
}

/// The private owner of filtered mail: the one its event names, or, for an event recorded
/// before `MessageFiltered` v2, its conversation's when it has started (threading once crossed
/// channels), else the owner of the private account it came through.
fn filtered_owner(
    ctx: &mut Ctx<'_, '_, '_>,
    e: &MessageFiltered,
) -> Result<Option<String>, ApplyError> {
    Ok(match &e.visibility {
        Some(ConversationVisibility::Private { owner_user_id }) => Some(owner_user_id.to_string()),
        Some(ConversationVisibility::Shared) => None,
        None => match ctx.headers.get(ctx.tx, e.conversation_id)? {
            Some(h) if h.status != ConversationStatus::Filtered.as_str() => {
                h.private_owner_id.clone()
            }
            _ => ctx
                .tx
                .query_row_cached(
                    "SELECT owner_id FROM private_channels WHERE channel_id = ?1",
                    params![e.message.channel_id.to_string()],
                    |row| row.get(0),
                )
                .optional()?,
        },
    })
}

fn started(ctx: &mut Ctx<'_, '_, '_>, e: &ConversationStarted) -> Result<(), ApplyError> {
    let owner = match &e.visibility {
        ConversationVisibility::Shared => None,
        ConversationVisibility::Private { owner_user_id } => Some(owner_user_id.to_string()),
    };
    let origin = match e.origin {
        ConversationOrigin::Inbound => "inbound",
        ConversationOrigin::Outbound => "outbound",
    };
    let at = ctx.at;
    let slot = ctx.headers.slot(ctx.tx, e.conversation_id)?;
    slot.1 = true;
    match &mut slot.0 {
        // A conversation that so far held only filtered mail already has a row: it becomes
        // visible (its inbox stays the one the filtered mail arrived in).
        Some(h) => {
            h.channel_id = e.channel_id.to_string();
            h.channel_kind = channel_kind_str(e.channel_kind).to_owned();
            if let Some(contact) = e.contact_id {
                h.contact_id = Some(contact.to_string());
            }
            h.origin = Some(origin.to_owned());
            h.private_owner_id = owner;
            h.status = ConversationStatus::Open.as_str().to_owned();
            h.created_at = at;
            h.touch(at);
        }
        None => {
            slot.0 = Some(Header {
                inbox_id: e.inbox_id.to_string(),
                channel_id: e.channel_id.to_string(),
                channel_kind: channel_kind_str(e.channel_kind).to_owned(),
                contact_id: e.contact_id.map(|id| id.to_string()),
                origin: Some(origin.to_owned()),
                private_owner_id: owner,
                status: ConversationStatus::Open.as_str().to_owned(),
                assignee_kind: None,
                assignee_id: None,
                created_at: at,
                last_activity_at: at,
                closed_at: None,
                subject: None,
                last_message_preview: None,
                last_message_at: None,
                unread_count: 0,
                waiting_since: None,
                inbound_count: 0,
                outbound_count: 0,
                comment_count: 0,
            });
        }
    }
    Ok(())
}

fn received<'e>(ctx: &mut Ctx<'_, '_, 'e>, e: &'e MessageReceived) -> Result<(), ApplyError> {
    let m = &e.message;
    let at = ctx.at;
    let h = ctx.headers.existing(ctx.tx, e.conversation_id)?;
    h.inbound_count += 1;
    h.unread_count += 1;
    h.waiting_since.get_or_insert(at);
    if h.subject.is_none() {
        h.subject.clone_from(&m.subject);
    }
    if h.contact_id.is_none() {
        h.contact_id = m.contact_id.map(|id| id.to_string());
    }
    ctx.previews.insert(e.conversation_id, &m.body_text);
    h.last_message_at = Some(at);
    h.touch(at);
    if let Some(sender) = m.contact_id {
        foreign::note(ctx.tx, sender, ctx.position, e.conversation_id)?;
    }
    record_files(ctx, e.conversation_id, &m.attachments, m.raw.as_ref())?;
    insert_entry(
        ctx,
        e.conversation_id,
        EntryKind::InboundMessage,
        inbound_entry(m)?,
    )
}

fn inbound_entry(m: &InboundMessage) -> Result<Fields<'_>, ApplyError> {
    Ok(Fields {
        message_id: Some(m.message_id),
        author: Some(Author::Contact {
            contact_id: m.contact_id,
            address: identity_str(&m.from).to_owned(),
            name: m.from_name.clone(),
        }),
        subject: m.subject.as_deref(),
        body_text: Some(&m.body_text),
        files: files_json(&m.attachments, m.raw.as_ref())?,
        ..Fields::default()
    })
}

/// A message's files as the timeline keeps them; `None` when it has none.
fn files_json(
    attachments: &[Attachment],
    raw: Option<&RawMessage>,
) -> Result<Option<String>, ApplyError> {
    if attachments.is_empty() && raw.is_none() {
        return Ok(None);
    }
    let files = serde_json::json!({ "attachments": attachments, "raw": raw });
    Ok(Some(json(&files)?))
}

/// Notes which blobs `conversation_id` shows, so that the download route serves them only for
/// it (and, through it, only to who may see it).
fn record_files(
    ctx: &mut Ctx<'_, '_, '_>,
    conversation_id: Uuid,
    attachments: &[Attachment],
    raw: Option<&RawMessage>,
) -> Result<(), ApplyError> {
    let conversation = conversation_id.to_string();
    let raw = raw.map(|r| (&r.blob, "message/rfc822", Some("original.eml")));
    let files = attachments
        .iter()
        .map(|a| (&a.blob, a.content_type.as_str(), a.file_name.as_deref()))
        .chain(raw);
    // A blanked file (an erased sender's, read through destroyed keys) has no hash: no file.
    for (blob, content_type, file_name) in files.filter(|(blob, ..)| !blob.sha256.is_empty()) {
        ctx.tx.execute_cached(
            "INSERT OR IGNORE INTO files (conversation_id, sha256, size, content_type, file_name)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                conversation,
                blob.sha256,
                i64::try_from(blob.size).unwrap_or(i64::MAX),
                content_type,
                file_name,
            ],
        )?;
    }
    Ok(())
}

fn filtered(ctx: &mut Ctx<'_, '_, '_>, e: &MessageFiltered) -> Result<(), ApplyError> {
    let m = &e.message;
    let owner = filtered_owner(ctx, e)?;
    // Filtered mail for no visible conversation starts a filtered-only one; filtered mail in a
    // visible thread leaves its header alone.
    let slot = ctx.headers.slot(ctx.tx, e.conversation_id)?;
    if slot.0.is_none() {
        slot.1 = true;
        slot.0 = Some(Header {
            inbox_id: e.inbox_id.to_string(),
            channel_id: m.channel_id.to_string(),
            channel_kind: channel_kind_str(m.channel_kind).to_owned(),
            contact_id: m.contact_id.map(|id| id.to_string()),
            origin: None,
            private_owner_id: owner.clone(),
            status: ConversationStatus::Filtered.as_str().to_owned(),
            assignee_kind: None,
            assignee_id: None,
            created_at: ctx.at,
            last_activity_at: ctx.at,
            closed_at: None,
            subject: None,
            last_message_preview: None,
            last_message_at: None,
            unread_count: 0,
            waiting_since: None,
            inbound_count: 0,
            outbound_count: 0,
            comment_count: 0,
        });
    }
    if let Some(sender) = m.contact_id {
        foreign::note(ctx.tx, sender, ctx.position, e.conversation_id)?;
    }
    let reason = json(&e.reason)?;
    ctx.tx.execute_cached(
        "INSERT INTO filtered_messages (position, message_id, conversation_id, inbox_id, channel_id,
             channel_kind, filtered_at, from_address, from_name, contact_id, subject, body_text,
             private_owner_id, reason_kind, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
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
            owner,
            filter_reason_kind(&e.reason),
            reason,
        ],
    )?;
    record_files(ctx, e.conversation_id, &m.attachments, m.raw.as_ref())?;
    let entry = Fields {
        reason: Some(reason),
        ..inbound_entry(m)?
    };
    insert_entry(ctx, e.conversation_id, EntryKind::Filtered, entry)
}

fn restored(ctx: &mut Ctx<'_, '_, '_>, e: &FilteredMessageRestored) -> Result<(), ApplyError> {
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
    let entry = Fields {
        message_id: Some(e.message_id),
        author: Some(Author::User(e.restored_by_user_id)),
        ..Fields::default()
    };
    insert_entry(ctx, e.conversation_id, EntryKind::Restored, entry)
}

fn replied<'e>(ctx: &mut Ctx<'_, '_, 'e>, e: &'e ReplySent) -> Result<(), ApplyError> {
    let (kind, id, author) = match &e.author {
        ReplyAuthor::User { id } => ("user", Some(id.to_string()), Author::User(*id)),
        ReplyAuthor::Bot { id } => ("bot", Some(id.to_string()), Author::Bot(*id)),
        ReplyAuthor::Automation { name } => ("automation", None, Author::Automation(name.clone())),
    };
    let at = ctx.at;
    let h = ctx.headers.existing(ctx.tx, e.conversation_id)?;
    h.outbound_count += 1;
    // Human and bot replies answer the customer; automated messages do not. Unread resets when
    // the assignee itself replies, or, for a team or nobody, when any human does.
    if matches!(kind, "user" | "bot") {
        h.waiting_since = None;
    }
    let by_assignee = id.is_some()
        && h.assignee_kind.as_deref() == Some(kind)
        && h.assignee_id.as_deref() == id.as_deref();
    let for_anyone = kind == "user" && matches!(h.assignee_kind.as_deref(), None | Some("team"));
    if by_assignee || for_anyone {
        h.unread_count = 0;
    }
    if h.subject.is_none() {
        h.subject.clone_from(&e.subject);
    }
    ctx.previews.insert(e.conversation_id, &e.body_text);
    h.last_message_at = Some(at);
    h.touch(at);
    record_files(ctx, e.conversation_id, &e.attachments, None)?;
    let entry = Fields {
        message_id: Some(e.message_id),
        author: Some(author),
        subject: e.subject.as_deref(),
        body_text: Some(&e.body_text),
        files: files_json(&e.attachments, None)?,
        ..Fields::default()
    };
    insert_entry(ctx, e.conversation_id, EntryKind::OutboundMessage, entry)
}

fn commented(ctx: &mut Ctx<'_, '_, '_>, e: &CommentAdded) -> Result<(), ApplyError> {
    let at = ctx.at;
    let h = ctx.headers.existing(ctx.tx, e.conversation_id)?;
    h.comment_count += 1;
    h.touch(at);
    let entry = Fields {
        comment_id: Some(e.comment_id),
        author: Some(Author::User(e.author_user_id)),
        body_text: Some(&e.body_text),
        mentions: Some(&e.mentions),
        ..Fields::default()
    };
    insert_entry(ctx, e.conversation_id, EntryKind::Comment, entry)
}

fn delivery(
    ctx: &mut Ctx<'_, '_, '_>,
    conversation_id: Uuid,
    message_id: Uuid,
    outcome: Outcome<'_>,
) -> Result<(), ApplyError> {
    ctx.timeline.packed.clear();
    entry::put_delivery(&mut ctx.timeline.packed, ctx.at, message_id, outcome);
    ctx.timeline.push(conversation_id, ctx.position);
    Ok(())
}

fn assignment(
    ctx: &mut Ctx<'_, '_, '_>,
    conversation_id: Uuid,
    kind: EntryKind,
    to: Option<&Assignee>,
    entry: Fields<'_>,
) -> Result<(), ApplyError> {
    let at = ctx.at;
    let h = ctx.headers.existing(ctx.tx, conversation_id)?;
    let (to_kind, to_id) = to.map(assignee_cols).unzip();
    h.assignee_kind = to_kind.map(str::to_owned);
    h.assignee_id = to_id;
    h.unread_count = 0;
    h.touch(at);
    insert_entry(ctx, conversation_id, kind, entry)
}

fn set_status(
    ctx: &mut Ctx<'_, '_, '_>,
    conversation_id: Uuid,
    status: ConversationStatus,
    closed_at: Option<i64>,
) -> Result<(), ApplyError> {
    let at = ctx.at;
    let h = ctx.headers.existing(ctx.tx, conversation_id)?;
    h.status = status.as_str().to_owned();
    h.closed_at = closed_at;
    h.touch(at);
    Ok(())
}

/// Moves the last activity forward; fails if the conversation is unknown.
fn touch(ctx: &mut Ctx<'_, '_, '_>, conversation_id: Uuid) -> Result<(), ApplyError> {
    let at = ctx.at;
    ctx.headers.existing(ctx.tx, conversation_id)?.touch(at);
    Ok(())
}

/// Fails if the conversation is unknown.
fn known(ctx: &mut Ctx<'_, '_, '_>, conversation_id: Uuid) -> Result<(), ApplyError> {
    let (header, _) = ctx.headers.slot(ctx.tx, conversation_id)?;
    match header {
        Some(_) => Ok(()),
        None => Err(unknown(conversation_id)),
    }
}

fn unknown(conversation_id: Uuid) -> ApplyError {
    ApplyError::Inconsistent(format!("unknown conversation {conversation_id}"))
}

/// Appends the timeline entry of the event being applied.
fn insert_entry(
    ctx: &mut Ctx<'_, '_, '_>,
    conversation_id: Uuid,
    kind: EntryKind,
    fields: Fields<'_>,
) -> Result<(), ApplyError> {
    ctx.timeline.packed.clear();
    entry::put_entry(&mut ctx.timeline.packed, kind, ctx.at, ctx.actor, &fields);
    ctx.timeline.push(conversation_id, ctx.position);
    Ok(())
}

fn assignee_ref(assignee: &Assignee) -> AssigneeRef {
    match *assignee {
        Assignee::User { id } => AssigneeRef::User(id),
        Assignee::Team { id } => AssigneeRef::Team(id),
        Assignee::Bot { id } => AssigneeRef::Bot(id),
    }
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
    switchboard_projector::text::preview(body, PREVIEW_CHARS)
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, ApplyError> {
    serde_json::to_string(value)
        .map_err(|e| ApplyError::Inconsistent(format!("cannot encode JSON: {e}")))
}
