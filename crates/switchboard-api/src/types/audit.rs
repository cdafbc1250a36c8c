//! The audit trail as GraphQL objects: every event with its actor, times, what it concerns,
//! correlation and causation, filtered by the viewer's access.
//!
//! # Who sees what
//! Analysts are refused (FORBIDDEN): the trail carries payloads, and their role reads analytics
//! and the raw history instead. Admins see every entry. Everyone else (auditors, agents) sees an
//! entry if they may see what it concerns: the conversation (by its current inbox and private
//! owner, from the thread view: `Access::conversation`), else the inbox, else — entries about no
//! conversation or inbox, such as organisation setup or contacts — always, except e-mail
//! channels' server settings (`access::ADMINS_ONLY`), which admins alone read. An entry whose
//! conversation the thread view does not know yet is hidden from them (fail closed).
//!
//! Access is applied before paging: a page is filled by reading further pages of the read model
//! after the last entry seen (see [`visible_page`]), so pages are neither short because of hidden
//! entries nor leaky.

use std::sync::Arc;

use std::collections::HashMap;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, InputObject, Json, Object};
use audit_trail::{ActorFilter, AuditFilter, Page};
use chrono::{DateTime, Utc};
use proto_events::Actor;
use proto_events::event::Role;
use switchboard_store::Position;
use uuid::Uuid;

use crate::access::Access;
use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::state::{Inner, access, state};
use crate::types::contact::Contact;
use crate::types::conversation::Conversation;
use crate::types::directory::{Bot, Channel, User};
use crate::types::inbox::Inbox;
use crate::types::page::{Window, encode_cursor};

/// The read model of the trail.
const MODEL: &str = "audit_trail";

/// A page of the trail.
pub(crate) type AuditEntryConnection = Connection<String, AuditEntry>;

/// Most read-model pages fetched to fill one page of entries the viewer may see.
const MAX_SCANS: usize = 20;

/// Most rows read per read-model page while filling a page for a viewer who does not see
/// everything (scans start at the page size and double up to this).
const MAX_SCAN_BATCH: usize = 1_000;

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "audit_trail::ActorKind")]
pub(crate) enum AuditActorKind {
    /// A signed-in user.
    User,
    /// A customer.
    Contact,
    /// A bot.
    Bot,
    /// Switchboard itself (a component such as the routing reactor).
    System,
    /// A channel integration delivering messages.
    Channel,
}

/// Which audit entries to return. Every field combines with AND.
#[derive(Debug, Clone, Default, InputObject)]
#[graphql(name = "AuditFilter")]
pub(crate) struct AuditFilterInput {
    /// Only events caused by actors of this kind.
    pub(crate) actor_kind: Option<AuditActorKind>,
    /// Only events caused by this actor: the global id of a user, bot, contact or channel.
    pub(crate) actor_id: Option<ID>,
    /// Only events caused by this Switchboard component (a `SYSTEM` actor), e.g. `routing`.
    pub(crate) actor_component: Option<String>,
    /// Only events about this conversation (NOT_FOUND if the viewer does not see it).
    pub(crate) conversation_id: Option<ID>,
    /// Only events about this inbox or its conversations (NOT_FOUND if the viewer does not see
    /// it).
    pub(crate) inbox_id: Option<ID>,
    /// Only events about this contact.
    pub(crate) contact_id: Option<ID>,
    /// Only events of this type, e.g. `ConversationReassigned`.
    pub(crate) event_type: Option<String>,
    /// Only events that occurred at or after this instant.
    pub(crate) from: Option<DateTime<Utc>>,
    /// Only events that occurred before this instant.
    pub(crate) until: Option<DateTime<Utc>>,
    /// Only events of this causal chain (one outside request and what followed from it).
    pub(crate) correlation_id: Option<Uuid>,
}

/// The viewer's access to the trail: FORBIDDEN for analysts.
pub(crate) async fn trail_access(ctx: &Context<'_>) -> ApiResult<Arc<Access>> {
    let access = access(ctx).await?;
    access.require(
        &[Role::SuperAdmin, Role::Admin, Role::Auditor, Role::Agent],
        "the audit trail",
    )?;
    Ok(access)
}

/// Where a conversation lives, for access checks: its inbox and private owner.
pub(crate) type Whereabouts = (Uuid, Option<Uuid>);

