//! The day of a shared inbox, through GraphQL only, against the real binary: an admin sets up a
//! team, agents, an open and a restricted inbox with chat and e-mail and a routing rule;
//! customers write; routing assigns; agents reply, comment with a mention, reassign, close; the
//! customer writes again and the conversation reopens. Then every read the product promises is
//! checked, an agent outside the restricted inbox is shown to see none of it, and the server is
//! stopped with SIGTERM and started again on the same data.

use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{DEADLINE, Gql, Subscriptions, eventually, subscription_error_code};
use crate::server::{self, Server};

const ADMIN: &str = "admin@acme.test";
const ANA: &str = "ana@acme.test";
const BEN: &str = "ben@acme.test";
const OLGA: &str = "olga@acme.test";
const CARLA: &str = "carla@customer.test";

/// A conversation with its timeline, as an agent UI would ask for it.
const THREAD: &str = "query($id: ID!) { conversation(id: $id) {
    id status version subject inboundCount outboundCount commentCount
    inbox { id name } channel { id kind }
    contact { id name identities { kind value } }
    assignee { __typename ... on User { id email } ... on Team { id name } }
    timeline(first: 100) {
        pageInfo { hasNextPage }
        nodes { position kind bodyText
            author { kind user { email } }
            mentions { email }
            assignee { ... on User { email } }
            previousAssignee { ... on User { email } } } } } }";

