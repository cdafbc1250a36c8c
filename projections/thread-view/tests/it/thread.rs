//! Headers and timelines of single conversations.

use proto_events::event::ChannelKind;
use thread_view::{AssigneeRef, Author, ConversationStatus, EntryKind, conversation, timeline};
use uuid::Uuid;

use crate::history::*;

#[test]
fn reopened_email_conversation_has_its_full_header() {
    let (_dir, conn) = built();
    let c1 = conversation(&conn, C1).unwrap().unwrap();
    assert_eq!(c1.inbox_id, SUPPORT);
    assert_eq!(
        (c1.channel_id, c1.channel_kind),
        (SUPPORT_MAIL, ChannelKind::Email)
    );
    assert_eq!(c1.contact_id, Some(K1));
    assert_eq!(c1.private_owner_id, None);
    assert_eq!(c1.status, ConversationStatus::Open);
    assert_eq!(c1.closed_at, None);
    assert_eq!(c1.assignee, Some(AssigneeRef::User(BOB)));
    assert_eq!(c1.created_at, at(1));
    assert_eq!(c1.last_activity_at, at(10));
    assert_eq!(c1.subject.as_deref(), Some("Printer broken"));
    assert_eq!(c1.last_message_preview.as_deref(), Some("Still broken"));
    assert_eq!(c1.last_message_at, Some(at(10)));
    // Reassigned to Bob at minute 7; the customer wrote at 8 and 10.
    assert_eq!(c1.unread_count, 2);
    // Alice answered at 4; the message at 8 is the first unanswered one.
    assert_eq!(c1.waiting_since, Some(at(8)));
    assert_eq!(
        (c1.inbound_count, c1.outbound_count, c1.comment_count),
        (4, 1, 1)
    );
}

#[test]
fn team_handoff_and_a_human_reply_clear_unread_and_waiting() {
    let (_dir, conn) = built();
    let c2 = conversation(&conn, C2).unwrap().unwrap();
    assert_eq!(c2.channel_kind, ChannelKind::Chat);
    assert_eq!(c2.assignee, Some(AssigneeRef::Team(TEAM)));
    assert_eq!(c2.unread_count, 0);
    assert_eq!(c2.waiting_since, None);
    assert_eq!(c2.subject, None);
    assert_eq!(c2.last_message_preview.as_deref(), Some("Hi, Carol here"));
    assert_eq!((c2.inbound_count, c2.outbound_count), (2, 2));
}

#[test]
fn private_outbound_conversation_keeps_its_owner_and_waits_for_a_reply() {
    let (_dir, conn) = built();
    let c3 = conversation(&conn, C3).unwrap().unwrap();
    assert_eq!(c3.private_owner_id, Some(CAROL));
    assert_eq!(c3.inbox_id, SALES);
    assert_eq!(c3.assignee, None);
    assert_eq!(c3.subject.as_deref(), Some("Your quote"));
    assert_eq!(c3.unread_count, 1);
    assert_eq!(c3.waiting_since, Some(at(18)));
}

#[test]
fn preview_collapses_whitespace() {
    let (_dir, conn) = built();
    let first = &timeline(&conn, C1).unwrap()[0];
    assert_eq!(
        first.body_text.as_deref(),
        Some("My printer is   broken.\nHelp!")
    );
    let e0 = conversation(&conn, extra(0)).unwrap().unwrap();
    assert_eq!(e0.last_message_preview.as_deref(), Some("Question 0"));
}

#[test]
fn filtered_then_restored_conversation_becomes_visible() {
    let (_dir, conn) = built();
    let c4 = conversation(&conn, C4).unwrap().unwrap();
    assert_eq!(c4.status, ConversationStatus::Open);
    assert_eq!(c4.created_at, at(21));
    assert_eq!(c4.inbound_count, 1);
    assert_eq!(c4.last_activity_at, at(22));
    let c5 = conversation(&conn, C5).unwrap().unwrap();
    assert_eq!(c5.status, ConversationStatus::Filtered);
    assert_eq!(c5.inbound_count, 0);

    let kinds: Vec<EntryKind> = timeline(&conn, C4)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Filtered,
            EntryKind::Restored,
            EntryKind::InboundMessage,
            EntryKind::Queued
        ]
    );
    let entries = timeline(&conn, C4).unwrap();
    assert_eq!(
        entries[0].reason_json.as_deref(),
        Some(r#"{"kind":"bulk_mail"}"#)
    );
    assert_eq!(entries[1].author, Some(Author::User(ALICE)));
    assert_eq!(entries[1].message_id, Some(C4_MAIL));
    assert_eq!(entries[2].message_id, Some(C4_MAIL));
    let queued: serde_json::Value =
        serde_json::from_str(entries[3].reason_json.as_deref().unwrap()).unwrap();
    assert_eq!(queued["skipped"][1]["why"], "at_capacity");
}

