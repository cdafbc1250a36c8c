//! The bot reactor: chat channels' bots greet, ask, answer and hand off, by themselves.
//!
//! It follows the event log and folds, from events alone, each chat channel's bot configuration
//! (`ChatBotConfigured`) and each conversation of a chat channel with a bot configured (when it
//! started): its visitor, its contact, the bot holding it and where the bot's [`Dialogue`]
//! stands. A conversation is the bot's while it is assigned to the bot its channel is configured
//! with and that configuration is enabled: a bot-first routing rule (on the channel or its inbox)
//! gives it new conversations, through the routing reactor. Without such a rule the bot never
//! gets a conversation, and says nothing. What the bot says and does is decided by
//! `switchboard_domain::chatbot` when the triggering event is folded (the assignment to the bot:
//! greet; a visitor's message: answer; the bot disabled or replaced: hand off), so the same log
//! always gives the same decisions.
//!
//! Its messages are `SendReply` by the bot's actor (`ReplySent` with the bot as author), its
//! handoff is `HandOffFromBot` to nobody (routing then gives the conversation to the rule's
//! people); the answers to its questions go into the contact through the contact commands, as
//! the system's `chat-bot` component (bots may not change contacts): a name becomes the contact's
//! `name` property, an e-mail address one of its identities. A visitor without a contact gets
//! one (from the conversation, with an id derived from it). Nothing verifies that an address is
//! the visitor's, so the bot writes only onto the contact it made: an address that belongs to
//! another contact becomes the visitor's `claimed_email` property (never a link to that contact,
//! never a merge), and a contact the visitor was recognised as otherwise is left alone. Agents
//! see the answers in the conversation; what a visitor may read follows their visitor id.
//!
//! # Timeout
//! A visitor's message the bot has no answer for (and is not configured to hand off at once) is
//! *unanswered*; when the conversation's first unanswered message has waited `timeout_seconds`
//! (from its domain time in the log, by the service's clock) without the bot saying anything
//! since, the bot hands off. The deadline is folded from the log, so it survives a restart; the
//! reactor checks deadlines at least every [`TICK`].
//!
//! # Never twice
//! On start it folds the whole log before acting. Each decided reaction stays pending until the
//! log shows its steps done: a reply by the message id derived from its trigger and place, a
//! contact change by its causation (the trigger), a handoff by `BotHandedOff`. Every command
//! carries the idempotency key `bot:<conversation>:<trigger>:<kind><step>` and is skipped when
//! that key already ran (the write index keeps keys for good), replies have derived ids (a second
//! reply with one writes nothing), and a bot may only act on a conversation it holds, so a
//! restart, or a second reactor over the same log, sends nothing twice. After a
//! handoff (or an agent taking the conversation) the conversation is forgotten: the bot says
//! nothing more in it.
//!
//! What it keeps (the channels' configurations, their chat conversations nobody but a bot holds,
//! pending reactions) is snapshotted into the write index every `SNAPSHOT_EVERY` events, as
//! routing's state is; a start folds from the snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use proto_events::event::{
    Assignee, BotCollects, ChannelKind, ChatBotConfigured, Identity, ReplyAuthor,
};
use proto_events::{Actor, DomainEvent, Envelope};
use serde::{Deserialize, Serialize};
use switchboard_domain::DomainError;
use switchboard_domain::chatbot::{Dialogue, Reaction, Step};
use switchboard_domain::contact::ContactCommand;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_store::{EventStore, Position};
use tokio::sync::watch;
use uuid::Uuid;

use switchboard_codec as codec;

use crate::running::Reactor;
use crate::{Command, CommandMeta, CommandService, ServiceError, snapshot};

/// How often, at most, deadlines are checked and failed steps tried again.
pub const TICK: Duration = Duration::from_secs(1);

/// The namespace of the ids the bot derives: its replies' message ids, the contacts it creates.
const BOT_IDS: Uuid = Uuid::from_u128(0x2c7e_9a41_5d0b_4f83_b6e2_7f19_c4a8_d305);

/// The most messages kept, written before the bot got the conversation, for its first answer
/// (routing gives it the conversation right after the first), and the most characters of each.
const MAX_OPENING: usize = 3;
const MAX_OPENING_CHARS: usize = 2_000;

