//! Channel commands: connecting channels to inboxes, disconnecting and moving them, their routing
//! rules and e-mail filter rules, and the automatic fallback address of an inbox without team
//! e-mail. Decided against the [`Directory`] alone; each command targets one stream, returned
//! with its events in a [`Decision`].
//!
//! Streams: `channel-<id>` for everything about a channel (its connection, its routing rule, its
//! filters; a fallback address is a channel too), `inbox-<id>` for an inbox-wide routing rule.
//!
//! Who may do what: admins and super admins do everything but assign fallback addresses; a user
//! who writes (an agent) may connect their *own* private e-mail account to an inbox they see, and
//! disconnect it again; only the system actor assigns fallback addresses (the reactor that
//! watches inboxes, see [`fallback_address_needed`]), and it may do everything else too
//! (bootstrap, CLI, seeding); auditors, analysts, contacts, bots and channels do none of it.
//!
//! An e-mail channel starts with every built-in filter switched on: connecting one (or assigning
//! a fallback address) records a [`BuiltInEmailFiltersSet`] right after the connection, so the
//! defaults are part of the history rather than of this code.
//!
//! One address per connected channel is checked against the directory here. Two commands racing
//! on different channel streams can both pass that check, so the command service also claims the
//! address in its reservation stream: see [`address_claim`].

use proto_events::event::{
    BuiltInEmailFiltersSet, ChannelConfig, ChannelConnected, ChannelDisconnected, ChannelKind,
    ChannelMoved, EmailAccess, EmailFilterRuleAdded, EmailFilterRuleRemoved, EmailServersSet,
    FallbackAddressAssigned, FilterAction, ImapServer, Member, MessengerPageSet,
    RoutingRuleRemoved, RoutingRuleSet, RoutingStrategy, RuleScope, SenderPattern, ServerSecurity,
    SmtpServer, UniqueScope, UniqueValueReleased, UniqueValueReserved,
};
use proto_events::{Actor, DomainEvent, streams};
use uuid::Uuid;

use crate::chat::{self, ChatWidgetSettings};
use crate::chatbot::{self, ChatBotSettings};
use crate::directory::{Channel, Directory, User};
use crate::form::{self, FormSettings};
use crate::setup::Decision;
use crate::validate::{self, name};
use crate::{Context, DomainError};

/// A change to channels, routing rules or e-mail filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelCommand {
    /// Connect a team e-mail account: a shared address (admins only) or a user's own private
    /// account (that user, or an admin).
    ConnectEmail {
        channel_id: Uuid,
        inbox_id: Uuid,
        address: String,
        access: EmailAccess,
    },
    /// Connect a website chat widget.
    ConnectChat {
        channel_id: Uuid,
        inbox_id: Uuid,
        name: String,
    },
    /// Connect a Facebook Messenger page.
    ConnectMessenger {
        channel_id: Uuid,
        inbox_id: Uuid,
        page_id: String,
        page_name: String,
    },
    /// Connect a web form.
    ConnectForm {
        channel_id: Uuid,
        inbox_id: Uuid,
        name: String,
    },
    /// Configure a form channel's fields, allowed origins and honeypot (admins only), replacing
    /// what was configured. `new_public_key` (random, from the caller) becomes the form's key
    /// the first time; afterwards the form keeps its key.
    ConfigureForm {
        channel_id: Uuid,
        new_public_key: String,
        settings: FormSettings,
    },
    /// Configure a chat channel's bot (admins only), replacing what was configured.
    ConfigureChatBot {
        channel_id: Uuid,
        settings: ChatBotSettings,
    },
    /// Configure a chat channel's widget: its allowed origins, team name and reply-time
    /// wording (admins only), replacing what was configured. `new_public_key` (random, from the
    /// caller) becomes the widget's key the first time; afterwards the widget keeps its key.
    ConfigureChatWidget {
        channel_id: Uuid,
        new_public_key: String,
        settings: ChatWidgetSettings,
    },
    /// Stop receiving through a channel; its history stays.
    Disconnect { channel_id: Uuid },
    /// Feed another inbox from now on; existing conversations stay where they started.
    MoveToInbox { channel_id: Uuid, inbox_id: Uuid },
    /// Set the routing rule of an inbox or channel, replacing the scope's previous rule.
    SetRoutingRule {
        rule_id: Uuid,
        scope: RuleScope,
        strategy: RoutingStrategy,
        targets: Vec<Member>,
        bot_id: Option<Uuid>,
    },
    /// Remove a routing rule.
    RemoveRoutingRule { rule_id: Uuid },
    /// Switch an e-mail channel's built-in filters on or off (all four at once).
    SetBuiltInEmailFilters {
        channel_id: Uuid,
        automated_replies: bool,
        bulk_mail: bool,
        role_addresses: bool,
        unsubscribe_header: bool,
    },
    /// Add an allow or deny rule to an e-mail channel.
    AddEmailFilterRule {
        rule_id: Uuid,
        channel_id: Uuid,
        action: FilterAction,
        pattern: SenderPattern,
    },
    /// Remove an allow or deny rule from an e-mail channel.
    RemoveEmailFilterRule { rule_id: Uuid, channel_id: Uuid },
    /// Set how an e-mail channel reaches outside mail servers: its IMAP mailbox, its own SMTP
    /// server, its HTTP ingest secret. Each is kept, cleared or replaced; a password left `None`
    /// in a replacement keeps the current one. Secrets are sealed by the caller beforehand and
    /// named by id (see `EmailServersSet`).
    SetEmailServers {
        channel_id: Uuid,
        imap: Setting<ImapSettings>,
        smtp: Setting<SmtpSettings>,
        ingest_secret: Setting<Uuid>,
    },
    /// Set a Messenger channel's page access token and human-agent tag (admins only). The token
    /// is sealed by the caller beforehand and named by id; `Keep` keeps the current one. `None`
    /// for the tag keeps the current setting.
    SetMessengerPage {
        channel_id: Uuid,
        page_token: Setting<Uuid>,
        human_agent_tag: Option<bool>,
    },
    /// Give an inbox without team e-mail its automatic fallback address (system actor only).
    AssignFallbackAddress {
        channel_id: Uuid,
        inbox_id: Uuid,
        address: String,
    },
}

