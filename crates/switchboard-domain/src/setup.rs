//! Setup commands: the organisation, users, teams and inboxes. Decided against the
//! [`Directory`]; each targets one stream, returned with its events in a [`Decision`].
//!
//! Who may do what: admins and super admins change setup; only a super admin grants, changes or
//! revokes the super admin role, and the last active super admin cannot be demoted; users change
//! their own availability and notification preferences; the system actor (bootstrap, CLI, demo
//! seeding) may do everything; auditors, analysts, contacts, bots and channels may do none of it.
//!
//! # People who leave
//! Admins deactivate and reactivate users (only a super admin does it to a super admin), as
//! GitHub suspends and Front deactivates teammates: nothing of theirs is deleted. Nobody
//! deactivates themselves, and the last active admin (or super admin) stays active, so the
//! organisation is never left without someone who can manage it. Deactivating ends every token
//! the user holds; reactivating does not bring those back. Anyone may revoke their own tokens
//! (all roles, auditors included), admins anyone's.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use proto_events::event::{
    Availability, BotCreated, BusinessHoursSet, Holiday, InboxCreated, InboxMemberAdded,
    InboxMemberRemoved, InboxRenamed, InboxRestricted, InboxRestrictionLifted, InboxRetentionSet,
    Member, NotificationPreferencesChanged, OpeningInterval, OrganisationCreated,
    OrganisationTimeZoneSet, Role, TeamCreated, TeamMemberAdded, TeamMemberRemoved, TeamRenamed,
    UserAvailabilityChanged, UserCapacitySet, UserCreated, UserDeactivated, UserReactivated,
    UserRoleChanged, UserTokensRevoked,
};
use proto_events::{Actor, DomainEvent, streams};
use uuid::Uuid;

use crate::DomainError;
use crate::directory::Directory;
use crate::validate::{self, name};

/// A change to the organisation's setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupCommand {
    /// Create the organisation (once per deployment).
    CreateOrganisation {
        organisation_id: Uuid,
        name: String,
        time_zone: String,
    },
    /// Change the organisation's time zone.
    SetTimeZone { time_zone: String },
    /// Replace the opening hours (in `time_zone`) and holidays.
    SetBusinessHours {
        time_zone: String,
        weekly: Vec<OpeningInterval>,
        holidays: Vec<Holiday>,
    },
    /// Add a user.
    CreateUser {
        user_id: Uuid,
        email: String,
        name: String,
        role: Role,
    },
    /// Change a user's role.
    ChangeRole { user_id: Uuid, role: Role },
    /// Mark a user available or away.
    SetAvailability {
        user_id: Uuid,
        availability: Availability,
    },
    /// Limit how many open conversations routing gives a user (`None`: no limit).
    SetCapacity {
        user_id: Uuid,
        max_open_conversations: Option<u32>,
    },
    /// Deactivate a user who left: their tokens are refused, routing gives their open
    /// conversations to others.
    DeactivateUser { user_id: Uuid },
    /// Let a deactivated user back in.
    ReactivateUser { user_id: Uuid },
    /// Refuse every token of a user issued until now.
    RevokeTokens { user_id: Uuid },
    /// Choose what a user is notified about.
    SetNotificationPreferences {
        preferences: NotificationPreferencesChanged,
    },
    /// Register a bot that may answer conversations first (admins).
    CreateBot { bot_id: Uuid, name: String },
    /// Create a team.
    CreateTeam { team_id: Uuid, name: String },
    /// Rename a team.
    RenameTeam { team_id: Uuid, name: String },
    /// Add a user to a team.
    AddTeamMember { team_id: Uuid, user_id: Uuid },
    /// Remove a user from a team.
    RemoveTeamMember { team_id: Uuid, user_id: Uuid },
    /// Create an inbox.
    CreateInbox { inbox_id: Uuid, name: String },
    /// Rename an inbox.
    RenameInbox { inbox_id: Uuid, name: String },
    /// Make a user or team a member of an inbox.
    AddInboxMember { inbox_id: Uuid, member: Member },
    /// Remove a user or team from an inbox.
    RemoveInboxMember { inbox_id: Uuid, member: Member },
    /// Restrict an inbox to members of these teams (and admins).
    RestrictInbox { inbox_id: Uuid, team_ids: Vec<Uuid> },
    /// Lift an inbox's team restriction.
    LiftInboxRestriction { inbox_id: Uuid },
    /// Set how many days after being closed an inbox's conversations are erased (between 1 and
    /// [`MAX_RETENTION_DAYS`]), or keep them forever (`None`, the default). The retention
    /// reactor of `switchboard-service` does the erasing.
    SetInboxRetention {
        inbox_id: Uuid,
        closed_days: Option<u32>,
    },
}

