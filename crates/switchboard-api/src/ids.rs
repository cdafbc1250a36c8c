//! Opaque global ids for the `Node` interface.
//!
//! An id is the base64url (unpadded) of `<Type>:<uuid>`, so `node(id:)` knows which type to load
//! and clients cannot mistake an inbox id for a conversation id. Clients must treat ids as
//! opaque; the encoding may change (the old one will keep decoding).

use async_graphql::ID;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::ApiError;

/// The types that have global ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A user.
    User,
    /// A team.
    Team,
    /// A bot.
    Bot,
    /// An inbox.
    Inbox,
    /// A channel.
    Channel,
    /// A conversation.
    Conversation,
    /// A contact.
    Contact,
    /// A company.
    Company,
    /// A deal.
    Deal,
    /// A ticket.
    Ticket,
    /// An event of the log.
    Event,
    /// A routing rule.
    RoutingRule,
    /// An e-mail filter rule.
    EmailFilterRule,
}

impl Kind {
    /// The GraphQL type name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Team => "Team",
            Kind::Bot => "Bot",
            Kind::Inbox => "Inbox",
            Kind::Channel => "Channel",
            Kind::Conversation => "Conversation",
            Kind::Contact => "Contact",
            Kind::Company => "Company",
            Kind::Deal => "Deal",
            Kind::Ticket => "Ticket",
            Kind::Event => "Event",
            Kind::RoutingRule => "RoutingRule",
            Kind::EmailFilterRule => "EmailFilterRule",
        }
    }

    const ALL: [Kind; 13] = [
        Kind::User,
        Kind::Team,
        Kind::Bot,
        Kind::Inbox,
        Kind::Channel,
        Kind::Conversation,
        Kind::Contact,
        Kind::Company,
        Kind::Deal,
        Kind::Ticket,
        Kind::Event,
        Kind::RoutingRule,
        Kind::EmailFilterRule,
    ];
}

/// The global id of `kind` number `id`.
pub fn encode(kind: Kind, id: Uuid) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.name())))
}

/// The kind and uuid of a global id.
pub fn decode_any(id: &ID, field: &str) -> Result<(Kind, Uuid), ApiError> {
    let invalid = || ApiError::bad_input(field, format!("`{}` is not a Switchboard id", id.0));
    let bytes = URL_SAFE_NO_PAD
        .decode(id.0.as_bytes())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (name, uuid) = text.split_once(':').ok_or_else(invalid)?;
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(invalid)?;
    let uuid = Uuid::parse_str(uuid).map_err(|_| invalid())?;
    Ok((kind, uuid))
}

/// The uuid of a global id that must be of `kind`; `field` names the argument in errors.
pub fn decode(id: &ID, kind: Kind, field: &str) -> Result<Uuid, ApiError> {
    let (found, uuid) = decode_any(id, field)?;
    if found != kind {
        return Err(ApiError::bad_input(
            field,
            format!("expected a {} id, got a {} id", kind.name(), found.name()),
        ));
    }
    Ok(uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_carry_their_type() {
        let uuid = Uuid::now_v7();
        let id = encode(Kind::Conversation, uuid);
        assert_eq!(decode(&id, Kind::Conversation, "id").ok(), Some(uuid));
        let err = decode(&id, Kind::Inbox, "inboxId").err();
        assert!(
            matches!(err, Some(ApiError::BadUserInput { ref field, .. }) if field == "inboxId")
        );
        assert!(decode_any(&ID("nonsense!".into()), "id").is_err());
        assert!(decode_any(&ID(URL_SAFE_NO_PAD.encode("Planet:1")), "id").is_err());
    }
}
