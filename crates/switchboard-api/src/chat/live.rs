//! `GET /chat/{key}/live?token=<token>&after=<seq>`: a visitor's WebSocket.
//!
//! The upgrade is refused (before any socket exists) for an unknown widget (404), an `Origin`
//! the widget does not allow (403; browsers always send one, so a page elsewhere cannot open
//! it), a bad token (401) or an address over its rate limit (429). Browsers cannot set headers
//! on a WebSocket, hence the token in the query.
//!
//! The protocol is JSON text frames, each an object with a `type`:
//! - server → visitor: `message` (`id`, `seq`, `from` `visitor` or `team`, `author`, `text`,
//!   `at`, and for a visitor's message sent with one its `clientId`), `typing` (`typing`: an agent started or stopped), `ack` (`clientId`, `id`, `seq`: a
//!   message of the visitor is durable), `error` (`clientId`, `field` or `code`, `message`).
//! - visitor → server: `message` (`text`, `name`?, `clientId`?), `typing` (`typing`), `seen`
//!   (`ids`: replies the visitor saw, sent by the widget only while its panel is open and the
//!   page visible; handing a reply to the socket does not make it seen, ADR 0006).
//!
//! `seen` acknowledgements are recorded by a task of the session, off the loop that serves the
//! socket, so a slow write never holds up the visitor's frames. Nothing stops a page from
//! sending many: the session gathers the replies they name, leaving out those the socket
//! recorded already, and the task records what is gathered at most once every [`SEEN_EVERY`],
//! so a burst of frames is one or two commands (events only for replies not seen before), none
//! when nothing new was seen.
//!
//! Resuming: the socket first sends every message after `after` (the `seq` of the last message
//! the client has), read from the conversation's stream, then follows what is routed to it,
//! skipping what it already sent; a socket that falls behind reads what it missed from the
//! stream the same way. So a client that reconnects with its last `seq` gets exactly the
//! messages it missed, once each.
//!
//! Routing ([`Visitors`]): one task per live feed (`hub`) takes every event announced and
//! hands the messages of a conversation (`MessageReceived`, `ReplySent`) to the sockets
//! following that conversation only, through a bounded channel per socket
//! ([`ChatLimits::live_buffer`](super::ChatLimits)); agents' typing signals (`setChatTyping`)
//! go the same way. The task never waits for a socket: one whose channel is full is told it
//! lagged and reads its stream again, as above. When the feed gives up, every socket following
//! it is closed (1011) and the next one starts a new task on a new feed.
//!
//! A visitor's typing signals reach the agents' `chatTyping` subscriptions of that conversation,
//! at most one a second per conversation (the last one given within a second is told when it
//! is over, so a stop is never lost), and are never stored.
//!
//! Holding a socket (limits in [`ChatLimits`](super::ChatLimits)): a visitor has at most
//! `max_sockets_per_visitor` open, an address `max_sockets_per_address` (more are refused with
//! 429 before the upgrade); a socket silent for `ping_interval` is pinged, and closed (1001)
//! once nothing, not even a pong, has come for `idle_timeout`; a frame the connection does not
//! take within `send_timeout` ends it, so a visitor who stops reading holds nothing for long.

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{FromRequestParts, Path, Query, Request, State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use super::{
    Joined, Outgoing, Refusal, Rooms, SocketSlot, Widget, cors, peer, read_messages, receive,
    record_seen, seen_ids, verified, widget,
};
use crate::error::ApiResult;
use crate::forms::retry_after;
use crate::hub::{Announced, Announcement, Hub};
use crate::state::{ApiState, Inner};
use crate::types::event::conversation_of;

/// The read buffer of a visitor's socket (frames of a few hundred bytes; longer ones grow it).
const READ_BUFFER: usize = 4 * 1024;

/// What is routed to a visitor's socket.
#[derive(Debug, Clone)]
pub(crate) enum Live {
    /// A message of its conversation (`MessageReceived` or `ReplySent`).
    Event(Arc<Announced>),
    /// An agent started or stopped typing in its conversation.
    Typing(bool),
}

/// The visitors' sockets by conversation, and the task that routes the live feed to them.
#[derive(Debug, Default)]
pub(crate) struct Visitors {
    rooms: Rooms<Live>,
    /// The feed the routing task follows, and the generation its sockets join under; shared
    /// with the task, which clears the feed when it ends.
    routing: Arc<Mutex<Routing>>,
}

#[derive(Debug, Default)]
struct Routing {
    hub: Option<Arc<Hub>>,
    generation: u64,
}

/// Attempts to join a running routing generation before giving up: each failed one means a
/// feed ended just then, and the next attempt starts a new one.
const FOLLOW_ATTEMPTS: usize = 4;

impl Visitors {
    /// Follows `conversation` from now on: what is routed to it after this call arrives in the
    /// receiver. Starts the routing task on the running feed if none follows it yet.
    async fn follow(&self, inner: &Inner, conversation: Uuid) -> ApiResult<Joined<Live>> {
        for _ in 0..FOLLOW_ATTEMPTS {
            let hub = inner.hub().await?;
            let mut routing = self.routing.lock().unwrap_or_else(PoisonError::into_inner);
            if !routing.hub.as_ref().is_some_and(|h| Arc::ptr_eq(h, &hub)) {
                let announcements = hub.subscribe()?;
                routing.generation += 1;
                routing.hub = Some(hub);
                let (routed, lagged) = inner.metrics.chat_live();
                let ended = Ended {
                    rooms: self.rooms.clone(),
                    routing: self.routing.clone(),
                    generation: routing.generation,
                };
                tokio::spawn(route(announcements, ended, inner.closing(), routed, lagged));
            }
            // Refused when the routing task ended its generation since (it does not take the
            // `routing` lock to end it): forget that feed and start again.
            let generation = routing.generation;
            match self
                .rooms
                .join(conversation, inner.chat.limits.live_buffer, generation)
            {
                Some(joined) => return Ok(joined),
                None => routing.hub = None,
            }
        }
        Err(crate::error::ApiError::Unavailable(
            "the live feed of chat messages keeps ending; reconnect".to_owned(),
        ))
    }

    /// An agent started or stopped typing in `conversation`: told to its visitor's sockets.
    pub(crate) fn agent_typing(&self, conversation: Uuid, typing: bool) {
        let generation = self
            .routing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .generation;
        self.rooms
            .offer(conversation, generation, &Live::Typing(typing));
    }
}

/// Held by the routing task: when it ends, however (the feed gave up, the server stops, a
/// panic), its generation ends, so its sockets end and read their stream again elsewhere, and
/// the feed is forgotten, so the next socket starts a new task.
#[derive(Debug)]
struct Ended {
    rooms: Rooms<Live>,
    routing: Arc<Mutex<Routing>>,
    generation: u64,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.rooms.end(self.generation);
        let mut routing = self.routing.lock().unwrap_or_else(PoisonError::into_inner);
        if routing.generation == self.generation {
            routing.hub = None;
        }
    }
}