/// A chat conversation, as the bot sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chat {
    channel_id: Uuid,
    /// Who writes: the first message's sender.
    customer: Option<Identity>,
    /// The contact recognised from the latest message, or when the conversation started.
    contact_id: Option<Uuid>,
    /// The bot it is assigned to.
    bot: Option<Uuid>,
    dialogue: Dialogue,
    /// What the visitor wrote before the bot got the conversation.
    opening: Vec<String>,
    /// The first unanswered message: when the bot hands off for it, and the message's event and
    /// position.
    timer: Option<(DateTime<Utc>, Uuid, Position)>,
}

/// Why a reaction happened, to tell the keys of two reactions to one event apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Kind {
    /// To the event itself (the assignment, the message).
    Event,
    /// To a message's timeout.
    Timeout,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Event => "e",
            Kind::Timeout => "t",
        }
    }
}

/// A reaction decided and not yet seen done in the log.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    conversation_id: Uuid,
    bot_id: Uuid,
    trigger: Uuid,
    kind: Kind,
    correlation_id: Uuid,
    /// The steps, each with whether it is done.
    steps: Vec<(Step, bool)>,
}

impl Pending {
    fn key(&self, step: usize) -> String {
        format!(
            "bot:{}:{}:{}{step}",
            self.conversation_id,
            self.trigger,
            self.kind.tag()
        )
    }

    fn message_id(&self, step: usize) -> Uuid {
        Uuid::new_v5(&BOT_IDS, self.key(step).as_bytes())
    }
}

/// The contact the bot creates for the visitor of `conversation_id`; the widget's contact form
/// creates the same one, so that either writes only onto the contact made for that visitor.
pub fn contact_for(conversation_id: Uuid) -> Uuid {
    Uuid::new_v5(&BOT_IDS, format!("contact:{conversation_id}").as_bytes())
}

/// A map as the list of its entries.
mod as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer, K: Serialize, V: Serialize>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// Everything the reactor knows, folded from the log.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    configs: HashMap<Uuid, ChatBotConfigured>,
    chats: HashMap<Uuid, Chat>,
    /// Kept in the snapshot as a list: its keys are not strings.
    #[serde(with = "as_pairs")]
    pending: BTreeMap<(Position, Kind, Uuid), Pending>,
    /// The chats' timers by deadline, earliest first.
    deadlines: BTreeSet<(DateTime<Utc>, Uuid)>,
}

impl State {
    /// The configuration whose bot speaks in `chat` now, if one does.
    fn speaking(&self, chat: &Chat) -> Option<&ChatBotConfigured> {
        self.configs
            .get(&chat.channel_id)
            .filter(|c| c.enabled && chat.bot == Some(c.bot_id))
    }

    fn forget(&mut self, conversation_id: Uuid) {
        self.set_timer(conversation_id, None);
        self.chats.remove(&conversation_id);
        self.pending
            .retain(|_, p| p.conversation_id != conversation_id);
    }

    /// Sets (or clears) the timer of `conversation_id`, keeping `deadlines` in step.
    fn set_timer(&mut self, conversation_id: Uuid, timer: Option<(DateTime<Utc>, Uuid, Position)>) {
        let Some(chat) = self.chats.get_mut(&conversation_id) else {
            return;
        };
        if let Some((deadline, ..)) = chat.timer {
            self.deadlines.remove(&(deadline, conversation_id));
        }
        if let Some((deadline, ..)) = timer {
            self.deadlines.insert((deadline, conversation_id));
        }
        chat.timer = timer;
    }

    /// Records what the bot decided about event `trigger` at `position`.
    fn decided(
        &mut self,
        position: Position,
        kind: Kind,
        (conversation_id, bot_id): (Uuid, Uuid),
        (trigger, correlation_id): (Uuid, Uuid),
        reaction: Reaction,
    ) {
        if reaction.steps.is_empty() {
            return;
        }
        self.pending.insert(
            (position, kind, conversation_id),
            Pending {
                conversation_id,
                bot_id,
                trigger,
                kind,
                correlation_id,
                steps: reaction.steps.into_iter().map(|s| (s, false)).collect(),
            },
        );
    }

