//! `Conversation`: a thread's header and timeline, from the thread-view read model; inbox lists
//! with access filtering.

use std::sync::{Arc, Mutex};

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, InputObject, Object, Union};
use chrono::{DateTime, Utc};
use thread_view::{
    AssigneeFilter, AssigneeRef, ConversationHeader, Cursor, ListFilter, PageRequest,
};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::state::{access, state};
use crate::types::contact::Contact;
use crate::types::directory::{Bot, Channel, ChannelType, Team, User};
use crate::types::inbox::Inbox;
use crate::types::page::{Window, encode_cursor};

/// A conversation list page.
pub(crate) type ConversationConnection = Connection<String, Conversation>;

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "thread_view::ConversationStatus")]
pub(crate) enum ConversationStatus {
    /// In the inbox, to be worked.
    Open,
    /// Done, until the customer writes again or someone reopens it.
    Closed,
    /// Holds only filtered mail so far: in the Filtered view, not in the inbox lists.
    Filtered,
}

/// Which assignee an inbox list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
pub(crate) enum AssigneeScope {
    /// Any assignee, or none.
    #[default]
    Any,
    /// Conversations without an assignee.
    Unassigned,
    /// Conversations assigned to the viewer.
    Mine,
}

/// The inbox-list filters. They combine with AND.
#[derive(Debug, Clone, Default, InputObject)]
pub(crate) struct ConversationFilter {
    /// Only this inbox.
    pub(crate) inbox_id: Option<ID>,
    /// Only this status (open or closed; filtered mail is in `Inbox.filteredMessages`).
    pub(crate) status: Option<ConversationStatus>,
    /// Any, unassigned, or mine.
    #[graphql(default)]
    pub(crate) assignee: AssigneeScope,
    /// Only conversations assigned to this user (overrides `assignee`).
    pub(crate) assignee_id: Option<ID>,
    /// Only conversations assigned to this team.
    pub(crate) team_id: Option<ID>,
    /// Only conversations of this channel.
    pub(crate) channel_id: Option<ID>,
}

/// Who a conversation is assigned to.
#[derive(Union)]
pub(crate) enum Assignee {
    /// A user.
    User(User),
    /// A team.
    Team(Team),
    /// A bot.
    Bot(Bot),
}

/// A conversation (thread) with a customer: live, or as it stood at a past position.
#[derive(Debug, Clone)]
pub(crate) struct Conversation(
    pub(crate) ConversationHeader,
    Option<Arc<Snapshot>>,
    Option<Prefetched>,
);

/// Most messages and comments of a conversation whose timeline [`Conversation::load`] reads on
/// the calling task with its header (its other entries, assignments and the like, are about as
/// many again).
const INLINE_TIMELINE: u64 = 100;

/// A live timeline read with the header, for the `timeline` resolver to take instead of
/// reading it again: a thread's page costs one trip to the read model instead of two.
/// Taken once; a second `timeline` selection of the same conversation (aliases) reads it again.
type Prefetched = Arc<Mutex<Option<Vec<thread_view::TimelineEntry>>>>;

/// What a past state of a conversation carries besides its header.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The timeline up to the snapshot's position.
    pub(crate) timeline: Vec<thread_view::TimelineEntry>,
    /// The stream's version at that position.
    pub(crate) version: Option<u64>,
}

impl Conversation {
    /// The live conversation of `header`.
    pub(crate) fn new(header: ConversationHeader) -> Conversation {
        Conversation(header, None, None)
    }

    /// The conversation as it stood when its header and timeline were these.
    pub(crate) fn past(header: ConversationHeader, snapshot: Snapshot) -> Conversation {
        Conversation(header, Some(Arc::new(snapshot)), None)
    }

