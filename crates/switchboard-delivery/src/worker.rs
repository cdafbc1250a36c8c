//! [`DeliveryWorker`]: follows the log, sends each pending e-mail reply through the relay (and
//! each Messenger reply through the Send API), and records what became of it.
//!
//! The pending set is folded from the log alone: a `ReplySent` of an e-mail or form
//! conversation (or a Messenger one, when the Send API is configured) is pending until a `DeliverySucceeded` or a permanent `DeliveryFailed` for its
//! message follows. Nothing is sent before the log is folded up to the head it had at the start,
//! so what was delivered before a restart is known and not sent again.
//!
//! Every node that runs the worker folds the log, but only the one holding the store's
//! `delivery` lease sends (on PostgreSQL, one node at a time; another takes over when it goes
//! away). A hand-over may send a reply the old holder was sending again, as a restart may.
//!
//! One attempt: find the sending address and display name in the write side's directory, read
//! the attachments from the blob store, build the message, hand it to the relay, then record the
//! outcome through the command service as the system component `delivery`. A temporary failure
//! is recorded once per distinct reason (the domain writes nothing for a repeat) and tried again
//! with exponential backoff; once `retry_for` has passed since the reply was written, the next
//! failure is recorded as permanent. A reply first seen after its window had passed is failed
//! without being sent. If recording fails after the relay accepted the message,
//! only the recording is tried again, never the sending.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lettre::message::Mailbox;
use proto_events::clock::Clock;
use proto_events::event::{ChannelConfig, ChannelKind, ReplyAuthor, ReplySent, SmtpServer};
use proto_events::{Actor, DomainEvent};
use switchboard_domain::DomainError;
use switchboard_domain::conversation::{ConversationCommand, DeliveryOutcome};
use switchboard_domain::directory::Directory;
use switchboard_service::{Command, CommandMeta, CommandService, ServiceError};
use switchboard_store::secret::{SecretId, Vault};
use switchboard_store::{EventStore, Position};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use switchboard_codec as codec;

use crate::DeliveryError;
use crate::chat::UnseenReplies;
use crate::messenger::{GraphApi, Window};
use crate::mime::{self, File};
use crate::relay::{Failure, Relay, RelayUrl};

/// The actor's component name in recorded outcomes.
pub const COMPONENT: &str = "delivery";

/// The lease ([`EventStore::lease`]) a node must hold to send.
pub const LEASE: &str = "delivery";

/// The display name of a reply's `From`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FromName {
    /// The author's name: the agent's, the bot's, or the automation's.
    Agent,
    /// The inbox's name.
    Inbox,
    /// "Agent via Inbox" (default): who wrote, and for which team.
    #[default]
    AgentViaInbox,
}

impl std::str::FromStr for FromName {
    type Err = String;

    /// `agent`, `inbox` or `agent_via_inbox`, as the configuration writes them.
    fn from_str(text: &str) -> Result<FromName, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "agent" => Ok(FromName::Agent),
            "inbox" => Ok(FromName::Inbox),
            "agent_via_inbox" => Ok(FromName::AgentViaInbox),
            other => Err(format!(
                "{other:?} is not a sender name; use agent, inbox or agent_via_inbox"
            )),
        }
    }
}

/// What the worker is configured with.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Where replies are sent, unless their channel has an SMTP server of its own. Without
    /// either, a reply fails (temporarily, then for good after `retry_for`) saying so.
    pub relay: Option<Relay>,
    /// Opens the passwords of channels' own SMTP servers; without it, such channels' replies
    /// fail saying so.
    pub vault: Option<Vault>,
    /// How long after a reply was written temporary failures are tried again; the next failure
    /// after that is recorded as permanent.
    pub retry_for: Duration,
    /// The display name of `From`.
    pub from_name: FromName,
    /// The clock `retry_for` is measured on (the one the replies' times come from).
    pub clock: Arc<dyn Clock>,
    /// Meta's Send API, for replies of Messenger conversations (their page tokens opened from
    /// `vault`); `None`: those replies are left alone.
    pub messenger: Option<GraphApi>,
    /// How long an agent's chat reply may go unseen by a visitor who left an e-mail address
    /// before it is e-mailed to them (ADR 0006); `None`: chat replies are never e-mailed.
    pub chat_email_unseen_after: Option<Duration>,
}

