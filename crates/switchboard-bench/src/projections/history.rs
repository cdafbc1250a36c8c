//! A realistic history, written straight as events: an organisation with 10 agents in 2 teams,
//! 3 inboxes with chat and e-mail channels, and conversations that go back and forth with
//! replies, comments, deliveries, assignments, reassignments, closes and reopens, spread over
//! the past weeks. About 20 events per conversation.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proto_events::event::*;
use proto_events::{Actor, DomainEvent, Metadata, streams};
use switchboard_store::{EventStore, ExpectedVersion, NewEvent};
use switchboard_store_sqlite::SqliteStore;
use uuid::Uuid;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const ORG: u128 = 1;
const AGENTS: u128 = 10;
const INBOXES: u128 = 3;

fn agent(i: u128) -> Uuid {
    id(100 + i % AGENTS)
}

fn inbox(i: u128) -> Uuid {
    id(200 + i % INBOXES)
}

fn chat(i: u128) -> Uuid {
    id(300 + i % INBOXES)
}

/// Events of the organisation's setup: itself, its teams, agents (each with a team
/// membership), inboxes and channels.
const SETUP_EVENTS: u64 = 1 + 2 + 2 * AGENTS as u64 + 2 * INBOXES as u64;

/// Events in each conversation of the history.
const CONVERSATION_EVENTS: u64 = 20;

/// How many events [`write`] writes for `conversations` conversations.
pub(crate) fn events(conversations: u128) -> u64 {
    SETUP_EVENTS + CONVERSATION_EVENTS * conversations as u64
}

/// Encodes a history's events for one append, stamped with `at` and `actor`.
pub(crate) fn encode(events: &[(DomainEvent, Actor, DateTime<Utc>)]) -> Vec<NewEvent> {
    let correlation = Uuid::now_v7();
    events
        .iter()
        .map(|(event, actor, at)| {
            let metadata = Metadata {
                actor: actor.clone(),
                correlation_id: correlation,
                causation_id: correlation,
                occurred_at: *at,
                idempotency_key: None,
            };
            switchboard_codec::encode(event, &metadata)
        })
        .collect()
}

