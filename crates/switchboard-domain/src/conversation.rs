//! The conversation aggregate: inbound messages (and the Filtered view), replies and their
//! delivery, internal comments, assignment, bot handoff, status and sharing, decided over one
//! `conversation-<id>` stream.
//!
//! The command service has already done what needs IO or other streams: it resolved which
//! conversation an inbound message threads into (or minted a new id), which contact sent it and
//! whether the e-mail filters caught it; routing chose an assignee. Here only the rules remain.
//!
//! # Access
//! A user who may not see the conversation (or a conversation that does not exist) gets
//! [`DomainError::NotFound`], so nothing leaks; auditors and analysts who see it get
//! [`DomainError::Forbidden`] for every change. Channels and the system deliver messages and
//! outcomes; users cannot inject either.
//!
//! # Decisions
//! - **Duplicates write nothing.** Channels deliver at least once: an inbound message whose id,
//!   provider id or e-mail `Message-ID` is already in the conversation, a reply or comment whose
//!   id is, and a delivery outcome after a final one, are accepted with no events.
//! - **Replying to a closed conversation** is allowed and does not reopen it, as in Front and
//!   HubSpot (a closing note, a late answer): only the customer writing again reopens it, or
//!   someone reopening it by hand. The reply belongs to the closed cycle for metrics.
//! - **Restoring** a filtered message into a closed conversation reopens it (cause: the customer
//!   wrote), so no inbound message lands in a closed cycle.
//! - **Team assignees** must work the inbox: a member team, not excluded by the inbox's team
//!   restriction. Private conversations go to users only (a team would not see them).
//! - **A bot handing off** always changes the assignment: to the user or team it names, or back
//!   to unassigned so routing picks it up (routing leaves assigned conversations alone).
//!   Reassigning away from a bot by hand is a plain reassignment, not a handoff.
//! - **A deactivated user** cannot be assigned (`ASSIGNEE_DEACTIVATED`); the system takes their
//!   open conversations from them for routing to give to others, naming the cause.
//! - **Routing** only assigns open, unassigned conversations: a manual assignment that got there
//!   first wins, and the late routing result is dropped without events.
//! - **Form conversations are answered by e-mail** when the visitor left an e-mail address: the
//!   reply gets e-mail headers as if the inbox's team address (or, without one, its fallback
//!   address) had received the form, so the delivery worker sends it from there. Without an
//!   address to write to, the reply is recorded with no e-mail headers and is not sent.
//! - **Attachments** go with replies sent by e-mail only; other channels refuse them.
//! - **Chat replies go out by e-mail when unseen**: a chat visitor who left an address
//!   (`RecordVisitorEmail`) and whose widget was not handed a reply (`RecordRepliesSeen`) within
//!   the configured delay gets it by e-mail from the inbox's team or fallback address, when the
//!   delivery worker asks (`EmailUnseenReply`); a reply seen first is never e-mailed, one
//!   e-mailed first is not recorded seen (ADR 0006, `chat_email`).
//! - **Senders' names are kept as names** ([`display_name`](crate::display_name)): the name an
//!   inbound message gives its sender (a chat visitor's, a form's, an e-mail's display name)
//!   loses bidi and control characters before it is recorded, so it reads to agents as it is.
//! - **Temporary delivery failures** keep the message awaiting an outcome (the channel retries);
//!   repeating the same temporary failure writes nothing.
//!
//! # Layout
//! - `state`: [`Conversation`], folded from the stream.
//! - `threading`: e-mail `Message-ID`, `In-Reply-To` and `References` of replies.
//! - `chat_email`: chat replies by e-mail to a visitor who did not see them.

mod chat_email;
mod state;
mod threading;

use proto_events::event::{
    Assignee, AssignmentReason, Attachment, BotHandedOff, ChannelConfig, ChannelKind, CommentAdded,
    ConversationAssigned, ConversationClosed, ConversationErased, ConversationOrigin,
    ConversationQueued, ConversationReassigned, ConversationReopened, ConversationShared,
    ConversationStarted, ConversationUnassigned, ConversationVisibility, DeliveryFailed,
    DeliverySucceeded, FilterReason, FilteredMessageRestored, Identity, InboundMessage,
    MessageFiltered, MessageReceived, MessengerReceiptReceived, ReceiptKind, ReopenCause,
    ReplyAuthor, ReplySent, RoutingDecision,
};
use proto_events::{Actor, DomainEvent};
use uuid::Uuid;

pub use self::state::{Conversation, Delivery, Outbound, Status};
pub use self::threading::{EmailThread, FALLBACK_MESSAGE_ID_DOMAIN, message_id_for, reply_subject};
use crate::directory::{Directory, User};
use crate::{Context, DomainError};

