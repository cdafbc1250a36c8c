//! Authentication, errors, limits and the HTTP endpoints.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proto_events::event::Role;
use serde_json::json;

use crate::support::TestApi;

#[tokio::test]
async fn viewer_needs_a_valid_token() {
    let api = TestApi::start().await;
    let anonymous = api
        .gql_with(None, &[], "{ viewer { name } }", json!({}))
        .await;
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"));
    let forged = api
        .gql_with(
            None,
            &[("authorization", "Bearer not.a.token")],
            "{ viewer { name } }",
            json!({}),
        )
        .await;
    assert_eq!(forged.error_code(), Some("UNAUTHENTICATED"));
    let me = api
        .gql(api.admin, "{ viewer { name role } }", json!({}))
        .await;
    assert_eq!(
        me.data()["viewer"],
        json!({"name": "Ada Admin", "role": "SUPER_ADMIN"})
    );
}

#[tokio::test]
async fn a_mutation_returns_its_result_and_user_errors() {
    let api = TestApi::start().await;
    let create = "mutation($name: String!, $key: String) {
        createTeam(input: {name: $name, clientMutationId: $key}) {
            clientMutationId team { id name } userErrors { field message code } version
            consistencyToken replayed
        } }";
    let first = api
        .gql(api.admin, create, json!({"name": "Tier 1", "key": "k-1"}))
        .await;
    let payload = &first.data()["createTeam"];
    assert_eq!(payload["team"]["name"], "Tier 1");
    assert_eq!(payload["userErrors"], json!([]));
    assert_eq!(payload["replayed"], false);
    assert!(payload["consistencyToken"].as_str().is_some());
    let again = api
        .gql(api.admin, create, json!({"name": "Tier 1", "key": "k-1"}))
        .await;
    assert_eq!(again.data()["createTeam"]["replayed"], true);

    let blank = api.gql(api.admin, create, json!({"name": "  "})).await;
    let errors = &blank.data()["createTeam"]["userErrors"];
    assert_eq!(errors[0]["field"], json!(["input", "name"]), "{errors}");
    assert!(blank.data()["createTeam"]["team"].is_null());

    let agent = api.user("agent@acme.test", Role::Agent).await;
    let forbidden = api.gql(agent, create, json!({"name": "Mine"})).await;
    assert_eq!(
        forbidden.error_code(),
        Some("FORBIDDEN"),
        "{:#}",
        forbidden.body
    );
}

#[tokio::test]
async fn limits_refuse_expensive_requests() {
    let api = TestApi::start().await;
    let reply = api.aliased(api.admin, 31, "viewer { name }").await;
    assert_eq!(
        reply.error_code(),
        Some("BAD_USER_INPUT"),
        "{:#}",
        reply.body
    );

    let batch = Request::post("/graphql")
        .header("content-type", "application/json")
        .body(Body::from(
            json!([{"query": "{ viewer { name } }"}, {"query": "{ viewer { name } }"}]).to_string(),
        ))
        .expect("request");
    let reply = api.send(batch).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:#}", reply.body);

    let body = format!(
        "{{\"query\": \"{{ viewer {{ name }} }}\", \"x\": \"{}\"}}",
        "a".repeat(2 << 20)
    );
    let huge = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body))
        .expect("request");
    assert_eq!(api.send(huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn health_and_metrics_endpoints_answer() {
    let api = TestApi::start().await;
    let live = api
        .send(Request::get("/livez").body(Body::empty()).expect("request"))
        .await;
    assert_eq!(live.status, StatusCode::OK);
    let ready = api
        .send(
            Request::get("/readyz")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert!(
        ready.body["projections"]
            .as_array()
            .is_some_and(|p| p.len() == 4),
        "{:#}",
        ready.body
    );
    let _ = api.gql(api.admin, "{ viewer { name } }", json!({})).await;
    let metrics = api
        .send(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("switchboard_http_requests_total"), "{text}");
    assert!(
        text.contains("switchboard_projection_lag_positions"),
        "{text}"
    );
}

#[tokio::test]
async fn deep_and_expensive_queries_are_refused() {
    let api = TestApi::start().await;
    let deep = format!(
        "{{ viewer {{ {} name {} }} }}",
        "teams { members { ".repeat(7),
        "} } ".repeat(7)
    );
    let reply = api.gql(api.admin, &deep, json!({})).await;
    assert!(reply.error_says("nested too deep"), "{:#}", reply.body);
    assert_eq!(reply.error_code(), Some("BAD_USER_INPUT"));

    let costly = "{ conversations(first: 100) { edges { node { timeline(first: 100) {
        edges { node { bodyText kind position } } } } } } }";
    let reply = api.gql(api.admin, costly, json!({})).await;
    assert!(reply.error_says("complex"), "{:#}", reply.body);

    let too_many = api
        .gql(
            api.admin,
            "{ conversations(first: 101) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(too_many.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(too_many.body["errors"][0]["extensions"]["field"], "first");
}

