//! Conversation mutations: the life of a conversation from its first inbound message to its
//! reopening, business-rule failures, idempotency, expected versions, e-mail filters, delivery
//! reports and private conversations.

use proto_events::event::Role;
use serde_json::{Value, json};

use super::{Org, fail, head, read, refuse, succeed, user_id};
use crate::support::TestApi;

/// The kinds of a conversation's timeline entries, in order.
async fn timeline(api: &TestApi, token: &Value, conversation: &Value) -> Vec<Value> {
    let data = read(
        api,
        api.admin,
        token,
        "query($id: ID!) { conversation(id: $id) {
            timeline(first: 50) { edges { node { kind bodyText mentions { name } } } } } }",
        json!({"id": conversation}),
    )
    .await;
    data["conversation"]["timeline"]["edges"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

fn kinds(entries: &[Value]) -> Vec<&str> {
    entries.iter().filter_map(|e| e["kind"].as_str()).collect()
}

#[tokio::test]
async fn a_conversation_goes_from_first_message_to_reopening() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let (admin, agent) = (api.admin, org.agent);

    let first = org.chat(&api, "visitor-1", "Hi, is anyone there?").await;
    let conversation = first["conversation"]["id"].clone();
    assert_eq!(first["conversation"]["status"], "OPEN");
    assert_eq!(first["conversationId"], conversation);
    assert!(first["messageId"].is_string());

    let assigned = succeed(
        &api,
        admin,
        "assignConversation",
        json!({"conversationId": conversation, "assigneeId": user_id(agent)}),
        "conversation { assignee { __typename ... on User { name } } }",
    )
    .await;
    assert_eq!(
        assigned["conversation"]["assignee"],
        json!({"__typename": "User", "name": "agent"})
    );
    let replied = succeed(
        &api,
        agent,
        "sendReply",
        json!({"conversationId": conversation, "bodyText": "Hello! How can I help?"}),
        "messageId conversation { outboundCount }",
    )
    .await;
    assert!(replied["messageId"].is_string());
    assert_eq!(replied["conversation"]["outboundCount"], 1);
    let commented = succeed(
        &api,
        agent,
        "addComment",
        json!({
            "conversationId": conversation,
            "bodyText": "@Ada this one asks about pricing",
            "mentionIds": [user_id(admin)],
        }),
        "commentId conversation { commentCount }",
    )
    .await;
    assert!(commented["commentId"].is_string());
    assert_eq!(commented["conversation"]["commentCount"], 1);
    let closed = succeed(
        &api,
        agent,
        "closeConversation",
        json!({"conversationId": conversation}),
        "conversation { status }",
    )
    .await;
    assert_eq!(closed["conversation"]["status"], "CLOSED");
    let again = refuse(
        &api,
        agent,
        "closeConversation",
        json!({"conversationId": conversation}),
        None,
        "ALREADY_CLOSED",
    )
    .await;
    assert!(again["conversation"].is_null());

    let back = org.chat(&api, "visitor-1", "One more question").await;
    assert_eq!(
        back["conversation"]["id"], conversation,
        "the visitor's conversation"
    );
    assert_eq!(
        back["conversation"]["status"], "OPEN",
        "the customer writing reopens it"
    );

    let entries = timeline(&api, &back["consistencyToken"], &conversation).await;
    assert_eq!(
        kinds(&entries),
        vec![
            "INBOUND_MESSAGE",
            "ASSIGNED",
            "OUTBOUND_MESSAGE",
            "COMMENT",
            "CLOSED",
            "REOPENED",
            "INBOUND_MESSAGE"
        ]
    );
    assert_eq!(entries[3]["mentions"], json!([{"name": "Ada Admin"}]));
    assert_eq!(entries[2]["bodyText"], "Hello! How can I help?");
}

