//! Building in batches (restarting between them) gives exactly the read model of a rebuild.

use response_analytics::ResponseAnalytics;
use switchboard_projector::testing;

use crate::support::*;

#[test]
fn batches_of_1_4_and_13_equal_a_build_at_once() {
    let mut log = crate::scenario::scenario();
    log.at(
        "2025-03-06T00:00:00Z",
        hours(
            "Europe/Berlin",
            &WEEKDAYS,
            "09:00",
            "18:00",
            &["2025-03-04"],
        ),
    )
    .at("2025-03-06T09:00:00Z", started(C4))
    .at("2025-03-06T09:00:00Z", customer(C4))
    .at("2025-03-06T09:30:00Z", agent_reply(C4, BOB));
    let dir = tempfile::tempdir().unwrap();
    let once = testing::dump(&testing::build_at_once(
        &ResponseAnalytics,
        dir.path(),
        &log.events,
    ));
    assert!(once.get("measurements").is_some_and(|rows| rows.len() > 10));
    for batch in [1, 4, 13] {
        let dir = tempfile::tempdir().unwrap();
        let batched = testing::dump(&testing::build_in_batches(
            &ResponseAnalytics,
            dir.path(),
            &log.events,
            batch,
        ));
        assert_eq!(batched, once, "batch size {batch}");
    }
}

#[test]
fn query_indexes_are_built_once_caught_up() {
    use switchboard_projector::Event;
    use switchboard_projector::model::{apply_events, open_for_writing};

    let log = crate::scenario::scenario();
    let decoded: Vec<Event<'_>> = log.events.iter().map(Event::decoded).collect();
    let (catching_up, last) = decoded.split_at(decoded.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("response_analytics.sqlite3");
    let (mut conn, _) = open_for_writing(&path, &ResponseAnalytics).unwrap();
    apply_events(&mut conn, &ResponseAnalytics, catching_up, false).unwrap();
    assert!(
        testing::indexes(&conn).is_empty(),
        "{:?}",
        testing::indexes(&conn)
    );
    apply_events(&mut conn, &ResponseAnalytics, last, true).unwrap();
    assert_eq!(
        testing::indexes(&conn),
        ["conversations_inbox", "measurements_metric"]
    );
    // Measurements stay unique per conversation and sequence number once the index exists.
    let duplicate = conn.execute(
        "INSERT INTO measurements SELECT * FROM measurements LIMIT 1",
        [],
    );
    assert!(duplicate.is_err(), "a duplicate measurement was accepted");
}