    /// The bot of `conversation_id` reacts to `text` (or greets, `opening`), if it speaks there.
    fn react(
        &mut self,
        (position, event_id): (Position, Uuid),
        envelope: &Envelope,
        conversation_id: Uuid,
        text: &str,
    ) {
        let Some(chat) = self.chats.get(&conversation_id) else {
            return;
        };
        let Some(config) = self.speaking(chat).cloned() else {
            return;
        };
        let mut chat = chat.clone();
        let reaction = if matches!(envelope.payload, DomainEvent::MessageReceived(_)) {
            chat.dialogue.reply_to(&config, text)
        } else {
            chat.dialogue.start(&config, text)
        };
        // The bot said something: nobody waits; a message it had nothing for: the first one
        // unanswered starts the clock.
        let timer = match chat.timer {
            _ if !reaction.steps.is_empty() => None,
            None if reaction.unanswered => config.handoff.timeout_seconds.and_then(|seconds| {
                let wait = chrono::Duration::seconds(i64::from(seconds));
                let deadline = envelope.metadata.occurred_at.checked_add_signed(wait)?;
                Some((deadline, event_id, position))
            }),
            running => running,
        };
        self.chats.insert(conversation_id, chat);
        self.set_timer(conversation_id, timer);
        self.decided(
            position,
            Kind::Event,
            (conversation_id, config.bot_id),
            (event_id, envelope.metadata.correlation_id),
            reaction,
        );
    }

    fn assigned(
        &mut self,
        at: (Position, Uuid),
        envelope: &Envelope,
        conversation_id: Uuid,
        to: &Assignee,
    ) {
        match to {
            Assignee::Bot { id } => {
                let Some(chat) = self.chats.get_mut(&conversation_id) else {
                    return;
                };
                chat.bot = Some(*id);
                let opening = std::mem::take(&mut chat.opening).join("\n");
                self.react(at, envelope, conversation_id, &opening);
            }
            // A person has it: the bot is done with it.
            _ => self.forget(conversation_id),
        }
    }

    fn evolve(&mut self, at: (Position, Uuid), envelope: &Envelope) {
        use DomainEvent as E;
        match &envelope.payload {
            E::ChatBotConfigured(e) => {
                let before = self.configs.insert(e.channel_id, e.clone());
                if let Some(before) = before.filter(|b| b.enabled)
                    && (!e.enabled || e.bot_id != before.bot_id)
                {
                    self.bot_replaced(at, envelope, &before);
                }
            }
            E::ConversationStarted(e)
                if e.channel_kind == ChannelKind::Chat
                    && self.configs.contains_key(&e.channel_id) =>
            {
                self.chats.insert(
                    e.conversation_id,
                    Chat {
                        channel_id: e.channel_id,
                        customer: None,
                        contact_id: e.contact_id,
                        bot: None,
                        dialogue: Dialogue::default(),
                        opening: Vec::new(),
                        timer: None,
                    },
                );
            }
            E::MessageReceived(e) => {
                let Some(chat) = self.chats.get_mut(&e.conversation_id) else {
                    return;
                };
                if chat.customer.is_none() {
                    chat.customer = Some(e.message.from.clone());
                }
                if e.message.contact_id.is_some() {
                    chat.contact_id = e.message.contact_id;
                }
                if chat.bot.is_none() {
                    if chat.opening.len() < MAX_OPENING {
                        let text = &e.message.body_text;
                        let end = text
                            .char_indices()
                            .nth(MAX_OPENING_CHARS)
                            .map_or(text.len(), |(i, _)| i);
                        chat.opening.push(text[..end].to_owned());
                    }
                    return;
                }
                self.react(at, envelope, e.conversation_id, &e.message.body_text);
            }
            E::ConversationAssigned(e) => {
                self.assigned(at, envelope, e.conversation_id, &e.assignee)
            }
            E::ConversationReassigned(e) => self.assigned(at, envelope, e.conversation_id, &e.to),
            E::ConversationUnassigned(e) => {
                if let Some(chat) = self.chats.get_mut(&e.conversation_id) {
                    chat.bot = None;
                }
                self.set_timer(e.conversation_id, None);
            }
            E::BotHandedOff(e) => self.forget(e.conversation_id),
            E::ConversationClosed(e) => match self.chats.get(&e.conversation_id) {
                // Closed before a bot got it: routing does not route it again, so no bot will.
                Some(chat) if chat.bot.is_none() => self.forget(e.conversation_id),
                // Closed while the bot holds it: nobody waits for an answer any more.
                Some(_) => self.set_timer(e.conversation_id, None),
                None => {}
            },
            E::ReplySent(e) if matches!(e.author, ReplyAuthor::Bot { .. }) => {
                self.confirm(|p, i, step| {
                    p.conversation_id == e.conversation_id
                        && matches!(step, Step::Say(_))
                        && p.message_id(i) == e.message_id
                });
            }
            E::ContactRecordCreated(_)
            | E::ContactPropertiesChanged(_)
            | E::ContactIdentityLinked(_)
            | E::ContactsMerged(_) => {
                let cause = envelope.metadata.causation_id;
                self.confirm(|p, _, step| p.trigger == cause && matches!(step, Step::Collect(..)));
            }
            _ => {}
        }
    }

