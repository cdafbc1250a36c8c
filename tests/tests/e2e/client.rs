//! Real clients: GraphQL over HTTP with `reqwest`, subscriptions over `graphql-transport-ws`
//! with `tokio-tungstenite`, and [`eventually`], the one way these tests wait.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The header that makes a query wait for a mutation's write (read-your-writes).
pub(crate) const CONSISTENCY_HEADER: &str = "Switchboard-Consistency-Token";

/// How long a condition may take to become true.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` until it returns `Some`, failing with `what` after `within`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        // The interval between two polls of the condition, not a wait for it.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A GraphQL client for one server.
#[derive(Debug, Clone)]
pub(crate) struct Gql {
    http: reqwest::Client,
    url: String,
}

impl Gql {
    pub(crate) fn new(graphql_url: String) -> Gql {
        Gql {
            http: reqwest::Client::new(),
            url: graphql_url,
        }
    }

    /// The raw JSON answer of `query` with `variables`, sent with `token` (and a consistency
    /// token, when given).
    pub(crate) async fn raw(
        &self,
        token: &str,
        query: &str,
        variables: Value,
        consistency: Option<&str>,
    ) -> Value {
        let mut request = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(&json!({"query": query, "variables": variables}));
        if let Some(consistency) = consistency {
            request = request.header(CONSISTENCY_HEADER, consistency);
        }
        let response = request.send().await.expect("POST /graphql");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON answer");
        assert!(
            status.is_success() || body.get("errors").is_some(),
            "HTTP {status}: {body}"
        );
        body
    }

    /// `data` of a query that must not fail.
    pub(crate) async fn query(&self, token: &str, query: &str, variables: Value) -> Value {
        self.query_after(token, query, variables, None).await
    }

    /// `data` of a query sent with a consistency token.
    pub(crate) async fn query_after(
        &self,
        token: &str,
        query: &str,
        variables: Value,
        consistency: Option<&str>,
    ) -> Value {
        let body = self.raw(token, query, variables, consistency).await;
        assert!(
            body.get("errors").is_none(),
            "unexpected errors for {query}: {body:#}"
        );
        body["data"].clone()
    }

    /// The `extensions.code` of the first error of a query that must fail.
    pub(crate) async fn error_code(&self, token: &str, query: &str, variables: Value) -> String {
        let body = self.raw(token, query, variables, None).await;
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error with a code: {body:#}"))
            .to_owned()
    }

    /// Runs mutation `name(input: $input)` of input type `input_type`, selecting `selection`
    /// besides the common payload fields; fails on errors and `userErrors`. Returns the payload.
    pub(crate) async fn mutate(
        &self,
        token: &str,
        name: &str,
        input_type: &str,
        input: Value,
        selection: &str,
    ) -> Payload {
        let query = format!(
            "mutation($input: {input_type}!) {{ {name}(input: $input) {{ \
             userErrors {{ field message code }} version consistencyToken {selection} }} }}"
        );
        let data = self.query(token, &query, json!({ "input": input })).await;
        let payload = data[name].clone();
        assert_eq!(
            payload["userErrors"],
            json!([]),
            "{name} refused: {payload:#}"
        );
        Payload(payload)
    }
}

/// A mutation's payload.
#[derive(Debug, Clone)]
pub(crate) struct Payload(pub(crate) Value);

impl Payload {
    /// The consistency token of the write.
    pub(crate) fn token(&self) -> &str {
        self.0["consistencyToken"]
            .as_str()
            .unwrap_or_else(|| panic!("no consistencyToken: {:#}", self.0))
    }

    /// The string at `pointer` (a JSON pointer such as `/inbox/id`).
    pub(crate) fn str(&self, pointer: &str) -> String {
        self.0
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no string at {pointer}: {:#}", self.0))
            .to_owned()
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `graphql-transport-ws` connection.
#[derive(Debug)]
pub(crate) struct Subscriptions {
    socket: Socket,
}

impl Subscriptions {
    /// Connects to `url`, sends `connection_init` with the bearer token and waits for the ack.
    pub(crate) async fn connect(url: &str, token: &str) -> Subscriptions {
        let mut request = url.into_client_request().expect("a WebSocket request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("a header value"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket connect");
        let mut connection = Subscriptions { socket };
        connection
            .send(json!({
                "type": "connection_init",
                "payload": {"Authorization": format!("Bearer {token}")}
            }))
            .await;
        let ack = connection.next(DEADLINE).await;
        assert_eq!(
            ack.as_ref().map(|m| m["type"].clone()),
            Some(json!("connection_ack")),
            "{ack:?}"
        );
        connection
    }

    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("WebSocket send");
    }

    /// Starts subscription `id`.
    pub(crate) async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({
            "id": id,
            "type": "subscribe",
            "payload": {"query": query, "variables": variables}
        }))
        .await;
    }

    /// Sends `ping` and waits for the `pong`: every message sent before has been read by the
    /// server. Returns what arrived meanwhile.
    pub(crate) async fn ping(&mut self) -> Vec<Value> {
        self.send(json!({"type": "ping"})).await;
        let mut before = Vec::new();
        loop {
            let message = self.next(DEADLINE).await.expect("a pong");
            if message["type"] == "pong" {
                return before;
            }
            before.push(message);
        }
    }

    /// The first message about subscription `id` other than its `complete`: its first update,
    /// or its error.
    pub(crate) async fn answer(&mut self, id: &str) -> Value {
        loop {
            let message = self
                .next(DEADLINE)
                .await
                .unwrap_or_else(|| panic!("an answer to subscription {id}"));
            if message["id"] == id && message["type"] != "complete" {
                return message;
            }
        }
    }

    /// The next JSON message within `within`; `None` when the connection closed or nothing came.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??;
            match message {
                Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }
}

/// The `extensions.code` of a subscription's error: an `error` message (validation) or a `next`
/// message carrying errors (resolver failures).
pub(crate) fn subscription_error_code(message: &Value) -> Option<&str> {
    message["payload"][0]["extensions"]["code"]
        .as_str()
        .or_else(|| message["payload"]["errors"][0]["extensions"]["code"].as_str())
}
