//! Routing: the rule that applies, who is skipped and why, each strategy, and fairness over many
//! conversations.

use std::collections::BTreeMap;

use proto_events::DomainEvent;
use proto_events::event::*;
use switchboard_domain::directory::Directory;
use switchboard_domain::routing::{Load, RouteRequest, Routing, route, route_after_handoff};
use uuid::Uuid;

use crate::channel::{BOT, CHAT, PRIVATE, email_connected};
use crate::support::*;

/// The support crew: a team, member of the Support inbox, of five agents.
const CREW: u128 = 23;
const A1: u128 = 101;
const A2: u128 = 102;
const A3: u128 = 103;
/// Away.
const AWAY: u128 = 104;
/// Capacity 2.
const BUSY: u128 = 105;
const MAIL: u128 = 40;
const RULE: u128 = 50;

fn agent(n: u128, availability: Availability) -> DomainEvent {
    UserCreated {
        user_id: id(n),
        email: format!("agent{n}@acme.test"),
        name: format!("Agent {n}"),
        role: Role::Agent,
        availability,
    }
    .into()
}

/// The organisation plus the crew on Support, a shared address, a chat, the agent's private
/// account and a bot.
fn crew() -> Vec<DomainEvent> {
    let mut history = organisation();
    history.push(
        TeamCreated {
            team_id: id(CREW),
            name: "Crew".into(),
        }
        .into(),
    );
    for (n, availability) in [
        (A1, Availability::Available),
        (A2, Availability::Available),
        (A3, Availability::Available),
        (AWAY, Availability::Away),
        (BUSY, Availability::Available),
    ] {
        history.push(agent(n, availability));
        history.push(
            TeamMemberAdded {
                team_id: id(CREW),
                user_id: id(n),
            }
            .into(),
        );
    }
    history.push(
        UserCapacitySet {
            user_id: id(BUSY),
            max_open_conversations: Some(2),
        }
        .into(),
    );
    history.push(
        InboxMemberAdded {
            inbox_id: id(SUPPORT),
            member: Member::Team { id: id(CREW) },
        }
        .into(),
    );
    history.extend(email_connected(MAIL, SUPPORT, "support@acme.test"));
    history.push(
        ChannelConnected {
            channel_id: id(CHAT),
            inbox_id: id(SUPPORT),
            config: ChannelConfig::Chat {
                name: "Website".into(),
            },
        }
        .into(),
    );
    history.push(
        ChannelConnected {
            channel_id: id(PRIVATE),
            inbox_id: id(SUPPORT),
            config: ChannelConfig::Email {
                address: "agent@acme.test".into(),
                access: EmailAccess::Private {
                    owner_user_id: id(A1),
                },
            },
        }
        .into(),
    );
    history.push(
        BotCreated {
            bot_id: id(BOT),
            name: "Helper".into(),
        }
        .into(),
    );
    history
}

fn with_rule(strategy: RoutingStrategy, targets: Vec<Member>) -> Directory {
    directory(&crew_with_rule(strategy, targets))
}

/// The crew and an inbox rule.
fn crew_with_rule(strategy: RoutingStrategy, targets: Vec<Member>) -> Vec<DomainEvent> {
    let mut history = crew();
    history.push(rule(
        RULE,
        RuleScope::Inbox { id: id(SUPPORT) },
        strategy,
        targets,
    ));
    history
}

fn rule(n: u128, scope: RuleScope, strategy: RoutingStrategy, targets: Vec<Member>) -> DomainEvent {
    RoutingRuleSet {
        rule_id: id(n),
        scope,
        strategy,
        targets,
        bot_id: (strategy == RoutingStrategy::BotFirst).then(|| id(BOT)),
    }
    .into()
}

fn the_crew() -> Vec<Member> {
    vec![Member::Team { id: id(CREW) }]
}