    /// The channel's bot `before` was disabled or replaced: it hands off what it holds.
    fn bot_replaced(
        &mut self,
        (position, event_id): (Position, Uuid),
        envelope: &Envelope,
        before: &ChatBotConfigured,
    ) {
        let held: Vec<Uuid> = self
            .chats
            .iter()
            .filter(|(_, c)| c.channel_id == before.channel_id && c.bot == Some(before.bot_id))
            .map(|(id, _)| *id)
            .collect();
        for conversation_id in held {
            self.set_timer(conversation_id, None);
            let Some(chat) = self.chats.get_mut(&conversation_id) else {
                continue;
            };
            let reaction = chat.dialogue.reconfigured();
            self.decided(
                position,
                Kind::Event,
                (conversation_id, before.bot_id),
                (event_id, envelope.metadata.correlation_id),
                reaction,
            );
        }
    }

    /// Marks done the pending steps `done` picks, and drops reactions done entirely.
    fn confirm(&mut self, done: impl Fn(&Pending, usize, &Step) -> bool) {
        let mut finished = Vec::new();
        for (key, pending) in &mut self.pending {
            let hits: Vec<usize> = pending
                .steps
                .iter()
                .enumerate()
                .filter(|(i, (step, _))| done(pending, *i, step))
                .map(|(i, _)| i)
                .collect();
            for i in hits {
                pending.steps[i].1 = true;
            }
            if pending.steps.iter().all(|(_, done)| *done) {
                finished.push(*key);
            }
        }
        for key in finished {
            self.pending.remove(&key);
        }
    }

    /// Decides the handoffs of conversations whose unanswered message has waited too long.
    fn time_out(&mut self, now: DateTime<Utc>) {
        let due: Vec<Uuid> = self
            .deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, id)| *id)
            .collect();
        for conversation_id in due {
            let timer = self.chats.get(&conversation_id).and_then(|c| c.timer);
            self.set_timer(conversation_id, None);
            let Some((_, trigger, position)) = timer else {
                continue;
            };
            let Some(mut chat) = self.chats.get(&conversation_id).cloned() else {
                continue;
            };
            let Some(config) = self.speaking(&chat).cloned() else {
                continue;
            };
            let reaction = chat.dialogue.time_out(&config);
            self.chats.insert(conversation_id, chat);
            self.decided(
                position,
                Kind::Timeout,
                (conversation_id, config.bot_id),
                (trigger, trigger),
                reaction,
            );
        }
    }

    /// The earliest deadline, if a conversation waits for one.
    fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }
}

/// The bot reactor's kind of [`Reactor`].
#[derive(Debug)]
pub enum BotKind {}

/// The running bot reactor.
pub type BotReactor = Reactor<BotKind>;

impl BotReactor {
    /// Starts the reactor on `service`'s store.
    pub fn spawn(service: Arc<CommandService>) -> BotReactor {
        Reactor::start(|processed| run(service, processed))
    }
}

