//! A conversation's timeline entries.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::state::state;
use crate::types::contact::Contact;
use crate::types::conversation::{Assignee, assignee};
use crate::types::directory::{Bot, User};
use crate::types::inbox::in_memory_window;
use crate::types::page::{Window, encode_cursor};

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "thread_view::EntryKind")]
pub(crate) enum TimelineEntryKind {
    /// A customer's message reached the inbox.
    InboundMessage,
    /// A message was sent to the customer.
    OutboundMessage,
    /// An internal comment.
    Comment,
    /// The conversation was assigned.
    Assigned,
    /// The conversation was reassigned.
    Reassigned,
    /// The conversation was unassigned.
    Unassigned,
    /// Routing found nobody; the conversation waits.
    Queued,
    /// A bot handed the conversation off.
    BotHandedOff,
    /// The conversation was closed.
    Closed,
    /// The conversation was reopened.
    Reopened,
    /// An inbound e-mail was filtered.
    Filtered,
    /// A filtered message was restored.
    Restored,
    /// A private conversation was shared with its inbox.
    Shared,
}

/// Who wrote a message or comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum AuthorKind {
    /// The customer.
    Contact,
    /// A user.
    User,
    /// A bot.
    Bot,
    /// An automatic message.
    Automation,
}

/// The author of a message or comment.
#[derive(Debug, Clone)]
pub(crate) struct Author(thread_view::Author);

// `serial`: fields resolve one after the other instead of each as a task of a
// `FuturesUnordered`, which costs more than these small fields themselves; the output is the
// same. Only `contact` reads a read model, and an author has one contact.
#[Object(serial)]
impl Author {
    /// Customer, user, bot or automation.
    async fn kind(&self) -> AuthorKind {
        match &self.0 {
            thread_view::Author::Contact { .. } => AuthorKind::Contact,
            thread_view::Author::User(_) => AuthorKind::User,
            thread_view::Author::Bot(_) => AuthorKind::Bot,
            thread_view::Author::Automation(_) => AuthorKind::Automation,
        }
    }
    /// A name to show.
    async fn name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(match &self.0 {
            thread_view::Author::Contact { name, address, .. } => {
                Some(name.clone().unwrap_or_else(|| address.clone()))
            }
            thread_view::Author::User(id) => {
                let view = state(ctx).directory().await?;
                view.directory.user(*id).map(|u| u.name.clone())
            }
            thread_view::Author::Bot(id) => {
                let view = state(ctx).directory().await?;
                view.directory.bots.get(id).cloned()
            }
            thread_view::Author::Automation(name) => Some(name.clone()),
        })
    }
    /// The customer's address, chat visitor id or Messenger id.
    async fn address(&self) -> Option<&str> {
        match &self.0 {
            thread_view::Author::Contact { address, .. } => Some(address),
            _ => None,
        }
    }
    /// The user, for a user's message or comment.
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let thread_view::Author::User(id) = &self.0 else {
            return Ok(None);
        };
        let view = state(ctx).directory().await?;
        Ok(view.directory.user(*id).cloned().map(User))
    }
    /// The bot.
    async fn bot(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Bot>> {
        let thread_view::Author::Bot(id) = &self.0 else {
            return Ok(None);
        };
        let view = state(ctx).directory().await?;
        Ok(view.directory.bots.get(id).map(|name| Bot {
            bot_id: *id,
            name: name.clone(),
        }))
    }
    /// The contact, once recognised.
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        match &self.0 {
            thread_view::Author::Contact {
                contact_id: Some(id),
                ..
            } => Ok(Contact::load(ctx, *id).await?),
            _ => Ok(None),
        }
    }
}

/// One delivery outcome of an outbound message.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Delivery {
    /// When it was recorded.
    occurred_at: DateTime<Utc>,
    /// Delivered, or failed.
    succeeded: bool,
    /// The provider's explanation, for failures.
    reason: Option<String>,
    /// For failures: retrying cannot help.
    permanent: bool,
    /// The provider's id of the sent message, on success.
    provider_message_id: Option<String>,
    /// For failures: the remote server's status, an SMTP reply code and enhanced status code
    /// such as `550 5.1.1`, when it gave one (from the relay's answer or a bounce).
    status: Option<String>,
}

