//! The routing reactor: assigns new conversations by their rules, by itself.
//!
//! It follows the event log and keeps, folded from it alone (never from read models), what
//! routing needs: the conversations waiting for routing, the queued ones, each user's open
//! assigned conversations (load), each rule's round-robin cursor and each contact's owner. When
//! a conversation starts it applies the rule of its channel or inbox through the command service
//! (`ApplyRouting`, which records `ConversationAssigned` with the full reason, or
//! `ConversationQueued` when nobody qualifies). Queued conversations are tried again, oldest
//! first, whenever capacity may have freed up: an agent becomes available, a conversation is
//! closed or unassigned, a capacity is raised.
//!
//! When a user is deactivated, it takes their open conversations from them
//! (`ReleaseFromDeactivated`, recorded as `ConversationUnassigned` with the cause), and routes
//! each again as a bot's handoff is routed (a bot-first rule picks among its people, not the bot
//! again); without a rule the conversation stays unassigned. A conversation of theirs reopened
//! later is released the same way.
//!
//! It never acts twice for the same event: on start it folds the log (from its last snapshot in
//! the write index, saved every `SNAPSHOT_EVERY` events) up to the head before acting, so what
//! was already routed is known; every command it sends carries the idempotency key
//! `routing:<conversation>:<triggering event>`, so even a crash between sending and folding
//! cannot write a second assignment; and `ApplyRouting` on an assigned conversation writes
//! nothing. Given the same log it makes the same decisions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use proto_events::event::{
    Assignee, AssignmentReason, Availability, ConversationOrigin, ConversationVisibility,
};
use proto_events::{Actor, DomainEvent};
use serde::{Deserialize, Serialize};
use switchboard_domain::conversation::{ConversationCommand, Routing as Apply};
use switchboard_domain::routing::{self, Load, RouteRequest, Routing};
use switchboard_store::{EventStore, Position};
use tokio::sync::watch;
use uuid::Uuid;

use switchboard_codec as codec;

use crate::running::Reactor;
use crate::{Command, CommandMeta, CommandService, ServiceError, snapshot};

/// A conversation as routing sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tracked {
    inbox_id: Uuid,
    channel_id: Uuid,
    private_owner: Option<Uuid>,
    contact_id: Option<Uuid>,
    open: bool,
    assignee: Option<Assignee>,
    /// Waiting for routing since this event (started, or handed off by a bot).
    waiting_since: Option<(Position, Uuid)>,
    /// Routed after a bot handed it off: the rule's human targets, not the bot again.
    after_handoff: bool,
    queued: bool,
}

/// Everything the reactor knows, folded from the log.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    conversations: HashMap<Uuid, Tracked>,
    /// Conversations waiting for routing, by the position of the event that made them wait.
    waiting: BTreeMap<Position, (Uuid, Uuid)>,
    /// Queued conversations, oldest first, with the event that queued them.
    queue: BTreeMap<Position, (Uuid, Uuid)>,
    load: HashMap<Uuid, u32>,
    cursors: HashMap<Uuid, Uuid>,
    contact_owners: HashMap<Uuid, Uuid>,
    /// Conversations this reactor assigned whose `ConversationAssigned` it has not folded yet.
    /// Their load and cursor were counted when the command was sent; folding the event must not
    /// move the cursor back to them after later assignments moved it on.
    unconfirmed: HashSet<Uuid>,
    /// Something happened that may let a queued conversation be assigned now.
    capacity_freed: bool,
    /// The correlation id of each event a conversation waits on, so that its routing joins the
    /// same correlation (an auditor following an inbound message sees the assignment it
    /// caused). Entries go when the conversation stops waiting.
    correlations: HashMap<Uuid, Uuid>,
    /// Users deactivated now.
    deactivated: HashSet<Uuid>,
    /// Open conversations of deactivated users still to take from them: the user, and the
    /// event that made it necessary (the deactivation, or a reopening).
    releasing: BTreeMap<Uuid, (Uuid, Uuid)>,
}

