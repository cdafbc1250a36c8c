//! Files uploaded with a reply: GraphQL multipart requests (the multipart request spec) over a
//! real socket, the reply's attachments on the timeline and their downloads, and everything
//! refused (a chat reply with files, files over the limits, a stranger's upload, a forged
//! upload) without writing anything.

use std::time::Duration;

use proto_events::event::{EmailAccess, Member, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_api::Limits;
use switchboard_api::ids::{self, Kind};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::setup::SetupCommand;
use switchboard_email::Ingester;
use switchboard_service::Command;
use switchboard_store::Position;
use uuid::Uuid;

use crate::support::TestApi;

const MAIL: &[u8] = b"From: Grace Hopper <grace@customer.example>\r\n\
To: support@acme.test\r\n\
Subject: A quote, please\r\n\
Message-ID: <quote-1@customer.example>\r\n\
\r\n\
Could you send us a quote for 20 seats?\r\n";

/// Not text: every byte value, CR LF and the multipart boundary's dashes among them.
fn pdf() -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\r\n--\r\n".to_vec();
    bytes.extend((0..=255_u8).cycle().take(70_000));
    bytes
}

const BOUNDARY: &str = "switchboard-test-7f3a9c1e";

const SEND_REPLY: &str = "mutation($input: SendReplyInput!) { sendReply(input: $input) {
    userErrors { field message code } messageId replayed
    conversation { timeline(first: 20) { nodes { kind bodyText
        attachments { fileName contentType size sha256 downloadUrl } } } } } }";

/// A file part: its form name, file name, content type and bytes.
struct Part<'a> {
    name: &'a str,
    file_name: &'a str,
    content_type: &'a str,
    bytes: &'a [u8],
}

