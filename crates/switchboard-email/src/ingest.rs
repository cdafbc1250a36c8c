//! From raw bytes to a durable message in its conversation.
//!
//! [`Ingester::ingest`] reads the message ([`crate::parse`]) and records it through the command
//! service, which threads it within its channel, recognises the contact and runs the channel's
//! filters; the raw message and every attachment go to the store's blob store (by SHA-256) with
//! its events, in one commit where the store can (the embedded one can). It returns only once
//! blobs and events are durable, so an SMTP server may answer `250`. A repeat stores nothing.
//!
//! The message's id is derived from its channel and `Message-ID` (or, without one, the hash of
//! its bytes), so the same message delivered twice on one channel (a retrying MTA, an IMAP
//! re-scan) is one message. A delivery status notification about one of our replies also marks
//! that reply failed, with the remote status; the notification itself is kept like any mail
//! (the built-in filters usually send it to the Filtered view).

use std::sync::Arc;

use proto_events::Actor;
use proto_events::event::{
    Attachment, BlobRef, ChannelConfig, ChannelKind, EmailAccess, EmailHeaders, Identity,
    InboundMessage, RawMessage,
};
use switchboard_domain::conversation::{ConversationCommand, DeliveryOutcome};
use switchboard_service::view::WriteView;
use switchboard_service::{Command, CommandMeta, CommandService, ServiceError};
use switchboard_store::blob::Blob;
use switchboard_store::{EventStore, StoreError};
use uuid::Uuid;

use crate::parse::{self, ParsedMail};

/// The namespace of the ids of inbound e-mails, derived from channel and `Message-ID`.
const EMAIL_MESSAGES: Uuid = Uuid::from_u128(0x2c9e_61a4_8f03_4d7b_b4a6_0e52_93d1_7c28);

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// No channel receives mail for this address (SMTP 550 5.1.1).
    #[error("no channel receives mail for {0}")]
    UnknownRecipient(String),
    /// The message names no sender, in its headers or its envelope (SMTP 550 5.1.7).
    #[error("the message names no sender")]
    NoSender,
    /// The message cannot be taken as it is; sending it again will not help (SMTP 554 5.6.0).
    #[error("the message was refused: {0}")]
    Refused(String),
    /// Storage failed; the message is not taken and may be sent again (SMTP 451 4.3.0).
    #[error("the message could not be stored for now: {0}")]
    Unavailable(String),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> IngestError {
        IngestError::Unavailable(e.to_string())
    }
}

impl From<ServiceError> for IngestError {
    fn from(e: ServiceError) -> IngestError {
        match e {
            ServiceError::Domain(e) => IngestError::Refused(e.to_string()),
            // Sending the same bytes again cannot fit them.
            ServiceError::Store(e @ StoreError::AppendTooLarge { .. }) => {
                IngestError::Refused(e.to_string())
            }
            e => IngestError::Unavailable(e.to_string()),
        }
    }
}

/// What became of an ingested message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// Our id of the message.
    pub message_id: Uuid,
    /// The conversation's stream it was recorded in.
    pub stream: String,
    /// Whether it had been received before (nothing new was written).
    pub duplicate: bool,
    /// Whether it was a delivery report that marked one of our replies failed.
    pub bounced: Option<Uuid>,
    /// What could not be read in it.
    pub warnings: Vec<String>,
    /// The log position of the last event written for it (for a duplicate, of the first
    /// arrival's): read models that reached it show the message.
    pub position: switchboard_store::Position,
}

/// Takes raw e-mails into conversations.
#[derive(Debug, Clone)]
pub struct Ingester {
    service: Arc<CommandService>,
    store: Arc<dyn EventStore>,
}

impl Ingester {
    /// An ingester recording through `service`, keeping blobs in `store`'s blob store.
    pub fn new(service: Arc<CommandService>, store: Arc<dyn EventStore>) -> Ingester {
        Ingester { service, store }
    }

    /// The connected shared e-mail channel (a team address or an inbox's fallback address)
    /// that receives mail for `address`, compared case-insensitively: what the SMTP listener
    /// accepts. A private account's mail comes from its own provider (IMAP), never from
    /// whoever can reach the listener.
    pub async fn channel_for(&self, address: &str) -> Result<Option<Uuid>, IngestError> {
        self.find_channel(address, false).await
    }

    /// The connected e-mail channel of `address`, private accounts included: where an IMAP
    /// account's mail goes.
    pub async fn account_channel(&self, address: &str) -> Result<Option<Uuid>, IngestError> {
        self.find_channel(address, true).await
    }

