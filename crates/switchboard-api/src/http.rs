//! The HTTP surface: the axum [`router`].
//!
//! - `GET /` and `GET /graphql`: GraphiQL.
//! - `POST /graphql`: queries and mutations. `Authorization: Bearer <token>`; an optional
//!   `Switchboard-Consistency-Token` header makes the request wait for the read models (see
//!   [`crate::consistency`]). Batched requests are refused; bodies are capped. Responses follow
//!   GraphQL over HTTP: `application/json` or `application/graphql-response+json` as the
//!   `Accept` header asks, with that type's status codes (see [`respond`]). File uploads come
//!   as GraphQL multipart requests (`multipart/form-data`, signed-in users only, bounded by the
//!   upload limits; see [`multipart`]).
//! - `GET /graphql/ws`: subscriptions over `graphql-transport-ws` (and the legacy
//!   `graphql-ws`), authenticated by the `connection_init` payload
//!   (`{"Authorization": "Bearer <token>"}`, optionally `"consistencyToken"`), closed with the
//!   protocol's codes (see [`websocket`]).
//! - `GET`/`POST /webhooks/messenger`: Facebook Messenger's webhook (see [`crate::messenger`]).
//! - `POST /ingest/email/{channelId}`: a raw e-mail into a channel, with its ingest secret (see
//!   [`crate::ingest`]).
//! - `POST /forms/{publicKey}` (and its CORS preflight, `OPTIONS`): a web form's submission
//!   (see [`crate::forms`]).
//! - `GET /widget/v1.js`, `/chat/{publicKey}/...` (and its WebSocket, `/chat/{publicKey}/live`):
//!   website chat's widget and its visitors' routes (see [`crate::chat`]).
//! - `GET /files/{conversationId}/{sha256}`: a conversation's file (see [`crate::files`]).
//! - `GET /livez`, `GET /readyz`, `GET /metrics`.

use std::time::{Duration, Instant};

use async_graphql::Data;
use async_graphql::http::{GraphiQLSource, WebSocketProtocols};
use async_graphql_axum::GraphQLRequest;
use async_graphql_axum::rejection::GraphQLRejection;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;

use crate::auth::Authentication;
use crate::consistency;
use crate::error::ApiError;
use crate::schema::{self, ParsedDocuments, SwitchboardSchema};
use crate::state::{ApiState, Introspection};

mod multipart;
mod respond;
mod websocket;

use respond::MediaType;

#[derive(Clone)]
struct App {
    /// Queries and mutations (no extensions: see `schema`).
    schema: SwitchboardSchema,
    /// The same, for documents and operations that passed its validation
    /// before (see `schema`).
    revalidating: SwitchboardSchema,
    /// Subscriptions.
    subscriptions: SwitchboardSchema,
    parsed: ParsedDocuments,
    state: ApiState,
}

/// The whole HTTP API over `state`.
pub fn router(state: ApiState) -> Router {
    let schema = schema::build(state.clone());
    let revalidating = schema::build_revalidating(state.clone());
    let for_subscriptions = schema::build_for_subscriptions(state.clone());
    let body_limit = state.inner().limits.max_body_bytes;
    Router::new()
        .route("/", get(graphiql))
        .route("/graphql/ws", get(subscriptions))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/files/{conversation}/{sha256}", get(download))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .merge(
            // Mail is larger than GraphQL requests: this route has its own limit.
            Router::new()
                .route("/ingest/email/{channel}", post(ingest))
                .layer(DefaultBodyLimit::disable())
                .layer(RequestBodyLimitLayer::new(
                    state.inner().mail.max_message_bytes,
                )),
        )
        .merge(
            // Meta's deliveries are small; read at most this much before the signature check.
            Router::new()
                .route(
                    "/webhooks/messenger",
                    get(messenger_verify).post(messenger_receive),
                )
                .layer(DefaultBodyLimit::disable())
                .layer(RequestBodyLimitLayer::new(crate::messenger::MAX_BODY_BYTES)),
        )
        .merge(
            // Form submissions carry files: their own limit too.
            Router::new()
                .route("/forms/{key}", post(form_submit).options(form_preflight))
                .layer(DefaultBodyLimit::disable())
                .layer(RequestBodyLimitLayer::new(
                    state.inner().forms.limits.max_body_bytes,
                )),
        )
        // Visitors' requests are bounded by the chat's own limits (see `chat`).
        .merge(crate::chat::router(state.clone()))
        // Added after the body limit: the GraphQL endpoint bounds its bodies itself, JSON by
        // `max_body_bytes`, multipart uploads by the upload limits (see `graphql`).
        .route("/graphql", get(graphiql).post(graphql))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(App {
            schema,
            revalidating,
            subscriptions: for_subscriptions,
            parsed: ParsedDocuments::default(),
            state,
        })
}

/// Meta's verification handshake (see `messenger`).
async fn messenger_verify(
    State(app): State<App>,
    query: axum::extract::Query<crate::messenger::Handshake>,
) -> Response {
    crate::messenger::verify(app.state, query).await
}

