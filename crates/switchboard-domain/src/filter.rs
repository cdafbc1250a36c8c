//! The e-mail filter: whether an inbound e-mail goes to the Filtered view instead of the inbox,
//! and why. Pure: the ingester extracts a few headers into [`MailSignals`], says whether the
//! sender is a known contact, and records `MessageFiltered` with the reason [`evaluate`] gives,
//! or `MessageReceived` when it gives none.
//!
//! # Order of the checks
//! The first that decides wins:
//! 1. **Allow rules** of the channel: mail from an allowed address or domain is never filtered,
//!    whatever else says.
//! 2. **Deny rules**: mail from a denied address or domain is filtered, *known contacts
//!    included*. A deny rule is an admin's explicit choice about one sender, not a guess that
//!    mail is spam, and filtered mail is kept and can be restored. An address rule is more
//!    specific than a domain rule, so it is reported first; among domain rules the longest
//!    (most specific) domain is.
//! 3. **Known contacts** are never filtered by the built-in rules (PRODUCT.md: "mail from known
//!    contacts is never filtered as spam").
//! 4. **Built-in rules**, each only if switched on for the channel, from the most specific
//!    signal to the broadest: automated reply, bulk mail, role address, unsubscribe header.
//!
//! Addresses and domains compare case-insensitively. A domain rule matches the domain and its
//! subdomains (`example.com` matches `news.example.com`, not `badexample.com`), because senders
//! of bulk mail commonly use a subdomain per campaign or service.
//!
//! A channel the directory has no filter settings for (not an e-mail channel, unknown) filters
//! nothing.

use proto_events::event::{FilterAction, FilterReason, SenderPattern};
use uuid::Uuid;

use crate::directory::{Directory, EmailFilterRule};

/// What the filter looks at in an inbound e-mail: the sender and the headers an SMTP or IMAP
/// ingester extracts. Header values are as received; absent headers are `None` or `false`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailSignals {
    /// The sender's address (`From`). A `Name <address>` form is tolerated.
    pub from: String,
    /// `Auto-Submitted` (RFC 3834): anything but `no` marks an automated message.
    pub auto_submitted: Option<String>,
    /// `Precedence`: `bulk`, `list` and `junk` mark bulk mail, `auto_reply` an automated reply.
    pub precedence: Option<String>,
    /// Whether a `List-Unsubscribe` header is present.
    pub list_unsubscribe: bool,
    /// Whether a `List-Id` header is present (mailing-list mail).
    pub list_id: bool,
    /// Whether an `X-Autoreply` header is present (any value).
    pub x_autoreply: bool,
    /// Whether an `X-Autorespond` header is present (any value).
    pub x_autorespond: bool,
    /// `X-Auto-Response-Suppress`: Exchange puts `All`, `OOF` or `AutoReply` on its own
    /// automatic replies, so that they are not answered automatically in turn.
    pub x_auto_response_suppress: Option<String>,
    /// `Subject`: out-of-office subjects (`Out of Office: …`, `Automatic reply: …`) mark
    /// automated replies from servers that set no header.
    pub subject: Option<String>,
}

/// Why the e-mail should be filtered on `channel_id`, or `None` if it goes to the inbox. See the
/// module's documentation for the order of the checks. `known_contact` is whether the sender is
/// already a contact.
pub fn evaluate(
    directory: &Directory,
    channel_id: Uuid,
    signals: &MailSignals,
    known_contact: bool,
) -> Option<FilterReason> {
    let filters = directory.email_filters(channel_id)?;
    let sender = &Sender::parse(&signals.from);
    let matching = |action: FilterAction| {
        filters
            .rules
            .iter()
            .filter(move |rule| rule.action == action && sender.matches(&rule.pattern))
    };
    if matching(FilterAction::Allow).next().is_some() {
        return None;
    }
    if let Some(rule) = matching(FilterAction::Deny).max_by_key(|rule| specificity(rule)) {
        return Some(FilterReason::DenyRule {
            rule_id: rule.id,
            pattern: rule.pattern.clone(),
        });
    }
    if known_contact {
        return None;
    }
    let built_in = filters.built_in;
    if built_in.automated_replies && is_automated_reply(signals) {
        Some(FilterReason::AutomatedReply)
    } else if built_in.bulk_mail && is_bulk(signals) {
        Some(FilterReason::BulkMail)
    } else if built_in.role_addresses && sender.is_role_address() {
        Some(FilterReason::RoleAddress)
    } else if built_in.unsubscribe_header && signals.list_unsubscribe {
        Some(FilterReason::UnsubscribeHeader)
    } else {
        None
    }
}

