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
//! any e-mail reply through the e-mail channel that event names, with its headers and subject.
//!
//! One window for everything: a reply is asked for, and sent, only while less than the
//! delivery window (`retry_for`) has passed since its `ReplySent` (the worker's `retry_for`
//! check counts from there too). So a restart never mails old replies in a burst, and replies
//! older than the window are forgotten (pruned as the log is folded, on every node). A refusal
//! that may change (the inbox has no address to send from yet) is asked again with backoff
//! until the window ends, then given up with a warning; one that cannot is given up at once,
//! also with a warning.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use proto_events::DomainEvent;
use proto_events::event::{ChannelKind, ReplyAuthor, ReplySent};
use tokio::time::Instant;
use uuid::Uuid;

/// Events folded between two prunings of the replies past their window.
const PRUNE_EVERY: u64 = 1_024;

/// An agent's chat reply the visitor has not seen yet.
#[derive(Debug)]
struct Unseen {
    /// The reply.
    reply: ReplySent,
    /// Its event: what the request to e-mail it is caused by.
    event_id: Uuid,
    correlation_id: Uuid,
    /// When it was written (its `ReplySent`): the delay and the window count from here.
    written_at: DateTime<Utc>,
    /// Asked to be e-mailed: waiting for the decision to show in the log.
    requested: bool,
    /// Asking failed: not before this.
    retry_at: Option<Instant>,
    /// How many times asking failed, for the backoff.
    failures: u32,
    /// The last refusal, said when the reply is given up.
    refused: Option<String>,
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

/// A chat reply to send by e-mail, as `ChatReplyEmailed` decided it.
#[derive(Debug)]
pub(crate) struct ToEmail {
    /// The reply as an e-mail reply of the channel it goes out through: that channel's address
    /// and SMTP server, the event's subject and headers.
    pub(crate) reply: ReplySent,
    /// Its `ReplySent`'s time: the delivery window counts from there.
    pub(crate) written_at: DateTime<Utc>,
}

/// The unseen chat replies, and the conversations whose visitor left an address.
#[derive(Debug)]
pub(crate) struct UnseenReplies {
    /// How long a reply may go unseen before it is e-mailed.
    after: chrono::TimeDelta,
    /// How long after a reply e-mailing it still makes sense (the delivery window).
    window: chrono::TimeDelta,
    replies: HashMap<Uuid, Unseen>,
    addressed: HashSet<Uuid>,
    folded: u64,
}

impl UnseenReplies {
    pub(crate) fn new(after: Duration, window: Duration) -> UnseenReplies {
        let delta = |d: Duration| chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
        UnseenReplies {
            after: delta(after),
            window: delta(window),
            replies: HashMap::new(),
            addressed: HashSet::new(),
            folded: 0,
        }
    }

