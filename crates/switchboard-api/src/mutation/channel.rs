//! Mutations of channels: connecting team e-mail, website chat, Messenger pages and forms to an
//! inbox, disconnecting and moving them, routing rules, and the e-mail filters (built-in rules
//! and allow/deny rules).
//!
//! Admins do all of it; an agent may connect their own private e-mail account to an inbox they
//! see, and disconnect it again (`switchboard_domain::channel` decides). The automatic fallback
//! address of an inbox is the system's business, not a mutation.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use proto_events::event::{EmailAccess, RuleScope, SenderPattern};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::directory::{self, Directory};
use switchboard_service::Command;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::mutation::common::{
    Executed, RunOptions, decode_member, decode_opt, minted_id, payload, run,
};
use crate::state::{state, viewer};
use crate::types::directory::{Bot, Channel, Team, User};

/// Channel mutations.
#[derive(Debug, Default)]
pub(crate) struct ChannelMutation;

/// How a routing rule picks an assignee among its targets' *available* users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "proto_events::event::RoutingStrategy")]
pub(crate) enum RoutingStrategy {
    /// The next available target user in turn.
    RoundRobin,
    /// The available target user with the fewest open conversations.
    LeastLoaded,
    /// The contact's owner, if available.
    ContactOwner,
    /// The rule's bot first; after its handoff, the target users round-robin.
    BotFirst,
}

/// Whether an allow/deny rule lets mail through or filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "proto_events::event::FilterAction")]
pub(crate) enum EmailFilterAction {
    /// Never filter matching mail, whatever the built-in filters say.
    Allow,
    /// Always filter matching mail, known contacts included.
    Deny,
}

/// A routing rule: who new conversations of an inbox or a channel go to. A channel's rule wins
/// over its inbox's.
#[derive(Debug, Clone)]
pub(crate) struct RoutingRule(pub(crate) directory::RoutingRule);

#[Object]
impl RoutingRule {
    /// Global id.
    async fn id(&self) -> ID {
        ids::encode(Kind::RoutingRule, self.0.id)
    }
    /// How it picks.
    async fn strategy(&self) -> RoutingStrategy {
        self.0.strategy.into()
    }
    /// The inbox it applies to (every channel of it), for an inbox-wide rule.
    async fn inbox_id(&self) -> Option<ID> {
        match self.0.scope {
            RuleScope::Inbox { id } => Some(ids::encode(Kind::Inbox, id)),
            RuleScope::Channel { .. } => None,
        }
    }
    /// The channel it applies to, for a channel's rule.
    async fn channel_id(&self) -> Option<ID> {
        match self.0.scope {
            RuleScope::Channel { id } => Some(ids::encode(Kind::Channel, id)),
            RuleScope::Inbox { .. } => None,
        }
    }
    /// The users it picks among directly.
    async fn target_users(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let view = state(ctx).directory().await?;
        Ok(self
            .0
            .targets
            .iter()
            .filter_map(|m| match m {
                proto_events::event::Member::User { id } => view.directory.user(*id).cloned(),
                proto_events::event::Member::Team { .. } => None,
            })
            .map(User)
            .collect())
    }
    /// The teams whose members it picks among.
    async fn target_teams(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Team>> {
        let view = state(ctx).directory().await?;
        Ok(self
            .0
            .targets
            .iter()
            .filter_map(|m| match m {
                proto_events::event::Member::Team { id } => view.directory.teams.get(id).cloned(),
                proto_events::event::Member::User { .. } => None,
            })
            .map(Team)
            .collect())
    }
    /// The bot that answers first (`BOT_FIRST`).
    async fn bot(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Bot>> {
        let view = state(ctx).directory().await?;
        Ok(self.0.bot_id.and_then(|bot_id| {
            view.directory.bots.get(&bot_id).map(|name| Bot {
                bot_id,
                name: name.clone(),
            })
        }))
    }
}

/// An allow or deny rule of an e-mail channel.
#[derive(Debug, Clone)]
pub(crate) struct EmailFilterRule {
    rule: directory::EmailFilterRule,
    channel_id: Uuid,
}

#[Object]
impl EmailFilterRule {
    /// Global id.
    async fn id(&self) -> ID {
        ids::encode(Kind::EmailFilterRule, self.rule.id)
    }
    /// Allow or deny.
    async fn action(&self) -> EmailFilterAction {
        self.rule.action.into()
    }
    /// The one address it matches (lower-cased), for an address rule.
    async fn address(&self) -> Option<&str> {
        match &self.rule.pattern {
            SenderPattern::Address { address } => Some(address),
            SenderPattern::Domain { .. } => None,
        }
    }
    /// The domain it matches, subdomains included (lower-cased), for a domain rule.
    async fn domain(&self) -> Option<&str> {
        match &self.rule.pattern {
            SenderPattern::Domain { domain } => Some(domain),
            SenderPattern::Address { .. } => None,
        }
    }
    /// The e-mail channel it belongs to.
    async fn channel_id(&self) -> ID {
        ids::encode(Kind::Channel, self.channel_id)
    }
}

/// Which built-in e-mail filters of a channel are switched on. Mail from known contacts is never
/// filtered by these.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct BuiltInEmailFilters {
    /// Automated replies: out-of-office, `Auto-Submitted`.
    pub(crate) automated_replies: bool,
    /// Bulk and marketing mail: `Precedence: bulk`, list mail.
    pub(crate) bulk_mail: bool,
    /// Role addresses such as noreply@ or mailer-daemon@.
    pub(crate) role_addresses: bool,
    /// Mail carrying a `List-Unsubscribe` header.
    pub(crate) unsubscribe_header: bool,
}

/// Input of `connectEmailChannel`.
#[derive(Debug, InputObject)]
pub(crate) struct ConnectEmailChannelInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The inbox its mail goes to.
    inbox_id: ID,
    /// The address mail is received at, e.g. `support@example.com`; one channel per address
    /// (`TAKEN`).
    address: String,
    /// A user's own account instead of a shared address: its conversations are visible to that
    /// user and admins only, unless shared.
    #[graphql(default)]
    private: bool,
    /// The owner of a private account; the viewer when omitted. Agents connect only their own.
    owner_id: Option<ID>,
}

