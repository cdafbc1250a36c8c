//! Web forms through the API: `configureForm` and `Channel.form` (admins only), and
//! `POST /forms/{publicKey}`: the three body types, files to the blob store, refusals naming the
//! field and writing nothing, the honeypot, CORS per form and rate limits.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use proto_events::event::{Member, Role};
use serde_json::{Value, json};
use switchboard_api::ids::Kind;
use switchboard_api::{ApiSettings, FormLimits, TrustedProxies};
use switchboard_domain::setup::SetupCommand;
use switchboard_service::Command;
use tower::ServiceExt;
use uuid::Uuid;

use crate::audit::id;
use crate::support::{Reply, SECRET, TestApi};

const CONFIGURE: &str = "mutation($input: ConfigureFormInput!) { configureForm(input: $input) {
    userErrors { field code message }
    channel { form { publicKey allowedOrigins honeypotField
        fields { name label kind required options } } } } }";

/// The form's fields as `configureForm` takes them.
fn fields() -> Value {
    json!([
        {"name": "name", "label": "Your name"},
        {"name": "email", "label": "Your e-mail", "kind": "EMAIL", "required": true},
        {"name": "topic", "label": "Topic", "kind": "SELECT", "options": ["Sales", "Support"]},
        {"name": "phone", "label": "Phone", "kind": "PHONE"},
        {"name": "seats", "label": "Seats", "kind": "NUMBER"},
        {"name": "newsletter", "label": "Newsletter", "kind": "CHECKBOX"},
        {"name": "message", "label": "Message", "kind": "TEXTAREA", "required": true},
    ])
}

