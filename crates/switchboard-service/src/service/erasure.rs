//! What an erasure does besides its event (ADR 0007), shared by a contact's erasure and one
//! conversation's: deleting the files (attachments, original e-mails) that only erased
//! conversations reference; and erasing one conversation on its own
//! ([`Command::EraseConversation`](crate::Command::EraseConversation), which the retention
//! reactor sends), its files and its key with it.

use std::collections::BTreeSet;
use std::sync::Arc;

use proto_events::streams;
use switchboard_domain::conversation::{Conversation, ConversationCommand};
use uuid::Uuid;

use super::{CommandService, Outcome, Run};
use crate::ServiceError;
use crate::subject::{self, Scan};

impl Run<'_> {
    /// Records the conversation's `ConversationErased`, naming no contact, as the command's main
    /// append, decided as every conversation command is: only admins and the system may, and a
    /// conversation erased before refuses it (`ERASED`). Its files and key go after it
    /// ([`CommandService::finish_conversation_erasure`]).
    pub(super) async fn erase_conversation_alone(
        &self,
        conversation_id: Uuid,
        reason: &str,
    ) -> Result<Outcome, ServiceError> {
        let command = ConversationCommand::Erase {
            contact_id: None,
            reason: reason.to_owned(),
        };
        self.conversation(conversation_id, &command).await
    }
}

impl CommandService {
    /// Reads the whole log for [`Command::EraseConversation`]'s `prepared`: every file
    /// reference and every erased conversation, without holding the write view. One read
    /// serves any number of erasures when it is brought up to date between them
    /// ([`Scan::extend`] with [`subject::scan_after`]), as the retention reactor does.
    ///
    /// [`Command::EraseConversation`]: crate::Command::EraseConversation
    pub async fn prepare_conversation_erasure(&self) -> Result<Arc<Scan>, ServiceError> {
        Ok(Arc::new(
            subject::scan(self.store.as_ref(), &BTreeSet::new(), &[]).await?,
        ))
    }

    /// Deletes the files `scan` shows referenced by `erased` conversations alone (or by them,
    /// conversations erased before and messages of the erased `senders` anywhere), once those
    /// are erased. What was referenced since the scan
    /// (the same file sent by someone else meanwhile, stored once by its name) is kept. Between
    /// that last read and the delete the window is one round trip; a reference made in it loses
    /// the file (ADR 0007).
    pub(super) async fn delete_files_only_of(
        &self,
        scan: &Scan,
        erased: &BTreeSet<Uuid>,
        senders: &BTreeSet<Uuid>,
    ) -> Result<(), ServiceError> {
        let mut blobs = scan.blobs_only_of(erased, senders);
        if blobs.is_empty() {
            return Ok(());
        }
        let since =
            subject::scan_after(self.store.as_ref(), scan.head, &BTreeSet::new(), &[]).await?;
        blobs.retain(|name| !since.blobs.contains_key(name));
        self.store.blobs().delete(&blobs).await?;
        Ok(())
    }

    /// Which of `conversations` (erased) were seen through to their key's destruction, the last
    /// step of an erasure: `None` when this service destroys no keys
    /// ([`CommandService::with_erasure_keys`]), and so leaves no record of it.
    pub async fn erasures_seen_through(
        &self,
        conversations: &[Uuid],
    ) -> Result<Option<Vec<bool>>, ServiceError> {
        match &self.erasure_keys {
            Some(keyring) => Ok(Some(keyring.were_erased(conversations).await?)),
            None => Ok(None),
        }
    }

    /// What follows a conversation's erasure on its own, once its `ConversationErased` is
    /// durable: its files that no conversation left standing references are deleted (read from
    /// `prepared`, else from the whole log), then its key is destroyed (with
    /// [`CommandService::with_erasure_keys`]), so what was sealed under the conversation reads
    /// as erased. Both steps are idempotent: it runs after the erasure, after a repeat of it and
    /// after a retry refused as `ERASED`, since an attempt may have stopped between the event and
    /// here. Nothing when the conversation is not erased.
    pub(super) async fn finish_conversation_erasure(
        &self,
        conversation_id: Uuid,
        prepared: Option<&Scan>,
    ) -> Result<(), ServiceError> {
        let (state, _) = self
            .load(
                &streams::conversation(conversation_id),
                Conversation::default(),
                Conversation::evolve,
            )
            .await?;
        if !state.erased {
            return Ok(());
        }
        let read;
        let scan = match prepared {
            Some(prepared) => prepared,
            None => {
                read = subject::scan(self.store.as_ref(), &BTreeSet::new(), &[]).await?;
                &read
            }
        };
        // Before the key: the files' names are sealed under it when the conversation has no
        // contact.
        self.delete_files_only_of(scan, &BTreeSet::from([conversation_id]), &BTreeSet::new())
            .await?;
        if let Some(keyring) = &self.erasure_keys {
            keyring.destroy(conversation_id).await?;
        }
        Ok(())
    }
}
