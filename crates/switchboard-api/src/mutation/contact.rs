//! Mutations of contacts: creating one (by hand, or from a conversation's visitor: "record
//! created"), changing its properties, linking one more identity, changing its owner, and merging
//! two contacts.
//!
//! Users who write (agents, admins, super admins) may do all of it; a contact created from a
//! conversation needs the viewer to see that conversation. An identity (e-mail address, chat
//! visitor id, Messenger id) belongs to one contact at most: claiming one another contact holds
//! fails with `TAKEN`. Payloads read the contact from the sidebar read model, after waiting for
//! it to include the write.

use std::collections::BTreeMap;

use async_graphql::{Context, ID, InputObject, Object};
use proto_events::event::{Identity, Role};
use switchboard_domain::contact::{ContactCommand, MergeContacts};
use switchboard_service::Command;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::mutation::common::{Executed, RunOptions, decode_opt, minted_id, payload, run, settle};
use crate::types::contact::{Contact, IdentityKind};

/// Contact mutations.
#[derive(Debug, Default)]
pub(crate) struct ContactMutation;

/// An identity by which a customer is recognised.
#[derive(Debug, Clone, InputObject)]
pub(crate) struct ContactIdentityInput {
    /// Which kind.
    pub(crate) kind: IdentityKind,
    /// The address, visitor id or PSID.
    pub(crate) value: String,
}

impl ContactIdentityInput {
    /// The write side's identity.
    pub(crate) fn identity(&self) -> Identity {
        let value = self.value.clone();
        match self.kind {
            IdentityKind::Email => Identity::Email { address: value },
            IdentityKind::ChatVisitor => Identity::ChatVisitor { visitor_id: value },
            IdentityKind::Messenger => Identity::Messenger { psid: value },
        }
    }
}

/// A contact property: well-known names are `name`, `first_name`, `last_name`, `phone` and
/// `job_title`; others are free (lower-case letters, digits and underscores).
#[derive(Debug, Clone, InputObject)]
pub(crate) struct ContactPropertyInput {
    /// The property's name, snake_case.
    name: String,
    /// Its value; not blank.
    value: String,
}

/// Properties as the write side takes them; a name given twice is refused.
fn properties(list: Vec<ContactPropertyInput>, field: &str) -> ApiResult<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for property in list {
        if map.contains_key(&property.name) {
            return Err(ApiError::bad_input(
                field,
                format!("property {:?} is given twice", property.name),
            ));
        }
        map.insert(property.name, property.value);
    }
    Ok(map)
}

/// Input of `createContact`.
#[derive(Debug, InputObject)]
pub(crate) struct CreateContactInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// E-mail addresses, chat visitor ids, Messenger ids it is recognised by; each must be free
    /// (`TAKEN` names the contact that holds it). At least one when `fromConversationId` is set.
    #[graphql(default)]
    identities: Vec<ContactIdentityInput>,
    /// Its properties.
    #[graphql(default)]
    properties: Vec<ContactPropertyInput>,
    /// The conversation whose visitor this contact is ("record created" from the sidebar).
    from_conversation_id: Option<ID>,
}

payload! {
    /// Result of `createContact`.
    CreateContactPayload {
        /// The new contact.
        contact: Contact,
    }
}

/// Input of `changeContactProperties`.
#[derive(Debug, InputObject)]
pub(crate) struct ChangeContactPropertiesInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The contact.
    contact_id: ID,
    /// Properties to set; others are unchanged.
    #[graphql(default)]
    set: Vec<ContactPropertyInput>,
    /// Names of properties to clear.
    #[graphql(default)]
    unset: Vec<String>,
    /// The contact's `version` the values were chosen from: if it has changed since, nothing is
    /// written and the mutation fails with CONFLICT. Without it, a concurrent change also fails
    /// with CONFLICT rather than being overwritten blindly.
    expected_version: Option<u64>,
}

payload! {
    /// Result of `changeContactProperties`.
    ChangeContactPropertiesPayload {
        /// The contact.
        contact: Contact,
    }
}

/// Input of `linkContactIdentity`.
#[derive(Debug, InputObject)]
pub(crate) struct LinkContactIdentityInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The contact.
    contact_id: ID,
    /// The identity to recognise it by as well; must be free (`TAKEN`).
    identity: ContactIdentityInput,
    /// The contact's `version` the change was decided on: if it has changed since, nothing is
    /// written (not even the identity's reservation) and the mutation fails with CONFLICT.
    expected_version: Option<u64>,
}

payload! {
    /// Result of `linkContactIdentity`.
    LinkContactIdentityPayload {
        /// The contact.
        contact: Contact,
    }
}

/// Input of `changeContactOwner`.
#[derive(Debug, InputObject)]
pub(crate) struct ChangeContactOwnerInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The contact.
    contact_id: ID,
    /// The new owner, a user who writes (routing's `CONTACT_OWNER` strategy gives them the
    /// contact's conversations); null for none.
    owner_id: Option<ID>,
    /// The contact's `version` the change was decided on: if it has changed since, nothing is
    /// written and the mutation fails with CONFLICT.
    expected_version: Option<u64>,
}

