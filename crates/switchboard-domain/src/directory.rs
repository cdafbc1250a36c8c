//! The directory: the organisation, its users, teams, bots, inboxes and channels, folded from
//! their events into one value, and the access rules that read it.
//!
//! Every command is decided against a directory (who is asking, what they may see), so it lives
//! in memory beside the command service and is kept at the store's head before each decision.
//! The access rules of PRODUCT.md are written once, here:
//! - admins and super admins see every inbox and every conversation;
//! - auditors and analysts read everything and write nothing;
//! - an agent sees an inbox they are a member of (directly or through a team), unless the inbox is
//!   restricted to teams they are not in;
//! - a conversation from a private e-mail account is seen by its owner and admins only.
//!
//! It also holds what routing and the e-mail filter read: the routing rule of each inbox and
//! channel (a channel's rule wins over its inbox's), the e-mail filter settings of each e-mail
//! channel, and which e-mail channels are automatic fallback addresses. A fallback address is an
//! e-mail channel of its own with shared access, so it is listed in [`Directory::channels`] like
//! any connected shared address; [`Directory::fallback_channels`] says which ones are fallbacks.
//! Contact owners are not here: they belong to contact records, and routing is told the owner
//! with each request.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use proto_events::event::{
    Availability, ChannelConfig, ChatBotConfigured, ChatWidgetConfigured, EmailAccess,
    FilterAction, FormConfigured, Holiday, ImapServer, Member, OpeningInterval, Role,
    RoutingStrategy, RuleScope, SenderPattern, SmtpServer,
};
use proto_events::{Actor, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The organisation's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    /// Its id (one organisation per deployment).
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// IANA time zone, e.g. `Europe/Paris`.
    pub time_zone: String,
    /// Opening hours, in `business_hours_time_zone`.
    pub business_hours: Vec<OpeningInterval>,
    /// The time zone the opening hours are expressed in.
    pub business_hours_time_zone: String,
    /// Days the business is closed.
    pub holidays: Vec<Holiday>,
}

/// A person who works in the inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Login e-mail, lower-cased.
    pub email: String,
    /// Display name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// Whether routing may assign them conversations.
    pub availability: Availability,
    /// Most open conversations routing may give them; `None`: no limit.
    pub capacity: Option<u32>,
    /// The teams they belong to.
    pub teams: BTreeSet<Uuid>,
    /// False once deactivated: their tokens are refused, routing passes them over, nobody may
    /// assign them anything. Their history stays theirs.
    pub active: bool,
    /// Tokens issued before this are refused: the latest revocation or deactivation.
    pub tokens_not_before: Option<DateTime<Utc>>,
}

impl User {
    /// Whether a token of this user issued at `issued_at` (seconds since the epoch, as a JWT's
    /// `iat`) is still honoured: the user is active and the token is not older than their
    /// latest revocation or deactivation. `iat` counts whole seconds, so a token issued in the
    /// second of the cut-off is refused too.
    pub fn accepts_token_issued_at(&self, issued_at: i64) -> bool {
        self.active
            && self.tokens_not_before.is_none_or(|cut_off| {
                let whole = cut_off.timestamp() + i64::from(cut_off.timestamp_subsec_nanos() > 0);
                issued_at >= whole
            })
    }

    /// Admins and super admins manage setup and see everything.
    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::Admin | Role::SuperAdmin)
    }

    /// Auditors and analysts only read.
    pub fn can_write(&self) -> bool {
        matches!(self.role, Role::SuperAdmin | Role::Admin | Role::Agent)
    }
}

/// A team of users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Member user ids.
    pub members: BTreeSet<Uuid>,
}

/// A shared inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbox {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Users who are members directly.
    pub member_users: BTreeSet<Uuid>,
    /// Teams whose members are members.
    pub member_teams: BTreeSet<Uuid>,
    /// When set, only members of these teams (and admins) see the inbox.
    pub restricted_to: Option<BTreeSet<Uuid>>,
    /// Its conversations closed more than this many days ago are erased (by the retention
    /// reactor); `None`: kept forever.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