payload! {
    /// Result of `connectEmailChannel`.
    ConnectEmailChannelPayload {
        /// The new channel, with every built-in filter switched on.
        channel: Channel,
    }
}

/// Input of `connectChatChannel`.
#[derive(Debug, InputObject)]
pub(crate) struct ConnectChatChannelInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The inbox its conversations go to.
    inbox_id: ID,
    /// Display name of the widget.
    name: String,
}

payload! {
    /// Result of `connectChatChannel`.
    ConnectChatChannelPayload {
        /// The new channel.
        channel: Channel,
    }
}

/// Input of `connectMessengerChannel`.
#[derive(Debug, InputObject)]
pub(crate) struct ConnectMessengerChannelInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The inbox its conversations go to.
    inbox_id: ID,
    /// Facebook's page id; one channel per page (`TAKEN`).
    page_id: String,
    /// The page's name.
    page_name: String,
}

payload! {
    /// Result of `connectMessengerChannel`.
    ConnectMessengerChannelPayload {
        /// The new channel.
        channel: Channel,
    }
}

/// Input of `connectFormChannel`.
#[derive(Debug, InputObject)]
pub(crate) struct ConnectFormChannelInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The inbox its submissions go to.
    inbox_id: ID,
    /// Display name of the form.
    name: String,
}

payload! {
    /// Result of `connectFormChannel`.
    ConnectFormChannelPayload {
        /// The new channel.
        channel: Channel,
    }
}

/// Input of `disconnectChannel`.
#[derive(Debug, InputObject)]
pub(crate) struct DisconnectChannelInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The channel.
    channel_id: ID,
}

payload! {
    /// Result of `disconnectChannel`.
    DisconnectChannelPayload {
        /// The channel, now disconnected.
        channel: Channel,
    }
}

/// Input of `moveChannel`.
#[derive(Debug, InputObject)]
pub(crate) struct MoveChannelInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The channel.
    channel_id: ID,
    /// The inbox it feeds from now on.
    inbox_id: ID,
}

