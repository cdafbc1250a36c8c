//! The contact aggregate (stream `contact-<id>`): a customer record created from a visitor or by
//! hand, its properties, the identities it is recognised by (e-mail address, chat visitor id,
//! Messenger id), its owner, and merges of two contacts found to be the same person.
//!
//! Who may do what: users who write (agents, admins, super admins) and the system actor may do
//! everything; a channel integration may only create a contact from a visitor; auditors,
//! analysts, contacts and bots may do nothing. A contact merged away refuses every command with
//! `MERGED`, naming the survivor.
//!
//! # One contact per identity
//! An identity may belong to one contact only, and contacts live in separate streams, so the
//! rule is kept by reservation streams ([`reservation`]). The command service, for a command that
//! creates a contact or links an identity:
//! 1. decides it here (pure; validates and trims the identities);
//! 2. for each of [`claimed_identities`] of the events, folds the identity's reservation stream,
//!    asks [`reservation::decide_reserve`] and appends with the stream's expected version. A
//!    concurrent claim loses on the version check; reloading and deciding again then answers
//!    `TAKEN`, and [`reservation::Reservation::holder`] names the contact that has it;
//! 3. if one is taken, releases what it reserved in step 2 ([`reservation::decide_release`]) and
//!    reports the existing contact;
//! 4. appends the contact's events (a creation expecting an empty stream).
//!
//! Of fifty concurrent creations with one e-mail address, exactly one wins step 2. A crash
//! between steps 2 and 4 leaves a reservation naming a contact with no stream yet; retrying with
//! the same contact id completes it, because reserving again for the holder is a no-op.
//!
//! # Merging
//! [`decide_merge`] decides over both contacts and returns events for both streams
//! ([`MergeDecision`]). The merged contact's stream gets only [`ContactsMerged`]: a tombstone
//! after which it refuses everything, so its state is frozen. The survivor's stream gets
//! [`ContactsMerged`] followed by explicit events for what it takes over (identities it lacks,
//! properties it has not set, the owner if it has none, associations), so the survivor's own
//! stream says everything it is recognised by without reading the merged one.
//!
//! Reservations are *transferred*, not released: each identity of the merged contact moves to the
//! survivor ([`reservation::decide_transfer`]: released by the merged contact and reserved by the
//! survivor, in the reservation stream), so no other contact can claim it in between, and a
//! lookup by identity lands on the survivor directly. Append order: the merged contact's
//! tombstone first (it claims the merge; a concurrent change to that contact fails its version
//! check), then the survivor's events, then the transfers. Deciding the same merge again after a
//! partial append resumes it: with the tombstone written but not the survivor's events, it
//! returns only the survivor's. Should a reservation still name a merged contact, follow
//! [`Contact::merged_into`] (a chain, if the survivor was itself merged later).

pub mod reservation;

use std::collections::{BTreeMap, BTreeSet};

use proto_events::event::{
    AssociationAdded, AssociationRemoved, ContactErased, ContactIdentityLinked,
    ContactOwnerChanged, ContactPropertiesChanged, ContactRecordCreated, ContactsMerged, Identity,
    RecordKind, RecordRef, UniqueScope,
};
use proto_events::{DomainEvent, streams};
use uuid::Uuid;

use crate::record::{self, ConversationRef, canonical};
use crate::{Context, DomainError, validate};

/// Longest accepted property name.
const MAX_PROPERTY_NAME: usize = 100;
/// Longest accepted property value, in characters.
const MAX_PROPERTY_VALUE: usize = 65_536;
/// Longest accepted chat visitor id or Messenger id.
const MAX_HANDLE: usize = 256;

/// A contact's stream folded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    id: Option<Uuid>,
    identities: Vec<Identity>,
    properties: BTreeMap<String, String>,
    owner_user_id: Option<Uuid>,
    merged_into: Option<Uuid>,
    erased: bool,
    erased_conversations: Vec<Uuid>,
    from_conversations: BTreeSet<Uuid>,
    absorbed: BTreeSet<Uuid>,
    associations: BTreeSet<RecordRef>,
}

