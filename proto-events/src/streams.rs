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
