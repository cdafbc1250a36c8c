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