/// The routing task: hands each message announced to the sockets following its conversation,
/// until the feed gives up (its sockets are then ended) or the server stops.
async fn route(
    mut announcements: broadcast::Receiver<Announcement>,
    ended: Ended,
    closing: impl std::future::Future<Output = ()>,
    routed: Counter,
    lagged: Counter,
) {
    let (rooms, generation) = (&ended.rooms, ended.generation);
    tokio::pin!(closing);
    loop {
        let announced = tokio::select! {
            () = &mut closing => return,
            announced = announcements.recv() => announced,
        };
        match announced {
            Ok(Announcement::Event(event)) => {
                if !super::shown(&event.envelope.payload) {
                    continue;
                }
                let Some(conversation) = conversation_of(&event.envelope.stream) else {
                    continue;
                };
                let offered = rooms.offer(conversation, generation, &Live::Event(event));
                routed.inc_by(offered.sent as u64);
                lagged.inc_by(offered.lagged as u64);
            }
            // Skipped events may concern anyone: every socket reads its stream again.
            Err(RecvError::Lagged(_)) => {
                tracing::warn!("chat: the routing of live messages lagged the feed");
                rooms.lag_all(generation);
            }
            // `ended`, dropped, ends the generation.
            Ok(Announcement::Failed) | Err(RecvError::Closed) => return,
        }
    }
}

