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
    let untyped = api
        .send(
            Request::post("/graphql")
                .body(Body::from(
                    json!({"query": "{ viewer { name } }"}).to_string(),
                ))
                .expect("request"),
        )
        .await;
    assert_eq!(untyped.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(untyped.error_code(), Some("BAD_USER_INPUT"));
}
