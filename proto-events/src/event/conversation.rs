//! Conversations: messages in and out, comments, routing and assignment, status.
//!
//! Stream: `conversation-<id>`. Every payload carries `conversation_id` and `inbox_id` (the inbox
//! the conversation started in, which never changes) so list and analytics projectors need no
//! join.
//!
//! A new conversation's stream starts with [`ConversationStarted`] then its first message, or
//! with [`MessageFiltered`] when filtered mail arrives for no visible conversation: such a
//! conversation is in the Filtered view only, until [`FilteredMessageRestored`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Actor;
use crate::event::{ChannelKind, Identity, SenderPattern};
use crate::wire::MissingField;

/// How a conversation began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationOrigin {
    /// With a customer's message.
    Inbound,
    /// With an agent's e-mail to a customer.
    Outbound,
}

/// Who may see a conversation, beyond admins and super admins who see all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "VisibilityWire")]
pub enum ConversationVisibility {
    /// Members of its inbox (subject to the inbox's team restriction).
    Shared,
    /// Only the owner of the private e-mail account it came through.
    Private {
        /// The account's owner.
        owner_user_id: Uuid,
    },
}

/// A conversation started. Followed by its first message: [`MessageReceived`] if inbound,
/// [`ReplySent`] if outbound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationStarted {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox it lives in.
    pub inbox_id: Uuid,
    /// The channel it came through.
    pub channel_id: Uuid,
    /// That channel's kind.
    pub channel_kind: ChannelKind,
    /// The customer, if already a contact.
    pub contact_id: Option<Uuid>,
    /// Inbound or outbound.
    pub origin: ConversationOrigin,
    /// Who may see it.
    pub visibility: ConversationVisibility,
}

/// E-mail headers kept for threading and display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailHeaders {
    /// `Message-ID`, without angle brackets.
    pub message_id: String,
    /// `In-Reply-To`, without angle brackets.
    pub in_reply_to: Option<String>,
    /// `References`, oldest first, without angle brackets.
    pub references: Vec<String>,
    /// `To` addresses.
    pub to: Vec<String>,
    /// `Cc` addresses.
    pub cc: Vec<String>,
}

/// A file kept in the blob store, named by the SHA-256 of its bytes. Events carry these
/// references, never the bytes: the download route serves them under the conversation's access
/// rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A file attached to a message (or an inline image of its HTML body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Where its bytes are.
    pub blob: BlobRef,
    /// The file name the sender gave, if any.
    pub file_name: Option<String>,
    /// Its MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// Its `Content-ID`, without angle brackets, for an inline part the HTML body cites as
    /// `cid:`.
    pub content_id: Option<String>,
    /// Whether it is shown inside the body (`Content-Disposition: inline` with a `Content-ID`)
    /// rather than listed as an attachment.
    pub inline: bool,
}

/// The original of an inbound e-mail, byte for byte, as received, for auditors to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawMessage {
    /// Where its bytes are.
    pub blob: BlobRef,
    /// What could not be read in it (a broken multipart, an unknown charset, too deep a
    /// nesting): the message was kept as received and shown with what could be read.
    pub warnings: Vec<String>,
}

/// One field of a form submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormField {
    /// The field's label.
    pub name: String,
    /// What the visitor entered.
    pub value: String,
}

/// An inbound message as it arrived, whether it reached the inbox or the Filtered view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Our id of the message.
    pub message_id: Uuid,
    /// The channel it came through.
    pub channel_id: Uuid,
    /// That channel's kind.
    pub channel_kind: ChannelKind,
    /// The provider's id of the message, for de-duplicating webhooks (a Messenger `mid`; for
    /// e-mail see `email.message_id`). `None` for our own chat.
    pub provider_message_id: Option<String>,
    /// Who sent it: an e-mail address, a chat visitor id or a Messenger PSID.
    pub from: Identity,
    /// The sender's display name, if the channel gave one.
    pub from_name: Option<String>,
    /// The contact recognised from `from`, if any.
    pub contact_id: Option<Uuid>,
    /// The subject line (e-mail, forms).
    pub subject: Option<String>,
    /// The body as plain text.
    pub body_text: String,
    /// The body as HTML, as received (e-mail only).
    pub body_html: Option<String>,
    /// Threading headers, for e-mail.
    pub email: Option<EmailHeaders>,
    /// The submitted fields, for forms; empty otherwise.
    pub form_fields: Vec<FormField>,
    /// Its attachments and inline images, in the blob store.
    pub attachments: Vec<Attachment>,
    /// The original e-mail, as received (e-mail through SMTP, IMAP or the ingest route).
    pub raw: Option<RawMessage>,
}

