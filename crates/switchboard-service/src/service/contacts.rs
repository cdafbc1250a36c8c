//! Contacts: creation and identity links with uniqueness reservations, and merges.
//!
//! The flow is the one `switchboard_domain::contact` describes: decide, reserve every claimed
//! identity in its own stream (a concurrent claim loses on the store's version check, is decided
//! again and answered `TAKEN`), release the reservations of a creation that lost, then append the
//! contact's own events last, so that its stream only exists once its identities are its own.

use std::collections::BTreeMap;

use proto_events::event::{Identity, RecordKind, RecordRef};
use proto_events::streams;
use switchboard_domain::DomainError;
use switchboard_domain::contact::reservation::{self, Reservation};
use switchboard_domain::contact::{self, Contact, ContactCommand, MergeContacts};
use switchboard_domain::conversation::ConversationCommand;
use switchboard_domain::record::{self, Record};
use uuid::Uuid;

use super::{Outcome, Run};
use crate::ServiceError;

impl Run<'_> {
    pub(super) async fn create_contact(
        &self,
        contact_id: Uuid,
        identities: &[Identity],
        properties: &BTreeMap<String, String>,
        from_conversation: Option<Uuid>,
    ) -> Result<Outcome, ServiceError> {
        let command = match from_conversation {
            Some(id) => ContactCommand::CreateFromVisitor {
                contact_id,
                identities: identities.to_vec(),
                properties: properties.clone(),
                conversation: Some(self.conversation_ref(id).await?.ok_or(
                    DomainError::NotFound {
                        what: "conversation",
                    },
                )?),
            },
            None => ContactCommand::Create {
                contact_id,
                identities: identities.to_vec(),
                properties: properties.clone(),
            },
        };
        self.contact_command(contact_id, &command).await
    }

    pub(super) async fn change_contact(
        &self,
        contact_id: Uuid,
        command: &ContactCommand,
    ) -> Result<Outcome, ServiceError> {
        let stream = streams::contact(contact_id);
        let (state, _) = self
            .load(&stream, Contact::default(), Contact::evolve)
            .await?;
        if !state.exists() {
            return Err(DomainError::NotFound { what: "contact" }.into());
        }
        self.contact_command(contact_id, command).await
    }

    async fn contact_command(
        &self,
        contact_id: Uuid,
        command: &ContactCommand,
    ) -> Result<Outcome, ServiceError> {
        let stream = streams::contact(contact_id);
        let (state, version) = self
            .load(&stream, Contact::default(), Contact::evolve)
            .await?;
        let events = contact::decide(&state, command, &self.context())?;
        self.check_expected(&stream, version)?;
        let claimed: Vec<Identity> = contact::claimed_identities(&events)
            .into_iter()
            .cloned()
            .collect();
        self.reserve(contact_id, &claimed).await?;
        self.append(&stream, version, events).await
    }

    /// Reserves every identity for `contact_id`, or none: when one is taken, those reserved
    /// here are released again and the `TAKEN` rejection is returned.
    async fn reserve(&self, contact_id: Uuid, identities: &[Identity]) -> Result<(), ServiceError> {
        for (i, identity) in identities.iter().enumerate() {
            let (state, version) = self.reservation(identity).await?;
            match reservation::decide_reserve(&state, contact_id) {
                Ok(events) => {
                    self.append_unchecked(&state.stream(), version, events)
                        .await?;
                }
                Err(taken) => {
                    for earlier in &identities[..i] {
                        let (state, version) = self.reservation(earlier).await?;
                        let events = reservation::decide_release(&state, contact_id);
                        self.append_unchecked(&state.stream(), version, events)
                            .await?;
                    }
                    return Err(taken.into());
                }
            }
        }
        Ok(())
    }

    async fn reservation(
        &self,
        identity: &Identity,
    ) -> Result<(Reservation, Option<u64>), ServiceError> {
        let initial = Reservation::of_identity(identity);
        let stream = initial.stream();
        self.load(&stream, initial, Reservation::evolve).await
    }

    /// Erases a contact and `conversation_ids` with it (ADR 0007): the contact's tombstone
    /// ([`ContactErased`](proto_events::event::ContactErased)) first, so that a concurrent
    /// command on the contact conflicts and is refused; then each conversation's; then its
    /// identities are released, so the same address writing again makes a new contact; then the
    /// data subjects' keys are destroyed, so what was sealed for them reads as erased. Every step
    /// is idempotent: a retry after a failure resumes where it stopped. Returns the last write
    /// (its position covers them all); `ERASED` when there was nothing left to do.
    pub(super) async fn erase_contact(
        &self,
        contact_id: Uuid,
        conversation_ids: &[Uuid],
        reason: &str,
    ) -> Result<Outcome, ServiceError> {
        let stream = streams::contact(contact_id);
        let (state, version) = self
            .load(&stream, Contact::default(), Contact::evolve)
            .await?;
        let command = ContactCommand::Erase {
            conversation_ids: conversation_ids.to_vec(),
            reason: reason.to_owned(),
        };
        let mut last = None;
        let mut refusal = None;
        match contact::decide(&state, &command, &self.context()) {
            Ok(events) => {
                self.check_expected(&stream, version)?;
                last = Some(self.append(&stream, version, events).await?);
            }
            // Erased before: resume what may not have been done.
            Err(e @ DomainError::Rejected { .. }) if state.is_erased() => refusal = Some(e),
            Err(e) => return Err(e.into()),
        }
        for &conversation_id in conversation_ids {
            let erase = ConversationCommand::Erase {
                contact_id: Some(contact_id),
                reason: reason.to_owned(),
            };
            match self.conversation(conversation_id, &erase).await {
                Ok(outcome) => last = Some(outcome),
                Err(ServiceError::Domain(
                    DomainError::Rejected { .. } | DomainError::NotFound { .. },
                )) => {}
                Err(e) => return Err(e),
            }
        }
        for identity in state.identities() {
            let (reservation, version) = self.reservation(identity).await?;
            let events = reservation::decide_release(&reservation, contact_id);
            if !events.is_empty() {
                last = Some(
                    self.append_unchecked(&reservation.stream(), version, events)
                        .await?,
                );
            }
        }
        if let Some(keyring) = &self.service.erasure_keys {
            for subject in std::iter::once(contact_id).chain(conversation_ids.iter().copied()) {
                keyring.destroy(subject).await?;
            }
        }
        match (last, refusal) {
            (Some(outcome), _) => Ok(outcome),
            (None, Some(refusal)) => Err(refusal.into()),
            (None, None) => Err(DomainError::NotFound { what: "contact" }.into()),
        }
    }

    pub(super) async fn merge_contacts(
        &self,
        merge: &MergeContacts,
    ) -> Result<Outcome, ServiceError> {
        let survivor_stream = streams::contact(merge.survivor_id);
        let merged_stream = streams::contact(merge.merged_id);
        let (survivor, survivor_version) = self
            .load(&survivor_stream, Contact::default(), Contact::evolve)
            .await?;
        let (merged, merged_version) = self
            .load(&merged_stream, Contact::default(), Contact::evolve)
            .await?;
        // Contacts whose streams hold an association with the merged one (the write index
        // follows the view, which is at the head this command is decided on).
        let held_elsewhere = self
            .service
            .store
            .write_index()
            .links_to(merge.merged_id)
            .await?;
        let decision =
            contact::decide_merge(&survivor, &merged, merge, &held_elsewhere, &self.context())?;
        self.check_expected(&survivor_stream, survivor_version)?;
        // The merged contact's tombstone, then its identities, then the survivor (the main
        // stream) last: if anything fails before the end, a retry finds the merge unfinished and
        // resumes it (each step is idempotent), instead of a recorded merge whose addresses still
        // point at the contact that went.
        self.append_unchecked(
            &decision.merged_stream,
            merged_version,
            decision.merged_events,
        )
        .await?;
        for identity in &decision.transfers {
            let (state, version) = self.reservation(identity).await?;
            let events = reservation::decide_transfer(&state, merge.merged_id, merge.survivor_id)?;
            self.append_unchecked(&state.stream(), version, events)
                .await?;
        }
        let survivor_ref = RecordRef {
            kind: RecordKind::Contact,
            id: merge.survivor_id,
        };
        for holder in &decision.carried_by_others {
            let stream = record::stream_of(*holder);
            let (state, version) = self
                .load(&stream, Record::default(), Record::evolve)
                .await?;
            let events = record::carry_over(&state, survivor_ref);
            self.append_unchecked(&stream, version, events).await?;
        }
        let outcome = self
            .append(
                &decision.survivor_stream,
                survivor_version,
                decision.survivor_events,
            )
            .await?;
        Ok(outcome)
    }
}
