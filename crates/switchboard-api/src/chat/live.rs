//! `GET /chat/{key}/live?token=<token>&after=<seq>`: a visitor's WebSocket.
//!
//! The upgrade is refused (before any socket exists) for an unknown widget (404), an `Origin`
//! the widget does not allow (403; browsers always send one, so a page elsewhere cannot open
//! it), a bad token (401) or an address over its rate limit (429). Browsers cannot set headers
//! on a WebSocket, hence the token in the query.
//!
//! The protocol is JSON text frames, each an object with a `type`:
//! - server → visitor: `message` (`id`, `seq`, `from` `visitor` or `team`, `author`, `text`,
//!   `at`), `typing` (`typing`: an agent started or stopped), `ack` (`clientId`, `id`, `seq`: a
//!   message of the visitor is durable), `error` (`clientId`, `field` or `code`, `message`).
//! - visitor → server: `message` (`text`, `name`?, `clientId`?), `typing` (`typing`), `seen`
//!   (`ids`: replies the visitor saw, sent by the widget only while its panel is open and the
//!   page visible; handing a reply to the socket does not make it seen, ADR 0006).
//!
//! `seen` acknowledgements are recorded by a task of the session, in batches, off the loop
//! that serves the socket, so a slow write never holds up the visitor's frames.
//!
//! Resuming: the socket first sends every message after `after` (the `seq` of the last message
//! the client has), read from the conversation's stream, then follows the live feed (`hub`),
//! skipping what it already sent; a socket that falls behind the feed reads what it missed
//! from the stream the same way. So a client that reconnects with its last `seq` gets exactly
//! the messages it missed, once each.
//!
//! Typing signals go through [`Chat::typing`](super::Chat) and are never stored: the visitor's
//! reach agents through the `chatTyping` subscription, agents' (`setChatTyping`) reach the
//! visitor's sockets.

use std::net::IpAddr;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{FromRequestParts, Path, Query, Request, State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_service::chat_conversation_id;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    Outgoing, Refusal, Typing, Widget, cors, peer, read_messages, receive, record_seen, seen_ids,
    verified, widget,
};
use crate::forms::retry_after;
use crate::hub::Announcement;
use crate::state::ApiState;

/// The read buffer of a visitor's socket (frames of a few hundred bytes; longer ones grow it).
const READ_BUFFER: usize = 4 * 1024;

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
    let address = peer(&request);
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
    /// To the task recording the replies the visitor acknowledged seeing (started with the
    /// first acknowledgement; it ends with the session).
    acknowledged: Option<mpsc::Sender<Vec<Uuid>>>,
}

/// Acknowledgements a session's recorder may have queued; more are dropped (the widget sends
/// few: one per reply shown or per time the panel is opened).
const SEEN_QUEUE: usize = 16;

/// Records the replies acknowledged seen on one socket, each batch of what has queued as one
/// command, until the session ends.
async fn record_acknowledged(
    state: ApiState,
    channel_id: Uuid,
    conversation: Uuid,
    mut queue: mpsc::Receiver<Vec<Uuid>>,
) {
    while let Some(mut batch) = queue.recv().await {
        while let Ok(more) = queue.try_recv() {
            batch.extend(more);
        }
        batch.sort_unstable();
        batch.dedup();
        if let Err(e) = record_seen(state.inner(), channel_id, conversation, batch).await {
            // The worst it does is e-mail a reply the visitor saw.
            tracing::warn!(error = %e, %conversation, "replies a chat visitor saw could not be recorded seen");
        }
    }
}

