//! Chat bots through the API: `configureChatBot` and `Channel.chatBot` (admins only), refusals
//! naming the field and writing nothing, and a bot driven by the reactors through
//! `receiveMessage`, counted by the bot-performance analytics.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_service::bot::BotReactor;
use switchboard_service::reactor::RoutingReactor;
use switchboard_store::Position;
use tokio::sync::watch;

use crate::mutations::{Org, fail, head, mutate, succeed, user_id};
use crate::support::TestApi;

const SETTINGS: &str = "channel { chatBot { botId enabled routed greeting
    questions { prompt collects } answers { phrases reply }
    handoff { phrases onNoMatch timeoutSeconds message } } }";

async fn bot(api: &TestApi) -> Value {
    succeed(
        api,
        api.admin,
        "createBot",
        json!({"name": "Greeter"}),
        "bot { id }",
    )
    .await["bot"]["id"]
        .clone()
}

fn input(org: &Org, bot: &Value) -> Value {
    json!({
        "channelId": org.chat,
        "botId": bot,
        "greeting": "  Hi, I am the Acme bot. ",
        "questions": [
            {"prompt": "What is your name?", "collects": "NAME"},
            {"prompt": "What is your e-mail address?", "collects": "EMAIL"},
        ],
        "answers": [{"phrases": ["price", "how much"], "reply": "Plans start at 10 EUR."}],
        "handoff": {"phrases": ["human", "agent"], "timeoutSeconds": 120,
            "message": "A person will take over."},
    })
}

#[tokio::test]
async fn admins_configure_a_chat_bot_and_only_they_read_it() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let bot = bot(&api).await;
    let set = succeed(
        &api,
        api.admin,
        "configureChatBot",
        input(&org, &bot),
        SETTINGS,
    )
    .await;
    assert_eq!(
        set["channel"]["chatBot"],
        json!({
            "botId": bot,
            "enabled": true,
            "routed": false,
            "greeting": "Hi, I am the Acme bot.",
            "questions": [
                {"prompt": "What is your name?", "collects": "NAME"},
                {"prompt": "What is your e-mail address?", "collects": "EMAIL"},
            ],
            "answers": [{"phrases": ["price", "how much"], "reply": "Plans start at 10 EUR."}],
            "handoff": {"phrases": ["human", "agent"], "onNoMatch": false,
                "timeoutSeconds": 120, "message": "A person will take over."},
        })
    );

    // Agents neither configure nor read it.
    fail(
        &api,
        org.agent,
        "configureChatBot",
        input(&org, &bot),
        "FORBIDDEN",
    )
    .await;
    let read = "query($id: ID!) { node(id: $id) { ... on Channel { chatBot { greeting } } } }";
    let agents = api.gql(org.agent, read, json!({"id": org.chat})).await;
    assert_eq!(agents.data()["node"], json!({"chatBot": null}));
    let admins = api.gql(api.admin, read, json!({"id": org.chat})).await;
    assert_eq!(
        admins.data()["node"]["chatBot"]["greeting"],
        "Hi, I am the Acme bot."
    );
}

/// A change to a valid input.
type Change = fn(&mut Value);

#[tokio::test]
async fn a_bad_chat_bot_configuration_names_the_field_and_writes_nothing() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let bot = bot(&api).await;
    let cases: Vec<(Change, Value)> = vec![
        (|i| i["greeting"] = json!(" "), json!(["input", "greeting"])),
        (
            |i| i["handoff"]["timeoutSeconds"] = json!(-5),
            json!(["input", "handoff", "timeoutSeconds"]),
        ),
        (
            |i| i["handoff"]["timeoutSeconds"] = json!(null),
            json!(["input", "handoff"]),
        ),
        (
            |i| i["answers"][0]["phrases"] = json!(["Price", "PRICE"]),
            json!(["input", "answers", "0", "phrases", "1"]),
        ),
        (
            |i| i["handoff"]["phrases"] = json!(["how MUCH"]),
            json!(["input", "answers", "0", "phrases", "1"]),
        ),
        (
            |i| i["questions"][1]["collects"] = json!("NAME"),
            json!(["input", "questions", "1", "collects"]),
        ),
        (
            |i| {
                i["answers"] = (0..101)
                    .map(|n| json!({"phrases": [format!("word{n}")], "reply": "x"}))
                    .collect()
            },
            json!(["input", "answers"]),
        ),
    ];
    for (change, field) in cases {
        let mut input = input(&org, &bot);
        change(&mut input);
        let before = head(&api).await;
        let payload = mutate(&api, api.admin, "configureChatBot", input, SETTINGS).await;
        assert_eq!(payload["userErrors"][0]["field"], field, "{payload:#}");
        assert_eq!(payload["userErrors"][0]["code"], "INVALID", "{payload:#}");
        assert!(payload["channel"].is_null());
        assert_eq!(
            head(&api).await,
            before,
            "a refused configuration wrote nothing"
        );
    }

    // Only chat channels have bots.
    let form = crate::forms::form_channel(&api, crate::mutations::uuid_of(&org.inbox)).await;
    let mut not_chat = input(&org, &bot);
    not_chat["channelId"] = json!(form);
    let payload = mutate(&api, api.admin, "configureChatBot", not_chat, "").await;
    assert_eq!(payload["userErrors"][0]["code"], "NOT_CHAT", "{payload:#}");
}