impl Contact {
    /// Folds one event of the contact's stream in. Events about other things are ignored.
    pub fn evolve(&mut self, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::ContactRecordCreated(e) => {
                self.id = Some(e.contact_id);
                self.from_conversations.extend(e.from_conversation_id);
                self.identities.clone_from(&e.identities);
                self.properties.clone_from(&e.properties);
            }
            E::ContactPropertiesChanged(e) => {
                for (name, value) in &e.changes {
                    match value {
                        Some(value) => self.properties.insert(name.clone(), value.clone()),
                        None => self.properties.remove(name),
                    };
                }
            }
            E::ContactIdentityLinked(e) if !self.has_identity(&e.identity) => {
                self.identities.push(e.identity.clone());
            }
            E::ContactOwnerChanged(e) => self.owner_user_id = e.owner_user_id,
            E::ContactErased(e) if self.id == Some(e.contact_id) => {
                self.erased = true;
                self.erased_conversations.clone_from(&e.conversation_ids);
            }
            E::ContactsMerged(e) => {
                if self.id == Some(e.merged_id) {
                    self.merged_into = Some(e.survivor_id);
                } else if self.id == Some(e.survivor_id) {
                    self.absorbed.insert(e.merged_id);
                }
            }
            E::AssociationAdded(e) => {
                if let Some(other) = self.other_end(e.from, e.to) {
                    self.associations.insert(other);
                }
            }
            E::AssociationRemoved(e) => {
                if let Some(other) = self.other_end(e.from, e.to) {
                    self.associations.remove(&other);
                }
            }
            _ => {}
        }
    }

    fn other_end(&self, from: RecordRef, to: RecordRef) -> Option<RecordRef> {
        let me = self.reference()?;
        if from == me {
            Some(to)
        } else if to == me {
            Some(from)
        } else {
            None
        }
    }

    /// The contact's id, once created.
    pub fn id(&self) -> Option<Uuid> {
        self.id
    }

    /// Whether the contact was created (merged away or not).
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// The contact as a record reference, once created.
    pub fn reference(&self) -> Option<RecordRef> {
        self.id.map(|id| RecordRef {
            kind: RecordKind::Contact,
            id,
        })
    }

    /// The identities the contact is recognised by, in the order they were linked.
    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }

    /// Whether the contact has this identity, compared as reservations compare it (e-mail
    /// addresses without regard to case).
    pub fn has_identity(&self, identity: &Identity) -> bool {
        let wanted = identity_key(identity);
        self.identities.iter().any(|i| identity_key(i) == wanted)
    }

    /// Property values by name.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// The user who owns the contact, if any.
    pub fn owner_user_id(&self) -> Option<Uuid> {
        self.owner_user_id
    }

    /// Whether the contact was erased ([`ContactErased`]).
    pub fn is_erased(&self) -> bool {
        self.erased
    }

    /// The conversations erased with it, as its [`ContactErased`] names them.
    pub fn erased_conversations(&self) -> &[Uuid] {
        &self.erased_conversations
    }

    /// The conversations it was created from ("record created" from a visitor).
    pub fn from_conversations(&self) -> &BTreeSet<Uuid> {
        &self.from_conversations
    }

    /// For a contact merged away: the contact it was merged into.
    pub fn merged_into(&self) -> Option<Uuid> {
        self.merged_into
    }

    /// The contacts merged into this one.
    pub fn absorbed(&self) -> &BTreeSet<Uuid> {
        &self.absorbed
    }

    /// The records associated with the contact in its own stream (companies, deals, tickets,
    /// conversations, and contacts of greater id; see [`crate::record`]).
    pub fn associations(&self) -> &BTreeSet<RecordRef> {
        &self.associations
    }
}

/// An identity as reservations compare it: its scope and normalised value.
fn identity_key(identity: &Identity) -> (UniqueScope, String) {
    let (scope, value) = UniqueScope::of_identity(identity);
    (scope, scope.normalise(value))
}

