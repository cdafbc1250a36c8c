//! Associated records: names and stages, both directions, removal, and merges.

use contact_sidebar::{AssociatedRecord, associations_of, records_of_contact};
use proto_events::event::{
    AssociationAdded, AssociationRemoved, CompanyCreated, ContactRecordCreated, ContactsMerged,
    DealCreated, RecordKind, RecordRef, TicketCreated,
};
use proto_events::streams;
use uuid::Uuid;

use crate::support::{History, build, id};

fn r(kind: RecordKind, id: Uuid) -> RecordRef {
    RecordRef { kind, id }
}

fn contact(h: &mut History, contact: Uuid, name: &str) {
    h.push(
        streams::contact(contact),
        0,
        ContactRecordCreated {
            contact_id: contact,
            identities: vec![],
            properties: [("name".to_owned(), name.to_owned())].into(),
            from_conversation_id: None,
        },
    );
}

/// Ada (1) with Acme (10), a deal (20) and a ticket (30); the deal is associated from its own
/// stream, the others from the contact's.
fn history() -> History {
    let (ada, acme, deal, ticket) = (id(1), id(10), id(20), id(30));
    let mut h = History::default();
    contact(&mut h, ada, "Ada");
    h.push(
        streams::company(acme),
        1,
        CompanyCreated {
            company_id: acme,
            name: "Acme".into(),
            domain: Some("acme.test".into()),
        },
    );
    h.push(
        streams::deal(deal),
        2,
        DealCreated {
            deal_id: deal,
            name: "Renewal".into(),
            stage: Some("qualified".into()),
            owner_user_id: None,
        },
    );
    h.push(
        streams::ticket(ticket),
        3,
        TicketCreated {
            ticket_id: ticket,
            subject: "Broken login".into(),
            from_conversation_id: None,
        },
    );
    h.push(
        streams::contact(ada),
        4,
        AssociationAdded {
            from: r(RecordKind::Contact, ada),
            to: r(RecordKind::Company, acme),
        },
    );
    h.push(
        streams::deal(deal),
        5,
        AssociationAdded {
            from: r(RecordKind::Deal, deal),
            to: r(RecordKind::Contact, ada),
        },
    );
    h.push(
        streams::contact(ada),
        6,
        AssociationAdded {
            from: r(RecordKind::Contact, ada),
            to: r(RecordKind::Ticket, ticket),
        },
    );
    h
}

#[test]
fn a_contact_shows_its_records_whichever_side_recorded_them() {
    let (_dir, conn) = build(&history().events);
    let records = records_of_contact(&conn, id(1)).unwrap();
    assert_eq!(
        records,
        vec![
            AssociatedRecord {
                record: r(RecordKind::Company, id(10)),
                name: Some("Acme".into()),
                stage: None,
                domain: Some("acme.test".into())
            },
            AssociatedRecord {
                record: r(RecordKind::Deal, id(20)),
                name: Some("Renewal".into()),
                stage: Some("qualified".into()),
                domain: None
            },
            AssociatedRecord {
                record: r(RecordKind::Ticket, id(30)),
                name: Some("Broken login".into()),
                stage: None,
                domain: None
            },
        ]
    );
}

#[test]
fn associations_are_indexed_in_both_directions() {
    let (_dir, conn) = build(&history().events);
    for (kind, record) in [
        (RecordKind::Company, id(10)),
        (RecordKind::Deal, id(20)),
        (RecordKind::Ticket, id(30)),
    ] {
        let others = associations_of(&conn, r(kind, record)).unwrap();
        assert_eq!(others.len(), 1, "{kind:?}");
        assert_eq!(others[0].record, r(RecordKind::Contact, id(1)));
        assert_eq!(others[0].name.as_deref(), Some("Ada"));
    }
}

#[test]
fn removing_an_association_from_either_side_removes_both_directions() {
    let mut h = history();
    // Added from the deal's side, removed from the contact's.
    h.push(
        streams::contact(id(1)),
        7,
        AssociationRemoved {
            from: r(RecordKind::Contact, id(1)),
            to: r(RecordKind::Deal, id(20)),
        },
    );
    let (_dir, conn) = build(&h.events);
    let kinds: Vec<_> = records_of_contact(&conn, id(1))
        .unwrap()
        .into_iter()
        .map(|a| a.record.kind)
        .collect();
    assert_eq!(kinds, vec![RecordKind::Company, RecordKind::Ticket]);
    assert!(
        associations_of(&conn, r(RecordKind::Deal, id(20)))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_merge_moves_associations_to_the_survivor() {
    let mut h = history();
    let bea = id(2);
    contact(&mut h, bea, "Bea");
    let globex = id(11);
    h.push(
        streams::company(globex),
        8,
        CompanyCreated {
            company_id: globex,
            name: "Globex".into(),
            domain: None,
        },
    );
    h.push(
        streams::company(globex),
        9,
        AssociationAdded {
            from: r(RecordKind::Company, globex),
            to: r(RecordKind::Contact, bea),
        },
    );
    // Ada is merged into Bea.
    h.push(
        streams::contact(bea),
        10,
        ContactsMerged {
            survivor_id: bea,
            merged_id: id(1),
        },
    );
    let (_dir, conn) = build(&h.events);
    let ids: Vec<_> = records_of_contact(&conn, id(1))
        .unwrap()
        .into_iter()
        .map(|a| a.record.id)
        .collect();
    assert_eq!(ids, vec![id(10), globex, id(20), id(30)]);
    assert_eq!(records_of_contact(&conn, bea).unwrap().len(), 4);
    let of_acme = associations_of(&conn, r(RecordKind::Company, id(10))).unwrap();
    assert_eq!(
        of_acme.iter().map(|a| a.record).collect::<Vec<_>>(),
        vec![r(RecordKind::Contact, bea)]
    );
}