    /// Folds one event in. A `ChatReplyEmailed` gives back the reply as it is to be e-mailed,
    /// for the pending set. Every [`PRUNE_EVERY`] events, replies whose window had passed by
    /// the event's time are forgotten (unless asked for), so memory stays bounded on nodes
    /// that never hold the lease.
    pub(crate) fn fold(
        &mut self,
        event_id: Uuid,
        envelope: &proto_events::Envelope,
    ) -> Option<ToEmail> {
        self.folded += 1;
        if self.folded.is_multiple_of(PRUNE_EVERY) {
            self.prune(envelope.metadata.occurred_at);
        }
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
                        failures: 0,
                        refused: None,
                    },
                );
            }
            DomainEvent::ChatVisitorEmailLeft(e) => {
                self.addressed.insert(e.conversation_id);
            }
            // Nothing goes out to a person erased, nor from their conversation.
            DomainEvent::ConversationErased(e) => {
                self.addressed.remove(&e.conversation_id);
                self.replies
                    .retain(|_, unseen| unseen.reply.conversation_id != e.conversation_id);
            }
            DomainEvent::ChatRepliesSeen(e) => {
                for id in &e.message_ids {
                    self.replies.remove(id);
                }
            }
            DomainEvent::ChatReplyEmailed(e) => {
                let unseen = self.replies.remove(&e.message_id)?;
                let mut reply = unseen.reply;
                // It goes out as an e-mail of the channel the domain chose when it decided,
                // whatever the inbox's addresses are by the time it is sent.
                reply.channel_id = e.email_channel_id;
                reply.channel_kind = ChannelKind::Email;
                reply.subject = Some(e.subject.clone());
                reply.email = Some(e.email.clone());
                return Some(ToEmail {
                    reply,
                    written_at: unseen.written_at,
                });
            }
            _ => {}
        }
        None
    }

    /// Forgets the replies not asked for whose window has passed at `now`; those refused
    /// before are given up with a warning.
    fn prune(&mut self, now: DateTime<Utc>) {
        let window = self.window;
        self.replies.retain(|id, unseen| {
            let keep = unseen.requested || now - unseen.written_at < window;
            if !keep && let Some(refused) = &unseen.refused {
                tracing::warn!(message_id = %id, refused = %refused,
                    "an unseen chat reply was not e-mailed within the delivery window; given up");
            }
            keep
        });
    }

    /// When the next reply falls due, on the tokio clock, given the service clock's `now`.
    pub(crate) fn next_due(&self, now: DateTime<Utc>) -> Option<Instant> {
        self.waiting(now)
            .map(|unseen| self.due_at(unseen, now))
            .min()
    }

    /// The replies due at `now` (the service clock's), oldest first; they are marked
    /// requested. Replies whose window has passed are forgotten first, never asked for.
    pub(crate) fn take_due(&mut self, now: DateTime<Utc>) -> Vec<Due> {
        self.prune(now);
        let instant = Instant::now();
        let mut due: Vec<(DateTime<Utc>, Uuid)> = self
            .waiting(now)
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

    /// Asking for `message_id` failed, or was refused for a reason that may change
    /// (`refused`): ask again after `backoff(failures)`, until the window ends.
    pub(crate) fn retry(
        &mut self,
        message_id: Uuid,
        refused: Option<String>,
        backoff: impl FnOnce(u32) -> Duration,
    ) {
        if let Some(unseen) = self.replies.get_mut(&message_id) {
            unseen.requested = false;
            unseen.failures += 1;
            unseen.retry_at = Some(Instant::now() + backoff(unseen.failures));
            if refused.is_some() {
                unseen.refused = refused;
            }
        }
    }

    /// Asks again for `message_id` as soon as it is due (the lease went elsewhere meanwhile).
    pub(crate) fn release(&mut self, message_id: Uuid) {
        if let Some(unseen) = self.replies.get_mut(&message_id) {
            unseen.requested = false;
        }
    }

    /// The domain refused to e-mail `message_id` for a reason that will not change.
    pub(crate) fn give_up(&mut self, message_id: Uuid) {
        self.replies.remove(&message_id);
    }

    /// Unseen replies of addressed conversations, within their window at `now`, not asked for
    /// yet.
    fn waiting(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Unseen> {
        self.replies.values().filter(move |unseen| {
            !unseen.requested
                && now - unseen.written_at < self.window
                && self.addressed.contains(&unseen.reply.conversation_id)
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

#[cfg(test)]
mod tests {
    use proto_events::event::{
        ChatReplyEmailed, ChatVisitorEmailLeft, EmailHeaders, ReplyAuthor, ReplySent,
    };
    use proto_events::{Actor, Envelope, Metadata};

    use super::*;

    const CONVERSATION: Uuid = Uuid::from_u128(1);
    const MAIL: Uuid = Uuid::from_u128(2);

    fn at(payload: impl Into<DomainEvent>, occurred_at: DateTime<Utc>) -> Envelope {
        Envelope {
            event_id: Uuid::now_v7(),
            stream: "conversation".into(),
            stream_version: 1,
            position: 1,
            event_type: String::new(),
            schema_version: 1,
            recorded_at: occurred_at,
            metadata: Metadata {
                actor: Actor::User { id: Uuid::nil() },
                correlation_id: Uuid::nil(),
                causation_id: Uuid::nil(),
                occurred_at,
                idempotency_key: None,
                command_fingerprint: None,
            },
            payload: payload.into(),
        }
    }

    fn reply(message_id: Uuid) -> ReplySent {
        ReplySent {
            conversation_id: CONVERSATION,
            inbox_id: Uuid::nil(),
            message_id,
            channel_id: Uuid::from_u128(3),
            channel_kind: ChannelKind::Chat,
            author: ReplyAuthor::User { id: Uuid::nil() },
            subject: None,
            body_text: "Found it.".into(),
            body_html: None,
            email: None,
            attachments: Vec::new(),
        }
    }

    /// An addressed conversation with a reply written at `written_at`; e-mailed after 10 s,
    /// within an hour.
    fn unseen(written_at: DateTime<Utc>) -> (UnseenReplies, Uuid) {
        let mut unseen = UnseenReplies::new(Duration::from_secs(10), Duration::from_secs(3_600));
        let left = ChatVisitorEmailLeft {
            conversation_id: CONVERSATION,
            inbox_id: Uuid::nil(),
            address: "visitor@prospect.test".into(),
        };
        unseen.fold(Uuid::now_v7(), &at(left, written_at));
        let id = Uuid::now_v7();
        unseen.fold(Uuid::now_v7(), &at(reply(id), written_at));
        (unseen, id)
    }

    fn ids(due: &[Due]) -> Vec<Uuid> {
        due.iter().map(|due| due.message_id).collect()
    }

    #[test]
    fn a_refused_reply_is_asked_again_until_its_window_ends() {
        let now = Utc::now();
        let (mut unseen, id) = unseen(now - chrono::TimeDelta::minutes(1));
        assert_eq!(ids(&unseen.take_due(now)), [id]);
        unseen.retry(id, Some("NO_SENDER_ADDRESS".into()), |_| Duration::ZERO);
        assert_eq!(ids(&unseen.take_due(now)), [id], "asked again");
        unseen.retry(id, Some("NO_SENDER_ADDRESS".into()), |_| Duration::ZERO);
        assert!(
            unseen
                .take_due(now + chrono::TimeDelta::hours(1))
                .is_empty()
        );
        assert!(unseen.replies.is_empty(), "given up once the window ended");
    }

    #[test]
    fn a_reply_older_than_the_window_is_never_asked_for() {
        let now = Utc::now();
        let (mut unseen, _) = unseen(now - chrono::TimeDelta::hours(2));
        assert_eq!(unseen.next_due(now), None);
        assert!(unseen.take_due(now).is_empty());
    }

    #[test]
    fn replies_past_their_window_are_pruned_as_the_log_is_folded() {
        let now = Utc::now();
        let (mut unseen, _) = unseen(now - chrono::TimeDelta::hours(2));
        for _ in 0..PRUNE_EVERY {
            let other = ChatVisitorEmailLeft {
                conversation_id: Uuid::from_u128(9),
                inbox_id: Uuid::nil(),
                address: "other@prospect.test".into(),
            };
            unseen.fold(Uuid::now_v7(), &at(other, now));
        }
        assert!(unseen.replies.is_empty());
    }

    #[test]
    fn an_emailed_reply_keeps_its_time_and_goes_out_through_the_chosen_channel() {
        let written = Utc::now() - chrono::TimeDelta::minutes(5);
        let (mut unseen, id) = unseen(written);
        let emailed = ChatReplyEmailed {
            conversation_id: CONVERSATION,
            inbox_id: Uuid::nil(),
            message_id: id,
            email_channel_id: MAIL,
            subject: "Your chat with Support".into(),
            email: EmailHeaders {
                message_id: format!("{id}@acme.test"),
                in_reply_to: None,
                references: Vec::new(),
                to: vec!["visitor@prospect.test".into()],
                cc: Vec::new(),
            },
        };
        let to_email = unseen
            .fold(Uuid::now_v7(), &at(emailed, Utc::now()))
            .expect("to e-mail");
        assert_eq!(to_email.written_at, written);
        assert_eq!(to_email.reply.channel_id, MAIL);
        assert_eq!(to_email.reply.channel_kind, ChannelKind::Email);
    }
}
