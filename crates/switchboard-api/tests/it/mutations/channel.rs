//! Channel mutations: connecting, moving and disconnecting channels, routing rules, e-mail
//! filters.

use proto_events::event::Role;
use serde_json::json;

use super::{fail, read, refuse, succeed, user_id};
use crate::support::TestApi;

#[tokio::test]
async fn admins_connect_move_and_disconnect_channels() {
    let api = TestApi::start().await;
    let admin = api.admin;
    let support = succeed(
        &api,
        admin,
        "createInbox",
        json!({"name": "Support"}),
        "inbox { id }",
    )
    .await["inbox"]["id"]
        .clone();
    let sales = succeed(
        &api,
        admin,
        "createInbox",
        json!({"name": "Sales"}),
        "inbox { id }",
    )
    .await["inbox"]["id"]
        .clone();

    let selection = "channel { id kind name address private fallback connected inboxId }";
    let email = succeed(
        &api,
        admin,
        "connectEmailChannel",
        json!({"inboxId": support, "address": " Support@Acme.test "}),
        selection,
    )
    .await;
    assert_eq!(email["channel"]["address"], "support@acme.test");
    assert_eq!(email["channel"]["private"], false);
    refuse(
        &api,
        admin,
        "connectEmailChannel",
        json!({"inboxId": sales, "address": "support@acme.test"}),
        Some("address"),
        "TAKEN",
    )
    .await;
    let chat = succeed(
        &api,
        admin,
        "connectChatChannel",
        json!({"inboxId": support, "name": "Website"}),
        selection,
    )
    .await["channel"]
        .clone();
    assert_eq!(chat["kind"], "CHAT");
    let messenger = succeed(
        &api,
        admin,
        "connectMessengerChannel",
        json!({"inboxId": support, "pageId": "1234", "pageName": "Acme"}),
        selection,
    )
    .await["channel"]
        .clone();
    assert_eq!(
        (&messenger["kind"], &messenger["name"]),
        (&json!("MESSENGER"), &json!("Acme"))
    );
    refuse(
        &api,
        admin,
        "connectMessengerChannel",
        json!({"inboxId": sales, "pageId": "1234", "pageName": "Again"}),
        Some("pageId"),
        "TAKEN",
    )
    .await;
    let form = succeed(
        &api,
        admin,
        "connectFormChannel",
        json!({"inboxId": sales, "name": "Contact us"}),
        selection,
    )
    .await["channel"]
        .clone();
    assert_eq!(form["kind"], "FORM");

    let moved = succeed(
        &api,
        admin,
        "moveChannel",
        json!({"channelId": chat["id"], "inboxId": sales}),
        selection,
    )
    .await;
    assert_eq!(moved["channel"]["inboxId"], sales);
    let gone = succeed(
        &api,
        admin,
        "disconnectChannel",
        json!({"channelId": messenger["id"]}),
        selection,
    )
    .await;
    assert_eq!(gone["channel"]["connected"], false);
    refuse(
        &api,
        admin,
        "disconnectChannel",
        json!({"channelId": messenger["id"]}),
        Some("channelId"),
        "ALREADY_DISCONNECTED",
    )
    .await;

    let now = read(
        &api,
        admin,
        &gone["consistencyToken"],
        "query($id: ID!) { inbox(id: $id) { channels { kind } } }",
        json!({"id": sales}),
    )
    .await;
    let kinds: Vec<&str> = now["inbox"]["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"CHAT") && kinds.contains(&"FORM"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn agents_connect_only_their_own_private_account() {
    let api = TestApi::start().await;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    let inbox = succeed(
        &api,
        api.admin,
        "createInbox",
        json!({"name": "Support"}),
        "inbox { id }",
    )
    .await["inbox"]["id"]
        .clone();
    succeed(
        &api,
        api.admin,
        "addInboxMember",
        json!({"inboxId": inbox, "memberId": user_id(agent)}),
        "",
    )
    .await;
    fail(
        &api,
        agent,
        "connectChatChannel",
        json!({"inboxId": inbox, "name": "Mine"}),
        "FORBIDDEN",
    )
    .await;
    fail(
        &api,
        agent,
        "connectEmailChannel",
        json!({"inboxId": inbox, "address": "team@acme.test"}),
        "FORBIDDEN",
    )
    .await;
    let private = succeed(
        &api,
        agent,
        "connectEmailChannel",
        json!({"inboxId": inbox, "address": "agent@gmail.test", "private": true}),
        "channel { id private }",
    )
    .await;
    assert_eq!(private["channel"]["private"], true);
    fail(
        &api,
        api.admin,
        "connectEmailChannel",
        json!({"inboxId": inbox, "address": "x@acme.test", "ownerId": user_id(agent)}),
        "BAD_USER_INPUT",
    )
    .await;
    succeed(
        &api,
        agent,
        "disconnectChannel",
        json!({"channelId": private["channel"]["id"]}),
        "channel { connected }",
    )
    .await;
}

#[tokio::test]
async fn routing_rules_and_email_filters_are_set_and_removed() {
    let api = TestApi::start().await;
    let admin = api.admin;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    let inbox = succeed(
        &api,
        admin,
        "createInbox",
        json!({"name": "Support"}),
        "inbox { id }",
    )
    .await["inbox"]["id"]
        .clone();
    let email = succeed(
        &api,
        admin,
        "connectEmailChannel",
        json!({"inboxId": inbox, "address": "support@acme.test"}),
        "channel { id }",
    )
    .await["channel"]["id"]
        .clone();
    let chat = succeed(
        &api,
        admin,
        "connectChatChannel",
        json!({"inboxId": inbox, "name": "Website"}),
        "channel { id }",
    )
    .await["channel"]["id"]
        .clone();
    succeed(
        &api,
        admin,
        "addInboxMember",
        json!({"inboxId": inbox, "memberId": user_id(agent)}),
        "",
    )
    .await;

    refuse(
        &api,
        admin,
        "setRoutingRule",
        json!({"scopeId": inbox, "strategy": "ROUND_ROBIN"}),
        Some("targetIds"),
        "INVALID",
    )
    .await;
    let rule = succeed(
        &api,
        admin,
        "setRoutingRule",
        json!({"scopeId": inbox, "strategy": "LEAST_LOADED", "targetIds": [user_id(agent)]}),
        "routingRule { id strategy inboxId channelId targetUsers { name } targetTeams { name } }",
    )
    .await["routingRule"]
        .clone();
    assert_eq!(rule["strategy"], "LEAST_LOADED");
    assert_eq!(rule["inboxId"], inbox);
    assert!(rule["channelId"].is_null());
    assert_eq!(rule["targetUsers"], json!([{"name": "agent"}]));
    refuse(
        &api,
        admin,
        "setRoutingRule",
        json!({"scopeId": chat, "strategy": "BOT_FIRST"}),
        Some("botId"),
        "INVALID",
    )
    .await;
    let reply = fail(
        &api,
        admin,
        "setRoutingRule",
        json!({"scopeId": user_id(agent), "strategy": "ROUND_ROBIN"}),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(reply.body["errors"][0]["extensions"]["field"], "scopeId");
    let removed = succeed(
        &api,
        admin,
        "removeRoutingRule",
        json!({"routingRuleId": rule["id"]}),
        "removedRoutingRuleId",
    )
    .await;
    assert_eq!(removed["removedRoutingRuleId"], rule["id"]);
    fail(
        &api,
        admin,
        "removeRoutingRule",
        json!({"routingRuleId": rule["id"]}),
        "NOT_FOUND",
    )
    .await;

    let filters = succeed(
        &api,
        admin,
        "setBuiltInEmailFilters",
        json!({
            "channelId": email,
            "automatedReplies": false,
            "bulkMail": true,
            "roleAddresses": false,
            "unsubscribeHeader": false,
        }),
        "channel { id } builtInFilters { automatedReplies bulkMail roleAddresses unsubscribeHeader }",
    )
    .await;
    assert_eq!(
        filters["builtInFilters"],
        json!({"automatedReplies": false, "bulkMail": true, "roleAddresses": false, "unsubscribeHeader": false})
    );
    refuse(
        &api,
        admin,
        "setBuiltInEmailFilters",
        json!({
            "channelId": chat,
            "automatedReplies": true,
            "bulkMail": true,
            "roleAddresses": true,
            "unsubscribeHeader": true,
        }),
        Some("channelId"),
        "NOT_EMAIL",
    )
    .await;
    let deny = succeed(
        &api,
        admin,
        "addEmailFilterRule",
        json!({"channelId": email, "action": "DENY", "pattern": "@Spam.example"}),
        "emailFilterRule { id action address domain channelId }",
    )
    .await["emailFilterRule"]
        .clone();
    assert_eq!(deny["domain"], "spam.example");
    assert!(deny["address"].is_null());
    assert_eq!(deny["channelId"], email);
    refuse(
        &api,
        admin,
        "addEmailFilterRule",
        json!({"channelId": email, "action": "ALLOW", "pattern": "spam.example"}),
        Some("pattern"),
        "DUPLICATE",
    )
    .await;
    let allow = succeed(
        &api,
        admin,
        "addEmailFilterRule",
        json!({"channelId": email, "action": "ALLOW", "pattern": "Boss@Acme.test"}),
        "emailFilterRule { action address }",
    )
    .await;
    assert_eq!(
        allow["emailFilterRule"],
        json!({"action": "ALLOW", "address": "boss@acme.test"})
    );
    let removed = succeed(
        &api,
        admin,
        "removeEmailFilterRule",
        json!({"emailFilterRuleId": deny["id"], "clientMutationId": "rm-deny"}),
        "removedEmailFilterRuleId channel { id }",
    )
    .await;
    assert_eq!(removed["removedEmailFilterRuleId"], deny["id"]);
    assert_eq!(removed["channel"]["id"], email);
    // Repeating the removal with its key answers like the first time; without it, the rule is
    // gone.
    let again = succeed(
        &api,
        admin,
        "removeEmailFilterRule",
        json!({"emailFilterRuleId": deny["id"], "clientMutationId": "rm-deny"}),
        "channel { id }",
    )
    .await;
    assert_eq!(again["replayed"], true);
    assert_eq!(again["channel"]["id"], email);
    fail(
        &api,
        admin,
        "removeEmailFilterRule",
        json!({"emailFilterRuleId": deny["id"]}),
        "NOT_FOUND",
    )
    .await;
    fail(
        &api,
        agent,
        "addEmailFilterRule",
        json!({"channelId": email, "action": "DENY", "pattern": "x.example"}),
        "FORBIDDEN",
    )
    .await;
}