payload! {
    /// Result of `changeContactOwner`.
    ChangeContactOwnerPayload {
        /// The contact.
        contact: Contact,
    }
}

/// Input of `mergeContacts`.
#[derive(Debug, InputObject)]
pub(crate) struct MergeContactsInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The contact that remains.
    survivor_id: ID,
    /// The contact that goes: its identities, the properties the survivor has not set, its
    /// owner if the survivor has none, and its associations move to the survivor.
    merged_id: ID,
    /// The survivor's `version` the merge was decided on: if it has changed since, nothing is
    /// written and the mutation fails with CONFLICT.
    expected_version: Option<u64>,
}

payload! {
    /// Result of `mergeContacts`.
    MergeContactsPayload {
        /// The surviving contact.
        contact: Contact,
    }
}

/// Input of `eraseContact`.
#[derive(Debug, InputObject)]
pub(crate) struct EraseContactInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The contact.
    contact_id: ID,
    /// Why (e.g. "Art. 17 request, ticket 4711"): kept in the audit trail with who and when.
    /// It should not name the person. Required; at most 1,000 characters.
    reason: String,
}

payload! {
    /// Result of `eraseContact`.
    EraseContactPayload {
        /// The contact erased.
        erased_contact_id: ID,
        /// Its conversations, erased with it.
        erased_conversation_ids: Vec<ID>,
    }
}

/// The conversations erased with `contact_id`, as its `ContactErased` names them.
async fn erased_with(ctx: &Context<'_>, contact_id: Uuid) -> ApiResult<Vec<Uuid>> {
    let store = &crate::state::state(ctx).store;
    let events = store
        .read_stream(
            &proto_events::streams::contact(contact_id),
            switchboard_store::Direction::Backwards,
            switchboard_store::StreamFrom::End,
            16,
        )
        .await?;
    for event in &events {
        if let proto_events::DomainEvent::ContactErased(e) =
            switchboard_service::codec::decode(event)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .payload
        {
            return Ok(e.conversation_ids);
        }
    }
    Ok(Vec::new())
}

/// Points a `TAKEN` failure (an identity another contact holds; the write side names no field)
/// at the input field that claimed the identity.
fn blame_identities(executed: &mut Executed, field: &str) {
    for error in &mut executed.result.user_errors {
        if error.code == "TAKEN" && error.field.is_none() {
            error.field = Some(vec!["input".to_owned(), field.to_owned()]);
        }
    }
}

/// The contact `outcome` wrote to, once the read models include the write.
async fn contact_after(ctx: &Context<'_>, executed: &Executed) -> ApiResult<Option<Contact>> {
    let Some(outcome) = &executed.outcome else {
        return Ok(None);
    };
    let Some(contact_id) = executed.created_id("contact") else {
        return Ok(None);
    };
    settle(ctx, outcome).await?;
    Contact::load(ctx, contact_id).await
}

/// Runs a command on one existing contact.
async fn change(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    contact_id: Uuid,
    command: ContactCommand,
    options: RunOptions,
) -> ApiResult<Executed> {
    let command = Command::Contact {
        contact_id,
        command,
    };
    run(ctx, client_mutation_id, command, options).await
}

#[Object]
impl ContactMutation {
    /// Creates a contact (users who write): by hand, or from the visitor of a conversation the
    /// viewer sees.
    async fn create_contact(
        &self,
        ctx: &Context<'_>,
        input: CreateContactInput,
    ) -> async_graphql::Result<CreateContactPayload> {
        let from_conversation = decode_opt(
            input.from_conversation_id.as_ref(),
            Kind::Conversation,
            "fromConversationId",
        )?;
        let command = Command::CreateContact {
            contact_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            identities: input
                .identities
                .iter()
                .map(ContactIdentityInput::identity)
                .collect(),
            properties: properties(input.properties, "properties")?,
            from_conversation,
        };
        let mut executed = run(
            ctx,
            input.client_mutation_id,
            command,
            RunOptions::default(),
        )
        .await?;
        blame_identities(&mut executed, "identities");
        let contact = contact_after(ctx, &executed).await?;
        Ok(CreateContactPayload {
            result: executed.result,
            contact,
        })
    }

    /// Sets some properties of a contact and clears others (users who write).
    async fn change_contact_properties(
        &self,
        ctx: &Context<'_>,
        input: ChangeContactPropertiesInput,
    ) -> async_graphql::Result<ChangeContactPropertiesPayload> {
        let contact_id = ids::decode(&input.contact_id, Kind::Contact, "contactId")?;
        let command = ContactCommand::ChangeProperties {
            set: properties(input.set, "set")?,
            unset: input.unset,
        };
        let options = RunOptions {
            expected_version: input.expected_version,
            ..RunOptions::default()
        };
        let executed = change(ctx, input.client_mutation_id, contact_id, command, options).await?;
        let contact = contact_after(ctx, &executed).await?;
        Ok(ChangeContactPropertiesPayload {
            result: executed.result,
            contact,
        })
    }

