//! `Inbox`: a shared inbox, its members and channels, its conversation lists, badge counts and
//! Filtered view.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use switchboard_domain::directory;
use thread_view::FilteredCursor;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::state::{access, state};
use crate::types::conversation::{ConversationConnection, ConversationFilter, list};
use crate::types::directory::{Channel, Team, User};
use crate::types::page::{Window, encode_cursor};

/// A shared inbox.
#[derive(Debug, Clone)]
pub(crate) struct Inbox(pub(crate) directory::Inbox);

impl Inbox {
    /// The inbox `inbox_id`, if the viewer sees it.
    pub(crate) async fn load(ctx: &Context<'_>, inbox_id: Uuid) -> ApiResult<Option<Inbox>> {
        let access = access(ctx).await?;
        if !access.inbox(inbox_id) {
            return Ok(None);
        }
        let view = state(ctx).directory().await?;
        Ok(view.directory.inboxes.get(&inbox_id).cloned().map(Inbox))
    }
}

/// How many conversations an inbox holds, for badges.
#[derive(Debug, Clone, Copy, SimpleObject)]
pub(crate) struct BadgeCounts {
    /// Open conversations.
    open: u32,
    /// Closed conversations.
    closed: u32,
    /// Open conversations without an assignee.
    unassigned: u32,
    /// Filtered messages not restored.
    filtered: u32,
}

/// A message in an inbox's Filtered view: recorded, never lost, restorable.
#[derive(Debug, Clone)]
pub(crate) struct FilteredMessage(thread_view::FilteredMail);

#[Object]
impl FilteredMessage {
    /// The message's id (pass it to `restoreFilteredMessage`).
    async fn message_id(&self) -> Uuid {
        self.0.message_id
    }
    /// The conversation it belongs to.
    async fn conversation_id(&self) -> ID {
        ids::encode(Kind::Conversation, self.0.conversation_id)
    }
    /// The channel it came through.
    async fn channel_id(&self) -> ID {
        ids::encode(Kind::Channel, self.0.channel_id)
    }
    /// When it was filtered.
    async fn filtered_at(&self) -> DateTime<Utc> {
        self.0.filtered_at
    }
    /// The sender's address.
    async fn sender_address(&self) -> &str {
        &self.0.from_address
    }
    /// The sender's display name.
    async fn sender_name(&self) -> Option<&str> {
        self.0.from_name.as_deref()
    }
    /// The subject.
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    /// The body as plain text.
    async fn body_text(&self) -> &str {
        &self.0.body_text
    }
    /// Why it was filtered, e.g. `bulk_mail` or `deny_rule`.
    async fn reason_kind(&self) -> &str {
        &self.0.reason_kind
    }
    /// The full reason.
    async fn reason(&self) -> async_graphql::Json<serde_json::Value> {
        async_graphql::Json(serde_json::from_str(&self.0.reason_json).unwrap_or_default())
    }
}