/// A channel: where customers' messages come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// Id.
    pub id: Uuid,
    /// The inbox its new messages go to.
    pub inbox_id: Uuid,
    /// Kind and settings.
    pub config: ChannelConfig,
    /// False once disconnected; its history stays.
    pub connected: bool,
    /// How an e-mail channel reaches outside mail servers (none set for other kinds).
    #[serde(default)]
    pub servers: EmailServers,
    /// A form channel's fields, origins and honeypot, as last configured (`None` until then,
    /// and for other kinds).
    #[serde(default)]
    pub form: Option<FormConfigured>,
    /// A chat channel's bot, as last configured (`None` until then, and for other kinds).
    #[serde(default)]
    pub chat_bot: Option<ChatBotConfigured>,
    /// A chat channel's widget settings, as last configured (`None` until then, and for other
    /// kinds).
    #[serde(default)]
    pub chat_widget: Option<ChatWidgetConfigured>,
    /// A Messenger channel's page settings, as last set (none for other kinds).
    #[serde(default)]
    pub messenger: MessengerPage,
}

/// A Messenger channel's page settings, as last set (see
/// [`MessengerPageSet`](proto_events::event::MessengerPageSet)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessengerPage {
    /// The id of the sealed page access token replies are sent with.
    pub page_token_secret: Option<Uuid>,
    /// Whether the page has Meta's human-agent tag (replies up to 7 days after the customer's
    /// last message).
    pub human_agent_tag: bool,
}

/// An e-mail channel's outside servers, as last set (see
/// [`EmailServersSet`](proto_events::event::EmailServersSet)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailServers {
    /// The IMAP mailbox its mail is fetched from.
    pub imap: Option<ImapServer>,
    /// Its own SMTP server for replies.
    pub smtp: Option<SmtpServer>,
    /// The id of the sealed secret `POST /ingest/email/{channel}` requires.
    pub ingest_secret: Option<Uuid>,
}

impl Channel {
    /// The owner of a private e-mail account, whose conversations only they and admins see.
    pub fn private_owner(&self) -> Option<Uuid> {
        match &self.config {
            ChannelConfig::Email {
                access: EmailAccess::Private { owner_user_id },
                ..
            } => Some(*owner_user_id),
            _ => None,
        }
    }
}

/// A routing rule as last set for its scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRule {
    /// Id; routing decisions name it.
    pub id: Uuid,
    /// The inbox or channel it applies to.
    pub scope: RuleScope,
    /// How it picks an assignee.
    pub strategy: RoutingStrategy,
    /// The users and teams it picks among, as set (teams expand to their members when routing).
    pub targets: Vec<Member>,
    /// The bot that answers first, for [`RoutingStrategy::BotFirst`].
    pub bot_id: Option<Uuid>,
}

/// Which built-in e-mail filters a channel has switched on. All off until the channel's first
/// `BuiltInEmailFiltersSet` (connecting an e-mail channel records one with the defaults, so a
/// replay never depends on a default written in code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltInFilters {
    /// Automated replies: out-of-office, `Auto-Submitted`.
    pub automated_replies: bool,
    /// Bulk and marketing mail: `Precedence: bulk`, list mail.
    pub bulk_mail: bool,
    /// Role addresses such as noreply@ or mailer-daemon@.
    pub role_addresses: bool,
    /// Mail carrying a `List-Unsubscribe` header.
    pub unsubscribe_header: bool,
}

/// One allow or deny rule of an e-mail channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailFilterRule {
    /// Id; a filtered message's reason names it.
    pub id: Uuid,
    /// Allow or deny.
    pub action: FilterAction,
    /// The senders it matches (addresses and domains are stored lower-cased).
    pub pattern: SenderPattern,
}

/// The e-mail filter settings of one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailFilters {
    /// The built-in rules switched on.
    pub built_in: BuiltInFilters,
    /// Allow and deny rules, in the order they were added.
    pub rules: Vec<EmailFilterRule>,
}

