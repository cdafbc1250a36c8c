//! Erasure: an erased contact leaves the sidebar (properties, identities, owner, associations,
//! the contacts merged into it, its conversations), an erased conversation leaves its contact's
//! list and takes the subject of the tickets made from it; neither the queries nor the bytes of
//! the database file hold what they held.

use std::path::Path;

use contact_sidebar::{
    AssociatedRecord, ContactConversation, ContactSidebar, associations_of, contact_by_id,
    contact_by_identity, conversations_of_contact, records_of_contact, resolve_contact,
};
use proto_events::event::{
    AssociationAdded, CompanyCreated, ContactErased, ContactIdentityLinked, ContactOwnerChanged,
    ContactPropertiesChanged, ContactRecordCreated, ContactsMerged, ConversationErased, Identity,
    RecordKind, RecordRef, TicketCreated,
};
use proto_events::{Envelope, streams};
use rusqlite::Connection;
use switchboard_projector::Scope;
use switchboard_projector::testing::{build_at_once, build_in_batches, dump};

use crate::support::{History, email, id, received, reply, started};

const INBOX: u128 = 700;
const KIM: u128 = 1;
const KIM_CONVERSATION: u128 = 101;
/// Zelda, erased; the contact merged into her; her conversation, and the merged contact's.
const ZELDA: u128 = 9;
const MERGED: u128 = 8;
const ZELDA_CONVERSATION: u128 = 109;
const MERGED_CONVERSATION: u128 = 108;
const ACME: u128 = 10;
/// A ticket made from Zelda's conversation, associated with Kim too.
const TICKET: u128 = 30;

const NAME: &str = "Zelda Quibble";
const ADDRESS: &str = "zelda@quibble.example";
const BODY: &str = "my unique order text 7f3a";
const PHONE: &str = "+44 7700 900123";
const VISITOR: &str = "visitor-7f3a-zelda";
const OLD_ADDRESS: &str = "zq@old.example";
const EMPLOYER: &str = "Quibble Widgets Ltd";
/// What the read model must not hold once she is erased.
const PERSONAL: [&str; 7] = [NAME, ADDRESS, BODY, PHONE, VISITOR, OLD_ADDRESS, EMPLOYER];

fn record(kind: RecordKind, n: u128) -> RecordRef {
    RecordRef { kind, id: id(n) }
}

