//! Mutations of CRM records beside the inbox: creating companies, deals and tickets, and
//! associating any two records (contacts, companies, deals, tickets, conversations) or removing
//! an association.
//!
//! Users who write may do all of it (`switchboard_domain::record` decides); a ticket created from,
//! or an association with, a conversation needs the viewer to see that conversation.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use proto_events::event::{RecordKind, RecordRef};
use switchboard_service::Command;

use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::mutation::common::{Executed, RunOptions, decode_opt, minted_id, payload, run};
use crate::types::contact::RecordType;

/// Record mutations.
#[derive(Debug, Default)]
pub(crate) struct RecordMutation;

/// A company, deal or ticket just created.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct CreatedRecord {
    /// Global id.
    pub(crate) id: ID,
    /// Company, deal or ticket.
    pub(crate) kind: RecordType,
    /// Its name (a ticket's subject), as given.
    pub(crate) name: String,
}

/// Input of `createCompany`.
#[derive(Debug, InputObject)]
pub(crate) struct CreateCompanyInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// Its name.
    name: String,
    /// Its web domain, e.g. `example.com`.
    domain: Option<String>,
}

payload! {
    /// Result of `createCompany`.
    CreateCompanyPayload {
        /// The new company.
        record: CreatedRecord,
    }
}

/// Input of `createDeal`.
#[derive(Debug, InputObject)]
pub(crate) struct CreateDealInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// Its name.
    name: String,
    /// Its pipeline stage.
    stage: Option<String>,
    /// The user responsible for it (one who writes).
    owner_id: Option<ID>,
}

payload! {
    /// Result of `createDeal`.
    CreateDealPayload {
        /// The new deal.
        record: CreatedRecord,
    }
}

/// Input of `createTicket`.
#[derive(Debug, InputObject)]
pub(crate) struct CreateTicketInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// Its subject.
    subject: String,
    /// The conversation it is created from (and associated with); the viewer must see it.
    conversation_id: Option<ID>,
}

payload! {
    /// Result of `createTicket`.
    CreateTicketPayload {
        /// The new ticket.
        record: CreatedRecord,
    }
}

/// Input of `associateRecords` and `dissociateRecords`. The order of the two does not matter.
#[derive(Debug, InputObject)]
pub(crate) struct RecordAssociationInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// A contact, company, deal, ticket or conversation.
    from_id: ID,
    /// Another one (two conversations are not associated).
    to_id: ID,
}

payload! {
    /// Result of `associateRecords`.
    AssociateRecordsPayload {
        /// The first record, as given.
        from_id: ID,
        /// The second record, as given.
        to_id: ID,
    }
}

payload! {
    /// Result of `dissociateRecords`.
    DissociateRecordsPayload {
        /// The first record, as given.
        from_id: ID,
        /// The second record, as given.
        to_id: ID,
    }
}

/// The record a global id names; `field` names the input field in errors.
fn record_ref(id: &ID, field: &str) -> ApiResult<RecordRef> {
    let (kind, id) = ids::decode_any(id, field)?;
    let kind = match kind {
        Kind::Contact => RecordKind::Contact,
        Kind::Company => RecordKind::Company,
        Kind::Deal => RecordKind::Deal,
        Kind::Ticket => RecordKind::Ticket,
        Kind::Conversation => RecordKind::Conversation,
        other => {
            return Err(ApiError::bad_input(
                field,
                format!(
                    "expected a Contact, Company, Deal, Ticket or Conversation id, got a {} id",
                    other.name()
                ),
            ));
        }
    };
    Ok(RecordRef { kind, id })
}

/// The record `executed` created in a stream of `category`.
fn created(executed: &Executed, category: &str, kind: Kind, name: String) -> Option<CreatedRecord> {
    let record_kind = match kind {
        Kind::Company => RecordType::Company,
        Kind::Deal => RecordType::Deal,
        _ => RecordType::Ticket,
    };
    executed.created_id(category).map(|id| CreatedRecord {
        id: ids::encode(kind, id),
        kind: record_kind,
        name,
    })
}

