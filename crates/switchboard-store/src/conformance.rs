//! The behaviour every backend must show, written once and run against each of them.
//!
//! A backend's test binary instantiates the whole suite with [`conformance_suite!`], giving it an
//! async function that opens a fresh, empty store and returns it with a guard (a temporary
//! directory, a dropped database) that lives as long as the test.
//!
//! [`conformance_suite!`]: crate::conformance_suite

// This module is test code compiled into a library: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::blob::Blob;
use crate::chain::{self, Verification};
use crate::index::{
    Claim, Finish, IndexBatch, KeyOutcome, KeyState, KeyUse, Link, LoggedKey, Thread,
};
use crate::types::{
    Direction, ExpectedVersion, NewEvent, Origin, Position, RecordedEvent, StreamFrom,
};
use crate::{EventStore, StoreError};

/// Instantiates every conformance test as a `#[tokio::test]` for one backend.
///
/// `$open` is a path to `async fn() -> Option<(S, G)>` where `S: EventStore + Clone + 'static` is
/// a fresh empty store and `G` is kept alive until the test ends. `None` skips the test: a backend
/// whose server is unreachable says so loudly and returns `None`, or panics when its tests are
/// required (CI).
#[macro_export]
macro_rules! conformance_suite {
    ($open:path) => {
        $crate::conformance_suite!(@tests $open;
            expected_version_matrix,
            idempotency_matrix,
            racing_writers_on_one_stream,
            writers_on_distinct_streams,
            subscriber_sees_concurrent_writes_once_in_order,
            subscription_resumes_from_checkpoint,
            reading_past_the_end,
            reading_backwards,
            empty_and_oversized_appends,
            stored_events_round_trip,
            hash_chain_verifies,
            restore_keeps_commit_times_and_hashes,
            blobs_are_stored_once_by_content,
            blobs_within_other_blobs_read_back,
            blobs_are_deleted_and_parts_of_others_kept,
            a_part_stored_while_its_source_is_deleted_reads_back,
            secrets_are_replaced_and_deleted_by_name,
            secrets_put_if_absent_keep_the_first_value,
            index_claims_one_of_racing_requests,
            index_key_lifecycle,
            index_folds_the_log_idempotently,
            index_threads_and_snapshots,
            index_cursors_are_named_and_replaced,
        );
    };
    (@tests $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some((store, _guard)) = $open().await else { return };
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

/// How long a test waits for something asynchronous before failing.
const DEADLINE: Duration = Duration::from_secs(30);

/// A small event with a fresh id, whose payload says which writer and sequence number made it.
pub fn event(label: &str) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "TestEvent".to_owned(),
        schema_version: 1,
        metadata: br#"{"actor":{"kind":"system","component":"conformance"}}"#.to_vec(),
        payload: format!(r#"{{"label":"{label}"}}"#).into_bytes(),
    }
}

fn events(label: &str, n: usize) -> Vec<NewEvent> {
    (0..n).map(|i| event(&format!("{label}-{i}"))).collect()
}

fn unique_stream(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::now_v7().simple())
}

async fn read_everything<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, 500).await.expect("read_all");
        let Some(last) = page.last() else { break };
        after = last.position;
        all.extend(page);
    }
    all
}

fn assert_wrong_version(result: Result<crate::AppendResult, StoreError>, want_actual: Option<u64>) {
    match result {
        Err(StoreError::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, want_actual),
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
}

/// Every expectation against a missing and an existing stream; rejections write nothing.
pub async fn expected_version_matrix<S: EventStore>(store: S) {
    let s = unique_stream("matrix");
    assert_wrong_version(
        store
            .append(&s, ExpectedVersion::StreamExists, vec![event("a")])
            .await,
        None,
    );
    assert_wrong_version(
        store
            .append(&s, ExpectedVersion::Exact(0), vec![event("a")])
            .await,
        None,
    );
    assert_eq!(store.stream_version(&s).await.unwrap(), None);
    assert_eq!(store.head().await.unwrap(), Position::START);

    let first = store
        .append(&s, ExpectedVersion::NoStream, events("a", 2))
        .await
        .unwrap();
    assert_eq!(first.stream_version, 1);
    assert_eq!(first.first_position, Position(1));
    assert_eq!(first.last_position, Position(2));

    assert_wrong_version(
        store
            .append(&s, ExpectedVersion::NoStream, vec![event("b")])
            .await,
        Some(1),
    );
    assert_wrong_version(
        store
            .append(&s, ExpectedVersion::Exact(0), vec![event("b")])
            .await,
        Some(1),
    );
    assert_wrong_version(
        store
            .append(&s, ExpectedVersion::Exact(2), vec![event("b")])
            .await,
        Some(1),
    );
    assert_eq!(store.stream_version(&s).await.unwrap(), Some(1));
    assert_eq!(
        store.head().await.unwrap(),
        Position(2),
        "a rejected append wrote something"
    );

    let r = store
        .append(&s, ExpectedVersion::Exact(1), vec![event("c")])
        .await
        .unwrap();
    assert_eq!((r.stream_version, r.first_position), (2, Position(3)));
    let r = store
        .append(&s, ExpectedVersion::StreamExists, vec![event("d")])
        .await
        .unwrap();
    assert_eq!(r.stream_version, 3);
    let r = store
        .append(&s, ExpectedVersion::Any, vec![event("e")])
        .await
        .unwrap();
    assert_eq!(r.stream_version, 4);
    let other = unique_stream("matrix-any");
    let r = store
        .append(&other, ExpectedVersion::Any, vec![event("f")])
        .await
        .unwrap();
    assert_eq!(r.stream_version, 0);

    let versions: Vec<u64> = store
        .read_stream(&s, Direction::Forwards, StreamFrom::Start, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, vec![0, 1, 2, 3, 4]);
}

/// Retried appends return the original result and write nothing; partial repeats conflict.
pub async fn idempotency_matrix<S: EventStore>(store: S) {
    let s = unique_stream("idem");
    let batch = events("a", 3);
    let original = store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();

    // The same append again, with every expectation that held at the time, is a no-op.
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::StreamExists,
    ] {
        let again = store.append(&s, expected, batch.clone()).await.unwrap();
        assert_eq!(again, original, "retry with {expected}");
    }
    let head = store.head().await.unwrap();
    assert_eq!(head, original.last_position);

    // Retrying at an exact version: the second append, retried, returns its original positions.
    let next = vec![event("b")];
    let second = store
        .append(&s, ExpectedVersion::Exact(2), next.clone())
        .await
        .unwrap();
    let again = store
        .append(&s, ExpectedVersion::Exact(2), next.clone())
        .await
        .unwrap();
    assert_eq!(again, second);

    // The same ids with an expectation that did not hold then: the stream moved on.
    assert_wrong_version(
        store
            .append(&s, ExpectedVersion::Exact(0), next.clone())
            .await,
        Some(3),
    );
    assert_wrong_version(
        store
            .append(&s, ExpectedVersion::NoStream, next.clone())
            .await,
        Some(3),
    );

    // A known id followed by a new one, a new one followed by a known one, known ids in another
    // order, and known ids on another stream all conflict, and none of them writes anything.
    let partials = [
        (s.clone(), vec![batch[0].clone(), event("new")]),
        (s.clone(), vec![event("new"), batch[0].clone()]),
        (s.clone(), vec![batch[1].clone(), batch[0].clone()]),
        (unique_stream("idem-elsewhere"), vec![batch[0].clone()]),
    ];
    for (stream, attempt) in partials {
        match store.append(&stream, ExpectedVersion::Any, attempt).await {
            Err(StoreError::IdempotencyConflict { .. }) => {}
            other => panic!("expected IdempotencyConflict, got {other:?}"),
        }
    }
    assert_eq!(
        store.head().await.unwrap(),
        second.last_position,
        "a conflicting append wrote"
    );
    assert_eq!(store.stream_version(&s).await.unwrap(), Some(3));
}