/// A change to one contact. Commands other than the creations act on the contact whose stream
/// was folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactCommand {
    /// Create a contact by hand or by import.
    Create {
        contact_id: Uuid,
        identities: Vec<Identity>,
        properties: BTreeMap<String, String>,
    },
    /// Turn a visitor into a contact ("record created"): by an agent from the sidebar, or by a
    /// channel or the system when a new visitor writes. At least one identity is required.
    CreateFromVisitor {
        contact_id: Uuid,
        identities: Vec<Identity>,
        properties: BTreeMap<String, String>,
        /// The conversation the visitor wrote in, as resolved by the service; a user must be able
        /// to see it.
        conversation: Option<ConversationRef>,
    },
    /// Set some properties and clear others; names not listed are unchanged.
    ChangeProperties {
        set: BTreeMap<String, String>,
        unset: Vec<String>,
    },
    /// Make the contact recognisable by one more identity.
    LinkIdentity { identity: Identity },
    /// Give the contact an owner (a user who writes), or none.
    ChangeOwner { owner_user_id: Option<Uuid> },
    /// Erase the contact (admins): the service erases `conversation_ids` with it (their
    /// [`ConversationCommand::Erase`](crate::conversation::ConversationCommand::Erase)),
    /// destroys the keys and deletes the files. From then on it refuses every command.
    Erase {
        conversation_ids: Vec<Uuid>,
        reason: String,
    },
}

/// Merge `merged_id` into `survivor_id`; see [`decide_merge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeContacts {
    /// The contact that remains.
    pub survivor_id: Uuid,
    /// The contact that goes.
    pub merged_id: Uuid,
}

/// What a merge writes, stream by stream, in the order to append it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeDecision {
    /// The merged contact's stream.
    pub merged_stream: String,
    /// Its tombstone ([`ContactsMerged`]); empty when resuming a merge whose tombstone is
    /// already written. Append first.
    pub merged_events: Vec<DomainEvent>,
    /// The survivor's stream.
    pub survivor_stream: String,
    /// [`ContactsMerged`], then what the survivor takes over. Append second.
    pub survivor_events: Vec<DomainEvent>,
    /// The merged contact's identities, whose reservations move to the survivor: for each, fold
    /// its reservation stream and append [`reservation::decide_transfer`]'s events. Last.
    pub transfers: Vec<Identity>,
    /// Contacts whose own streams hold an association with the merged contact and will hold
    /// the one with the survivor too (their id is the lesser): for each, fold its stream and
    /// append [`crate::record::carry_over`]'s events, before the survivor's.
    pub carried_by_others: Vec<RecordRef>,
}

/// Decides a command on one contact.
pub fn decide(
    state: &Contact,
    command: &ContactCommand,
    ctx: &Context<'_>,
) -> Result<Vec<DomainEvent>, DomainError> {
    use ContactCommand as C;
    match command {
        C::Create {
            contact_id,
            identities,
            properties,
        } => {
            record::writer(ctx, false)?;
            create(state, *contact_id, identities, properties, None)
        }
        C::CreateFromVisitor {
            contact_id,
            identities,
            properties,
            conversation,
        } => {
            let writer = record::writer(ctx, true)?;
            if let Some(conversation) = conversation {
                record::require_visible(writer, ctx, conversation)?;
            }
            if identities.is_empty() {
                return Err(DomainError::invalid(
                    "identities",
                    "a visitor is known by at least one identity",
                ));
            }
            create(
                state,
                *contact_id,
                identities,
                properties,
                conversation.map(|c| c.id),
            )
        }
        C::ChangeProperties { set, unset } => {
            record::writer(ctx, false)?;
            let contact_id = live(state)?;
            let mut changes = BTreeMap::new();
            for (name, value) in set {
                property_name("set", name)?;
                let value = property_value("set", name, value)?;
                if state.properties.get(name) != Some(&value) {
                    changes.insert(name.clone(), Some(value));
                }
            }
            for name in unset {
                property_name("unset", name)?;
                if set.contains_key(name) {
                    return Err(DomainError::invalid(
                        "unset",
                        format!("{name:?} is both set and unset"),
                    ));
                }
                if state.properties.contains_key(name) {
                    changes.insert(name.clone(), None);
                }
            }
            if changes.is_empty() {
                return Err(DomainError::rejected(
                    "UNCHANGED",
                    None,
                    "the contact already has these properties",
                ));
            }
            Ok(vec![
                ContactPropertiesChanged {
                    contact_id,
                    changes,
                }
                .into(),
            ])
        }
        C::LinkIdentity { identity } => {
            record::writer(ctx, false)?;
            let contact_id = live(state)?;
            let identity = valid_identity("identity", identity)?;
            if state.has_identity(&identity) {
                return Err(DomainError::rejected(
                    "ALREADY_LINKED",
                    Some("identity"),
                    "the contact already has this identity",
                ));
            }
            Ok(vec![
                ContactIdentityLinked {
                    contact_id,
                    identity,
                }
                .into(),
            ])
        }
        C::Erase {
            conversation_ids,
            reason,
        } => {
            match record::writer(ctx, false)? {
                record::Writer::System => {}
                record::Writer::User(id)
                    if ctx.directory.user(id).is_some_and(|user| user.is_admin()) => {}
                _ => return Err(DomainError::forbidden("only admins erase contacts")),
            }
            let contact_id = live(state)?;
            let reason = crate::conversation::erasure_reason(reason)?;
            let conversation_ids: BTreeSet<Uuid> = conversation_ids.iter().copied().collect();
            Ok(vec![
                ContactErased {
                    contact_id,
                    conversation_ids: conversation_ids.into_iter().collect(),
                    reason,
                }
                .into(),
            ])
        }
        C::ChangeOwner { owner_user_id } => {
            record::writer(ctx, false)?;
            let contact_id = live(state)?;
            if let Some(owner) = owner_user_id {
                record::require_agent(ctx, "ownerUserId", *owner)?;
            }
            if state.owner_user_id == *owner_user_id {
                return Err(DomainError::rejected(
                    "UNCHANGED",
                    Some("ownerUserId"),
                    "the contact already has this owner",
                ));
            }
            Ok(vec![
                ContactOwnerChanged {
                    contact_id,
                    owner_user_id: *owner_user_id,
                }
                .into(),
            ])
        }
    }
}

