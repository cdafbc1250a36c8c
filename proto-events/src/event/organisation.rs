//! The organisation and the people who work in it: settings and business hours, users, teams and
//! bots. Routing, access rules and analytics read these as reference data.
//!
//! Streams: `organisation-<id>`, `user-<id>`, `team-<id>`, `bot-<id>`.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Actor;

/// The organisation was set up. Switchboard serves one organisation per deployment, so other
/// events do not repeat its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganisationCreated {
    /// The organisation.
    pub organisation_id: Uuid,
    /// Its display name.
    pub name: String,
    /// Its default time zone, an IANA name such as `"Europe/Paris"`.
    pub time_zone: String,
}

/// The organisation's default time zone changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganisationTimeZoneSet {
    /// The organisation.
    pub organisation_id: Uuid,
    /// An IANA time zone name such as `"America/New_York"`.
    pub time_zone: String,
}

/// The organisation's opening hours were set, replacing the previous ones. The business-hours
/// variant of the response metrics counts only time inside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHoursSet {
    /// The organisation.
    pub organisation_id: Uuid,
    /// The IANA time zone the schedule is written in, e.g. `"Europe/Berlin"`.
    pub time_zone: String,
    /// When the organisation is open in a normal week. A day without intervals is closed.
    pub weekly: Vec<OpeningInterval>,
    /// Days closed regardless of `weekly`.
    #[serde(default)]
    pub holidays: Vec<Holiday>,
}

/// One opening interval of a weekday, in local time of the schedule's time zone.
///
/// If `closes` is not after `opens` the interval runs past midnight into the next day, so
/// `00:00`-`00:00` is a whole day and `22:00`-`06:00` a night shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningInterval {
    /// The day the interval starts on.
    pub day: Weekday,
    /// Opening time, local.
    pub opens: NaiveTime,
    /// Closing time, local.
    pub closes: NaiveTime,
}

/// A day the organisation is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    /// The local date.
    pub date: NaiveDate,
    /// What it is, for display, e.g. `"Christmas Day"`.
    pub name: String,
}

/// A day of the week. Our own type, so the stored spelling does not depend on chrono's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl From<Weekday> for chrono::Weekday {
    fn from(day: Weekday) -> Self {
        match day {
            Weekday::Monday => chrono::Weekday::Mon,
            Weekday::Tuesday => chrono::Weekday::Tue,
            Weekday::Wednesday => chrono::Weekday::Wed,
            Weekday::Thursday => chrono::Weekday::Thu,
            Weekday::Friday => chrono::Weekday::Fri,
            Weekday::Saturday => chrono::Weekday::Sat,
            Weekday::Sunday => chrono::Weekday::Sun,
        }
    }
}

/// What a user may do. Auditors and analysts have read-only access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including managing admins.
    SuperAdmin,
    /// Sets up inboxes, channels, routing and users; sees every inbox and private conversation.
    Admin,
    /// Works conversations in the inboxes they are a member of.
    Agent,
    /// Reads the history and audit trail; changes nothing.
    Auditor,
    /// Reads analytics and replays history; changes nothing.
    Analyst,
}

/// Whether a user takes automatic assignments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Routing may assign new conversations to the user.
    Available,
    /// Routing skips the user; manual assignment still works.
    Away,
}

/// A user account was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreated {
    /// The user.
    pub user_id: Uuid,
    /// Sign-in and notification address; unique among users.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Initial role.
    pub role: Role,
    /// Initial availability.
    pub availability: Availability,
}

/// A user's role changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRoleChanged {
    /// The user.
    pub user_id: Uuid,
    /// The new role.
    pub role: Role,
}

/// A user went available or away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAvailabilityChanged {
    /// The user.
    pub user_id: Uuid,
    /// The new availability.
    pub availability: Availability,
}

/// A user's capacity for automatic assignments was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCapacitySet {
    /// The user.
    pub user_id: Uuid,
    /// Routing assigns the user no more open conversations than this; `None` is unlimited.
    pub max_open_conversations: Option<u32>,
}

/// A user was deactivated (someone who left): every token of theirs is refused from now on,
/// routing passes them over and gives their open conversations to others, and nobody can assign
/// them anything. What they did stays in the history under their name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDeactivated {
    /// The user.
    pub user_id: Uuid,
    /// Who deactivated them (an admin, or the system from the command line).
    pub by: Actor,
    /// When. Tokens issued before it stay refused after a reactivation.
    pub at: DateTime<Utc>,
}

/// A deactivated user was reactivated: they may sign in with new tokens and take conversations
/// again. Tokens issued before the deactivation stay refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserReactivated {
    /// The user.
    pub user_id: Uuid,
    /// Who reactivated them.
    pub by: Actor,
}

/// Every token of a user issued before `not_before` is refused from now on (a lost laptop, a
/// leaked token). Tokens carry their issue time in whole seconds, so one issued in the same
/// second as the cut-off is refused too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserTokensRevoked {
    /// The user.
    pub user_id: Uuid,
    /// Who revoked them: the user themselves or an admin.
    pub by: Actor,
    /// The cut-off: tokens issued before it are refused.
    pub not_before: DateTime<Utc>,
}

/// A user's notification settings were saved. Carries all of them, not only the changed ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationPreferencesChanged {
    /// The user.
    pub user_id: Uuid,
    /// Notify of every new conversation in an inbox the user is a member of.
    pub new_conversation_in_my_inboxes: bool,
    /// Notify when a conversation is assigned to the user.
    pub assigned_to_me: bool,
    /// Notify of a new inbound message on a conversation assigned to the user.
    pub new_message_on_my_conversations: bool,
    /// Notify when a comment @mentions the user.
    pub mentioned_in_comment: bool,
}

/// A team was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamCreated {
    /// The team.
    pub team_id: Uuid,
    /// Display name.
    pub name: String,
}

/// A team was renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRenamed {
    /// The team.
    pub team_id: Uuid,
    /// The new name.
    pub name: String,
}

/// A user joined a team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMemberAdded {
    /// The team.
    pub team_id: Uuid,
    /// The user.
    pub user_id: Uuid,
}

/// A user left a team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMemberRemoved {
    /// The team.
    pub team_id: Uuid,
    /// The user.
    pub user_id: Uuid,
}

/// A bot was registered. Bots answer chats first and hand off to humans; analytics reports on
/// each by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotCreated {
    /// The bot.
    pub bot_id: Uuid,
    /// Display name.
    pub name: String,
}