/// What can be asked of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one command per request, passed by reference: its size costs nothing"
)]
pub enum ConversationCommand {
    /// A channel delivers a customer's message. Starts the conversation if it is new, reopens it
    /// if closed; with a `filter`, records it for the Filtered view only.
    ReceiveMessage {
        /// The conversation it threads into, or a fresh id for a new one.
        conversation_id: Uuid,
        /// The inbox: the channel's for a new conversation, the conversation's otherwise.
        inbox_id: Uuid,
        /// The channel that delivered it.
        channel_id: Uuid,
        /// The message.
        message: InboundMessage,
        /// Why the e-mail filters caught it, if they did.
        filter: Option<FilterReason>,
    },
    /// A user moves a filtered message into the inbox.
    RestoreFilteredMessage {
        /// The filtered message.
        message_id: Uuid,
    },
    /// A user, the bot handling the conversation, or an automation (the system actor) answers the
    /// customer through the conversation's channel.
    SendReply {
        /// Our id of the new message; repeating it writes nothing.
        message_id: Uuid,
        /// The body as plain text; must not be blank.
        body_text: String,
        /// The body as HTML (e-mail only; other channels drop it).
        body_html: Option<String>,
        /// The subject (e-mail only); `None` answers `Re:` the conversation's subject.
        subject: Option<String>,
        /// Files sent with it, already in the blob store (e-mail only: other channels refuse
        /// them).
        attachments: Vec<Attachment>,
    },
    /// The channel reports what became of an outbound message.
    RecordDelivery {
        /// The outbound message.
        message_id: Uuid,
        /// What became of it.
        outcome: DeliveryOutcome,
    },
    /// Messenger reports that the page's messages up to `watermark` were delivered or read
    /// (the conversation's channel only). A watermark not later than the last of its kind
    /// writes nothing: Meta sends receipts again.
    RecordReceipt {
        /// Delivered or read.
        kind: ReceiptKind,
        /// Messages sent up to this time are covered.
        watermark: chrono::DateTime<chrono::Utc>,
        /// Graph's ids of messages covered, when Meta names them.
        mids: Vec<String>,
    },
    /// A chat visitor leaves an e-mail address for answers they do not see in the widget (the
    /// conversation's chat channel only). The same address again writes nothing.
    RecordVisitorEmail {
        /// The address.
        address: String,
    },
    /// The visitor's widget was handed these replies (the conversation's chat channel only):
    /// they are not e-mailed. Replies already seen or e-mailed are left out; none left writes
    /// nothing.
    RecordRepliesSeen {
        /// The replies' message ids.
        message_ids: Vec<Uuid>,
    },
    /// The delivery worker (the system) asks to e-mail a chat reply the visitor has not seen
    /// within the configured delay to the address they left. Writes nothing if it was seen or
    /// e-mailed meanwhile.
    EmailUnseenReply {
        /// The reply's message id.
        message_id: Uuid,
    },
    /// A user adds an internal comment, never sent to the customer.
    AddComment {
        /// Our id of the comment; repeating it writes nothing.
        comment_id: Uuid,
        /// The text; must not be blank.
        body_text: String,
        /// Users @mentioned; each must be able to see the conversation.
        mentions: Vec<Uuid>,
    },
    /// A user assigns or reassigns the conversation by hand.
    Assign {
        /// The new assignee.
        to: Assignee,
    },
    /// A user takes the conversation's assignee away by hand.
    Unassign,
    /// The system takes the conversation from its assignee, who was deactivated, so that
    /// routing gives it to someone else. Writes nothing if it has moved on meanwhile (closed,
    /// reassigned, the user reactivated).
    ReleaseFromDeactivated {
        /// The deactivated user.
        user_id: Uuid,
    },
    /// The routing reactor (the system actor) applies its decision for a new conversation.
    ApplyRouting {
        /// What routing decided.
        routing: Routing,
    },
    /// Close the conversation, ending its cycle.
    Close,
    /// Reopen a closed conversation by hand, starting a new cycle.
    Reopen,
    /// The bot handling the conversation (or a user on its behalf) hands it to humans.
    HandOffFromBot {
        /// The user or team to hand it to; `None` leaves it to routing.
        to: Option<Assignee>,
    },
    /// Make a private conversation (from a user's own e-mail account) visible to its inbox.
    Share,
    /// Erase it: with its contact (named), or by its inbox's retention period. Its keys are
    /// destroyed and its files deleted by the service; from then on it refuses every command.
    Erase {
        contact_id: Option<Uuid>,
        reason: String,
    },
}

/// What became of an outbound message, as its channel reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The provider accepted it.
    Succeeded {
        /// The provider's id of the sent message, if it gave one.
        provider_message_id: Option<String>,
    },
    /// It could not be delivered.
    Failed {
        /// What the provider said, for display.
        reason: String,
        /// Whether retrying cannot help (a bounce), as opposed to a temporary failure.
        permanent: bool,
        /// The remote server's status (`550 5.1.1`), when it gave one.
        status: Option<String>,
    },
}

/// What routing decided for a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// Assign it to this assignee.
    Assign {
        /// Who gets it.
        assignee: Assignee,
        /// How the rule chose, for the audit trail.
        decision: RoutingDecision,
    },
    /// Nobody qualified: it waits unassigned.
    Queue {
        /// The rule's attempt, with every candidate skipped.
        decision: RoutingDecision,
    },
}

