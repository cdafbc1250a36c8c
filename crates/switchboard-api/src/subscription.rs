//! The subscription root, served over `graphql-transport-ws` at `/graphql/ws`.
//!
//! Every update is announced once the read models include it (see `hub`), so what a client
//! reads on an update shows it. Access is checked when a subscription starts and again on every
//! update: an agent removed from an inbox stops receiving its updates at once, and a deactivated
//! user's or a revoked token's subscriptions end with UNAUTHENTICATED as soon as the
//! deactivation or revocation is announced, whether or not anything they follow changes.
//!
//! A subscription misses nothing from where it starts: with `after`, what was written before it
//! joined the live feed is read from the store first; a subscriber too slow for the live feed's
//! buffer reads what it missed from the store the same way, then goes on live.

use std::collections::VecDeque;
use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Subscription as SubscriptionObject};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use proto_events::event::Assignee;
use proto_events::{DomainEvent, Envelope};
use switchboard_store::{Position, RecordedEvent, StoreError};
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult};
use crate::hub::{self, Announced, Announcement, Hub};
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
    event: Arc<Announced>,
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
        self.event.envelope.position
    }
    /// The event's type, e.g. `ReplySent`.
    async fn event_type(&self) -> &str {
        &self.event.envelope.event_type
    }
    /// When it happened.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.event.envelope.metadata.occurred_at
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

/// Whether an event concerns a subscription (its viewer is the `Uuid`), and for the viewer's
/// feed why; the update is then about the event's conversation, as the viewer may see it.
type Select = Box<dyn Fn(&Envelope, Uuid) -> Option<Option<ViewerReason>> + Send + Sync>;

/// Most events a subscription's `after` may lie behind the head: an older token means the
/// client re-reads what it shows and subscribes with a fresh token.
const REPLAY_LIMIT: u64 = 100_000;

/// Events read from the store at once while replaying.
const REPLAY_CHUNK: usize = 256;

/// The events a subscription with `after` is owed from before it joined the live feed: those
/// after `after` up to the head read once it had joined, read from the store in order.
struct Replay {
    /// The last position read.
    read: Position,
    /// The head when the subscription joined the live feed: the live feed has every event
    /// after it, so the replay ends there and the live feed skips what is not after it.
    until: Position,
    pending: VecDeque<Arc<Announced>>,
}

impl Replay {
    /// Nothing to replay: updates from the head now on (call once subscribed to the live feed
    /// of `hub`).
    async fn none(inner: &Inner, hub: &Hub) -> ApiResult<Replay> {
        let head = inner.store.head().await?.max(hub.announced());
        Ok(Replay {
            read: head,
            until: head,
            pending: VecDeque::new(),
        })
    }

    /// The events after `after` up to the head now (call once subscribed to the live feed of
    /// `hub`), once the read models include them; `too_far` is the error when that is more
    /// than [`REPLAY_LIMIT`] events.
    async fn since(
        inner: &Inner,
        hub: &Hub,
        after: Position,
        too_far: impl FnOnce(u64) -> ApiError,
    ) -> ApiResult<Replay> {
        // The live feed may announce an event a moment before the store's head shows it: the
        // replay then reaches up to it, or the receiver made before would never see it.
        let head = inner.store.head().await?.max(hub.announced());
        let behind = head.0.saturating_sub(after.0);
        if behind > REPLAY_LIMIT {
            return Err(too_far(behind));
        }
        if head > after {
            let deadline = tokio::time::Instant::now() + hub::ANNOUNCE_WAIT;
            if let Err(e) = inner.projections.wait_for(head, deadline).await {
                tracing::warn!(position = head.0, error = %e,
                    "subscriptions: replaying events the read models do not show yet");
            }
        }
        Ok(Replay {
            read: after,
            until: head.max(after),
            pending: VecDeque::new(),
        })
    }

