//! The organisation's setup as GraphQL objects: users, teams, bots, inboxes, channels. They are
//! snapshots of the write side's directory taken when the request resolved them.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use proto_events::event::{ChannelConfig, EmailAccess};
use switchboard_domain::directory;
use uuid::Uuid;

use crate::ids::{self, Kind};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "proto_events::event::Role")]
pub(crate) enum UserRole {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "proto_events::event::Availability")]
pub(crate) enum UserAvailability {
    /// Routing may assign new conversations to the user.
    Available,
    /// Routing skips the user; manual assignment still works.
    Away,
}

/// The kind of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "proto_events::event::ChannelKind")]
pub(crate) enum ChannelType {
    /// Team e-mail: a shared address, a user's private account, or an inbox's fallback address.
    Email,
    /// Website chat.
    Chat,
    /// A Facebook Messenger page.
    Messenger,
    /// A web form.
    Form,
}

/// A person who works in the inbox.
#[derive(Debug, Clone)]
pub(crate) struct User(pub(crate) directory::User);

#[Object]
impl User {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(Kind::User, self.0.id)
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Sign-in e-mail.
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// What they may do.
    async fn role(&self) -> UserRole {
        self.0.role.into()
    }
    /// Whether routing may assign them conversations.
    async fn availability(&self) -> UserAvailability {
        self.0.availability.into()
    }
    /// Most open conversations routing gives them; null: no limit.
    async fn capacity(&self) -> Option<u32> {
        self.0.capacity
    }
    /// False once deactivated (`deactivateUser`): they cannot sign in, take no conversations,
    /// and their history keeps their name.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// The teams they belong to.
    async fn teams(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Team>> {
        let view = crate::state::state(ctx).directory().await?;
        let mut teams: Vec<Team> = self
            .0
            .teams
            .iter()
            .filter_map(|id| view.directory.teams.get(id).cloned().map(Team))
            .collect();
        teams.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(teams)
    }
}

/// A team of users.
#[derive(Debug, Clone)]
pub(crate) struct Team(pub(crate) directory::Team);

#[Object]
impl Team {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(Kind::Team, self.0.id)
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Its members, by name.
    async fn members(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let view = crate::state::state(ctx).directory().await?;
        let mut users: Vec<User> = self
            .0
            .members
            .iter()
            .filter_map(|id| view.directory.user(*id).cloned().map(User))
            .collect();
        users.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(users)
    }
}

/// A bot that may answer conversations first.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub(crate) struct Bot {
    #[graphql(skip)]
    pub(crate) bot_id: Uuid,
    /// Display name.
    pub(crate) name: String,
}

#[async_graphql::ComplexObject]
impl Bot {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(Kind::Bot, self.bot_id)
    }
}

/// A channel: where customers' messages come from.
#[derive(Debug, Clone)]
pub(crate) struct Channel(pub(crate) directory::Channel, pub(crate) bool);

impl Channel {
    /// The channel `channel`; `fallback` when it is its inbox's automatic address.
    pub(crate) fn new(channel: directory::Channel, fallback: bool) -> Channel {
        Channel(channel, fallback)
    }
}

