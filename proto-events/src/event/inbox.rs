//! Inbox setup: inboxes and who may see them, the channels connected to them, routing rules and
//! e-mail filter rules.
//!
//! Streams: `inbox-<id>` for inboxes and inbox-wide routing rules, `channel-<id>` for channels,
//! channel routing rules and e-mail filter rules.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A member of an inbox, or a target of a routing rule: a user or a whole team.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Member {
    /// One user.
    User {
        /// The user's id.
        id: Uuid,
    },
    /// Every member of a team.
    Team {
        /// The team's id.
        id: Uuid,
    },
}

/// An inbox was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxCreated {
    /// The inbox.
    pub inbox_id: Uuid,
    /// Display name, e.g. `"Support"`.
    pub name: String,
}

/// An inbox was renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRenamed {
    /// The inbox.
    pub inbox_id: Uuid,
    /// The new name.
    pub name: String,
}

/// A user or team became a member of an inbox: they see it and work its conversations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMemberAdded {
    /// The inbox.
    pub inbox_id: Uuid,
    /// The new member.
    pub member: Member,
}

/// A user or team stopped being a member of an inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMemberRemoved {
    /// The inbox.
    pub inbox_id: Uuid,
    /// The former member.
    pub member: Member,
}

/// An inbox was restricted to some teams: users who are neither members of it nor admins no
/// longer see it or anything in it. Replaces any previous restriction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRestricted {
    /// The inbox.
    pub inbox_id: Uuid,
    /// The teams whose members may see it.
    pub team_ids: Vec<Uuid>,
}

/// An inbox's team restriction was lifted: every user of the organisation sees it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRestrictionLifted {
    /// The inbox.
    pub inbox_id: Uuid,
}

/// An inbox's retention period was set or cleared, replacing the previous one: from now on the
/// retention reactor erases its conversations closed more than `closed_days` days ago (each
/// erasure a `ConversationErased` of its own), or none when `None` (the default: kept forever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRetentionSet {
    /// The inbox.
    pub inbox_id: Uuid,
    /// How many days after being closed a conversation is erased (1 to 3650); `None`: never.
    pub closed_days: Option<u32>,
}

/// The kind of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Team e-mail: a shared address, a user's private account, or an inbox's fallback address.
    Email,
    /// Website chat.
    Chat,
    /// A Facebook Messenger page.
    Messenger,
    /// A web form; each submission starts a conversation.
    Form,
}

/// What was connected, per kind of channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelConfig {
    /// A team e-mail account.
    Email {
        /// The address mail is received at, e.g. `"support@example.com"`.
        address: String,
        /// Who sees its conversations.
        access: EmailAccess,
    },
    /// A website chat widget.
    Chat {
        /// Display name of the widget.
        name: String,
    },
    /// A Facebook Messenger page.
    Messenger {
        /// Facebook's page id.
        page_id: String,
        /// The page's name.
        page_name: String,
    },
    /// A web form.
    Form {
        /// Display name of the form.
        name: String,
    },
}

impl ChannelConfig {
    /// The kind of channel this configures.
    pub fn kind(&self) -> ChannelKind {
        match self {
            Self::Email { .. } => ChannelKind::Email,
            Self::Chat { .. } => ChannelKind::Chat,
            Self::Messenger { .. } => ChannelKind::Messenger,
            Self::Form { .. } => ChannelKind::Form,
        }
    }
}

/// Who sees the conversations of an e-mail channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EmailAccess {
    /// A shared address (info@, support@) that all inbox members work.
    Shared,
    /// One user's own account: its conversations are visible to that user and to admins and super
    /// admins only, unless shared (see
    /// [`ConversationShared`](crate::event::ConversationShared)).
    Private {
        /// The user who connected it.
        owner_user_id: Uuid,
    },
}

/// A channel was connected to an inbox: its new inbound messages appear there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelConnected {
    /// The channel.
    pub channel_id: Uuid,
    /// The inbox it feeds.
    pub inbox_id: Uuid,
    /// What was connected.
    pub config: ChannelConfig,
}