/// What a message's files are, as the thread view keeps them (the events' shapes).
#[derive(Debug, Default, serde::Deserialize)]
struct Files {
    #[serde(default)]
    attachments: Vec<proto_events::event::Attachment>,
    raw: Option<proto_events::event::RawMessage>,
}

/// A file attached to a message, or an image shown inside its HTML body.
#[derive(Debug, Clone)]
pub(crate) struct MessageAttachment {
    attachment: proto_events::event::Attachment,
    conversation_id: Uuid,
}

#[Object]
impl MessageAttachment {
    /// The file name the sender gave, if any.
    async fn file_name(&self) -> Option<&str> {
        self.attachment.file_name.as_deref()
    }
    /// Its MIME type, e.g. `application/pdf`.
    async fn content_type(&self) -> &str {
        &self.attachment.content_type
    }
    /// Its size in bytes (a Float, as files may outgrow GraphQL's 32-bit Int).
    async fn size(&self) -> f64 {
        self.attachment.blob.size as f64
    }
    /// Whether it is shown inside the HTML body (cited there as `cid:<contentId>`) rather than
    /// listed as an attachment.
    async fn inline(&self) -> bool {
        self.attachment.inline
    }
    /// Its `Content-ID`, which the HTML body cites as `cid:...`.
    async fn content_id(&self) -> Option<&str> {
        self.attachment.content_id.as_deref()
    }
    /// The SHA-256 of its bytes (lower-case hex).
    async fn sha256(&self) -> &str {
        &self.attachment.blob.sha256
    }
    /// Where to download it: a path on this API's origin, signed for the viewer and valid for
    /// an hour, that a browser can open without a header. Access is checked again at download.
    async fn download_url(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        download_url(ctx, self.conversation_id, &self.attachment.blob.sha256).await
    }
}

/// The original of an inbound e-mail, byte for byte as it was received.
#[derive(Debug, Clone)]
pub(crate) struct OriginalMessage {
    raw: proto_events::event::RawMessage,
    conversation_id: Uuid,
}

#[Object]
impl OriginalMessage {
    /// Its size in bytes (a Float, as files may outgrow GraphQL's 32-bit Int).
    async fn size(&self) -> f64 {
        self.raw.blob.size as f64
    }
    /// The SHA-256 of its bytes (lower-case hex).
    async fn sha256(&self) -> &str {
        &self.raw.blob.sha256
    }
    /// What could not be read in it (a broken part, an unknown charset): the message was kept
    /// as received and is shown as far as it could be read.
    async fn warnings(&self) -> &[String] {
        &self.raw.warnings
    }
    /// Where to download it (`message/rfc822`), as for attachments.
    async fn download_url(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        download_url(ctx, self.conversation_id, &self.raw.blob.sha256).await
    }
}

/// A signed download link of `sha256` of `conversation_id` for the request's viewer.
async fn download_url(
    ctx: &Context<'_>,
    conversation_id: Uuid,
    sha256: &str,
) -> async_graphql::Result<String> {
    let me = crate::state::viewer(ctx).await?;
    Ok(state(ctx)
        .file_links
        .link(&me, conversation_id, sha256, Utc::now()))
}

/// One entry of a conversation's timeline.
#[derive(Debug, Clone)]
pub(crate) struct TimelineEntry(pub(crate) thread_view::TimelineEntry, pub(crate) Uuid);

impl TimelineEntry {
    fn files(&self) -> Files {
        self.0
            .files_json
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default()
    }
}