payload! {
    /// Result of `moveChannel`.
    MoveChannelPayload {
        /// The channel.
        channel: Channel,
    }
}

/// Input of `setRoutingRule`.
#[derive(Debug, InputObject)]
pub(crate) struct SetRoutingRuleInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The inbox (all its channels) or the channel the rule applies to; replaces its previous
    /// rule.
    scope_id: ID,
    /// How it picks.
    strategy: RoutingStrategy,
    /// The users and teams it picks among (teams expand to their members).
    #[graphql(default)]
    target_ids: Vec<ID>,
    /// The bot that answers first; required with `BOT_FIRST`, refused otherwise.
    bot_id: Option<ID>,
}

payload! {
    /// Result of `setRoutingRule`.
    SetRoutingRulePayload {
        /// The rule.
        routing_rule: RoutingRule,
    }
}

/// Input of `removeRoutingRule`.
#[derive(Debug, InputObject)]
pub(crate) struct RemoveRoutingRuleInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The rule.
    routing_rule_id: ID,
}

payload! {
    /// Result of `removeRoutingRule`.
    RemoveRoutingRulePayload {
        /// The id of the rule removed.
        removed_routing_rule_id: ID,
    }
}

/// Input of `setBuiltInEmailFilters`: all four switches, saved together.
#[derive(Debug, InputObject)]
pub(crate) struct SetBuiltInEmailFiltersInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The e-mail channel.
    channel_id: ID,
    /// Filter automated replies (out-of-office, `Auto-Submitted`).
    automated_replies: bool,
    /// Filter bulk and marketing mail.
    bulk_mail: bool,
    /// Filter mail from role addresses such as noreply@.
    role_addresses: bool,
    /// Filter mail carrying a `List-Unsubscribe` header.
    unsubscribe_header: bool,
}

payload! {
    /// Result of `setBuiltInEmailFilters`.
    SetBuiltInEmailFiltersPayload {
        /// The channel.
        channel: Channel,
        /// Its built-in filters now.
        built_in_filters: BuiltInEmailFilters,
    }
}

/// Input of `addEmailFilterRule`.
#[derive(Debug, InputObject)]
pub(crate) struct AddEmailFilterRuleInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The e-mail channel.
    channel_id: ID,
    /// Allow or deny.
    action: EmailFilterAction,
    /// An address (`news@example.com`) or a domain (`example.com`, which matches its
    /// subdomains too).
    pattern: String,
}

payload! {
    /// Result of `addEmailFilterRule`.
    AddEmailFilterRulePayload {
        /// The new rule.
        email_filter_rule: EmailFilterRule,
    }
}

/// Input of `removeEmailFilterRule`.
#[derive(Debug, InputObject)]
pub(crate) struct RemoveEmailFilterRuleInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The rule.
    email_filter_rule_id: ID,
}

payload! {
    /// Result of `removeEmailFilterRule`.
    RemoveEmailFilterRulePayload {
        /// The id of the rule removed.
        removed_email_filter_rule_id: ID,
        /// The channel it belonged to.
        channel: Channel,
    }
}

/// Runs a channel command as the viewer.
pub(super) async fn channel_command(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    command: ChannelCommand,
    renames: &'static [(&'static str, &'static str)],
) -> ApiResult<Executed> {
    let options = RunOptions {
        renames,
        ..RunOptions::default()
    };
    run(ctx, client_mutation_id, Command::Channel(command), options).await
}

/// The channel `channel_id` of `directory`.
fn channel_in(directory: &Directory, channel_id: Uuid) -> Option<Channel> {
    directory
        .channels
        .get(&channel_id)
        .cloned()
        .map(|c| Channel::new(c, directory.is_fallback(channel_id)))
}

/// The channel `channel_id` after a successful command.
pub(super) async fn channel_after(
    ctx: &Context<'_>,
    executed: &Executed,
    channel_id: Option<Uuid>,
) -> ApiResult<Option<Channel>> {
    let Some(channel_id) = channel_id.filter(|_| executed.ok()) else {
        return Ok(None);
    };
    let view = state(ctx).directory().await?;
    Ok(channel_in(&view.directory, channel_id))
}