/// Decides a merge over both contacts' folded streams; see the module's note on merging.
///
/// `held_elsewhere` are the contacts whose streams hold an association with the merged contact
/// (an association between two contacts lives in the stream of the lesser id, so the merged
/// contact's own stream does not show them): the survivor is associated with each of them too.
pub fn decide_merge(
    survivor: &Contact,
    merged: &Contact,
    command: &MergeContacts,
    held_elsewhere: &[Uuid],
    ctx: &Context<'_>,
) -> Result<MergeDecision, DomainError> {
    record::writer(ctx, false)?;
    let MergeContacts {
        survivor_id,
        merged_id,
    } = *command;
    if survivor_id == merged_id {
        return Err(DomainError::invalid(
            "mergedId",
            "a contact cannot be merged into itself",
        ));
    }
    if survivor.id != Some(survivor_id) || merged.id != Some(merged_id) {
        return Err(DomainError::NotFound { what: "contact" });
    }
    live(survivor)?;
    if merged.erased {
        return Err(DomainError::rejected(
            "ERASED",
            Some("mergedId"),
            format!("contact {merged_id} was erased"),
        ));
    }
    if survivor.absorbed.contains(&merged_id) {
        return Err(DomainError::rejected(
            "MERGED",
            Some("mergedId"),
            format!("contact {merged_id} was already merged into contact {survivor_id}"),
        ));
    }
    let merged_events: Vec<DomainEvent> = match merged.merged_into {
        None => vec![
            ContactsMerged {
                survivor_id,
                merged_id,
            }
            .into(),
        ],
        // The tombstone is written but not the survivor's part: resume.
        Some(into) if into == survivor_id => vec![],
        Some(into) => return Err(merged_away(merged_id, into)),
    };
    let me = RecordRef {
        kind: RecordKind::Contact,
        id: survivor_id,
    };
    // Every contact the merged one is associated with: those whose streams hold it, and those
    // its own stream holds (whose association with the survivor may belong in their stream).
    let mut elsewhere: Vec<RecordRef> = held_elsewhere
        .iter()
        .map(|id| RecordRef {
            kind: RecordKind::Contact,
            id: *id,
        })
        .chain(
            merged
                .associations
                .iter()
                .filter(|other| other.kind == RecordKind::Contact)
                .copied(),
        )
        .filter(|other| other.id != survivor_id && other.id != merged_id)
        .collect();
    elsewhere.sort();
    elsewhere.dedup();
    let mut survivor_events = taken_over(survivor, merged, survivor_id, merged_id);
    // Associations the survivor's stream is to hold (it has the lesser id) ...
    for other in elsewhere.iter().filter(|o| canonical(me, **o).0 == me) {
        let already = survivor.associations.contains(other)
            || survivor_events
                .iter()
                .any(|e| matches!(e, DomainEvent::AssociationAdded(a) if a.to == *other));
        if !already {
            survivor_events.push(
                AssociationAdded {
                    from: me,
                    to: *other,
                }
                .into(),
            );
        }
    }
    Ok(MergeDecision {
        merged_stream: streams::contact(merged_id),
        merged_events,
        survivor_stream: streams::contact(survivor_id),
        survivor_events,
        transfers: merged.identities.clone(),
        // ... and those the other contact's stream is to hold.
        carried_by_others: elsewhere
            .into_iter()
            .filter(|o| canonical(me, *o).0 != me)
            .collect(),
    })
}

