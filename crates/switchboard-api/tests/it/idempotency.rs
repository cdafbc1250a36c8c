//! `clientMutationId` through GraphQL: a key is bound to its request (another mutation with it is
//! refused and writes nothing), racing repeats write once, and replies and comments without an
//! expected version succeed however many agents write to the same conversations.

use std::sync::Arc;

use serde_json::{Value, json};
use switchboard_api::ids::{self, Kind};
use switchboard_store::{Direction, StreamFrom};
use uuid::Uuid;

use crate::support::TestApi;

const REPLY: &str = "mutation($input: SendReplyInput!) { sendReply(input: $input) {
    replayed version userErrors { code } } }";
const COMMENT: &str = "mutation($input: AddCommentInput!) { addComment(input: $input) {
    replayed version userErrors { code } } }";

/// A chat conversation with one customer message; its id, as a global id too.
async fn conversation(api: &TestApi, channel: Uuid, visitor: &str) -> (Uuid, String) {
    let outcome = api.chat(channel, visitor, "Hello?").await;
    api.settle(&outcome).await;
    let id: Uuid = outcome
        .stream
        .strip_prefix("conversation-")
        .and_then(|id| id.parse().ok())
        .expect("a conversation stream");
    (id, ids::encode(Kind::Conversation, id).0)
}

