//! Which payload fields hold personal data, and whose.
//!
//! Every field of every event type is classed here ([`CLASSES`]), so that what a customer wrote
//! or is called can be encrypted with a key of its own and erased by destroying that key (ADR
//! 0007). A test walks every event type's sample and fails on a field that is not classed, so a
//! new field cannot arrive without someone deciding whether it is personal.
//!
//! A path names a field by its object keys, joined by `.` (`reason.pattern`); arrays are
//! transparent (`attachments` covers every attachment and everything in it). A path covers its
//! whole subtree; a field is classed by the longest path that covers it.

/// How a field is classed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// About a customer, the data subject: what they wrote (bodies, subjects, form fields,
    /// comments about them), what they are called, their addresses, phone numbers and
    /// identities, their contact properties, and references to their files (attachments, raw
    /// messages). Erased with the subject.
    Personal,
    /// About the company's own users and operators (names, sign-in and mailbox addresses,
    /// account names, an operator's stated reason): the audit trail keeps them; users are
    /// deactivated, not erased.
    Staff,
    /// Ids, settings, states, times, counts, provider ids: nothing about a person.
    NotPersonal,
}

/// The classes of one event type's fields.
#[derive(Debug)]
pub struct EventClasses {
    /// The event type.
    pub event_type: &'static str,
    /// Where the data subject of its personal fields is named: the first of these fields that is
    /// not null, holding the subject's id (a contact's, else a conversation's, for a sender who is
    /// not a contact yet) or the name of the subject's stream (`contact-<id>`). Empty when the
    /// type has no personal field.
    pub subject: &'static [&'static str],
    /// Every field, by path, with its class.
    pub fields: &'static [(&'static str, Class)],
}

impl EventClasses {
    /// The class of the field at `path` (object keys joined by `.`): that of the longest classed
    /// path covering it; `None` when none does.
    pub fn class_of(&self, path: &str) -> Option<Class> {
        self.fields
            .iter()
            .filter(|(classed, _)| covers(classed, path))
            .max_by_key(|(classed, _)| classed.len())
            .map(|(_, class)| *class)
    }

    /// The paths of its personal fields.
    pub fn personal(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields
            .iter()
            .filter(|(_, class)| *class == Class::Personal)
            .map(|(path, _)| *path)
    }
}

/// Whether the classed path `classed` covers `path`: the same path, or one inside it.
fn covers(classed: &str, path: &str) -> bool {
    path.strip_prefix(classed)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Personal fields that are maps keyed by names users choose (contact properties): nothing of
/// them, keys included, may survive an erasure, so they redact to an empty map.
pub const FREE_MAPS: &[(&str, &str)] = &[
    ("ContactRecordCreated", "properties"),
    ("ContactPropertiesChanged", "changes"),
];

/// Whether `path` of `event_type` is one of the [`FREE_MAPS`].
pub fn is_free_map(event_type: &str, path: &str) -> bool {
    FREE_MAPS.contains(&(event_type, path))
}

/// The classes of `event_type`'s fields; `None` for a type not classed.
pub fn classes(event_type: &str) -> Option<&'static EventClasses> {
    CLASSES.iter().find(|c| c.event_type == event_type)
}

use Class::{NotPersonal as N, Personal as P, Staff as S};

/// The fields of a message from a customer, as `MessageReceived` and `MessageFiltered` carry
/// them.
macro_rules! inbound_message_fields {
    ($($extra:expr),* $(,)?) => {
        &[
            ("attachments", P),
            ("body_html", P),
            ("body_text", P),
            ("channel_id", N),
            ("channel_kind", N),
            ("contact_id", N),
            ("conversation_id", N),
            ("email", P),
            ("form_fields", P),
            ("from", P),
            ("from_name", P),
            ("inbox_id", N),
            ("message_id", N),
            ("provider_message_id", N),
            ("raw", P),
            ("subject", P),
            $($extra,)*
        ]
    };
}