/// A running worker.
#[derive(Debug)]
pub struct DeliveryWorker {
    /// The last position folded; every reply up to it has been tried at least once, unless the
    /// worker is still folding the history it found at the start.
    pub processed: watch::Receiver<Position>,
    /// The task; it ends with the store's subscription, or with the error that stopped it.
    pub task: tokio::task::JoinHandle<Result<(), DeliveryError>>,
}

impl DeliveryWorker {
    /// Starts the worker on `service`'s store.
    pub fn spawn(service: Arc<CommandService>, settings: DeliverySettings) -> DeliveryWorker {
        let (processed_tx, processed) = watch::channel(Position::START);
        let task = tokio::spawn(run(service, settings, processed_tx));
        DeliveryWorker { processed, task }
    }
}

/// The person a Messenger conversation answers, folded from its inbound messages.
#[derive(Debug)]
struct Customer {
    /// Their page-scoped id: the Send API's recipient.
    psid: String,
    /// When their last message was received: Messenger's reply windows count from here.
    last_message_at: DateTime<Utc>,
}

/// How long after a person's last message a page may answer (Messenger's standard window).
const RESPONSE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// How long a page with the human-agent tag may answer.
const HUMAN_AGENT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// A reply waiting for its outcome.
#[derive(Debug)]
struct Pending {
    reply: ReplySent,
    /// The `ReplySent` event: what the outcome is caused by.
    event_id: Uuid,
    correlation_id: Uuid,
    /// When the reply was written: `retry_for` counts from here.
    written_at: DateTime<Utc>,
    /// Attempts made by this process.
    attempts: u32,
    /// When to try next.
    due: Instant,
    /// The relay accepted it but the outcome is not recorded yet: record only.
    accepted: Option<Option<String>>,
    /// The last temporary failure recorded, so that a repeat is not sent to the service again.
    last_recorded: Option<String>,
}

impl Pending {
    /// A reply to send, written at `written_at`, from the event that made it one to send (its
    /// `ReplySent`, or the `ChatReplyEmailed` of a chat reply, which keeps its reply's time).
    fn new(
        reply: ReplySent,
        written_at: DateTime<Utc>,
        event_id: Uuid,
        envelope: &proto_events::Envelope,
    ) -> Pending {
        Pending {
            reply,
            event_id,
            correlation_id: envelope.metadata.correlation_id,
            written_at,
            attempts: 0,
            due: Instant::now(),
            accepted: None,
            last_recorded: None,
        }
    }
}

/// Asks the conversation to e-mail a chat reply the visitor has not seen (the domain writes
/// nothing if they saw it meanwhile). A refusal that may change (no address to send from yet,
/// no address to send to) is recorded as a temporary delivery failure of the reply, once per
/// reason, so agents see why, and asked again with backoff until the window ends.
async fn request_email(
    service: &CommandService,
    settings: &DeliverySettings,
    unseen: &mut UnseenReplies,
    due: crate::chat::Due,
) {
    let message_id = due.message_id;
    let meta = CommandMeta {
        actor: Actor::System {
            component: COMPONENT.into(),
        },
        correlation_id: Some(due.correlation_id),
        causation_id: Some(due.event_id),
        idempotency_key: Some(format!("chat-email:{message_id}")),
        fingerprint: None,
        expected_version: None,
    };
    let command = Command::Conversation {
        conversation_id: due.conversation_id,
        command: Box::new(ConversationCommand::EmailUnseenReply { message_id }),
    };
    match service.execute(meta, command).await {
        Ok(_) => tracing::info!(%message_id, "an unseen chat reply is to go out by e-mail"),
        Err(ServiceError::Domain(
            error @ DomainError::Rejected {
                code: "NO_SENDER_ADDRESS" | "NO_RECIPIENT",
                ..
            },
        )) => {
            tracing::warn!(%message_id, %error, "an unseen chat reply cannot go out by e-mail yet; will ask again");
            let reason = format!("not e-mailed yet: {error}");
            let outcome = DeliveryOutcome::Failed {
                reason: reason.clone(),
                permanent: false,
                status: None,
            };
            record(service, &due, outcome).await;
            unseen.retry(message_id, Some(reason), |n| backoff(settings.retry_for, n));
        }
        Err(ServiceError::Domain(error)) => {
            tracing::warn!(%message_id, %error, "an unseen chat reply cannot go out by e-mail; given up");
            unseen.give_up(message_id);
        }
        Err(error) => {
            tracing::warn!(%message_id, %error, "asking to e-mail an unseen chat reply failed; will retry");
            unseen.retry(message_id, None, |n| backoff(settings.retry_for, n));
        }
    }
}