/// What a command does to one setting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Setting<T> {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Remove it.
    Clear,
    /// Replace it.
    Set(T),
}

/// An IMAP mailbox to fetch a channel's mail from, as a command sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub security: ServerSecurity,
    pub username: String,
    /// The sealed password's id; `None` keeps the current one (required when there is none).
    pub password_secret: Option<Uuid>,
    /// `None`: `INBOX`.
    pub mailbox: Option<String>,
}

/// An SMTP server to send a channel's replies through, as a command sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: ServerSecurity,
    /// The login for `AUTH`; `None`: the server takes mail without one.
    pub username: Option<String>,
    /// The sealed password's id; `None` keeps the current one (required with a username when
    /// there is none).
    pub password_secret: Option<Uuid>,
}

/// Whether `inbox_id` should be given a fallback address: it exists, has no team e-mail (a
/// connected shared address) and no connected fallback yet. The reactor that asks this sends
/// [`ChannelCommand::AssignFallbackAddress`] when it is true.
pub fn fallback_address_needed(directory: &Directory, inbox_id: Uuid) -> bool {
    directory.inboxes.contains_key(&inbox_id)
        && !directory.inbox_has_team_email(inbox_id)
        && directory.fallback_address(inbox_id).is_none()
}

/// The reservation that goes with a channel decision, if it takes or frees an e-mail address:
/// a [`UniqueValueReserved`] (connecting an e-mail channel, assigning a fallback address) or a
/// [`UniqueValueReleased`] (disconnecting an e-mail channel) in the address's reservation stream
/// (`unique-channel-email-<address>`). `directory` is the one the decision was made against.
///
/// The command service appends a reservation before the channel's events, expecting the
/// reservation stream to be new or to end with a release; if that append loses, another channel
/// took the address meanwhile and the command is answered like the directory's `TAKEN`.
pub fn address_claim(directory: &Directory, decision: &Decision) -> Option<Decision> {
    let scope = UniqueScope::ChannelEmail;
    let claim = |address: &str, event: DomainEvent| Decision {
        stream: streams::unique(scope, address),
        events: vec![event],
    };
    decision.events.iter().find_map(|event| match event {
        DomainEvent::ChannelConnected(ChannelConnected {
            config: ChannelConfig::Email { address, .. },
            ..
        })
        | DomainEvent::FallbackAddressAssigned(FallbackAddressAssigned { address, .. }) => {
            Some(claim(
                address,
                UniqueValueReserved {
                    scope,
                    value: scope.normalise(address),
                    owner_stream: decision.stream.clone(),
                }
                .into(),
            ))
        }
        DomainEvent::ChannelDisconnected(e) => {
            match &directory.channels.get(&e.channel_id)?.config {
                ChannelConfig::Email { address, .. } => Some(claim(
                    address,
                    UniqueValueReleased {
                        scope,
                        value: scope.normalise(address),
                        owner_stream: decision.stream.clone(),
                    }
                    .into(),
                )),
                _ => None,
            }
        }
        _ => None,
    })
}

