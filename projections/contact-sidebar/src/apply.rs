//! How each event changes the contact-sidebar tables.
//!
//! Contact ids in events are resolved through merges when applied: an event naming a contact
//! that was merged away (a late message, a duplicate of the merge recorded in the other
//! contact's stream) changes the survivor instead.
//!
//! A batch keeps the conversation rows its messages keep changing in memory ([`Conversations`])
//! and writes each back once, at the end of the batch or before an event that changes
//! conversations by contact in SQL (a merge, a contact's erasure).
//!
//! The runtime's connection overwrites what it deletes (`secure_delete`), so that an erased
//! person's text stays neither in free pages nor in the unused space of pages (where earlier
//! versions of rewritten rows would linger too).

use proto_events::event::{
    AssociationAdded, AssociationRemoved, ContactErased, ContactRecordCreated, ContactsMerged,
    ConversationStarted, ConversationVisibility, RecordKind, RecordRef,
};

use proto_events::{DomainEvent, Envelope};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use switchboard_projector::{ApplyError, BatchRows, BatchTx, Event, EventError};
use uuid::Uuid;

use crate::sql::{identity_key, kind_str};

/// How many characters of a message the preview keeps.
const PREVIEW_CHARS: usize = 140;

/// One row of `conversations`, as a batch holds it.
#[derive(Debug, Clone)]
struct Conversation {
    contact_id: Option<String>,
    inbox_id: String,
    status: &'static str,
    private_owner_user_id: Option<String>,
    subject: Option<String>,
    last_preview: Option<String>,
    last_direction: Option<&'static str>,
    /// The contact who wrote the last message, if recognised.
    last_sender_id: Option<String>,
    /// The contact whose message gave it its subject, if recognised.
    subject_sender_id: Option<String>,
    started_at: Option<i64>,
    last_activity: i64,
}

/// The conversation rows a batch has read or changed; `None` for one known not to exist.
#[derive(Debug, Default)]
struct Conversations(BatchRows<Uuid, Conversation>);

impl Conversations {
    fn slot(
        &mut self,
        tx: &BatchTx<'_>,
        id: Uuid,
    ) -> rusqlite::Result<&mut (Option<Conversation>, bool)> {
        self.0.slot(id, |id| load_conversation(tx, *id))
    }

    /// The row of `id`, marked changed, if the conversation is known.
    fn get(&mut self, tx: &BatchTx<'_>, id: Uuid) -> rusqlite::Result<Option<&mut Conversation>> {
        self.0.get(id, |id| load_conversation(tx, *id))
    }

    /// Forgets the row of `id`, changed or not: it is deleted.
    fn forget(&mut self, tx: &BatchTx<'_>, id: Uuid) -> rusqlite::Result<()> {
        *self.slot(tx, id)? = (None, false);
        Ok(())
    }

    /// Writes every changed row back and forgets them all, so that SQL may change the table.
    fn flush(&mut self, tx: &BatchTx<'_>) -> rusqlite::Result<()> {
        for (id, c) in self.0.take_changed() {
            tx.execute_cached(
                "INSERT INTO conversations (conversation_id, contact_id, inbox_id, status,
                     private_owner_user_id, subject, last_preview, last_direction, started_at,
                     last_activity, last_sender_id, subject_sender_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (conversation_id) DO UPDATE SET
                     contact_id = excluded.contact_id, inbox_id = excluded.inbox_id,
                     status = excluded.status,
                     private_owner_user_id = excluded.private_owner_user_id,
                     subject = excluded.subject, last_preview = excluded.last_preview,
                     last_direction = excluded.last_direction, started_at = excluded.started_at,
                     last_activity = excluded.last_activity,
                     last_sender_id = excluded.last_sender_id,
                     subject_sender_id = excluded.subject_sender_id",
                params![
                    id.to_string(),
                    c.contact_id,
                    c.inbox_id,
                    c.status,
                    c.private_owner_user_id,
                    c.subject,
                    c.last_preview,
                    c.last_direction,
                    c.started_at,
                    c.last_activity,
                    c.last_sender_id,
                    c.subject_sender_id,
                ],
            )?;
        }
        Ok(())
    }
}

