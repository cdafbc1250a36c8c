//! Chat replies by e-mail (ADR 0006): the agents' replies in chat conversations that the
//! visitor's widget was not handed within the configured delay, for visitors who left an
//! e-mail address.
//!
//! Folded from the log like the pending set: a user's `ReplySent` in a chat conversation is
//! unseen until `ChatRepliesSeen` names it or `ChatReplyEmailed` e-mails it; the conversation
//! is addressed once `ChatVisitorEmailLeft` is in it. An unseen reply of an addressed
//! conversation is due `after` its `ReplySent` (on the service's clock); the worker then asks
//! the conversation to e-mail it (`EmailUnseenReply`), and the domain decides: a reply seen
//! meanwhile writes nothing. The e-mail itself is sent once `ChatReplyEmailed` is folded, as
//! any e-mail reply, with that event's headers and subject.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use proto_events::DomainEvent;
use proto_events::event::{ChannelKind, ReplyAuthor, ReplySent};
use tokio::time::Instant;
use uuid::Uuid;

/// An agent's chat reply the visitor has not seen yet.
#[derive(Debug)]
struct Unseen {
    /// The reply.
    reply: ReplySent,
    /// Its event: what the request to e-mail it is caused by.
    event_id: Uuid,
    correlation_id: Uuid,
    /// When it was written: the delay counts from here.
    written_at: DateTime<Utc>,
    /// Asked to be e-mailed: waiting for the decision to show in the log.
    requested: bool,
    /// Asking failed: not before this.
    retry_at: Option<Instant>,
}

/// A reply to ask the conversation to e-mail.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Due {
    pub(crate) conversation_id: Uuid,
    pub(crate) message_id: Uuid,
    /// Its `ReplySent`: the request's cause.
    pub(crate) event_id: Uuid,
    pub(crate) correlation_id: Uuid,
}

/// The unseen chat replies, and the conversations whose visitor left an address.
#[derive(Debug)]
pub(crate) struct UnseenReplies {
    /// How long a reply may go unseen before it is e-mailed.
    after: chrono::TimeDelta,
    /// How long after a reply e-mailing it still makes sense (the delivery window): an
    /// address left later than that is not used for it.
    window: chrono::TimeDelta,
    replies: HashMap<Uuid, Unseen>,
    addressed: HashSet<Uuid>,
}

impl UnseenReplies {
    pub(crate) fn new(after: Duration, window: Duration) -> UnseenReplies {
        let delta = |d: Duration| chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
        UnseenReplies {
            after: delta(after),
            window: delta(window),
            replies: HashMap::new(),
            addressed: HashSet::new(),
        }
    }

    /// Folds one event in. A `ChatReplyEmailed` gives back the reply as it is to be e-mailed
    /// (its subject and headers set), for the pending set.
    pub(crate) fn fold(
        &mut self,
        event_id: Uuid,
        envelope: &proto_events::Envelope,
    ) -> Option<ReplySent> {
        match &envelope.payload {
            DomainEvent::ReplySent(reply)
                if reply.channel_kind == ChannelKind::Chat
                    && matches!(reply.author, ReplyAuthor::User { .. }) =>
            {
                self.replies.insert(
                    reply.message_id,
                    Unseen {
                        reply: reply.clone(),
                        event_id,
                        correlation_id: envelope.metadata.correlation_id,
                        written_at: envelope.metadata.occurred_at,
                        requested: false,
                        retry_at: None,
                    },
                );
            }
            DomainEvent::ChatVisitorEmailLeft(e) => {
                self.addressed.insert(e.conversation_id);
            }
            DomainEvent::ChatRepliesSeen(e) => {
                for id in &e.message_ids {
                    self.replies.remove(id);
                }
            }
            DomainEvent::ChatReplyEmailed(e) => {
                let mut reply = self.replies.remove(&e.message_id)?.reply;
                reply.subject = Some(e.subject.clone());
                reply.email = Some(e.email.clone());
                return Some(reply);
            }
            _ => {}
        }
        None
    }

    /// When the next reply falls due, on the tokio clock, given the service clock's `now`.
    pub(crate) fn next_due(&self, now: DateTime<Utc>) -> Option<Instant> {
        self.waiting().map(|unseen| self.due_at(unseen, now)).min()
    }

    /// The replies due at `now` (the service clock's), oldest first; they are marked
    /// requested. Replies too old to e-mail in a conversation with no address are forgotten.
    pub(crate) fn take_due(&mut self, now: DateTime<Utc>) -> Vec<Due> {
        let window = self.window;
        let addressed = &self.addressed;
        self.replies.retain(|_, unseen| {
            unseen.requested
                || addressed.contains(&unseen.reply.conversation_id)
                || now - unseen.written_at < window
        });
        let instant = Instant::now();
        let mut due: Vec<(DateTime<Utc>, Uuid)> = self
            .waiting()
            .filter(|unseen| {
                unseen.written_at + self.after <= now
                    && unseen.retry_at.is_none_or(|retry| retry <= instant)
            })
            .map(|unseen| (unseen.written_at, unseen.reply.message_id))
            .collect();
        due.sort();
        due.into_iter()
            .filter_map(|(_, id)| {
                let unseen = self.replies.get_mut(&id)?;
                unseen.requested = true;
                Some(Due {
                    conversation_id: unseen.reply.conversation_id,
                    message_id: id,
                    event_id: unseen.event_id,
                    correlation_id: unseen.correlation_id,
                })
            })
            .collect()
    }

    /// Asking for `message_id` failed for a reason another try may not have: try again after
    /// `delay`.
    pub(crate) fn retry(&mut self, message_id: Uuid, delay: Duration) {
        if let Some(unseen) = self.replies.get_mut(&message_id) {
            unseen.requested = false;
            unseen.retry_at = Some(Instant::now() + delay);
        }
    }

    /// The domain refused to e-mail `message_id`: it will not change its mind.
    pub(crate) fn drop_reply(&mut self, message_id: Uuid) {
        self.replies.remove(&message_id);
    }

    /// Unseen replies of addressed conversations not asked for yet.
    fn waiting(&self) -> impl Iterator<Item = &Unseen> {
        self.replies.values().filter(|unseen| {
            !unseen.requested && self.addressed.contains(&unseen.reply.conversation_id)
        })
    }

    fn due_at(&self, unseen: &Unseen, now: DateTime<Utc>) -> Instant {
        let wait = (unseen.written_at + self.after - now)
            .to_std()
            .unwrap_or_default();
        let due = Instant::now() + wait;
        unseen.retry_at.map_or(due, |retry| due.max(retry))
    }
}
