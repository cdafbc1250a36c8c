//! Mutations of the organisation's setup: time zone and business hours, users (role,
//! availability, capacity, notification settings), teams, inboxes (members, team restriction,
//! retention).
//!
//! All of them are for admins and super admins, except that users set their own availability
//! and notification settings; the write side (`switchboard_domain::setup`) decides, so a refusal
//! here is the same as everywhere else. Creating the organisation is not a mutation: it happens
//! once, at installation, by the system.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{NaiveDate, NaiveTime};
use proto_events::event::NotificationPreferencesChanged;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::Command;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::ids::{self, Kind};
use crate::mutation::common::{
    Executed, RunOptions, decode_all, decode_member, decode_opt, minted_id, payload, run,
};
use crate::state::{state, viewer};
use crate::types::directory::{Bot, Team, User, UserAvailability, UserRole};
use crate::types::inbox::Inbox;

/// Setup mutations.
#[derive(Debug, Default)]
pub(crate) struct SetupMutation;

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "proto_events::event::Weekday")]
pub(crate) enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

/// One opening interval of a weekday, in the business hours' time zone.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct OpeningInterval {
    /// The day it starts on.
    pub(crate) day: Weekday,
    /// Opening time, local (`HH:MM:SS`).
    pub(crate) opens: NaiveTime,
    /// Closing time, local; after `opens`.
    pub(crate) closes: NaiveTime,
}

/// One opening interval of a weekday.
#[derive(Debug, InputObject)]
pub(crate) struct OpeningIntervalInput {
    /// The day.
    day: Weekday,
    /// Opening time, local (`HH:MM:SS`).
    opens: NaiveTime,
    /// Closing time, local (`HH:MM:SS`); must be after `opens`, and intervals of one day must
    /// not overlap.
    closes: NaiveTime,
}

/// A day the organisation is closed.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Holiday {
    /// The local date.
    pub(crate) date: NaiveDate,
    /// What it is, e.g. "Christmas Day".
    pub(crate) name: String,
}

/// A day the organisation is closed.
#[derive(Debug, InputObject)]
pub(crate) struct HolidayInput {
    /// The local date (`YYYY-MM-DD`).
    date: NaiveDate,
    /// What it is, e.g. "Christmas Day".
    name: String,
}

/// When the organisation is open: business-hours metrics count only this time.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct BusinessHours {
    /// The IANA time zone the hours are in.
    pub(crate) time_zone: String,
    /// Opening intervals per weekday.
    pub(crate) weekly: Vec<OpeningInterval>,
    /// Days closed regardless of `weekly`.
    pub(crate) holidays: Vec<Holiday>,
}

/// Input of `setOrganisationTimeZone`.
#[derive(Debug, InputObject)]
pub(crate) struct SetOrganisationTimeZoneInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// An IANA time zone, e.g. `Europe/Paris`.
    time_zone: String,
}

payload! {
    /// Result of `setOrganisationTimeZone`.
    SetOrganisationTimeZonePayload {
        /// The organisation's time zone now.
        time_zone: String,
    }
}

/// Input of `setBusinessHours`.
#[derive(Debug, InputObject)]
pub(crate) struct SetBusinessHoursInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The IANA time zone the hours are in.
    time_zone: String,
    /// Opening intervals; replaces the previous ones.
    weekly: Vec<OpeningIntervalInput>,
    /// Days closed; replaces the previous ones.
    #[graphql(default)]
    holidays: Vec<HolidayInput>,
}

payload! {
    /// Result of `setBusinessHours`.
    SetBusinessHoursPayload {
        /// The business hours now.
        business_hours: BusinessHours,
    }
}

/// Input of `createUser`.
#[derive(Debug, InputObject)]
pub(crate) struct CreateUserInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// Sign-in e-mail; unique among users.
    email: String,
    /// Display name.
    name: String,
    /// What they may do. Only a super admin creates super admins.
    role: UserRole,
}

payload! {
    /// Result of `createUser`.
    CreateUserPayload {
        /// The new user (away until they make themselves available).
        user: User,
    }
}