/// Decides a command on a conversation: the events to append to `conversation-<id>`, in order,
/// or why the command is refused. An empty list means the command was already done (a duplicate)
/// or overtaken (routing a conversation someone already took): nothing to write, not an error.
pub fn decide(
    state: &Conversation,
    command: &ConversationCommand,
    ctx: &Context<'_>,
) -> Result<Vec<DomainEvent>, DomainError> {
    use ConversationCommand as C;
    if state.erased {
        // Who may not see it learns nothing more than of any conversation they cannot see.
        if !matches!(command, C::ReceiveMessage { .. }) {
            caller(state, ctx)?;
        }
        return Err(erased(state.id));
    }
    match command {
        C::ReceiveMessage {
            conversation_id,
            inbox_id,
            channel_id,
            message,
            filter,
        } => receive(
            state,
            ctx,
            Inbound {
                conversation_id: *conversation_id,
                inbox_id: *inbox_id,
                channel_id: *channel_id,
                message,
                filter: filter.as_ref(),
            },
        ),
        C::RestoreFilteredMessage { message_id } => restore(state, ctx, *message_id),
        C::SendReply {
            message_id,
            body_text,
            body_html,
            subject,
            attachments,
        } => reply(
            state,
            ctx,
            Reply {
                message_id: *message_id,
                body_text,
                body_html: body_html.as_ref(),
                subject: subject.as_ref(),
                attachments,
            },
        ),
        C::RecordDelivery {
            message_id,
            outcome,
        } => record_delivery(state, ctx, *message_id, outcome),
        C::RecordReceipt {
            kind,
            watermark,
            mids,
        } => record_receipt(state, ctx, *kind, *watermark, mids),
        C::RecordVisitorEmail { address } => chat_email::record_visitor_email(state, ctx, address),
        C::RecordRepliesSeen { message_ids } => {
            chat_email::record_replies_seen(state, ctx, message_ids)
        }
        C::EmailUnseenReply { message_id } => {
            chat_email::email_unseen_reply(state, ctx, *message_id)
        }
        C::AddComment {
            comment_id,
            body_text,
            mentions,
        } => comment(state, ctx, *comment_id, body_text, mentions),
        C::Assign { to } => assign(state, ctx, to),
        C::Unassign => unassign(state, ctx),
        C::ReleaseFromDeactivated { user_id } => release_from_deactivated(state, ctx, *user_id),
        C::ApplyRouting { routing } => apply_routing(state, ctx, routing),
        C::Close => close(state, ctx),
        C::Reopen => reopen(state, ctx),
        C::HandOffFromBot { to } => hand_off(state, ctx, to.as_ref()),
        C::Share => share(state, ctx),
        C::Erase { contact_id, reason } => erase(state, ctx, *contact_id, reason),
    }
}

/// Who acts on an existing conversation, once the access rules let them through.
enum Caller<'a> {
    /// A user who sees the conversation and may write.
    User(&'a User),
    /// A bot, not yet checked against the conversation.
    Bot(Uuid),
    /// Switchboard itself, e.g. the router or an automation.
    System(&'a str),
    /// A channel integration.
    Channel(Uuid),
    /// A customer.
    Contact,
}

fn conversation_not_found() -> DomainError {
    DomainError::NotFound {
        what: "conversation",
    }
}

/// The caller of a command on an existing conversation. Users who may not see it learn nothing
/// (not found); those who see it but only read are forbidden.
fn caller<'a>(state: &Conversation, ctx: &Context<'a>) -> Result<Caller<'a>, DomainError> {
    if state.status == Status::Empty {
        return Err(conversation_not_found());
    }
    let directory: &'a Directory = ctx.directory;
    match ctx.actor {
        Actor::User { id } => {
            let owner = state.effective_private_owner(directory);
            let user = directory
                .user(*id)
                .filter(|_| directory.can_see_conversation(*id, state.inbox_id, owner))
                .ok_or_else(conversation_not_found)?;
            if !user.can_write() {
                return Err(DomainError::forbidden(
                    "auditors and analysts read conversations but change nothing",
                ));
            }
            Ok(Caller::User(user))
        }
        Actor::Bot { id } => Ok(Caller::Bot(*id)),
        Actor::System { component } => Ok(Caller::System(component)),
        Actor::Channel { id } => Ok(Caller::Channel(*id)),
        Actor::Contact { .. } => Ok(Caller::Contact),
    }
}

/// The acting user; anyone else may not do this.
fn user_only<'a>(caller: Caller<'a>, what: &str) -> Result<&'a User, DomainError> {
    match caller {
        Caller::User(user) => Ok(user),
        _ => Err(DomainError::forbidden(format!("only users {what}"))),
    }
}

/// A bot may act only on the conversation it handles.
fn require_handling(state: &Conversation, bot_id: Uuid) -> Result<(), DomainError> {
    if state.bot() == Some(bot_id) {
        Ok(())
    } else {
        Err(DomainError::forbidden(
            "the bot is not handling this conversation",
        ))
    }
}

