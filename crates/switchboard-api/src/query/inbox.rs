//! The inbox queries: the organisation, users, teams, inboxes, conversations and contacts.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use proto_events::event::Identity;

use crate::ids::{self, Kind};
use crate::state::{access, state};
use crate::types::contact::{Contact, IdentityKind};
use crate::types::conversation::{Conversation, ConversationConnection, ConversationFilter, list};
use crate::types::directory::{Bot, Team, User};
use crate::types::inbox::{self, Inbox};

/// The organisation's settings.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Organisation {
    /// Display name.
    name: String,
    /// IANA time zone, e.g. `Europe/Paris`.
    time_zone: String,
    /// The time zone opening hours are expressed in.
    business_hours_time_zone: String,
    /// Opening hours, e.g. `MON 09:00-17:00`.
    business_hours: Vec<String>,
}

/// Look up a contact by how it is recognised.
#[derive(Debug, InputObject)]
pub(crate) struct IdentityInput {
    /// E-mail, chat visitor or Messenger.
    kind: IdentityKind,
    /// The address or id.
    value: String,
}

/// The inbox queries.
#[derive(Debug, Default)]
pub(crate) struct InboxQuery;

#[Object]
impl InboxQuery {
    /// The organisation, once created.
    async fn organisation(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organisation>> {
        access(ctx).await?;
        let view = state(ctx).directory().await?;
        Ok(view.directory.organisation.as_ref().map(|o| Organisation {
            name: o.name.clone(),
            time_zone: o.time_zone.clone(),
            business_hours_time_zone: o.business_hours_time_zone.clone(),
            business_hours: o
                .business_hours
                .iter()
                .map(|i| {
                    format!(
                        "{} {}-{}",
                        format!("{:?}", i.day).to_uppercase(),
                        i.opens.format("%H:%M"),
                        i.closes.format("%H:%M")
                    )
                })
                .collect(),
        }))
    }

    /// Every user, by name.
    async fn users(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        access(ctx).await?;
        let view = state(ctx).directory().await?;
        let mut users: Vec<User> = view.directory.users.values().cloned().map(User).collect();
        users.sort_by(|a, b| (&a.0.name, a.0.id).cmp(&(&b.0.name, b.0.id)));
        Ok(users)
    }

    /// Every team, by name.
    async fn teams(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Team>> {
        access(ctx).await?;
        let view = state(ctx).directory().await?;
        let mut teams: Vec<Team> = view.directory.teams.values().cloned().map(Team).collect();
        teams.sort_by(|a, b| (&a.0.name, a.0.id).cmp(&(&b.0.name, b.0.id)));
        Ok(teams)
    }

    /// Every bot, by name.
    async fn bots(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Bot>> {
        access(ctx).await?;
        let view = state(ctx).directory().await?;
        let mut bots: Vec<Bot> = view
            .directory
            .bots
            .iter()
            .map(|(id, name)| Bot {
                bot_id: *id,
                name: name.clone(),
            })
            .collect();
        bots.sort_by(|a, b| (&a.name, a.bot_id).cmp(&(&b.name, b.bot_id)));
        Ok(bots)
    }

    /// The inboxes the viewer sees, by name.
    #[graphql(complexity = "crate::types::page::complexity(first, last, child_complexity)")]
    async fn inboxes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Connection<String, Inbox>> {
        Ok(inbox::visible(ctx, first, after, last, before).await?)
    }

    /// One inbox, if the viewer sees it.
    async fn inbox(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Inbox>> {
        let id = ids::decode(&id, Kind::Inbox, "id")?;
        Ok(Inbox::load(ctx, id).await?)
    }

    /// One conversation, if the viewer sees it.
    async fn conversation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Conversation>> {
        let id = ids::decode(&id, Kind::Conversation, "id")?;
        Ok(Conversation::load(ctx, id).await?)
    }

    /// Conversations across the inboxes the viewer sees (or one, with `filter.inboxId`), most
    /// recent activity first.
    #[graphql(complexity = "crate::types::page::complexity(first, last, child_complexity)")]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConversationFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<ConversationConnection> {
        Ok(list(ctx, filter.unwrap_or_default(), first, after, last, before).await?)
    }

    /// One contact (or the contact it was merged into).
    async fn contact(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Contact>> {
        let id = ids::decode(&id, Kind::Contact, "id")?;
        Ok(Contact::load(ctx, id).await?)
    }

    /// The contact recognised by an e-mail address, chat visitor id or Messenger id.
    async fn contact_by_identity(
        &self,
        ctx: &Context<'_>,
        identity: IdentityInput,
    ) -> async_graphql::Result<Option<Contact>> {
        let identity = match identity.kind {
            IdentityKind::Email => Identity::Email {
                address: identity.value,
            },
            IdentityKind::ChatVisitor => Identity::ChatVisitor {
                visitor_id: identity.value,
            },
            IdentityKind::Messenger => Identity::Messenger {
                psid: identity.value,
            },
        };
        Ok(Contact::by_identity(ctx, identity).await?)
    }
}