/// The longest retention period an inbox may have, in days: ten years.
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// The events a command produced and the stream they go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The stream to append to.
    pub stream: String,
    /// What happened, in order.
    pub events: Vec<DomainEvent>,
}

impl Decision {
    fn one(stream: String, event: impl Into<DomainEvent>) -> Result<Decision, DomainError> {
        Ok(Decision {
            stream,
            events: vec![event.into()],
        })
    }
}

fn time_zone(field: &'static str, value: &str) -> Result<String, DomainError> {
    value
        .parse::<Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| DomainError::invalid(field, format!("{value:?} is not an IANA time zone")))
}

fn email(field: &'static str, value: &str) -> Result<String, DomainError> {
    let value = value.trim().to_lowercase();
    let valid = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !value.chars().any(char::is_whitespace);
    validate::no_control(field, "e-mail address", &value)?;
    if valid {
        Ok(value)
    } else {
        Err(DomainError::invalid(
            field,
            format!("{value:?} is not an e-mail address"),
        ))
    }
}

/// What kind of caller this is, as far as setup is concerned.
enum Caller<'d> {
    System,
    User(&'d crate::directory::User),
}

fn caller<'d>(directory: &'d Directory, actor: &Actor) -> Result<Caller<'d>, DomainError> {
    match actor {
        Actor::System { .. } => Ok(Caller::System),
        Actor::User { id } => directory
            .user(*id)
            .map(Caller::User)
            .ok_or_else(|| DomainError::forbidden("unknown user")),
        _ => Err(DomainError::forbidden(
            "only users and the system change setup",
        )),
    }
}

fn require_admin(caller: &Caller<'_>) -> Result<(), DomainError> {
    match caller {
        Caller::System => Ok(()),
        Caller::User(u) if u.is_admin() => Ok(()),
        Caller::User(_) => Err(DomainError::forbidden("only admins change the inbox setup")),
    }
}

/// Admins, or the user acting on themselves (and still able to write).
fn require_self_or_admin(caller: &Caller<'_>, user_id: Uuid) -> Result<(), DomainError> {
    match caller {
        Caller::User(u) if u.id == user_id && u.can_write() => Ok(()),
        _ => require_admin(caller),
    }
}

fn organisation_stream(directory: &Directory) -> Result<(Uuid, String), DomainError> {
    let org = directory
        .organisation
        .as_ref()
        .ok_or(DomainError::NotFound {
            what: "organisation",
        })?;
    Ok((org.id, streams::organisation(org.id)))
}

/// Only a super admin acts on a super admin (their role, their account).
fn require_super_for(
    caller: &Caller<'_>,
    target: &crate::directory::User,
    what: &str,
) -> Result<(), DomainError> {
    if target.role == Role::SuperAdmin
        && matches!(caller, Caller::User(u) if u.role != Role::SuperAdmin)
    {
        return Err(DomainError::forbidden(format!(
            "only a super admin {what} a super admin"
        )));
    }
    Ok(())
}

