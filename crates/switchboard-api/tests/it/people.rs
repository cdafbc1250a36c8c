//! People who leave: deactivation and reactivation through the API, and what a deactivated
//! user's tokens, assignments, subscriptions and history become.

use proto_events::event::Role;
use serde_json::{Value, json};
use switchboard_api::ids::{self, Kind};
use uuid::Uuid;

use crate::subscriptions::{connect, next, subscribe};
use crate::support::{Reply, TestApi};
use crate::tokens::with_token;

const PAYLOAD: &str = "userErrors { field message code } user { id name active }";

fn user_id(user: Uuid) -> String {
    ids::encode(Kind::User, user).0
}

/// Runs `mutation` (`deactivateUser`, `reactivateUser`, `revokeTokens`) on `user` as `by`.
async fn people(api: &TestApi, by: Uuid, mutation: &str, user: Uuid) -> Reply {
    let query = format!(
        "mutation($input: {}Input!) {{ {mutation}(input: $input) {{ {PAYLOAD} }} }}",
        capitalised(mutation)
    );
    api.gql(by, &query, json!({"input": {"userId": user_id(user)}}))
        .await
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn payload<'r>(reply: &'r Reply, mutation: &str) -> &'r Value {
    &reply.data()[mutation]
}

const VIEWER: &str = "{ viewer { name } }";

/// The admin deactivates `user`.
async fn deactivate(api: &TestApi, user: Uuid) {
    let reply = people(api, api.admin, "deactivateUser", user).await;
    assert_eq!(
        payload(&reply, "deactivateUser")["userErrors"],
        json!([]),
        "{:#}",
        reply.body
    );
}

/// A Support inbox with a chat channel and an agent who is a member: (inbox, channel, agent).
async fn support_inbox_with_agent(api: &TestApi) -> (Uuid, Uuid, Uuid) {
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    api.run(switchboard_service::Command::Setup(
        switchboard_domain::setup::SetupCommand::AddInboxMember {
            inbox_id: inbox,
            member: proto_events::event::Member::User { id: agent },
        },
    ))
    .await;
    (inbox, channel, agent)
}

#[tokio::test]
async fn a_deactivated_users_tokens_are_refused_at_once_and_new_ones_after_reactivation() {
    let api = TestApi::start().await;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    let token = api.token(agent);
    let as_agent = |token: String| {
        let api = &api;
        async move { with_token(api, &token, VIEWER).await }
    };
    // The token verifies, and is remembered by the verified-token cache.
    let before = as_agent(token.clone()).await;
    assert_eq!(
        before.data()["viewer"]["name"],
        "agent",
        "{:#}",
        before.body
    );

    let reply = people(&api, api.admin, "deactivateUser", agent).await;
    let done = payload(&reply, "deactivateUser");
    assert_eq!(done["userErrors"], json!([]), "{:#}", reply.body);
    assert_eq!(done["user"]["active"], false);

    let after = as_agent(token.clone()).await;
    assert_eq!(
        after.error_code(),
        Some("UNAUTHENTICATED"),
        "{:#}",
        after.body
    );
    assert!(after.error_says("deactivated"), "{:#}", after.body);
    // A fresh token of a deactivated user is refused too.
    let fresh = as_agent(api.token(agent)).await;
    assert_eq!(fresh.error_code(), Some("UNAUTHENTICATED"));

    let reply = people(&api, api.admin, "reactivateUser", agent).await;
    assert_eq!(
        payload(&reply, "reactivateUser")["user"]["active"],
        true,
        "{:#}",
        reply.body
    );
    // The token from before the deactivation stays refused; a token issued after the
    // reactivation (a second later, as `iat` counts whole seconds) is honoured.
    let old = as_agent(token).await;
    assert_eq!(old.error_code(), Some("UNAUTHENTICATED"), "{:#}", old.body);
    assert!(old.error_says("revoked"), "{:#}", old.body);
    let later = api.state.keys().mint(
        agent,
        "agent@acme.test",
        chrono::Utc::now() + chrono::TimeDelta::seconds(2),
        chrono::TimeDelta::hours(1),
    );
    let new = as_agent(later).await;
    assert_eq!(new.data()["viewer"]["name"], "agent", "{:#}", new.body);
}

#[tokio::test]
async fn only_admins_deactivate_and_never_themselves_nor_the_last_active_admin() {
    let api = TestApi::start().await;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    let other = api.user("other@acme.test", Role::Agent).await;
    let reply = people(&api, agent, "deactivateUser", other).await;
    assert_eq!(reply.error_code(), Some("FORBIDDEN"), "{:#}", reply.body);

    let reply = people(&api, api.admin, "deactivateUser", api.admin).await;
    let errors = &payload(&reply, "deactivateUser")["userErrors"];
    assert_eq!(errors[0]["code"], "SELF", "{:#}", reply.body);
    assert_eq!(errors[0]["field"], json!(["input", "userId"]));

    // A second admin may not deactivate the only super admin (FORBIDDEN), nor may a super
    // admin be left without another active one.
    let admin = api.user("other-admin@acme.test", Role::Admin).await;
    let reply = people(&api, admin, "deactivateUser", api.admin).await;
    assert_eq!(reply.error_code(), Some("FORBIDDEN"), "{:#}", reply.body);
    let second = api.user("second@acme.test", Role::SuperAdmin).await;
    let reply = people(&api, second, "deactivateUser", api.admin).await;
    assert_eq!(
        payload(&reply, "deactivateUser")["userErrors"],
        json!([]),
        "{:#}",
        reply.body
    );
    let reply = people(&api, admin, "deactivateUser", second).await;
    assert_eq!(reply.error_code(), Some("FORBIDDEN"), "{:#}", reply.body);
    // Demoting the last active super admin is refused; the deactivated one does not count.
    let reply = api
        .gql(
            second,
            "mutation($input: ChangeUserRoleInput!) { changeUserRole(input: $input) {
                userErrors { field code } } }",
            json!({"input": {"userId": user_id(second), "role": "ADMIN"}}),
        )
        .await;
    assert_eq!(
        reply.data()["changeUserRole"]["userErrors"][0]["code"],
        "LAST_SUPER_ADMIN",
        "{:#}",
        reply.body
    );
}

