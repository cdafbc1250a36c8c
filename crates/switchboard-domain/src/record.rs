//! CRM records beside the inbox: companies, deals and tickets (streams `company-<id>`,
//! `deal-<id>`, `ticket-<id>`), and the associations between any two records, contacts and
//! conversations included.
//!
//! # Associations live in one canonical stream
//! Associations are undirected, but an event store checks one stream at a time. So that
//! "already associated" and "not associated" can be decided from a single stream, a pair is always
//! recorded in the stream of the *lesser* of its two [`RecordRef`]s (by kind, in the order
//! contact < company < deal < ticket < conversation, then by id), whichever order the command
//! names them in: see [`canonical`] and [`RecordCommand::stream`]. A conversation is therefore
//! never the owner of an association (two conversations are not associated), so the conversation
//! aggregate needs to know nothing of them; a contact's associations with companies, deals and
//! tickets all live in the contact's stream, which is what lets a merge move them.
//!
//! [`Record`] folds any of these streams, contact streams included, so the command service can
//! decide an association over whichever stream owns it.
//!
//! Who may do what: users who write (agents, admins, super admins) and the system actor (imports,
//! seeding); auditors, analysts, contacts, bots and channels change no record. A user must be able
//! to see the conversation a ticket is created from or associated with; what they cannot see is
//! reported as not found.

use std::collections::BTreeSet;

use proto_events::event::{
    AssociationAdded, AssociationRemoved, CompanyCreated, DealCreated, RecordKind, RecordRef,
    TicketCreated,
};
use proto_events::{Actor, DomainEvent, streams};
use uuid::Uuid;

use crate::validate::MAX_NAME;
use crate::{Context, DomainError};

/// A conversation as the command service found it, so a decider can check the actor may see it
/// without reading the conversation's stream itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationRef {
    /// The conversation.
    pub id: Uuid,
    /// The inbox it lives in.
    pub inbox_id: Uuid,
    /// The owner of the private e-mail account it came through, if it did: then only they and
    /// admins see it.
    pub private_owner: Option<Uuid>,
}

/// What a company, deal or ticket says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordDetails {
    /// A contact; its details are the [`crate::contact::Contact`] aggregate's business.
    Contact,
    /// A company.
    Company {
        /// Its name.
        name: String,
        /// Its web domain, lower-cased.
        domain: Option<String>,
    },
    /// A deal.
    Deal {
        /// Its name.
        name: String,
        /// Its pipeline stage.
        stage: Option<String>,
        /// The user responsible for it.
        owner_user_id: Option<Uuid>,
    },
    /// A ticket.
    Ticket {
        /// Its subject.
        subject: String,
        /// The conversation it was created from.
        from_conversation_id: Option<Uuid>,
    },
}

/// Any record's stream folded: what the record is, and what it is associated with (the
/// associations recorded in its own stream, see the module's note on canonical streams).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    reference: Option<RecordRef>,
    details: Option<RecordDetails>,
    merged_into: Option<Uuid>,
    associations: BTreeSet<RecordRef>,
}

