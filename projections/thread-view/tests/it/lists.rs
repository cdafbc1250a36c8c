//! Inbox lists with filters and keyset pagination, badge counts and the Filtered view.

use std::collections::HashSet;

use rusqlite::Connection;
use thread_view::{
    AssigneeFilter, BadgeCounts, ConversationHeader, ConversationStatus, ListFilter, PageRequest,
    Scope, badge_counts, conversation, filtered_mail, list_conversations,
};
use uuid::Uuid;

use crate::history::*;

fn ids(conn: &Connection, filter: ListFilter) -> Vec<Uuid> {
    let page = list_conversations(
        conn,
        &filter,
        &PageRequest::First {
            count: 1000,
            after: None,
        },
        &Scope::Everything,
    )
    .unwrap();
    assert!(!page.has_next_page && !page.has_previous_page);
    page.items.iter().map(|c| c.conversation_id).collect()
}

fn set(ids: &[Uuid]) -> HashSet<Uuid> {
    ids.iter().copied().collect()
}

/// Every visible conversation, sorted as lists sort, computed from the headers alone.
fn expected_order(conn: &Connection) -> Vec<Uuid> {
    let mut all: Vec<ConversationHeader> = [C1, C2, C3, C4, C6]
        .into_iter()
        .chain((0..10).map(extra))
        .map(|id| conversation(conn, id).unwrap().unwrap())
        .collect();
    all.sort_by(|a, b| {
        (b.last_activity_at, b.conversation_id).cmp(&(a.last_activity_at, a.conversation_id))
    });
    all.iter().map(|c| c.conversation_id).collect()
}

#[test]
fn lists_sort_by_last_activity_then_id_and_hide_filtered_mail() {
    let (_dir, conn) = built();
    let all = ids(&conn, ListFilter::default());
    assert_eq!(all, expected_order(&conn));
    assert_eq!(all.len(), 15);
    // E8 and E9 share the latest minute: the larger id comes first.
    assert_eq!(&all[..3], &[extra(9), extra(8), extra(7)]);
    assert_eq!(all.last(), Some(&C1));
    for hidden in [C5, F1, F2] {
        assert!(!all.contains(&hidden));
    }
}

#[test]
fn lists_filter_by_inbox_status_assignee_team_and_channel() {
    let (_dir, conn) = built();
    let support_open = ListFilter {
        inbox_id: Some(SUPPORT),
        status: Some(ConversationStatus::Open),
        ..ListFilter::default()
    };
    let evens: Vec<Uuid> = (0..10).step_by(2).map(extra).collect();
    assert_eq!(
        set(&ids(&conn, support_open)),
        set(&[&[C1, C2][..], &evens].concat())
    );

    let mine = ListFilter {
        assignee: AssigneeFilter::User(ALICE),
        ..ListFilter::default()
    };
    assert_eq!(
        ids(&conn, mine),
        vec![extra(9), extra(6), extra(3), extra(0)]
    );
    let bobs = ListFilter {
        assignee: AssigneeFilter::User(BOB),
        ..ListFilter::default()
    };
    assert_eq!(ids(&conn, bobs), vec![C1]);

    let sales_unassigned_open = ListFilter {
        inbox_id: Some(SALES),
        status: Some(ConversationStatus::Open),
        assignee: AssigneeFilter::Unassigned,
        ..ListFilter::default()
    };
    assert_eq!(
        ids(&conn, sales_unassigned_open),
        vec![extra(7), extra(5), extra(1), C4, C3]
    );

    assert_eq!(
        ids(
            &conn,
            ListFilter {
                team_id: Some(TEAM),
                ..ListFilter::default()
            }
        ),
        vec![C2]
    );
    assert_eq!(
        ids(
            &conn,
            ListFilter {
                channel_id: Some(SALES_MESSENGER),
                ..ListFilter::default()
            }
        ),
        vec![C6]
    );
    assert_eq!(
        ids(
            &conn,
            ListFilter {
                status: Some(ConversationStatus::Closed),
                ..ListFilter::default()
            }
        ),
        vec![C6]
    );
    assert!(
        ids(
            &conn,
            ListFilter {
                status: Some(ConversationStatus::Filtered),
                ..ListFilter::default()
            }
        )
        .is_empty()
    );
    let support_chat_alice = ListFilter {
        channel_id: Some(SUPPORT_CHAT),
        assignee: AssigneeFilter::User(ALICE),
        ..ListFilter::default()
    };
    assert_eq!(ids(&conn, support_chat_alice), vec![extra(6), extra(0)]);
}