/// Waits until `processed` reaches the store's head.
async fn reached(api: &TestApi, processed: &mut watch::Receiver<Position>) {
    let head = head(api).await;
    tokio::time::timeout(Duration::from_secs(30), processed.wait_for(|p| *p >= head))
        .await
        .expect("a reactor did not catch up in time")
        .expect("the reactor runs");
}

/// Waits until both reactors have done everything and the read models show it.
async fn settle(api: &TestApi, routing: &mut RoutingReactor, bots: &mut BotReactor) {
    loop {
        let before = head(api).await;
        reached(api, &mut routing.processed).await;
        reached(api, &mut bots.processed).await;
        if head(api).await == before {
            break;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    api.projections
        .wait_for(head(api).await, deadline)
        .await
        .expect("read models caught up");
}

/// The texts of `conversation`'s timeline written by the bot.
async fn bot_messages(api: &TestApi, conversation: &Value) -> Vec<String> {
    let query = "query($id: ID!) { node(id: $id) { ... on Conversation { timeline(first: 50) {
        edges { node { kind bodyText author { kind name } } } } } } }";
    let reply = api.gql(api.admin, query, json!({"id": conversation})).await;
    reply.data()["node"]["timeline"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["node"]["kind"] == "OUTBOUND_MESSAGE" && e["node"]["author"]["kind"] == "BOT")
        .filter_map(|e| e["node"]["bodyText"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_driven_through_receive_message_counts_in_bot_performance() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let bot = bot(&api).await;
    succeed(
        &api,
        api.admin,
        "setUserAvailability",
        json!({"userId": user_id(org.agent), "availability": "AVAILABLE"}),
        "",
    )
    .await;
    succeed(
        &api,
        api.admin,
        "setRoutingRule",
        json!({"scopeId": org.chat, "strategy": "BOT_FIRST", "botId": bot,
            "targetIds": [user_id(org.agent)]}),
        "",
    )
    .await;
    let set = succeed(
        &api,
        api.admin,
        "configureChatBot",
        input(&org, &bot),
        SETTINGS,
    )
    .await;
    assert_eq!(
        set["channel"]["chatBot"]["routed"], true,
        "the bot-first rule names it"
    );
    let mut routing = RoutingReactor::spawn(Arc::clone(&api.service));
    let mut bots = BotReactor::spawn(Arc::clone(&api.service));

    // One visitor asks for a human after the greeting; an agent answers.
    let first = org.chat(&api, "visitor-1", "hello").await["conversationId"].clone();
    settle(&api, &mut routing, &mut bots).await;
    assert_eq!(
        bot_messages(&api, &first).await,
        ["Hi, I am the Acme bot.", "What is your name?"]
    );
    org.chat(&api, "visitor-1", "I'd rather talk to a human")
        .await;
    settle(&api, &mut routing, &mut bots).await;
    succeed(
        &api,
        org.agent,
        "sendReply",
        json!({"conversationId": first, "bodyText": "Hello, Alice here."}),
        "",
    )
    .await;

    // Another gets the bot's answer and is closed without a human writing.
    let second = org.chat(&api, "visitor-2", "How much is it?").await["conversationId"].clone();
    settle(&api, &mut routing, &mut bots).await;
    assert_eq!(
        bot_messages(&api, &second).await,
        [
            "Hi, I am the Acme bot.",
            "Plans start at 10 EUR.",
            "What is your name?"
        ]
    );
    succeed(
        &api,
        api.admin,
        "closeConversation",
        json!({"conversationId": second}),
        "",
    )
    .await;
    settle(&api, &mut routing, &mut bots).await;

    let reply = api
        .gql(
            api.admin,
            "{ analytics { botPerformance { botId conversations handedOff closedWithoutHuman
                firstResponseTime { count } } botFirstResponseTime { count } } }",
            json!({}),
        )
        .await;
    let analytics = &reply.data()["analytics"];
    assert_eq!(
        analytics["botPerformance"],
        json!([{"botId": bot, "conversations": 2, "handedOff": 1, "closedWithoutHuman": 1,
            "firstResponseTime": {"count": 2}}]),
        "{analytics:#}"
    );
    assert_eq!(analytics["botFirstResponseTime"]["count"], 2);
}
