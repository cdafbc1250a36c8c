//! The conversation's state: what deciding needs to know about one `conversation-<id>` stream,
//! folded from its events with [`Conversation::evolve`].
//!
//! It keeps only what rules read (status, assignee, the bot on it, ids already seen, filtered
//! messages, outbound messages awaiting their delivery outcome, the e-mail thread), never the
//! message bodies shown to people: those belong to read models.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use proto_events::DomainEvent;
use proto_events::event::{
    Assignee, ChannelKind, ConversationOrigin, ConversationVisibility, Identity, InboundMessage,
    UniqueScope,
};
use uuid::Uuid;

use super::threading::EmailThread;
use crate::directory::Directory;

/// Where a conversation stands in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Status {
    /// The stream is empty: the conversation does not exist (yet).
    #[default]
    Empty,
    /// Only filtered mail arrived: the conversation is in the Filtered view and nowhere else,
    /// until a message is restored or an unfiltered one arrives.
    Filtered,
    /// Started and open: its current cycle runs.
    Open,
    /// Closed: its last cycle ended; the customer writing again reopens it.
    Closed,
}

/// Where an outbound message stands with its channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Handed to the channel; no outcome yet.
    Awaiting,
    /// The last attempt failed temporarily; the channel may still retry and succeed.
    RetryFailed {
        /// What the provider said that time.
        reason: String,
    },
    /// The channel accepted it. Final.
    Succeeded,
    /// It cannot be delivered. Final.
    Failed,
}

impl Delivery {
    /// Whether no further outcome can follow.
    pub fn is_final(&self) -> bool {
        matches!(self, Delivery::Succeeded | Delivery::Failed)
    }
}

/// An outbound message of the conversation and its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Outbound {
    /// The channel it went out through.
    pub channel_id: Uuid,
    /// Its outcome so far.
    pub delivery: Delivery,
}

/// One conversation, folded from its stream `conversation-<id>`.
///
/// The default value is the empty stream: a conversation that does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    /// The conversation's id; nil while the stream is empty.
    pub id: Uuid,
    /// The inbox it started in. It never changes, even if its channel moves.
    pub inbox_id: Uuid,
    /// The channel it came through, and replies go out through.
    pub channel_id: Uuid,
    /// That channel's kind, once known.
    pub channel_kind: Option<ChannelKind>,
    /// The customer's contact, once recognised.
    pub contact_id: Option<Uuid>,
    /// Inbound or outbound, once started.
    pub origin: Option<ConversationOrigin>,
    /// The owner of the private e-mail account it came through; `None` when shared with its inbox
    /// (while it is only filtered no visibility is recorded yet: see
    /// [`Conversation::effective_private_owner`]).
    pub private_owner: Option<Uuid>,
    /// Open, closed, filtered only, or not there.
    pub status: Status,
    /// Erased ([`ConversationErased`](proto_events::event::ConversationErased)): it refuses
    /// every command.
    pub erased: bool,
    /// Who it is assigned to.
    pub assignee: Option<Assignee>,
    /// Whether routing found nobody and it waits to be routed again.
    pub queued: bool,
    /// The last bot that handed it off to humans, if one did.
    pub handed_off_by_bot: Option<Uuid>,
    /// Where the customer is reached: the sender of the last inbound message (or the recipient
    /// of an outbound conversation's first e-mail).
    pub customer: Option<Identity>,
    /// Who wrote its first inbound message, filtered or not: whose conversation it is when no
    /// contact was recognised (erasure asks).
    pub first_sender: Option<Identity>,
    /// The contact its first sender was recognised as (by the first of their messages that
    /// was): the conversation's contact, whoever else writes in it or starts it.
    pub first_sender_contact: Option<Uuid>,
    /// The subject of its first message that had one; replies answer `Re:` it.
    pub subject: Option<String>,
    /// Our ids of every message in it: inbound, filtered and outbound.
    pub message_ids: BTreeSet<Uuid>,
    /// Providers' ids of inbound messages (Messenger `mid`s), to drop redelivered webhooks.
    pub provider_message_ids: BTreeSet<String>,
    /// `Message-ID`s of inbound e-mails, to drop mail fetched twice.
    pub email_message_ids: BTreeSet<String>,
    /// Filtered messages not restored yet, by message id, kept whole so a restore can replay them.
    pub filtered: BTreeMap<Uuid, InboundMessage>,
    /// Outbound messages and their delivery, by message id.
    pub outbound: BTreeMap<Uuid, Outbound>,
    /// Ids of its internal comments.
    pub comment_ids: BTreeSet<Uuid>,
    /// Its e-mail thread, for the headers of replies.
    pub thread: EmailThread,
    /// When the customer's last message was received (its event's `occurred_at`), when the
    /// state was folded with times ([`Conversation::evolve_at`]): Messenger's reply windows
    /// count from it.
    pub last_customer_message_at: Option<DateTime<Utc>>,
    /// The latest Messenger delivery receipt's watermark.
    pub delivered_watermark: Option<DateTime<Utc>>,
    /// The latest Messenger read receipt's watermark.
    pub read_watermark: Option<DateTime<Utc>>,
    /// The e-mail address a chat visitor left last, for replies they do not see.
    pub visitor_email: Option<String>,
    /// Chat replies the visitor's widget was not handed yet, and that were not e-mailed.
    pub unseen_replies: BTreeSet<Uuid>,
}