/// Decides a channel command: the events it produces and their stream, or why it is refused.
pub fn decide(command: &ChannelCommand, ctx: &Context<'_>) -> Result<Decision, DomainError> {
    use ChannelCommand as C;
    let d = ctx.directory;
    let caller = caller(d, ctx.actor)?;
    match command {
        C::ConnectEmail {
            channel_id,
            inbox_id,
            address,
            access,
        } => {
            match access {
                EmailAccess::Shared => require_admin(&caller)?,
                EmailAccess::Private { owner_user_id } => {
                    require_admin_or(&caller, *owner_user_id)?;
                }
            }
            new_channel(d, *channel_id)?;
            inbox(d, *inbox_id)?;
            if let EmailAccess::Private { owner_user_id } = access {
                let owner = d
                    .user(*owner_user_id)
                    .ok_or(DomainError::NotFound { what: "user" })?;
                if !owner.can_write() {
                    return Err(DomainError::rejected(
                        "NOT_AN_AGENT",
                        Some("access"),
                        "auditors and analysts connect no account",
                    ));
                }
                owner_sees(d, owner.id, *inbox_id)?;
            }
            let address = free_address(d, address)?;
            Ok(Decision {
                stream: streams::channel(*channel_id),
                events: vec![
                    ChannelConnected {
                        channel_id: *channel_id,
                        inbox_id: *inbox_id,
                        config: ChannelConfig::Email {
                            address,
                            access: access.clone(),
                        },
                    }
                    .into(),
                    default_filters(*channel_id).into(),
                ],
            })
        }
        C::ConnectChat {
            channel_id,
            inbox_id,
            name: chat_name,
        } => {
            require_admin(&caller)?;
            connect(
                d,
                *channel_id,
                *inbox_id,
                ChannelConfig::Chat {
                    name: name("name", chat_name)?,
                },
            )
        }
        C::ConnectMessenger {
            channel_id,
            inbox_id,
            page_id,
            page_name,
        } => {
            require_admin(&caller)?;
            let page_id = page_id.trim();
            if page_id.is_empty() || page_id.chars().any(char::is_whitespace) {
                return Err(DomainError::invalid(
                    "pageId",
                    "must be a Facebook page id, without spaces",
                ));
            }
            let taken = d.channels.values().any(|c| {
                c.connected
                    && matches!(&c.config, ChannelConfig::Messenger { page_id: p, .. } if p == page_id)
            });
            if taken {
                return Err(DomainError::rejected(
                    "TAKEN",
                    Some("pageId"),
                    format!("page {page_id} is already connected"),
                ));
            }
            connect(
                d,
                *channel_id,
                *inbox_id,
                ChannelConfig::Messenger {
                    page_id: page_id.to_owned(),
                    page_name: name("pageName", page_name)?,
                },
            )
        }
        C::ConnectForm {
            channel_id,
            inbox_id,
            name: form_name,
        } => {
            require_admin(&caller)?;
            connect(
                d,
                *channel_id,
                *inbox_id,
                ChannelConfig::Form {
                    name: name("name", form_name)?,
                },
            )
        }
        C::ConfigureForm {
            channel_id,
            new_public_key,
            settings,
        } => {
            require_admin(&caller)?;
            let channel = connected_of_kind(d, *channel_id, ChannelKind::Form)?;
            let current_key = channel.form.as_ref().map(|f| f.public_key.as_str());
            one(
                streams::channel(*channel_id),
                form::configured(*channel_id, current_key, new_public_key, settings)?,
            )
        }
        C::ConfigureChatBot {
            channel_id,
            settings,
        } => {
            require_admin(&caller)?;
            let channel = connected(d, *channel_id)?;
            if !matches!(channel.config, ChannelConfig::Chat { .. }) {
                return Err(DomainError::rejected(
                    "NOT_CHAT",
                    Some("channelId"),
                    "bots answer on chat channels only",
                ));
            }
            if !d.bots.contains_key(&settings.bot_id) {
                return Err(DomainError::NotFound { what: "bot" });
            }
            one(
                streams::channel(*channel_id),
                chatbot::configured(*channel_id, settings)?,
            )
        }
        C::ConfigureChatWidget {
            channel_id,
            new_public_key,
            settings,
        } => {
            require_admin(&caller)?;
            let channel = connected_of_kind(d, *channel_id, ChannelKind::Chat)?;
            let current_key = channel.chat_widget.as_ref().map(|w| w.public_key.as_str());
            one(
                streams::channel(*channel_id),
                chat::configured(*channel_id, current_key, new_public_key, settings)?,
            )
        }
        C::Disconnect { channel_id } => {
            let channel = channel(d, *channel_id)?;
            match channel.private_owner() {
                Some(owner) => require_admin_or(&caller, owner)?,
                None => require_admin(&caller)?,
            }
            not_fallback(d, channel)?;
            if !channel.connected {
                return Err(DomainError::rejected(
                    "ALREADY_DISCONNECTED",
                    Some("channelId"),
                    "this channel is already disconnected",
                ));
            }
            one(
                streams::channel(*channel_id),
                ChannelDisconnected {
                    channel_id: *channel_id,
                    inbox_id: channel.inbox_id,
                },
            )
        }
        C::SetEmailServers {
            channel_id,
            imap,
            smtp,
            ingest_secret,
        } => {
            let channel = email_channel(d, *channel_id)?;
            match channel.private_owner() {
                Some(owner) => require_admin_or(&caller, owner)?,
                None => require_admin(&caller)?,
            }
            if d.is_fallback(channel.id) && !matches!(imap, Setting::Keep | Setting::Clear) {
                return Err(DomainError::rejected(
                    "FALLBACK_ADDRESS",
                    Some("imap"),
                    "an inbox's fallback address receives its mail here; it has no mailbox elsewhere",
                ));
            }
            let current = &channel.servers;
            Ok(Decision {
                stream: streams::channel(*channel_id),
                events: vec![
                    EmailServersSet {
                        channel_id: *channel_id,
                        imap: match imap {
                            Setting::Keep => current.imap.clone(),
                            Setting::Clear => None,
                            Setting::Set(new) => Some(imap_server(new, current.imap.as_ref())?),
                        },
                        smtp: match smtp {
                            Setting::Keep => current.smtp.clone(),
                            Setting::Clear => None,
                            Setting::Set(new) => Some(smtp_server(new, current.smtp.as_ref())?),
                        },
                        ingest_secret: match ingest_secret {
                            Setting::Keep => current.ingest_secret,
                            Setting::Clear => None,
                            Setting::Set(id) => Some(*id),
                        },
                    }
                    .into(),
                ],
            })
        }
        C::SetMessengerPage {
            channel_id,
            page_token,
            human_agent_tag,
        } => {
            require_admin(&caller)?;
            let channel = connected(d, *channel_id)?;
            if !matches!(channel.config, ChannelConfig::Messenger { .. }) {
                return Err(DomainError::rejected(
                    "NOT_MESSENGER",
                    Some("channelId"),
                    "this applies to Messenger channels only",
                ));
            }
            let current = channel.messenger;
            one(
                streams::channel(*channel_id),
                MessengerPageSet {
                    channel_id: *channel_id,
                    page_token_secret: match page_token {
                        Setting::Keep => current.page_token_secret,
                        Setting::Clear => None,
                        Setting::Set(id) => Some(*id),
                    },
                    human_agent_tag: human_agent_tag.unwrap_or(current.human_agent_tag),
                },
            )
        }
        C::MoveToInbox {
            channel_id,
            inbox_id,
        } => {
            require_admin(&caller)?;
            let channel = connected(d, *channel_id)?;
            inbox(d, *inbox_id)?;
            not_fallback(d, channel)?;
            if channel.inbox_id == *inbox_id {
                return Err(DomainError::rejected(
                    "UNCHANGED",
                    Some("inboxId"),
                    "the channel already feeds this inbox",
                ));
            }
            if let Some(owner) = channel.private_owner() {
                owner_sees(d, owner, *inbox_id)?;
            }
            one(
                streams::channel(*channel_id),
                ChannelMoved {
                    channel_id: *channel_id,
                    from_inbox_id: channel.inbox_id,
                    to_inbox_id: *inbox_id,
                },
            )
        }
        C::SetRoutingRule {
            rule_id,
            scope,
            strategy,
            targets,
            bot_id,
        } => {
            require_admin(&caller)?;
            set_routing_rule(d, *rule_id, scope, *strategy, targets, *bot_id)
        }
        C::RemoveRoutingRule { rule_id } => {
            require_admin(&caller)?;
            let rule = d
                .routing_rule_by_id(*rule_id)
                .ok_or(DomainError::NotFound {
                    what: "routing rule",
                })?;
            one(
                scope_stream(&rule.scope),
                RoutingRuleRemoved {
                    rule_id: *rule_id,
                    scope: rule.scope.clone(),
                },
            )
        }
        C::SetBuiltInEmailFilters {
            channel_id,
            automated_replies,
            bulk_mail,
            role_addresses,
            unsubscribe_header,
        } => {
            require_admin(&caller)?;
            email_channel(d, *channel_id)?;
            one(
                streams::channel(*channel_id),
                BuiltInEmailFiltersSet {
                    channel_id: *channel_id,
                    automated_replies: *automated_replies,
                    bulk_mail: *bulk_mail,
                    role_addresses: *role_addresses,
                    unsubscribe_header: *unsubscribe_header,
                },
            )
        }
        C::AddEmailFilterRule {
            rule_id,
            channel_id,
            action,
            pattern,
        } => {
            require_admin(&caller)?;
            email_channel(d, *channel_id)?;
            if d.email_filters
                .values()
                .any(|f| f.rules.iter().any(|r| r.id == *rule_id))
            {
                return Err(DomainError::rejected(
                    "ALREADY_EXISTS",
                    Some("ruleId"),
                    "this filter rule already exists",
                ));
            }
            let pattern = sender_pattern(pattern)?;
            if d.email_filters(*channel_id)
                .is_some_and(|f| f.rules.iter().any(|r| r.pattern == pattern))
            {
                return Err(DomainError::rejected(
                    "DUPLICATE",
                    Some("pattern"),
                    "the channel already has a rule for these senders; remove it first",
                ));
            }
            one(
                streams::channel(*channel_id),
                EmailFilterRuleAdded {
                    rule_id: *rule_id,
                    channel_id: *channel_id,
                    action: *action,
                    pattern,
                },
            )
        }
        C::RemoveEmailFilterRule {
            rule_id,
            channel_id,
        } => {
            require_admin(&caller)?;
            channel(d, *channel_id)?;
            if !d
                .email_filters(*channel_id)
                .is_some_and(|f| f.rules.iter().any(|r| r.id == *rule_id))
            {
                return Err(DomainError::NotFound {
                    what: "filter rule",
                });
            }
            one(
                streams::channel(*channel_id),
                EmailFilterRuleRemoved {
                    rule_id: *rule_id,
                    channel_id: *channel_id,
                },
            )
        }
        C::AssignFallbackAddress {
            channel_id,
            inbox_id,
            address,
        } => {
            if !matches!(caller, Caller::System) {
                return Err(DomainError::forbidden(
                    "fallback addresses are assigned automatically",
                ));
            }
            new_channel(d, *channel_id)?;
            inbox(d, *inbox_id)?;
            if d.inbox_has_team_email(*inbox_id) {
                return Err(DomainError::rejected(
                    "HAS_TEAM_EMAIL",
                    Some("inboxId"),
                    "this inbox has team e-mail and needs no fallback address",
                ));
            }
            if d.fallback_address(*inbox_id).is_some() {
                return Err(DomainError::rejected(
                    "FALLBACK_EXISTS",
                    Some("inboxId"),
                    "this inbox already has a fallback address",
                ));
            }
            let address = free_address(d, address)?;
            Ok(Decision {
                stream: streams::channel(*channel_id),
                events: vec![
                    FallbackAddressAssigned {
                        channel_id: *channel_id,
                        inbox_id: *inbox_id,
                        address,
                    }
                    .into(),
                    default_filters(*channel_id).into(),
                ],
            })
        }
    }
}

