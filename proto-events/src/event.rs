//! The domain events: every fact Switchboard records, as typed payloads, and [`DomainEvent`],
//! the enum over all of them.
//!
//! Payloads are past-tense facts, serialised as JSON, and carry the ids they concern so that
//! projectors need no joins. Each has a stable type name (the name of its payload type) and a
//! schema version; both are stored beside the payload, in the envelope. The list below is the
//! single place that declares them, so [`DomainEvent::TYPES`], [`DomainEvent::event_type`] and
//! decoding cannot drift apart.
//!
//! Changing a released payload means bumping its version here and adding an upcaster in
//! [`crate::upcast`]; never rename a type or edit a released shape in place.

mod conversation;
mod history;
mod inbox;
mod organisation;
mod record;
mod unique;

use serde::{Deserialize, Serialize};

pub use self::conversation::*;
pub use self::history::*;
pub use self::inbox::*;
pub use self::organisation::*;
pub use self::record::*;
pub use self::unique::*;
use crate::{DecodeError, upcast};

/// Declares [`DomainEvent`] from a list of `PayloadType("StableName", current_version)`.
macro_rules! domain_events {
    ($($variant:ident($name:literal, $version:literal)),+ $(,)?) => {
        /// Any domain event: one variant per payload type, each named like its payload.
        ///
        /// Serialises as the bare payload (untagged); the type name and schema version travel
        /// beside it in the envelope.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(untagged)]
        pub enum DomainEvent {
            $(
                #[doc = concat!("See [`", stringify!($variant), "`].")]
                $variant($variant),
            )+
        }

        impl DomainEvent {
            /// Every event type with its current schema version, in declaration order.
            pub const TYPES: &[(&str, u32)] = &[$(($name, $version)),+];

            /// The stable type name stored with the event, e.g. `"MessageReceived"`.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)+
                }
            }

            /// The current schema version of this event's type: the version [`Self::encode`]
            /// writes.
            pub fn schema_version(&self) -> u32 {
                match self {
                    $(Self::$variant(_) => $version,)+
                }
            }

            /// Parses a whole current-version JSON payload of `event_type`, nothing after it;
            /// `None` if the type is unknown.
            fn parse_current<'de, R: serde_json::de::Read<'de>>(
                event_type: &str,
                json: &mut serde_json::Deserializer<R>,
            ) -> Option<Result<Self, serde_json::Error>> {
                Some(
                    Self::deserialize_current(event_type, &mut *json)?
                        .and_then(|event| json.end().map(|()| event)),
                )
            }

            /// Parses a current-version payload of `event_type`; `None` if the type is unknown.
            fn deserialize_current<'de, D: serde::Deserializer<'de>>(
                event_type: &str,
                payload: D,
            ) -> Option<Result<Self, D::Error>> {
                Some(match event_type {
                    $($name => $variant::deserialize(payload).map(Self::$variant),)+
                    _ => return None,
                })
            }
        }

        $(
            impl From<$variant> for DomainEvent {
                fn from(payload: $variant) -> Self {
                    Self::$variant(payload)
                }
            }
        )+
    };
}

