//! Subscriptions over a real WebSocket (`graphql-transport-ws`) on a loopback port.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use proto_events::event::Role;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::TestApi;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a `graphql-transport-ws` connection with `init` as the `connection_init` payload.
pub(crate) async fn connect(addr: std::net::SocketAddr, init: Value) -> Socket {
    let mut socket = open(addr).await;
    socket
        .send(Message::text(
            json!({"type": "connection_init", "payload": init}).to_string(),
        ))
        .await
        .expect("send init");
    socket
}

/// The next JSON message, or `None` when the connection closed (within a deadline).
pub(crate) async fn next(socket: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")?;
        match message {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// The `extensions.code` of a subscription's error, sent as an `error` message (validation) or
/// as a `next` message with errors (resolver failures).
pub(crate) fn error_code(message: &Value) -> Option<&str> {
    message["payload"][0]["extensions"]["code"]
        .as_str()
        .or_else(|| message["payload"]["errors"][0]["extensions"]["code"].as_str())
}

pub(crate) async fn subscribe(socket: &mut Socket, id: &str, query: &str, variables: Value) {
    socket
        .send(Message::text(
            json!({"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}})
                .to_string(),
        ))
        .await
        .expect("send subscribe");
}

#[tokio::test]
async fn inbox_activity_streams_changes_to_members_only() {
    let api = TestApi::start().await;
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let outsider = api.user("outsider@acme.test", Role::Agent).await;
    let addr = api.serve().await;
    let inbox_id = switchboard_api::ids::encode(switchboard_api::ids::Kind::Inbox, inbox);
    let query = "subscription($id: ID!) { inboxActivity(inboxId: $id) {
        eventType position conversation { id status lastMessagePreview } } }";

    let token = format!("Bearer {}", api.token(api.admin));
    let mut admin = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut admin).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    subscribe(&mut admin, "1", query, json!({"id": inbox_id})).await;

    let token = format!("Bearer {}", api.token(outsider));
    let mut other = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut other).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    subscribe(&mut other, "1", query, json!({"id": inbox_id})).await;
    let refused = next(&mut other).await.expect("an answer");
    assert_eq!(error_code(&refused), Some("NOT_FOUND"), "{refused}");

    // The subscription is registered once the server answered another request on the socket;
    // events appended before it may be missed, so write until the first one arrives.
    let mut update = None;
    for attempt in 0..50 {
        let outcome = api
            .chat(channel, "visitor-1", &format!("Hello {attempt}"))
            .await;
        api.settle(&outcome).await;
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(200), next(&mut admin)).await
        {
            update = Some(message);
            break;
        }
    }
    let update = update.expect("an update");
    assert_eq!(update["type"], "next", "{update}");
    let payload = &update["payload"]["data"]["inboxActivity"];
    assert_eq!(payload["conversation"]["status"], "OPEN", "{update}");
    assert!(
        payload["conversation"]["lastMessagePreview"]
            .as_str()
            .is_some_and(|p| p.starts_with("Hello")),
        "the read model already shows the event: {update}"
    );
}

#[tokio::test]
async fn a_connection_without_a_valid_token_is_refused() {
    let api = TestApi::start().await;
    let addr = api.serve().await;
    let mut socket = connect(addr, json!({"Authorization": "Bearer nope"})).await;
    let answer = next(&mut socket).await;
    assert!(
        answer
            .as_ref()
            .is_none_or(|m| m["type"] != "connection_ack"),
        "refused: {answer:?}"
    );
}

#[tokio::test]
async fn the_event_stream_replays_from_a_position_for_analysts_only() {
    let api = TestApi::start().await;
    let analyst = api.user("analyst@acme.test", Role::Analyst).await;
    let agent = api.user("agent2@acme.test", Role::Agent).await;
    let addr = api.serve().await;
    let query = "subscription { events(afterPosition: 1) { position type } }";

    let token = format!("Bearer {}", api.token(analyst));
    let mut socket = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    subscribe(&mut socket, "e", query, json!({})).await;
    let first = next(&mut socket).await.expect("an event");
    assert_eq!(first["payload"]["data"]["events"]["position"], 2, "{first}");
    let second = next(&mut socket).await.expect("an event");
    assert_eq!(
        second["payload"]["data"]["events"]["position"], 3,
        "{second}"
    );

    let token = format!("Bearer {}", api.token(agent));
    let mut socket = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    subscribe(&mut socket, "e", query, json!({})).await;
    let refused = next(&mut socket).await.expect("an answer");
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
}

/// Reads `next` messages until one satisfies `wanted`, writing with `poke` between reads until
/// the subscription is live (events written before it registered are not replayed).
async fn wait_for_update(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
    for _ in 0..50 {
        match tokio::time::timeout(Duration::from_millis(300), next(socket)).await {
            Ok(Some(message)) if wanted(&message) => return Some(message),
            Ok(Some(_)) => continue,
            Ok(None) => return None,
            Err(_) => continue,
        }
    }
    None
}