impl Record {
    /// Folds one event of the record's stream in. Events about other things are ignored.
    pub fn evolve(&mut self, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::CompanyCreated(e) => self.created(
                RecordKind::Company,
                e.company_id,
                RecordDetails::Company {
                    name: e.name.clone(),
                    domain: e.domain.clone(),
                },
            ),
            E::DealCreated(e) => self.created(
                RecordKind::Deal,
                e.deal_id,
                RecordDetails::Deal {
                    name: e.name.clone(),
                    stage: e.stage.clone(),
                    owner_user_id: e.owner_user_id,
                },
            ),
            E::TicketCreated(e) => self.created(
                RecordKind::Ticket,
                e.ticket_id,
                RecordDetails::Ticket {
                    subject: e.subject.clone(),
                    from_conversation_id: e.from_conversation_id,
                },
            ),
            E::ContactRecordCreated(e) => {
                self.created(RecordKind::Contact, e.contact_id, RecordDetails::Contact);
            }
            E::ContactsMerged(e) if self.id() == Some(e.merged_id) => {
                self.merged_into = Some(e.survivor_id);
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

    fn created(&mut self, kind: RecordKind, id: Uuid, details: RecordDetails) {
        self.reference = Some(RecordRef { kind, id });
        self.details = Some(details);
    }

    fn id(&self) -> Option<Uuid> {
        self.reference.map(|r| r.id)
    }

    /// The end of an association that is not this record, if this record is one end.
    fn other_end(&self, from: RecordRef, to: RecordRef) -> Option<RecordRef> {
        let me = self.reference?;
        if from == me {
            Some(to)
        } else if to == me {
            Some(from)
        } else {
            None
        }
    }

    /// The record, once created.
    pub fn reference(&self) -> Option<RecordRef> {
        self.reference
    }

    /// Whether the record was created.
    pub fn exists(&self) -> bool {
        self.reference.is_some()
    }

    /// What the record says about itself, once created.
    pub fn details(&self) -> Option<&RecordDetails> {
        self.details.as_ref()
    }

    /// For a contact merged away: the contact it was merged into.
    pub fn merged_into(&self) -> Option<Uuid> {
        self.merged_into
    }

    /// The records associated with this one in its own stream.
    pub fn associations(&self) -> &BTreeSet<RecordRef> {
        &self.associations
    }

    /// This record as the other end of an association: what
    /// [`RecordCommand::AssociateRecords`] needs in `counterpart`.
    pub fn counterpart(&self) -> Counterpart {
        match (self.reference, self.merged_into) {
            (None, _) => Counterpart::Missing,
            (Some(_), Some(survivor_id)) => Counterpart::MergedContact { survivor_id },
            (Some(reference), None) => Counterpart::Found(reference),
        }
    }
}

/// What the command service found about the other end of an association, the one whose stream
/// is not written (`canonical(from, to).1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counterpart {
    /// Nothing: no such record, or no such conversation.
    Missing,
    /// A contact, company, deal or ticket that exists (see [`Record::counterpart`]).
    Found(RecordRef),
    /// A contact merged into another: the survivor should be associated instead.
    MergedContact {
        /// The contact it was merged into.
        survivor_id: Uuid,
    },
    /// A conversation, located so that access can be checked.
    Conversation(ConversationRef),
}

/// A change to companies, deals, tickets or associations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordCommand {
    /// Create a company.
    CreateCompany {
        company_id: Uuid,
        name: String,
        domain: Option<String>,
    },
    /// Create a deal.
    CreateDeal {
        deal_id: Uuid,
        name: String,
        stage: Option<String>,
        owner_user_id: Option<Uuid>,
    },
    /// Create a ticket, possibly from a conversation (which it is then associated with).
    CreateTicket {
        ticket_id: Uuid,
        subject: String,
        /// The conversation, as resolved by the service; the actor must be able to see it.
        conversation: Option<ConversationRef>,
    },
    /// Associate two records. The order of `from` and `to` does not matter: the association is
    /// recorded in the canonical stream (see [`canonical`]).
    AssociateRecords {
        from: RecordRef,
        to: RecordRef,
        /// What the service found about `canonical(from, to).1`.
        counterpart: Counterpart,
    },
    /// Remove an association, recorded in the canonical stream like its addition.
    DissociateRecords { from: RecordRef, to: RecordRef },
}

impl RecordCommand {
    /// The stream this command writes to: the state [`decide`] needs is this stream folded into
    /// a [`Record`].
    pub fn stream(&self) -> String {
        match self {
            Self::CreateCompany { company_id, .. } => streams::company(*company_id),
            Self::CreateDeal { deal_id, .. } => streams::deal(*deal_id),
            Self::CreateTicket { ticket_id, .. } => streams::ticket(*ticket_id),
            Self::AssociateRecords { from, to, .. } | Self::DissociateRecords { from, to } => {
                stream_of(canonical(*from, *to).0)
            }
        }
    }
}

/// The pair in canonical order: `(owner, other)`, where the association is recorded in the
/// owner's stream. The owner is the lesser reference (kind first, then id).
pub fn canonical(a: RecordRef, b: RecordRef) -> (RecordRef, RecordRef) {
    if a <= b { (a, b) } else { (b, a) }
}

/// What a contact merge writes to `holder` (a contact whose stream holds an association with the
/// merged contact, and would hold one with the survivor): the association with the survivor,
/// unless it has it already or was itself merged away.
pub fn carry_over(holder: &Record, survivor: RecordRef) -> Vec<DomainEvent> {
    match holder.reference {
        Some(me)
            if holder.merged_into.is_none()
                && me != survivor
                && !holder.associations.contains(&survivor) =>
        {
            let (from, to) = canonical(me, survivor);
            vec![AssociationAdded { from, to }.into()]
        }
        _ => Vec::new(),
    }
}