/// Work on a conversation needs it in the inbox, not only in the Filtered view.
fn require_in_inbox(state: &Conversation) -> Result<(), DomainError> {
    if state.status == Status::Filtered {
        return Err(DomainError::rejected(
            "FILTERED",
            None,
            "this conversation is only in the Filtered view; restore its message first",
        ));
    }
    Ok(())
}

fn visibility(owner: Option<Uuid>) -> ConversationVisibility {
    match owner {
        Some(owner_user_id) => ConversationVisibility::Private { owner_user_id },
        None => ConversationVisibility::Shared,
    }
}

fn started(
    conversation_id: Uuid,
    inbox_id: Uuid,
    message: &InboundMessage,
    owner: Option<Uuid>,
) -> DomainEvent {
    ConversationStarted {
        conversation_id,
        inbox_id,
        channel_id: message.channel_id,
        channel_kind: message.channel_kind,
        contact_id: message.contact_id,
        origin: ConversationOrigin::Inbound,
        visibility: visibility(owner),
    }
    .into()
}

fn customer_wrote(conversation_id: Uuid, inbox_id: Uuid, message_id: Uuid) -> DomainEvent {
    ConversationReopened {
        conversation_id,
        inbox_id,
        cause: ReopenCause::CustomerWrote { message_id },
    }
    .into()
}

fn disconnected() -> DomainError {
    DomainError::rejected(
        "CHANNEL_DISCONNECTED",
        Some("channelId"),
        "the channel is disconnected",
    )
}

/// [`ConversationCommand::ReceiveMessage`], borrowed.
struct Inbound<'c> {
    conversation_id: Uuid,
    inbox_id: Uuid,
    channel_id: Uuid,
    message: &'c InboundMessage,
    filter: Option<&'c FilterReason>,
}

fn receive(
    state: &Conversation,
    ctx: &Context<'_>,
    command: Inbound<'_>,
) -> Result<Vec<DomainEvent>, DomainError> {
    let Inbound {
        conversation_id,
        inbox_id,
        channel_id,
        message,
        filter,
    } = command;
    let delivering = match ctx.actor {
        Actor::Channel { id } => *id == channel_id,
        Actor::System { .. } => true,
        Actor::Contact { id } => message.contact_id == Some(*id),
        Actor::User { .. } | Actor::Bot { .. } => false,
    };
    if !delivering {
        return Err(DomainError::forbidden(
            "only the channel delivers inbound messages",
        ));
    }
    if state.knows(message) {
        return Ok(Vec::new());
    }
    let channel = ctx
        .directory
        .channels
        .get(&channel_id)
        .ok_or(DomainError::NotFound { what: "channel" })?;
    if message.channel_id != channel_id || message.channel_kind != channel.config.kind() {
        return Err(DomainError::invalid(
            "message",
            "the message's channel is not the delivering channel",
        ));
    }
    crate::contact::reservable("from", &message.from)?;
    // The sender's name as agents will be shown it (see `display_name`): copied only when that
    // changes it.
    let named;
    let message = match message.from_name.as_deref().map(crate::display_name) {
        Some(name) if name.as_deref() != message.from_name.as_deref() => {
            named = InboundMessage {
                from_name: name,
                ..message.clone()
            };
            &named
        }
        _ => message,
    };
    let is_new = state.status == Status::Empty;
    if !is_new && conversation_id != state.id {
        return Err(DomainError::invalid(
            "conversationId",
            "the message is for another conversation",
        ));
    }
    let expected_inbox = if is_new {
        channel.inbox_id
    } else {
        state.inbox_id
    };
    if inbox_id != expected_inbox {
        return Err(DomainError::invalid(
            "inboxId",
            "a new conversation starts in its channel's inbox, and stays in it",
        ));
    }
    if !channel.connected {
        return Err(disconnected());
    }

    if let Some(reason) = filter {
        // Filtered mail is seen by whoever may see its conversation: a started one's recorded
        // visibility, else the channel's (a private account's mail is its owner's alone).
        let owner = if state.is_started() {
            state.private_owner
        } else {
            channel.private_owner()
        };
        return Ok(vec![
            MessageFiltered {
                conversation_id,
                inbox_id,
                reason: reason.clone(),
                visibility: Some(visibility(owner)),
                message: message.clone(),
            }
            .into(),
        ]);
    }
    let mut events = Vec::with_capacity(2);
    match state.status {
        Status::Empty | Status::Filtered => events.push(started(
            conversation_id,
            inbox_id,
            message,
            channel.private_owner(),
        )),
        Status::Closed => events.push(customer_wrote(
            conversation_id,
            inbox_id,
            message.message_id,
        )),
        Status::Open => {}
    }
    events.push(
        MessageReceived {
            conversation_id,
            inbox_id,
            message: message.clone(),
        }
        .into(),
    );
    Ok(events)
}