/// The upgrade's query.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    #[serde(default)]
    token: String,
    /// The `seq` of the last message the client has.
    #[serde(default)]
    after: u64,
}

/// Most messages a resume sends from the stream at once before it reads on.
const RESUME_CHUNK: usize = 500;

/// `GET /chat/{key}/live`.
pub(super) async fn upgrade(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    Query(query): Query<LiveQuery>,
    request: Request,
) -> Response {
    let address = peer(&state, &request);
    let inner = state.inner();
    let widget = match widget(inner, &key).await {
        Ok(widget) => widget,
        Err(response) => return response,
    };
    if let Err(refused) = cors(&widget, request.headers()) {
        return refused.into_response();
    }
    let visitor = match verified(inner, &widget, &query.token) {
        Ok(visitor) => visitor,
        Err(refused) => return refused.into_response(),
    };
    if let Err(wait) = inner.chat.check(address, None) {
        return crate::forms::too_many(wait, "too many connections; try again later");
    }
    let slot = match inner.chat.open_socket(visitor, address) {
        Ok(slot) => slot,
        Err(refused) => return refused.into_response(),
    };
    let (mut parts, _) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let max = inner.chat.limits.max_body_bytes;
    let after = query.after;
    // A visitor's frames are small: tungstenite's default 128 KiB read buffer, zeroed on every
    // read, was a third of the CPU under 1,000 sockets (`switchboard-bench chat`).
    upgrade
        .read_buffer_size(READ_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            Session {
                state,
                widget,
                visitor,
                address,
                seen: after,
                acknowledged: None,
                _slot: slot,
            }
            .run(socket)
            .await;
        })
}

/// One visitor's socket.
struct Session {
    state: ApiState,
    widget: Widget,
    visitor: Uuid,
    address: IpAddr,
    /// The `seq` of the last event of the conversation the socket has passed (sent or
    /// skipped).
    seen: u64,
    /// Records the replies the visitor acknowledged seeing (started with the first
    /// acknowledgement; it ends with the session).
    acknowledged: Option<SeenRecorder>,
    /// Counts the socket against its visitor's and address's limits while it lives.
    _slot: SocketSlot,
}

/// A socket's acknowledgements are recorded at most once per this long: the first at once,
/// what comes within the window gathered into one command at its end.
const SEEN_EVERY: Duration = Duration::from_secs(3);

/// Most reply ids a socket gathers for its next command; more are dropped until it records
/// (a conversation has no more unseen replies than a visitor can be shown in a few seconds).
const SEEN_GATHERED: usize = 1_000;

/// Reply ids a socket remembers having recorded, so the same acknowledgement again costs
/// nothing; past this many it forgets them (the domain leaves out replies already seen).
const SEEN_REMEMBERED: usize = 4_096;

/// The replies a socket's acknowledgements named: added to by the session as frames come (no
/// queue to fill, so none is lost to a burst), taken by its recorder task.
#[derive(Debug, Default)]
struct Acknowledged {
    /// Named and not recorded yet.
    gathered: BTreeSet<Uuid>,
    /// Recorded by this socket.
    recorded: HashSet<Uuid>,
}

/// A session's side of its recorder (started with the first acknowledgement; the task ends
/// once this is dropped and what was gathered is recorded).
struct SeenRecorder {
    acknowledged: Arc<Mutex<Acknowledged>>,
    /// Wakes the task: one wake-up pending is enough, however many frames came.
    wake: mpsc::Sender<()>,
}

