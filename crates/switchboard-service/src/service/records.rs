//! Companies, deals, tickets and associations, with the conversations and records they name
//! located by the service so that the deciders can check them without IO.

use proto_events::event::{ConversationVisibility, RecordKind, RecordRef};
use proto_events::{DomainEvent, streams};
use switchboard_domain::DomainError;
use switchboard_domain::record::{self, ConversationRef, Counterpart, Record, RecordCommand};
use uuid::Uuid;

use super::{Outcome, Run};
use crate::ServiceError;

impl Run<'_> {
    /// Decides a record command on the stream it names.
    pub(super) async fn record(&self, command: RecordCommand) -> Result<Outcome, ServiceError> {
        let stream = command.stream();
        let (state, version) = self
            .load(&stream, Record::default(), Record::evolve)
            .await?;
        let events = record::decide(&state, &command, &self.context())?;
        self.append(&stream, version, events).await
    }

    /// The conversation a ticket is created from, which must exist.
    pub(super) async fn ticket_conversation(
        &self,
        conversation_id: Option<Uuid>,
    ) -> Result<Option<ConversationRef>, ServiceError> {
        match conversation_id {
            Some(id) => Ok(Some(self.conversation_ref(id).await?.ok_or(
                DomainError::NotFound {
                    what: "conversation",
                },
            )?)),
            None => Ok(None),
        }
    }

    /// What exists at `reference`, for an association.
    pub(super) async fn counterpart(
        &self,
        reference: RecordRef,
    ) -> Result<Counterpart, ServiceError> {
        if reference.kind == RecordKind::Conversation {
            return Ok(match self.conversation_ref(reference.id).await? {
                Some(conversation) => Counterpart::Conversation(conversation),
                None => Counterpart::Missing,
            });
        }
        let (state, _) = self
            .load(
                &record::stream_of(reference),
                Record::default(),
                Record::evolve,
            )
            .await?;
        Ok(state.counterpart())
    }

    /// Where a conversation lives and who owns it if it is private, or `None` if it does not exist.
    pub(super) async fn conversation_ref(
        &self,
        id: Uuid,
    ) -> Result<Option<ConversationRef>, ServiceError> {
        let stream = streams::conversation(id);
        let directory = &self.view.directory;
        let (found, _) = self
            .load(
                &stream,
                None,
                |found: &mut Option<ConversationRef>, event| match event {
                    DomainEvent::ConversationStarted(e) => {
                        let private_owner = match &e.visibility {
                            ConversationVisibility::Private { owner_user_id } => {
                                Some(*owner_user_id)
                            }
                            ConversationVisibility::Shared => None,
                        };
                        *found = Some(ConversationRef {
                            id,
                            inbox_id: e.inbox_id,
                            private_owner,
                        });
                    }
                    DomainEvent::MessageFiltered(e) if found.is_none() => {
                        // Known only from filtered mail: private if its channel is a private account.
                        let private_owner = directory
                            .channels
                            .get(&e.message.channel_id)
                            .and_then(|c| c.private_owner());
                        *found = Some(ConversationRef {
                            id,
                            inbox_id: e.inbox_id,
                            private_owner,
                        });
                    }
                    DomainEvent::ConversationShared(_) => {
                        if let Some(found) = found {
                            found.private_owner = None;
                        }
                    }
                    _ => {}
                },
            )
            .await?;
        Ok(found)
    }
}