    async fn find_channel(
        &self,
        address: &str,
        private: bool,
    ) -> Result<Option<Uuid>, IngestError> {
        let address = address.trim();
        let find = |view: &WriteView| {
            view.directory
                .channels
                .values()
                .find(|channel| {
                    channel.connected
                        && matches!(&channel.config, ChannelConfig::Email { address: a, access }
                            if a.trim().eq_ignore_ascii_case(address)
                                && (private || matches!(access, EmailAccess::Shared)))
                })
                .map(|channel| channel.id)
        };
        // The view as it is answers nearly every recipient without catching up with the
        // log (which the message's own command does anyway): a channel disconnected since is
        // refused there. Only an address it does not know yet waits for the head.
        if let Some(found) = find(&*self.service.view_as_is().await) {
            return Ok(Some(found));
        }
        Ok(find(&*self.service.view().await?))
    }

    /// Records `raw` as a message of `channel_id`; `envelope_from` is the SMTP `MAIL FROM` (or
    /// the IMAP account's), the sender when the headers name none. Durable when it returns.
    pub async fn ingest(
        &self,
        channel_id: Uuid,
        envelope_from: Option<&str>,
        raw: Vec<u8>,
    ) -> Result<Ingested, IngestError> {
        // A message of more than a few pages is parsed and hashed off the runtime's threads; a
        // short one takes a fraction of a millisecond, less than the trip to another thread and
        // back costs on a busy machine. The original and every attachment are stored with the message's
        // events, in one commit.
        let (parsed, raw, parts) = if raw.len() <= PARSE_INLINE_BYTES {
            read(raw)
        } else {
            tokio::task::spawn_blocking(move || read(raw))
                .await
                .map_err(|e| IngestError::Unavailable(e.to_string()))?
        };
        let mut blobs = Vec::with_capacity(parts.len() + 1);
        let mut attachments = Vec::with_capacity(parts.len());
        for (blob, part) in parts {
            attachments.push(Attachment {
                blob: blob_ref(&blob),
                file_name: part.file_name,
                content_type: part.content_type,
                content_id: part.content_id,
                inline: part.inline,
            });
            blobs.push(blob);
        }
        let (message, signals) = inbound(
            channel_id,
            envelope_from,
            &parsed,
            attachments,
            RawMessage {
                blob: blob_ref(&raw),
                warnings: parsed.warnings.clone(),
            },
        )?;
        blobs.push(raw);
        let message_id = message.message_id;
        let meta = CommandMeta::by(Actor::Channel { id: channel_id });
        let outcome = self
            .service
            .execute_with_blobs(
                meta,
                Command::ReceiveMessage {
                    channel_id,
                    message: Box::new(message),
                    signals: Some(signals),
                },
                blobs,
            )
            .await?;
        let bounced = self.record_bounce(channel_id, &parsed).await;
        Ok(Ingested {
            message_id,
            stream: outcome.stream,
            duplicate: outcome.written == 0,
            bounced,
            warnings: parsed.warnings,
            position: outcome.last_position,
        })
    }

    /// If `parsed` reports that one of our replies on `channel_id` failed, records that, and
    /// returns the reply's id. A report about anything else changes nothing.
    async fn record_bounce(&self, channel_id: Uuid, parsed: &ParsedMail) -> Option<Uuid> {
        let report = parsed.report.as_ref().filter(|r| r.failed())?;
        let original = report.original_message_id.as_deref()?;
        // Our Message-IDs are `<message uuid>@<domain>` (see `threading::message_id_for`).
        let (local, _) = original.split_once('@')?;
        let reply_id = Uuid::parse_str(local).ok()?;
        let index = self.store.write_index();
        let conversation_id = match index.email_thread(channel_id, original).await {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!(error = %e, "a bounce could not be matched to its reply");
                return None;
            }
        };
        // `failed` is final whatever the code: a 4.x.x means the remote queue gave up.
        let outcome = DeliveryOutcome::Failed {
            reason: report
                .diagnostic
                .clone()
                .unwrap_or_else(|| "the recipient's server returned the reply".to_owned()),
            permanent: true,
            status: report.status.clone(),
        };
        // As the system: a form conversation's reply went out through the form's channel, and
        // its bounce comes back to the team address.
        let recorded = self
            .service
            .execute(
                CommandMeta::by(Actor::System {
                    component: "bounces".to_owned(),
                }),
                Command::Conversation {
                    conversation_id,
                    command: Box::new(ConversationCommand::RecordDelivery {
                        message_id: reply_id,
                        outcome,
                    }),
                },
            )
            .await;
        match recorded {
            Ok(outcome) if outcome.written > 0 => Some(reply_id),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, %reply_id, "a bounce's failure could not be recorded");
                None
            }
        }
    }
}

/// The largest message [`Ingester::ingest`] reads on the runtime's thread.
const PARSE_INLINE_BYTES: usize = 64 * 1024;

/// `raw` parsed, hashed, and its attachments' bytes hashed; an attachment that stands in `raw`
/// (base64 or as it is) is stored as its range of the original rather than a second copy.
fn read(raw: Vec<u8>) -> (ParsedMail, Blob, Vec<(Blob, parse::Part)>) {
    let mut parsed = parse::parse(&raw);
    let raw = Blob::new(raw);
    let parts = std::mem::take(&mut parsed.parts)
        .into_iter()
        .map(|mut part| {
            let bytes = std::mem::take(&mut part.bytes);
            let blob = match part.within.take() {
                Some(within) => Blob::part_of(bytes, &raw, within),
                None => Blob::new(bytes),
            };
            (blob, part)
        })
        .collect();
    (parsed, raw, parts)
}

