//! Keyset pagination by position, forward and backward, without gaps or duplicates.

use audit_trail::{AuditFilter, Page, audit_events};
use proto_events::event::{CommentAdded, InboxRenamed};
use proto_events::streams;
use rusqlite::Connection;

use crate::support::{History, agent, build, id};

/// 40 events alternating between a conversation's comments and an inbox's renames.
fn history() -> History {
    let mut h = History::default();
    for n in 0..40i64 {
        if n % 2 == 0 {
            h.push(
                streams::conversation(id(100)),
                agent(),
                n,
                CommentAdded {
                    conversation_id: id(100),
                    inbox_id: id(700),
                    comment_id: id(3000 + n as u128),
                    author_user_id: id(500),
                    body_text: format!("comment {n}"),
                    mentions: vec![],
                },
            );
        } else {
            h.push(
                streams::inbox(id(701)),
                agent(),
                n,
                InboxRenamed {
                    inbox_id: id(701),
                    name: format!("Inbox {n}"),
                },
            );
        }
    }
    h
}

fn walk_forward(conn: &Connection, filter: &AuditFilter, size: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = audit_events(conn, filter, Page::Forward { after, first: size }).unwrap();
        assert!(page.entries.len() <= size);
        seen.extend(page.entries.iter().map(|e| e.position));
        if !page.has_more {
            return seen;
        }
        after = page.entries.last().map(|e| e.position);
    }
}

fn walk_backward(conn: &Connection, filter: &AuditFilter, size: usize) -> Vec<u64> {
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = audit_events(conn, filter, Page::Backward { before, last: size }).unwrap();
        assert!(page.entries.len() <= size);
        let positions: Vec<u64> = page.entries.iter().map(|e| e.position).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "a page is in ascending order"
        );
        before = positions.first().copied();
        pages.push(positions);
        if !page.has_more {
            break;
        }
    }
    pages.into_iter().rev().flatten().collect()
}

#[test]
fn forward_and_backward_pages_cover_everything_once() {
    let (_dir, conn) = build(&history().events);
    let all: Vec<u64> = (1..=40).collect();
    let conversation = AuditFilter {
        conversation_id: Some(id(100)),
        ..Default::default()
    };
    let odd: Vec<u64> = (1..=40).step_by(2).collect();
    for size in [1, 3, 7, 40, 100] {
        assert_eq!(
            walk_forward(&conn, &AuditFilter::default(), size),
            all,
            "forward, size {size}"
        );
        assert_eq!(
            walk_backward(&conn, &AuditFilter::default(), size),
            all,
            "backward, size {size}"
        );
        assert_eq!(
            walk_forward(&conn, &conversation, size),
            odd,
            "forward filtered, size {size}"
        );
        assert_eq!(
            walk_backward(&conn, &conversation, size),
            odd,
            "backward filtered, size {size}"
        );
    }
}