/// Records `outcome` for the chat reply of `due`; a failure to record is only logged (the
/// reply is asked for again anyway).
async fn record(service: &CommandService, due: &crate::chat::Due, outcome: DeliveryOutcome) {
    let meta = CommandMeta {
        causation_id: Some(due.event_id),
        correlation_id: Some(due.correlation_id),
        ..CommandMeta::by(Actor::System {
            component: COMPONENT.into(),
        })
    };
    let command = Command::Conversation {
        conversation_id: due.conversation_id,
        command: Box::new(ConversationCommand::RecordDelivery {
            message_id: due.message_id,
            outcome,
        }),
    };
    if let Err(error) = service.execute(meta, command).await {
        tracing::warn!(message_id = %due.message_id, %error, "why a chat reply was not e-mailed could not be recorded");
    }
}

#[tracing::instrument(skip_all, name = "delivery_worker")]
async fn run(
    service: Arc<CommandService>,
    settings: DeliverySettings,
    processed: watch::Sender<Position>,
) -> Result<(), DeliveryError> {
    let store: Arc<dyn EventStore> = service.store().clone();
    let start_head = store.head().await?;
    match &settings.relay {
        Some(relay) => tracing::info!(relay = %relay.url(), "delivering e-mail replies"),
        None => tracing::warn!(
            "delivering e-mail replies of channels with their own SMTP server only: no relay \
             is configured (smtp_relay_url)"
        ),
    }
    if let Some(graph) = &settings.messenger {
        tracing::info!(send_api = %graph.endpoint(), "delivering Messenger replies");
    }
    let mut pending: HashMap<Uuid, Pending> = HashMap::new();
    let mut customers: HashMap<Uuid, Customer> = HashMap::new();
    let mut unseen = settings
        .chat_email_unseen_after
        .map(|after| UnseenReplies::new(after, settings.retry_for));
    let mut caught_up = start_head == Position::START;
    // The last event folded, where the log is followed again after a failed read.
    let mut after = Position::START;
    let mut read_failures = 0u32;
    let mut events = store.subscribe_all(after);
    // One node at a time sends (several share a PostgreSQL store); every node folds.
    let mut lease = store.lease(LEASE);
    loop {
        let next_due = if caught_up && lease.is_held() {
            let chat = unseen
                .as_ref()
                .and_then(|unseen| unseen.next_due(settings.clock.now()));
            pending.values().map(|p| p.due).chain(chat).min()
        } else {
            None
        };
        tokio::select! {
            biased;
            Ok(()) = lease.held.changed() => {
                let held = lease.is_held();
                tracing::info!(held, "the delivery lease changed hands");
            }
            recorded = events.next() => {
                let Some(recorded) = recorded else { return Ok(()) };
                let recorded = match recorded {
                    Ok(recorded) => recorded,
                    Err(error) => {
                        // A database that went away for a moment must not end outbound mail
                        // until the next restart: follow the log again, after a pause.
                        read_failures += 1;
                        let pause = Duration::from_millis(100)
                            .saturating_mul(1 << read_failures.min(8))
                            .min(Duration::from_secs(30));
                        tracing::warn!(%error, ?pause, "reading the log failed; following it again");
                        tokio::time::sleep(pause).await;
                        events = store.subscribe_all(after);
                        continue;
                    }
                };
                read_failures = 0;
                // An event that does not decode is a bug or damage: stop, as routing does.
                let envelope = codec::decode(&recorded)?;
                let messenger = settings.messenger.is_some();
                fold(&mut pending, &mut customers, messenger, recorded.event_id, &envelope);
                if let Some(emailed) = unseen
                    .as_mut()
                    .and_then(|unseen| unseen.fold(recorded.event_id, &envelope))
                {
                    pending.entry(emailed.reply.message_id).or_insert_with(|| {
                        Pending::new(emailed.reply, emailed.written_at, recorded.event_id, &envelope)
                    });
                }
                if recorded.position >= start_head {
                    caught_up = true;
                }
                after = recorded.position;
                processed.send_replace(recorded.position);
            }
            () = sleep_until(next_due), if next_due.is_some() => {
                if let Some(unseen) = unseen.as_mut() {
                    for due in unseen.take_due(settings.clock.now()) {
                        if lease.is_held() {
                            request_email(&service, &settings, unseen, due).await;
                        } else {
                            // Another node took over meanwhile: this one asks again only if it
                            // holds the lease again.
                            unseen.release(due.message_id);
                        }
                    }
                }
                let now = Instant::now();
                let mut due: Vec<(Instant, Uuid)> = pending
                    .iter()
                    .filter(|(_, p)| p.due <= now)
                    .map(|(id, p)| (p.due, *id))
                    .collect();
                due.sort();
                for (_, message_id) in due {
                    // Another node may have taken over while this one was sending.
                    if !lease.is_held() {
                        break;
                    }
                    attempt(&service, &settings, &mut pending, &customers, message_id).await;
                }
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Folds one event into the pending set, and into the Messenger conversations' customers.
/// Messenger replies are pending only when `messenger` replies are sent here.
fn fold(
    pending: &mut HashMap<Uuid, Pending>,
    customers: &mut HashMap<Uuid, Customer>,
    messenger: bool,
    event_id: Uuid,
    envelope: &proto_events::Envelope,
) {
    let ours = |kind: ChannelKind| match kind {
        ChannelKind::Email | ChannelKind::Form => true,
        ChannelKind::Messenger => messenger,
        _ => false,
    };
    match &envelope.payload {
        DomainEvent::MessageReceived(received) => {
            if let proto_events::event::Identity::Messenger { psid } = &received.message.from {
                customers.insert(
                    received.conversation_id,
                    Customer {
                        psid: psid.clone(),
                        last_message_at: envelope.metadata.occurred_at,
                    },
                );
            }
        }
        DomainEvent::ReplySent(reply) if ours(reply.channel_kind) => {
            // A form reply without e-mail headers has nobody to go to by e-mail: not ours.
            if reply.channel_kind == ChannelKind::Form && reply.email.is_none() {
                return;
            }
            pending.entry(reply.message_id).or_insert_with(|| {
                Pending::new(
                    reply.clone(),
                    envelope.metadata.occurred_at,
                    event_id,
                    envelope,
                )
            });
        }
        // Nothing goes out from a conversation erased (its contact erased, or retention).
        DomainEvent::ConversationErased(e) => {
            pending.retain(|_, p| p.reply.conversation_id != e.conversation_id);
            customers.remove(&e.conversation_id);
        }
        DomainEvent::DeliverySucceeded(e) => {
            pending.remove(&e.message_id);
        }
        DomainEvent::DeliveryFailed(e) if e.permanent => {
            pending.remove(&e.message_id);
        }
        DomainEvent::DeliveryFailed(e) => {
            if let Some(p) = pending.get_mut(&e.message_id) {
                p.last_recorded = Some(e.reason.clone());
            }
        }
        _ => {}
    }
}

/// One attempt at a pending reply: send (unless the relay already took it) and record.
async fn attempt(
    service: &CommandService,
    settings: &DeliverySettings,
    pending: &mut HashMap<Uuid, Pending>,
    customers: &HashMap<Uuid, Customer>,
    message_id: Uuid,
) {
    let Some(p) = pending.get_mut(&message_id) else {
        return;
    };
    p.attempts += 1;
    let waited = (settings.clock.now() - p.written_at)
        .to_std()
        .unwrap_or_default();
    let sent = match p.accepted.clone() {
        Some(provider_id) => Ok(provider_id),
        // First seen when its window had already passed (no relay was configured, or no node ran
        // the worker, for that long): too late to surprise the customer with it now.
        None if p.attempts == 1 && waited >= settings.retry_for => {
            Err(Failure::permanent(format!(
                "not sent: no delivery was attempted within {} of the reply",
                humane(settings.retry_for)
            )))
        }
        None if p.reply.channel_kind == ChannelKind::Messenger => {
            let customer = customers.get(&p.reply.conversation_id);
            send_messenger(service, settings, customer, &p.reply).await
        }
        None => send(service, settings, &p.reply).await,
    };
    let (outcome, final_outcome) = match sent {
        Ok(provider_message_id) => {
            p.accepted = Some(provider_message_id.clone());
            tracing::info!(%message_id, provider_message_id = ?provider_message_id, "reply delivered to the relay");
            (
                DeliveryOutcome::Succeeded {
                    provider_message_id,
                },
                true,
            )
        }
        Err(failure) if failure.permanent => {
            tracing::warn!(%message_id, reason = %failure.reason, "reply not delivered");
            (failed(failure), true)
        }
        Err(failure) => {
            if waited >= settings.retry_for {
                tracing::warn!(%message_id, reason = %failure.reason, "reply not delivered; giving up");
                let reason = format!(
                    "not delivered within {}: {}",
                    humane(settings.retry_for),
                    failure.reason
                );
                (
                    failed(Failure {
                        reason,
                        permanent: true,
                        ..failure
                    }),
                    true,
                )
            } else {
                let delay = backoff(settings.retry_for, p.attempts)
                    .min(settings.retry_for.saturating_sub(waited));
                tracing::info!(%message_id, reason = %failure.reason, retry_in = ?delay, "reply not delivered yet; will retry");
                p.due = Instant::now() + delay;
                if p.last_recorded.as_deref() == Some(failure.reason.as_str()) {
                    return;
                }
                p.last_recorded = Some(failure.reason.clone());
                (failed(failure), false)
            }
        }
    };
    let meta = CommandMeta {
        actor: Actor::System {
            component: COMPONENT.into(),
        },
        correlation_id: Some(p.correlation_id),
        causation_id: Some(p.event_id),
        idempotency_key: final_outcome.then(|| format!("delivery:{message_id}")),
        fingerprint: None,
        expected_version: None,
    };
    let command = Command::Conversation {
        conversation_id: p.reply.conversation_id,
        command: Box::new(ConversationCommand::RecordDelivery {
            message_id,
            outcome,
        }),
    };
    match service.execute(meta, command).await {
        Ok(_) if final_outcome => {
            pending.remove(&message_id);
        }
        Ok(_) => {}
        Err(ServiceError::Domain(error)) => {
            // The conversation refuses the outcome (it does not know the message): nothing to
            // record it on, and nothing another attempt would change.
            tracing::warn!(%message_id, %error, "delivery outcome refused; dropping the reply");
            pending.remove(&message_id);
        }
        Err(error) => {
            tracing::warn!(%message_id, %error, "recording the delivery outcome failed; will retry");
            if let Some(p) = pending.get_mut(&message_id) {
                let delay = backoff(settings.retry_for, p.attempts);
                p.due = Instant::now() + delay;
                if !final_outcome {
                    p.last_recorded = None;
                }
            }
        }
    }
}

fn failed(failure: Failure) -> DeliveryOutcome {
    DeliveryOutcome::Failed {
        reason: failure.reason,
        permanent: failure.permanent,
        status: failure.status,
    }
}

/// Builds `reply`'s message and hands it to the relay.
async fn send(
    service: &CommandService,
    settings: &DeliverySettings,
    reply: &ReplySent,
) -> Result<Option<String>, Failure> {
    let Some(headers) = &reply.email else {
        return Err(Failure::permanent("the reply has no e-mail headers"));
    };
    let (from, own_server) = {
        // The view is a read lock on the write side: released before any network wait.
        let view = service
            .view()
            .await
            .map_err(|e| Failure::transient(format!("the directory could not be read: {e}")))?;
        let own_server = match reply.channel_kind {
            ChannelKind::Email => view
                .directory
                .channels
                .get(&reply.channel_id)
                .and_then(|c| c.servers.smtp.clone()),
            _ => None,
        };
        (
            sender(&view.directory, reply, settings.from_name)?,
            own_server,
        )
    };
    let own_relay = match own_server {
        Some(server) => Some(channel_relay(settings, &server).await?),
        None => None,
    };
    let relay = own_relay
        .as_ref()
        .or(settings.relay.as_ref())
        .ok_or_else(|| {
            Failure::transient(
                "no SMTP relay is configured (smtp_relay_url) and the channel has no SMTP server \
             of its own",
            )
        })?;
    let mut files = Vec::with_capacity(reply.attachments.len());
    for attachment in &reply.attachments {
        let sha256 = &attachment.blob.sha256;
        let bytes = service
            .store()
            .blobs()
            .get(sha256)
            .await
            .map_err(|e| Failure::transient(format!("attachment {sha256} could not be read: {e}")))?
            .ok_or_else(|| {
                Failure::permanent(format!("attachment {sha256} is not in the blob store"))
            })?;
        files.push(File { attachment, bytes });
    }
    let message = mime::build(reply, headers, from, files).map_err(Failure::permanent)?;
    relay.send(message).await
}

/// Sends a Messenger `reply` to `customer` through the Send API, with its page's token, in
/// whichever of Messenger's windows it still falls.
async fn send_messenger(
    service: &CommandService,
    settings: &DeliverySettings,
    customer: Option<&Customer>,
    reply: &ReplySent,
) -> Result<Option<String>, Failure> {
    let graph = settings
        .messenger
        .as_ref()
        .ok_or_else(|| Failure::transient("the Send API is not configured here"))?;
    let customer = customer
        .ok_or_else(|| Failure::permanent("the conversation has no Messenger message to answer"))?;
    let page = {
        let view = service
            .view()
            .await
            .map_err(|e| Failure::transient(format!("the directory could not be read: {e}")))?;
        view.directory
            .channels
            .get(&reply.channel_id)
            .map(|c| c.messenger)
            .unwrap_or_default()
    };
    let since = settings.clock.now() - customer.last_message_at;
    let window = if since <= RESPONSE_WINDOW {
        Window::Response
    } else if page.human_agent_tag && since <= HUMAN_AGENT_WINDOW {
        Window::HumanAgent
    } else {
        return Err(Failure::permanent(format!(
            "not sent: the customer's last message is older than Messenger's {} window",
            if page.human_agent_tag {
                "7-day"
            } else {
                "24-hour"
            }
        )));
    };
    let secret = page.page_token_secret.ok_or_else(|| {
        Failure::transient("the page has no access token: set one (updateMessengerChannel)")
    })?;
    let vault = settings
        .vault
        .as_ref()
        .ok_or_else(|| Failure::transient("the page token cannot be opened here (no vault)"))?;
    let token = vault
        .get(SecretId(secret))
        .await
        .map_err(|e| Failure::transient(format!("the page token: {e}")))?
        .ok_or_else(|| {
            Failure::transient("the page token is missing: set it again (updateMessengerChannel)")
        })?;
    graph
        .send(token.expose(), &customer.psid, &reply.body_text, window)
        .await
}

/// How long one SMTP command to a channel's own server may wait for its answer.
const CHANNEL_SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to a channel's own SMTP server, its password opened from the vault.
async fn channel_relay(settings: &DeliverySettings, server: &SmtpServer) -> Result<Relay, Failure> {
    let credentials = match (&server.username, server.password_secret) {
        (Some(user), Some(secret)) => {
            let vault = settings.vault.as_ref().ok_or_else(|| {
                Failure::transient("the channel's SMTP password cannot be opened here (no vault)")
            })?;
            let password = vault
                .get(SecretId(secret))
                .await
                .map_err(|e| Failure::transient(format!("the channel's SMTP password: {e}")))?
                .ok_or_else(|| {
                    Failure::transient(
                        "the channel's SMTP password is missing: set it again (updateEmailChannel)",
                    )
                })?;
            Some((user.clone(), password.expose().to_owned()))
        }
        _ => None,
    };
    let url = RelayUrl::for_server(server, credentials);
    Relay::new(&url, CHANNEL_SMTP_TIMEOUT).map_err(|e| Failure::transient(e.to_string()))
}

/// The `From` of `reply`: the address of its channel (an e-mail channel's own, also the one
/// an e-mailed chat reply goes out through; a form's inbox's team or fallback address), with
/// the configured display name.
fn sender(directory: &Directory, reply: &ReplySent, names: FromName) -> Result<Mailbox, Failure> {
    let address = match reply.channel_kind {
        ChannelKind::Form => directory.inbox_email_address(reply.inbox_id),
        _ => match directory.channels.get(&reply.channel_id).map(|c| &c.config) {
            Some(ChannelConfig::Email { address, .. }) => Some(address.as_str()),
            _ => None,
        },
    }
    .ok_or_else(|| {
        Failure::permanent("the conversation's inbox has no e-mail address to send from")
    })?;
    let address = address
        .trim()
        .parse()
        .map_err(|e| Failure::permanent(format!("{address:?} cannot send mail: {e}")))?;
    let author = match &reply.author {
        ReplyAuthor::User { id } => directory.users.get(id).map(|u| u.name.clone()),
        ReplyAuthor::Bot { id } => directory.bots.get(id).cloned(),
        ReplyAuthor::Automation { name } => Some(name.clone()),
    };
    let inbox = directory
        .inboxes
        .get(&reply.inbox_id)
        .map(|inbox| inbox.name.clone());
    let name = match (names, author, inbox) {
        (FromName::Agent, Some(author), _) => Some(author),
        (FromName::AgentViaInbox, Some(author), Some(inbox)) => {
            Some(format!("{author} via {inbox}"))
        }
        (FromName::AgentViaInbox, Some(author), None) => Some(author),
        (_, _, inbox) => inbox,
    };
    Ok(Mailbox::new(
        name.map(|n| n.chars().filter(|c| !c.is_control()).collect()),
        address,
    ))
}

/// The wait after attempt `attempt` (from 1): a sixteenth of the retry window (between 100 ms
/// and 30 s), doubling with each attempt up to 30 minutes.
fn backoff(retry_for: Duration, attempt: u32) -> Duration {
    let first = (retry_for / 16).clamp(Duration::from_millis(100), Duration::from_secs(30));
    first
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(30 * 60))
}

/// A duration as the configuration writes it.
fn humane(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0 => format!("{}ms", duration.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_sixteenth_of_the_window() {
        let day = Duration::from_secs(86_400);
        assert_eq!(backoff(day, 1), Duration::from_secs(30));
        assert_eq!(backoff(day, 2), Duration::from_secs(60));
        assert_eq!(backoff(day, 40), Duration::from_secs(1_800));
        assert_eq!(
            backoff(Duration::from_secs(2), 1),
            Duration::from_millis(125)
        );
        assert_eq!(
            backoff(Duration::from_millis(10), 1),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn durations_read_as_configured() {
        assert_eq!(humane(Duration::from_secs(86_400)), "1d");
        assert_eq!(humane(Duration::from_secs(7_200)), "2h");
        assert_eq!(humane(Duration::from_secs(90)), "90s");
        assert_eq!(humane(Duration::from_millis(500)), "500ms");
    }
}
