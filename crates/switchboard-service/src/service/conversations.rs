//! Conversations: inbound messages resolved to their conversation, then every other command on
//! a loaded conversation stream.
//!
//! An inbound message is resolved before it is decided:
//! - **which conversation**: an e-mail threads into the conversation of the first Message-ID in
//!   its `In-Reply-To` or `References` (newest first) that the write view knows on the same
//!   channel (never across channels: a private account's mail must not join a shared
//!   conversation, nor the reverse); chat and
//!   Messenger continue the visitor's conversation on that channel (reopening it when closed); a
//!   form submission always starts a conversation. New conversations get an id derived from what
//!   identifies them (channel and thread root, channel and visitor, channel and message), so two
//!   nodes receiving the same new thread at once write to one stream and the store's version
//!   check serialises them; the aggregate then drops the duplicate.
//! - **which contact**: the holder of the sender's identity reservation, if any;
//! - **whether e-mail filters catch it**: `switchboard_domain::filter::evaluate`, never as spam
//!   for a known contact.

use proto_events::event::{ChannelKind, Identity, InboundMessage};
use proto_events::{DomainEvent, streams};
use switchboard_domain::DomainError;
use switchboard_domain::conversation::{self, Conversation, ConversationCommand};
use switchboard_domain::filter::{self, MailSignals};
use switchboard_store::{Direction, StreamFrom};
use uuid::Uuid;

use super::{CommandService, Outcome, Run};
use crate::ServiceError;

/// The namespace of conversation ids derived from what identifies a new conversation.
const CONVERSATION_IDS: Uuid = Uuid::from_u128(0x5b0a_7d1e_4c3f_4a59_9e21_6c1d_2f8b_a470);

/// How many erased conversations in a row a message looks past for its successor.
const MAX_SUCCESSORS: usize = 16;

/// The conversation that takes over the messages of an erased one.
pub(crate) fn successor(conversation_id: Uuid) -> Uuid {
    Uuid::new_v5(&conversation_id, b"after erasure")
}

impl CommandService {
    /// The conversation that takes `conversation_id`'s messages now: itself, or, when it was
    /// erased, its successor (followed as far as they were erased too): what a chat visitor's
    /// or a Messenger user's derived conversation id stands for. One read of each stream's last
    /// event ([`ConversationErased`](proto_events::event::ConversationErased) is always the last).
    pub async fn current_conversation(&self, conversation_id: Uuid) -> Result<Uuid, ServiceError> {
        let mut id = conversation_id;
        for _ in 0..MAX_SUCCESSORS {
            let last = self
                .store
                .read_stream(
                    &streams::conversation(id),
                    Direction::Backwards,
                    StreamFrom::End,
                    1,
                )
                .await?;
            if last
                .first()
                .is_none_or(|event| event.event_type != "ConversationErased")
            {
                return Ok(id);
            }
            id = successor(id);
        }
        Ok(id)
    }
}

/// The id of a conversation derived from its channel and `key` (`chat:<visitor>`,
/// `messenger:<psid>`, `email:<root Message-ID>`, ...).
fn derived_id(channel_id: Uuid, key: &str) -> Uuid {
    let mut name = channel_id.as_bytes().to_vec();
    name.extend_from_slice(key.as_bytes());
    Uuid::new_v5(&CONVERSATION_IDS, &name)
}

/// The conversation a chat visitor's messages on `channel_id` go to: the same one for every
/// message, before the first one too, so a visitor's client can follow it from the start.
pub fn chat_conversation_id(channel_id: Uuid, visitor_id: &str) -> Uuid {
    derived_id(channel_id, &format!("chat:{visitor_id}"))
}

/// The conversation the Messenger person `psid` has with the page of `channel_id`: where their
/// messages go, and what the page's delivery and read receipts for them are about.
pub fn messenger_conversation_id(channel_id: Uuid, psid: &str) -> Uuid {
    derived_id(channel_id, &format!("messenger:{psid}"))
}

impl CommandService {
    /// Whether the conversation `conversation_id` holds a message with the provider's id
    /// `provider_message_id` (Messenger's `mid`): receiving it again would change nothing.
    pub async fn has_provider_message(
        &self,
        conversation_id: Uuid,
        provider_message_id: &str,
    ) -> Result<bool, ServiceError> {
        let stream = streams::conversation(conversation_id);
        let (found, _) = self
            .load(&stream, false, |found, event| {
                let message = match event {
                    DomainEvent::MessageReceived(e) => &e.message,
                    DomainEvent::MessageFiltered(e) => &e.message,
                    _ => return,
                };
                *found |= message.provider_message_id.as_deref() == Some(provider_message_id);
            })
            .await?;
        Ok(found)
    }
}

