//! E-mail channels' servers through the API: who may set and read them, passwords write-only
//! and bound to their server, the audit trail and raw history keeping them to admins, and
//! `POST /ingest/email/{channel}` with the channel's secret. (Logging in to real IMAP and SMTP
//! servers is tested end to end in the server's tests, against Dovecot and aiosmtpd.)

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proto_events::event::{Member, Role};
use serde_json::{Value, json};
use switchboard_api::ids::Kind;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::Command;
use uuid::Uuid;

use crate::audit::id;
use crate::support::TestApi;

const UPDATE: &str =
    "mutation($input: UpdateEmailChannelInput!) { updateEmailChannel(input: $input) {
    userErrors { field code message }
    channel { imap { host port security username mailbox } smtp { host username } httpIngest } } }";
const SECRET: &str = "a-long-ingest-secret-0123456789";

/// An inbox with Alice (agent) in it, her private account connected by herself; Bob, another
/// agent of the inbox; an auditor.
async fn alice_with_her_account() -> (TestApi, Uuid, Uuid, Uuid, String) {
    let api = TestApi::start().await;
    let alice = api.user("alice@acme.test", Role::Agent).await;
    let bob = api.user("bob@acme.test", Role::Agent).await;
    let auditor = api.user("audrey@acme.test", Role::Auditor).await;
    let inbox = api.inbox("Support").await;
    for user in [alice, bob] {
        api.run(Command::Setup(SetupCommand::AddInboxMember {
            inbox_id: inbox,
            member: Member::User { id: user },
        }))
        .await;
    }
    let connected = api
        .gql(
            alice,
            "mutation($inbox: ID!) { connectEmailChannel(input: {inboxId: $inbox, address: \"alice@mail.test\", private: true}) { userErrors { message } channel { id } } }",
            json!({ "inbox": id(Kind::Inbox, inbox) }),
        )
        .await;
    let channel = connected.data()["connectEmailChannel"]["channel"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", connected.body))
        .to_owned();
    (api, alice, bob, auditor, channel)
}

fn imap(host: &str, password: Option<&str>) -> Value {
    let mut imap = json!({"host": host, "port": 993, "security": "TLS", "username": "alice"});
    if let Some(password) = password {
        imap["password"] = json!(password);
    }
    imap
}

#[tokio::test]
async fn a_private_accounts_servers_are_its_owners_and_passwords_stay_with_their_server() {
    let (api, alice, bob, auditor, channel) = alice_with_her_account().await;
    let set = api
        .gql(
            alice,
            UPDATE,
            json!({"input": {"channelId": channel, "imap": imap("imap.mail.test", Some("hunter2-imap")), "ingestSecret": SECRET}}),
        )
        .await;
    let text = set.body.to_string();
    let answer = &set.data()["updateEmailChannel"];
    assert_eq!(answer["userErrors"], json!([]), "{text}");
    assert_eq!(
        answer["channel"]["imap"],
        json!({"host": "imap.mail.test", "port": 993, "security": "TLS", "username": "alice", "mailbox": "INBOX"})
    );
    assert_eq!(answer["channel"]["httpIngest"], true);
    assert!(
        !text.contains("hunter2") && !text.contains(SECRET),
        "{text}"
    );

    // Another agent may neither change nor read them; the admin reads them.
    let refused = api
        .gql(
            bob,
            UPDATE,
            json!({"input": {"channelId": channel, "imap": null}}),
        )
        .await;
    assert_eq!(
        refused.error_code(),
        Some("FORBIDDEN"),
        "{:?}",
        refused.body
    );
    let read = "query($id: ID!) { node(id: $id) { ... on Channel { imap { host } httpIngest } } }";
    let bobs = api.gql(bob, read, json!({"id": channel})).await;
    assert_eq!(
        bobs.data()["node"],
        json!({"imap": null, "httpIngest": null})
    );
    let admins = api.gql(api.admin, read, json!({"id": channel})).await;
    assert_eq!(admins.data()["node"]["imap"]["host"], "imap.mail.test");

    // Without the password, another mailbox on the same server keeps it; another host, port,
    // login or weaker protection needs it again.
    let mailbox = json!({"host": "IMAP.mail.test", "security": "TLS", "username": "alice", "mailbox": "Support"});
    let kept = api
        .gql(
            alice,
            UPDATE,
            json!({"input": {"channelId": channel, "imap": mailbox}}),
        )
        .await;
    assert_eq!(kept.data()["updateEmailChannel"]["userErrors"], json!([]));
    for moved in [
        imap("evil.example", None),
        json!({"host": "imap.mail.test", "port": 143, "security": "PLAIN", "username": "alice"}),
    ] {
        let refused = api
            .gql(
                alice,
                UPDATE,
                json!({"input": {"channelId": channel, "imap": moved}}),
            )
            .await;
        assert_eq!(
            refused.data()["updateEmailChannel"]["userErrors"][0]["field"],
            json!(["input", "imap", "password"]),
            "{:?}",
            refused.body
        );
    }
    // The connection test does not send the saved password to a host the caller names.
    let tested = api
        .gql(
            alice,
            "mutation($input: TestEmailChannelInput!) { testEmailChannel(input: $input) { userErrors { code } imap { ok message } } }",
            json!({"input": {"channelId": channel, "imap": imap("127.0.0.1", None)}}),
        )
        .await;
    let imap_check = &tested.data()["testEmailChannel"]["imap"];
    assert_eq!(imap_check["ok"], false);
    assert!(
        imap_check["message"]
            .as_str()
            .unwrap()
            .contains("no password"),
        "{imap_check}"
    );

    // Nor does it connect where cloud metadata services answer.
    let tested = api
        .gql(
            alice,
            "mutation($input: TestEmailChannelInput!) { testEmailChannel(input: $input) { userErrors { code } imap { ok message } } }",
            json!({"input": {"channelId": channel, "imap": imap("169.254.169.254", Some("x"))}}),
        )
        .await;
    let imap_check = &tested.data()["testEmailChannel"]["imap"];
    assert_eq!(imap_check["ok"], false);
    assert!(
        imap_check["message"]
            .as_str()
            .unwrap()
            .contains("no mail server may be"),
        "{imap_check}"
    );

    // The settings' history is admins' only, in the audit trail and the raw history.
    let audit = "{ auditTrail(first: 100) { edges { node { eventType } } } }";
    let types = |reply: &crate::support::Reply| -> Vec<String> {
        reply.data()["auditTrail"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["eventType"].as_str().unwrap().to_owned())
            .collect()
    };
    let admins = types(&api.gql(api.admin, audit, json!({})).await);
    assert!(admins.iter().any(|t| t == "EmailServersSet"), "{admins:?}");
    for viewer in [alice, bob, auditor] {
        let theirs = types(&api.gql(viewer, audit, json!({})).await);
        assert!(!theirs.iter().any(|t| t == "EmailServersSet"), "{theirs:?}");
    }
    let history = api
        .gql(
            auditor,
            "{ events(first: 100) { edges { node { type } } } }",
            json!({}),
        )
        .await;
    let history = history.body.to_string();
    assert!(history.contains("ChannelConnected"), "{history}");
    assert!(!history.contains("EmailServersSet"), "{history}");
}

/// `POST /ingest/email/{channel}` as an MTA would: refused alike without the secret, with a
/// wrong one, for an unknown channel; taken once with it, a repeat answered as a duplicate.
#[tokio::test]
async fn mail_posted_over_http_needs_the_channels_secret_and_counts_once() {
    let (api, alice, _, _, channel) = alice_with_her_account().await;
    let set = api
        .gql(
            alice,
            UPDATE,
            json!({"input": {"channelId": channel, "ingestSecret": SECRET}}),
        )
        .await;
    assert_eq!(set.data()["updateEmailChannel"]["userErrors"], json!([]));
    let short = api
        .gql(
            alice,
            UPDATE,
            json!({"input": {"channelId": channel, "ingestSecret": "short"}}),
        )
        .await;
    assert_eq!(
        short.data()["updateEmailChannel"]["userErrors"][0]["field"],
        json!(["input", "ingestSecret"])
    );

    let raw = "From: Grace <grace@customer.test>\r\nTo: alice@mail.test\r\nSubject: Hello\r\n\
               Message-ID: <g1@customer.test>\r\n\r\nHi!\r\n";
    let post = |path: String, authorization: Option<String>| {
        let mut request = Request::post(path).header("content-type", "message/rfc822");
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        request.body(Body::from(raw)).unwrap()
    };
    let path = format!("/ingest/email/{channel}");
    let unknown = format!("/ingest/email/{}", Uuid::now_v7());
    for (path, authorization) in [
        (path.clone(), None),
        (
            path.clone(),
            Some("Bearer wrong-secret-0123456789abcdef".to_owned()),
        ),
        (unknown, Some(format!("Bearer {SECRET}"))),
        (path.clone(), Some(format!("Token {SECRET}"))),
    ] {
        let reply = api.send(post(path, authorization)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
        assert_eq!(
            reply.body["error"],
            "unknown channel or wrong ingest secret"
        );
    }
    let first = api
        .send(post(path.clone(), Some(format!("Bearer {SECRET}"))))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["duplicate"], false);
    // Basic, with the secret as the password, works too; the same Message-ID is one message.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("mta:{SECRET}"));
    let again = api.send(post(path, Some(format!("Basic {basic}")))).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["conversationId"], first.body["conversationId"]);
    let conversation = first.body["conversationId"].as_str().unwrap();
    // The answer's consistency token makes the read wait for the message.
    let token = first.body["consistencyToken"].as_str().unwrap();
    let read = api
        .gql_with(
            Some(alice),
            &[("switchboard-consistency-token", token)],
            "query($id: ID!) { conversation(id: $id) { subject } }",
            json!({"id": conversation}),
        )
        .await;
    assert_eq!(read.data()["conversation"]["subject"], "Hello");
}
