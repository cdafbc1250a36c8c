//! `POST /forms/{publicKey}`: a web form's submission, from a plain HTML form on the company's
//! site or from its scripts. Each accepted submission recognises (or creates) the contact by the
//! form's e-mail field and starts a conversation whose first message lists the fields; replies
//! go out by e-mail (see `switchboard_domain::conversation`).
//!
//! - Bodies: `application/x-www-form-urlencoded`, `application/json` (an object of field →
//!   string, number or boolean; `null` counts as absent) and `multipart/form-data`. In a
//!   multipart body, parts with a file name are files: they go to the blob store as the
//!   message's attachments, whatever their part's name (at most `max_files`, each at most
//!   `max_file_bytes`; a file input left empty is ignored). Bodies beyond `max_body_bytes` get
//!   413.
//! - Checks: see `switchboard_domain::form::check_submission` (unknown fields are refused, so a
//!   typo in the page's HTML is noticed rather than losing what visitors typed). A refused
//!   submission gets `422 {"errors": [{"field", "message"}]}` naming every field at fault, and
//!   nothing is written: no event, no file.
//! - Honeypot: a submission that fills in the form's honeypot field gets the answer an accepted
//!   one gets, with an id that names nothing, and nothing is written: bots learn nothing.
//! - Unknown (or disconnected, or not yet configured) form: 404.
//! - CORS, per form (tower-http's layer cannot vary by form): a preflight (`OPTIONS`) from one of
//!   the form's allowed origins is answered with `Access-Control-Allow-Origin` naming it; from
//!   another, 403 without it. A `POST` carrying an `Origin` outside a form's non-empty list is
//!   refused with 403 and writes nothing; a request without `Origin` (a server, `curl`) is taken.
//!   With an empty list, any origin may post but no script may read the answer.
//! - Rate limits (GCRA, the `governor` crate): per client address and per form, both counted
//!   before the body is read; beyond them 429 with `Retry-After` in seconds. The client address
//!   is the connection's peer, or, from a configured trusted proxy, the client its
//!   `X-Forwarded-For` names ([`crate::client`]); behind a proxy that is not configured as
//!   trusted, all visitors share the proxy's limit.
//! - Accepted: `201 {"conversationId"}` once the events are durable.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use proto_events::Actor;
use proto_events::event::{
    Attachment, BlobRef, ChannelConfig, FormConfigured, FormField, Identity, InboundMessage,
};
use serde_json::json;
use switchboard_domain::form::{self, FieldProblem};
use switchboard_service::{Command, CommandMeta};
use uuid::Uuid;

use crate::ids::{self, Kind};
use crate::state::ApiState;

/// Limits of `POST /forms/{publicKey}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormLimits {
    /// Submissions one client address may send per minute, across forms.
    pub per_address_per_minute: u32,
    /// How many of those may come at once.
    pub per_address_burst: u32,
    /// Submissions one form takes per minute, from everyone.
    pub per_form_per_minute: u32,
    /// How many of those may come at once.
    pub per_form_burst: u32,
    /// The largest body taken, in bytes (files included).
    pub max_body_bytes: usize,
    /// Most files in one submission.
    pub max_files: usize,
    /// The largest file taken, in bytes.
    pub max_file_bytes: usize,
}

impl Default for FormLimits {
    /// 10 a minute per address (3 at once), 300 a minute per form (60 at once), 10 MiB
    /// bodies, 5 files of at most 5 MiB.
    fn default() -> FormLimits {
        FormLimits {
            per_address_per_minute: 10,
            per_address_burst: 3,
            per_form_per_minute: 300,
            per_form_burst: 60,
            max_body_bytes: 10 * 1024 * 1024,
            max_files: 5,
            max_file_bytes: 5 * 1024 * 1024,
        }
    }
}

/// The limits and the rate limiters' state.
pub(crate) struct Forms {
    pub(crate) limits: FormLimits,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_form: DefaultKeyedRateLimiter<Uuid>,
    /// Checks since the limiters last forgot idle keys.
    checks: AtomicU64,
}

impl std::fmt::Debug for Forms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forms")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Idle keys are forgotten every this many checks, so the limiters' memory stays bounded.
const FORGET_EVERY: u64 = 4_096;

/// The longest text value read from a multipart body, in bytes (the form's own limits are
/// checked afterwards, in characters).
const MAX_TEXT_PART: usize = 64 * 1024;

/// The largest urlencoded or JSON body read: fields are text (files come as multipart).
const MAX_TEXT_BODY: usize = 256 * 1024;

/// The most values one submission may carry, whatever its encoding: a form has far fewer
/// fields, and checking millions of names would hold a worker for minutes.
const MAX_VALUES: usize = 200;