/// A multipart request body: `operations`, `map` (each file to `variables.input.attachments.N`,
/// N its place in `files`) and the files.
fn multipart(operations: &Value, files: &[Part<'_>]) -> Vec<u8> {
    let map: serde_json::Map<String, Value> = files
        .iter()
        .enumerate()
        .map(|(i, part)| {
            (
                part.name.to_owned(),
                json!([format!("variables.input.attachments.{i}")]),
            )
        })
        .collect();
    let mut body = Vec::new();
    for (name, value) in [
        ("operations", operations.clone()),
        ("map", Value::Object(map)),
    ] {
        body.extend(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .bytes(),
        );
    }
    for part in files {
        body.extend(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\n\
                 Content-Type: {}\r\n\r\n",
                part.name, part.file_name, part.content_type
            )
            .bytes(),
        );
        body.extend_from_slice(part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend(format!("--{BOUNDARY}--\r\n").bytes());
    body
}

/// The `operations` of a `sendReply` with one `null` per file.
fn send_reply(conversation: &str, files: usize, key: Option<&str>) -> Value {
    json!({
        "query": SEND_REPLY,
        "variables": {"input": {
            "conversationId": conversation,
            "bodyText": "The quote is attached.",
            "attachments": vec![Value::Null; files],
            "clientMutationId": key,
        }},
    })
}

/// Posts `body` as a multipart request to the API at `base`; status and JSON answer.
async fn post(base: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {text}: {e}"));
    (status, json)
}

/// An API served on a socket, with an agent of an inbox whose shared address got a customer's
/// mail: the agent, the e-mail conversation's id and the API's base URL.
async fn with_mail(limits: Limits) -> (TestApi, Uuid, String, String) {
    let api = TestApi::with_limits(limits).await;
    let inbox = api.inbox("Support").await;
    let agent = api.user("ada@acme.test", Role::Agent).await;
    api.run(Command::Setup(SetupCommand::AddInboxMember {
        inbox_id: inbox,
        member: Member::User { id: agent },
    }))
    .await;
    let channel = Uuid::now_v7();
    api.run(Command::Channel(ChannelCommand::ConnectEmail {
        channel_id: channel,
        inbox_id: inbox,
        address: "support@acme.test".into(),
        access: EmailAccess::Shared,
    }))
    .await;
    let ingested = Ingester::new(api.service.clone(), api.service.store().clone())
        .ingest(channel, None, MAIL.to_vec())
        .await
        .expect("ingested");
    caught_up(&api).await;
    let conversation_id: Uuid = ingested
        .stream
        .strip_prefix("conversation-")
        .and_then(|id| id.parse().ok())
        .expect("a conversation");
    let conversation = ids::encode(Kind::Conversation, conversation_id).0;
    let base = format!("http://{}", api.serve().await);
    (api, agent, conversation, base)
}

async fn caught_up(api: &TestApi) {
    let head = api.service.store().head().await.expect("head");
    api.projections
        .wait_for(head, tokio::time::Instant::now() + Duration::from_secs(10))
        .await
        .expect("caught up");
}

async fn head(api: &TestApi) -> Position {
    api.service.store().head().await.expect("head")
}

/// The reply's entry of a `sendReply` answer's timeline.
fn reply_entry(answer: &Value) -> Value {
    answer["data"]["sendReply"]["conversation"]["timeline"]["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["kind"] == "OUTBOUND_MESSAGE"))
        .cloned()
        .unwrap_or_else(|| panic!("a reply on the timeline: {answer:#}"))
}

#[tokio::test]
async fn a_reply_carries_uploaded_files_to_its_timeline_and_they_download_byte_for_byte() {
    let (api, agent, conversation, base) = with_mail(Limits::default()).await;
    let token = api.token(agent);
    let pdf = pdf();
    let notes = "Prices are per seat, per month.\n".as_bytes();
    let body = multipart(
        &send_reply(&conversation, 2, None),
        &[
            Part {
                name: "0",
                file_name: "C:\\fakepath\\quote.pdf",
                content_type: "application/pdf",
                bytes: &pdf,
            },
            Part {
                name: "1",
                file_name: "../notes.txt",
                content_type: "text/plain; charset=utf-8",
                bytes: notes,
            },
        ],
    );
    let (status, answer) = post(&base, Some(&token), body).await;
    assert_eq!(status, StatusCode::OK, "{answer:#}");
    assert!(answer.get("errors").is_none(), "{answer:#}");
    assert_eq!(answer["data"]["sendReply"]["userErrors"], json!([]));
    let entry = reply_entry(&answer);
    let files = entry["attachments"].as_array().expect("attachments");
    let described: Vec<(&str, &str, f64)> = files
        .iter()
        .map(|f| {
            (
                f["fileName"].as_str().unwrap_or_default(),
                f["contentType"].as_str().unwrap_or_default(),
                f["size"].as_f64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("quote.pdf", "application/pdf", pdf.len() as f64),
            ("notes.txt", "text/plain", notes.len() as f64),
        ],
        "{entry:#}"
    );

    // Each link opens its file, byte for byte, for a browser without a header.
    let client = reqwest::Client::new();
    for (file, bytes) in files.iter().zip([pdf.as_slice(), notes]) {
        let link = file["downloadUrl"].as_str().expect("a link");
        let got = client
            .get(format!("{base}{link}"))
            .send()
            .await
            .expect("a download");
        assert_eq!(got.status(), StatusCode::OK);
        assert!(
            got.headers()["content-disposition"]
                .to_str()
                .is_ok_and(|d| d.starts_with("attachment;")),
        );
        assert_eq!(got.bytes().await.expect("bytes").as_ref(), bytes);
    }
    // And the blob store holds them by their hashes.
    let stored = api
        .service
        .store()
        .blobs()
        .get(files[0]["sha256"].as_str().expect("sha256"))
        .await
        .expect("read");
    assert_eq!(stored.as_deref(), Some(pdf.as_slice()));
}

#[tokio::test]
async fn a_client_mutation_id_binds_the_files_by_content() {
    let (api, agent, conversation, base) = with_mail(Limits::default()).await;
    let token = api.token(agent);
    let file = |bytes: &'static [u8]| Part {
        name: "0",
        file_name: "quote.pdf",
        content_type: "application/pdf",
        bytes,
    };
    let once = || {
        multipart(
            &send_reply(&conversation, 1, Some("reply-1")),
            &[file(b"v1")],
        )
    };
    let (_, first) = post(&base, Some(&token), once()).await;
    assert_eq!(
        first["data"]["sendReply"]["userErrors"],
        json!([]),
        "{first:#}"
    );
    let (_, again) = post(&base, Some(&token), once()).await;
    assert_eq!(again["data"]["sendReply"]["replayed"], true, "{again:#}");
    assert_eq!(
        again["data"]["sendReply"]["messageId"],
        first["data"]["sendReply"]["messageId"]
    );
    let other = multipart(
        &send_reply(&conversation, 1, Some("reply-1")),
        &[file(b"v2")],
    );
    let (_, misused) = post(&base, Some(&token), other).await;
    assert_eq!(
        misused["errors"][0]["extensions"]["code"], "IDEMPOTENCY_KEY_REUSED",
        "{misused:#}"
    );
}

#[tokio::test]
async fn files_on_a_chat_reply_are_refused_naming_the_field_and_nothing_is_written() {
    let (api, agent, _, base) = with_mail(Limits::default()).await;
    let inbox = api.inbox("Chat").await;
    api.run(Command::Setup(SetupCommand::AddInboxMember {
        inbox_id: inbox,
        member: Member::User { id: agent },
    }))
    .await;
    let channel = api.chat_channel(inbox).await;
    let started = api.chat(channel, "visitor-1", "Hello?").await;
    api.settle(&started).await;
    let chat: Uuid = started
        .stream
        .strip_prefix("conversation-")
        .and_then(|id| id.parse().ok())
        .expect("a conversation");
    let chat = ids::encode(Kind::Conversation, chat).0;
    let before = head(&api).await;
    let body = multipart(
        &send_reply(&chat, 1, None),
        &[Part {
            name: "0",
            file_name: "quote.pdf",
            content_type: "application/pdf",
            bytes: b"%PDF-1.7",
        }],
    );
    let (status, answer) = post(&base, Some(&api.token(agent)), body).await;
    assert_eq!(status, StatusCode::OK, "{answer:#}");
    let payload = &answer["data"]["sendReply"];
    assert_eq!(
        payload["userErrors"][0]["field"],
        json!(["input", "attachments"]),
        "{answer:#}"
    );
    assert_eq!(payload["messageId"], Value::Null);
    assert_eq!(head(&api).await, before, "a refused reply writes no event");
}

#[tokio::test]
async fn an_empty_file_is_refused_naming_it() {
    let (api, agent, conversation, base) = with_mail(Limits::default()).await;
    let before = head(&api).await;
    let body = multipart(
        &send_reply(&conversation, 2, None),
        &[
            Part {
                name: "0",
                file_name: "quote.pdf",
                content_type: "application/pdf",
                bytes: b"%PDF-1.7",
            },
            Part {
                name: "1",
                file_name: "empty.txt",
                content_type: "text/plain",
                bytes: b"",
            },
        ],
    );
    let (_, answer) = post(&base, Some(&api.token(agent)), body).await;
    assert_eq!(
        answer["data"]["sendReply"]["userErrors"],
        json!([{"field": ["input", "attachments", "1"], "message": "the file is empty",
                "code": "INVALID"}]),
        "{answer:#}"
    );
    assert_eq!(head(&api).await, before);
    // Nothing was kept of the other file either.
    let sha = switchboard_store::blob::blob_hash(b"%PDF-1.7");
    let stored = api.service.store().blobs().get(&sha).await.expect("read");
    assert_eq!(stored, None);
}

#[tokio::test]
async fn uploads_over_the_limits_are_refused_with_413_before_anything_is_stored() {
    let limits = Limits {
        max_upload_file_bytes: 1_000,
        max_upload_bytes: 1_500,
        max_upload_files: 2,
        ..Limits::default()
    };
    let (api, agent, conversation, base) = with_mail(limits).await;
    let token = api.token(agent);
    let before = head(&api).await;
    let file = |name: &'static str, bytes: &'static [u8]| Part {
        name,
        file_name: "quote.pdf",
        content_type: "application/pdf",
        bytes,
    };
    static BIG: [u8; 1_001] = [7; 1_001];
    static HALF: [u8; 800] = [8; 800];

    // One file over its limit, named by its variable.
    let (status, answer) = post(
        &base,
        Some(&token),
        multipart(&send_reply(&conversation, 1, None), &[file("0", &BIG)]),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:#}");
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("variables.input.attachments.0") && message.contains("1000 bytes"),
        "{answer:#}"
    );
    assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    // Two files within their limit each, over the limit together.
    let (status, answer) = post(
        &base,
        Some(&token),
        multipart(
            &send_reply(&conversation, 2, None),
            &[file("0", &HALF), file("1", &HALF)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:#}");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1500 bytes together")),
        "{answer:#}"
    );

    // More files than taken, refused from the map alone.
    let (status, answer) = post(
        &base,
        Some(&token),
        multipart(
            &send_reply(&conversation, 3, None),
            &[file("0", b"a"), file("1", b"b"), file("2", b"c")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:#}");

    // A body declared larger than any upload may be is refused before it is read.
    let huge = api
        .send(
            axum::http::Request::post("/graphql")
                .header("authorization", format!("Bearer {token}"))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .header("content-length", 1_500 + (1 << 20) + 1)
                .body(axum::body::Body::from(vec![b'x'; 1_500 + (1 << 20) + 1]))
                .expect("request"),
        )
        .await;
    assert_eq!(
        huge.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:#}",
        huge.body
    );

    assert_eq!(head(&api).await, before, "nothing was written");
    for bytes in [&BIG[..], &HALF[..]] {
        let sha = switchboard_store::blob::blob_hash(bytes);
        let stored = api.service.store().blobs().get(&sha).await.expect("read");
        assert_eq!(stored, None, "no blob was stored");
    }
}

#[tokio::test]
async fn strangers_and_forged_uploads_are_refused() {
    let (api, agent, conversation, base) = with_mail(Limits::default()).await;
    let before = head(&api).await;
    let one = || {
        multipart(
            &send_reply(&conversation, 1, None),
            &[Part {
                name: "0",
                file_name: "quote.pdf",
                content_type: "application/pdf",
                bytes: b"%PDF-1.7",
            }],
        )
    };
    // No token: the body is not read.
    let (status, answer) = post(&base, None, one()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer:#}");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    // A JSON request naming an upload it does not carry.
    let forged = api
        .gql(
            agent,
            SEND_REPLY,
            json!({"input": {"conversationId": conversation, "bodyText": "x",
                   "attachments": ["#__graphql_file__:0"]}}),
        )
        .await;
    assert_eq!(
        forged.status,
        axum::http::StatusCode::BAD_REQUEST,
        "{:#}",
        forged.body
    );
    let literal = api
        .gql(
            agent,
            &format!(
                "mutation {{ sendReply(input: {{conversationId: \"{conversation}\", \
                 bodyText: \"x\", attachments: [\"#__graphql_file__:x\"]}}) {{ replayed }} }}"
            ),
            json!({}),
        )
        .await;
    assert_eq!(
        literal.status,
        axum::http::StatusCode::BAD_REQUEST,
        "{:#}",
        literal.body
    );

    // Parts out of the spec's order, or a file the map does not name.
    let token = api.token(agent);
    let mut unnamed = one();
    let text = String::from_utf8_lossy(&unnamed).replace("name=\"0\"", "name=\"9\"");
    unnamed = text.into_bytes();
    let (status, answer) = post(&base, Some(&token), unnamed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer:#}");
    let reordered = String::from_utf8_lossy(&one())
        .replacen("name=\"operations\"", "name=\"tmp\"", 1)
        .replacen("name=\"map\"", "name=\"operations\"", 1)
        .replacen("name=\"tmp\"", "name=\"map\"", 1)
        .into_bytes();
    let (status, answer) = post(&base, Some(&token), reordered).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer:#}");
    assert_eq!(head(&api).await, before);
}

#[tokio::test]
async fn a_websocket_mutation_naming_an_upload_is_refused() {
    use crate::subscriptions::{close_code, connect, next, subscribe};

    let (api, agent, conversation, base) = with_mail(Limits::default()).await;
    let addr = base
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("an address");
    let token = format!("Bearer {}", api.token(agent));
    let mut socket = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    // No file comes over a WebSocket: a placeholder is a malformed message, never an index
    // async-graphql would look up.
    subscribe(
        &mut socket,
        "1",
        SEND_REPLY,
        json!({"input": {"conversationId": conversation, "bodyText": "x",
               "attachments": ["#__graphql_file__:0"]}}),
    )
    .await;
    assert_eq!(close_code(&mut socket).await, Some(4400));
}
