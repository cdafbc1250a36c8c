//! Erasure: the trail keeps every entry, the erasures' own included (who, when, what), but the
//! reservation streams of an erased contact, and of the contacts merged into it, are named by
//! the person's addresses and ids: their entries' streams are redacted, before the erasure and
//! after it, in the queries and in the bytes of the database file.

use std::path::Path;

use audit_trail::{ActorFilter, AuditEntry, AuditFilter, AuditTrail, Concerns, Page, audit_events};
use proto_events::event::{
    ChannelKind, ContactErased, ContactRecordCreated, ContactsMerged, ConversationErased,
    ConversationOrigin, ConversationStarted, ConversationVisibility, UniqueScope,
    UniqueValueReleased, UniqueValueReserved,
};
use proto_events::{Actor, Envelope, streams};
use rusqlite::Connection;
use switchboard_projector::testing::{build_at_once, build_in_batches, dump};

use crate::support::{History, agent, id};

const ZELDA: u128 = 9;
const MERGED: u128 = 8;
const KIM: u128 = 1;
const CONVERSATION: u128 = 109;
const INBOX: u128 = 700;
const ADMIN: u128 = 501;

const ADDRESS: &str = "zelda@quibble.example";
const VISITOR: &str = "visitor-7f3a-zelda";
const OLD_ADDRESS: &str = "zq@old.example";
/// What the trail must not hold once she is erased: the values in her reservations' names.
const PERSONAL: [&str; 3] = [ADDRESS, VISITOR, OLD_ADDRESS];
const REASON: &str = "Art. 17 request, ticket 4711";

fn admin() -> Actor {
    Actor::User { id: id(ADMIN) }
}

fn contacts() -> Actor {
    Actor::System {
        component: "contacts".into(),
    }
}

fn reserve(h: &mut History, minute: i64, scope: UniqueScope, value: &str, owner: u128) {
    h.push(
        streams::unique(scope, value),
        contacts(),
        minute,
        UniqueValueReserved {
            scope,
            value: value.into(),
            owner_stream: streams::contact(id(owner)),
        },
    );
}

fn release(h: &mut History, minute: i64, scope: UniqueScope, value: &str, owner: u128) {
    h.push(
        streams::unique(scope, value),
        contacts(),
        minute,
        UniqueValueReleased {
            scope,
            value: value.into(),
            owner_stream: streams::contact(id(owner)),
        },
    );
}

fn created(h: &mut History, minute: i64, contact: u128) {
    h.push(
        streams::contact(id(contact)),
        agent(),
        minute,
        ContactRecordCreated {
            contact_id: id(contact),
            identities: vec![],
            properties: Default::default(),
            from_conversation_id: None,
        },
    );
}

/// Contacts created after Kim's, so that the chunks holding her reservations' entries are
/// rewritten by later batches (and their earlier versions left in free space, unless
/// overwritten) before the erasure.
const LATER: u64 = 20;

/// Positions: 1 Zelda created, 2 and 3 her e-mail and chat reservations, 4 the contact merged
/// into her created, 5 its reservation, 6 and 7 the merge in both streams, 8 her conversation,
/// 9 Kim created, 10 Kim's reservation, then [`LATER`] more contacts created.
fn history() -> History {
    let mut h = History::default();
    created(&mut h, 0, ZELDA);
    reserve(&mut h, 0, UniqueScope::ContactEmail, ADDRESS, ZELDA);
    reserve(&mut h, 0, UniqueScope::ContactChatVisitor, VISITOR, ZELDA);
    created(&mut h, 1, MERGED);
    reserve(&mut h, 1, UniqueScope::ContactEmail, OLD_ADDRESS, MERGED);
    let merge = ContactsMerged {
        survivor_id: id(ZELDA),
        merged_id: id(MERGED),
    };
    h.push(streams::contact(id(ZELDA)), agent(), 2, merge.clone());
    h.push(streams::contact(id(MERGED)), agent(), 2, merge);
    h.push(
        streams::conversation(id(CONVERSATION)),
        Actor::Channel { id: id(900) },
        3,
        ConversationStarted {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            channel_id: id(900),
            channel_kind: ChannelKind::Email,
            contact_id: Some(id(ZELDA)),
            origin: ConversationOrigin::Inbound,
            visibility: ConversationVisibility::Shared,
        },
    );
    created(&mut h, 4, KIM);
    reserve(
        &mut h,
        4,
        UniqueScope::ContactEmail,
        "kim@customer.example",
        KIM,
    );
    for n in 0..u128::from(LATER) {
        created(&mut h, 5, 1000 + n);
    }
    h
}