/// 32 tasks race on one stream with exact versions: one winner per version, no holes.
pub async fn racing_writers_on_one_stream<S: EventStore + Clone + 'static>(store: S) {
    const TASKS: usize = 32;
    const ROUNDS: u64 = 10;
    let s = unique_stream("race");
    store
        .append(&s, ExpectedVersion::NoStream, vec![event("seed")])
        .await
        .unwrap();
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store
                    .append(
                        &s,
                        ExpectedVersion::Exact(round),
                        vec![event(&format!("{round}-{task}"))],
                    )
                    .await
            }));
        }
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(r) => {
                    winners += 1;
                    assert_eq!(r.stream_version, round + 1);
                }
                Err(StoreError::WrongExpectedVersion { actual, .. }) => {
                    assert_eq!(actual, Some(round + 1));
                }
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    let stored = store
        .read_stream(&s, Direction::Forwards, StreamFrom::Start, 1000)
        .await
        .unwrap();
    let versions: Vec<u64> = stored.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (0..=ROUNDS).collect::<Vec<_>>());
}

/// 64 tasks on distinct streams: everything commits, positions strictly increase without holes.
pub async fn writers_on_distinct_streams<S: EventStore + Clone + 'static>(store: S) {
    const TASKS: usize = 64;
    const APPENDS: usize = 10;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = format!("distinct-{task}");
            let mut results = Vec::new();
            for i in 0..APPENDS {
                let expected = if i == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(2 * i as u64 - 1)
                };
                results.push(
                    store
                        .append(&s, expected, events(&format!("{task}-{i}"), 2))
                        .await
                        .unwrap(),
                );
            }
            results
        }));
    }
    let mut acknowledged = HashSet::new();
    for task in tasks {
        for r in task.await.unwrap() {
            assert_eq!(r.last_position.0, r.first_position.0 + 1);
            assert!(acknowledged.insert(r.first_position) && acknowledged.insert(r.last_position));
        }
    }
    let all = read_everything(&store).await;
    assert_eq!(all.len(), TASKS * APPENDS * 2);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(
            e.position,
            Position(i as u64 + 1),
            "positions have a hole or are out of order"
        );
        assert!(acknowledged.contains(&e.position));
    }
    for task in 0..TASKS {
        let s = format!("distinct-{task}");
        let stored = store
            .read_stream(&s, Direction::Forwards, StreamFrom::Start, 1000)
            .await
            .unwrap();
        let versions: Vec<u64> = stored.iter().map(|e| e.stream_version).collect();
        assert_eq!(versions, (0..(APPENDS * 2) as u64).collect::<Vec<_>>());
        assert!(stored.windows(2).all(|w| w[0].position < w[1].position));
    }
}

/// A subscriber from the start sees every event of concurrent writers exactly once, in order.
pub async fn subscriber_sees_concurrent_writes_once_in_order<S: EventStore + Clone + 'static>(
    store: S,
) {
    const WRITERS: usize = 8;
    const APPENDS: usize = 50;
    store
        .append("before", ExpectedVersion::Any, events("before", 5))
        .await
        .unwrap();
    let mut subscription = store.subscribe_all(Position::START);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..APPENDS {
                let batch = events(&format!("{w}-{i}"), 1 + i % 3);
                ids.extend(batch.iter().map(|e| e.event_id));
                store
                    .append(&format!("writer-{w}"), ExpectedVersion::Any, batch)
                    .await
                    .unwrap();
            }
            ids
        }));
    }
    let mut written = HashSet::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    let total = written.len() + 5;
    let mut seen = Vec::with_capacity(total);
    let collect = async {
        while seen.len() < total {
            let event = subscription
                .next()
                .await
                .expect("subscription ended")
                .expect("subscription failed");
            seen.push(event);
        }
    };
    tokio::time::timeout(DEADLINE, collect)
        .await
        .expect("subscriber did not see every event in time");
    for (i, e) in seen.iter().enumerate() {
        assert_eq!(e.position, Position(i as u64 + 1));
    }
    let ids: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), total, "an event was delivered twice");
    assert!(written.is_subset(&ids));
    // Nothing more is delivered than was written.
    let extra = tokio::time::timeout(Duration::from_millis(100), subscription.next()).await;
    assert!(
        extra.is_err(),
        "subscription delivered an event that was never written"
    );
}

/// A subscription resumed after a checkpoint continues exactly where the previous one stopped.
pub async fn subscription_resumes_from_checkpoint<S: EventStore + Clone + 'static>(store: S) {
    store
        .append("resume", ExpectedVersion::NoStream, events("r", 50))
        .await
        .unwrap();
    let mut first = store.subscribe_all(Position::START);
    let mut checkpoint = Position::START;
    for _ in 0..20 {
        checkpoint = first.next().await.unwrap().unwrap().position;
    }
    drop(first);
    assert_eq!(checkpoint, Position(20));
    let mut resumed = store.subscribe_all(checkpoint);
    let later = store.clone();
    let writer = tokio::spawn(async move {
        later
            .append("resume", ExpectedVersion::Exact(49), events("later", 10))
            .await
            .unwrap()
    });
    let mut positions = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while positions.len() < 40 {
            positions.push(resumed.next().await.unwrap().unwrap().position.0);
        }
    })
    .await
    .expect("resumed subscription stalled");
    writer.await.unwrap();
    assert_eq!(positions, (21..=60).collect::<Vec<_>>());
}