/// A customer's message reached the inbox.
///
/// Schema v2. v1 had a single `body`, now `body_text`, and no `body_html` (see
/// [`crate::upcast`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "InboundWire")]
pub struct MessageReceived {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The message.
    #[serde(flatten)]
    pub message: InboundMessage,
}

/// Why an e-mail filter caught a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FilterReason {
    /// Built-in: an automated reply (out-of-office, `Auto-Submitted`).
    AutomatedReply,
    /// Built-in: bulk or marketing mail.
    BulkMail,
    /// Built-in: sent from a role address such as noreply@.
    RoleAddress,
    /// Built-in: carries a `List-Unsubscribe` header.
    UnsubscribeHeader,
    /// A deny rule of the channel matched.
    DenyRule {
        /// The rule.
        rule_id: Uuid,
        /// What it matched on.
        pattern: SenderPattern,
    },
}

/// An inbound e-mail was filtered: recorded in full, shown in the Filtered view, not in the
/// inbox, and not routed.
///
/// Schema v2. v1 had no `visibility` (see [`crate::upcast`]): filtered mail of a private
/// account then named no owner, and readers must take it from the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "InboundWire")]
pub struct MessageFiltered {
    /// The conversation the message belongs to (a new one, unless it answers a visible thread).
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// Why it was filtered.
    pub reason: FilterReason,
    /// Who may see the message: the conversation's visibility when it answers a started
    /// conversation, else its channel's (a private account's mail is its owner's). `None` only
    /// in events recorded before schema v2, which did not say: the channel's access decides
    /// (private for a private account's channel, which never changes).
    pub visibility: Option<ConversationVisibility>,
    /// The message.
    #[serde(flatten)]
    pub message: InboundMessage,
}

/// A filtered message was restored to the inbox. Followed by [`ConversationStarted`] (if the
/// conversation had not started) and a [`MessageReceived`] with the same `message_id`, so
/// message projectors and response metrics see it arrive when it became visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilteredMessageRestored {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The restored message.
    pub message_id: Uuid,
    /// The user who restored it.
    pub restored_by_user_id: Uuid,
}

/// Who wrote an outbound message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "ReplyAuthorWire")]
pub enum ReplyAuthor {
    /// A human agent. Only these replies count for response metrics.
    User {
        /// The user's id.
        id: Uuid,
    },
    /// A bot.
    Bot {
        /// The bot's id.
        id: Uuid,
    },
    /// An automatic message, e.g. an acknowledgement of receipt.
    Automation {
        /// What sent it, for display.
        name: String,
    },
}

/// An outbound message was sent to the customer (handed to the channel; see
/// [`DeliverySucceeded`] and [`DeliveryFailed`] for the outcome). Also the first message of an
/// outbound conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplySent {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// Our id of the message.
    pub message_id: Uuid,
    /// The channel it goes out through.
    pub channel_id: Uuid,
    /// That channel's kind.
    pub channel_kind: ChannelKind,
    /// Who wrote it.
    pub author: ReplyAuthor,
    /// The subject line (e-mail).
    pub subject: Option<String>,
    /// The body as plain text.
    pub body_text: String,
    /// The body as HTML (e-mail).
    pub body_html: Option<String>,
    /// The headers it is sent with, threading it to the conversation (e-mail).
    pub email: Option<EmailHeaders>,
    /// Files sent with it, in the blob store (e-mail).
    pub attachments: Vec<Attachment>,
}

