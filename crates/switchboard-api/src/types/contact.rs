//! `Contact`: what the sidebar shows beside a thread — properties, identities, associated
//! records, and past conversations — from the contact-sidebar read model.
//!
//! Contacts are organisation-wide records (as in HubSpot's CRM): every user sees them. Their
//! past conversations are filtered by access like any other conversation.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use proto_events::event::{Identity, RecordKind};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::state::{access, state};
use crate::types::directory::User;
use crate::types::page::{Window, encode_cursor};

/// How a contact is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum IdentityKind {
    /// An e-mail address.
    Email,
    /// A website chat visitor id.
    ChatVisitor,
    /// A Messenger page-scoped id.
    Messenger,
}

/// One way a contact is recognised.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ContactIdentity {
    /// E-mail, chat visitor or Messenger.
    kind: IdentityKind,
    /// The address or id.
    value: String,
}

impl From<&Identity> for ContactIdentity {
    fn from(identity: &Identity) -> ContactIdentity {
        let (kind, value) = match identity {
            Identity::Email { address } => (IdentityKind::Email, address),
            Identity::ChatVisitor { visitor_id } => (IdentityKind::ChatVisitor, visitor_id),
            Identity::Messenger { psid } => (IdentityKind::Messenger, psid),
        };
        ContactIdentity {
            kind,
            value: value.clone(),
        }
    }
}

/// A contact property.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ContactProperty {
    /// The property's name, snake_case (`name`, `phone`, ...).
    name: String,
    /// Its value.
    value: String,
}

/// The kind of a CRM record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "proto_events::event::RecordKind")]
pub(crate) enum RecordType {
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

/// A record associated with a contact: a company, deal or ticket.
#[derive(Debug, Clone)]
pub(crate) struct AssociatedRecord(contact_sidebar::AssociatedRecord);

#[Object]
impl AssociatedRecord {
    /// The record's global id.
    async fn id(&self) -> ID {
        let kind = match self.0.record.kind {
            RecordKind::Contact => Kind::Contact,
            RecordKind::Company => Kind::Company,
            RecordKind::Deal => Kind::Deal,
            RecordKind::Ticket => Kind::Ticket,
            RecordKind::Conversation => Kind::Conversation,
        };
        ids::encode(kind, self.0.record.id)
    }
    /// Company, deal or ticket.
    async fn kind(&self) -> RecordType {
        self.0.record.kind.into()
    }
    /// A company's or deal's name, a ticket's subject.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    /// A deal's pipeline stage.
    async fn stage(&self) -> Option<&str> {
        self.0.stage.as_deref()
    }
    /// A company's web domain.
    async fn domain(&self) -> Option<&str> {
        self.0.domain.as_deref()
    }
}

/// Open or closed, for the sidebar's past conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "contact_sidebar::ConversationStatus")]
pub(crate) enum PastConversationStatus {
    /// Started or reopened, not closed since.
    Open,
    /// Closed.
    Closed,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "contact_sidebar::MessageDirection")]
pub(crate) enum MessageDirection {
    /// From the customer.
    Inbound,
    /// To the customer.
    Outbound,
}

/// One of a contact's conversations, as the sidebar lists them.
#[derive(Debug, Clone)]
pub(crate) struct PastConversation(contact_sidebar::ContactConversation);

#[Object]
impl PastConversation {
    /// The conversation's global id (fetch it with `conversation(id:)`).
    async fn id(&self) -> ID {
        ids::encode(Kind::Conversation, self.0.conversation_id)
    }
    /// The inbox's global id.
    async fn inbox_id(&self) -> ID {
        ids::encode(Kind::Inbox, self.0.inbox_id)
    }
    /// Open or closed.
    async fn status(&self) -> PastConversationStatus {
        self.0.status.into()
    }
    /// The first subject line.
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    /// The start of the last message in or out.
    async fn last_message_preview(&self) -> Option<&str> {
        self.0.last_message_preview.as_deref()
    }
    /// Which way the last message went.
    async fn last_message_direction(&self) -> Option<MessageDirection> {
        self.0.last_message_direction.map(Into::into)
    }
    /// The latest activity.
    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity
    }
}

/// A customer.
#[derive(Debug, Clone)]
pub(crate) struct Contact(pub(crate) contact_sidebar::Contact);