/// Reads beyond what exists are empty, not errors.
pub async fn reading_past_the_end<S: EventStore>(store: S) {
    assert!(
        store
            .read_all(Position::START, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .append("short", ExpectedVersion::NoStream, events("s", 3))
        .await
        .unwrap();
    assert!(store.read_all(Position(3), 10).await.unwrap().is_empty());
    assert!(
        store
            .read_all(Position(1_000_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.read_all(Position(1), 10).await.unwrap().len(), 2);
    let past = store
        .read_stream("short", Direction::Forwards, StreamFrom::Version(3), 10)
        .await
        .unwrap();
    assert!(past.is_empty());
    let end = store
        .read_stream("short", Direction::Forwards, StreamFrom::End, 10)
        .await
        .unwrap();
    assert!(end.is_empty());
    let missing = store
        .read_stream("missing", Direction::Forwards, StreamFrom::Start, 10)
        .await
        .unwrap();
    assert!(missing.is_empty());
    assert_eq!(store.stream_version("missing").await.unwrap(), None);
    let limited = store
        .read_stream("short", Direction::Forwards, StreamFrom::Version(1), 1)
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].stream_version, 1);
}

/// Backwards reads start at the end or at a version and go down.
pub async fn reading_backwards<S: EventStore>(store: S) {
    store
        .append("back", ExpectedVersion::NoStream, events("b", 5))
        .await
        .unwrap();
    let versions = |v: Vec<RecordedEvent>| v.iter().map(|e| e.stream_version).collect::<Vec<_>>();
    let from_end = store
        .read_stream("back", Direction::Backwards, StreamFrom::End, 10)
        .await
        .unwrap();
    assert_eq!(versions(from_end), vec![4, 3, 2, 1, 0]);
    let from_start = store
        .read_stream("back", Direction::Backwards, StreamFrom::Start, 10)
        .await
        .unwrap();
    assert_eq!(versions(from_start), vec![4, 3, 2, 1, 0]);
    let from_two = store
        .read_stream("back", Direction::Backwards, StreamFrom::Version(2), 2)
        .await
        .unwrap();
    assert_eq!(versions(from_two), vec![2, 1]);
    let beyond = store
        .read_stream("back", Direction::Backwards, StreamFrom::Version(99), 2)
        .await
        .unwrap();
    assert_eq!(versions(beyond), vec![4, 3]);
}

/// Empty, oversized, self-duplicating appends and bad stream names are refused and write nothing.
pub async fn empty_and_oversized_appends<S: EventStore>(store: S) {
    assert!(matches!(
        store.append("e", ExpectedVersion::Any, Vec::new()).await,
        Err(StoreError::EmptyAppend)
    ));
    let limit = store.max_append_bytes();
    let mut big = event("big");
    big.payload = vec![b'x'; limit + 1];
    match store.append("e", ExpectedVersion::Any, vec![big]).await {
        Err(StoreError::AppendTooLarge { bytes, limit: l }) => {
            assert!(bytes > limit);
            assert_eq!(l, limit);
        }
        other => panic!("expected AppendTooLarge, got {other:?}"),
    }
    let twice = event("twice");
    assert!(matches!(
        store
            .append("e", ExpectedVersion::Any, vec![twice.clone(), twice])
            .await,
        Err(StoreError::DuplicateEventId { .. })
    ));
    assert!(matches!(
        store
            .append("", ExpectedVersion::Any, vec![event("x")])
            .await,
        Err(StoreError::InvalidStreamName(_))
    ));
    assert_eq!(store.head().await.unwrap(), Position::START);
    assert_eq!(store.stream_version("e").await.unwrap(), None);
    // Just under the limit is fine.
    let mut fits = event("fits");
    fits.payload = vec![b'y'; limit - fits.metadata.len() - fits.event_type.len()];
    store
        .append("e", ExpectedVersion::NoStream, vec![fits])
        .await
        .unwrap();
}

/// What is appended is what is read back, byte for byte, with a sensible commit time.
pub async fn stored_events_round_trip<S: EventStore>(store: S) {
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let mut original = event("round-trip");
    original.schema_version = 7;
    original.payload = "{\"text\":\"héllo \\u0000 wörld\"}".as_bytes().to_vec();
    original.metadata = vec![0, 159, 146, 150, 255];
    store
        .append("rt", ExpectedVersion::NoStream, vec![original.clone()])
        .await
        .unwrap();
    let stored = store.read_all(Position::START, 1).await.unwrap().remove(0);
    assert_eq!(stored.event_id, original.event_id);
    assert_eq!(stored.event_type, original.event_type);
    assert_eq!(stored.schema_version, 7);
    assert_eq!(stored.payload, original.payload);
    assert_eq!(stored.metadata, original.metadata);
    assert_eq!((stored.stream.as_str(), stored.stream_version), ("rt", 0));
    assert!(
        stored.recorded_at > before
            && stored.recorded_at < chrono::Utc::now() + chrono::Duration::seconds(5)
    );
    let by_stream = store
        .read_stream("rt", Direction::Forwards, StreamFrom::Start, 1)
        .await
        .unwrap();
    assert_eq!(by_stream, vec![stored]);
}

/// The hash chain of everything written verifies.
pub async fn hash_chain_verifies<S: EventStore>(store: S) {
    for i in 0..30 {
        store
            .append(
                &format!("chain-{}", i % 4),
                ExpectedVersion::Any,
                events("c", 1 + i % 5),
            )
            .await
            .unwrap();
    }
    match chain::verify(&store).await.unwrap() {
        Verification::Intact { events, .. } => {
            assert_eq!(events, (0..30).map(|i| 1 + i % 5).sum::<u64>())
        }
        broken => panic!("fresh chain does not verify: {broken:?}"),
    }
}

/// `events` as another log would have stored them from `after` on (positions, versions from
/// `first_version`, commit times a day apart from `base`), chained from `previous`.
fn originals_from(
    base: chrono::DateTime<chrono::Utc>,
    stream: &str,
    first_version: u64,
    after: Position,
    previous: [u8; 32],
    events: Vec<NewEvent>,
) -> Vec<(NewEvent, Origin)> {
    let mut previous = previous;
    let mut position = after;
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            position = position.next();
            let recorded_at = base + chrono::Duration::days(position.0 as i64);
            let hash = chain::Canonical {
                position,
                stream,
                stream_version: first_version + i as u64,
                event_id: event.event_id.as_bytes(),
                event_type: &event.event_type,
                schema_version: event.schema_version,
                recorded_at_micros: recorded_at.timestamp_micros(),
                metadata: &event.metadata,
                payload: &event.payload,
            }
            .hash(&previous);
            previous = hash;
            let origin = Origin {
                position,
                recorded_at,
                hash,
            };
            (event, origin)
        })
        .collect()
}

/// [`originals_from`] with commit times in 2020, to the microsecond.
fn originals(
    stream: &str,
    first_version: u64,
    after: Position,
    previous: [u8; 32],
    events: Vec<NewEvent>,
) -> Vec<(NewEvent, Origin)> {
    let base = chrono::DateTime::from_timestamp(1_577_836_800, 123_457_000).unwrap();
    originals_from(base, stream, first_version, after, previous, events)
}