/// Why a session ends.
enum End {
    /// The visitor left or the connection broke.
    Gone,
    /// The server stops, or cannot follow the log.
    Server(u16, &'static str),
}

impl Session {
    async fn run(mut self, mut socket: WebSocket) {
        let end = self.serve(&mut socket).await;
        if let End::Server(code, reason) = end {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
    }

    fn conversation(&self) -> Uuid {
        chat_conversation_id(self.widget.channel_id(), &self.visitor.to_string())
    }

    async fn serve(&mut self, socket: &mut WebSocket) -> End {
        let state = self.state.clone();
        let inner = state.inner();
        let conversation = self.conversation();
        let stream = proto_events::streams::conversation(conversation);
        // Joined before the stream is read, so nothing falls between the two.
        let mut live = match inner.hub().await.and_then(|hub| hub.subscribe()) {
            Ok(live) => live,
            Err(_) => return End::Server(1011, "live updates are unavailable"),
        };
        let mut typing = inner.chat.typing.subscribe();
        if let Err(end) = self.catch_up(socket, conversation).await {
            return end;
        }
        let closing = inner.closing();
        tokio::pin!(closing);
        loop {
            tokio::select! {
                () = &mut closing => return End::Server(1001, "the server is shutting down"),
                announced = live.recv() => match announced {
                    Ok(Announcement::Event(event)) => {
                        let envelope = &event.envelope;
                        if envelope.stream != stream || envelope.stream_version <= self.seen {
                            continue;
                        }
                        self.seen = envelope.stream_version;
                        let directory = match inner.directory().await {
                            Ok(view) => view,
                            Err(_) => return End::Server(1011, "the directory is unavailable"),
                        };
                        let message = super::visible(
                            envelope.stream_version,
                            &envelope.payload,
                            envelope.metadata.occurred_at,
                            self.widget.channel_id(),
                            &directory.directory,
                        );
                        drop(directory);
                        if let Some(message) = message
                            && send(socket, &message).await.is_err()
                        {
                            return End::Gone;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        if let Err(end) = self.catch_up(socket, conversation).await {
                            return end;
                        }
                    }
                    Ok(Announcement::Failed) | Err(RecvError::Closed) => {
                        return End::Server(1011, "live updates stopped; reconnect");
                    }
                },
                signal = typing.recv() => match signal {
                    Ok(Typing { conversation_id, user: Some(_), typing })
                        if conversation_id == conversation =>
                    {
                        if send(socket, &json!({ "type": "typing", "typing": typing }))
                            .await
                            .is_err()
                        {
                            return End::Gone;
                        }
                    }
                    // Someone else's, the visitor's own, or skipped signals: they are only hints.
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return End::Server(1011, "signals stopped"),
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if self.incoming(socket, conversation, text.as_str()).await.is_err() {
                            return End::Gone;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let refused = json!({ "type": "error", "code": "BAD_FRAME",
                            "message": "send JSON text frames" });
                        if send(socket, &refused).await.is_err() {
                            return End::Gone;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return End::Gone,
                },
            }
        }
    }

    /// Sends the conversation's messages after `seen`, read from its stream.
    async fn catch_up(&mut self, socket: &mut WebSocket, conversation: Uuid) -> Result<(), End> {
        let inner = self.state.inner();
        loop {
            let (messages, last) = read_messages(
                inner,
                self.widget.channel_id(),
                conversation,
                self.seen,
                RESUME_CHUNK,
            )
            .await
            .map_err(|_| End::Server(1011, "the conversation cannot be read now"))?;
            let done = messages.len() < RESUME_CHUNK;
            for message in &messages {
                send(socket, message).await.map_err(|()| End::Gone)?;
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
        let inner = self.state.inner();
        let frame: Value = match serde_json::from_str(text) {
            Ok(Value::Object(frame)) => Value::Object(frame),
            _ => {
                return send(
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
                // Nobody listening is fine.
                let _ = inner.chat.typing.send(Typing {
                    conversation_id: conversation,
                    user: None,
                    typing,
                });
                Ok(())
            }
            Some("seen") => {
                let ids = match seen_ids(frame.get("ids").unwrap_or(&Value::Null)) {
                    Ok(ids) => ids,
                    Err(_) => {
                        return send(
                            socket,
                            &json!({ "type": "error", "code": "BAD_FRAME", "field": "ids",
                                "message": "ids must be a short list of message ids" }),
                        )
                        .await;
                    }
                };
                let queue = self.acknowledged.get_or_insert_with(|| {
                    let (queue, recorder) = mpsc::channel(SEEN_QUEUE);
                    tokio::spawn(record_acknowledged(
                        self.state.clone(),
                        self.widget.channel_id(),
                        conversation,
                        recorder,
                    ));
                    queue
                });
                if queue.try_send(ids).is_err() {
                    tracing::debug!(%conversation, "a chat visitor's seen acknowledgement was dropped");
                }
                Ok(())
            }
            Some("message") => {
                let client_id = frame.get("clientId").cloned().unwrap_or(Value::Null);
                let outgoing: Outgoing = match serde_json::from_value(frame) {
                    Ok(outgoing) => outgoing,
                    Err(e) => {
                        return send(
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
                send(socket, &reply).await
            }
            _ => {
                send(
                    socket,
                    &json!({ "type": "error", "code": "BAD_FRAME",
                        "message": "unknown type: send message, typing or seen" }),
                )
                .await
            }
        }
    }
}

/// Sends one JSON frame; `Err` when the socket broke.
async fn send(socket: &mut WebSocket, value: &Value) -> Result<(), ()> {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .map_err(|_| ())
}