impl State {
    fn user_load(&mut self, assignee: &Option<Assignee>, open: bool, delta: i32) {
        if let (Some(Assignee::User { id }), true) = (assignee, open) {
            let load = self.load.entry(*id).or_default();
            *load = load.saturating_add_signed(delta);
            if delta < 0 {
                self.capacity_freed = true;
            }
        }
    }

    fn set_assignee(&mut self, conversation_id: Uuid, assignee: Option<Assignee>) {
        let Some(c) = self.conversations.get(&conversation_id) else {
            return;
        };
        let (old, open) = (c.assignee.clone(), c.open);
        self.user_load(&old, open, -1);
        self.user_load(&assignee, open, 1);
        self.releasing.remove(&conversation_id);
        if let Some(c) = self.conversations.get_mut(&conversation_id) {
            c.assignee = assignee.clone();
            if assignee.is_some() {
                if let Some((position, _)) = c.waiting_since.take() {
                    self.waiting.remove(&position);
                }
                c.queued = false;
            }
        }
        if assignee.is_some() {
            self.queue.retain(|_, (id, _)| *id != conversation_id);
        }
    }

    fn stop_waiting(&mut self, conversation_id: Uuid) {
        if let Some(c) = self.conversations.get_mut(&conversation_id)
            && let Some((position, _)) = c.waiting_since.take()
        {
            self.waiting.remove(&position);
        }
    }

    fn wait(
        &mut self,
        conversation_id: Uuid,
        position: Position,
        event_id: Uuid,
        after_handoff: bool,
    ) {
        if let Some(c) = self.conversations.get_mut(&conversation_id) {
            c.waiting_since = Some((position, event_id));
            c.after_handoff = after_handoff;
            self.waiting.insert(position, (conversation_id, event_id));
        }
    }