/// The stream of a record of any kind.
pub fn stream_of(record: RecordRef) -> String {
    match record.kind {
        RecordKind::Contact => streams::contact(record.id),
        RecordKind::Company => streams::company(record.id),
        RecordKind::Deal => streams::deal(record.id),
        RecordKind::Ticket => streams::ticket(record.id),
        RecordKind::Conversation => streams::conversation(record.id),
    }
}

/// A record kind as `DomainError::NotFound` names it.
fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Contact => "contact",
        RecordKind::Company => "company",
        RecordKind::Deal => "deal",
        RecordKind::Ticket => "ticket",
        RecordKind::Conversation => "conversation",
    }
}

/// Decides a record command over the folded stream named by [`RecordCommand::stream`].
pub fn decide(
    state: &Record,
    command: &RecordCommand,
    ctx: &Context<'_>,
) -> Result<Vec<DomainEvent>, DomainError> {
    use RecordCommand as C;
    let writer = writer(ctx, false)?;
    match command {
        C::CreateCompany {
            company_id,
            name,
            domain: company_domain,
        } => {
            not_yet_created(state, "companyId", "company")?;
            Ok(vec![
                CompanyCreated {
                    company_id: *company_id,
                    name: text("name", name, MAX_NAME)?,
                    domain: company_domain
                        .as_deref()
                        .map(|d| domain("domain", d))
                        .transpose()?,
                }
                .into(),
            ])
        }
        C::CreateDeal {
            deal_id,
            name,
            stage,
            owner_user_id,
        } => {
            not_yet_created(state, "dealId", "deal")?;
            let name = text("name", name, MAX_NAME)?;
            let stage = stage
                .as_deref()
                .map(|s| text("stage", s, MAX_NAME))
                .transpose()?;
            if let Some(owner) = owner_user_id {
                require_agent(ctx, "ownerUserId", *owner)?;
            }
            Ok(vec![
                DealCreated {
                    deal_id: *deal_id,
                    name,
                    stage,
                    owner_user_id: *owner_user_id,
                }
                .into(),
            ])
        }
        C::CreateTicket {
            ticket_id,
            subject,
            conversation,
        } => {
            not_yet_created(state, "ticketId", "ticket")?;
            let subject = text("subject", subject, MAX_NAME)?;
            if let Some(conversation) = conversation {
                require_visible(writer, ctx, conversation)?;
            }
            let mut events = vec![
                TicketCreated {
                    ticket_id: *ticket_id,
                    subject,
                    from_conversation_id: conversation.map(|c| c.id),
                }
                .into(),
            ];
            if let Some(conversation) = conversation {
                events.push(
                    AssociationAdded {
                        from: RecordRef {
                            kind: RecordKind::Ticket,
                            id: *ticket_id,
                        },
                        to: RecordRef {
                            kind: RecordKind::Conversation,
                            id: conversation.id,
                        },
                    }
                    .into(),
                );
            }
            Ok(events)
        }
        C::AssociateRecords {
            from,
            to,
            counterpart,
        } => {
            let (owner, other) = pair(*from, *to)?;
            live_owner(state, owner)?;
            match counterpart {
                Counterpart::Found(found) if *found == other => {}
                Counterpart::Conversation(c)
                    if other.kind == RecordKind::Conversation && c.id == other.id =>
                {
                    require_visible(writer, ctx, c)?;
                }
                Counterpart::MergedContact { survivor_id } => {
                    return Err(DomainError::rejected(
                        "MERGED",
                        Some("to"),
                        format!(
                            "contact {} was merged into contact {survivor_id}; associate that one",
                            other.id
                        ),
                    ));
                }
                // Missing, or a record other than the one named: either way not this one.
                _ => {
                    return Err(DomainError::NotFound {
                        what: kind_name(other.kind),
                    });
                }
            }
            if state.associations.contains(&other) {
                return Err(DomainError::rejected(
                    "ALREADY_ASSOCIATED",
                    Some("to"),
                    "these records are already associated",
                ));
            }
            Ok(vec![
                AssociationAdded {
                    from: owner,
                    to: other,
                }
                .into(),
            ])
        }
        C::DissociateRecords { from, to } => {
            let (owner, other) = pair(*from, *to)?;
            live_owner(state, owner)?;
            if !state.associations.contains(&other) {
                return Err(DomainError::rejected(
                    "NOT_ASSOCIATED",
                    Some("to"),
                    "these records are not associated",
                ));
            }
            Ok(vec![
                AssociationRemoved {
                    from: owner,
                    to: other,
                }
                .into(),
            ])
        }
    }
}