#[tokio::test]
async fn business_rules_access_and_ids_are_enforced() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let (admin, agent) = (api.admin, org.agent);
    let outsider = api.user("outsider@acme.test", Role::Agent).await;
    let conversation = org.chat(&api, "visitor-2", "Hello").await["conversation"]["id"].clone();
    let input = json!({"conversationId": conversation});

    refuse(
        &api,
        agent,
        "unassignConversation",
        input.clone(),
        None,
        "NOT_ASSIGNED",
    )
    .await;
    refuse(
        &api,
        agent,
        "reopenConversation",
        input.clone(),
        None,
        "ALREADY_OPEN",
    )
    .await;
    refuse(
        &api,
        agent,
        "handOffConversation",
        input.clone(),
        None,
        "NO_BOT",
    )
    .await;
    refuse(
        &api,
        agent,
        "shareConversation",
        input.clone(),
        None,
        "NOT_PRIVATE",
    )
    .await;
    refuse(
        &api,
        agent,
        "sendReply",
        json!({"conversationId": conversation, "bodyText": "   "}),
        Some("bodyText"),
        "INVALID",
    )
    .await;
    refuse(
        &api,
        agent,
        "addComment",
        json!({"conversationId": conversation, "bodyText": "see", "mentionIds": [user_id(outsider)]}),
        Some("mentionIds"),
        "MENTION_NO_ACCESS",
    )
    .await;
    let team = succeed(
        &api,
        admin,
        "createTeam",
        json!({"name": "Elsewhere"}),
        "team { id }",
    )
    .await["team"]["id"]
        .clone();
    refuse(
        &api,
        agent,
        "assignConversation",
        json!({"conversationId": conversation, "assigneeId": team}),
        Some("assigneeId"),
        "ASSIGNEE_NO_ACCESS",
    )
    .await;
    succeed(
        &api,
        admin,
        "addInboxMember",
        json!({"inboxId": org.inbox, "memberId": team}),
        "",
    )
    .await;
    let to_team = succeed(
        &api,
        agent,
        "assignConversation",
        json!({"conversationId": conversation, "assigneeId": team}),
        "conversation { assignee { __typename } }",
    )
    .await;
    assert_eq!(to_team["conversation"]["assignee"]["__typename"], "Team");
    succeed(
        &api,
        agent,
        "unassignConversation",
        input.clone(),
        "conversation { id }",
    )
    .await;

    // Someone who cannot see it learns nothing; wrong ids are bad input.
    fail(
        &api,
        outsider,
        "closeConversation",
        input.clone(),
        "NOT_FOUND",
    )
    .await;
    let reply = fail(
        &api,
        agent,
        "closeConversation",
        json!({"conversationId": org.inbox}),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(
        reply.body["errors"][0]["extensions"]["field"],
        "conversationId"
    );
    fail(
        &api,
        agent,
        "assignConversation",
        json!({"conversationId": conversation, "assigneeId": org.inbox}),
        "BAD_USER_INPUT",
    )
    .await;
    // Inbound messages come from channels: admins may stand in for them, agents may not.
    fail(
        &api,
        agent,
        "receiveMessage",
        json!({
            "channelId": org.chat,
            "from": {"kind": "CHAT_VISITOR", "value": "visitor-2"},
            "bodyText": "forged",
        }),
        "FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn a_repeated_client_mutation_id_writes_nothing_new() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let create = json!({"name": "Billing", "clientMutationId": "inbox-billing"});
    let first = succeed(
        &api,
        api.admin,
        "createInbox",
        create.clone(),
        "inbox { id name }",
    )
    .await;
    assert_eq!(first["replayed"], false);
    assert_eq!(first["clientMutationId"], "inbox-billing");
    let before = head(&api).await;
    let second = succeed(&api, api.admin, "createInbox", create, "inbox { id name }").await;
    assert_eq!(second["replayed"], true);
    assert_eq!(second["inbox"], first["inbox"], "the first call's inbox");
    assert_eq!(second["version"], first["version"]);
    assert_eq!(head(&api).await, before, "nothing written");

    let conversation = org.chat(&api, "visitor-3", "Hello").await["conversation"]["id"].clone();
    let reply = json!({
        "conversationId": conversation,
        "bodyText": "Hi there",
        "clientMutationId": "reply-1",
    });
    let sent = succeed(&api, org.agent, "sendReply", reply.clone(), "messageId").await;
    let before = head(&api).await;
    let repeated = succeed(
        &api,
        org.agent,
        "sendReply",
        reply,
        "messageId conversation { outboundCount }",
    )
    .await;
    assert_eq!(repeated["replayed"], true);
    assert!(sent["messageId"].is_string(), "{sent}");
    assert_eq!(
        repeated["messageId"], sent["messageId"],
        "the first call's message"
    );
    assert_eq!(repeated["consistencyToken"], sent["consistencyToken"]);
    assert_eq!(repeated["conversation"]["outboundCount"], 1);
    assert_eq!(head(&api).await, before, "nothing written");
    // The key is the viewer's: another user with the same key acts anew.
    let other = succeed(
        &api,
        api.admin,
        "sendReply",
        json!({"conversationId": conversation, "bodyText": "Me too", "clientMutationId": "reply-1"}),
        "conversation { outboundCount }",
    )
    .await;
    assert_eq!(other["replayed"], false);
    assert_eq!(other["conversation"]["outboundCount"], 2);

    // A comment and a received message: their repeats also name what the first call recorded.
    let comment =
        json!({"conversationId": conversation, "bodyText": "Note", "clientMutationId": "note-1"});
    let noted = succeed(&api, org.agent, "addComment", comment.clone(), "commentId").await;
    let again = succeed(&api, org.agent, "addComment", comment, "commentId").await;
    assert_eq!(again["replayed"], true);
    assert!(noted["commentId"].is_string(), "{noted}");
    assert_eq!(again["commentId"], noted["commentId"]);
    let message = json!({
        "channelId": org.chat,
        "from": {"kind": "CHAT_VISITOR", "value": "visitor-3"},
        "bodyText": "Still there?",
        "clientMutationId": "inbound-1",
    });
    let received = succeed(
        &api,
        api.admin,
        "receiveMessage",
        message.clone(),
        "messageId",
    )
    .await;
    let again = succeed(&api, api.admin, "receiveMessage", message, "messageId").await;
    assert_eq!(again["replayed"], true);
    assert!(received["messageId"].is_string(), "{received}");
    assert_eq!(again["messageId"], received["messageId"]);
}

#[tokio::test]
async fn an_expected_version_that_moved_on_is_a_conflict() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let received = org.chat(&api, "visitor-4", "Hello").await;
    let conversation = received["conversation"]["id"].clone();
    let version = received["version"].as_u64().expect("a version");
    let before = head(&api).await;
    let reply = fail(
        &api,
        org.agent,
        "closeConversation",
        json!({"conversationId": conversation, "expectedVersion": version - 1}),
        "CONFLICT",
    )
    .await;
    assert_eq!(
        reply.body["errors"][0]["extensions"]["currentVersion"],
        version
    );
    assert_eq!(head(&api).await, before, "nothing written");
    let closed = succeed(
        &api,
        org.agent,
        "closeConversation",
        json!({"conversationId": conversation, "expectedVersion": version}),
        "conversation { status }",
    )
    .await;
    assert_eq!(closed["conversation"]["status"], "CLOSED");
    assert_eq!(closed["version"], version + 1);
}