/// Input fields named differently from the write side's.
const RENAMES: &[(&str, &str)] = &[
    ("to", "toId"),
    ("from", "fromId"),
    ("ownerUserId", "ownerId"),
    ("conversation", "conversationId"),
];

/// Runs a record command as the viewer.
async fn record(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    command: Command,
) -> ApiResult<Executed> {
    let options = RunOptions {
        renames: RENAMES,
        ..RunOptions::default()
    };
    run(ctx, client_mutation_id, command, options).await
}

#[Object]
impl RecordMutation {
    /// Creates a company (users who write).
    async fn create_company(
        &self,
        ctx: &Context<'_>,
        input: CreateCompanyInput,
    ) -> async_graphql::Result<CreateCompanyPayload> {
        let command = Command::CreateCompany {
            company_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            name: input.name.clone(),
            domain: input.domain,
        };
        let executed = record(ctx, input.client_mutation_id, command).await?;
        let created = created(&executed, "company", Kind::Company, input.name);
        Ok(CreateCompanyPayload {
            result: executed.result,
            record: created,
        })
    }

    /// Creates a deal (users who write).
    async fn create_deal(
        &self,
        ctx: &Context<'_>,
        input: CreateDealInput,
    ) -> async_graphql::Result<CreateDealPayload> {
        let command = Command::CreateDeal {
            deal_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            name: input.name.clone(),
            stage: input.stage,
            owner_user_id: decode_opt(input.owner_id.as_ref(), Kind::User, "ownerId")?,
        };
        let executed = record(ctx, input.client_mutation_id, command).await?;
        let created = created(&executed, "deal", Kind::Deal, input.name);
        Ok(CreateDealPayload {
            result: executed.result,
            record: created,
        })
    }

    /// Creates a ticket (users who write), possibly from a conversation, which it is then
    /// associated with.
    async fn create_ticket(
        &self,
        ctx: &Context<'_>,
        input: CreateTicketInput,
    ) -> async_graphql::Result<CreateTicketPayload> {
        let command = Command::CreateTicket {
            ticket_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            subject: input.subject.clone(),
            conversation_id: decode_opt(
                input.conversation_id.as_ref(),
                Kind::Conversation,
                "conversationId",
            )?,
        };
        let executed = record(ctx, input.client_mutation_id, command).await?;
        let created = created(&executed, "ticket", Kind::Ticket, input.subject);
        Ok(CreateTicketPayload {
            result: executed.result,
            record: created,
        })
    }

    /// Associates two records, e.g. a contact with a company or a conversation with a ticket
    /// (users who write; `ALREADY_ASSOCIATED` if they are).
    async fn associate_records(
        &self,
        ctx: &Context<'_>,
        input: RecordAssociationInput,
    ) -> async_graphql::Result<AssociateRecordsPayload> {
        let command = Command::AssociateRecords {
            from: record_ref(&input.from_id, "fromId")?,
            to: record_ref(&input.to_id, "toId")?,
        };
        let executed = record(ctx, input.client_mutation_id, command).await?;
        let ok = executed.ok();
        Ok(AssociateRecordsPayload {
            result: executed.result,
            from_id: ok.then_some(input.from_id),
            to_id: ok.then_some(input.to_id),
        })
    }

    /// Removes an association between two records (users who write).
    async fn dissociate_records(
        &self,
        ctx: &Context<'_>,
        input: RecordAssociationInput,
    ) -> async_graphql::Result<DissociateRecordsPayload> {
        let command = Command::DissociateRecords {
            from: record_ref(&input.from_id, "fromId")?,
            to: record_ref(&input.to_id, "toId")?,
        };
        let executed = record(ctx, input.client_mutation_id, command).await?;
        let ok = executed.ok();
        Ok(DissociateRecordsPayload {
            result: executed.result,
            from_id: ok.then_some(input.from_id),
            to_id: ok.then_some(input.to_id),
        })
    }
}