/// A submission with more values than [`MAX_VALUES`].
fn too_many_values() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("a submission carries at most {MAX_VALUES} fields"),
    )
}

/// A GCRA quota of `per_minute` with bursts of `burst` (at least one each).
pub(crate) fn quota(per_minute: u32, burst: u32) -> Quota {
    let one = NonZeroU32::MIN;
    let period = Duration::from_secs(60) / per_minute.max(1);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_minute(one))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(one))
}

impl Forms {
    pub(crate) fn new(limits: FormLimits) -> Forms {
        Forms {
            per_address: DefaultKeyedRateLimiter::keyed(quota(
                limits.per_address_per_minute,
                limits.per_address_burst,
            )),
            per_form: DefaultKeyedRateLimiter::keyed(quota(
                limits.per_form_per_minute,
                limits.per_form_burst,
            )),
            limits,
            checks: AtomicU64::new(0),
        }
    }

    /// `Err(wait)` when `address` or `form` is over its limit.
    fn check(&self, address: IpAddr, form: Uuid) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.per_address.retain_recent();
            self.per_form.retain_recent();
        }
        let now = DefaultClock::default().now();
        self.per_address
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(now))?;
        self.per_form
            .check_key(&form)
            .map_err(|not_until| not_until.wait_time_from(now))
    }
}

pub(crate) fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    answer(status, json!({ "error": message }))
}

/// 429 with `Retry-After` in whole seconds (at least one).
pub(crate) fn too_many(wait: Duration, message: &str) -> Response {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after(wait)));
    response
}

/// `wait` in whole seconds, rounded up, at least one.
pub(crate) fn retry_after(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn unknown_form() -> Response {
    error(StatusCode::NOT_FOUND, "no such form")
}

fn refused(problems: Vec<FieldProblem>) -> Response {
    let errors: Vec<_> = problems
        .into_iter()
        .map(|p| json!({ "field": p.field, "message": p.message }))
        .collect();
    answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "errors": errors }),
    )
}

/// The form behind `key`, with its channel's id, name and inbox.
async fn form(state: &ApiState, key: &str) -> Result<Option<(FormConfigured, String)>, Response> {
    let view = state
        .inner()
        .directory()
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, &e.message()))?;
    Ok(view.directory.form_by_key(key).and_then(|channel| {
        let name = match &channel.config {
            ChannelConfig::Form { name } => name.clone(),
            _ => return None,
        };
        channel.form.clone().map(|form| (form, name))
    }))
}

/// The request's `Origin`, if it sent one.
pub(crate) fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

/// The CORS headers of the answer to a request from `origin`, or `None` when that origin may
/// not post `form`.
fn cors(form: &FormConfigured, origin: Option<&str>) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin else {
        return Some(headers);
    };
    if form.allowed_origins.iter().any(|allowed| allowed == origin) {
        if let Ok(value) = HeaderValue::from_str(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        Some(headers)
    } else if form.allowed_origins.is_empty() {
        Some(headers)
    } else {
        None
    }
}