/// The stored row of conversation `id`, if any.
fn load_conversation(tx: &BatchTx<'_>, id: Uuid) -> rusqlite::Result<Option<Conversation>> {
    tx.query_row_cached(
        "SELECT contact_id, inbox_id, status, private_owner_user_id, subject,
                     last_preview, last_direction, started_at, last_activity, last_sender_id,
                     subject_sender_id
                 FROM conversations WHERE conversation_id = ?1",
        [id.to_string()],
        |r| {
            Ok(Conversation {
                contact_id: r.get(0)?,
                inbox_id: r.get(1)?,
                status: match r.get_ref(2)?.as_str()? {
                    "closed" => "closed",
                    _ => "open",
                },
                private_owner_user_id: r.get(3)?,
                subject: r.get(4)?,
                last_preview: r.get(5)?,
                last_direction: match r.get_ref(6)?.as_str_or_null()? {
                    None => None,
                    Some("inbound") => Some("inbound"),
                    Some(_) => Some("outbound"),
                },
                started_at: r.get(7)?,
                last_activity: r.get(8)?,
                last_sender_id: r.get(9)?,
                subject_sender_id: r.get(10)?,
            })
        },
    )
    .optional()
}

/// Applies a batch of events in log order.
pub(crate) fn apply_batch(tx: &Transaction<'_>, events: &[Event<'_>]) -> Result<(), EventError> {
    let tx = &BatchTx::new(tx);
    let mut conversations = Conversations::default();
    for (index, event) in events.iter().enumerate() {
        apply(tx, &mut conversations, event.envelope)
            .map_err(|source| EventError { index, source })?;
    }
    conversations.flush(tx).map_err(|e| EventError {
        index: events.len().saturating_sub(1),
        source: e.into(),
    })
}