fn restore(
    state: &Conversation,
    ctx: &Context<'_>,
    message_id: Uuid,
) -> Result<Vec<DomainEvent>, DomainError> {
    let user = user_only(caller(state, ctx)?, "restore filtered mail")?;
    let Some(message) = state.filtered.get(&message_id) else {
        return Err(if state.message_ids.contains(&message_id) {
            DomainError::rejected(
                "NOT_FILTERED",
                Some("messageId"),
                "this message is already in the inbox",
            )
        } else {
            DomainError::NotFound { what: "message" }
        });
    };
    let (conversation_id, inbox_id) = (state.id, state.inbox_id);
    let mut events = vec![
        FilteredMessageRestored {
            conversation_id,
            inbox_id,
            message_id,
            restored_by_user_id: user.id,
        }
        .into(),
    ];
    match state.status {
        Status::Filtered => events.push(started(
            conversation_id,
            inbox_id,
            message,
            state.effective_private_owner(ctx.directory),
        )),
        Status::Closed => events.push(customer_wrote(conversation_id, inbox_id, message_id)),
        Status::Open | Status::Empty => {}
    }
    events.push(
        MessageReceived {
            conversation_id,
            inbox_id,
            message: message.clone(),
        }
        .into(),
    );
    Ok(events)
}

/// How long after the customer's last message a Messenger page may answer (Meta's standard
/// window), and how long a page with the human-agent tag may.
const MESSAGING_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);
const HUMAN_AGENT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Refuses a Messenger reply Meta would refuse: the customer's last message is older than 24
/// hours (7 days with the human-agent tag). A state folded without times lets it through; the
/// delivery worker checks again when it sends.
fn within_messaging_window(
    state: &Conversation,
    human_agent_tag: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), DomainError> {
    let Some(last) = state.last_customer_message_at else {
        return Ok(());
    };
    let window = if human_agent_tag {
        HUMAN_AGENT_WINDOW
    } else {
        MESSAGING_WINDOW
    };
    if now - last <= window {
        return Ok(());
    }
    Err(DomainError::rejected(
        "OUTSIDE_MESSAGING_WINDOW",
        Some("conversationId"),
        if human_agent_tag {
            "the customer's last message is more than 7 days old: Messenger refuses replies now"
        } else {
            "the customer's last message is more than 24 hours old: Messenger refuses replies \
             now (unless the page has the human-agent tag)"
        },
    ))
}

/// [`ConversationCommand::SendReply`], borrowed.
struct Reply<'c> {
    message_id: Uuid,
    body_text: &'c str,
    body_html: Option<&'c String>,
    subject: Option<&'c String>,
    attachments: &'c [Attachment],
}

fn reply(
    state: &Conversation,
    ctx: &Context<'_>,
    command: Reply<'_>,
) -> Result<Vec<DomainEvent>, DomainError> {
    let author = match caller(state, ctx)? {
        Caller::User(user) => ReplyAuthor::User { id: user.id },
        Caller::Bot(id) => {
            require_handling(state, id)?;
            ReplyAuthor::Bot { id }
        }
        Caller::System(component) => ReplyAuthor::Automation {
            name: component.to_owned(),
        },
        Caller::Channel(_) | Caller::Contact => {
            return Err(DomainError::forbidden(
                "replies are written by users, bots or automations",
            ));
        }
    };
    require_in_inbox(state)?;
    if state.message_ids.contains(&command.message_id) {
        return Ok(Vec::new());
    }
    if command.body_text.trim().is_empty() {
        return Err(DomainError::invalid("bodyText", "must not be empty"));
    }
    let channel = ctx
        .directory
        .channels
        .get(&state.channel_id)
        .ok_or(DomainError::NotFound { what: "channel" })?;
    if !channel.connected {
        return Err(disconnected());
    }
    if let ChannelConfig::Messenger { .. } = &channel.config {
        within_messaging_window(state, channel.messenger.human_agent_tag, ctx.now)?;
    }
    // E-mail goes out from the channel's address; a form's answer goes out by e-mail from its
    // inbox's team address or fallback address.
    let from_address = match &channel.config {
        ChannelConfig::Email { address, .. } => Some(address.as_str()),
        ChannelConfig::Form { .. } => ctx.directory.inbox_email_address(state.inbox_id),
        ChannelConfig::Chat { .. } | ChannelConfig::Messenger { .. } => None,
    };
    let by_email = from_address.is_some()
        && (channel.config.kind() == ChannelKind::Email
            || matches!(state.customer, Some(Identity::Email { .. })));
    if !command.attachments.is_empty() && !by_email {
        return Err(DomainError::invalid(
            "attachments",
            "only replies sent by e-mail carry attachments",
        ));
    }
    let (subject, body_html, email) = match from_address {
        Some(address) if by_email => {
            let Some(Identity::Email { address: to }) = &state.customer else {
                return Err(DomainError::rejected(
                    "NO_RECIPIENT",
                    None,
                    "this conversation has no customer e-mail address to reply to",
                ));
            };
            let subject = command
                .subject
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .or_else(|| state.subject.as_deref().map(reply_subject));
            let headers = state.thread.reply_headers(
                message_id_for(command.message_id, Some(address)),
                vec![to.clone()],
            );
            (subject, command.body_html.cloned(), Some(headers))
        }
        _ => (None, None, None),
    };
    let attachments = if email.is_some() {
        command.attachments.to_vec()
    } else {
        Vec::new()
    };
    Ok(vec![
        ReplySent {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            message_id: command.message_id,
            channel_id: state.channel_id,
            channel_kind: channel.config.kind(),
            author,
            subject,
            body_text: command.body_text.to_owned(),
            body_html,
            email,
            attachments,
        }
        .into(),
    ])
}

