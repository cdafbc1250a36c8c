//! The hand-worked scenario: every expected number below is worked out in the comments from
//! the event times, not read back from the implementation.

use response_analytics::{
    AgentReplies, InboxLive, Metric, MetricFilter, PrivateConversations, TimeBasis,
    bot_performance, conversation, conversation_cycles, live_figures, measurements, metric_stats,
    replies_per_agent,
};

use crate::support::*;

/// The scenario's events (no opening hours: business time equals calendar time).
///
/// All times UTC, Monday 2025-03-03 unless said otherwise.
pub(crate) fn scenario() -> Log {
    let mut log = Log::default();
    log.at("2025-03-01T08:00:00Z", joined(SALES, ALICE))
        .at("2025-03-01T08:00:00Z", joined(SUPPORT, BOB))
        // C1, cycle 1: a chat answered first by the bot.
        .at("2025-03-03T10:00:00Z", started(C1))
        .at("2025-03-03T10:00:00Z", customer(C1)) // first inbound; run starts 10:00
        .at("2025-03-03T10:02:00Z", customer(C1)) // same run
        .at("2025-03-03T10:03:00Z", bot_reply(C1)) // bot first response: 10:00 -> 10:03 = 180 s
        .at("2025-03-03T10:04:00Z", comment(C1, ALICE)) // a comment: not a reply
        .at("2025-03-03T10:05:00Z", automated_reply(C1)) // automated: not a reply
        .at("2025-03-03T10:06:00Z", handed_off(C1)) // first response now starts at 10:06; so does the run
        .at("2025-03-03T10:07:00Z", assigned(C1, ALICE)) // Alice's assignment at 10:07
        .at("2025-03-03T10:10:00Z", customer(C1)) // still the same run
        // First human reply: FRT 10:06 -> 10:16 = 600 s; run 10:06 -> 10:16 = 600 s;
        // Alice's agent response 10:07 -> 10:16 = 540 s.
        .at("2025-03-03T10:16:00Z", agent_reply(C1, ALICE))
        .at("2025-03-03T10:20:00Z", customer(C1)) // a new run starts at 10:20
        .at("2025-03-03T10:25:00Z", customer(C1)) // consecutive: the run still starts at 10:20
        .at("2025-03-03T10:40:00Z", agent_reply(C1, ALICE)) // run 10:20 -> 10:40 = 1200 s (not 900)
        .at("2025-03-03T10:45:00Z", reassigned(C1, ALICE, BOB)) // Bob's assignment at 10:45
        .at("2025-03-03T10:50:00Z", customer(C1)) // run starts 10:50
        // Run 10:50 -> 11:00 = 600 s; Bob's agent response 10:45 -> 11:00 = 900 s.
        .at("2025-03-03T11:00:00Z", agent_reply(C1, BOB))
        .at("2025-03-03T11:30:00Z", closed(C1)) // time to close 10:00 -> 11:30 = 5400 s (Bob assigned)
        // C2: the bot alone; closed without human involvement.
        .at("2025-03-03T12:00:00Z", started(C2))
        .at("2025-03-03T12:00:00Z", customer(C2))
        .at("2025-03-03T12:01:00Z", bot_reply(C2)) // bot first response 60 s
        .at("2025-03-03T12:05:00Z", closed(C2)) // time to close 300 s
        // C3, in inbox 2: nobody answers yet.
        .at("2025-03-03T14:00:00Z", started(C3))
        .at("2025-03-03T14:00:00Z", customer(C3)) // waiting since 14:00
        .at("2025-03-03T14:10:00Z", customer(C3)) // same run: still waiting since 14:00
        // C1, cycle 2 (Tuesday): the customer writes again.
        .at("2025-03-04T09:00:00Z", reopened(C1))
        .at("2025-03-04T09:00:00Z", customer(C1))
        // FRT of cycle 2: 09:00 -> 09:30 = 1800 s; run 1800 s. Bob's assignment was answered
        // already, so no new agent response.
        .at("2025-03-04T09:30:00Z", agent_reply(C1, BOB))
        .at("2025-03-04T10:00:00Z", closed(C1)) // time to close 09:00 -> 10:00 = 3600 s
        // Bob joins Sales afterwards: past numbers keep his team at reply time (Support).
        .at("2025-03-05T08:00:00Z", joined(SALES, BOB));
    log
}

fn values(conn: &rusqlite::Connection, metric: Metric, filter: &MetricFilter) -> Vec<i64> {
    measurements(conn, metric, filter)
        .unwrap()
        .iter()
        .map(|m| m.seconds)
        .collect()
}

