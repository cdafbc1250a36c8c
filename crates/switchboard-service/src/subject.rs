//! Subject access (GDPR Art. 15): everything recorded about one contact, as one JSON document.
//!
//! The document is built from the log, read through the data subjects' keys (the service's
//! store must open sealed fields: [`switchboard_codec::keyring::KeyedStore`]): the contact's own
//! stream and those of the contacts merged into it, and the streams of its conversations,
//! every event with its type, time, actor and payload, as recorded. Files (attachments, original
//! e-mails) are listed by reference (name, type, size, SHA-256) inside the payloads; their bytes
//! are downloaded separately. Staff identities appear as ids only.
//!
//! Which conversations are the contact's is found as an erasure finds them, by reading the
//! whole log ([`scan`], then `CommandService::subject_access`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use proto_events::event::{Identity, InboundMessage};
use proto_events::{DomainEvent, Envelope, streams};
use serde_json::{Value, json};
use switchboard_domain::contact::Contact;
use switchboard_domain::contact::reservation::Reservation;
use switchboard_store::{EventStore, Position};
use uuid::Uuid;

use crate::{CommandService, ServiceError};

/// The name and version of the document's format.
pub const FORMAT: &str = "switchboard.subject-access/1";

/// Events read per call.
const PAGE: usize = 1_000;

/// Everything recorded about `contact_id`, the contacts merged into it (`family`, which may
/// include it) and `conversation_ids`, as one document, read through `service`'s store; `None`
/// when no such contact was ever created.
pub(crate) async fn contact_data(
    service: &CommandService,
    contact_id: Uuid,
    family: &BTreeSet<Uuid>,
    conversation_ids: &BTreeSet<Uuid>,
    now: DateTime<Utc>,
) -> Result<Option<Value>, ServiceError> {
    let own = whole_stream(service, &streams::contact(contact_id)).await?;
    let mut contact = Contact::default();
    for envelope in &own {
        contact.evolve(&envelope.payload);
    }
    if !contact.exists() {
        return Ok(None);
    }
    let mut records = vec![stream_document(&streams::contact(contact_id), &own)];
    for merged in family.iter().filter(|id| **id != contact_id) {
        let stream = streams::contact(*merged);
        records.push(stream_document(
            &stream,
            &whole_stream(service, &stream).await?,
        ));
    }
    let mut conversations = Vec::new();
    for &conversation_id in conversation_ids {
        let stream = streams::conversation(conversation_id);
        let events = whole_stream(service, &stream).await?;
        if !events.is_empty() {
            conversations.push(stream_document(&stream, &events));
        }
    }
    Ok(Some(json!({
        "format": FORMAT,
        "contactId": contact_id,
        "generatedAt": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "erased": contact.is_erased(),
        "contact": {
            "properties": contact.properties(),
            "identities": contact.identities(),
            "ownerUserId": contact.owner_user_id(),
            "mergedContactIds": family.iter().filter(|id| **id != contact_id).collect::<Vec<_>>(),
            "associations": contact.associations(),
        },
        "contactRecords": records,
        "conversations": conversations,
    })))
}

/// What [`scan`] found in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The contacts it was read for.
    pub contact_ids: BTreeSet<Uuid>,
    /// The identities it was read for, as [`identity_key`] compares them.
    pub identities: BTreeSet<String>,
    /// Every conversation whose payloads name one of the contacts as its contact (started with
    /// it, a message recognised as it, or the contact created from it), or with a message from
    /// one of the identities.
    pub conversations: BTreeSet<Uuid>,
    /// Every blob the log's messages and replies reference (attachments, original e-mails), with
    /// what references it.
    pub blobs: BTreeMap<String, BTreeSet<Reference>>,
    /// Every conversation the log shows erased (`ConversationErased`): references of theirs
    /// keep no blob.
    pub erased: BTreeSet<Uuid>,
    /// The last position read.
    pub head: Position,
}

impl Scan {
    /// Whether it was read for these contacts and identities.
    pub fn is_for(&self, contact_ids: &BTreeSet<Uuid>, identities: &[Identity]) -> bool {
        self.contact_ids == *contact_ids
            && self.identities == identities.iter().map(identity_key).collect()
    }

    /// Adds what `later` (read after this one's head) found.
    pub fn extend(&mut self, later: Scan) {
        self.conversations.extend(later.conversations);
        for (name, users) in later.blobs {
            self.blobs.entry(name).or_default().extend(users);
        }
        self.erased.extend(later.erased);
        self.head = self.head.max(later.head);
    }