    /// The conversation `conversation_id`, if it exists and the viewer sees it.
    ///
    /// The header is a point lookup by primary key (tens of microseconds with a pooled
    /// connection and a cached statement), run on the calling task: a trip through the blocking
    /// pool would cost more in thread hand-offs than the query itself. When the field being
    /// resolved selects the conversation's `timeline` and the conversation is short (at most
    /// [`INLINE_TIMELINE`] messages and comments), its timeline is read in the same call, a short
    /// indexed range; a longer one is read by the `timeline` resolver on the blocking pool. A
    /// prefetched timeline is handed out only with a header the viewer sees.
    pub(crate) async fn load(
        ctx: &Context<'_>,
        conversation_id: Uuid,
    ) -> ApiResult<Option<Conversation>> {
        let access = access(ctx).await?;
        let with_timeline = ctx.look_ahead().field("timeline").exists();
        let found = state(ctx).model("thread_view")?.query_blocking(|conn| {
            let Some(header) = thread_view::conversation(conn, conversation_id)? else {
                return Ok(None);
            };
            let size = u64::from(header.inbound_count)
                + u64::from(header.outbound_count)
                + u64::from(header.comment_count);
            let timeline = if with_timeline && size <= INLINE_TIMELINE {
                Some(thread_view::timeline(conn, conversation_id)?)
            } else {
                None
            };
            Ok(Some((header, timeline)))
        })?;
        Ok(found
            .filter(|(h, _)| access.conversation(h.inbox_id, h.private_owner_id))
            .map(|(header, timeline)| {
                Conversation(
                    header,
                    None,
                    timeline.map(|t| Arc::new(Mutex::new(Some(t)))),
                )
            }))
    }
}

/// Resolves an assignee reference against the directory.
pub(crate) async fn assignee(
    ctx: &Context<'_>,
    reference: Option<AssigneeRef>,
) -> ApiResult<Option<Assignee>> {
    let Some(reference) = reference else {
        return Ok(None);
    };
    let view = state(ctx).directory().await?;
    let d = &view.directory;
    Ok(match reference {
        AssigneeRef::User(id) => d.user(id).cloned().map(|u| Assignee::User(User(u))),
        AssigneeRef::Team(id) => d.teams.get(&id).cloned().map(|t| Assignee::Team(Team(t))),
        AssigneeRef::Bot(id) => d.bots.get(&id).map(|name| {
            Assignee::Bot(Bot {
                bot_id: id,
                name: name.clone(),
            })
        }),
    })
}