#[test]
fn timeline_lists_everything_in_log_order() {
    let (_dir, conn) = built();
    let entries = timeline(&conn, C1).unwrap();
    let kinds: Vec<EntryKind> = entries.iter().map(|e| e.kind).collect();
    use EntryKind::*;
    assert_eq!(
        kinds,
        [
            InboundMessage,
            Assigned,
            InboundMessage,
            OutboundMessage,
            Comment,
            Reassigned,
            InboundMessage,
            Closed,
            Reopened,
            InboundMessage
        ]
    );
    assert!(entries.windows(2).all(|w| w[0].position < w[1].position));

    let first = &entries[0];
    assert_eq!(first.occurred_at, at(1));
    assert_eq!(first.subject.as_deref(), Some("Printer broken"));
    assert_eq!(
        first.author,
        Some(Author::Contact {
            contact_id: Some(K1),
            address: "kim@customer.example".to_owned(),
            name: Some("Customer".to_owned())
        })
    );
    assert!(first.actor_json.contains("contact"));

    let assigned = &entries[1];
    assert_eq!(assigned.assignee, Some(AssigneeRef::User(ALICE)));
    assert!(
        assigned
            .reason_json
            .as_deref()
            .unwrap()
            .contains(r#""kind":"rule""#)
    );

    let reply = &entries[3];
    assert_eq!(reply.author, Some(Author::User(ALICE)));
    assert_eq!(reply.message_id, Some(C1_REPLY));
    assert_eq!(reply.deliveries.len(), 1);
    assert!(!reply.deliveries[0].succeeded);
    assert_eq!(reply.deliveries[0].reason.as_deref(), Some("mailbox full"));
    assert!(!reply.deliveries[0].permanent);
    assert_eq!(reply.deliveries[0].occurred_at, at(5));

    let comment = &entries[4];
    assert_eq!(comment.mentions, vec![BOB]);
    assert_eq!(
        comment.body_text.as_deref(),
        Some("@bob can you take this one?")
    );

    let reassigned = &entries[5];
    assert_eq!(reassigned.previous_assignee, Some(AssigneeRef::User(ALICE)));
    assert_eq!(reassigned.assignee, Some(AssigneeRef::User(BOB)));
    let reason: serde_json::Value =
        serde_json::from_str(reassigned.reason_json.as_deref().unwrap()).unwrap();
    assert_eq!(reason["kind"], "manual");

    let closed: serde_json::Value =
        serde_json::from_str(entries[7].reason_json.as_deref().unwrap()).unwrap();
    assert_eq!(closed["id"], BOB.to_string());
    let reopened: serde_json::Value =
        serde_json::from_str(entries[8].reason_json.as_deref().unwrap()).unwrap();
    assert_eq!(reopened["kind"], "customer_wrote");
}

#[test]
fn bot_handoff_and_deliveries_attach_to_the_right_entries() {
    let (_dir, conn) = built();
    let entries = timeline(&conn, C2).unwrap();
    let handoff = entries
        .iter()
        .find(|e| e.kind == EntryKind::BotHandedOff)
        .unwrap();
    assert_eq!(handoff.author, Some(Author::Bot(BOT)));
    assert_eq!(handoff.assignee, Some(AssigneeRef::Team(TEAM)));
    let replies: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::OutboundMessage)
        .collect();
    assert_eq!(replies[0].author, Some(Author::Bot(BOT)));
    assert!(replies[0].deliveries.is_empty());
    assert_eq!(replies[1].message_id, Some(C2_CAROL_REPLY));
    assert!(replies[1].deliveries[0].succeeded);
    let reassigned = entries
        .iter()
        .find(|e| e.kind == EntryKind::Reassigned)
        .unwrap();
    assert!(
        reassigned
            .reason_json
            .as_deref()
            .unwrap()
            .contains("bot_handoff")
    );

    let c6: Vec<EntryKind> = timeline(&conn, C6)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        c6,
        [
            EntryKind::InboundMessage,
            EntryKind::Assigned,
            EntryKind::Unassigned,
            EntryKind::Closed
        ]
    );
}

#[test]
fn unknown_conversation_has_no_header_and_no_timeline() {
    let (_dir, conn) = built();
    assert_eq!(conversation(&conn, Uuid::from_u128(0xdead)).unwrap(), None);
    assert!(timeline(&conn, Uuid::from_u128(0xdead)).unwrap().is_empty());
}

#[test]
fn a_thread_spread_over_several_chunks_reads_back_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let conn = switchboard_projector::testing::build_in_batches(
        &thread_view::ThreadView,
        dir.path(),
        &long_history(),
        5,
    );
    let entries = timeline(&conn, LONG).unwrap();
    assert!(entries.windows(2).all(|w| w[0].position < w[1].position));
    let bodies = |kind| -> Vec<&str> {
        entries
            .iter()
            .filter(|e| e.kind == kind)
            .filter_map(|e| e.body_text.as_deref())
            .collect()
    };
    let inbound: Vec<String> = (0..LONG_MESSAGES).map(|n| long_body(n, true)).collect();
    let answers: Vec<String> = (0..LONG_MESSAGES).map(|n| long_body(n, false)).collect();
    assert_eq!(bodies(EntryKind::InboundMessage), inbound);
    assert_eq!(bodies(EntryKind::OutboundMessage), answers);
    for answer in entries
        .iter()
        .filter(|e| e.kind == EntryKind::OutboundMessage)
    {
        assert_eq!(answer.deliveries.len(), 1, "{answer:?}");
        assert!(answer.deliveries[0].succeeded);
        assert!(answer.deliveries[0].position > answer.position);
    }
    // C1's comments, applied in the same batches, stay in C1's thread.
    let c1_comments = timeline(&conn, C1)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EntryKind::Comment)
        .count();
    assert_eq!(c1_comments, 1 + LONG_MESSAGES as usize);
}