/// The channel accepted an outbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySucceeded {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The message.
    pub message_id: Uuid,
    /// The channel.
    pub channel_id: Uuid,
    /// The provider's id of the sent message (a Messenger `mid`, an SMTP queue id), if any.
    pub provider_message_id: Option<String>,
}

/// An outbound message could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFailed {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The message.
    pub message_id: Uuid,
    /// The channel.
    pub channel_id: Uuid,
    /// What the provider said, for display.
    pub reason: String,
    /// Whether retrying cannot help (a bounced address), as opposed to a temporary failure.
    pub permanent: bool,
    /// The remote server's status, when it gave one: an SMTP reply code and enhanced status
    /// code, e.g. `550 5.1.1`, from the relay's answer or a bounce.
    pub status: Option<String>,
}

/// An internal comment was added. Never sent to the customer; not a reply for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentAdded {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The comment.
    pub comment_id: Uuid,
    /// Its author.
    pub author_user_id: Uuid,
    /// The text.
    pub body_text: String,
    /// Users @mentioned in it.
    pub mentions: Vec<Uuid>,
}

/// Who a conversation is assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "AssigneeWire")]
pub enum Assignee {
    /// A user.
    User {
        /// The user's id.
        id: Uuid,
    },
    /// A team, any of whose members may pick it up.
    Team {
        /// The team's id.
        id: Uuid,
    },
    /// A bot answering first.
    Bot {
        /// The bot's id.
        id: Uuid,
    },
}

/// Why routing passed over a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The user was away.
    Away,
    /// The user had reached their capacity of open conversations.
    AtCapacity,
    /// The user may not see the conversation (inbox restriction, private channel).
    NoAccess,
    /// The user is deactivated (see `UserDeactivated`).
    Deactivated,
}

/// A candidate routing passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedCandidate {
    /// The user.
    pub user_id: Uuid,
    /// Why.
    pub why: SkipReason,
}

/// How a routing rule reached its decision, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingDecision {
    /// The rule applied.
    pub rule_id: Uuid,
    /// Its strategy.
    pub strategy: crate::event::RoutingStrategy,
    /// The users considered, in the order considered (teams expanded).
    pub candidates: Vec<Uuid>,
    /// The candidates passed over, with the reason.
    pub skipped: Vec<SkippedCandidate>,
}

/// Why an assignment changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    try_from = "AssignmentReasonWire"
)]
pub enum AssignmentReason {
    /// A routing rule decided.
    Rule(RoutingDecision),
    /// Someone chose, e.g. an agent taking or reassigning a conversation.
    Manual {
        /// Who.
        by: Actor,
    },
    /// A bot handed the conversation off (see [`BotHandedOff`]).
    BotHandoff {
        /// The bot.
        bot_id: Uuid,
    },
    /// Its assignee was deactivated, so the system took it from them for routing to give it to
    /// someone else (see `UserDeactivated`).
    AssigneeDeactivated {
        /// The deactivated user.
        user_id: Uuid,
    },
}

/// An unassigned conversation was assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationAssigned {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The new assignee.
    pub assignee: Assignee,
    /// Why.
    pub reason: AssignmentReason,
}

/// An assigned conversation was given to someone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationReassigned {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The previous assignee.
    pub from: Assignee,
    /// The new assignee.
    pub to: Assignee,
    /// Why.
    pub reason: AssignmentReason,
}

/// An assigned conversation became unassigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationUnassigned {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The previous assignee.
    pub from: Assignee,
    /// Why.
    pub reason: AssignmentReason,
}

/// Routing found nobody to assign: the conversation waits unassigned and is routed again when
/// a candidate frees up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationQueued {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The rule's attempt, with every candidate skipped.
    pub decision: RoutingDecision,
}

/// A bot handed a conversation off to humans. After a handoff, first response time is measured
/// from this moment. Any change of assignee follows as its own event with reason `bot_handoff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotHandedOff {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The bot.
    pub bot_id: Uuid,
    /// The user or team the bot asked for, if any; otherwise routing decides.
    pub to: Option<Assignee>,
}