#[Object]
impl Conversation {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(Kind::Conversation, self.0.conversation_id)
    }
    /// The inbox it lives in.
    async fn inbox(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Inbox>> {
        let view = state(ctx).directory().await?;
        Ok(view
            .directory
            .inboxes
            .get(&self.0.inbox_id)
            .cloned()
            .map(Inbox))
    }
    /// The channel it came through.
    async fn channel(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Channel>> {
        let view = state(ctx).directory().await?;
        Ok(view
            .directory
            .channels
            .get(&self.0.channel_id)
            .cloned()
            .map(|c| {
                let fallback = view.directory.is_fallback(c.id);
                Channel::new(c, fallback)
            }))
    }
    /// The channel's kind.
    async fn channel_kind(&self) -> ChannelType {
        self.0.channel_kind.into()
    }
    /// The customer, once known.
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        match self.0.contact_id {
            Some(id) => Ok(Contact::load(ctx, id).await?),
            None => Ok(None),
        }
    }
    /// Came through a user's private e-mail account and not shared: only they and admins see
    /// it.
    async fn private(&self) -> bool {
        self.0.private_owner_id.is_some()
    }
    /// Open, closed, or filtered-only.
    async fn status(&self) -> ConversationStatus {
        self.0.status.into()
    }
    /// The current assignee.
    async fn assignee(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Assignee>> {
        Ok(assignee(ctx, self.0.assignee).await?)
    }
    /// When it started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The latest activity; inbox lists sort on it.
    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity_at
    }
    /// When it was last closed, while closed.
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    /// The subject of its first message that had one.
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    /// The start of the last message in or out.
    async fn last_message_preview(&self) -> Option<&str> {
        self.0.last_message_preview.as_deref()
    }
    /// When that message was sent or received.
    async fn last_message_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_message_at
    }
    /// Inbound messages the assignee has not answered or seen since.
    async fn unread_count(&self) -> u32 {
        self.0.unread_count
    }
    /// Since when the customer has been waiting for a reply, if they are.
    async fn waiting_since(&self) -> Option<DateTime<Utc>> {
        self.0.waiting_since
    }
    /// Inbound customer messages.
    async fn inbound_count(&self) -> u32 {
        self.0.inbound_count
    }
    /// Outbound messages (human, bot and automated).
    async fn outbound_count(&self) -> u32 {
        self.0.outbound_count
    }
    /// Internal comments.
    async fn comment_count(&self) -> u32 {
        self.0.comment_count
    }
    /// The conversation stream's version: pass it as `expectedVersion` to act only if nothing
    /// changed since.
    async fn version(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<u64>> {
        if let Some(snapshot) = &self.1 {
            return Ok(snapshot.version);
        }
        let stream = proto_events::streams::conversation(self.0.conversation_id);
        Ok(state(ctx)
            .store
            .stream_version(&stream)
            .await
            .map_err(crate::error::ApiError::from)?)
    }
    /// Its response metrics per cycle (analytics drill-down); null while analytics have not
    /// seen it.
    async fn metrics(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::types::analytics::ConversationMetrics>> {
        match crate::types::analytics::ConversationMetrics::load(ctx, self.0.conversation_id).await
        {
            Ok(metrics) => Ok(Some(metrics)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    /// Its timeline, in the order things happened (the log's order). For a past state, up to
    /// that state.
    #[graphql(complexity = "crate::types::page::complexity(first, last, child_complexity)")]
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Connection<String, crate::types::timeline::TimelineEntry>> {
        let inner = state(ctx);
        let window = Window::new(&inner.limits, first, after, last, before)?;
        if let Some(snapshot) = &self.1 {
            return Ok(crate::types::timeline::connection(
                self.0.conversation_id,
                snapshot.timeline.clone(),
                &window,
            ));
        }
        let prefetched = self
            .2
            .as_ref()
            .and_then(|p| p.lock().ok().and_then(|mut taken| taken.take()));
        let entries = match prefetched {
            Some(entries) => entries,
            None => {
                let id = self.0.conversation_id;
                inner
                    .query("thread_view", move |conn| thread_view::timeline(conn, id))
                    .await?
            }
        };
        Ok(crate::types::timeline::connection(
            self.0.conversation_id,
            entries,
            &window,
        ))
    }
}

/// An inbox list, filtered by access: the conversations of `filter` the viewer sees.
pub(crate) async fn list(
    ctx: &Context<'_>,
    filter: ConversationFilter,
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> ApiResult<ConversationConnection> {
    let inner = state(ctx);
    let window = Window::new(&inner.limits, first, after, last, before)?;
    let access = access(ctx).await?;
    let inbox_id = filter
        .inbox_id
        .as_ref()
        .map(|id| ids::decode(id, Kind::Inbox, "filter.inboxId"))
        .transpose()?;
    if let Some(inbox) = inbox_id
        && !access.inbox(inbox)
    {
        return Err(ApiError::not_found("inbox"));
    }
    let assignee = match (&filter.assignee_id, filter.assignee) {
        (Some(id), _) => AssigneeFilter::User(ids::decode(id, Kind::User, "filter.assigneeId")?),
        (None, AssigneeScope::Any) => AssigneeFilter::Any,
        (None, AssigneeScope::Unassigned) => AssigneeFilter::Unassigned,
        (None, AssigneeScope::Mine) => AssigneeFilter::User(access.user_id),
    };
    let list_filter = ListFilter {
        inbox_id,
        status: filter.status.map(Into::into),
        assignee,
        team_id: filter
            .team_id
            .as_ref()
            .map(|id| ids::decode(id, Kind::Team, "filter.teamId"))
            .transpose()?,
        channel_id: filter
            .channel_id
            .as_ref()
            .map(|id| ids::decode(id, Kind::Channel, "filter.channelId"))
            .transpose()?,
    };
    let request = match &window {
        Window::First { count, after } => PageRequest::First {
            count: *count,
            after: after.as_deref().map(parse_cursor).transpose()?,
        },
        Window::Last { count, before } => PageRequest::Last {
            count: *count,
            before: before.as_deref().map(parse_cursor).transpose()?,
        },
    };
    let scope = access.scope();
    let page = inner
        .query("thread_view", move |conn| {
            thread_view::list_conversations(conn, &list_filter, &request, &scope)
        })
        .await?;
    let mut connection = Connection::new(page.has_previous_page, page.has_next_page);
    for header in page.items {
        let cursor = header.cursor();
        connection.edges.push(Edge::new(
            encode_cursor(&format!(
                "{}:{}",
                cursor.last_activity_at.timestamp_micros(),
                cursor.conversation_id
            )),
            Conversation::new(header),
        ));
    }
    Ok(connection)
}

fn parse_cursor(text: &str) -> ApiResult<Cursor> {
    let bad = || ApiError::bad_input("after", "not a cursor returned by this list");
    let (micros, id) = text.split_once(':').ok_or_else(bad)?;
    Ok(Cursor {
        last_activity_at: micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(bad)?,
        conversation_id: Uuid::parse_str(id).map_err(|_| bad())?,
    })
}