impl Run<'_> {
    pub(super) async fn receive_message(
        &self,
        channel_id: Uuid,
        mut message: InboundMessage,
        signals: Option<&MailSignals>,
    ) -> Result<Outcome, ServiceError> {
        let directory = &self.view.directory;
        let channel = directory
            .channels
            .get(&channel_id)
            .ok_or(DomainError::NotFound { what: "channel" })?;
        if message.channel_id != channel_id {
            return Err(DomainError::Invalid {
                field: "channelId".into(),
                message: "the message names another channel".into(),
            }
            .into());
        }
        message.channel_kind = channel.config.kind();
        // The conversation (resolved, then read) and the sender's contact, read at once.
        let conversation = async {
            let mut conversation_id = self
                .resolve_conversation(channel_id, message.channel_kind, &message)
                .await?;
            // A message for an erased conversation (a reply to an old thread, a visitor
            // writing again) starts its successor: derived, so every node picks the same one.
            for _ in 0..MAX_SUCCESSORS {
                let stream = streams::conversation(conversation_id);
                let (state, version) = self
                    .load_envelopes(&stream, Conversation::default(), |state, envelope| {
                        state.evolve_at(&envelope.payload, envelope.metadata.occurred_at);
                    })
                    .await?;
                if !state.erased {
                    return Ok::<_, ServiceError>((conversation_id, stream, state, version));
                }
                conversation_id = successor(conversation_id);
            }
            Err(DomainError::Rejected {
                code: "ERASED",
                field: None,
                message: format!(
                    "conversation {conversation_id} and {MAX_SUCCESSORS} before it were erased"
                ),
            }
            .into())
        };
        let ((conversation_id, stream, state, version), contact_id) =
            tokio::try_join!(conversation, self.contact_of(&message.from))?;
        message.contact_id = contact_id;
        let filter = match (message.channel_kind, signals) {
            (ChannelKind::Email, Some(signals)) => {
                filter::evaluate(directory, channel_id, signals, message.contact_id.is_some())
            }
            _ => None,
        };
        // An existing conversation stays in its inbox even if its channel moved since.
        let inbox_id = if state.is_started() || !state.filtered.is_empty() {
            state.inbox_id
        } else {
            channel.inbox_id
        };
        let command = ConversationCommand::ReceiveMessage {
            conversation_id,
            inbox_id,
            channel_id,
            message,
            filter,
        };
        let events = conversation::decide(&state, &command, &self.context())?;
        self.append(&stream, version, events).await
    }

    /// The conversation an inbound message belongs to (see the module's rules).
    async fn resolve_conversation(
        &self,
        channel_id: Uuid,
        kind: ChannelKind,
        message: &InboundMessage,
    ) -> Result<Uuid, ServiceError> {
        let derived = |key: &str| derived_id(channel_id, key);
        match (kind, &message.email, &message.from) {
            (ChannelKind::Email, Some(email), _) => {
                let index = self.service.store.write_index();
                for cited in email
                    .in_reply_to
                    .iter()
                    .chain(email.references.iter().rev())
                {
                    if let Some(known) = index.email_thread(channel_id, cited).await? {
                        return Ok(known);
                    }
                }
                let root = email
                    .references
                    .first()
                    .or(email.in_reply_to.as_ref())
                    .unwrap_or(&email.message_id);
                Ok(derived(&format!("email:{root}")))
            }
            (ChannelKind::Chat, _, Identity::ChatVisitor { visitor_id }) => {
                Ok(chat_conversation_id(channel_id, visitor_id))
            }
            (ChannelKind::Messenger, _, Identity::Messenger { psid }) => {
                Ok(messenger_conversation_id(channel_id, psid))
            }
            _ => Ok(derived(&format!("message:{}", message.message_id))),
        }
    }

    /// The contact who holds `identity`, if any.
    async fn contact_of(&self, identity: &Identity) -> Result<Option<Uuid>, ServiceError> {
        self.service.contact_holding(identity).await
    }

    pub(super) async fn conversation(
        &self,
        conversation_id: Uuid,
        command: &ConversationCommand,
    ) -> Result<Outcome, ServiceError> {
        if matches!(command, ConversationCommand::ReceiveMessage { .. }) {
            return Err(DomainError::Invalid {
                field: "command".into(),
                message: "inbound messages go through Command::ReceiveMessage, which resolves their conversation".into(),
            }
            .into());
        }
        let stream = streams::conversation(conversation_id);
        let (state, version) = self
            .load_envelopes(&stream, Conversation::default(), |state, envelope| {
                state.evolve_at(&envelope.payload, envelope.metadata.occurred_at);
            })
            .await?;
        let events = conversation::decide(&state, command, &self.context())?;
        self.append(&stream, version, events).await
    }
}
