//! The routing reactor against the embedded store: fairness, skips with reasons, the queue, and
//! never acting twice across a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proto_events::event::{
    Assignee, AssignmentReason, Availability, Member, Role, RoutingStrategy, RuleScope, SkipReason,
};
use proto_events::{Actor, DomainEvent};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::Command;
use switchboard_service::reactor::RoutingReactor;
use switchboard_store::EventStore;
use uuid::Uuid;

use crate::support::*;

const INBOX: Uuid = Uuid::from_u128(30);
const CHAT: Uuid = Uuid::from_u128(40);
const TEAM: Uuid = Uuid::from_u128(20);
const RULE: Uuid = Uuid::from_u128(50);

fn agent(n: u128) -> Uuid {
    Uuid::from_u128(100 + n)
}

/// Waits until the reactor has processed everything and written nothing more.
async fn settle(app: &App, reactor: &mut RoutingReactor) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let head = app.store.head().await.unwrap();
        tokio::time::timeout_at(deadline, reactor.processed.wait_for(|p| *p >= head))
            .await
            .expect("the reactor did not catch up in time")
            .unwrap();
        if app.store.head().await.unwrap() == head {
            return;
        }
    }
}

/// An inbox whose team has five agents: 1 to 3 available, 4 away, 5 available with capacity 1.
async fn team_inbox(app: &App) {
    let mut commands = vec![
        Command::Setup(SetupCommand::CreateTeam {
            team_id: TEAM,
            name: "Support".into(),
        }),
        Command::Setup(SetupCommand::CreateInbox {
            inbox_id: INBOX,
            name: "Support".into(),
        }),
        Command::Setup(SetupCommand::AddInboxMember {
            inbox_id: INBOX,
            member: Member::Team { id: TEAM },
        }),
        Command::Channel(ChannelCommand::ConnectChat {
            channel_id: CHAT,
            inbox_id: INBOX,
            name: "Website".into(),
        }),
    ];
    for n in 1..=5 {
        commands.push(Command::Setup(SetupCommand::CreateUser {
            user_id: agent(n),
            email: format!("agent{n}@acme.test"),
            name: format!("Agent {n}"),
            role: Role::Agent,
        }));
        commands.push(Command::Setup(SetupCommand::AddTeamMember {
            team_id: TEAM,
            user_id: agent(n),
        }));
        if n != 4 {
            commands.push(Command::Setup(SetupCommand::SetAvailability {
                user_id: agent(n),
                availability: Availability::Available,
            }));
        }
    }
    commands.push(Command::Setup(SetupCommand::SetCapacity {
        user_id: agent(5),
        max_open_conversations: Some(1),
    }));
    for command in commands {
        run(app, admin(), command).await;
    }
}

/// `n` chat visitors write in, each starting a conversation.
async fn visitors_write(app: &App, n: usize) {
    for i in 0..n {
        run(
            app,
            Actor::Channel { id: CHAT },
            chat(CHAT, &format!("visitor-{i}"), "hello"),
        )
        .await;
    }
}

/// Stops `reactor` and starts another, which folds the history and writes nothing.
async fn restart_does_nothing(app: &App, reactor: RoutingReactor) {
    reactor.task.abort();
    let head = app.store.head().await.unwrap();
    let mut again = RoutingReactor::spawn(Arc::new(app_service(app).await));
    settle(app, &mut again).await;
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "a restarted reactor must not act twice"
    );
}

