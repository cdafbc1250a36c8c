//! Facebook Messenger's webhook, driven as Meta drives it: the verification handshake, and page
//! events signed with the app secret (Meta cannot reach these tests; a test app secret stands in
//! for the real one). A message becomes the sender's conversation once, however often Meta
//! retries it; echoes and unsigned or mis-signed requests write nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hmac::{Hmac, Mac};
use proto_events::clock::{Clock, ManualClock, SystemClock};
use proto_events::{DomainEvent, Envelope};
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard_api::ApiSettings;
use switchboard_api::messenger::MessengerSettings;
use switchboard_domain::channel::ChannelCommand;
use switchboard_service::Command;
use switchboard_store::Position;
use switchboard_store::secret::{MasterKey, SecretId, Vault};
use uuid::Uuid;

use crate::support::{SECRET, TestApi};

const APP_SECRET: &str = "test-app-secret";
const VERIFY_TOKEN: &str = "verify-me-please";
const PAGE: &str = "104729";
/// The key the tests' secrets are sealed with, so that a test can open them.
const VAULT_KEY: [u8; 32] = [7; 32];

async fn api_with_page() -> TestApi {
    api_with_page_channel().await.0
}

/// [`api_with_page`], and the Messenger channel's id.
async fn api_with_page_channel() -> (TestApi, Uuid) {
    api_with_page_on(Arc::new(SystemClock)).await
}

/// [`api_with_page_channel`], the command service reading the time from `clock`.
async fn api_with_page_on(clock: Arc<dyn Clock>) -> (TestApi, Uuid) {
    api_with_page_trusting(clock, None).await
}

/// [`api_with_page_on`], fetching attachments from the loopback address `trusted` (a stand-in
/// for Meta's CDN).
async fn api_with_page_trusting(
    clock: Arc<dyn Clock>,
    trusted: Option<std::net::SocketAddr>,
) -> (TestApi, Uuid) {
    let mut settings = ApiSettings {
        messenger: Some(MessengerSettings {
            app_secret: APP_SECRET.into(),
            verify_token: VERIFY_TOKEN.into(),
            trusted_origin: trusted.map(|a| (a.ip().to_string(), a.port())),
        }),
        ..ApiSettings::new(SECRET)
    };
    settings.mail.secret_key = MasterKey::from_bytes(VAULT_KEY);
    let api = TestApi::with_clock(settings, clock).await;
    let inbox = api.inbox("Social").await;
    let channel_id = Uuid::now_v7();
    api.run(Command::Channel(ChannelCommand::ConnectMessenger {
        channel_id,
        inbox_id: inbox,
        page_id: PAGE.into(),
        page_name: "Acme".into(),
    }))
    .await;
    (api, channel_id)
}

