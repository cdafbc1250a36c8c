//! GraphQL over HTTP responses: the media type a client asked for, the status code that goes with
//! it, and JSON error bodies for requests that are not GraphQL requests at all.
//!
//! The GraphQL over HTTP specification names two response media types:
//!
//! - `application/json`, the legacy one every client understands. Any well-formed request gets
//!   `200 OK`, whatever its GraphQL errors (clients of that type look at `errors`, not at the
//!   status).
//! - `application/graphql-response+json`, for clients that say they accept it. A request that
//!   fails before execution (syntax, validation, limits, variables) gets a 4xx status and no
//!   `data` entry; once execution started, `200 OK`, even if field errors made `data` null.
//!
//! A request without `Accept`, or with `*/*`, gets `application/json`. A body that is not a
//! GraphQL request (malformed JSON, a batch, no query) gets a GraphQL-shaped JSON error with
//! `extensions.code` `BAD_USER_INPUT` and status 400, in either media type.

use std::collections::BTreeMap;

use async_graphql::ParseRequestError;
use async_graphql::ServerError;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A response media type for GraphQL results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaType {
    /// `application/json`.
    Json,
    /// `application/graphql-response+json`.
    GraphQLResponse,
}

impl MediaType {
    /// The media type the request's `Accept` header prefers: `application/graphql-response+json`
    /// when it names that type with a quality at least that of any range matching
    /// `application/json`; otherwise `application/json` (also when it accepts neither, rather
    /// than refusing the request).
    pub(crate) fn negotiate(headers: &HeaderMap) -> MediaType {
        let mut graphql_response = 0.0_f32;
        let mut json = 0.0_f32;
        let ranges = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','));
        for range in ranges {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|param| param.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, q)| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/graphql-response+json" => {
                    graphql_response = graphql_response.max(quality);
                }
                "application/json" | "application/*" | "*/*" => json = json.max(quality),
                _ => {}
            }
        }
        if graphql_response > 0.0 && graphql_response >= json {
            MediaType::GraphQLResponse
        } else {
            MediaType::Json
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::Json => "application/json",
            MediaType::GraphQLResponse => "application/graphql-response+json",
        })
    }
}

/// Whether the request's `Content-Type` is `application/json` (parameters such as `charset`
/// aside).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The body of a GraphQL response, in the specification's shape.
#[derive(Serialize)]
struct Body<'a> {
    /// Absent when the request failed before execution (graphql-response+json only).
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, async_graphql::Value>,
}

/// The HTTP response carrying `response` as `media`.
pub(crate) fn graphql(media: MediaType, response: async_graphql::Response) -> Response {
    // Execution puts every field error at a path; errors without one (syntax, validation,
    // limits, variables, the consistency token) come from before execution, which leaves no
    // data.
    let not_executed = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty());
    let (status, data) = match media {
        MediaType::GraphQLResponse if not_executed => (status_of(&response.errors), None),
        _ => (StatusCode::OK, Some(&response.data)),
    };
    let body = Body {
        data,
        errors: &response.errors,
        extensions: &response.extensions,
    };
    let mut http = json(media, status, &body);
    if response.errors.is_empty()
        && let Some(value) = response.cache_control.value()
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        http.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    http.headers_mut().extend(response.http_headers);
    http
}

/// A request that is not a GraphQL request: `status`, and one error with `message` and the code
/// `BAD_USER_INPUT`.
pub(crate) fn refused(
    media: MediaType,
    status: StatusCode,
    message: impl Into<String>,
) -> Response {
    refused_with(media, status, "BAD_USER_INPUT", message)
}

/// A request refused before it was read: `status`, and one error with `message` and `code`.
pub(crate) fn refused_with(
    media: MediaType,
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
) -> Response {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    let errors = [error];
    let body = Body {
        data: None,
        errors: &errors,
        extensions: &BTreeMap::new(),
    };
    json(media, status, &body)
}

/// The answer to a body the GraphQL request extractor could not read.
pub(crate) fn unreadable(
    media: MediaType,
    error: &ParseRequestError,
    max_bytes: usize,
) -> Response {
    match error {
        ParseRequestError::PayloadTooLarge => refused(
            media,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {max_bytes} bytes"),
        ),
        ParseRequestError::UnsupportedBatch => refused(
            media,
            StatusCode::BAD_REQUEST,
            "batched requests are not supported: send one operation per request",
        ),
        ParseRequestError::InvalidRequest(cause) => refused(
            media,
            StatusCode::BAD_REQUEST,
            format!("the request body is not a GraphQL request: {cause}"),
        ),
        other => refused(
            media,
            StatusCode::BAD_REQUEST,
            format!("the request body could not be read: {other}"),
        ),
    }
}

/// The status of a request that failed before execution: 400, unless its error says the
/// server is at fault (`INTERNAL`: 500) or was too slow (`CONSISTENCY_TIMEOUT`: 503).
fn status_of(errors: &[ServerError]) -> StatusCode {
    let code = errors
        .first()
        .and_then(|error| error.extensions.as_ref())
        .and_then(|extensions| extensions.get("code"))
        .and_then(|code| match code {
            async_graphql::Value::String(code) => Some(code.as_str()),
            _ => None,
        });
    match code {
        Some("INTERNAL") => StatusCode::INTERNAL_SERVER_ERROR,
        Some("CONSISTENCY_TIMEOUT") => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn json(media: MediaType, status: StatusCode, body: &Body<'_>) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, media.content_type())],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "serializing a GraphQL response");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, media.content_type())],
                r#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}"#,
            )
                .into_response()
        }
    }
}
