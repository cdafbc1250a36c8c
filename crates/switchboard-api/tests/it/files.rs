//! A conversation's files: listed on its timeline with signed download links, served by
//! `GET /files/...` only to who may see the conversation, never run by a browser.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proto_events::event::{EmailAccess, Member, Role};
use serde_json::{Value, json};
use switchboard_api::ids::{self, Kind};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::setup::SetupCommand;
use switchboard_email::Ingester;
use switchboard_service::Command;
use uuid::Uuid;

use crate::support::{Reply, TestApi};

const MAIL: &[u8] = b"From: Ada Lovelace <ada@customer.example>\r\n\
To: ada.private@acme.test\r\n\
Subject: The contract\r\n\
Message-ID: <contract-1@customer.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\
\r\n\
--m\r\n\
Content-Type: text/plain\r\n\
\r\n\
Signed copy attached.\r\n\
--m\r\n\
Content-Type: text/html; name=\"contract.html\"\r\n\
Content-Disposition: attachment; filename=\"Vertrag \xc3\xbcber 20 Pl\xc3\xa4tze.html\"\r\n\
\r\n\
<script>alert('not on your origin')</script>\r\n\
--m--\r\n";

const TIMELINE: &str = "query($id: ID!) { conversation(id: $id) { timeline(first: 20) { nodes {
    kind attachments { fileName contentType size inline sha256 downloadUrl }
    originalMessage { size sha256 warnings downloadUrl } } } } }";

async fn get(api: &TestApi, path: &str, bearer: Option<&str>) -> Reply {
    let mut request = Request::get(path);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    api.send(request.body(Body::empty()).expect("request"))
        .await
}

/// The inbound message's entry of the conversation's timeline, as `user` reads it.
async fn inbound_entry(api: &TestApi, user: Uuid, conversation: &str) -> Value {
    let reply = api.gql(user, TIMELINE, json!({"id": conversation})).await;
    reply.data()["conversation"]["timeline"]["nodes"]
        .as_array()
        .and_then(|nodes| {
            nodes
                .iter()
                .find(|n| n["kind"] == "INBOUND_MESSAGE")
                .cloned()
        })
        .unwrap_or_else(|| panic!("an inbound message: {:#}", reply.body))
}

#[tokio::test]
async fn files_download_by_signed_link_only_for_who_may_see_the_conversation() {
    let api = TestApi::start().await;
    let inbox = api.inbox("Support").await;
    let owner = api.user("ada.private@acme.test", Role::Agent).await;
    let colleague = api.user("grace@acme.test", Role::Agent).await;
    for member in [owner, colleague] {
        api.run(Command::Setup(SetupCommand::AddInboxMember {
            inbox_id: inbox,
            member: Member::User { id: member },
        }))
        .await;
    }
    let channel = Uuid::now_v7();
    api.run(Command::Channel(ChannelCommand::ConnectEmail {
        channel_id: channel,
        inbox_id: inbox,
        address: "ada.private@acme.test".into(),
        access: EmailAccess::Private {
            owner_user_id: owner,
        },
    }))
    .await;
    let ingested = Ingester::new(api.service.clone(), api.service.store().clone())
        .ingest(channel, None, MAIL.to_vec())
        .await
        .expect("ingested");
    let head = api.service.store().head().await.expect("head");
    api.projections
        .wait_for(
            head,
            tokio::time::Instant::now() + std::time::Duration::from_secs(10),
        )
        .await
        .expect("caught up");
    let conversation_id: Uuid = ingested
        .stream
        .strip_prefix("conversation-")
        .and_then(|id| id.parse().ok())
        .expect("a conversation");
    let conversation = ids::encode(Kind::Conversation, conversation_id).0;

    let entry = inbound_entry(&api, owner, &conversation).await;
    let [file] = entry["attachments"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    else {
        panic!("one attachment: {entry:#}")
    };
    assert_eq!(file["fileName"], "Vertrag über 20 Plätze.html");
    assert_eq!(file["contentType"], "text/html");
    let original = &entry["originalMessage"];
    assert_eq!(original["size"], MAIL.len() as f64);

    // The link opens without a header: the file, as a download that never runs here.
    let link = file["downloadUrl"].as_str().expect("a link");
    let got = get(&api, link, None).await;
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    assert_eq!(
        got.body,
        Value::String("<script>alert('not on your origin')</script>".into())
    );
    let header = |name: &str| got.headers[name].to_str().expect("text").to_owned();
    assert_eq!(header("content-type"), "text/html");
    assert!(header("content-disposition").starts_with("attachment;"));
    assert!(header("content-disposition").contains("filename*=UTF-8''Vertrag%20%C3%BCber"));
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("content-security-policy").contains("sandbox"));
    // The original, byte for byte.
    let raw = get(
        &api,
        original["downloadUrl"].as_str().expect("a link"),
        None,
    )
    .await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.headers["content-type"], "message/rfc822");
    assert_eq!(
        raw.body,
        Value::String(String::from_utf8_lossy(MAIL).into_owned())
    );

    // A link bent to another file, or to no file at all, does not open.
    let other_sha = original["sha256"].as_str().expect("sha");
    let bent = link.replace(file["sha256"].as_str().expect("sha"), other_sha);
    assert_eq!(
        get(&api, &bent, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let (path, _) = link.split_once('?').expect("a query");
    assert_eq!(get(&api, path, None).await.status, StatusCode::UNAUTHORIZED);

    // A colleague of the same inbox, who may not see the private conversation, gets nothing.
    let theirs = get(&api, path, Some(&api.token(colleague))).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{:?}", theirs.body);
    // The owner's token opens it as well as the link.
    let with_token = get(&api, path, Some(&api.token(owner))).await;
    assert_eq!(with_token.status, StatusCode::OK);

    // Deactivated, the owner's links stop working at once.
    let deactivated = api
        .gql(
            api.admin,
            "mutation($input: DeactivateUserInput!) { deactivateUser(input: $input) {
                userErrors { message } } }",
            json!({"input": {"userId": ids::encode(Kind::User, owner).0}}),
        )
        .await;
    assert_eq!(
        deactivated.data()["deactivateUser"]["userErrors"],
        json!([])
    );
    assert_eq!(get(&api, link, None).await.status, StatusCode::UNAUTHORIZED);
}
