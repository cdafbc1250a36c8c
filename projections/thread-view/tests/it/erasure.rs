//! Erasure: a conversation erased, with its contact or by its inbox's retention period, leaves
//! the thread view as if it had never been there: no header, timeline, files or filtered mail,
//! neither through the queries nor in the bytes of the database file.

use std::path::Path;

use proto_events::event::{
    Assignee, AssignmentReason, Attachment, BlobRef, ChannelKind, CommentAdded, ContactErased,
    ConversationAssigned, ConversationErased, ConversationVisibility, DeliveryFailed, FilterReason,
    MessageFiltered, RawMessage, ReplyAuthor,
};
use proto_events::{Actor, Envelope, streams};
use rusqlite::Connection;
use switchboard_projector::testing::{build_at_once, build_in_batches, dump};

use thread_view::{
    ListFilter, PageRequest, Scope, ThreadView, badge_counts, conversation, file, filtered_mail,
    list_conversations, timeline,
};
use uuid::Uuid;

use crate::history::*;

/// Zelda, the customer who asks to be erased.
const ZELDA: Uuid = Uuid::from_u128(0xd9);
/// Her e-mail conversation in Support.
const Z: Uuid = Uuid::from_u128(0xe9);
/// Her out-of-office, filtered in Support.
const ZF: Uuid = Uuid::from_u128(0xea);
const Z_REPLY: Uuid = Uuid::from_u128(0x9902);
const ATTACHMENT: &str = "a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7";
const ORIGINAL: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";

const NAME: &str = "Zelda Quibble";
const ADDRESS: &str = "zelda@quibble.example";
const BODY: &str = "my unique order text 7f3a";
const FILE_NAME: &str = "quibble-invoice-7f3a.pdf";
/// What the read model must not hold once she is erased.
const PERSONAL: [&str; 4] = [NAME, ADDRESS, BODY, FILE_NAME];

fn admin() -> Actor {
    Actor::User {
        id: Uuid::from_u128(0xa9),
    }
}

/// [`history`], then Zelda's two conversations: an e-mail with an attachment, answered
/// (delivery failed), commented on; and an out-of-office, filtered.
fn zelda() -> Builder {
    use ChannelKind::Email;
    let mut h = Builder::after(history());
    h.started(40, Z, SUPPORT, SUPPORT_MAIL, Email, Some(ZELDA));
    let mut message = mail(
        0x9901,
        SUPPORT_MAIL,
        Email,
        ADDRESS,
        Some(ZELDA),
        Some("Order 7f3a for Zelda Quibble"),
        BODY,
    );
    message.from_name = Some(NAME.to_owned());
    message.attachments = vec![Attachment {
        blob: BlobRef {
            sha256: ATTACHMENT.to_owned(),
            size: 1234,
        },
        file_name: Some(FILE_NAME.to_owned()),
        content_type: "application/pdf".to_owned(),
        content_id: None,
        inline: false,
    }];
    message.raw = Some(RawMessage {
        blob: BlobRef {
            sha256: ORIGINAL.to_owned(),
            size: 4321,
        },
        warnings: Vec::new(),
    });
    h.received(40, Z, SUPPORT, message);
    h.push(
        41,
        router(),
        Z,
        ConversationAssigned {
            conversation_id: Z,
            inbox_id: SUPPORT,
            assignee: Assignee::User { id: ALICE },
            reason: AssignmentReason::Manual { by: router() },
        },
    );
    h.reply(
        42,
        Z,
        SUPPORT,
        Z_REPLY,
        (SUPPORT_MAIL, Email),
        ReplyAuthor::User { id: ALICE },
        Some("Re: Order 7f3a for Zelda Quibble"),
        "Dear Zelda Quibble, my unique order text 7f3a ships today.",
    );
    h.push(
        43,
        Actor::Channel { id: SUPPORT_MAIL },
        Z,
        DeliveryFailed {
            conversation_id: Z,
            inbox_id: SUPPORT,
            message_id: Z_REPLY,
            channel_id: SUPPORT_MAIL,
            reason: "<zelda@quibble.example>: mailbox full".to_owned(),
            permanent: false,
            status: None,
        },
    );
    h.push(
        44,
        user(ALICE),
        Z,
        CommentAdded {
            conversation_id: Z,
            inbox_id: SUPPORT,
            comment_id: Uuid::from_u128(0x9903),
            author_user_id: ALICE,
            body_text: "Zelda Quibble phoned about my unique order text 7f3a".to_owned(),
            mentions: Vec::new(),
        },
    );
    h.push(
        45,
        Actor::System {
            component: "email_filter".to_owned(),
        },
        ZF,
        MessageFiltered {
            conversation_id: ZF,
            inbox_id: SUPPORT,
            reason: FilterReason::AutomatedReply,
            visibility: Some(ConversationVisibility::Shared),
            message: mail(
                0x9904,
                SUPPORT_MAIL,
                Email,
                ADDRESS,
                Some(ZELDA),
                Some("Out of office: Zelda Quibble"),
                "Back on Monday. Re: my unique order text 7f3a",
            ),
        },
    );
    h
}