/// Input of `changeUserRole`.
#[derive(Debug, InputObject)]
pub(crate) struct ChangeUserRoleInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The user.
    user_id: ID,
    /// The new role.
    role: UserRole,
}

payload! {
    /// Result of `changeUserRole`.
    ChangeUserRolePayload {
        /// The user.
        user: User,
    }
}

/// Input of `setUserAvailability`.
#[derive(Debug, InputObject)]
pub(crate) struct SetUserAvailabilityInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The user; the viewer when omitted.
    user_id: Option<ID>,
    /// Available (routing may assign them conversations) or away.
    availability: UserAvailability,
}

payload! {
    /// Result of `setUserAvailability`.
    SetUserAvailabilityPayload {
        /// The user.
        user: User,
    }
}

/// Input of `deactivateUser`.
#[derive(Debug, InputObject)]
pub(crate) struct DeactivateUserInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The user who leaves.
    user_id: ID,
}

payload! {
    /// Result of `deactivateUser`.
    DeactivateUserPayload {
        /// The user, deactivated.
        user: User,
    }
}

/// Input of `reactivateUser`.
#[derive(Debug, InputObject)]
pub(crate) struct ReactivateUserInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The deactivated user.
    user_id: ID,
}

payload! {
    /// Result of `reactivateUser`.
    ReactivateUserPayload {
        /// The user, active again.
        user: User,
    }
}

/// Input of `revokeTokens`.
#[derive(Debug, InputObject)]
pub(crate) struct RevokeTokensInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The user whose tokens to revoke; the viewer when omitted.
    user_id: Option<ID>,
}

payload! {
    /// Result of `revokeTokens`.
    RevokeTokensPayload {
        /// The user.
        user: User,
    }
}

/// Input of `setUserCapacity`.
#[derive(Debug, InputObject)]
pub(crate) struct SetUserCapacityInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The user.
    user_id: ID,
    /// Most open conversations routing gives them (at least 1); null for no limit.
    max_open_conversations: Option<u32>,
}

payload! {
    /// Result of `setUserCapacity`.
    SetUserCapacityPayload {
        /// The user.
        user: User,
    }
}

/// Input of `setNotificationPreferences`: all four settings, saved together.
#[derive(Debug, InputObject)]
pub(crate) struct SetNotificationPreferencesInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The user; the viewer when omitted.
    user_id: Option<ID>,
    /// Notify of every new conversation in an inbox the user is a member of.
    new_conversation_in_my_inboxes: bool,
    /// Notify when a conversation is assigned to the user.
    assigned_to_me: bool,
    /// Notify of a new inbound message on a conversation assigned to the user.
    new_message_on_my_conversations: bool,
    /// Notify when a comment @mentions the user.
    mentioned_in_comment: bool,
}

payload! {
    /// Result of `setNotificationPreferences`.
    SetNotificationPreferencesPayload {
        /// The user.
        user: User,
    }
}

/// Input of `createBot`.
#[derive(Debug, InputObject)]
pub(crate) struct CreateBotInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// Display name; unique among bots.
    name: String,
}

payload! {
    /// Result of `createBot`.
    CreateBotPayload {
        /// The new bot.
        bot: Bot,
    }
}

/// Input of `createTeam`.
#[derive(Debug, InputObject)]
pub(crate) struct CreateTeamInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// Display name; unique among teams.
    name: String,
}

payload! {
    /// Result of `createTeam`.
    CreateTeamPayload {
        /// The new team.
        team: Team,
    }
}

/// Input of `renameTeam`.
#[derive(Debug, InputObject)]
pub(crate) struct RenameTeamInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The team.
    team_id: ID,
    /// The new name.
    name: String,
}

payload! {
    /// Result of `renameTeam`.
    RenameTeamPayload {
        /// The team.
        team: Team,
    }
}

/// Input of `addTeamMember` and `removeTeamMember`.
#[derive(Debug, InputObject)]
pub(crate) struct TeamMemberInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The team.
    team_id: ID,
    /// The user.
    user_id: ID,
}