/// Where each of `ids` lives, as the thread view has it (`None`: not there).
pub(crate) async fn whereabouts(
    inner: &Inner,
    ids: Vec<Uuid>,
) -> ApiResult<Vec<(Uuid, Option<Whereabouts>)>> {
    inner
        .query("thread_view", move |conn| {
            ids.into_iter()
                .map(|id| {
                    let header = thread_view::conversation(conn, id)?;
                    Ok((id, header.map(|h| (h.inbox_id, h.private_owner_id))))
                })
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
}

/// Looks up, in the thread view, the conversations of `entries` not in `known` yet.
async fn locate(
    inner: &Inner,
    entries: &[audit_trail::AuditEntry],
    known: &mut HashMap<Uuid, Option<Whereabouts>>,
) -> ApiResult<()> {
    let mut missing: Vec<Uuid> = entries
        .iter()
        .filter_map(|e| e.concerns.conversation_id)
        .filter(|c| !known.contains_key(c))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    known.extend(whereabouts(inner, missing).await?);
    Ok(())
}

/// Whether the viewer may see `entry`, given the conversations located so far.
fn sees(
    access: &Access,
    entry: &audit_trail::AuditEntry,
    known: &HashMap<Uuid, Option<Whereabouts>>,
) -> bool {
    if access.sees_everything() {
        return true;
    }
    if crate::access::ADMINS_ONLY.contains(&entry.event_type.as_str()) {
        return false;
    }
    if let Some(conversation) = entry.concerns.conversation_id {
        return match known.get(&conversation) {
            Some(Some((inbox, owner))) => access.conversation(*inbox, *owner),
            _ => false,
        };
    }
    entry
        .concerns
        .inbox_id
        .is_none_or(|inbox| access.inbox(inbox))
}

/// `entries` without those the viewer may not see.
async fn visible(
    inner: &Inner,
    access: &Access,
    entries: Vec<audit_trail::AuditEntry>,
) -> ApiResult<Vec<audit_trail::AuditEntry>> {
    if access.sees_everything() {
        return Ok(entries);
    }
    let mut known = HashMap::new();
    locate(inner, &entries, &mut known).await?;
    Ok(entries
        .into_iter()
        .filter(|e| sees(access, e, &known))
        .collect())
}

/// The read model's filter for `input`, checked against the viewer's access.
async fn filter(
    ctx: &Context<'_>,
    access: &Access,
    input: AuditFilterInput,
) -> ApiResult<AuditFilter> {
    let actor = match (input.actor_kind, &input.actor_id, input.actor_component) {
        (kind, Some(id), None) => {
            let (found, uuid) = ids::decode_any(id, "filter.actorId")?;
            let actor = match found {
                Kind::User => Actor::User { id: uuid },
                Kind::Bot => Actor::Bot { id: uuid },
                Kind::Contact => Actor::Contact { id: uuid },
                Kind::Channel => Actor::Channel { id: uuid },
                other => {
                    return Err(ApiError::bad_input(
                        "filter.actorId",
                        format!(
                            "a {} does not act; pass a User, Bot, Contact or Channel id",
                            other.name()
                        ),
                    ));
                }
            };
            let implied = audit_trail::ActorKind::from(match found {
                Kind::User => AuditActorKind::User,
                Kind::Bot => AuditActorKind::Bot,
                Kind::Contact => AuditActorKind::Contact,
                _ => AuditActorKind::Channel,
            });
            if let Some(kind) = kind
                && audit_trail::ActorKind::from(kind) != implied
            {
                return Err(ApiError::bad_input(
                    "filter.actorKind",
                    "does not match the kind of `actorId`",
                ));
            }
            Some(ActorFilter::Is(actor))
        }
        (None | Some(AuditActorKind::System), None, Some(component)) => {
            Some(ActorFilter::Is(Actor::System { component }))
        }
        (_, Some(_), Some(_)) | (Some(_), None, Some(_)) => {
            return Err(ApiError::bad_input(
                "filter.actorComponent",
                "goes alone or with actorKind SYSTEM, not with actorId",
            ));
        }
        (Some(kind), None, None) => Some(ActorFilter::Kind(kind.into())),
        (None, None, None) => None,
    };
    let inbox_id = input
        .inbox_id
        .as_ref()
        .map(|id| ids::decode(id, Kind::Inbox, "filter.inboxId"))
        .transpose()?;
    if let Some(inbox) = inbox_id
        && !access.inbox(inbox)
    {
        return Err(ApiError::not_found("inbox"));
    }
    let conversation_id = input
        .conversation_id
        .as_ref()
        .map(|id| ids::decode(id, Kind::Conversation, "filter.conversationId"))
        .transpose()?;
    if let Some(conversation) = conversation_id
        && !access.sees_everything()
        && Conversation::load(ctx, conversation).await?.is_none()
    {
        return Err(ApiError::not_found("conversation"));
    }
    if let (Some(from), Some(until)) = (input.from, input.until)
        && until <= from
    {
        return Err(ApiError::bad_input("filter.until", "must be after `from`"));
    }
    Ok(AuditFilter {
        actor,
        conversation_id,
        inbox_id,
        contact_id: input
            .contact_id
            .as_ref()
            .map(|id| ids::decode(id, Kind::Contact, "filter.contactId"))
            .transpose()?,
        event_type: input.event_type,
        occurred_from: input.from,
        occurred_until: input.until,
        correlation_id: input.correlation_id,
    })
}

fn position(cursor: &str, field: &str) -> ApiResult<u64> {
    cursor
        .parse()
        .map_err(|_| ApiError::bad_input(field, "not a cursor returned by this list"))
}

/// The trail's page that `window` asks for, of the entries matching `input` that the viewer
/// sees.
pub(crate) async fn trail(
    ctx: &Context<'_>,
    input: AuditFilterInput,
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> ApiResult<AuditEntryConnection> {
    let inner = state(ctx);
    let window = Window::new(&inner.limits, first, after, last, before)?;
    let access = trail_access(ctx).await?;
    let filter = filter(ctx, &access, input).await?;
    let (entries, has_previous, has_next) = visible_page(inner, &access, filter, &window).await?;
    let mut connection = Connection::new(has_previous, has_next);
    for entry in entries {
        connection.edges.push(Edge::new(
            encode_cursor(&entry.position.to_string()),
            AuditEntry(entry),
        ));
    }
    Ok(connection)
}

/// A page of `filter`'s entries the viewer may see, with `hasPreviousPage` and `hasNextPage`.
///
/// The read model pages by position; when access hides some entries, further pages (each
/// twice the size of the one before, up to [`MAX_SCAN_BATCH`]) are read after (or, going
/// backward, before) the last entry read until the page is full, the trail ends, or
/// [`MAX_SCANS`] pages were read (then the page may be short and says there is more).
/// Going forward, `hasPreviousPage` is true when an `after` cursor was given (and going
/// backward `hasNextPage` when a `before` cursor was), as the Relay specification allows.
async fn visible_page(
    inner: &Inner,
    access: &Access,
    filter: AuditFilter,
    window: &Window,
) -> ApiResult<(Vec<audit_trail::AuditEntry>, bool, bool)> {
    let count = window.count();
    let (forward, mut bound) = match window {
        Window::First { after, .. } => (
            true,
            after.as_deref().map(|a| position(a, "after")).transpose()?,
        ),
        Window::Last { before, .. } => (
            false,
            before
                .as_deref()
                .map(|b| position(b, "before"))
                .transpose()?,
        ),
    };
    let cursor_given = bound.is_some();
    let mut batch = count;
    let mut items: Vec<audit_trail::AuditEntry> = Vec::new();
    let mut known = HashMap::new();
    let mut more = false;
    for _ in 0..MAX_SCANS {
        let page = if forward {
            Page::Forward {
                after: bound,
                first: batch,
            }
        } else {
            Page::Backward {
                before: bound,
                last: batch,
            }
        };
        let scan_filter = filter.clone();
        let read = inner
            .query(MODEL, move |conn| {
                audit_trail::audit_events(conn, &scan_filter, page)
            })
            .await?;
        more = read.has_more;
        let edge = if forward {
            read.entries.last().map(|e| e.position)
        } else {
            read.entries.first().map(|e| e.position)
        };
        if !access.sees_everything() {
            locate(inner, &read.entries, &mut known).await?;
        }
        let mut found: Vec<audit_trail::AuditEntry> = read
            .entries
            .into_iter()
            .filter(|e| sees(access, e, &known))
            .collect();
        if forward {
            items.append(&mut found);
            if items.len() > count {
                items.truncate(count);
                more = true;
            }
        } else {
            found.append(&mut items);
            items = found;
            if items.len() > count {
                items.drain(..items.len() - count);
                more = true;
            }
        }
        match edge {
            Some(edge) if more && items.len() < count => bound = Some(edge),
            _ => break,
        }
        // Long runs of hidden entries are crossed in fewer, larger reads.
        batch = (batch * 2).clamp(1, MAX_SCAN_BATCH.max(count));
    }
    Ok(if forward {
        (items, cursor_given, more)
    } else {
        (items, more, cursor_given)
    })
}

/// The entry of event `event_id`; NOT_FOUND if there is none or the viewer may not see it.
pub(crate) async fn by_event_id(ctx: &Context<'_>, event_id: Uuid) -> ApiResult<AuditEntry> {
    let access = trail_access(ctx).await?;
    load(ctx, &access, event_id)
        .await?
        .ok_or_else(|| ApiError::not_found("audit entry"))
}

async fn load(ctx: &Context<'_>, access: &Access, event_id: Uuid) -> ApiResult<Option<AuditEntry>> {
    let inner = state(ctx);
    let entry = inner
        .query(MODEL, move |conn| audit_trail::by_event_id(conn, event_id))
        .await?;
    Ok(visible(inner, access, entry.into_iter().collect())
        .await?
        .pop()
        .map(AuditEntry))
}

/// Every entry of the causal chain `correlation_id` the viewer may see, in log order.
pub(crate) async fn by_correlation(
    ctx: &Context<'_>,
    correlation_id: Uuid,
) -> ApiResult<Vec<AuditEntry>> {
    let access = trail_access(ctx).await?;
    let inner = state(ctx);
    let entries = inner
        .query(MODEL, move |conn| {
            audit_trail::by_correlation(conn, correlation_id)
        })
        .await?;
    Ok(visible(inner, &access, entries)
        .await?
        .into_iter()
        .map(AuditEntry)
        .collect())
}

/// One event of the log as the audit trail records it: who did what, when, to which
/// conversation, inbox or contact, and because of what.
#[derive(Debug, Clone)]
pub(crate) struct AuditEntry(pub(crate) audit_trail::AuditEntry);

#[Object]
impl AuditEntry {
    /// Its place in the global order, from 1 (the list's cursors are positions).
    async fn position(&self) -> u64 {
        self.0.position
    }
    /// The event's id.
    async fn event_id(&self) -> Uuid {
        self.0.event_id
    }
    /// The stream it belongs to, e.g. `conversation-<uuid>`.
    async fn stream(&self) -> &str {
        &self.0.stream
    }
    /// Its version within the stream, from 0.
    async fn stream_version(&self) -> u64 {
        self.0.stream_version
    }
    /// The action: the event's stable type name, e.g. `ConversationReassigned`.
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// The schema version it was stored in (the payload here is in the current version).
    async fn schema_version(&self) -> u32 {
        self.0.schema_version
    }
    /// Who caused it.
    async fn actor(&self) -> AuditActor {
        AuditActor(self.0.actor.clone())
    }
    /// Domain time: when it happened.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    /// Store time: when it was recorded.
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }
    /// The outside request it follows from; `auditByCorrelation` returns the whole chain.
    async fn correlation_id(&self) -> Uuid {
        self.0.correlation_id
    }
    /// What directly caused it: a command id, or the id of the event it reacts to.
    async fn causation_id(&self) -> Uuid {
        self.0.causation_id
    }
    /// The entry of the event that caused this one; null when the cause is a command (or an
    /// event the viewer may not see).
    async fn cause(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AuditEntry>> {
        if self.0.causation_id == self.0.event_id {
            return Ok(None);
        }
        let access = trail_access(ctx).await?;
        Ok(load(ctx, &access, self.0.causation_id).await?)
    }
    /// The global id of the conversation it concerns.
    async fn conversation_id(&self) -> Option<ID> {
        self.0
            .concerns
            .conversation_id
            .map(|id| ids::encode(Kind::Conversation, id))
    }
    /// The conversation it concerns (null if the viewer may not see it).
    async fn conversation(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Conversation>> {
        match self.0.concerns.conversation_id {
            Some(id) => Ok(Conversation::load(ctx, id).await?),
            None => Ok(None),
        }
    }
    /// The global id of the inbox it concerns.
    async fn inbox_id(&self) -> Option<ID> {
        self.0
            .concerns
            .inbox_id
            .map(|id| ids::encode(Kind::Inbox, id))
    }
    /// The inbox it concerns (null if the viewer may not see it).
    async fn inbox(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Inbox>> {
        let Some(id) = self.0.concerns.inbox_id else {
            return Ok(None);
        };
        let access = access(ctx).await?;
        if !access.inbox(id) {
            return Ok(None);
        }
        let view = state(ctx).directory().await?;
        Ok(view.directory.inboxes.get(&id).cloned().map(Inbox))
    }
    /// The global id of the contact it concerns.
    async fn contact_id(&self) -> Option<ID> {
        self.0
            .concerns
            .contact_id
            .map(|id| ids::encode(Kind::Contact, id))
    }
    /// The contact it concerns.
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        match self.0.concerns.contact_id {
            Some(id) => Ok(Contact::load(ctx, id).await?),
            None => Ok(None),
        }
    }
    /// The event's payload as JSON, in its current schema version.
    async fn payload(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<serde_json::Value>> {
        // The trail does not copy payloads: the event is read from the store at its position.
        let position = self.0.position;
        let event = state(ctx)
            .store
            .read_all(Position(position.saturating_sub(1)), 1)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .next()
            .filter(|event| event.position.0 == position)
            .ok_or_else(|| {
                ApiError::internal(format!("the store has no event at position {position}"))
            })?;
        let envelope = switchboard_codec::decode(&event).map_err(ApiError::internal)?;
        Ok(serde_json::to_value(&envelope.payload)
            .map(Json)
            .map_err(ApiError::internal)?)
    }
}

/// Who caused an event: a user, a customer, a bot, a channel integration, or Switchboard itself.
#[derive(Debug, Clone)]
pub(crate) struct AuditActor(Actor);

#[Object]
impl AuditActor {
    /// Which kind of actor.
    async fn kind(&self) -> AuditActorKind {
        match self.0 {
            Actor::User { .. } => AuditActorKind::User,
            Actor::Contact { .. } => AuditActorKind::Contact,
            Actor::Bot { .. } => AuditActorKind::Bot,
            Actor::System { .. } => AuditActorKind::System,
            Actor::Channel { .. } => AuditActorKind::Channel,
        }
    }
    /// The actor's global id (users, contacts, bots and channels).
    async fn id(&self) -> Option<ID> {
        match &self.0 {
            Actor::User { id } => Some(ids::encode(Kind::User, *id)),
            Actor::Contact { id } => Some(ids::encode(Kind::Contact, *id)),
            Actor::Bot { id } => Some(ids::encode(Kind::Bot, *id)),
            Actor::Channel { id } => Some(ids::encode(Kind::Channel, *id)),
            Actor::System { .. } => None,
        }
    }
    /// The user, when a user acted.
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Actor::User { id } = self.0 else {
            return Ok(None);
        };
        let view = state(ctx).directory().await?;
        Ok(view.directory.user(id).cloned().map(User))
    }
    /// The bot, when a bot acted.
    async fn bot(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Bot>> {
        let Actor::Bot { id } = self.0 else {
            return Ok(None);
        };
        let view = state(ctx).directory().await?;
        Ok(view.directory.bots.get(&id).map(|name| Bot {
            bot_id: id,
            name: name.clone(),
        }))
    }
    /// The customer, when a customer acted.
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        match self.0 {
            Actor::Contact { id } => Ok(Contact::load(ctx, id).await?),
            _ => Ok(None),
        }
    }
    /// The channel, when a channel integration acted.
    async fn channel(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Channel>> {
        let Actor::Channel { id } = self.0 else {
            return Ok(None);
        };
        let view = state(ctx).directory().await?;
        Ok(view.directory.channels.get(&id).cloned().map(|c| {
            let fallback = view.directory.is_fallback(c.id);
            Channel::new(c, fallback)
        }))
    }
    /// The Switchboard component, when Switchboard itself acted (e.g. `routing`).
    async fn component(&self) -> Option<&str> {
        match &self.0 {
            Actor::System { component } => Some(component),
            _ => None,
        }
    }
}