/// Contact first, then the conversation: whose data a message or comment is.
const CONTACT_ELSE_CONVERSATION: &[&str] = &["contact_id", "conversation_id"];
const CONVERSATION: &[&str] = &["conversation_id"];
const CONTACT: &[&str] = &["contact_id"];
const NONE: &[&str] = &[];

/// Every event type's fields, classed.
pub const CLASSES: &[EventClasses] = &[
    EventClasses {
        event_type: "AssociationAdded",
        subject: NONE,
        fields: &[("from", N), ("to", N)],
    },
    EventClasses {
        event_type: "AssociationRemoved",
        subject: NONE,
        fields: &[("from", N), ("to", N)],
    },
    EventClasses {
        event_type: "BotCreated",
        subject: NONE,
        fields: &[("bot_id", N), ("name", N)],
    },
    EventClasses {
        event_type: "BotHandedOff",
        subject: NONE,
        fields: &[
            ("bot_id", N),
            ("conversation_id", N),
            ("inbox_id", N),
            ("to", N),
        ],
    },
    EventClasses {
        event_type: "BuiltInEmailFiltersSet",
        subject: NONE,
        fields: &[
            ("automated_replies", N),
            ("bulk_mail", N),
            ("channel_id", N),
            ("role_addresses", N),
            ("unsubscribe_header", N),
        ],
    },
    EventClasses {
        event_type: "BusinessHoursSet",
        subject: NONE,
        fields: &[
            ("holidays", N),
            ("organisation_id", N),
            ("time_zone", N),
            ("weekly", N),
        ],
    },
    EventClasses {
        event_type: "ChannelConnected",
        subject: NONE,
        // A private mailbox's address is its owner's, a user's.
        fields: &[
            ("channel_id", N),
            ("config", N),
            ("config.address", S),
            ("inbox_id", N),
        ],
    },
    EventClasses {
        event_type: "ChannelDisconnected",
        subject: NONE,
        fields: &[("channel_id", N), ("inbox_id", N)],
    },
    EventClasses {
        event_type: "ChannelMoved",
        subject: NONE,
        fields: &[("channel_id", N), ("from_inbox_id", N), ("to_inbox_id", N)],
    },
    EventClasses {
        event_type: "ChatBotConfigured",
        subject: NONE,
        fields: &[
            ("answers", N),
            ("bot_id", N),
            ("channel_id", N),
            ("enabled", N),
            ("greeting", N),
            ("handoff", N),
            ("questions", N),
        ],
    },
    EventClasses {
        event_type: "ChatRepliesSeen",
        subject: NONE,
        fields: &[("conversation_id", N), ("inbox_id", N), ("message_ids", N)],
    },
    EventClasses {
        event_type: "ChatReplyEmailed",
        subject: CONVERSATION,
        fields: &[
            ("conversation_id", N),
            ("email", P),
            ("email_channel_id", N),
            ("inbox_id", N),
            ("message_id", N),
            ("subject", P),
        ],
    },
    EventClasses {
        event_type: "ChatVisitorEmailLeft",
        subject: CONVERSATION,
        fields: &[("address", P), ("conversation_id", N), ("inbox_id", N)],
    },
    EventClasses {
        event_type: "ChatWidgetConfigured",
        subject: NONE,
        fields: &[
            ("allowed_origins", N),
            ("channel_id", N),
            ("expected_reply", N),
            ("public_key", N),
            ("team_name", N),
        ],
    },
    EventClasses {
        event_type: "CommentAdded",
        subject: CONVERSATION,
        // Agents' notes are about the customer of the conversation.
        fields: &[
            ("author_user_id", N),
            ("body_text", P),
            ("comment_id", N),
            ("conversation_id", N),
            ("inbox_id", N),
            ("mentions", N),
        ],
    },
    EventClasses {
        event_type: "CompanyCreated",
        subject: NONE,
        // A company is not a natural person.
        fields: &[("company_id", N), ("domain", N), ("name", N)],
    },
    EventClasses {
        event_type: "ContactIdentityLinked",
        subject: CONTACT,
        fields: &[("contact_id", N), ("identity", P)],
    },
    EventClasses {
        event_type: "ContactOwnerChanged",
        subject: NONE,
        fields: &[("contact_id", N), ("owner_user_id", N)],
    },
    EventClasses {
        event_type: "ContactPropertiesChanged",
        subject: CONTACT,
        fields: &[("changes", P), ("contact_id", N)],
    },
    EventClasses {
        event_type: "ContactRecordCreated",
        subject: CONTACT,
        fields: &[
            ("contact_id", N),
            ("from_conversation_id", N),
            ("identities", P),
            ("properties", P),
        ],
    },
    EventClasses {
        event_type: "ContactErased",
        subject: NONE,
        fields: &[("contact_id", N), ("conversation_ids", N), ("reason", S)],
    },
    EventClasses {
        event_type: "ContactsMerged",
        subject: NONE,
        fields: &[("merged_id", N), ("survivor_id", N)],
    },
    EventClasses {
        event_type: "ConversationAssigned",
        subject: NONE,
        fields: &[
            ("assignee", N),
            ("conversation_id", N),
            ("inbox_id", N),
            ("reason", N),
        ],
    },
    EventClasses {
        event_type: "ConversationClosed",
        subject: NONE,
        fields: &[("by", N), ("conversation_id", N), ("inbox_id", N)],
    },
    EventClasses {
        event_type: "ConversationErased",
        subject: NONE,
        fields: &[
            ("contact_id", N),
            ("conversation_id", N),
            ("inbox_id", N),
            ("reason", S),
        ],
    },
    EventClasses {
        event_type: "ConversationQueued",
        subject: NONE,
        fields: &[("conversation_id", N), ("decision", N), ("inbox_id", N)],
    },
    EventClasses {
        event_type: "ConversationReassigned",
        subject: NONE,
        fields: &[
            ("conversation_id", N),
            ("from", N),
            ("inbox_id", N),
            ("reason", N),
            ("to", N),
        ],
    },
    EventClasses {
        event_type: "ConversationReopened",
        subject: NONE,
        fields: &[("cause", N), ("conversation_id", N), ("inbox_id", N)],
    },
    EventClasses {
        event_type: "ConversationShared",
        subject: NONE,
        fields: &[("by_user_id", N), ("conversation_id", N), ("inbox_id", N)],
    },
    EventClasses {
        event_type: "ConversationStarted",
        subject: NONE,
        fields: &[
            ("channel_id", N),
            ("channel_kind", N),
            ("contact_id", N),
            ("conversation_id", N),
            ("inbox_id", N),
            ("origin", N),
            ("visibility", N),
        ],
    },
    EventClasses {
        event_type: "ConversationUnassigned",
        subject: NONE,
        fields: &[
            ("conversation_id", N),
            ("from", N),
            ("inbox_id", N),
            ("reason", N),
        ],
    },
    EventClasses {
        event_type: "DealCreated",
        subject: NONE,
        fields: &[
            ("deal_id", N),
            ("name", N),
            ("owner_user_id", N),
            ("stage", N),
        ],
    },
    EventClasses {
        event_type: "DeliveryFailed",
        subject: CONVERSATION,
        // A provider's reason often quotes the recipient ("<ada@…>: user unknown").
        fields: &[
            ("channel_id", N),
            ("conversation_id", N),
            ("inbox_id", N),
            ("message_id", N),
            ("permanent", N),
            ("reason", P),
            ("status", N),
        ],
    },
    EventClasses {
        event_type: "DeliverySucceeded",
        subject: NONE,
        fields: &[
            ("channel_id", N),
            ("conversation_id", N),
            ("inbox_id", N),
            ("message_id", N),
            ("provider_message_id", N),
        ],
    },
    EventClasses {
        event_type: "EmailFilterRuleAdded",
        subject: NONE,
        // A rule's pattern is the team's configuration, kept until the rule is removed, even when
        // it names a sender's address (ADR 0007).
        fields: &[
            ("action", N),
            ("channel_id", N),
            ("pattern", N),
            ("rule_id", N),
        ],
    },
    EventClasses {
        event_type: "EmailFilterRuleRemoved",
        subject: NONE,
        fields: &[("channel_id", N), ("rule_id", N)],
    },
    EventClasses {
        event_type: "EmailServersSet",
        subject: NONE,
        // Account names of the team's (or a user's private) mailbox.
        fields: &[
            ("channel_id", N),
            ("imap", N),
            ("imap.username", S),
            ("ingest_secret", N),
            ("smtp", N),
            ("smtp.username", S),
        ],
    },
    EventClasses {
        event_type: "FallbackAddressAssigned",
        subject: NONE,
        fields: &[("address", N), ("channel_id", N), ("inbox_id", N)],
    },
    EventClasses {
        event_type: "FilteredMessageRestored",
        subject: NONE,
        fields: &[
            ("conversation_id", N),
            ("inbox_id", N),
            ("message_id", N),
            ("restored_by_user_id", N),
        ],
    },
    EventClasses {
        event_type: "FormConfigured",
        subject: NONE,
        fields: &[
            ("allowed_origins", N),
            ("channel_id", N),
            ("fields", N),
            ("honeypot_field", N),
            ("public_key", N),
        ],
    },
    EventClasses {
        event_type: "HistoryRechained",
        subject: NONE,
        fields: &[
            ("broken_at", N),
            ("by", S),
            ("events", N),
            ("input_head_hash", N),
            ("reason", S),
        ],
    },
    EventClasses {
        event_type: "InboxCreated",
        subject: NONE,
        fields: &[("inbox_id", N), ("name", N)],
    },
    EventClasses {
        event_type: "InboxMemberAdded",
        subject: NONE,
        fields: &[("inbox_id", N), ("member", N)],
    },
    EventClasses {
        event_type: "InboxMemberRemoved",
        subject: NONE,
        fields: &[("inbox_id", N), ("member", N)],
    },
    EventClasses {
        event_type: "InboxRenamed",
        subject: NONE,
        fields: &[("inbox_id", N), ("name", N)],
    },
    EventClasses {
        event_type: "InboxRestricted",
        subject: NONE,
        fields: &[("inbox_id", N), ("team_ids", N)],
    },
    EventClasses {
        event_type: "InboxRestrictionLifted",
        subject: NONE,
        fields: &[("inbox_id", N)],
    },
    EventClasses {
        event_type: "InboxRetentionSet",
        subject: NONE,
        fields: &[("closed_days", N), ("inbox_id", N)],
    },
    EventClasses {
        event_type: "MessageFiltered",
        subject: CONTACT_ELSE_CONVERSATION,
        // The reason may quote the sender's address the rule matched.
        fields: inbound_message_fields![("reason", N), ("reason.pattern", P), ("visibility", N),],
    },
    EventClasses {
        event_type: "MessageReceived",
        subject: CONTACT_ELSE_CONVERSATION,
        fields: inbound_message_fields![],
    },
    EventClasses {
        event_type: "MessengerPageSet",
        subject: NONE,
        fields: &[
            ("channel_id", N),
            ("human_agent_tag", N),
            ("page_token_secret", N),
        ],
    },
    EventClasses {
        event_type: "MessengerReceiptReceived",
        subject: NONE,
        fields: &[
            ("channel_id", N),
            ("conversation_id", N),
            ("inbox_id", N),
            ("kind", N),
            ("mids", N),
            ("watermark", N),
        ],
    },
    EventClasses {
        event_type: "NotificationPreferencesChanged",
        subject: NONE,
        fields: &[
            ("assigned_to_me", N),
            ("mentioned_in_comment", N),
            ("new_conversation_in_my_inboxes", N),
            ("new_message_on_my_conversations", N),
            ("user_id", N),
        ],
    },
    EventClasses {
        event_type: "OrganisationCreated",
        subject: NONE,
        fields: &[("name", N), ("organisation_id", N), ("time_zone", N)],
    },
    EventClasses {
        event_type: "OrganisationTimeZoneSet",
        subject: NONE,
        fields: &[("organisation_id", N), ("time_zone", N)],
    },
    EventClasses {
        event_type: "ReplySent",
        subject: CONVERSATION,
        // What the team wrote to the customer, to their addresses.
        fields: &[
            ("attachments", P),
            ("author", N),
            ("body_html", P),
            ("body_text", P),
            ("channel_id", N),
            ("channel_kind", N),
            ("conversation_id", N),
            ("email", P),
            ("inbox_id", N),
            ("message_id", N),
            ("subject", P),
        ],
    },
    EventClasses {
        event_type: "RoutingRuleRemoved",
        subject: NONE,
        fields: &[("rule_id", N), ("scope", N)],
    },
    EventClasses {
        event_type: "RoutingRuleSet",
        subject: NONE,
        fields: &[
            ("bot_id", N),
            ("rule_id", N),
            ("scope", N),
            ("strategy", N),
            ("targets", N),
        ],
    },
    EventClasses {
        event_type: "TeamCreated",
        subject: NONE,
        fields: &[("name", N), ("team_id", N)],
    },
    EventClasses {
        event_type: "TeamMemberAdded",
        subject: NONE,
        fields: &[("team_id", N), ("user_id", N)],
    },
    EventClasses {
        event_type: "TeamMemberRemoved",
        subject: NONE,
        fields: &[("team_id", N), ("user_id", N)],
    },
    EventClasses {
        event_type: "TeamRenamed",
        subject: NONE,
        fields: &[("name", N), ("team_id", N)],
    },
    EventClasses {
        event_type: "TicketCreated",
        // A ticket made from no conversation is its own subject.
        subject: &["from_conversation_id", "ticket_id"],
        fields: &[
            ("from_conversation_id", N),
            ("subject", P),
            ("ticket_id", N),
        ],
    },
    EventClasses {
        event_type: "UniqueValueReleased",
        subject: &["owner_stream"],
        // A contact's address or chat and Messenger ids; a user's or channel's address in the
        // other scopes, classed with them. (The reservation stream's name holds the value too:
        // ADR 0007.)
        fields: &[("owner_stream", N), ("scope", N), ("value", P)],
    },
    EventClasses {
        event_type: "UniqueValueReserved",
        subject: &["owner_stream"],
        fields: &[("owner_stream", N), ("scope", N), ("value", P)],
    },
    EventClasses {
        event_type: "UserAvailabilityChanged",
        subject: NONE,
        fields: &[("availability", N), ("user_id", N)],
    },
    EventClasses {
        event_type: "UserCapacitySet",
        subject: NONE,
        fields: &[("max_open_conversations", N), ("user_id", N)],
    },
    EventClasses {
        event_type: "UserCreated",
        subject: NONE,
        fields: &[
            ("availability", N),
            ("email", S),
            ("name", S),
            ("role", N),
            ("user_id", N),
        ],
    },
    EventClasses {
        event_type: "UserDeactivated",
        subject: NONE,
        fields: &[("at", N), ("by", N), ("user_id", N)],
    },
    EventClasses {
        event_type: "UserReactivated",
        subject: NONE,
        fields: &[("by", N), ("user_id", N)],
    },
    EventClasses {
        event_type: "UserRoleChanged",
        subject: NONE,
        fields: &[("role", N), ("user_id", N)],
    },
    EventClasses {
        event_type: "UserTokensRevoked",
        subject: NONE,
        fields: &[("by", N), ("not_before", N), ("user_id", N)],
    },
];