/// Everything about the organisation's setup that deciding needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// The organisation, once created.
    pub organisation: Option<Organisation>,
    /// Users by id.
    pub users: HashMap<Uuid, User>,
    /// Teams by id.
    pub teams: HashMap<Uuid, Team>,
    /// Bots by id, with their names.
    pub bots: HashMap<Uuid, String>,
    /// Inboxes by id.
    pub inboxes: HashMap<Uuid, Inbox>,
    /// Channels by id, connected or not, fallback addresses included.
    pub channels: HashMap<Uuid, Channel>,
    /// The e-mail channels that are automatic fallback addresses of their inbox.
    pub fallback_channels: BTreeSet<Uuid>,
    /// Routing rules by the inbox or channel they apply to.
    #[serde(with = "as_pairs")]
    pub routing_rules: HashMap<RuleScope, RoutingRule>,
    /// E-mail filter settings by channel id; absent until the channel's first filter event.
    pub email_filters: HashMap<Uuid, EmailFilters>,
}

impl Directory {
    /// Folds one event in. Events the directory does not track are ignored.
    pub fn evolve(&mut self, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::OrganisationCreated(e) => {
                self.organisation = Some(Organisation {
                    id: e.organisation_id,
                    name: e.name.clone(),
                    time_zone: e.time_zone.clone(),
                    business_hours: Vec::new(),
                    business_hours_time_zone: e.time_zone.clone(),
                    holidays: Vec::new(),
                });
            }
            E::OrganisationTimeZoneSet(e) => {
                if let Some(org) = &mut self.organisation {
                    org.time_zone = e.time_zone.clone();
                }
            }
            E::BusinessHoursSet(e) => {
                if let Some(org) = &mut self.organisation {
                    org.business_hours = e.weekly.clone();
                    org.business_hours_time_zone = e.time_zone.clone();
                    org.holidays = e.holidays.clone();
                }
            }
            E::UserCreated(e) => {
                self.users.insert(
                    e.user_id,
                    User {
                        id: e.user_id,
                        email: e.email.to_lowercase(),
                        name: e.name.clone(),
                        role: e.role,
                        availability: e.availability,
                        capacity: None,
                        teams: BTreeSet::new(),
                        active: true,
                        tokens_not_before: None,
                    },
                );
            }
            E::UserRoleChanged(e) => {
                if let Some(user) = self.users.get_mut(&e.user_id) {
                    user.role = e.role;
                }
            }
            E::UserAvailabilityChanged(e) => {
                if let Some(user) = self.users.get_mut(&e.user_id) {
                    user.availability = e.availability;
                }
            }
            E::UserCapacitySet(e) => {
                if let Some(user) = self.users.get_mut(&e.user_id) {
                    user.capacity = e.max_open_conversations;
                }
            }
            E::UserDeactivated(e) => {
                if let Some(user) = self.users.get_mut(&e.user_id) {
                    user.active = false;
                    user.tokens_not_before = user.tokens_not_before.max(Some(e.at));
                }
            }
            E::UserReactivated(e) => {
                if let Some(user) = self.users.get_mut(&e.user_id) {
                    user.active = true;
                }
            }
            E::UserTokensRevoked(e) => {
                if let Some(user) = self.users.get_mut(&e.user_id) {
                    user.tokens_not_before = user.tokens_not_before.max(Some(e.not_before));
                }
            }
            E::TeamCreated(e) => {
                self.teams.insert(
                    e.team_id,
                    Team {
                        id: e.team_id,
                        name: e.name.clone(),
                        members: BTreeSet::new(),
                    },
                );
            }
            E::TeamRenamed(e) => {
                if let Some(team) = self.teams.get_mut(&e.team_id) {
                    team.name = e.name.clone();
                }
            }
            E::TeamMemberAdded(e) => {
                if let Some(team) = self.teams.get_mut(&e.team_id) {
                    team.members.insert(e.user_id);
                }
                if let Some(user) = self.users.get_mut(&e.user_id) {
                    user.teams.insert(e.team_id);
                }
            }
            E::TeamMemberRemoved(e) => {
                if let Some(team) = self.teams.get_mut(&e.team_id) {
                    team.members.remove(&e.user_id);
                }
                if let Some(user) = self.users.get_mut(&e.user_id) {
                    user.teams.remove(&e.team_id);
                }
            }
            E::BotCreated(e) => {
                self.bots.insert(e.bot_id, e.name.clone());
            }
            E::InboxCreated(e) => {
                self.inboxes.insert(
                    e.inbox_id,
                    Inbox {
                        id: e.inbox_id,
                        name: e.name.clone(),
                        member_users: BTreeSet::new(),
                        member_teams: BTreeSet::new(),
                        restricted_to: None,
                        retention_days: None,
                    },
                );
            }
            E::InboxRenamed(e) => {
                if let Some(inbox) = self.inboxes.get_mut(&e.inbox_id) {
                    inbox.name = e.name.clone();
                }
            }
            E::InboxMemberAdded(e) => {
                if let Some(inbox) = self.inboxes.get_mut(&e.inbox_id) {
                    match e.member {
                        Member::User { id } => inbox.member_users.insert(id),
                        Member::Team { id } => inbox.member_teams.insert(id),
                    };
                }
            }
            E::InboxMemberRemoved(e) => {
                if let Some(inbox) = self.inboxes.get_mut(&e.inbox_id) {
                    match e.member {
                        Member::User { id } => inbox.member_users.remove(&id),
                        Member::Team { id } => inbox.member_teams.remove(&id),
                    };
                }
            }
            E::InboxRestricted(e) => {
                if let Some(inbox) = self.inboxes.get_mut(&e.inbox_id) {
                    inbox.restricted_to = Some(e.team_ids.iter().copied().collect());
                }
            }
            E::InboxRestrictionLifted(e) => {
                if let Some(inbox) = self.inboxes.get_mut(&e.inbox_id) {
                    inbox.restricted_to = None;
                }
            }
            E::InboxRetentionSet(e) => {
                if let Some(inbox) = self.inboxes.get_mut(&e.inbox_id) {
                    inbox.retention_days = e.closed_days;
                }
            }
            E::ChannelConnected(e) => {
                self.channels.insert(
                    e.channel_id,
                    Channel {
                        id: e.channel_id,
                        inbox_id: e.inbox_id,
                        config: e.config.clone(),
                        connected: true,
                        servers: EmailServers::default(),
                        form: None,
                        chat_bot: None,
                        chat_widget: None,
                        messenger: MessengerPage::default(),
                    },
                );
            }
            E::ChannelDisconnected(e) => {
                if let Some(channel) = self.channels.get_mut(&e.channel_id) {
                    channel.connected = false;
                }
            }
            E::FormConfigured(e) => {
                if let Some(channel) = self.channels.get_mut(&e.channel_id) {
                    channel.form = Some(e.clone());
                }
            }
            E::ChatBotConfigured(e) => {
                if let Some(channel) = self.channels.get_mut(&e.channel_id) {
                    channel.chat_bot = Some(e.clone());
                }
            }
            E::ChatWidgetConfigured(e) => {
                if let Some(channel) = self.channels.get_mut(&e.channel_id) {
                    channel.chat_widget = Some(e.clone());
                }
            }
            E::MessengerPageSet(e) => {
                if let Some(channel) = self.channels.get_mut(&e.channel_id) {
                    channel.messenger = MessengerPage {
                        page_token_secret: e.page_token_secret,
                        human_agent_tag: e.human_agent_tag,
                    };
                }
            }
            E::EmailServersSet(e) => {
                if let Some(channel) = self.channels.get_mut(&e.channel_id) {
                    channel.servers = EmailServers {
                        imap: e.imap.clone(),
                        smtp: e.smtp.clone(),
                        ingest_secret: e.ingest_secret,
                    };
                }
            }
            E::ChannelMoved(e) => {
                if let Some(channel) = self.channels.get_mut(&e.channel_id) {
                    channel.inbox_id = e.to_inbox_id;
                }
            }
            E::FallbackAddressAssigned(e) => {
                self.channels.insert(
                    e.channel_id,
                    Channel {
                        id: e.channel_id,
                        inbox_id: e.inbox_id,
                        config: ChannelConfig::Email {
                            address: e.address.clone(),
                            access: EmailAccess::Shared,
                        },
                        connected: true,
                        servers: EmailServers::default(),
                        form: None,
                        chat_bot: None,
                        chat_widget: None,
                        messenger: MessengerPage::default(),
                    },
                );
                self.fallback_channels.insert(e.channel_id);
            }
            E::RoutingRuleSet(e) => {
                self.routing_rules.insert(
                    e.scope.clone(),
                    RoutingRule {
                        id: e.rule_id,
                        scope: e.scope.clone(),
                        strategy: e.strategy,
                        targets: e.targets.clone(),
                        bot_id: e.bot_id,
                    },
                );
            }
            // Only the rule named: a rule set since (same scope, new id) stays.
            E::RoutingRuleRemoved(e)
                if self
                    .routing_rules
                    .get(&e.scope)
                    .is_some_and(|rule| rule.id == e.rule_id) =>
            {
                self.routing_rules.remove(&e.scope);
            }
            E::BuiltInEmailFiltersSet(e) => {
                self.email_filters.entry(e.channel_id).or_default().built_in = BuiltInFilters {
                    automated_replies: e.automated_replies,
                    bulk_mail: e.bulk_mail,
                    role_addresses: e.role_addresses,
                    unsubscribe_header: e.unsubscribe_header,
                };
            }
            E::EmailFilterRuleAdded(e) => {
                self.email_filters
                    .entry(e.channel_id)
                    .or_default()
                    .rules
                    .push(EmailFilterRule {
                        id: e.rule_id,
                        action: e.action,
                        pattern: lower_pattern(&e.pattern),
                    });
            }
            E::EmailFilterRuleRemoved(e) => {
                if let Some(filters) = self.email_filters.get_mut(&e.channel_id) {
                    filters.rules.retain(|rule| rule.id != e.rule_id);
                }
            }
            _ => {}
        }
    }

    /// The user, if they exist.
    pub fn user(&self, id: Uuid) -> Option<&User> {
        self.users.get(&id)
    }

    /// Refuses anything a deactivated user asks for: the API already refuses their tokens, and
    /// the write side does not rely on it.
    pub fn refuse_deactivated(&self, actor: &Actor) -> Result<(), crate::DomainError> {
        match actor {
            Actor::User { id } if self.users.get(id).is_some_and(|u| !u.active) => Err(
                crate::DomainError::forbidden("the user is deactivated and can do nothing"),
            ),
            _ => Ok(()),
        }
    }

    /// The user with this login e-mail (any case).
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        let email = email.to_lowercase();
        self.users.values().find(|u| u.email == email)
    }

    /// Whether `user` is a member of `inbox`, directly or through one of their teams.
    pub fn is_inbox_member(&self, user: &User, inbox: &Inbox) -> bool {
        inbox.member_users.contains(&user.id) || !inbox.member_teams.is_disjoint(&user.teams)
    }

    /// Whether `user_id` may see `inbox_id` and what is in it (see the module's rules).
    pub fn can_see_inbox(&self, user_id: Uuid, inbox_id: Uuid) -> bool {
        let (Some(user), Some(inbox)) = (self.users.get(&user_id), self.inboxes.get(&inbox_id))
        else {
            return false;
        };
        match user.role {
            Role::SuperAdmin | Role::Admin | Role::Auditor | Role::Analyst => true,
            Role::Agent => {
                let allowed = inbox
                    .restricted_to
                    .as_ref()
                    .is_none_or(|teams| !teams.is_disjoint(&user.teams));
                allowed && self.is_inbox_member(user, inbox)
            }
        }
    }

    /// Whether `user_id` may see a conversation in `inbox_id` whose private owner, if it came
    /// through a private e-mail account, is `private_owner`.
    pub fn can_see_conversation(
        &self,
        user_id: Uuid,
        inbox_id: Uuid,
        private_owner: Option<Uuid>,
    ) -> bool {
        let Some(user) = self.users.get(&user_id) else {
            return false;
        };
        match private_owner {
            Some(owner) => owner == user_id || user.is_admin(),
            None => self.can_see_inbox(user_id, inbox_id),
        }
    }

    /// The users who may work conversations of `inbox_id` (see and write), in id order.
    pub fn inbox_agents(&self, inbox_id: Uuid) -> Vec<&User> {
        let mut users: Vec<&User> = self
            .users
            .values()
            .filter(|u| u.can_write() && self.can_see_inbox(u.id, inbox_id))
            .collect();
        users.sort_by_key(|u| u.id);
        users
    }

    /// Whether `user_id` may work (see and write in) a conversation of `inbox_id` whose private
    /// owner is `private_owner`: what routing requires of a candidate.
    pub fn can_work_conversation(
        &self,
        user_id: Uuid,
        inbox_id: Uuid,
        private_owner: Option<Uuid>,
    ) -> bool {
        self.users.get(&user_id).is_some_and(User::can_write)
            && self.can_see_conversation(user_id, inbox_id, private_owner)
    }

    /// Whether a team, as a whole, has access to `inbox_id`: it is a member team of the inbox
    /// and not shut out by the inbox's team restriction.
    pub fn team_can_see_inbox(&self, team_id: Uuid, inbox_id: Uuid) -> bool {
        self.inboxes.get(&inbox_id).is_some_and(|inbox| {
            inbox.member_teams.contains(&team_id)
                && inbox
                    .restricted_to
                    .as_ref()
                    .is_none_or(|teams| teams.contains(&team_id))
        })
    }

    /// The users `targets` stand for: users as themselves (if they exist), teams as their current
    /// members; deduplicated and in id order.
    pub fn expand_targets(&self, targets: &[Member]) -> Vec<Uuid> {
        let mut users = BTreeSet::new();
        for target in targets {
            match target {
                Member::User { id } => {
                    if self.users.contains_key(id) {
                        users.insert(*id);
                    }
                }
                Member::Team { id } => {
                    if let Some(team) = self.teams.get(id) {
                        users.extend(team.members.iter().copied());
                    }
                }
            }
        }
        users.into_iter().collect()
    }

    /// The rule set for exactly this scope, if any.
    pub fn routing_rule(&self, scope: &RuleScope) -> Option<&RoutingRule> {
        self.routing_rules.get(scope)
    }

    /// The rule with this id, whatever its scope.
    pub fn routing_rule_by_id(&self, rule_id: Uuid) -> Option<&RoutingRule> {
        self.routing_rules.values().find(|rule| rule.id == rule_id)
    }

    /// The rule that routes new conversations of `channel_id`: the channel's own rule, else the
    /// rule of the inbox the channel feeds now.
    pub fn rule_for(&self, channel_id: Uuid) -> Option<&RoutingRule> {
        self.routing_rule(&RuleScope::Channel { id: channel_id })
            .or_else(|| {
                let inbox_id = self.channels.get(&channel_id)?.inbox_id;
                self.routing_rule(&RuleScope::Inbox { id: inbox_id })
            })
    }

    /// The e-mail filter settings of a channel, if any were ever recorded.
    pub fn email_filters(&self, channel_id: Uuid) -> Option<&EmailFilters> {
        self.email_filters.get(&channel_id)
    }

    /// Whether the channel is an automatic fallback address.
    pub fn is_fallback(&self, channel_id: Uuid) -> bool {
        self.fallback_channels.contains(&channel_id)
    }

    /// The inbox's connected fallback address, if it has one.
    pub fn fallback_address(&self, inbox_id: Uuid) -> Option<&Channel> {
        self.fallback_channels
            .iter()
            .filter_map(|id| self.channels.get(id))
            .find(|channel| channel.connected && channel.inbox_id == inbox_id)
    }

    /// The connected form channel whose public key is `key` (see
    /// [`FormConfigured`](proto_events::event::FormConfigured)).
    pub fn form_by_key(&self, key: &str) -> Option<&Channel> {
        self.channels
            .values()
            .find(|c| c.connected && c.form.as_ref().is_some_and(|form| form.public_key == key))
    }

    /// The connected chat channel whose widget's public key is `key` (see
    /// [`ChatWidgetConfigured`](proto_events::event::ChatWidgetConfigured)).
    pub fn chat_by_key(&self, key: &str) -> Option<&Channel> {
        self.channels.values().find(|c| {
            c.connected
                && c.chat_widget
                    .as_ref()
                    .is_some_and(|widget| widget.public_key == key)
        })
    }

    /// Whether the inbox has team e-mail: a connected, shared e-mail address that is not its
    /// fallback. A private account serves one user, so it does not count: the inbox still needs
    /// an address that all its members work.
    pub fn inbox_has_team_email(&self, inbox_id: Uuid) -> bool {
        self.channels.values().any(|channel| {
            channel.connected
                && channel.inbox_id == inbox_id
                && !self.is_fallback(channel.id)
                && matches!(
                    channel.config,
                    ChannelConfig::Email {
                        access: EmailAccess::Shared,
                        ..
                    }
                )
        })
    }

    /// The address an inbox sends e-mail from when the conversation's own channel has none (a
    /// form's, a chat's): the address of [`Directory::inbox_email_channel`]. `None` when the
    /// inbox has neither a team address nor a fallback address.
    pub fn inbox_email_address(&self, inbox_id: Uuid) -> Option<&str> {
        self.inbox_email_channel(inbox_id)
            .and_then(|channel| match &channel.config {
                ChannelConfig::Email { address, .. } => Some(address.as_str()),
                _ => None,
            })
    }

    /// The e-mail channel an inbox sends from when the conversation's own channel cannot: its
    /// team e-mail (the connected shared address that is not its fallback, the lowest channel
    /// id when there are several, so every node picks the same), else its fallback address.
    pub fn inbox_email_channel(&self, inbox_id: Uuid) -> Option<&Channel> {
        let shared = |channel: &&Channel| {
            matches!(
                &channel.config,
                ChannelConfig::Email {
                    access: EmailAccess::Shared,
                    ..
                }
            )
        };
        self.channels
            .values()
            .filter(|channel| {
                channel.connected && channel.inbox_id == inbox_id && !self.is_fallback(channel.id)
            })
            .filter(shared)
            .min_by_key(|channel| channel.id)
            .or_else(|| self.fallback_address(inbox_id).filter(shared))
    }

    /// The connected e-mail channel receiving mail at `address` (any case), fallbacks included.
    pub fn channel_by_address(&self, address: &str) -> Option<&Channel> {
        let address = address.trim();
        self.channels.values().find(|channel| {
            channel.connected
                && matches!(&channel.config, ChannelConfig::Email { address: a, .. }
                    if a.eq_ignore_ascii_case(address))
        })
    }
}

/// A sender pattern with its address or domain lower-cased, as it is compared.
fn lower_pattern(pattern: &SenderPattern) -> SenderPattern {
    match pattern {
        SenderPattern::Address { address } => SenderPattern::Address {
            address: address.trim().to_lowercase(),
        },
        SenderPattern::Domain { domain } => SenderPattern::Domain {
            domain: domain.trim().to_lowercase(),
        },
    }
}

/// A map whose keys are not strings, (de)serialised as a list of pairs, so that the directory
/// can be snapshotted as JSON.
mod as_pairs {
    use std::collections::HashMap;
    use std::hash::Hash;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &HashMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, K, V, D>(deserializer: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}