/// A conversation was closed, ending its current cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationClosed {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// Who closed it (a user, a bot, or the system).
    pub by: Actor,
}

/// Why a closed conversation reopened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "ReopenCauseWire")]
pub enum ReopenCause {
    /// The customer wrote again; the message follows as [`MessageReceived`].
    CustomerWrote {
        /// That message.
        message_id: Uuid,
    },
    /// Someone reopened it by hand.
    Manual {
        /// Who.
        by: Actor,
    },
}

/// A closed conversation was reopened, starting a new cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationReopened {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// Why.
    pub cause: ReopenCause,
}

/// A private conversation (from a user's own e-mail account) was shared with its inbox: from
/// now on its visibility is [`ConversationVisibility::Shared`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationShared {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The user who shared it (the account's owner or an admin).
    pub by_user_id: Uuid,
}

/// A conversation was erased: with its contact ([`ContactErased`]) or by its inbox's retention
/// period. The keys of its data subject (the conversation itself, for what its sender wrote
/// before being a contact) are destroyed and its files deleted, so its personal fields read as
/// erased from now on; read models drop it. It refuses every command afterwards. It holds no
/// personal data itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationErased {
    /// The conversation.
    pub conversation_id: Uuid,
    /// Its inbox.
    pub inbox_id: Uuid,
    /// The contact erased with it, when that is why.
    pub contact_id: Option<Uuid>,
    /// Why: the admin's reason for the contact's erasure, or the retention rule's.
    pub reason: String,
}

/// A [`MessageReceived`] or [`MessageFiltered`] as stored: the message's fields beside the
/// conversation's. Written through `flatten`, read through this flat struct, since serde reads a
/// flattened struct by buffering the whole object first, which cost more than the rest of the
/// event together (see `crate::wire`).
#[derive(Deserialize)]
struct InboundWire {
    conversation_id: Uuid,
    inbox_id: Uuid,
    reason: Option<FilterReason>,
    #[serde(default)]
    visibility: Option<ConversationVisibility>,
    message_id: Uuid,
    channel_id: Uuid,
    channel_kind: ChannelKind,
    provider_message_id: Option<String>,
    from: Identity,
    from_name: Option<String>,
    contact_id: Option<Uuid>,
    subject: Option<String>,
    body_text: String,
    body_html: Option<String>,
    email: Option<EmailHeaders>,
    form_fields: Vec<FormField>,
    attachments: Vec<Attachment>,
    raw: Option<RawMessage>,
}

impl InboundWire {
    fn split(
        self,
    ) -> (
        Uuid,
        Uuid,
        Option<FilterReason>,
        Option<ConversationVisibility>,
        InboundMessage,
    ) {
        let message = InboundMessage {
            message_id: self.message_id,
            channel_id: self.channel_id,
            channel_kind: self.channel_kind,
            provider_message_id: self.provider_message_id,
            from: self.from,
            from_name: self.from_name,
            contact_id: self.contact_id,
            subject: self.subject,
            body_text: self.body_text,
            body_html: self.body_html,
            email: self.email,
            form_fields: self.form_fields,
            attachments: self.attachments,
            raw: self.raw,
        };
        (
            self.conversation_id,
            self.inbox_id,
            self.reason,
            self.visibility,
            message,
        )
    }
}

impl From<InboundWire> for MessageReceived {
    fn from(wire: InboundWire) -> Self {
        let (conversation_id, inbox_id, _, _, message) = wire.split();
        MessageReceived {
            conversation_id,
            inbox_id,
            message,
        }
    }
}

impl TryFrom<InboundWire> for MessageFiltered {
    type Error = MissingField;

    fn try_from(wire: InboundWire) -> Result<Self, Self::Error> {
        let (conversation_id, inbox_id, reason, visibility, message) = wire.split();
        Ok(MessageFiltered {
            conversation_id,
            inbox_id,
            reason: reason.ok_or(MissingField("reason"))?,
            visibility,
            message,
        })
    }
}

