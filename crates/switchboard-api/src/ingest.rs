//! `POST /ingest/email/{channelId}`: one raw e-mail (RFC 5322 bytes, as an MTA pipes it or an
//! inbound-mail webhook posts it) into an e-mail channel.
//!
//! - Authentication: the channel's ingest secret (set with `updateEmailChannel`), as
//!   `Authorization: Bearer <secret>`, or as the password of `Authorization: Basic` (for senders
//!   that only take credentials in a URL). It is compared in constant time. A channel without
//!   a secret, disconnected, unknown, or not an e-mail channel gets the same 401 as a wrong
//!   secret, so the route says nothing about which channels exist.
//! - The body is the message, byte for byte (any content type); at most the configured
//!   `smtp.max_message_bytes` (413 beyond). It is read only after the secret was checked. `?envelope_from=<address>` gives the envelope
//!   sender, which stands in when the headers name none (SMTP's `MAIL FROM`).
//! - Answers once the message's events are durable: `200` with
//!   `{"messageId", "conversationId", "duplicate", "warnings", "consistencyToken"}`
//!   (`duplicate`: the same Message-ID had arrived on the channel before; nothing new was
//!   written; the token makes a GraphQL request wait until the message can be read). `422` when the
//!   message cannot be taken as it is (no sender), `503` with `Retry-After` when storage failed:
//!   send it again.
//!
//! The message goes through the same ingestion as SMTP and IMAP mail (filters, threading,
//! bounces; see `switchboard_email::ingest`).

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use switchboard_email::ingest::IngestError;
use switchboard_store::secret::SecretId;
use uuid::Uuid;

use crate::ids::{self, Kind};
use crate::state::ApiState;

/// The query string.
#[derive(Debug, Deserialize)]
pub(crate) struct IngestQuery {
    /// The envelope sender.
    envelope_from: Option<String>,
}

/// The one answer to every authentication failure.
const REFUSED: &str = "unknown channel or wrong ingest secret";

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    answer(status, json!({ "error": message }))
}

/// The secret an `Authorization` header carries: `Bearer <secret>`, or `Basic` with the
/// secret as the password (any user name).
fn presented(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_owned());
    }
    None
}

/// The handler.
pub(crate) async fn ingest(
    state: ApiState,
    Path(channel): Path<String>,
    Query(query): Query<IngestQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inner = state.inner();
    let refused = || {
        let mut response = error(StatusCode::UNAUTHORIZED, REFUSED);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"switchboard-ingest\""),
        );
        response
    };
    let channel_id = match Uuid::parse_str(&channel) {
        Ok(id) => id,
        Err(_) => match ids::decode(&channel.clone().into(), Kind::Channel, "channelId") {
            Ok(id) => id,
            Err(_) => return refused(),
        },
    };
    let Some(presented) = presented(&headers) else {
        return refused();
    };
    let secret_id = {
        let view = match inner.directory().await {
            Ok(view) => view,
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.message()),
        };
        let channel = view.directory.channels.get(&channel_id);
        match channel.filter(|c| {
            c.connected && matches!(c.config, proto_events::event::ChannelConfig::Email { .. })
        }) {
            Some(channel) => channel.servers.ingest_secret,
            None => None,
        }
    };
    let Some(secret_id) = secret_id else {
        return refused();
    };
    let expected = match inner.vault.get(SecretId(secret_id)).await {
        Ok(Some(expected)) => expected,
        Ok(None) => return refused(),
        Err(e) => {
            tracing::error!(error = %e, %channel_id, "the channel's ingest secret could not be read");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the ingest secret could not be read; see the server's log",
            );
        }
    };
    if !crate::auth::same_secret(presented.as_bytes(), expected.expose().as_bytes()) {
        return refused();
    }
    // Read only once the sender proved it holds the secret.
    let limit = inner.mail.max_message_bytes;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the message is larger than this server takes ({limit} bytes), or was cut"),
        );
    };
    if body.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body is empty: post the raw message",
        );
    }
    match inner
        .ingester
        .ingest(channel_id, query.envelope_from.as_deref(), body.to_vec())
        .await
    {
        Ok(ingested) => {
            let conversation_id = ingested
                .stream
                .strip_prefix("conversation-")
                .and_then(|id| Uuid::parse_str(id).ok())
                .map(|id| ids::encode(Kind::Conversation, id).to_string());
            answer(
                StatusCode::OK,
                json!({
                    "messageId": ingested.message_id,
                    "conversationId": conversation_id,
                    "duplicate": ingested.duplicate,
                    "warnings": ingested.warnings,
                    "consistencyToken": inner.tokens.sign(ingested.position),
                }),
            )
        }
        Err(IngestError::Unavailable(why)) => {
            tracing::error!(%why, %channel_id, "a posted message could not be stored");
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the message could not be stored for now; send it again",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
            response
        }
        Err(e @ (IngestError::NoSender | IngestError::Refused(_))) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string())
        }
        Err(IngestError::UnknownRecipient(_)) => refused(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_comes_as_a_bearer_token_or_a_basic_password() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            presented(&headers)
        };
        assert_eq!(with("Bearer s3cret").as_deref(), Some("s3cret"));
        assert_eq!(with("bearer  s3cret ").as_deref(), Some("s3cret"));
        let basic = base64::engine::general_purpose::STANDARD.encode("mta:pa:ss");
        assert_eq!(with(&format!("Basic {basic}")).as_deref(), Some("pa:ss"));
        assert_eq!(with("Basic !!!"), None);
        assert_eq!(with("Token s3cret"), None);
        assert_eq!(presented(&HeaderMap::new()), None);
        assert!(crate::auth::same_secret(b"abc", b"abc"));
        assert!(!crate::auth::same_secret(b"abc", b"abd"));
        assert!(!crate::auth::same_secret(b"abc", b"abcd"));
    }
}