    /// The next event to replay, if any is left.
    async fn next(&mut self, inner: &Inner) -> ApiResult<Option<Arc<Announced>>> {
        while self.pending.is_empty() && self.read < self.until {
            let wanted = usize::try_from(self.until.0 - self.read.0)
                .unwrap_or(REPLAY_CHUNK)
                .min(REPLAY_CHUNK);
            let chunk = inner.store.read_all(self.read, wanted).await?;
            let Some(last) = chunk.last() else {
                // Nothing more is stored (cannot happen below the head): stop replaying.
                self.read = self.until;
                break;
            };
            self.read = last.position;
            for recorded in chunk.iter().filter(|r| r.position <= self.until) {
                match switchboard_codec::decode(recorded) {
                    Ok(envelope) => self.pending.push_back(Arc::new(Announced::new(envelope))),
                    Err(e) => tracing::error!(position = recorded.position.0, error = %e,
                        "subscriptions: an event does not decode; skipped"),
                }
            }
        }
        Ok(self.pending.pop_front())
    }
}

/// The state of a conversation subscription.
struct Updates {
    api: ApiState,
    me: Viewer,
    inbox: Option<Uuid>,
    select: Select,
    replay: Replay,
    hub: Arc<Hub>,
    live: broadcast::Receiver<Announcement>,
    /// The position of the last event taken from the replay or the live feed, sent or not: a
    /// subscriber that lags behind the live feed replays from here.
    last: Position,
    /// Set once the subscription sent its last item.
    done: bool,
    _open: Open,
}