    fn evolve(&mut self, position: Position, event_id: Uuid, event: &DomainEvent) {
        use DomainEvent as E;
        match event {
            E::ConversationStarted(e) => {
                let private_owner = match e.visibility {
                    ConversationVisibility::Private { owner_user_id } => Some(owner_user_id),
                    ConversationVisibility::Shared => None,
                };
                self.conversations.insert(
                    e.conversation_id,
                    Tracked {
                        inbox_id: e.inbox_id,
                        channel_id: e.channel_id,
                        private_owner,
                        contact_id: e.contact_id,
                        open: true,
                        assignee: None,
                        waiting_since: None,
                        after_handoff: false,
                        queued: false,
                    },
                );
                if e.origin == ConversationOrigin::Inbound {
                    self.wait(e.conversation_id, position, event_id, false);
                }
            }
            E::ConversationShared(e) => {
                if let Some(c) = self.conversations.get_mut(&e.conversation_id) {
                    c.private_owner = None;
                }
            }
            E::ConversationAssigned(e) => {
                if !self.unconfirmed.remove(&e.conversation_id)
                    && let AssignmentReason::Rule(decision) = &e.reason
                    && let Assignee::User { id } = e.assignee
                {
                    self.cursors.insert(decision.rule_id, id);
                }
                self.set_assignee(e.conversation_id, Some(e.assignee.clone()));
            }
            E::ConversationReassigned(e) => {
                self.set_assignee(e.conversation_id, Some(e.to.clone()))
            }
            E::ConversationUnassigned(e) => {
                self.set_assignee(e.conversation_id, None);
                if let AssignmentReason::AssigneeDeactivated { .. } = e.reason {
                    self.wait(e.conversation_id, position, event_id, true);
                }
            }
            E::ConversationQueued(e) => {
                if let Some(c) = self.conversations.get_mut(&e.conversation_id) {
                    c.queued = true;
                    if let Some((position, _)) = c.waiting_since.take() {
                        self.waiting.remove(&position);
                    }
                    self.queue.insert(position, (e.conversation_id, event_id));
                }
            }
            E::BotHandedOff(e) if e.to.is_none() => {
                self.wait(e.conversation_id, position, event_id, true);
            }
            E::ConversationClosed(e) => {
                if let Some(c) = self.conversations.get(&e.conversation_id) {
                    let assignee = c.assignee.clone();
                    self.user_load(&assignee, true, -1);
                }
                if let Some(c) = self.conversations.get_mut(&e.conversation_id) {
                    c.open = false;
                    if let Some((position, _)) = c.waiting_since.take() {
                        self.waiting.remove(&position);
                    }
                }
                self.queue.retain(|_, (id, _)| *id != e.conversation_id);
                self.releasing.remove(&e.conversation_id);
            }
            // An erased conversation is gone: its agent's load drops, it waits no more.
            E::ConversationErased(e) => {
                if let Some(c) = self.conversations.remove(&e.conversation_id) {
                    self.user_load(&c.assignee, c.open, -1);
                    if let Some((position, _)) = c.waiting_since {
                        self.waiting.remove(&position);
                    }
                }
                self.queue.retain(|_, (id, _)| *id != e.conversation_id);
                self.releasing.remove(&e.conversation_id);
                self.unconfirmed.remove(&e.conversation_id);
            }
            E::ContactErased(e) => {
                self.contact_owners.remove(&e.contact_id);
            }
            E::ConversationReopened(e) => {
                if let Some(c) = self.conversations.get_mut(&e.conversation_id) {
                    c.open = true;
                    let assignee = c.assignee.clone();
                    self.user_load(&assignee, true, 1);
                    if let Some(Assignee::User { id }) = assignee
                        && self.deactivated.contains(&id)
                    {
                        self.releasing.insert(e.conversation_id, (id, event_id));
                    }
                }
            }
            E::UserDeactivated(e) => {
                self.deactivated.insert(e.user_id);
                let theirs = Some(Assignee::User { id: e.user_id });
                let before = self.releasing.len();
                for (id, c) in &self.conversations {
                    if c.open && c.assignee == theirs {
                        self.releasing.insert(*id, (e.user_id, event_id));
                    }
                }
                if self.releasing.len() == before {
                    self.correlations.remove(&event_id);
                }
            }
            E::UserReactivated(e) => {
                self.deactivated.remove(&e.user_id);
                self.releasing.retain(|_, (user, _)| *user != e.user_id);
                self.capacity_freed = true;
            }
            E::ContactOwnerChanged(e) => match e.owner_user_id {
                Some(owner) => {
                    self.contact_owners.insert(e.contact_id, owner);
                }
                None => {
                    self.contact_owners.remove(&e.contact_id);
                }
            },
            E::UserAvailabilityChanged(e) if e.availability == Availability::Available => {
                self.capacity_freed = true;
            }
            E::UserCapacitySet(_)
            | E::TeamMemberAdded(_)
            | E::InboxMemberAdded(_)
            | E::RoutingRuleSet(_) => {
                self.capacity_freed = true;
            }
            _ => {}
        }
    }

    fn request(&self, conversation_id: Uuid) -> Option<(RouteRequest, bool)> {
        let c = self.conversations.get(&conversation_id)?;
        let request = RouteRequest {
            conversation_id,
            inbox_id: c.inbox_id,
            channel_id: c.channel_id,
            private_owner: c.private_owner,
            contact_owner: c
                .contact_id
                .and_then(|id| self.contact_owners.get(&id).copied()),
        };
        Some((request, c.after_handoff))
    }
}

/// The routing reactor's kind of [`Reactor`].
#[derive(Debug)]
pub enum RoutingKind {}

/// The running routing reactor.
pub type RoutingReactor = Reactor<RoutingKind>;

impl RoutingReactor {
    /// Starts the reactor on `service`'s store.
    pub fn spawn(service: Arc<CommandService>) -> RoutingReactor {
        Reactor::start(|processed| run(service, processed))
    }
}