/// How many events of `event_type` the conversation's stream holds.
async fn count(api: &TestApi, conversation: Uuid, event_type: &str) -> usize {
    api.service
        .store()
        .read_stream(
            &format!("conversation-{conversation}"),
            Direction::Forwards,
            StreamFrom::Start,
            10_000,
        )
        .await
        .expect("read the stream")
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

fn reply(conversation: &str, text: &str, key: Option<&str>) -> Value {
    json!({"input": {"conversationId": conversation, "bodyText": text, "clientMutationId": key}})
}

#[tokio::test]
async fn a_key_is_bound_to_its_request() {
    let api = TestApi::start().await;
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let (a, a_id) = conversation(&api, channel, "visitor-a").await;
    let (b, b_id) = conversation(&api, channel, "visitor-b").await;

    let first = api
        .gql(api.admin, REPLY, reply(&a_id, "On it.", Some("k-1")))
        .await;
    assert_eq!(first.data()["sendReply"]["replayed"], false);
    let head = api.service.store().head().await.expect("head");

    // The same request again: the first one's result, nothing written.
    let again = api
        .gql(api.admin, REPLY, reply(&a_id, "On it.", Some("k-1")))
        .await;
    assert_eq!(again.data()["sendReply"]["replayed"], true);
    assert_eq!(
        again.data()["sendReply"]["version"],
        first.data()["sendReply"]["version"]
    );

    // The key on another request (another conversation, or another text): refused.
    for (conversation, text) in [(&b_id, "On it."), (&a_id, "Something else.")] {
        let reused = api
            .gql(api.admin, REPLY, reply(conversation, text, Some("k-1")))
            .await;
        assert_eq!(
            reused.error_code(),
            Some("IDEMPOTENCY_KEY_REUSED"),
            "{:#}",
            reused.body
        );
    }
    assert_eq!(api.service.store().head().await.expect("head"), head);
    assert_eq!(count(&api, a, "ReplySent").await, 1);
    assert_eq!(count(&api, b, "ReplySent").await, 0);

    // Keys are per viewer: another user's request with the same key is their own.
    let agent = api
        .user("agent@acme.test", proto_events::event::Role::Admin)
        .await;
    let theirs = api
        .gql(agent, REPLY, reply(&b_id, "Hi from me.", Some("k-1")))
        .await;
    assert_eq!(theirs.data()["sendReply"]["replayed"], false);
    assert_eq!(count(&api, b, "ReplySent").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_repeats_write_once() {
    let api = Arc::new(TestApi::start().await);
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let (conversation, id) = conversation(&api, channel, "visitor-race").await;
    let mut expected = 0;
    for concurrent in [2usize, 4, 8] {
        for trial in 0..50 {
            let key = format!("race-{concurrent}-{trial}");
            let text = format!("Reply {key}");
            let requests = (0..concurrent).map(|_| {
                let api = api.clone();
                let variables = reply(&id, &text, Some(&key));
                tokio::spawn(async move { api.gql(api.admin, REPLY, variables).await })
            });
            let replies = futures::future::join_all(requests).await;
            let mut fresh = 0;
            for reply in replies {
                let reply = reply.expect("request task");
                let payload = &reply.data()["sendReply"];
                assert_eq!(payload["userErrors"], json!([]), "{payload}");
                if payload["replayed"] == false {
                    fresh += 1;
                }
            }
            expected += 1;
            assert_eq!(fresh, 1, "{key}: one request writes, the others repeat it");
            assert_eq!(
                count(&api, conversation, "ReplySent").await,
                expected,
                "{key}: written once"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_and_comments_without_an_expected_version_always_go_through() {
    const CLIENTS: usize = 16;
    const CONVERSATIONS: usize = 50;
    const WRITES: usize = 25;
    let api = Arc::new(TestApi::start().await);
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let mut conversations = Vec::new();
    for n in 0..CONVERSATIONS {
        conversations.push(conversation(&api, channel, &format!("visitor-{n}")).await);
    }
    let conversations = Arc::new(conversations);
    let clients = (0..CLIENTS).map(|client| {
        let api = api.clone();
        let conversations = conversations.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for write in 0..WRITES {
                // Every client walks the conversations from its own start, so they collide.
                let (_, id) = &conversations[(client * 7 + write) % CONVERSATIONS];
                let (query, input) = if write % 2 == 0 {
                    (
                        REPLY,
                        json!({"input": {"conversationId": id, "bodyText": format!("r {client} {write}")}}),
                    )
                } else {
                    (
                        COMMENT,
                        json!({"input": {"conversationId": id, "bodyText": format!("c {client} {write}")}}),
                    )
                };
                let reply = api.gql(api.admin, query, input).await;
                let failed = reply.body.get("errors").is_some()
                    || reply.body["data"]
                        .as_object()
                        .and_then(|d| d.values().next())
                        .is_some_and(|p| p["userErrors"] != json!([]));
                if failed {
                    failures.push(reply.body);
                }
            }
            failures
        })
    });
    let mut failures = Vec::new();
    for client in futures::future::join_all(clients).await {
        failures.extend(client.expect("client task"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} writes failed, e.g. {:#}",
        failures.len(),
        CLIENTS * WRITES,
        failures[0]
    );
    let mut replies = 0;
    let mut comments = 0;
    for (conversation, _) in conversations.iter() {
        replies += count(&api, *conversation, "ReplySent").await;
        comments += count(&api, *conversation, "CommentAdded").await;
    }
    assert_eq!(replies, CLIENTS * WRITES.div_ceil(2));
    assert_eq!(comments, CLIENTS * (WRITES / 2));
}

/// Every event of `event_type` in the log.
async fn all_of(api: &TestApi, event_type: &str) -> usize {
    api.service
        .store()
        .read_all(switchboard_store::Position::START, 100_000)
        .await
        .expect("read the log")
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_repeats_of_a_creation_create_once() {
    let api = Arc::new(TestApi::start().await);
    let inbox = "mutation($input: CreateInboxInput!) { createInbox(input: $input) {
        replayed userErrors { code } inbox { id } } }";
    let contact = "mutation($input: CreateContactInput!) { createContact(input: $input) {
        replayed userErrors { code } contact { id } } }";
    let mut created = 0;
    for concurrent in [2usize, 4, 8] {
        for trial in 0..20 {
            created += 1;
            for (query, input, field) in [
                (
                    inbox,
                    json!({"name": format!("Inbox {concurrent}-{trial}")}),
                    "createInbox",
                ),
                (
                    contact,
                    json!({"identities": [{"kind": "EMAIL",
                        "value": format!("c{concurrent}-{trial}@customer.test")}]}),
                    "createContact",
                ),
            ] {
                let mut input = input;
                input["clientMutationId"] = json!(format!("{field}-{concurrent}-{trial}"));
                let requests = (0..concurrent).map(|_| {
                    let api = api.clone();
                    let variables = json!({ "input": input });
                    tokio::spawn(async move { api.gql(api.admin, query, variables).await })
                });
                let mut ids = std::collections::HashSet::new();
                let mut fresh = 0;
                for reply in futures::future::join_all(requests).await {
                    let reply = reply.expect("request task");
                    let payload = &reply.data()[field];
                    assert_eq!(payload["userErrors"], json!([]), "{field}: {payload}");
                    if payload["replayed"] == false {
                        fresh += 1;
                    }
                    let object = if field == "createInbox" {
                        "inbox"
                    } else {
                        "contact"
                    };
                    ids.insert(payload[object]["id"].clone());
                }
                assert_eq!(
                    fresh, 1,
                    "{field} {concurrent}-{trial}: one request creates"
                );
                assert_eq!(
                    ids.len(),
                    1,
                    "{field} {concurrent}-{trial}: one object for all"
                );
            }
            assert_eq!(all_of(&api, "InboxCreated").await, created);
            assert_eq!(all_of(&api, "ContactRecordCreated").await, created);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn different_requests_racing_with_one_key_write_one_of_them() {
    // Each request creates a contact with an address of its own under one key: one of them is
    // created; the others are refused before they write anything, not even the reservation of
    // their address (a multi-stream command used to append it before finding the key taken).
    let api = Arc::new(TestApi::start().await);
    let contact = "mutation($input: CreateContactInput!) { createContact(input: $input) {
        replayed userErrors { code } contact { id } } }";
    let reserved = all_of(&api, "UniqueValueReserved").await;
    let mut created = 0;
    for concurrent in [2usize, 4, 8] {
        for trial in 0..20 {
            let key = format!("one-key-{concurrent}-{trial}");
            let requests = (0..concurrent).map(|n| {
                let api = api.clone();
                let variables = json!({ "input": {
                    "clientMutationId": key,
                    "identities": [{"kind": "EMAIL",
                        "value": format!("r{concurrent}-{trial}-{n}@customer.test")}],
                }});
                tokio::spawn(async move { api.gql(api.admin, contact, variables).await })
            });
            let (mut fresh, mut refused) = (0, 0);
            for reply in futures::future::join_all(requests).await {
                let reply = reply.expect("request task");
                match reply.error_code() {
                    Some("IDEMPOTENCY_KEY_REUSED") => refused += 1,
                    None => {
                        let payload = &reply.data()["createContact"];
                        assert_eq!(payload["userErrors"], json!([]), "{payload}");
                        assert_eq!(payload["replayed"], false, "{payload}");
                        fresh += 1;
                    }
                    Some(other) => panic!("{concurrent}-{trial}: unexpected {other}"),
                }
            }
            created += 1;
            assert_eq!(
                (fresh, refused),
                (1, concurrent - 1),
                "{concurrent}-{trial}"
            );
            assert_eq!(all_of(&api, "ContactRecordCreated").await, created);
            assert_eq!(
                all_of(&api, "UniqueValueReserved").await,
                reserved + created,
                "{concurrent}-{trial}: only the winner reserved its address"
            );
        }
    }
}