#[Object]
impl Channel {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(Kind::Channel, self.0.id)
    }
    /// E-mail, chat, Messenger or form.
    async fn kind(&self) -> ChannelType {
        self.0.config.kind().into()
    }
    /// A name to show: the address, the widget's, page's or form's name.
    async fn name(&self) -> &str {
        match &self.0.config {
            ChannelConfig::Email { address, .. } => address,
            ChannelConfig::Chat { name } | ChannelConfig::Form { name } => name,
            ChannelConfig::Messenger { page_name, .. } => page_name,
        }
    }
    /// The e-mail address (e-mail channels).
    async fn address(&self) -> Option<&str> {
        match &self.0.config {
            ChannelConfig::Email { address, .. } => Some(address),
            _ => None,
        }
    }
    /// A user's private account: its conversations are visible to them and admins only.
    async fn private(&self) -> bool {
        matches!(
            &self.0.config,
            ChannelConfig::Email {
                access: EmailAccess::Private { .. },
                ..
            }
        )
    }
    /// The inbox's automatic fallback address.
    async fn fallback(&self) -> bool {
        self.1
    }
    /// False once disconnected; its history stays.
    async fn connected(&self) -> bool {
        self.0.connected
    }
    /// The inbox its new messages go to.
    async fn inbox_id(&self) -> ID {
        ids::encode(Kind::Inbox, self.0.inbox_id)
    }
    /// The IMAP mailbox its mail is fetched from; null when none, or when the viewer does not
    /// manage the channel (admins; the owner of a private account). An account the server's
    /// configuration file lists for the channel (`[[imap]]`) is imported instead.
    async fn imap(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ImapServerSettings>> {
        Ok(self
            .managed(ctx)
            .await?
            .and_then(|servers| servers.imap.clone())
            .map(ImapServerSettings))
    }
    /// The SMTP server its replies are sent through; null when they go through the
    /// installation's relay, or when the viewer does not manage the channel.
    async fn smtp(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<SmtpServerSettings>> {
        Ok(self
            .managed(ctx)
            .await?
            .and_then(|servers| servers.smtp.clone())
            .map(SmtpServerSettings))
    }
    /// Whether `POST /ingest/email/{id}` takes mail for it (an ingest secret is set); null when
    /// the viewer does not manage the channel.
    async fn http_ingest(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<bool>> {
        Ok(self
            .managed(ctx)
            .await?
            .map(|servers| servers.ingest_secret.is_some()))
    }
    /// Whether a Messenger channel has a page access token to send replies with (the token
    /// itself is write-only, see `updateMessengerChannel`); null for other kinds and for
    /// viewers who are not admins.
    async fn messenger_page_token(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<bool>> {
        Ok(self
            .messenger_page(ctx)
            .await?
            .map(|page| page.page_token_secret.is_some()))
    }
    /// Whether a Messenger page has Meta's human-agent tag (replies up to 7 days after the
    /// customer's last message); null for other kinds and for viewers who are not admins.
    async fn human_agent_tag(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<bool>> {
        Ok(self
            .messenger_page(ctx)
            .await?
            .map(|page| page.human_agent_tag))
    }
    /// A form channel's configuration (see `configureForm`); null until it is configured, for
    /// other kinds, and for viewers who are not admins.
    async fn form(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<FormSettings>> {
        let access = crate::state::access(ctx).await?;
        Ok(self
            .0
            .form
            .clone()
            .filter(|_| access.is_admin())
            .map(FormSettings))
    }

    /// A chat channel's bot (see `configureChatBot`); null until it is configured, for other
    /// kinds, and for viewers who are not admins.
    async fn chat_bot(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::chat_bot::ChatBotSettings>> {
        let access = crate::state::access(ctx).await?;
        Ok(self
            .0
            .chat_bot
            .clone()
            .filter(|_| access.is_admin())
            .map(super::chat_bot::ChatBotSettings))
    }

    /// A chat channel's widget (see `configureChatWidget`); null until it is configured, for
    /// other kinds, and for viewers who are not admins.
    async fn chat_widget(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ChatWidgetSettings>> {
        let access = crate::state::access(ctx).await?;
        Ok(self
            .0
            .chat_widget
            .clone()
            .filter(|_| access.is_admin())
            .map(ChatWidgetSettings))
    }
}

impl Channel {
    /// A Messenger channel's page settings, if the viewer is an admin.
    async fn messenger_page(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<directory::MessengerPage>> {
        let access = crate::state::access(ctx).await?;
        let messenger = matches!(self.0.config, ChannelConfig::Messenger { .. });
        Ok((messenger && access.is_admin()).then_some(self.0.messenger))
    }

    /// Its servers, if the viewer manages them.
    async fn managed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<&directory::EmailServers>> {
        let access = crate::state::access(ctx).await?;
        Ok(crate::mutation::manages(&access, &self.0).then_some(&self.0.servers))
    }
}

/// An e-mail channel's IMAP mailbox. The password is write-only.
#[derive(Debug, Clone)]
pub(crate) struct ImapServerSettings(proto_events::event::ImapServer);

#[Object]
impl ImapServerSettings {
    /// Host name or IP address.
    async fn host(&self) -> &str {
        &self.0.host
    }
    /// Port.
    async fn port(&self) -> i32 {
        i32::from(self.0.port)
    }
    /// How the connection is protected.
    async fn security(&self) -> crate::mutation::MailServerSecurity {
        self.0.security.into()
    }
    /// The login.
    async fn username(&self) -> &str {
        &self.0.username
    }
    /// The mailbox read.
    async fn mailbox(&self) -> &str {
        &self.0.mailbox
    }
}

/// An e-mail channel's own SMTP server. The password is write-only.
#[derive(Debug, Clone)]
pub(crate) struct SmtpServerSettings(proto_events::event::SmtpServer);

#[Object]
impl SmtpServerSettings {
    /// Host name or IP address.
    async fn host(&self) -> &str {
        &self.0.host
    }
    /// Port.
    async fn port(&self) -> i32 {
        i32::from(self.0.port)
    }
    /// How the connection is protected.
    async fn security(&self) -> crate::mutation::MailServerSecurity {
        self.0.security.into()
    }
    /// The login for `AUTH`, if any.
    async fn username(&self) -> Option<&str> {
        self.0.username.as_deref()
    }
}

/// A form channel's configuration.
#[derive(Debug, Clone)]
pub(crate) struct FormSettings(proto_events::event::FormConfigured);

#[Object]
impl FormSettings {
    /// The key in the form's URL, `POST /forms/{publicKey}`. Not a secret: it sits in the
    /// company's page.
    async fn public_key(&self) -> &str {
        &self.0.public_key
    }
    /// The fields, in order.
    async fn fields(&self) -> Vec<FormFieldSetting> {
        self.0
            .fields
            .iter()
            .cloned()
            .map(FormFieldSetting)
            .collect()
    }
    /// Origins whose pages may post the form from a script (CORS).
    async fn allowed_origins(&self) -> &[String] {
        &self.0.allowed_origins
    }
    /// The hidden field that only bots fill in; null when none.
    async fn honeypot_field(&self) -> Option<&str> {
        self.0.honeypot_field.as_deref()
    }
}

/// A chat channel's widget settings.
#[derive(Debug, Clone)]
pub(crate) struct ChatWidgetSettings(proto_events::event::ChatWidgetConfigured);

#[Object]
impl ChatWidgetSettings {
    /// The key the embedding script names (`/widget/v1.js` with `data-key`). Not a secret: it
    /// sits in the company's page.
    async fn public_key(&self) -> &str {
        &self.0.public_key
    }
    /// Origins whose pages may run the widget (CORS and the WebSocket's `Origin`).
    async fn allowed_origins(&self) -> &[String] {
        &self.0.allowed_origins
    }
    /// The name the widget shows visitors.
    async fn team_name(&self) -> &str {
        &self.0.team_name
    }
    /// The reply-time wording shown while someone is available; null: the widget's own.
    async fn expected_reply(&self) -> Option<&str> {
        self.0.expected_reply.as_deref()
    }
}

/// One field of a form.
#[derive(Debug, Clone)]
pub(crate) struct FormFieldSetting(proto_events::event::FormFieldSpec);

#[Object]
impl FormFieldSetting {
    /// The name a submission carries it under.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What the conversation's first message calls it.
    async fn label(&self) -> &str {
        &self.0.label
    }
    /// What it holds.
    async fn kind(&self) -> crate::mutation::FormFieldType {
        self.0.kind.into()
    }
    /// Whether a submission without it is refused.
    async fn required(&self) -> bool {
        self.0.required
    }
    /// The choices of a `SELECT` field.
    async fn options(&self) -> &[String] {
        &self.0.options
    }
}