/// Applies one event.
fn apply(
    tx: &BatchTx<'_>,
    conversations: &mut Conversations,
    event: &Envelope,
) -> Result<(), ApplyError> {
    let at = event.metadata.occurred_at.timestamp_micros();
    match &event.payload {
        DomainEvent::ContactRecordCreated(e) => contact_created(tx, conversations, e, at)?,
        DomainEvent::ContactPropertiesChanged(e) => {
            let contact = resolve(tx, e.contact_id)?;
            ensure_contact(tx, &contact)?;
            for (key, value) in &e.changes {
                match value {
                    Some(value) => tx.execute_cached(
                        "INSERT INTO contact_properties (contact_id, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (contact_id, key) DO UPDATE SET value = excluded.value",
                        params![contact, key, value],
                    )?,
                    None => tx.execute_cached(
                        "DELETE FROM contact_properties WHERE contact_id = ?1 AND key = ?2",
                        params![contact, key],
                    )?,
                };
            }
        }
        DomainEvent::ContactIdentityLinked(e) => {
            let contact = resolve(tx, e.contact_id)?;
            ensure_contact(tx, &contact)?;
            link_identity(tx, &contact, &e.identity)?;
        }
        DomainEvent::ContactOwnerChanged(e) => {
            let contact = resolve(tx, e.contact_id)?;
            ensure_contact(tx, &contact)?;
            tx.execute_cached(
                "UPDATE contacts SET owner_user_id = ?2 WHERE contact_id = ?1",
                params![contact, e.owner_user_id.map(|u| u.to_string())],
            )?;
        }
        DomainEvent::ContactsMerged(e) => {
            conversations.flush(tx)?;
            merge(tx, e, at)?
        }
        DomainEvent::ContactErased(e) => {
            conversations.flush(tx)?;
            contact_erased(tx, conversations, e)?
        }
        DomainEvent::ConversationErased(e) => {
            conversation_erased(tx, conversations, e.conversation_id)?
        }
        DomainEvent::CompanyCreated(e) => upsert_record(
            tx,
            RecordKind::Company,
            e.company_id,
            &e.name,
            None,
            e.domain.as_deref(),
        )?,
        DomainEvent::DealCreated(e) => upsert_record(
            tx,
            RecordKind::Deal,
            e.deal_id,
            &e.name,
            e.stage.as_deref(),
            None,
        )?,
        DomainEvent::TicketCreated(e) => tx
            .execute_cached(
                "INSERT INTO records (kind, record_id, name, from_conversation_id)
                 VALUES ('ticket', ?1, ?2, ?3)
                 ON CONFLICT (kind, record_id) DO UPDATE SET name = excluded.name,
                     from_conversation_id = excluded.from_conversation_id",
                params![
                    e.ticket_id.to_string(),
                    e.subject,
                    e.from_conversation_id.map(|c| c.to_string())
                ],
            )
            .map(drop)?,
        DomainEvent::AssociationAdded(AssociationAdded { from, to }) => {
            let (a, b) = (resolve_ref(tx, from)?, resolve_ref(tx, to)?);
            if a != b {
                for ((kind, id), (other_kind, other_id)) in [(&a, &b), (&b, &a)] {
                    tx.execute_cached(
                        "INSERT OR IGNORE INTO associations (kind, id, other_kind, other_id) VALUES (?1, ?2, ?3, ?4)",
                        params![kind, id, other_kind, other_id],
                    )?;
                }
            }
        }
        DomainEvent::AssociationRemoved(AssociationRemoved { from, to }) => {
            let (a, b) = (resolve_ref(tx, from)?, resolve_ref(tx, to)?);
            for ((kind, id), (other_kind, other_id)) in [(&a, &b), (&b, &a)] {
                tx.execute_cached(
                    "DELETE FROM associations WHERE kind = ?1 AND id = ?2 AND other_kind = ?3 AND other_id = ?4",
                    params![kind, id, other_kind, other_id],
                )?;
            }
        }
        DomainEvent::ConversationStarted(e) => conversation_started(tx, conversations, e, at)?,
        DomainEvent::MessageReceived(e) => {
            let contact = e.message.contact_id.map(|c| resolve(tx, c)).transpose()?;
            message(
                tx,
                conversations,
                e.conversation_id,
                e.inbox_id,
                contact,
                "inbound",
                &e.message.body_text,
                e.message.subject.as_deref(),
                at,
            )?;
        }
        DomainEvent::ReplySent(e) => {
            message(
                tx,
                conversations,
                e.conversation_id,
                e.inbox_id,
                None,
                "outbound",
                &e.body_text,
                e.subject.as_deref(),
                at,
            )?;
        }
        DomainEvent::ConversationClosed(e) => {
            status(tx, conversations, e.conversation_id, "closed", at)?
        }
        DomainEvent::ConversationReopened(e) => {
            status(tx, conversations, e.conversation_id, "open", at)?
        }
        DomainEvent::ConversationShared(e) => {
            if let Some(c) = conversations.get(tx, e.conversation_id)? {
                c.private_owner_user_id = None;
            }
        }
        // Everything else (organisation, inbox setup, routing, comments, deliveries, filtered
        // mail, uniqueness reservations) does not show in the sidebar.
        _ => {}
    }
    Ok(())
}

/// The live contact a contact id stands for: itself, or the survivor it was merged into.
/// Every message from a known contact asks (while applying, `conn` is the batch's transaction).
pub(crate) fn resolve(conn: &Connection, contact: Uuid) -> rusqlite::Result<String> {
    let id = contact.to_string();
    let survivor: Option<Option<String>> = conn
        .prepare_cached("SELECT merged_into FROM contacts WHERE contact_id = ?1")?
        .query_row([&id], |r| r.get(0))
        .optional()?;
    Ok(survivor.flatten().unwrap_or(id))
}

/// A record reference as stored, contacts resolved through merges.
fn resolve_ref(conn: &Connection, record: &RecordRef) -> rusqlite::Result<(&'static str, String)> {
    let id = match record.kind {
        RecordKind::Contact => resolve(conn, record.id)?,
        _ => record.id.to_string(),
    };
    Ok((kind_str(record.kind), id))
}