fn request(conversation: u128) -> RouteRequest {
    RouteRequest {
        conversation_id: id(conversation),
        inbox_id: id(SUPPORT),
        channel_id: id(MAIL),
        private_owner: None,
        contact_owner: None,
    }
}

/// The load: BUSY already at their capacity of 2, everyone else free.
fn busy() -> Load {
    let mut load = Load::default();
    load.open.insert(id(BUSY), 2);
    load
}

fn skipped(entries: &[(u128, SkipReason)]) -> Vec<SkippedCandidate> {
    entries
        .iter()
        .map(|&(n, why)| SkippedCandidate {
            user_id: id(n),
            why,
        })
        .collect()
}

fn ids(ns: &[u128]) -> Vec<Uuid> {
    ns.iter().map(|&n| id(n)).collect()
}

fn assigned_user(routing: &Routing) -> Uuid {
    match routing {
        Routing::Assign {
            assignee: Assignee::User { id },
            ..
        } => *id,
        other => panic!("expected a user assignment, got {other:?}"),
    }
}

#[test]
fn without_a_rule_nothing_is_routed() {
    let d = directory(&crew());
    assert_eq!(route(&d, &request(1), &busy(), None), Routing::NoRule);
}

#[test]
fn round_robin_starts_after_the_cursor_and_records_every_skip() {
    let d = with_rule(RoutingStrategy::RoundRobin, the_crew());
    assert_eq!(
        route(&d, &request(1), &busy(), Some(id(A1))),
        Routing::Assign {
            assignee: Assignee::User { id: id(A2) },
            decision: RoutingDecision {
                rule_id: id(RULE),
                strategy: RoutingStrategy::RoundRobin,
                candidates: ids(&[A2, A3, AWAY, BUSY, A1]),
                skipped: skipped(&[(AWAY, SkipReason::Away), (BUSY, SkipReason::AtCapacity)]),
            },
        }
    );
    // After A3 the away and full agents are passed over, wrapping to A1.
    assert_eq!(
        assigned_user(&route(&d, &request(2), &busy(), Some(id(A3)))),
        id(A1)
    );
    assert_eq!(
        assigned_user(&route(&d, &request(3), &busy(), None)),
        id(A1),
        "no cursor: the lowest id first"
    );
    // A cursor who left the pool still marks the place in id order.
    let mut history = crew();
    history.push(rule(
        RULE,
        RuleScope::Inbox { id: id(SUPPORT) },
        RoutingStrategy::RoundRobin,
        the_crew(),
    ));
    history.push(
        TeamMemberRemoved {
            team_id: id(CREW),
            user_id: id(A2),
        }
        .into(),
    );
    let without_a2 = directory(&history);
    assert_eq!(
        assigned_user(&route(&without_a2, &request(4), &busy(), Some(id(A2)))),
        id(A3)
    );
}

#[test]
fn round_robin_spreads_a_hundred_conversations_evenly_among_the_available() {
    let d = with_rule(RoutingStrategy::RoundRobin, the_crew());
    let mut load = busy();
    let mut cursor = None;
    let mut given: BTreeMap<Uuid, u32> = BTreeMap::new();
    let mut order = Vec::new();
    for conversation in 0..100 {
        let routing = route(&d, &request(1000 + conversation), &load, cursor);
        let Routing::Assign {
            assignee: Assignee::User { id: user },
            decision,
        } = routing
        else {
            panic!("conversation {conversation} was not assigned: {routing:?}");
        };
        assert_eq!(
            decision.skipped,
            skipped(&[(AWAY, SkipReason::Away), (BUSY, SkipReason::AtCapacity)]),
        );
        *given.entry(user).or_default() += 1;
        *load.open.entry(user).or_default() += 1;
        cursor = Some(user);
        order.push(user);
    }
    assert_eq!(
        given,
        BTreeMap::from([(id(A1), 34), (id(A2), 33), (id(A3), 33)])
    );
    assert_eq!(&order[..4], &ids(&[A1, A2, A3, A1]));
    assert!(!given.contains_key(&id(AWAY)) && !given.contains_key(&id(BUSY)));
}