/// A channel was disconnected: no new messages arrive through it; its history stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDisconnected {
    /// The channel.
    pub channel_id: Uuid,
    /// The inbox it fed.
    pub inbox_id: Uuid,
}

/// A channel was moved to another inbox. New conversations start there; existing ones stay in
/// the inbox they started in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMoved {
    /// The channel.
    pub channel_id: Uuid,
    /// The inbox it fed until now.
    pub from_inbox_id: Uuid,
    /// The inbox it feeds from now on.
    pub to_inbox_id: Uuid,
}

/// An inbox without team e-mail was given an automatic fallback address. The address is an
/// e-mail channel of its own (shared access), so its messages carry a `channel_id` like any other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackAddressAssigned {
    /// The e-mail channel behind the address.
    pub channel_id: Uuid,
    /// The inbox it feeds.
    pub inbox_id: Uuid,
    /// The generated address.
    pub address: String,
}

/// Where a routing rule applies. A channel's rule wins over its inbox's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleScope {
    /// New conversations of every channel of the inbox.
    Inbox {
        /// The inbox's id.
        id: Uuid,
    },
    /// New conversations of one channel.
    Channel {
        /// The channel's id.
        id: Uuid,
    },
}

/// How a routing rule picks an assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingStrategy {
    /// The next available target user in turn.
    RoundRobin,
    /// The available target user with the fewest open conversations.
    LeastLoaded,
    /// The contact's owner, if available.
    ContactOwner,
    /// The rule's bot first; after its handoff, the target users round-robin.
    BotFirst,
}

/// A routing rule was set for an inbox or channel, replacing the scope's previous rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRuleSet {
    /// The rule; routing decisions name it.
    pub rule_id: Uuid,
    /// Where it applies.
    pub scope: RuleScope,
    /// How it picks.
    pub strategy: RoutingStrategy,
    /// The users and teams it picks among (teams expand to their members).
    pub targets: Vec<Member>,
    /// The bot that answers first; set exactly when `strategy` is `bot_first`.
    pub bot_id: Option<Uuid>,
}

/// A routing rule was removed: new conversations of its scope stay unassigned (or fall back to
/// the inbox's rule, for a channel rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRuleRemoved {
    /// The rule.
    pub rule_id: Uuid,
    /// Where it applied.
    pub scope: RuleScope,
}

/// The built-in e-mail filters of an e-mail channel were switched on or off. Carries all of them.
/// Mail from known contacts is never filtered by these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltInEmailFiltersSet {
    /// The e-mail channel.
    pub channel_id: Uuid,
    /// Filter automated replies (out-of-office, auto-submitted).
    pub automated_replies: bool,
    /// Filter bulk and marketing mail (`Precedence: bulk`, list mail).
    pub bulk_mail: bool,
    /// Filter mail from role addresses such as noreply@ or mailer-daemon@.
    pub role_addresses: bool,
    /// Filter mail carrying a `List-Unsubscribe` header.
    pub unsubscribe_header: bool,
}

/// Whether an allow/deny rule lets mail through or filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterAction {
    /// Never filter matching mail, whatever the built-in filters say.
    Allow,
    /// Always filter matching mail.
    Deny,
}

/// Which senders an allow/deny rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SenderPattern {
    /// One address, compared case-insensitively.
    Address {
        /// E.g. `"news@example.com"`.
        address: String,
    },
    /// Every address at a domain.
    Domain {
        /// E.g. `"example.com"`.
        domain: String,
    },
}

/// An allow or deny rule was added to an e-mail channel's filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailFilterRuleAdded {
    /// The rule.
    pub rule_id: Uuid,
    /// The e-mail channel.
    pub channel_id: Uuid,
    /// Allow or deny.
    pub action: FilterAction,
    /// The senders it matches.
    pub pattern: SenderPattern,
}