impl Updates {
    /// The next update to send: an error ends the subscription.
    async fn next(&mut self) -> Option<ApiResult<ConversationUpdate>> {
        loop {
            let event = match self.next_event().await? {
                Ok(event) => event,
                Err(e) => return Some(Err(e)),
            };
            if ends_access(&event.envelope, self.me.user_id) {
                let view = match self.api.inner().directory().await {
                    Ok(view) => view,
                    Err(e) => return Some(Err(e)),
                };
                if let Err(e) = check_viewer(&view.directory, &self.me) {
                    return Some(Err(e));
                }
            }
            let Some(reason) = (self.select)(&event.envelope, self.me.user_id) else {
                continue;
            };
            match visible(self.api.inner(), self.me, &event).await {
                Ok(Some(conversation))
                    if self.inbox.is_none_or(|i| i == conversation.0.inbox_id) =>
                {
                    return Some(Ok(ConversationUpdate {
                        event,
                        conversation,
                        reason,
                    }));
                }
                Ok(_) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The next event, replayed or live; `None` when the feed closed.
    async fn next_event(&mut self) -> Option<ApiResult<Arc<Announced>>> {
        loop {
            match self.replay.next(self.api.inner()).await {
                Ok(Some(event)) => {
                    self.last = Position(event.envelope.position);
                    return Some(Ok(event));
                }
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            match self.live.recv().await {
                // Replayed already (or before `after`).
                Ok(Announcement::Event(event))
                    if Position(event.envelope.position) <= self.replay.until => {}
                Ok(Announcement::Event(event)) => {
                    self.last = Position(event.envelope.position);
                    return Some(Ok(event));
                }
                Ok(Announcement::Failed) => return Some(Err(hub::unavailable())),
                Err(RecvError::Lagged(missed)) => {
                    // Too slow for the live buffer: join the live feed again from now, and read
                    // what was missed from the store first, as a subscription with `after` does.
                    tracing::debug!(
                        missed,
                        last = self.last.0,
                        "subscriptions: a subscriber lagged; replaying from the store"
                    );
                    self.live = self.live.resubscribe();
                    let too_far = |behind| ApiError::Conflict {
                        message: format!(
                            "this subscription fell {behind} events behind, more than \
                             {REPLAY_LIMIT}, and ended; read what you show again and \
                             subscribe with that query's consistencyToken"
                        ),
                        current_version: None,
                    };
                    let replay = Replay::since(self.api.inner(), &self.hub, self.last, too_far);
                    self.replay = match replay.await {
                        Ok(replay) => replay,
                        Err(e) => return Some(Err(e)),
                    };
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// The updates of conversations `select` picks, filtered by the viewer's access at each update
/// and, with `inbox`, by inbox; with `after` (a consistency token), from just after its
/// position, else from now.
async fn feed(
    ctx: &Context<'_>,
    me: Viewer,
    inbox: Option<Uuid>,
    after: Option<String>,
    select: Select,
) -> ApiResult<impl Stream<Item = async_graphql::Result<ConversationUpdate>> + use<>> {
    let api = ctx.data_unchecked::<ApiState>().clone();
    let inner = api.inner();
    let after = after
        .map(|token| inner.tokens.verify(&token, "after"))
        .transpose()?;
    // Join the live feed first, then read the head: the live feed has every event after it.
    let hub = inner.hub().await?;
    let live = hub.subscribe()?;
    let too_old = |behind| {
        ApiError::bad_input(
            "after",
            format!(
                "the token is {behind} events old, more than {REPLAY_LIMIT}: read what you show \
                 again and subscribe with that query's consistencyToken"
            ),
        )
    };
    let replay = match after {
        Some(after) => Replay::since(inner, &hub, after, too_old).await?,
        None => Replay::none(inner, &hub).await?,
    };
    let updates = Updates {
        hub,
        last: replay.read,
        _open: Open::new(&api),
        api,
        me,
        inbox,
        select,
        replay,
        live,
        done: false,
    };
    Ok(futures::stream::unfold(updates, |mut updates| async move {
        if updates.done {
            return None;
        }
        let next = updates.next().await?;
        updates.done = next.is_err();
        Some((next.map_err(async_graphql::Error::from), updates))
    }))
}

/// What `me` may see as of the directory now (a lookup while the directory has not moved);
/// UNAUTHENTICATED once their token is no longer honoured.
async fn access_now(inner: &Inner, me: Viewer) -> ApiResult<std::sync::Arc<crate::access::Access>> {
    let view = inner.directory().await?;
    check_viewer(&view.directory, &me)?;
    inner.access(&view, me.user_id)
}

/// The conversation `event` belongs to, as the read model has it now, if `me` may see it;
/// UNAUTHENTICATED once their token is no longer honoured (deactivated, revoked), which ends the
/// subscription.
async fn visible(inner: &Inner, me: Viewer, event: &Announced) -> ApiResult<Option<Conversation>> {
    let access = access_now(inner, me).await?;
    let header = event.conversation(inner).await?;
    Ok(header
        .filter(|h| access.conversation(h.inbox_id, h.private_owner_id))
        .map(Conversation::new))
}

/// Whether `me` may still see `conversation`, as of the directory now (the access cache makes
/// this a lookup while the directory has not moved) and the conversation's inbox and private
/// owner in the read model; UNAUTHENTICATED once their token is no longer honoured.
async fn may_follow_typing(inner: &Inner, me: Viewer, conversation: Uuid) -> ApiResult<bool> {
    let access = access_now(inner, me).await?;
    let header = inner
        .query("thread_view", move |conn| {
            thread_view::conversation(conn, conversation)
        })
        .await?;
    Ok(header.is_some_and(|h| access.conversation(h.inbox_id, h.private_owner_id)))
}

/// Whether `event` may end `user`'s right to their subscriptions: their deactivation, the
/// revocation of their tokens.
fn ends_access(event: &Envelope, user: Uuid) -> bool {
    match &event.payload {
        DomainEvent::UserDeactivated(e) => e.user_id == user,
        DomainEvent::UserTokensRevoked(e) => e.user_id == user,
        _ => false,
    }
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

/// A chat visitor started or stopped typing.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
pub(crate) struct ChatTyping {
    /// The conversation.
    conversation_id: ID,
    /// Whether the visitor is typing now.
    typing: bool,
}

#[SubscriptionObject]
impl Subscription {
    /// The typing signals of the visitor of one chat conversation: ephemeral, never recorded,
    /// sent only while subscribed. Access is checked again on every signal: once the viewer may
    /// no longer see the conversation (removed from its inbox or from the team an inbox is
    /// restricted to, the conversation moved or made private) the subscription ends with
    /// NOT_FOUND, and once their token is no longer honoured, with UNAUTHENTICATED.
    async fn chat_typing(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ChatTyping>> + use<>> {
        let id = ids::decode(&conversation_id, Kind::Conversation, "conversationId")?;
        let me = viewer(ctx).await?;
        if Conversation::load(ctx, id).await?.is_none() {
            return Err(ApiError::not_found("conversation").into());
        }
        let api = ctx.data_unchecked::<ApiState>().clone();
        let inner = api.inner();
        let signals = inner.chat.follow_typing(id);
        let closing = inner.closing();
        let stream = futures::stream::unfold(Some(signals), move |signals| {
            let (api, conversation_id) = (api.clone(), conversation_id.clone());
            async move {
                let mut signals = signals?;
                loop {
                    // Skipped signals are only hints; `None` never comes while `signals` lives.
                    let typing = signals.items.recv().await?;
                    match may_follow_typing(api.inner(), me, id).await {
                        Ok(true) => {
                            let signal = ChatTyping {
                                conversation_id,
                                typing,
                            };
                            return Some((Ok(signal), Some(signals)));
                        }
                        // Sent, then the stream ends (its room is left as `signals` drops).
                        Ok(false) => {
                            let gone = ApiError::not_found("conversation");
                            return Some((Err(gone.into()), None));
                        }
                        Err(e @ ApiError::Unauthenticated(_)) => {
                            return Some((Err(e.into()), None));
                        }
                        // Access cannot be told now: the hint is dropped, never sent unchecked.
                        Err(e) => {
                            tracing::debug!(error = %e.message(), conversation = %id,
                                "a chat typing signal was dropped: access could not be checked");
                        }
                    }
                }
            }
        });
        Ok(stream.take_until(closing))
    }

    /// Every change of one conversation, with the conversation as it is after it. With
    /// `after` (a `consistencyToken` of a query or mutation), every change after what that
    /// token covers is sent, also those made before the subscription started; without it,
    /// changes from now on.
    async fn conversation_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
        after: Option<String>,
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
            after,
            Box::new(move |e, _| {
                (conversation_of(&e.stream) == Some(conversation_id)).then_some(None)
            }),
        )
        .await?)
    }

    /// Activity in one inbox: every change of its conversations the viewer may see. With
    /// `after` (a `consistencyToken` of a query or mutation), every change after what that
    /// token covers is sent, also those made before the subscription started; without it,
    /// changes from now on.
    async fn inbox_activity(
        &self,
        ctx: &Context<'_>,
        inbox_id: ID,
        after: Option<String>,
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
            after,
            Box::new(|e, _| conversation_of(&e.stream).map(|_| None)),
        )
        .await?)
    }

    /// What concerns the viewer: conversations assigned to them, comments mentioning them, and
    /// new customer messages in conversations assigned to them. With `after` (a
    /// `consistencyToken` of a query or mutation), everything after what that token covers is
    /// sent, also what happened before the subscription started; without it, from now on.
    async fn viewer_events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ConversationUpdate>> + use<>>
    {
        let me = viewer(ctx).await?;
        let updates = feed(
            ctx,
            me,
            None,
            after,
            Box::new(|e, user| concerns(e, user).map(Some)),
        )
        .await?;
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
    /// the beginning), or after the position of `after` (a `consistencyToken` of a query or
    /// mutation; not both), in order. Admins, auditors and analysts only. As in the `events`
    /// query, the events of conversations the viewer may not see (other users' private
    /// e-mail, for auditors and analysts) are left out, so positions may skip. Access is
    /// checked again on every event: a viewer who lost the role is sent FORBIDDEN and the
    /// subscription ends.
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] after_position: u64,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Event>> + use<>> {
        let me = viewer(ctx).await?;
        let access = access(ctx).await?;
        access.require(&HISTORY_READERS, "the raw event history")?;
        let inner = state(ctx);
        let start = match after {
            Some(_) if after_position != 0 => {
                return Err(ApiError::bad_input(
                    "after",
                    "pass `afterPosition` or `after`, not both",
                )
                .into());
            }
            Some(token) => inner.tokens.verify(&token, "after")?,
            None => Position(after_position),
        };
        let api = ctx.data_unchecked::<ApiState>().clone();
        let open = Open::new(&api);
        let events = inner
            .store
            .subscribe_all(start)
            .take_until(inner.closing())
            .ready_chunks(LOG_CHUNK)
            .boxed();
        let state = LogFeed {
            events,
            api,
            gate: LogGate::default(),
            pending: VecDeque::new(),
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
    pending: VecDeque<Event>,
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
    let access = access_now(inner, me).await?;
    access.require(&HISTORY_READERS, "the raw event history")?;
    gate.admit(inner, &access, recorded).await
}