/// A sender pattern from what a user typed, normalised as the write side stores it (trimmed,
/// lower-cased): an address if something precedes an `@`, else a domain (`@example.com` too).
fn sender_pattern(pattern: &str) -> SenderPattern {
    let pattern = pattern.trim().to_lowercase();
    if pattern.find('@').is_some_and(|at| at > 0) {
        SenderPattern::Address { address: pattern }
    } else {
        SenderPattern::Domain {
            domain: pattern.trim_start_matches('@').to_owned(),
        }
    }
}

#[Object]
impl ChannelMutation {
    /// Connects a team e-mail account to an inbox: a shared address (admins) or a user's own
    /// private account (that user, or an admin).
    async fn connect_email_channel(
        &self,
        ctx: &Context<'_>,
        input: ConnectEmailChannelInput,
    ) -> async_graphql::Result<ConnectEmailChannelPayload> {
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let owner = decode_opt(input.owner_id.as_ref(), Kind::User, "ownerId")?;
        let access = match (input.private, owner) {
            (false, None) => EmailAccess::Shared,
            (false, Some(_)) => {
                return Err(ApiError::bad_input(
                    "ownerId",
                    "only a private account has an owner; set `private: true`",
                )
                .into());
            }
            (true, Some(owner_user_id)) => EmailAccess::Private { owner_user_id },
            (true, None) => EmailAccess::Private {
                owner_user_id: viewer(ctx).await?.user_id,
            },
        };
        let command = ChannelCommand::ConnectEmail {
            channel_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            inbox_id,
            address: input.address,
            access,
        };
        let executed = channel_command(
            ctx,
            input.client_mutation_id,
            command,
            &[("access", "ownerId")],
        )
        .await?;
        let channel = channel_after(ctx, &executed, executed.created_id("channel")).await?;
        Ok(ConnectEmailChannelPayload {
            result: executed.result,
            channel,
        })
    }

    /// Connects a website chat widget to an inbox (admins).
    async fn connect_chat_channel(
        &self,
        ctx: &Context<'_>,
        input: ConnectChatChannelInput,
    ) -> async_graphql::Result<ConnectChatChannelPayload> {
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let command = ChannelCommand::ConnectChat {
            channel_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            inbox_id,
            name: input.name,
        };
        let executed = channel_command(ctx, input.client_mutation_id, command, &[]).await?;
        let channel = channel_after(ctx, &executed, executed.created_id("channel")).await?;
        Ok(ConnectChatChannelPayload {
            result: executed.result,
            channel,
        })
    }

    /// Connects a Facebook Messenger page to an inbox (admins).
    async fn connect_messenger_channel(
        &self,
        ctx: &Context<'_>,
        input: ConnectMessengerChannelInput,
    ) -> async_graphql::Result<ConnectMessengerChannelPayload> {
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let command = ChannelCommand::ConnectMessenger {
            channel_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            inbox_id,
            page_id: input.page_id,
            page_name: input.page_name,
        };
        let executed = channel_command(ctx, input.client_mutation_id, command, &[]).await?;
        let channel = channel_after(ctx, &executed, executed.created_id("channel")).await?;
        Ok(ConnectMessengerChannelPayload {
            result: executed.result,
            channel,
        })
    }

    /// Connects a web form to an inbox (admins): each submission starts a conversation.
    async fn connect_form_channel(
        &self,
        ctx: &Context<'_>,
        input: ConnectFormChannelInput,
    ) -> async_graphql::Result<ConnectFormChannelPayload> {
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let command = ChannelCommand::ConnectForm {
            channel_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            inbox_id,
            name: input.name,
        };
        let executed = channel_command(ctx, input.client_mutation_id, command, &[]).await?;
        let channel = channel_after(ctx, &executed, executed.created_id("channel")).await?;
        Ok(ConnectFormChannelPayload {
            result: executed.result,
            channel,
        })
    }

