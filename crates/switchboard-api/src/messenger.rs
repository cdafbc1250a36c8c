//! Facebook Messenger's webhook: `GET /webhooks/messenger` answers Meta's verification
//! handshake, `POST /webhooks/messenger` takes the page events Meta sends.
//!
//! - Verification: `hub.mode=subscribe` with `hub.verify_token` equal to the configured
//!   `messenger.verify_token` answers `hub.challenge` (200, as text); anything else 403.
//! - Events: the raw body must carry `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the
//!   body under the app secret (`messenger.app_secret`), checked in constant time before the
//!   body is parsed; 401 otherwise. Each `messaging` item with a `message` for a connected
//!   Messenger channel (by page id) is recorded as the channel: the sender's page-scoped id is
//!   the contact's identity, the `mid` the provider's message id, so Meta's retries of the same
//!   message are recorded once. Echoes (the page's own messages) are ignored; so are items for
//!   pages no channel is connected to. `delivery` and `read` receipts are recorded on the
//!   person's conversation (`MessengerReceiptReceived`), once per newer watermark.
//! - Attachments: each one's URL is fetched (see `attachments` for what is refused) and the file
//!   kept in the blob store, on the message like an e-mail's attachment. A file that cannot be
//!   fetched is named in the message's text with the reason; the message is kept. The answer is
//!   200 once every message is durable, 503 when one could not be stored (Meta sends the
//!   batch again).
//!
//! Without `[messenger]` settings both routes answer 404. Meta's servers cannot reach these
//! tests; they sign their requests with a test app secret, as Meta signs with the real one.

use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use proto_events::Actor;
use proto_events::event::{
    Attachment, BlobRef, ChannelConfig, ChannelKind, Identity, InboundMessage, ReceiptKind,
};
use serde::Deserialize;
use sha2::Sha256;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_service::{Command, CommandMeta, ServiceError};
use uuid::Uuid;

use crate::state::ApiState;

mod attachments;

/// The Messenger app this installation's webhook belongs to.
#[derive(Clone)]
pub struct MessengerSettings {
    /// The app secret Meta signs webhook requests with.
    pub app_secret: String,
    /// The token the verification handshake must present.
    pub verify_token: String,
    /// The one host and port whose attachment URLs are fetched even at a loopback or private
    /// address: the Graph API's as configured (a test's local stand-in). Every other URL's host
    /// must resolve to public addresses only; so must this host's on any other port (a
    /// loopback stand-in does not open the machine's other local services).
    pub trusted_origin: Option<(String, u16)>,
}

impl std::fmt::Debug for MessengerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessengerSettings(<redacted>)")
    }
}

/// The verification handshake's query.
#[derive(Debug, Deserialize)]
pub(crate) struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// `GET /webhooks/messenger`.
pub(crate) async fn verify(state: ApiState, Query(handshake): Query<Handshake>) -> Response {
    let Some(settings) = &state.inner().messenger else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let token_matches = handshake.verify_token.as_deref().is_some_and(|token| {
        crate::auth::same_secret(token.as_bytes(), settings.verify_token.as_bytes())
    });
    match (
        handshake.mode.as_deref(),
        token_matches,
        handshake.challenge,
    ) {
        (Some("subscribe"), true, Some(challenge)) => (StatusCode::OK, challenge).into_response(),
        _ => (StatusCode::FORBIDDEN, "verification refused").into_response(),
    }
}