/// The kinds of [`ConversationVisibility`], as stored in its `kind` field.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum VisibilityKind {
    Shared,
    Private,
}

/// A [`ConversationVisibility`] as stored, decoded in one pass (see `crate::wire`).
#[derive(Deserialize)]
struct VisibilityWire {
    kind: VisibilityKind,
    owner_user_id: Option<Uuid>,
}

impl TryFrom<VisibilityWire> for ConversationVisibility {
    type Error = MissingField;

    fn try_from(wire: VisibilityWire) -> Result<Self, Self::Error> {
        Ok(match wire.kind {
            VisibilityKind::Shared => ConversationVisibility::Shared,
            VisibilityKind::Private => ConversationVisibility::Private {
                owner_user_id: wire.owner_user_id.ok_or(MissingField("owner_user_id"))?,
            },
        })
    }
}

/// The kinds of [`AssignmentReason`], as stored in its `kind` field.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum AssignmentReasonKind {
    Rule,
    Manual,
    BotHandoff,
    AssigneeDeactivated,
}

/// An [`AssignmentReason`] as stored, decoded in one pass (see `crate::wire`): a rule's
/// decision has its fields beside the `kind`.
#[derive(Deserialize)]
struct AssignmentReasonWire {
    kind: AssignmentReasonKind,
    by: Option<Actor>,
    bot_id: Option<Uuid>,
    user_id: Option<Uuid>,
    rule_id: Option<Uuid>,
    strategy: Option<crate::event::RoutingStrategy>,
    candidates: Option<Vec<Uuid>>,
    skipped: Option<Vec<SkippedCandidate>>,
}

impl TryFrom<AssignmentReasonWire> for AssignmentReason {
    type Error = MissingField;

    fn try_from(wire: AssignmentReasonWire) -> Result<Self, Self::Error> {
        Ok(match wire.kind {
            AssignmentReasonKind::Rule => AssignmentReason::Rule(RoutingDecision {
                rule_id: wire.rule_id.ok_or(MissingField("rule_id"))?,
                strategy: wire.strategy.ok_or(MissingField("strategy"))?,
                candidates: wire.candidates.ok_or(MissingField("candidates"))?,
                skipped: wire.skipped.ok_or(MissingField("skipped"))?,
            }),
            AssignmentReasonKind::Manual => AssignmentReason::Manual {
                by: wire.by.ok_or(MissingField("by"))?,
            },
            AssignmentReasonKind::BotHandoff => AssignmentReason::BotHandoff {
                bot_id: wire.bot_id.ok_or(MissingField("bot_id"))?,
            },
            AssignmentReasonKind::AssigneeDeactivated => AssignmentReason::AssigneeDeactivated {
                user_id: wire.user_id.ok_or(MissingField("user_id"))?,
            },
        })
    }
}

/// The kinds of [`ReopenCause`], as stored in its `kind` field.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReopenCauseKind {
    CustomerWrote,
    Manual,
}

/// A [`ReopenCause`] as stored, decoded in one pass (see `crate::wire`).
#[derive(Deserialize)]
struct ReopenCauseWire {
    kind: ReopenCauseKind,
    message_id: Option<Uuid>,
    by: Option<Actor>,
}

impl TryFrom<ReopenCauseWire> for ReopenCause {
    type Error = MissingField;

    fn try_from(wire: ReopenCauseWire) -> Result<Self, Self::Error> {
        Ok(match wire.kind {
            ReopenCauseKind::CustomerWrote => ReopenCause::CustomerWrote {
                message_id: wire.message_id.ok_or(MissingField("message_id"))?,
            },
            ReopenCauseKind::Manual => ReopenCause::Manual {
                by: wire.by.ok_or(MissingField("by"))?,
            },
        })
    }
}

/// The kinds of [`ReplyAuthor`], as stored in its `kind` field.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReplyAuthorKind {
    User,
    Bot,
    Automation,
}