fn round_robin(targets: Vec<Member>) -> Command {
    Command::Channel(ChannelCommand::SetRoutingRule {
        rule_id: RULE,
        scope: RuleScope::Inbox { id: INBOX },
        strategy: RoutingStrategy::RoundRobin,
        targets,
        bot_id: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_100_conversations_evenly_and_says_who_was_skipped() {
    let app = app().await;
    team_inbox(&app).await;
    // Agent 5 already has an open conversation, given by hand: at capacity.
    let busy = run(
        &app,
        Actor::Channel { id: CHAT },
        chat(CHAT, "early", "hello"),
    )
    .await;
    run(
        &app,
        admin(),
        Command::Conversation {
            conversation_id: conversation_of(&busy),
            command: Box::new(ConversationCommand::Assign {
                to: Assignee::User { id: agent(5) },
            }),
        },
    )
    .await;
    run(&app, admin(), round_robin(vec![Member::Team { id: TEAM }])).await;

    let service = Arc::new(app_service(&app).await);
    let mut reactor = RoutingReactor::spawn(service);
    visitors_write(&app, 100).await;
    settle(&app, &mut reactor).await;

    let mut per_agent: HashMap<Uuid, usize> = HashMap::new();
    let mut decisions = 0;
    let events = history(&app).await;
    // Each routing joins the correlation of the message that started the conversation.
    let started: HashMap<Uuid, Uuid> = events
        .iter()
        .filter_map(|e| match &e.payload {
            DomainEvent::ConversationStarted(s) => {
                Some((s.conversation_id, e.metadata.correlation_id))
            }
            _ => None,
        })
        .collect();
    for event in &events {
        if let DomainEvent::ConversationAssigned(e) = &event.payload
            && matches!(e.reason, AssignmentReason::Rule(_))
        {
            assert_eq!(
                Some(&event.metadata.correlation_id),
                started.get(&e.conversation_id),
                "the routing shares its message's correlation"
            );
        }
    }
    for event in events {
        if let DomainEvent::ConversationAssigned(e) = &event.payload
            && let AssignmentReason::Rule(decision) = &e.reason
            && let Assignee::User { id } = e.assignee
        {
            *per_agent.entry(id).or_default() += 1;
            decisions += 1;
            assert_eq!(decision.rule_id, RULE);
            let why: HashMap<Uuid, SkipReason> = decision
                .skipped
                .iter()
                .map(|s| (s.user_id, s.why))
                .collect();
            assert_eq!(
                why.get(&agent(4)),
                Some(&SkipReason::Away),
                "the away agent is named as skipped"
            );
            assert_eq!(why.get(&agent(5)), Some(&SkipReason::AtCapacity));
        }
    }
    assert_eq!(decisions, 100);
    let mut counts: Vec<usize> = (1..=3)
        .map(|n| per_agent.get(&agent(n)).copied().unwrap_or(0))
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![33, 33, 34], "spread evenly: {per_agent:?}");
    assert_eq!(per_agent.get(&agent(4)), None);
    assert_eq!(per_agent.get(&agent(5)), None);

    // A restarted reactor folds the history and does nothing again.
    restart_does_nothing(&app, reactor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_nobody_can_take_waits_and_is_picked_up_when_capacity_frees() {
    // Agent 5 closes the first conversation.
    picked_up_when_freed(|first| {
        (
            Actor::User { id: agent(5) },
            Command::Conversation {
                conversation_id: first,
                command: Box::new(ConversationCommand::Close),
            },
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_conversation_frees_its_agents_capacity() {
    // The retention rules erase the first conversation, open as it is.
    picked_up_when_freed(|first| {
        (
            Actor::System {
                component: "retention".into(),
            },
            Command::Conversation {
                conversation_id: first,
                command: Box::new(ConversationCommand::Erase {
                    contact_id: None,
                    reason: "retention".into(),
                }),
            },
        )
    })
    .await;
}

/// Agent 5 (capacity 1) gets a first conversation; a second waits; `free` (given the first)
/// frees the agent, and the waiting one is theirs.
async fn picked_up_when_freed(free: impl FnOnce(Uuid) -> (Actor, Command)) {
    let app = app().await;
    team_inbox(&app).await;
    run(
        &app,
        admin(),
        round_robin(vec![Member::User { id: agent(5) }]),
    )
    .await;
    let mut reactor = RoutingReactor::spawn(Arc::new(app_service(&app).await));
    let first = run(
        &app,
        Actor::Channel { id: CHAT },
        chat(CHAT, "first", "hello"),
    )
    .await;
    settle(&app, &mut reactor).await;
    let second = run(
        &app,
        Actor::Channel { id: CHAT },
        chat(CHAT, "second", "hello"),
    )
    .await;
    settle(&app, &mut reactor).await;
    let events = history(&app).await;
    assert!(events.iter().any(|e| matches!(&e.payload,
        DomainEvent::ConversationQueued(q) if q.conversation_id == conversation_of(&second)
            && q.decision.skipped.iter().any(|s| s.user_id == agent(5) && s.why == SkipReason::AtCapacity))),
        "the second conversation waits, and the reason names the full agent");
    let (actor, command) = free(conversation_of(&first));
    run(&app, actor, command).await;
    settle(&app, &mut reactor).await;
    let assigned: Vec<Uuid> = history(&app)
        .await
        .iter()
        .filter_map(|e| match &e.payload {
            DomainEvent::ConversationAssigned(a)
                if a.assignee == (Assignee::User { id: agent(5) }) =>
            {
                Some(a.conversation_id)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        assigned,
        vec![conversation_of(&first), conversation_of(&second)]
    );
}

/// The conversations assigned to `user` now, by folding the log.
async fn assigned_to(app: &App, user: Uuid) -> Vec<Uuid> {
    let mut now: HashMap<Uuid, Option<Assignee>> = HashMap::new();
    for event in history(app).await {
        match &event.payload {
            DomainEvent::ConversationAssigned(e) => {
                now.insert(e.conversation_id, Some(e.assignee.clone()));
            }
            DomainEvent::ConversationReassigned(e) => {
                now.insert(e.conversation_id, Some(e.to.clone()));
            }
            DomainEvent::ConversationUnassigned(e) => {
                now.insert(e.conversation_id, None);
            }
            _ => {}
        }
    }
    let mut theirs: Vec<Uuid> = now
        .into_iter()
        .filter(|(_, a)| *a == Some(Assignee::User { id: user }))
        .map(|(c, _)| c)
        .collect();
    theirs.sort();
    theirs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_users_open_conversations_are_routed_again_by_the_system() {
    let app = app().await;
    team_inbox(&app).await;
    run(
        &app,
        admin(),
        round_robin(vec![
            Member::User { id: agent(1) },
            Member::User { id: agent(2) },
        ]),
    )
    .await;
    let mut reactor = RoutingReactor::spawn(Arc::new(app_service(&app).await));
    visitors_write(&app, 4).await;
    settle(&app, &mut reactor).await;
    let open = assigned_to(&app, agent(2)).await;
    assert_eq!(open.len(), 2, "round robin gave agent 2 two of four");
    // One of agent 2's conversations is closed: it stays theirs, as history.
    let closed = open[0];
    run(
        &app,
        Actor::User { id: agent(2) },
        Command::Conversation {
            conversation_id: closed,
            command: Box::new(ConversationCommand::Close),
        },
    )
    .await;
    let deactivation = run(
        &app,
        admin(),
        Command::Setup(SetupCommand::DeactivateUser { user_id: agent(2) }),
    )
    .await;
    settle(&app, &mut reactor).await;

    assert_eq!(assigned_to(&app, agent(2)).await, vec![closed]);
    assert!(assigned_to(&app, agent(1)).await.contains(&open[1]));
    let events = history(&app).await;
    let deactivated = events
        .iter()
        .find(|e| e.position == deactivation.last_position.0)
        .unwrap();
    let released: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(&e.payload, DomainEvent::ConversationUnassigned(u)
            if u.reason == AssignmentReason::AssigneeDeactivated { user_id: agent(2) })
        })
        .collect();
    assert_eq!(released.len(), 1, "only the open conversation is released");
    let release = released[0];
    assert!(matches!(release.metadata.actor, Actor::System { .. }));
    assert_eq!(release.metadata.causation_id, deactivated.event_id);
    assert_eq!(
        release.metadata.correlation_id,
        deactivated.metadata.correlation_id
    );
    let rerouted = events
        .iter()
        .find_map(|e| match &e.payload {
            DomainEvent::ConversationAssigned(a) if a.conversation_id == open[1] => {
                (e.position > release.position).then_some((e, a))
            }
            _ => None,
        })
        .expect("the released conversation is routed again");
    assert_eq!(rerouted.0.metadata.causation_id, release.event_id);
    let AssignmentReason::Rule(decision) = &rerouted.1.reason else {
        panic!("routed by the rule: {:?}", rerouted.1.reason);
    };
    assert!(
        decision
            .skipped
            .iter()
            .any(|s| s.user_id == agent(2) && s.why == SkipReason::Deactivated)
    );

    // Without a rule, a deactivated user's conversation is left unassigned.
    run(
        &app,
        admin(),
        Command::Channel(ChannelCommand::RemoveRoutingRule { rule_id: RULE }),
    )
    .await;
    let theirs = assigned_to(&app, agent(1)).await;
    assert!(!theirs.is_empty());
    run(
        &app,
        admin(),
        Command::Setup(SetupCommand::DeactivateUser { user_id: agent(1) }),
    )
    .await;
    settle(&app, &mut reactor).await;
    assert_eq!(assigned_to(&app, agent(1)).await, Vec::<Uuid>::new());
    for conversation in theirs {
        assert!(
            !is_assigned(&app, conversation).await,
            "{conversation} stays unassigned"
        );
    }

    restart_does_nothing(&app, reactor).await;
}

/// Whether `conversation` is assigned to anyone now.
async fn is_assigned(app: &App, conversation: Uuid) -> bool {
    let last = history(app)
        .await
        .into_iter()
        .rev()
        .find_map(|e| match e.payload {
            DomainEvent::ConversationAssigned(a) if a.conversation_id == conversation => {
                Some(Some(a.assignee))
            }
            DomainEvent::ConversationReassigned(a) if a.conversation_id == conversation => {
                Some(Some(a.to))
            }
            DomainEvent::ConversationUnassigned(a) if a.conversation_id == conversation => {
                Some(None)
            }
            _ => None,
        })
        .flatten();
    last.is_some()
}
