//! Reading a raw e-mail: what a conversation needs from it, and what went wrong reading it.
//!
//! [`parse`] never fails and never panics: whatever the bytes, it returns what could be read
//! (perhaps nothing but a warning), and the caller keeps the raw message beside it. mail-parser
//! decodes RFC 2047 headers, charsets, quoted-printable and base64, and walks multiparts without
//! recursion (nested `message/rfc822` parts only three deep), so a 10,000-deep nesting costs
//! memory in proportion to the input, not stack.
//!
//! The HTML body is sanitised for display with ammonia (scripts, event handlers, `javascript:`
//! links and remote styles go; `cid:` images stay, the download route serves them). A delivery
//! status notification (`multipart/report; report-type=delivery-status`) is recognised, with
//! the `Message-ID` of the message it reports on and the remote status.

use std::borrow::Cow;

use mail_parser::{
    Addr, Address, Encoding, HeaderValue, Message, MessageParser, MimeHeaders, PartType,
};
use switchboard_domain::filter::MailSignals;
use switchboard_store::blob::{PartEncoding, Within};

/// Longest header value kept (a subject, a name), in characters; the raw message keeps all.
const MAX_HEADER_CHARS: usize = 2_000;

/// Most `References` kept, the newest ones.
const MAX_REFERENCES: usize = 100;

/// Most addresses kept per header (`To`, `Cc`).
const MAX_ADDRESSES: usize = 100;

/// The most of the text body an event carries, in bytes; the original keeps all of it.
pub const MAX_TEXT_BYTES: usize = 512 * 1024;

/// The most of the HTML body an event carries, in bytes.
pub const MAX_HTML_BYTES: usize = 1024 * 1024;

/// Most attachments listed on a message; the original keeps all of them.
pub const MAX_PARTS: usize = 200;

/// An e-mail, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedMail {
    /// `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// `In-Reply-To`, without angle brackets.
    pub in_reply_to: Option<String>,
    /// `References`, oldest first, without angle brackets.
    pub references: Vec<String>,
    /// The sender (`From`, else `Sender`, else `Reply-To`): address and display name.
    pub from: Option<Mailbox>,
    /// `To` addresses.
    pub to: Vec<String>,
    /// `Cc` addresses.
    pub cc: Vec<String>,
    /// `Subject`, decoded.
    pub subject: Option<String>,
    /// The plain-text body (from the HTML body when there is no text part).
    pub body_text: String,
    /// The HTML body, sanitised for display.
    pub body_html: Option<String>,
    /// Attachments and inline images, with their bytes.
    pub parts: Vec<Part>,
    /// What the e-mail filter looks at.
    pub signals: MailSignals,
    /// A delivery status notification's report, when this is one.
    pub report: Option<DeliveryReport>,
    /// What could not be read.
    pub warnings: Vec<String>,
}

/// An address with its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The address, as written.
    pub address: String,
    /// The display name, if any.
    pub name: Option<String>,
}

/// An attachment or inline image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its decoded bytes.
    pub bytes: Vec<u8>,
    /// Its file name, if given.
    pub file_name: Option<String>,
    /// `type/subtype`, lower case.
    pub content_type: String,
    /// `Content-ID`, without angle brackets.
    pub content_id: Option<String>,
    /// Shown inside the body rather than listed.
    pub inline: bool,
    /// Where the bytes stand in the raw message (with an empty `source`), as far as the
    /// parser says: the blob store keeps the range instead of a copy when it checks out.
    pub within: Option<Within>,
}

/// What a delivery status notification says about the message it reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The `Message-ID` of the reported message, from its returned headers.
    pub original_message_id: Option<String>,
    /// `Action` of the first recipient: `failed`, `delayed`, `delivered`, ...
    pub action: Option<String>,
    /// The remote status: the SMTP code of the `Diagnostic-Code` and the `Status`, e.g.
    /// `550 5.1.1`, or just the `Status`.
    pub status: Option<String>,
    /// The `Diagnostic-Code` text, for display.
    pub diagnostic: Option<String>,
}

impl DeliveryReport {
    /// Whether the report says delivery failed for good (not delayed or relayed).
    pub fn failed(&self) -> bool {
        self.action
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case("failed"))
    }
}