#[test]
fn first_response_per_cycle_from_first_inbound_or_handoff() {
    let (_dir, conn) = build(&scenario().events);
    let all = MetricFilter::default();
    // Cycle 1 from the handoff (10:06), not the first message or the bot/automated replies;
    // cycle 2 from the reopening message.
    assert_eq!(values(&conn, Metric::FirstResponse, &all), vec![600, 1800]);
    let stats = metric_stats(&conn, Metric::FirstResponse, &all, TimeBasis::Calendar).unwrap();
    // mean (600 + 1800) / 2 = 1200; median 1200; p90 rank ceil(0.9 * 2) = 2 -> 1800.
    assert_eq!(
        (
            stats.count,
            stats.mean_seconds,
            stats.median_seconds,
            stats.p90_seconds
        ),
        (2, Some(1200.0), Some(1200.0), Some(1800))
    );
}

#[test]
fn message_runs_measure_from_the_first_message() {
    let (_dir, conn) = build(&scenario().events);
    let all = MetricFilter::default();
    assert_eq!(
        values(&conn, Metric::MessageResponse, &all),
        vec![600, 1200, 600, 1800]
    );
    // Sorted 600, 600, 1200, 1800: mean 4200 / 4 = 1050; median (600 + 1200) / 2 = 900;
    // p90 rank ceil(3.6) = 4 -> 1800.
    let stats = metric_stats(&conn, Metric::MessageResponse, &all, TimeBasis::Calendar).unwrap();
    assert_eq!(
        (
            stats.count,
            stats.mean_seconds,
            stats.median_seconds,
            stats.p90_seconds
        ),
        (4, Some(1050.0), Some(900.0), Some(1800))
    );
}

#[test]
fn agent_response_per_assignment() {
    let (_dir, conn) = build(&scenario().events);
    let alice = MetricFilter {
        agent_id: Some(ALICE),
        ..Default::default()
    };
    let bob = MetricFilter {
        agent_id: Some(BOB),
        ..Default::default()
    };
    assert_eq!(values(&conn, Metric::AgentResponse, &alice), vec![540]);
    assert_eq!(values(&conn, Metric::AgentResponse, &bob), vec![900]);
}

#[test]
fn time_to_close_per_cycle() {
    let (_dir, conn) = build(&scenario().events);
    assert_eq!(
        values(&conn, Metric::TimeToClose, &MetricFilter::default()),
        vec![5400, 300, 3600]
    );
    let bob = MetricFilter {
        agent_id: Some(BOB),
        ..Default::default()
    };
    assert_eq!(values(&conn, Metric::TimeToClose, &bob), vec![5400, 3600]);
}

#[test]
fn filters_by_team_at_reply_time_period_inbox_and_channel() {
    let (_dir, conn) = build(&scenario().events);
    let sales = MetricFilter {
        team_id: Some(SALES),
        ..Default::default()
    };
    let support = MetricFilter {
        team_id: Some(SUPPORT),
        ..Default::default()
    };
    // Bob joined Sales only after his replies: his 1800 s stays with Support.
    assert_eq!(values(&conn, Metric::FirstResponse, &sales), vec![600]);
    assert_eq!(values(&conn, Metric::FirstResponse, &support), vec![1800]);
    let tuesday = MetricFilter {
        from: Some(t("2025-03-04T00:00:00Z")),
        ..Default::default()
    };
    assert_eq!(values(&conn, Metric::FirstResponse, &tuesday), vec![1800]);
    let monday = MetricFilter {
        until: Some(t("2025-03-04T00:00:00Z")),
        ..Default::default()
    };
    assert_eq!(
        values(&conn, Metric::MessageResponse, &monday),
        vec![600, 1200, 600]
    );
    let inbox_2 = MetricFilter {
        inbox_id: Some(INBOX_2),
        ..Default::default()
    };
    assert_eq!(
        values(&conn, Metric::TimeToClose, &inbox_2),
        Vec::<i64>::new()
    );
    let email = MetricFilter {
        channel_id: Some(EMAIL),
        ..Default::default()
    };
    assert_eq!(
        values(&conn, Metric::FirstResponse, &email),
        Vec::<i64>::new()
    );
}