/// Meta's page events (see `messenger`).
async fn messenger_receive(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    crate::messenger::receive(app.state, headers, body).await
}

/// A raw e-mail posted into a channel (see `ingest`).
async fn ingest(
    State(app): State<App>,
    path: axum::extract::Path<String>,
    query: axum::extract::Query<crate::ingest::IngestQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    crate::ingest::ingest(app.state, path, query, headers, body).await
}

/// A web form's submission (see `forms`).
async fn form_submit(
    State(app): State<App>,
    axum::extract::Path(key): axum::extract::Path<String>,
    request: Request,
) -> Response {
    // The peer is known when the server was started with connection info (not in tests that
    // call the router directly).
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    let (parts, body) = request.into_parts();
    crate::forms::submit(app.state, key, peer, parts.headers, body).await
}

/// A web form's CORS preflight (see `forms`).
async fn form_preflight(
    State(app): State<App>,
    axum::extract::Path(key): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    crate::forms::preflight(app.state, key, headers).await
}

/// A conversation's file (see `files`).
async fn download(
    State(app): State<App>,
    path: axum::extract::Path<(String, String)>,
    query: axum::extract::Query<crate::files::Download>,
    headers: HeaderMap,
) -> Response {
    crate::files::download(app.state, path, query, headers).await
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Switchboard GraphiQL")
            .finish(),
    )
}

async fn graphql(State(app): State<App>, request: Request) -> Response {
    let inner = app.state.inner();
    let (parts, body) = request.into_parts();
    let headers = parts.headers.clone();
    let media = MediaType::negotiate(&headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let multipart = multipart::is_multipart(&content_type);
    // GraphQL over HTTP requests are JSON, or multipart uploads; anything else (no content
    // type, text/plain) gets a 4xx rather than a guess.
    if !multipart && !respond::is_json(&headers) {
        return respond::refused(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request's Content-Type must be application/json (or multipart/form-data for \
             file uploads)",
        );
    }
    let body_limit = if multipart {
        multipart::body_limit(&inner.limits)
    } else {
        inner.limits.max_body_bytes
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > body_limit as u64) {
        let message = if multipart {
            format!(
                "the request body is larger than {body_limit} bytes: files may have {} bytes \
                 together, {} each",
                inner.limits.max_upload_bytes, inner.limits.max_upload_file_bytes
            )
        } else {
            format!("the request body is larger than {body_limit} bytes")
        };
        return respond::refused(media, StatusCode::PAYLOAD_TOO_LARGE, message);
    }
    let auth = inner
        .authenticate(
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        )
        .await;
    let request = if multipart {
        // Files are received for signed-in users only: a stranger's (or a forged cross-site
        // form's, see `multipart`) body is not read at all.
        if let Authentication::Refused(why) = &auth {
            return respond::refused_with(
                media,
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                format!("uploads need a token: {why}"),
            );
        }
        match multipart::read(&content_type, body, &inner.limits).await {
            Ok(request) => request,
            Err(refused) => return respond::refused(media, refused.status, refused.message),
        }
    } else {
        let limited = Body::new(http_body_util::Limited::new(body, body_limit));
        let request = Request::from_parts(parts, limited);
        let request = match GraphQLRequest::<GraphQLRejection>::from_request(request, &()).await {
            Ok(request) => request.into_inner(),
            Err(GraphQLRejection(error)) => {
                return respond::unreadable(media, &error, body_limit);
            }
        };
        // A JSON request carries no files: it may not name one (the multipart reader checks
        // its `operations` the same way).
        if let Some(refused) = multipart::forged_upload(&request) {
            return respond::refused(media, refused.status, refused.message);
        }
        request
    };
    if request.query.trim().is_empty() {
        return respond::refused(media, StatusCode::BAD_REQUEST, "the request has no query");
    }
    if let Some(token) = headers.get(consistency::HEADER) {
        let token = token.to_str().unwrap_or_default();
        if let Err(error) = wait_for_token(&app.state, token).await {
            let error = async_graphql::Error::from(error).into_server_error(Default::default());
            return respond::graphql(media, async_graphql::Response::from_errors(vec![error]));
        }
    }
    // Read once any token's write is visible: what this request reads includes this.
    let read_from = consistency::ReadFrom(inner.projections.included());
    let mut request = request.data(auth.clone()).data(read_from);
    let prepared = app.parsed.parse(
        &request.query,
        request.operation_name.as_deref(),
        &request.variables,
        &inner.limits,
    );
    // What to remember if the request runs on the strict schema without errors.
    let mut first_run = None;
    let schema = match prepared {
        Ok(Some(prepared)) => {
            if prepared.introspects
                && let Err(error) = may_introspect(&app.state, &auth).await
            {
                let error = async_graphql::Error::from(error).into_server_error(Default::default());
                return respond::graphql(media, async_graphql::Response::from_errors(vec![error]));
            }
            request.set_parsed_query(prepared.document);
            if prepared.validated {
                &app.revalidating
            } else {
                first_run = Some((request.query.clone(), request.operation_name.clone()));
                &app.schema
            }
        }
        Ok(None) => &app.schema,
        Err(error) => {
            return respond::graphql(media, async_graphql::Response::from_errors(vec![error]));
        }
    };
    let mut response = schema.execute(request).await;
    if let Some((query, operation_name)) = first_run
        && response.errors.is_empty()
    {
        app.parsed.ran_without_errors(&query, operation_name);
    }
    coded(&mut response.errors);
    respond::graphql(media, response)
}

/// Whether the request may introspect the schema under the configured setting: FORBIDDEN when
/// it is off, UNAUTHENTICATED without a valid token (of an active user, not revoked) when only
/// signed-in users may.
async fn may_introspect(state: &ApiState, auth: &Authentication) -> Result<(), ApiError> {
    let inner = state.inner();
    match (inner.introspection, auth) {
        (Introspection::Public, _) => Ok(()),
        (Introspection::Off, _) => Err(ApiError::Forbidden(
            "introspection is turned off on this server; the schema is published as its SDL"
                .to_owned(),
        )),
        (Introspection::Authenticated, Authentication::Viewer(viewer)) => {
            let view = inner.directory().await?;
            crate::state::check_viewer(&view.directory, viewer)
        }
        (Introspection::Authenticated, Authentication::Refused(why)) => Err(
            ApiError::Unauthenticated(format!("introspection needs a token on this server: {why}")),
        ),
    }
}

/// Gives errors raised by async-graphql itself (syntax, validation, limits, unknown fields)
/// the code `BAD_USER_INPUT`; the API's own errors already carry one.
fn coded(errors: &mut [async_graphql::ServerError]) {
    for error in errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some());
        if !has_code {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "BAD_USER_INPUT");
        }
    }
}

