//! The plain structs the thread-view queries return. No transport traits: the API crate wraps
//! them in its GraphQL types.

use chrono::{DateTime, Utc};
use proto_events::event::ChannelKind;
use uuid::Uuid;

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationStatus {
    /// In the inbox, to be worked.
    Open,
    /// Done, until the customer writes again or someone reopens it.
    Closed,
    /// Holds only filtered mail so far: in the Filtered view, not in the inbox lists.
    Filtered,
}

impl ConversationStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Filtered => "filtered",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            "filtered" => Some(Self::Filtered),
            _ => None,
        }
    }
}

/// Who a conversation is (or was) assigned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssigneeRef {
    /// A user.
    User(Uuid),
    /// A team.
    Team(Uuid),
    /// A bot.
    Bot(Uuid),
}

/// One conversation's header: what the inbox list and the top of the thread show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationHeader {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox it lives in (never changes); access rules filter on it.
    pub inbox_id: Uuid,
    /// The channel it came through.
    pub channel_id: Uuid,
    /// That channel's kind.
    pub channel_kind: ChannelKind,
    /// The customer, once known.
    pub contact_id: Option<Uuid>,
    /// For a private conversation (a user's own e-mail account, not shared), that user: only
    /// they and admins may see it. `None` for shared conversations.
    pub private_owner_id: Option<Uuid>,
    /// Open, closed, or filtered-only.
    pub status: ConversationStatus,
    /// The current assignee, if any.
    pub assignee: Option<AssigneeRef>,
    /// When it started (its `ConversationStarted`; for filtered-only ones, the filtered mail).
    pub created_at: DateTime<Utc>,
    /// The latest activity, see the crate docs; the inbox lists sort on it.
    pub last_activity_at: DateTime<Utc>,
    /// When it was last closed, while closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// The subject of its first message that had one.
    pub subject: Option<String>,
    /// The start of the last message in or out (whitespace collapsed, at most 140 characters).
    pub last_message_preview: Option<String>,
    /// When that message was sent or received.
    pub last_message_at: Option<DateTime<Utc>>,
    /// Inbound messages unread by the assignee, see the crate docs.
    pub unread_count: u32,
    /// The first unanswered inbound message's time, see the crate docs.
    pub waiting_since: Option<DateTime<Utc>>,
    /// Inbound customer messages that reached the inbox.
    pub inbound_count: u32,
    /// Outbound messages (human, bot and automated).
    pub outbound_count: u32,
    /// Internal comments.
    pub comment_count: u32,
}

impl ConversationHeader {
    /// The cursor that points at this conversation in a list.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            last_activity_at: self.last_activity_at,
            conversation_id: self.conversation_id,
        }
    }
}

/// A position in a conversation list: lists are sorted by `last_activity_at` descending, then
/// by `conversation_id` descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The conversation's last activity.
    pub last_activity_at: DateTime<Utc>,
    /// The conversation.
    pub conversation_id: Uuid,
}

/// Which page of a list to fetch (Relay style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRequest {
    /// The first `count` items after `after` (from the top of the list without one).
    First {
        /// How many.
        count: usize,
        /// Exclusive start.
        after: Option<Cursor>,
    },
    /// The last `count` items before `before` (from the bottom of the list without one).
    Last {
        /// How many.
        count: usize,
        /// Exclusive end.
        before: Option<Cursor>,
    },
}

/// One page of a list, in list order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Whether items follow the last one.
    pub has_next_page: bool,
    /// Whether items precede the first one.
    pub has_previous_page: bool,
}

/// Which assignee a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssigneeFilter {
    /// Any assignee, or none.
    #[default]
    Any,
    /// Conversations without an assignee.
    Unassigned,
    /// Conversations assigned to this user. "Mine" is `User(viewer_id)`.
    User(Uuid),
}

/// What an inbox list shows. Filters combine with AND; the default shows every open or closed
/// conversation (never filtered-only ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListFilter {
    /// Only this inbox.
    pub inbox_id: Option<Uuid>,
    /// Only this status (`Filtered` yields nothing: use [`crate::filtered_mail`]).
    pub status: Option<ConversationStatus>,
    /// Only this assignee.
    pub assignee: AssigneeFilter,
    /// Only conversations assigned to this team.
    pub team_id: Option<Uuid>,
    /// Only this channel.
    pub channel_id: Option<Uuid>,
}

/// The badge counts of one inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadgeCounts {
    /// The inbox.
    pub inbox_id: Uuid,
    /// Open conversations.
    pub open: u32,
    /// Closed conversations.
    pub closed: u32,
    /// Open conversations without an assignee.
    pub unassigned: u32,
    /// Filtered messages not restored.
    pub filtered: u32,
}

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
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

impl EntryKind {
    /// Every kind, in the order of their stored codes.
    const ALL: [EntryKind; 13] = [
        EntryKind::InboundMessage,
        EntryKind::OutboundMessage,
        EntryKind::Comment,
        EntryKind::Assigned,
        EntryKind::Reassigned,
        EntryKind::Unassigned,
        EntryKind::Queued,
        EntryKind::BotHandedOff,
        EntryKind::Closed,
        EntryKind::Reopened,
        EntryKind::Filtered,
        EntryKind::Restored,
        EntryKind::Shared,
    ];

    /// The kind's code in a packed timeline row: its place in the declaration.
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    /// The kind of a stored code.
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }
}

