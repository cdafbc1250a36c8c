//! GraphQL over HTTP as clients see it: media types and status codes, malformed bodies, and the
//! standard introspection query.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::{Reply, TestApi};

/// Posts `body` as JSON with `accept` (none: no `Accept` header), as the admin.
async fn post(api: &TestApi, accept: Option<&str>, body: &str) -> Reply {
    let mut request = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", api.token(api.admin)));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    api.send(request.body(Body::from(body.to_owned())).expect("request"))
        .await
}

#[tokio::test]
async fn responses_carry_the_media_type_the_client_accepts() {
    let api = TestApi::start().await;
    let query = json!({"query": "{ viewer { name } }"}).to_string();
    for accept in [
        None,
        Some("application/json"),
        Some("*/*"),
        Some("application/json, text/plain"),
        Some("application/graphql-response+json;q=0.5, application/json"),
    ] {
        let reply = post(&api, accept, &query).await;
        assert_eq!(reply.status, StatusCode::OK, "{accept:?}: {:#}", reply.body);
        assert_eq!(
            reply.content_type(),
            Some("application/json"),
            "Accept: {accept:?}"
        );
        assert_eq!(reply.data()["viewer"]["name"], "Ada Admin");
    }
    for accept in [
        "application/graphql-response+json",
        "application/graphql-response+json, application/json;q=0.9",
    ] {
        let reply = post(&api, Some(accept), &query).await;
        assert_eq!(reply.status, StatusCode::OK, "{accept}: {:#}", reply.body);
        assert_eq!(
            reply.content_type(),
            Some("application/graphql-response+json"),
            "Accept: {accept}"
        );
        assert_eq!(reply.data()["viewer"]["name"], "Ada Admin");
    }
}

#[tokio::test]
async fn requests_failing_before_execution_get_4xx_as_graphql_response_json() {
    let api = TestApi::start().await;
    let modern = Some("application/graphql-response+json");
    for broken in [
        "{ viewer { name }",
        "{ viewer { noSuchField } }",
        "query($n: Int!) { conversations(first: $n) { edges { cursor } } }",
    ] {
        let body = json!({"query": broken}).to_string();
        let reply = post(&api, modern, &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:#}", reply.body);
        assert!(reply.body.get("data").is_none(), "{:#}", reply.body);
        assert_eq!(
            reply.error_code(),
            Some("BAD_USER_INPUT"),
            "{:#}",
            reply.body
        );
        // The legacy type answers 200 to every well-formed request.
        let legacy = post(&api, Some("application/json"), &body).await;
        assert_eq!(legacy.status, StatusCode::OK, "{:#}", legacy.body);
        assert!(legacy.body["data"].is_null(), "{:#}", legacy.body);
        assert_eq!(legacy.content_type(), Some("application/json"));
    }
    // Execution started: 200, even when a field error leaves data null.
    let anonymous = api
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .header("accept", "application/graphql-response+json")
                .body(Body::from(
                    json!({"query": "{ viewer { name } }"}).to_string(),
                ))
                .expect("request"),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::OK, "{:#}", anonymous.body);
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"));
    assert!(anonymous.body.get("data").is_some(), "{:#}", anonymous.body);
}

#[tokio::test]
async fn a_malformed_body_gets_a_json_graphql_error() {
    let api = TestApi::start().await;
    let batch = json!([{"query": "{ viewer { name } }"}, {"query": "{ viewer { name } }"}]);
    for (accept, body) in [
        (None, "{\"query\": \"{ viewer { name } }\"".to_owned()),
        (Some("application/json"), "not json at all".to_owned()),
        (
            Some("application/graphql-response+json"),
            "[1, 2".to_owned(),
        ),
        (None, batch.to_string()),
        (None, json!({"variables": {}}).to_string()),
    ] {
        let reply = post(&api, accept, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:#}",
            reply.body
        );
        assert_eq!(
            reply.error_code(),
            Some("BAD_USER_INPUT"),
            "{body}: {:#}",
            reply.body
        );
        assert!(
            reply.body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty() && !m.contains("InvalidRequest")),
            "{body}: {:#}",
            reply.body
        );
        let expected = accept.unwrap_or("application/json");
        assert_eq!(reply.content_type(), Some(expected), "{body}");
    }
    for content_type in [None, Some("text/plain;charset=UTF-8")] {
        let mut request = Request::post("/graphql");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let body = Body::from(json!({"query": "{ viewer { name } }"}).to_string());
        let reply = api.send(request.body(body).expect("request")).await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(reply.error_code(), Some("BAD_USER_INPUT"));
    }
    let with_charset = api
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json; charset=utf-8")
                .header("authorization", format!("Bearer {}", api.token(api.admin)))
                .body(Body::from(
                    json!({"query": "{ viewer { name } }"}).to_string(),
                ))
                .expect("request"),
        )
        .await;
    assert_eq!(with_charset.data()["viewer"]["name"], "Ada Admin");
}

