//! [`CommandService`]: load, decide, append, retry.

mod contacts;
mod conversations;
mod erasure;
mod records;

pub use self::conversations::chat_conversation_id;
pub use self::conversations::messenger_conversation_id;

use std::collections::BTreeMap;
use std::sync::Arc;

use proto_events::clock::Clock;
use proto_events::event::{Identity, InboundMessage, RecordRef};
use proto_events::{Actor, DomainEvent, Metadata};
use switchboard_domain::channel::{self, ChannelCommand};
use switchboard_domain::contact::reservation::Reservation;
use switchboard_domain::contact::{ContactCommand, MergeContacts};
use switchboard_domain::conversation::ConversationCommand;
use switchboard_domain::filter::MailSignals;
use switchboard_domain::record::{self, RecordCommand};
use switchboard_domain::setup::{self, SetupCommand};
use switchboard_domain::{Context, DomainError};
use switchboard_store::blob::Blob;
use switchboard_store::{Direction, EventStore, ExpectedVersion, Position, StoreError, StreamFrom};
use tokio::sync::RwLockReadGuard;
use uuid::Uuid;

use crate::ServiceError;
use crate::view::{SharedView, WriteView, key_scope};
use switchboard_codec as codec;
use switchboard_store::index::{Claim, Finish, KeyOutcome, KeyState, KeyUse};

/// The pause before attempt `attempt` (from 2): exponential from 1 ms up to 64 ms, with jitter so
/// that writers who collided do not collide again in step.
fn backoff(attempt: u32) -> std::time::Duration {
    let ceiling_micros = 1000u64 << attempt.saturating_sub(2).min(6);
    // The random bits of a UUIDv7 are a good enough source of jitter.
    let jitter = (Uuid::now_v7().as_u128() as u64) % ceiling_micros;
    std::time::Duration::from_micros(ceiling_micros / 2 + jitter / 2)
}

/// Who sends a command and how it relates to others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMeta {
    /// Who issues it; access rules are checked against this actor.
    pub actor: Actor,
    /// The conversation of commands this one belongs to; a new one when `None`.
    pub correlation_id: Option<Uuid>,
    /// The message (event or request) that caused this command; the command's own id when `None`.
    pub causation_id: Option<Uuid>,
    /// Repeating a command with the same key (per actor) returns the first result and writes
    /// nothing, also after a restart.
    pub idempotency_key: Option<String>,
    /// What the key is bound to: a digest of the request the client sent with it (the API's
    /// mutation and its input). Another command with a used key is refused with
    /// [`ServiceError::IdempotencyKeyReused`] and writes nothing. `None`: the key is not bound
    /// (commands the system derives its keys for).
    pub fingerprint: Option<String>,
    /// The version of the target stream the client decided on. When set, the command fails with
    /// [`ServiceError::Conflict`] instead of being decided again if the stream has moved.
    pub expected_version: Option<u64>,
}

impl CommandMeta {
    /// A command by `actor` with no other metadata.
    pub fn by(actor: Actor) -> CommandMeta {
        CommandMeta {
            actor,
            correlation_id: None,
            causation_id: None,
            idempotency_key: None,
            fingerprint: None,
            expected_version: None,
        }
    }
}

/// Everything the write side can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Organisation, users, teams, inboxes.
    Setup(SetupCommand),
    /// Connect, disconnect or move channels; routing rules; e-mail filter rules.
    Channel(ChannelCommand),
    /// A customer's message arrived through a channel. The service finds its conversation
    /// (threading, the visitor's conversation, or a new one), its contact and whether e-mail
    /// filters catch it.
    ReceiveMessage {
        /// The channel it came through.
        channel_id: Uuid,
        /// The message; its `contact_id` and `channel_kind` are filled in by the service.
        message: Box<InboundMessage>,
        /// The mail headers filters look at (e-mail only).
        signals: Option<MailSignals>,
    },
    /// Reply, comment, assign, close, reopen, hand off, share, record a delivery, restore.
    Conversation {
        /// The conversation.
        conversation_id: Uuid,
        /// What to do.
        command: Box<ConversationCommand>,
    },
    /// Create a contact (by hand, or from a visitor of `from_conversation`). Its identities are
    /// reserved first: if one belongs to another contact already, the command fails with
    /// `TAKEN` and the message names that contact.
    CreateContact {
        /// The new contact's id.
        contact_id: Uuid,
        /// E-mail addresses, chat visitor ids, Messenger ids it is recognised by.
        identities: Vec<Identity>,
        /// Properties, snake_case names.
        properties: BTreeMap<String, String>,
        /// The conversation the visitor wrote in ("record created" from a visitor).
        from_conversation: Option<Uuid>,
    },
    /// Change properties, link an identity, or change the owner of an existing contact.
    Contact {
        /// The contact.
        contact_id: Uuid,
        /// What to do.
        command: ContactCommand,
    },
    /// Merge `merged_id` into `survivor_id`.
    MergeContacts(MergeContacts),
    /// Erase a contact, the contacts merged into it and their conversations (admins; ADR
    /// 0007): their identities are released, their keys destroyed (see
    /// [`CommandService::with_erasure_keys`]), and read models drop them.
    ///
    /// `prepared` is [`CommandService::prepare_erasure`]'s read of the log, made before the
    /// command: without it the command reads the whole log while it holds the write view,
    /// which other commands then wait for.
    EraseContact {
        contact_id: Uuid,
        reason: String,
        prepared: Option<Arc<crate::subject::Scan>>,
    },
    /// Erase one conversation on its own (the system, as the retention reactor does, or an
    /// admin; ADR 0007): `ConversationErased`, naming no contact, with the command's
    /// idempotency key; then its files that no conversation left standing references are
    /// deleted and its key destroyed (see [`CommandService::with_erasure_keys`]), also after a
    /// repeat of the command or a retry refused as `ERASED`. From then on it refuses every
    /// command and read models drop it.
    ///
    /// Its key is the conversation's: the data subject of what its sender wrote before being
    /// recognised as a contact. Once the sender is a contact, the contact is the subject of
    /// their messages (sealed under the contact's key, or redacted on reading once the contact's
    /// erasure is recorded), which this leaves alone: the contact lives on, with their other
    /// conversations. Those fields stay readable in the log, and to a subject access, until the
    /// contact is erased. The read models drop the conversation either way, and its files are
    /// deleted either way.
    ///
    /// `prepared` is [`CommandService::prepare_conversation_erasure`]'s read of the log
    /// (brought up to date or not): without it the command reads the whole log to find which
    /// files only this conversation references.
    EraseConversation {
        conversation_id: Uuid,
        reason: String,
        prepared: Option<Arc<crate::subject::Scan>>,
    },
    /// Create a company.
    CreateCompany {
        company_id: Uuid,
        name: String,
        domain: Option<String>,
    },
    /// Create a deal.
    CreateDeal {
        deal_id: Uuid,
        name: String,
        stage: Option<String>,
        owner_user_id: Option<Uuid>,
    },
    /// Create a ticket, possibly from a conversation.
    CreateTicket {
        ticket_id: Uuid,
        subject: String,
        conversation_id: Option<Uuid>,
    },
    /// Associate two records (contact, company, deal, ticket, conversation).
    AssociateRecords { from: RecordRef, to: RecordRef },
    /// Remove an association.
    DissociateRecords { from: RecordRef, to: RecordRef },
}