fn record_receipt(
    state: &Conversation,
    ctx: &Context<'_>,
    kind: ReceiptKind,
    watermark: chrono::DateTime<chrono::Utc>,
    mids: &[String],
) -> Result<Vec<DomainEvent>, DomainError> {
    match caller(state, ctx)? {
        Caller::Channel(id) if id == state.channel_id => {}
        Caller::System(_) => {}
        _ => {
            return Err(DomainError::forbidden(
                "only the conversation's channel reports receipts",
            ));
        }
    }
    if state.channel_kind != Some(ChannelKind::Messenger) {
        return Err(DomainError::rejected(
            "NOT_MESSENGER",
            None,
            "receipts are recorded for Messenger conversations only",
        ));
    }
    let last = match kind {
        ReceiptKind::Delivered => state.delivered_watermark,
        ReceiptKind::Read => state.read_watermark,
    };
    if last.is_some_and(|last| watermark <= last) {
        return Ok(Vec::new());
    }
    Ok(vec![
        MessengerReceiptReceived {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            channel_id: state.channel_id,
            kind,
            watermark,
            mids: mids.iter().take(100).cloned().collect(),
        }
        .into(),
    ])
}

fn record_delivery(
    state: &Conversation,
    ctx: &Context<'_>,
    message_id: Uuid,
    outcome: &DeliveryOutcome,
) -> Result<Vec<DomainEvent>, DomainError> {
    let reporter = match caller(state, ctx)? {
        Caller::Channel(id) => Some(id),
        Caller::System(_) => None,
        _ => {
            return Err(DomainError::forbidden("only the channel reports delivery"));
        }
    };
    let outbound = state
        .outbound
        .get(&message_id)
        .ok_or(DomainError::NotFound { what: "message" })?;
    if reporter.is_some_and(|id| id != outbound.channel_id) {
        return Err(DomainError::forbidden(
            "the message went out through another channel",
        ));
    }
    let repeated = match (&outbound.delivery, outcome) {
        // A bounce: the relay took the message, the recipient's server returned it later. It
        // fails the message for good, once.
        (
            Delivery::Succeeded,
            DeliveryOutcome::Failed {
                permanent: true, ..
            },
        ) => false,
        (delivery, _) if delivery.is_final() => true,
        (
            Delivery::RetryFailed { reason: last },
            DeliveryOutcome::Failed {
                reason,
                permanent: false,
                ..
            },
        ) => last == reason,
        _ => false,
    };
    if repeated {
        return Ok(Vec::new());
    }
    let (conversation_id, inbox_id, channel_id) = (state.id, state.inbox_id, outbound.channel_id);
    Ok(vec![match outcome {
        DeliveryOutcome::Succeeded {
            provider_message_id,
        } => DeliverySucceeded {
            conversation_id,
            inbox_id,
            message_id,
            channel_id,
            provider_message_id: provider_message_id.clone(),
        }
        .into(),
        DeliveryOutcome::Failed {
            reason,
            permanent,
            status,
        } => DeliveryFailed {
            conversation_id,
            inbox_id,
            message_id,
            channel_id,
            reason: reason.clone(),
            permanent: *permanent,
            status: status.clone(),
        }
        .into(),
    }])
}

fn comment(
    state: &Conversation,
    ctx: &Context<'_>,
    comment_id: Uuid,
    body_text: &str,
    mentions: &[Uuid],
) -> Result<Vec<DomainEvent>, DomainError> {
    let author = user_only(caller(state, ctx)?, "comment")?;
    require_in_inbox(state)?;
    if state.comment_ids.contains(&comment_id) {
        return Ok(Vec::new());
    }
    if body_text.trim().is_empty() {
        return Err(DomainError::invalid("bodyText", "must not be empty"));
    }
    let owner = state.effective_private_owner(ctx.directory);
    let mut mentioned: Vec<Uuid> = Vec::with_capacity(mentions.len());
    for &user_id in mentions {
        if !ctx
            .directory
            .can_see_conversation(user_id, state.inbox_id, owner)
        {
            return Err(DomainError::rejected(
                "MENTION_NO_ACCESS",
                Some("mentions"),
                format!("user {user_id} cannot see this conversation"),
            ));
        }
        if !mentioned.contains(&user_id) {
            mentioned.push(user_id);
        }
    }
    Ok(vec![
        CommentAdded {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            comment_id,
            author_user_id: author.id,
            body_text: body_text.to_owned(),
            mentions: mentioned,
        }
        .into(),
    ])
}