/// Kim with a conversation; Zelda with every kind of contact data, a contact merged into her,
/// two conversations, a company and a ticket made from her conversation.
fn history() -> History {
    let inbox = id(INBOX);
    let mut h = History::default();
    h.push(
        streams::contact(id(KIM)),
        0,
        ContactRecordCreated {
            contact_id: id(KIM),
            identities: vec![email("kim@customer.example")],
            properties: [("name".to_owned(), "Kim".to_owned())].into(),
            from_conversation_id: None,
        },
    );
    let kim_conversation = id(KIM_CONVERSATION);
    h.push(
        streams::conversation(kim_conversation),
        1,
        started(kim_conversation, inbox, Some(id(KIM)), None),
    );
    h.push(
        streams::conversation(kim_conversation),
        2,
        received(kim_conversation, inbox, Some(id(KIM)), "Kim's question"),
    );

    let zelda = id(ZELDA);
    h.push(
        streams::contact(zelda),
        3,
        ContactRecordCreated {
            contact_id: zelda,
            identities: vec![email(ADDRESS)],
            properties: [
                ("name".to_owned(), NAME.to_owned()),
                ("phone".to_owned(), PHONE.to_owned()),
            ]
            .into(),
            from_conversation_id: None,
        },
    );
    h.push(
        streams::contact(zelda),
        4,
        ContactPropertiesChanged {
            contact_id: zelda,
            changes: [("employer".to_owned(), Some(EMPLOYER.to_owned()))].into(),
        },
    );
    h.push(
        streams::contact(zelda),
        5,
        ContactIdentityLinked {
            contact_id: zelda,
            identity: Identity::ChatVisitor {
                visitor_id: VISITOR.to_owned(),
            },
        },
    );
    h.push(
        streams::contact(zelda),
        6,
        ContactOwnerChanged {
            contact_id: zelda,
            owner_user_id: Some(id(500)),
        },
    );
    let conversation = id(ZELDA_CONVERSATION);
    h.push(
        streams::conversation(conversation),
        7,
        started(conversation, inbox, Some(zelda), None),
    );
    let mut message = received(conversation, inbox, Some(zelda), BODY);
    message.message.from = email(ADDRESS);
    message.message.from_name = Some(NAME.to_owned());
    message.message.subject = Some("Order 7f3a for Zelda Quibble".to_owned());
    h.push(streams::conversation(conversation), 8, message);
    h.push(
        streams::conversation(conversation),
        9,
        reply(
            conversation,
            inbox,
            "Dear Zelda Quibble, my unique order text 7f3a ships today.",
        ),
    );

    // The contact merged into her, with a conversation of its own.
    let merged = id(MERGED);
    h.push(
        streams::contact(merged),
        10,
        ContactRecordCreated {
            contact_id: merged,
            identities: vec![email(OLD_ADDRESS)],
            properties: [("name".to_owned(), "Z. Quibble".to_owned())].into(),
            from_conversation_id: None,
        },
    );
    let merged_conversation = id(MERGED_CONVERSATION);
    h.push(
        streams::conversation(merged_conversation),
        11,
        started(merged_conversation, inbox, Some(merged), None),
    );
    h.push(
        streams::conversation(merged_conversation),
        12,
        received(merged_conversation, inbox, Some(merged), "Old order 7f3a"),
    );
    let merge = ContactsMerged {
        survivor_id: zelda,
        merged_id: merged,
    };
    h.push(streams::contact(zelda), 13, merge.clone());
    h.push(streams::contact(merged), 13, merge);

    // Acme knows Kim, Zelda and her conversation; the ticket made from her conversation is
    // Kim's and Zelda's.
    h.push(
        streams::company(id(ACME)),
        14,
        CompanyCreated {
            company_id: id(ACME),
            name: "Acme".into(),
            domain: None,
        },
    );
    h.push(
        streams::ticket(id(TICKET)),
        15,
        TicketCreated {
            ticket_id: id(TICKET),
            subject: "Refund for Zelda Quibble".into(),
            from_conversation_id: Some(conversation),
        },
    );
    for (n, (from, to)) in [
        (
            record(RecordKind::Contact, KIM),
            record(RecordKind::Company, ACME),
        ),
        (
            record(RecordKind::Company, ACME),
            record(RecordKind::Contact, ZELDA),
        ),
        (
            record(RecordKind::Conversation, ZELDA_CONVERSATION),
            record(RecordKind::Company, ACME),
        ),
        (
            record(RecordKind::Contact, ZELDA),
            record(RecordKind::Ticket, TICKET),
        ),
        (
            record(RecordKind::Ticket, TICKET),
            record(RecordKind::Contact, KIM),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        h.push(
            streams::contact(id(ZELDA)),
            16 + n as i64,
            AssociationAdded { from, to },
        );
    }
    h
}

/// Her erasure: the contact, then each of her conversations.
fn erase_zelda(h: &mut History) {
    let reason = "Art. 17 request, ticket 4711".to_owned();
    let conversations = [id(ZELDA_CONVERSATION), id(MERGED_CONVERSATION)];
    h.push(
        streams::contact(id(ZELDA)),
        30,
        ContactErased {
            contact_id: id(ZELDA),
            conversation_ids: conversations.to_vec(),
            reason: reason.clone(),
        },
    );
    for conversation_id in conversations {
        h.push(
            streams::conversation(conversation_id),
            30,
            ConversationErased {
                conversation_id,
                inbox_id: id(INBOX),
                contact_id: Some(id(ZELDA)),
                reason: reason.clone(),
            },
        );
    }
}

fn erased() -> Vec<Envelope> {
    let mut h = history();
    erase_zelda(&mut h);
    h.events
}

/// The read model's bytes on disk once its write-ahead log is folded into the database file and
/// truncated, as the runtime's checkpointer leaves it when it stops. (While running, it folds
/// the log in passively: until SQLite writes over them, the log keeps the pages as they were.)
fn file_bytes(conn: &Connection, dir: &Path) -> Vec<u8> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let wal = std::fs::read(dir.join("contact_sidebar.sqlite3-wal")).unwrap_or_default();
    assert!(wal.is_empty(), "the write-ahead log is truncated");
    std::fs::read(dir.join("contact_sidebar.sqlite3")).unwrap()
}