/// Reads `raw`. Never fails: an unreadable message gives an empty [`ParsedMail`] with a warning.
pub fn parse(raw: &[u8]) -> ParsedMail {
    let Some(message) = MessageParser::default().parse(raw) else {
        return ParsedMail {
            warnings: vec!["the message could not be read as an e-mail".to_owned()],
            ..ParsedMail::default()
        };
    };
    let mut warnings = Vec::new();
    if raw.contains(&0) {
        warnings.push("the message contains NUL bytes".to_owned());
    }
    if message.parts.iter().any(|p| p.is_encoding_problem) {
        warnings.push(
            "a part could not be decoded (its charset or transfer encoding is wrong); it is \
             shown as far as it could be read"
                .to_owned(),
        );
    }
    let from = message
        .from()
        .or_else(|| message.sender())
        .or_else(|| message.reply_to())
        .and_then(first_mailbox);
    // Only an HTML part the sender wrote: mail-parser would make one up from a text part.
    let body_html = message
        .html_bodies()
        .find_map(|part| match &part.body {
            PartType::Html(html) => Some(sanitise(html)),
            _ => None,
        })
        .filter(|html| !html.trim().is_empty());
    let mut parts: Vec<Part> = message
        .attachments()
        .filter_map(|part| attachment(raw, part))
        .collect();
    if parts.len() > MAX_PARTS {
        warnings.push(format!(
            "{} attachments: the first {MAX_PARTS} are listed, the original holds them all",
            parts.len()
        ));
        parts.truncate(MAX_PARTS);
    }
    let mut body_text = message
        .body_text(0)
        .map(Cow::into_owned)
        .unwrap_or_default();
    if body_text.trim().is_empty() {
        // A text part mail-parser could not decode (an unknown charset) is an attachment to
        // it: show it as far as it reads as UTF-8.
        if let Some(text) = parts
            .iter()
            .find(|p| p.content_type == "text/plain" && p.file_name.is_none())
        {
            body_text = String::from_utf8_lossy(&text.bytes).into_owned();
        }
    }
    let body_text = cut(body_text, MAX_TEXT_BYTES, "text", &mut warnings);
    let body_html = body_html.map(|html| cut(html, MAX_HTML_BYTES, "HTML", &mut warnings));
    ParsedMail {
        message_id: message.message_id().and_then(message_id),
        in_reply_to: ids(message.in_reply_to()).pop(),
        references: {
            let mut references = ids(message.references());
            let cut = references.len().saturating_sub(MAX_REFERENCES);
            references.drain(..cut);
            references
        },
        from,
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        subject: message.subject().map(clip),
        body_text,
        body_html,
        parts,
        signals: signals(&message),
        report: report(&message),
        warnings,
    }
}

/// `body` cut to at most `max` bytes (at a character boundary), with a warning when cut.
fn cut(mut body: String, max: usize, what: &str, warnings: &mut Vec<String>) -> String {
    if body.len() > max {
        let mut end = max;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        warnings.push(format!(
            "the {what} body is {} bytes: the first {end} are shown, the original holds it whole",
            body.len()
        ));
        body.truncate(end);
    }
    body
}

/// `html` without what could run in a reader's browser.
pub fn sanitise(html: &str) -> String {
    let mut schemes = ammonia::Builder::default().clone_url_schemes();
    schemes.insert("cid");
    ammonia::Builder::default()
        .url_schemes(schemes)
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(html)
        .to_string()
}

/// A header value cut to [`MAX_HEADER_CHARS`] characters, without control characters.
fn clip(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .take(MAX_HEADER_CHARS)
        .collect()
}

/// A message id as stored: without angle brackets and whitespace; `None` if nothing is left.
fn message_id(text: &str) -> Option<String> {
    let id = text
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty() && !id.chars().any(char::is_control) && id.len() <= 998).then(|| id.to_owned())
}

/// The message ids of a header holding one or a list.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(text) => text.split_whitespace().filter_map(message_id).collect(),
        HeaderValue::TextList(list) => list.iter().filter_map(|t| message_id(t)).collect(),
        _ => Vec::new(),
    }
}

fn mailbox(addr: &Addr<'_>) -> Option<Mailbox> {
    let address = addr.address()?.trim();
    (!address.is_empty() && !address.chars().any(char::is_control)).then(|| Mailbox {
        address: clip(address),
        name: addr
            .name()
            .map(|n| clip(n.trim()))
            .filter(|n| !n.is_empty()),
    })
}

fn first_mailbox(address: &Address<'_>) -> Option<Mailbox> {
    address.iter().find_map(mailbox)
}

fn addresses(address: Option<&Address<'_>>) -> Vec<String> {
    address
        .into_iter()
        .flat_map(|a| a.iter())
        .filter_map(mailbox)
        .map(|m| m.address)
        .take(MAX_ADDRESSES)
        .collect()
}

/// `type/subtype` of a part, lower case.
fn content_type<'x>(part: &impl MimeHeaders<'x>) -> Option<String> {
    part.content_type().map(|ct| {
        let subtype = ct.subtype().unwrap_or("octet-stream");
        format!("{}/{}", ct.ctype(), subtype).to_ascii_lowercase()
    })
}

