//! The subscription root, served over `graphql-transport-ws` at `/graphql/ws`.
//!
//! Every update is announced once the read models include it (see `hub`), so what a client
//! reads on an update shows it. Access is checked when a subscription starts and again on every
//! update: an agent removed from an inbox stops receiving its updates at once, and a deactivated
//! user's or a revoked token's subscriptions end with UNAUTHENTICATED.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Subscription as SubscriptionObject};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use proto_events::event::Assignee;
use proto_events::{DomainEvent, Envelope};
use switchboard_store::{Position, RecordedEvent, StoreError};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::query::HISTORY_READERS;
use crate::state::{ApiState, Inner, access, check_viewer, state, viewer};
use crate::types::conversation::Conversation;
use crate::types::event::{Event, LogGate, conversation_of};

/// Live updates.
#[derive(Debug, Default)]
pub struct Subscription;

/// Something happened in a conversation.
#[derive(Debug, Clone)]
pub(crate) struct ConversationUpdate {
    envelope: Arc<Envelope>,
    conversation: Conversation,
    reason: Option<ViewerReason>,
}

/// Why an update concerns the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum ViewerReason {
    /// The conversation was assigned to the viewer.
    Assigned,
    /// The viewer was @mentioned in a comment.
    Mentioned,
    /// The customer wrote in a conversation assigned to the viewer.
    NewMessage,
}

#[Object]
impl ConversationUpdate {
    /// The event's global position.
    async fn position(&self) -> u64 {
        self.envelope.position
    }
    /// The event's type, e.g. `ReplySent`.
    async fn event_type(&self) -> &str {
        &self.envelope.event_type
    }
    /// When it happened.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.envelope.metadata.occurred_at
    }
    /// The conversation as it is after the event.
    async fn conversation(&self) -> &Conversation {
        &self.conversation
    }
    /// For `viewerEvents`: why it concerns the viewer.
    async fn reason(&self) -> Option<ViewerReason> {
        self.reason
    }
}

/// Counts open subscriptions while alive.
struct Open(ApiState);