#[tracing::instrument(skip_all, name = "routing_reactor")]
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
    // Nothing is decided before the whole history up to the start is folded in.
    if start_head <= saved {
        act(&service, &mut state).await?;
    }
    while let Some(recorded) = events.next().await {
        let recorded = recorded?;
        let envelope = codec::decode(&recorded)?;
        if triggers_routing(&envelope.payload) {
            state
                .correlations
                .insert(recorded.event_id, envelope.metadata.correlation_id);
        }
        state.evolve(recorded.position, recorded.event_id, &envelope.payload);
        if recorded.position >= start_head {
            act(&service, &mut state).await?;
        }
        processed.send_replace(recorded.position);
        if recorded.position.0 >= saved.0 + SNAPSHOT_EVERY {
            // A snapshot is an optimisation: failing to save one only makes the next start
            // fold more.
            if let Err(e) = snapshot::save(
                index.as_ref(),
                SNAPSHOT,
                SNAPSHOT_FORMAT,
                &state,
                recorded.position,
            )
            .await
            {
                tracing::warn!(error = %e, "saving routing's snapshot failed");
            }
            saved = recorded.position;
        }
    }
    Ok(())
}

/// The name of routing's snapshot in the write index.
const SNAPSHOT: &str = "routing";

/// The layout of the snapshot; one of another layout is ignored (and the log folded again).
const SNAPSHOT_FORMAT: u32 = 1;

/// How many events may pass between snapshots: a start folds at most about this many.
const SNAPSHOT_EVERY: u64 = 20_000;

/// Takes their open conversations from deactivated users, routes every waiting conversation
/// and, if capacity may have freed up, retries the queue.
async fn act(service: &CommandService, state: &mut State) -> Result<(), ServiceError> {
    let releasing: Vec<(Uuid, (Uuid, Uuid))> =
        state.releasing.iter().map(|(c, r)| (*c, *r)).collect();
    for (conversation_id, (user_id, trigger)) in releasing {
        release(service, state, conversation_id, user_id, trigger).await;
    }
    let waiting: Vec<(Position, (Uuid, Uuid))> =
        state.waiting.iter().map(|(p, w)| (*p, *w)).collect();
    for (position, (conversation_id, trigger)) in waiting {
        route_one(service, state, conversation_id, (position, trigger), true).await;
    }
    if std::mem::take(&mut state.capacity_freed) {
        let queued: Vec<(Position, (Uuid, Uuid))> =
            state.queue.iter().map(|(p, w)| (*p, *w)).collect();
        for (position, (conversation_id, trigger)) in queued {
            route_one(service, state, conversation_id, (position, trigger), false).await;
        }
    }
    Ok(())
}