#[tokio::test]
async fn a_deactivated_user_cannot_be_assigned_and_keeps_their_history() {
    let api = TestApi::start().await;
    let (_, channel, agent) = support_inbox_with_agent(&api).await;
    let started = api.chat(channel, "visitor", "hello").await;
    api.settle(&started).await;
    let conversation = started
        .stream
        .strip_prefix("conversation-")
        .and_then(|id| id.parse::<Uuid>().ok())
        .expect("a conversation stream");
    let conversation = ids::encode(Kind::Conversation, conversation).0;
    let comment = api
        .gql(
            agent,
            "mutation($input: AddCommentInput!) { addComment(input: $input) { userErrors { code } } }",
            json!({"input": {"conversationId": conversation, "bodyText": "On it"}}),
        )
        .await;
    assert_eq!(
        comment.data()["addComment"]["userErrors"],
        json!([]),
        "{:#}",
        comment.body
    );
    deactivate(&api, agent).await;

    let assign = "mutation($input: AssignConversationInput!) { assignConversation(input: $input) {
        userErrors { field message code } } }";
    let reply = api
        .gql(
            api.admin,
            assign,
            json!({"input": {"conversationId": conversation, "assigneeId": user_id(agent)}}),
        )
        .await;
    let errors = &reply.data()["assignConversation"]["userErrors"];
    assert_eq!(
        errors[0]["code"], "ASSIGNEE_DEACTIVATED",
        "{:#}",
        reply.body
    );
    assert_eq!(errors[0]["field"], json!(["input", "assigneeId"]));

    // Their comment is still theirs, by name, and the directory still lists them.
    let thread = api
        .gql_with(
            Some(api.admin),
            &[],
            "query($id: ID!) { conversation(id: $id) { timeline(first: 20) { nodes { kind bodyText
                author { user { name active } } } } } }",
            json!({"id": conversation}),
        )
        .await;
    let nodes = thread.data()["conversation"]["timeline"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let theirs = nodes
        .iter()
        .find(|n| n["bodyText"] == "On it")
        .unwrap_or_else(|| panic!("the comment is in the timeline: {:#}", thread.body));
    assert_eq!(
        theirs["author"]["user"],
        json!({"name": "agent", "active": false})
    );
}

/// Deactivating a user, or revoking their tokens, ends their open subscriptions with
/// UNAUTHENTICATED at once, although nothing they follow changes afterwards.
#[tokio::test]
async fn a_deactivated_or_revoked_users_subscription_ends_at_once() {
    for cut_off in ["deactivateUser", "revokeTokens"] {
        let api = TestApi::start().await;
        let (_, channel, agent) = support_inbox_with_agent(&api).await;
        let started = api.chat(channel, "visitor", "hello").await;
        api.settle(&started).await;
        let conversation = started
            .stream
            .strip_prefix("conversation-")
            .map(|id| ids::encode(Kind::Conversation, id.parse().expect("an id")).0)
            .expect("a conversation");
        let addr = api.serve().await;
        let token = format!("Bearer {}", api.token(agent));
        let mut socket = connect(addr, json!({"Authorization": token})).await;
        assert_eq!(
            next(&mut socket).await.map(|m| m["type"].clone()),
            Some(json!("connection_ack"))
        );
        let read = api.gql(agent, "{ consistencyToken }", json!({})).await;
        subscribe(
            &mut socket,
            "1",
            "subscription($after: String) { viewerEvents(after: $after) { reason } }",
            json!({"after": read.data()["consistencyToken"]}),
        )
        .await;
        // A mention shows the subscription is live.
        let mention = api
            .gql(
                api.admin,
                "mutation($input: AddCommentInput!) { addComment(input: $input) {
                    userErrors { message } } }",
                json!({"input": {"conversationId": conversation, "bodyText": "Look",
                                 "mentionIds": [user_id(agent)]}}),
            )
            .await;
        assert_eq!(mention.data()["addComment"]["userErrors"], json!([]));
        let update = next(&mut socket).await.expect("the mention");
        assert_eq!(
            update["payload"]["data"]["viewerEvents"]["reason"], "MENTIONED",
            "{update:#}"
        );

        let reply = people(&api, api.admin, cut_off, agent).await;
        assert_eq!(
            payload(&reply, cut_off)["userErrors"],
            json!([]),
            "{:#}",
            reply.body
        );
        let refused = next(&mut socket).await.expect("a message");
        assert_eq!(
            refused["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{cut_off}: {refused:#}"
        );
    }
}

#[tokio::test]
async fn a_deactivated_users_socket_is_refused_at_connection_init() {
    let api = TestApi::start().await;
    let (_, _, agent) = support_inbox_with_agent(&api).await;
    let addr = api.serve().await;
    let token = format!("Bearer {}", api.token(agent));
    deactivate(&api, agent).await;
    let mut socket = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut socket).await,
        None,
        "the connection closes instead of being acknowledged"
    );
}
