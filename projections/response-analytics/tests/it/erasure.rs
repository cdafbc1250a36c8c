//! Erasure: an erased conversation keeps its numbers (ids, instants, measurements: nothing of
//! the person) but leaves the live figures, since it will never close; the read model never
//! held the person's words, before or after.

use std::path::Path;

use proto_events::event::{ConversationErased, Identity};
use response_analytics::{
    InboxLive, Metric, MetricFilter, PrivateConversations, ResponseAnalytics, conversation,
    conversation_cycles, live_figures, measurements, replies_per_agent,
};
use rusqlite::Connection;
use switchboard_projector::testing::{build_at_once, build_in_batches, dump};

use crate::support::*;

const NAME: &str = "Zelda Quibble";
const ADDRESS: &str = "zelda@quibble.example";
const BODY: &str = "my unique order text 7f3a";

/// The scenario, then Zelda's e-mail (C4, inbox 1), answered by Bob, and left open.
fn with_zelda() -> Log {
    let mut log = crate::scenario::scenario();
    let mut message = customer(C4);
    message.message.from = Identity::Email {
        address: ADDRESS.into(),
    };
    message.message.from_name = Some(NAME.into());
    message.message.subject = Some(format!("{BODY} from {NAME}"));
    message.message.body_text = BODY.into();
    log.at("2025-03-06T09:00:00Z", started(C4))
        .at("2025-03-06T09:00:00Z", message)
        .at("2025-03-06T09:30:00Z", agent_reply(C4, BOB))
        .at("2025-03-06T09:40:00Z", customer(C4)); // waiting again since 09:40
    log
}

/// [`with_zelda`], then her conversation erased with her, and C3 (waiting in inbox 2) by
/// retention.
fn erased() -> Log {
    let mut log = with_zelda();
    log.at(
        "2025-03-07T00:00:00Z",
        ConversationErased {
            conversation_id: C4,
            inbox_id: INBOX_1,
            contact_id: Some(uuid::Uuid::from_u128(0xd9)),
            reason: "Art. 17 request".into(),
        },
    )
    .at(
        "2025-03-07T00:00:00Z",
        ConversationErased {
            conversation_id: C3,
            inbox_id: INBOX_2,
            contact_id: None,
            reason: "retention".into(),
        },
    );
    log
}

/// The read model's file once its write-ahead log is folded in and truncated.
fn file_bytes(conn: &Connection, dir: &Path) -> Vec<u8> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    std::fs::read(dir.join("response_analytics.sqlite3")).unwrap()
}

fn holds(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

#[test]
fn erased_conversations_keep_their_numbers_and_leave_the_live_figures() {
    let (_before_dir, before) = build(&with_zelda().events);
    let inbox_1 =
        |conn: &Connection| live_figures(conn, PrivateConversations::All).unwrap()[0].clone();
    assert_eq!(inbox_1(&before).open, 1);
    assert_eq!(
        inbox_1(&before).waiting_since,
        Some(t("2025-03-06T09:40:00Z"))
    );

    let dir = tempfile::tempdir().unwrap();
    let conn = build_at_once(&ResponseAnalytics, dir.path(), &erased().events);
    assert_eq!(
        live_figures(&conn, PrivateConversations::All).unwrap(),
        [INBOX_1, INBOX_2].map(|inbox_id| InboxLive {
            inbox_id,
            open: 0,
            unassigned: 0,
            awaiting_first_reply: 0,
            waiting_since: None,
        })
    );
    for erased in [C3, C4] {
        let summary = conversation(&conn, erased).unwrap().unwrap();
        assert!(!summary.open);
        assert_eq!(
            conversation_cycles(&conn, erased).unwrap(),
            conversation_cycles(&before, erased).unwrap()
        );
    }
    let all = MetricFilter::default();
    for metric in [
        Metric::FirstResponse,
        Metric::AgentResponse,
        Metric::MessageResponse,
        Metric::TimeToClose,
        Metric::BotFirstResponse,
    ] {
        assert_eq!(
            measurements(&conn, metric, &all).unwrap(),
            measurements(&before, metric, &all).unwrap()
        );
    }
    assert_eq!(
        replies_per_agent(&conn, &all).unwrap(),
        replies_per_agent(&before, &all).unwrap()
    );

    let bytes = file_bytes(&conn, dir.path());
    for text in [NAME, ADDRESS, BODY] {
        assert!(!holds(&bytes, text), "{text} is in the file");
    }
}

#[test]
fn a_rebuild_and_any_batching_erase_alike() {
    let events = erased().events;
    let dir = tempfile::tempdir().unwrap();
    let once = dump(&build_at_once(&ResponseAnalytics, dir.path(), &events));
    for batch in [1, 4, 13] {
        let dir = tempfile::tempdir().unwrap();
        let batched = dump(&build_in_batches(
            &ResponseAnalytics,
            dir.path(),
            &events,
            batch,
        ));
        assert!(batched == once, "batch size {batch} differs");
    }
}