#[tracing::instrument(skip_all, name = "bot_reactor")]
async fn run(
    service: Arc<CommandService>,
    processed: watch::Sender<Position>,
) -> Result<(), ServiceError> {
    let store: Arc<dyn EventStore> = service.store().clone();
    let index = store.write_index();
    let start_head = store.head().await?;
    let (mut state, mut saved): (State, Position) =
        snapshot::load(index.as_ref(), SNAPSHOT, SNAPSHOT_FORMAT, start_head).await?;
    processed.send_replace(saved);
    let mut events = store.subscribe_all(saved);
    // Nothing is done before the whole history up to the start is folded in.
    let mut caught_up = start_head <= saved;
    if caught_up {
        act(&service, &mut state).await;
    }
    loop {
        let wait = if state.pending.is_empty() {
            state.next_deadline().map(|deadline| {
                (deadline - service.clock().now())
                    .to_std()
                    .unwrap_or_default()
                    .min(TICK)
            })
        } else {
            Some(TICK)
        };
        let next = match (caught_up, wait) {
            (true, Some(wait)) => match tokio::time::timeout(wait, events.next()).await {
                Ok(next) => next,
                Err(_) => {
                    act(&service, &mut state).await;
                    continue;
                }
            },
            _ => events.next().await,
        };
        let Some(recorded) = next else {
            return Ok(());
        };
        let recorded = recorded?;
        let envelope = codec::decode(&recorded)?;
        state.evolve((recorded.position, recorded.event_id), &envelope);
        caught_up = caught_up || recorded.position >= start_head;
        if caught_up {
            act(&service, &mut state).await;
        }
        processed.send_replace(recorded.position);
        if recorded.position.0 >= saved.0 + SNAPSHOT_EVERY {
            let saving = snapshot::save(
                index.as_ref(),
                SNAPSHOT,
                SNAPSHOT_FORMAT,
                &state,
                recorded.position,
            );
            if let Err(e) = saving.await {
                tracing::warn!(error = %e, "saving the bot reactor's snapshot failed");
            }
            saved = recorded.position;
        }
    }
}

/// The name of the bot reactor's snapshot in the write index.
const SNAPSHOT: &str = "chat-bots";

/// The layout of the snapshot; one of another layout is ignored (and the log folded again).
const SNAPSHOT_FORMAT: u32 = 1;

/// How many events may pass between snapshots: a start folds at most about this many.
const SNAPSHOT_EVERY: u64 = 20_000;

/// Decides the timeouts that are due, then carries out the pending reactions in log order: each
/// one's steps in order, a conversation's reactions one after another. A step refused by the
/// domain (the bot no longer holds the conversation, a contact merged away) is given up; one
/// that failed otherwise (store, conflict) stops its conversation until the next try.
async fn act(service: &CommandService, state: &mut State) {
    state.time_out(service.clock().now());
    let mut stopped: BTreeSet<Uuid> = BTreeSet::new();
    let keys: Vec<(Position, Kind, Uuid)> = state.pending.keys().copied().collect();
    for key in keys {
        let Some(mut pending) = state.pending.remove(&key) else {
            continue;
        };
        if stopped.contains(&pending.conversation_id) {
            state.pending.insert(key, pending);
            continue;
        }
        let chat = state.chats.get(&pending.conversation_id).cloned();
        for i in 0..pending.steps.len() {
            if pending.steps[i].1 {
                continue;
            }
            let conversation_id = pending.conversation_id;
            match carry_out(service, &pending, i, chat.as_ref()).await {
                Ok(()) => {}
                Err(ServiceError::Domain(error)) => {
                    tracing::debug!(%conversation_id, %error, "bot step not applied");
                }
                Err(error) => {
                    tracing::warn!(%conversation_id, %error, "bot step failed; will retry");
                    stopped.insert(conversation_id);
                    break;
                }
            }
            pending.steps[i].1 = true;
        }
        if pending.steps.iter().any(|(_, done)| !done) {
            state.pending.insert(key, pending);
        }
    }
}

/// Carries out step `i` of `pending`.
async fn carry_out(
    service: &CommandService,
    pending: &Pending,
    i: usize,
    chat: Option<&Chat>,
) -> Result<(), ServiceError> {
    let conversation_id = pending.conversation_id;
    let as_bot = |key: String| meta(Actor::Bot { id: pending.bot_id }, pending, key);
    match &pending.steps[i].0 {
        Step::Say(text) => {
            let command = ConversationCommand::SendReply {
                message_id: pending.message_id(i),
                body_text: text.clone(),
                body_html: None,
                subject: None,
                attachments: Vec::new(),
            };
            once(
                service,
                as_bot(pending.key(i)),
                conversation(conversation_id, command),
            )
            .await?;
        }
        Step::HandOff(cause) => {
            tracing::info!(%conversation_id, ?cause, "bot hands off");
            let command = ConversationCommand::HandOffFromBot { to: None };
            once(
                service,
                as_bot(pending.key(i)),
                conversation(conversation_id, command),
            )
            .await?;
        }
        Step::Collect(collects, value) => {
            let Some(chat) = chat else {
                return Ok(());
            };
            collect(service, pending, i, chat, *collects, value).await?;
        }
    }
    Ok(())
}