impl SeenRecorder {
    fn start(state: ApiState, channel_id: Uuid, conversation: Uuid) -> SeenRecorder {
        let acknowledged = Arc::<Mutex<Acknowledged>>::default();
        let (wake, woken) = mpsc::channel(1);
        // Held until the task ends, so a shutdown waits for its last command. A shutdown
        // already waiting lets no new holder in: this socket is about to close anyway.
        let holding = state.inner().background.clone().try_read_owned().ok();
        let recording =
            record_acknowledged(state, channel_id, conversation, acknowledged.clone(), woken);
        tokio::spawn(async move {
            recording.await;
            drop(holding);
        });
        SeenRecorder { acknowledged, wake }
    }

    /// The visitor saw `ids`: gathered unless this socket recorded them already.
    fn add(&self, ids: Vec<Uuid>) {
        let mut acknowledged = self
            .acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Acknowledged { gathered, recorded } = &mut *acknowledged;
        let before = gathered.len();
        for id in ids.into_iter().filter(|id| !recorded.contains(id)) {
            if gathered.len() >= SEEN_GATHERED {
                tracing::debug!("a chat visitor's seen acknowledgements were dropped");
                break;
            }
            gathered.insert(id);
        }
        if gathered.len() > before {
            // Full: a wake-up is pending already.
            let _ = self.wake.try_send(());
        }
    }
}

/// Records what a socket's acknowledgements gathered, one command at most every
/// [`SEEN_EVERY`], until the session ends and the last of it is recorded: at once when the
/// socket or the server closes. A command that fails is tried again a window later, with
/// what came meanwhile, until it succeeds or the socket has closed and one last try failed.
async fn record_acknowledged(
    state: ApiState,
    channel_id: Uuid,
    conversation: Uuid,
    acknowledged: Arc<Mutex<Acknowledged>>,
    mut woken: mpsc::Receiver<()>,
) {
    let lock = || acknowledged.lock().unwrap_or_else(PoisonError::into_inner);
    let closing = state.inner().closing();
    tokio::pin!(closing);
    let mut shutting_down = false;
    let mut next_at = Instant::now();
    let mut retry = false;
    loop {
        let open = if retry {
            !woken.is_closed()
        } else {
            woken.recv().await.is_some()
        };
        // What comes while the window is closed joins this command.
        if open && !shutting_down {
            tokio::select! {
                () = tokio::time::sleep_until(next_at) => {}
                () = &mut closing => shutting_down = true,
            }
        }
        let batch: Vec<Uuid> = std::mem::take(&mut lock().gathered).into_iter().collect();
        retry = false;
        if !batch.is_empty() {
            next_at = Instant::now() + SEEN_EVERY;
            match record_seen(state.inner(), channel_id, conversation, batch.clone()).await {
                Ok(()) => {
                    let recorded = &mut lock().recorded;
                    if recorded.len() + batch.len() > SEEN_REMEMBERED {
                        recorded.clear();
                    }
                    recorded.extend(batch);
                }
                // Unrecorded, a reply the visitor saw may be e-mailed to them: kept for the
                // next try (the widget does not name them again).
                Err(e) => {
                    tracing::warn!(error = %e, %conversation,
                        "replies a chat visitor saw could not be recorded seen; trying again");
                    let gathered = &mut lock().gathered;
                    for id in batch {
                        if gathered.len() >= SEEN_GATHERED {
                            break;
                        }
                        gathered.insert(id);
                    }
                    retry = open && !shutting_down;
                }
            }
        }
        if !open {
            return;
        }
    }
}

/// Why a session ends.
enum End {
    /// The visitor left, the connection broke, or it took no frame within `send_timeout`.
    Gone,
    /// The server stops, cannot follow the log, or the visitor stopped answering.
    Server(u16, &'static str),
}

impl Session {
    async fn run(mut self, mut socket: WebSocket) {
        let Err(end) = self.serve(&mut socket).await;
        if let End::Server(code, reason) = end {
            let close = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = send_within(&self.state, &mut socket, close).await;
        }
    }

