//! A read model built in batches (with restarts between them) equals one built at once, and an
//! event about an unknown conversation stops the projector.

use proto_events::event::{CommentAdded, DomainEvent};
use switchboard_projector::Event;
use switchboard_projector::model::{apply_batch, apply_events, open_for_writing};
use switchboard_projector::testing::{self, build_at_once, build_in_batches, dump};
use thread_view::ThreadView;
use uuid::Uuid;

use crate::history::{LONG, history, long_history};

#[test]
fn batches_of_1_3_and_17_equal_a_rebuild() {
    let events = long_history();
    let dir = tempfile::tempdir().unwrap();
    let built = build_at_once(&ThreadView, dir.path(), &events);
    let long_chunks: i64 = built
        .query_row(
            "SELECT count(*) FROM timeline WHERE conversation_id = ?1",
            [LONG.as_bytes()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        long_chunks >= 4,
        "the long thread fills several chunks, not {long_chunks}"
    );
    let expected = dump(&built);
    assert!(
        expected["timeline"].len() > 12,
        "the history fills the timeline"
    );
    for batch in [1, 3, 17] {
        let dir = tempfile::tempdir().unwrap();
        let actual = dump(&build_in_batches(&ThreadView, dir.path(), &events, batch));
        assert_eq!(
            actual.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        );
        for (table, rows) in &expected {
            assert_eq!(
                &actual[table], rows,
                "table {table} differs with batches of {batch}"
            );
        }
    }
}

#[test]
fn query_indexes_are_built_once_caught_up() {
    let events = history();
    let decoded: Vec<Event<'_>> = events.iter().map(Event::decoded).collect();
    let (catching_up, last) = decoded.split_at(decoded.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, _) =
        open_for_writing(&dir.path().join("thread_view.sqlite3"), &ThreadView).unwrap();
    apply_events(&mut conn, &ThreadView, catching_up, false).unwrap();
    // While catching up, only the index applying events needs.
    assert_eq!(
        testing::indexes(&conn),
        [
            "filtered_by_message",
            "merged_contacts_by_survivor",
            "timeline_by_conversation"
        ]
    );
    apply_events(&mut conn, &ThreadView, last, true).unwrap();
    assert_eq!(
        testing::indexes(&conn),
        [
            "conversations_by_activity",
            "conversations_by_assignee",
            "conversations_by_inbox",
            "filtered_by_inbox",
            "filtered_by_message",
            "merged_contacts_by_survivor",
            "timeline_by_conversation",
        ]
    );
}

#[test]
fn event_for_an_unknown_conversation_is_inconsistent() {
    let mut events = history();
    let mut stray = events[0].clone();
    stray.position = events.len() as u64 + 1;
    stray.payload = DomainEvent::CommentAdded(CommentAdded {
        conversation_id: Uuid::from_u128(0xdead),
        inbox_id: Uuid::from_u128(0x1),
        comment_id: Uuid::from_u128(0xbeef),
        author_user_id: Uuid::from_u128(0xa1),
        body_text: "lost".to_owned(),
        mentions: vec![],
    });
    events.truncate(3);
    events.push(stray);
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, _) =
        open_for_writing(&dir.path().join("thread_view.sqlite3"), &ThreadView).unwrap();
    let error = apply_batch(&mut conn, &ThreadView, &events).unwrap_err();
    assert!(
        error.to_string().contains("unknown conversation"),
        "{error}"
    );
    // The batch rolled back as a whole.
    assert_eq!(
        thread_view::conversation(&conn, crate::history::C1).unwrap(),
        None
    );
}