/// Writes the organisation, then `conversations` conversations; returns the events written.
pub(crate) async fn write(store: &SqliteStore, conversations: u128) -> anyhow::Result<u64> {
    let start = Utc
        .with_ymd_and_hms(2026, 10, 1, 8, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let system = Actor::System {
        component: "bench".into(),
    };
    let mut written = 0u64;
    let mut setup: Vec<(String, DomainEvent)> = vec![(
        streams::organisation(id(ORG)),
        OrganisationCreated {
            organisation_id: id(ORG),
            name: "Acme".into(),
            time_zone: "Europe/Paris".into(),
        }
        .into(),
    )];
    for team in 0..2u128 {
        setup.push((
            streams::team(id(50 + team)),
            TeamCreated {
                team_id: id(50 + team),
                name: format!("Team {team}"),
            }
            .into(),
        ));
    }
    for a in 0..AGENTS {
        setup.push((
            streams::user(agent(a)),
            UserCreated {
                user_id: agent(a),
                email: format!("agent{a}@acme.test"),
                name: format!("Agent {a}"),
                role: Role::Agent,
                availability: Availability::Available,
            }
            .into(),
        ));
        setup.push((
            streams::team(id(50 + a % 2)),
            TeamMemberAdded {
                team_id: id(50 + a % 2),
                user_id: agent(a),
            }
            .into(),
        ));
    }
    for i in 0..INBOXES {
        setup.push((
            streams::inbox(inbox(i)),
            InboxCreated {
                inbox_id: inbox(i),
                name: format!("Inbox {i}"),
            }
            .into(),
        ));
        setup.push((
            streams::channel(chat(i)),
            ChannelConnected {
                channel_id: chat(i),
                inbox_id: inbox(i),
                config: ChannelConfig::Chat {
                    name: format!("Chat {i}"),
                },
            }
            .into(),
        ));
    }
    for (stream, event) in setup {
        let events = encode(&[(event, system.clone(), start)]);
        written += events.len() as u64;
        store.append(&stream, ExpectedVersion::Any, events).await?;
    }
    for c in 0..conversations {
        let conversation = id(1_000_000 + c);
        let at0 = start + Duration::seconds((c as i64) * 37);
        let (inbox, channel, first, second) = (inbox(c), chat(c), agent(c), agent(c + 3));
        let visitor = Identity::ChatVisitor {
            visitor_id: format!("visitor-{c}"),
        };
        let customer = Actor::Channel { id: channel };
        let mut t = 0;
        let mut at = || {
            t += 1;
            at0 + Duration::minutes(t * 3)
        };
        let message = |n: u128, at: DateTime<Utc>| -> (DomainEvent, Actor, DateTime<Utc>) {
            let event = MessageReceived {
                conversation_id: conversation,
                inbox_id: inbox,
                message: InboundMessage {
                    message_id: id(10_000_000 + c * 100 + n),
                    channel_id: channel,
                    channel_kind: ChannelKind::Chat,
                    provider_message_id: None,
                    from: visitor.clone(),
                    from_name: Some(format!("Visitor {c}")),
                    contact_id: None,
                    subject: None,
                    body_text: format!("Hello, I have a question about order {c}-{n}."),
                    body_html: None,
                    email: None,
                    form_fields: vec![],
                },
            };
            (event.into(), customer.clone(), at)
        };
        let reply = |n: u128, by: Uuid, at: DateTime<Utc>| -> (DomainEvent, Actor, DateTime<Utc>) {
            let event = ReplySent {
                conversation_id: conversation,
                inbox_id: inbox,
                message_id: id(20_000_000 + c * 100 + n),
                channel_id: channel,
                channel_kind: ChannelKind::Chat,
                author: ReplyAuthor::User { id: by },
                subject: None,
                body_text: format!("Thanks for writing, let me check order {c}-{n} for you."),
                body_html: None,
                email: None,
            };
            (event.into(), Actor::User { id: by }, at)
        };
        let delivered = |n: u128, at: DateTime<Utc>| -> (DomainEvent, Actor, DateTime<Utc>) {
            let event = DeliverySucceeded {
                conversation_id: conversation,
                inbox_id: inbox,
                message_id: id(20_000_000 + c * 100 + n),
                channel_id: channel,
                provider_message_id: None,
            };
            (event.into(), Actor::Channel { id: channel }, at)
        };
        let manual = |by: Uuid| AssignmentReason::Manual {
            by: Actor::User { id: by },
        };
        let events = vec![
            (
                ConversationStarted {
                    conversation_id: conversation,
                    inbox_id: inbox,
                    channel_id: channel,
                    channel_kind: ChannelKind::Chat,
                    contact_id: None,
                    origin: ConversationOrigin::Inbound,
                    visibility: ConversationVisibility::Shared,
                }
                .into(),
                customer.clone(),
                at0,
            ),
            message(0, at0),
            message(1, at()),
            (
                ConversationAssigned {
                    conversation_id: conversation,
                    inbox_id: inbox,
                    assignee: Assignee::User { id: first },
                    reason: manual(first),
                }
                .into(),
                Actor::User { id: first },
                at(),
            ),
            reply(0, first, at()),
            delivered(0, at()),
            message(2, at()),
            (
                CommentAdded {
                    conversation_id: conversation,
                    inbox_id: inbox,
                    comment_id: id(30_000_000 + c),
                    author_user_id: first,
                    body_text: "Can you take this one? It is about billing.".into(),
                    mentions: vec![second],
                }
                .into(),
                Actor::User { id: first },
                at(),
            ),
            (
                ConversationReassigned {
                    conversation_id: conversation,
                    inbox_id: inbox,
                    from: Assignee::User { id: first },
                    to: Assignee::User { id: second },
                    reason: manual(first),
                }
                .into(),
                Actor::User { id: first },
                at(),
            ),
            reply(1, second, at()),
            delivered(1, at()),
            message(3, at()),
            reply(2, second, at()),
            delivered(2, at()),
            (
                ConversationClosed {
                    conversation_id: conversation,
                    inbox_id: inbox,
                    by: Actor::User { id: second },
                }
                .into(),
                Actor::User { id: second },
                at(),
            ),
            (
                ConversationReopened {
                    conversation_id: conversation,
                    inbox_id: inbox,
                    cause: ReopenCause::CustomerWrote {
                        message_id: id(10_000_000 + c * 100 + 4),
                    },
                }
                .into(),
                customer.clone(),
                at(),
            ),
            message(4, at()),
            reply(3, second, at()),
            delivered(3, at()),
            (
                ConversationClosed {
                    conversation_id: conversation,
                    inbox_id: inbox,
                    by: Actor::User { id: second },
                }
                .into(),
                Actor::User { id: second },
                at(),
            ),
        ];
        let encoded = encode(&events);
        written += encoded.len() as u64;
        store
            .append(
                &streams::conversation(conversation),
                ExpectedVersion::NoStream,
                encoded,
            )
            .await?;
    }
    Ok(written)
}