/// The survivor's events of a merge: the merge itself, then what it takes over.
fn taken_over(
    survivor: &Contact,
    merged: &Contact,
    survivor_id: Uuid,
    merged_id: Uuid,
) -> Vec<DomainEvent> {
    let mut events: Vec<DomainEvent> = vec![
        ContactsMerged {
            survivor_id,
            merged_id,
        }
        .into(),
    ];
    for identity in &merged.identities {
        if !survivor.has_identity(identity) {
            events.push(
                ContactIdentityLinked {
                    contact_id: survivor_id,
                    identity: identity.clone(),
                }
                .into(),
            );
        }
    }
    let changes: BTreeMap<String, Option<String>> = merged
        .properties
        .iter()
        .filter(|(name, _)| !survivor.properties.contains_key(*name))
        .map(|(name, value)| (name.clone(), Some(value.clone())))
        .collect();
    if !changes.is_empty() {
        events.push(
            ContactPropertiesChanged {
                contact_id: survivor_id,
                changes,
            }
            .into(),
        );
    }
    if survivor.owner_user_id.is_none() && merged.owner_user_id.is_some() {
        events.push(
            ContactOwnerChanged {
                contact_id: survivor_id,
                owner_user_id: merged.owner_user_id,
            }
            .into(),
        );
    }
    let me = RecordRef {
        kind: RecordKind::Contact,
        id: survivor_id,
    };
    let gone = RecordRef {
        kind: RecordKind::Contact,
        id: merged_id,
    };
    // Only associations whose canonical stream is the survivor's can be recorded there; one with
    // a contact of lesser id lives in that contact's stream and stays with the merged contact.
    for other in &merged.associations {
        if *other != me && !survivor.associations.contains(other) && canonical(me, *other).0 == me {
            events.push(
                AssociationAdded {
                    from: me,
                    to: *other,
                }
                .into(),
            );
        }
    }
    // An association between the two would now link the survivor with itself.
    if survivor.associations.contains(&gone) {
        events.push(AssociationRemoved { from: me, to: gone }.into());
    }
    events
}

/// The identities a command's events claim, each to be reserved before the events are appended
/// (see the module's note). Not for merges: their identities are transferred, see
/// [`MergeDecision::transfers`].
pub fn claimed_identities(events: &[DomainEvent]) -> Vec<&Identity> {
    events
        .iter()
        .flat_map(|event| match event {
            DomainEvent::ContactRecordCreated(e) => e.identities.iter().collect(),
            DomainEvent::ContactIdentityLinked(e) => vec![&e.identity],
            _ => vec![],
        })
        .collect()
}

/// The contact's id if it exists and was not merged away.
fn live(state: &Contact) -> Result<Uuid, DomainError> {
    let id = state.id.ok_or(DomainError::NotFound { what: "contact" })?;
    if state.erased {
        return Err(DomainError::rejected(
            "ERASED",
            None,
            format!("contact {id} was erased"),
        ));
    }
    match state.merged_into {
        Some(survivor_id) => Err(merged_away(id, survivor_id)),
        None => Ok(id),
    }
}

fn merged_away(id: Uuid, survivor_id: Uuid) -> DomainError {
    DomainError::rejected(
        "MERGED",
        None,
        format!("contact {id} was merged into contact {survivor_id}"),
    )
}

fn create(
    state: &Contact,
    contact_id: Uuid,
    identities: &[Identity],
    properties: &BTreeMap<String, String>,
    from_conversation_id: Option<Uuid>,
) -> Result<Vec<DomainEvent>, DomainError> {
    if state.exists() {
        return Err(DomainError::rejected(
            "ALREADY_EXISTS",
            Some("contactId"),
            "this contact already exists",
        ));
    }
    let mut valid: Vec<Identity> = Vec::with_capacity(identities.len());
    for identity in identities {
        let identity = valid_identity("identities", identity)?;
        let key = identity_key(&identity);
        if valid.iter().any(|i| identity_key(i) == key) {
            return Err(DomainError::invalid(
                "identities",
                format!("{} {:?} is listed twice", key.0.as_str(), key.1),
            ));
        }
        valid.push(identity);
    }
    let mut props = BTreeMap::new();
    for (name, value) in properties {
        property_name("properties", name)?;
        props.insert(name.clone(), property_value("properties", name, value)?);
    }
    Ok(vec![
        ContactRecordCreated {
            contact_id,
            identities: valid,
            properties: props,
            from_conversation_id,
        }
        .into(),
    ])
}