/// The kinds of a thread's timeline entries, in order.
fn kinds(thread: &Value) -> Vec<String> {
    thread["conversation"]["timeline"]["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["kind"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn ids_of(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn assignee_email(thread: &Value) -> Option<String> {
    thread["conversation"]["assignee"]["email"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_in_a_shared_inbox_end_to_end_and_across_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let secret = server::fresh_secret();
    server::bootstrap(&data, ADMIN);
    // The store is free before the first start: the CLI mints the admin's token.
    let admin = server::cli_token(&data, &secret, ADMIN);

    let srv = Server::start(&data, &secret, &[]);
    let gql = Gql::new(srv.url("/graphql"));

    // --- Set-up by the admin ------------------------------------------------------------
    let viewer = gql
        .query(&admin, "{ viewer { email role } }", json!({}))
        .await;
    assert_eq!(
        viewer["viewer"],
        json!({"email": ADMIN, "role": "SUPER_ADMIN"})
    );

    let team = gql
        .mutate(
            &admin,
            "createTeam",
            "CreateTeamInput",
            json!({"name": "Billing team"}),
            "team { id }",
        )
        .await
        .str("/team/id");
    let mut users = Vec::new();
    for (email, name) in [
        (ANA, "Ana Agent"),
        (BEN, "Ben Agent"),
        (OLGA, "Olga Outsider"),
    ] {
        let user = gql
            .mutate(
                &admin,
                "createUser",
                "CreateUserInput",
                json!({"email": email, "name": name, "role": "AGENT"}),
                "user { id availability }",
            )
            .await;
        users.push((user.str("/user/id"), server_uuid(&user)));
    }
    let [(ana_id, ana_uuid), (ben_id, ben_uuid), (olga_id, olga_uuid)] =
        <[(String, uuid::Uuid); 3]>::try_from(users).expect("three users");
    let ana = server::mint(&secret, ana_uuid, ANA);
    let ben = server::mint(&secret, ben_uuid, BEN);
    let olga = server::mint(&secret, olga_uuid, OLGA);
    for user in [&ana_id, &ben_id] {
        gql.mutate(
            &admin,
            "addTeamMember",
            "TeamMemberInput",
            json!({"teamId": team, "userId": user}),
            "",
        )
        .await;
    }

    let support = gql
        .mutate(
            &admin,
            "createInbox",
            "CreateInboxInput",
            json!({"name": "Support"}),
            "inbox { id }",
        )
        .await
        .str("/inbox/id");
    let billing = gql
        .mutate(
            &admin,
            "createInbox",
            "CreateInboxInput",
            json!({"name": "Billing"}),
            "inbox { id }",
        )
        .await
        .str("/inbox/id");
    gql.mutate(
        &admin,
        "addInboxMember",
        "InboxMemberInput",
        json!({"inboxId": support, "memberId": olga_id}),
        "",
    )
    .await;
    gql.mutate(
        &admin,
        "addInboxMember",
        "InboxMemberInput",
        json!({"inboxId": billing, "memberId": team}),
        "",
    )
    .await;
    let restricted = gql
        .mutate(
            &admin,
            "restrictInbox",
            "RestrictInboxInput",
            json!({"inboxId": billing, "teamIds": [team]}),
            "inbox { restricted restrictedToTeams { id } }",
        )
        .await;
    assert_eq!(
        restricted.0["inbox"]["restricted"],
        json!(true),
        "{:#}",
        restricted.0
    );

    // Live updates of the restricted inbox, subscribed before anything happens in it.
    let mut live = Subscriptions::connect(&srv.ws_url("/graphql/ws"), &admin).await;
    live.subscribe(
        "billing",
        "subscription($id: ID!) { inboxActivity(inboxId: $id) {
            position eventType conversation { id status } } }",
        json!({"id": billing}),
    )
    .await;
    let early = live.ping().await;
    assert!(
        early.is_empty(),
        "nothing happened in the inbox yet: {early:?}"
    );

    let billing_mail = gql
        .mutate(
            &admin,
            "connectEmailChannel",
            "ConnectEmailChannelInput",
            json!({"inboxId": billing, "address": "billing@acme.test"}),
            "channel { id kind }",
        )
        .await
        .str("/channel/id");
    let billing_chat = gql
        .mutate(
            &admin,
            "connectChatChannel",
            "ConnectChatChannelInput",
            json!({"inboxId": billing, "name": "Billing chat"}),
            "channel { id kind }",
        )
        .await
        .str("/channel/id");
    let support_mail = gql
        .mutate(
            &admin,
            "connectEmailChannel",
            "ConnectEmailChannelInput",
            json!({"inboxId": support, "address": "support@acme.test"}),
            "channel { id }",
        )
        .await
        .str("/channel/id");
    // Agents make themselves available; routing only assigns available agents.
    for token in [&ana, &ben] {
        gql.mutate(
            token,
            "setUserAvailability",
            "SetUserAvailabilityInput",
            json!({"availability": "AVAILABLE"}),
            "",
        )
        .await;
    }
    gql.mutate(
        &admin,
        "setRoutingRule",
        "SetRoutingRuleInput",
        json!({"scopeId": billing, "strategy": "ROUND_ROBIN", "targetIds": [ana_id]}),
        "",
    )
    .await;

    // --- Customers write -------------------------------------------------------------------
    let received = gql
        .mutate(
            &admin,
            "receiveMessage",
            "ReceiveMessageInput",
            json!({
                "channelId": billing_mail,
                "from": {"kind": "EMAIL", "value": CARLA},
                "fromName": "Carla Customer",
                "subject": "Invoice 2041 is wrong",
                "bodyText": "Hello, I was charged twice for invoice 2041.",
                "email": {"messageId": "<m1@customer.test>", "to": ["billing@acme.test"]}
            }),
            "conversationId",
        )
        .await;
    let mail_conv = received.str("/conversationId");

    // Read-your-writes: with the mutation's token, the very next query sees the message.
    let seen = gql
        .query_after(
            &admin,
            THREAD,
            json!({"id": mail_conv}),
            Some(received.token()),
        )
        .await;
    assert_eq!(seen["conversation"]["id"], json!(mail_conv), "{seen:#}");
    assert_eq!(
        kinds(&seen).first().map(String::as_str),
        Some("INBOUND_MESSAGE"),
        "{seen:#}"
    );
    assert_eq!(seen["conversation"]["inbox"]["id"], json!(billing));

    let chat = gql
        .mutate(
            &admin,
            "receiveMessage",
            "ReceiveMessageInput",
            json!({
                "channelId": billing_chat,
                "from": {"kind": "CHAT_VISITOR", "value": "visitor-42"},
                "bodyText": "Hi, is anyone there?"
            }),
            "conversationId",
        )
        .await;
    let chat_conv = chat.str("/conversationId");
    let support_conv = gql
        .mutate(
            &admin,
            "receiveMessage",
            "ReceiveMessageInput",
            json!({
                "channelId": support_mail,
                "from": {"kind": "EMAIL", "value": "dan@customer.test"},
                "subject": "Tent pole broken",
                "bodyText": "One pole of my tent broke.",
                "email": {"messageId": "<s1@customer.test>"}
            }),
            "conversationId",
        )
        .await
        .str("/conversationId");

    // Routing assigns both Billing conversations to Ana (the rule's only target), by itself.
    for conversation in [&mail_conv, &chat_conv] {
        eventually(
            "routing assigns the conversation to Ana",
            DEADLINE,
            || async {
                let thread = gql.query(&ana, THREAD, json!({"id": conversation})).await;
                (assignee_email(&thread).as_deref() == Some(ANA)).then_some(())
            },
        )
        .await;
    }

    // --- Agents work ---------------------------------------------------------------------
    let reply = gql
        .mutate(
            &ana,
            "sendReply",
            "SendReplyInput",
            json!({"conversationId": mail_conv, "bodyText": "Sorry Carla, we are on it."}),
            "messageId",
        )
        .await;
    gql.mutate(
        &ana,
        "sendReply",
        "SendReplyInput",
        json!({"conversationId": chat_conv, "bodyText": "Hello! How can I help?"}),
        "",
    )
    .await;
    gql.mutate(
        &ana,
        "addComment",
        "AddCommentInput",
        json!({"conversationId": mail_conv, "bodyText": "@Ben can you refund the duplicate?", "mentionIds": [ben_id]}),
        "",
    )
    .await;
    gql.mutate(
        &ana,
        "assignConversation",
        "AssignConversationInput",
        json!({"conversationId": mail_conv, "assigneeId": ben_id}),
        "",
    )
    .await;
    gql.mutate(
        &ben,
        "sendReply",
        "SendReplyInput",
        json!({"conversationId": mail_conv, "bodyText": "Refunded, sorry again."}),
        "",
    )
    .await;
    let closed = gql
        .mutate(
            &ben,
            "closeConversation",
            "ConversationActionInput",
            json!({"conversationId": mail_conv}),
            "conversation { status }",
        )
        .await;
    let after_close = gql
        .query_after(&ben, THREAD, json!({"id": mail_conv}), Some(closed.token()))
        .await;
    assert_eq!(
        after_close["conversation"]["status"],
        json!("CLOSED"),
        "{after_close:#}"
    );

    // The visitor becomes a contact, recognised by her e-mail from now on.
    let contact = gql
        .mutate(
            &ben,
            "createContact",
            "CreateContactInput",
            json!({
                "fromConversationId": mail_conv,
                "identities": [{"kind": "EMAIL", "value": CARLA}],
                "properties": [{"name": "name", "value": "Carla Customer"}, {"name": "plan", "value": "Pro"}]
            }),
            "contact { id }",
        )
        .await;
    let contact_id = contact.str("/contact/id");

    // The customer writes again, in the same e-mail thread: the conversation reopens.
    let again = gql
        .mutate(
            &admin,
            "receiveMessage",
            "ReceiveMessageInput",
            json!({
                "channelId": billing_mail,
                "from": {"kind": "EMAIL", "value": CARLA},
                "subject": "Re: Invoice 2041 is wrong",
                "bodyText": "Thanks! But invoice 2042 has the same problem.",
                "email": {
                    "messageId": "<m2@customer.test>",
                    "inReplyTo": "<m1@customer.test>",
                    "references": ["<m1@customer.test>"]
                }
            }),
            "conversationId",
        )
        .await;
    assert_eq!(
        again.str("/conversationId"),
        mail_conv,
        "threaded into the same conversation"
    );

    // --- The thread ----------------------------------------------------------------------
    let thread = gql
        .query_after(&ben, THREAD, json!({"id": mail_conv}), Some(again.token()))
        .await;
    let c = &thread["conversation"];
    assert_eq!(
        c["status"],
        json!("OPEN"),
        "reopened by the customer: {thread:#}"
    );
    assert_eq!(c["inboundCount"], json!(2), "{thread:#}");
    assert_eq!(c["outboundCount"], json!(2), "{thread:#}");
    assert_eq!(c["commentCount"], json!(1), "{thread:#}");
    assert_eq!(c["contact"]["id"], json!(contact_id), "{thread:#}");
    let kinds = kinds(&thread);
    let expected = [
        "INBOUND_MESSAGE",
        "ASSIGNED",
        "OUTBOUND_MESSAGE",
        "COMMENT",
        "REASSIGNED",
        "OUTBOUND_MESSAGE",
        "CLOSED",
        "REOPENED",
        "INBOUND_MESSAGE",
    ];
    assert_eq!(
        kinds
            .iter()
            .filter(|k| expected.contains(&k.as_str()))
            .collect::<Vec<_>>(),
        expected.to_vec(),
        "timeline kinds in order: {kinds:?}"
    );
    let nodes = c["timeline"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let positions: Vec<u64> = nodes
        .iter()
        .filter_map(|n| n["position"].as_u64())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "timeline in log order: {positions:?}"
    );
    let comment = nodes
        .iter()
        .find(|n| n["kind"] == "COMMENT")
        .expect("the comment");
    assert_eq!(comment["mentions"], json!([{"email": BEN}]), "{comment:#}");
    assert_eq!(
        comment["author"]["user"]["email"],
        json!(ANA),
        "{comment:#}"
    );
    let reassigned = nodes
        .iter()
        .find(|n| n["kind"] == "REASSIGNED")
        .expect("the reassignment");
    assert_eq!(
        reassigned["assignee"]["email"],
        json!(BEN),
        "{reassigned:#}"
    );
    assert_eq!(
        reassigned["previousAssignee"]["email"],
        json!(ANA),
        "{reassigned:#}"
    );
    let timeline_len = nodes.len();

    // --- The contact sidebar ---------------------------------------------------------------
    let sidebar = gql
        .query(
            &ben,
            "query($id: ID!) { contact(id: $id) { id name properties { name value }
                identities { kind value } conversations(first: 10) { edges { node { id status } } } } }",
            json!({"id": contact_id}),
        )
        .await;
    let contact = &sidebar["contact"];
    assert!(
        contact["identities"]
            .as_array()
            .is_some_and(|ids| ids.contains(&json!({"kind": "EMAIL", "value": CARLA}))),
        "{sidebar:#}"
    );
    assert!(
        contact["properties"]
            .as_array()
            .is_some_and(|p| p.contains(&json!({"name": "plan", "value": "Pro"}))),
        "{sidebar:#}"
    );
    assert_eq!(
        ids_of(&contact["conversations"]),
        vec![mail_conv.clone()],
        "{sidebar:#}"
    );

    // --- Analytics -------------------------------------------------------------------------
    let analytics_query = "query($inbox: ID) { analytics(filter: {inboxId: $inbox}) {
        firstResponseTime { count } agentResponseTime { count } timeToClose { count }
        repliesPerAgent { agent { email } conversations replies }
        live { inboxId open unassigned } } }";
    let analytics = eventually("analytics count the replies", DEADLINE, || async {
        let data = gql
            .query(&admin, analytics_query, json!({"inbox": billing}))
            .await;
        (data["analytics"]["firstResponseTime"]["count"].as_u64() >= Some(2)).then_some(data)
    })
    .await;
    let a = &analytics["analytics"];
    assert!(
        a["agentResponseTime"]["count"].as_u64() >= Some(1),
        "{analytics:#}"
    );
    assert_eq!(a["timeToClose"]["count"], json!(1), "{analytics:#}");
    let replies: Vec<(String, u64, u64)> = a["repliesPerAgent"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["agent"]["email"].as_str().unwrap_or_default().to_owned(),
                r["conversations"].as_u64().unwrap_or_default(),
                r["replies"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert!(replies.contains(&(ANA.to_owned(), 2, 2)), "{analytics:#}");
    assert!(replies.contains(&(BEN.to_owned(), 1, 1)), "{analytics:#}");

    // --- The audit trail -----------------------------------------------------------------
    let audit = gql
        .query(
            &admin,
            "query($c: ID!) { auditTrail(filter: {conversationId: $c}, first: 100) { nodes {
                position eventType correlationId causationId conversationId inboxId
                actor { kind id user { email } component }
                cause { eventType } } } }",
            json!({"c": mail_conv}),
        )
        .await;
    let entries = audit["auditTrail"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let types: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .collect();
    for wanted in [
        "MessageReceived",
        "ConversationAssigned",
        "ReplySent",
        "CommentAdded",
        "ConversationReassigned",
        "ConversationClosed",
        "ConversationReopened",
    ] {
        assert!(
            types.contains(&wanted),
            "{wanted} in the audit trail: {types:?}"
        );
    }
    let reply_entry = entries
        .iter()
        .find(|e| e["eventType"] == "ReplySent" && e["actor"]["user"]["email"] == ANA)
        .unwrap_or_else(|| panic!("Ana's reply in the audit trail: {audit:#}"));
    assert_eq!(reply_entry["actor"]["kind"], json!("USER"));
    assert_eq!(reply_entry["inboxId"], json!(billing));
    let assigned = entries
        .iter()
        .find(|e| e["eventType"] == "ConversationAssigned")
        .expect("the routing decision");
    assert!(
        matches!(
            assigned["cause"]["eventType"].as_str(),
            Some("MessageReceived" | "ConversationStarted")
        ),
        "routing names the event that caused it: {assigned:#}"
    );
    assert_eq!(assigned["actor"]["kind"], json!("SYSTEM"), "{assigned:#}");
    // The reply's causal chain: every entry of its correlation, the reply among them.
    let chain = gql
        .query(
            &admin,
            "query($c: UUID!) { auditByCorrelation(correlationId: $c) { eventType correlationId
                actor { user { email } } } }",
            json!({"c": reply_entry["correlationId"]}),
        )
        .await;
    let chain = chain["auditByCorrelation"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !chain.is_empty()
            && chain
                .iter()
                .all(|e| e["correlationId"] == reply_entry["correlationId"])
            && chain.iter().any(|e| e["eventType"] == "ReplySent"),
        "the reply's correlation: {chain:?}"
    );
    let audit_reply_ok = reply.str("/messageId");
    assert!(!audit_reply_ok.is_empty());

    // --- The subscription saw it happen ------------------------------------------------------
    let mut updates: Vec<Value> = Vec::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    while !updates
        .iter()
        .any(|u| u["eventType"] == "ConversationReopened")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the subscription delivers the reopening within {DEADLINE:?}: {updates:?}"
        );
        if let Some(message) = live.next(Duration::from_millis(500)).await {
            assert_eq!(message["type"], "next", "{message}");
            updates.push(message["payload"]["data"]["inboxActivity"].clone());
        }
    }
    // And whatever was already on its way.
    while let Some(message) = live.next(Duration::from_millis(200)).await {
        updates.push(message["payload"]["data"]["inboxActivity"].clone());
    }
    let about_mail: Vec<&str> = updates
        .iter()
        .filter(|u| u["conversation"]["id"] == json!(mail_conv))
        .filter_map(|u| u["eventType"].as_str())
        .collect();
    for wanted in [
        "MessageReceived",
        "ConversationAssigned",
        "ReplySent",
        "CommentAdded",
        "ConversationReassigned",
        "ConversationClosed",
        "ConversationReopened",
    ] {
        assert!(
            about_mail.contains(&wanted),
            "{wanted} over the WebSocket: {about_mail:?}"
        );
    }
    assert!(
        updates
            .iter()
            .any(|u| u["conversation"]["id"] == json!(chat_conv)),
        "the chat conversation too: {updates:?}"
    );
    let positions: Vec<u64> = updates
        .iter()
        .filter_map(|u| u["position"].as_u64())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in order: {positions:?}"
    );
    assert!(
        updates
            .iter()
            .all(|u| u["conversation"]["id"] != json!(support_conv)),
        "only the inbox subscribed to"
    );

    // --- The outsider sees none of it ------------------------------------------------------
    outsider_sees_nothing(
        &gql,
        &srv,
        &olga,
        &billing,
        &support,
        &mail_conv,
        &chat_conv,
        &support_conv,
    )
    .await;

    // --- Restart ---------------------------------------------------------------------------
    assert_eq!(srv.terminate(), Some(0), "a clean exit on SIGTERM");
    // Stopped, the store is free again: the CLI mints a token for a user created over GraphQL.
    let ben_again = server::cli_token(&data, &secret, BEN);
    let srv = Server::start(&data, &secret, &[]);
    let gql = Gql::new(srv.url("/graphql"));
    let thread = eventually("the thread after the restart", DEADLINE, || async {
        let thread = gql
            .query(&ben_again, THREAD, json!({"id": mail_conv}))
            .await;
        thread["conversation"].is_object().then_some(thread)
    })
    .await;
    assert_eq!(thread["conversation"]["id"], json!(mail_conv));
    assert_eq!(thread["conversation"]["status"], json!("OPEN"));
    assert_eq!(
        thread["conversation"]["timeline"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(timeline_len),
        "{thread:#}"
    );
    assert_eq!(thread["conversation"]["contact"]["id"], json!(contact_id));
    let inboxes = gql
        .query(
            &admin,
            "{ inboxes(first: 10) { edges { node { id name restricted } } } }",
            json!({}),
        )
        .await;
    assert_eq!(ids_of(&inboxes["inboxes"]).len(), 2, "{inboxes:#}");
    let analytics = gql
        .query(&admin, analytics_query, json!({"inbox": billing}))
        .await;
    assert_eq!(
        analytics["analytics"]["firstResponseTime"],
        a["firstResponseTime"]
    );
    assert_eq!(srv.terminate(), Some(0));
}