/// A [`ReplyAuthor`] as stored, decoded in one pass (see `crate::wire`).
#[derive(Deserialize)]
struct ReplyAuthorWire {
    kind: ReplyAuthorKind,
    id: Option<Uuid>,
    name: Option<String>,
}

impl TryFrom<ReplyAuthorWire> for ReplyAuthor {
    type Error = MissingField;

    fn try_from(wire: ReplyAuthorWire) -> Result<Self, Self::Error> {
        let id = || wire.id.ok_or(MissingField("id"));
        Ok(match wire.kind {
            ReplyAuthorKind::User => ReplyAuthor::User { id: id()? },
            ReplyAuthorKind::Bot => ReplyAuthor::Bot { id: id()? },
            ReplyAuthorKind::Automation => ReplyAuthor::Automation {
                name: wire.name.ok_or(MissingField("name"))?,
            },
        })
    }
}

/// The kinds of [`Assignee`], as stored in its `kind` field.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum AssigneeKind {
    User,
    Team,
    Bot,
}

/// An [`Assignee`] as stored, decoded in one pass (see `crate::wire`).
#[derive(Deserialize)]
struct AssigneeWire {
    kind: AssigneeKind,
    id: Option<Uuid>,
}

impl TryFrom<AssigneeWire> for Assignee {
    type Error = MissingField;

    fn try_from(wire: AssigneeWire) -> Result<Self, Self::Error> {
        let id = wire.id.ok_or(MissingField("id"))?;
        Ok(match wire.kind {
            AssigneeKind::User => Assignee::User { id },
            AssigneeKind::Team => Assignee::Team { id },
            AssigneeKind::Bot => Assignee::Bot { id },
        })
    }
}

// --- Messenger receipts (issue 20) ---

/// Which of Messenger's receipts arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// `delivery`: the messages reached the person's device.
    Delivered,
    /// `read`: the person read them.
    Read,
}

/// Messenger reported that the page's messages in a conversation up to `watermark` were
/// delivered to or read by the person. Every outbound message sent before the watermark is
/// covered; `mids` names some of them when Meta does (delivery receipts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessengerReceiptReceived {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The Messenger channel.
    pub channel_id: Uuid,
    /// Delivered or read.
    pub kind: ReceiptKind,
    /// Meta's watermark: messages sent up to this time are covered.
    pub watermark: chrono::DateTime<chrono::Utc>,
    /// Graph's ids of messages covered, when Meta names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mids: Vec<String>,
}

// --- end Messenger receipts ---

// --- Chat replies by e-mail (issue 20) ---

/// A chat visitor left an e-mail address in their conversation, so that answers they do not
/// see in the widget can reach them by e-mail (ADR 0006). The latest one counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatVisitorEmailLeft {
    /// The chat conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The address, trimmed and lower-cased.
    pub address: String,
}

/// The visitor's widget was handed these replies of their chat conversation (over its live
/// socket, or when it read the conversation): they have seen them, and none of them is
/// e-mailed any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRepliesSeen {
    /// The chat conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The replies seen for the first time, none e-mailed before.
    pub message_ids: Vec<Uuid>,
}

/// A chat reply the visitor had not seen within the configured delay is sent to the address
/// they left, by e-mail, from the inbox's team address (else its fallback address): the
/// delivery worker sends it with these headers and records the usual `DeliverySucceeded` or
/// `DeliveryFailed` for the reply's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatReplyEmailed {
    /// The chat conversation.
    pub conversation_id: Uuid,
    /// The inbox.
    pub inbox_id: Uuid,
    /// The reply (its `ReplySent`'s message id).
    pub message_id: Uuid,
    /// The e-mail channel whose address it goes out from: the visitor's answer, citing its
    /// `Message-ID`, comes back through that channel and threads into this conversation.
    pub email_channel_id: Uuid,
    /// The e-mail's subject.
    pub subject: String,
    /// Its headers: our `Message-ID`, the visitor's address as `To`, the thread's references.
    pub email: EmailHeaders,
}

// --- end chat replies by e-mail ---