/// Walks a list forward with `first` and back with `last`, checking page flags.
fn walk(conn: &Connection, filter: &ListFilter, size: usize) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut forward = Vec::new();
    let mut after = None;
    loop {
        let page = list_conversations(
            conn,
            filter,
            &PageRequest::First { count: size, after },
            &Scope::Everything,
        )
        .unwrap();
        assert!(page.items.len() <= size);
        assert_eq!(
            page.has_previous_page,
            after.is_some() && !forward.is_empty()
        );
        forward.extend(page.items.iter().map(|c| c.conversation_id));
        if !page.has_next_page {
            break;
        }
        assert_eq!(page.items.len(), size);
        after = page.items.last().map(ConversationHeader::cursor);
    }
    let mut backward = Vec::new();
    let mut before = None;
    loop {
        let page = list_conversations(
            conn,
            filter,
            &PageRequest::Last {
                count: size,
                before,
            },
            &Scope::Everything,
        )
        .unwrap();
        assert!(page.items.len() <= size);
        assert_eq!(page.has_next_page, before.is_some());
        let mut chunk: Vec<Uuid> = page.items.iter().map(|c| c.conversation_id).collect();
        chunk.append(&mut backward);
        backward = chunk;
        if !page.has_previous_page {
            break;
        }
        before = page.items.first().map(ConversationHeader::cursor);
    }
    (forward, backward)
}

#[test]
fn keyset_pages_walk_forward_and_back_without_gaps_or_duplicates() {
    let (_dir, conn) = built();
    let filters = [
        ListFilter::default(),
        ListFilter {
            inbox_id: Some(SALES),
            ..ListFilter::default()
        },
        ListFilter {
            inbox_id: Some(SUPPORT),
            status: Some(ConversationStatus::Open),
            ..ListFilter::default()
        },
        ListFilter {
            assignee: AssigneeFilter::Unassigned,
            ..ListFilter::default()
        },
    ];
    for filter in &filters {
        let expected = ids(&conn, *filter);
        assert!(!expected.is_empty());
        for size in [1, 2, 3, 4, 7, 15, 40] {
            let (forward, backward) = walk(&conn, filter, size);
            assert_eq!(forward, expected, "forward, pages of {size}, {filter:?}");
            assert_eq!(backward, expected, "backward, pages of {size}, {filter:?}");
        }
    }
}

#[test]
fn pages_from_a_cursor_in_the_middle_see_both_sides() {
    let (_dir, conn) = built();
    let all = ids(&conn, ListFilter::default());
    let middle = conversation(&conn, all[7]).unwrap().unwrap().cursor();
    let next = list_conversations(
        &conn,
        &ListFilter::default(),
        &PageRequest::First {
            count: 3,
            after: Some(middle),
        },
        &Scope::Everything,
    )
    .unwrap();
    assert_eq!(
        next.items
            .iter()
            .map(|c| c.conversation_id)
            .collect::<Vec<_>>(),
        all[8..11]
    );
    assert!(next.has_next_page && next.has_previous_page);
    let previous = list_conversations(
        &conn,
        &ListFilter::default(),
        &PageRequest::Last {
            count: 3,
            before: Some(middle),
        },
        &Scope::Everything,
    )
    .unwrap();
    assert_eq!(
        previous
            .items
            .iter()
            .map(|c| c.conversation_id)
            .collect::<Vec<_>>(),
        all[4..7]
    );
    assert!(previous.has_next_page && previous.has_previous_page);
    let empty = list_conversations(
        &conn,
        &ListFilter::default(),
        &PageRequest::First {
            count: 0,
            after: None,
        },
        &Scope::Everything,
    )
    .unwrap();
    assert!(empty.items.is_empty() && empty.has_next_page);
}