fn ensure_contact(tx: &BatchTx<'_>, contact: &str) -> rusqlite::Result<()> {
    tx.execute_cached(
        "INSERT OR IGNORE INTO contacts (contact_id) VALUES (?1)",
        [contact],
    )?;
    Ok(())
}

fn link_identity(
    tx: &BatchTx<'_>,
    contact: &str,
    identity: &proto_events::event::Identity,
) -> rusqlite::Result<()> {
    let (kind, normalised, value) = identity_key(identity);
    tx.execute_cached(
        "INSERT INTO contact_identities (kind, normalised, value, contact_id) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, normalised) DO UPDATE SET value = excluded.value, contact_id = excluded.contact_id",
        params![kind, normalised, value, contact],
    )?;
    Ok(())
}

fn contact_created(
    tx: &BatchTx<'_>,
    conversations: &mut Conversations,
    e: &ContactRecordCreated,
    at: i64,
) -> rusqlite::Result<()> {
    let contact = resolve(tx, e.contact_id)?;
    ensure_contact(tx, &contact)?;
    tx.execute_cached(
        "UPDATE contacts SET created_at = COALESCE(created_at, ?2) WHERE contact_id = ?1",
        params![contact, at],
    )?;
    for identity in &e.identities {
        link_identity(tx, &contact, identity)?;
    }
    for (key, value) in &e.properties {
        tx.execute_cached(
            "INSERT INTO contact_properties (contact_id, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (contact_id, key) DO UPDATE SET value = excluded.value",
            params![contact, key, value],
        )?;
    }
    // The visitor of that conversation is this contact from now on. Through the batch's rows,
    // not SQL on the table: nearly every new customer is a contact created beside a
    // conversation the batch holds, and writing the batch's rows back before each would write
    // most of them once per contact.
    if let Some(conversation) = e.from_conversation_id
        && let (Some(row), changed) = conversations.slot(tx, conversation)?
        && row.contact_id.is_none()
    {
        row.contact_id = Some(contact);
        *changed = true;
    }
    Ok(())
}

/// Moves everything of the merged contact to the survivor: identities, the properties the
/// survivor lacks, the owner if the survivor has none, associations and conversations.
/// Applying the same merge twice (it is recorded in both streams) changes nothing the second time.
fn merge(tx: &BatchTx<'_>, e: &ContactsMerged, at: i64) -> rusqlite::Result<()> {
    let survivor = resolve(tx, e.survivor_id)?;
    let merged = resolve(tx, e.merged_id)?;
    if survivor == merged {
        return Ok(());
    }
    ensure_contact(tx, &survivor)?;
    ensure_contact(tx, &merged)?;
    let statements = [
        "UPDATE contacts SET owner_user_id = COALESCE(owner_user_id,
             (SELECT owner_user_id FROM contacts WHERE contact_id = ?2)) WHERE contact_id = ?1",
        "INSERT OR IGNORE INTO contact_properties (contact_id, key, value)
             SELECT ?1, key, value FROM contact_properties WHERE contact_id = ?2",
        "UPDATE contact_identities SET contact_id = ?1 WHERE contact_id = ?2",
        "INSERT OR IGNORE INTO associations (kind, id, other_kind, other_id)
             SELECT 'contact', ?1, other_kind, other_id FROM associations WHERE kind = 'contact' AND id = ?2",
        "INSERT OR IGNORE INTO associations (kind, id, other_kind, other_id)
             SELECT kind, id, 'contact', ?1 FROM associations WHERE other_kind = 'contact' AND other_id = ?2",
        "UPDATE conversations SET contact_id = ?1 WHERE contact_id = ?2",
        "UPDATE contacts SET merged_into = ?1 WHERE merged_into = ?2",
    ];
    for statement in statements {
        tx.execute_cached(statement, params![survivor, merged])?;
    }
    // What is left of the merged contact (its properties the survivor had, its associations now
    // copied) goes; an association between the two would now be the survivor's with itself.
    tx.execute_cached(
        "DELETE FROM contact_properties WHERE contact_id = ?1",
        [&merged],
    )?;
    tx.execute_cached(
        "DELETE FROM associations WHERE (kind = 'contact' AND id = ?1) OR (other_kind = 'contact' AND other_id = ?1)",
        [&merged],
    )?;
    tx.execute_cached("DELETE FROM associations WHERE kind = 'contact' AND id = ?1 AND other_kind = 'contact' AND other_id = ?1", [&survivor])?;
    tx.execute_cached(
        "UPDATE contacts SET merged_into = ?1, merged_at = ?3 WHERE contact_id = ?2",
        params![survivor, merged, at],
    )?;
    Ok(())
}