impl Conversation {
    /// Folds a history into a conversation.
    pub fn from_history<'e>(events: impl IntoIterator<Item = &'e DomainEvent>) -> Conversation {
        let mut state = Conversation::default();
        for event in events {
            state.evolve(event);
        }
        state
    }

    /// Whether a `ConversationStarted` is in the stream: the conversation is in its inbox.
    pub fn is_started(&self) -> bool {
        matches!(self.status, Status::Open | Status::Closed)
    }

    /// The private owner access rules apply: the recorded one once started; while only filtered,
    /// the owner of the channel the mail came through, as `ConversationStarted` will record it.
    pub fn effective_private_owner(&self, directory: &Directory) -> Option<Uuid> {
        match self.status {
            Status::Filtered => directory
                .channels
                .get(&self.channel_id)
                .and_then(|channel| channel.private_owner()),
            _ => self.private_owner,
        }
    }

    /// The bot handling the conversation: the bot it is assigned to, if any.
    pub fn bot(&self) -> Option<Uuid> {
        match self.assignee {
            Some(Assignee::Bot { id }) => Some(id),
            _ => None,
        }
    }

    /// Whether this inbound message is already in the conversation: same id, same provider id,
    /// or same e-mail `Message-ID`. Channels deliver at least once; the second copy is dropped.
    pub fn knows(&self, message: &InboundMessage) -> bool {
        self.message_ids.contains(&message.message_id)
            || message
                .provider_message_id
                .as_ref()
                .is_some_and(|id| self.provider_message_ids.contains(id))
            || message
                .email
                .as_ref()
                .is_some_and(|email| self.email_message_ids.contains(&email.message_id))
    }

    /// Folds one event in with the time it happened (its metadata's `occurred_at`), which the
    /// payload does not carry: the time of the customer's last message is kept.
    pub fn evolve_at(&mut self, event: &DomainEvent, occurred_at: DateTime<Utc>) {
        if matches!(event, DomainEvent::MessageReceived(_)) {
            self.last_customer_message_at = Some(occurred_at);
        }
        self.evolve(event);
    }

    /// Folds one event of the conversation's stream in. Events of other kinds are ignored.
    pub fn evolve(&mut self, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::ConversationErased(_) => self.erased = true,
            E::ConversationStarted(e) => {
                self.id = e.conversation_id;
                self.inbox_id = e.inbox_id;
                self.channel_id = e.channel_id;
                self.channel_kind = Some(e.channel_kind);
                // Started by a message after filtered mail from someone else (a contact copied
                // on the thread, restored or let through): still the first sender's.
                self.contact_id = match self.first_sender {
                    Some(_) => self.first_sender_contact,
                    None => e.contact_id,
                };
                self.origin = Some(e.origin);
                self.private_owner = match e.visibility {
                    ConversationVisibility::Shared => None,
                    ConversationVisibility::Private { owner_user_id } => Some(owner_user_id),
                };
                self.status = Status::Open;
            }
            E::MessageReceived(e) => {
                let message = &e.message;
                let first = self
                    .first_sender
                    .get_or_insert_with(|| message.from.clone());
                // Only its first sender's contact becomes the conversation's: someone else
                // writing in it (copied on the thread) does not make it theirs.
                let from_first = same_identity(first, &message.from);
                if from_first {
                    self.first_sender_contact = self.first_sender_contact.or(message.contact_id);
                }
                self.filtered.remove(&message.message_id);
                self.remember(message);
                // A message whose sender was erased reads blank: replies still go to the last
                // sender that is not.
                if !is_blank(&message.from) {
                    self.customer = Some(message.from.clone());
                }
                if self.contact_id.is_none() && from_first {
                    self.contact_id = message.contact_id;
                }
                if self.subject.is_none() {
                    self.subject = message.subject.clone();
                }
                if let Some(headers) = message.email.as_ref().filter(|h| !h.message_id.is_empty()) {
                    self.thread.inbound(headers);
                }
            }
            E::MessageFiltered(e) => {
                let first = self
                    .first_sender
                    .get_or_insert_with(|| e.message.from.clone());
                if same_identity(first, &e.message.from) {
                    self.first_sender_contact = self.first_sender_contact.or(e.message.contact_id);
                }
                if self.status == Status::Empty {
                    self.id = e.conversation_id;
                    self.inbox_id = e.inbox_id;
                    self.channel_id = e.message.channel_id;
                    self.channel_kind = Some(e.message.channel_kind);
                    self.status = Status::Filtered;
                }
                self.remember(&e.message);
                self.filtered
                    .insert(e.message.message_id, e.message.clone());
            }
            E::FilteredMessageRestored(e) => {
                self.filtered.remove(&e.message_id);
            }
            E::ReplySent(e) => {
                self.message_ids.insert(e.message_id);
                self.outbound.insert(
                    e.message_id,
                    Outbound {
                        channel_id: e.channel_id,
                        delivery: Delivery::Awaiting,
                    },
                );
                if self.subject.is_none() {
                    self.subject = e.subject.clone();
                }
                // Only users' replies may go out by e-mail: bots answer while the visitor is
                // there (ADR 0006).
                if e.channel_kind == ChannelKind::Chat
                    && matches!(e.author, proto_events::event::ReplyAuthor::User { .. })
                {
                    self.unseen_replies.insert(e.message_id);
                }
                if let Some(headers) = &e.email {
                    if self.customer.is_none() {
                        self.customer = headers.to.first().map(|address| Identity::Email {
                            address: address.clone(),
                        });
                    }
                    self.thread.outbound(headers);
                }
            }
            E::MessengerReceiptReceived(e) => {
                let last = match e.kind {
                    proto_events::event::ReceiptKind::Delivered => &mut self.delivered_watermark,
                    proto_events::event::ReceiptKind::Read => &mut self.read_watermark,
                };
                *last = Some(e.watermark);
            }
            E::ChatVisitorEmailLeft(e) => {
                self.visitor_email = Some(e.address.clone());
            }
            E::ChatRepliesSeen(e) => {
                for id in &e.message_ids {
                    self.unseen_replies.remove(id);
                }
            }
            E::ChatReplyEmailed(e) => {
                self.unseen_replies.remove(&e.message_id);
                self.thread.outbound(&e.email);
            }
            E::DeliverySucceeded(e) => {
                if let Some(outbound) = self.outbound.get_mut(&e.message_id) {
                    outbound.delivery = Delivery::Succeeded;
                }
            }
            E::DeliveryFailed(e) => {
                if let Some(outbound) = self.outbound.get_mut(&e.message_id) {
                    outbound.delivery = if e.permanent {
                        Delivery::Failed
                    } else {
                        Delivery::RetryFailed {
                            reason: e.reason.clone(),
                        }
                    };
                }
            }
            E::CommentAdded(e) => {
                self.comment_ids.insert(e.comment_id);
            }
            E::ConversationAssigned(e) => {
                self.assignee = Some(e.assignee.clone());
                self.queued = false;
            }
            E::ConversationReassigned(e) => {
                self.assignee = Some(e.to.clone());
                self.queued = false;
            }
            E::ConversationUnassigned(_) => {
                self.assignee = None;
            }
            E::ConversationQueued(_) => {
                self.queued = true;
            }
            E::BotHandedOff(e) => {
                self.handed_off_by_bot = Some(e.bot_id);
            }
            E::ConversationClosed(_) => {
                self.status = Status::Closed;
            }
            E::ConversationReopened(_) => {
                self.status = Status::Open;
            }
            E::ConversationShared(_) => {
                self.private_owner = None;
            }
            _ => {}
        }
    }

    /// Records the ids an inbound message is known by.
    fn remember(&mut self, message: &InboundMessage) {
        self.message_ids.insert(message.message_id);
        if let Some(id) = &message.provider_message_id {
            self.provider_message_ids.insert(id.clone());
        }
        if let Some(email) = &message.email {
            self.email_message_ids.insert(email.message_id.clone());
        }
    }
}

/// Whether two identities are the same as reservations compare them (scope and normalised
/// value: e-mail addresses without regard to case).
fn same_identity(a: &Identity, b: &Identity) -> bool {
    let ((a_scope, a_value), (b_scope, b_value)) =
        (UniqueScope::of_identity(a), UniqueScope::of_identity(b));
    a_scope == b_scope && a_scope.normalise(a_value) == b_scope.normalise(b_value)
}

/// Whether `identity` is blank: its value was redacted (its person erased).
fn is_blank(identity: &Identity) -> bool {
    UniqueScope::of_identity(identity).1.trim().is_empty()
}
