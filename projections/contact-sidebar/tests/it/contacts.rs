//! Contacts: properties, identities, owner, and merges resolving to the survivor.

use std::collections::BTreeMap;

use contact_sidebar::{contact_by_id, contact_by_identity, resolve_contact};
use proto_events::event::{
    ContactIdentityLinked, ContactOwnerChanged, ContactPropertiesChanged, ContactRecordCreated,
    ContactsMerged, Identity,
};
use proto_events::streams;
use uuid::Uuid;

use crate::support::{History, at, build, email, id};

fn created(
    contact: Uuid,
    identities: Vec<Identity>,
    properties: &[(&str, &str)],
) -> ContactRecordCreated {
    ContactRecordCreated {
        contact_id: contact,
        identities,
        properties: properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        from_conversation_id: None,
    }
}

#[test]
fn a_created_contact_has_its_properties_identities_and_owner() {
    let ada = id(1);
    let mut h = History::default();
    h.push(
        streams::contact(ada),
        0,
        created(
            ada,
            vec![email("Ada@Example.com")],
            &[("name", "Ada"), ("phone", "1")],
        ),
    );
    h.push(
        streams::contact(ada),
        1,
        ContactPropertiesChanged {
            contact_id: ada,
            changes: BTreeMap::from([
                ("phone".to_owned(), None),
                ("job_title".to_owned(), Some("CTO".to_owned())),
            ]),
        },
    );
    h.push(
        streams::contact(ada),
        2,
        ContactIdentityLinked {
            contact_id: ada,
            identity: Identity::ChatVisitor {
                visitor_id: "v-1".into(),
            },
        },
    );
    h.push(
        streams::contact(ada),
        3,
        ContactOwnerChanged {
            contact_id: ada,
            owner_user_id: Some(id(500)),
        },
    );
    let (_dir, conn) = build(&h.events);

    let contact = contact_by_id(&conn, ada).unwrap().unwrap();
    assert_eq!(contact.contact_id, ada);
    assert_eq!(contact.owner_user_id, Some(id(500)));
    assert_eq!(contact.created_at, Some(at(0)));
    assert_eq!(
        contact.properties,
        BTreeMap::from([
            ("job_title".to_owned(), "CTO".to_owned()),
            ("name".to_owned(), "Ada".to_owned())
        ])
    );
    assert_eq!(
        contact.identities,
        vec![
            Identity::ChatVisitor {
                visitor_id: "v-1".into()
            },
            email("Ada@Example.com")
        ]
    );
    assert!(contact.merged_ids.is_empty());

    // E-mail is found case-insensitively; the other identities exactly.
    assert_eq!(
        contact_by_identity(&conn, &email(" ada@EXAMPLE.com"))
            .unwrap()
            .map(|c| c.contact_id),
        Some(ada)
    );
    let visitor = Identity::ChatVisitor {
        visitor_id: "v-1".into(),
    };
    assert_eq!(
        contact_by_identity(&conn, &visitor)
            .unwrap()
            .map(|c| c.contact_id),
        Some(ada)
    );
    assert_eq!(
        contact_by_identity(&conn, &Identity::Messenger { psid: "v-1".into() }).unwrap(),
        None
    );
    assert_eq!(contact_by_id(&conn, id(99)).unwrap(), None);
}

#[test]
fn an_owner_can_be_removed() {
    let ada = id(1);
    let mut h = History::default();
    h.push(streams::contact(ada), 0, created(ada, vec![], &[]));
    h.push(
        streams::contact(ada),
        1,
        ContactOwnerChanged {
            contact_id: ada,
            owner_user_id: Some(id(500)),
        },
    );
    h.push(
        streams::contact(ada),
        2,
        ContactOwnerChanged {
            contact_id: ada,
            owner_user_id: None,
        },
    );
    let (_dir, conn) = build(&h.events);
    assert_eq!(
        contact_by_id(&conn, ada).unwrap().unwrap().owner_user_id,
        None
    );
}

#[test]
fn a_merged_contact_resolves_to_its_survivor_with_everything_moved() {
    let (survivor, merged) = (id(1), id(2));
    let mut h = History::default();
    h.push(
        streams::contact(survivor),
        0,
        created(survivor, vec![email("ada@example.com")], &[("name", "Ada")]),
    );
    h.push(
        streams::contact(merged),
        1,
        created(
            merged,
            vec![email("ada@work.example")],
            &[("name", "A. Lovelace"), ("phone", "42")],
        ),
    );
    h.push(
        streams::contact(merged),
        2,
        ContactOwnerChanged {
            contact_id: merged,
            owner_user_id: Some(id(500)),
        },
    );
    let merge = ContactsMerged {
        survivor_id: survivor,
        merged_id: merged,
    };
    // Recorded in both contacts' streams: the second copy changes nothing.
    h.push(streams::contact(survivor), 3, merge.clone());
    h.push(streams::contact(merged), 3, merge);
    // A late change addressed to the merged id lands on the survivor.
    h.push(
        streams::contact(merged),
        4,
        ContactPropertiesChanged {
            contact_id: merged,
            changes: BTreeMap::from([("city".to_owned(), Some("London".to_owned()))]),
        },
    );
    let (_dir, conn) = build(&h.events);

    let by_merged = contact_by_id(&conn, merged).unwrap().unwrap();
    let by_survivor = contact_by_id(&conn, survivor).unwrap().unwrap();
    assert_eq!(by_merged, by_survivor);
    assert_eq!(by_survivor.contact_id, survivor);
    assert_eq!(by_survivor.merged_ids, vec![merged]);
    assert_eq!(by_survivor.owner_user_id, Some(id(500)));
    // The survivor's own name wins; what it lacked comes from the merged contact.
    assert_eq!(by_survivor.properties["name"], "Ada");
    assert_eq!(by_survivor.properties["phone"], "42");
    assert_eq!(by_survivor.properties["city"], "London");
    assert_eq!(
        by_survivor.identities,
        vec![email("ada@example.com"), email("ada@work.example")]
    );
    assert_eq!(
        contact_by_identity(&conn, &email("ada@work.example"))
            .unwrap()
            .unwrap()
            .contact_id,
        survivor
    );
    assert_eq!(resolve_contact(&conn, merged).unwrap(), Some(survivor));
}

#[test]
fn merging_a_survivor_again_repoints_earlier_merges() {
    let (a, b, c) = (id(1), id(2), id(3));
    let mut h = History::default();
    for (n, contact) in [a, b, c].into_iter().enumerate() {
        h.push(
            streams::contact(contact),
            n as i64,
            created(contact, vec![], &[]),
        );
    }
    h.push(
        streams::contact(b),
        5,
        ContactsMerged {
            survivor_id: b,
            merged_id: a,
        },
    );
    h.push(
        streams::contact(c),
        6,
        ContactsMerged {
            survivor_id: c,
            merged_id: b,
        },
    );
    let (_dir, conn) = build(&h.events);
    assert_eq!(resolve_contact(&conn, a).unwrap(), Some(c));
    let contact = contact_by_id(&conn, a).unwrap().unwrap();
    assert_eq!(contact.contact_id, c);
    assert_eq!(contact.merged_ids, vec![a, b]);
}
