//! Messenger replies through the Send API. Meta cannot run here: a local HTTP server (axum on
//! 127.0.0.1, port 0) stands in for the Graph API, records each request, and answers as the test
//! scripts it (a `message_id`, a permanent error, a server error before a success).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;
use proto_events::clock::{Clock, ManualClock, SystemClock};
use proto_events::event::{ChannelKind, Identity, InboundMessage};
use proto_events::{Actor, DomainEvent};
use serde_json::{Value, json};
use switchboard_delivery::{DeliverySettings, DeliveryWorker, FromName, GraphApi};
use switchboard_domain::channel::{ChannelCommand, Setting};
use switchboard_service::{Command, CommandMeta};
use switchboard_store::secret::SecretValue;
use uuid::Uuid;

use crate::support::{ADMIN, App, INBOX};

const PAGE_CHANNEL: Uuid = Uuid::from_u128(43);
const TOKEN: &str = "EAAGtestPageToken0123456789";
const PSID: &str = "psid-grace-1";

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Received {
    authorization: Option<String>,
    query: Option<String>,
    body: Value,
}

/// What the stand-in answers, in order; the last answer repeats.
#[derive(Debug, Default)]
struct Script {
    answers: VecDeque<(u16, Value)>,
    received: Vec<Received>,
}

/// The Graph API stand-in.
struct FakeGraph {
    url: String,
    script: Arc<Mutex<Script>>,
}