    /// Serves the socket until it ends, and why.
    async fn serve(&mut self, socket: &mut WebSocket) -> Result<Infallible, End> {
        let state = self.state.clone();
        let inner = state.inner();
        // The visitor's conversation now (a successor, if theirs was erased); if it is erased
        // while this socket follows it, the socket closes and the client's reconnection finds
        // the next one.
        let conversation =
            super::visitors_conversation(inner, self.widget.channel_id(), self.visitor)
                .await
                .map_err(|_| End::Server(1011, "the conversation cannot be read now"))?;
        // Joined before the stream is read, so nothing falls between the two.
        let mut live = match inner.chat.visitors.follow(inner, conversation).await {
            Ok(live) => live,
            Err(_) => return Err(End::Server(1011, "live updates are unavailable")),
        };
        self.catch_up(socket, conversation).await?;
        let closing = inner.closing();
        tokio::pin!(closing);
        let limits = &inner.chat.limits;
        let mut pings =
            tokio::time::interval_at(Instant::now() + limits.ping_interval, limits.ping_interval);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        loop {
            tokio::select! {
                () = &mut closing => return Err(End::Server(1001, "the server is shutting down")),
                routed = live.items.recv() => match routed {
                    Some(Live::Event(event)) => {
                        // Something dropped before this event must be sent first.
                        if live.lagged_now() {
                            self.catch_up(socket, conversation).await?;
                        }
                        let envelope = &event.envelope;
                        if envelope.stream_version <= self.seen {
                            continue;
                        }
                        if matches!(envelope.payload, proto_events::DomainEvent::ConversationErased(_)) {
                            return Err(End::Server(1012, "the conversation was erased; reconnect"));
                        }
                        self.seen = envelope.stream_version;
                        let directory = match inner.directory().await {
                            Ok(view) => view,
                            Err(_) => return Err(End::Server(1011, "the directory is unavailable")),
                        };
                        let message = super::visible(
                            envelope.stream_version,
                            &envelope.payload,
                            envelope.metadata.occurred_at,
                            self.widget.channel_id(),
                            &directory.directory,
                        );
                        drop(directory);
                        if let Some(message) = message {
                            send(&state, socket, &message).await.map_err(|()| End::Gone)?;
                        }
                    }
                    Some(Live::Typing(typing)) => {
                        let signal = json!({ "type": "typing", "typing": typing });
                        send(&state, socket, &signal).await.map_err(|()| End::Gone)?;
                    }
                    None => return Err(End::Server(1011, "live updates stopped; reconnect")),
                },
                () = live.lagged.notified() => self.catch_up(socket, conversation).await?,
                _ = pings.tick() => {
                    if heard.elapsed() >= limits.idle_timeout {
                        return Err(End::Server(1001, "no answer to pings"));
                    }
                    send_within(&state, socket, Message::Ping(Default::default()))
                        .await
                        .map_err(|()| End::Gone)?;
                }
                incoming = socket.recv() => {
                    heard = Instant::now();
                    pings.reset();
                    match incoming {
                        Some(Ok(Message::Text(text))) => {
                            self.incoming(socket, conversation, text.as_str())
                                .await
                                .map_err(|()| End::Gone)?;
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let refused = json!({ "type": "error", "code": "BAD_FRAME",
                                "message": "send JSON text frames" });
                            send(&state, socket, &refused).await.map_err(|()| End::Gone)?;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return Err(End::Gone),
                    }
                }
            }
        }
    }

    /// Sends the conversation's messages after `seen`, read from its stream.
    async fn catch_up(&mut self, socket: &mut WebSocket, conversation: Uuid) -> Result<(), End> {
        let state = self.state.clone();
        loop {
            let (messages, last) = read_messages(
                state.inner(),
                self.widget.channel_id(),
                conversation,
                self.seen,
                RESUME_CHUNK,
            )
            .await
            .map_err(|_| End::Server(1011, "the conversation cannot be read now"))?;
            let done = messages.len() < RESUME_CHUNK;
            for message in &messages {
                send(&state, socket, message)
                    .await
                    .map_err(|()| End::Gone)?;
            }
            self.seen = self.seen.max(last);
            if done {
                return Ok(());
            }
        }
    }

    /// Handles one frame from the visitor; `Err` when the socket broke.
    async fn incoming(
        &mut self,
        socket: &mut WebSocket,
        conversation: Uuid,
        text: &str,
    ) -> Result<(), ()> {
        let state = self.state.clone();
        let inner = state.inner();
        let frame: Value = match serde_json::from_str(text) {
            Ok(Value::Object(frame)) => Value::Object(frame),
            _ => {
                return send(
                    &state,
                    socket,
                    &json!({ "type": "error", "code": "BAD_FRAME",
                        "message": "each frame is a JSON object with a type" }),
                )
                .await;
            }
        };
        match frame.get("type").and_then(Value::as_str) {
            Some("typing") => {
                let typing = frame
                    .get("typing")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                inner.chat.visitor_typing(conversation, typing);
                Ok(())
            }
            Some("seen") => {
                let ids = match seen_ids(frame.get("ids").unwrap_or(&Value::Null)) {
                    Ok(ids) => ids,
                    Err(_) => {
                        return send(
                            &self.state,
                            socket,
                            &json!({ "type": "error", "code": "BAD_FRAME", "field": "ids",
                                "message": "ids must be a short list of message ids" }),
                        )
                        .await;
                    }
                };
                self.acknowledged
                    .get_or_insert_with(|| {
                        SeenRecorder::start(
                            self.state.clone(),
                            self.widget.channel_id(),
                            conversation,
                        )
                    })
                    .add(ids);
                Ok(())
            }
            Some("message") => {
                let client_id = frame.get("clientId").cloned().unwrap_or(Value::Null);
                let outgoing: Outgoing = match serde_json::from_value(frame) {
                    Ok(outgoing) => outgoing,
                    Err(e) => {
                        return send(
                            &state,
                            socket,
                            &json!({ "type": "error", "clientId": client_id, "code": "BAD_FRAME",
                                "message": e.to_string() }),
                        )
                        .await;
                    }
                };
                let result = match inner.chat.check(self.address, Some(self.visitor)) {
                    Err(wait) => Err(Refusal::TooMany(wait)),
                    Ok(()) => receive(inner, &self.widget, self.visitor, outgoing).await,
                };
                let reply = match result {
                    Ok((id, seq)) => {
                        json!({ "type": "ack", "clientId": client_id, "id": id, "seq": seq })
                    }
                    Err(Refusal::Field(field, message)) => json!({ "type": "error",
                        "clientId": client_id, "code": "BAD_USER_INPUT", "field": field,
                        "message": message }),
                    Err(Refusal::TooMany(wait)) => json!({ "type": "error",
                        "clientId": client_id, "code": "RATE_LIMITED",
                        "retryAfter": retry_after(wait),
                        "message": "too many messages; try again later" }),
                    Err(Refusal::Unavailable) => json!({ "type": "error",
                        "clientId": client_id, "code": "UNAVAILABLE",
                        "message": "the message could not be stored for now; send it again" }),
                    Err(Refusal::Refused(message)) => json!({ "type": "error",
                        "clientId": client_id, "code": "REFUSED", "message": message }),
                };
                send(&state, socket, &reply).await
            }
            _ => {
                send(
                    &state,
                    socket,
                    &json!({ "type": "error", "code": "BAD_FRAME",
                        "message": "unknown type: send message, typing or seen" }),
                )
                .await
            }
        }
    }
}

/// Sends one JSON frame; `Err` when the socket broke or did not take it in time.
async fn send(state: &ApiState, socket: &mut WebSocket, value: &Value) -> Result<(), ()> {
    send_within(state, socket, Message::Text(value.to_string().into())).await
}

/// Sends `message` within the send timeout; `Err` when the socket broke or did not take it.
async fn send_within(state: &ApiState, socket: &mut WebSocket, message: Message) -> Result<(), ()> {
    match tokio::time::timeout(state.inner().chat.limits.send_timeout, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(()),
    }
}
