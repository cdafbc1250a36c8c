//! Which conversation, inbox and contact an event is about, read from its payload, so the
//! audit trail can be filtered by them.
//!
//! The match in [`concerns`] names every event type with no catch-all: adding an event type to
//! the contract fails to compile here until someone decides what it concerns.

use proto_events::DomainEvent;
use proto_events::event::{RecordKind, RecordRef, RuleScope};
use proto_events::streams;
use uuid::Uuid;

/// The conversation, inbox and contact an event concerns, where its payload names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Concerns {
    /// The conversation.
    pub conversation_id: Option<Uuid>,
    /// The inbox (a conversation's inbox, or the inbox set up).
    pub inbox_id: Option<Uuid>,
    /// The contact.
    pub contact_id: Option<Uuid>,
}

impl Concerns {
    const NONE: Self = Self {
        conversation_id: None,
        inbox_id: None,
        contact_id: None,
    };

    fn conversation(conversation_id: Uuid, inbox_id: Uuid) -> Self {
        Self {
            conversation_id: Some(conversation_id),
            inbox_id: Some(inbox_id),
            contact_id: None,
        }
    }

    fn inbox(inbox_id: Uuid) -> Self {
        Self {
            inbox_id: Some(inbox_id),
            ..Self::NONE
        }
    }

    fn contact(contact_id: Uuid) -> Self {
        Self {
            contact_id: Some(contact_id),
            ..Self::NONE
        }
    }

    fn with_contact(self, contact_id: Option<Uuid>) -> Self {
        Self { contact_id, ..self }
    }
}

/// What `event`, stored in `stream`, concerns: as [`concerns`], but a contact merge's record in
/// the merged contact's stream (its tombstone) concerns the merged contact, so that both
/// contacts' trails show the merge.
pub fn concerns_in(stream: &str, event: &DomainEvent) -> Concerns {
    match event {
        DomainEvent::ContactsMerged(e) if stream == streams::contact(e.merged_id) => {
            Concerns::contact(e.merged_id)
        }
        _ => concerns(event),
    }
}

