//! Routing: who a new conversation goes to under its routing rule, and the reason recorded with
//! it. Pure and deterministic: the routing reactor passes the directory, the conversation, the
//! open-conversation count of every user ([`Load`]) and the rule's round-robin cursor, and turns
//! the answer into `ConversationAssigned` (reason `rule`) or `ConversationQueued`. A queued
//! conversation is simply routed again when someone frees up (goes available, closes a
//! conversation, gets a higher capacity); there is no separate pick-up logic.
//!
//! # The rule
//! A channel's rule wins over the rule of the conversation's inbox; with neither the answer is
//! [`Routing::NoRule`] and the conversation stays unassigned without being queued.
//!
//! # Candidates
//! The rule's targets expanded (teams to their current members), deduplicated and sorted by user
//! id. A candidate is skipped, for the first reason that applies:
//! 1. [`SkipReason::Deactivated`]: they were deactivated (left the organisation);
//! 2. [`SkipReason::NoAccess`]: they may not work the conversation (not in the inbox, shut out by
//!    its team restriction, read-only role, or, for a private account's conversation, anyone but
//!    its owner and admins);
//! 3. [`SkipReason::Away`];
//! 4. [`SkipReason::AtCapacity`]: their open conversations have reached their capacity.
//!
//! The decision lists every candidate in the order considered and every skipped one with its
//! reason, not only those looked at before the pick, so the audit trail shows the whole pool.
//!
//! # Strategies
//! - Round-robin: the first eligible candidate after the cursor (the user this rule last
//!   assigned) in id order, wrapping; candidates are listed from there. A cursor who left the
//!   pool still marks the place in id order.
//! - Least-loaded: the eligible candidate with the fewest open conversations, ties to the lowest
//!   id.
//! - Contact owner: the contact's owner if eligible. Otherwise, if the rule has targets, they
//!   are the fallback, round-robin from the cursor, so a customer whose owner is away is not left
//!   waiting; a rule without targets queues the conversation for the owner.
//! - Bot first: assigned to the rule's bot. After the bot hands off, [`route_after_handoff`]
//!   round-robins among the targets.
//!
//! When nobody is eligible the answer is [`Routing::Queue`], with the skips.

use std::collections::HashMap;

use proto_events::event::{
    Assignee, Availability, RoutingDecision, RoutingStrategy, RuleScope, SkipReason,
    SkippedCandidate,
};
use uuid::Uuid;

use crate::directory::{Directory, RoutingRule};

/// A conversation to route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRequest {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The inbox it lives in (where it started).
    pub inbox_id: Uuid,
    /// The channel it came through.
    pub channel_id: Uuid,
    /// The owner of the private e-mail account it came through, if it did and was not shared:
    /// then only they and admins may receive it.
    pub private_owner: Option<Uuid>,
    /// The owner of the contact who wrote, for contact-owner rules.
    pub contact_owner: Option<Uuid>,
}

/// How busy each user is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    /// Open conversations assigned to each user; a user not listed has none.
    pub open: HashMap<Uuid, u32>,
}

impl Load {
    /// The open conversations assigned to `user_id`.
    pub fn of(&self, user_id: Uuid) -> u32 {
        self.open.get(&user_id).copied().unwrap_or(0)
    }
}

/// What routing decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// Neither the channel nor the inbox has a rule: the conversation stays unassigned.
    NoRule,
    /// Assign the conversation (record `ConversationAssigned` with reason `rule`).
    Assign {
        /// To whom: a user, or the rule's bot.
        assignee: Assignee,
        /// How the rule got there.
        decision: RoutingDecision,
    },
    /// Nobody qualifies: record `ConversationQueued`, and route again when someone frees up.
    Queue {
        /// The attempt, with every candidate skipped.
        decision: RoutingDecision,
    },
}

/// The rule that routes `request`: its channel's, else its inbox's.
pub fn applicable_rule<'d>(
    directory: &'d Directory,
    request: &RouteRequest,
) -> Option<&'d RoutingRule> {
    directory
        .routing_rule(&RuleScope::Channel {
            id: request.channel_id,
        })
        .or_else(|| {
            directory.routing_rule(&RuleScope::Inbox {
                id: request.inbox_id,
            })
        })
}