impl FakeGraph {
    async fn start(answers: Vec<(u16, Value)>) -> FakeGraph {
        let script = Arc::new(Mutex::new(Script {
            answers: answers.into(),
            received: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/v21.0/me/messages", post(answer))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeGraph { url, script }
    }

    fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut script = script.lock().unwrap();
    script.received.push(Received {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        query: uri.query().map(str::to_owned),
        body,
    });
    let (status, body) = if script.answers.len() > 1 {
        script.answers.pop_front().unwrap()
    } else {
        script.answers.front().cloned().unwrap()
    };
    (StatusCode::from_u16(status).unwrap(), Json(body))
}

fn sent(message_id: &str) -> (u16, Value) {
    (200, json!({"recipient_id": PSID, "message_id": message_id}))
}

/// The Support inbox's Messenger page, its token sealed and set (with the human-agent tag or
/// not), and Grace's message to it; returns her conversation.
async fn page_with_a_customer(app: &App, human_agent_tag: bool) -> Uuid {
    let admin = || CommandMeta::by(Actor::User { id: ADMIN });
    app.service
        .execute(
            admin(),
            Command::Channel(ChannelCommand::ConnectMessenger {
                channel_id: PAGE_CHANNEL,
                inbox_id: INBOX,
                page_id: "104729".into(),
                page_name: "Acme".into(),
            }),
        )
        .await
        .unwrap();
    let secret = app.vault().put(&SecretValue::new(TOKEN)).await.unwrap();
    app.service
        .execute(
            admin(),
            Command::Channel(ChannelCommand::SetMessengerPage {
                channel_id: PAGE_CHANNEL,
                page_token: Setting::Set(secret.0),
                human_agent_tag: Some(human_agent_tag),
            }),
        )
        .await
        .unwrap();
    let message = InboundMessage {
        message_id: Uuid::now_v7(),
        channel_id: PAGE_CHANNEL,
        channel_kind: ChannelKind::Messenger,
        provider_message_id: Some("m_in_1".into()),
        from: Identity::Messenger { psid: PSID.into() },
        from_name: None,
        contact_id: None,
        subject: None,
        body_text: "Is my order shipped?".into(),
        body_html: None,
        email: None,
        form_fields: vec![],
        attachments: Vec::new(),
        raw: None,
    };
    app.receive(PAGE_CHANNEL, message).await
}

/// The worker sending Messenger replies to `graph`, trying temporary failures again for 2 s.
fn worker(app: &App, graph: &FakeGraph, clock: Arc<dyn Clock>) -> DeliveryWorker {
    worker_for(app, graph, clock, Duration::from_secs(2))
}

fn worker_for(
    app: &App,
    graph: &FakeGraph,
    clock: Arc<dyn Clock>,
    retry_for: Duration,
) -> DeliveryWorker {
    DeliveryWorker::spawn(
        app.service.clone(),
        DeliverySettings {
            relay: None,
            vault: Some(app.vault()),
            retry_for,
            from_name: FromName::AgentViaInbox,
            clock,
            messenger: Some(GraphApi::new(&graph.url, "v21.0", Duration::from_secs(5)).unwrap()),
            chat_email_unseen_after: None,
        },
    )
}

/// The outcome recorded for `message_id`: `Ok(provider id)` or `Err((permanent, status))`.
async fn outcome(
    app: &App,
    message_id: Uuid,
    final_only: bool,
) -> Result<Option<String>, (bool, Option<String>)> {
    app.event(|e| match &e.payload {
        DomainEvent::DeliverySucceeded(d) if d.message_id == message_id => {
            Some(Ok(d.provider_message_id.clone()))
        }
        DomainEvent::DeliveryFailed(f)
            if f.message_id == message_id && (f.permanent || !final_only) =>
        {
            Some(Err((f.permanent, f.status.clone())))
        }
        _ => None,
    })
    .await
    .1
}

#[tokio::test]
async fn a_reply_goes_to_the_psid_with_the_page_token_and_is_recorded_with_graphs_id() {
    let app = App::new().await;
    let graph = FakeGraph::start(vec![sent("m_out_1")]).await;
    let conversation = page_with_a_customer(&app, false).await;
    let _worker = worker(&app, &graph, Arc::new(SystemClock));
    let reply = app
        .agent_replies(conversation, "Yes, it left today.", &[])
        .await;

    assert_eq!(outcome(&app, reply, true).await, Ok(Some("m_out_1".into())));
    let received = graph.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(request.query, None, "the token is not in the URL");
    assert_eq!(
        request.body,
        json!({
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {"text": "Yes, it left today."}
        })
    );
    // The token is in no event.
    let history = app.history().await;
    assert!(!format!("{history:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_permanent_graph_error_fails_the_reply_with_its_code() {
    let app = App::new().await;
    let refusal = json!({"error": {
        "message": "This person isn't available right now.",
        "type": "OAuthException", "code": 551, "error_subcode": 1545041
    }});
    let graph = FakeGraph::start(vec![(400, refusal)]).await;
    let conversation = page_with_a_customer(&app, false).await;
    let _worker = worker(&app, &graph, Arc::new(SystemClock));
    let reply = app.agent_replies(conversation, "Hello?", &[]).await;

    assert_eq!(
        outcome(&app, reply, false).await,
        Err((true, Some("551/1545041".into())))
    );
    assert_eq!(graph.received().len(), 1, "not tried again");
}

#[tokio::test]
async fn a_server_error_is_retried_then_the_reply_is_delivered() {
    let app = App::new().await;
    let graph = FakeGraph::start(vec![(500, json!({})), sent("m_out_2")]).await;
    let conversation = page_with_a_customer(&app, false).await;
    let _worker = worker(&app, &graph, Arc::new(SystemClock));
    let reply = app.agent_replies(conversation, "One moment.", &[]).await;

    assert_eq!(
        outcome(&app, reply, false).await,
        Err((false, Some("500".into()))),
        "the temporary failure is recorded"
    );
    assert_eq!(outcome(&app, reply, true).await, Ok(Some("m_out_2".into())));
    assert_eq!(graph.received().len(), 2);
}

#[tokio::test]
async fn after_a_day_a_page_with_the_human_agent_tag_answers_with_the_tag() {
    let app = App::new().await;
    let graph = FakeGraph::start(vec![sent("m_out_3")]).await;
    let conversation = page_with_a_customer(&app, true).await;
    let reply = app
        .agent_replies(conversation, "Sorry for the wait.", &[])
        .await;
    // The worker first sees the reply two days after Grace wrote (and tries for a week).
    let later = Arc::new(ManualClock::new(Utc::now() + chrono::Duration::days(2)));
    let _worker = worker_for(&app, &graph, later, Duration::from_secs(7 * 86_400));

    assert_eq!(outcome(&app, reply, true).await, Ok(Some("m_out_3".into())));
    let body = &graph.received()[0].body;
    assert_eq!(body["messaging_type"], "MESSAGE_TAG");
    assert_eq!(body["tag"], "HUMAN_AGENT");
}

#[tokio::test]
async fn a_reply_past_the_window_of_a_page_without_the_tag_is_failed_without_being_sent() {
    let app = App::new().await;
    let graph = FakeGraph::start(vec![sent("m_never")]).await;
    let conversation = page_with_a_customer(&app, false).await;
    let reply = app
        .agent_replies(conversation, "Sorry for the wait.", &[])
        .await;
    let later = Arc::new(ManualClock::new(Utc::now() + chrono::Duration::days(2)));
    let _worker = worker_for(&app, &graph, later, Duration::from_secs(7 * 86_400));

    assert_eq!(outcome(&app, reply, false).await, Err((true, None)));
    assert!(graph.received().is_empty());
}