/// After [`history`]: her erasure, her conversation's, then her and the merged contact's
/// e-mail addresses released (as the service does after an erasure).
fn erased() -> Vec<Envelope> {
    let mut h = history();
    h.push(
        streams::contact(id(ZELDA)),
        admin(),
        10,
        ContactErased {
            contact_id: id(ZELDA),
            conversation_ids: vec![id(CONVERSATION)],
            reason: REASON.into(),
        },
    );
    h.push(
        streams::conversation(id(CONVERSATION)),
        admin(),
        10,
        ConversationErased {
            conversation_id: id(CONVERSATION),
            inbox_id: id(INBOX),
            contact_id: Some(id(ZELDA)),
            reason: REASON.into(),
        },
    );
    release(&mut h, 11, UniqueScope::ContactEmail, ADDRESS, ZELDA);
    release(&mut h, 11, UniqueScope::ContactEmail, OLD_ADDRESS, MERGED);
    h.events
}

fn all(conn: &Connection) -> Vec<AuditEntry> {
    let page = audit_events(
        conn,
        &AuditFilter::default(),
        Page::Forward {
            after: None,
            first: 100,
        },
    )
    .unwrap();
    page.entries
}

fn of_type(conn: &Connection, event_type: &str) -> Vec<AuditEntry> {
    let filter = AuditFilter {
        event_type: Some(event_type.into()),
        ..Default::default()
    };
    let page = audit_events(
        conn,
        &filter,
        Page::Forward {
            after: None,
            first: 100,
        },
    )
    .unwrap();
    page.entries
}

/// The read model's bytes on disk once its write-ahead log is folded into the database file and
/// truncated, as the runtime's checkpointer leaves it when it stops. (While running, it folds
/// the log in passively: until SQLite writes over them, the log keeps the pages as they were.)
fn file_bytes(conn: &Connection, dir: &Path) -> Vec<u8> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let wal = std::fs::read(dir.join("audit_trail.sqlite3-wal")).unwrap_or_default();
    assert!(wal.is_empty(), "the write-ahead log is truncated");
    std::fs::read(dir.join("audit_trail.sqlite3")).unwrap()
}

fn holds(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

#[test]
fn before_her_erasure_the_trail_names_her_reservations() {
    // What the tests after it look for is really there to be found.
    let dir = tempfile::tempdir().unwrap();
    let conn = build_at_once(&AuditTrail, dir.path(), &history().events);
    assert_eq!(
        all(&conn)[1].stream,
        streams::unique(UniqueScope::ContactEmail, ADDRESS)
    );
    let bytes = file_bytes(&conn, dir.path());
    for text in PERSONAL {
        assert!(holds(&bytes, text), "{text} is in the file before erasure");
    }
}

#[test]
fn the_trail_keeps_every_entry_and_the_erasures_but_not_her_reservations_names() {
    let events = erased();
    let dir = tempfile::tempdir().unwrap();
    let conn = build_at_once(&AuditTrail, dir.path(), &events);
    let entries = all(&conn);
    assert_eq!(
        entries.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "every entry stays"
    );
    let streams: Vec<&str> = entries.iter().map(|e| e.stream.as_str()).collect();
    let later = 10 + LATER as usize;
    assert_eq!(
        streams[..10],
        [
            streams::contact(id(ZELDA)).as_str(),
            "unique-contact-email-(erased)",
            "unique-contact-chat-visitor-(erased)",
            &streams::contact(id(MERGED)),
            "unique-contact-email-(erased)",
            &streams::contact(id(ZELDA)),
            &streams::contact(id(MERGED)),
            &streams::conversation(id(CONVERSATION)),
            &streams::contact(id(KIM)),
            "unique-contact-email-kim@customer.example",
        ]
    );
    assert!(streams[10..later].iter().all(|s| s.starts_with("contact-")));
    assert_eq!(
        streams[later..],
        [
            streams::contact(id(ZELDA)).as_str(),
            &streams::conversation(id(CONVERSATION)),
            // Released after the erasure: redacted as they are recorded.
            "unique-contact-email-(erased)",
            "unique-contact-email-(erased)",
        ]
    );
    // Nothing else of an entry changes: what it concerns still finds it.
    let of_zelda = AuditFilter {
        contact_id: Some(id(ZELDA)),
        ..Default::default()
    };
    let found = audit_events(
        &conn,
        &of_zelda,
        Page::Forward {
            after: None,
            first: 100,
        },
    )
    .unwrap();
    let erasure = 11 + LATER;
    assert_eq!(
        found.entries.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 3, 6, 8, erasure, erasure + 1, erasure + 2]
    );

    // The erasures are entries of their own: who, when, about what (the reason is in the
    // payload, which the store holds at the entry's position).
    let [contact_erased] = &of_type(&conn, "ContactErased")[..] else {
        panic!("one ContactErased entry");
    };
    assert_eq!(contact_erased.actor, admin());
    assert_eq!(contact_erased.position, erasure);
    assert_eq!(contact_erased.occurred_at, crate::support::at(10));
    assert_eq!(
        contact_erased.concerns,
        Concerns {
            conversation_id: None,
            inbox_id: None,
            contact_id: Some(id(ZELDA)),
        }
    );
    let [conversation_erased] = &of_type(&conn, "ConversationErased")[..] else {
        panic!("one ConversationErased entry");
    };
    assert_eq!(conversation_erased.actor, admin());
    assert_eq!(
        conversation_erased.concerns,
        Concerns {
            conversation_id: Some(id(CONVERSATION)),
            inbox_id: Some(id(INBOX)),
            contact_id: Some(id(ZELDA)),
        }
    );
    let by_admin = AuditFilter {
        actor: Some(ActorFilter::Is(admin())),
        ..Default::default()
    };
    let page = audit_events(
        &conn,
        &by_admin,
        Page::Forward {
            after: None,
            first: 100,
        },
    )
    .unwrap();
    assert_eq!(page.entries.len(), 2);

    let bytes = file_bytes(&conn, dir.path());
    for text in PERSONAL {
        assert!(!holds(&bytes, text), "{text} is still in the file");
    }
    assert!(holds(&bytes, "kim@customer.example"), "Kim's stays");
}