/// Whether `assignee` may be given the conversation: a user who sees it and may write, a team
/// that works its inbox (shared conversations only), or a registered bot.
fn check_assignee(
    state: &Conversation,
    directory: &Directory,
    assignee: &Assignee,
) -> Result<(), DomainError> {
    let owner = state.effective_private_owner(directory);
    let no_access = |message: &str| {
        Err(DomainError::rejected(
            "ASSIGNEE_NO_ACCESS",
            Some("to"),
            message,
        ))
    };
    match assignee {
        Assignee::User { id } => {
            let user = directory
                .user(*id)
                .ok_or(DomainError::NotFound { what: "user" })?;
            if !user.active {
                return Err(DomainError::rejected(
                    "ASSIGNEE_DEACTIVATED",
                    Some("to"),
                    "the user is deactivated",
                ));
            }
            if !user.can_write() {
                return no_access("auditors and analysts take no conversations");
            }
            if !directory.can_see_conversation(*id, state.inbox_id, owner) {
                return no_access("the user cannot see this conversation");
            }
        }
        Assignee::Team { id } => {
            if !directory.teams.contains_key(id) {
                return Err(DomainError::NotFound { what: "team" });
            }
            if owner.is_some() {
                return no_access("a private conversation goes to a user, not a team");
            }
            let works_inbox = directory.inboxes.get(&state.inbox_id).is_some_and(|inbox| {
                inbox.member_teams.contains(id)
                    && inbox
                        .restricted_to
                        .as_ref()
                        .is_none_or(|teams| teams.contains(id))
            });
            if !works_inbox {
                return no_access("the team does not work this inbox");
            }
        }
        Assignee::Bot { id } => {
            if !directory.bots.contains_key(id) {
                return Err(DomainError::NotFound { what: "bot" });
            }
        }
    }
    Ok(())
}

/// The event that gives the conversation to `to`, from whoever has it now.
fn assignment(state: &Conversation, to: &Assignee, reason: AssignmentReason) -> DomainEvent {
    let (conversation_id, inbox_id) = (state.id, state.inbox_id);
    match &state.assignee {
        Some(from) => ConversationReassigned {
            conversation_id,
            inbox_id,
            from: from.clone(),
            to: to.clone(),
            reason,
        }
        .into(),
        None => ConversationAssigned {
            conversation_id,
            inbox_id,
            assignee: to.clone(),
            reason,
        }
        .into(),
    }
}

fn assign(
    state: &Conversation,
    ctx: &Context<'_>,
    to: &Assignee,
) -> Result<Vec<DomainEvent>, DomainError> {
    user_only(caller(state, ctx)?, "assign conversations")?;
    require_in_inbox(state)?;
    if state.assignee.as_ref() == Some(to) {
        return Err(DomainError::rejected(
            "UNCHANGED",
            Some("to"),
            "the conversation is already assigned there",
        ));
    }
    check_assignee(state, ctx.directory, to)?;
    let by = ctx.actor.clone();
    Ok(vec![assignment(state, to, AssignmentReason::Manual { by })])
}

fn unassign(state: &Conversation, ctx: &Context<'_>) -> Result<Vec<DomainEvent>, DomainError> {
    user_only(caller(state, ctx)?, "unassign conversations")?;
    require_in_inbox(state)?;
    let Some(from) = &state.assignee else {
        return Err(DomainError::rejected(
            "NOT_ASSIGNED",
            None,
            "the conversation is not assigned",
        ));
    };
    Ok(vec![
        ConversationUnassigned {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            from: from.clone(),
            reason: AssignmentReason::Manual {
                by: ctx.actor.clone(),
            },
        }
        .into(),
    ])
}

fn release_from_deactivated(
    state: &Conversation,
    ctx: &Context<'_>,
    user_id: Uuid,
) -> Result<Vec<DomainEvent>, DomainError> {
    if !matches!(caller(state, ctx)?, Caller::System(_)) {
        return Err(DomainError::forbidden(
            "only the system releases a deactivated user's conversations",
        ));
    }
    let from = Assignee::User { id: user_id };
    let deactivated = ctx.directory.user(user_id).is_some_and(|u| !u.active);
    if state.status != Status::Open || state.assignee.as_ref() != Some(&from) || !deactivated {
        return Ok(Vec::new());
    }
    Ok(vec![
        ConversationUnassigned {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            from,
            reason: AssignmentReason::AssigneeDeactivated { user_id },
        }
        .into(),
    ])
}

fn apply_routing(
    state: &Conversation,
    ctx: &Context<'_>,
    routing: &Routing,
) -> Result<Vec<DomainEvent>, DomainError> {
    if !matches!(caller(state, ctx)?, Caller::System(_)) {
        return Err(DomainError::forbidden("only the router applies routing"));
    }
    if state.status != Status::Open || state.assignee.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![match routing {
        Routing::Assign { assignee, decision } => {
            assignment(state, assignee, AssignmentReason::Rule(decision.clone()))
        }
        Routing::Queue { decision } => ConversationQueued {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            decision: decision.clone(),
        }
        .into(),
    }])
}