/// Events restored from another log keep their commit times and hashes, so the chain verifies
/// with the original head hash; an event that would land elsewhere or hash differently is
/// refused and nothing of its append is written; repeating a restore writes nothing.
pub async fn restore_keeps_commit_times_and_hashes<S: EventStore>(store: S) {
    let first = originals(
        "restored-a",
        0,
        Position::START,
        chain::GENESIS,
        events("r", 3),
    );
    // Before 2000 and with nanoseconds: stores keep (and hashes cover) whole microseconds,
    // however their database rounds.
    let base = chrono::DateTime::from_timestamp(915_148_800, 987_654_321).unwrap();
    let second = originals_from(
        base,
        "restored-b",
        0,
        Position(3),
        first[2].1.hash,
        events("s", 2),
    );
    let result = store
        .restore("restored-a", ExpectedVersion::NoStream, first.clone())
        .await
        .unwrap();
    assert_eq!(
        (result.first_position, result.last_position),
        (Position(1), Position(3))
    );
    store
        .restore("restored-b", ExpectedVersion::NoStream, second.clone())
        .await
        .unwrap();
    let stored = read_everything(&store).await;
    let mut wanted: Vec<_> = first.iter().chain(&second).map(|(_, o)| *o).collect();
    chain::to_micros(&mut wanted);
    let got: Vec<_> = stored
        .iter()
        .map(|e| Origin {
            position: e.position,
            recorded_at: e.recorded_at,
            hash: e.hash,
        })
        .collect();
    assert_eq!(
        got, wanted,
        "restored events keep position, commit time and hash"
    );
    assert_eq!(
        chain::verify(&store).await.unwrap(),
        Verification::Intact {
            events: 5,
            head_hash: hex::encode(second[1].1.hash),
        }
    );

    // A retry of a restore that landed is answered as it was and writes nothing.
    let again = store
        .restore("restored-a", ExpectedVersion::NoStream, first.clone())
        .await
        .unwrap();
    assert_eq!(again, result);

    // An event chained after a different log (here: its predecessor's hash is not ours).
    let foreign = originals("restored-c", 0, Position(5), [7; 32], events("t", 2));
    // Changed on the way: the second event's payload differs from what its hash covers.
    let mut edited = originals(
        "restored-c",
        0,
        Position(5),
        second[1].1.hash,
        events("u", 2),
    );
    edited[1].0.payload = br#"{"label":"edited"}"#.to_vec();
    // Made for another place in the log.
    let misplaced = originals(
        "restored-c",
        0,
        Position(9),
        second[1].1.hash,
        events("v", 1),
    );
    for (what, refused) in [
        ("a foreign chain", foreign),
        ("an edited event", edited),
        ("another position", misplaced),
    ] {
        let wrong_id = match &refused[..] {
            [(e, _), ..] if what != "an edited event" => e.event_id,
            [_, (e, _), ..] => e.event_id,
            _ => unreachable!(),
        };
        match store
            .restore("restored-c", ExpectedVersion::NoStream, refused)
            .await
        {
            Err(StoreError::OriginMismatch { event_id, .. }) => {
                assert_eq!(
                    event_id, wrong_id,
                    "{what}: names the first mismatching event"
                )
            }
            other => panic!("{what}: expected OriginMismatch, got {other:?}"),
        }
        assert_eq!(
            store.head().await.unwrap(),
            Position(5),
            "{what}: nothing written"
        );
        assert_eq!(store.stream_version("restored-c").await.unwrap(), None);
    }

    // A retry is answered from what is stored, which must match too: events appended (with
    // the store's commit time) are not taken for restored ones.
    let appended = events("w", 1);
    store
        .append("restored-d", ExpectedVersion::NoStream, appended.clone())
        .await
        .unwrap();
    let posing = originals("restored-d", 0, Position(5), second[1].1.hash, appended);
    match store
        .restore("restored-d", ExpectedVersion::NoStream, posing)
        .await
    {
        Err(StoreError::OriginMismatch { .. }) => {}
        other => panic!("a restore answered by an append: {other:?}"),
    }
    // And the chain after the refusals is whole.
    assert!(matches!(
        chain::verify(&store).await.unwrap(),
        Verification::Intact { events: 6, .. }
    ));
}

/// Blobs come back byte for byte under their SHA-256; the same bytes stored twice (or by two
/// writers at once, or twice in one `put_all`) are one blob; an unknown or malformed name reads
/// as absent.
pub async fn blobs_are_stored_once_by_content<S: EventStore>(store: S) {
    let blobs = store.blobs();
    let small = b"%PDF-1.7 a small attachment".to_vec();
    let large: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let empty = Vec::new();
    for bytes in [&small, &large, &empty] {
        let (first, second) = tokio::join!(blobs.put(bytes.clone()), blobs.put(bytes.clone()));
        let name = first.unwrap();
        assert_eq!(second.unwrap(), name);
        assert_eq!(name, crate::blob::blob_hash(bytes));
        assert_eq!(blobs.get(&name).await.unwrap().as_ref(), Some(bytes));
    }
    // Several at once, a repeat among them: each stored once.
    let several: Vec<Blob> = [
        b"raw message".to_vec(),
        small.clone(),
        b"inline image".to_vec(),
        b"raw message".to_vec(),
    ]
    .into_iter()
    .map(Blob::new)
    .collect();
    blobs.put_all(several.clone()).await.unwrap();
    for blob in &several {
        assert_eq!(
            blobs.get(blob.sha256()).await.unwrap().as_deref(),
            Some(blob.bytes())
        );
    }
    blobs.put_all(Vec::new()).await.unwrap();
    // With an append: both there once it returns.
    let attachment = Blob::new(b"%PDF-1.7 sent with its message".to_vec());
    let appended = store
        .append_with_blobs(
            "blobbed-1",
            ExpectedVersion::NoStream,
            vec![event("MessageReceived")],
            vec![attachment.clone(), several[0].clone()],
        )
        .await
        .unwrap();
    assert_eq!(appended.stream_version, 0);
    assert_eq!(
        blobs.get(attachment.sha256()).await.unwrap().as_deref(),
        Some(attachment.bytes())
    );
    assert_eq!(store.stream_version("blobbed-1").await.unwrap(), Some(0));
    let absent = crate::blob::blob_hash(b"never stored");
    assert_eq!(blobs.get(&absent).await.unwrap(), None);
    for malformed in [
        "",
        "../../etc/passwd",
        &absent.to_uppercase(),
        &absent[..63],
    ] {
        assert_eq!(blobs.get(malformed).await.unwrap(), None, "{malformed:?}");
    }
}