#[test]
fn capacity_frees_up_when_conversations_close() {
    let d = with_rule(
        RoutingStrategy::RoundRobin,
        vec![Member::User { id: id(BUSY) }],
    );
    let mut load = busy();
    assert_eq!(
        route(&d, &request(1), &load, None),
        Routing::Queue {
            decision: RoutingDecision {
                rule_id: id(RULE),
                strategy: RoutingStrategy::RoundRobin,
                candidates: ids(&[BUSY]),
                skipped: skipped(&[(BUSY, SkipReason::AtCapacity)]),
            },
        }
    );
    load.open.insert(id(BUSY), 1);
    assert_eq!(
        assigned_user(&route(&d, &request(1), &load, None)),
        id(BUSY)
    );
    // Without a capacity there is no limit.
    let unlimited = with_rule(
        RoutingStrategy::RoundRobin,
        vec![Member::User { id: id(A1) }],
    );
    load.open.insert(id(A1), 10_000);
    assert_eq!(
        assigned_user(&route(&unlimited, &request(1), &load, None)),
        id(A1)
    );
}

#[test]
fn least_loaded_picks_the_fewest_open_conversations_ties_by_id() {
    let d = with_rule(RoutingStrategy::LeastLoaded, the_crew());
    let mut load = busy();
    load.open.insert(id(A1), 3);
    load.open.insert(id(A2), 1);
    load.open.insert(id(A3), 1);
    assert_eq!(
        route(&d, &request(1), &load, Some(id(A2))),
        Routing::Assign {
            assignee: Assignee::User { id: id(A2) },
            decision: RoutingDecision {
                rule_id: id(RULE),
                strategy: RoutingStrategy::LeastLoaded,
                candidates: ids(&[A1, A2, A3, AWAY, BUSY]),
                skipped: skipped(&[(AWAY, SkipReason::Away), (BUSY, SkipReason::AtCapacity)]),
            },
        },
        "the cursor plays no part"
    );
    load.open.insert(id(A2), 2);
    assert_eq!(assigned_user(&route(&d, &request(2), &load, None)), id(A3));
    // The away agent has no load at all, and is still not chosen.
    load.open.insert(id(A3), 2);
    load.open.insert(id(A1), 2);
    assert_eq!(assigned_user(&route(&d, &request(3), &load, None)), id(A1));
}

#[test]
fn private_conversations_go_only_to_their_owner_or_admins() {
    let mut targets = the_crew();
    targets.push(Member::User { id: id(ADMIN) });
    let d = with_rule(RoutingStrategy::RoundRobin, targets);
    let private = RouteRequest {
        channel_id: id(PRIVATE),
        private_owner: Some(id(A1)),
        ..request(1)
    };
    let routing = route(&d, &private, &busy(), Some(id(A1)));
    let Routing::Assign { assignee, decision } = routing else {
        panic!("expected an assignment, got {routing:?}");
    };
    assert_eq!(assignee, Assignee::User { id: id(ADMIN) });
    assert_eq!(
        decision.skipped,
        skipped(&[
            (A2, SkipReason::NoAccess),
            (A3, SkipReason::NoAccess),
            (AWAY, SkipReason::NoAccess),
            (BUSY, SkipReason::NoAccess),
        ]),
        "no access is reported before away and at capacity"
    );
    assert_eq!(
        assigned_user(&route(&d, &private, &busy(), Some(id(ADMIN)))),
        id(A1),
        "the owner takes their turn"
    );
}