/// The built-in filters a new e-mail channel starts with: all on. Nothing is lost by it
/// (filtered mail is kept and can be restored) and known contacts are never caught by them.
fn default_filters(channel_id: Uuid) -> BuiltInEmailFiltersSet {
    BuiltInEmailFiltersSet {
        channel_id,
        automated_replies: true,
        bulk_mail: true,
        role_addresses: true,
        unsubscribe_header: true,
    }
}

fn set_routing_rule(
    d: &Directory,
    rule_id: Uuid,
    scope: &RuleScope,
    strategy: RoutingStrategy,
    targets: &[Member],
    bot_id: Option<Uuid>,
) -> Result<Decision, DomainError> {
    // The inbox whose conversations the rule routes, and whether they are private to someone.
    let (inbox_id, private_owner) = match scope {
        RuleScope::Inbox { id } => (inbox(d, *id)?.id, None),
        RuleScope::Channel { id } => {
            let channel = connected(d, *id)?;
            (channel.inbox_id, channel.private_owner())
        }
    };
    if d.routing_rule_by_id(rule_id)
        .is_some_and(|rule| rule.scope != *scope)
    {
        return Err(DomainError::rejected(
            "ALREADY_EXISTS",
            Some("ruleId"),
            "this rule id belongs to a rule of another inbox or channel",
        ));
    }
    match (strategy, bot_id) {
        (RoutingStrategy::BotFirst, None) => {
            return Err(DomainError::invalid(
                "botId",
                "a bot-first rule names the bot that answers first",
            ));
        }
        (RoutingStrategy::BotFirst, Some(bot)) => {
            if !d.bots.contains_key(&bot) {
                return Err(DomainError::NotFound { what: "bot" });
            }
        }
        (_, Some(_)) => {
            return Err(DomainError::invalid(
                "botId",
                "only bot-first rules name a bot",
            ));
        }
        (_, None) => {}
    }
    let mut unique: Vec<Member> = Vec::with_capacity(targets.len());
    for target in targets {
        if !unique.contains(target) {
            unique.push(target.clone());
        }
    }
    if unique.is_empty()
        && matches!(
            strategy,
            RoutingStrategy::RoundRobin | RoutingStrategy::LeastLoaded
        )
    {
        return Err(DomainError::invalid(
            "targets",
            "round-robin and least-loaded rules pick among at least one user or team",
        ));
    }
    for target in &unique {
        let allowed = match target {
            Member::User { id } => {
                d.user(*id).ok_or(DomainError::NotFound { what: "user" })?;
                d.can_work_conversation(*id, inbox_id, private_owner)
            }
            Member::Team { id } => {
                if !d.teams.contains_key(id) {
                    return Err(DomainError::NotFound { what: "team" });
                }
                private_owner.is_none() && d.team_can_see_inbox(*id, inbox_id)
            }
        };
        if !allowed {
            return Err(DomainError::rejected(
                "NO_ACCESS",
                Some("targets"),
                "every target must be able to work the conversations the rule routes",
            ));
        }
    }
    one(
        scope_stream(scope),
        RoutingRuleSet {
            rule_id,
            scope: scope.clone(),
            strategy,
            targets: unique,
            bot_id,
        },
    )
}