fn foreign_origin() -> Response {
    let mut response = error(StatusCode::FORBIDDEN, "this site may not post this form");
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// `OPTIONS /forms/{publicKey}`: the CORS preflight.
pub(crate) async fn preflight(state: ApiState, key: String, headers: HeaderMap) -> Response {
    let form = match form(&state, &key).await {
        Ok(Some((form, _))) => form,
        Ok(None) => return unknown_form(),
        Err(response) => return response,
    };
    let origin = origin(&headers);
    let allowed = origin.is_some_and(|o| form.allowed_origins.iter().any(|a| a == o));
    let mut response = if allowed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        foreign_origin()
    };
    let out = response.headers_mut();
    out.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let (true, Some(origin)) = (allowed, origin)
        && let Ok(value) = HeaderValue::from_str(origin)
    {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, accept"),
        );
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

/// A file of a multipart submission, read but not yet stored.
struct File {
    name: Option<String>,
    content_type: String,
    bytes: Vec<u8>,
}

/// What a body carried.
struct Parsed {
    values: Vec<(String, String)>,
    files: Vec<File>,
    /// Problems found reading it (a JSON value of the wrong type).
    problems: Vec<FieldProblem>,
}

/// `POST /forms/{publicKey}`.
pub(crate) async fn submit(
    state: ApiState,
    key: String,
    peer: Option<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inner = state.inner();
    let (form, name) = match form(&state, &key).await {
        Ok(Some(found)) => found,
        Ok(None) => return unknown_form(),
        Err(response) => return response,
    };
    let Some(cors) = cors(&form, origin(&headers)) else {
        return foreign_origin();
    };
    let with_cors = |mut response: Response| {
        response.headers_mut().extend(cors.clone());
        response
    };
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let address = inner.trusted_proxies.client(peer, &headers);
    if let Err(wait) = inner.forms.check(address, form.channel_id) {
        return with_cors(too_many(wait, "too many submissions; try again later"));
    }
    let parsed = match read(&headers, body, &inner.forms.limits).await {
        Ok(parsed) => parsed,
        Err(response) => return with_cors(response),
    };
    if let Some(honeypot) = &form.honeypot_field
        && parsed
            .values
            .iter()
            .any(|(field, value)| field == honeypot && !value.trim().is_empty())
    {
        tracing::info!(channel_id = %form.channel_id, "a form submission filled in the honeypot: dropped");
        let decoy = ids::encode(Kind::Conversation, Uuid::now_v7()).to_string();
        return with_cors(answer(
            StatusCode::CREATED,
            json!({ "conversationId": decoy }),
        ));
    }
    let mut problems = parsed.problems;
    let submission = match form::check_submission(&form, &parsed.values) {
        Ok(submission) if problems.is_empty() => submission,
        Ok(_) => return with_cors(refused(problems)),
        Err(more) => {
            problems.extend(more);
            return with_cors(refused(problems));
        }
    };

    // Checked: from here on things are written.
    let blobs = inner.store.blobs();
    let mut attachments = Vec::with_capacity(parsed.files.len());
    for file in parsed.files {
        let size = file.bytes.len() as u64;
        match blobs.put(file.bytes).await {
            Ok(sha256) => attachments.push(Attachment {
                blob: BlobRef { sha256, size },
                file_name: file.name,
                content_type: file.content_type,
                content_id: None,
                inline: false,
            }),
            Err(e) => {
                tracing::error!(error = %e, "a form's file could not be stored");
                return with_cors(unavailable());
            }
        }
    }
    let body_text = submission
        .values
        .iter()
        .map(|(field, value)| {
            if value.contains('\n') {
                format!("{}:\n{}", field.label, value)
            } else {
                format!("{}: {}", field.label, value)
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let from_name = submission
        .values
        .iter()
        .find(|(field, _)| field.name == "name")
        .map(|(_, value)| value.clone());
    // A name of nothing but invisible characters names no one: the contact is made without it.
    let contact_name = from_name
        .as_deref()
        .and_then(switchboard_domain::display_name);
    let message = InboundMessage {
        message_id: Uuid::now_v7(),
        channel_id: form.channel_id,
        channel_kind: proto_events::event::ChannelKind::Form,
        provider_message_id: None,
        from: Identity::Email {
            address: submission.email.clone(),
        },
        from_name,
        // The service recognises (or creates) the contact.
        contact_id: None,
        subject: Some(format!("Form: {name}")),
        body_text,
        body_html: None,
        email: None,
        form_fields: submission
            .values
            .into_iter()
            .map(|(field, value)| FormField {
                name: field.label,
                value,
            })
            .collect(),
        attachments,
        raw: None,
    };
    let outcome = inner
        .service
        .execute(
            CommandMeta::by(Actor::Channel {
                id: form.channel_id,
            }),
            Command::ReceiveMessage {
                channel_id: form.channel_id,
                message: Box::new(message),
                signals: None,
            },
        )
        .await;
    match outcome {
        Ok(outcome) => {
            let conversation_id = outcome
                .stream
                .strip_prefix("conversation-")
                .and_then(|id| Uuid::parse_str(id).ok());
            if let Some(conversation_id) = conversation_id {
                contact_from_visitor(
                    &state,
                    &form,
                    conversation_id,
                    &submission.email,
                    contact_name,
                )
                .await;
            }
            with_cors(answer(
                StatusCode::CREATED,
                json!({
                    "conversationId": conversation_id
                        .map(|id| ids::encode(Kind::Conversation, id).to_string()),
                }),
            ))
        }
        Err(switchboard_service::ServiceError::Domain(e)) => {
            tracing::warn!(error = %e, channel_id = %form.channel_id, "a form submission was refused");
            with_cors(error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()))
        }
        Err(e) => {
            tracing::error!(error = %e, channel_id = %form.channel_id, "a form submission could not be stored");
            with_cors(unavailable())
        }
    }
}

/// Makes the sender a contact, as a channel does when a new visitor writes ("record created"):
/// known by the submitted address, named by the form's `name` field. A sender the service
/// recognised already holds the address, so the command is refused with `TAKEN` and nothing is
/// written. A failure here loses nothing: the message is stored, and the next submission from
/// the address tries again.
async fn contact_from_visitor(
    state: &ApiState,
    form: &FormConfigured,
    conversation_id: Uuid,
    email: &str,
    name: Option<String>,
) {
    let command = Command::CreateContact {
        contact_id: Uuid::now_v7(),
        identities: vec![Identity::Email {
            address: email.to_owned(),
        }],
        properties: name
            .map(|name| ("name".to_owned(), name))
            .into_iter()
            .collect(),
        from_conversation: Some(conversation_id),
    };
    let meta = CommandMeta::by(Actor::Channel {
        id: form.channel_id,
    });
    match state.inner().service.execute(meta, command).await {
        Ok(_) => {}
        Err(switchboard_service::ServiceError::Domain(
            switchboard_domain::DomainError::Rejected { code: "TAKEN", .. },
        )) => {}
        Err(e) => {
            tracing::warn!(error = %e, %conversation_id, "a form's sender could not be made a contact");
        }
    }
}

fn unavailable() -> Response {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the submission could not be stored for now; send it again",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}

fn too_large(limits: &FormLimits) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "the submission is too large: at most {} bytes in all, {} files of at most {} bytes",
            limits.max_body_bytes, limits.max_files, limits.max_file_bytes
        ),
    )
}

/// The body's fields and files, by its content type.
async fn read(headers: &HeaderMap, body: Body, limits: &FormLimits) -> Result<Parsed, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut parsed = Parsed {
        values: Vec::new(),
        files: Vec::new(),
        problems: Vec::new(),
    };
    match essence.as_str() {
        "application/x-www-form-urlencoded" => {
            let bytes = axum::body::to_bytes(body, limits.max_body_bytes.min(MAX_TEXT_BODY))
                .await
                .map_err(|_| too_large(limits))?;
            for (k, v) in form_urlencoded::parse(&bytes) {
                if parsed.values.len() >= MAX_VALUES {
                    return Err(too_many_values());
                }
                parsed.values.push((k.into_owned(), v.into_owned()));
            }
        }
        "application/json" => {
            let bytes = axum::body::to_bytes(body, limits.max_body_bytes.min(MAX_TEXT_BODY))
                .await
                .map_err(|_| too_large(limits))?;
            let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(&bytes) else {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "the body must be a JSON object of field names to values",
                ));
            };
            if object.len() > MAX_VALUES {
                return Err(too_many_values());
            }
            for (field, value) in object {
                let value = match value {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => {
                        parsed.problems.push(FieldProblem {
                            field,
                            message: "must be a string, a number or a boolean".to_owned(),
                        });
                        continue;
                    }
                };
                parsed.values.push((field, value));
            }
        }
        "multipart/form-data" => {
            let boundary = multer::parse_boundary(content_type).map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    "a multipart body needs a boundary in its content type",
                )
            })?;
            let constraints = multer::Constraints::new().size_limit(
                multer::SizeLimit::new()
                    .whole_stream(limits.max_body_bytes as u64)
                    .per_field(limits.max_file_bytes.max(MAX_TEXT_PART) as u64),
            );
            let mut multipart =
                multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
            loop {
                let field = match multipart.next_field().await {
                    Ok(Some(field)) => field,
                    Ok(None) => break,
                    Err(e) => return Err(unreadable(e, limits)),
                };
                if parsed.values.len() + parsed.files.len() >= MAX_VALUES {
                    return Err(too_many_values());
                }
                let name = field.name().unwrap_or("").to_owned();
                let file_name = field.file_name().map(str::to_owned);
                let content_type = field
                    .content_type()
                    .map_or("application/octet-stream".to_owned(), ToString::to_string);
                let bytes = field.bytes().await.map_err(|e| unreadable(e, limits))?;
                match file_name {
                    Some(file_name) => {
                        // A file input left empty sends an empty part without a name.
                        if bytes.is_empty() && file_name.is_empty() {
                            continue;
                        }
                        if bytes.len() > limits.max_file_bytes
                            || parsed.files.len() >= limits.max_files
                        {
                            return Err(too_large(limits));
                        }
                        parsed.files.push(File {
                            // Without directories or control characters, as uploads keep them.
                            name: Some(crate::mutation::file_name(&file_name))
                                .filter(|_| !file_name.trim().is_empty()),
                            content_type,
                            bytes: bytes.to_vec(),
                        });
                    }
                    None => {
                        if bytes.len() > MAX_TEXT_PART {
                            return Err(too_large(limits));
                        }
                        match String::from_utf8(bytes.to_vec()) {
                            Ok(value) => parsed.values.push((name, value)),
                            Err(_) => parsed.problems.push(FieldProblem {
                                field: name,
                                message: "must be UTF-8 text".to_owned(),
                            }),
                        }
                    }
                }
            }
        }
        _ => {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "post application/x-www-form-urlencoded, application/json or multipart/form-data",
            ));
        }
    }
    Ok(parsed)
}

fn unreadable(error: multer::Error, limits: &FormLimits) -> Response {
    match error {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(limits)
        }
        other => self::error(
            StatusCode::BAD_REQUEST,
            &format!("the multipart body cannot be read: {other}"),
        ),
    }
}
