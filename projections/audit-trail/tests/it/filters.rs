//! Every audit filter, what an entry records, and causal chains.

use audit_trail::{
    ActorFilter, ActorKind, AuditFilter, Concerns, Page, audit_events, by_correlation, by_event_id,
};
use proto_events::{Actor, streams};
use rusqlite::Connection;

use crate::support::{
    ADA, AGENT, BEA, CONVERSATION, History, INBOX, agent, at, build, event_id, id, router, sample,
};

fn positions(conn: &Connection, filter: AuditFilter) -> Vec<u64> {
    let page = audit_events(
        conn,
        &filter,
        Page::Forward {
            after: None,
            first: 100,
        },
    )
    .unwrap();
    assert!(!page.has_more);
    page.entries.iter().map(|e| e.position).collect()
}

#[test]
fn an_entry_records_actor_times_ids_concerns_and_payload() {
    let (_dir, conn) = build(&sample().events);
    let entry = by_event_id(&conn, event_id(6)).unwrap().unwrap();
    assert_eq!(entry.position, 6);
    assert_eq!(entry.stream, streams::conversation(id(CONVERSATION)));
    assert_eq!(entry.stream_version, 2);
    assert_eq!(entry.event_type, "ConversationAssigned");
    assert_eq!(entry.schema_version, 1);
    assert_eq!(entry.actor, router());
    assert_eq!(entry.occurred_at, at(11));
    assert_eq!(entry.recorded_at, at(11) + chrono::Duration::seconds(2));
    assert_eq!(
        (entry.correlation_id, entry.causation_id),
        (event_id(4), event_id(5))
    );
    assert_eq!(
        entry.concerns,
        Concerns {
            conversation_id: Some(id(CONVERSATION)),
            inbox_id: Some(id(INBOX)),
            contact_id: None
        }
    );
    assert_eq!(by_event_id(&conn, id(12345)).unwrap(), None);
}

#[test]
fn filters_by_actor() {
    let (_dir, conn) = build(&sample().events);
    let is = |actor| AuditFilter {
        actor: Some(ActorFilter::Is(actor)),
        ..Default::default()
    };
    assert_eq!(positions(&conn, is(agent())), vec![3, 7, 8]);
    assert_eq!(positions(&conn, is(router())), vec![6]);
    assert_eq!(
        positions(&conn, is(Actor::Contact { id: id(ADA) })),
        vec![5]
    );
    assert_eq!(
        positions(&conn, is(Actor::Channel { id: id(900) })),
        vec![4]
    );
    assert_eq!(
        positions(&conn, is(Actor::User { id: id(999) })),
        Vec::<u64>::new()
    );
    let kind = |kind| AuditFilter {
        actor: Some(ActorFilter::Kind(kind)),
        ..Default::default()
    };
    assert_eq!(positions(&conn, kind(ActorKind::User)), vec![1, 2, 3, 7, 8]);
    assert_eq!(positions(&conn, kind(ActorKind::System)), vec![6, 9]);
    assert_eq!(positions(&conn, kind(ActorKind::Bot)), Vec::<u64>::new());
}

#[test]
fn filters_by_conversation_inbox_and_contact() {
    let (_dir, conn) = build(&sample().events);
    let conv = AuditFilter {
        conversation_id: Some(id(CONVERSATION)),
        ..Default::default()
    };
    assert_eq!(positions(&conn, conv), vec![4, 5, 6, 7]);
    let inbox = AuditFilter {
        inbox_id: Some(id(INBOX)),
        ..Default::default()
    };
    assert_eq!(positions(&conn, inbox), vec![2, 4, 5, 6, 7]);
    // Creation, the conversation's start and message, the merge (as survivor), the
    // reservation owned by the contact's stream.
    let ada = AuditFilter {
        contact_id: Some(id(ADA)),
        ..Default::default()
    };
    assert_eq!(positions(&conn, ada), vec![3, 4, 5, 8, 9]);
    let bea = AuditFilter {
        contact_id: Some(id(BEA)),
        ..Default::default()
    };
    assert_eq!(positions(&conn, bea), Vec::<u64>::new());
}

#[test]
fn filters_by_event_type_period_and_combinations() {
    let (_dir, conn) = build(&sample().events);
    let typed = AuditFilter {
        event_type: Some("CommentAdded".into()),
        ..Default::default()
    };
    assert_eq!(positions(&conn, typed), vec![7]);
    // From inclusive, until exclusive.
    let period = AuditFilter {
        occurred_from: Some(at(10)),
        occurred_until: Some(at(20)),
        ..Default::default()
    };
    assert_eq!(positions(&conn, period), vec![4, 5, 6]);
    let from = AuditFilter {
        occurred_from: Some(at(20)),
        ..Default::default()
    };
    assert_eq!(positions(&conn, from), vec![7, 8, 9]);
    let combined = AuditFilter {
        actor: Some(ActorFilter::Is(agent())),
        inbox_id: Some(id(INBOX)),
        occurred_until: Some(at(30)),
        ..Default::default()
    };
    assert_eq!(positions(&conn, combined), vec![7]);
    let by_agent_user = AuditFilter {
        actor: Some(ActorFilter::Is(Actor::User { id: id(AGENT) })),
        event_type: Some("ContactsMerged".into()),
        ..Default::default()
    };
    assert_eq!(positions(&conn, by_agent_user), vec![8]);
    assert_eq!(
        positions(&conn, AuditFilter::default()),
        (1..=9).collect::<Vec<_>>()
    );
}

#[test]
fn a_correlation_id_gives_the_whole_causal_chain() {
    let (_dir, conn) = build(&sample().events);
    let chain = by_correlation(&conn, event_id(4)).unwrap();
    assert_eq!(
        chain.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    // Each link names its cause, which can be looked up.
    let cause = by_event_id(&conn, chain[2].causation_id).unwrap().unwrap();
    assert_eq!(cause.event_type, "MessageReceived");
    let filtered = AuditFilter {
        correlation_id: Some(event_id(4)),
        ..Default::default()
    };
    assert_eq!(positions(&conn, filtered), vec![4, 5, 6]);
    assert_eq!(by_correlation(&conn, event_id(7)).unwrap().len(), 1);
}

#[test]
fn a_merge_is_in_the_trails_of_both_contacts() {
    // The service records a merge twice: the merged contact's tombstone, then the survivor's.
    let (ada, bea) = (id(ADA), id(BEA));
    let merge = || proto_events::event::ContactsMerged {
        survivor_id: ada,
        merged_id: bea,
    };
    let mut history = History::default();
    history.push(streams::contact(bea), agent(), 1, merge());
    history.push(streams::contact(ada), agent(), 1, merge());
    let (_dir, conn) = build(&history.events);
    let trail = |contact| {
        positions(
            &conn,
            AuditFilter {
                contact_id: Some(contact),
                ..Default::default()
            },
        )
    };
    assert_eq!(trail(bea), vec![1]);
    assert_eq!(trail(ada), vec![2]);
}