/// Refuses to leave the organisation without an active admin, or without an active super
/// admin, once `target` stops being one.
fn keep_an_active_admin(
    directory: &Directory,
    target: &crate::directory::User,
    field: &'static str,
    what: &str,
) -> Result<(), DomainError> {
    let active = |role: fn(&crate::directory::User) -> bool| {
        directory
            .users
            .values()
            .filter(|u| u.active && role(u))
            .count()
    };
    if target.active
        && target.role == Role::SuperAdmin
        && active(|u| u.role == Role::SuperAdmin) == 1
    {
        return Err(DomainError::rejected(
            "LAST_SUPER_ADMIN",
            Some(field),
            format!("the last active super admin cannot be {what}"),
        ));
    }
    if target.active && target.is_admin() && active(crate::directory::User::is_admin) == 1 {
        return Err(DomainError::rejected(
            "LAST_ADMIN",
            Some(field),
            format!("the last active admin cannot be {what}"),
        ));
    }
    Ok(())
}

/// Decides a setup command: the events it produces, or why it is refused.
pub fn decide(
    directory: &Directory,
    actor: &Actor,
    command: &SetupCommand,
    now: DateTime<Utc>,
) -> Result<Decision, DomainError> {
    use SetupCommand as C;
    let caller = caller(directory, actor)?;
    let user = |id: Uuid| {
        directory
            .user(id)
            .ok_or(DomainError::NotFound { what: "user" })
    };
    let team = |id: Uuid| {
        directory
            .teams
            .get(&id)
            .ok_or(DomainError::NotFound { what: "team" })
    };
    let inbox = |id: Uuid| {
        directory
            .inboxes
            .get(&id)
            .ok_or(DomainError::NotFound { what: "inbox" })
    };
    match command {
        C::CreateOrganisation {
            organisation_id,
            name: org_name,
            time_zone: tz,
        } => {
            if !matches!(caller, Caller::System) {
                return Err(DomainError::forbidden(
                    "the organisation is created at installation",
                ));
            }
            if directory.organisation.is_some() {
                return Err(DomainError::rejected(
                    "ALREADY_EXISTS",
                    None,
                    "the organisation already exists",
                ));
            }
            Decision::one(
                streams::organisation(*organisation_id),
                OrganisationCreated {
                    organisation_id: *organisation_id,
                    name: name("name", org_name)?,
                    time_zone: time_zone("timeZone", tz)?,
                },
            )
        }
        C::SetTimeZone { time_zone: tz } => {
            require_admin(&caller)?;
            let (organisation_id, stream) = organisation_stream(directory)?;
            Decision::one(
                stream,
                OrganisationTimeZoneSet {
                    organisation_id,
                    time_zone: time_zone("timeZone", tz)?,
                },
            )
        }
        C::SetBusinessHours {
            time_zone: tz,
            weekly,
            holidays,
        } => {
            require_admin(&caller)?;
            let (organisation_id, stream) = organisation_stream(directory)?;
            for interval in weekly {
                if interval.opens >= interval.closes {
                    return Err(DomainError::invalid(
                        "weekly",
                        format!(
                            "{:?} opens at {} but closes at {}; an interval must end after it starts",
                            interval.day, interval.opens, interval.closes
                        ),
                    ));
                }
            }
            for (i, a) in weekly.iter().enumerate() {
                if weekly[i + 1..]
                    .iter()
                    .any(|b| a.day == b.day && a.opens < b.closes && b.opens < a.closes)
                {
                    return Err(DomainError::invalid(
                        "weekly",
                        format!("intervals overlap on {:?}", a.day),
                    ));
                }
            }
            Decision::one(
                stream,
                BusinessHoursSet {
                    organisation_id,
                    time_zone: time_zone("timeZone", tz)?,
                    weekly: weekly.clone(),
                    holidays: holidays.clone(),
                },
            )
        }
        C::CreateUser {
            user_id,
            email: address,
            name: user_name,
            role,
        } => {
            require_admin(&caller)?;
            if *role == Role::SuperAdmin
                && matches!(caller, Caller::User(u) if u.role != Role::SuperAdmin)
            {
                return Err(DomainError::forbidden(
                    "only a super admin creates super admins",
                ));
            }
            if directory.users.contains_key(user_id) {
                return Err(DomainError::rejected(
                    "ALREADY_EXISTS",
                    Some("userId"),
                    "this user already exists",
                ));
            }
            let address = email("email", address)?;
            if directory.user_by_email(&address).is_some() {
                return Err(DomainError::rejected(
                    "TAKEN",
                    Some("email"),
                    format!("a user with e-mail {address} already exists"),
                ));
            }
            Decision::one(
                streams::user(*user_id),
                UserCreated {
                    user_id: *user_id,
                    email: address,
                    name: name("name", user_name)?,
                    role: *role,
                    availability: Availability::Away,
                },
            )
        }
        C::ChangeRole { user_id, role } => {
            require_admin(&caller)?;
            let target = user(*user_id)?;
            let touches_super = *role == Role::SuperAdmin || target.role == Role::SuperAdmin;
            if touches_super && matches!(caller, Caller::User(u) if u.role != Role::SuperAdmin) {
                return Err(DomainError::forbidden(
                    "only a super admin grants or revokes super admin",
                ));
            }
            if target.role == *role {
                return Err(DomainError::rejected(
                    "UNCHANGED",
                    Some("role"),
                    "the user already has this role",
                ));
            }
            if target.role == Role::SuperAdmin {
                keep_an_active_admin(directory, target, "role", "demoted")?;
            }
            Decision::one(
                streams::user(*user_id),
                UserRoleChanged {
                    user_id: *user_id,
                    role: *role,
                },
            )
        }
        C::SetAvailability {
            user_id,
            availability,
        } => {
            require_self_or_admin(&caller, *user_id)?;
            let target = user(*user_id)?;
            if !target.can_write() {
                return Err(DomainError::rejected(
                    "NOT_AN_AGENT",
                    Some("userId"),
                    "auditors and analysts take no conversations",
                ));
            }
            if target.availability == *availability {
                return Err(DomainError::rejected(
                    "UNCHANGED",
                    Some("availability"),
                    "the user's availability is already this",
                ));
            }
            Decision::one(
                streams::user(*user_id),
                UserAvailabilityChanged {
                    user_id: *user_id,
                    availability: *availability,
                },
            )
        }
        C::SetCapacity {
            user_id,
            max_open_conversations,
        } => {
            require_admin(&caller)?;
            user(*user_id)?;
            if *max_open_conversations == Some(0) {
                return Err(DomainError::invalid(
                    "maxOpenConversations",
                    "must be at least 1, or null for no limit",
                ));
            }
            Decision::one(
                streams::user(*user_id),
                UserCapacitySet {
                    user_id: *user_id,
                    max_open_conversations: *max_open_conversations,
                },
            )
        }
        C::DeactivateUser { user_id } => {
            require_admin(&caller)?;
            let target = user(*user_id)?;
            require_super_for(&caller, target, "deactivates")?;
            if matches!(caller, Caller::User(u) if u.id == *user_id) {
                return Err(DomainError::rejected(
                    "SELF",
                    Some("userId"),
                    "you cannot deactivate yourself; ask another admin",
                ));
            }
            if !target.active {
                return Err(DomainError::rejected(
                    "UNCHANGED",
                    Some("userId"),
                    "the user is already deactivated",
                ));
            }
            keep_an_active_admin(directory, target, "userId", "deactivated")?;
            Decision::one(
                streams::user(*user_id),
                UserDeactivated {
                    user_id: *user_id,
                    by: actor.clone(),
                    at: now,
                },
            )
        }
        C::ReactivateUser { user_id } => {
            require_admin(&caller)?;
            let target = user(*user_id)?;
            require_super_for(&caller, target, "reactivates")?;
            if target.active {
                return Err(DomainError::rejected(
                    "UNCHANGED",
                    Some("userId"),
                    "the user is active",
                ));
            }
            Decision::one(
                streams::user(*user_id),
                UserReactivated {
                    user_id: *user_id,
                    by: actor.clone(),
                },
            )
        }
        C::RevokeTokens { user_id } => {
            let own = matches!(caller, Caller::User(u) if u.id == *user_id);
            if !own {
                require_admin(&caller)?;
            }
            let target = user(*user_id)?;
            require_super_for(&caller, target, "revokes the tokens of")?;
            Decision::one(
                streams::user(*user_id),
                UserTokensRevoked {
                    user_id: *user_id,
                    by: actor.clone(),
                    not_before: now,
                },
            )
        }
        C::SetNotificationPreferences { preferences } => {
            require_self_or_admin(&caller, preferences.user_id)?;
            user(preferences.user_id)?;
            Decision::one(streams::user(preferences.user_id), preferences.clone())
        }
        C::CreateBot {
            bot_id,
            name: bot_name,
        } => {
            require_admin(&caller)?;
            if directory.bots.contains_key(bot_id) {
                return Err(DomainError::rejected(
                    "ALREADY_EXISTS",
                    Some("botId"),
                    "this bot already exists",
                ));
            }
            let bot_name = name("name", bot_name)?;
            if directory
                .bots
                .values()
                .any(|n| n.eq_ignore_ascii_case(&bot_name))
            {
                return Err(DomainError::rejected(
                    "TAKEN",
                    Some("name"),
                    format!("a bot named {bot_name:?} already exists"),
                ));
            }
            Decision::one(
                streams::bot(*bot_id),
                BotCreated {
                    bot_id: *bot_id,
                    name: bot_name,
                },
            )
        }
        C::CreateTeam {
            team_id,
            name: team_name,
        } => {
            require_admin(&caller)?;
            if directory.teams.contains_key(team_id) {
                return Err(DomainError::rejected(
                    "ALREADY_EXISTS",
                    Some("teamId"),
                    "this team already exists",
                ));
            }
            let team_name = name("name", team_name)?;
            if directory
                .teams
                .values()
                .any(|t| t.name.eq_ignore_ascii_case(&team_name))
            {
                return Err(DomainError::rejected(
                    "TAKEN",
                    Some("name"),
                    format!("a team named {team_name:?} already exists"),
                ));
            }
            Decision::one(
                streams::team(*team_id),
                TeamCreated {
                    team_id: *team_id,
                    name: team_name,
                },
            )
        }
        C::RenameTeam {
            team_id,
            name: team_name,
        } => {
            require_admin(&caller)?;
            team(*team_id)?;
            Decision::one(
                streams::team(*team_id),
                TeamRenamed {
                    team_id: *team_id,
                    name: name("name", team_name)?,
                },
            )
        }
        C::AddTeamMember { team_id, user_id } => {
            require_admin(&caller)?;
            let t = team(*team_id)?;
            user(*user_id)?;
            if t.members.contains(user_id) {
                return Err(DomainError::rejected(
                    "ALREADY_MEMBER",
                    Some("userId"),
                    "the user is already in this team",
                ));
            }
            Decision::one(
                streams::team(*team_id),
                TeamMemberAdded {
                    team_id: *team_id,
                    user_id: *user_id,
                },
            )
        }
        C::RemoveTeamMember { team_id, user_id } => {
            require_admin(&caller)?;
            let t = team(*team_id)?;
            if !t.members.contains(user_id) {
                return Err(DomainError::rejected(
                    "NOT_MEMBER",
                    Some("userId"),
                    "the user is not in this team",
                ));
            }
            Decision::one(
                streams::team(*team_id),
                TeamMemberRemoved {
                    team_id: *team_id,
                    user_id: *user_id,
                },
            )
        }
        C::CreateInbox {
            inbox_id,
            name: inbox_name,
        } => {
            require_admin(&caller)?;
            if directory.inboxes.contains_key(inbox_id) {
                return Err(DomainError::rejected(
                    "ALREADY_EXISTS",
                    Some("inboxId"),
                    "this inbox already exists",
                ));
            }
            Decision::one(
                streams::inbox(*inbox_id),
                InboxCreated {
                    inbox_id: *inbox_id,
                    name: name("name", inbox_name)?,
                },
            )
        }
        C::RenameInbox {
            inbox_id,
            name: inbox_name,
        } => {
            require_admin(&caller)?;
            inbox(*inbox_id)?;
            Decision::one(
                streams::inbox(*inbox_id),
                InboxRenamed {
                    inbox_id: *inbox_id,
                    name: name("name", inbox_name)?,
                },
            )
        }
        C::AddInboxMember { inbox_id, member } => {
            require_admin(&caller)?;
            let i = inbox(*inbox_id)?;
            let present = match member {
                Member::User { id } => {
                    user(*id)?;
                    i.member_users.contains(id)
                }
                Member::Team { id } => {
                    team(*id)?;
                    i.member_teams.contains(id)
                }
            };
            if present {
                return Err(DomainError::rejected(
                    "ALREADY_MEMBER",
                    Some("member"),
                    "already a member of this inbox",
                ));
            }
            Decision::one(
                streams::inbox(*inbox_id),
                InboxMemberAdded {
                    inbox_id: *inbox_id,
                    member: member.clone(),
                },
            )
        }
        C::RemoveInboxMember { inbox_id, member } => {
            require_admin(&caller)?;
            let i = inbox(*inbox_id)?;
            let present = match member {
                Member::User { id } => i.member_users.contains(id),
                Member::Team { id } => i.member_teams.contains(id),
            };
            if !present {
                return Err(DomainError::rejected(
                    "NOT_MEMBER",
                    Some("member"),
                    "not a member of this inbox",
                ));
            }
            Decision::one(
                streams::inbox(*inbox_id),
                InboxMemberRemoved {
                    inbox_id: *inbox_id,
                    member: member.clone(),
                },
            )
        }
        C::RestrictInbox { inbox_id, team_ids } => {
            require_admin(&caller)?;
            inbox(*inbox_id)?;
            if team_ids.is_empty() {
                return Err(DomainError::invalid(
                    "teamIds",
                    "name at least one team; to lift the restriction use liftInboxRestriction",
                ));
            }
            for id in team_ids {
                team(*id)?;
            }
            let team_ids: Vec<Uuid> = team_ids
                .iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            Decision::one(
                streams::inbox(*inbox_id),
                InboxRestricted {
                    inbox_id: *inbox_id,
                    team_ids,
                },
            )
        }
        C::LiftInboxRestriction { inbox_id } => {
            require_admin(&caller)?;
            if inbox(*inbox_id)?.restricted_to.is_none() {
                return Err(DomainError::rejected(
                    "NOT_RESTRICTED",
                    None,
                    "this inbox is not restricted",
                ));
            }
            Decision::one(
                streams::inbox(*inbox_id),
                InboxRestrictionLifted {
                    inbox_id: *inbox_id,
                },
            )
        }
        C::SetInboxRetention {
            inbox_id,
            closed_days,
        } => {
            require_admin(&caller)?;
            let current = inbox(*inbox_id)?.retention_days;
            if let Some(days) = *closed_days
                && !(1..=MAX_RETENTION_DAYS).contains(&days)
            {
                return Err(DomainError::invalid(
                    "closedDays",
                    format!(
                        "must be between 1 and {MAX_RETENTION_DAYS} days, or null to keep \
                         conversations forever"
                    ),
                ));
            }
            if current == *closed_days {
                return Err(DomainError::rejected(
                    "UNCHANGED",
                    Some("closedDays"),
                    "the inbox already has this retention period",
                ));
            }
            Decision::one(
                streams::inbox(*inbox_id),
                InboxRetentionSet {
                    inbox_id: *inbox_id,
                    closed_days: *closed_days,
                },
            )
        }
    }
}