/// Zelda's erasure: the contact first, then each of her conversations.
fn erase_zelda(h: &mut Builder) {
    let reason = "Art. 17 request, ticket 4711".to_owned();
    h.push_in(
        streams::contact(ZELDA),
        50,
        admin(),
        ContactErased {
            contact_id: ZELDA,
            conversation_ids: vec![Z, ZF],
            reason: reason.clone(),
        },
    );
    for conversation_id in [Z, ZF] {
        h.push(
            50,
            admin(),
            conversation_id,
            ConversationErased {
                conversation_id,
                inbox_id: SUPPORT,
                contact_id: Some(ZELDA),
                reason: reason.clone(),
            },
        );
    }
}

/// [`zelda`], then her erasure.
fn zelda_erased() -> Vec<Envelope> {
    let mut h = zelda();
    erase_zelda(&mut h);
    h.events
}

/// The read model's bytes on disk once its write-ahead log is folded into the database file and
/// truncated, as the runtime's checkpointer leaves it when it stops. (While running, it folds
/// the log in passively: until SQLite writes over them, the log keeps the pages as they were.)
fn file_bytes(conn: &Connection, dir: &Path) -> Vec<u8> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let wal = std::fs::read(dir.join("thread_view.sqlite3-wal")).unwrap_or_default();
    assert!(wal.is_empty(), "the write-ahead log is truncated");
    std::fs::read(dir.join("thread_view.sqlite3")).unwrap()
}

/// Fails naming the first table whose rows differ (a dump is too long to print whole).
fn assert_same_rows(actual: &Connection, expected: &Connection, context: &str) {
    let (actual, expected) = (dump(actual), dump(expected));
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &expected {
        assert!(&actual[table] == rows, "table {table} differs {context}");
    }
}

