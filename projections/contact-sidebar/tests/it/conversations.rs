//! A contact's conversations: how they are linked, previews, status, access data, pagination.

use std::collections::HashSet;

use contact_sidebar::{ConversationStatus, MessageDirection, conversations_of_contact};
use proto_events::event::{
    ContactRecordCreated, ContactsMerged, ConversationClosed, ConversationReopened,
    ConversationShared, ReopenCause,
};
use proto_events::{Actor, streams};
use switchboard_projector::Scope;
use uuid::Uuid;

use crate::support::{History, at, build, id, received, reply, started};

const INBOX: u128 = 700;

#[test]
fn a_conversation_shows_its_last_message_status_and_owner() {
    let (ada, conv, owner) = (id(1), id(100), id(500));
    let inbox = id(INBOX);
    let mut h = History::default();
    h.push(
        streams::conversation(conv),
        0,
        started(conv, inbox, Some(ada), Some(owner)),
    );
    h.push(
        streams::conversation(conv),
        1,
        received(conv, inbox, Some(ada), "Hello,\n  my   order?"),
    );
    let (_dir, conn) = build(&h.events);
    let page = conversations_of_contact(&conn, ada, None, 10, &Scope::Everything).unwrap();
    assert_eq!(page.next, None);
    let c = &page.conversations[0];
    assert_eq!((c.conversation_id, c.inbox_id), (conv, inbox));
    assert_eq!(c.status, ConversationStatus::Open);
    assert_eq!(c.private_owner_user_id, Some(owner));
    assert_eq!(c.last_message_preview.as_deref(), Some("Hello, my order?"));
    assert_eq!(c.last_message_direction, Some(MessageDirection::Inbound));
    assert_eq!(c.subject.as_deref(), Some("About Hello,\n  my   order?"));
    assert_eq!(c.last_activity, at(1));

    h.push(
        streams::conversation(conv),
        2,
        reply(conv, inbox, &"x".repeat(300)),
    );
    h.push(
        streams::conversation(conv),
        3,
        ConversationShared {
            conversation_id: conv,
            inbox_id: inbox,
            by_user_id: owner,
        },
    );
    h.push(
        streams::conversation(conv),
        4,
        ConversationClosed {
            conversation_id: conv,
            inbox_id: inbox,
            by: Actor::User { id: owner },
        },
    );
    let (_dir, conn) = build(&h.events);
    let c = conversations_of_contact(&conn, ada, None, 10, &Scope::Everything)
        .unwrap()
        .conversations
        .remove(0);
    assert_eq!(c.status, ConversationStatus::Closed);
    assert_eq!(c.private_owner_user_id, None);
    assert_eq!(c.last_message_direction, Some(MessageDirection::Outbound));
    assert_eq!(c.last_message_preview.map(|p| p.chars().count()), Some(140));
    assert_eq!(c.last_activity, at(4));

    h.push(
        streams::conversation(conv),
        5,
        ConversationReopened {
            conversation_id: conv,
            inbox_id: inbox,
            cause: ReopenCause::Manual {
                by: Actor::User { id: owner },
            },
        },
    );
    let (_dir, conn) = build(&h.events);
    let c = conversations_of_contact(&conn, ada, None, 10, &Scope::Everything)
        .unwrap()
        .conversations
        .remove(0);
    assert_eq!(c.status, ConversationStatus::Open);
}

#[test]
fn conversations_link_to_a_contact_by_message_by_record_creation_and_by_merge() {
    let (ada, bea) = (id(1), id(2));
    let (by_message, by_record, by_merge) = (id(101), id(102), id(103));
    let inbox = id(INBOX);
    let mut h = History::default();
    // Started by an unknown visitor; the message recognises Ada.
    h.push(
        streams::conversation(by_message),
        0,
        started(by_message, inbox, None, None),
    );
    h.push(
        streams::conversation(by_message),
        1,
        received(by_message, inbox, Some(ada), "one"),
    );
    // A visitor's conversation becomes Ada's when the visitor is turned into Ada's record.
    h.push(
        streams::conversation(by_record),
        2,
        started(by_record, inbox, None, None),
    );
    h.push(
        streams::conversation(by_record),
        3,
        received(by_record, inbox, None, "two"),
    );
    h.push(
        streams::contact(ada),
        4,
        ContactRecordCreated {
            contact_id: ada,
            identities: vec![],
            properties: Default::default(),
            from_conversation_id: Some(by_record),
        },
    );
    // Bea's conversation becomes Ada's when Bea is merged into Ada.
    h.push(
        streams::conversation(by_merge),
        5,
        started(by_merge, inbox, Some(bea), None),
    );
    h.push(
        streams::contact(ada),
        6,
        ContactsMerged {
            survivor_id: ada,
            merged_id: bea,
        },
    );
    let (_dir, conn) = build(&h.events);
    let ids: Vec<Uuid> = conversations_of_contact(&conn, bea, None, 10, &Scope::Everything)
        .unwrap()
        .conversations
        .iter()
        .map(|c| c.conversation_id)
        .collect();
    assert_eq!(ids, vec![by_merge, by_record, by_message]);
    assert!(
        conversations_of_contact(&conn, id(3), None, 10, &Scope::Everything)
            .unwrap()
            .conversations
            .is_empty()
    );
}

#[test]
fn pages_cover_every_conversation_once_newest_first() {
    let ada = id(1);
    let inbox = id(INBOX);
    let mut h = History::default();
    // 23 conversations; pairs share an activity time so the id breaks ties.
    for n in 0..23u128 {
        let conv = id(1000 + n);
        let minute = (n / 2) as i64;
        h.push(
            streams::conversation(conv),
            minute,
            started(conv, inbox, Some(ada), None),
        );
    }
    // Another contact's conversation never shows.
    h.push(
        streams::conversation(id(9999)),
        3,
        started(id(9999), inbox, Some(id(2)), None),
    );
    let (_dir, conn) = build(&h.events);

    for size in [1, 4, 5, 23, 50] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page =
                conversations_of_contact(&conn, ada, cursor, size, &Scope::Everything).unwrap();
            assert!(page.conversations.len() <= size);
            seen.extend(
                page.conversations
                    .iter()
                    .map(|c| (c.last_activity, c.conversation_id)),
            );
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "page size {size}");
        assert_eq!(
            seen.iter().collect::<HashSet<_>>().len(),
            23,
            "duplicates at page size {size}"
        );
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted, "order at page size {size}");
    }
}
