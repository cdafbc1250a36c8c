//! Building in batches (with restarts between them) gives exactly the read model of a rebuild.

use audit_trail::AuditTrail;
use switchboard_projector::testing;

use crate::support::sample;

const ROUNDS: i64 = 80;

/// The sample's events, then its payloads again `rounds` times, each round later in time.
fn sample_repeated(rounds: i64) -> Vec<proto_events::Envelope> {
    let mut h = sample();
    let more: Vec<_> = h.events.clone();
    for round in 1..=rounds {
        for e in &more {
            h.push_caused(
                e.stream.clone(),
                e.metadata.actor.clone(),
                100 * round + e.position as i64,
                (e.metadata.correlation_id, e.metadata.causation_id),
                e.payload.clone(),
            );
        }
    }
    h.events
}

#[test]
fn building_in_batches_equals_building_at_once() {
    // The log spans many batches, and the busiest posting lists (actor kind, event type, day)
    // more than one chunk of 256 positions.
    let events = sample_repeated(ROUNDS);
    assert_eq!(events.len(), 9 * (ROUNDS as usize + 1));
    let dir = tempfile::tempdir().unwrap();
    let once = dir.path().join("once");
    std::fs::create_dir_all(&once).unwrap();
    let at_once = testing::dump(&testing::build_at_once(&AuditTrail, &once, &events));
    let entries: usize = at_once["audit_entries"]
        .iter()
        .map(|row| {
            // The dump spells values as rusqlite's `Value`s: `Integer(16)`.
            row[2]
                .trim_start_matches("Integer(")
                .trim_end_matches(')')
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(entries, events.len());
    let postings = &at_once["audit_postings"];
    let keys: std::collections::BTreeSet<_> = postings.iter().map(|row| &row[0]).collect();
    assert!(
        postings.len() > keys.len(),
        "some posting lists span several chunks"
    );
    for batch in [1, 5, 11, 300] {
        let sub = dir.path().join(format!("batch-{batch}"));
        std::fs::create_dir_all(&sub).unwrap();
        let batched = testing::dump(&testing::build_in_batches(
            &AuditTrail,
            &sub,
            &events,
            batch,
        ));
        assert_eq!(batched, at_once, "batch size {batch}");
    }
}

/// Events applied again (a batch handed over twice, overlapping what is recorded) are not
/// recorded twice: neither their rows nor their positions in the posting lists.
#[test]
fn events_applied_again_are_recorded_once() {
    use switchboard_projector::{Event, Projector};

    let events = sample_repeated(20);
    assert!(events.len() > 150);
    let dir = tempfile::tempdir().unwrap();
    let once = dir.path().join("once");
    std::fs::create_dir_all(&once).unwrap();
    let expected = testing::dump(&testing::build_at_once(&AuditTrail, &once, &events));

    let mut conn = switchboard_projector::model::open_in_memory(&AuditTrail).unwrap();
    let decoded: Vec<Event<'_>> = events.iter().map(Event::decoded).collect();
    // 0..100, then 40..150 (40 again), then 145..150 again alone, then everything again.
    for range in [0..100, 40..150, 145..150, 0..events.len()] {
        let tx = conn.transaction().unwrap();
        AuditTrail.apply_batch(&tx, &decoded[range]).unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(testing::dump(&conn), expected);
}