/// Drops an erased contact and the contacts merged into it (their rows, properties and
/// identities; associations, whichever end they are: each is stored both ways, and a merge
/// moved the merged contact's to its survivor) and the conversations the erasure names. The
/// conversations' own erasures follow and find them gone; one still naming the contact that
/// the erasure does not list is not erased on the write side, so it stays, without the
/// contact.
///
/// The contact is taken as named, not resolved through merges: only a contact not merged away
/// can be erased.
fn contact_erased(
    tx: &BatchTx<'_>,
    conversations: &mut Conversations,
    e: &ContactErased,
) -> rusqlite::Result<()> {
    for conversation in &e.conversation_ids {
        conversation_erased(tx, conversations, *conversation)?;
    }
    // The batch's rows first, so that the statements see (and change) them all.
    conversations.flush(tx)?;
    // `?1` and the contacts merged into it (their survivor is always this one, one hop).
    let statements = [
        // Their words as the last message of a conversation that stays (someone else's).
        "UPDATE conversations SET last_preview = '', last_sender_id = NULL
             WHERE last_sender_id = ?1
                OR last_sender_id IN (SELECT contact_id FROM contacts WHERE merged_into = ?1)",
        // A subject their message gave it.
        "UPDATE conversations SET subject = NULL, subject_sender_id = NULL
             WHERE subject_sender_id = ?1
                OR subject_sender_id IN (SELECT contact_id FROM contacts WHERE merged_into = ?1)",
        "DELETE FROM contact_properties WHERE contact_id = ?1
             OR contact_id IN (SELECT contact_id FROM contacts WHERE merged_into = ?1)",
        "DELETE FROM contact_identities WHERE contact_id = ?1
             OR contact_id IN (SELECT contact_id FROM contacts WHERE merged_into = ?1)",
        "DELETE FROM associations WHERE (kind, id, other_kind, other_id) IN
             (SELECT other_kind, other_id, kind, id FROM associations
              WHERE kind = 'contact' AND id = ?1)",
        "DELETE FROM associations WHERE kind = 'contact' AND id = ?1",
        "UPDATE conversations SET contact_id = NULL WHERE contact_id = ?1",
        "DELETE FROM contacts WHERE contact_id = ?1 OR merged_into = ?1",
    ];
    let contact = e.contact_id.to_string();
    for statement in statements {
        tx.execute_cached(statement, [&contact])?;
    }
    Ok(())
}

/// Drops an erased conversation's row and associations (whichever end it is; each is stored
/// both ways), and the subject of the tickets made from it: that subject is the conversation's
/// data, which reads as empty once erased. Erasing one the sidebar does not hold changes
/// nothing.
fn conversation_erased(
    tx: &BatchTx<'_>,
    conversations: &mut Conversations,
    conversation: Uuid,
) -> rusqlite::Result<()> {
    conversations.forget(tx, conversation)?;
    let statements = [
        "DELETE FROM conversations WHERE conversation_id = ?1",
        "DELETE FROM associations WHERE (kind, id, other_kind, other_id) IN
             (SELECT other_kind, other_id, kind, id FROM associations
              WHERE kind = 'conversation' AND id = ?1)",
        "DELETE FROM associations WHERE kind = 'conversation' AND id = ?1",
        "UPDATE records SET name = '' WHERE from_conversation_id = ?1",
    ];
    let conversation = conversation.to_string();
    for statement in statements {
        tx.execute_cached(statement, [&conversation])?;
    }
    Ok(())
}