/// Closing and reopening are for users, the bot handling the conversation, and the system
/// (automations such as closing stale conversations).
fn require_status_changer(state: &Conversation, ctx: &Context<'_>) -> Result<(), DomainError> {
    match caller(state, ctx)? {
        Caller::User(_) | Caller::System(_) => Ok(()),
        Caller::Bot(id) => require_handling(state, id),
        Caller::Channel(_) | Caller::Contact => Err(DomainError::forbidden(
            "only users, the conversation's bot and the system change its status",
        )),
    }
}

fn close(state: &Conversation, ctx: &Context<'_>) -> Result<Vec<DomainEvent>, DomainError> {
    require_status_changer(state, ctx)?;
    require_in_inbox(state)?;
    if state.status == Status::Closed {
        return Err(DomainError::rejected(
            "ALREADY_CLOSED",
            None,
            "the conversation is already closed",
        ));
    }
    Ok(vec![
        ConversationClosed {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            by: ctx.actor.clone(),
        }
        .into(),
    ])
}

fn reopen(state: &Conversation, ctx: &Context<'_>) -> Result<Vec<DomainEvent>, DomainError> {
    require_status_changer(state, ctx)?;
    require_in_inbox(state)?;
    if state.status == Status::Open {
        return Err(DomainError::rejected(
            "ALREADY_OPEN",
            None,
            "the conversation is already open",
        ));
    }
    Ok(vec![
        ConversationReopened {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            cause: ReopenCause::Manual {
                by: ctx.actor.clone(),
            },
        }
        .into(),
    ])
}

fn hand_off(
    state: &Conversation,
    ctx: &Context<'_>,
    to: Option<&Assignee>,
) -> Result<Vec<DomainEvent>, DomainError> {
    let acting_bot = match caller(state, ctx)? {
        Caller::User(_) => None,
        Caller::Bot(id) => Some(id),
        Caller::System(_) | Caller::Channel(_) | Caller::Contact => {
            return Err(DomainError::forbidden(
                "only the bot or a user hands a conversation off",
            ));
        }
    };
    require_in_inbox(state)?;
    let Some(bot_id) = state.bot() else {
        return Err(DomainError::rejected(
            "NO_BOT",
            None,
            "no bot is handling this conversation",
        ));
    };
    if let Some(id) = acting_bot {
        require_handling(state, id)?;
    }
    if let Some(to) = to {
        if matches!(to, Assignee::Bot { .. }) {
            return Err(DomainError::invalid(
                "to",
                "a bot hands off to a user or a team",
            ));
        }
        check_assignee(state, ctx.directory, to)?;
    }
    let (conversation_id, inbox_id) = (state.id, state.inbox_id);
    let reason = AssignmentReason::BotHandoff { bot_id };
    let handed_off = BotHandedOff {
        conversation_id,
        inbox_id,
        bot_id,
        to: to.cloned(),
    }
    .into();
    let reassigned = match to {
        Some(to) => assignment(state, to, reason),
        None => ConversationUnassigned {
            conversation_id,
            inbox_id,
            from: Assignee::Bot { id: bot_id },
            reason,
        }
        .into(),
    };
    Ok(vec![handed_off, reassigned])
}

/// Longest accepted reason for an erasure, in characters.
pub const MAX_ERASURE_REASON: usize = 1_000;

fn erased(conversation_id: Uuid) -> DomainError {
    DomainError::rejected(
        "ERASED",
        None,
        format!("conversation {conversation_id} was erased"),
    )
}

/// An admin (with its contact) or the system (the retention reactor) erases the conversation,
/// filtered or not.
fn erase(
    state: &Conversation,
    ctx: &Context<'_>,
    contact_id: Option<Uuid>,
    reason: &str,
) -> Result<Vec<DomainEvent>, DomainError> {
    match caller(state, ctx)? {
        Caller::User(user) if user.is_admin() => {}
        Caller::System(_) => {}
        _ => {
            return Err(DomainError::forbidden(
                "only admins and the retention rules erase conversations",
            ));
        }
    }
    let reason = erasure_reason(reason)?;
    Ok(vec![
        ConversationErased {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            contact_id,
            reason,
        }
        .into(),
    ])
}

/// `reason`, trimmed: required, at most [`MAX_ERASURE_REASON`] characters.
pub fn erasure_reason(reason: &str) -> Result<String, DomainError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(DomainError::invalid(
            "reason",
            "say why (the audit trail keeps it)",
        ));
    }
    if reason.chars().count() > MAX_ERASURE_REASON {
        return Err(DomainError::invalid(
            "reason",
            format!("at most {MAX_ERASURE_REASON} characters"),
        ));
    }
    Ok(reason.to_owned())
}

fn share(state: &Conversation, ctx: &Context<'_>) -> Result<Vec<DomainEvent>, DomainError> {
    // Only the owner and admins see a private conversation, so the access check already limits
    // sharing to them.
    let user = user_only(caller(state, ctx)?, "share conversations")?;
    require_in_inbox(state)?;
    if state.private_owner.is_none() {
        return Err(DomainError::rejected(
            "NOT_PRIVATE",
            None,
            "the conversation is already visible to its inbox",
        ));
    }
    Ok(vec![
        ConversationShared {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            by_user_id: user.id,
        }
        .into(),
    ])
}
