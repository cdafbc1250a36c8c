//! Business hours: a weekend in between, a time-zone change recomputing the past, holidays and
//! a DST change.

use proto_events::event::Weekday;
use response_analytics::{
    Metric, MetricFilter, TimeBasis, conversation_cycles, measurements, metric_stats,
};

use crate::support::*;

/// C4: a customer writes Friday 2025-01-10 16:30 UTC (17:30 in Berlin, CET = UTC+1) and Alice
/// answers Monday 2025-01-13 08:15 UTC (09:15 in Berlin).
fn weekend(log: &mut Log) -> &mut Log {
    log.at("2025-01-10T16:30:00Z", started(C4))
        .at("2025-01-10T16:30:00Z", customer(C4))
        .at("2025-01-13T08:15:00Z", agent_reply(C4, ALICE))
}

fn first_response(log: &Log) -> (i64, i64) {
    let (_dir, conn) = build(&log.events);
    let m = measurements(&conn, Metric::FirstResponse, &MetricFilter::default()).unwrap();
    assert_eq!(m.len(), 1);
    (m[0].seconds, m[0].business_seconds)
}

#[test]
fn weekend_counts_only_opening_hours() {
    let mut log = Log::default();
    log.at(
        "2025-01-01T00:00:00Z",
        hours("Europe/Berlin", &WEEKDAYS, "09:00", "18:00", &[]),
    );
    weekend(&mut log);
    // Calendar: Fri 16:30 -> Mon 08:15 = 2 d 15 h 45 min = 229 500 s.
    // Business: Fri 17:30-18:00 (30 min) + Mon 09:00-09:15 (15 min) = 45 min = 2700 s.
    assert_eq!(first_response(&log), (229_500, 2700));
    let (_dir, conn) = build(&log.events);
    let s = metric_stats(
        &conn,
        Metric::FirstResponse,
        &MetricFilter::default(),
        TimeBasis::Business,
    )
    .unwrap();
    assert_eq!(
        (s.count, s.median_seconds, s.p90_seconds),
        (1, Some(2700.0), Some(2700))
    );
    assert_eq!(
        conversation_cycles(&conn, C4).unwrap()[0].first_response_business_seconds,
        Some(2700)
    );
}

#[test]
fn new_hours_in_another_zone_recompute_the_past() {
    let mut log = Log::default();
    log.at(
        "2025-01-01T00:00:00Z",
        hours("Europe/Berlin", &WEEKDAYS, "09:00", "18:00", &[]),
    );
    weekend(&mut log);
    // Later, the same hours are set in New York (EST = UTC-5). The message came Fri 11:30 and
    // the reply Mon 03:15 New York time: Fri 11:30-18:00 = 6 h 30 min = 23 400 s, Monday none.
    log.at(
        "2025-02-01T00:00:00Z",
        hours("America/New_York", &WEEKDAYS, "09:00", "18:00", &[]),
    );
    assert_eq!(first_response(&log), (229_500, 23_400));
}

#[test]
fn holidays_are_closed() {
    let mut log = Log::default();
    // Monday 2025-01-13 is a holiday in Berlin: only Friday's 30 min count.
    log.at(
        "2025-01-01T00:00:00Z",
        hours(
            "Europe/Berlin",
            &WEEKDAYS,
            "09:00",
            "18:00",
            &["2025-01-13"],
        ),
    );
    weekend(&mut log);
    assert_eq!(first_response(&log), (229_500, 1800));
}

#[test]
fn no_hours_means_always_open() {
    let mut log = Log::default();
    weekend(&mut log);
    assert_eq!(first_response(&log), (229_500, 229_500));
}

#[test]
fn dst_change_is_counted_in_real_time() {
    // Open around the clock in Berlin. Sat 2025-03-29 12:00 UTC (13:00 CET) to Sun 2025-03-30
    // 12:00 UTC (14:00 CEST): the wall clock shows 25 h but 24 h = 86 400 s elapse, all open.
    let all_week = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];
    let mut log = Log::default();
    log.at(
        "2025-01-01T00:00:00Z",
        hours("Europe/Berlin", &all_week, "00:00", "00:00", &[]),
    )
    .at("2025-03-29T12:00:00Z", started(C4))
    .at("2025-03-29T12:00:00Z", customer(C4))
    .at("2025-03-30T12:00:00Z", agent_reply(C4, ALICE));
    assert_eq!(first_response(&log), (86_400, 86_400));
}
