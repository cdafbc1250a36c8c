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