payload! {
    /// Result of `addTeamMember`.
    AddTeamMemberPayload {
        /// The team.
        team: Team,
    }
}

payload! {
    /// Result of `removeTeamMember`.
    RemoveTeamMemberPayload {
        /// The team.
        team: Team,
    }
}

/// Input of `createInbox`.
#[derive(Debug, InputObject)]
pub(crate) struct CreateInboxInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// Display name, e.g. "Support".
    name: String,
}

payload! {
    /// Result of `createInbox`.
    CreateInboxPayload {
        /// The new inbox, with its automatic fallback e-mail address.
        inbox: Inbox,
    }
}

/// Input of `renameInbox`.
#[derive(Debug, InputObject)]
pub(crate) struct RenameInboxInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The inbox.
    inbox_id: ID,
    /// The new name.
    name: String,
}

payload! {
    /// Result of `renameInbox`.
    RenameInboxPayload {
        /// The inbox.
        inbox: Inbox,
    }
}

/// Input of `addInboxMember` and `removeInboxMember`.
#[derive(Debug, InputObject)]
pub(crate) struct InboxMemberInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The inbox.
    inbox_id: ID,
    /// A user or a team.
    member_id: ID,
}

payload! {
    /// Result of `addInboxMember`.
    AddInboxMemberPayload {
        /// The inbox.
        inbox: Inbox,
    }
}

payload! {
    /// Result of `removeInboxMember`.
    RemoveInboxMemberPayload {
        /// The inbox.
        inbox: Inbox,
    }
}

/// Input of `restrictInbox`.
#[derive(Debug, InputObject)]
pub(crate) struct RestrictInboxInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The inbox.
    inbox_id: ID,
    /// The teams whose members (and admins) alone see the inbox; at least one. Replaces the
    /// previous restriction.
    team_ids: Vec<ID>,
}

payload! {
    /// Result of `restrictInbox`.
    RestrictInboxPayload {
        /// The inbox.
        inbox: Inbox,
    }
}

/// Input of `liftInboxRestriction`.
#[derive(Debug, InputObject)]
pub(crate) struct LiftInboxRestrictionInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The inbox.
    inbox_id: ID,
}

payload! {
    /// Result of `liftInboxRestriction`.
    LiftInboxRestrictionPayload {
        /// The inbox.
        inbox: Inbox,
    }
}

/// Input of `setInboxRetention`.
#[derive(Debug, InputObject)]
pub(crate) struct SetInboxRetentionInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The inbox.
    inbox_id: ID,
    /// Conversations closed more than this many days ago are erased (1 to 3650); null keeps
    /// them forever. Replaces the previous period.
    closed_days: Option<u32>,
}

payload! {
    /// Result of `setInboxRetention`.
    SetInboxRetentionPayload {
        /// The inbox.
        inbox: Inbox,
    }
}

/// Input fields named differently from the write side's: a member is `memberId`.
const MEMBER: &[(&str, &str)] = &[("member", "memberId")];

/// Runs a setup command as the viewer.
async fn setup(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    command: SetupCommand,
    renames: &'static [(&'static str, &'static str)],
) -> ApiResult<Executed> {
    let options = RunOptions {
        renames,
        ..RunOptions::default()
    };
    run(ctx, client_mutation_id, Command::Setup(command), options).await
}

/// The user `user_id` after a successful command; none after a failed one.
async fn user_after(
    ctx: &Context<'_>,
    executed: &Executed,
    user_id: Option<Uuid>,
) -> ApiResult<Option<User>> {
    let Some(user_id) = user_id.filter(|_| executed.ok()) else {
        return Ok(None);
    };
    let view = state(ctx).directory().await?;
    Ok(view.directory.user(user_id).cloned().map(User))
}

/// The team `team_id` after a successful command.
async fn team_after(
    ctx: &Context<'_>,
    executed: &Executed,
    team_id: Option<Uuid>,
) -> ApiResult<Option<Team>> {
    let Some(team_id) = team_id.filter(|_| executed.ok()) else {
        return Ok(None);
    };
    let view = state(ctx).directory().await?;
    Ok(view.directory.teams.get(&team_id).cloned().map(Team))
}