fn scope_stream(scope: &RuleScope) -> String {
    match scope {
        RuleScope::Inbox { id } => streams::inbox(*id),
        RuleScope::Channel { id } => streams::channel(*id),
    }
}

fn one(stream: String, event: impl Into<DomainEvent>) -> Result<Decision, DomainError> {
    Ok(Decision {
        stream,
        events: vec![event.into()],
    })
}

/// A chat, Messenger or form channel's connection, after the common checks.
fn connect(
    d: &Directory,
    channel_id: Uuid,
    inbox_id: Uuid,
    config: ChannelConfig,
) -> Result<Decision, DomainError> {
    new_channel(d, channel_id)?;
    inbox(d, inbox_id)?;
    one(
        streams::channel(channel_id),
        ChannelConnected {
            channel_id,
            inbox_id,
            config,
        },
    )
}

/// What kind of caller this is, as far as channels are concerned.
enum Caller<'d> {
    System,
    User(&'d User),
}

fn caller<'d>(directory: &'d Directory, actor: &Actor) -> Result<Caller<'d>, DomainError> {
    match actor {
        Actor::System { .. } => Ok(Caller::System),
        Actor::User { id } => {
            let user = directory
                .user(*id)
                .ok_or_else(|| DomainError::forbidden("unknown user"))?;
            if user.can_write() {
                Ok(Caller::User(user))
            } else {
                Err(DomainError::forbidden(
                    "auditors and analysts change nothing",
                ))
            }
        }
        _ => Err(DomainError::forbidden(
            "only users and the system change channels",
        )),
    }
}