/// An attachment of the message, with its decoded bytes; a nested message keeps its raw bytes.
fn attachment(raw: &[u8], part: &mail_parser::MessagePart<'_>) -> Option<Part> {
    let range = |encoding| {
        Some(Within {
            source: String::new(),
            start: u64::from(part.offset_body),
            end: u64::from(part.offset_end),
            encoding,
        })
    };
    let (bytes, default_type, within) = match &part.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
            let within = match part.encoding {
                Encoding::Base64 => range(PartEncoding::Base64),
                Encoding::None => range(PartEncoding::Identity),
                Encoding::QuotedPrintable => None,
            };
            (bytes.to_vec(), "application/octet-stream", within)
        }
        PartType::Text(text) => (text.as_bytes().to_vec(), "text/plain", None),
        PartType::Html(html) => (html.as_bytes().to_vec(), "text/html", None),
        PartType::Message(_) => {
            let start = usize::try_from(part.offset_body).ok()?;
            let end = usize::try_from(part.offset_end).ok()?;
            (
                raw.get(start..end)?.to_vec(),
                "message/rfc822",
                range(PartEncoding::Identity),
            )
        }
        PartType::Multipart(_) => return None,
    };
    let content_type = content_type(part)
        .filter(|ct| !ct.chars().any(char::is_control))
        .unwrap_or_else(|| default_type.to_owned());
    let content_id = part.content_id().and_then(message_id);
    let disposition_inline = part
        .content_disposition()
        .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"));
    Some(Part {
        bytes,
        file_name: part
            .attachment_name()
            .map(clip)
            .filter(|n| !n.trim().is_empty()),
        content_type,
        inline: content_id.is_some()
            && (disposition_inline || matches!(part.body, PartType::InlineBinary(_))),
        content_id,
        within,
    })
}

/// The headers the e-mail filter looks at.
fn signals(message: &Message<'_>) -> MailSignals {
    let text = |name: &str| message.header_raw(name).map(|v| clip(v.trim()));
    MailSignals {
        from: message
            .from()
            .and_then(first_mailbox)
            .map(|m| m.address)
            .unwrap_or_default(),
        auto_submitted: text("Auto-Submitted"),
        precedence: text("Precedence"),
        list_unsubscribe: message.header_raw("List-Unsubscribe").is_some(),
        list_id: message.header_raw("List-Id").is_some(),
        x_autoreply: message.header_raw("X-Autoreply").is_some(),
        x_autorespond: message.header_raw("X-Autorespond").is_some(),
        x_auto_response_suppress: text("X-Auto-Response-Suppress"),
        subject: message.subject().map(clip),
    }
}

/// The report of a delivery status notification.
fn report(message: &Message<'_>) -> Option<DeliveryReport> {
    let root = message.root_part();
    let is_report = root.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if !is_report {
        return None;
    }
    let mut report = DeliveryReport {
        original_message_id: None,
        action: None,
        status: None,
        diagnostic: None,
    };
    let mut code = None;
    for part in &message.parts {
        let Some(kind) = content_type(part) else {
            continue;
        };
        match kind.as_str() {
            "message/delivery-status" | "message/global-delivery-status" => {
                let text = String::from_utf8_lossy(part.contents());
                for line in text.lines() {
                    let Some((name, value)) = line.split_once(':') else {
                        continue;
                    };
                    let value = clip(value.trim());
                    match name.trim().to_ascii_lowercase().as_str() {
                        "action" if report.action.is_none() => report.action = Some(value),
                        "status" if report.status.is_none() => report.status = Some(value),
                        "diagnostic-code" if report.diagnostic.is_none() => {
                            let diagnostic = value
                                .split_once(';')
                                .map_or(value.as_str(), |(_, d)| d)
                                .trim()
                                .to_owned();
                            code = diagnostic
                                .get(..3)
                                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                                .map(str::to_owned);
                            report.diagnostic = Some(diagnostic);
                        }
                        _ => {}
                    }
                }
            }
            "message/rfc822" | "message/global" => {
                if let PartType::Message(original) = &part.body {
                    report.original_message_id = report
                        .original_message_id
                        .or_else(|| original.message_id().and_then(message_id));
                }
            }
            "text/rfc822-headers" | "message/global-headers" => {
                // The part's text ends without the line break its last header needs.
                let mut text = part.contents().to_vec();
                text.extend_from_slice(b"\r\n\r\n");
                let headers = MessageParser::default().parse_headers(&text);
                report.original_message_id = report.original_message_id.or_else(|| {
                    headers
                        .as_ref()
                        .and_then(|h| h.message_id())
                        .and_then(message_id)
                });
            }
            _ => {}
        }
    }
    report.status = match (code, report.status.take()) {
        (Some(code), Some(status)) => Some(format!("{code} {status}")),
        (Some(code), None) => Some(code),
        (None, status) => status,
    };
    Some(report)
}