/// A blob that stands in another ([`Blob::part_of`]: an attachment, base64 in its original
/// message, or a range as it is) reads back as its own bytes, whether its source came in the
/// same `put_all` (after it), in an append, or never (then it is kept whole); the same part
/// stored again, whole or as a part, is one blob.
pub async fn blobs_within_other_blobs_read_back<S: EventStore>(store: S) {
    use crate::blob::{PartEncoding, Within};
    let blobs = store.blobs();
    let attachment: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let encoded = {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(&attachment);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(76)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect();
        lines.join("\r\n")
    };
    let head = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nHello\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    let mut raw = head.clone();
    raw.extend_from_slice(encoded.as_bytes());
    raw.extend_from_slice(b"\r\n--b--\r\n");
    let source = Blob::new(raw.clone());
    let within = |start: usize, end: usize, encoding| Within {
        source: String::new(),
        start: start as u64,
        end: end as u64,
        encoding,
    };
    let base64_part = Blob::part_of(
        attachment.clone(),
        &source,
        within(
            head.len(),
            head.len() + encoded.len() + 2,
            PartEncoding::Base64,
        ),
    );
    assert!(
        base64_part.within().is_some(),
        "the range decodes to the attachment"
    );
    let hello = head.len() - 50..head.len() - 45;
    let identity_part = Blob::part_of(
        raw[hello.clone()].to_vec(),
        &source,
        within(hello.start, hello.end, PartEncoding::Identity),
    );
    assert!(identity_part.within().is_some());
    // A range that is not the bytes: not a part.
    let wrong = Blob::part_of(
        b"something else".to_vec(),
        &source,
        within(0, 14, PartEncoding::Identity),
    );
    assert_eq!(wrong.within(), None);
    blobs
        .put_all(vec![
            base64_part.clone(),
            identity_part.clone(),
            source.clone(),
        ])
        .await
        .unwrap();
    for blob in [&base64_part, &identity_part, &source] {
        assert_eq!(
            blobs.get(blob.sha256()).await.unwrap().as_deref(),
            Some(blob.bytes()),
            "{blob:?}"
        );
    }
    // Again, whole this time: the same blob.
    assert_eq!(
        blobs.put(attachment.clone()).await.unwrap(),
        base64_part.sha256()
    );
    assert_eq!(
        blobs.get(base64_part.sha256()).await.unwrap(),
        Some(attachment.clone())
    );
    // With an append, the source last.
    let other_source = Blob::new([b"prefix ".as_slice(), &raw].concat());
    let shifted = Blob::part_of(
        raw[7..200].to_vec(),
        &other_source,
        within(14, 207, PartEncoding::Identity),
    );
    assert!(shifted.within().is_some());
    store
        .append_with_blobs(
            "blobbed-parts",
            ExpectedVersion::NoStream,
            vec![event("MessageReceived")],
            vec![shifted.clone(), other_source.clone()],
        )
        .await
        .unwrap();
    assert_eq!(
        blobs.get(shifted.sha256()).await.unwrap().as_deref(),
        Some(shifted.bytes())
    );
    // A part whose source is never stored is kept whole.
    let unstored = Blob::new(b"a source nobody stores: 0123456789".to_vec());
    let orphan = Blob::part_of(
        unstored.bytes()[25..].to_vec(),
        &unstored,
        within(25, unstored.bytes().len(), PartEncoding::Identity),
    );
    assert!(orphan.within().is_some());
    blobs.put_all(vec![orphan.clone()]).await.unwrap();
    assert_eq!(
        blobs.get(orphan.sha256()).await.unwrap().as_deref(),
        Some(orphan.bytes())
    );
    assert_eq!(blobs.get(unstored.sha256()).await.unwrap(), None);
}

/// An original message with `attachments` base64-encoded in it, each with the range it takes:
/// the attachments as parts of the original ([`Blob::part_of`]), checked to be.
fn message_with_parts(label: &str, attachments: &[Vec<u8>]) -> (Blob, Vec<Blob>) {
    use crate::blob::{PartEncoding, Within};
    use base64::Engine as _;
    let mut raw =
        format!("Subject: {label}\r\nContent-Type: multipart/mixed; boundary=b\r\n").into_bytes();
    let mut ranges = Vec::new();
    for attachment in attachments {
        raw.extend_from_slice(b"\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n");
        let start = raw.len();
        raw.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(attachment)
                .as_bytes(),
        );
        ranges.push(start..raw.len());
    }
    raw.extend_from_slice(b"\r\n--b--\r\n");
    let source = Blob::new(raw);
    let parts = attachments
        .iter()
        .zip(ranges)
        .map(|(attachment, range)| {
            let part = Blob::part_of(
                attachment.clone(),
                &source,
                Within {
                    source: String::new(),
                    start: range.start as u64,
                    end: range.end as u64,
                    encoding: PartEncoding::Base64,
                },
            );
            assert!(
                part.within().is_some(),
                "the range decodes to the attachment"
            );
            part
        })
        .collect();
    (source, parts)
}

/// Bytes that differ per `label` and `i`, `len` long.
fn attachment(label: &str, i: u32, len: u32) -> Vec<u8> {
    let seed = crate::blob::blob_hash(format!("{label}-{i}").as_bytes()).into_bytes();
    (0..len)
        .map(|n| seed[n as usize % seed.len()] ^ (n % 251) as u8)
        .collect()
}

