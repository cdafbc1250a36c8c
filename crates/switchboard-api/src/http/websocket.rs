//! One subscription connection: async-graphql's WebSocket protocol engine, with the close codes
//! of `graphql-transport-ws` around it.
//!
//! async-graphql closes every protocol violation with generic codes (1002, 1011) and has no
//! initialisation timeout, while `graphql-transport-ws` clients (graphql-ws, Apollo, urql)
//! decide from the code whether to retry, re-authenticate or give up. So the messages the engine
//! reads go through [`Tracker::admit`] first, which ends the connection with the protocol's
//! code before the engine sees a violation:
//!
//! - 4400 Bad Request: a message that is not one of the protocol's (or names an uploaded
//!   file, which only HTTP carries);
//! - 4401 Unauthorized: a `subscribe` before the connection was acknowledged;
//! - 4403 Forbidden: `connection_init` refused (no or a bad token);
//! - 4408 Connection initialisation timeout: no `connection_init` within the bound;
//! - 4429 Too many initialisation requests: a second `connection_init`.
//!
//! The engine also closes a connection that sent nothing for a minute; the server sends a
//! `ping` every half of that, which clients answer with a `pong`, so only dead connections are
//! closed. The legacy `graphql-ws` protocol keeps the engine's own behaviour.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::http::{ClientMessage, WebSocket as Engine, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt, future};

use crate::schema::SwitchboardSchema;
use crate::state::ApiState;

/// How long a connection may stay silent before the engine closes it (3008).
const KEEPALIVE: Duration = Duration::from_secs(60);

/// The protocol's state as the connection's messages show it.
#[derive(Debug, Default)]
struct Tracker {
    initialising: bool,
    acknowledged: bool,
    /// Why the input ended, when the server ends it: the close frame to send.
    violation: Option<(u16, &'static str)>,
}

impl Tracker {
    /// Whether the engine may read `message`; otherwise the violation is recorded.
    fn admit(&mut self, message: &serde_json::Result<ClientMessage>) -> bool {
        let violation = match message {
            Err(_) => Some((4400, "Invalid message received")),
            Ok(ClientMessage::ConnectionInit { .. }) if self.initialising || self.acknowledged => {
                Some((4429, "Too many initialisation requests"))
            }
            Ok(ClientMessage::ConnectionInit { .. }) => {
                self.initialising = true;
                None
            }
            Ok(ClientMessage::Start { .. }) if !self.acknowledged => Some((4401, "Unauthorized")),
            Ok(_) => None,
        };
        self.violation = self.violation.or(violation);
        self.violation.is_none()
    }

    /// Notes what the engine sends, and gives its close codes the protocol's meaning.
    fn outgoing(&mut self, message: WsMessage) -> Message {
        match message {
            WsMessage::Text(text) => {
                if self.initialising && text.contains("\"connection_ack\"") {
                    self.initialising = false;
                    self.acknowledged = true;
                }
                Message::Text(text.into())
            }
            // The engine answers a refused `connection_init` with 1002.
            WsMessage::Close(1002, reason) if self.initialising => close(4403, &reason),
            WsMessage::Close(1002, reason) => close(4400, &reason),
            WsMessage::Close(code, reason) => close(code, &reason),
        }
    }
}

/// `message`, unless it is a `subscribe` whose request names an uploaded file: no file comes
/// over a WebSocket, and async-graphql trusts the placeholder (a wrong index panics; see
/// `multipart::forged_upload`), so such a message is malformed (4400).
fn without_uploads(
    message: serde_json::Result<ClientMessage>,
) -> serde_json::Result<ClientMessage> {
    match message {
        Ok(ClientMessage::Start { payload, .. })
            if super::multipart::forged_upload(&payload).is_some() =>
        {
            Err(serde::de::Error::custom(
                "files are uploaded over HTTP, not over a WebSocket",
            ))
        }
        other => other,
    }
}

fn close(code: u16, reason: &str) -> Message {
    // A close frame's reason is at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

/// Serves one connection until either side closes it or the server shuts down.
pub(super) async fn serve(
    socket: WebSocket,
    schema: SwitchboardSchema,
    protocol: WebSocketProtocols,
    state: ApiState,
) {
    let init_timeout = state.inner().limits.connection_init_timeout;
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let strict = protocol == WebSocketProtocols::GraphQLWS;
    let (mut sink, stream) = socket.split();
    let admitting = tracker.clone();
    // The connection ends when the server shuts down: its input stops.
    let input = stream
        .take_until(state.inner().closing())
        .take_while(|received| future::ready(received.is_ok()))
        .filter_map(|received| {
            future::ready(match received {
                Ok(Message::Text(text)) => {
                    Some(without_uploads(ClientMessage::from_bytes(text.as_bytes())))
                }
                Ok(Message::Binary(bytes)) => {
                    Some(without_uploads(ClientMessage::from_bytes(bytes)))
                }
                _ => None,
            })
        })
        .take_while(move |message| {
            let admitted = !strict
                || admitting
                    .lock()
                    .map(|mut tracker| tracker.admit(message))
                    .unwrap_or(false);
            future::ready(admitted)
        });
    let init_state = state.clone();
    let engine = Engine::from_message_stream(schema, input, protocol)
        .on_connection_init(move |payload| super::connection_init(init_state, payload))
        .keepalive_timeout(KEEPALIVE);
    tokio::pin!(engine);
    let init_deadline = tokio::time::sleep(init_timeout);
    tokio::pin!(init_deadline);
    let mut pings = tokio::time::interval(KEEPALIVE / 2);
    pings.reset();
    loop {
        let waiting_for_init = strict
            && tracker
                .lock()
                .is_ok_and(|t| !t.initialising && !t.acknowledged);
        let outgoing = tokio::select! {
            message = engine.next() => match message {
                Some(message) if strict => match tracker.lock() {
                    Ok(mut tracker) => tracker.outgoing(message),
                    Err(_) => close(1011, "internal error"),
                },
                Some(WsMessage::Text(text)) => Message::Text(text.into()),
                Some(WsMessage::Close(code, reason)) => close(code, &reason),
                None => {
                    let violation = tracker.lock().ok().and_then(|t| t.violation);
                    if let Some((code, reason)) = violation {
                        let _ = sink.send(close(code, reason)).await;
                    }
                    break;
                }
            },
            () = &mut init_deadline, if waiting_for_init => {
                close(4408, "Connection initialisation timeout")
            }
            _ = pings.tick(), if strict => {
                Message::Text(r#"{"type":"ping"}"#.into())
            }
        };
        let closing = matches!(outgoing, Message::Close(_));
        if sink.send(outgoing).await.is_err() || closing {
            break;
        }
    }
}
