//! Contacts and the other CRM records a conversation's sidebar shows: companies, deals, tickets,
//! and the associations between them and conversations.
//!
//! Streams: `contact-<id>`, `company-<id>`, `deal-<id>`, `ticket-<id>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::wire::MissingField;

/// A handle by which a customer is recognised on a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "IdentityWire")]
pub enum Identity {
    /// An e-mail address (e-mail and forms).
    Email {
        /// The address as written; compare via [`crate::streams::contact_identity`]'s
        /// normalisation.
        address: String,
    },
    /// A website chat visitor, by the id the chat widget keeps in the browser.
    ChatVisitor {
        /// The widget's visitor id.
        visitor_id: String,
    },
    /// A Facebook Messenger user, by page-scoped id.
    Messenger {
        /// The page-scoped id (PSID).
        psid: String,
    },
}

/// A visitor new to the company was turned into a contact record (or a contact was created by
/// hand or import).
///
/// Well-known `properties` keys: `name`, `first_name`, `last_name`, `phone`, `job_title`;
/// others are free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRecordCreated {
    /// The contact.
    pub contact_id: Uuid,
    /// How the contact is recognised from the start; more may follow as
    /// [`ContactIdentityLinked`].
    pub identities: Vec<Identity>,
    /// Initial property values.
    pub properties: BTreeMap<String, String>,
    /// The conversation whose visitor became this contact, if any.
    pub from_conversation_id: Option<Uuid>,
}

/// Some of a contact's properties changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPropertiesChanged {
    /// The contact.
    pub contact_id: Uuid,
    /// New values by key; `None` clears the property. Keys not listed are unchanged.
    pub changes: BTreeMap<String, Option<String>>,
}

/// A contact became recognisable by one more identity; messages from it now carry the
/// contact's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactIdentityLinked {
    /// The contact.
    pub contact_id: Uuid,
    /// The identity.
    pub identity: Identity,
}

/// A contact's owner changed; routing's `contact_owner` strategy assigns to the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactOwnerChanged {
    /// The contact.
    pub contact_id: Uuid,
    /// The new owner; `None` removes the owner.
    pub owner_user_id: Option<Uuid>,
}

/// Two contacts were found to be the same person and merged. Recorded in both contacts'
/// streams. The merged contact is gone from then on: its identities, properties not set on the
/// survivor, associations and conversations belong to the survivor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactsMerged {
    /// The contact that remains.
    pub survivor_id: Uuid,
    /// The contact merged into it.
    pub merged_id: Uuid,
}

/// A contact was erased, at the person's request (GDPR Art. 17) or by an admin: the keys their
/// personal fields were sealed with are destroyed and their files deleted, so that everything
/// recorded about them reads as erased from now on, in every read model, on a rebuild and in an
/// export; each conversation of theirs is erased with them ([`ConversationErased`], naming this
/// contact). The contact refuses every command afterwards. Who erased it and when are the
/// event's metadata; it holds no personal data itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactErased {
    /// The contact.
    pub contact_id: Uuid,
    /// Its conversations, erased with it.
    pub conversation_ids: Vec<Uuid>,
    /// Why, as the admin gave it (e.g. "Art. 17 request, ticket 4711"); it should not name the
    /// person.
    pub reason: String,
}

/// A company record was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyCreated {
    /// The company.
    pub company_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its web domain, e.g. `"example.com"`, used to suggest associations with contacts.
    pub domain: Option<String>,
}

/// A deal record was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealCreated {
    /// The deal.
    pub deal_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its pipeline stage, e.g. `"qualified"`.
    pub stage: Option<String>,
    /// The user responsible for it.
    pub owner_user_id: Option<Uuid>,
}

/// A ticket record was created, possibly from a conversation (an association between the two
/// follows as [`AssociationAdded`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketCreated {
    /// The ticket.
    pub ticket_id: Uuid,
    /// Its subject.
    pub subject: String,
    /// The conversation it was created from, if any.
    pub from_conversation_id: Option<Uuid>,
}

/// The kinds of record an association can link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A contact.
    Contact,
    /// A company.
    Company,
    /// A deal.
    Deal,
    /// A ticket.
    Ticket,
    /// A conversation.
    Conversation,
}

/// A reference to a record of any kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordRef {
    /// Which kind of record.
    pub kind: RecordKind,
    /// Its id.
    pub id: Uuid,
}

/// Two records were associated, e.g. a contact with a company or a conversation with a ticket.
/// Associations are undirected; the event is recorded in the stream of `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationAdded {
    /// The record in whose stream this is recorded.
    pub from: RecordRef,
    /// The other record.
    pub to: RecordRef,
}

/// An association between two records was removed (in either direction it was added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationRemoved {
    /// The record in whose stream this is recorded.
    pub from: RecordRef,
    /// The other record.
    pub to: RecordRef,
}

/// The kinds of [`Identity`], as stored in its `kind` field.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum IdentityKind {
    Email,
    ChatVisitor,
    Messenger,
}

/// An [`Identity`] as stored, decoded in one pass (see `crate::wire`).
#[derive(Deserialize)]
struct IdentityWire {
    kind: IdentityKind,
    address: Option<String>,
    visitor_id: Option<String>,
    psid: Option<String>,
}

impl TryFrom<IdentityWire> for Identity {
    type Error = MissingField;

    fn try_from(wire: IdentityWire) -> Result<Self, Self::Error> {
        Ok(match wire.kind {
            IdentityKind::Email => Identity::Email {
                address: wire.address.ok_or(MissingField("address"))?,
            },
            IdentityKind::ChatVisitor => Identity::ChatVisitor {
                visitor_id: wire.visitor_id.ok_or(MissingField("visitor_id"))?,
            },
            IdentityKind::Messenger => Identity::Messenger {
                psid: wire.psid.ok_or(MissingField("psid"))?,
            },
        })
    }
}