impl Command {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Setup(_) => "setup",
            Command::Channel(_) => "channel",
            Command::ReceiveMessage { .. } => "receive_message",
            Command::Conversation { .. } => "conversation",
            Command::CreateContact { .. } => "create_contact",
            Command::Contact { .. } => "contact",
            Command::MergeContacts(_) => "merge_contacts",
            Command::EraseContact { .. } => "erase_contact",
            Command::EraseConversation { .. } => "erase_conversation",
            Command::CreateCompany { .. } => "create_company",
            Command::CreateDeal { .. } => "create_deal",
            Command::CreateTicket { .. } => "create_ticket",
            Command::AssociateRecords { .. } => "associate_records",
            Command::DissociateRecords { .. } => "dissociate_records",
        }
    }

    /// Whether deciding again on newer state is always safe after a version conflict. Most
    /// commands are checked against the state they are decided on, so they are. Not so a reply
    /// (a new customer message may have arrived that the agent has not read: Front and HubSpot
    /// warn instead of sending; a reply is decided again only when nothing of the kind came in,
    /// see `CommandService::reply_commutes`) or a change of contact properties (the values were
    /// chosen looking at the old ones): those report the conflict with the current version.
    fn redecidable(&self) -> bool {
        match self {
            Command::Contact { command, .. } => {
                !matches!(command, ContactCommand::ChangeProperties { .. })
            }
            Command::Conversation { command, .. } => {
                !matches!(**command, ConversationCommand::SendReply { .. })
            }
            _ => true,
        }
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The stream it appended to.
    pub stream: String,
    /// That stream's version after the command.
    pub stream_version: u64,
    /// Position of its first event (the head at the time when it wrote nothing).
    pub first_position: Position,
    /// Position of its last event: a query waiting for this position sees the command's effects.
    pub last_position: Position,
    /// True when the command was a repeat (same idempotency key) and wrote nothing new.
    pub replayed: bool,
    /// How many events this call wrote to `stream` (0 for a repeat, or a command that changed
    /// nothing, such as a duplicate delivery).
    pub written: u64,
}

/// Executes commands against an event store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct CommandService {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    view: Arc<SharedView>,
    fallback_domain: String,
    /// How long an idempotency key binds (see [`CommandService::with_key_lifetime`]).
    key_lifetime: chrono::Duration,
    /// Seals personal fields at append (see [`CommandService::with_keyring`]).
    keyring: Option<Arc<switchboard_codec::keyring::Keyring>>,
    /// Destroys data subjects' keys on erasure (see [`CommandService::with_erasure_keys`]).
    erasure_keys: Option<Arc<switchboard_codec::keyring::Keyring>>,
    /// Names new reservations of customers' values (see
    /// [`CommandService::with_reservation_names`]).
    names: Option<proto_events::streams::NameKey>,
}

/// How long an idempotency key binds unless configured: a day, as payment APIs keep theirs.
pub const DEFAULT_KEY_LIFETIME: chrono::Duration = chrono::Duration::hours(24);

/// The namespace of the event ids of commands with an idempotency key (see
/// [`keyed_event_id`]).
const KEYED_EVENTS: Uuid = Uuid::from_u128(0x3f6a_92d4_7c1e_4b08_b5e2_19ad_60c7_f2d1);

/// Commands that commute with everything but a customer's new message (a reply) are decided
/// again until done, within this bound, however often concurrent writers get there first.
const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// A claim on an idempotency key older than this, still pending, belongs to a request that
/// stopped (a crash, a lost node): a repeat settles it from the log or takes it over. Longer
/// than a command retries conflicts ([`RETRY_FOR`]).
const STALE_CLAIM: std::time::Duration = std::time::Duration::from_secs(45);

