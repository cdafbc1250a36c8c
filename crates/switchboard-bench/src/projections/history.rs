//! A realistic history, written straight as events: an organisation with 10 agents in 2 teams,
//! 3 inboxes with chat and e-mail channels, and conversations that go back and forth with
//! replies, comments, deliveries, assignments, reassignments, closes and reopens, spread over
//! the past weeks. About 20 events per conversation, a new conversation every 37 seconds, each
//! lasting an hour. Every conversation's customer is a contact, its messages carry the contact's
//! id, and one conversation in four comes from a returning customer: the contact is created
//! (with a chat visitor and an e-mail identity) just before its first conversation starts. By
//! default the conversations' events are interleaved in the log by time, as a live inbox
//! records them ([`Layout`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

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

/// How the conversations' events lie in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Each conversation's events together, one conversation after the other (the history
    /// of the benchmarks recorded before 2026-12-03 17:30 UTC).
    Contiguous,
    /// Every conversation's events in the order of their times, as a live inbox records
    /// them: about a hundred conversations are under way at any time.
    Interleaved,
}

impl Layout {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Layout::Contiguous => "contiguous",
            Layout::Interleaved => "interleaved",
        }
    }
}

/// Events in each conversation of the history.
const CONVERSATION_EVENTS: u64 = 20;

/// How many events [`write`] writes for `conversations` conversations: the setup, each
/// conversation's, and one creating each contact.
pub(crate) fn events(conversations: u128) -> u64 {
    SETUP_EVENTS + CONVERSATION_EVENTS * conversations as u64 + contacts(conversations) as u64
}

/// How many contacts the customers of `conversations` conversations are: all but every fourth
/// conversation's, which comes from a returning customer ([`customer`]).
fn contacts(conversations: u128) -> u128 {
    conversations - conversations / 4
}

/// The number of conversation `c`'s customer, and whether `c` is that customer's first
/// conversation: every fourth conversation (3, 7, 11, ...) comes from the customer of the one
/// before it.
fn customer(c: u128) -> (u128, bool) {
    (c - (c + 1) / 4, c % 4 != 3)
}

fn contact(k: u128) -> Uuid {
    id(60_000_000 + k)
}

/// The stream an event of a conversation's timeline goes to: its contact's, for the event
/// creating the contact, the conversation's for the others.
fn stream_of(conversation: Uuid, event: &DomainEvent) -> String {
    match event {
        DomainEvent::ContactRecordCreated(e) => streams::contact(e.contact_id),
        _ => streams::conversation(conversation),
    }
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
                command_fingerprint: None,
            };
            switchboard_codec::encode(event, &metadata)
        })
        .collect()
}

/// Writes the organisation, then `conversations` conversations; returns the events written.
pub(crate) async fn write(
    store: &SqliteStore,
    conversations: u128,
    layout: Layout,
) -> anyhow::Result<u64> {
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
    let conversations = Conversations::new(start, conversations);
    written += match layout {
        Layout::Contiguous => contiguous(store, conversations).await?,
        Layout::Interleaved => interleaved(store, conversations).await?,
    };
    Ok(written)
}

/// Appends each conversation's events at once, one conversation after the other.
async fn contiguous(store: &SqliteStore, conversations: Conversations) -> anyhow::Result<u64> {
    let mut written = 0;
    for c in 0..conversations.count {
        let (conversation, events) = conversations.events(c);
        // The contact's creation (first, when there is one) to its own stream; then the
        // conversation's events.
        let split = events
            .iter()
            .take_while(|(event, _, _)| matches!(event, DomainEvent::ContactRecordCreated(_)))
            .count();
        let (contact, timeline) = events.split_at(split);
        for part in [contact, timeline] {
            let Some((first, _, _)) = part.first() else {
                continue;
            };
            let encoded = encode(part);
            written += encoded.len() as u64;
            store
                .append(
                    &stream_of(conversation, first),
                    ExpectedVersion::NoStream,
                    encoded,
                )
                .await?;
        }
    }
    Ok(written)
}

