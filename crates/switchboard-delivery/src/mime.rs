//! The MIME message of a reply, built with lettre's message builder.
//!
//! Headers come from the recorded `ReplySent`: `Message-ID` exactly as recorded (so a second
//! sending after a crash is the same message to the customer's mail client), `In-Reply-To` and
//! `References` continuing the customer's thread, `To` and `Cc`, the subject. The body is the
//! text, or text and HTML as alternatives; inline images go with the HTML
//! (`multipart/related`), attachments after the body (`multipart/mixed`).
//!
//! Some of these values came from the customer's mail (the ids they referenced, their address):
//! nothing here trusts them to be well formed. An id that is not a plain `left@right` token is
//! left out of the threading headers rather than let it break the header; an address that does
//! not parse makes the reply fail permanently, naming it.

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as Part, Mailbox, MultiPart, SinglePart};
use proto_events::event::{Attachment, EmailHeaders, ReplySent};

/// The bytes of one attachment, with its reference.
#[derive(Debug)]
pub(crate) struct File<'r> {
    pub(crate) attachment: &'r Attachment,
    pub(crate) bytes: Vec<u8>,
}

/// The message of `reply` from `from`, threaded by `headers`, with `files`.
pub(crate) fn build(
    reply: &ReplySent,
    headers: &EmailHeaders,
    from: Mailbox,
    files: Vec<File<'_>>,
) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(from)
        .message_id(Some(format!("<{}>", headers.message_id)));
    if headers.to.is_empty() {
        return Err("the reply has no recipient".to_owned());
    }
    for to in &headers.to {
        builder = builder.to(mailbox(to)?);
    }
    for cc in &headers.cc {
        builder = builder.cc(mailbox(cc)?);
    }
    if let Some(subject) = &reply.subject {
        builder = builder.subject(one_line(subject));
    }
    if let Some(id) = headers.in_reply_to.as_deref().filter(|id| is_plain_id(id)) {
        builder = builder.in_reply_to(format!("<{id}>"));
    }
    let references: Vec<String> = headers
        .references
        .iter()
        .filter(|id| is_plain_id(id))
        .map(|id| format!("<{id}>"))
        .collect();
    if !references.is_empty() {
        builder = builder.references(references.join(" "));
    }

    let (inline, attached): (Vec<File<'_>>, Vec<File<'_>>) = files
        .into_iter()
        .partition(|file| file.attachment.inline && file.attachment.content_id.is_some());
    let text = SinglePart::plain(reply.body_text.clone());
    let body = match &reply.body_html {
        Some(html) => {
            let html = SinglePart::html(html.clone());
            let html = if inline.is_empty() {
                MultiPart::alternative().singlepart(text).singlepart(html)
            } else {
                let mut related = MultiPart::related().singlepart(html);
                for file in inline {
                    related = related.singlepart(part(file));
                }
                MultiPart::alternative().singlepart(text).multipart(related)
            };
            Body::Multi(html, false)
        }
        // Without HTML nothing cites an inline image: it goes as an attachment.
        None => {
            if attached.is_empty() && inline.is_empty() {
                Body::Single(text)
            } else {
                let mut mixed = MultiPart::mixed().singlepart(text);
                for file in inline {
                    mixed = mixed.singlepart(part(file));
                }
                Body::Multi(mixed, true)
            }
        }
    };
    let message = match (body, attached.is_empty()) {
        (Body::Single(text), true) => builder.singlepart(text),
        (Body::Multi(body, _), true) => builder.multipart(body),
        (body, false) => {
            let mut mixed = match body {
                Body::Multi(mixed, true) => mixed,
                Body::Multi(body, false) => MultiPart::mixed().multipart(body),
                Body::Single(text) => MultiPart::mixed().singlepart(text),
            };
            for file in attached {
                mixed = mixed.singlepart(part(file));
            }
            builder.multipart(mixed)
        }
    };
    message.map_err(|e| format!("the message cannot be built: {e}"))
}

/// A reply's body before attachments: one part, or a multipart (and whether it is already
/// `multipart/mixed`, which attachments join instead of wrapping it again).
enum Body {
    Single(SinglePart),
    Multi(MultiPart, bool),
}

/// One file as a MIME part: inline with its `Content-ID`, or an attachment with its name.
fn part(file: File<'_>) -> SinglePart {
    let attachment = file.attachment;
    let content_type = ContentType::parse(&attachment.content_type).unwrap_or_else(|_| {
        ContentType::parse("application/octet-stream").unwrap_or(ContentType::TEXT_PLAIN)
    });
    let name = attachment
        .file_name
        .as_deref()
        .map(one_line)
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "attachment".to_owned());
    match attachment
        .content_id
        .as_deref()
        .filter(|_| attachment.inline)
    {
        Some(id) => Part::new_inline_with_name(one_line(id), name).body(file.bytes, content_type),
        None => Part::new(name).body(file.bytes, content_type),
    }
}

/// `text` as `Name <address>` or a bare address.
fn mailbox(text: &str) -> Result<Mailbox, String> {
    text.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{text:?} is not an e-mail address: {e}"))
}

/// A header value on one line: line breaks and other control characters become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A message id as it may stand between angle brackets: printable ASCII without spaces or
/// brackets, with one `@` between non-empty halves.
fn is_plain_id(id: &str) -> bool {
    id.len() <= 998
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\'))
        && id
            .split_once('@')
            .is_some_and(|(left, right)| !left.is_empty() && !right.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_the_network_are_checked() {
        assert!(is_plain_id("a1.b2@customer.test"));
        assert!(!is_plain_id("no-at-sign"));
        assert!(!is_plain_id("a@b\r\nBcc: victim@evil.test"));
        assert!(!is_plain_id("<a@b>"));
        assert!(!is_plain_id("a b@c"));
        assert!(!is_plain_id("@c"));
    }

    #[test]
    fn header_values_stay_on_one_line() {
        assert_eq!(one_line("Re: hi\r\nBcc: x@y"), "Re: hi  Bcc: x@y");
    }
}
