//! `TestApi`: an API over a fresh SQLite store in a temporary directory, with an organisation and
//! a super admin, and helpers to send GraphQL requests as a user.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use chrono::{TimeDelta, Utc};
use proto_events::Actor;
use proto_events::clock::{Clock, SystemClock};
use proto_events::event::Role;
use serde_json::{Value, json};
use switchboard_api::{ApiSettings, ApiState, Limits, router};
use switchboard_domain::setup::SetupCommand;
use switchboard_projector::ProjectionRuntime;
use switchboard_service::{Command, CommandMeta, CommandService};
use switchboard_store::EventStore;
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tower::ServiceExt;
use uuid::Uuid;

pub const SECRET: &str = "test-secret";

pub struct TestApi {
    pub router: Router,
    pub state: ApiState,
    pub service: Arc<CommandService>,
    pub projections: Arc<ProjectionRuntime>,
    pub admin: Uuid,
    _dir: tempfile::TempDir,
}

/// A response: HTTP status, headers and JSON body (a string when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// `data`, after asserting there are no errors.
    pub fn data(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {:#}",
            self.body
        );
        &self.body["data"]
    }

    /// The `Content-Type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// The `extensions.code` of the first error.
    pub fn error_code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    /// Whether the first error's message contains `text`.
    pub fn error_says(&self, text: &str) -> bool {
        self.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(text))
    }
}

impl TestApi {
    pub async fn start() -> TestApi {
        TestApi::with_limits(Limits::default()).await
    }

    pub async fn with_limits(limits: Limits) -> TestApi {
        TestApi::with_settings(ApiSettings {
            limits,
            ..ApiSettings::new(SECRET)
        })
        .await
    }

    pub async fn with_settings(settings: ApiSettings) -> TestApi {
        TestApi::with_parts(settings, |store| store, Arc::new(SystemClock)).await
    }

    /// An API whose command service reads the time from `clock`.
    pub async fn with_clock(settings: ApiSettings, clock: Arc<dyn Clock>) -> TestApi {
        TestApi::with_parts(settings, |store| store, clock).await
    }

    /// An API whose command service and API (not the projections) use the store `wrap` makes
    /// of the real one: a fault-injecting wrapper, for instance.
    pub async fn with_store(
        limits: Limits,
        wrap: impl FnOnce(Arc<dyn EventStore>) -> Arc<dyn EventStore>,
    ) -> TestApi {
        TestApi::with_parts(
            ApiSettings {
                limits,
                ..ApiSettings::new(SECRET)
            },
            wrap,
            Arc::new(SystemClock),
        )
        .await
    }

    async fn with_parts(
        settings: ApiSettings,
        wrap: impl FnOnce(Arc<dyn EventStore>) -> Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
    ) -> TestApi {
        // Errors the server only logs (an internal error's cause) show with a failed test.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn EventStore> = Arc::new(
            SqliteStore::open(dir.path().join("events"), SqliteOptions::default())
                .expect("open store"),
        );
        let service = Arc::new(
            CommandService::open(wrap(store.clone()), clock)
                .await
                .expect("open service"),
        );
        let projections = Arc::new(
            ProjectionRuntime::start(
                store.clone(),
                dir.path().join("read-models"),
                switchboard_read_models::all(),
            )
            .expect("start projections"),
        );
        let state = ApiState::new(service.clone(), projections.clone(), settings);
        let admin = Uuid::now_v7();
        let system = CommandMeta::by(Actor::System {
            component: "test".to_owned(),
        });
        service
            .execute(
                system.clone(),
                Command::Setup(SetupCommand::CreateOrganisation {
                    organisation_id: Uuid::now_v7(),
                    name: "Acme".to_owned(),
                    time_zone: "Europe/Paris".to_owned(),
                }),
            )
            .await
            .expect("create organisation");
        service
            .execute(
                system,
                Command::Setup(SetupCommand::CreateUser {
                    user_id: admin,
                    email: "admin@acme.test".to_owned(),
                    name: "Ada Admin".to_owned(),
                    role: Role::SuperAdmin,
                }),
            )
            .await
            .expect("create admin");
        TestApi {
            router: router(state.clone()),
            state,
            service,
            projections,
            admin,
            _dir: dir,
        }
    }

    /// A token for `user`.
    pub fn token(&self, user: Uuid) -> String {
        self.state
            .keys()
            .mint(user, "someone@acme.test", Utc::now(), TimeDelta::hours(1))
    }

    /// Creates a user with `role` (as the admin, through the service) and returns its id.
    pub async fn user(&self, email: &str, role: Role) -> Uuid {
        let user_id = Uuid::now_v7();
        self.service
            .execute(
                CommandMeta::by(Actor::User { id: self.admin }),
                Command::Setup(SetupCommand::CreateUser {
                    user_id,
                    email: email.to_owned(),
                    name: email.split('@').next().unwrap_or(email).to_owned(),
                    role,
                }),
            )
            .await
            .expect("create user");
        user_id
    }

    /// Sends a raw HTTP request.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router never fails");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends a GraphQL request as `user` (none: anonymous), with extra headers.
    pub async fn gql_with(
        &self,
        user: Option<Uuid>,
        headers: &[(&str, &str)],
        query: &str,
        variables: Value,
    ) -> Reply {
        let mut request = Request::post("/graphql").header("content-type", "application/json");
        if let Some(user) = user {
            request = request.header("authorization", format!("Bearer {}", self.token(user)));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = json!({"query": query, "variables": variables}).to_string();
        self.send(request.body(Body::from(body)).expect("request"))
            .await
    }

    /// Sends a GraphQL request as `user`.
    pub async fn gql(&self, user: Uuid, query: &str, variables: Value) -> Reply {
        self.gql_with(Some(user), &[], query, variables).await
    }

    /// Sends a query of `field` (a selection) `count` times under aliases `a0`, `a1`, ...
    pub async fn aliased(&self, user: Uuid, count: usize, field: &str) -> Reply {
        let aliases: String = (0..count).map(|i| format!("a{i}: {field} ")).collect();
        self.gql(user, &format!("{{ {aliases} }}"), json!({})).await
    }
}