fn upsert_record(
    tx: &BatchTx<'_>,
    kind: RecordKind,
    id: Uuid,
    name: &str,
    stage: Option<&str>,
    domain: Option<&str>,
) -> rusqlite::Result<()> {
    tx.execute_cached(
        "INSERT INTO records (kind, record_id, name, stage, domain) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (kind, record_id) DO UPDATE SET name = excluded.name, stage = excluded.stage, domain = excluded.domain",
        params![kind_str(kind), id.to_string(), name, stage, domain],
    )?;
    Ok(())
}

fn conversation_started(
    tx: &BatchTx<'_>,
    conversations: &mut Conversations,
    e: &ConversationStarted,
    at: i64,
) -> rusqlite::Result<()> {
    let contact = e.contact_id.map(|c| resolve(tx, c)).transpose()?;
    let owner = match &e.visibility {
        ConversationVisibility::Shared => None,
        ConversationVisibility::Private { owner_user_id } => Some(owner_user_id.to_string()),
    };
    let slot = conversations.slot(tx, e.conversation_id)?;
    slot.1 = true;
    match &mut slot.0 {
        // A row written by messages applied before the start keeps its status and inbox.
        Some(c) => {
            if contact.is_some() {
                c.contact_id = contact;
            }
            c.private_owner_user_id = owner;
            c.started_at.get_or_insert(at);
            c.last_activity = c.last_activity.max(at);
        }
        None => {
            slot.0 = Some(Conversation {
                contact_id: contact,
                inbox_id: e.inbox_id.to_string(),
                status: "open",
                private_owner_user_id: owner,
                subject: None,
                last_preview: None,
                last_direction: None,
                last_sender_id: None,
                subject_sender_id: None,
                started_at: Some(at),
                last_activity: at,
            });
        }
    }
    Ok(())
}

/// A message in or out: the new preview and last activity; the contact it was recognised as.
#[allow(clippy::too_many_arguments)]
fn message(
    tx: &BatchTx<'_>,
    conversations: &mut Conversations,
    conversation: Uuid,
    inbox: Uuid,
    contact: Option<String>,
    direction: &'static str,
    body: &str,
    subject: Option<&str>,
    at: i64,
) -> rusqlite::Result<()> {
    let preview = switchboard_projector::text::preview(body, PREVIEW_CHARS);
    let slot = conversations.slot(tx, conversation)?;
    slot.1 = true;
    match &mut slot.0 {
        Some(c) => {
            // The contact it first had stays: someone else writing in it (copied on the
            // thread) does not take it over.
            if c.contact_id.is_none() {
                c.contact_id.clone_from(&contact);
            }
            if c.subject.is_none() && subject.is_some() {
                c.subject = subject.map(str::to_owned);
                c.subject_sender_id.clone_from(&contact);
            }
            c.last_preview = Some(preview);
            c.last_direction = Some(direction);
            c.last_sender_id = contact;
            c.last_activity = c.last_activity.max(at);
        }
        None => {
            slot.0 = Some(Conversation {
                last_sender_id: contact.clone(),
                subject_sender_id: subject.and(contact.clone()),
                contact_id: contact,
                inbox_id: inbox.to_string(),
                status: "open",
                private_owner_user_id: None,
                subject: subject.map(str::to_owned),
                last_preview: Some(preview),
                last_direction: Some(direction),
                started_at: None,
                last_activity: at,
            });
        }
    }
    Ok(())
}

fn status(
    tx: &BatchTx<'_>,
    conversations: &mut Conversations,
    conversation: Uuid,
    status: &'static str,
    at: i64,
) -> rusqlite::Result<()> {
    if let Some(c) = conversations.get(tx, conversation)? {
        c.status = status;
        c.last_activity = c.last_activity.max(at);
    }
    Ok(())
}