impl Contact {
    /// The contact `contact_id` (or the survivor it was merged into).
    pub(crate) async fn load(ctx: &Context<'_>, contact_id: Uuid) -> ApiResult<Option<Contact>> {
        // Any signed-in user sees contacts.
        access(ctx).await?;
        Ok(state(ctx)
            .query("contact_sidebar", move |conn| {
                contact_sidebar::contact_by_id(conn, contact_id)
            })
            .await?
            .map(Contact))
    }

    /// The contact recognised by `identity`.
    pub(crate) async fn by_identity(
        ctx: &Context<'_>,
        identity: Identity,
    ) -> ApiResult<Option<Contact>> {
        access(ctx).await?;
        Ok(state(ctx)
            .query("contact_sidebar", move |conn| {
                contact_sidebar::contact_by_identity(conn, &identity)
            })
            .await?
            .map(Contact))
    }
}

#[Object]
impl Contact {
    /// Global id (the survivor's, when the id asked for was merged into it).
    pub(crate) async fn id(&self) -> ID {
        ids::encode(Kind::Contact, self.0.contact_id)
    }
    /// The `name` property.
    async fn name(&self) -> Option<&str> {
        self.0.properties.get("name").map(String::as_str)
    }
    /// Every property, by name.
    async fn properties(&self) -> Vec<ContactProperty> {
        self.0
            .properties
            .iter()
            .map(|(name, value)| ContactProperty {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    }
    /// How the contact is recognised.
    async fn identities(&self) -> Vec<ContactIdentity> {
        self.0
            .identities
            .iter()
            .map(ContactIdentity::from)
            .collect()
    }
    /// The contact's owner.
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(owner) = self.0.owner_user_id else {
            return Ok(None);
        };
        let view = state(ctx).directory().await?;
        Ok(view.directory.user(owner).cloned().map(User))
    }
    /// Global ids of the contacts merged into this one.
    async fn merged_ids(&self) -> Vec<ID> {
        self.0
            .merged_ids
            .iter()
            .map(|id| ids::encode(Kind::Contact, *id))
            .collect()
    }
    /// When the record was created.
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        self.0.created_at
    }
    /// Associated companies, deals and tickets.
    async fn records(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AssociatedRecord>> {
        let id = self.0.contact_id;
        let records = state(ctx)
            .query("contact_sidebar", move |conn| {
                contact_sidebar::records_of_contact(conn, id)
            })
            .await?;
        Ok(records.into_iter().map(AssociatedRecord).collect())
    }
    /// Past conversations the viewer may see, latest activity first.
    #[graphql(complexity = "crate::types::page::complexity(first, None, child_complexity)")]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, PastConversation>> {
        Ok(past_conversations(ctx, self.0.contact_id, first, after).await?)
    }
}

async fn past_conversations(
    ctx: &Context<'_>,
    contact_id: Uuid,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<Connection<String, PastConversation>> {
    let inner = state(ctx);
    let Window::First { count, after } = Window::new(&inner.limits, first, after, None, None)?
    else {
        return Err(ApiError::internal("a first-only window"));
    };
    let after = after
        .map(|text| {
            let bad = || ApiError::bad_input("after", "not a cursor returned by this list");
            let (micros, id) = text.split_once(':').ok_or_else(bad)?;
            Ok::<_, ApiError>(contact_sidebar::ConversationCursor {
                last_activity: micros
                    .parse::<i64>()
                    .ok()
                    .and_then(DateTime::from_timestamp_micros)
                    .ok_or_else(bad)?,
                conversation_id: Uuid::parse_str(id).map_err(|_| bad())?,
            })
        })
        .transpose()?;
    let scope = access(ctx).await?.scope();
    let has_previous = after.is_some();
    let (items, has_next) = inner
        .query("contact_sidebar", move |conn| {
            let page =
                contact_sidebar::conversations_of_contact(conn, contact_id, after, count, &scope)?;
            Ok((page.conversations, page.next.is_some()))
        })
        .await?;
    let mut connection = Connection::new(has_previous, has_next);
    for item in items {
        let c = item.cursor();
        connection.edges.push(Edge::new(
            encode_cursor(&format!(
                "{}:{}",
                c.last_activity.timestamp_micros(),
                c.conversation_id
            )),
            PastConversation(item),
        ));
    }
    Ok(connection)
}