/// The connected channel `id` if it is of `kind`; `NOT_FORM` or `NOT_CHAT` otherwise (the
/// settings that only one kind of channel has).
fn connected_of_kind(d: &Directory, id: Uuid, kind: ChannelKind) -> Result<&Channel, DomainError> {
    let channel = connected(d, id)?;
    if channel.config.kind() == kind {
        return Ok(channel);
    }
    Err(match kind {
        ChannelKind::Chat => DomainError::rejected(
            "NOT_CHAT",
            Some("channelId"),
            "this applies to chat channels only",
        ),
        _ => DomainError::rejected(
            "NOT_FORM",
            Some("channelId"),
            "this applies to form channels only",
        ),
    })
}

fn require_admin(caller: &Caller<'_>) -> Result<(), DomainError> {
    match caller {
        Caller::System => Ok(()),
        Caller::User(u) if u.is_admin() => Ok(()),
        Caller::User(_) => Err(DomainError::forbidden(
            "only admins change channels and their rules",
        )),
    }
}

/// Admins, or `user_id` acting on their own private account.
fn require_admin_or(caller: &Caller<'_>, user_id: Uuid) -> Result<(), DomainError> {
    match caller {
        Caller::User(u) if u.id == user_id => Ok(()),
        Caller::User(u) if !u.is_admin() => Err(DomainError::forbidden(
            "users connect and disconnect only their own private accounts",
        )),
        _ => require_admin(caller),
    }
}

fn inbox(d: &Directory, id: Uuid) -> Result<&crate::directory::Inbox, DomainError> {
    d.inboxes
        .get(&id)
        .ok_or(DomainError::NotFound { what: "inbox" })
}

fn channel(d: &Directory, id: Uuid) -> Result<&Channel, DomainError> {
    d.channels
        .get(&id)
        .ok_or(DomainError::NotFound { what: "channel" })
}

/// A channel that exists and is connected: rules and moves make no sense for one that is not.
fn connected(d: &Directory, id: Uuid) -> Result<&Channel, DomainError> {
    let channel = channel(d, id)?;
    if channel.connected {
        Ok(channel)
    } else {
        Err(DomainError::rejected(
            "DISCONNECTED",
            Some("channelId"),
            "this channel is disconnected",
        ))
    }
}