/// Whether `signature` (`sha256=<hex>`) is `body`'s HMAC-SHA256 under `secret`.
fn signed(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex_tag) = signature.and_then(|s| s.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(tag) = hex::decode(hex_tag) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// A webhook delivery, as much of it as is read.
#[derive(Debug, Deserialize)]
struct Delivery {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    /// The page's id.
    id: String,
    /// Read one by one: an item of a kind not understood is skipped, not the whole delivery.
    #[serde(default)]
    messaging: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Messaging {
    sender: Party,
    message: Option<Message>,
    delivery: Option<Receipt>,
    read: Option<Receipt>,
}

/// A `delivery` or `read` receipt: the page's messages up to `watermark` (milliseconds since
/// the epoch) reached the person, or were read.
#[derive(Debug, Deserialize)]
struct Receipt {
    watermark: i64,
    #[serde(default)]
    mids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Party {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Message {
    mid: String,
    text: Option<String>,
    #[serde(default)]
    is_echo: bool,
    #[serde(default)]
    attachments: Vec<MessageAttachment>,
}

#[derive(Debug, Deserialize)]
struct MessageAttachment {
    #[serde(rename = "type")]
    kind: String,
    payload: Option<AttachmentPayload>,
}

#[derive(Debug, Deserialize)]
struct AttachmentPayload {
    /// Where the file is, for a while (stickers, images, audio, video, files).
    url: Option<String>,
}

/// The most attachments fetched from one message.
const MAX_ATTACHMENTS: usize = 10;

/// How many of one message's attachments are fetched at once.
const FETCHES_PER_MESSAGE: usize = 4;

/// How many attachments the whole process fetches at once, across webhook deliveries: each may
/// hold up to 25 MB until it is stored.
static FETCHES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(16);

/// The longest an attachment waits for its turn to be fetched; past it the delivery is
/// answered 503 and Meta sends it again later.
const FETCH_TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest text kept from one message (Messenger's own limit is 2,000 characters).
const MAX_TEXT: usize = 20_000;

/// The largest webhook delivery read, in bytes (Meta batches up to 1,000 small events).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `POST /webhooks/messenger`.
pub(crate) async fn receive(state: ApiState, headers: HeaderMap, body: Body) -> Response {
    let inner = state.inner();
    let Some(settings) = &inner.messenger else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "the delivery is too large").into_response();
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signed(&settings.app_secret, &body, signature) {
        return (
            StatusCode::UNAUTHORIZED,
            "bad or missing X-Hub-Signature-256",
        )
            .into_response();
    }
    let delivery: Delivery = match serde_json::from_slice(&body) {
        Ok(delivery) => delivery,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not a webhook event: {e}")).into_response();
        }
    };
    if delivery.object != "page" {
        return StatusCode::OK.into_response();
    }
    let pages: Vec<(String, Uuid)> = match inner.directory().await {
        Ok(view) => view
            .directory
            .channels
            .values()
            .filter(|c| c.connected)
            .filter_map(|c| match &c.config {
                ChannelConfig::Messenger { page_id, .. } => Some((page_id.clone(), c.id)),
                _ => None,
            })
            .collect(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.message()).into_response(),
    };
    for entry in delivery.entry {
        let Some(channel_id) = pages
            .iter()
            .find(|(page, _)| *page == entry.id)
            .map(|(_, id)| *id)
        else {
            tracing::info!(page = %entry.id, "a Messenger event for a page no channel is connected to");
            continue;
        };
        for item in entry.messaging {
            let item: Messaging = match serde_json::from_value(item) {
                Ok(item) => item,
                Err(error) => {
                    tracing::info!(%error, page = %entry.id, "a Messenger event not understood was skipped");
                    continue;
                }
            };
            let receipts = [
                (ReceiptKind::Delivered, item.delivery),
                (ReceiptKind::Read, item.read),
            ];
            for (kind, receipt) in receipts {
                let Some(receipt) = receipt else { continue };
                if let Err(unavailable) =
                    record_receipt(inner, channel_id, &item.sender.id, kind, receipt).await
                {
                    return unavailable;
                }
            }
            let Some(message) = item.message.filter(|m| !m.is_echo) else {
                continue;
            };
            let mut text: String = message.text.unwrap_or_default();
            if text.len() > MAX_TEXT {
                let mut end = MAX_TEXT;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
            }
            let urls: Vec<Option<String>> = message
                .attachments
                .iter()
                .enumerate()
                .map(|(index, a)| {
                    a.payload
                        .as_ref()
                        .and_then(|p| p.url.clone())
                        .filter(|_| index < MAX_ATTACHMENTS)
                })
                .collect();
            // A message Meta sends again is not fetched again: recording it would change
            // nothing.
            if urls.iter().any(Option::is_some) {
                let derived = switchboard_service::service::messenger_conversation_id(
                    channel_id,
                    &item.sender.id,
                );
                let known = match inner.service.current_conversation(derived).await {
                    Ok(conversation_id) => {
                        inner
                            .service
                            .has_provider_message(conversation_id, &message.mid)
                            .await
                    }
                    Err(error) => Err(error),
                };
                match known {
                    Ok(false) => {}
                    Ok(true) => continue,
                    Err(error) => {
                        tracing::error!(%error, %channel_id, "a Messenger message could not be checked");
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                }
            }
            let fetched: Vec<Option<Result<Attachment, NotKept>>> = futures::stream::iter(
                urls.into_iter()
                    .map(|url| keep_attachment_at(inner, settings, url)),
            )
            .buffered(FETCHES_PER_MESSAGE)
            .collect()
            .await;
            let mut kept = Vec::new();
            for (attachment, fetched) in message.attachments.iter().zip(fetched) {
                if !text.is_empty() {
                    text.push('\n');
                }
                let kind: String = attachment
                    .kind
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(20)
                    .collect();
                match fetched {
                    None => text.push_str(&format!("[{kind} attachment]")),
                    Some(Ok(file)) => {
                        text.push_str(&format!("[{kind} attachment]"));
                        kept.push(file);
                    }
                    Some(Err(NotKept::Unavailable(why))) => {
                        // Answered 200, Meta's retry would be dropped as a repeat and the file
                        // lost for good: 503 makes it send the batch again.
                        tracing::error!(%channel_id, mid = %message.mid, %why, "a Messenger attachment could not be stored");
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    Some(Err(NotKept::Fetch(why))) => {
                        tracing::warn!(%channel_id, mid = %message.mid, %why, "a Messenger attachment was not kept");
                        text.push_str(&format!("[{kind} attachment, not kept: {why}]"));
                    }
                }
            }
            let inbound = InboundMessage {
                message_id: Uuid::now_v7(),
                channel_id,
                channel_kind: ChannelKind::Messenger,
                provider_message_id: Some(message.mid),
                from: Identity::Messenger {
                    psid: item.sender.id,
                },
                from_name: None,
                contact_id: None,
                subject: None,
                body_text: text,
                body_html: None,
                email: None,
                form_fields: Vec::new(),
                attachments: kept,
                raw: None,
            };
            let recorded = inner
                .service
                .execute(
                    CommandMeta::by(Actor::Channel { id: channel_id }),
                    Command::ReceiveMessage {
                        channel_id,
                        message: Box::new(inbound),
                        signals: None,
                    },
                )
                .await;
            match recorded {
                Ok(_) => {}
                Err(ServiceError::Domain(error)) => {
                    // Sending it again would be refused again: logged, and the batch answered.
                    tracing::warn!(%error, %channel_id, "a Messenger message was refused");
                }
                Err(error) => {
                    tracing::error!(%error, %channel_id, "a Messenger message could not be stored");
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            }
        }
    }
    StatusCode::OK.into_response()
}

/// Why an attachment was not kept.
enum NotKept {
    /// It could not be fetched (or may not be): the message says so.
    Fetch(String),
    /// The blob store failed: the webhook is answered 503 so that Meta sends it again.
    Unavailable(String),
}

/// [`keep_attachment`] for an attachment with a URL to fetch.
async fn keep_attachment_at(
    inner: &crate::state::Inner,
    settings: &MessengerSettings,
    url: Option<String>,
) -> Option<Result<Attachment, NotKept>> {
    Some(keep_attachment(inner, settings, &url?).await)
}

/// Fetches the file at `url` and puts it in the blob store.
async fn keep_attachment(
    inner: &crate::state::Inner,
    settings: &MessengerSettings,
    url: &str,
) -> Result<Attachment, NotKept> {
    // Held until the file is stored: the bound is on the files held in memory.
    let _turn = tokio::time::timeout(FETCH_TURN_WAIT, FETCHES.acquire())
        .await
        .map_err(|_| NotKept::Unavailable("too many attachments are being fetched".into()))?
        .map_err(|e| NotKept::Unavailable(e.to_string()))?;
    let fetched = attachments::fetch(url, settings.trusted_origin.as_ref())
        .await
        .map_err(NotKept::Fetch)?;
    let size = fetched.bytes.len() as u64;
    let sha256 = inner
        .store
        .blobs()
        .put(fetched.bytes)
        .await
        .map_err(|e| NotKept::Unavailable(e.to_string()))?;
    Ok(Attachment {
        blob: BlobRef { sha256, size },
        file_name: Some(fetched.file_name),
        content_type: fetched.content_type,
        content_id: None,
        inline: false,
    })
}

/// Records a receipt on the conversation of `psid` with the page of `channel_id`. A receipt
/// the write side refuses (no such conversation, a watermark that is not a time) is logged and
/// skipped; `Err` is the answer to give when it could not be stored.
async fn record_receipt(
    inner: &crate::state::Inner,
    channel_id: Uuid,
    psid: &str,
    kind: ReceiptKind,
    receipt: Receipt,
) -> Result<(), Response> {
    let Some(watermark) = chrono::DateTime::from_timestamp_millis(receipt.watermark) else {
        tracing::info!(%channel_id, "a Messenger receipt with an impossible watermark was skipped");
        return Ok(());
    };
    let derived = switchboard_service::service::messenger_conversation_id(channel_id, psid);
    let conversation_id = match inner.service.current_conversation(derived).await {
        Ok(conversation_id) => conversation_id,
        Err(error) => {
            tracing::error!(%error, %channel_id, "a Messenger receipt's conversation could not be read");
            return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
        }
    };
    let recorded = inner
        .service
        .execute(
            CommandMeta::by(Actor::Channel { id: channel_id }),
            Command::Conversation {
                conversation_id,
                command: Box::new(ConversationCommand::RecordReceipt {
                    kind,
                    watermark,
                    mids: receipt.mids,
                }),
            },
        )
        .await;
    match recorded {
        Ok(_) => Ok(()),
        Err(ServiceError::Domain(error)) => {
            tracing::info!(%error, %channel_id, "a Messenger receipt was not recorded");
            Ok(())
        }
        Err(error) => {
            tracing::error!(%error, %channel_id, "a Messenger receipt could not be stored");
            Err(StatusCode::SERVICE_UNAVAILABLE.into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_the_raw_body() {
        let body = br#"{"object":"page"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"app-secret").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signed("app-secret", body, Some(&good)));
        assert!(!signed("other-secret", body, Some(&good)));
        assert!(!signed(
            "app-secret",
            b"{\"object\": \"page\"}",
            Some(&good)
        ));
        assert!(!signed("app-secret", body, None));
        assert!(!signed("app-secret", body, Some("sha1=00")));
        assert!(!signed("app-secret", body, Some("sha256=zz")));
    }
}