/// An allow or deny rule was removed from an e-mail channel's filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailFilterRuleRemoved {
    /// The rule.
    pub rule_id: Uuid,
    /// The e-mail channel.
    pub channel_id: Uuid,
}

/// How an e-mail channel reaches servers outside Switchboard was set, replacing what was set
/// before: the IMAP mailbox its mail is fetched from, the SMTP server its replies are sent
/// through, and whether mail may be posted to it over HTTP. No password or secret is here: each
/// value is sealed outside the log under the id named here, a fresh id for every value, so an
/// event always names the value it was set with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailServersSet {
    /// The e-mail channel.
    pub channel_id: Uuid,
    /// Where its mail is fetched; `None`: mail arrives by SMTP or HTTP only.
    pub imap: Option<ImapServer>,
    /// Where its replies are sent; `None`: through the installation's relay.
    pub smtp: Option<SmtpServer>,
    /// The secret `POST /ingest/email/{channel}` requires; `None`: that route refuses the
    /// channel.
    pub ingest_secret: Option<Uuid>,
}

/// How a connection to a mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerSecurity {
    /// TLS from the first byte (IMAP port 993, SMTP port 465).
    Tls,
    /// STARTTLS, required (IMAP port 143, SMTP port 587).
    StartTls,
    /// None: for a server on a trusted network only.
    Plain,
}

/// An IMAP mailbox an e-mail channel's mail is fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImapServer {
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// How the connection is protected.
    pub security: ServerSecurity,
    /// The login.
    pub username: String,
    /// The sealed password's id.
    pub password_secret: Uuid,
    /// The mailbox read, usually `INBOX`.
    pub mailbox: String,
}

/// An SMTP server an e-mail channel's replies are sent through (a private account's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpServer {
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// How the connection is protected.
    pub security: ServerSecurity,
    /// The login, when the server requires `AUTH`.
    pub username: Option<String>,
    /// The sealed password's id (with `username`).
    pub password_secret: Option<Uuid>,
}

// --- Messenger pages (issue 20) ---

/// A Messenger channel's page settings were set, replacing what was set before: the page access
/// token replies are sent with through Meta's Send API, and whether the page has the
/// human-agent tag (replies up to 7 days after the customer's last message instead of 24
/// hours). The token is not here: it is sealed outside the log under the id named here, a fresh
/// id for every token, as `EmailServersSet` does with passwords.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessengerPageSet {
    /// The Messenger channel.
    pub channel_id: Uuid,
    /// The sealed page access token's id; `None`: replies cannot be sent.
    pub page_token_secret: Option<Uuid>,
    /// Whether Meta granted the page the human-agent tag.
    pub human_agent_tag: bool,
}

// --- end Messenger pages ---

/// A form channel's fields, the sites that may post it and its honeypot were configured,
/// replacing what was configured before. `POST /forms/{public_key}` takes its submissions.
///
/// The public key names the form in its URL; it is not a secret (it sits in the company's page),
/// only hard to guess, and it stays the same when the form is configured again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormConfigured {
    /// The form channel.
    pub channel_id: Uuid,
    /// The key in the form's URL: URL-safe, at least 128 random bits.
    pub public_key: String,
    /// The fields a submission may carry, in the order the first message lists them. Exactly
    /// one is of kind `email`: the sender's address, recognising the contact and taking replies.
    pub fields: Vec<FormFieldSpec>,
    /// The origins (`https://host[:port]`) whose pages may post the form from a browser script
    /// (CORS) or a plain HTML form; empty: any page may post a plain HTML form.
    pub allowed_origins: Vec<String>,
    /// A field hidden from people: a submission that fills it in is answered as accepted and
    /// dropped. `None`: no honeypot.
    pub honeypot_field: Option<String>,
}