#[test]
fn badge_counts_per_inbox() {
    let (_dir, conn) = built();
    let support = BadgeCounts {
        inbox_id: SUPPORT,
        open: 7,
        closed: 0,
        unassigned: 3,
        filtered: 2,
    };
    let sales = BadgeCounts {
        inbox_id: SALES,
        open: 7,
        closed: 1,
        unassigned: 5,
        filtered: 1,
    };
    assert_eq!(
        badge_counts(&conn, None, &Scope::Everything).unwrap(),
        vec![support, sales]
    );
    assert_eq!(
        badge_counts(&conn, Some(SALES), &Scope::Everything).unwrap(),
        vec![sales]
    );
    assert!(
        badge_counts(&conn, Some(Uuid::from_u128(0x77)), &Scope::Everything)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn filtered_view_lists_unrestored_mail_per_inbox_newest_first() {
    let (_dir, conn) = built();
    let sales = filtered_mail(&conn, SALES, 10, None, &Scope::Everything).unwrap();
    assert_eq!(
        sales.items.len(),
        1,
        "the restored newsletter left the view"
    );
    let ooo = &sales.items[0];
    assert_eq!(
        (ooo.conversation_id, ooo.inbox_id, ooo.channel_id),
        (C5, SALES, SALES_MAIL)
    );
    assert_eq!(ooo.reason_kind, "automated_reply");
    assert_eq!(ooo.from_address, "ooo@buyer.example");
    assert_eq!(ooo.subject.as_deref(), Some("Out of office"));
    assert_eq!(ooo.filtered_at, at(20));

    let first = filtered_mail(&conn, SUPPORT, 1, None, &Scope::Everything).unwrap();
    assert_eq!(first.items[0].conversation_id, F2);
    assert_eq!(first.items[0].reason_kind, "deny_rule");
    assert!(first.items[0].reason_json.contains("spam.example"));
    assert!(first.has_next_page && !first.has_previous_page);
    let second = filtered_mail(
        &conn,
        SUPPORT,
        1,
        Some(first.items[0].cursor()),
        &Scope::Everything,
    )
    .unwrap();
    assert_eq!(second.items[0].conversation_id, F1);
    assert_eq!(second.items[0].reason_kind, "role_address");
    assert!(!second.has_next_page && second.has_previous_page);
}

/// Filtered mail of a private account belongs to its owner: named by `MessageFiltered` v2, or
/// for an event recorded before v2 (no visibility), taken from the channel's connection. Lists,
/// counts and the Filtered view of another agent leave it out; its owner's show it.
#[test]
fn filtered_private_mail_is_its_owners() {
    use proto_events::event::{
        ChannelConfig, ChannelConnected, ChannelKind, ConversationVisibility, EmailAccess,
        FilterReason, MessageFiltered,
    };
    use proto_events::{Actor, DomainEvent};

    let private_mail = Uuid::from_u128(0x31);
    let (old, new) = (Uuid::from_u128(0x3101), Uuid::from_u128(0x3102));
    let system = || Actor::System {
        component: "test".to_owned(),
    };
    let mut h = Builder::default();
    h.push(
        1,
        system(),
        private_mail,
        ChannelConnected {
            channel_id: private_mail,
            inbox_id: SUPPORT,
            config: ChannelConfig::Email {
                address: "alice@acme.example".to_owned(),
                access: EmailAccess::Private {
                    owner_user_id: ALICE,
                },
            },
        },
    );
    for (minute, conversation, visibility) in [
        (2, old, None),
        (
            3,
            new,
            Some(ConversationVisibility::Private {
                owner_user_id: ALICE,
            }),
        ),
    ] {
        let filtered: DomainEvent = MessageFiltered {
            conversation_id: conversation,
            inbox_id: SUPPORT,
            reason: FilterReason::BulkMail,
            visibility,
            message: mail(
                conversation.as_u128() + 0x10,
                private_mail,
                ChannelKind::Email,
                "news@ads.example",
                None,
                Some("Deals"),
                "Buy now.",
            ),
        }
        .into();
        h.push(minute, system(), conversation, filtered);
    }
    let dir = tempfile::tempdir().unwrap();
    let conn = switchboard_projector::testing::build_at_once(
        &thread_view::ThreadView,
        dir.path(),
        &h.events,
    );
    for id in [old, new] {
        assert_eq!(
            conversation(&conn, id).unwrap().unwrap().private_owner_id,
            Some(ALICE)
        );
    }
    let agent = |viewer| Scope::Limited {
        inboxes: Some(vec![SUPPORT]),
        viewer,
        every_private: false,
    };
    let alices = filtered_mail(&conn, SUPPORT, 10, None, &agent(ALICE)).unwrap();
    assert_eq!(alices.items.len(), 2);
    assert!(
        alices
            .items
            .iter()
            .all(|m| m.private_owner_id == Some(ALICE))
    );
    assert!(
        filtered_mail(&conn, SUPPORT, 10, None, &agent(BOB))
            .unwrap()
            .items
            .is_empty()
    );
    let filtered_badge = |scope: &Scope| {
        badge_counts(&conn, Some(SUPPORT), scope)
            .unwrap()
            .first()
            .map_or(0, |c| c.filtered)
    };
    assert_eq!(filtered_badge(&agent(ALICE)), 2);
    assert_eq!(filtered_badge(&agent(BOB)), 0);
    assert_eq!(filtered_badge(&Scope::Everything), 2);
}
