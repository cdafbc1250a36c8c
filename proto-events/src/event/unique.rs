//! Uniqueness reservations: how "one contact per e-mail address" holds in an event store.
//!
//! An event store checks one stream at a time, so a value that must be unique across streams
//! gets a stream of its own, named after the normalised value
//! ([`crate::streams::unique`]). Claiming the value appends [`UniqueValueReserved`] to that stream
//! expecting it to be empty (or to end with a release); a concurrent claim loses on the version
//! check.

use serde::{Deserialize, Serialize};

use crate::event::Identity;

/// What kind of value must be unique. Part of the reservation stream's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UniqueScope {
    /// A contact's e-mail address.
    ContactEmail,
    /// A contact's chat visitor id.
    ContactChatVisitor,
    /// A contact's Messenger PSID.
    ContactMessenger,
    /// A user's sign-in e-mail address.
    UserEmail,
    /// The address of a connected e-mail channel.
    ChannelEmail,
}

impl UniqueScope {
    /// The scope as it appears in stream names, e.g. `"contact-email"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContactEmail => "contact-email",
            Self::ContactChatVisitor => "contact-chat-visitor",
            Self::ContactMessenger => "contact-messenger",
            Self::UserEmail => "user-email",
            Self::ChannelEmail => "channel-email",
        }
    }

    /// The value in the form compared for uniqueness: trimmed, and lower-cased for e-mail
    /// addresses (which are case-insensitive in practice). Chat and Messenger ids are opaque and
    /// compared as given.
    pub fn normalise(self, value: &str) -> String {
        let value = value.trim();
        match self {
            Self::ContactEmail | Self::UserEmail | Self::ChannelEmail => value.to_lowercase(),
            Self::ContactChatVisitor | Self::ContactMessenger => value.to_owned(),
        }
    }

    /// Whether the values of this scope are customers' (contacts' identities), whose
    /// reservation streams are named by a keyed hash (`streams::NameKey`); users' and
    /// channels' addresses are the company's and keep their names.
    pub fn is_customers(self) -> bool {
        match self {
            Self::ContactEmail | Self::ContactChatVisitor | Self::ContactMessenger => true,
            Self::UserEmail | Self::ChannelEmail => false,
        }
    }

    /// The scope and raw value under which a contact's identity is reserved.
    pub fn of_identity(identity: &Identity) -> (Self, &str) {
        match identity {
            Identity::Email { address } => (Self::ContactEmail, address),
            Identity::ChatVisitor { visitor_id } => (Self::ContactChatVisitor, visitor_id),
            Identity::Messenger { psid } => (Self::ContactMessenger, psid),
        }
    }
}

/// A unique value was claimed by an aggregate. Recorded in the value's reservation stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniqueValueReserved {
    /// What kind of value.
    pub scope: UniqueScope,
    /// The value, normalised.
    pub value: String,
    /// The stream of the aggregate that holds it, e.g. `"contact-<id>"`.
    pub owner_stream: String,
}

/// A unique value was given up (a contact merged away, a channel disconnected) and may be
/// claimed again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniqueValueReleased {
    /// What kind of value.
    pub scope: UniqueScope,
    /// The value, normalised.
    pub value: String,
    /// The stream of the aggregate that held it.
    pub owner_stream: String,
}