/// The inbox `inbox_id` after a successful command.
async fn inbox_after(
    ctx: &Context<'_>,
    executed: &Executed,
    inbox_id: Option<Uuid>,
) -> ApiResult<Option<Inbox>> {
    match inbox_id.filter(|_| executed.ok()) {
        Some(inbox_id) => Inbox::load(ctx, inbox_id).await,
        None => Ok(None),
    }
}

/// The user an input names, or the viewer.
async fn user_or_viewer(ctx: &Context<'_>, user_id: Option<&ID>) -> ApiResult<Uuid> {
    match decode_opt(user_id, Kind::User, "userId")? {
        Some(id) => Ok(id),
        None => Ok(viewer(ctx).await?.user_id),
    }
}

#[Object]
impl SetupMutation {
    /// Changes the organisation's time zone (admins).
    async fn set_organisation_time_zone(
        &self,
        ctx: &Context<'_>,
        input: SetOrganisationTimeZoneInput,
    ) -> async_graphql::Result<SetOrganisationTimeZonePayload> {
        let command = SetupCommand::SetTimeZone {
            time_zone: input.time_zone,
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let time_zone = if executed.ok() {
            let view = state(ctx).directory().await?;
            view.directory
                .organisation
                .as_ref()
                .map(|o| o.time_zone.clone())
        } else {
            None
        };
        Ok(SetOrganisationTimeZonePayload {
            result: executed.result,
            time_zone,
        })
    }

    /// Replaces the organisation's opening hours and holidays (admins). Business-hours metrics
    /// are recomputed from the history with the new hours.
    async fn set_business_hours(
        &self,
        ctx: &Context<'_>,
        input: SetBusinessHoursInput,
    ) -> async_graphql::Result<SetBusinessHoursPayload> {
        let command = SetupCommand::SetBusinessHours {
            time_zone: input.time_zone,
            weekly: input
                .weekly
                .into_iter()
                .map(|i| proto_events::event::OpeningInterval {
                    day: i.day.into(),
                    opens: i.opens,
                    closes: i.closes,
                })
                .collect(),
            holidays: input
                .holidays
                .into_iter()
                .map(|h| proto_events::event::Holiday {
                    date: h.date,
                    name: h.name,
                })
                .collect(),
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let business_hours = if executed.ok() {
            let view = state(ctx).directory().await?;
            view.directory.organisation.as_ref().map(|o| BusinessHours {
                time_zone: o.business_hours_time_zone.clone(),
                weekly: o
                    .business_hours
                    .iter()
                    .map(|i| OpeningInterval {
                        day: i.day.into(),
                        opens: i.opens,
                        closes: i.closes,
                    })
                    .collect(),
                holidays: o
                    .holidays
                    .iter()
                    .map(|h| Holiday {
                        date: h.date,
                        name: h.name.clone(),
                    })
                    .collect(),
            })
        } else {
            None
        };
        Ok(SetBusinessHoursPayload {
            result: executed.result,
            business_hours,
        })
    }

    /// Adds a user (admins; only a super admin creates super admins). The e-mail must be
    /// unused (`TAKEN`).
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
    ) -> async_graphql::Result<CreateUserPayload> {
        let command = SetupCommand::CreateUser {
            user_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            email: input.email,
            name: input.name,
            role: input.role.into(),
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let user = user_after(ctx, &executed, executed.created_id("user")).await?;
        Ok(CreateUserPayload {
            result: executed.result,
            user,
        })
    }

    /// Changes a user's role (admins; only a super admin grants or revokes super admin, and the
    /// last super admin stays one: `LAST_SUPER_ADMIN`).
    async fn change_user_role(
        &self,
        ctx: &Context<'_>,
        input: ChangeUserRoleInput,
    ) -> async_graphql::Result<ChangeUserRolePayload> {
        let user_id = ids::decode(&input.user_id, Kind::User, "userId")?;
        let command = SetupCommand::ChangeRole {
            user_id,
            role: input.role.into(),
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let user = user_after(ctx, &executed, Some(user_id)).await?;
        Ok(ChangeUserRolePayload {
            result: executed.result,
            user,
        })
    }

    /// Deactivates a user who left (admins; only a super admin deactivates a super admin).
    /// Their tokens are refused at once, routing passes them over, nobody can assign them
    /// anything, and their open conversations are routed again by their inbox's rules (left
    /// unassigned where there is none). Their messages, comments and audit trail stay theirs.
    /// Refused for oneself (`SELF`) and for the last active admin or super admin (`LAST_ADMIN`,
    /// `LAST_SUPER_ADMIN`).
    async fn deactivate_user(
        &self,
        ctx: &Context<'_>,
        input: DeactivateUserInput,
    ) -> async_graphql::Result<DeactivateUserPayload> {
        let user_id = ids::decode(&input.user_id, Kind::User, "userId")?;
        let command = SetupCommand::DeactivateUser { user_id };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let user = user_after(ctx, &executed, Some(user_id)).await?;
        Ok(DeactivateUserPayload {
            result: executed.result,
            user,
        })
    }

    /// Lets a deactivated user back in (admins). Their tokens from before the deactivation stay
    /// refused: they sign in anew. Routing takes them again once they are available.
    async fn reactivate_user(
        &self,
        ctx: &Context<'_>,
        input: ReactivateUserInput,
    ) -> async_graphql::Result<ReactivateUserPayload> {
        let user_id = ids::decode(&input.user_id, Kind::User, "userId")?;
        let command = SetupCommand::ReactivateUser { user_id };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let user = user_after(ctx, &executed, Some(user_id)).await?;
        Ok(ReactivateUserPayload {
            result: executed.result,
            user,
        })
    }

    /// Refuses every token of a user issued until now (users for themselves, admins for
    /// anyone): a lost laptop, a leaked token. Revoking one's own tokens ends the token this
    /// request came with too.
    async fn revoke_tokens(
        &self,
        ctx: &Context<'_>,
        input: RevokeTokensInput,
    ) -> async_graphql::Result<RevokeTokensPayload> {
        let user_id = user_or_viewer(ctx, input.user_id.as_ref()).await?;
        let command = SetupCommand::RevokeTokens { user_id };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let user = user_after(ctx, &executed, Some(user_id)).await?;
        Ok(RevokeTokensPayload {
            result: executed.result,
            user,
        })
    }

    /// Marks a user available (routing may assign them new conversations) or away: users for
    /// themselves, admins for anyone.
    async fn set_user_availability(
        &self,
        ctx: &Context<'_>,
        input: SetUserAvailabilityInput,
    ) -> async_graphql::Result<SetUserAvailabilityPayload> {
        let user_id = user_or_viewer(ctx, input.user_id.as_ref()).await?;
        let command = SetupCommand::SetAvailability {
            user_id,
            availability: input.availability.into(),
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let user = user_after(ctx, &executed, Some(user_id)).await?;
        Ok(SetUserAvailabilityPayload {
            result: executed.result,
            user,
        })
    }

    /// Limits how many open conversations routing gives a user (admins).
    async fn set_user_capacity(
        &self,
        ctx: &Context<'_>,
        input: SetUserCapacityInput,
    ) -> async_graphql::Result<SetUserCapacityPayload> {
        let user_id = ids::decode(&input.user_id, Kind::User, "userId")?;
        let command = SetupCommand::SetCapacity {
            user_id,
            max_open_conversations: input.max_open_conversations,
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let user = user_after(ctx, &executed, Some(user_id)).await?;
        Ok(SetUserCapacityPayload {
            result: executed.result,
            user,
        })
    }

    /// Chooses what a user is notified about: users for themselves, admins for anyone.
    async fn set_notification_preferences(
        &self,
        ctx: &Context<'_>,
        input: SetNotificationPreferencesInput,
    ) -> async_graphql::Result<SetNotificationPreferencesPayload> {
        let user_id = user_or_viewer(ctx, input.user_id.as_ref()).await?;
        let command = SetupCommand::SetNotificationPreferences {
            preferences: NotificationPreferencesChanged {
                user_id,
                new_conversation_in_my_inboxes: input.new_conversation_in_my_inboxes,
                assigned_to_me: input.assigned_to_me,
                new_message_on_my_conversations: input.new_message_on_my_conversations,
                mentioned_in_comment: input.mentioned_in_comment,
            },
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let user = user_after(ctx, &executed, Some(user_id)).await?;
        Ok(SetNotificationPreferencesPayload {
            result: executed.result,
            user,
        })
    }

    /// Registers a bot (admins): routing rules can then send conversations to it first, and
    /// it hands them off to people. Its name must be unused (`TAKEN`).
    async fn create_bot(
        &self,
        ctx: &Context<'_>,
        input: CreateBotInput,
    ) -> async_graphql::Result<CreateBotPayload> {
        let command = SetupCommand::CreateBot {
            bot_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            name: input.name,
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let bot = match executed.created_id("bot").filter(|_| executed.ok()) {
            Some(bot_id) => {
                let view = state(ctx).directory().await?;
                view.directory.bots.get(&bot_id).map(|name| Bot {
                    bot_id,
                    name: name.clone(),
                })
            }
            None => None,
        };
        Ok(CreateBotPayload {
            result: executed.result,
            bot,
        })
    }

    /// Creates a team (admins). Its name must be unused (`TAKEN`).
    async fn create_team(
        &self,
        ctx: &Context<'_>,
        input: CreateTeamInput,
    ) -> async_graphql::Result<CreateTeamPayload> {
        let command = SetupCommand::CreateTeam {
            team_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            name: input.name,
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let team = team_after(ctx, &executed, executed.created_id("team")).await?;
        Ok(CreateTeamPayload {
            result: executed.result,
            team,
        })
    }

    /// Renames a team (admins).
    async fn rename_team(
        &self,
        ctx: &Context<'_>,
        input: RenameTeamInput,
    ) -> async_graphql::Result<RenameTeamPayload> {
        let team_id = ids::decode(&input.team_id, Kind::Team, "teamId")?;
        let command = SetupCommand::RenameTeam {
            team_id,
            name: input.name,
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let team = team_after(ctx, &executed, Some(team_id)).await?;
        Ok(RenameTeamPayload {
            result: executed.result,
            team,
        })
    }

    /// Adds a user to a team (admins).
    async fn add_team_member(
        &self,
        ctx: &Context<'_>,
        input: TeamMemberInput,
    ) -> async_graphql::Result<AddTeamMemberPayload> {
        let team_id = ids::decode(&input.team_id, Kind::Team, "teamId")?;
        let user_id = ids::decode(&input.user_id, Kind::User, "userId")?;
        let command = SetupCommand::AddTeamMember { team_id, user_id };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let team = team_after(ctx, &executed, Some(team_id)).await?;
        Ok(AddTeamMemberPayload {
            result: executed.result,
            team,
        })
    }

    /// Removes a user from a team (admins).
    async fn remove_team_member(
        &self,
        ctx: &Context<'_>,
        input: TeamMemberInput,
    ) -> async_graphql::Result<RemoveTeamMemberPayload> {
        let team_id = ids::decode(&input.team_id, Kind::Team, "teamId")?;
        let user_id = ids::decode(&input.user_id, Kind::User, "userId")?;
        let command = SetupCommand::RemoveTeamMember { team_id, user_id };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let team = team_after(ctx, &executed, Some(team_id)).await?;
        Ok(RemoveTeamMemberPayload {
            result: executed.result,
            team,
        })
    }

    /// Creates an inbox (admins). Until a team e-mail is connected it gets an automatic
    /// fallback e-mail address.
    async fn create_inbox(
        &self,
        ctx: &Context<'_>,
        input: CreateInboxInput,
    ) -> async_graphql::Result<CreateInboxPayload> {
        let command = SetupCommand::CreateInbox {
            inbox_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            name: input.name,
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let inbox = inbox_after(ctx, &executed, executed.created_id("inbox")).await?;
        Ok(CreateInboxPayload {
            result: executed.result,
            inbox,
        })
    }

    /// Renames an inbox (admins).
    async fn rename_inbox(
        &self,
        ctx: &Context<'_>,
        input: RenameInboxInput,
    ) -> async_graphql::Result<RenameInboxPayload> {
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let command = SetupCommand::RenameInbox {
            inbox_id,
            name: input.name,
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let inbox = inbox_after(ctx, &executed, Some(inbox_id)).await?;
        Ok(RenameInboxPayload {
            result: executed.result,
            inbox,
        })
    }

    /// Makes a user or a team a member of an inbox (admins).
    async fn add_inbox_member(
        &self,
        ctx: &Context<'_>,
        input: InboxMemberInput,
    ) -> async_graphql::Result<AddInboxMemberPayload> {
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let member = decode_member(&input.member_id, "memberId")?;
        let command = SetupCommand::AddInboxMember { inbox_id, member };
        let executed = setup(ctx, input.client_mutation_id, command, MEMBER).await?;
        let inbox = inbox_after(ctx, &executed, Some(inbox_id)).await?;
        Ok(AddInboxMemberPayload {
            result: executed.result,
            inbox,
        })
    }

    /// Removes a user or a team from an inbox (admins).
    async fn remove_inbox_member(
        &self,
        ctx: &Context<'_>,
        input: InboxMemberInput,
    ) -> async_graphql::Result<RemoveInboxMemberPayload> {
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let member = decode_member(&input.member_id, "memberId")?;
        let command = SetupCommand::RemoveInboxMember { inbox_id, member };
        let executed = setup(ctx, input.client_mutation_id, command, MEMBER).await?;
        let inbox = inbox_after(ctx, &executed, Some(inbox_id)).await?;
        Ok(RemoveInboxMemberPayload {
            result: executed.result,
            inbox,
        })
    }

    /// Restricts an inbox to the members of some teams (admins): other agents no longer see
    /// it, nor anything in it.
    async fn restrict_inbox(
        &self,
        ctx: &Context<'_>,
        input: RestrictInboxInput,
    ) -> async_graphql::Result<RestrictInboxPayload> {
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let team_ids = decode_all(&input.team_ids, Kind::Team, "teamIds")?;
        let command = SetupCommand::RestrictInbox { inbox_id, team_ids };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let inbox = inbox_after(ctx, &executed, Some(inbox_id)).await?;
        Ok(RestrictInboxPayload {
            result: executed.result,
            inbox,
        })
    }

    /// Lifts an inbox's team restriction (admins).
    async fn lift_inbox_restriction(
        &self,
        ctx: &Context<'_>,
        input: LiftInboxRestrictionInput,
    ) -> async_graphql::Result<LiftInboxRestrictionPayload> {
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let command = SetupCommand::LiftInboxRestriction { inbox_id };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let inbox = inbox_after(ctx, &executed, Some(inbox_id)).await?;
        Ok(LiftInboxRestrictionPayload {
            result: executed.result,
            inbox,
        })
    }

    /// Sets how long an inbox keeps its conversations once closed (admins): from then on,
    /// those closed more than `closedDays` days ago are erased (GDPR storage limitation), each
    /// erasure recorded in the audit trail; null keeps them forever (the default). An erased
    /// conversation leaves every view and its files are deleted; what its sender wrote before
    /// being a known contact becomes unreadable in the log at once, what a known contact wrote
    /// when that contact is erased.
    async fn set_inbox_retention(
        &self,
        ctx: &Context<'_>,
        input: SetInboxRetentionInput,
    ) -> async_graphql::Result<SetInboxRetentionPayload> {
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let command = SetupCommand::SetInboxRetention {
            inbox_id,
            closed_days: input.closed_days,
        };
        let executed = setup(ctx, input.client_mutation_id, command, &[]).await?;
        let inbox = inbox_after(ctx, &executed, Some(inbox_id)).await?;
        Ok(SetInboxRetentionPayload {
            result: executed.result,
            inbox,
        })
    }
}