domain_events! {
    // Organisation and people.
    OrganisationCreated("OrganisationCreated", 1),
    OrganisationTimeZoneSet("OrganisationTimeZoneSet", 1),
    BusinessHoursSet("BusinessHoursSet", 1),
    UserCreated("UserCreated", 1),
    UserRoleChanged("UserRoleChanged", 1),
    UserAvailabilityChanged("UserAvailabilityChanged", 1),
    UserCapacitySet("UserCapacitySet", 1),
    UserDeactivated("UserDeactivated", 1),
    UserReactivated("UserReactivated", 1),
    UserTokensRevoked("UserTokensRevoked", 1),
    NotificationPreferencesChanged("NotificationPreferencesChanged", 1),
    TeamCreated("TeamCreated", 1),
    TeamRenamed("TeamRenamed", 1),
    TeamMemberAdded("TeamMemberAdded", 1),
    TeamMemberRemoved("TeamMemberRemoved", 1),
    BotCreated("BotCreated", 1),
    // Inboxes, channels, routing and filters.
    InboxCreated("InboxCreated", 1),
    InboxRenamed("InboxRenamed", 1),
    InboxMemberAdded("InboxMemberAdded", 1),
    InboxMemberRemoved("InboxMemberRemoved", 1),
    InboxRestricted("InboxRestricted", 1),
    InboxRestrictionLifted("InboxRestrictionLifted", 1),
    InboxRetentionSet("InboxRetentionSet", 1),
    ChannelConnected("ChannelConnected", 1),
    ChannelDisconnected("ChannelDisconnected", 1),
    ChannelMoved("ChannelMoved", 1),
    FallbackAddressAssigned("FallbackAddressAssigned", 1),
    RoutingRuleSet("RoutingRuleSet", 1),
    RoutingRuleRemoved("RoutingRuleRemoved", 1),
    BuiltInEmailFiltersSet("BuiltInEmailFiltersSet", 1),
    EmailFilterRuleAdded("EmailFilterRuleAdded", 1),
    EmailFilterRuleRemoved("EmailFilterRuleRemoved", 1),
    EmailServersSet("EmailServersSet", 1),
    FormConfigured("FormConfigured", 1),
    ChatBotConfigured("ChatBotConfigured", 1),
    ChatWidgetConfigured("ChatWidgetConfigured", 1),
    // Messenger pages (issue 20).
    MessengerPageSet("MessengerPageSet", 1),
    // Conversations.
    ConversationStarted("ConversationStarted", 1),
    MessageReceived("MessageReceived", 3),
    MessageFiltered("MessageFiltered", 3),
    FilteredMessageRestored("FilteredMessageRestored", 1),
    ReplySent("ReplySent", 2),
    DeliverySucceeded("DeliverySucceeded", 1),
    DeliveryFailed("DeliveryFailed", 2),
    CommentAdded("CommentAdded", 1),
    ConversationAssigned("ConversationAssigned", 1),
    ConversationReassigned("ConversationReassigned", 1),
    ConversationUnassigned("ConversationUnassigned", 1),
    ConversationQueued("ConversationQueued", 1),
    BotHandedOff("BotHandedOff", 1),
    ConversationClosed("ConversationClosed", 1),
    ConversationReopened("ConversationReopened", 1),
    ConversationShared("ConversationShared", 1),
    ConversationErased("ConversationErased", 1),
    // Messenger receipts (issue 20).
    MessengerReceiptReceived("MessengerReceiptReceived", 1),
    // Chat replies by e-mail (issue 20).
    ChatVisitorEmailLeft("ChatVisitorEmailLeft", 1),
    ChatRepliesSeen("ChatRepliesSeen", 1),
    ChatReplyEmailed("ChatReplyEmailed", 1),
    // Contacts and records.
    ContactRecordCreated("ContactRecordCreated", 1),
    ContactPropertiesChanged("ContactPropertiesChanged", 1),
    ContactIdentityLinked("ContactIdentityLinked", 1),
    ContactOwnerChanged("ContactOwnerChanged", 1),
    ContactsMerged("ContactsMerged", 1),
    ContactErased("ContactErased", 1),
    CompanyCreated("CompanyCreated", 1),
    DealCreated("DealCreated", 1),
    TicketCreated("TicketCreated", 1),
    AssociationAdded("AssociationAdded", 1),
    AssociationRemoved("AssociationRemoved", 1),
    // Uniqueness reservations.
    UniqueValueReserved("UniqueValueReserved", 1),
    UniqueValueReleased("UniqueValueReleased", 1),
    // The log itself.
    HistoryRechained("HistoryRechained", 1),
}

impl DomainEvent {
    /// The current schema version of `event_type`, or `None` if this build does not know it.
    pub fn current_version(event_type: &str) -> Option<u32> {
        Self::TYPES
            .iter()
            .find(|(name, _)| *name == event_type)
            .map(|&(_, version)| version)
    }

    /// The JSON bytes of the payload alone, in the current schema version.
    pub fn encode(&self) -> Vec<u8> {
        // Payloads hold strings, numbers, UUIDs, dates and string-keyed maps: serialising them
        // cannot fail.
        serde_json::to_vec(self).expect("event payloads always serialise to JSON")
    }

    /// Decodes a stored payload of `event_type` written at `schema_version`, upcasting it to the
    /// current version first if it is older.
    pub fn decode(
        event_type: &str,
        schema_version: u32,
        payload: &[u8],
    ) -> Result<Self, DecodeError> {
        let unknown = || DecodeError::UnknownEventType {
            event_type: event_type.to_owned(),
            schema_version,
        };
        let malformed = |source: serde_json::Error| DecodeError::MalformedPayload {
            event_type: event_type.to_owned(),
            schema_version,
            source,
        };

        let current = Self::current_version(event_type).ok_or_else(unknown)?;
        if schema_version == 0 || schema_version > current {
            return Err(DecodeError::UnsupportedVersion {
                event_type: event_type.to_owned(),
                schema_version,
                current,
            });
        }

        if schema_version == current
            && let Some(event) = crate::wire::canonical_payload(event_type, payload)
        {
            return Ok(event);
        }
        let parsed = if schema_version == current {
            // Checked once as a whole, the payload's strings and keys need no check of their
            // own (serde_json checks each one it reads from bytes). Invalid UTF-8 is left to
            // serde_json, which names where it is.
            match std::str::from_utf8(payload) {
                Ok(text) => {
                    Self::parse_current(event_type, &mut serde_json::Deserializer::from_str(text))
                }
                Err(_) => Self::parse_current(
                    event_type,
                    &mut serde_json::Deserializer::from_slice(payload),
                ),
            }
            .ok_or_else(unknown)?
        } else {
            let stored = serde_json::from_slice(payload).map_err(malformed)?;
            let lifted = upcast::upcast(event_type, schema_version, current, stored)?;
            Self::deserialize_current(event_type, lifted).ok_or_else(unknown)?
        };
        parsed.map_err(malformed)
    }
}