#[test]
fn targets_who_lost_access_are_skipped() {
    let mut history = crew();
    history.push(rule(
        RULE,
        RuleScope::Inbox { id: id(SUPPORT) },
        RoutingStrategy::RoundRobin,
        vec![
            Member::User { id: id(A1) },
            Member::User { id: id(A2) },
            Member::User { id: id(AUDITOR) },
        ],
    ));
    history.push(
        TeamMemberRemoved {
            team_id: id(CREW),
            user_id: id(A1),
        }
        .into(),
    );
    let d = directory(&history);
    let routing = route(&d, &request(1), &busy(), None);
    let Routing::Assign { assignee, decision } = routing else {
        panic!("expected an assignment, got {routing:?}");
    };
    assert_eq!(assignee, Assignee::User { id: id(A2) });
    assert_eq!(
        decision.skipped,
        skipped(&[(AUDITOR, SkipReason::NoAccess), (A1, SkipReason::NoAccess)]),
        "in id order"
    );
}

#[test]
fn when_nobody_qualifies_the_conversation_is_queued_with_the_skips() {
    let mut history = crew_with_rule(RoutingStrategy::LeastLoaded, the_crew());
    for n in [A1, A2, A3] {
        history.push(
            UserAvailabilityChanged {
                user_id: id(n),
                availability: Availability::Away,
            }
            .into(),
        );
    }
    let d = directory(&history);
    assert_eq!(
        route(&d, &request(1), &busy(), None),
        Routing::Queue {
            decision: RoutingDecision {
                rule_id: id(RULE),
                strategy: RoutingStrategy::LeastLoaded,
                candidates: ids(&[A1, A2, A3, AWAY, BUSY]),
                skipped: skipped(&[
                    (A1, SkipReason::Away),
                    (A2, SkipReason::Away),
                    (A3, SkipReason::Away),
                    (AWAY, SkipReason::Away),
                    (BUSY, SkipReason::AtCapacity),
                ]),
            },
        }
    );
    // The same question gets the same answer.
    assert_eq!(
        route(&d, &request(1), &busy(), None),
        route(&d, &request(1), &busy(), None)
    );
}

#[test]
fn contact_owner_rules_prefer_the_owner_then_fall_back_to_the_targets() {
    let owned = RouteRequest {
        contact_owner: Some(id(A3)),
        ..request(1)
    };
    let only_owner = with_rule(RoutingStrategy::ContactOwner, vec![]);
    assert_eq!(
        route(&only_owner, &owned, &busy(), None),
        Routing::Assign {
            assignee: Assignee::User { id: id(A3) },
            decision: RoutingDecision {
                rule_id: id(RULE),
                strategy: RoutingStrategy::ContactOwner,
                candidates: ids(&[A3]),
                skipped: vec![],
            },
        }
    );
    let away_owner = RouteRequest {
        contact_owner: Some(id(AWAY)),
        ..request(1)
    };
    assert_eq!(
        route(&only_owner, &away_owner, &busy(), None),
        Routing::Queue {
            decision: RoutingDecision {
                rule_id: id(RULE),
                strategy: RoutingStrategy::ContactOwner,
                candidates: ids(&[AWAY]),
                skipped: skipped(&[(AWAY, SkipReason::Away)]),
            },
        },
        "without targets the conversation waits for its owner"
    );
    assert_eq!(
        route(&only_owner, &request(1), &busy(), None),
        Routing::Queue {
            decision: RoutingDecision {
                rule_id: id(RULE),
                strategy: RoutingStrategy::ContactOwner,
                candidates: vec![],
                skipped: vec![],
            },
        },
        "no owner, no targets"
    );
    let with_fallback = with_rule(RoutingStrategy::ContactOwner, the_crew());
    assert_eq!(
        route(&with_fallback, &away_owner, &busy(), Some(id(A1))),
        Routing::Assign {
            assignee: Assignee::User { id: id(A2) },
            decision: RoutingDecision {
                rule_id: id(RULE),
                strategy: RoutingStrategy::ContactOwner,
                candidates: ids(&[AWAY, A2, A3, BUSY, A1]),
                skipped: skipped(&[(AWAY, SkipReason::Away), (BUSY, SkipReason::AtCapacity)]),
            },
        },
        "the owner first, then the targets round-robin"
    );
    assert_eq!(
        assigned_user(&route(&with_fallback, &owned, &busy(), Some(id(A3)))),
        id(A3),
        "an eligible owner wins whatever the cursor"
    );
    // An owner who may not see the inbox is no candidate to keep.
    let outsider_owner = RouteRequest {
        contact_owner: Some(id(OUTSIDER)),
        ..request(1)
    };
    let Routing::Assign { decision, .. } = route(&with_fallback, &outsider_owner, &busy(), None)
    else {
        panic!("expected a fallback assignment");
    };
    assert_eq!(
        decision.skipped[0],
        skipped(&[(OUTSIDER, SkipReason::NoAccess)])[0]
    );
}