    /// Makes a contact recognisable by one more identity (users who write).
    async fn link_contact_identity(
        &self,
        ctx: &Context<'_>,
        input: LinkContactIdentityInput,
    ) -> async_graphql::Result<LinkContactIdentityPayload> {
        let contact_id = ids::decode(&input.contact_id, Kind::Contact, "contactId")?;
        let command = ContactCommand::LinkIdentity {
            identity: input.identity.identity(),
        };
        let options = RunOptions {
            expected_version: input.expected_version,
            ..RunOptions::default()
        };
        let mut executed =
            change(ctx, input.client_mutation_id, contact_id, command, options).await?;
        blame_identities(&mut executed, "identity");
        let contact = contact_after(ctx, &executed).await?;
        Ok(LinkContactIdentityPayload {
            result: executed.result,
            contact,
        })
    }

    /// Gives a contact an owner, or none (users who write).
    async fn change_contact_owner(
        &self,
        ctx: &Context<'_>,
        input: ChangeContactOwnerInput,
    ) -> async_graphql::Result<ChangeContactOwnerPayload> {
        let contact_id = ids::decode(&input.contact_id, Kind::Contact, "contactId")?;
        let owner_user_id = decode_opt(input.owner_id.as_ref(), Kind::User, "ownerId")?;
        let command = ContactCommand::ChangeOwner { owner_user_id };
        let options = RunOptions {
            expected_version: input.expected_version,
            renames: &[("ownerUserId", "ownerId")],
            ..RunOptions::default()
        };
        let executed = change(ctx, input.client_mutation_id, contact_id, command, options).await?;
        let contact = contact_after(ctx, &executed).await?;
        Ok(ChangeContactOwnerPayload {
            result: executed.result,
            contact,
        })
    }

    /// Merges one contact into another (users who write): the merged contact's identities,
    /// the properties the survivor lacks, its owner if the survivor has none and its
    /// associations go to the survivor; the merged contact refuses every later change
    /// (`MERGED`).
    async fn merge_contacts(
        &self,
        ctx: &Context<'_>,
        input: MergeContactsInput,
    ) -> async_graphql::Result<MergeContactsPayload> {
        let survivor_id = ids::decode(&input.survivor_id, Kind::Contact, "survivorId")?;
        let merged_id = ids::decode(&input.merged_id, Kind::Contact, "mergedId")?;
        let command = Command::MergeContacts(MergeContacts {
            survivor_id,
            merged_id,
        });
        let options = RunOptions {
            expected_version: input.expected_version,
            renames: &[("contactId", "survivorId")],
            ..RunOptions::default()
        };
        let executed = run(ctx, input.client_mutation_id, command, options).await?;
        let contact = contact_after(ctx, &executed).await?;
        Ok(MergeContactsPayload {
            result: executed.result,
            contact,
        })
    }

    /// Erases a contact at the person's request (GDPR Art. 17; admins): the contact, the
    /// contacts merged into it and every conversation whose customer they are are erased
    /// (`ContactErased`, `ConversationErased`; who, when and the reason stay in the audit
    /// trail), the keys their personal data was sealed with are destroyed, and read models
    /// drop them. Their identities are released: the same address writing again starts a new
    /// conversation without a contact. Cannot be undone; an erased contact or conversation
    /// refuses every later change (`ERASED`). Events written while `[privacy]
    /// seal_personal_data` was off keep their data in the log (the hash chain covers it), but
    /// read redacted everywhere (`events`, `switchboard export`; on other PostgreSQL nodes
    /// within a minute). The names of the streams that keep addresses unique still hold the
    /// address (ADR 0007).
    async fn erase_contact(
        &self,
        ctx: &Context<'_>,
        input: EraseContactInput,
    ) -> async_graphql::Result<EraseContactPayload> {
        let contact_id = ids::decode(&input.contact_id, Kind::Contact, "contactId")?;
        // The log is read before the command holds the write view, and only for an admin (the
        // command refuses anyone else).
        let admin = crate::state::access(ctx)
            .await?
            .require(&[Role::SuperAdmin, Role::Admin], "erasing a contact")
            .is_ok();
        let prepared = if admin {
            crate::state::state(ctx)
                .service
                .prepare_erasure(contact_id)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
        } else {
            None
        };
        let command = Command::EraseContact {
            contact_id,
            reason: input.reason,
            prepared,
        };
        let executed = run(
            ctx,
            input.client_mutation_id,
            command,
            RunOptions::default(),
        )
        .await?;
        if !executed.result.user_errors.is_empty() {
            return Ok(EraseContactPayload {
                result: executed.result,
                erased_contact_id: None,
                erased_conversation_ids: None,
            });
        }
        let conversations = erased_with(ctx, contact_id).await?;
        Ok(EraseContactPayload {
            result: executed.result,
            erased_contact_id: Some(ids::encode(Kind::Contact, contact_id)),
            erased_conversation_ids: Some(
                conversations
                    .iter()
                    .map(|id| ids::encode(Kind::Conversation, *id))
                    .collect(),
            ),
        })
    }
}
