//! Stream names: `<category>-<id>`, one stream per aggregate instance.
//!
//! The category (the part before the first `-`) lets the store and projectors select every stream
//! of one kind, e.g. all conversations. Build names only through these functions so that every
//! crate spells them alike.

use uuid::Uuid;

use crate::event::{Identity, UniqueScope};

/// Category of organisation streams.
pub const ORGANISATION: &str = "organisation";
/// Category of user streams.
pub const USER: &str = "user";
/// Category of team streams.
pub const TEAM: &str = "team";
/// Category of bot streams.
pub const BOT: &str = "bot";
/// Category of inbox streams.
pub const INBOX: &str = "inbox";
/// Category of channel streams.
pub const CHANNEL: &str = "channel";
/// Category of conversation streams.
pub const CONVERSATION: &str = "conversation";
/// Category of contact streams.
pub const CONTACT: &str = "contact";
/// Category of company streams.
pub const COMPANY: &str = "company";
/// Category of deal streams.
pub const DEAL: &str = "deal";
/// Category of ticket streams.
pub const TICKET: &str = "ticket";
/// Category of uniqueness reservation streams.
pub const UNIQUE: &str = "unique";
/// The stream of facts about the log itself (a re-chained import), one per store.
pub const HISTORY: &str = "history";

/// The longest stream name, in bytes, that every event store accepts (the stores also refuse
/// control characters). A name built from a user's value, like a reservation's, must be
/// checked against it before it reaches a store.
pub const MAX_NAME_BYTES: usize = 256;

fn named(category: &str, id: Uuid) -> String {
    format!("{category}-{id}")
}

/// `organisation-<id>`: settings and business hours.
pub fn organisation(id: Uuid) -> String {
    named(ORGANISATION, id)
}

/// `user-<id>`: a user's role, availability, capacity and notification settings.
pub fn user(id: Uuid) -> String {
    named(USER, id)
}

/// `team-<id>`: a team's name and members.
pub fn team(id: Uuid) -> String {
    named(TEAM, id)
}

/// `bot-<id>`: a bot's registration.
pub fn bot(id: Uuid) -> String {
    named(BOT, id)
}

/// `inbox-<id>`: an inbox's name, members, restriction and inbox-wide routing rule.
pub fn inbox(id: Uuid) -> String {
    named(INBOX, id)
}

/// `channel-<id>`: a channel's connection, routing rule and e-mail filters.
pub fn channel(id: Uuid) -> String {
    named(CHANNEL, id)
}

/// `conversation-<id>`: a conversation's messages, comments, assignments and status.
pub fn conversation(id: Uuid) -> String {
    named(CONVERSATION, id)
}

/// `contact-<id>`: a contact record.
pub fn contact(id: Uuid) -> String {
    named(CONTACT, id)
}

/// `company-<id>`: a company record.
pub fn company(id: Uuid) -> String {
    named(COMPANY, id)
}

/// `deal-<id>`: a deal record.
pub fn deal(id: Uuid) -> String {
    named(DEAL, id)
}

/// `ticket-<id>`: a ticket record.
pub fn ticket(id: Uuid) -> String {
    named(TICKET, id)
}

/// `unique-<scope>-<normalised value>`: the reservation stream of a value that must be unique,
/// e.g. `unique-contact-email-ada@example.com`.
pub fn unique(scope: UniqueScope, value: &str) -> String {
    format!("{UNIQUE}-{}-{}", scope.as_str(), scope.normalise(value))
}

/// The key that names the reservation streams of customers' values (ADR 0007).
///
/// A stream name is covered by the hash chain and outlives an erasure, so a customer's address
/// must not be in one: their reservations are named by an HMAC of the value instead
/// ([`NameKey::unique`]). The key is derived from the master key, so every node of one store
/// names a value alike; without it nobody can tell which value a name stands for, short of
/// guessing the value and holding the key.
#[derive(Clone, PartialEq, Eq)]
pub struct NameKey([u8; 32]);

impl std::fmt::Debug for NameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameKey(<redacted>)")
    }
}

/// What marks a keyed value in a reservation stream's name: `#` and 64 lower-case hex digits
/// ([`is_keyed`]), which no plain value of the scopes that are keyed is (an e-mail address has
/// an `@`; a visitor id or a PSID of that form would have to be the HMAC of another value).
const KEYED: char = '#';

/// Whether the value part of a reservation stream's name is a keyed one ([`NameKey::unique`]).
fn is_keyed(value: &str) -> bool {
    value.strip_prefix(KEYED).is_some_and(|digest| {
        digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl NameKey {
    /// A key from its bytes (see `MasterKey::derive`).
    pub fn new(bytes: [u8; 32]) -> NameKey {
        NameKey(bytes)
    }

    /// The reservation stream of `value` in `scope`: for a customer's value
    /// ([`UniqueScope::is_customers`]) `unique-<scope>-#<HMAC-SHA-256 of the normalised value,
    /// in hex>`; for the company's own values (users' and channels' addresses), as [`unique`]
    /// names them.
    pub fn unique(&self, scope: UniqueScope, value: &str) -> String {
        use hmac::{Hmac, Mac};
        if !scope.is_customers() {
            return unique(scope, value);
        }
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(scope.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(scope.normalise(value).as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("{UNIQUE}-{}-{KEYED}{}", scope.as_str(), hex::encode(digest))
    }
}

/// What stands for the value in the name of a reservation stream whose customer was erased.
pub const ERASED_VALUE: &str = "(erased)";

/// The name a reservation stream that names a customer's value in the clear (one written
/// before names were keyed, see [`NameKey`]) shows once that customer is erased:
/// `unique-<scope>-(erased)`. `None` for every other stream, keyed names included (they hold
/// no value).
pub fn erased_reservation_name(stream: &str) -> Option<String> {
    let rest = stream.strip_prefix(UNIQUE)?.strip_prefix('-')?;
    [
        UniqueScope::ContactEmail,
        UniqueScope::ContactChatVisitor,
        UniqueScope::ContactMessenger,
    ]
    .into_iter()
    .find_map(|scope| {
        let value = rest.strip_prefix(scope.as_str())?.strip_prefix('-')?;
        (!is_keyed(value) && value != ERASED_VALUE)
            .then(|| format!("{UNIQUE}-{}-{ERASED_VALUE}", scope.as_str()))
    })
}

/// `history`: facts about the log itself, such as a re-chained import.
pub fn history() -> String {
    HISTORY.to_owned()
}

/// The reservation stream of a contact identity, e.g. `unique-contact-chat-visitor-<visitor id>`.
pub fn contact_identity(identity: &Identity) -> String {
    let (scope, value) = UniqueScope::of_identity(identity);
    unique(scope, value)
}

/// The category of a stream name: everything before the first `-` (the whole name if none).
pub fn category(stream: &str) -> &str {
    stream
        .split_once('-')
        .map_or(stream, |(category, _)| category)
}