/// A website chat channel's widget was configured, replacing what was configured before:
/// the key the embedding script names, the sites that may embed it and what it shows.
/// `/chat/{public_key}/...` serves its visitors.
///
/// The public key names the channel in the page's script tag; it is not a secret, only hard to
/// guess, and it stays the same when the widget is configured again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatWidgetConfigured {
    /// The chat channel.
    pub channel_id: Uuid,
    /// The key the embedding script names: URL-safe, at least 128 random bits.
    pub public_key: String,
    /// The origins (`https://host[:port]`) whose pages may run the widget (CORS on its HTTP
    /// routes, `Origin` on its WebSocket). Empty: no page may, until some are configured.
    pub allowed_origins: Vec<String>,
    /// The name the widget shows visitors, e.g. `"Acme Support"`.
    pub team_name: String,
    /// What the widget says about reply times while someone is available, e.g. `"We usually
    /// reply in a few minutes"`. `None`: the widget's own wording.
    pub expected_reply: Option<String>,
}

/// One field of a form, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormFieldSpec {
    /// The name a submission carries it under, e.g. `"email"`.
    pub name: String,
    /// What the first message of a conversation calls it, e.g. `"Your e-mail address"`.
    pub label: String,
    /// What it holds.
    pub kind: FormFieldKind,
    /// Whether a submission without it (or with it blank) is refused.
    pub required: bool,
    /// The choices of a `select` field; empty for the other kinds.
    pub options: Vec<String>,
}

/// What a form field holds, and how a submitted value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormFieldKind {
    /// One line of text.
    Text,
    /// An e-mail address.
    Email,
    /// A number.
    Number,
    /// A telephone number: digits, spaces and `+ - ( ) .`.
    Phone,
    /// Several lines of text.
    Textarea,
    /// A box ticked or not.
    Checkbox,
    /// One of the field's `options`.
    Select,
}

/// A chat channel's bot was configured, replacing what was configured before: the bot that
/// speaks, its greeting, the questions it asks, what it answers and when it hands off to a
/// human. The bot acts on the channel's conversations it holds (assigned to it by a bot-first
/// routing rule); its messages are `ReplySent` by the bot, its handoff is `BotHandedOff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatBotConfigured {
    /// The chat channel.
    pub channel_id: Uuid,
    /// The bot that speaks (registered with `BotCreated`).
    pub bot_id: Uuid,
    /// Whether it speaks at all; a disabled bot says nothing and hands nothing off.
    pub enabled: bool,
    /// Its first message in a conversation.
    pub greeting: String,
    /// Asked in order after the greeting, each answer collected into the contact.
    pub questions: Vec<BotQuestion>,
    /// Replies to visitors' messages that contain one of their phrases.
    pub answers: Vec<BotAnswer>,
    /// When it gives the conversation to a human.
    pub handoff: BotHandoffPolicy,
}

/// A question a chat bot asks, and what the answer becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotQuestion {
    /// What the bot asks, e.g. `"What is your e-mail address?"`.
    pub prompt: String,
    /// What the answer is collected as.
    pub collects: BotCollects,
}

/// What a chat bot's question collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotCollects {
    /// The contact's `name` property.
    Name,
    /// An e-mail address identity of the contact (a malformed one is asked again).
    Email,
}

/// A chat bot's answer to visitors' messages containing one of its phrases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotAnswer {
    /// Words or phrases, kept as configured; matched whole-word, ignoring case and accents.
    pub phrases: Vec<String>,
    /// What the bot answers.
    pub reply: String,
}

/// When a chat bot hands a conversation to a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotHandoffPolicy {
    /// A visitor's message containing one of these (e.g. `"human"`, `"agent"`) hands off.
    pub phrases: Vec<String>,
    /// A message the bot has no answer for hands off at once.
    pub on_no_match: bool,
    /// A message the bot has no answer for hands off after waiting this many seconds without
    /// one (counted from its domain time); `None`: no timeout.
    pub timeout_seconds: Option<u32>,
    /// What the bot says before handing off; `None`: nothing.
    pub message: Option<String>,
}