    /// The blobs referenced only in `conversations`, in conversations erased before, or by
    /// messages of `senders` (wherever they wrote: their files in someone else's conversation
    /// are theirs): what erasing them may delete.
    pub fn blobs_only_of(
        &self,
        conversations: &BTreeSet<Uuid>,
        senders: &BTreeSet<Uuid>,
    ) -> Vec<String> {
        self.blobs
            .iter()
            .filter(|(_, users)| {
                users.iter().all(|user| {
                    conversations.contains(&user.conversation_id)
                        || self.erased.contains(&user.conversation_id)
                        || user.sender.is_some_and(|sender| senders.contains(&sender))
                })
            })
            .map(|(sha256, _)| sha256.clone())
            .collect()
    }
}

/// What references a blob: a message (with its recognised sender) or a reply, in a
/// conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// The conversation it is in.
    pub conversation_id: Uuid,
    /// The contact the message came from; `None` for a reply, or a sender not recognised.
    pub sender: Option<Uuid>,
}

/// Reads the whole log for the conversations of `contact_ids` and `identities` (compared as
/// reservations compare them), for every blob reference and for every erased conversation
/// ([`Scan`]).
pub async fn scan(
    store: &dyn EventStore,
    contact_ids: &BTreeSet<Uuid>,
    identities: &[Identity],
) -> Result<Scan, ServiceError> {
    scan_after(store, Position::START, contact_ids, identities).await
}

/// [`scan`] of the events after `after` only.
pub async fn scan_after(
    store: &dyn EventStore,
    after: Position,
    contact_ids: &BTreeSet<Uuid>,
    identities: &[Identity],
) -> Result<Scan, ServiceError> {
    let identities: BTreeSet<String> = identities.iter().map(identity_key).collect();
    let mut found = Scan {
        contact_ids: contact_ids.clone(),
        identities: identities.clone(),
        head: after,
        ..Scan::default()
    };
    let mut after = after;
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        found.head = after;
        for event in &page {
            if event.event_type == "ConversationErased" {
                if let DomainEvent::ConversationErased(e) = crate::codec::decode(event)?.payload {
                    found.erased.insert(e.conversation_id);
                }
                continue;
            }
            if !matches!(
                event.event_type.as_str(),
                "ConversationStarted"
                    | "MessageReceived"
                    | "MessageFiltered"
                    | "ReplySent"
                    | "ContactRecordCreated"
            ) {
                continue;
            }
            let mut inbound = |conversation_id: Uuid, message: &InboundMessage| {
                if identities.contains(&identity_key(&message.from)) {
                    found.conversations.insert(conversation_id);
                }
                let files = message.attachments.iter().map(|a| &a.blob);
                for blob in files.chain(message.raw.iter().map(|r| &r.blob)) {
                    found
                        .blobs
                        .entry(blob.sha256.clone())
                        .or_default()
                        .insert(Reference {
                            conversation_id,
                            sender: message.contact_id,
                        });
                }
                message.contact_id.map(|c| (c, conversation_id))
            };
            let named = match crate::codec::decode(event)?.payload {
                DomainEvent::ConversationStarted(e) => e.contact_id.map(|c| (c, e.conversation_id)),
                DomainEvent::MessageReceived(e) => inbound(e.conversation_id, &e.message),
                DomainEvent::MessageFiltered(e) => inbound(e.conversation_id, &e.message),
                DomainEvent::ReplySent(e) => {
                    for attachment in &e.attachments {
                        found
                            .blobs
                            .entry(attachment.blob.sha256.clone())
                            .or_default()
                            .insert(Reference {
                                conversation_id: e.conversation_id,
                                sender: None,
                            });
                    }
                    None
                }
                DomainEvent::ContactRecordCreated(e) => {
                    e.from_conversation_id.map(|id| (e.contact_id, id))
                }
                _ => None,
            };
            if let Some((contact, conversation)) = named
                && contact_ids.contains(&contact)
            {
                found.conversations.insert(conversation);
            }
        }
    }
    Ok(found)
}

/// An identity as reservations compare it (scope and normalised value): the name of its
/// reservation stream.
pub fn identity_key(identity: &Identity) -> String {
    Reservation::of_identity(identity).stream()
}

/// Every event of `stream`, decoded.
async fn whole_stream(
    service: &CommandService,
    stream: &str,
) -> Result<Vec<Envelope>, ServiceError> {
    let (events, _) = service
        .load_envelopes(stream, Vec::new(), |all, envelope| {
            all.push(envelope.clone())
        })
        .await?;
    Ok(events)
}

/// One stream's events: type, time, position, actor and payload as recorded (opened).
fn stream_document(stream: &str, events: &[Envelope]) -> Value {
    let list: Vec<Value> = events
        .iter()
        .map(|envelope| {
            json!({
                "type": envelope.event_type,
                "position": envelope.position,
                "occurredAt": envelope.metadata.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                "actor": envelope.metadata.actor,
                "payload": envelope.payload,
            })
        })
        .collect();
    json!({ "stream": stream, "events": list })
}