/// Who wrote a message or comment, or performed a handoff or restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Author {
    /// The customer.
    Contact {
        /// The contact, once recognised.
        contact_id: Option<Uuid>,
        /// The address, chat visitor id or Messenger PSID it came from.
        address: String,
        /// The display name the channel gave.
        name: Option<String>,
    },
    /// A user.
    User(Uuid),
    /// A bot.
    Bot(Uuid),
    /// An automatic message, by name.
    Automation(String),
}

/// One delivery outcome of an outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event's position.
    pub position: u64,
    /// When the outcome was recorded.
    pub occurred_at: DateTime<Utc>,
    /// Delivered, or failed.
    pub succeeded: bool,
    /// The provider's explanation, for failures.
    pub reason: Option<String>,
    /// For failures: retrying cannot help.
    pub permanent: bool,
    /// The provider's id of the sent message, on success.
    pub provider_message_id: Option<String>,
    /// For failures: the remote server's status (`550 5.1.1`), when it gave one.
    pub status: Option<String>,
}

/// A Messenger receipt of a conversation, as recorded: which of the page's messages it covers
/// is worked out when the timeline is read ([`Receipt::covers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Receipt {
    /// When it was recorded.
    pub(crate) occurred_at: DateTime<Utc>,
    /// A read receipt (else a delivery receipt).
    pub(crate) read: bool,
    /// Messages sent up to this time are covered.
    pub(crate) watermark: DateTime<Utc>,
    /// Graph's ids of messages covered, when Meta named them.
    pub(crate) mids: Vec<String>,
}

impl Receipt {
    /// Whether it covers the outbound message `entry`: only a message whose delivery succeeded,
    /// and only a receipt recorded after that success (never one older than the message); then
    /// when it was sent with one of the named `mid`s, or written no later than the watermark
    /// (Meta's watermark is the time Graph gave the last message covered, which lies between
    /// the reply's writing and the recording of its delivery).
    pub(crate) fn covers(&self, entry: &TimelineEntry) -> bool {
        let Some(delivered) = entry.deliveries.iter().find(|d| d.succeeded) else {
            return false;
        };
        self.occurred_at >= delivered.occurred_at
            && (entry.occurred_at <= self.watermark
                || delivered
                    .provider_message_id
                    .as_ref()
                    .is_some_and(|mid| self.mids.contains(mid)))
    }
}

/// A file a conversation shows (see [`crate::file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type.
    pub content_type: String,
    /// Its file name, if it has one.
    pub file_name: Option<String>,
}

/// One entry of a conversation's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// The event's global position: the timeline's order.
    pub position: u64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// What happened.
    pub kind: EntryKind,
    /// The event's actor (`metadata.actor`) as JSON, for audit display.
    pub actor_json: String,
    /// The message (messages, filtered, restored).
    pub message_id: Option<Uuid>,
    /// The comment (comments).
    pub comment_id: Option<Uuid>,
    /// The author (messages, comments; the bot of a handoff; the user who restored or shared).
    pub author: Option<Author>,
    /// The e-mail subject (messages, filtered).
    pub subject: Option<String>,
    /// The body as plain text (messages, comments, filtered).
    pub body_text: Option<String>,
    /// Users @mentioned (comments).
    pub mentions: Vec<Uuid>,
    /// The new assignee (assigned, reassigned; the requested target of a handoff).
    pub assignee: Option<AssigneeRef>,
    /// The previous assignee (reassigned, unassigned).
    pub previous_assignee: Option<AssigneeRef>,
    /// Why, as the event's JSON: the assignment reason, the queued routing decision, the filter
    /// reason, the reopen cause, or the actor who closed.
    pub reason_json: Option<String>,
    /// Delivery outcomes, oldest first (outbound messages only).
    pub deliveries: Vec<Delivery>,
    /// When a Messenger receipt first showed the message delivered to the person's device (a
    /// delivery receipt, or a read receipt, which implies it) (outbound messages only).
    pub delivered_at: Option<DateTime<Utc>>,
    /// When a Messenger read receipt first showed the message read (outbound messages only).
    pub read_at: Option<DateTime<Utc>>,
    /// The address a chat reply went out to by e-mail, because the visitor had not seen it
    /// (ADR 0006); its delivery outcomes are the e-mail's.
    pub emailed_to: Option<String>,
    /// The message's files (messages, filtered), as JSON: `{"attachments": [Attachment...],
    /// "raw": RawMessage | null}` in the events' shapes; `None` when it has none.
    pub files_json: Option<String>,
}

/// One message in the Filtered view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredMail {
    /// The event's position.
    pub position: u64,
    /// The message.
    pub message_id: Uuid,
    /// The conversation it belongs to.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The channel.
    pub channel_id: Uuid,
    /// When it was filtered.
    pub filtered_at: DateTime<Utc>,
    /// The sender's address.
    pub from_address: String,
    /// The sender's display name.
    pub from_name: Option<String>,
    /// The subject.
    pub subject: Option<String>,
    /// The body as plain text.
    pub body_text: String,
    /// The reason's kind, e.g. `"bulk_mail"` or `"deny_rule"`.
    pub reason_kind: String,
    /// The full reason as JSON.
    pub reason_json: String,
    /// The private account's owner, for filtered mail of a private conversation: only they and
    /// admins may see it. `None` for shared mail.
    pub private_owner_id: Option<Uuid>,
}

impl FilteredMail {
    /// The cursor that points at this message in the Filtered view.
    pub fn cursor(&self) -> FilteredCursor {
        FilteredCursor {
            filtered_at: self.filtered_at,
            position: self.position,
        }
    }
}

/// A position in the Filtered view, sorted by `filtered_at` descending then position
/// descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilteredCursor {
    /// When the message was filtered.
    pub filtered_at: DateTime<Utc>,
    /// The event's position.
    pub position: u64,
}