/// Executes `command` unless its idempotency key was used for a command that ran: a step found
/// pending again after a restart (its effect not recognisable in the log, such as a change that
/// wrote nothing) is not repeated, however long ago it ran. A key another reactor holds (its
/// command running, or left running by a crash) is not taken for done: executing waits for that
/// command and answers with what it wrote, or takes the key over once the claim is stale, so the
/// steps after it never go before it.
async fn once(
    service: &CommandService,
    meta: CommandMeta,
    command: Command,
) -> Result<(), ServiceError> {
    if let Some(key) = &meta.idempotency_key
        && service.key_done(&meta.actor, key).await?
    {
        return Ok(());
    }
    service.execute(meta, command).await?;
    Ok(())
}

fn conversation(conversation_id: Uuid, command: ConversationCommand) -> Command {
    Command::Conversation {
        conversation_id,
        command: Box::new(command),
    }
}

/// The metadata of a command the bot sends for `pending`: by `actor`, caused by the trigger and
/// in its correlation, with the idempotency `key`.
fn meta(actor: Actor, pending: &Pending, key: String) -> CommandMeta {
    CommandMeta {
        actor,
        correlation_id: Some(pending.correlation_id),
        causation_id: Some(pending.trigger),
        idempotency_key: Some(key),
        fingerprint: None,
        expected_version: None,
    }
}

/// Records an answer in the visitor's contact (see the module's documentation).
async fn collect(
    service: &CommandService,
    pending: &Pending,
    i: usize,
    chat: &Chat,
    collects: BotCollects,
    value: &str,
) -> Result<(), ServiceError> {
    let conversation_id = pending.conversation_id;
    let as_system = |suffix: &str| {
        meta(
            Actor::System {
                component: "chat-bot".into(),
            },
            pending,
            format!("{}{suffix}", pending.key(i)),
        )
    };
    let contact = match &chat.customer {
        Some(identity) => service.contact_holding(identity).await?,
        None => None,
    }
    .or(chat.contact_id);
    let created = contact_for(conversation_id);
    // An address typed into a chat is not proof of owning it: the bot writes only onto the
    // contact it made for this visitor, never links the visitor to a known contact, never
    // merges, and keeps an address another contact holds as the visitor's `claimed_email`,
    // for an agent to judge. (Otherwise anyone could rename a customer's record, or be shown
    // as them to agents, by typing their address.)
    let claimed =
        |address: &str| BTreeMap::from([("claimed_email".to_owned(), address.to_owned())]);
    match (collects, contact) {
        (BotCollects::Name, Some(contact_id)) if contact_id == created => {
            let command = ContactCommand::ChangeProperties {
                set: BTreeMap::from([("name".to_owned(), value.to_owned())]),
                unset: Vec::new(),
            };
            once(
                service,
                as_system(""),
                Command::Contact {
                    contact_id,
                    command,
                },
            )
            .await?;
        }
        (BotCollects::Name, None) => {
            let command = Command::CreateContact {
                contact_id: created,
                identities: chat.customer.iter().cloned().collect(),
                properties: BTreeMap::from([("name".to_owned(), value.to_owned())]),
                from_conversation: Some(conversation_id),
            };
            once(service, as_system(""), command).await?;
        }
        (BotCollects::Email, Some(contact_id)) if contact_id == created => {
            let command = ContactCommand::LinkIdentity {
                identity: Identity::Email {
                    address: value.to_owned(),
                },
            };
            let contact = |command| Command::Contact {
                contact_id,
                command,
            };
            match once(service, as_system(""), contact(command)).await {
                Err(ServiceError::Domain(error)) if taken(&error) => {
                    let command = ContactCommand::ChangeProperties {
                        set: claimed(value),
                        unset: Vec::new(),
                    };
                    once(service, as_system(":claimed"), contact(command)).await?;
                }
                other => {
                    other?;
                }
            }
        }
        (BotCollects::Email, None) => {
            let create = |identities: Vec<Identity>, properties| Command::CreateContact {
                contact_id: created,
                identities,
                properties,
                from_conversation: Some(conversation_id),
            };
            let email = Identity::Email {
                address: value.to_owned(),
            };
            let visitor: Vec<Identity> = chat.customer.iter().cloned().collect();
            let with_email = visitor.iter().cloned().chain([email]).collect();
            match once(service, as_system(""), create(with_email, BTreeMap::new())).await {
                Err(ServiceError::Domain(error)) if taken(&error) => {
                    let command = create(visitor, claimed(value));
                    once(service, as_system(":claimed"), command).await?;
                }
                other => {
                    other?;
                }
            }
        }
        // A contact the bot did not make (the visitor was recognised otherwise): left as it is;
        // the answer stays in the conversation for agents.
        (BotCollects::Name | BotCollects::Email, Some(_)) => {}
    }
    Ok(())
}