impl Open {
    fn new(state: &ApiState) -> Open {
        state.inner().metrics.subscriptions_changed(1);
        Open(state.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.inner().metrics.subscriptions_changed(-1);
    }
}

type Select = Box<dyn Fn(&Envelope, Uuid) -> Option<(Uuid, Option<ViewerReason>)> + Send + Sync>;

/// The updates of conversations `select` picks (it returns the conversation's id and, for the
/// viewer's feed, why), filtered by the viewer's access at each update and, with `inbox`, by
/// inbox.
fn feed(
    ctx: &Context<'_>,
    me: Viewer,
    inbox: Option<Uuid>,
    select: Select,
) -> impl Stream<Item = async_graphql::Result<ConversationUpdate>> + use<> {
    let api = ctx.data_unchecked::<ApiState>().clone();
    let rx = api.inner().hub().subscribe();
    let open = Open::new(&api);
    let state = (rx, api, select, open, false);
    futures::stream::unfold(state, move |(mut rx, api, select, open, done)| async move {
        if done {
            return None;
        }
        loop {
            match rx.recv().await {
                Ok(envelope) => {
                    let Some((conversation_id, reason)) = select(&envelope, me.user_id) else {
                        continue;
                    };
                    match visible(api.inner(), me, conversation_id).await {
                        Ok(Some(conversation))
                            if inbox.is_none_or(|i| i == conversation.0.inbox_id) =>
                        {
                            let update = ConversationUpdate {
                                envelope,
                                conversation,
                                reason,
                            };
                            return Some((Ok(update), (rx, api, select, open, false)));
                        }
                        Ok(_) => continue,
                        Err(e) => {
                            return Some((Err(e.into()), (rx, api, select, open, true)));
                        }
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let error = ApiError::Conflict {
                        message: format!(
                            "this subscription fell {missed} events behind and ended; \
                             subscribe again (and read what you missed)"
                        ),
                        current_version: None,
                    };
                    return Some((Err(error.into()), (rx, api, select, open, true)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// The conversation, as the read model has it now, if `me` may see it; UNAUTHENTICATED once
/// their token is no longer honoured (deactivated, revoked), which ends the subscription.
async fn visible(
    inner: &Inner,
    me: Viewer,
    conversation_id: Uuid,
) -> ApiResult<Option<Conversation>> {
    let access = {
        let view = inner.directory().await?;
        check_viewer(&view.directory, &me)?;
        inner.access(&view, me.user_id)?
    };
    let header = inner
        .query("thread_view", move |conn| {
            thread_view::conversation(conn, conversation_id)
        })
        .await?;
    Ok(header
        .filter(|h| access.conversation(h.inbox_id, h.private_owner_id))
        .map(Conversation::new))
}

/// Why an event concerns `user`, if it does.
fn concerns(envelope: &Envelope, user: Uuid) -> Option<ViewerReason> {
    match &envelope.payload {
        DomainEvent::ConversationAssigned(e) => {
            matches!(e.assignee, Assignee::User { id } if id == user)
                .then_some(ViewerReason::Assigned)
        }
        DomainEvent::ConversationReassigned(e) => {
            matches!(e.to, Assignee::User { id } if id == user).then_some(ViewerReason::Assigned)
        }
        DomainEvent::CommentAdded(e) => e
            .mentions
            .contains(&user)
            .then_some(ViewerReason::Mentioned),
        DomainEvent::MessageReceived(_) => Some(ViewerReason::NewMessage),
        _ => None,
    }
}

#[SubscriptionObject]
impl Subscription {
    /// Every change of one conversation, with the conversation as it is after it.
    async fn conversation_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ConversationUpdate>> + use<>>
    {
        let conversation_id = ids::decode(&id, Kind::Conversation, "id")?;
        let me = viewer(ctx).await?;
        if Conversation::load(ctx, conversation_id).await?.is_none() {
            return Err(ApiError::not_found("conversation").into());
        }
        Ok(feed(
            ctx,
            me,
            None,
            Box::new(move |e, _| {
                (conversation_of(&e.stream) == Some(conversation_id))
                    .then_some((conversation_id, None))
            }),
        ))
    }

    /// Activity in one inbox: every change of its conversations the viewer may see.
    async fn inbox_activity(
        &self,
        ctx: &Context<'_>,
        inbox_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ConversationUpdate>> + use<>>
    {
        let inbox = ids::decode(&inbox_id, Kind::Inbox, "inboxId")?;
        let me = viewer(ctx).await?;
        let access = access(ctx).await?;
        if !access.inbox(inbox) {
            return Err(ApiError::not_found("inbox").into());
        }
        Ok(feed(
            ctx,
            me,
            Some(inbox),
            Box::new(|e, _| conversation_of(&e.stream).map(|c| (c, None))),
        ))
    }

    /// What concerns the viewer: conversations assigned to them, comments mentioning them, and
    /// new customer messages in conversations assigned to them.
    async fn viewer_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ConversationUpdate>> + use<>>
    {
        let me = viewer(ctx).await?;
        let updates = feed(
            ctx,
            me,
            None,
            Box::new(|e, user| {
                let reason = concerns(e, user)?;
                conversation_of(&e.stream).map(|c| (c, Some(reason)))
            }),
        );
        // A new message concerns the viewer only in a conversation assigned to them.
        Ok(updates.filter(move |update| {
            let keep = match update {
                Ok(u) if u.reason == Some(ViewerReason::NewMessage) => {
                    u.conversation.0.assignee == Some(thread_view::AssigneeRef::User(me.user_id))
                }
                _ => true,
            };
            std::future::ready(keep)
        }))
    }

    /// The event log from a position, then live: every event after `afterPosition` (0: from
    /// the beginning), in order. Admins, auditors and analysts only. As in the `events` query,
    /// the events of conversations the viewer may not see (other users' private e-mail, for
    /// auditors and analysts) are left out, so positions may skip. Access is checked again on
    /// every event: a viewer who lost the role is sent FORBIDDEN and the subscription ends.
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] after_position: u64,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Event>> + use<>> {
        let me = viewer(ctx).await?;
        let access = access(ctx).await?;
        access.require(&HISTORY_READERS, "the raw event history")?;
        let inner = state(ctx);
        let api = ctx.data_unchecked::<ApiState>().clone();
        let open = Open::new(&api);
        let events = inner
            .store
            .subscribe_all(Position(after_position))
            .take_until(inner.closing())
            .ready_chunks(LOG_CHUNK)
            .boxed();
        let state = LogFeed {
            events,
            api,
            gate: LogGate::default(),
            pending: std::collections::VecDeque::new(),
            failure: None,
            _open: open,
        };
        Ok(futures::stream::unfold(state, move |mut feed| async move {
            loop {
                if let Some(event) = feed.pending.pop_front() {
                    return Some((Ok(event), feed));
                }
                if let Some(error) = feed.failure.take() {
                    // Once the error is sent, the stream ends.
                    feed.events = futures::stream::empty().boxed();
                    return Some((Err(error), feed));
                }
                let chunk = feed.events.next().await?;
                let mut recorded = Vec::with_capacity(chunk.len());
                for next in chunk {
                    match next {
                        Ok(event) => recorded.push(event),
                        Err(e) => {
                            feed.failure = Some(ApiError::from(e).into());
                            break;
                        }
                    }
                }
                match admit(feed.api.inner(), me, &mut feed.gate, &recorded).await {
                    Ok(admitted) => feed.pending.extend(
                        recorded
                            .into_iter()
                            .zip(admitted)
                            .filter(|(_, admitted)| *admitted)
                            .map(|(event, _)| Event::new(event)),
                    ),
                    Err(e) => feed.failure = Some(e.into()),
                }
            }
        }))
    }
}

/// How many events of the log the `events` subscription judges at once: those already
/// committed when it reads (a replay), up to this many; live, one at a time as they come.
const LOG_CHUNK: usize = 512;

/// The state of an `events` subscription.
struct LogFeed {
    events: futures::stream::BoxStream<'static, Vec<Result<RecordedEvent, StoreError>>>,
    api: ApiState,
    gate: LogGate,
    /// Admitted events not sent yet.
    pending: std::collections::VecDeque<Event>,
    /// An error to send after `pending`, which ends the subscription.
    failure: Option<async_graphql::Error>,
    _open: Open,
}

/// Which of `recorded` `me` may read now: their token is still honoured (UNAUTHENTICATED
/// otherwise), their role, as of the directory now, still reads the raw log (FORBIDDEN
/// otherwise), and an event is not of a conversation they may not see.
async fn admit(
    inner: &Inner,
    me: Viewer,
    gate: &mut LogGate,
    recorded: &[RecordedEvent],
) -> ApiResult<Vec<bool>> {
    let access = {
        let view = inner.directory().await?;
        check_viewer(&view.directory, &me)?;
        inner.access(&view, me.user_id)?
    };
    access.require(&HISTORY_READERS, "the raw event history")?;
    gate.admit(inner, &access, recorded).await
}