#[test]
fn a_rebuild_any_batching_and_events_applied_again_erase_alike() {
    use switchboard_projector::{Event, Projector};

    let events = erased();
    let dir = tempfile::tempdir().unwrap();
    let expected = dump(&build_at_once(&AuditTrail, dir.path(), &events));
    for batch in [1, 2, 3, 5, 17] {
        let dir = tempfile::tempdir().unwrap();
        let conn = build_in_batches(&AuditTrail, dir.path(), &events, batch);
        assert!(dump(&conn) == expected, "batches of {batch} differ");
        let bytes = file_bytes(&conn, dir.path());
        for text in PERSONAL {
            assert!(
                !holds(&bytes, text),
                "{text} is still in the file with batches of {batch}"
            );
        }
    }
    // A batch handed over twice, overlapping what is recorded (the erasure too).
    let mut conn = switchboard_projector::model::open_in_memory(&AuditTrail).unwrap();
    let decoded: Vec<Event<'_>> = events.iter().map(Event::decoded).collect();
    let erasure = 10 + LATER as usize;
    for range in [
        0..erasure,
        5..erasure + 1,
        erasure..events.len(),
        0..events.len(),
    ] {
        let tx = conn.transaction().unwrap();
        AuditTrail.apply_batch(&tx, &decoded[range]).unwrap();
        tx.commit().unwrap();
    }
    assert!(dump(&conn) == expected, "applied again, it differs");
}

/// Her reservations and the merged contact's are found through merges recorded before her
/// erasure, however many: a contact merged into one later merged into her is hers too.
#[test]
fn merges_before_the_erasure_make_the_merged_contacts_reservations_hers() {
    let mut h = History::default();
    let (older, middle) = (7u128, 6u128);
    reserve(&mut h, 0, UniqueScope::ContactEmail, OLD_ADDRESS, older);
    for (survivor, merged) in [(middle, older), (ZELDA, middle)] {
        h.push(
            streams::contact(id(survivor)),
            agent(),
            1,
            ContactsMerged {
                survivor_id: id(survivor),
                merged_id: id(merged),
            },
        );
    }
    h.push(
        streams::contact(id(ZELDA)),
        admin(),
        2,
        ContactErased {
            contact_id: id(ZELDA),
            conversation_ids: vec![],
            reason: REASON.into(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let conn = build_in_batches(&AuditTrail, dir.path(), &h.events, 2);
    assert_eq!(all(&conn)[0].stream, "unique-contact-email-(erased)");
    let bytes = file_bytes(&conn, dir.path());
    assert!(!holds(&bytes, OLD_ADDRESS));
}