/// How specific a rule's pattern is: any address beats any domain, a longer domain a shorter
/// one. `max_by_key` keeps the last of equals, so ties go to the latest rule added.
fn specificity(rule: &EmailFilterRule) -> (bool, usize) {
    match &rule.pattern {
        SenderPattern::Address { .. } => (true, 0),
        SenderPattern::Domain { domain } => (false, domain.len()),
    }
}

/// The sender's address, split and lower-cased.
struct Sender {
    address: String,
    /// The local part without any `+tag`.
    local: String,
    domain: String,
}

impl Sender {
    fn parse(from: &str) -> Sender {
        let from = from.trim();
        // `Name <address>`: keep what is inside the last angle brackets.
        let address = match (from.rfind('<'), from.rfind('>')) {
            (Some(open), Some(close)) if open < close => &from[open + 1..close],
            _ => from,
        };
        let address = address.trim().to_lowercase();
        let (local, domain) = address.rsplit_once('@').unwrap_or((address.as_str(), ""));
        let local = local.split('+').next().unwrap_or(local).to_owned();
        let domain = domain.to_owned();
        Sender {
            address,
            local,
            domain,
        }
    }

    fn matches(&self, pattern: &SenderPattern) -> bool {
        match pattern {
            SenderPattern::Address { address } => self.address == address.trim().to_lowercase(),
            SenderPattern::Domain { domain } => {
                let domain = domain.trim().trim_start_matches('@').to_lowercase();
                !domain.is_empty()
                    && (self.domain == domain || self.domain.ends_with(&format!(".{domain}")))
            }
        }
    }

    /// Addresses nobody reads or answers: noreply@, mailer-daemon@, bounces@ and their
    /// variants (`noreply-alerts@`, `bounces+1234@`, `no_reply2@`), but not `bouncer@`.
    fn is_role_address(&self) -> bool {
        const STEMS: &[&str] = &[
            "noreply",
            "no-reply",
            "no_reply",
            "no.reply",
            "donotreply",
            "do-not-reply",
            "do_not_reply",
            "do.not.reply",
            "mailer-daemon",
            "mailerdaemon",
            "postmaster",
            "bounce",
            "bounces",
        ];
        STEMS.iter().any(|stem| {
            self.local.strip_prefix(stem).is_some_and(|rest| {
                rest.chars()
                    .next()
                    .is_none_or(|next| !next.is_ascii_alphabetic())
            })
        })
    }
}

/// The value of a structured header up to any parameter, trimmed and lower-cased.
fn token(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or(value)
        .trim()
        .to_lowercase()
}

/// Subject prefixes of out-of-office and automatic replies, lower-cased.
const AUTOMATED_SUBJECTS: &[&str] = &[
    "out of office",
    "out-of-office",
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto:",
    "automatische antwort",
    "abwesenheitsnotiz",
    "réponse automatique",
    "respuesta automática",
];

fn is_automated_reply(signals: &MailSignals) -> bool {
    let auto_submitted = signals
        .auto_submitted
        .as_deref()
        .is_some_and(|value| token(value) != "no");
    let precedence = signals
        .precedence
        .as_deref()
        .is_some_and(|value| token(value) == "auto_reply");
    let suppress = signals
        .x_auto_response_suppress
        .as_deref()
        .is_some_and(|value| {
            value.split(',').any(|flag| {
                matches!(
                    flag.trim().to_lowercase().as_str(),
                    "all" | "oof" | "autoreply"
                )
            })
        });
    let subject = signals.subject.as_deref().is_some_and(|subject| {
        let subject = subject.trim_start().to_lowercase();
        AUTOMATED_SUBJECTS
            .iter()
            .any(|prefix| subject.starts_with(prefix))
    });
    auto_submitted
        || precedence
        || signals.x_autoreply
        || signals.x_autorespond
        || suppress
        || subject
}

fn is_bulk(signals: &MailSignals) -> bool {
    signals.list_id
        || signals
            .precedence
            .as_deref()
            .is_some_and(|value| matches!(token(value).as_str(), "bulk" | "list" | "junk"))
}