fn holds(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

fn conversations(conn: &Connection, contact: u128) -> Vec<ContactConversation> {
    conversations_of_contact(conn, id(contact), None, 100, &Scope::Everything)
        .unwrap()
        .conversations
}

fn associated(conn: &Connection, record: RecordRef) -> Vec<(RecordRef, Option<String>)> {
    associations_of(conn, record)
        .unwrap()
        .into_iter()
        .map(|AssociatedRecord { record, name, .. }| (record, name))
        .collect()
}

#[test]
fn before_her_erasure_the_sidebar_shows_her() {
    // What the tests after it look for is really there to be found.
    let dir = tempfile::tempdir().unwrap();
    let conn = build_at_once(&ContactSidebar, dir.path(), &history().events);
    let zelda = contact_by_id(&conn, id(ZELDA)).unwrap().unwrap();
    assert_eq!(zelda.properties["name"], NAME);
    assert_eq!(zelda.merged_ids, [id(MERGED)]);
    assert_eq!(conversations(&conn, ZELDA).len(), 2);
    let bytes = file_bytes(&conn, dir.path());
    for text in PERSONAL {
        assert!(holds(&bytes, text), "{text} is in the file before erasure");
    }
}

#[test]
fn an_erased_contact_and_her_conversations_leave_the_sidebar() {
    let (_before_dir, before) = {
        let dir = tempfile::tempdir().unwrap();
        let conn = build_at_once(&ContactSidebar, dir.path(), &history().events);
        (dir, conn)
    };
    let dir = tempfile::tempdir().unwrap();
    let conn = build_at_once(&ContactSidebar, dir.path(), &erased());

    for contact in [ZELDA, MERGED] {
        assert_eq!(resolve_contact(&conn, id(contact)).unwrap(), None);
        assert_eq!(contact_by_id(&conn, id(contact)).unwrap(), None);
        assert_eq!(conversations(&conn, contact), []);
        assert_eq!(records_of_contact(&conn, id(contact)).unwrap(), []);
    }
    for identity in [
        email(ADDRESS),
        email(OLD_ADDRESS),
        Identity::ChatVisitor {
            visitor_id: VISITOR.to_owned(),
        },
    ] {
        assert_eq!(contact_by_identity(&conn, &identity).unwrap(), None);
    }
    // Acme keeps Kim only; the ticket stays, Kim's, without the subject it took from her
    // conversation (as it reads once the conversation's key is destroyed).
    assert_eq!(
        associated(&conn, record(RecordKind::Company, ACME)),
        [(record(RecordKind::Contact, KIM), Some("Kim".to_owned()))]
    );
    assert_eq!(
        associated(&conn, record(RecordKind::Ticket, TICKET)),
        [(record(RecordKind::Contact, KIM), Some("Kim".to_owned()))]
    );
    assert_eq!(
        associated(&conn, record(RecordKind::Contact, KIM)),
        [
            (record(RecordKind::Company, ACME), Some("Acme".to_owned())),
            (record(RecordKind::Ticket, TICKET), Some(String::new())),
        ]
    );
    // Kim is as she was.
    assert_eq!(
        contact_by_id(&conn, id(KIM)).unwrap(),
        contact_by_id(&before, id(KIM)).unwrap()
    );
    assert_eq!(conversations(&conn, KIM), conversations(&before, KIM));

    let bytes = file_bytes(&conn, dir.path());
    for text in PERSONAL {
        assert!(!holds(&bytes, text), "{text} is still in the file");
    }
    assert!(holds(&bytes, "kim@customer.example"), "Kim stays");
}

#[test]
fn a_rebuild_and_any_batching_erase_alike() {
    // In batches of one, her rows are committed before the erasure deletes them; at once, her
    // conversations' rows are dropped from the batch's memory before they are written.
    let events = erased();
    let dir = tempfile::tempdir().unwrap();
    let expected = dump(&build_at_once(&ContactSidebar, dir.path(), &events));
    for batch in [1, 2, 3, 5, 8] {
        let dir = tempfile::tempdir().unwrap();
        let conn = build_in_batches(&ContactSidebar, dir.path(), &events, batch);
        assert!(dump(&conn) == expected, "batches of {batch} differ");
        let bytes = file_bytes(&conn, dir.path());
        for text in PERSONAL {
            assert!(
                !holds(&bytes, text),
                "{text} is still in the file with batches of {batch}"
            );
        }
    }
}

#[test]
fn the_contact_erasure_alone_takes_her_conversations_with_her() {
    // Her conversations' own erasures have not been applied yet: she is gone all the same.
    let mut h = history();
    erase_zelda(&mut h);
    h.events.truncate(h.events.len() - 2);
    let dir = tempfile::tempdir().unwrap();
    let conn = build_in_batches(&ContactSidebar, dir.path(), &h.events, 4);
    assert_eq!(contact_by_id(&conn, id(ZELDA)).unwrap(), None);
    assert_eq!(conversations(&conn, ZELDA), []);
    let bytes = file_bytes(&conn, dir.path());
    for text in PERSONAL {
        assert!(!holds(&bytes, text), "{text} is still in the file");
    }
}

#[test]
fn a_conversation_erased_by_retention_leaves_its_contact() {
    let mut h = history();
    h.push(
        streams::conversation(id(KIM_CONVERSATION)),
        30,
        ConversationErased {
            conversation_id: id(KIM_CONVERSATION),
            inbox_id: id(INBOX),
            contact_id: None,
            reason: "closed more than 30 days ago".into(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let conn = build_in_batches(&ContactSidebar, dir.path(), &h.events, 7);
    assert_eq!(conversations(&conn, KIM), []);
    let kim = contact_by_id(&conn, id(KIM)).unwrap().unwrap();
    assert_eq!(kim.properties["name"], "Kim");
    assert_eq!(conversations(&conn, ZELDA).len(), 2);
    let bytes = file_bytes(&conn, dir.path());
    assert!(!holds(&bytes, "Kim's question"));
}

/// Zelda writes last in Kim's conversation (copied on it): it stays Kim's, and once Zelda is
/// erased it keeps nothing of hers, in any batching.
#[test]
fn her_words_in_kims_conversation_go_and_it_stays_kims() {
    const IN_KIMS: &str = "Zelda Quibble chimes in: my unique order text 7f3a";
    let mut h = history();
    h.push(
        streams::conversation(id(KIM_CONVERSATION)),
        25,
        received(id(KIM_CONVERSATION), id(INBOX), Some(id(ZELDA)), IN_KIMS),
    );
    let before = tempfile::tempdir().unwrap();
    let unerased = build_at_once(&ContactSidebar, before.path(), &h.events);
    let kims = conversations(&unerased, KIM);
    assert_eq!(kims.len(), 1, "still Kim's once Zelda wrote in it");
    assert_eq!(kims[0].last_message_preview.as_deref(), Some(IN_KIMS));
    assert!(
        conversations(&unerased, ZELDA)
            .iter()
            .all(|c| c.conversation_id != id(KIM_CONVERSATION))
    );

    erase_zelda(&mut h);
    let dir = tempfile::tempdir().unwrap();
    let conn = build_at_once(&ContactSidebar, dir.path(), &h.events);
    let kims = conversations(&conn, KIM);
    assert_eq!(kims.len(), 1);
    assert_eq!(kims[0].last_message_preview.as_deref(), Some(""));
    assert!(!holds(&file_bytes(&conn, dir.path()), "chimes in"));
    for batch in [1, 2, 3, 5, h.events.len()] {
        let dir = tempfile::tempdir().unwrap();
        let batched = build_in_batches(&ContactSidebar, dir.path(), &h.events, batch);
        assert_eq!(dump(&batched), dump(&conn), "with batches of {batch}");
        assert!(!holds(&file_bytes(&batched, dir.path()), "chimes in"));
    }
}

/// A conversation of Kim's whose subject came from Zelda's message (copied on it, writing
/// first): once Zelda is erased it has no subject, and the file no trace of hers.
#[test]
fn a_subject_her_message_gave_kims_conversation_goes_with_her() {
    const HERS: &str = "Zelda Quibble asks first, 7f3a";
    let kims = id(KIM_CONVERSATION + 50);
    let mut h = history();
    h.push(
        streams::conversation(kims),
        25,
        started(kims, id(INBOX), Some(id(KIM)), None),
    );
    h.push(
        streams::conversation(kims),
        25,
        received(kims, id(INBOX), Some(id(ZELDA)), HERS),
    );
    let before = tempfile::tempdir().unwrap();
    let unerased = build_at_once(&ContactSidebar, before.path(), &h.events);
    let subject_of = |conn: &Connection| {
        conversations(conn, KIM)
            .into_iter()
            .find(|c| c.conversation_id == kims)
            .map(|c| c.subject)
    };
    assert_eq!(subject_of(&unerased), Some(Some(format!("About {HERS}"))));

    erase_zelda(&mut h);
    let dir = tempfile::tempdir().unwrap();
    let conn = build_at_once(&ContactSidebar, dir.path(), &h.events);
    assert_eq!(
        subject_of(&conn),
        Some(None),
        "still Kim's, without her subject"
    );
    assert!(!holds(&file_bytes(&conn, dir.path()), "asks first"));
}