/// Deleting: a whole blob reads as absent after; a part goes alone and leaves its source; a
/// source goes after the parts standing in it are kept whole, except those deleted with it;
/// names not stored, not blob names or given twice are passed over, and a delete repeated
/// deletes nothing. The count is of the names that were stored.
pub async fn blobs_are_deleted_and_parts_of_others_kept<S: EventStore>(store: S) {
    let blobs = store.blobs();
    let read = |blob: &Blob| {
        let blobs = blobs.clone();
        let name = blob.sha256().to_owned();
        async move { blobs.get(&name).await.unwrap() }
    };
    let names =
        |of: &[&Blob]| -> Vec<String> { of.iter().map(|b| b.sha256().to_owned()).collect() };

    // A whole blob, stored on its own and with an append.
    let alone = Blob::new(b"a blob on its own".to_vec());
    let appended = Blob::new(b"a blob sent with its message".to_vec());
    blobs.put_all(vec![alone.clone()]).await.unwrap();
    store
        .append_with_blobs(
            "deleting-1",
            ExpectedVersion::NoStream,
            vec![event("MessageReceived")],
            vec![appended.clone()],
        )
        .await
        .unwrap();
    assert_eq!(blobs.delete(&names(&[&alone])).await.unwrap(), 1);
    assert_eq!(read(&alone).await, None);
    assert_eq!(read(&appended).await.as_deref(), Some(appended.bytes()));
    // Twice in one call counts once; again deletes nothing.
    assert_eq!(
        blobs
            .delete(&names(&[&appended, &appended, &alone]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(read(&appended).await, None);
    assert_eq!(blobs.delete(&names(&[&appended])).await.unwrap(), 0);
    // The events that referenced it are untouched.
    assert_eq!(store.stream_version("deleting-1").await.unwrap(), Some(0));

    // Names not stored, and names that are not blob names.
    let never = crate::blob::blob_hash(b"never stored");
    let malformed = [
        String::new(),
        "../../etc/passwd".to_owned(),
        never.to_uppercase(),
        never[..63].to_owned(),
    ];
    assert_eq!(blobs.delete(std::slice::from_ref(&never)).await.unwrap(), 0);
    assert_eq!(blobs.delete(&malformed).await.unwrap(), 0);
    assert_eq!(blobs.delete(&[]).await.unwrap(), 0);

    // A part goes alone: its source, and the other part in it, stay.
    let (source, parts) = message_with_parts(
        "a part goes alone",
        &[
            attachment("alone", 0, 3_000),
            attachment("alone", 1, 70_000),
        ],
    );
    blobs
        .put_all(vec![parts[0].clone(), parts[1].clone(), source.clone()])
        .await
        .unwrap();
    assert_eq!(blobs.delete(&names(&[&parts[0]])).await.unwrap(), 1);
    assert_eq!(read(&parts[0]).await, None);
    assert_eq!(read(&source).await.as_deref(), Some(source.bytes()));
    assert_eq!(read(&parts[1]).await.as_deref(), Some(parts[1].bytes()));
    assert_eq!(blobs.delete(&names(&[&parts[0]])).await.unwrap(), 0);

    // A source goes; the parts standing in it are kept, with their bytes, and now stand
    // alone: deleting one of them then leaves the other.
    let (source, parts) = message_with_parts(
        "a source goes",
        &[
            attachment("source", 0, 2_000),
            attachment("source", 1, 90_000),
        ],
    );
    store
        .append_with_blobs(
            "deleting-2",
            ExpectedVersion::NoStream,
            vec![event("MessageReceived")],
            vec![parts[0].clone(), parts[1].clone(), source.clone()],
        )
        .await
        .unwrap();
    assert_eq!(blobs.delete(&names(&[&source])).await.unwrap(), 1);
    assert_eq!(read(&source).await, None);
    for part in &parts {
        assert_eq!(read(part).await.as_deref(), Some(part.bytes()), "{part:?}");
    }
    assert_eq!(blobs.delete(&names(&[&parts[1]])).await.unwrap(), 1);
    assert_eq!(read(&parts[1]).await, None);
    assert_eq!(read(&parts[0]).await.as_deref(), Some(parts[0].bytes()));
    // Stored again once deleted: kept whole, as its source is gone.
    blobs.put_all(vec![parts[1].clone()]).await.unwrap();
    assert_eq!(read(&parts[1]).await.as_deref(), Some(parts[1].bytes()));

    // A source and one of its parts go together; the other part is kept. A part also stored
    // whole (stored again on its own) is one blob.
    let (source, parts) = message_with_parts(
        "together",
        &[
            attachment("together", 0, 5_000),
            attachment("together", 1, 6_000),
            attachment("together", 2, 7_000),
        ],
    );
    blobs
        .put_all(vec![
            source.clone(),
            parts[0].clone(),
            parts[1].clone(),
            parts[2].clone(),
        ])
        .await
        .unwrap();
    blobs.put(parts[2].bytes().to_vec()).await.unwrap();
    assert_eq!(
        blobs
            .delete(&names(&[&source, &parts[0], &parts[2]]))
            .await
            .unwrap(),
        3
    );
    for gone in [&source, &parts[0], &parts[2]] {
        assert_eq!(read(gone).await, None, "{gone:?}");
    }
    assert_eq!(read(&parts[1]).await.as_deref(), Some(parts[1].bytes()));
    assert_eq!(
        blobs
            .delete(&names(&[&source, &parts[0], &parts[2]]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(read(&parts[1]).await.as_deref(), Some(parts[1].bytes()));
}

/// A part stored while its source is being deleted (another node's message bringing in the same
/// attachment as an erased one's) reads back afterwards, with its bytes: stored before the
/// delete, it is kept whole by it; after, it is stored whole since its source is gone. Never
/// a part whose source is missing.
pub async fn a_part_stored_while_its_source_is_deleted_reads_back<S: EventStore>(store: S) {
    let blobs = store.blobs();
    for round in 0..20 {
        let label = format!("race-{round}");
        let (source, parts) = message_with_parts(&label, &[attachment(&label, 0, 20_000)]);
        blobs.put(source.bytes().to_vec()).await.unwrap();
        let barrier = Barrier::new(2);
        let (stored, deleted) = tokio::join!(
            async {
                barrier.wait().await;
                blobs.put_all(vec![parts[0].clone()]).await
            },
            async {
                barrier.wait().await;
                blobs.delete(&[source.sha256().to_owned()]).await
            },
        );
        stored.unwrap();
        assert_eq!(deleted.unwrap(), 1);
        assert_eq!(blobs.get(source.sha256()).await.unwrap(), None);
        assert_eq!(
            blobs.get(parts[0].sha256()).await.unwrap().as_deref(),
            Some(parts[0].bytes()),
            "round {round}"
        );
    }
}

/// Sealed secrets come back by name, byte for byte; storing under a name replaces its value;
/// deleting says whether there was one; names do not share values.
pub async fn secrets_are_replaced_and_deleted_by_name<S: EventStore>(store: S) {
    let secrets = store.secrets();
    let (a, b) = (
        format!("secret-{}", Uuid::now_v7()),
        format!("secret-{}", Uuid::now_v7()),
    );
    assert_eq!(secrets.get(&a).await.unwrap(), None);
    assert!(!secrets.delete(&a).await.unwrap());
    let sealed: Vec<u8> = (0..=255u8).collect();
    secrets.put(&a, sealed.clone()).await.unwrap();
    secrets.put(&b, b"other".to_vec()).await.unwrap();
    assert_eq!(secrets.get(&a).await.unwrap(), Some(sealed));
    secrets.put(&a, b"replaced".to_vec()).await.unwrap();
    assert_eq!(secrets.get(&a).await.unwrap(), Some(b"replaced".to_vec()));
    assert!(secrets.delete(&a).await.unwrap());
    assert_eq!(secrets.get(&a).await.unwrap(), None);
    assert_eq!(secrets.get(&b).await.unwrap(), Some(b"other".to_vec()));
    // Many at once, in the order asked, absent ones included.
    assert_eq!(
        secrets
            .get_many(&[b.clone(), a.clone(), b.clone()])
            .await
            .unwrap(),
        [Some(b"other".to_vec()), None, Some(b"other".to_vec())]
    );
    assert_eq!(
        secrets.get_many(&[]).await.unwrap(),
        Vec::<Option<Vec<u8>>>::new()
    );

    // Sealed through a vault, a value opens again with the same key only.
    let key = crate::secret::MasterKey::generate();
    let vault = crate::secret::Vault::new(secrets.clone(), &key);
    let value = crate::secret::SecretValue::new("imap-pässword");
    let id = vault.put(&value).await.unwrap();
    assert_eq!(vault.get(id).await.unwrap(), Some(value));
    let stranger = crate::secret::Vault::new(secrets, &crate::secret::MasterKey::generate());
    assert!(matches!(
        stranger.get(id).await,
        Err(StoreError::Unsealable { .. })
    ));
}

/// `put_if_absent` stores the first value under a name and returns it to every later caller,
/// racing ones included, until the name is deleted.
pub async fn secrets_put_if_absent_keep_the_first_value<S: EventStore>(store: S) {
    let secrets = store.secrets();
    let name = format!("subject-{}", Uuid::now_v7());
    assert_eq!(
        secrets
            .put_if_absent(&name, b"first".to_vec())
            .await
            .unwrap(),
        b"first"
    );
    assert_eq!(
        secrets
            .put_if_absent(&name, b"second".to_vec())
            .await
            .unwrap(),
        b"first"
    );
    assert!(secrets.delete(&name).await.unwrap());
    assert_eq!(secrets.get(&name).await.unwrap(), None);

    let raced = format!("subject-{}", Uuid::now_v7());
    let tries = (0..8u8).map(|i| {
        let secrets = secrets.clone();
        let raced = raced.clone();
        tokio::spawn(async move { secrets.put_if_absent(&raced, vec![i]).await.unwrap() })
    });
    let answers: Vec<Vec<u8>> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let stored = secrets.get(&raced).await.unwrap().unwrap();
    assert!(
        answers.iter().all(|answer| *answer == stored),
        "racing writers were told different values: {answers:?}, stored {stored:?}"
    );
}

/// A claim whose attempt (owner) and correlation id are both `id`.
fn claim_by(id: Uuid, fingerprint: &str, at: chrono::DateTime<chrono::Utc>) -> KeyUse {
    KeyUse {
        fingerprint: Some(fingerprint.to_owned()),
        correlation_id: id,
        owner: id,
        used_at: at,
        salt: 0,
        state: KeyState::Pending,
    }
}

fn outcome(stream: &str, version: u64, first: u64, last: u64) -> KeyOutcome {
    KeyOutcome {
        stream: stream.to_owned(),
        stream_version: version,
        first_position: Position(first),
        last_position: Position(last),
    }
}

/// Of many requests claiming one key at once, exactly one wins; the others see its claim.
pub async fn index_claims_one_of_racing_requests<S: EventStore + Clone + 'static>(store: S) {
    let index = store.write_index();
    let now = chrono::Utc::now();
    let since = now - chrono::Duration::hours(24);
    for round in 0..20 {
        let key = format!("race-{round}-{}", Uuid::now_v7());
        let barrier = Arc::new(Barrier::new(8));
        let claims = (0..8).map(|_| {
            let (index, key, barrier) = (index.clone(), key.clone(), barrier.clone());
            tokio::spawn(async move {
                let claim = claim_by(Uuid::now_v7(), "f", now);
                barrier.wait().await;
                index.claim("scope", &key, &claim, since).await.unwrap()
            })
        });
        let mut won = 0;
        for claim in futures::future::join_all(claims).await {
            match claim.unwrap() {
                Claim::Won { salt, .. } => {
                    assert_eq!(salt, 0);
                    won += 1;
                }
                Claim::Held(held) => assert_eq!(held.state, KeyState::Pending),
            }
        }
        assert_eq!(won, 1, "round {round}: one claim wins");
    }
}

/// A claim is held while pending and while its use binds; freed, the key is claimed again with
/// the same salt (nothing keyed was written), expired with a higher one; only the owner finishes
/// it; an abandoned claim stays pending but stale; a take-over keeps the use's correlation id.
pub async fn index_key_lifecycle<S: EventStore>(store: S) {
    let index = store.write_index();
    let now = chrono::Utc::now();
    let key = format!("life-{}", Uuid::now_v7());
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let won = |salt, correlation_id| Claim::Won {
        salt,
        correlation_id,
    };
    let claim = |scope: &'static str, by: Uuid, fingerprint: &'static str, at| {
        let index = index.clone();
        let key = key.clone();
        async move {
            index
                .claim(
                    scope,
                    &key,
                    &claim_by(by, fingerprint, at),
                    at - chrono::Duration::hours(24),
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(claim("a", first, "f", now).await, won(0, first));
    // The owner claiming again (a retry of the same call) keeps it.
    assert_eq!(claim("a", first, "f", now).await, won(0, first));
    // Keys are per scope.
    assert_eq!(claim("b", second, "f", now).await, won(0, second));
    let Claim::Held(held) = claim("a", second, "g", now).await else {
        panic!("a pending claim holds the key");
    };
    assert_eq!(
        (held.owner, held.fingerprint.as_deref()),
        (first, Some("f"))
    );

    // Someone else's finish changes nothing; the owner's frees it, and the next use keeps the
    // salt.
    index.finish("a", &key, second, Finish::Free).await.unwrap();
    assert_eq!(
        index.key("a", &key).await.unwrap().unwrap().state,
        KeyState::Pending
    );
    index.finish("a", &key, first, Finish::Free).await.unwrap();
    assert_eq!(
        index.key("a", &key).await.unwrap().unwrap().state,
        KeyState::Free
    );
    assert_eq!(claim("a", second, "g", now).await, won(0, second));
    let done = outcome("s-1", 3, 10, 12);
    index
        .finish("a", &key, second, Finish::Done(done.clone()))
        .await
        .unwrap();
    let Claim::Held(held) = claim("a", first, "g", now).await else {
        panic!("a binding use holds the key");
    };
    assert_eq!((held.state, held.salt), (KeyState::Done(done), 0));
    // Once it expired, the key is won again with the next salt.
    let later = now + chrono::Duration::hours(25);
    let third = Uuid::now_v7();
    assert_eq!(claim("a", third, "h", later).await, won(1, third));
    // Abandoned (unknown whether it wrote): still pending, and stale at once.
    index
        .finish("a", &key, third, Finish::Abandoned)
        .await
        .unwrap();
    let row = index.key("a", &key).await.unwrap().unwrap();
    assert_eq!(row.state, KeyState::Pending);
    assert!(row.used_at < now, "{row:?}");
    // A pending claim is handed over only from its current owner, keeping its use's
    // correlation id and salt.
    let fourth = Uuid::now_v7();
    assert!(
        !index
            .take_over("a", &key, first, &claim_by(fourth, "h", later))
            .await
            .unwrap()
    );
    assert!(
        index
            .take_over("a", &key, third, &claim_by(fourth, "h", later))
            .await
            .unwrap()
    );
    let row = index.key("a", &key).await.unwrap().unwrap();
    assert_eq!(
        (row.owner, row.correlation_id, row.salt, row.state),
        (fourth, third, 1, KeyState::Pending)
    );
}

/// Logged key uses fill the index (extending one use's span over its appends, a later use
/// replacing an earlier one), never overwrite a pending claim, and folding twice changes nothing.
pub async fn index_folds_the_log_idempotently<S: EventStore>(store: S) {
    let index = store.write_index();
    let now = chrono::Utc::now();
    let (one, two, three) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let key = format!("fold-{}", Uuid::now_v7());
    let logged = |correlation_id, key: &str, o: KeyOutcome| LoggedKey {
        scope: "a".to_owned(),
        key: key.to_owned(),
        fingerprint: Some("f".to_owned()),
        correlation_id,
        used_at: now,
        outcome: o,
    };
    let batch = IndexBatch {
        keys: vec![
            logged(one, &key, outcome("unique-x", 0, 5, 5)),
            logged(one, &key, outcome("contact-x", 1, 6, 7)),
            logged(one, &key, outcome("contact-x", 2, 8, 8)),
        ],
        threads: Vec::new(),
        links: Vec::new(),
        position: Position(8),
    };
    for _ in 0..2 {
        index.apply(batch.clone()).await.unwrap();
        let row = index.key("a", &key).await.unwrap().unwrap();
        assert_eq!(row.state, KeyState::Done(outcome("contact-x", 2, 6, 8)));
        assert_eq!((row.correlation_id, row.salt), (one, 0));
    }
    assert_eq!(index.position().await.unwrap(), Position(8));
    // A later use of the key (after it expired) replaces the row with a higher salt.
    index
        .apply(IndexBatch {
            keys: vec![logged(two, &key, outcome("contact-x", 3, 20, 20))],
            threads: Vec::new(),
            links: Vec::new(),
            position: Position(20),
        })
        .await
        .unwrap();
    let row = index.key("a", &key).await.unwrap().unwrap();
    assert_eq!((row.correlation_id, row.salt), (two, 1));
    // Folding an older batch again does not go back, nor does the position.
    index.apply(batch).await.unwrap();
    assert_eq!(
        index.key("a", &key).await.unwrap().unwrap().correlation_id,
        two
    );
    assert_eq!(index.position().await.unwrap(), Position(20));
    // A pending claim is left alone by another use's events, and settled by its own main
    // append (the only one that carries the key), whatever became of its owner.
    let pending = format!("pending-{}", Uuid::now_v7());
    index
        .claim("a", &pending, &claim_by(three, "f", now), now)
        .await
        .unwrap();
    for (correlation, position) in [(Uuid::now_v7(), 30), (three, 31)] {
        index
            .apply(IndexBatch {
                keys: vec![logged(
                    correlation,
                    &pending,
                    outcome("s", position - 30, position, position),
                )],
                threads: Vec::new(),
                links: Vec::new(),
                position: Position(position),
            })
            .await
            .unwrap();
    }
    let row = index.key("a", &pending).await.unwrap().unwrap();
    assert_eq!(
        (row.correlation_id, row.state),
        (three, KeyState::Done(outcome("s", 1, 31, 31)))
    );
}

/// The first conversation of a Message-ID on a channel stays; channels are apart; links follow
/// their additions and removals; a snapshot is replaced only by a later one.
pub async fn index_threads_and_snapshots<S: EventStore>(store: S) {
    let index = store.write_index();
    let (channel, other) = (Uuid::now_v7(), Uuid::now_v7());
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let thread = |channel_id, conversation_id| Thread {
        channel_id,
        message_id: "<a@example.com>".to_owned(),
        conversation_id,
    };
    index
        .apply(IndexBatch {
            keys: Vec::new(),
            threads: vec![thread(channel, first), thread(channel, second)],
            links: Vec::new(),
            position: Position(3),
        })
        .await
        .unwrap();
    index
        .apply(IndexBatch {
            keys: Vec::new(),
            threads: vec![thread(channel, second), thread(other, second)],
            links: Vec::new(),
            position: Position(4),
        })
        .await
        .unwrap();
    let found = |channel_id| {
        let index = index.clone();
        async move {
            index
                .email_thread(channel_id, "<a@example.com>")
                .await
                .unwrap()
        }
    };
    assert_eq!(found(channel).await, Some(first));
    assert_eq!(found(other).await, Some(second));
    assert_eq!(found(Uuid::now_v7()).await, None);

    // Links: who holds an association with whom, as added and removed in log order.
    let (holder, other, third) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let link = |holder, present| Link {
        holder,
        other,
        present,
    };
    index
        .apply(IndexBatch {
            keys: Vec::new(),
            threads: Vec::new(),
            links: vec![link(holder, true), link(third, true), link(third, false)],
            position: Position(5),
        })
        .await
        .unwrap();
    assert_eq!(index.links_to(other).await.unwrap(), vec![holder]);
    assert_eq!(index.links_to(holder).await.unwrap(), Vec::<Uuid>::new());

    assert_eq!(index.snapshot("view").await.unwrap(), None);
    index
        .save_snapshot("view", Position(10), b"ten".to_vec())
        .await
        .unwrap();
    index
        .save_snapshot("view", Position(5), b"five".to_vec())
        .await
        .unwrap();
    assert_eq!(
        index.snapshot("view").await.unwrap(),
        Some((Position(10), b"ten".to_vec()))
    );
    index
        .save_snapshot("view", Position(11), b"eleven".to_vec())
        .await
        .unwrap();
    assert_eq!(
        index.snapshot("view").await.unwrap(),
        Some((Position(11), b"eleven".to_vec()))
    );
}

/// A cursor reads back as last saved, under its own name only, whatever its bytes; snapshots of
/// the same name are apart.
pub async fn index_cursors_are_named_and_replaced<S: EventStore>(store: S) {
    let index = store.write_index();
    let name = format!("imap-{}", Uuid::now_v7());
    assert_eq!(index.cursor(&name).await.unwrap(), None);
    index.save_cursor(&name, b"one".to_vec()).await.unwrap();
    index.save_cursor("other", Vec::new()).await.unwrap();
    assert_eq!(index.cursor(&name).await.unwrap(), Some(b"one".to_vec()));
    assert_eq!(index.cursor("other").await.unwrap(), Some(Vec::new()));

    // Replaced, also by a shorter value; any bytes, also NULs and invalid UTF-8.
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 256) as u8).collect();
    index.save_cursor(&name, bytes.clone()).await.unwrap();
    assert_eq!(index.cursor(&name).await.unwrap(), Some(bytes));
    index.save_cursor(&name, b"\0\xff".to_vec()).await.unwrap();
    assert_eq!(index.cursor(&name).await.unwrap(), Some(b"\0\xff".to_vec()));
    assert_eq!(index.cursor("other").await.unwrap(), Some(Vec::new()));
    assert_eq!(index.cursor(&name.to_uppercase()).await.unwrap(), None);

    // A snapshot of the same name is something else.
    index
        .save_snapshot(&name, Position(1), b"snapshot".to_vec())
        .await
        .unwrap();
    assert_eq!(index.cursor(&name).await.unwrap(), Some(b"\0\xff".to_vec()));
}