/// The domain of automatic fallback addresses unless configured (a reserved name: operators set
/// their own, whose MX points at the inbound mail gateway).
pub const DEFAULT_FALLBACK_DOMAIN: &str = "inbox.switchboard.invalid";

/// The namespace of fallback channel ids, derived from their inbox's id.
const FALLBACK_CHANNELS: Uuid = Uuid::from_u128(0x8d3e_51c2_0b7a_4f6e_a1d9_2c44_7e90_b135);

impl CommandService {
    /// A service over `store`, with its view from the store's write index, caught up.
    pub async fn open(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<CommandService, ServiceError> {
        let view = SharedView::open(&store).await?;
        Ok(CommandService {
            store,
            clock,
            view,
            fallback_domain: DEFAULT_FALLBACK_DOMAIN.to_owned(),
            key_lifetime: DEFAULT_KEY_LIFETIME,
            keyring: None,
            erasure_keys: None,
            names: None,
        })
    }

    /// The store the service writes to.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The clock the service stamps events with (reactors measure their deadlines by it).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The contact that holds `identity` now (its reservation's holder), if any.
    pub async fn contact_holding(&self, identity: &Identity) -> Result<Option<Uuid>, ServiceError> {
        let (_, reservation, _) = self.reservation_of(identity).await?;
        Ok(reservation.holder())
    }

    /// The reservation of `identity`, with the stream it is kept in and that stream's version:
    /// its keyed name ([`CommandService::with_reservation_names`]), unless it is still held
    /// under its plain name. Only one of the two is ever held: a value is reserved under the
    /// keyed name only when the plain one is free, and the plain one is only written again by
    /// its holder (releasing or handing it on).
    pub(crate) async fn reservation_of(
        &self,
        identity: &Identity,
    ) -> Result<(String, Reservation, Option<u64>), ServiceError> {
        let initial = Reservation::of_identity(identity);
        let plain = initial.stream();
        let keyed = match &self.names {
            Some(names) => names.unique(initial.scope(), initial.value()),
            None => plain.clone(),
        };
        let (state, version) = self
            .load(&keyed, initial.clone(), Reservation::evolve)
            .await?;
        if version.is_none() && keyed != plain {
            let (held, held_version) = self.load(&plain, initial, Reservation::evolve).await?;
            if held.is_held() {
                return Ok((plain, held, held_version));
            }
        }
        Ok((keyed, state, version))
    }

    /// The write-side view, caught up with the store's head.
    pub async fn view(&self) -> Result<RwLockReadGuard<'_, WriteView>, ServiceError> {
        let head = self.store.head().await?;
        self.view.at(self.store.as_ref(), head).await
    }