/// A connected e-mail channel: the only kind with e-mail filters.
fn email_channel(d: &Directory, id: Uuid) -> Result<&Channel, DomainError> {
    let channel = connected(d, id)?;
    if matches!(channel.config, ChannelConfig::Email { .. }) {
        Ok(channel)
    } else {
        Err(DomainError::rejected(
            "NOT_EMAIL",
            Some("channelId"),
            "this applies to e-mail channels only",
        ))
    }
}

/// The longest host name (RFC 1035), user name and mailbox name accepted.
const MAX_HOST: usize = 253;
const MAX_LOGIN: usize = 320;
const MAX_MAILBOX: usize = 200;

/// A host name or IP address: no spaces, slashes, colons outside an IPv6 address, or controls.
fn host(field: &'static str, value: &str) -> Result<String, DomainError> {
    let value = value.trim().trim_start_matches('[').trim_end_matches(']');
    let ipv6 = value.parse::<std::net::Ipv6Addr>().is_ok();
    if value.is_empty()
        || value.len() > MAX_HOST
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '?' | '#'))
        || (value.contains(':') && !ipv6)
    {
        return Err(DomainError::invalid(
            field,
            "must be a host name or IP address, without a scheme or port",
        ));
    }
    // Resolvers read `2852039166`, `0251.0376.0251.0376` or `0xa9fea9fe` as IPv4 addresses
    // that `IpAddr` does not parse: a name whose last label is numeric must be a plain address.
    let last = value.rsplit('.').next().unwrap_or_default();
    let numeric = !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || last.to_ascii_lowercase().starts_with("0x"));
    if numeric && value.parse::<std::net::IpAddr>().is_err() {
        return Err(DomainError::invalid(
            field,
            "must be a host name or an IP address written plainly (like 192.0.2.10)",
        ));
    }
    if let Ok(ip) = value.parse::<std::net::IpAddr>()
        && !mail_server_address(ip)
    {
        return Err(DomainError::invalid(
            field,
            "must not be a link-local, multicast, broadcast or unspecified address",
        ));
    }
    Ok(value.to_ascii_lowercase())
}

/// Whether a mail server may be at `ip`: not link-local (where cloud metadata services
/// answer), multicast, broadcast or unspecified. Loopback and private networks are allowed: a
/// self-hosted mail server often lives there.
pub fn mail_server_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            !(v4.is_link_local() || v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified())
        }
        std::net::IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            let mapped = v6
                .to_ipv4_mapped()
                .is_some_and(|v4| !mail_server_address(v4.into()));
            !(link_local || mapped || v6.is_multicast() || v6.is_unspecified())
        }
    }
}

fn port(field: &'static str, value: u16) -> Result<u16, DomainError> {
    if value == 0 {
        Err(DomainError::invalid(field, "must be between 1 and 65535"))
    } else {
        Ok(value)
    }
}