#[tokio::test]
async fn email_is_threaded_filtered_restored_and_delivered() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let admin = api.admin;
    let email = succeed(
        &api,
        admin,
        "connectEmailChannel",
        json!({"inboxId": org.inbox, "address": "support@acme.test"}),
        "channel { id }",
    )
    .await["channel"]["id"]
        .clone();
    succeed(
        &api,
        admin,
        "addEmailFilterRule",
        json!({"channelId": email, "action": "DENY", "pattern": "spam.example"}),
        "",
    )
    .await;
    let selection = "conversation { id status subject } conversationId messageId";
    let mail = |from: &str, message_id: &str, in_reply_to: Option<&str>| {
        json!({
            "channelId": email,
            "from": {"kind": "EMAIL", "value": from},
            "subject": "Pricing",
            "bodyText": "How much is it?",
            "email": {"messageId": message_id, "inReplyTo": in_reply_to},
        })
    };

    let filtered = succeed(
        &api,
        admin,
        "receiveMessage",
        mail("deals@spam.example", "s1@spam.example", None),
        selection,
    )
    .await;
    assert_eq!(
        filtered["conversation"]["status"], "FILTERED",
        "{filtered:#}"
    );
    assert_eq!(filtered["conversationId"], filtered["conversation"]["id"]);
    let restored = succeed(
        &api,
        org.agent,
        "restoreFilteredMessage",
        json!({"conversationId": filtered["conversationId"], "messageId": filtered["messageId"]}),
        "conversation { status }",
    )
    .await;
    assert_eq!(restored["conversation"]["status"], "OPEN");

    let first = succeed(
        &api,
        admin,
        "receiveMessage",
        mail("ada@customer.test", "a1@customer.test", None),
        selection,
    )
    .await;
    let conversation = first["conversation"]["id"].clone();
    assert_eq!(first["conversation"]["subject"], "Pricing");
    let answer = succeed(
        &api,
        admin,
        "receiveMessage",
        mail(
            "ada@customer.test",
            "a2@customer.test",
            Some("a1@customer.test"),
        ),
        selection,
    )
    .await;
    assert_eq!(
        answer["conversation"]["id"], conversation,
        "threaded by In-Reply-To"
    );
    let duplicate = succeed(
        &api,
        admin,
        "receiveMessage",
        mail(
            "ada@customer.test",
            "a2@customer.test",
            Some("a1@customer.test"),
        ),
        selection,
    )
    .await;
    assert!(
        duplicate["messageId"].is_null(),
        "a duplicate is recorded once"
    );

    let reply = succeed(
        &api,
        org.agent,
        "sendReply",
        json!({"conversationId": conversation, "bodyText": "10 EUR a month"}),
        "messageId",
    )
    .await;
    let delivery = json!({
        "conversationId": conversation,
        "messageId": reply["messageId"],
        "status": "SUCCEEDED",
        "providerMessageId": "smtp-1",
    });
    fail(
        &api,
        org.agent,
        "recordDelivery",
        delivery.clone(),
        "FORBIDDEN",
    )
    .await;
    let failed = json!({
        "conversationId": conversation,
        "messageId": reply["messageId"],
        "status": "FAILED_PERMANENTLY",
    });
    let no_reason = fail(&api, admin, "recordDelivery", failed, "BAD_USER_INPUT").await;
    assert_eq!(no_reason.body["errors"][0]["extensions"]["field"], "reason");
    let delivered = succeed(
        &api,
        admin,
        "recordDelivery",
        delivery,
        "conversation { id }",
    )
    .await;
    assert!(delivered["version"].as_u64() > reply["version"].as_u64());

    fail(
        &api,
        admin,
        "receiveMessage",
        json!({
            "channelId": email,
            "from": {"kind": "CHAT_VISITOR", "value": "v"},
            "bodyText": "x",
        }),
        "BAD_USER_INPUT",
    )
    .await;
}