fn signature(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn event(body: &Value, signed_with: Option<&str>) -> Request<Body> {
    let bytes = serde_json::to_vec(body).expect("json");
    let mut request =
        Request::post("/webhooks/messenger").header("content-type", "application/json");
    if let Some(secret) = signed_with {
        request = request.header("x-hub-signature-256", signature(&bytes, secret));
    }
    request.body(Body::from(bytes)).expect("request")
}

fn message(mid: &str, text: &str, echo: bool) -> Value {
    json!({"object": "page", "entry": [{"id": PAGE, "time": 1, "messaging": [{
        "sender": {"id": "psid-ada"}, "recipient": {"id": PAGE}, "timestamp": 1,
        "message": {"mid": mid, "text": text, "is_echo": echo}
    }]}]})
}

async fn head(api: &TestApi) -> Position {
    api.service.store().head().await.expect("head")
}

#[tokio::test]
async fn the_verification_handshake_answers_the_challenge_for_the_right_token_only() {
    let api = api_with_page().await;
    let get = |token: &str| {
        Request::get(format!(
            "/webhooks/messenger?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        ))
        .body(Body::empty())
        .expect("request")
    };
    let ok = api.send(get(VERIFY_TOKEN)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body, json!(1158201444), "the challenge, as sent");
    let refused = api.send(get("guess")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // Without Messenger settings there is no webhook.
    let bare = TestApi::start().await;
    assert_eq!(
        bare.send(get(VERIFY_TOKEN)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn signed_messages_become_the_senders_conversation_once() {
    let api = api_with_page().await;
    let before = head(&api).await;
    // Unsigned, or signed with another secret: 401, nothing written.
    for signed_with in [None, Some("another-secret")] {
        let reply = api
            .send(event(&message("m_1", "Hi!", false), signed_with))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(head(&api).await, before);

    let first = api
        .send(event(&message("m_1", "Hi!", false), Some(APP_SECRET)))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let after_first = head(&api).await;
    assert!(after_first > before);
    // Meta retries the same delivery, and the page's echo of its own message arrives: nothing new.
    let retried = api
        .send(event(&message("m_1", "Hi!", false), Some(APP_SECRET)))
        .await;
    assert_eq!(retried.status, StatusCode::OK);
    let echo = api
        .send(event(
            &message("m_echo", "Our answer", true),
            Some(APP_SECRET),
        ))
        .await;
    assert_eq!(echo.status, StatusCode::OK);
    assert_eq!(head(&api).await, after_first);

    // A second message from the same person continues the conversation.
    let second = api
        .send(event(
            &message("m_2", "Are you there?", false),
            Some(APP_SECRET),
        ))
        .await;
    assert_eq!(second.status, StatusCode::OK);
    let events = api
        .service
        .store()
        .read_all(Position::START, 1_000)
        .await
        .expect("the log");
    let received: Vec<(Uuid, String, String)> = events
        .iter()
        .filter(|e| e.event_type == "MessageReceived")
        .map(|e| {
            let envelope = switchboard_codec::decode(e).expect("decodes");
            match envelope.payload {
                proto_events::DomainEvent::MessageReceived(m) => (
                    m.conversation_id,
                    m.message.provider_message_id.unwrap_or_default(),
                    m.message.body_text,
                ),
                _ => unreachable!(),
            }
        })
        .collect();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0].0, received[1].0, "one conversation");
    assert_eq!(
        (received[0].1.as_str(), received[0].2.as_str()),
        ("m_1", "Hi!")
    );
    assert_eq!(received[1].1, "m_2");
    let started = events
        .iter()
        .filter(|e| e.event_type == "ConversationStarted")
        .count();
    assert_eq!(started, 1);
}

// --- Page token and replies (issue 20) ---

const UPDATE_PAGE: &str = "mutation($input: UpdateMessengerChannelInput!) {
    updateMessengerChannel(input: $input) {
        userErrors { field code message } channel { messengerPageToken humanAgentTag } } }";
const PAGE_TOKEN: &str = "EAAGtestPageToken0123456789abcdef";

/// Every stored payload, as text.
async fn stored_payloads(api: &TestApi) -> String {
    let events = api
        .service
        .store()
        .read_all(Position::START, 10_000)
        .await
        .expect("read");
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_page_token_is_write_only_sealed_and_set_by_admins_alone() {
    let (api, channel) = api_with_page_channel().await;
    let channel_id = switchboard_api::ids::encode(switchboard_api::ids::Kind::Channel, channel);
    let agent = api
        .user("agent@acme.test", proto_events::event::Role::Agent)
        .await;
    let auditor = api
        .user("audrey@acme.test", proto_events::event::Role::Auditor)
        .await;

    // A token with a space is refused naming the field, and writes nothing.
    let before = head(&api).await;
    let refused = api
        .gql(
            api.admin,
            UPDATE_PAGE,
            json!({"input": {"channelId": channel_id, "pageAccessToken": "two words"}}),
        )
        .await;
    let errors = &refused.data()["updateMessengerChannel"]["userErrors"];
    assert_eq!(
        errors[0]["field"],
        json!(["input", "pageAccessToken"]),
        "{errors}"
    );
    assert_eq!(head(&api).await, before);
    // Agents may not set it.
    let forbidden = api
        .gql(
            agent,
            UPDATE_PAGE,
            json!({"input": {"channelId": channel_id, "pageAccessToken": PAGE_TOKEN}}),
        )
        .await;
    assert_eq!(
        forbidden.error_code(),
        Some("FORBIDDEN"),
        "{:?}",
        forbidden.body
    );
    assert_eq!(head(&api).await, before);

    let set = api
        .gql(
            api.admin,
            UPDATE_PAGE,
            json!({"input": {"channelId": channel_id, "pageAccessToken": PAGE_TOKEN, "humanAgentTag": true}}),
        )
        .await;
    let payload = &set.data()["updateMessengerChannel"];
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    assert_eq!(payload["channel"]["messengerPageToken"], true);
    assert_eq!(payload["channel"]["humanAgentTag"], true);
    let first_secret = {
        let view = api.service.view().await.expect("view");
        view.directory.channels[&channel]
            .messenger
            .page_token_secret
    }
    .expect("a sealed token");
    let vault = Vault::new(
        api.service.store().secrets(),
        &MasterKey::from_bytes(VAULT_KEY),
    );
    let opened = vault
        .get(SecretId(first_secret))
        .await
        .expect("vault")
        .expect("sealed");
    assert_eq!(opened.expose(), PAGE_TOKEN);
    assert!(!stored_payloads(&api).await.contains(PAGE_TOKEN));

    // A new token replaces the old one, which is deleted; the tag is kept.
    let replaced = api
        .gql(
            api.admin,
            UPDATE_PAGE,
            json!({"input": {"channelId": channel_id, "pageAccessToken": "EAAGanotherToken"}}),
        )
        .await;
    let payload = &replaced.data()["updateMessengerChannel"];
    assert_eq!(payload["channel"]["humanAgentTag"], true, "{payload}");
    let old = vault.get(SecretId(first_secret)).await.expect("vault");
    assert!(old.is_none(), "the replaced token is deleted");

    // Others see neither the setting nor its history.
    let seen = api
        .gql(
            agent,
            "query($id: ID!) { node(id: $id) { ... on Channel { messengerPageToken humanAgentTag } } }",
            json!({"id": channel_id}),
        )
        .await;
    assert_eq!(
        seen.data()["node"]["messengerPageToken"],
        Value::Null,
        "{:?}",
        seen.body
    );
    let history = "{ events(first: 100) { edges { node { type payload } } } }";
    let theirs = api.gql(auditor, history, json!({})).await.body.to_string();
    assert!(theirs.contains("ChannelConnected"), "{theirs}");
    assert!(!theirs.contains("MessengerPageSet"), "{theirs}");
    let admins = api
        .gql(api.admin, history, json!({}))
        .await
        .body
        .to_string();
    assert!(admins.contains("MessengerPageSet"), "{admins}");
    assert!(!admins.contains(PAGE_TOKEN), "{admins}");
}

/// Everything logged while it is alive (on this test's thread, where its tasks run).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// The Send API's requests a stand-in received. Meta cannot run here: an axum server on
/// 127.0.0.1 stands in for the Graph API and answers every request with a `message_id`.
type SendRequests = Arc<Mutex<Vec<(Option<String>, Value)>>>;

async fn fake_graph() -> (String, SendRequests) {
    let received = SendRequests::default();
    let recorded = received.clone();
    let app = axum::Router::new().route(
        "/v21.0/me/messages",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let recorded = recorded.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    recorded.lock().expect("lock").push((auth, body));
                    axum::Json(json!({"recipient_id": "psid-ada", "message_id": "m_graph_1"}))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// Waits for the first event `matches` picks, with a deadline.
async fn wait_for<T>(api: &TestApi, mut matches: impl FnMut(&Envelope) -> Option<T>) -> T {
    use futures::StreamExt;
    let mut events = api.service.store().subscribe_all(Position::START);
    let wait = async {
        while let Some(recorded) = events.next().await {
            let envelope =
                switchboard_service::codec::decode(&recorded.expect("read")).expect("decode");
            if let Some(found) = matches(&envelope) {
                return found;
            }
        }
        panic!("the subscription ended");
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the event within the deadline")
}

/// The person writes `text` to the page (Meta's `m_1`); returns the GraphQL id of their
/// conversation once it is recorded.
async fn person_writes(api: &TestApi, text: &str) -> String {
    let taken = api
        .send(event(&message("m_1", text, false), Some(APP_SECRET)))
        .await;
    assert_eq!(taken.status, StatusCode::OK);
    let conversation = wait_for(api, |e| match &e.payload {
        DomainEvent::MessageReceived(m) => Some(m.conversation_id),
        _ => None,
    })
    .await;
    switchboard_api::ids::encode(switchboard_api::ids::Kind::Conversation, conversation).0
}

#[tokio::test]
async fn a_reply_through_graphql_goes_out_by_the_send_api_and_none_is_taken_after_24_hours() {
    let logs = Logs::default();
    let writer = logs.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let (api, channel) = api_with_page_on(clock.clone()).await;
    let channel_id = switchboard_api::ids::encode(switchboard_api::ids::Kind::Channel, channel);
    let set = api
        .gql(
            api.admin,
            UPDATE_PAGE,
            json!({"input": {"channelId": channel_id, "pageAccessToken": PAGE_TOKEN}}),
        )
        .await;
    assert_eq!(
        set.data()["updateMessengerChannel"]["userErrors"],
        json!([])
    );
    let (graph_url, requests) = fake_graph().await;
    let _worker = switchboard_delivery::DeliveryWorker::spawn(
        api.service.clone(),
        switchboard_delivery::DeliverySettings {
            relay: None,
            vault: Some(Vault::new(
                api.service.store().secrets(),
                &MasterKey::from_bytes(VAULT_KEY),
            )),
            retry_for: Duration::from_secs(3_600),
            from_name: switchboard_delivery::FromName::AgentViaInbox,
            clock: clock.clone(),
            messenger: Some(
                switchboard_delivery::GraphApi::new(&graph_url, "v21.0", Duration::from_secs(5))
                    .unwrap(),
            ),
            chat_email_unseen_after: None,
        },
    );

    let conversation_id = person_writes(&api, "Where is my parcel?").await;
    let reply = |text: &str| {
        let variables = json!({"id": conversation_id, "text": text});
        let api = &api;
        async move {
            api.gql(
                api.admin,
                "mutation($id: ID!, $text: String!) { sendReply(input: {conversationId: $id, bodyText: $text}) {
                    userErrors { field code message } } }",
                variables,
            )
            .await
        }
    };
    let sent = reply("It left today.").await;
    assert_eq!(
        sent.data()["sendReply"]["userErrors"],
        json!([]),
        "{:?}",
        sent.body
    );
    let provider_id = wait_for(&api, |e| match &e.payload {
        DomainEvent::DeliverySucceeded(d) => Some(d.provider_message_id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(provider_id.as_deref(), Some("m_graph_1"));
    let (auth, body) = requests.lock().expect("lock")[0].clone();
    assert_eq!(auth, Some(format!("Bearer {PAGE_TOKEN}")));
    assert_eq!(body["recipient"]["id"], "psid-ada");
    assert_eq!(body["messaging_type"], "RESPONSE");
    assert_eq!(body["message"]["text"], "It left today.");

    // A day and an hour later, Messenger would refuse a reply: so does the API, writing nothing.
    clock.advance(chrono::TimeDelta::hours(25));
    let before = head(&api).await;
    let late = reply("Still there?").await;
    let errors = &late.data()["sendReply"]["userErrors"];
    assert_eq!(errors[0]["code"], "OUTSIDE_MESSAGING_WINDOW", "{errors}");
    assert_eq!(
        errors[0]["field"],
        json!(["input", "conversationId"]),
        "{errors}"
    );
    assert_eq!(head(&api).await, before);

    // The token is in no event and no log line.
    assert!(!stored_payloads(&api).await.contains(PAGE_TOKEN));
    let logged = logs.text();
    assert!(logged.contains("delivering Messenger replies"), "{logged}");
    assert!(!logged.contains(PAGE_TOKEN), "{logged}");
}

#[tokio::test]
async fn delivery_and_read_receipts_are_recorded_once_per_newer_watermark() {
    let api = api_with_page().await;
    let taken = api
        .send(event(&message("m_1", "Hi!", false), Some(APP_SECRET)))
        .await;
    assert_eq!(taken.status, StatusCode::OK);
    let receipts = |watermark: i64| {
        json!({"object": "page", "entry": [{"id": PAGE, "time": 2, "messaging": [
            {"sender": {"id": "psid-ada"}, "recipient": {"id": PAGE}, "timestamp": 2,
             "delivery": {"mids": ["m_out_1"], "watermark": watermark}},
            {"sender": {"id": "psid-ada"}, "recipient": {"id": PAGE}, "timestamp": 3,
             "read": {"watermark": watermark}},
            // Someone with no conversation here: skipped, the rest recorded.
            {"sender": {"id": "psid-nobody"}, "recipient": {"id": PAGE}, "timestamp": 4,
             "read": {"watermark": watermark}}
        ]}]})
    };
    let first = api
        .send(event(&receipts(1_700_000_000_000), Some(APP_SECRET)))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let recorded = receipts_recorded(&api).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[0]["kind"], "delivered");
    assert_eq!(recorded[0]["mids"], json!(["m_out_1"]));
    assert_eq!(recorded[1]["kind"], "read");
    // Meta sends them again: nothing new. A later watermark is recorded.
    api.send(event(&receipts(1_700_000_000_000), Some(APP_SECRET)))
        .await;
    assert_eq!(receipts_recorded(&api).await.len(), 2);
    api.send(event(&receipts(1_700_000_060_000), Some(APP_SECRET)))
        .await;
    assert_eq!(receipts_recorded(&api).await.len(), 4);
    // Unsigned receipts write nothing.
    let unsigned = api.send(event(&receipts(1_700_000_120_000), None)).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(receipts_recorded(&api).await.len(), 4);
}

/// The recorded `MessengerReceiptReceived` payloads, in order.
async fn receipts_recorded(api: &TestApi) -> Vec<Value> {
    api.payloads("MessengerReceiptReceived").await
}

/// A file server standing in for Meta's CDN, where attachment URLs point: its address, and
/// how many times the file was fetched.
async fn fake_cdn(bytes: &'static [u8]) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let fetched = Arc::new(AtomicUsize::new(0));
    let counter = fetched.clone();
    let app = axum::Router::new()
        .route(
            "/cdn/photo%201.jpg",
            axum::routing::get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                ([("content-type", "image/jpeg")], bytes)
            }),
        )
        .route(
            "/redirect",
            axum::routing::get(|| async {
                (StatusCode::FOUND, [("location", "/cdn/photo%201.jpg")])
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, fetched)
}

#[tokio::test]
async fn an_image_attachment_is_kept_in_the_blob_store_and_downloadable() {
    const IMAGE: &[u8] = b"\xff\xd8\xff\xe0 not really a jpeg";
    let (address, fetched) = fake_cdn(IMAGE).await;
    let (api, _) = api_with_page_trusting(Arc::new(SystemClock), Some(address)).await;
    let cdn = format!("http://{address}");
    let body = json!({"object": "page", "entry": [{"id": PAGE, "time": 1, "messaging": [{
        "sender": {"id": "psid-ada"}, "recipient": {"id": PAGE}, "timestamp": 1,
        "message": {"mid": "m_img", "attachments": [
            {"type": "image", "payload": {"url": format!("{cdn}/redirect")}},
            // Where cloud metadata answers: refused, the message kept without it.
            {"type": "file", "payload": {"url": "http://169.254.169.254/latest/meta-data"}}
        ]}
    }]}]});
    let taken = api.send(event(&body, Some(APP_SECRET))).await;
    assert_eq!(taken.status, StatusCode::OK, "{:?}", taken.body);
    let received = wait_for(&api, |e| match &e.payload {
        DomainEvent::MessageReceived(m) => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!(received.message.attachments.len(), 1, "{received:?}");
    let attachment = &received.message.attachments[0];
    assert_eq!(attachment.content_type, "image/jpeg");
    assert_eq!(attachment.file_name.as_deref(), Some("photo 1.jpg"));
    assert!(
        received
            .message
            .body_text
            .contains("[file attachment, not kept"),
        "{}",
        received.message.body_text
    );
    let sha256 = attachment.blob.sha256.clone();
    let stored = api
        .service
        .store()
        .blobs()
        .get(&sha256)
        .await
        .expect("blobs");
    assert_eq!(stored.as_deref(), Some(IMAGE));
    assert_eq!(fetched.load(Ordering::SeqCst), 1);

    // Meta sends the same delivery again: answered, recorded once, the file not fetched again.
    let again = api.send(event(&body, Some(APP_SECRET))).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(
        fetched.load(Ordering::SeqCst),
        1,
        "a repeat fetched the file again"
    );

    // The agent's download route serves it.
    let head = head(&api).await;
    api.projections
        .wait_for(head, tokio::time::Instant::now() + Duration::from_secs(30))
        .await
        .expect("read models caught up");
    let conversation = received.conversation_id;
    let download = api
        .send(
            Request::get(format!("/files/{conversation}/{sha256}"))
                .header("authorization", format!("Bearer {}", api.token(api.admin)))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(download.status, StatusCode::OK, "{:?}", download.body);
}

/// The `deliveredAt` and `readAt` of the conversation's outbound messages, oldest first.
async fn receipts_shown(api: &TestApi, conversation: &str) -> Vec<(Value, Value)> {
    api.outbound(conversation, ["deliveredAt", "readAt"]).await
}

#[tokio::test]
async fn receipts_show_delivered_replies_delivered_and_read_by_watermark_or_mid() {
    let start = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let (api, _) = api_with_page_on(clock.clone()).await;
    let id = person_writes(&api, "Hi!").await;
    let reply = |text: &'static str| {
        let variables = json!({"id": id, "text": text});
        let api = &api;
        async move {
            let sent = api
                .gql(
                    api.admin,
                    "mutation($id: ID!, $text: String!) { sendReply(input: {conversationId: $id, bodyText: $text}) {
                        messageId userErrors { code } } }",
                    variables,
                )
                .await;
            assert_eq!(
                sent.data()["sendReply"]["userErrors"],
                json!([]),
                "{:?}",
                sent.body
            );
            sent.data()["sendReply"]["messageId"].clone()
        }
    };
    let receipt = |kind: &str, watermark: chrono::DateTime<chrono::Utc>, mids: &[&str]| {
        let mut body = json!({"watermark": watermark.timestamp_millis()});
        if !mids.is_empty() {
            body["mids"] = json!(mids);
        }
        json!({"object": "page", "entry": [{"id": PAGE, "time": 2, "messaging": [
            {"sender": {"id": "psid-ada"}, "recipient": {"id": PAGE}, "timestamp": 2, kind: body}
        ]}]})
    };
    let at = |t: chrono::DateTime<chrono::Utc>| json!(t.to_rfc3339());

    // The first reply is written at `start`, the second a minute later.
    let first = reply("It left today.").await;
    clock.advance(chrono::TimeDelta::minutes(1));
    let second = reply("Tracking number: 42.").await;
    assert_eq!(
        receipts_shown(&api, &id).await,
        vec![(Value::Null, Value::Null), (Value::Null, Value::Null)],
        "no receipt yet"
    );

    // A receipt covers only replies whose delivery succeeded, and only once it did.
    clock.advance(chrono::TimeDelta::minutes(1));
    let sent = api
        .send(event(&receipt("delivery", start, &[]), Some(APP_SECRET)))
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    assert_eq!(
        receipts_shown(&api, &id).await,
        vec![(Value::Null, Value::Null), (Value::Null, Value::Null)],
        "nothing was delivered yet"
    );
    let delivered = |message: Value, mid: &'static str| {
        let api = &api;
        let variables = json!({"id": id, "message": message, "mid": mid});
        async move {
            let recorded = api
                .gql(
                    api.admin,
                    "mutation($id: ID!, $message: UUID!, $mid: String!) { recordDelivery(input: {
                        conversationId: $id, messageId: $message, status: SUCCEEDED,
                        providerMessageId: $mid}) { userErrors { code } } }",
                    variables,
                )
                .await;
            assert_eq!(
                recorded.data()["recordDelivery"]["userErrors"],
                json!([]),
                "{:?}",
                recorded.body
            );
        }
    };

    // Once the first is delivered, a delivery receipt up to its time covers it, not the second
    // (written later, not delivered); the receipt before the delivery still covers nothing.
    clock.advance(chrono::TimeDelta::minutes(1));
    delivered(first, "m_a").await;
    clock.advance(chrono::TimeDelta::minutes(1));
    let first_delivered = clock.now();
    api.send(event(
        &receipt("delivery", start + chrono::TimeDelta::seconds(1), &[]),
        Some(APP_SECRET),
    ))
    .await;
    assert_eq!(
        receipts_shown(&api, &id).await,
        vec![
            (at(first_delivered), Value::Null),
            (Value::Null, Value::Null)
        ]
    );

    // The second went out as Graph's `m_b`; a delivery receipt naming it covers it, though its
    // watermark is older than the reply.
    delivered(second, "m_b").await;
    clock.advance(chrono::TimeDelta::minutes(1));
    let second_delivered = clock.now();
    let watermark = start + chrono::TimeDelta::seconds(2);
    api.send(event(
        &receipt("delivery", watermark, &["m_b"]),
        Some(APP_SECRET),
    ))
    .await;
    assert_eq!(
        receipts_shown(&api, &id).await,
        vec![
            (at(first_delivered), Value::Null),
            (at(second_delivered), Value::Null)
        ]
    );

    // A read receipt up to the second reply's time shows both read, from then.
    clock.advance(chrono::TimeDelta::minutes(1));
    let read = clock.now();
    api.send(event(
        &receipt("read", start + chrono::TimeDelta::minutes(1), &[]),
        Some(APP_SECRET),
    ))
    .await;
    assert_eq!(
        receipts_shown(&api, &id).await,
        vec![
            (at(first_delivered), at(read)),
            (at(second_delivered), at(read))
        ]
    );
}