/// A login or mailbox name: not blank, no control characters, bounded.
fn login(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    if value.trim().is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("must be 1 to {max} bytes without control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Whether a saved password may be used with new settings: only against the same server and
/// login, protected at least as well, so that nobody can send a saved password elsewhere, or in
/// the clear, without knowing it.
fn same_endpoint(
    (host, port, security, username): (&str, u16, ServerSecurity, Option<&str>),
    (saved_host, saved_port, saved_security, saved_username): (
        &str,
        u16,
        ServerSecurity,
        Option<&str>,
    ),
) -> bool {
    let strength = |s: ServerSecurity| match s {
        ServerSecurity::Plain => 0,
        ServerSecurity::StartTls | ServerSecurity::Tls => 1,
    };
    let bare = |h: &str| {
        h.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    };
    bare(host) == bare(saved_host)
        && port == saved_port
        && username == saved_username
        && strength(security) >= strength(saved_security)
}

/// Whether the password saved with `current` may be used for `new` (see `same_endpoint`).
pub fn imap_keeps_password(new: &ImapSettings, current: &ImapServer) -> bool {
    same_endpoint(
        (&new.host, new.port, new.security, Some(&new.username)),
        (
            &current.host,
            current.port,
            current.security,
            Some(&current.username),
        ),
    )
}

/// Whether the password saved with `current` may be used for `new` (see `same_endpoint`).
pub fn smtp_keeps_password(new: &SmtpSettings, current: &SmtpServer) -> bool {
    same_endpoint(
        (&new.host, new.port, new.security, new.username.as_deref()),
        (
            &current.host,
            current.port,
            current.security,
            current.username.as_deref(),
        ),
    )
}

const PASSWORD_AGAIN: &str = "is required again when the host, port, username or protection change";

fn imap_server(
    new: &ImapSettings,
    current: Option<&ImapServer>,
) -> Result<ImapServer, DomainError> {
    let password_secret = match (new.password_secret, current) {
        (Some(id), _) => id,
        (None, Some(current)) if imap_keeps_password(new, current) => current.password_secret,
        (None, Some(_)) => return Err(DomainError::invalid("imap.password", PASSWORD_AGAIN)),
        (None, None) => {
            return Err(DomainError::invalid(
                "imap.password",
                "is required: the channel has no IMAP password yet",
            ));
        }
    };
    Ok(ImapServer {
        host: host("imap.host", &new.host)?,
        port: port("imap.port", new.port)?,
        security: new.security,
        username: login("imap.username", &new.username, MAX_LOGIN)?,
        password_secret,
        mailbox: match &new.mailbox {
            Some(mailbox) => login("imap.mailbox", mailbox, MAX_MAILBOX)?,
            None => "INBOX".to_owned(),
        },
    })
}

fn smtp_server(
    new: &SmtpSettings,
    current: Option<&SmtpServer>,
) -> Result<SmtpServer, DomainError> {
    let username = new
        .username
        .as_deref()
        .map(|u| login("smtp.username", u, MAX_LOGIN))
        .transpose()?;
    let saved = current.and_then(|c| c.password_secret.map(|id| (c, id)));
    let password_secret = match (&username, new.password_secret, saved) {
        (None, Some(_), _) => {
            return Err(DomainError::invalid(
                "smtp.password",
                "goes with a username; give both or neither",
            ));
        }
        (None, None, _) => None,
        (Some(_), Some(id), _) => Some(id),
        (Some(_), None, Some((current, id))) if smtp_keeps_password(new, current) => Some(id),
        (Some(_), None, Some(_)) => {
            return Err(DomainError::invalid("smtp.password", PASSWORD_AGAIN));
        }
        (Some(_), None, None) => {
            return Err(DomainError::invalid(
                "smtp.password",
                "is required with a username: the channel has no SMTP password yet",
            ));
        }
    };
    Ok(SmtpServer {
        host: host("smtp.host", &new.host)?,
        port: port("smtp.port", new.port)?,
        security: new.security,
        username,
        password_secret,
    })
}

fn new_channel(d: &Directory, id: Uuid) -> Result<(), DomainError> {
    if d.channels.contains_key(&id) {
        Err(DomainError::rejected(
            "ALREADY_EXISTS",
            Some("channelId"),
            "this channel already exists",
        ))
    } else {
        Ok(())
    }
}

/// A fallback address belongs to its inbox: it is neither disconnected nor moved.
fn not_fallback(d: &Directory, channel: &Channel) -> Result<(), DomainError> {
    if d.is_fallback(channel.id) {
        Err(DomainError::rejected(
            "FALLBACK_ADDRESS",
            Some("channelId"),
            "an inbox's fallback address stays with its inbox",
        ))
    } else {
        Ok(())
    }
}

/// A private account feeds only an inbox its owner sees.
fn owner_sees(d: &Directory, owner: Uuid, inbox_id: Uuid) -> Result<(), DomainError> {
    if d.can_see_inbox(owner, inbox_id) {
        Ok(())
    } else {
        Err(DomainError::rejected(
            "NO_ACCESS",
            Some("inboxId"),
            "a private account feeds only an inbox its owner is a member of",
        ))
    }
}

/// A domain name, lower-cased, with a leading `@` tolerated.
fn domain(value: &str) -> Option<String> {
    let value = value.trim().trim_start_matches('@').to_lowercase();
    let valid = value.contains('.')
        && !value.starts_with('.')
        && !value.ends_with('.')
        && !value.contains("..")
        && !value.contains('@')
        && !value.chars().any(char::is_whitespace);
    valid.then_some(value)
}

/// An e-mail address, trimmed and lower-cased.
fn email(field: &'static str, value: &str) -> Result<String, DomainError> {
    let value = value.trim().to_lowercase();
    let valid = value
        .split_once('@')
        .is_some_and(|(local, host)| !local.is_empty() && domain(host).as_deref() == Some(host));
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

/// A valid address that no connected channel receives mail at.
fn free_address(d: &Directory, address: &str) -> Result<String, DomainError> {
    let address = email("address", address)?;
    validate::reservable(
        "address",
        "e-mail address",
        UniqueScope::ChannelEmail,
        &address,
    )?;
    if d.channel_by_address(&address).is_some() {
        return Err(DomainError::rejected(
            "TAKEN",
            Some("address"),
            format!("{address} is already connected"),
        ));
    }
    Ok(address)
}

fn sender_pattern(pattern: &SenderPattern) -> Result<SenderPattern, DomainError> {
    match pattern {
        SenderPattern::Address { address } => Ok(SenderPattern::Address {
            address: email("pattern", address)?,
        }),
        SenderPattern::Domain { domain: value } => domain(value)
            .map(|domain| SenderPattern::Domain { domain })
            .ok_or_else(|| {
                DomainError::invalid(
                    "pattern",
                    format!("{:?} is not a domain name", value.trim()),
                )
            }),
    }
}