#[test]
fn pages_start_after_or_before_a_given_position() {
    let (_dir, conn) = build(&history().events);
    let filter = AuditFilter::default();
    let page = audit_events(
        &conn,
        &filter,
        Page::Forward {
            after: Some(37),
            first: 5,
        },
    )
    .unwrap();
    assert_eq!(
        page.entries.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![38, 39, 40]
    );
    assert!(!page.has_more);
    let page = audit_events(
        &conn,
        &filter,
        Page::Backward {
            before: Some(10),
            last: 3,
        },
    )
    .unwrap();
    assert_eq!(
        page.entries.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    assert!(page.has_more);
    let page = audit_events(
        &conn,
        &filter,
        Page::Backward {
            before: Some(3),
            last: 5,
        },
    )
    .unwrap();
    assert_eq!(
        page.entries.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(!page.has_more);
}

/// 1,500 events over three days: two conversations in two inboxes, comments and renames, so
/// that the posting lists span several chunks and days.
fn long_history() -> History {
    let mut h = History::default();
    for n in 0..1_500i64 {
        let conversation = 100 + (n % 3 == 0) as u128;
        if n % 5 == 4 {
            h.push(
                streams::inbox(id(701)),
                agent(),
                n * 3,
                InboxRenamed {
                    inbox_id: id(701),
                    name: format!("Inbox {n}"),
                },
            );
        } else {
            h.push(
                streams::conversation(id(conversation)),
                agent(),
                n * 3,
                CommentAdded {
                    conversation_id: id(conversation),
                    inbox_id: id(700 + conversation - 100),
                    comment_id: id(3000 + n as u128),
                    body_text: format!("comment {n}"),
                    author_user_id: id(500),
                    mentions: vec![],
                },
            );
        }
    }
    h
}

#[test]
fn filtered_pages_across_chunks_and_days_match_a_full_scan() {
    let (_dir, conn) = build(&long_history().events);
    let everything = audit_events(
        &conn,
        &AuditFilter::default(),
        Page::Forward {
            after: None,
            first: 10_000,
        },
    )
    .unwrap()
    .entries;
    assert_eq!(everything.len(), 1_500);
    let expected = |keep: &dyn Fn(&audit_trail::AuditEntry) -> bool| -> Vec<u64> {
        everything
            .iter()
            .filter(|e| keep(e))
            .map(|e| e.position)
            .collect()
    };
    let day_two = crate::support::at(0) + chrono::Duration::hours(15);
    let day_three = day_two + chrono::Duration::days(1);
    let filters: Vec<(AuditFilter, Vec<u64>)> = vec![
        (
            AuditFilter {
                conversation_id: Some(id(100)),
                ..Default::default()
            },
            expected(&|e| e.concerns.conversation_id == Some(id(100))),
        ),
        (
            AuditFilter {
                inbox_id: Some(id(701)),
                event_type: Some("CommentAdded".into()),
                ..Default::default()
            },
            expected(&|e| e.concerns.inbox_id == Some(id(701)) && e.event_type == "CommentAdded"),
        ),
        (
            AuditFilter {
                occurred_from: Some(day_two),
                occurred_until: Some(day_three),
                ..Default::default()
            },
            expected(&|e| e.occurred_at >= day_two && e.occurred_at < day_three),
        ),
        (
            AuditFilter {
                event_type: Some("CommentAdded".into()),
                occurred_from: Some(day_two),
                ..Default::default()
            },
            expected(&|e| e.event_type == "CommentAdded" && e.occurred_at >= day_two),
        ),
    ];
    for (filter, want) in &filters {
        assert!(want.len() > 256, "{filter:?} spans chunks");
        assert!(want.len() < 1_500, "{filter:?} leaves some out");
        for size in [1, 50, 300] {
            assert_eq!(
                &walk_forward(&conn, filter, size),
                want,
                "{filter:?} forward {size}"
            );
            assert_eq!(
                &walk_backward(&conn, filter, size),
                want,
                "{filter:?} backward {size}"
            );
        }
    }
    // Every event shares the first six bytes of its id with the others here.
    for position in [1u64, 700, 1_500] {
        let entry = audit_trail::by_event_id(&conn, crate::support::event_id(position))
            .unwrap()
            .unwrap();
        assert_eq!(entry.position, position);
    }
    assert_eq!(
        audit_trail::by_event_id(&conn, crate::support::event_id(1_501)).unwrap(),
        None
    );
}

#[test]
fn period_bounds_finer_than_a_microsecond_are_cut_to_it_with_or_without_other_filters() {
    let (_dir, conn) = build(&history().events);
    // Event n occurred at minute n and is at position n + 1.
    let half_a_microsecond = chrono::Duration::nanoseconds(500);
    let period = AuditFilter {
        occurred_from: Some(crate::support::at(10) + half_a_microsecond),
        occurred_until: Some(crate::support::at(20) + half_a_microsecond),
        ..Default::default()
    };
    let conversation = AuditFilter {
        conversation_id: Some(id(100)),
        ..period.clone()
    };
    assert_eq!(
        walk_forward(&conn, &period, 4),
        (11..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        walk_backward(&conn, &conversation, 4),
        (11..=20).step_by(2).collect::<Vec<_>>()
    );
}