// `serial`: see `Author`. A thread's page has dozens of entries of about ten fields each.
#[Object(serial)]
impl TimelineEntry {
    /// The event's global position: the timeline's order.
    async fn position(&self) -> u64 {
        self.0.position
    }
    /// When it happened.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    /// What happened.
    async fn kind(&self) -> TimelineEntryKind {
        self.0.kind.into()
    }
    /// Who did it, as recorded on the event (`{"kind": "user", "id": ...}` and so on).
    async fn actor(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_str(&self.0.actor_json).unwrap_or_default())
    }
    /// The message (messages, filtered, restored).
    async fn message_id(&self) -> Option<Uuid> {
        self.0.message_id
    }
    /// The comment (comments).
    async fn comment_id(&self) -> Option<Uuid> {
        self.0.comment_id
    }
    /// The author (messages, comments; the bot of a handoff).
    async fn author(&self) -> Option<Author> {
        self.0.author.clone().map(Author)
    }
    /// The e-mail subject.
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    /// The body as plain text.
    async fn body_text(&self) -> Option<&str> {
        self.0.body_text.as_deref()
    }
    /// Users @mentioned (comments).
    async fn mentions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        if self.0.mentions.is_empty() {
            return Ok(Vec::new());
        }
        let view = state(ctx).directory().await?;
        Ok(self
            .0
            .mentions
            .iter()
            .filter_map(|id| view.directory.user(*id).cloned().map(User))
            .collect())
    }
    /// The new assignee (assigned, reassigned).
    async fn assignee(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Assignee>> {
        Ok(assignee(ctx, self.0.assignee).await?)
    }
    /// The previous assignee (reassigned, unassigned).
    async fn previous_assignee(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Assignee>> {
        Ok(assignee(ctx, self.0.previous_assignee).await?)
    }
    /// Why: the assignment reason, the routing decision, the filter reason, the reopen cause.
    async fn reason(&self) -> Option<Json<serde_json::Value>> {
        self.0
            .reason_json
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .map(Json)
    }
    /// Delivery outcomes, oldest first (outbound messages).
    async fn deliveries(&self) -> Vec<Delivery> {
        self.0
            .deliveries
            .iter()
            .map(|d| Delivery {
                occurred_at: d.occurred_at,
                succeeded: d.succeeded,
                reason: d.reason.clone(),
                permanent: d.permanent,
                provider_message_id: d.provider_message_id.clone(),
                status: d.status.clone(),
            })
            .collect()
    }
    /// When Messenger reported the message delivered to the person's device (the first
    /// delivery or read receipt covering it; outbound Messenger messages only).
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    /// When Messenger reported the message read by the person (the first read receipt
    /// covering it; outbound Messenger messages only).
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }
    /// The address a chat reply went out to by e-mail, because the visitor had not seen it in
    /// the widget within `[chat] email_unseen_after`; its `deliveries` are then the e-mail's.
    async fn emailed_to(&self) -> Option<&str> {
        self.0.emailed_to.as_deref()
    }
    /// Whether `emailedTo` is known to be the visitor's: always `false` for now. The visitor
    /// typed it into the widget and nothing confirmed it (no double opt-in yet, ADR 0006), so
    /// whoever answers from it may not be whoever chatted; answers by e-mail are shown to
    /// agents only, never in the widget. `null` when the message was not e-mailed.
    async fn emailed_to_verified(&self) -> Option<bool> {
        self.0.emailed_to.as_ref().map(|_| false)
    }
    /// The message's attachments and inline images (messages, filtered messages; a reply's
    /// files as it was sent with them).
    async fn attachments(&self) -> Vec<MessageAttachment> {
        self.files()
            .attachments
            .into_iter()
            .map(|attachment| MessageAttachment {
                attachment,
                conversation_id: self.1,
            })
            .collect()
    }
    /// The original of an inbound e-mail, as received (e-mail that came in over SMTP, IMAP or
    /// the ingest route).
    async fn original_message(&self) -> Option<OriginalMessage> {
        self.files().raw.map(|raw| OriginalMessage {
            raw,
            conversation_id: self.1,
        })
    }
}

/// The page of `entries` (in log order) a window selects; cursors are positions.
pub(crate) fn connection(
    conversation_id: Uuid,
    entries: Vec<thread_view::TimelineEntry>,
    window: &Window,
) -> Connection<String, TimelineEntry> {
    let keys: Vec<String> = entries.iter().map(|e| e.position.to_string()).collect();
    let (range, has_previous, has_next) = in_memory_window(&keys, window);
    let mut connection = Connection::new(has_previous, has_next);
    for entry in entries.into_iter().skip(range.start).take(range.len()) {
        connection.edges.push(Edge::new(
            encode_cursor(&entry.position.to_string()),
            TimelineEntry(entry, conversation_id),
        ));
    }
    connection
}