impl TestApi {
    /// Runs `command` as the admin and expects it to succeed.
    pub async fn run(&self, command: Command) -> switchboard_service::Outcome {
        self.service
            .execute(CommandMeta::by(Actor::User { id: self.admin }), command)
            .await
            .expect("command")
    }

    /// The counter `name` (with its `_total`) as `/metrics` has it now.
    pub async fn counter(&self, name: &str) -> u64 {
        let reply = self
            .send(
                Request::get("/metrics")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        let Value::String(text) = reply.body else {
            panic!("metrics are text: {:?}", reply.body)
        };
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} is exported"))
    }

    /// Creates an inbox named `name` and returns its id.
    pub async fn inbox(&self, name: &str) -> Uuid {
        let inbox_id = Uuid::now_v7();
        self.run(Command::Setup(SetupCommand::CreateInbox {
            inbox_id,
            name: name.to_owned(),
        }))
        .await;
        inbox_id
    }

    /// Connects a chat widget to `inbox_id` and returns the channel's id.
    pub async fn chat_channel(&self, inbox_id: Uuid) -> Uuid {
        let channel_id = Uuid::now_v7();
        self.run(Command::Channel(
            switchboard_domain::channel::ChannelCommand::ConnectChat {
                channel_id,
                inbox_id,
                name: "Website".to_owned(),
            },
        ))
        .await;
        channel_id
    }

    /// A chat message from `visitor` on `channel_id`, received as the system does.
    pub async fn chat(
        &self,
        channel_id: Uuid,
        visitor: &str,
        text: &str,
    ) -> switchboard_service::Outcome {
        use proto_events::event::{ChannelKind, Identity, InboundMessage};
        self.service
            .execute(
                CommandMeta::by(Actor::Channel { id: channel_id }),
                Command::ReceiveMessage {
                    channel_id,
                    message: Box::new(InboundMessage {
                        message_id: Uuid::now_v7(),
                        channel_id,
                        channel_kind: ChannelKind::Chat,
                        provider_message_id: None,
                        from: Identity::ChatVisitor {
                            visitor_id: visitor.to_owned(),
                        },
                        from_name: Some(visitor.to_owned()),
                        contact_id: None,
                        subject: None,
                        body_text: text.to_owned(),
                        body_html: None,
                        email: None,
                        form_fields: vec![],
                        attachments: Vec::new(),
                        raw: None,
                    }),
                    signals: None,
                },
            )
            .await
            .expect("receive message")
    }

    /// The payloads of the recorded events of `event_type`, in log order.
    pub async fn payloads(&self, event_type: &str) -> Vec<Value> {
        let events = self
            .service
            .store()
            .read_all(switchboard_store::Position::START, 10_000)
            .await
            .expect("read");
        events
            .iter()
            .filter(|e| e.event_type == event_type)
            .map(|e| serde_json::from_slice::<Value>(&e.payload).expect("json"))
            .collect()
    }

    /// The pair of `fields` of each outbound message of `conversation`'s timeline, oldest
    /// first, once the read models include everything written.
    pub async fn outbound(&self, conversation: &str, fields: [&str; 2]) -> Vec<(Value, Value)> {
        let head = self.service.store().head().await.expect("head");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        self.projections
            .wait_for(head, deadline)
            .await
            .expect("read models caught up");
        let query = format!(
            "query($id: ID!) {{ node(id: $id) {{ ... on Conversation {{ timeline(first: 50) {{
                edges {{ node {{ kind {} {} }} }} }} }} }} }}",
            fields[0], fields[1]
        );
        let reply = self
            .gql(self.admin, &query, json!({"id": conversation}))
            .await;
        reply.data()["node"]["timeline"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["node"]["kind"] == "OUTBOUND_MESSAGE")
            .map(|e| (e["node"][fields[0]].clone(), e["node"][fields[1]].clone()))
            .collect()
    }

    /// Waits until the read models include `outcome`.
    pub async fn settle(&self, outcome: &switchboard_service::Outcome) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        self.projections
            .wait_for(outcome.last_position, deadline)
            .await
            .expect("read models caught up");
    }

    /// Serves the router on a free loopback port (for WebSocket tests) and returns its address.
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let router = self.router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }
}
