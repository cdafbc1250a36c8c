//! E-mail threading: the `Message-ID` we mint for a reply, and the `In-Reply-To` and
//! `References` headers that make the customer's mail client file it in the same thread
//! (RFC 5322 section 3.6.4).
//!
//! Kept apart from deciding because the rules are mail's, not the inbox's.

use std::iter;

use proto_events::event::EmailHeaders;
use uuid::Uuid;

/// The domain of minted `Message-ID`s when the sending address has none to lend.
pub const FALLBACK_MESSAGE_ID_DOMAIN: &str = "switchboard.invalid";

/// The e-mail thread of a conversation, as far as replying needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailThread {
    /// Every `Message-ID` of the thread (the customer's, those they referenced, and ours), oldest
    /// first, each once: what a reply's `References` lists.
    pub references: Vec<String>,
    /// The `Message-ID` of the customer's last e-mail: what a reply answers (`In-Reply-To`).
    pub last_inbound: Option<String>,
}

impl EmailThread {
    /// Takes in a customer's e-mail: what it referenced, then the e-mail itself.
    pub(crate) fn inbound(&mut self, headers: &EmailHeaders) {
        for id in headers
            .references
            .iter()
            .chain(&headers.in_reply_to)
            .chain(iter::once(&headers.message_id))
        {
            self.push(id);
        }
        self.last_inbound = Some(headers.message_id.clone());
    }

    /// Takes in one of our e-mails, so later replies reference it too.
    pub(crate) fn outbound(&mut self, headers: &EmailHeaders) {
        self.push(&headers.message_id);
    }

    fn push(&mut self, id: &str) {
        if !self.references.iter().any(|known| known == id) {
            self.references.push(id.to_owned());
        }
    }

    /// The headers of a reply with `Message-ID` `message_id` to `to`: in reply to the customer's
    /// last e-mail (or, if they never sent one, to our last), referencing the whole thread.
    pub fn reply_headers(&self, message_id: String, to: Vec<String>) -> EmailHeaders {
        EmailHeaders {
            message_id,
            in_reply_to: self
                .last_inbound
                .clone()
                .or_else(|| self.references.last().cloned()),
            references: self.references.clone(),
            to,
            cc: Vec::new(),
        }
    }
}

/// The `Message-ID` of our outbound e-mail `message_id`, sent from `from_address`:
/// `<message id>@<the address's domain>`. Unique because message ids are, and on a domain the
/// sender controls (mail whose `Message-ID` names an unrelated domain scores as spam); on
/// [`FALLBACK_MESSAGE_ID_DOMAIN`] when the address has no domain.
pub fn message_id_for(message_id: Uuid, from_address: Option<&str>) -> String {
    let domain = from_address
        .and_then(|address| address.rsplit_once('@'))
        .map(|(_, domain)| domain.trim().to_lowercase())
        .filter(|domain| !domain.is_empty())
        .unwrap_or_else(|| FALLBACK_MESSAGE_ID_DOMAIN.to_owned());
    format!("{message_id}@{domain}")
}

/// The subject of a reply in a thread about `subject`: `Re: <subject>`, without stacking a
/// second `Re:` onto one already there.
pub fn reply_subject(subject: &str) -> String {
    let subject = subject.trim();
    let already = subject
        .get(..3)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("re:"));
    if already {
        subject.to_owned()
    } else {
        format!("Re: {subject}")
    }
}
