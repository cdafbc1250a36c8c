//! Companies, deals, tickets and associations, with the conversations and records they name
//! located by the service so that the deciders can check them without IO.

use proto_events::event::{RecordKind, RecordRef};
use proto_events::streams;
use switchboard_domain::DomainError;
use switchboard_domain::conversation::{Conversation, Status};
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

    /// Where a conversation lives and who owns it if it is private, or `None` if it does not exist
    /// (an erased one no longer does: nothing new may name it).
    pub(super) async fn conversation_ref(
        &self,
        id: Uuid,
    ) -> Result<Option<ConversationRef>, ServiceError> {
        let (state, _) = self
            .load(
                &streams::conversation(id),
                Conversation::default(),
                Conversation::evolve,
            )
            .await?;
        // A conversation known only from filtered mail is private if its channel is a private
        // account; the aggregate knows which.
        Ok(
            (state.status != Status::Empty && !state.erased).then(|| ConversationRef {
                id,
                inbox_id: state.inbox_id,
                private_owner: state.effective_private_owner(&self.view.directory),
            }),
        )
    }
}