/// Appends every event on its own, all conversations' events merged in the order of their
/// times (ties by conversation, then by place in it), as a live inbox records them. Appends
/// of different conversations go together, up to [`WAVE`] at a time, so that the store
/// commits them in groups; within a wave their order is the store's.
async fn interleaved(store: &SqliteStore, conversations: Conversations) -> anyhow::Result<u64> {
    // Each conversation still to be merged, by (time of its next event, number).
    let mut next: BinaryHeap<Reverse<(DateTime<Utc>, u128)>> = BinaryHeap::new();
    let mut open: HashMap<u128, (Uuid, std::vec::IntoIter<Timed>, u64)> = HashMap::new();
    let mut started = 0u128;
    let mut written = 0u64;
    let mut wave: Vec<(Uuid, u64, Timed)> = Vec::with_capacity(WAVE);
    loop {
        // Start the conversations whose first event comes before every open one's next.
        while started < conversations.count
            && next
                .peek()
                .is_none_or(|Reverse((at, _))| conversations.start(started) <= *at)
        {
            let (id, events) = conversations.events(started);
            if let Some(first) = events.first() {
                next.push(Reverse((first.2, started)));
                open.insert(started, (id, events.into_iter(), 0));
            }
            started += 1;
        }
        let Some(Reverse((_, c))) = next.pop() else {
            break;
        };
        let Some((id, events, version)) = open.get_mut(&c) else {
            break;
        };
        let Some(event) = events.next() else {
            continue;
        };
        let (id, this) = (*id, *version);
        // The event creating the customer's contact goes to the contact's own stream.
        if !matches!(event.0, DomainEvent::ContactRecordCreated(_)) {
            *version += 1;
        }
        if let Some(following) = events.as_slice().first() {
            next.push(Reverse((following.2, c)));
        } else {
            open.remove(&c);
        }
        if wave.len() == WAVE || wave.iter().any(|(other, _, _)| *other == id) {
            written += append_wave(store, &mut wave).await?;
        }
        wave.push((id, this, event));
    }
    written += append_wave(store, &mut wave).await?;
    Ok(written)
}

/// The most appends [`interleaved`] has in flight at once.
const WAVE: usize = 64;

/// Appends each event of `wave` (conversation, version, event) to its stream (the
/// conversation's, or a new contact's: [`stream_of`]) at once, and empties it.
async fn append_wave(
    store: &SqliteStore,
    wave: &mut Vec<(Uuid, u64, Timed)>,
) -> anyhow::Result<u64> {
    let appends = wave.drain(..).map(|(id, version, event)| {
        // A contact's creation comes first in its conversation, at version 0: a new stream too.
        let expected = match version {
            0 => ExpectedVersion::NoStream,
            n => ExpectedVersion::Exact(n - 1),
        };
        let stream = stream_of(id, &event.0);
        let encoded = encode(std::slice::from_ref(&event));
        async move { store.append(&stream, expected, encoded).await }
    });
    let mut written = 0;
    for appended in futures::future::join_all(appends).await {
        appended?;
        written += 1;
    }
    Ok(written)
}

/// An event of the history with its actor and time.
type Timed = (DomainEvent, Actor, DateTime<Utc>);

/// The history's conversations, made one at a time.
struct Conversations {
    start: DateTime<Utc>,
    count: u128,
}

impl Conversations {
    fn new(start: DateTime<Utc>, count: u128) -> Conversations {
        Conversations { start, count }
    }

    /// When conversation `c` starts: one every 37 seconds.
    fn start(&self, c: u128) -> DateTime<Utc> {
        self.start + Duration::seconds((c as i64) * 37)
    }

    /// Conversation `c`'s id and events, in order.
    fn events(&self, c: u128) -> (Uuid, Vec<Timed>) {
        let conversation = id(1_000_000 + c);
        let at0 = self.start(c);
        let (inbox, channel, first, second) = (inbox(c), chat(c), agent(c), agent(c + 3));
        let (k, new_customer) = customer(c);
        let contact_id = contact(k);
        let visitor = Identity::ChatVisitor {
            visitor_id: format!("visitor-{k}"),
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
                    from_name: Some(format!("Visitor {k}")),
                    contact_id: Some(contact_id),
                    subject: None,
                    body_text: format!("Hello, I have a question about order {c}-{n}."),
                    body_html: None,
                    email: None,
                    form_fields: vec![],
                    attachments: Vec::new(),
                    raw: None,
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
                attachments: Vec::new(),
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
        let mut events = Vec::with_capacity(CONVERSATION_EVENTS as usize + 1);
        if new_customer {
            events.push((
                ContactRecordCreated {
                    contact_id,
                    identities: vec![
                        visitor.clone(),
                        Identity::Email {
                            address: format!("customer{k}@example.test"),
                        },
                    ],
                    properties: [("name".to_owned(), format!("Visitor {k}"))].into(),
                    from_conversation_id: None,
                }
                .into(),
                customer.clone(),
                at0,
            ));
        }
        events.extend([
            (
                ConversationStarted {
                    conversation_id: conversation,
                    inbox_id: inbox,
                    channel_id: channel,
                    channel_kind: ChannelKind::Chat,
                    contact_id: Some(contact_id),
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
        ]);
        (conversation, events)
    }
}