/// How an event names `blob`.
fn blob_ref(blob: &Blob) -> BlobRef {
    BlobRef {
        sha256: blob.sha256().to_owned(),
        size: blob.bytes().len() as u64,
    }
}

/// The inbound message and filter signals of `parsed` on `channel_id`.
fn inbound(
    channel_id: Uuid,
    envelope_from: Option<&str>,
    parsed: &ParsedMail,
    attachments: Vec<Attachment>,
    raw: RawMessage,
) -> Result<(InboundMessage, switchboard_domain::filter::MailSignals), IngestError> {
    let (address, name) = match (&parsed.from, envelope_from.map(str::trim)) {
        (Some(from), _) => (from.address.clone(), from.name.clone()),
        (None, Some(envelope)) if !envelope.is_empty() => (envelope.to_owned(), None),
        _ => return Err(IngestError::NoSender),
    };
    let email_id = parsed
        .message_id
        .clone()
        .unwrap_or_else(|| format!("{}@no-message-id.invalid", raw.blob.sha256));
    let mut name_bytes = channel_id.as_bytes().to_vec();
    name_bytes.extend_from_slice(email_id.as_bytes());
    let message_id = Uuid::new_v5(&EMAIL_MESSAGES, &name_bytes);
    let mut signals = parsed.signals.clone();
    if signals.from.is_empty() {
        signals.from = address.clone();
    }
    let message = InboundMessage {
        message_id,
        channel_id,
        channel_kind: ChannelKind::Email,
        provider_message_id: None,
        from: Identity::Email { address },
        from_name: name,
        contact_id: None,
        subject: parsed.subject.clone(),
        body_text: parsed.body_text.clone(),
        body_html: parsed.body_html.clone(),
        email: Some(EmailHeaders {
            message_id: email_id,
            in_reply_to: parsed.in_reply_to.clone(),
            references: parsed.references.clone(),
            to: parsed.to.clone(),
            cc: parsed.cc.clone(),
        }),
        form_fields: Vec::new(),
        attachments,
        raw: Some(raw),
    };
    Ok((message, signals))
}

#[cfg(test)]
mod tests {
    // Test code: a failed expectation must panic.
    #![allow(clippy::unwrap_used)]

    use switchboard_store::blob::PartEncoding;

    use super::*;

    /// A message with one attachment of each transfer encoding.
    fn mail() -> Vec<u8> {
        b"From: ada@customer.example\r\nTo: support@acme.test\r\nSubject: Files\r\n\
          Message-ID: <files-1@customer.example>\r\nMIME-Version: 1.0\r\n\
          Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
          Content-Type: text/plain\r\n\r\nThree files.\r\n--b\r\n\
          Content-Type: application/pdf; name=\"a.pdf\"\r\n\
          Content-Disposition: attachment; filename=\"a.pdf\"\r\n\
          Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcKJeTk9vwK\r\nJVBERi0x\r\n--b\r\n\
          Content-Type: application/octet-stream; name=\"b.bin\"\r\n\
          Content-Disposition: attachment; filename=\"b.bin\"\r\n\r\nplain bytes\r\n--b\r\n\
          Content-Type: application/octet-stream; name=\"c.bin\"\r\n\
          Content-Disposition: attachment; filename=\"c.bin\"\r\n\
          Content-Transfer-Encoding: quoted-printable\r\n\r\nquoted=3Dprintable\r\n--b--\r\n"
            .to_vec()
    }

    /// Base64 and unencoded attachments are kept as their ranges of the original (each range
    /// checked to decode to the attachment's bytes); a quoted-printable one is copied.
    #[test]
    fn attachments_in_the_original_are_kept_as_their_ranges() {
        let (parsed, raw, parts) = read(mail());
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        let found: Vec<(Option<&str>, Vec<u8>, Option<PartEncoding>)> = parts
            .iter()
            .map(|(blob, part)| {
                (
                    part.file_name.as_deref(),
                    blob.bytes().to_vec(),
                    blob.within().map(|w| w.encoding),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    Some("a.pdf"),
                    b"%PDF-1.7\n%\xe4\xe4\xf6\xfc\n%PDF-1".to_vec(),
                    Some(PartEncoding::Base64)
                ),
                (
                    Some("b.bin"),
                    b"plain bytes".to_vec(),
                    Some(PartEncoding::Identity)
                ),
                (Some("c.bin"), b"quoted=printable".to_vec(), None),
            ]
        );
        for (blob, _) in &parts {
            if let Some(within) = blob.within() {
                assert_eq!(within.source, raw.sha256());
                assert_eq!(within.decode(raw.bytes()).unwrap(), blob.bytes());
            }
        }
    }
}