/// Routes one conversation. A first routing records the outcome either way (assigned or
/// queued); a retry of a queued conversation records only an assignment. Failures never stop the
/// reactor: a refused or empty routing is undone (the log says who has the conversation), and a
/// transient one (store, conflict) is undone and left waiting, to be tried with the next event.
async fn route_one(
    service: &CommandService,
    state: &mut State,
    conversation_id: Uuid,
    (trigger_position, trigger): (Position, Uuid),
    first: bool,
) {
    let Some((request, after_handoff)) = state.request(conversation_id) else {
        return;
    };
    let routing = match service.view().await {
        Ok(view) => {
            let load = Load {
                open: state.load.clone(),
            };
            let rule = routing::applicable_rule(&view.directory, &request).map(|rule| rule.id);
            let cursor = rule.and_then(|id| state.cursors.get(&id).copied());
            if after_handoff {
                routing::route_after_handoff(&view.directory, &request, &load, cursor)
            } else {
                routing::route(&view.directory, &request, &load, cursor)
            }
        }
        Err(error) => {
            tracing::warn!(%conversation_id, %error, "routing deferred");
            return;
        }
    };
    let apply = match routing {
        Routing::NoRule => {
            // Nothing to do: it stays unassigned, for a human to pick up.
            state.stop_waiting(conversation_id);
            return;
        }
        Routing::Assign { assignee, decision } => Apply::Assign { assignee, decision },
        Routing::Queue { decision } if first => Apply::Queue { decision },
        Routing::Queue { .. } => return,
    };
    // Until the log confirms it, count the assignment now, so the next decision of this batch
    // sees the load and the cursor move; remember what to restore if it does not happen.
    let mut previous_cursor = None;
    if let Apply::Assign { assignee, decision } = &apply {
        if let Assignee::User { id } = assignee {
            previous_cursor = Some((
                decision.rule_id,
                state.cursors.insert(decision.rule_id, *id),
            ));
        }
        state.set_assignee(conversation_id, Some(assignee.clone()));
        state.unconfirmed.insert(conversation_id);
    } else {
        state.stop_waiting(conversation_id);
    }
    let meta = reacting(
        state,
        trigger,
        format!("routing:{conversation_id}:{trigger}"),
    );
    let command = Command::Conversation {
        conversation_id,
        command: Box::new(ConversationCommand::ApplyRouting { routing: apply }),
    };
    let (undo, retry) = match service.execute(meta, command).await {
        Ok(outcome) if outcome.written > 0 || outcome.replayed => (false, false),
        // Written nothing: the conversation was closed or assigned by hand meanwhile.
        Ok(_) => (true, false),
        Err(ServiceError::Domain(error)) => {
            tracing::debug!(%conversation_id, %error, "routing not applied");
            (true, false)
        }
        Err(error) => {
            tracing::warn!(%conversation_id, %error, "routing failed; will retry");
            (true, true)
        }
    };
    if undo && state.unconfirmed.remove(&conversation_id) {
        state.set_assignee(conversation_id, None);
        if let Some((rule, previous)) = previous_cursor {
            match previous {
                Some(user) => state.cursors.insert(rule, user),
                None => state.cursors.remove(&rule),
            };
        }
    }
    if retry && first {
        state.wait(conversation_id, trigger_position, trigger, after_handoff);
    }
    let still_pending = state
        .waiting
        .values()
        .chain(state.queue.values())
        .any(|(_, event)| *event == trigger);
    if !still_pending {
        state.correlations.remove(&trigger);
    }
}

/// Takes an open conversation from its deactivated assignee; its `ConversationUnassigned`, once
/// folded, makes it wait for routing. Like routing, a failure never stops the reactor: a
/// transient one leaves it to be tried with the next event.
async fn release(
    service: &CommandService,
    state: &mut State,
    conversation_id: Uuid,
    user_id: Uuid,
    trigger: Uuid,
) {
    let meta = reacting(
        state,
        trigger,
        format!("deactivated:{conversation_id}:{trigger}"),
    );
    let command = Command::Conversation {
        conversation_id,
        command: Box::new(ConversationCommand::ReleaseFromDeactivated { user_id }),
    };
    match service.execute(meta, command).await {
        Ok(_) => {}
        Err(ServiceError::Domain(error)) => {
            tracing::debug!(%conversation_id, %error, "release not applied");
        }
        Err(error) => {
            tracing::warn!(%conversation_id, %error, "release failed; will retry");
            return;
        }
    }
    state.releasing.remove(&conversation_id);
    if !state.releasing.values().any(|(_, event)| *event == trigger) {
        state.correlations.remove(&trigger);
    }
}

/// The metadata of a command the reactor sends because of event `trigger`: by the system's
/// routing component, caused by the event and in its correlation, with the idempotency `key`.
fn reacting(state: &State, trigger: Uuid, key: String) -> CommandMeta {
    CommandMeta {
        actor: Actor::System {
            component: "routing".into(),
        },
        correlation_id: state.correlations.get(&trigger).copied(),
        causation_id: Some(trigger),
        idempotency_key: Some(key),
        fingerprint: None,
        expected_version: None,
    }
}

/// Events that can make a conversation wait for routing (see `State::evolve`).
fn triggers_routing(event: &DomainEvent) -> bool {
    matches!(
        event,
        DomainEvent::ConversationStarted(_)
            | DomainEvent::ConversationQueued(_)
            | DomainEvent::BotHandedOff(_)
            | DomainEvent::UserDeactivated(_)
    ) || matches!(
        event,
        DomainEvent::ConversationUnassigned(e)
            if matches!(e.reason, AssignmentReason::AssigneeDeactivated { .. })
    )
}