#[tokio::test]
async fn viewer_events_announce_assignments_and_mentions_and_shutdown_ends_them() {
    use proto_events::Actor;
    use proto_events::event::{Assignee, Member};
    use switchboard_domain::conversation::ConversationCommand;
    use switchboard_domain::setup::SetupCommand;
    use switchboard_service::{Command, CommandMeta};
    use uuid::Uuid;

    let api = TestApi::start().await;
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    api.run(Command::Setup(SetupCommand::AddInboxMember {
        inbox_id: inbox,
        member: Member::User { id: agent },
    }))
    .await;
    let started = api.chat(channel, "v-1", "Help").await;
    let conversation: Uuid = started
        .stream
        .strip_prefix("conversation-")
        .and_then(|id| id.parse().ok())
        .expect("conversation stream");
    let addr = api.serve().await;
    let token = format!("Bearer {}", api.token(agent));
    let mut socket = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    subscribe(
        &mut socket,
        "v",
        "subscription { viewerEvents { reason eventType conversation { id } } }",
        json!({}),
    )
    .await;

    // Comments mentioning the agent, until the subscription is live and announces one.
    let mut mentioned = None;
    for _ in 0..20 {
        api.run(Command::Conversation {
            conversation_id: conversation,
            command: Box::new(ConversationCommand::AddComment {
                comment_id: Uuid::now_v7(),
                body_text: "@agent can you look?".to_owned(),
                mentions: vec![agent],
            }),
        })
        .await;
        mentioned = wait_for_update(&mut socket, |m| {
            m["payload"]["data"]["viewerEvents"]["reason"] == "MENTIONED"
        })
        .await;
        if mentioned.is_some() {
            break;
        }
    }
    assert!(mentioned.is_some(), "a mention arrives");

    api.service
        .execute(
            CommandMeta::by(Actor::User { id: api.admin }),
            Command::Conversation {
                conversation_id: conversation,
                command: Box::new(ConversationCommand::Assign {
                    to: Assignee::User { id: agent },
                }),
            },
        )
        .await
        .expect("assign");
    let assigned = wait_for_update(&mut socket, |m| {
        m["payload"]["data"]["viewerEvents"]["reason"] == "ASSIGNED"
    })
    .await
    .expect("the assignment arrives");
    assert_eq!(
        assigned["payload"]["data"]["viewerEvents"]["eventType"],
        "ConversationAssigned"
    );

    // Shutting down ends the connection.
    api.state.begin_shutdown();
    let mut closed = false;
    for _ in 0..50 {
        match tokio::time::timeout(Duration::from_millis(200), next(&mut socket)).await {
            Ok(None) => {
                closed = true;
                break;
            }
            Ok(Some(_)) | Err(_) => continue,
        }
    }
    assert!(closed, "the server closed the subscription on shutdown");
}

#[tokio::test]
async fn subscriptions_obey_the_alias_limit() {
    let api = TestApi::start().await;
    let addr = api.serve().await;
    let token = format!("Bearer {}", api.token(api.admin));
    let mut socket = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    let fields: String = (0..31)
        .map(|i| format!("a{i}: conversation {{ id }} "))
        .collect();
    let query = format!("subscription {{ viewerEvents {{ {fields} }} }}");
    subscribe(&mut socket, "x", &query, json!({})).await;
    let refused = next(&mut socket).await.expect("an answer");
    assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"), "{refused}");
}

/// Opens a `graphql-transport-ws` connection without sending anything.
async fn open(addr: std::net::SocketAddr) -> Socket {
    let mut request = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    socket
}

/// Sends `message` as text.
async fn send(socket: &mut Socket, message: String) {
    socket
        .send(Message::text(message))
        .await
        .expect("send a message");
}

/// The close code the server ends the connection with (within a deadline), skipping other
/// messages; `None` when it ends without a close frame.
pub(crate) async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("the connection closes within 10 s")?;
        match message {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn graphql_transport_ws_closes_with_the_protocols_codes() {
    let api = TestApi::with_limits(switchboard_api::Limits {
        connection_init_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let addr = api.serve().await;
    let token = format!("Bearer {}", api.token(api.admin));
    let subscription = json!({"id": "1", "type": "subscribe",
        "payload": {"query": "subscription { viewerEvents { eventType } }"}})
    .to_string();

    // A bad token: Forbidden.
    let mut socket = connect(addr, json!({"Authorization": "Bearer nope"})).await;
    assert_eq!(close_code(&mut socket).await, Some(4403));

    // A subscribe before connection_init: Unauthorized.
    let mut socket = open(addr).await;
    send(&mut socket, subscription.clone()).await;
    assert_eq!(close_code(&mut socket).await, Some(4401));

    // Not a protocol message: Bad Request, before and after the acknowledgement.
    let mut socket = open(addr).await;
    send(&mut socket, "{\"type\": \"hello\"}".to_owned()).await;
    assert_eq!(close_code(&mut socket).await, Some(4400));
    let mut socket = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    send(&mut socket, "not json".to_owned()).await;
    assert_eq!(close_code(&mut socket).await, Some(4400));

    // A second connection_init: Too many initialisation requests.
    let mut socket = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    let init = json!({"type": "connection_init", "payload": {"Authorization": token}});
    send(&mut socket, init.to_string()).await;
    assert_eq!(close_code(&mut socket).await, Some(4429));

    // No connection_init in time: Connection initialisation timeout.
    let mut socket = open(addr).await;
    assert_eq!(close_code(&mut socket).await, Some(4408));

    // A well-behaved connection still subscribes and answers the server's pings.
    let mut socket = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    send(&mut socket, json!({"type": "ping"}).to_string()).await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("pong"))
    );
    send(&mut socket, subscription).await;
    send(
        &mut socket,
        json!({"id": "1", "type": "complete"}).to_string(),
    )
    .await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("complete"))
    );
}