#[tokio::test]
async fn a_cached_document_is_still_checked_and_takes_new_variables() {
    let api = TestApi::start().await;
    let aliases: String = (0..31)
        .map(|i| format!("a{i}: viewer {{ name }} "))
        .collect();
    let query = format!("{{ {aliases} }}");
    for _ in 0..2 {
        let reply = api.gql(api.admin, &query, json!({})).await;
        assert_eq!(
            reply.error_code(),
            Some("BAD_USER_INPUT"),
            "{:#}",
            reply.body
        );
    }
    let lookup = "query($id: ID!) { node(id: $id) { id } }";
    let me = switchboard_api::ids::encode(switchboard_api::ids::Kind::User, api.admin);
    let found = api.gql(api.admin, lookup, json!({"id": me})).await;
    assert_eq!(found.data()["node"]["id"], json!(me));
    let other =
        switchboard_api::ids::encode(switchboard_api::ids::Kind::User, uuid::Uuid::now_v7());
    let missing = api.gql(api.admin, lookup, json!({"id": other})).await;
    assert!(missing.data()["node"].is_null(), "{:#}", missing.body);
}

#[tokio::test]
async fn a_validated_document_still_checks_each_requests_variables() {
    let api = TestApi::start().await;
    let query = "query($n: Int!) { conversations(first: $n) { edges { node {
        timeline(first: $n) { edges { node { bodyText kind position } } } } } } }";
    // Later runs of the same document skip the rules known to pass.
    let first = api.gql(api.admin, query, json!({"n": 5})).await;
    assert!(first.body.get("errors").is_none(), "{:#}", first.body);
    let again = api.gql(api.admin, query, json!({"n": 5})).await;
    assert_eq!(again.body, first.body);
    // Other variables: the complexity is computed with them, and their values are coerced
    // (refused when of the wrong type) before any resolver uses them.
    let costly = api.gql(api.admin, query, json!({"n": 100})).await;
    assert!(
        costly.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("complex")),
        "{:#}",
        costly.body
    );
    for variables in [json!({"n": "five"}), json!({}), json!({"n": null})] {
        let wrong = api.gql(api.admin, query, variables).await;
        assert!(
            wrong.body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Int")),
            "{:#}",
            wrong.body
        );
        assert_eq!(
            wrong.error_code(),
            Some("BAD_USER_INPUT"),
            "{:#}",
            wrong.body
        );
        assert!(
            wrong.body["data"]["conversations"].is_null(),
            "{:#}",
            wrong.body
        );
    }
}

#[tokio::test]
async fn nodes_keeps_a_malformed_ids_error_in_its_slot() {
    let api = TestApi::start().await;
    let me = switchboard_api::ids::encode(switchboard_api::ids::Kind::User, api.admin);
    let reply = api
        .gql(
            api.admin,
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            json!({"ids": [me, "not-an-id", me]}),
        )
        .await;
    assert_eq!(
        reply.body["data"]["nodes"],
        json!([{"id": me}, null, {"id": me}]),
        "{:#}",
        reply.body
    );
    let errors = reply.body["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{:#}", reply.body);
    assert_eq!(errors[0]["path"], json!(["nodes", 1]), "{:#}", reply.body);
    assert_eq!(reply.error_code(), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn a_bot_is_a_node() {
    let api = TestApi::start().await;
    let created = api
        .gql(
            api.admin,
            "mutation { createBot(input: {name: \"Greeter\"}) { bot { id name } } }",
            json!({}),
        )
        .await;
    let bot = created.data()["createBot"]["bot"].clone();
    let id = bot["id"].as_str().expect("a bot id").to_owned();
    let found = api
        .gql(
            api.admin,
            "query($id: ID!) { node(id: $id) { __typename id ... on Bot { name } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        found.data()["node"],
        json!({"__typename": "Bot", "id": id, "name": "Greeter"}),
        "{:#}",
        found.body
    );
}