/// Everything an agent outside the restricted inbox asks for leaves the inbox out, while
/// what they do see (their own inbox) is there, so the checks are not vacuous.
#[allow(clippy::too_many_arguments)]
async fn outsider_sees_nothing(
    gql: &Gql,
    srv: &Server,
    olga: &str,
    billing: &str,
    support: &str,
    mail_conv: &str,
    chat_conv: &str,
    support_conv: &str,
) {
    let inboxes = gql
        .query(
            olga,
            "{ inboxes(first: 10) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ids_of(&inboxes["inboxes"]),
        vec![support.to_owned()],
        "{inboxes:#}"
    );

    let conversations = eventually("Olga's own conversation is listed", DEADLINE, || async {
        let data = gql
            .query(
                olga,
                "{ conversations(first: 50) { edges { node { id } } } }",
                json!({}),
            )
            .await;
        let ids = ids_of(&data["conversations"]);
        (!ids.is_empty()).then_some(ids)
    })
    .await;
    assert_eq!(conversations, vec![support_conv.to_owned()]);

    let lookups = gql
        .query(
            olga,
            "query($inbox: ID!, $a: ID!, $b: ID!) {
                inbox(id: $inbox) { id }
                node(id: $a) { id }
                conversation(id: $a) { id }
                nodes(ids: [$inbox, $a, $b]) { id } }",
            json!({"inbox": billing, "a": mail_conv, "b": chat_conv}),
        )
        .await;
    assert_eq!(
        lookups,
        json!({"inbox": null, "node": null, "conversation": null, "nodes": [null, null, null]})
    );
    let filtered = gql
        .raw(
            olga,
            "query($inbox: ID!) { conversations(filter: {inboxId: $inbox}, first: 50) { edges { node { id } } } }",
            json!({"inbox": billing}),
            None,
        )
        .await;
    assert!(
        filtered["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            || ids_of(&filtered["data"]["conversations"]).is_empty(),
        "{filtered:#}"
    );

    // Analytics: the restricted inbox is not found, and her own figures leave it out.
    let code = gql
        .error_code(
            olga,
            "query($inbox: ID) { analytics(filter: {inboxId: $inbox}) { firstResponseTime { count } } }",
            json!({"inbox": billing}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let own = gql
        .query(
            olga,
            "{ analytics { firstResponseTime { count } repliesPerAgent { agentId } live { inboxId } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        own["analytics"]["firstResponseTime"]["count"],
        json!(0),
        "{own:#}"
    );
    assert_eq!(own["analytics"]["repliesPerAgent"], json!([]), "{own:#}");
    assert!(
        own["analytics"]["live"]
            .as_array()
            .is_some_and(|l| l.iter().all(|i| i["inboxId"] != json!(billing))),
        "{own:#}"
    );
    let drill = gql
        .raw(
            olga,
            "query($c: ID!) { conversationMetrics(conversationId: $c) { conversationId } }",
            json!({"c": mail_conv}),
            None,
        )
        .await;
    assert!(
        drill["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            || drill["data"]["conversationMetrics"].is_null(),
        "{drill:#}"
    );

    // The audit trail: nothing about the inbox or its conversations.
    let audit = gql
        .query(
            olga,
            "{ auditTrail(first: 100) { nodes { eventType conversationId inboxId } } }",
            json!({}),
        )
        .await;
    let entries = audit["auditTrail"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        entries
            .iter()
            .any(|e| e["conversationId"] == json!(support_conv)),
        "her own inbox's entries are there: {audit:#}"
    );
    assert!(
        entries.iter().all(|e| e["inboxId"] != json!(billing)
            && e["conversationId"] != json!(mail_conv)
            && e["conversationId"] != json!(chat_conv)),
        "{audit:#}"
    );
    let by_conversation = gql
        .raw(
            olga,
            "query($c: ID!) { auditTrail(filter: {conversationId: $c}, first: 10) { nodes { eventType } } }",
            json!({"c": mail_conv}),
            None,
        )
        .await;
    assert!(
        by_conversation["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            || by_conversation["data"]["auditTrail"]["nodes"] == json!([]),
        "{by_conversation:#}"
    );

    // Subscriptions: NOT_FOUND, for the inbox and for one of its conversations.
    let mut socket = Subscriptions::connect(&srv.ws_url("/graphql/ws"), olga).await;
    socket
        .subscribe(
            "inbox",
            "subscription($id: ID!) { inboxActivity(inboxId: $id) { eventType } }",
            json!({"id": billing}),
        )
        .await;
    let refused = socket.answer("inbox").await;
    assert_eq!(
        subscription_error_code(&refused),
        Some("NOT_FOUND"),
        "{refused}"
    );
    socket
        .subscribe(
            "conversation",
            "subscription($id: ID!) { conversationUpdated(id: $id) { eventType } }",
            json!({"id": mail_conv}),
        )
        .await;
    let refused = socket.answer("conversation").await;
    assert_eq!(
        subscription_error_code(&refused),
        Some("NOT_FOUND"),
        "{refused}"
    );
}

/// The UUID inside a created user's global id: a token names its user by UUID. Global ids are
/// opaque to clients, so the API crate's own decoder reads it.
fn server_uuid(created: &crate::client::Payload) -> uuid::Uuid {
    let global = created.str("/user/id");
    switchboard_api::ids::decode(
        &async_graphql::ID::from(global.as_str()),
        switchboard_api::ids::Kind::User,
        "userId",
    )
    .unwrap_or_else(|e| panic!("a user's global id {global}: {e:?}"))
}
