//! Contacts: creation and identity links with uniqueness reservations, and merges.
//!
//! The flow is the one `switchboard_domain::contact` describes: decide, reserve every claimed
//! identity in its own stream (a concurrent claim loses on the store's version check, is decided
//! again and answered `TAKEN`), release the reservations of a creation that lost, then append the
//! contact's own events last, so that its stream only exists once its identities are its own.

use std::collections::{BTreeMap, BTreeSet};

use proto_events::event::{Identity, RecordKind, RecordRef};
use proto_events::streams;
use switchboard_domain::DomainError;
use switchboard_domain::contact::reservation::{self, Reservation};
use switchboard_domain::contact::{self, Contact, ContactCommand, MergeContacts};
use switchboard_domain::conversation::{self, Conversation, ConversationCommand};
use switchboard_domain::record::{self, Record};
use uuid::Uuid;

use super::{CommandService, Outcome, Run};
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
            let (stream, state, version) = self.reservation(identity).await?;
            match reservation::decide_reserve(&state, contact_id) {
                Ok(events) => {
                    self.append_unchecked(&stream, version, events).await?;
                }
                Err(taken) => {
                    for earlier in &identities[..i] {
                        let (stream, state, version) = self.reservation(earlier).await?;
                        let events = reservation::decide_release(&state, contact_id);
                        self.append_unchecked(&stream, version, events).await?;
                    }
                    return Err(taken.into());
                }
            }
        }
        Ok(())
    }

    /// The reservation of `identity`, its stream and version
    /// ([`CommandService::reservation_of`]).
    async fn reservation(
        &self,
        identity: &Identity,
    ) -> Result<(String, Reservation, Option<u64>), ServiceError> {
        self.service.reservation_of(identity).await
    }

    /// Erases a contact (ADR 0007), with the contacts merged into it and the conversations
    /// that are theirs: those whose customer (the conversation's `contact_id` on the write side)
    /// is one of them, and those they were created from. In this order, each step idempotent
    /// and written without the command's idempotency key, so a retry of a half-done erasure
    /// does it again: each conversation's [`ConversationErased`] (it refuses every command from
    /// then on; a message for it starts its successor); the release of every identity they
    /// hold (the same address writing again is nobody's); their files (attachments, original
    /// e-mails) that no conversation left standing shows ([`BlobStore::delete`](switchboard_store::BlobStore::delete), which keeps a
    /// part another blob needs); the contact's
    /// [`ContactErased`](proto_events::event::ContactErased), naming the conversations, last,
    /// with the key, on the contact's stream, decided on the contact as first read (a change
    /// made meanwhile conflicts, and the command is decided again). The keys are destroyed
    /// after it, also when the command is a repeat
    /// ([`CommandService::destroy_erased_keys`]).
    ///
    /// Which conversations are theirs is read from the whole log (the write side keeps no index
    /// of conversations by contact): by `prepared` ([`CommandService::prepare_erasure`], read
    /// before the command holds the write view, so a long read stalls no other command) and
    /// the events since; again after the conversations are erased, for one started meanwhile.
    pub(super) async fn erase_contact(
        &self,
        contact_id: Uuid,
        reason: &str,
        prepared: Option<&crate::subject::Scan>,
    ) -> Result<Outcome, ServiceError> {
        let stream = streams::contact(contact_id);
        let (state, version) = self
            .load(&stream, Contact::default(), Contact::evolve)
            .await?;
        // Decided first, so that nothing is written for a command that is refused.
        contact::decide(
            &state,
            &ContactCommand::Erase {
                conversation_ids: Vec::new(),
                reason: reason.to_owned(),
            },
            &self.context(),
        )?;
        self.check_expected(&stream, version)?;
        let family = self.service.family(&state).await?;
        let (ids, identities) = (family.ids(), family.identities());
        let store = self.service.store.as_ref();
        let mut scan = match prepared {
            // Read for the same people: only what came since is read here.
            Some(prepared) if prepared.is_for(&ids, &identities) => prepared.clone(),
            _ => crate::subject::scan(store, &ids, &identities).await?,
        };
        let mut erased = BTreeSet::new();
        for _pass in 0..3 {
            scan.extend(crate::subject::scan_after(store, scan.head, &ids, &identities).await?);
            let theirs = self.service.theirs(&scan, &family).await?;
            if theirs.iter().all(|id| erased.contains(id)) {
                break;
            }
            for conversation_id in theirs {
                if erased.insert(conversation_id) {
                    self.erase_conversation(conversation_id, contact_id, reason)
                        .await?;
                }
            }
            for (person, identities) in &family.members {
                for identity in identities {
                    let (stream, reservation, version) = self.reservation(identity).await?;
                    let events = reservation::decide_release(&reservation, *person);
                    self.append_unchecked(&stream, version, events).await?;
                }
            }
        }
        // Their files, those they sent into someone else's conversation too, unless someone
        // else's message or reply shows them as well (the same attachment sent by someone else),
        // before the keys are destroyed (their names are sealed).
        self.service
            .delete_files_only_of(&scan, &erased, &ids)
            .await?;
        let events = contact::decide(
            &state,
            &ContactCommand::Erase {
                conversation_ids: erased.into_iter().collect(),
                reason: reason.to_owned(),
            },
            &self.context(),
        )?;
        self.append(&stream, version, events).await
    }

    /// Erases one conversation with its contact; one erased before is left as it is.
    async fn erase_conversation(
        &self,
        conversation_id: Uuid,
        contact_id: Uuid,
        reason: &str,
    ) -> Result<(), ServiceError> {
        let stream = streams::conversation(conversation_id);
        let (state, version) = self
            .load(&stream, Conversation::default(), Conversation::evolve)
            .await?;
        if state.erased {
            return Ok(());
        }
        let command = ConversationCommand::Erase {
            contact_id: Some(contact_id),
            reason: reason.to_owned(),
        };
        let events = conversation::decide(&state, &command, &self.context())?;
        self.append_unchecked(&stream, version, events).await?;
        Ok(())
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
            let (stream, state, version) = self.reservation(identity).await?;
            let events = reservation::decide_transfer(&state, merge.merged_id, merge.survivor_id)?;
            self.append_unchecked(&stream, version, events).await?;
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

/// A contact and every contact merged into it (through chains of merges): whose data an
/// erasure or a subject access covers.
#[derive(Debug, Default)]
pub(super) struct Family {
    /// Each member, with the identities it ever had.
    members: BTreeMap<Uuid, Vec<Identity>>,
    /// The conversations members were created from ("record created" from a visitor).
    from_conversations: BTreeSet<Uuid>,
}

impl Family {
    fn ids(&self) -> BTreeSet<Uuid> {
        self.members.keys().copied().collect()
    }

    fn identities(&self) -> Vec<Identity> {
        self.members.values().flatten().cloned().collect()
    }
}

impl CommandService {
    /// The conversations of `scan`'s candidates that are `family`'s on the write side: whose
    /// contact is a member, and those without a contact that a member's identity wrote first
    /// (filtered or not) or a member was created from; not one they only answered.
    pub(super) async fn theirs(
        &self,
        scan: &crate::subject::Scan,
        family: &Family,
    ) -> Result<BTreeSet<Uuid>, ServiceError> {
        let keys: BTreeSet<String> = family
            .identities()
            .iter()
            .map(crate::subject::identity_key)
            .collect();
        let mut theirs = BTreeSet::new();
        for &conversation_id in &scan.conversations {
            let (conversation, _) = self
                .load(
                    &streams::conversation(conversation_id),
                    Conversation::default(),
                    Conversation::evolve,
                )
                .await?;
            let theirs_by_contact = conversation
                .contact_id
                .is_some_and(|c| family.members.contains_key(&c));
            let uncontacted_theirs = conversation.contact_id.is_none()
                && (family.from_conversations.contains(&conversation_id)
                    || conversation.first_sender.as_ref().is_some_and(|sender| {
                        keys.contains(&crate::subject::identity_key(sender))
                    }));
            if theirs_by_contact || uncontacted_theirs {
                theirs.insert(conversation_id);
            }
        }
        Ok(theirs)
    }

    /// The family of `contact_id` and what the whole log holds of it ([`crate::subject::scan`]);
    /// `None` when there is no such contact.
    async fn family_scan(
        &self,
        contact_id: Uuid,
    ) -> Result<Option<(Family, crate::subject::Scan)>, ServiceError> {
        let (state, _) = self
            .load(
                &streams::contact(contact_id),
                Contact::default(),
                Contact::evolve,
            )
            .await?;
        if !state.exists() {
            return Ok(None);
        }
        let family = self.family(&state).await?;
        let scan =
            crate::subject::scan(self.store.as_ref(), &family.ids(), &family.identities()).await?;
        Ok(Some((family, scan)))
    }

    /// Everything recorded about a contact as one document (GDPR Art. 15: the format
    /// [`crate::subject::FORMAT`]), with the contacts merged into it and the
    /// conversations that are theirs as an erasure would find them (the whole log is read);
    /// `None` when there is no such contact.
    pub async fn subject_access(
        &self,
        contact_id: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<serde_json::Value>, ServiceError> {
        let Some((family, scan)) = self.family_scan(contact_id).await? else {
            return Ok(None);
        };
        let conversations = self.theirs(&scan, &family).await?;
        crate::subject::contact_data(self, contact_id, &family.ids(), &conversations, now).await
    }

    /// Reads the log for [`Command::EraseContact`]'s `prepared` (see its documentation): the
    /// whole log, without holding the write view. `None` when there is no such contact (the
    /// command then says so).
    ///
    /// [`Command::EraseContact`]: crate::Command::EraseContact
    pub async fn prepare_erasure(
        &self,
        contact_id: Uuid,
    ) -> Result<Option<std::sync::Arc<crate::subject::Scan>>, ServiceError> {
        Ok(self
            .family_scan(contact_id)
            .await?
            .map(|(_, scan)| std::sync::Arc::new(scan)))
    }

    /// `state`'s contact and every contact merged into it ([`Family`]).
    pub(super) async fn family(&self, state: &Contact) -> Result<Family, ServiceError> {
        let mut family = Family::default();
        let mut pending: Vec<Contact> = vec![state.clone()];
        while let Some(contact) = pending.pop() {
            let Some(id) = contact.id() else { continue };
            if family.members.contains_key(&id) {
                continue;
            }
            family.members.insert(id, contact.identities().to_vec());
            family
                .from_conversations
                .extend(contact.from_conversations().iter().copied());
            for merged in contact.absorbed() {
                if !family.members.contains_key(merged) {
                    let (merged, _) = self
                        .load(
                            &streams::contact(*merged),
                            Contact::default(),
                            Contact::evolve,
                        )
                        .await?;
                    pending.push(merged);
                }
            }
        }
        Ok(family)
    }

    /// Destroys the keys of an erased contact, of the contacts merged into it and of the
    /// conversations erased with it (ADR 0007): after the erasure, and again after a repeat of
    /// it, since the first attempt may have stopped before. Nothing when the contact is not
    /// erased or the service destroys no keys.
    pub(super) async fn destroy_erased_keys(&self, contact_id: Uuid) -> Result<(), ServiceError> {
        let Some(keyring) = &self.erasure_keys else {
            return Ok(());
        };
        let (state, _) = self
            .load(
                &streams::contact(contact_id),
                Contact::default(),
                Contact::evolve,
            )
            .await?;
        if !state.is_erased() {
            return Ok(());
        }
        let family = self.family(&state).await?;
        for subject in family
            .members
            .keys()
            .chain(state.erased_conversations().iter())
            .copied()
        {
            keyring.destroy(subject).await?;
        }
        Ok(())
    }
}