fn holds(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

fn listed(conn: &Connection) -> Vec<Uuid> {
    let page = list_conversations(
        conn,
        &ListFilter::default(),
        &PageRequest::First {
            count: 1000,
            after: None,
        },
        &Scope::Everything,
    )
    .unwrap();
    page.items.iter().map(|c| c.conversation_id).collect()
}

fn filtered_ids(conn: &Connection) -> Vec<Uuid> {
    filtered_mail(conn, SUPPORT, 1000, None, &Scope::Everything)
        .unwrap()
        .items
        .iter()
        .map(|m| m.conversation_id)
        .collect()
}

#[test]
fn before_her_erasure_the_read_model_holds_what_she_wrote() {
    // What the test after it looks for is really there to be found.
    let dir = tempfile::tempdir().unwrap();
    let conn = build_at_once(&ThreadView, dir.path(), &zelda().events);
    assert!(conversation(&conn, Z).unwrap().is_some());
    assert!(listed(&conn).contains(&Z));
    assert!(filtered_ids(&conn).contains(&ZF));
    assert!(file(&conn, Z, ATTACHMENT).unwrap().is_some());
    let bytes = file_bytes(&conn, dir.path());
    for text in PERSONAL {
        assert!(holds(&bytes, text), "{text} is in the file before erasure");
    }
}

#[test]
fn erased_conversations_leave_the_thread_view_as_if_they_had_never_been() {
    let dir = tempfile::tempdir().unwrap();
    let conn = build_at_once(&ThreadView, dir.path(), &zelda_erased());
    for erased in [Z, ZF] {
        assert_eq!(conversation(&conn, erased).unwrap(), None);
        assert_eq!(timeline(&conn, erased).unwrap(), Vec::new());
    }
    assert_eq!(file(&conn, Z, ATTACHMENT).unwrap(), None);
    assert_eq!(file(&conn, Z, ORIGINAL).unwrap(), None);
    assert!(!listed(&conn).contains(&Z));
    assert!(!filtered_ids(&conn).contains(&ZF));

    // Everything else is as it was without her: every row of every table, so lists and badges.
    let (_without_dir, without) = built();
    assert_eq!(listed(&conn), listed(&without));
    assert_eq!(
        badge_counts(&conn, None, &Scope::Everything).unwrap(),
        badge_counts(&without, None, &Scope::Everything).unwrap()
    );
    assert_same_rows(&conn, &without, "from a read model built without her");

    let bytes = file_bytes(&conn, dir.path());
    for text in PERSONAL {
        assert!(!holds(&bytes, text), "{text} is still in the file");
    }
    assert!(holds(&bytes, "kim@customer.example"), "other mail stays");
}

#[test]
fn a_rebuild_and_any_batching_erase_alike() {
    // In batches of one, her rows are committed before the erasure deletes them; at once, they
    // are deleted from the batch's memory before they are written.
    let events = zelda_erased();
    let (_without_dir, without) = built();
    for batch in [1, 2, 3, 7, 17, events.len()] {
        let dir = tempfile::tempdir().unwrap();
        let conn = build_in_batches(&ThreadView, dir.path(), &events, batch);
        assert_same_rows(&conn, &without, &format!("with batches of {batch}"));
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
fn a_conversation_erased_by_retention_leaves_lists_and_badges() {
    let mut h = Builder::after(history());
    h.push(
        50,
        Actor::System {
            component: "retention".to_owned(),
        },
        C1,
        ConversationErased {
            conversation_id: C1,
            inbox_id: SUPPORT,
            contact_id: None,
            reason: "closed more than 30 days ago".to_owned(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let conn = build_in_batches(&ThreadView, dir.path(), &h.events, 5);
    let (_before_dir, before) = built();
    assert_eq!(conversation(&conn, C1).unwrap(), None);
    assert_eq!(timeline(&conn, C1).unwrap(), Vec::new());
    let others: Vec<Uuid> = listed(&before).into_iter().filter(|c| *c != C1).collect();
    assert_eq!(listed(&conn), others);
    let support =
        |conn: &Connection| badge_counts(conn, Some(SUPPORT), &Scope::Everything).unwrap()[0];
    // C1 was open and assigned.
    assert_eq!(support(&conn).open + 1, support(&before).open);
    assert_eq!(support(&conn).unassigned, support(&before).unassigned);
    assert_eq!(
        conversation(&conn, C2).unwrap(),
        conversation(&before, C2).unwrap()
    );
    let bytes = file_bytes(&conn, dir.path());
    assert!(
        !holds(&bytes, "My printer is"),
        "C1's first message is gone"
    );
}

/// Zed, merged into Zelda.
const ZED: Uuid = Uuid::from_u128(0xda);
/// A file only Zed sent (into Kim's C1), and one Kim sent there too.
const ZED_FILE: &str = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";
const SHARED_FILE: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
const ZED_WORDS: &str = "Zed Quibble adds: my unique order text 7f3a, scan attached";
const ZELDA_IN_C6: &str = "Zelda Quibble on Messenger: my unique order text 7f3a";
const ZED_IN_C9: &str = "Zed again, copied on Otto's question: 7f3a";
/// The subject Zed's message gave C9 (Otto's first message had none).
const ZED_SUBJECT: &str = "Printer trouble, says Zed Quibble";
/// Otto's conversation, without a contact.
const C9: Uuid = Uuid::from_u128(0xe19);

fn attachment(sha256: &str, name: &str) -> Attachment {
    Attachment {
        blob: BlobRef {
            sha256: sha256.to_owned(),
            size: 99,
        },
        file_name: Some(name.to_owned()),
        content_type: "image/png".to_owned(),
        content_id: None,
        inline: false,
    }
}

/// [`zelda`], then Zed merged into her; Zed writes in Kim's C1 with two files, Kim sends one
/// of them again; Zelda writes last in C6 (K3's); then her erasure.
fn zelda_abroad_erased() -> Vec<Envelope> {
    use ChannelKind::{Email, Messenger};
    let mut h = zelda();
    let merge = proto_events::event::ContactsMerged {
        survivor_id: ZELDA,
        merged_id: ZED,
    };
    h.push_in(streams::contact(ZED), 46, admin(), merge.clone());
    h.push_in(streams::contact(ZELDA), 46, admin(), merge);
    let mut zed = mail(
        0x9911,
        SUPPORT_MAIL,
        Email,
        "zed@quibble.example",
        Some(ZED),
        Some("Re: Printer broken, Zed Quibble"),
        ZED_WORDS,
    );
    zed.from_name = Some("Zed Quibble".to_owned());
    zed.attachments = vec![
        attachment(ZED_FILE, "zed-quibble-scan.png"),
        attachment(SHARED_FILE, "zed-quibble-printer.png"),
    ];
    h.received(46, C1, SUPPORT, zed);
    let mut kim = mail(
        0x9912,
        SUPPORT_MAIL,
        Email,
        "kim@customer.example",
        Some(K1),
        None,
        "Here is the printer picture again.",
    );
    kim.attachments = vec![attachment(SHARED_FILE, "printer.png")];
    h.received(47, C1, SUPPORT, kim);
    let zelda = mail(
        0x9913,
        SALES_MESSENGER,
        Messenger,
        "psid-zelda-7f3a",
        Some(ZELDA),
        None,
        ZELDA_IN_C6,
    );
    h.received(48, C6, SALES, zelda);
    // Otto, no contact, writes first in C9; Zed answers there (copied): the header takes Zed
    // as its contact, the write side does not (he is not its first sender), so C9 stays.
    h.started(49, C9, SUPPORT, SUPPORT_MAIL, Email, None);
    h.received(
        49,
        C9,
        SUPPORT,
        mail(
            0x9921,
            SUPPORT_MAIL,
            Email,
            "otto@example.org",
            None,
            None,
            "Otto asks about the printer.",
        ),
    );
    h.received(
        49,
        C9,
        SUPPORT,
        mail(
            0x9922,
            SUPPORT_MAIL,
            Email,
            "zed@quibble.example",
            Some(ZED),
            Some(ZED_SUBJECT),
            ZED_IN_C9,
        ),
    );
    erase_zelda(&mut h);
    h.events
}

/// What she (and Zed, merged into her) wrote in other customers' conversations stays there as
/// blank messages: no address, name, subject, body or file of theirs, in the queries or the
/// file; the files someone else sent too stay; a preview made from her words is emptied; and
/// every batching gives the same rows.
#[test]
fn an_erased_contacts_messages_in_others_conversations_are_blanked() {
    let events = zelda_abroad_erased();
    let dir = tempfile::tempdir().unwrap();
    let conn = build_at_once(&ThreadView, dir.path(), &events);
    let before = tempfile::tempdir().unwrap();
    let unerased = build_at_once(&ThreadView, before.path(), &zelda_abroad_erased_not_yet());
    assert!(file(&unerased, C1, ZED_FILE).unwrap().is_some());
    assert!(
        conversation(&unerased, C6)
            .unwrap()
            .unwrap()
            .last_message_preview
            .unwrap()
            .contains("7f3a")
    );

    let c1 = timeline(&conn, C1).unwrap();
    let zed = c1
        .iter()
        .find(|entry| entry.message_id == Some(Uuid::from_u128(0x9911)))
        .expect("Zed's message stays in Kim's conversation");
    assert_eq!(zed.body_text.as_deref(), Some(""));
    assert_eq!(zed.subject, None);
    assert_eq!(zed.files_json, None);
    assert_eq!(
        zed.author,
        Some(thread_view::Author::Contact {
            contact_id: Some(ZED),
            address: String::new(),
            name: None,
        })
    );
    let kim = c1
        .iter()
        .find(|entry| entry.message_id == Some(Uuid::from_u128(0x9912)))
        .unwrap();
    assert_eq!(
        kim.body_text.as_deref(),
        Some("Here is the printer picture again.")
    );
    assert_eq!(file(&conn, C1, ZED_FILE).unwrap(), None);
    // Kim sent it too: it stays, under Kim's name for it.
    assert_eq!(
        file(&conn, C1, SHARED_FILE)
            .unwrap()
            .and_then(|f| f.file_name)
            .as_deref(),
        Some("printer.png")
    );
    let c6 = conversation(&conn, C6).unwrap().unwrap();
    assert_eq!(c6.last_message_preview.as_deref(), Some(""));
    assert_eq!(
        timeline(&conn, C6).unwrap().len(),
        timeline(&unerased, C6).unwrap().len()
    );

    let c9 = timeline(&conn, C9).unwrap();
    let body_of = |id: u128| {
        c9.iter()
            .find(|entry| entry.message_id == Some(Uuid::from_u128(id)))
            .and_then(|entry| entry.body_text.clone())
    };
    assert_eq!(
        body_of(0x9921).as_deref(),
        Some("Otto asks about the printer.")
    );
    assert_eq!(body_of(0x9922).as_deref(), Some(""));
    assert_eq!(
        conversation(&unerased, C9)
            .unwrap()
            .unwrap()
            .subject
            .as_deref(),
        Some(ZED_SUBJECT)
    );
    assert_eq!(conversation(&conn, C9).unwrap().unwrap().subject, None);

    let bytes = file_bytes(&conn, dir.path());
    for text in PERSONAL.into_iter().chain([
        ZED_IN_C9,
        ZED_SUBJECT,
        ZED_WORDS,
        ZELDA_IN_C6,
        "zed@quibble.example",
        "zed-quibble-scan.png",
        "zed-quibble-printer.png",
        "Zed Quibble",
    ]) {
        assert!(!holds(&bytes, text), "{text} is still in the file");
    }
    assert!(holds(&bytes, "Here is the printer picture again."));

    for batch in [1, 2, 3, 5, 8, 13, events.len()] {
        let dir = tempfile::tempdir().unwrap();
        let batched = build_in_batches(&ThreadView, dir.path(), &events, batch);
        assert_same_rows(&batched, &conn, &format!("with batches of {batch}"));
        let bytes = file_bytes(&batched, dir.path());
        for text in [ZED_WORDS, ZELDA_IN_C6, "zed@quibble.example"] {
            assert!(
                !holds(&bytes, text),
                "{text} is still in the file with batches of {batch}"
            );
        }
    }
}

/// [`zelda_abroad_erased`] up to, not including, her erasure.
fn zelda_abroad_erased_not_yet() -> Vec<Envelope> {
    let mut events = zelda_abroad_erased();
    let erasure = events
        .iter()
        .position(|e| matches!(e.payload, proto_events::DomainEvent::ContactErased(_)))
        .unwrap();
    events.truncate(erasure);
    events
}