    /// Disconnects a channel (admins; a private account also its owner): no new messages
    /// arrive through it, its history stays. An inbox left without team e-mail gets its
    /// fallback address back.
    async fn disconnect_channel(
        &self,
        ctx: &Context<'_>,
        input: DisconnectChannelInput,
    ) -> async_graphql::Result<DisconnectChannelPayload> {
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let command = ChannelCommand::Disconnect { channel_id };
        let executed = channel_command(ctx, input.client_mutation_id, command, &[]).await?;
        let channel = channel_after(ctx, &executed, Some(channel_id)).await?;
        Ok(DisconnectChannelPayload {
            result: executed.result,
            channel,
        })
    }

    /// Moves a channel to another inbox (admins): new conversations start there, existing ones
    /// stay where they started.
    async fn move_channel(
        &self,
        ctx: &Context<'_>,
        input: MoveChannelInput,
    ) -> async_graphql::Result<MoveChannelPayload> {
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let inbox_id = ids::decode(&input.inbox_id, Kind::Inbox, "inboxId")?;
        let command = ChannelCommand::MoveToInbox {
            channel_id,
            inbox_id,
        };
        let executed = channel_command(ctx, input.client_mutation_id, command, &[]).await?;
        let channel = channel_after(ctx, &executed, Some(channel_id)).await?;
        Ok(MoveChannelPayload {
            result: executed.result,
            channel,
        })
    }

    /// Sets the routing rule of an inbox or a channel (admins), replacing its previous one.
    async fn set_routing_rule(
        &self,
        ctx: &Context<'_>,
        input: SetRoutingRuleInput,
    ) -> async_graphql::Result<SetRoutingRulePayload> {
        let scope = match ids::decode_any(&input.scope_id, "scopeId")? {
            (Kind::Inbox, id) => RuleScope::Inbox { id },
            (Kind::Channel, id) => RuleScope::Channel { id },
            (kind, _) => {
                return Err(ApiError::bad_input(
                    "scopeId",
                    format!("expected an Inbox or Channel id, got a {} id", kind.name()),
                )
                .into());
            }
        };
        let targets = input
            .target_ids
            .iter()
            .map(|id| decode_member(id, "targetIds"))
            .collect::<ApiResult<Vec<_>>>()?;
        let bot_id = decode_opt(input.bot_id.as_ref(), Kind::Bot, "botId")?;
        let command = ChannelCommand::SetRoutingRule {
            rule_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            scope: scope.clone(),
            strategy: input.strategy.into(),
            targets,
            bot_id,
        };
        let executed = channel_command(
            ctx,
            input.client_mutation_id,
            command,
            &[("targets", "targetIds")],
        )
        .await?;
        let routing_rule = if executed.ok() {
            let view = state(ctx).directory().await?;
            view.directory
                .routing_rules
                .get(&scope)
                .cloned()
                .map(RoutingRule)
        } else {
            None
        };
        Ok(SetRoutingRulePayload {
            result: executed.result,
            routing_rule,
        })
    }

    /// Removes a routing rule (admins): new conversations of its scope stay unassigned, or
    /// follow the inbox's rule for a channel's.
    async fn remove_routing_rule(
        &self,
        ctx: &Context<'_>,
        input: RemoveRoutingRuleInput,
    ) -> async_graphql::Result<RemoveRoutingRulePayload> {
        let rule_id = ids::decode(&input.routing_rule_id, Kind::RoutingRule, "routingRuleId")?;
        let command = ChannelCommand::RemoveRoutingRule { rule_id };
        let executed = channel_command(
            ctx,
            input.client_mutation_id,
            command,
            &[("ruleId", "routingRuleId")],
        )
        .await?;
        Ok(RemoveRoutingRulePayload {
            removed_routing_rule_id: executed.ok().then(|| input.routing_rule_id.clone()),
            result: executed.result,
        })
    }

