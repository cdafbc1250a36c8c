//! Website chat through the API: `configureChatWidget` (admins only), the visitor routes under
//! `/chat/{publicKey}` (tokens, own conversation only, CORS, rate and size limits that write
//! nothing), the visitor's WebSocket on a loopback port (messages both ways, resume after a
//! reconnect, comments never sent, typing signals), and the widget's script.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::{SinkExt, StreamExt};
use proto_events::event::{Availability, Member, Role};
use serde_json::{Value, json};
use switchboard_api::ids::{self, Kind};
use switchboard_api::{ApiSettings, ChatLimits, TrustedProxies};
use switchboard_domain::setup::SetupCommand;
use switchboard_service::Command;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

use crate::subscriptions::{Socket, connect, next, subscribe};
use crate::support::{Reply, SECRET, TestApi};

const SITE: &str = "https://www.acme.test";

const CONFIGURE: &str = "mutation($input: ConfigureChatWidgetInput!) {
    configureChatWidget(input: $input) {
        userErrors { field code message }
        channel { chatWidget { publicKey allowedOrigins teamName expectedReply } } } }";

/// A chat channel on a new inbox with `member` in it, its widget configured for [`SITE`];
/// `(inbox, channel, public key)`.
async fn widget(api: &TestApi, member: Option<Uuid>) -> (Uuid, Uuid, String) {
    let inbox = api.inbox("Website").await;
    if let Some(user) = member {
        api.run(Command::Setup(SetupCommand::AddInboxMember {
            inbox_id: inbox,
            member: Member::User { id: user },
        }))
        .await;
    }
    let channel = api.chat_channel(inbox).await;
    let set = api
        .gql(
            api.admin,
            CONFIGURE,
            json!({"input": {"channelId": ids::encode(Kind::Channel, channel).0,
                "allowedOrigins": [SITE], "teamName": "Acme Support"}}),
        )
        .await;
    let key = set.data()["configureChatWidget"]["channel"]["chatWidget"]["publicKey"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", set.body))
        .to_owned();
    (inbox, channel, key)
}

/// A request to `path` from [`SITE`], with a visitor's token if given.
fn request(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("origin", SITE);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}

/// A new visitor's token.
async fn visitor(api: &TestApi, key: &str) -> String {
    visitor_with_id(api, key).await.1
}

/// Sends `text` as the visitor of `token`.
async fn say(api: &TestApi, key: &str, token: &str, text: &str) -> Reply {
    api.send(request(
        "POST",
        &format!("/chat/{key}/messages"),
        Some(token),
        Some(json!({"text": text})),
    ))
    .await
}

/// Posts `details` (an e-mail address, a name) as the visitor of `token`.
async fn leave(api: &TestApi, key: &str, token: &str, details: Value) -> Reply {
    api.send(request(
        "POST",
        &format!("/chat/{key}/contact"),
        Some(token),
        Some(details),
    ))
    .await
}

/// The texts the visitor of `token` reads.
async fn texts(api: &TestApi, key: &str, token: &str) -> Vec<String> {
    let reply = api
        .send(request(
            "GET",
            &format!("/chat/{key}/messages"),
            Some(token),
            None,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The store's head: unchanged by a refused request.
async fn head(api: &TestApi) -> u64 {
    api.service.store().head().await.expect("head").0
}

#[tokio::test]
async fn admins_configure_a_chat_widget_which_keeps_its_key() {
    let api = TestApi::start().await;
    let agent = api.user("alice@acme.test", Role::Agent).await;
    let inbox = api.inbox("Website").await;
    let channel = ids::encode(Kind::Channel, api.chat_channel(inbox).await).0;
    let input = json!({"input": {"channelId": channel, "allowedOrigins": ["HTTPS://www.acme.test/"],
        "teamName": " Acme Support ", "expectedReply": "Within an hour"}});
    let set = api.gql(api.admin, CONFIGURE, input.clone()).await;
    let answer = &set.data()["configureChatWidget"];
    assert_eq!(answer["userErrors"], json!([]), "{:?}", set.body);
    let widget = &answer["channel"]["chatWidget"];
    let key = widget["publicKey"].as_str().unwrap().to_owned();
    assert!(key.len() >= 22, "{key}");
    assert_eq!(widget["allowedOrigins"], json!([SITE]));
    assert_eq!(widget["teamName"], "Acme Support");
    assert_eq!(widget["expectedReply"], "Within an hour");
    let again = api.gql(api.admin, CONFIGURE, input.clone()).await;
    assert_eq!(
        again.data()["configureChatWidget"]["channel"]["chatWidget"]["publicKey"],
        key
    );

    let refused = api.gql(agent, CONFIGURE, input).await;
    assert_eq!(
        refused.error_code(),
        Some("FORBIDDEN"),
        "{:?}",
        refused.body
    );

    let before = head(&api).await;
    let bad = api
        .gql(
            api.admin,
            CONFIGURE,
            json!({"input": {"channelId": channel, "allowedOrigins": ["ftp://acme.test"],
                "teamName": "Acme"}}),
        )
        .await;
    assert_eq!(
        bad.data()["configureChatWidget"]["userErrors"][0]["field"],
        json!(["input", "allowedOrigins", "0"]),
        "{:?}",
        bad.body
    );
    assert_eq!(
        head(&api).await,
        before,
        "a refused configuration writes nothing"
    );
}

#[tokio::test]
async fn a_visitor_reads_and_writes_only_their_own_conversation() {
    let api = TestApi::start().await;
    let (_, _, key) = widget(&api, None).await;
    let (_, _, other_key) = widget(&api, None).await;
    let ada = visitor(&api, &key).await;
    let bob = visitor(&api, &key).await;

    let sent = say(&api, &key, &ada, "Hello, I am Ada").await;
    assert_eq!(sent.status, StatusCode::CREATED, "{:?}", sent.body);
    assert!(sent.body["seq"].as_u64().is_some(), "{:?}", sent.body);
    assert_eq!(texts(&api, &key, &ada).await, ["Hello, I am Ada"]);
    assert!(texts(&api, &key, &bob).await.is_empty());
    let said = say(&api, &key, &bob, "Bob here").await;
    assert_eq!(said.status, StatusCode::CREATED);
    assert_eq!(texts(&api, &key, &ada).await, ["Hello, I am Ada"]);
    assert_eq!(texts(&api, &key, &bob).await, ["Bob here"]);
    // Reading after the last possible position reads nothing (and does not overflow).
    let past = format!("/chat/{key}/messages?after={}", u64::MAX);
    let nothing = api.send(request("GET", &past, Some(&ada), None)).await;
    assert_eq!(nothing.status, StatusCode::OK, "{:?}", nothing.body);
    assert_eq!(nothing.body["messages"], json!([]));

    // A token belongs to its channel; a forged or missing one names nobody.
    let path = format!("/chat/{other_key}/messages");
    let moved = api.send(request("GET", &path, Some(&ada), None)).await;
    assert_eq!(moved.status, StatusCode::UNAUTHORIZED, "{:?}", moved.body);
    let mut forged = ada.clone().into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let path = format!("/chat/{key}/messages");
    let refused = api.send(request("GET", &path, Some(&forged), None)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let before = head(&api).await;
    let refused = say(&api, &key, &forged, "Not me").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let anonymous = api.send(request("GET", &path, None, None)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(head(&api).await, before);

    // An unknown widget.
    let unknown = api
        .send(request(
            "GET",
            "/chat/no-such-key-at-all-here/messages",
            Some(&ada),
            None,
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn foreign_origins_and_bad_bodies_are_refused_and_write_nothing() {
    let api = TestApi::start().await;
    let (_, _, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;
    let before = head(&api).await;

    // CORS: the allowed origin is named; another is refused.
    let preflight = api
        .send(request(
            "OPTIONS",
            &format!("/chat/{key}/messages"),
            None,
            None,
        ))
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers["access-control-allow-origin"], SITE,
        "{:?}",
        preflight.headers
    );
    let foreign = Request::post(format!("/chat/{key}/messages"))
        .header("origin", "https://evil.test")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"text": "hi"}).to_string()))
        .unwrap();
    let refused = api.send(foreign).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.headers.get("access-control-allow-origin").is_none());

    // Fields at fault are named.
    let long = "x".repeat(ChatLimits::default().max_message_chars + 1);
    let too_long = say(&api, &key, &token, &long).await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        too_long.body["errors"][0]["field"], "text",
        "{:?}",
        too_long.body
    );
    let empty = say(&api, &key, &token, "   ").await;
    assert_eq!(empty.body["errors"][0]["field"], "text");
    let bad_email = leave(&api, &key, &token, json!({"email": "not an address"})).await;
    assert_eq!(bad_email.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_email.body["errors"][0]["field"], "email");

    // A body over the limit.
    let huge = json!({"text": "y".repeat(ChatLimits::default().max_body_bytes)});
    let too_large = api
        .send(request(
            "POST",
            &format!("/chat/{key}/messages"),
            Some(&token),
            Some(huge),
        ))
        .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        too_large.body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("at most"),
        "{:?}",
        too_large.body
    );
    assert_eq!(head(&api).await, before, "refused requests write nothing");
}

#[tokio::test]
async fn a_visitor_over_the_rate_limit_gets_429() {
    let api = TestApi::with_settings(ApiSettings {
        chat: ChatLimits {
            per_visitor_per_minute: 1,
            per_visitor_burst: 2,
            ..ChatLimits::default()
        },
        ..ApiSettings::new(SECRET)
    })
    .await;
    let (_, _, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;
    for text in ["one", "two"] {
        assert_eq!(
            say(&api, &key, &token, text).await.status,
            StatusCode::CREATED
        );
    }
    let before = head(&api).await;
    let limited = say(&api, &key, &token, "three").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(head(&api).await, before);
    // Reading counts too: polling cannot read the store as fast as it likes.
    let read = api
        .send(request(
            "GET",
            &format!("/chat/{key}/messages"),
            Some(&token),
            None,
        ))
        .await;
    assert_eq!(
        read.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        read.body
    );
    assert!(read.headers.contains_key("retry-after"));
    // Another visitor has a limit of their own.
    let other = visitor(&api, &key).await;
    assert_eq!(
        say(&api, &key, &other, "hi").await.status,
        StatusCode::CREATED
    );
}

/// `POST /chat/{key}/visitors` over a connection from `peer` with `X-Forwarded-For:
/// forwarded`; its status.
async fn new_visitor_from(api: &TestApi, key: &str, peer: &str, forwarded: &str) -> StatusCode {
    let mut request = request("POST", &format!("/chat/{key}/visitors"), None, None);
    let peer = std::net::SocketAddr::new(peer.parse().expect("an address"), 40_000);
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    request
        .headers_mut()
        .insert("x-forwarded-for", forwarded.parse().expect("a header"));
    api.send(request).await.status
}

#[tokio::test]
async fn per_address_limits_believe_x_forwarded_for_from_trusted_proxies_only() {
    let api = TestApi::with_settings(ApiSettings {
        chat: ChatLimits {
            per_address_per_minute: 1,
            per_address_burst: 1,
            ..ChatLimits::default()
        },
        trusted_proxies: TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("a network")]),
        ..ApiSettings::new(SECRET)
    })
    .await;
    let (_, _, key) = widget(&api, None).await;
    // From a peer that is not a trusted proxy, a forged header changes nothing: its second
    // request is over the one request its address may make.
    let untrusted = "203.0.113.9";
    let created = new_visitor_from(&api, &key, untrusted, "198.51.100.1").await;
    assert_eq!(created, StatusCode::CREATED);
    let forged = new_visitor_from(&api, &key, untrusted, "198.51.100.2").await;
    assert_eq!(forged, StatusCode::TOO_MANY_REQUESTS);
    // Through the trusted proxy each client is counted on its own, by the rightmost entry the
    // proxy appended, never by what the client wrote left of it.
    let proxy = "10.0.0.7";
    for client in ["198.51.100.1", "198.51.100.2"] {
        let created = new_visitor_from(&api, &key, proxy, client).await;
        assert_eq!(created, StatusCode::CREATED, "{client}");
    }
    let again = new_visitor_from(&api, &key, proxy, "192.0.2.50, 198.51.100.1").await;
    assert_eq!(again, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_widget_shows_the_team_and_whether_someone_is_available() {
    let api = TestApi::start().await;
    let agent = api.user("alice@acme.test", Role::Agent).await;
    let (_, _, key) = widget(&api, Some(agent)).await;
    let info = api
        .send(request("GET", &format!("/chat/{key}"), None, None))
        .await;
    assert_eq!(
        info.body["available"], false,
        "users start away: {:?}",
        info.body
    );
    api.run(Command::Setup(SetupCommand::SetAvailability {
        user_id: agent,
        availability: Availability::Available,
    }))
    .await;
    let info = api
        .send(request("GET", &format!("/chat/{key}"), None, None))
        .await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(info.body["teamName"], "Acme Support");
    assert_eq!(info.body["available"], true, "{:?}", info.body);
    assert_eq!(info.body["askEmail"], false);

    api.run(Command::Setup(SetupCommand::SetAvailability {
        user_id: agent,
        availability: Availability::Away,
    }))
    .await;
    let info = api
        .send(request("GET", &format!("/chat/{key}"), None, None))
        .await;
    assert_eq!(info.body["available"], false, "{:?}", info.body);
    assert_eq!(info.body["askEmail"], true);
    // The inbox has an address to send from (its fallback address): e-mail is promised.
    assert!(
        info.body["expectedReply"]
            .as_str()
            .is_some_and(|said| said.contains("the answer will reach you there")),
        "{:?}",
        info.body
    );

    // The visitor leaves an address (after their first message): kept as an unverified claim
    // on a contact known by their visitor id, never as the contact's identity.
    let (ada_id, token) = visitor_with_id(&api, &key).await;
    let early = leave(&api, &key, &token, json!({"email": "ada@customer.test"})).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{:?}", early.body);
    assert_eq!(
        say(&api, &key, &token, "Hello?").await.status,
        StatusCode::CREATED
    );
    let left = leave(
        &api,
        &key,
        &token,
        json!({"email": "Ada@Customer.test", "name": "Ada"}),
    )
    .await;
    assert_eq!(left.status, StatusCode::ACCEPTED, "{:?}", left.body);
    assert_eq!(left.body, json!({"received": true}));
    let ada = contact_of_visitor(&api, &ada_id, |c| {
        c["properties"].to_string().contains("ada@customer.test")
    })
    .await;
    assert_eq!(ada["name"], "Ada");
    assert!(
        !ada["identities"].to_string().contains("EMAIL"),
        "the address is no identity: {ada}"
    );
    let by_address = api
        .gql(
            api.admin,
            "{ contactByIdentity(identity: {kind: EMAIL, value: \"ada@customer.test\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(by_address.data()["contactByIdentity"], Value::Null);

    // An address a known contact holds is answered the same, and stays that contact's alone.
    api.run(Command::CreateContact {
        contact_id: Uuid::now_v7(),
        identities: vec![proto_events::event::Identity::Email {
            address: "known@customer.test".to_owned(),
        }],
        properties: Default::default(),
        from_conversation: None,
    })
    .await;
    let known = leave(&api, &key, &token, json!({"email": "known@customer.test"})).await;
    assert_eq!(
        (known.status, &known.body),
        (left.status, &left.body),
        "a known address is answered like any other"
    );
    let ada = contact_of_visitor(&api, &ada_id, |c| {
        c["properties"].to_string().contains("known@customer.test")
    })
    .await;
    assert_eq!(ada["name"], "Ada", "{ada}");
    let holder = api
        .gql(
            api.admin,
            "{ contactByIdentity(identity: {kind: EMAIL, value: \"known@customer.test\"}) {
                identities { kind } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        holder.data()["contactByIdentity"]["identities"],
        json!([{"kind": "EMAIL"}]),
        "{:?}",
        holder.body
    );
}

#[tokio::test]
async fn an_address_left_again_or_already_collected_is_answered_202() {
    let api = TestApi::start().await;
    let (_, channel, key) = widget(&api, None).await;
    // A double submit: the second changes nothing, and is answered the same.
    let (_, token) = visitor_with_id(&api, &key).await;
    assert_eq!(
        say(&api, &key, &token, "Hi").await.status,
        StatusCode::CREATED
    );
    for attempt in ["first", "second"] {
        let left = leave(&api, &key, &token, json!({"email": "twice@customer.test"})).await;
        assert_eq!(
            left.status,
            StatusCode::ACCEPTED,
            "{attempt}: {:?}",
            left.body
        );
        assert_eq!(left.body, json!({"received": true}));
    }

    // The bot collected the address (another contact holds it, so it is the visitor's claim),
    // then the visitor leaves it in the form too.
    api.run(Command::CreateContact {
        contact_id: Uuid::now_v7(),
        identities: vec![proto_events::event::Identity::Email {
            address: "held@customer.test".to_owned(),
        }],
        properties: Default::default(),
        from_conversation: None,
    })
    .await;
    let (bob_id, token) = visitor_with_id(&api, &key).await;
    assert_eq!(
        say(&api, &key, &token, "Hi").await.status,
        StatusCode::CREATED
    );
    let conversation = switchboard_service::chat_conversation_id(channel, &bob_id);
    api.run(Command::CreateContact {
        contact_id: switchboard_service::bot::contact_for(conversation),
        identities: vec![proto_events::event::Identity::ChatVisitor {
            visitor_id: bob_id.clone(),
        }],
        properties: [("claimed_email".to_owned(), "held@customer.test".to_owned())]
            .into_iter()
            .collect(),
        from_conversation: Some(conversation),
    })
    .await;
    let left = leave(&api, &key, &token, json!({"email": "held@customer.test"})).await;
    assert_eq!(left.status, StatusCode::ACCEPTED, "{:?}", left.body);
    assert_eq!(left.body, json!({"received": true}));
}

#[tokio::test]
async fn an_address_is_never_written_onto_a_customer_an_agent_linked_the_visitor_to() {
    let api = TestApi::start().await;
    let (_, _, key) = widget(&api, None).await;
    let (visitor_id, token) = visitor_with_id(&api, &key).await;
    assert_eq!(
        say(&api, &key, &token, "Hi").await.status,
        StatusCode::CREATED
    );
    // An agent recognised the visitor: their visitor id is on a real customer's contact.
    let customer = Uuid::now_v7();
    api.run(Command::CreateContact {
        contact_id: customer,
        identities: vec![
            proto_events::event::Identity::Email {
                address: "real@customer.test".to_owned(),
            },
            proto_events::event::Identity::ChatVisitor {
                visitor_id: visitor_id.clone(),
            },
        ],
        properties: Default::default(),
        from_conversation: None,
    })
    .await;
    let written = || async {
        api.service
            .store()
            .read_stream(
                &proto_events::streams::contact(customer),
                switchboard_store::Direction::Forwards,
                switchboard_store::StreamFrom::Start,
                100,
            )
            .await
            .expect("read the stream")
            .len()
    };
    let before = written().await;
    let left = leave(&api, &key, &token, json!({"email": "other@customer.test"})).await;
    assert_eq!(left.status, StatusCode::ACCEPTED, "{:?}", left.body);
    assert_eq!(left.body, json!({"received": true}));
    // The answer comes after the commands: nothing was added to the customer's stream.
    assert_eq!(
        written().await,
        before,
        "the customer's contact was written"
    );
}

/// A new visitor's id and token.
async fn visitor_with_id(api: &TestApi, key: &str) -> (String, String) {
    let reply = api
        .send(request(
            "POST",
            &format!("/chat/{key}/visitors"),
            None,
            None,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let field = |name: &str| reply.body[name].as_str().expect(name).to_owned();
    (field("visitorId"), field("token"))
}

/// The contact known by the visitor id, once the read model shows it as `ready` says.
async fn contact_of_visitor(
    api: &TestApi,
    visitor_id: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = api
            .gql(
                api.admin,
                "query($id: String!) { contactByIdentity(identity: {kind: CHAT_VISITOR, value: $id}) {
                    name properties { name value } identities { kind value } } }",
                json!({"id": visitor_id}),
            )
            .await;
        let contact = &found.data()["contactByIdentity"];
        if !contact.is_null() && ready(contact) {
            return contact.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?}", found.body);
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn the_widget_script_is_small_javascript() {
    let api = TestApi::start().await;
    let reply = api
        .send(Request::get("/widget/v1.js").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .content_type()
            .unwrap_or_default()
            .starts_with("text/javascript"),
        "{:?}",
        reply.headers
    );
    let size = reply.body.as_str().map_or(0, str::len);
    assert!(size > 1_000, "the script is there ({size} bytes)");
    assert!(size < 40 * 1024, "the script is under 40 KB ({size} bytes)");
}

/// Opens the visitor's socket, from `origin`, resuming after `after`.
async fn live(
    addr: std::net::SocketAddr,
    key: &str,
    token: &str,
    after: u64,
    origin: &str,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let url = format!("ws://{addr}/chat/{key}/live?token={token}&after={after}");
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("origin", origin.parse().expect("origin"));
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// The next frame of `type_` (others skipped).
async fn frame(socket: &mut Socket, type_: &str) -> Value {
    loop {
        let message = next(socket).await.expect("a frame");
        if message["type"] == type_ {
            return message;
        }
    }
}

/// Runs `field` (`sendReply` or `addComment`) on `conversation` as the admin, with `text`.
async fn write(api: &TestApi, field: &str, conversation: &str, text: &str) {
    let done = api
        .gql(
            api.admin,
            &format!(
                "mutation($id: ID!, $text: String!) {{ {field}(input: {{conversationId: $id, bodyText: $text}}) {{
                    userErrors {{ message }} }} }}"
            ),
            json!({"id": conversation, "text": text}),
        )
        .await;
    assert_eq!(
        done.data()[field]["userErrors"],
        json!([]),
        "{:?}",
        done.body
    );
}

/// Replies to `conversation` as the admin.
async fn reply(api: &TestApi, conversation: &str, text: &str) {
    write(api, "sendReply", conversation, text).await;
}

/// Adds an internal comment to `conversation` as the admin.
async fn comment(api: &TestApi, conversation: &str, text: &str) {
    write(api, "addComment", conversation, text).await;
}

/// The visitor's conversation's global id, once the thread view has it.
async fn conversation_of(api: &TestApi, channel: Uuid) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = api
            .gql(
                api.admin,
                "{ conversations(first: 5) { nodes { id channel { id } } } }",
                json!({}),
            )
            .await;
        let channel_id = ids::encode(Kind::Channel, channel).0;
        if let Some(id) = found.data()["conversations"]["nodes"]
            .as_array()
            .and_then(|nodes| {
                nodes
                    .iter()
                    .find(|n| n["channel"]["id"] == channel_id.as_str())
            })
            .and_then(|n| n["id"].as_str())
        {
            return id.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no conversation: {:?}",
            found.body
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn the_live_socket_carries_messages_both_ways_never_comments_and_resumes_exactly() {
    let api = TestApi::start().await;
    let addr = api.serve().await;
    let (_, channel, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;

    let mut socket = live(addr, &key, &token, 0, SITE)
        .await
        .expect("socket opens");
    socket
        .send(Message::text(
            json!({"type": "message", "text": "Is anyone there?", "clientId": "c1"}).to_string(),
        ))
        .await
        .unwrap();
    let ack = frame(&mut socket, "ack").await;
    assert_eq!(ack["clientId"], "c1");
    let first_seq = ack["seq"].as_u64().expect("a seq");
    let echoed = frame(&mut socket, "message").await;
    assert_eq!(echoed["from"], "visitor");
    assert_eq!(echoed["text"], "Is anyone there?");
    assert_eq!(echoed["seq"], first_seq);
    // The echo names the message's clientId: the widget knows its own by it, never by its text.
    assert_eq!(echoed["clientId"], "c1", "{echoed}");

    let conversation = conversation_of(&api, channel).await;
    comment(&api, &conversation, "internal: VIP customer").await;
    reply(&api, &conversation, "Yes, how can I help?").await;
    let answer = frame(&mut socket, "message").await;
    assert_eq!(answer["from"], "team", "{answer}");
    assert_eq!(answer["text"], "Yes, how can I help?");
    assert_eq!(answer["author"], "Ada Admin");
    assert!(answer.get("clientId").is_none(), "{answer}");
    let seen = answer["seq"].as_u64().expect("a seq");

    // The same clientId again is the same message: acknowledged, nothing new.
    socket
        .send(Message::text(
            json!({"type": "message", "text": "Is anyone there?", "clientId": "c1"}).to_string(),
        ))
        .await
        .unwrap();
    let repeat = frame(&mut socket, "ack").await;
    assert_eq!(repeat["id"], ack["id"]);
    assert_eq!(repeat["seq"], Value::Null);
    socket.close(None).await.unwrap();

    // While the visitor is away: two replies and a comment.
    reply(&api, &conversation, "Are you still there?").await;
    comment(&api, &conversation, "internal: they left").await;
    reply(&api, &conversation, "We will answer by e-mail.").await;

    let mut socket = live(addr, &key, &token, seen, SITE)
        .await
        .expect("socket reopens");
    let mut missed = Vec::new();
    for _ in 0..2 {
        let message = frame(&mut socket, "message").await;
        missed.push(message["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        missed,
        ["Are you still there?", "We will answer by e-mail."]
    );
    // Nothing else was owed: the next frame is the answer to a new message.
    socket
        .send(Message::text(
            json!({"type": "message", "text": "Thanks"}).to_string(),
        ))
        .await
        .unwrap();
    let following = next(&mut socket).await.expect("a frame");
    assert!(
        following["type"] == "ack" || following["text"] == "Thanks",
        "nothing but the new message follows: {following}"
    );

    // Over HTTP the visitor reads the same: never a comment.
    let all = texts(&api, &key, &token).await;
    assert!(all.iter().all(|t| !t.contains("internal")), "{all:?}");
    assert_eq!(all.len(), 5, "{all:?}");

    // Replayed from the stream, the visitor's message names its clientId still; one sent without
    // a clientId names none.
    let mut socket = live(addr, &key, &token, 0, SITE)
        .await
        .expect("socket reopens");
    let replayed = frame(&mut socket, "message").await;
    assert_eq!(replayed["text"], "Is anyone there?");
    assert_eq!(replayed["clientId"], "c1", "{replayed}");
    let thanks = loop {
        let message = frame(&mut socket, "message").await;
        if message["text"] == "Thanks" {
            break message;
        }
    };
    assert!(thanks.get("clientId").is_none(), "{thanks}");
}

#[tokio::test]
async fn the_socket_refuses_foreign_origins_and_bad_tokens() {
    let api = TestApi::start().await;
    let addr = api.serve().await;
    let (_, _, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;
    let status = |result: Result<Socket, tokio_tungstenite::tungstenite::Error>| match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Some(response.status()),
        _ => None,
    };
    assert_eq!(
        status(live(addr, &key, &token, 0, "https://evil.test").await),
        Some(StatusCode::FORBIDDEN)
    );
    assert_eq!(
        status(live(addr, &key, "not-a-token", 0, SITE).await),
        Some(StatusCode::UNAUTHORIZED)
    );
    assert!(live(addr, &key, &token, 0, SITE).await.is_ok());
}

#[tokio::test]
async fn the_socket_names_the_field_at_fault_and_drops_oversized_frames_writing_nothing() {
    let api = TestApi::start().await;
    let addr = api.serve().await;
    let (_, _, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;
    let mut socket = live(addr, &key, &token, 0, SITE).await.expect("socket");
    let before = head(&api).await;
    let long = "x".repeat(ChatLimits::default().max_message_chars + 1);
    socket
        .send(Message::text(
            json!({"type": "message", "text": long, "clientId": "long"}).to_string(),
        ))
        .await
        .unwrap();
    let refused = frame(&mut socket, "error").await;
    assert_eq!(refused["clientId"], "long");
    assert_eq!(refused["field"], "text", "{refused}");
    socket
        .send(Message::text("not json".to_owned()))
        .await
        .unwrap();
    assert_eq!(frame(&mut socket, "error").await["code"], "BAD_FRAME");

    // A frame over the body limit ends the connection.
    let huge = "y".repeat(ChatLimits::default().max_body_bytes + 1);
    let _ = socket.send(Message::text(huge)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the connection stayed open after an oversized frame"),
        }
    }
    assert_eq!(head(&api).await, before, "refused frames write nothing");
}

/// A visitor who said hello, with their socket open, and the `chatTyping` subscription to their
/// conversation of `agent` (a member of the chat's inbox), or of the admin:
/// `(inbox, conversation, visitor's socket, agent's connection)`.
async fn typing_between(
    api: &TestApi,
    addr: std::net::SocketAddr,
    agent: Option<Uuid>,
) -> (Uuid, String, Socket, Socket) {
    let (inbox, channel, key) = widget(api, agent).await;
    let token = visitor(api, &key).await;
    assert_eq!(
        say(api, &key, &token, "Hello").await.status,
        StatusCode::CREATED
    );
    let conversation = conversation_of(api, channel).await;
    let mut visitor_socket = live(addr, &key, &token, 0, SITE).await.expect("socket");
    frame(&mut visitor_socket, "message").await;
    let bearer = format!("Bearer {}", api.token(agent.unwrap_or(api.admin)));
    let mut agent = connect(addr, json!({"Authorization": bearer})).await;
    assert_eq!(
        next(&mut agent).await.expect("ack")["type"],
        "connection_ack"
    );
    subscribe(
        &mut agent,
        "1",
        "subscription($id: ID!) { chatTyping(conversationId: $id) { conversationId typing } }",
        json!({"id": conversation}),
    )
    .await;
    (inbox, conversation, visitor_socket, agent)
}

/// Sends the visitor's typing signal `on` every `every` until the agent is told one (the
/// subscription may start after the first); the update.
async fn typed_until_told(
    visitor_socket: &mut Socket,
    agent: &mut Socket,
    on: bool,
    every: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        visitor_socket
            .send(Message::text(
                json!({"type": "typing", "typing": on}).to_string(),
            ))
            .await
            .expect("the visitor's socket takes a frame");
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(every, agent.next()).await {
            return serde_json::from_str::<Value>(&text).expect("JSON");
        }
        assert!(tokio::time::Instant::now() < deadline, "no typing signal");
    }
}

#[tokio::test]
async fn typing_signals_reach_agents_and_visitors_without_events() {
    let api = TestApi::start().await;
    let addr = api.serve().await;
    let (_, conversation, mut visitor_socket, mut agent) = typing_between(&api, addr, None).await;
    let before = head(&api).await;
    let update = typed_until_told(
        &mut visitor_socket,
        &mut agent,
        true,
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(
        update["payload"]["data"]["chatTyping"]["typing"], true,
        "{update}"
    );

    let typed = api
        .gql(
            api.admin,
            "mutation($id: ID!) { setChatTyping(input: {conversationId: $id, typing: true}) { conversationId } }",
            json!({"id": conversation}),
        )
        .await;
    assert_eq!(
        typed.data()["setChatTyping"]["conversationId"],
        conversation.as_str()
    );
    let signal = frame(&mut visitor_socket, "typing").await;
    assert_eq!(signal["typing"], true);
    assert_eq!(head(&api).await, before, "typing writes no event");
}

#[tokio::test]
async fn an_agent_who_loses_access_is_sent_no_more_typing_and_their_subscription_ends() {
    // Removed from the inbox, or the inbox restricted to a team they are not in.
    for restrict in [false, true] {
        let api = TestApi::start().await;
        let addr = api.serve().await;
        let agent = api.user("agent@acme.test", Role::Agent).await;
        let (inbox, _, mut visitor_socket, mut socket) =
            typing_between(&api, addr, Some(agent)).await;
        let told = typed_until_told(
            &mut visitor_socket,
            &mut socket,
            true,
            Duration::from_millis(1_100),
        )
        .await;
        assert_eq!(
            told["payload"]["data"]["chatTyping"]["typing"], true,
            "{told}"
        );

        if restrict {
            let team_id = Uuid::now_v7();
            api.run(Command::Setup(SetupCommand::CreateTeam {
                team_id,
                name: "Tier 2".into(),
            }))
            .await;
            api.run(Command::Setup(SetupCommand::RestrictInbox {
                inbox_id: inbox,
                team_ids: vec![team_id],
            }))
            .await;
        } else {
            api.run(Command::Setup(SetupCommand::RemoveInboxMember {
                inbox_id: inbox,
                member: Member::User { id: agent },
            }))
            .await;
        }
        // The visitor's next signal is checked against the agent's access now: not sent, and
        // the subscription ends.
        let ended = typed_until_told(
            &mut visitor_socket,
            &mut socket,
            false,
            Duration::from_millis(1_100),
        )
        .await;
        assert_eq!(ended["type"], "next", "restricted: {restrict}: {ended}");
        assert!(
            ended["payload"]["data"].is_null(),
            "restricted: {restrict}: {ended}"
        );
        assert_eq!(
            ended["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{ended}"
        );
        let complete = next(&mut socket).await.expect("a frame");
        assert_eq!(complete["type"], "complete", "{complete}");
    }
}

#[tokio::test]
async fn bursts_of_seen_frames_are_recorded_once_a_window_losing_none_and_seen_again_write_nothing()
{
    let api = TestApi::with_settings(chat_settings(ChatLimits::default())).await;
    let addr = api.serve().await;
    let (_, channel, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;
    assert_eq!(
        say(&api, &key, &token, "Hello?").await.status,
        StatusCode::CREATED
    );
    let conversation = conversation_of(&api, channel).await;
    let mut socket = live(addr, &key, &token, 0, SITE).await.expect("socket");
    const REPLIES: usize = 100;
    for n in 0..REPLIES {
        reply(&api, &conversation, &format!("Reply {n}")).await;
    }
    let mut shown = Vec::new();
    while shown.len() < REPLIES {
        let message = frame(&mut socket, "message").await;
        if message["from"] == "team" {
            shown.push(message["id"].as_str().expect("an id").to_owned());
        }
    }
    // A hundred frames, each naming a reply not named before, in ten bursts; after each, a
    // message's acknowledgement shows the socket has taken the burst. Recorded one command a
    // window (3 s): in one or two events while that lasts, and none of the replies lost.
    let started = tokio::time::Instant::now();
    for (burst, ids) in shown.chunks(10).enumerate() {
        for id in ids {
            socket
                .send(Message::text(
                    json!({"type": "seen", "ids": [id]}).to_string(),
                ))
                .await
                .expect("sent");
        }
        let client_id = format!("burst-{burst}");
        socket
            .send(Message::text(
                json!({"type": "message", "text": "Thanks", "clientId": client_id}).to_string(),
            ))
            .await
            .expect("sent");
        while frame(&mut socket, "ack").await["clientId"] != client_id.as_str() {}
    }
    let windows = 1 + started.elapsed().as_secs() / 3;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = api.payloads("ChatRepliesSeen").await;
        let seen: std::collections::HashSet<&str> = events
            .iter()
            .flat_map(|e| e["message_ids"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        if seen.len() == REPLIES {
            break events.len();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {REPLIES} replies recorded seen, in {} events",
            seen.len(),
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        events as u64 <= windows + 1,
        "{events} events for bursts within {windows} windows"
    );

    // The same acknowledgements again record nothing; the next reply seen is one event of its own.
    for id in &shown {
        socket
            .send(Message::text(
                json!({"type": "seen", "ids": [id]}).to_string(),
            ))
            .await
            .expect("sent");
    }
    reply(&api, &conversation, "One more").await;
    let last = loop {
        let message = frame(&mut socket, "message").await;
        if message["from"] == "team" {
            break message["id"].clone();
        }
    };
    socket
        .send(Message::text(
            json!({"type": "seen", "ids": [last]}).to_string(),
        ))
        .await
        .expect("sent");
    let recorded = recorded(&api, "ChatRepliesSeen", events + 1).await;
    assert_eq!(recorded.len(), events + 1, "{recorded:?}");
    assert_eq!(recorded[events]["message_ids"], json!([last]));
}

#[tokio::test]
async fn a_shutdown_records_the_last_seen_acknowledgements_before_it_finishes() {
    let api = TestApi::with_settings(chat_settings(ChatLimits::default())).await;
    let addr = api.serve().await;
    let (_, channel, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;
    assert_eq!(
        say(&api, &key, &token, "Hello?").await.status,
        StatusCode::CREATED
    );
    let conversation = conversation_of(&api, channel).await;
    let mut socket = live(addr, &key, &token, 0, SITE).await.expect("socket");
    reply(&api, &conversation, "First").await;
    reply(&api, &conversation, "Second").await;
    let mut shown = Vec::new();
    while shown.len() < 2 {
        let message = frame(&mut socket, "message").await;
        if message["from"] == "team" {
            shown.push(message["id"].clone());
        }
    }
    // The first acknowledgement opens a window of 3 s; the second waits for its end.
    for (n, id) in shown.iter().enumerate() {
        socket
            .send(Message::text(
                json!({"type": "seen", "ids": [id]}).to_string(),
            ))
            .await
            .expect("sent");
        if n == 0 {
            recorded(&api, "ChatRepliesSeen", 1).await;
        }
    }
    // A message's acknowledgement shows the socket has taken the second `seen` frame.
    socket
        .send(Message::text(
            json!({"type": "message", "text": "Thanks", "clientId": "last"}).to_string(),
        ))
        .await
        .expect("sent");
    while frame(&mut socket, "ack").await["clientId"] != "last" {}

    api.state.begin_shutdown();
    assert!(
        api.state.finish_background(Duration::from_secs(10)).await,
        "the recorder finished"
    );
    // Recorded by the time the shutdown's wait returned, not a window later.
    let seen = api.payloads("ChatRepliesSeen").await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1]["message_ids"], json!([shown[1]]));
}

/// Waits until `count` events of `event_type` are recorded, and returns their payloads.
async fn recorded(api: &TestApi, event_type: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = api.payloads(event_type).await;
        if found.len() >= count {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} {event_type}, {count} expected",
            found.len()
        );
        tokio::task::yield_now().await;
    }
}

/// Settings whose chat limits are `limits`, the rate limits raised so tests are never refused.
fn chat_settings(limits: ChatLimits) -> ApiSettings {
    ApiSettings {
        chat: ChatLimits {
            per_visitor_per_minute: 10_000,
            per_visitor_burst: 1_000,
            per_address_per_minute: 10_000,
            per_address_burst: 1_000,
            ..limits
        },
        ..ApiSettings::new(SECRET)
    }
}

/// The status a refused upgrade got; `None` when the socket opened.
fn refused(result: Result<Socket, tokio_tungstenite::tungstenite::Error>) -> Option<StatusCode> {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Some(response.status()),
        Err(e) => panic!("the upgrade failed otherwise: {e}"),
        Ok(_) => None,
    }
}

/// Opens a socket for `token`, retrying while the server still counts the sockets closed
/// before (a session ends a moment after its connection does).
async fn live_when_free(addr: std::net::SocketAddr, key: &str, token: &str) -> Socket {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match live(addr, key, token, 0, SITE).await {
            Ok(socket) => return socket,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "no socket came free: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn live_sockets_are_capped_per_visitor_and_per_address() {
    let api = TestApi::with_settings(chat_settings(ChatLimits {
        max_sockets_per_visitor: 2,
        max_sockets_per_address: 3,
        ..ChatLimits::default()
    }))
    .await;
    let addr = api.serve().await;
    let (_, _, key) = widget(&api, None).await;
    let ada = visitor(&api, &key).await;
    let mut first = live(addr, &key, &ada, 0, SITE).await.expect("first socket");
    let _second = live(addr, &key, &ada, 0, SITE)
        .await
        .expect("second socket");
    assert_eq!(
        refused(live(addr, &key, &ada, 0, SITE).await),
        Some(StatusCode::TOO_MANY_REQUESTS),
        "a third socket of one visitor"
    );
    // Closing one frees its place.
    first.close(None).await.unwrap();
    let _third = live_when_free(addr, &key, &ada).await;

    // The address holds three now (two of Ada's, one of Bob's): a new visitor is refused.
    let bob = visitor(&api, &key).await;
    let _bobs = live(addr, &key, &bob, 0, SITE).await.expect("Bob's socket");
    let cy = visitor(&api, &key).await;
    assert_eq!(
        refused(live(addr, &key, &cy, 0, SITE).await),
        Some(StatusCode::TOO_MANY_REQUESTS),
        "a fourth socket from one address"
    );
}

/// A live socket over plain TCP, upgraded (the bytes read past the server's answer), that
/// never writes a byte more (so never pongs).
async fn silent_socket(
    addr: std::net::SocketAddr,
    key: &str,
    token: &str,
) -> (tokio::net::TcpStream, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let upgrade = format!(
        "GET /chat/{key}/live?token={token}&after=0 HTTP/1.1\r\nHost: {addr}\r\n\
         Origin: {SITE}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(upgrade.as_bytes()).await.expect("upgrade");
    let mut read = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tcp.read(&mut chunk).await.expect("read");
        assert!(n > 0, "ended before the upgrade: {read:?}");
        read.extend_from_slice(&chunk[..n]);
        if let Some(head) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            assert!(read.starts_with(b"HTTP/1.1 101"), "{read:?}");
            return (tcp, read.split_off(head + 4));
        }
    }
}

/// Reads a [`silent_socket`] until the server's close frame: its code.
async fn close_code(mut tcp: tokio::net::TcpStream, mut read: Vec<u8>) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    loop {
        // The server's frames are unmasked and short: opcode, length, payload.
        let mut frames = &read[..];
        while let [first, length, rest @ ..] = frames {
            let length = usize::from(*length & 0x7f);
            if rest.len() < length {
                break;
            }
            if first & 0x0f == 0x8 {
                assert!(length >= 2, "a close frame without a code");
                return u16::from_be_bytes([rest[0], rest[1]]);
            }
            frames = &rest[length..];
        }
        let n = tcp.read(&mut chunk).await.expect("read");
        assert!(n > 0, "ended without a close frame: {read:?}");
        read.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_socket_that_answers_no_ping_is_closed_and_one_that_answers_stays() {
    let api = TestApi::with_settings(chat_settings(ChatLimits {
        max_sockets_per_visitor: 1,
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(300),
        ..ChatLimits::default()
    }))
    .await;
    let addr = api.serve().await;
    let (_, _, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;

    // A client that reads nothing answers no ping: the server closes its socket, which frees
    // the visitor's one place.
    // (It writes nothing at all, not even pongs, so no reset can come before the close.)
    let (silent, read) = silent_socket(addr, &key, &token).await;
    let silent = tokio::spawn(close_code(silent, read));
    let started = tokio::time::Instant::now();
    let mut answering = live_when_free(addr, &key, &token).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed before the idle timeout: {:?}",
        started.elapsed()
    );
    let code = tokio::time::timeout(Duration::from_secs(10), silent)
        .await
        .expect("the silent socket stayed open")
        .expect("the silent client");
    assert_eq!(code, 1001, "closed as going away");

    // A client that reads answers the pings (tungstenite pongs by itself): it stays open well
    // past the idle timeout.
    let until = tokio::time::Instant::now() + Duration::from_millis(1_200);
    let mut pings = 0;
    while let Ok(message) = tokio::time::timeout_at(until, answering.next()).await {
        match message {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("the answering socket got {other:?}"),
        }
    }
    assert!(pings >= 3, "pinged while silent: {pings}");
}

#[tokio::test]
async fn a_socket_whose_visitor_stops_reading_is_closed_after_the_send_timeout() {
    let api = TestApi::with_settings(chat_settings(ChatLimits {
        max_sockets_per_visitor: 1,
        send_timeout: Duration::from_millis(200),
        ..ChatLimits::default()
    }))
    .await;
    let addr = api.serve().await;
    let (_, _, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;
    // A client with a small receive buffer that never reads: the server's frames pile up in
    // the connection until it takes no more.
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4 * 1024).expect("buffer size");
    let stream = tcp.connect(addr).await.expect("connects");
    let mut request = format!("ws://{addr}/chat/{key}/live?token={token}")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("origin", SITE.parse().expect("origin"));
    let (_stuck, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("socket opens");
    // Each message comes back to the socket; a few hundred KiB of them fill the connection.
    let text = "x".repeat(ChatLimits::default().max_message_chars);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert_eq!(
            say(&api, &key, &token, &text).await.status,
            StatusCode::CREATED
        );
        // The visitor's one place is free once the server gave up on the stuck socket.
        match live(addr, &key, &token, 0, SITE).await {
            Ok(_) => break,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            }
            Err(e) => panic!("{e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck socket was never closed"
        );
    }
}

#[tokio::test]
async fn the_visitors_address_is_kept_and_only_replies_the_widget_acknowledges_are_recorded_seen() {
    let api = TestApi::with_settings(ApiSettings {
        chat: ChatLimits {
            per_visitor_burst: 50,
            ..ChatLimits::default()
        },
        ..ApiSettings::new(SECRET)
    })
    .await;
    let addr = api.serve().await;
    let (_, channel, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;
    let said = say(&api, &key, &token, "Hello?").await;
    assert_eq!(said.status, StatusCode::CREATED);
    // An address with something around it is a field error, and writes nothing.
    let before = head(&api).await;
    let refused = leave(&api, &key, &token, json!({"email": "x<victim@y.com>"})).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body["errors"][0]["field"], "email",
        "{:?}",
        refused.body
    );
    assert_eq!(head(&api).await, before, "a refused address writes nothing");
    // Long enough for the route's check, too long for the domain to keep: refused alike.
    let long = format!("ada@{}.test", vec!["x".repeat(57); 4].join("."));
    assert_eq!(long.len(), 240);
    let refused = leave(&api, &key, &token, json!({ "email": long })).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        refused.body
    );
    assert_eq!(
        refused.body["errors"][0]["field"], "email",
        "{:?}",
        refused.body
    );
    assert_eq!(head(&api).await, before, "a refused address writes nothing");
    let left = leave(&api, &key, &token, json!({"email": " Ada@Prospect.test "})).await;
    assert_eq!(left.status, StatusCode::ACCEPTED, "{:?}", left.body);
    let kept = recorded(&api, "ChatVisitorEmailLeft", 1).await;
    assert_eq!(kept[0]["address"], "ada@prospect.test");
    // The same address again: answered alike, nothing new.
    let again = leave(&api, &key, &token, json!({"email": "ada@prospect.test"})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{:?}", again.body);
    assert_eq!(again.body, left.body);
    assert_eq!(api.payloads("ChatVisitorEmailLeft").await.len(), 1);

    // Handing replies to the widget does not make them seen: reading the conversation, or a
    // socket pushing one, records nothing (the panel may be closed, the tab hidden).
    let conversation = conversation_of(&api, channel).await;
    reply(&api, &conversation, "Still there?").await;
    assert_eq!(texts(&api, &key, &token).await, ["Hello?", "Still there?"]);
    let mut socket = live(addr, &key, &token, 0, SITE)
        .await
        .expect("socket opens");
    reply(&api, &conversation, "Here is the answer.").await;
    let mut shown = Vec::new();
    while shown.len() < 2 {
        let message = frame(&mut socket, "message").await;
        if message["from"] == "team" {
            shown.push(message["id"].clone());
        }
    }
    assert!(api.payloads("ChatRepliesSeen").await.is_empty());

    // The widget acknowledges what the visitor saw: by HTTP, or over the socket.
    let acked = api
        .send(request(
            "POST",
            &format!("/chat/{key}/seen"),
            Some(&token),
            Some(json!({"ids": [shown[0]]})),
        ))
        .await;
    assert_eq!(acked.status, StatusCode::NO_CONTENT, "{:?}", acked.body);
    let seen = recorded(&api, "ChatRepliesSeen", 1).await;
    assert_eq!(seen[0]["message_ids"], json!([shown[0]]));
    socket
        .send(Message::text(
            json!({"type": "seen", "ids": [shown[0], shown[1]]}).to_string(),
        ))
        .await
        .expect("sent");
    let seen = recorded(&api, "ChatRepliesSeen", 2).await;
    assert_eq!(
        seen[1]["message_ids"],
        json!([shown[1]]),
        "only the unseen one"
    );
    let bad = api
        .send(request(
            "POST",
            &format!("/chat/{key}/seen"),
            Some(&token),
            Some(json!({"ids": ["not an id"]})),
        ))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "ids", "{:?}", bad.body);
}

/// A chat conversation whose visitor left an address, of an inbox that can e-mail, and whose
/// first reply the delivery worker asked to e-mail.
struct Emailed {
    key: String,
    token: String,
    /// The conversation's global id, and its id.
    conversation: String,
    id: Uuid,
    email_channel: Uuid,
    /// The e-mailed reply's `Message-ID`.
    cited: String,
}

/// Says hello as a new visitor, leaves `address`, gets `replies` from the team and has the
/// first e-mailed as the delivery worker would.
async fn emailed(api: &TestApi, address: &str, replies: &[&str]) -> Emailed {
    let (inbox, channel, key) = widget(api, None).await;
    let email_channel = Uuid::now_v7();
    api.run(Command::Channel(
        switchboard_domain::channel::ChannelCommand::ConnectEmail {
            channel_id: email_channel,
            inbox_id: inbox,
            address: "support@acme.test".into(),
            access: proto_events::event::EmailAccess::Shared,
        },
    ))
    .await;
    let token = visitor(api, &key).await;
    assert_eq!(
        say(api, &key, &token, "Hello?").await.status,
        StatusCode::CREATED
    );
    let left = leave(api, &key, &token, json!({"email": address})).await;
    assert_eq!(left.status, StatusCode::ACCEPTED, "{:?}", left.body);
    let conversation = conversation_of(api, channel).await;
    for text in replies {
        reply(api, &conversation, text).await;
    }
    let id = ids::decode(
        &async_graphql::ID(conversation.clone()),
        Kind::Conversation,
        "id",
    )
    .expect("a conversation id");
    let first = api
        .payloads("ReplySent")
        .await
        .first()
        .and_then(|r| r["message_id"].as_str()?.parse().ok())
        .expect("the first reply");
    api.service
        .execute(
            switchboard_service::CommandMeta::by(proto_events::Actor::System {
                component: "delivery".into(),
            }),
            Command::Conversation {
                conversation_id: id,
                command: Box::new(
                    switchboard_domain::conversation::ConversationCommand::EmailUnseenReply {
                        message_id: first,
                    },
                ),
            },
        )
        .await
        .expect("e-mailed");
    let cited = recorded(api, "ChatReplyEmailed", 1).await[0]["email"]["message_id"]
        .as_str()
        .expect("a Message-ID")
        .to_owned();
    Emailed {
        key,
        token,
        conversation,
        id,
        email_channel,
        cited,
    }
}

#[tokio::test]
async fn a_chat_reply_emailed_to_the_visitor_shows_the_address_in_the_timeline() {
    let api = TestApi::start().await;
    let chat = emailed(&api, "ada@prospect.test", &["Unseen answer", "Another"]).await;
    let shown = api
        .outbound(&chat.conversation, ["bodyText", "emailedTo"])
        .await;
    assert_eq!(
        shown,
        [
            (json!("Unseen answer"), json!("ada@prospect.test")),
            (json!("Another"), Value::Null)
        ]
    );
}

#[tokio::test]
async fn an_email_answer_to_an_emailed_reply_reaches_agents_only_never_the_widget() {
    let api = TestApi::start().await;
    let addr = api.serve().await;
    // Anyone can type someone else's address: it is not verified.
    let chat = emailed(&api, "victim@corp.test", &["Unseen answer"]).await;
    let mut socket = live(addr, &chat.key, &chat.token, 0, SITE)
        .await
        .expect("socket opens");
    // The victim answers the e-mail (or their auto-reply does): it threads into the chat.
    let mut answer = crate::audit::message(
        chat.email_channel,
        proto_events::event::ChannelKind::Email,
        proto_events::event::Identity::Email {
            address: "victim@corp.test".into(),
        },
    );
    if let Command::ReceiveMessage { message, .. } = &mut answer {
        message.body_text = "Confidential: my answer".into();
        if let Some(email) = message.email.as_mut() {
            email.in_reply_to = Some(chat.cited.clone());
            email.references = vec![chat.cited.clone()];
        }
    }
    let answered = api
        .service
        .execute(
            switchboard_service::CommandMeta::by(proto_events::Actor::Channel {
                id: chat.email_channel,
            }),
            answer,
        )
        .await
        .expect("received");
    assert_eq!(
        crate::audit::conversation_of(&answered),
        chat.id,
        "the answer continues the chat conversation"
    );
    // A later reply shows on the socket; the e-mail answer before it never does.
    reply(&api, &chat.conversation, "After the e-mail").await;
    loop {
        let shown = frame(&mut socket, "message").await;
        assert_ne!(shown["text"], "Confidential: my answer", "{shown:?}");
        if shown["text"] == "After the e-mail" {
            break;
        }
    }
    assert_eq!(
        texts(&api, &chat.key, &chat.token).await,
        ["Hello?", "Unseen answer", "After the e-mail"]
    );
    // A socket resuming from the start does not get it either.
    let mut again = live(addr, &chat.key, &chat.token, 0, SITE)
        .await
        .expect("socket opens");
    loop {
        let shown = frame(&mut again, "message").await;
        assert_ne!(shown["text"], "Confidential: my answer", "{shown:?}");
        if shown["text"] == "After the e-mail" {
            break;
        }
    }
    // Agents see the answer, and that the address it went to is unverified.
    let shown = api
        .outbound(&chat.conversation, ["emailedTo", "emailedToVerified"])
        .await;
    assert_eq!(
        shown,
        [
            (json!("victim@corp.test"), json!(false)),
            (Value::Null, Value::Null)
        ]
    );
}

#[tokio::test]
async fn a_visitors_typing_reaches_agents_at_most_once_a_second_and_its_last_state_after() {
    let api = TestApi::start().await;
    let addr = api.serve().await;
    let (_, _, mut visitor_socket, mut agent) = typing_between(&api, addr, None).await;
    // Signals sent while the subscription is being set up go nowhere, and each takes the
    // second's place: wait out the second before signalling again.
    typed_until_told(
        &mut visitor_socket,
        &mut agent,
        true,
        Duration::from_millis(1_100),
    )
    .await;
    // Right after one was forwarded, more within the second are dropped...
    let forwarded = tokio::time::Instant::now();
    for on in [false, true, false, true, false] {
        visitor_socket
            .send(Message::text(
                json!({"type": "typing", "typing": on}).to_string(),
            ))
            .await
            .unwrap();
    }
    let quiet = tokio::time::timeout_at(forwarded + Duration::from_millis(600), agent.next()).await;
    assert!(quiet.is_err(), "forwarded within the second: {quiet:?}");
    // ...but the last of them comes once the second is over, nothing more being sent: agents
    // are never left seeing "typing" after a stop that fell within the second.
    let last = tokio::time::timeout(Duration::from_secs(5), agent.next())
        .await
        .expect("the last signal of the second was never told");
    let Some(Ok(Message::Text(text))) = last else {
        panic!("{last:?}");
    };
    let update: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(update["payload"]["data"]["chatTyping"]["typing"], false);
}

#[tokio::test]
async fn messages_are_routed_only_to_the_sockets_of_their_conversation() {
    let api = TestApi::start().await;
    let addr = api.serve().await;
    let (_, _, key) = widget(&api, None).await;
    let ada = visitor(&api, &key).await;
    let bob = visitor(&api, &key).await;
    let mut ada_socket = live(addr, &key, &ada, 0, SITE).await.expect("Ada's socket");
    let mut bob_socket = live(addr, &key, &bob, 0, SITE).await.expect("Bob's socket");
    let routed = "switchboard_chat_live_routed_total";
    // Both sockets follow the feed once their first message reaches them.
    for (token, socket) in [(&ada, &mut ada_socket), (&bob, &mut bob_socket)] {
        assert_eq!(
            say(&api, &key, token, "first").await.status,
            StatusCode::CREATED
        );
        assert_eq!(frame(socket, "message").await["text"], "first");
    }
    let before = api.counter(routed).await;
    for text in ["one", "two", "three"] {
        assert_eq!(
            say(&api, &key, &ada, text).await.status,
            StatusCode::CREATED
        );
        assert_eq!(frame(&mut ada_socket, "message").await["text"], text);
    }
    // Ada's three messages went to Ada's socket alone: Bob's was handed nothing.
    assert_eq!(api.counter(routed).await - before, 3);
    assert_eq!(
        say(&api, &key, &bob, "mine").await.status,
        StatusCode::CREATED
    );
    assert_eq!(frame(&mut bob_socket, "message").await["text"], "mine");
}

#[tokio::test]
async fn a_socket_that_falls_behind_gets_every_message_once_in_order() {
    let api = TestApi::with_settings(chat_settings(ChatLimits {
        live_buffer: 1,
        ..ChatLimits::default()
    }))
    .await;
    let addr = api.serve().await;
    let (_, _, key) = widget(&api, None).await;
    let token = visitor(&api, &key).await;
    assert_eq!(
        say(&api, &key, &token, "0").await.status,
        StatusCode::CREATED
    );
    let mut socket = live(addr, &key, &token, 0, SITE).await.expect("socket");
    assert_eq!(frame(&mut socket, "message").await["text"], "0");
    // Sent at once, they are committed together and announced back to back: a socket with
    // room for one falls behind and reads the rest from the stream (a round may happen to go
    // without: rounds go on until one did).
    let lagged = "switchboard_chat_live_lagged_total";
    let mut last = 0;
    for round in 0..5 {
        let texts: Vec<String> = (0..30).map(|i| format!("{round}.{i}")).collect();
        let sent =
            futures::future::join_all(texts.iter().map(|text| say(&api, &key, &token, text))).await;
        assert!(sent.iter().all(|r| r.status == StatusCode::CREATED));
        let mut got = Vec::new();
        while got.len() < texts.len() {
            let message = frame(&mut socket, "message").await;
            let seq = message["seq"].as_u64().expect("a seq");
            assert!(seq > last, "out of order or again: {seq} after {last}");
            last = seq;
            got.push(message["text"].as_str().unwrap().to_owned());
        }
        got.sort_unstable();
        let mut texts = texts;
        texts.sort_unstable();
        assert_eq!(got, texts, "each message once");
        if api.counter(lagged).await > 0 {
            break;
        }
    }
    assert!(
        api.counter(lagged).await > 0,
        "the socket never fell behind: the test tested nothing"
    );
    // Nothing more is owed: the next frame answers a new message.
    socket
        .send(Message::text(
            json!({"type": "message", "text": "last", "clientId": "x"}).to_string(),
        ))
        .await
        .unwrap();
    let following = next(&mut socket).await.expect("a frame");
    assert!(
        following["type"] == "ack" || following["text"] == "last",
        "nothing but the new message follows: {following}"
    );
}

/// A visitor whose contact was erased finds an empty conversation and writes into a new one:
/// the widget's routes follow the erased conversation's successor.
#[tokio::test]
async fn a_visitor_erased_writes_into_a_new_conversation() {
    let api = TestApi::start().await;
    let (_, _, key) = widget(&api, None).await;
    let (visitor_id, token) = visitor_with_id(&api, &key).await;
    let said = say(&api, &key, &token, "my unique order text 7f3a").await;
    assert!(said.status.is_success(), "{:?}", said.body);
    assert_eq!(
        texts(&api, &key, &token).await,
        ["my unique order text 7f3a"]
    );
    let contact_id = Uuid::now_v7();
    api.run(Command::CreateContact {
        contact_id,
        identities: vec![proto_events::event::Identity::ChatVisitor {
            visitor_id: visitor_id.clone(),
        }],
        properties: Default::default(),
        from_conversation: None,
    })
    .await;
    api.run(Command::EraseContact {
        contact_id,
        reason: "Art. 17 request".into(),
        prepared: None,
    })
    .await;

    assert!(texts(&api, &key, &token).await.is_empty());
    let again = say(&api, &key, &token, "hello again").await;
    assert!(again.status.is_success(), "{:?}", again.body);
    assert_eq!(texts(&api, &key, &token).await, ["hello again"]);
}