/// A form channel connected to `inbox`; returns its channel id.
pub(crate) async fn form_channel(api: &TestApi, inbox: Uuid) -> String {
    let connected = api
        .gql(
            api.admin,
            "mutation($inbox: ID!) { connectFormChannel(input: {inboxId: $inbox, name: \"Contact us\"}) { channel { id } } }",
            json!({ "inbox": id(Kind::Inbox, inbox) }),
        )
        .await;
    connected.data()["connectFormChannel"]["channel"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", connected.body))
        .to_owned()
}

/// A form configured with [`fields`], `https://www.acme.test` allowed and a `website`
/// honeypot; returns its public key.
pub(crate) async fn configured_form(api: &TestApi) -> String {
    let inbox = api.inbox("Website").await;
    let channel = form_channel(api, inbox).await;
    let set = api
        .gql(
            api.admin,
            CONFIGURE,
            json!({"input": {"channelId": channel, "fields": fields(),
                "allowedOrigins": ["https://www.acme.test"], "honeypotField": "website"}}),
        )
        .await;
    let form = &set.data()["configureForm"]["channel"]["form"];
    form["publicKey"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", set.body))
        .to_owned()
}

#[tokio::test]
async fn admins_configure_a_form_and_only_they_read_it() {
    let api = TestApi::start().await;
    let agent = api.user("alice@acme.test", Role::Agent).await;
    let inbox = api.inbox("Website").await;
    api.run(Command::Setup(SetupCommand::AddInboxMember {
        inbox_id: inbox,
        member: Member::User { id: agent },
    }))
    .await;
    let channel = form_channel(&api, inbox).await;
    let input = json!({"input": {"channelId": channel, "fields": fields(),
        "allowedOrigins": ["HTTPS://www.acme.test/"], "honeypotField": "website"}});
    let set = api.gql(api.admin, CONFIGURE, input.clone()).await;
    let answer = &set.data()["configureForm"];
    assert_eq!(answer["userErrors"], json!([]), "{:?}", set.body);
    let form = &answer["channel"]["form"];
    let key = form["publicKey"].as_str().unwrap().to_owned();
    assert!(key.len() >= 22, "{key}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{key}"
    );
    assert_eq!(form["allowedOrigins"], json!(["https://www.acme.test"]));
    assert_eq!(form["honeypotField"], "website");
    assert_eq!(
        form["fields"][2],
        json!({"name": "topic", "label": "Topic", "kind": "SELECT", "required": false, "options": ["Sales", "Support"]})
    );
    assert_eq!(form["fields"][0]["kind"], "TEXT");

    // Configured again: the key stays.
    let again = api.gql(api.admin, CONFIGURE, input.clone()).await;
    assert_eq!(
        again.data()["configureForm"]["channel"]["form"]["publicKey"],
        key
    );

    // An agent may neither configure nor read it.
    let refused = api.gql(agent, CONFIGURE, input).await;
    assert_eq!(
        refused.error_code(),
        Some("FORBIDDEN"),
        "{:?}",
        refused.body
    );
    let read = "query($id: ID!) { node(id: $id) { ... on Channel { form { publicKey } } } }";
    let agents = api.gql(agent, read, json!({"id": channel})).await;
    assert_eq!(
        agents.data()["node"],
        json!({"form": null}),
        "{:?}",
        agents.body
    );
    let admins = api.gql(api.admin, read, json!({"id": channel})).await;
    assert_eq!(admins.data()["node"]["form"]["publicKey"], key);

    // A bad field is named by its index.
    let bad = api
        .gql(
            api.admin,
            CONFIGURE,
            json!({"input": {"channelId": channel, "fields": [
                {"name": "email", "kind": "EMAIL"}, {"name": "bad name"}]}}),
        )
        .await;
    assert_eq!(
        bad.data()["configureForm"]["userErrors"][0]["field"],
        json!(["input", "fields", "1", "name"]),
        "{:?}",
        bad.body
    );
    let no_email = api
        .gql(
            api.admin,
            CONFIGURE,
            json!({"input": {"channelId": channel, "fields": [{"name": "name"}]}}),
        )
        .await;
    assert_eq!(
        no_email.data()["configureForm"]["userErrors"][0]["field"],
        json!(["input", "fields"])
    );
    // Another kind of channel is refused.
    let inbox = api.inbox("Chat").await;
    let chat = api.chat_channel(inbox).await;
    let not_form = api
        .gql(
            api.admin,
            CONFIGURE,
            json!({"input": {"channelId": id(Kind::Channel, chat), "fields": fields()}}),
        )
        .await;
    assert_eq!(
        not_form.data()["configureForm"]["userErrors"][0]["code"],
        "NOT_FORM"
    );
}

const SITE: &str = "https://www.acme.test";

/// A `POST /forms/{key}` from `peer`, with `origin` if given.
fn post(
    key: &str,
    content_type: &str,
    body: impl Into<Body>,
    origin: Option<&str>,
    peer: &str,
) -> Request<Body> {
    let mut request = Request::post(format!("/forms/{key}")).header("content-type", content_type);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let mut request = request.body(body.into()).expect("request");
    let peer: SocketAddr = format!("{peer}:40000").parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

fn urlencoded(key: &str, body: &str) -> Request<Body> {
    post(
        key,
        "application/x-www-form-urlencoded",
        body.to_owned(),
        None,
        "192.0.2.1",
    )
}

/// A multipart body with `fields` and one file.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "form-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The conversation with its first timeline entries, once the read models show one.
async fn first_entry(api: &TestApi, conversation: &str) -> Value {
    seen_when(api, conversation, |_| true).await
}

/// The conversation with its first timeline entries, once they show one and `ready` holds.
async fn seen_when(api: &TestApi, conversation: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let query = "query($id: ID!) { conversation(id: $id) { subject contact { id name }
        timeline(first: 5) { nodes { kind subject bodyText
            attachments { fileName size sha256 downloadUrl } } } } }";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let read = api.gql(api.admin, query, json!({"id": conversation})).await;
        let found = &read.data()["conversation"];
        if found["timeline"]["nodes"]
            .as_array()
            .is_some_and(|nodes| !nodes.is_empty())
            && ready(found)
        {
            return found.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?}", read.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn conversation_of(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["conversationId"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", reply.body))
        .to_owned()
}