/// Whether `error` says an identity belongs to another contact.
fn taken(error: &DomainError) -> bool {
    matches!(error, DomainError::Rejected { code: "TAKEN", .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step whose key another reactor claimed and has not finished is not counted done: it
    /// runs once that claim is settled (here left stale by a crash, then taken over).
    #[tokio::test]
    async fn a_step_claimed_elsewhere_runs_once_the_claim_is_settled() {
        use proto_events::clock::{Clock, ManualClock};
        use switchboard_domain::setup::SetupCommand;
        use switchboard_store::index::{KeyState, KeyUse};
        use switchboard_store_sqlite::{SqliteOptions, SqliteStore};

        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn switchboard_store::EventStore> =
            Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let service = Arc::new(
            CommandService::open(store.clone(), clock.clone())
                .await
                .unwrap(),
        );
        let actor = Actor::System {
            component: "chat-bot".into(),
        };
        let key = "bot:step-held-elsewhere".to_owned();
        // Another reactor claimed the step and stopped before writing anything.
        let claim = KeyUse {
            fingerprint: None,
            correlation_id: Uuid::now_v7(),
            owner: Uuid::now_v7(),
            used_at: clock.now(),
            salt: 0,
            state: KeyState::Pending,
        };
        store
            .write_index()
            .claim(
                &crate::view::key_scope(&actor),
                &key,
                &claim,
                clock.now() - chrono::Duration::days(1),
            )
            .await
            .unwrap();
        let meta = CommandMeta {
            actor,
            correlation_id: None,
            causation_id: None,
            idempotency_key: Some(key),
            fingerprint: None,
            expected_version: None,
        };
        let command = Command::Setup(SetupCommand::CreateOrganisation {
            organisation_id: Uuid::now_v7(),
            name: "Acme".into(),
            time_zone: "Europe/Berlin".into(),
        });
        let step = tokio::spawn({
            let service = service.clone();
            async move { once(&service, meta, command).await }
        });
        clock.advance(chrono::Duration::seconds(60));
        tokio::time::timeout(Duration::from_secs(30), step)
            .await
            .expect("the step waits for the claim, then runs")
            .unwrap()
            .unwrap();
        assert!(
            service
                .view()
                .await
                .unwrap()
                .directory
                .organisation
                .is_some(),
            "the step was counted done without running"
        );
    }

    #[test]
    fn the_state_survives_its_snapshot() {
        let conversation_id = Uuid::from_u128(7);
        let mut state = State::default();
        state.chats.insert(
            conversation_id,
            Chat {
                channel_id: Uuid::from_u128(1),
                customer: Some(Identity::ChatVisitor {
                    visitor_id: "v".into(),
                }),
                contact_id: None,
                bot: Some(Uuid::from_u128(2)),
                dialogue: Dialogue {
                    greeted: true,
                    asking: Some(1),
                    attempts: 2,
                    handed_off: false,
                },
                opening: vec!["hello".into()],
                timer: Some((DateTime::UNIX_EPOCH, Uuid::from_u128(3), Position(9))),
            },
        );
        state
            .deadlines
            .insert((DateTime::UNIX_EPOCH, conversation_id));
        state.pending.insert(
            (Position(9), Kind::Timeout, conversation_id),
            Pending {
                conversation_id,
                bot_id: Uuid::from_u128(2),
                trigger: Uuid::from_u128(3),
                kind: Kind::Timeout,
                correlation_id: Uuid::from_u128(4),
                steps: vec![
                    (Step::Say("bye".into()), true),
                    (
                        Step::HandOff(switchboard_domain::chatbot::HandoffCause::Timeout),
                        false,
                    ),
                ],
            },
        );
        let json = serde_json::to_vec(&state).expect("serialises");
        let back: State = serde_json::from_slice(&json).expect("deserialises");
        assert_eq!(format!("{back:?}"), format!("{state:?}"));
    }
}