/// The introspection query graphql-js builds with every option on (see the fixture's header).
const INTROSPECTION_QUERY: &str = include_str!("fixtures/introspection-query.graphql");

#[tokio::test]
async fn the_standard_introspection_query_is_answered() {
    let api = TestApi::start().await;
    let body = json!({"query": INTROSPECTION_QUERY, "operationName": "IntrospectionQuery"});
    for accept in [None, Some("application/graphql-response+json")] {
        // Tools (GraphiQL with its Authorization header) introspect with a token.
        let mut request = Request::post("/graphql").header("content-type", "application/json");
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let anonymous = api
            .send(request.body(Body::from(body.to_string())).expect("request"))
            .await;
        // Introspection needs a token unless configured `public` (see the tokens module).
        assert_eq!(
            anonymous.error_code(),
            Some("UNAUTHENTICATED"),
            "{:#}",
            anonymous.body
        );
        let reply = post(&api, accept, &body.to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        let schema = &reply.data()["__schema"];
        assert_eq!(schema["queryType"]["name"], "Query");
        assert_eq!(schema["subscriptionType"]["name"], "Subscription");
        let types = schema["types"].as_array().cloned().unwrap_or_default();
        assert!(
            types.iter().any(|t| t["name"] == "Conversation"),
            "{:#}",
            reply.body
        );
    }
    // The same query runs again from the parsed-document cache.
    let again = post(&api, None, &body.to_string()).await;
    assert!(again.body.get("errors").is_none(), "{:#}", again.body);
}

#[tokio::test]
async fn introspection_variants_of_other_clients_are_answered() {
    let api = TestApi::start().await;
    for query in [
        "{ __schema { description queryType { name } } }",
        "{ __type(name: \"DateTime\") { name kind specifiedByURL } }",
        "{ __schema { directives { name isRepeatable locations args(includeDeprecated: true) { name isDeprecated deprecationReason } } } }",
        "{ __type(name: \"AddCommentInput\") { isOneOf inputFields(includeDeprecated: true) { name isDeprecated type { kind ofType { kind ofType { kind name } } } } } }",
        "query IntrospectionQuery { __schema { types { name fields(includeDeprecated: true) { name args { name type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } } } } } }",
    ] {
        let reply = post(&api, None, &json!({"query": query}).to_string()).await;
        assert!(
            reply.body.get("errors").is_none(),
            "{query}: {:#}",
            reply.body
        );
    }
}

#[tokio::test]
async fn introspection_has_its_own_bound_and_real_fields_keep_theirs() {
    let api = TestApi::start().await;
    // Lists of types nested in lists of types multiply: refused past three levels.
    let fanning =
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    let reply = post(&api, None, &json!({"query": fanning}).to_string()).await;
    assert_eq!(
        reply.error_code(),
        Some("BAD_USER_INPUT"),
        "{:#}",
        reply.body
    );
    assert!(reply.error_says("introspection"), "{:#}", reply.body);
    // A deep real selection is refused, with or without introspection beside it or inside it.
    let deep_real = format!(
        "viewer {{ {} name {} }}",
        "teams { members { ".repeat(7),
        "} } ".repeat(7)
    );
    for query in [
        format!("{{ {deep_real} }}"),
        format!("{{ __schema {{ queryType {{ name }} }} {deep_real} }}"),
        format!("{{ __typename {deep_real} }}"),
    ] {
        let reply = post(&api, None, &json!({"query": query}).to_string()).await;
        assert!(
            reply.error_says("nested too deep"),
            "{query}: {:#}",
            reply.body
        );
    }
    // Depth counts through fragments.
    let through_fragments = format!("query {{ ...Deep }} fragment Deep on Query {{ {deep_real} }}");
    let reply = post(&api, None, &json!({"query": through_fragments}).to_string()).await;
    assert!(reply.error_says("nested too deep"), "{:#}", reply.body);
}

#[tokio::test]
async fn fragments_that_expand_exponentially_are_refused() {
    let api = TestApi::start().await;
    // F20 expands to 2^20 `__typename` fields.
    let mut query = String::from("query { ...F20 } fragment F0 on Query { __typename }");
    for level in 1..=20 {
        let below = level - 1;
        query.push_str(&format!(
            " fragment F{level} on Query {{ ...F{below} ...F{below} }}"
        ));
    }
    let reply = post(&api, None, &json!({"query": query}).to_string()).await;
    assert_eq!(
        reply.error_code(),
        Some("BAD_USER_INPUT"),
        "{:#}",
        reply.body
    );
    assert!(reply.error_says("fragments"), "{:#}", reply.body);
}