fn not_yet_created(
    state: &Record,
    field: &'static str,
    what: &'static str,
) -> Result<(), DomainError> {
    if state.exists() {
        return Err(DomainError::rejected(
            "ALREADY_EXISTS",
            Some(field),
            format!("this {what} already exists"),
        ));
    }
    Ok(())
}

/// Checks a pair may be associated at all and puts it in canonical order.
fn pair(from: RecordRef, to: RecordRef) -> Result<(RecordRef, RecordRef), DomainError> {
    if from == to {
        return Err(DomainError::invalid(
            "to",
            "a record cannot be associated with itself",
        ));
    }
    if from.kind == RecordKind::Conversation && to.kind == RecordKind::Conversation {
        return Err(DomainError::invalid(
            "to",
            "conversations are associated with records, not with each other",
        ));
    }
    Ok(canonical(from, to))
}

/// The state must be the owner's stream, created, and (for a contact) not merged away.
fn live_owner(state: &Record, owner: RecordRef) -> Result<(), DomainError> {
    if state.reference != Some(owner) {
        return Err(DomainError::NotFound {
            what: kind_name(owner.kind),
        });
    }
    if let Some(survivor_id) = state.merged_into {
        return Err(DomainError::rejected(
            "MERGED",
            None,
            format!("contact {} was merged into contact {survivor_id}", owner.id),
        ));
    }
    Ok(())
}

/// Who is writing, once checked that they may write contacts and records at all.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Writer {
    /// Switchboard itself: imports, seeding, process managers.
    System,
    /// A channel integration, e.g. creating a contact for a new visitor.
    Channel,
    /// A user who may write.
    User(Uuid),
}

/// The caller as a [`Writer`], or `Forbidden`. Channels write only where `channel_may` says.
pub(crate) fn writer(ctx: &Context<'_>, channel_may: bool) -> Result<Writer, DomainError> {
    match ctx.actor {
        Actor::System { .. } => Ok(Writer::System),
        Actor::Channel { .. } if channel_may => Ok(Writer::Channel),
        Actor::User { id } => match ctx.directory.user(*id) {
            Some(user) if user.can_write() => Ok(Writer::User(*id)),
            Some(_) => Err(DomainError::forbidden(
                "auditors and analysts change no contact or record",
            )),
            None => Err(DomainError::forbidden("unknown user")),
        },
        Actor::Channel { .. } => Err(DomainError::forbidden(
            "channels only create contacts from visitors",
        )),
        Actor::Contact { .. } | Actor::Bot { .. } => Err(DomainError::forbidden(
            "only users and the system change contacts and records",
        )),
    }
}

/// A user must be able to see the conversation; what they cannot see does not exist for them.
pub(crate) fn require_visible(
    writer: Writer,
    ctx: &Context<'_>,
    conversation: &ConversationRef,
) -> Result<(), DomainError> {
    match writer {
        Writer::System | Writer::Channel => Ok(()),
        Writer::User(user_id) => {
            if ctx.directory.can_see_conversation(
                user_id,
                conversation.inbox_id,
                conversation.private_owner,
            ) {
                Ok(())
            } else {
                Err(DomainError::NotFound {
                    what: "conversation",
                })
            }
        }
    }
}

/// The user exists and may take work (not an auditor or analyst): owners of contacts and deals.
pub(crate) fn require_agent(
    ctx: &Context<'_>,
    field: &'static str,
    user_id: Uuid,
) -> Result<(), DomainError> {
    let user = ctx
        .directory
        .user(user_id)
        .ok_or(DomainError::NotFound { what: "user" })?;
    if !user.active {
        return Err(DomainError::rejected(
            "USER_DEACTIVATED",
            Some(field),
            "the user is deactivated",
        ));
    }
    if !user.can_write() {
        return Err(DomainError::rejected(
            "NOT_AN_AGENT",
            Some(field),
            "auditors and analysts own no contacts or records",
        ));
    }
    Ok(())
}

/// Trimmed, non-empty text of at most `max` characters.
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A web domain such as `example.com`: lower-cased, without scheme, path or trailing dot.
fn domain(field: &'static str, value: &str) -> Result<String, DomainError> {
    let domain = value.trim().trim_end_matches('.').to_lowercase();
    let valid = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if valid {
        Ok(domain)
    } else {
        Err(DomainError::invalid(
            field,
            format!("{value:?} is not a web domain such as example.com"),
        ))
    }
}