#[test]
fn replies_per_agent_count_conversations_and_replies() {
    let (_dir, conn) = build(&scenario().events);
    // Alice: 10:16 and 10:40 in C1; Bob: 11:00 and Tuesday 09:30 in C1. Bot and automated
    // replies and the comment are not replies.
    assert_eq!(
        replies_per_agent(&conn, &MetricFilter::default()).unwrap(),
        vec![
            AgentReplies {
                agent_id: ALICE,
                conversations: 1,
                replies: 2
            },
            AgentReplies {
                agent_id: BOB,
                conversations: 1,
                replies: 2
            },
        ]
    );
}

#[test]
fn bot_performance_counts_and_first_response() {
    let (_dir, conn) = build(&scenario().events);
    let bots = bot_performance(&conn, &MetricFilter::default(), TimeBasis::Calendar).unwrap();
    assert_eq!(bots.len(), 1);
    let bot = &bots[0];
    // Took part in C1 and C2; handed C1 off; C2 closed with no human reply and no handoff.
    assert_eq!(
        (
            bot.bot_id,
            bot.conversations,
            bot.handed_off,
            bot.closed_without_human
        ),
        (BOT, 2, 1, 1)
    );
    // 180 s (C1) and 60 s (C2): mean 120, median 120, p90 rank 2 -> 180.
    let s = &bot.first_response;
    assert_eq!(
        (s.count, s.mean_seconds, s.median_seconds, s.p90_seconds),
        (2, Some(120.0), Some(120.0), Some(180))
    );
}

#[test]
fn live_figures_per_inbox() {
    let (_dir, conn) = build(&scenario().events);
    assert_eq!(
        live_figures(&conn, PrivateConversations::All).unwrap(),
        vec![
            InboxLive {
                inbox_id: INBOX_1,
                open: 0,
                unassigned: 0,
                awaiting_first_reply: 0,
                waiting_since: None
            },
            InboxLive {
                inbox_id: INBOX_2,
                open: 1,
                unassigned: 1,
                awaiting_first_reply: 1,
                waiting_since: Some(t("2025-03-03T14:00:00Z")),
            },
        ]
    );
}

#[test]
fn drill_down_and_reopen_leaves_first_cycle_unchanged() {
    let log = scenario();
    let (_dir, conn) = build(&log.events);
    let summary = conversation(&conn, C1).unwrap().unwrap();
    assert_eq!(
        (
            summary.inbox_id,
            summary.private_owner,
            summary.open,
            summary.cycle_no
        ),
        (INBOX_1, None, false, 2)
    );
    let cycles = conversation_cycles(&conn, C1).unwrap();
    assert_eq!(cycles.len(), 2);
    let first = &cycles[0];
    assert_eq!(first.first_response_start, Some(t("2025-03-03T10:06:00Z")));
    assert_eq!(
        (
            first.first_response_seconds,
            first.first_responder,
            first.awaiting
        ),
        (Some(600), Some(ALICE), false)
    );
    assert_eq!(
        (
            first.time_to_close_seconds,
            first.human_replies,
            first.bot_replies
        ),
        (Some(5400), 3, 1)
    );
    assert_eq!(cycles[1].first_response_seconds, Some(1800));
    assert_eq!(cycles[1].time_to_close_seconds, Some(3600));

    // The same conversation before it was reopened: cycle 1 is identical.
    let reopen = log
        .events
        .iter()
        .position(|e| e.event_type == "ConversationReopened")
        .unwrap();
    let (_dir2, before) = build(&log.events[..reopen]);
    assert_eq!(
        conversation_cycles(&before, C1).unwrap(),
        vec![first.clone()]
    );

    // C3 awaits its first reply.
    let c3 = conversation_cycles(&conn, C3).unwrap();
    assert!(c3[0].awaiting);
    assert_eq!(c3[0].first_response_seconds, None);
}

#[test]
fn private_owner_is_kept_until_shared() {
    let mut private = started(C3);
    private.visibility = proto_events::event::ConversationVisibility::Private {
        owner_user_id: ALICE,
    };
    let mut log = Log::default();
    log.at("2025-03-03T14:00:00Z", private)
        .at("2025-03-03T14:00:00Z", customer(C3));
    let (_dir, conn) = build(&log.events);
    let summary = conversation(&conn, C3).unwrap().unwrap();
    assert_eq!(
        (summary.inbox_id, summary.private_owner),
        (INBOX_2, Some(ALICE))
    );
    log.at(
        "2025-03-03T15:00:00Z",
        proto_events::event::ConversationShared {
            conversation_id: C3,
            inbox_id: INBOX_2,
            by_user_id: ALICE,
        },
    );
    let (_dir, conn) = build(&log.events);
    assert_eq!(
        conversation(&conn, C3).unwrap().unwrap().private_owner,
        None
    );
}