/// Waits until the read models include the write `token` names, or fails after the configured
/// bound.
async fn wait_for_token(state: &ApiState, token: &str) -> Result<(), ApiError> {
    let inner = state.inner();
    let position = inner.tokens.verify(token, "consistencyToken")?;
    inner.caught_up_to(position).await
}

async fn subscriptions(
    State(app): State<App>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The first protocol the client offers that async-graphql speaks.
    let protocol = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|offered| offered.trim().parse::<WebSocketProtocols>().ok());
    let Some(protocol) = protocol else {
        return (
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Protocol must offer graphql-transport-ws (or graphql-ws)",
        )
            .into_response();
    };
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| websocket::serve(socket, app.subscriptions, protocol, app.state))
}

/// Authenticates a subscription connection from its `connection_init` payload, and waits for
/// its consistency token if it carries one.
async fn connection_init(
    state: ApiState,
    payload: serde_json::Value,
) -> async_graphql::Result<Data> {
    let field = |name: &str| {
        payload
            .as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let header = field("authorization").or_else(|| field("token").map(|t| format!("Bearer {t}")));
    let auth = state.inner().authenticate(header.as_deref()).await;
    match &auth {
        Authentication::Refused(why) => {
            return Err(ApiError::Unauthenticated(why.clone()).into());
        }
        // A deactivated user, or a revoked token, is refused at once, not at the first update.
        Authentication::Viewer(viewer) => {
            let view = state.inner().directory().await?;
            crate::state::check_viewer(&view.directory, viewer)?;
        }
    }
    if let Some(token) = field("consistencyToken") {
        wait_for_token(&state, &token).await?;
    }
    let mut data = Data::default();
    data.insert(auth);
    Ok(data)
}

async fn livez() -> &'static str {
    "ok\n"
}

/// Ready when the store answers and every read model is running within the configured lag.
async fn readyz(State(app): State<App>) -> Response {
    let inner = app.state.inner();
    let lags = match tokio::time::timeout(Duration::from_secs(2), inner.projections.lag()).await {
        Ok(Ok(lags)) => lags,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store did not answer");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"ready": false, "reason": "the event store did not answer"})),
            )
                .into_response();
        }
        Err(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"ready": false, "reason": "the event store timed out"})),
            )
                .into_response();
        }
    };
    let projections: Vec<_> = lags
        .iter()
        .map(|lag| {
            json!({
                "name": lag.name,
                "checkpoint": lag.checkpoint.0,
                "head": lag.head.0,
                "positionsBehind": lag.positions_behind,
                "secondsBehind": lag.seconds_behind,
                "failed": lag.failed,
            })
        })
        .collect();
    let ready = lags
        .iter()
        .all(|lag| lag.failed.is_none() && lag.positions_behind <= inner.ready_max_lag);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"ready": ready, "projections": projections})),
    )
        .into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    let inner = app.state.inner();
    let lags = inner.projections.lag().await.unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        inner.metrics.render(&lags),
    )
        .into_response()
}

/// Counts every request and its latency by route.
async fn observe(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    state.inner().metrics.observe_request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