#[tokio::test]
async fn a_private_conversation_is_its_owners_until_shared() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let colleague = api.user("colleague@acme.test", Role::Agent).await;
    succeed(
        &api,
        api.admin,
        "addInboxMember",
        json!({"inboxId": org.inbox, "memberId": user_id(colleague)}),
        "",
    )
    .await;
    let private = succeed(
        &api,
        org.agent,
        "connectEmailChannel",
        json!({"inboxId": org.inbox, "address": "agent@gmail.test", "private": true}),
        "channel { id }",
    )
    .await["channel"]["id"]
        .clone();
    let conversation = succeed(
        &api,
        api.admin,
        "receiveMessage",
        json!({
            "channelId": private,
            "from": {"kind": "EMAIL", "value": "friend@customer.test"},
            "bodyText": "Lunch?",
        }),
        "conversationId",
    )
    .await["conversationId"]
        .clone();
    let input = json!({"conversationId": conversation});
    fail(
        &api,
        colleague,
        "closeConversation",
        input.clone(),
        "NOT_FOUND",
    )
    .await;
    fail(
        &api,
        colleague,
        "shareConversation",
        input.clone(),
        "NOT_FOUND",
    )
    .await;
    succeed(
        &api,
        org.agent,
        "shareConversation",
        input.clone(),
        "conversation { id }",
    )
    .await;
    refuse(
        &api,
        org.agent,
        "shareConversation",
        input.clone(),
        None,
        "NOT_PRIVATE",
    )
    .await;
    let closed = succeed(
        &api,
        colleague,
        "closeConversation",
        input,
        "conversation { status }",
    )
    .await;
    assert_eq!(closed["conversation"]["status"], "CLOSED");
}
