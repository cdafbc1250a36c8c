//! Properties over random command sequences on one conversation: the state built step by step
//! while deciding equals the state folded from all the events at the end (and after any
//! prefix), and the events obey the aggregate's invariants whatever the order of commands.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use proto_events::event::*;
use proto_events::{Actor, DomainEvent};
use switchboard_domain::Context;
use switchboard_domain::conversation::{self, Conversation, ConversationCommand};

use crate::support::{ADMIN, AGENT, AUDITOR, OUTSIDER, SUPPORT, directory, id, organisation, user};

const CHAT: u128 = 42;
const CONV: u128 = 100;

/// One step a user, a visitor or the channel might take.
#[derive(Debug, Clone)]
enum Op {
    /// The visitor writes; `repeat` re-sends an earlier message id (a duplicate delivery).
    Write {
        repeat: Option<u8>,
    },
    Reply {
        by: u8,
    },
    Comment {
        by: u8,
    },
    Assign {
        by: u8,
        to: u8,
    },
    Unassign {
        by: u8,
    },
    Close {
        by: u8,
    },
    Reopen {
        by: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::option::weighted(0.3, any::<u8>()).prop_map(|repeat| Op::Write { repeat }),
        2 => any::<u8>().prop_map(|by| Op::Reply { by }),
        1 => any::<u8>().prop_map(|by| Op::Comment { by }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(by, to)| Op::Assign { by, to }),
        1 => any::<u8>().prop_map(|by| Op::Unassign { by }),
        2 => any::<u8>().prop_map(|by| Op::Close { by }),
        1 => any::<u8>().prop_map(|by| Op::Reopen { by }),
    ]
}

/// The users commands come from: members, an admin, an outsider and an auditor.
fn someone(n: u8) -> u128 {
    [AGENT, ADMIN, OUTSIDER, AUDITOR][n as usize % 4]
}

fn message(n: u128) -> InboundMessage {
    InboundMessage {
        message_id: id(1000 + n),
        channel_id: id(CHAT),
        channel_kind: ChannelKind::Chat,
        provider_message_id: None,
        from: Identity::ChatVisitor {
            visitor_id: "v-1".into(),
        },
        from_name: None,
        contact_id: None,
        subject: None,
        body_text: format!("message {n}"),
        body_html: None,
        email: None,
        form_fields: vec![],
        attachments: Vec::new(),
        raw: None,
    }
}

/// The command and its actor for step `step`.
fn command(step: usize, op: &Op, written: &[u128]) -> (Actor, ConversationCommand) {
    let fresh = 5000 + step as u128;
    match op {
        Op::Write { repeat } => {
            let n = match (repeat, written.is_empty()) {
                (Some(r), false) => written[*r as usize % written.len()],
                _ => step as u128,
            };
            let receive = ConversationCommand::ReceiveMessage {
                conversation_id: id(CONV),
                inbox_id: id(SUPPORT),
                channel_id: id(CHAT),
                message: message(n),
                filter: None,
            };
            (Actor::Channel { id: id(CHAT) }, receive)
        }
        Op::Reply { by } => (
            user(someone(*by)),
            ConversationCommand::SendReply {
                message_id: id(fresh),
                body_text: "On it".into(),
                body_html: None,
                subject: None,
                attachments: Vec::new(),
            },
        ),
        Op::Comment { by } => (
            user(someone(*by)),
            ConversationCommand::AddComment {
                comment_id: id(fresh),
                body_text: "note".into(),
                mentions: vec![],
            },
        ),
        Op::Assign { by, to } => (
            user(someone(*by)),
            ConversationCommand::Assign {
                to: Assignee::User {
                    id: id(someone(*to)),
                },
            },
        ),
        Op::Unassign { by } => (user(someone(*by)), ConversationCommand::Unassign),
        Op::Close { by } => (user(someone(*by)), ConversationCommand::Close),
        Op::Reopen { by } => (user(someone(*by)), ConversationCommand::Reopen),
    }
}

fn setup() -> Vec<DomainEvent> {
    let mut events = organisation();
    events.push(
        ChannelConnected {
            channel_id: id(CHAT),
            inbox_id: id(SUPPORT),
            config: ChannelConfig::Chat {
                name: "Website".into(),
            },
        }
        .into(),
    );
    events
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn deciding_step_by_step_equals_folding_the_events(ops in proptest::collection::vec(op(), 1..40)) {
        let directory = directory(&setup());
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let mut stepwise = Conversation::default();
        let mut history: Vec<DomainEvent> = Vec::new();
        let mut written: Vec<u128> = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            let (actor, command) = command(step, op, &written);
            let ctx = Context { directory: &directory, actor: &actor, now };
            let Ok(events) = conversation::decide(&stepwise, &command, &ctx) else {
                // A refused command changes nothing; the folded state must agree below.
                continue;
            };
            if let (Op::Write { .. }, ConversationCommand::ReceiveMessage { message, .. }) = (op, &command)
                && !events.is_empty()
            {
                written.push(message.message_id.as_u128() - 1000);
            }
            for event in &events {
                stepwise.evolve(event);
            }
            history.extend(events);
            prop_assert_eq!(&stepwise, &Conversation::from_history(&history), "after step {}", step);
        }

        // Invariants of the whole history.
        let mut open = false;
        let mut seen = std::collections::HashSet::new();
        for event in &history {
            match event {
                DomainEvent::ConversationStarted(e) => {
                    prop_assert!(!open && seen.is_empty(), "started twice");
                    prop_assert_eq!(e.conversation_id, id(CONV));
                    open = true;
                }
                DomainEvent::ConversationClosed(_) => { prop_assert!(open, "closed while closed"); open = false; }
                DomainEvent::ConversationReopened(_) => { prop_assert!(!open, "reopened while open"); open = true; }
                DomainEvent::MessageReceived(e) => {
                    prop_assert!(open, "a message landed in a closed conversation");
                    prop_assert!(seen.insert(e.message.message_id), "a duplicate delivery was recorded twice");
                }
                DomainEvent::ConversationAssigned(ConversationAssigned { assignee: Assignee::User { id: u }, .. })
                | DomainEvent::ConversationReassigned(ConversationReassigned { to: Assignee::User { id: u }, .. }) => {
                    prop_assert!(*u == id(AGENT) || *u == id(ADMIN), "assigned to someone without access: {u}");
                }
                _ => {}
            }
        }
        let by_outsiders = history.iter().filter(|e| matches!(e,
            DomainEvent::ReplySent(r) if matches!(r.author, ReplyAuthor::User { id: u } if u == id(OUTSIDER) || u == id(AUDITOR))));
        prop_assert_eq!(by_outsiders.count(), 0, "an outsider or auditor replied");
    }
}