#[tokio::test]
async fn submissions_in_each_body_type_open_conversations_with_their_fields() {
    let api = TestApi::start().await;
    let key = configured_form(&api).await;

    let first = api
        .send(urlencoded(
            &key,
            "name=Ada+Lovelace&email=ada%40customer.test&topic=Sales&seats=20&newsletter=on&message=Hello%0Athere&website=",
        ))
        .await;
    let conversation = conversation_of(&first);
    let seen = first_entry(&api, &conversation).await;
    assert_eq!(seen["subject"], "Form: Contact us");
    let entry = &seen["timeline"]["nodes"][0];
    assert_eq!(
        entry["bodyText"],
        "Your name: Ada Lovelace\nYour e-mail: ada@customer.test\nTopic: Sales\nSeats: 20\n\
         Newsletter: yes\nMessage:\nHello\nthere"
    );

    // JSON, from the same address: the contact is recognised; a new conversation starts.
    let body =
        json!({"email": "ada@customer.test", "message": "Again", "seats": 3, "newsletter": false});
    let second = api
        .send(post(
            &key,
            "application/json",
            body.to_string(),
            Some(SITE),
            "192.0.2.2",
        ))
        .await;
    assert_eq!(
        second.headers["access-control-allow-origin"], SITE,
        "{:?}",
        second.headers
    );
    let again = conversation_of(&second);
    assert_ne!(again, conversation);
    let seen = seen_when(&api, &again, |c| c["contact"]["name"].is_string()).await;
    let contact = &seen["contact"];
    assert_eq!(contact["name"], "Ada Lovelace", "{seen:?}");
    assert_eq!(
        seen["timeline"]["nodes"][0]["bodyText"],
        "Your e-mail: ada@customer.test\nSeats: 3\nNewsletter: no\nMessage: Again"
    );

    // Multipart with a file: the file, byte for byte, through the timeline's link.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(3_000).collect();
    let (content_type, body) = multipart(
        &[
            ("email", "grace@customer.test"),
            ("message", "See attached"),
        ],
        Some(("C:\\Users\\ada\\notes.bin", &bytes)),
    );
    let third = api
        .send(post(&key, &content_type, body, None, "192.0.2.3"))
        .await;
    let seen = first_entry(&api, &conversation_of(&third)).await;
    let file = &seen["timeline"]["nodes"][0]["attachments"][0];
    assert_eq!(file["fileName"], "notes.bin", "{seen:?}");
    assert_eq!(file["size"], 3_000.0);
    let link = file["downloadUrl"].as_str().expect("a link");
    let response = api
        .router
        .clone()
        .oneshot(Request::get(link).body(Body::empty()).expect("request"))
        .await
        .expect("router never fails");
    assert_eq!(response.status(), StatusCode::OK);
    let got = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    assert_eq!(got.as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn a_name_of_invisible_characters_leaves_the_contact_made_without_one() {
    let api = TestApi::start().await;
    let key = configured_form(&api).await;
    let body = json!({"name": "\u{202E}\u{200F}", "email": "eve@customer.test", "message": "Hi"});
    let sent = api
        .send(post(
            &key,
            "application/json",
            body.to_string(),
            None,
            "192.0.2.9",
        ))
        .await;
    conversation_of(&sent);
    // The sender becomes a contact, known by the address, with no name.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let created = loop {
        let created = api.payloads("ContactRecordCreated").await;
        if !created.is_empty() {
            break created;
        }
        assert!(tokio::time::Instant::now() < deadline, "no contact made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(created.len(), 1, "{created:?}");
    let made = created[0].to_string();
    assert!(made.contains("eve@customer.test"), "{made}");
    assert!(
        !made.contains("\\u202e") && !made.contains('\u{202E}'),
        "{made}"
    );
}

#[tokio::test]
async fn bad_submissions_name_their_fields_and_write_nothing() {
    let api = TestApi::start().await;
    let key = configured_form(&api).await;
    let store = api.service.store().clone();
    let head = store.head().await.expect("head");

    let missing = api
        .send(urlencoded(&key, "email=not-an-address&topic=Other&emial=x"))
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = missing.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("a field"))
        .collect();
    assert_eq!(
        fields,
        ["emial", "email", "topic", "message"],
        "{:?}",
        missing.body
    );
    assert!(
        missing.body["errors"][1]["message"]
            .as_str()
            .unwrap()
            .contains("e-mail address")
    );

    let json = json!({"email": "ada@customer.test", "message": ["not", "text"], "seats": "many"});
    let wrong = api
        .send(post(
            &key,
            "application/json",
            json.to_string(),
            None,
            "192.0.2.9",
        ))
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        wrong.body["errors"],
        json!([
            {"field": "message", "message": "must be a string, a number or a boolean"},
            {"field": "seats", "message": "must be a number"},
            {"field": "message", "message": "is required"},
        ])
    );

    // A refused multipart submission leaves its file unstored too.
    let bytes = b"a file nobody should keep".to_vec();
    let (content_type, body) =
        multipart(&[("email", "ada@customer.test")], Some(("x.txt", &bytes)));
    let refused = api
        .send(post(&key, &content_type, body, None, "192.0.2.10"))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["errors"][0]["field"], "message");
    use sha2::Digest;
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    assert_eq!(store.blobs().get(&sha256).await.expect("blobs"), None);

    let unsupported = api
        .send(post(
            &key,
            "text/plain",
            "email=a@b.test",
            None,
            "192.0.2.11",
        ))
        .await;
    assert_eq!(unsupported.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(store.head().await.expect("head"), head);
}

#[tokio::test]
async fn the_honeypot_is_answered_like_success_and_unknown_forms_are_not_found() {
    let api = TestApi::start().await;
    let key = configured_form(&api).await;
    let store = api.service.store().clone();
    let head = store.head().await.expect("head");
    let bot = api
        .send(urlencoded(
            &key,
            "email=bot%40spam.test&message=Buy&website=http%3A%2F%2Fspam.test",
        ))
        .await;
    assert_eq!(bot.status, StatusCode::CREATED, "{:?}", bot.body);
    assert!(bot.body["conversationId"].is_string());
    assert_eq!(store.head().await.expect("head"), head);

    let unknown = api
        .send(urlencoded(
            "no-such-form-key-0123456789",
            "email=a%40b.test",
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(store.head().await.expect("head"), head);
}

#[tokio::test]
async fn cors_answers_only_the_forms_own_origins() {
    let api = TestApi::start().await;
    let key = configured_form(&api).await;
    let preflight = |origin: &str, key: &str| {
        Request::options(format!("/forms/{key}"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .body(Body::empty())
            .expect("request")
    };
    let allowed = api.send(preflight(SITE, &key)).await;
    assert_eq!(allowed.status, StatusCode::NO_CONTENT);
    assert_eq!(allowed.headers["access-control-allow-origin"], SITE);
    assert_eq!(allowed.headers["access-control-allow-methods"], "POST");
    assert!(
        allowed.headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("content-type")
    );
    let other = api.send(preflight("https://evil.test", &key)).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(!other.headers.contains_key("access-control-allow-origin"));
    let unknown = api
        .send(preflight(SITE, "no-such-form-key-0123456789"))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // A post from another site is refused and writes nothing.
    let head = api.service.store().head().await.expect("head");
    let body = json!({"email": "ada@customer.test", "message": "Hi"}).to_string();
    let refused = api
        .send(post(
            &key,
            "application/json",
            body,
            Some("https://evil.test"),
            "192.0.2.20",
        ))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!refused.headers.contains_key("access-control-allow-origin"));
    assert_eq!(api.service.store().head().await.expect("head"), head);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let api = TestApi::with_settings(ApiSettings {
        forms: FormLimits {
            per_address_per_minute: 1,
            per_address_burst: 2,
            per_form_per_minute: 1,
            per_form_burst: 3,
            ..FormLimits::default()
        },
        ..ApiSettings::new(SECRET)
    })
    .await;
    let key = configured_form(&api).await;
    let body = json!({"email": "ada@customer.test", "message": "Hi"}).to_string();
    let from = |peer: &str| post(&key, "application/json", body.clone(), None, peer);
    for _ in 0..2 {
        let taken = api.send(from("198.51.100.1")).await;
        assert_eq!(taken.status, StatusCode::CREATED, "{:?}", taken.body);
    }
    let limited = api.send(from("198.51.100.1")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    // Another address has its own allowance, until the form's own limit is reached.
    let other = api.send(from("198.51.100.2")).await;
    assert_eq!(other.status, StatusCode::CREATED, "{:?}", other.body);
    let form_limited = api.send(from("198.51.100.3")).await;
    assert_eq!(form_limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(form_limited.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn the_per_address_limit_counts_the_client_a_trusted_proxy_names() {
    let api = TestApi::with_settings(ApiSettings {
        forms: FormLimits {
            per_address_per_minute: 1,
            per_address_burst: 1,
            ..FormLimits::default()
        },
        trusted_proxies: TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("a network")]),
        ..ApiSettings::new(SECRET)
    })
    .await;
    let key = configured_form(&api).await;
    let body = json!({"email": "ada@customer.test", "message": "Hi"}).to_string();
    let from = |peer: &str, forwarded: &str| {
        let mut request = post(&key, "application/json", body.clone(), None, peer);
        let forwarded = forwarded.parse().expect("a header");
        request.headers_mut().insert("x-forwarded-for", forwarded);
        request
    };
    // Through the proxy, two clients each have their allowance, and the first is then over it.
    for client in ["198.51.100.1", "198.51.100.2"] {
        let taken = api.send(from("10.0.0.7", client)).await;
        assert_eq!(
            taken.status,
            StatusCode::CREATED,
            "{client}: {:?}",
            taken.body
        );
    }
    let limited = api.send(from("10.0.0.7", "198.51.100.1")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    // From anyone else the header is not believed: a new address written in it does not help.
    let taken = api.send(from("203.0.113.9", "198.51.100.3")).await;
    assert_eq!(taken.status, StatusCode::CREATED, "{:?}", taken.body);
    let forged = api.send(from("203.0.113.9", "198.51.100.4")).await;
    assert_eq!(forged.status, StatusCode::TOO_MANY_REQUESTS);
}

/// A reply to a form conversation is given e-mail headers (from the inbox's address, to the
/// submitted one), which is what the delivery worker sends.
#[tokio::test]
async fn replies_to_a_submission_go_out_by_email() {
    let api = TestApi::start().await;
    let key = configured_form(&api).await;
    let taken = api
        .send(urlencoded(&key, "email=ada%40customer.test&message=Hello"))
        .await;
    let conversation = conversation_of(&taken);
    first_entry(&api, &conversation).await;
    let reply = api
        .gql(
            api.admin,
            "mutation($id: ID!) { sendReply(input: {conversationId: $id, bodyText: \"Thanks!\"}) {
                userErrors { message } } }",
            json!({"id": conversation}),
        )
        .await;
    assert_eq!(
        reply.data()["sendReply"]["userErrors"],
        json!([]),
        "{:?}",
        reply.body
    );
    let seen = seen_when(&api, &conversation, |c| {
        c["timeline"]["nodes"]
            .as_array()
            .is_some_and(|nodes| nodes.len() >= 2)
    })
    .await;
    let sent = seen["timeline"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|entry| entry["bodyText"] == "Thanks!")
        .cloned()
        .unwrap_or_else(|| panic!("{seen:?}"));
    // Only a reply sent by e-mail has a subject.
    assert_eq!(sent["subject"], "Re: Form: Contact us", "{sent:?}");
}

#[tokio::test]
async fn submissions_over_the_size_limits_are_refused_with_413() {
    let api = TestApi::with_settings(ApiSettings {
        forms: FormLimits {
            max_body_bytes: 4_096,
            max_file_bytes: 1_024,
            max_files: 1,
            ..FormLimits::default()
        },
        ..ApiSettings::new(SECRET)
    })
    .await;
    let key = configured_form(&api).await;
    let head = api.service.store().head().await.expect("head");
    let fields = [("email", "ada@customer.test"), ("message", "Hi")];
    let (content_type, body) = multipart(&fields, Some(("big.bin", &[7u8; 2_000])));
    let big_file = api
        .send(post(&key, &content_type, body, None, "203.0.113.1"))
        .await;
    assert_eq!(
        big_file.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        big_file.body
    );
    let long = format!("email=ada%40customer.test&message={}", "x".repeat(5_000));
    let big_body = api
        .send(post(
            &key,
            "application/x-www-form-urlencoded",
            long,
            None,
            "203.0.113.2",
        ))
        .await;
    assert_eq!(big_body.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(api.service.store().head().await.expect("head"), head);

    // Many short names in a small body: refused by count, before any field is checked.
    let api = TestApi::start().await;
    let key = configured_form(&api).await;
    let names: Vec<String> = (0..5_000).map(|i| format!("f{i}=")).collect();
    let many = api
        .send(post(
            &key,
            "application/x-www-form-urlencoded",
            names.join("&"),
            None,
            "203.0.113.3",
        ))
        .await;
    assert_eq!(
        many.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        many.body
    );
}