/// What `event` concerns.
///
/// Choices where an event names more than one: a channel move concerns the inbox it moved to;
/// a contact merge concerns the survivor (its copy in the merged contact's stream concerns the
/// merged contact: [`concerns_in`]); an association concerns the conversation and the
/// contact among its two ends; a uniqueness reservation concerns the contact whose stream owns
/// it. Organisation, user, team, bot, channel-scoped settings and other records concern none.
pub fn concerns(event: &DomainEvent) -> Concerns {
    use DomainEvent as E;
    match event {
        E::OrganisationCreated(_)
        | E::OrganisationTimeZoneSet(_)
        | E::BusinessHoursSet(_)
        | E::UserCreated(_)
        | E::UserRoleChanged(_)
        | E::UserAvailabilityChanged(_)
        | E::UserCapacitySet(_)
        | E::UserDeactivated(_)
        | E::UserReactivated(_)
        | E::UserTokensRevoked(_)
        | E::NotificationPreferencesChanged(_)
        | E::TeamCreated(_)
        | E::TeamRenamed(_)
        | E::TeamMemberAdded(_)
        | E::TeamMemberRemoved(_)
        | E::BotCreated(_)
        | E::HistoryRechained(_) => Concerns::NONE,
        E::InboxCreated(e) => Concerns::inbox(e.inbox_id),
        E::InboxRenamed(e) => Concerns::inbox(e.inbox_id),
        E::InboxMemberAdded(e) => Concerns::inbox(e.inbox_id),
        E::InboxMemberRemoved(e) => Concerns::inbox(e.inbox_id),
        E::InboxRestricted(e) => Concerns::inbox(e.inbox_id),
        E::InboxRestrictionLifted(e) => Concerns::inbox(e.inbox_id),
        E::InboxRetentionSet(e) => Concerns::inbox(e.inbox_id),
        E::ChannelConnected(e) => Concerns::inbox(e.inbox_id),
        E::ChannelDisconnected(e) => Concerns::inbox(e.inbox_id),
        E::ChannelMoved(e) => Concerns::inbox(e.to_inbox_id),
        E::FallbackAddressAssigned(e) => Concerns::inbox(e.inbox_id),
        E::RoutingRuleSet(e) => rule_scope(&e.scope),
        E::RoutingRuleRemoved(e) => rule_scope(&e.scope),
        E::BuiltInEmailFiltersSet(_)
        | E::EmailFilterRuleAdded(_)
        | E::EmailFilterRuleRemoved(_)
        | E::EmailServersSet(_)
        | E::FormConfigured(_)
        | E::ChatBotConfigured(_)
        | E::ChatWidgetConfigured(_)
        | E::MessengerPageSet(_) => Concerns::NONE,
        E::ConversationStarted(e) => {
            Concerns::conversation(e.conversation_id, e.inbox_id).with_contact(e.contact_id)
        }
        E::MessageReceived(e) => {
            Concerns::conversation(e.conversation_id, e.inbox_id).with_contact(e.message.contact_id)
        }
        E::MessageFiltered(e) => {
            Concerns::conversation(e.conversation_id, e.inbox_id).with_contact(e.message.contact_id)
        }
        E::FilteredMessageRestored(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ReplySent(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::DeliverySucceeded(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::MessengerReceiptReceived(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ChatVisitorEmailLeft(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ChatRepliesSeen(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ChatReplyEmailed(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::DeliveryFailed(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::CommentAdded(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ConversationAssigned(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ConversationReassigned(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ConversationUnassigned(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ConversationQueued(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::BotHandedOff(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ConversationClosed(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ConversationReopened(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ConversationShared(e) => Concerns::conversation(e.conversation_id, e.inbox_id),
        E::ConversationErased(e) => {
            Concerns::conversation(e.conversation_id, e.inbox_id).with_contact(e.contact_id)
        }
        E::ContactRecordCreated(e) => Concerns {
            conversation_id: e.from_conversation_id,
            ..Concerns::contact(e.contact_id)
        },
        E::ContactPropertiesChanged(e) => Concerns::contact(e.contact_id),
        E::ContactIdentityLinked(e) => Concerns::contact(e.contact_id),
        E::ContactOwnerChanged(e) => Concerns::contact(e.contact_id),
        E::ContactsMerged(e) => Concerns::contact(e.survivor_id),
        E::ContactErased(e) => Concerns::contact(e.contact_id),
        E::CompanyCreated(_) | E::DealCreated(_) => Concerns::NONE,
        E::TicketCreated(e) => Concerns {
            conversation_id: e.from_conversation_id,
            ..Concerns::NONE
        },
        E::AssociationAdded(e) => association(&e.from, &e.to),
        E::AssociationRemoved(e) => association(&e.from, &e.to),
        E::UniqueValueReserved(e) => owner_stream(&e.owner_stream),
        E::UniqueValueReleased(e) => owner_stream(&e.owner_stream),
    }
}

fn rule_scope(scope: &RuleScope) -> Concerns {
    match scope {
        RuleScope::Inbox { id } => Concerns::inbox(*id),
        RuleScope::Channel { .. } => Concerns::NONE,
    }
}

fn association(from: &RecordRef, to: &RecordRef) -> Concerns {
    let of_kind = |kind| {
        [from, to]
            .into_iter()
            .find(|r| r.kind == kind)
            .map(|r| r.id)
    };
    Concerns {
        conversation_id: of_kind(RecordKind::Conversation),
        inbox_id: None,
        contact_id: of_kind(RecordKind::Contact),
    }
}

/// The contact whose stream (`contact-<id>`) owns a reserved value, if a contact's.
fn owner_stream(stream: &str) -> Concerns {
    let contact = stream
        .split_once('-')
        .filter(|(category, _)| *category == streams::CONTACT)
        .and_then(|(_, id)| Uuid::parse_str(id).ok());
    Concerns {
        contact_id: contact,
        ..Concerns::NONE
    }
}
