//! Building in batches (with restarts between them) gives exactly the read model of a rebuild.

use std::collections::BTreeMap;

use contact_sidebar::ContactSidebar;
use proto_events::event::{
    AssociationAdded, AssociationRemoved, CompanyCreated, ContactIdentityLinked,
    ContactOwnerChanged, ContactPropertiesChanged, ContactRecordCreated, ContactsMerged,
    ConversationClosed, DealCreated, Identity, RecordKind, RecordRef, TicketCreated,
};
use proto_events::{Actor, streams};
use switchboard_projector::testing;

use crate::support::{History, email, id, received, reply, started};

/// A history touching every event the projector handles, with merges and removals.
fn history() -> History {
    let mut h = History::default();
    let inbox = id(700);
    for n in 1..=4u128 {
        let contact = id(n);
        h.push(
            streams::contact(contact),
            n as i64,
            ContactRecordCreated {
                contact_id: contact,
                identities: vec![email(&format!("c{n}@example.com"))],
                properties: [("name".to_owned(), format!("Contact {n}"))].into(),
                from_conversation_id: None,
            },
        );
        let conv = id(100 + n);
        h.push(
            streams::conversation(conv),
            10 + n as i64,
            started(conv, inbox, Some(contact), None),
        );
        h.push(
            streams::conversation(conv),
            11 + n as i64,
            received(conv, inbox, Some(contact), "hi"),
        );
        h.push(
            streams::conversation(conv),
            12 + n as i64,
            reply(conv, inbox, "hello"),
        );
    }
    h.push(
        streams::company(id(10)),
        20,
        CompanyCreated {
            company_id: id(10),
            name: "Acme".into(),
            domain: None,
        },
    );
    h.push(
        streams::deal(id(20)),
        21,
        DealCreated {
            deal_id: id(20),
            name: "Deal".into(),
            stage: None,
            owner_user_id: None,
        },
    );
    h.push(
        streams::ticket(id(30)),
        22,
        TicketCreated {
            ticket_id: id(30),
            subject: "T".into(),
            from_conversation_id: Some(id(101)),
        },
    );
    let contact = |n| RecordRef {
        kind: RecordKind::Contact,
        id: id(n),
    };
    let company = RecordRef {
        kind: RecordKind::Company,
        id: id(10),
    };
    let deal = RecordRef {
        kind: RecordKind::Deal,
        id: id(20),
    };
    let ticket = RecordRef {
        kind: RecordKind::Ticket,
        id: id(30),
    };
    h.push(
        streams::contact(id(1)),
        23,
        AssociationAdded {
            from: contact(1),
            to: company,
        },
    );
    h.push(
        streams::contact(id(2)),
        24,
        AssociationAdded {
            from: contact(2),
            to: deal,
        },
    );
    h.push(
        streams::contact(id(2)),
        25,
        AssociationAdded {
            from: contact(2),
            to: ticket,
        },
    );
    h.push(
        streams::contact(id(2)),
        26,
        AssociationRemoved {
            from: contact(2),
            to: ticket,
        },
    );
    h.push(
        streams::contact(id(3)),
        27,
        ContactIdentityLinked {
            contact_id: id(3),
            identity: Identity::Messenger { psid: "p".into() },
        },
    );
    h.push(
        streams::contact(id(3)),
        28,
        ContactOwnerChanged {
            contact_id: id(3),
            owner_user_id: Some(id(500)),
        },
    );
    h.push(
        streams::contact(id(4)),
        29,
        ContactPropertiesChanged {
            contact_id: id(4),
            changes: BTreeMap::from([("name".to_owned(), None)]),
        },
    );
    h.push(
        streams::contact(id(1)),
        30,
        ContactsMerged {
            survivor_id: id(1),
            merged_id: id(2),
        },
    );
    h.push(
        streams::contact(id(2)),
        30,
        ContactsMerged {
            survivor_id: id(1),
            merged_id: id(2),
        },
    );
    h.push(
        streams::contact(id(3)),
        31,
        ContactsMerged {
            survivor_id: id(3),
            merged_id: id(1),
        },
    );
    h.push(
        streams::conversation(id(102)),
        32,
        received(id(102), inbox, Some(id(2)), "late"),
    );
    h.push(
        streams::conversation(id(103)),
        33,
        ConversationClosed {
            conversation_id: id(103),
            inbox_id: inbox,
            by: Actor::System {
                component: "t".into(),
            },
        },
    );
    h
}

#[test]
fn building_in_batches_equals_building_at_once() {
    let events = history().events;
    assert!(events.len() > 22, "the history spans several batches of 11");
    let dir = tempfile::tempdir().unwrap();
    let once = dir.path().join("once");
    std::fs::create_dir_all(&once).unwrap();
    let at_once = testing::dump(&testing::build_at_once(&ContactSidebar, &once, &events));
    assert!(
        at_once.values().all(|rows| !rows.is_empty()),
        "every table is exercised: {at_once:?}"
    );
    for batch in [1, 5, 11] {
        let sub = dir.path().join(format!("batch-{batch}"));
        std::fs::create_dir_all(&sub).unwrap();
        let batched = testing::dump(&testing::build_in_batches(
            &ContactSidebar,
            &sub,
            &events,
            batch,
        ));
        assert_eq!(batched, at_once, "batch size {batch}");
    }
}

#[test]
fn the_list_index_is_built_once_caught_up() {
    use switchboard_projector::Event;
    use switchboard_projector::model::{apply_events, open_for_writing};

    let log = history();
    let decoded: Vec<Event<'_>> = log.events.iter().map(Event::decoded).collect();
    let (catching_up, last) = decoded.split_at(decoded.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contact_sidebar.sqlite3");
    let (mut conn, _) = open_for_writing(&path, &ContactSidebar).unwrap();
    apply_events(&mut conn, &ContactSidebar, catching_up, false).unwrap();
    // Besides the other tables' indexes, which applying events needs throughout.
    let others = ["contact_identities_by_contact", "contacts_by_survivor"];
    assert_eq!(
        testing::indexes(&conn),
        [
            &others[..],
            &["conversations_of_contact", "records_by_conversation"]
        ]
        .concat()
    );
    apply_events(&mut conn, &ContactSidebar, last, true).unwrap();
    assert_eq!(
        testing::indexes(&conn),
        [
            &others[..],
            &["conversations_by_contact", "records_by_conversation"]
        ]
        .concat()
    );
}