    /// Switches an e-mail channel's built-in filters on or off (admins).
    async fn set_built_in_email_filters(
        &self,
        ctx: &Context<'_>,
        input: SetBuiltInEmailFiltersInput,
    ) -> async_graphql::Result<SetBuiltInEmailFiltersPayload> {
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let command = ChannelCommand::SetBuiltInEmailFilters {
            channel_id,
            automated_replies: input.automated_replies,
            bulk_mail: input.bulk_mail,
            role_addresses: input.role_addresses,
            unsubscribe_header: input.unsubscribe_header,
        };
        let executed = channel_command(ctx, input.client_mutation_id, command, &[]).await?;
        let (channel, built_in_filters) = if executed.ok() {
            let view = state(ctx).directory().await?;
            let filters = view.directory.email_filters(channel_id).map(|f| {
                let b = f.built_in;
                BuiltInEmailFilters {
                    automated_replies: b.automated_replies,
                    bulk_mail: b.bulk_mail,
                    role_addresses: b.role_addresses,
                    unsubscribe_header: b.unsubscribe_header,
                }
            });
            (channel_in(&view.directory, channel_id), filters)
        } else {
            (None, None)
        };
        Ok(SetBuiltInEmailFiltersPayload {
            result: executed.result,
            channel,
            built_in_filters,
        })
    }

    /// Adds an allow or deny rule to an e-mail channel (admins). Mail matching a deny rule goes
    /// to the Filtered view, where it can be restored.
    async fn add_email_filter_rule(
        &self,
        ctx: &Context<'_>,
        input: AddEmailFilterRuleInput,
    ) -> async_graphql::Result<AddEmailFilterRulePayload> {
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let command = ChannelCommand::AddEmailFilterRule {
            rule_id: minted_id(ctx, input.client_mutation_id.as_deref()).await?,
            channel_id,
            action: input.action.into(),
            pattern: sender_pattern(&input.pattern),
        };
        let executed = channel_command(ctx, input.client_mutation_id, command, &[]).await?;
        let email_filter_rule = if executed.ok() {
            // The rule for this pattern, which is also the first call's after a repeat.
            let wanted = sender_pattern(&input.pattern);
            let view = state(ctx).directory().await?;
            view.directory.email_filters(channel_id).and_then(|f| {
                f.rules
                    .iter()
                    .find(|r| r.pattern == wanted)
                    .map(|rule| EmailFilterRule {
                        rule: rule.clone(),
                        channel_id,
                    })
            })
        } else {
            None
        };
        Ok(AddEmailFilterRulePayload {
            result: executed.result,
            email_filter_rule,
        })
    }

    /// Removes an allow or deny rule from its e-mail channel (admins).
    async fn remove_email_filter_rule(
        &self,
        ctx: &Context<'_>,
        input: RemoveEmailFilterRuleInput,
    ) -> async_graphql::Result<RemoveEmailFilterRulePayload> {
        let field = "emailFilterRuleId";
        let rule_id = ids::decode(&input.email_filter_rule_id, Kind::EmailFilterRule, field)?;
        let me = viewer(ctx).await?.user_id;
        let channel_id = {
            let view = state(ctx).directory().await?;
            view.directory
                .email_filters
                .iter()
                .find(|(_, f)| f.rules.iter().any(|r| r.id == rule_id))
                .map(|(channel_id, _)| *channel_id)
        };
        let repeat = match &input.client_mutation_id {
            Some(key) if channel_id.is_none() => {
                state(ctx)
                    .service
                    .key_used(&proto_events::Actor::User { id: me }, key)
                    .await?
            }
            _ => false,
        };
        // A repeat of a removal finds the rule gone: the service answers it with the first
        // call's outcome before looking for the channel.
        let channel_id = match channel_id {
            Some(id) => id,
            None if repeat => Uuid::nil(),
            None => return Err(ApiError::not_found("e-mail filter rule").into()),
        };
        let command = ChannelCommand::RemoveEmailFilterRule {
            rule_id,
            channel_id,
        };
        let executed = channel_command(
            ctx,
            input.client_mutation_id,
            command,
            &[("ruleId", "emailFilterRuleId")],
        )
        .await?;
        let channel = channel_after(ctx, &executed, executed.created_id("channel")).await?;
        Ok(RemoveEmailFilterRulePayload {
            removed_email_filter_rule_id: executed.ok().then(|| input.email_filter_rule_id.clone()),
            result: executed.result,
            channel,
        })
    }
}
