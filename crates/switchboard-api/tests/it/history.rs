//! The raw event log, conversations as they stood at a past position, and read-your-writes.

use proto_events::event::Role;
use serde_json::json;
use switchboard_api::ids::{Kind, encode};

use crate::support::TestApi;

#[tokio::test]
async fn the_event_log_pages_in_order_and_only_for_history_readers() {
    let api = TestApi::start().await;
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let outcome = api.chat(channel, "v-1", "Hi").await;
    let query = "query($after: String) { events(first: 3, after: $after) {
        edges { cursor node { position type stream hash payload } } pageInfo { hasNextPage } } }";
    let mut positions = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        let reply = api.gql(api.admin, query, json!({"after": after})).await;
        let events = &reply.data()["events"];
        for edge in events["edges"].as_array().expect("edges") {
            positions.push(edge["node"]["position"].as_u64().expect("position"));
            assert_eq!(edge["node"]["hash"].as_str().map(str::len), Some(64));
            after = edge["cursor"].clone();
        }
        if events["pageInfo"]["hasNextPage"] != true {
            break;
        }
    }
    let expected: Vec<u64> = (1..=outcome.last_position.0).collect();
    assert_eq!(positions, expected, "every event once, in order");

    let filtered = api
        .gql(
            api.admin,
            "{ events(filter: {types: [\"MessageReceived\"]}) { edges { node { type } } } }",
            json!({}),
        )
        .await;
    let types: Vec<_> = filtered.data()["events"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["type"].clone())
        .collect();
    assert_eq!(types, vec![json!("MessageReceived")]);

    let agent = api.user("agent@acme.test", Role::Agent).await;
    let refused = api
        .gql(agent, "{ events { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"));
}

#[tokio::test]
async fn a_conversation_is_shown_as_it_stood_at_a_past_position() {
    let api = TestApi::start().await;
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let first = api.chat(channel, "v-1", "First question").await;
    let second = api.chat(channel, "v-1", "Second question").await;
    api.settle(&second).await;
    let conversation = first.stream.strip_prefix("conversation-").expect("stream");
    let id = encode(Kind::Conversation, conversation.parse().expect("uuid"));
    let query = "query($id: ID!, $position: Int) {
        conversationAt(id: $id, position: $position) {
            inboundCount lastMessagePreview version timeline { edges { node { kind bodyText } } } }
        conversation(id: $id) { inboundCount version } }";
    let reply = api
        .gql(
            api.admin,
            query,
            json!({"id": id, "position": first.last_position.0}),
        )
        .await;
    let past = &reply.data()["conversationAt"];
    assert_eq!(past["inboundCount"], 1, "{past}");
    assert_eq!(past["lastMessagePreview"], "First question");
    let bodies: Vec<_> = past["timeline"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter(|e| e["node"]["kind"] == "INBOUND_MESSAGE")
        .map(|e| e["node"]["bodyText"].clone())
        .collect();
    assert_eq!(bodies, vec![json!("First question")]);
    assert_eq!(reply.data()["conversation"]["inboundCount"], 2);
    assert!(past["version"].as_u64() < reply.data()["conversation"]["version"].as_u64());

    let both = api
        .gql(
            api.admin,
            "query($id: ID!) { conversationAt(id: $id) { inboundCount } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(both.error_code(), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn a_consistency_token_makes_the_next_read_see_the_write() {
    let api = TestApi::start().await;
    let created = api
        .gql(
            api.admin,
            "mutation { createTeam(input: {name: \"Night shift\"}) { consistencyToken } }",
            json!({}),
        )
        .await;
    let token = created.data()["createTeam"]["consistencyToken"]
        .as_str()
        .expect("token")
        .to_owned();
    // The team's stream is not in the read models, but the token's position is, once they
    // caught up: the request waits for that, then answers.
    let reply = api
        .gql_with(
            Some(api.admin),
            &[("switchboard-consistency-token", &token)],
            "{ teams { name } }",
            json!({}),
        )
        .await;
    assert_eq!(reply.data()["teams"], json!([{"name": "Night shift"}]));
    let lag = api.projections.lag().await.expect("lag");
    assert!(
        lag.iter()
            .all(|l| l.positions_behind == 0 || l.checkpoint.0 >= 3)
    );

    let forged = api
        .gql_with(
            Some(api.admin),
            &[(
                "switchboard-consistency-token",
                "c1.AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAA",
            )],
            "{ teams { name } }",
            json!({}),
        )
        .await;
    assert_eq!(forged.error_code(), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn a_token_for_a_position_the_read_models_never_reach_times_out() {
    let limits = switchboard_api::Limits {
        consistency_wait: std::time::Duration::from_millis(200),
        ..switchboard_api::Limits::default()
    };
    let api = TestApi::with_limits(limits).await;
    let far = switchboard_api::consistency::TokenKey::new(crate::support::SECRET.as_bytes())
        .sign(switchboard_store::Position(1_000_000));
    let reply = api
        .gql_with(
            Some(api.admin),
            &[("switchboard-consistency-token", &far)],
            "{ viewer { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        reply.error_code(),
        Some("CONSISTENCY_TIMEOUT"),
        "{:#}",
        reply.body
    );
}