    /// The write-side view as it is, without catching up: for a look-up that may answer from
    /// a slightly old directory and catch up only when that has no answer (what a command then
    /// decides is decided against the head, so a stale "yes" is checked again there).
    pub async fn view_as_is(&self) -> RwLockReadGuard<'_, WriteView> {
        self.view.as_is().await
    }

    /// Sets how long an idempotency key binds (default [`DEFAULT_KEY_LIFETIME`]): within it, a
    /// repeat returns the first result and another command with the key is refused; after it,
    /// the key may be used again.
    pub fn with_key_lifetime(mut self, lifetime: chrono::Duration) -> CommandService {
        self.key_lifetime = lifetime;
        self
    }

    /// Seals every event's personal fields with its data subject's key before appending it (ADR
    /// 0007). The store must be read through the same keys
    /// ([`switchboard_codec::keyring::KeyedStore`]), or the service cannot read what it wrote.
    pub fn with_keyring(
        mut self,
        keyring: Arc<switchboard_codec::keyring::Keyring>,
    ) -> CommandService {
        self.names = self.names.take().or_else(|| keyring.names());
        self.erasure_keys = Some(keyring.clone());
        self.keyring = Some(keyring);
        self
    }

    /// Destroys data subjects' keys in this keyring when a contact or a conversation is erased
    /// ([`Command::EraseContact`], [`Command::EraseConversation`]), whether or not this service
    /// seals new events: older events may be sealed. Without it an erasure only records the
    /// event, and read models drop the person.
    /// Names new reservations of customers' values by the keyring's name key too (see
    /// [`CommandService::with_reservation_names`]).
    pub fn with_erasure_keys(
        mut self,
        keyring: Arc<switchboard_codec::keyring::Keyring>,
    ) -> CommandService {
        self.names = self.names.take().or_else(|| keyring.names());
        self.erasure_keys = Some(keyring);
        self
    }

    /// Names the reservation streams of customers' values that are reserved from now on by a
    /// keyed hash of the value (ADR 0007), so that no stream name, which the chain covers and
    /// an erasure cannot change, holds a customer's address. A value still held under its plain
    /// name (reserved before, or by a service without the key) stays there until released.
    /// Every service writing to one store must use the same key (the master key's, which
    /// [`CommandService::with_keyring`] and [`CommandService::with_erasure_keys`] take), or two
    /// of them could each reserve one value under a name the other does not look at.
    pub fn with_reservation_names(
        mut self,
        names: proto_events::streams::NameKey,
    ) -> CommandService {
        self.names = Some(names);
        self
    }

    /// Sets the domain of automatic fallback addresses (default [`DEFAULT_FALLBACK_DOMAIN`]):
    /// an inbox without team e-mail gets `<inbox>-<id>@<domain>`.
    pub fn with_fallback_domain(mut self, domain: impl Into<String>) -> CommandService {
        self.fallback_domain = domain.into();
        self
    }

    /// Decides `command` and appends its events. Returns once they are durable. An inbox left
    /// without team e-mail (just created, or its last shared address disconnected or moved away)
    /// then gets its fallback address.
    pub async fn execute(
        &self,
        meta: CommandMeta,
        command: Command,
    ) -> Result<Outcome, ServiceError> {
        self.execute_with_blobs(meta, command, Vec::new()).await
    }

    /// [`execute`](Self::execute), storing `blobs` (the bytes the command's events reference: an
    /// e-mail's original and attachments) with its first append, in the same commit where the
    /// store can. A command that writes nothing (a repeat) stores none of them.
    pub async fn execute_with_blobs(
        &self,
        meta: CommandMeta,
        command: Command,
        blobs: Vec<Blob>,
    ) -> Result<Outcome, ServiceError> {
        let outcome = self.execute_one(&meta, &command, &blobs).await;
        // The keys of an erased contact go once it is recorded erased: after the erasure, after
        // a repeat of it, and after a retry refused as ERASED (the first attempt may have
        // stopped before this step).
        if let Command::EraseContact { contact_id, .. } = &command {
            self.destroy_erased_keys(*contact_id).await?;
        }
        // The same for a conversation erased on its own: its files and its key.
        if let Command::EraseConversation {
            conversation_id,
            prepared,
            ..
        } = &command
            && matches!(
                &outcome,
                Ok(_)
                    | Err(ServiceError::Domain(DomainError::Rejected {
                        code: "ERASED",
                        ..
                    }))
            )
        {
            self.finish_conversation_erasure(*conversation_id, prepared.as_deref())
                .await?;
        }
        let outcome = outcome?;
        // Also after a repeat: the first attempt may have stopped before this step, and it is
        // idempotent (the fallback channel's id is derived from the inbox).
        {
            let inboxes = match &command {
                Command::Setup(SetupCommand::CreateInbox { inbox_id, .. }) => vec![*inbox_id],
                Command::Channel(ChannelCommand::Disconnect { channel_id })
                | Command::Channel(ChannelCommand::MoveToInbox { channel_id, .. }) => {
                    // The inbox the channel was in before is in the event just written.
                    self.inbox_left_by(*channel_id).await?.into_iter().collect()
                }
                _ => Vec::new(),
            };
            for inbox_id in inboxes {
                self.assign_fallback_if_needed(inbox_id, outcome.last_position)
                    .await?;
            }
        }
        Ok(outcome)
    }

    /// The inbox a channel last left (by disconnection or move), from its stream.
    async fn inbox_left_by(&self, channel_id: Uuid) -> Result<Option<Uuid>, ServiceError> {
        let stream = proto_events::streams::channel(channel_id);
        let (left, _) = self
            .load(
                &stream,
                None,
                |left: &mut Option<Uuid>, event| match event {
                    DomainEvent::ChannelDisconnected(e) => *left = Some(e.inbox_id),
                    DomainEvent::ChannelMoved(e) => *left = Some(e.from_inbox_id),
                    _ => {}
                },
            )
            .await?;
        Ok(left)
    }

    /// Gives `inbox_id` a fallback address if it has no team e-mail and none yet. The channel id
    /// is derived from the inbox, so two nodes doing this at once write one channel.
    async fn assign_fallback_if_needed(
        &self,
        inbox_id: Uuid,
        cause: Position,
    ) -> Result<(), ServiceError> {
        let (needed, name) = {
            let view = self.view().await?;
            let name = view
                .directory
                .inboxes
                .get(&inbox_id)
                .map(|i| i.name.clone())
                .unwrap_or_default();
            (
                channel::fallback_address_needed(&view.directory, inbox_id),
                name,
            )
        };
        if !needed {
            return Ok(());
        }
        let slug = name
            .to_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let short = &inbox_id.simple().to_string()[..8];
        let local = if slug.is_empty() {
            "inbox".to_owned()
        } else {
            slug
        };
        let address = format!("{local}-{short}@{}", self.fallback_domain);
        let channel_id = Uuid::new_v5(&FALLBACK_CHANNELS, inbox_id.as_bytes());
        let meta = CommandMeta {
            actor: Actor::System {
                component: "fallback-address".into(),
            },
            correlation_id: None,
            causation_id: None,
            idempotency_key: Some(format!("fallback:{inbox_id}:{cause}")),
            fingerprint: None,
            expected_version: None,
        };
        let command = Command::Channel(ChannelCommand::AssignFallbackAddress {
            channel_id,
            inbox_id,
            address,
        });
        match self.execute_one(&meta, &command, &[]).await {
            // Another node got there first: the inbox has its address.
            Ok(_) | Err(ServiceError::Domain(DomainError::Rejected { .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(skip_all, fields(command = command.name()))]
    async fn execute_one(
        &self,
        meta: &CommandMeta,
        command: &Command,
        blobs: &[Blob],
    ) -> Result<Outcome, ServiceError> {
        let command_id = Uuid::now_v7();
        let correlation_id = meta.correlation_id.unwrap_or(command_id);
        let Some(key) = &meta.idempotency_key else {
            return self
                .decide_and_append(meta, command, blobs, command_id, correlation_id, 0)
                .await;
        };
        // The key is claimed before anything is written: of two requests with one key, only
        // one runs its command; the other answers with its outcome, or is refused.
        let owner = Uuid::now_v7();
        let (salt, correlation_id) = match self.claim_key(meta, key, owner, correlation_id).await? {
            Claimed::Mine {
                salt,
                correlation_id,
            } => (salt, correlation_id),
            Claimed::Answered(outcome) => return Ok(outcome),
        };
        let result = self
            .decide_and_append(meta, command, blobs, command_id, correlation_id, salt)
            .await;
        let how = match &result {
            Ok(outcome) => Finish::Done(KeyOutcome {
                stream: outcome.stream.clone(),
                stream_version: outcome.stream_version,
                first_position: outcome.first_position,
                last_position: outcome.last_position,
            }),
            // Refused before its main append, which alone carries the key: nothing keyed was
            // written, the key is free again (with the same salt, so the same request resumes
            // whatever it wrote before the main stream).
            Err(
                ServiceError::Domain(_)
                | ServiceError::Conflict { .. }
                | ServiceError::IdempotencyKeyReused { .. }
                | ServiceError::Store(
                    StoreError::WrongExpectedVersion { .. }
                    | StoreError::IdempotencyConflict { .. }
                    | StoreError::EmptyAppend
                    | StoreError::DuplicateEventId { .. }
                    | StoreError::AppendTooLarge { .. },
                ),
            ) => Finish::Free,
            // Perhaps committed (a connection lost at commit): the next request with the key
            // settles it from the log or takes it over.
            Err(_) => Finish::Abandoned,
        };
        let finished = self
            .store
            .write_index()
            .finish(&key_scope(&meta.actor), key, owner, how)
            .await;
        if let Err(e) = finished {
            // The command's outcome stands: its main append is in the log, where the next
            // catch-up's fold settles the key's use.
            tracing::warn!(error = %e, "recording an idempotency key's use failed");
        }
        result
    }

    /// Claims `key` for an attempt (`owner`) of the command of `correlation_id`: the salt and
    /// correlation id of its use, or the answer to a request that repeats the key's live use
    /// (its outcome, or `IdempotencyKeyReused` when the request differs). While another request
    /// with the key runs, this one waits for it. A claim left pending for [`STALE_CLAIM`] (a
    /// crash, a lost node, a store failure of unknown outcome) is settled from the log if its
    /// main append is there, else taken over with its salt and correlation id, so the events it
    /// may have written are written once.
    async fn claim_key(
        &self,
        meta: &CommandMeta,
        key: &str,
        owner: Uuid,
        correlation_id: Uuid,
    ) -> Result<Claimed, ServiceError> {
        let index = self.store.write_index();
        let scope = key_scope(&meta.actor);
        let stale_after = chrono::Duration::from_std(STALE_CLAIM).unwrap_or_default();
        let mut attempt = 1;
        loop {
            let now = self.clock.now();
            let claim = KeyUse {
                fingerprint: meta.fingerprint.clone(),
                correlation_id,
                owner,
                used_at: now,
                salt: 0,
                state: KeyState::Pending,
            };
            let held = match index
                .claim(&scope, key, &claim, now - self.key_lifetime)
                .await?
            {
                Claim::Won {
                    salt,
                    correlation_id,
                } => {
                    return Ok(Claimed::Mine {
                        salt,
                        correlation_id,
                    });
                }
                Claim::Held(held) => held,
            };
            if let (Some(used), Some(this)) = (&held.fingerprint, &meta.fingerprint)
                && used != this
            {
                return Err(ServiceError::IdempotencyKeyReused {
                    key: key.to_owned(),
                });
            }
            match held.state {
                KeyState::Done(outcome) => {
                    return Ok(Claimed::Answered(Outcome {
                        stream: outcome.stream,
                        stream_version: outcome.stream_version,
                        first_position: outcome.first_position,
                        last_position: outcome.last_position,
                        replayed: true,
                        written: 0,
                    }));
                }
                KeyState::Pending if now - held.used_at >= stale_after => {
                    // Its main append may be in the log: the catch-up folds it into the index.
                    drop(self.view().await?);
                    let still = index.key(&scope, key).await?;
                    if still.is_some_and(|row| {
                        row.state == KeyState::Pending && row.owner == held.owner
                    }) && index.take_over(&scope, key, held.owner, &claim).await?
                    {
                        tracing::warn!(key, "took over an idempotency key left pending");
                        return Ok(Claimed::Mine {
                            salt: held.salt,
                            correlation_id: held.correlation_id,
                        });
                    }
                }
                KeyState::Pending => {
                    // Its main append may be in the log already (its owner then lost before
                    // recording it): catching up folds it into the index.
                    drop(self.view().await?);
                    tokio::time::sleep(backoff(attempt.min(8))).await;
                    attempt += 1;
                }
                // A freed key is claimed on the next round.
                KeyState::Free => {}
            }
        }
    }

    /// Decides `command` against the view and appends its events, deciding again after a
    /// version conflict while [`CommandService::retry`] allows.
    async fn decide_and_append(
        &self,
        meta: &CommandMeta,
        command: &Command,
        blobs: &[Blob],
        command_id: Uuid,
        correlation_id: Uuid,
        salt: u64,
    ) -> Result<Outcome, ServiceError> {
        let started = tokio::time::Instant::now();
        let mut attempt = 1;
        loop {
            let view = self.view().await?;
            let run = Run {
                service: self,
                view: &view,
                meta,
                metadata: Metadata {
                    actor: meta.actor.clone(),
                    correlation_id,
                    causation_id: meta.causation_id.unwrap_or(command_id),
                    occurred_at: self.clock.now(),
                    idempotency_key: meta.idempotency_key.clone(),
                    command_fingerprint: meta.fingerprint.clone(),
                },
                salt,
                blobs: std::sync::Mutex::new(blobs.to_vec()),
            };
            let result = run.command(command).await;
            drop(view);
            let error = match result {
                Ok(outcome) => return Ok(outcome),
                Err(error) => error,
            };
            match self.retry(meta, command, &error, attempt, started).await? {
                Some(pause) => {
                    tracing::debug!(attempt, "version conflict, deciding again");
                    attempt += 1;
                    tokio::time::sleep(pause).await;
                }
                None => return Err(error),
            }
        }
    }

    /// Whether `actor` used `key` for a command that ran (its use may have expired since).
    pub async fn key_used(&self, actor: &Actor, key: &str) -> Result<bool, ServiceError> {
        let last = self.last_key_use(actor, key).await?;
        Ok(last.is_some_and(|last| last.state != KeyState::Free))
    }

    /// The latest use of `actor`'s idempotency `key` in the write index.
    async fn last_key_use(&self, actor: &Actor, key: &str) -> Result<Option<KeyUse>, ServiceError> {
        Ok(self.store.write_index().key(&key_scope(actor), key).await?)
    }

    /// Whether a command with `actor`'s idempotency `key` ran to its end (its events are in the
    /// log): not while one runs, nor after one wrote nothing.
    pub async fn key_done(&self, actor: &Actor, key: &str) -> Result<bool, ServiceError> {
        let last = self.last_key_use(actor, key).await?;
        Ok(last.is_some_and(|last| matches!(last.state, KeyState::Done(_))))
    }

    /// The salt the next use of `actor`'s `key` takes (the same as the running or binding use,
    /// one more after it expired): what the API derives the ids of what a keyed mutation
    /// creates from, so that a request taking over a use that stopped creates the same object.
    pub async fn key_salt(&self, actor: &Actor, key: &str) -> Result<u64, ServiceError> {
        let last = self.last_key_use(actor, key).await?;
        Ok(last.map_or(0, |last| {
            last.next_salt(self.clock.now() - self.key_lifetime)
        }))
    }

    /// Whether to decide `command` again after `error`, and after what pause. A version
    /// conflict is retried, until [`RETRY_FOR`] has passed, for commands without an expected
    /// version that may be decided again; a reply only if what came in meanwhile is not a
    /// customer's new message.
    async fn retry(
        &self,
        meta: &CommandMeta,
        command: &Command,
        error: &ServiceError,
        attempt: u32,
        started: tokio::time::Instant,
    ) -> Result<Option<std::time::Duration>, ServiceError> {
        let ServiceError::Conflict {
            stream, expected, ..
        } = error
        else {
            return Ok(None);
        };
        if meta.expected_version.is_some() || started.elapsed() >= RETRY_FOR {
            return Ok(None);
        }
        let again = if command.redecidable() {
            true
        } else {
            self.reply_commutes(command, stream, *expected).await?
        };
        Ok(again.then(|| backoff(attempt + 1)))
    }

    /// Whether a reply without an expected version, decided on `stream` at `decided_on`, may be
    /// decided again: nothing written since is a customer's new message (which the agent has
    /// not read: Front and HubSpot warn rather than send). Comments, other replies, assignments
    /// commute with it.
    async fn reply_commutes(
        &self,
        command: &Command,
        stream: &str,
        decided_on: Option<u64>,
    ) -> Result<bool, ServiceError> {
        let is_reply = matches!(
            command,
            Command::Conversation { command, .. }
                if matches!(**command, ConversationCommand::SendReply { .. })
        );
        if !is_reply {
            return Ok(false);
        }
        let from = decided_on.map_or(0, |v| v + 1);
        let since = self
            .store
            .read_stream(stream, Direction::Forwards, StreamFrom::Version(from), 1000)
            .await?;
        Ok(since.len() < 1000
            && since
                .iter()
                .all(|e| e.event_type != "MessageReceived" && e.event_type != "MessageFiltered"))
    }

    /// Reads a whole stream and folds it into `state`; returns the state and the stream's
    /// version.
    pub(crate) async fn load<S>(
        &self,
        stream: &str,
        state: S,
        mut fold: impl FnMut(&mut S, &DomainEvent),
    ) -> Result<(S, Option<u64>), ServiceError> {
        self.load_envelopes(stream, state, |state, envelope| {
            fold(state, &envelope.payload);
        })
        .await
    }

    /// [`Self::load`], folding whole envelopes (for states that keep when things happened).
    pub(crate) async fn load_envelopes<S>(
        &self,
        stream: &str,
        mut state: S,
        mut fold: impl FnMut(&mut S, &proto_events::Envelope),
    ) -> Result<(S, Option<u64>), ServiceError> {
        const PAGE: usize = 1000;
        let mut version = None;
        let mut from = 0;
        loop {
            let page = self
                .store
                .read_stream(stream, Direction::Forwards, StreamFrom::Version(from), PAGE)
                .await?;
            for recorded in &page {
                fold(&mut state, &codec::decode(recorded)?);
                version = Some(recorded.stream_version);
            }
            if page.len() < PAGE {
                return Ok((state, version));
            }
            from += PAGE as u64;
        }
    }
}

/// One attempt at one command: the view it is decided against and the metadata its events get.
pub(crate) struct Run<'a> {
    service: &'a CommandService,
    view: &'a WriteView,
    meta: &'a CommandMeta,
    metadata: Metadata,
    /// Mixed into the ids of keyed events: the salt of the key's use (see
    /// `switchboard_store::index`).
    salt: u64,
    /// Blobs to store with the command's first append (see
    /// [`CommandService::execute_with_blobs`]); taken by it.
    blobs: std::sync::Mutex<Vec<Blob>>,
}

impl Run<'_> {
    /// The context deciders get.
    pub(crate) fn context(&self) -> Context<'_> {
        Context {
            directory: &self.view.directory,
            actor: &self.meta.actor,
            now: self.metadata.occurred_at,
        }
    }

    async fn command(&self, command: &Command) -> Result<Outcome, ServiceError> {
        self.view.directory.refuse_deactivated(&self.meta.actor)?;
        match command {
            Command::Setup(setup) => {
                let decision = setup::decide(
                    &self.view.directory,
                    &self.meta.actor,
                    setup,
                    self.metadata.occurred_at,
                )?;
                let version = self.view.version(&decision.stream);
                self.append(&decision.stream, version, decision.events)
                    .await
            }
            Command::Channel(channel) => {
                let decision = channel::decide(channel, &self.context())?;
                if let Some(claim) = channel::address_claim(&self.view.directory, &decision) {
                    self.claim_address(claim).await?;
                }
                let version = self.view.version(&decision.stream);
                self.append(&decision.stream, version, decision.events)
                    .await
            }
            Command::ReceiveMessage {
                channel_id,
                message,
                signals,
            } => {
                self.receive_message(*channel_id, (**message).clone(), signals.as_ref())
                    .await
            }
            Command::Conversation {
                conversation_id,
                command,
            } => self.conversation(*conversation_id, command).await,
            Command::CreateContact {
                contact_id,
                identities,
                properties,
                from_conversation,
            } => {
                self.create_contact(*contact_id, identities, properties, *from_conversation)
                    .await
            }
            Command::Contact {
                contact_id,
                command,
            } => self.change_contact(*contact_id, command).await,
            Command::MergeContacts(merge) => self.merge_contacts(merge).await,
            Command::EraseContact {
                contact_id,
                reason,
                prepared,
            } => {
                self.erase_contact(*contact_id, reason, prepared.as_deref())
                    .await
            }
            Command::EraseConversation {
                conversation_id,
                reason,
                ..
            } => {
                self.erase_conversation_alone(*conversation_id, reason)
                    .await
            }
            Command::CreateCompany {
                company_id,
                name,
                domain,
            } => {
                self.record(RecordCommand::CreateCompany {
                    company_id: *company_id,
                    name: name.clone(),
                    domain: domain.clone(),
                })
                .await
            }
            Command::CreateDeal {
                deal_id,
                name,
                stage,
                owner_user_id,
            } => {
                self.record(RecordCommand::CreateDeal {
                    deal_id: *deal_id,
                    name: name.clone(),
                    stage: stage.clone(),
                    owner_user_id: *owner_user_id,
                })
                .await
            }
            Command::CreateTicket {
                ticket_id,
                subject,
                conversation_id,
            } => {
                let conversation = self.ticket_conversation(*conversation_id).await?;
                self.record(RecordCommand::CreateTicket {
                    ticket_id: *ticket_id,
                    subject: subject.clone(),
                    conversation,
                })
                .await
            }
            Command::AssociateRecords { from, to } => {
                let counterpart = self.counterpart(record::canonical(*from, *to).1).await?;
                self.record(RecordCommand::AssociateRecords {
                    from: *from,
                    to: *to,
                    counterpart,
                })
                .await
            }
            Command::DissociateRecords { from, to } => {
                self.record(RecordCommand::DissociateRecords {
                    from: *from,
                    to: *to,
                })
                .await
            }
        }
    }

    /// Appends a channel address claim (or release) to the address's reservation stream, at the
    /// version it was read at: a claim another channel made meanwhile makes this append conflict,
    /// and deciding again answers `TAKEN`; one already held by another channel is `TAKEN` at once.
    async fn claim_address(&self, claim: setup::Decision) -> Result<(), ServiceError> {
        let (scope, value, claimant) = match claim.events.first() {
            Some(DomainEvent::UniqueValueReserved(e)) => (e.scope, &e.value, Some(&e.owner_stream)),
            Some(DomainEvent::UniqueValueReleased(e)) => (e.scope, &e.value, None),
            _ => return Ok(()),
        };
        let (state, version) = self
            .load(
                &claim.stream,
                Reservation::new(scope, value),
                Reservation::evolve,
            )
            .await?;
        if let (Some(holder), Some(claimant)) = (state.holder_stream(), claimant)
            && holder != claimant.as_str()
        {
            return Err(DomainError::Rejected {
                code: "TAKEN",
                field: Some("address"),
                message: "another channel is connected to this address".into(),
            }
            .into());
        }
        self.append_unchecked(&claim.stream, version, claim.events)
            .await?;
        Ok(())
    }

    /// Appends `events` to `stream`, which was at `version` when they were decided (honouring
    /// the client's expected version), and reports what was written. Writing nothing is an
    /// outcome too: the command changed nothing.
    pub(crate) async fn append(
        &self,
        stream: &str,
        version: Option<u64>,
        events: Vec<DomainEvent>,
    ) -> Result<Outcome, ServiceError> {
        self.check_expected(stream, version)?;
        self.write(stream, version, events, &self.metadata).await
    }

    /// Refuses the command when the client's expected version is not the main stream's
    /// `version`. Commands that write secondary streams before the main one call it first, so a
    /// stale client writes nothing at all.
    pub(crate) fn check_expected(
        &self,
        stream: &str,
        version: Option<u64>,
    ) -> Result<(), ServiceError> {
        match self.meta.expected_version {
            Some(expected) if version != Some(expected) => Err(ServiceError::Conflict {
                stream: stream.to_owned(),
                expected: Some(expected),
                actual: version,
            }),
            _ => Ok(()),
        }
    }

    /// [`Self::append`] for the secondary streams of a command (reservations, the other side of
    /// a merge), to which the client's expected version does not apply.
    pub(crate) async fn append_unchecked(
        &self,
        stream: &str,
        version: Option<u64>,
        events: Vec<DomainEvent>,
    ) -> Result<Outcome, ServiceError> {
        // Only the command's main stream carries its idempotency key: an outcome is remembered
        // once the command is complete, so a retry of a half-done command is decided again.
        let metadata = Metadata {
            idempotency_key: None,
            ..self.metadata.clone()
        };
        self.write(stream, version, events, &metadata).await
    }

    async fn write(
        &self,
        stream: &str,
        version: Option<u64>,
        events: Vec<DomainEvent>,
        metadata: &Metadata,
    ) -> Result<Outcome, ServiceError> {
        if events.is_empty() {
            return Ok(Outcome {
                stream: stream.to_owned(),
                stream_version: version.unwrap_or_default(),
                first_position: self.view.position(),
                last_position: self.view.position(),
                replayed: false,
                written: 0,
            });
        }
        let written = events.len() as u64;
        let mut encoded = Vec::with_capacity(events.len());
        for (index, e) in events.iter().enumerate() {
            let mut event = codec::encode(e, metadata);
            if let Some(key) = &metadata.idempotency_key {
                event.event_id = keyed_event_id(&metadata.actor, key, self.salt, stream, index);
            }
            // Sealed once its id is final: the id is bound into the seal.
            if let Some(keyring) = &self.service.keyring {
                event = keyring.seal(event).await?;
            }
            encoded.push(event);
        }
        let blobs = std::mem::take(&mut *self.blobs.lock().unwrap_or_else(|e| e.into_inner()));
        let appended = self
            .service
            .store
            .append_with_blobs(stream, expect(version), encoded, blobs.clone())
            .await;
        if appended.is_err() {
            // Not stored with this append (or perhaps stored, unreferenced): the next one takes
            // them.
            *self.blobs.lock().unwrap_or_else(|e| e.into_inner()) = blobs;
        }
        match appended {
            Ok(r) => Ok(Outcome {
                stream: stream.to_owned(),
                stream_version: r.stream_version,
                first_position: r.first_position,
                last_position: r.last_position,
                replayed: false,
                written,
            }),
            Err(StoreError::WrongExpectedVersion { actual, .. }) => Err(ServiceError::Conflict {
                stream: stream.to_owned(),
                expected: version,
                actual,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads a stream into `S` (see [`CommandService::load`]).
    pub(crate) async fn load<S>(
        &self,
        stream: &str,
        state: S,
        fold: impl FnMut(&mut S, &DomainEvent),
    ) -> Result<(S, Option<u64>), ServiceError> {
        self.service.load(stream, state, fold).await
    }

    /// Loads a stream into `S` by whole envelopes (see [`CommandService::load_envelopes`]).
    pub(crate) async fn load_envelopes<S>(
        &self,
        stream: &str,
        state: S,
        fold: impl FnMut(&mut S, &proto_events::Envelope),
    ) -> Result<(S, Option<u64>), ServiceError> {
        self.service.load_envelopes(stream, state, fold).await
    }
}

/// What claiming an idempotency key came to.
enum Claimed {
    /// The key is this command's, with this salt and correlation id: run it.
    Mine { salt: u64, correlation_id: Uuid },
    /// The key's live use answers this request (a repeat).
    Answered(Outcome),
}

/// The id of the `index`th event a command with idempotency key `key` of `actor` appends to
/// `stream`: the same for every attempt of one use of the key (a retry after a conflict, a
/// request taking over a use that stopped), so the store writes them once. `salt` tells the
/// uses of a key apart.
fn keyed_event_id(actor: &Actor, key: &str, salt: u64, stream: &str, index: usize) -> Uuid {
    let actor = serde_json::to_vec(actor).unwrap_or_default();
    let mut name = Vec::with_capacity(actor.len() + key.len() + stream.len() + 32);
    for part in [actor.as_slice(), key.as_bytes(), stream.as_bytes()] {
        name.extend_from_slice(&(part.len() as u64).to_le_bytes());
        name.extend_from_slice(part);
    }
    name.extend_from_slice(&salt.to_le_bytes());
    name.extend_from_slice(&(index as u64).to_le_bytes());
    Uuid::new_v5(&KEYED_EVENTS, &name)
}

/// The expectation that a stream is exactly where we last saw it.
fn expect(version: Option<u64>) -> ExpectedVersion {
    match version {
        Some(v) => ExpectedVersion::Exact(v),
        None => ExpectedVersion::NoStream,
    }
}
