//! Facebook Messenger's webhook, driven as Meta drives it: the verification handshake, and page
//! events signed with the app secret (Meta cannot reach these tests; a test app secret stands in
//! for the real one). A message becomes the sender's conversation once, however often Meta
//! retries it; echoes and unsigned or mis-signed requests write nothing.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard_api::ApiSettings;
use switchboard_api::messenger::MessengerSettings;
use switchboard_domain::channel::ChannelCommand;
use switchboard_service::Command;
use switchboard_store::Position;
use uuid::Uuid;

use crate::support::{SECRET, TestApi};

const APP_SECRET: &str = "test-app-secret";
const VERIFY_TOKEN: &str = "verify-me-please";
const PAGE: &str = "104729";

async fn api_with_page() -> TestApi {
    let api = TestApi::with_settings(ApiSettings {
        messenger: Some(MessengerSettings {
            app_secret: APP_SECRET.into(),
            verify_token: VERIFY_TOKEN.into(),
        }),
        ..ApiSettings::new(SECRET)
    })
    .await;
    let inbox = api.inbox("Social").await;
    let channel_id = Uuid::now_v7();
    api.run(Command::Channel(ChannelCommand::ConnectMessenger {
        channel_id,
        inbox_id: inbox,
        page_id: PAGE.into(),
        page_name: "Acme".into(),
    }))
    .await;
    api
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