#[Object]
impl Inbox {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(Kind::Inbox, self.0.id)
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Whether only members of some teams (and admins) see it.
    async fn restricted(&self) -> bool {
        self.0.restricted_to.is_some()
    }
    /// How many days after being closed its conversations are erased (`setInboxRetention`);
    /// null: they are kept forever.
    async fn retention_days(&self) -> Option<u32> {
        self.0.retention_days
    }
    /// The teams it is restricted to; empty when it is not restricted.
    async fn restricted_to_teams(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Team>> {
        let view = state(ctx).directory().await?;
        Ok(self
            .0
            .restricted_to
            .iter()
            .flatten()
            .filter_map(|id| view.directory.teams.get(id).cloned().map(Team))
            .collect())
    }
    /// Users who are members directly.
    async fn member_users(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let view = state(ctx).directory().await?;
        Ok(self
            .0
            .member_users
            .iter()
            .filter_map(|id| view.directory.user(*id).cloned().map(User))
            .collect())
    }
    /// Teams whose members are members.
    async fn member_teams(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Team>> {
        let view = state(ctx).directory().await?;
        Ok(self
            .0
            .member_teams
            .iter()
            .filter_map(|id| view.directory.teams.get(id).cloned().map(Team))
            .collect())
    }
    /// The users who may work its conversations (members and admins), by name.
    async fn agents(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let view = state(ctx).directory().await?;
        let mut users: Vec<User> = view
            .directory
            .inbox_agents(self.0.id)
            .into_iter()
            .cloned()
            .map(User)
            .collect();
        users.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(users)
    }
    /// Its channels, connected first.
    async fn channels(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Include disconnected channels.", default = false)]
        include_disconnected: bool,
    ) -> async_graphql::Result<Vec<Channel>> {
        let view = state(ctx).directory().await?;
        let mut channels: Vec<Channel> = view
            .directory
            .channels
            .values()
            .filter(|c| c.inbox_id == self.0.id && (c.connected || include_disconnected))
            .map(|c| Channel::new(c.clone(), view.directory.is_fallback(c.id)))
            .collect();
        channels.sort_by_key(|c| (!c.0.connected, c.0.id));
        Ok(channels)
    }
    /// Its conversations, most recent activity first, with the inbox-list filters.
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
        let mut filter = filter.unwrap_or_default();
        filter.inbox_id = Some(ids::encode(Kind::Inbox, self.0.id));
        Ok(list(ctx, filter, first, after, last, before).await?)
    }
    /// Badge counts of what the viewer sees: each is the length of the list the viewer gets
    /// with the same filter (a colleague's private conversations are not counted).
    async fn counts(&self, ctx: &Context<'_>) -> async_graphql::Result<BadgeCounts> {
        let inbox = self.0.id;
        let scope = access(ctx).await?.scope();
        let counts = state(ctx)
            .query("thread_view", move |conn| {
                thread_view::badge_counts(conn, Some(inbox), &scope)
            })
            .await?;
        let c = counts.first();
        Ok(BadgeCounts {
            open: c.map_or(0, |c| c.open),
            closed: c.map_or(0, |c| c.closed),
            unassigned: c.map_or(0, |c| c.unassigned),
            filtered: c.map_or(0, |c| c.filtered),
        })
    }
    /// The Filtered view: filtered mail not restored, newest first.
    #[graphql(complexity = "crate::types::page::complexity(first, None, child_complexity)")]
    async fn filtered_messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, FilteredMessage>> {
        Ok(filtered(ctx, self.0.id, first, after).await?)
    }
}

async fn filtered(
    ctx: &Context<'_>,
    inbox: Uuid,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<Connection<String, FilteredMessage>> {
    let inner = state(ctx);
    let window = Window::new(&inner.limits, first, after, None, None)?;
    let Window::First { count, after } = window else {
        return Err(ApiError::internal("a first-only window"));
    };
    let after = after
        .map(|text| {
            let (micros, position) = text.split_once(':').unwrap_or_default();
            let at = micros
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_micros);
            match (at, position.parse::<u64>()) {
                (Some(filtered_at), Ok(position)) => Ok(FilteredCursor {
                    filtered_at,
                    position,
                }),
                _ => Err(ApiError::bad_input(
                    "after",
                    "not a cursor returned by this list",
                )),
            }
        })
        .transpose()?;
    let has_previous = after.is_some();
    let scope = access(ctx).await?.scope();
    let page = inner
        .query("thread_view", move |conn| {
            thread_view::filtered_mail(conn, inbox, count, after, &scope)
        })
        .await?;
    let mut connection = Connection::new(has_previous, page.has_next_page);
    for item in page.items {
        let cursor = item.cursor();
        let cursor = encode_cursor(&format!(
            "{}:{}",
            cursor.filtered_at.timestamp_micros(),
            cursor.position
        ));
        connection
            .edges
            .push(Edge::new(cursor, FilteredMessage(item)));
    }
    Ok(connection)
}

/// Used by the query root's `inboxes`: the inboxes the viewer sees, by name, paged in memory
/// (an organisation has tens of inboxes, not thousands).
pub(crate) async fn visible(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> ApiResult<Connection<String, Inbox>> {
    let inner = state(ctx);
    let window = Window::new(&inner.limits, first, after, last, before)?;
    let access = access(ctx).await?;
    let view = inner.directory().await?;
    let mut inboxes: Vec<&directory::Inbox> = view
        .directory
        .inboxes
        .values()
        .filter(|i| access.inbox(i.id))
        .collect();
    inboxes.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    let keys: Vec<String> = inboxes.iter().map(|i| i.id.to_string()).collect();
    let (range, has_previous, has_next) = in_memory_window(&keys, &window);
    let mut connection = Connection::new(has_previous, has_next);
    for inbox in &inboxes[range] {
        connection.edges.push(Edge::new(
            encode_cursor(&inbox.id.to_string()),
            Inbox((*inbox).clone()),
        ));
    }
    Ok(connection)
}

/// The slice of `keys` (in list order) a window selects, and whether items precede and follow.
pub(crate) fn in_memory_window(
    keys: &[String],
    window: &Window,
) -> (std::ops::Range<usize>, bool, bool) {
    match window {
        Window::First { count, after } => {
            let start = after
                .as_ref()
                .and_then(|a| keys.iter().position(|k| k == a).map(|i| i + 1))
                .unwrap_or(if after.is_some() { keys.len() } else { 0 });
            let end = (start + count).min(keys.len());
            (start..end, start > 0, end < keys.len())
        }
        Window::Last { count, before } => {
            let end = before
                .as_ref()
                .and_then(|b| keys.iter().position(|k| k == b))
                .unwrap_or(if before.is_some() { 0 } else { keys.len() });
            let start = end.saturating_sub(*count);
            (start..end, start > 0, end < keys.len())
        }
    }
}