#[test]
fn bot_first_rules_give_the_bot_the_conversation_then_round_robin_after_handoff() {
    let d = with_rule(RoutingStrategy::BotFirst, the_crew());
    let first = route(&d, &request(1), &busy(), None);
    assert_eq!(
        first,
        Routing::Assign {
            assignee: Assignee::Bot { id: id(BOT) },
            decision: RoutingDecision {
                rule_id: id(RULE),
                strategy: RoutingStrategy::BotFirst,
                candidates: vec![],
                skipped: vec![],
            },
        }
    );
    let after = route_after_handoff(&d, &request(1), &busy(), Some(id(A1)));
    assert_eq!(assigned_user(&after), id(A2));
    // Under another strategy, a handoff routes like any new conversation.
    let rr = with_rule(RoutingStrategy::RoundRobin, the_crew());
    assert_eq!(
        route_after_handoff(&rr, &request(1), &busy(), Some(id(A1))),
        route(&rr, &request(1), &busy(), Some(id(A1)))
    );
}

#[test]
fn a_channels_rule_wins_over_its_inboxs() {
    let mut history = crew();
    history.push(rule(
        RULE,
        RuleScope::Inbox { id: id(SUPPORT) },
        RoutingStrategy::RoundRobin,
        the_crew(),
    ));
    history.push(rule(
        51,
        RuleScope::Channel { id: id(CHAT) },
        RoutingStrategy::BotFirst,
        vec![],
    ));
    let d = directory(&history);
    let chat = RouteRequest {
        channel_id: id(CHAT),
        ..request(1)
    };
    assert!(matches!(
        route(&d, &chat, &busy(), None),
        Routing::Assign {
            assignee: Assignee::Bot { .. },
            ..
        }
    ));
    assert_eq!(
        assigned_user(&route(&d, &request(2), &busy(), None)),
        id(A1)
    );
    // With no targets, a bot-first rule queues after the handoff.
    assert!(matches!(
        route_after_handoff(&d, &chat, &busy(), None),
        Routing::Queue { .. }
    ));
}

#[test]
fn routing_passes_over_a_deactivated_user() {
    let mut history = crew_with_rule(RoutingStrategy::RoundRobin, the_crew());
    history.push(
        UserDeactivated {
            user_id: id(A2),
            by: user(ADMIN),
            at: now(),
        }
        .into(),
    );
    let d = directory(&history);
    let routing = route(&d, &request(1), &busy(), Some(id(A1)));
    assert_eq!(assigned_user(&routing), id(A3));
    let Routing::Assign { decision, .. } = routing else {
        unreachable!()
    };
    assert_eq!(
        decision.skipped,
        skipped(&[
            (A2, SkipReason::Deactivated),
            (AWAY, SkipReason::Away),
            (BUSY, SkipReason::AtCapacity)
        ])
    );
    // Least-loaded too, however idle they are.
    history.push(rule(
        RULE,
        RuleScope::Inbox { id: id(SUPPORT) },
        RoutingStrategy::LeastLoaded,
        vec![Member::User { id: id(A2) }, Member::User { id: id(A1) }],
    ));
    let mut load = Load::default();
    load.open.insert(id(A1), 9);
    let d = directory(&history);
    assert_eq!(assigned_user(&route(&d, &request(2), &load, None)), id(A1));
}