/// Whether `address` is an e-mail address the domain would keep (the one strict check every
/// address goes through, see [`valid_identity`]), for a caller that refuses a bad one before
/// anything else.
pub fn is_email_address(address: &str) -> bool {
    validate::email_address(address.trim())
}

/// The identity, trimmed, if well formed: an e-mail address as [`validate::email_address`]
/// takes it; a chat or Messenger id without blanks. None may hold a control character or be too
/// long to be reserved (its reservation stream's name has a bounded length).
pub(crate) fn valid_identity(
    field: &'static str,
    identity: &Identity,
) -> Result<Identity, DomainError> {
    let valid = match identity {
        Identity::Email { address } => {
            let address = address.trim();
            if !validate::email_address(address) {
                return Err(DomainError::invalid(
                    field,
                    format!("{address:?} is not an e-mail address"),
                ));
            }
            Identity::Email {
                address: address.to_owned(),
            }
        }
        Identity::ChatVisitor { visitor_id } => Identity::ChatVisitor {
            visitor_id: handle(field, "chat visitor id", visitor_id)?,
        },
        Identity::Messenger { psid } => Identity::Messenger {
            psid: handle(field, "Messenger id", psid)?,
        },
    };
    reservable(field, &valid)?;
    Ok(valid)
}

/// Refuses an identity that could not be reserved: one with a control character, or too long
/// for its reservation stream's name. Every identity a contact may get one day must pass, so
/// inbound messages check their sender with it too.
pub(crate) fn reservable(field: &'static str, identity: &Identity) -> Result<(), DomainError> {
    let (scope, value) = UniqueScope::of_identity(identity);
    let what = match identity {
        Identity::Email { .. } => "e-mail address",
        Identity::ChatVisitor { .. } => "chat visitor id",
        Identity::Messenger { .. } => "Messenger id",
    };
    validate::reservable(field, what, scope, value)
}

fn handle(field: &'static str, what: &str, value: &str) -> Result<String, DomainError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(DomainError::invalid(field, format!("{what} is empty")));
    }
    if value.chars().any(char::is_whitespace) || value.chars().count() > MAX_HANDLE {
        return Err(DomainError::invalid(
            field,
            format!("{what} {value:?} is not a valid id"),
        ));
    }
    Ok(value.to_owned())
}

/// Property names are machine names like the well-known ones (`first_name`, `job_title`):
/// lower-case ASCII letters, digits and underscores, starting with a letter.
fn property_name(field: &'static str, name: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(DomainError::invalid(field, "a property name is empty"));
    }
    let valid = name.len() <= MAX_PROPERTY_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!(
                "property name {name:?} must be lower-case letters, digits and underscores, \
                 starting with a letter, at most {MAX_PROPERTY_NAME} characters"
            ),
        ))
    }
}

/// The properties that hold a person's name, which visitors give (a form, the chat widget, the
/// bot's question): kept as [`display_name`](crate::display_name) keeps names.
const NAME_PROPERTIES: [&str; 3] = ["name", "first_name", "last_name"];

/// A property value, trimmed (a name also without bidi and control characters); clearing a
/// property is `unset`, not an empty value.
fn property_value(field: &'static str, name: &str, value: &str) -> Result<String, DomainError> {
    let cleaned;
    let value = if NAME_PROPERTIES.contains(&name) {
        cleaned = crate::display_name(value).unwrap_or_default();
        cleaned.as_str()
    } else {
        value.trim()
    };
    if value.is_empty() {
        return Err(DomainError::invalid(
            field,
            "a property value is empty; unset the property instead",
        ));
    }
    if value.chars().count() > MAX_PROPERTY_VALUE {
        return Err(DomainError::invalid(
            field,
            format!("a property value is longer than {MAX_PROPERTY_VALUE} characters"),
        ));
    }
    Ok(value.to_owned())
}