/// Routes a new (or queued) conversation. `cursor` is the user this rule's round-robin last
/// assigned a conversation to (the assignee of the latest `ConversationAssigned` whose decision
/// names the rule), `None` if none yet. See the module's documentation for the rules.
pub fn route(
    directory: &Directory,
    request: &RouteRequest,
    load: &Load,
    cursor: Option<Uuid>,
) -> Routing {
    route_with(directory, request, load, cursor, false)
}

/// Routes a conversation a bot has handed off without naming anyone: under a bot-first rule,
/// round-robin among the rule's targets; under any other rule, as [`route`].
pub fn route_after_handoff(
    directory: &Directory,
    request: &RouteRequest,
    load: &Load,
    cursor: Option<Uuid>,
) -> Routing {
    route_with(directory, request, load, cursor, true)
}

fn route_with(
    directory: &Directory,
    request: &RouteRequest,
    load: &Load,
    cursor: Option<Uuid>,
    after_handoff: bool,
) -> Routing {
    let Some(rule) = applicable_rule(directory, request) else {
        return Routing::NoRule;
    };
    let pool = directory.expand_targets(&rule.targets);
    let skip = |user_id: Uuid| skip_reason(directory, request, load, user_id);
    let (candidates, pick) = match (rule.strategy, rule.bot_id) {
        (RoutingStrategy::BotFirst, Some(bot_id)) if !after_handoff => {
            return Routing::Assign {
                assignee: Assignee::Bot { id: bot_id },
                decision: RoutingDecision {
                    rule_id: rule.id,
                    strategy: rule.strategy,
                    candidates: Vec::new(),
                    skipped: Vec::new(),
                },
            };
        }
        (RoutingStrategy::RoundRobin | RoutingStrategy::BotFirst, _) => {
            let candidates = rotate(pool, cursor);
            let pick = candidates.iter().copied().find(|&id| skip(id).is_none());
            (candidates, pick)
        }
        (RoutingStrategy::LeastLoaded, _) => {
            let pick = pool
                .iter()
                .copied()
                .filter(|&id| skip(id).is_none())
                .min_by_key(|&id| (load.of(id), id));
            (pool, pick)
        }
        (RoutingStrategy::ContactOwner, _) => {
            let owner = request.contact_owner;
            let fallback = rotate(pool, cursor)
                .into_iter()
                .filter(|&id| Some(id) != owner);
            let candidates: Vec<Uuid> = owner.into_iter().chain(fallback).collect();
            let pick = candidates.iter().copied().find(|&id| skip(id).is_none());
            (candidates, pick)
        }
    };
    let skipped = candidates
        .iter()
        .filter_map(|&user_id| skip(user_id).map(|why| SkippedCandidate { user_id, why }))
        .collect();
    let decision = RoutingDecision {
        rule_id: rule.id,
        strategy: rule.strategy,
        candidates,
        skipped,
    };
    match pick {
        Some(id) => Routing::Assign {
            assignee: Assignee::User { id },
            decision,
        },
        None => Routing::Queue { decision },
    }
}

/// `pool` (in id order) starting after `cursor`, wrapping around.
fn rotate(pool: Vec<Uuid>, cursor: Option<Uuid>) -> Vec<Uuid> {
    let Some(cursor) = cursor else {
        return pool;
    };
    let (before, after): (Vec<Uuid>, Vec<Uuid>) = pool.into_iter().partition(|&id| id <= cursor);
    after.into_iter().chain(before).collect()
}

/// Why `user_id` may not receive the conversation now, if they may not.
fn skip_reason(
    directory: &Directory,
    request: &RouteRequest,
    load: &Load,
    user_id: Uuid,
) -> Option<SkipReason> {
    if directory.user(user_id).is_some_and(|user| !user.active) {
        return Some(SkipReason::Deactivated);
    }
    if !directory.can_work_conversation(user_id, request.inbox_id, request.private_owner) {
        return Some(SkipReason::NoAccess);
    }
    let user = directory.user(user_id)?;
    if user.availability == Availability::Away {
        Some(SkipReason::Away)
    } else if user.capacity.is_some_and(|max| load.of(user_id) >= max) {
        Some(SkipReason::AtCapacity)
    } else {
        None
    }
}
