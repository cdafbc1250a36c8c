//! Several nodes on one schema: two stores connected to the same tables, as two API processes
//! would be. Their appends must share one dense order in commit order, expectations must hold
//! across them, and a subscriber on one must see the other's events exactly once, in order, even
//! when its notifications are lost.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use switchboard_store::chain::{self, Verification};
use switchboard_store::conformance::event;
use switchboard_store::{
    Direction, EventStore, EventStream, ExpectedVersion, NewEvent, Position, RecordedEvent,
    StoreError, StreamFrom,
};
use switchboard_store_postgres::PostgresStore;
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::pg::{self, DEADLINE, TestSchema};

fn batch(label: &str, n: usize) -> Vec<NewEvent> {
    (0..n).map(|i| event(&format!("{label}-{i}"))).collect()
}

/// Takes `n` events from a subscription, failing after the deadline.
async fn take(subscription: &mut EventStream, n: usize) -> Vec<RecordedEvent> {
    let mut seen = Vec::with_capacity(n);
    tokio::time::timeout(DEADLINE, async {
        while seen.len() < n {
            let event = subscription
                .next()
                .await
                .expect("subscription ended")
                .expect("subscription failed");
            seen.push(event);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the subscriber saw only {} of {n} events in time",
            seen.len()
        )
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_one_dense_order_and_a_subscriber_sees_both() {
    const TASKS: usize = 6;
    const APPENDS: usize = 25;
    let Some(url) = pg::server().await else {
        return;
    };
    let schema = TestSchema::new(&url);
    // Both nodes migrate the fresh schema at once.
    let (a, b) = tokio::join!(schema.connect(|_| {}), schema.connect(|_| {}));
    let mut subscription = a.subscribe_all(Position::START);

    let mut writers = Vec::new();
    for (node, store) in [("a", a.clone()), ("b", b.clone())] {
        for task in 0..TASKS {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                // Half the tasks write a stream of their own with exact expectations, half share
                // one stream across both nodes.
                let own = format!("{node}-{task}");
                let mut acknowledged = Vec::new();
                let mut version = None;
                for i in 0..APPENDS {
                    let events = batch(&format!("{node}-{task}-{i}"), 1 + i % 3);
                    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                    let r = if task % 2 == 0 {
                        let expected =
                            version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                        let r = store.append(&own, expected, events).await.unwrap();
                        version = Some(r.stream_version);
                        r
                    } else {
                        store
                            .append("shared", ExpectedVersion::Any, events)
                            .await
                            .unwrap()
                    };
                    assert_eq!(r.last_position.0 - r.first_position.0 + 1, ids.len() as u64);
                    for (k, id) in ids.into_iter().enumerate() {
                        acknowledged.push((node, id, Position(r.first_position.0 + k as u64)));
                    }
                }
                acknowledged
            }));
        }
    }
    // Which node wrote each event, and where it said the event is.
    let mut written: HashMap<Uuid, (&str, Position)> = HashMap::new();
    for writer in writers {
        for (node, id, position) in writer.await.unwrap() {
            assert!(written.insert(id, (node, position)).is_none());
        }
    }
    let total = written.len();
    let positions: HashSet<Position> = written.values().map(|(_, p)| *p).collect();
    assert_eq!(
        positions.len(),
        total,
        "two appends were given one position"
    );

    let seen = take(&mut subscription, total).await;
    let mut from_b = 0;
    for (i, event) in seen.iter().enumerate() {
        assert_eq!(
            event.position,
            Position(i as u64 + 1),
            "positions have a hole or are out of order"
        );
        let (node, acknowledged) = written
            .get(&event.event_id)
            .expect("the subscriber saw an event nobody wrote");
        assert_eq!(
            event.position, *acknowledged,
            "an event moved after its ack"
        );
        if *node == "b" {
            from_b += 1;
        }
    }
    let distinct: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(distinct.len(), total, "an event was delivered twice");
    assert_eq!(
        from_b,
        written.values().filter(|(n, _)| *n == "b").count(),
        "node a's subscriber missed some of node b's events"
    );
    let extra = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
    assert!(
        extra.is_err(),
        "the subscription delivered more than was written"
    );

    // Both nodes see the same log; the shared stream has every version once.
    assert_eq!(a.head().await.unwrap(), Position(total as u64));
    assert_eq!(b.head().await.unwrap(), Position(total as u64));
    let shared = b
        .read_stream("shared", Direction::Forwards, StreamFrom::Start, 10_000)
        .await
        .unwrap();
    let versions: Vec<u64> = shared.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (0..shared.len() as u64).collect::<Vec<_>>());
    assert!(shared.windows(2).all(|w| w[0].position < w[1].position));
    assert!(
        shared
            .windows(2)
            .all(|w| w[0].recorded_at <= w[1].recorded_at),
        "commit times go backwards"
    );
    match chain::verify(&b).await.unwrap() {
        Verification::Intact { events, .. } => assert_eq!(events, total as u64),
        broken => panic!("the chain written by two nodes does not verify: {broken:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_nodes_on_one_stream_have_one_winner_per_version() {
    const TASKS_PER_NODE: usize = 8;
    const ROUNDS: u64 = 8;
    let Some(url) = pg::server().await else {
        return;
    };
    let schema = TestSchema::new(&url);
    let a = schema.connect(|_| {}).await;
    let b = schema.connect(|_| {}).await;
    a.append("race", ExpectedVersion::NoStream, vec![event("seed")])
        .await
        .unwrap();
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(2 * TASKS_PER_NODE));
        let mut tasks = Vec::new();
        for store in [&a, &b] {
            for task in 0..TASKS_PER_NODE {
                let (store, barrier) = (store.clone(), barrier.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .append(
                            "race",
                            ExpectedVersion::Exact(round),
                            vec![event(&format!("{round}-{task}"))],
                        )
                        .await
                }));
            }
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
    assert_eq!(a.stream_version("race").await.unwrap(), Some(ROUNDS));
    assert_eq!(b.head().await.unwrap(), Position(ROUNDS + 1));
}

/// Waits until `application_name` has exactly one session and returns its pid.
async fn session_of(admin: &tokio_postgres::Client, application_name: &str) -> i32 {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let rows = admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                &[&application_name],
            )
            .await
            .unwrap();
        if let [row] = rows.as_slice() {
            return row.get(0);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no session named {application_name} appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_survives_losing_its_listener_connection() {
    let Some(url) = pg::server().await else {
        return;
    };
    let schema = TestSchema::new(&url);
    let name = format!("node_a_{}", Uuid::now_v7().simple());
    let listener = format!("{name}-listener");
    // A poll slower than the test's deadline: only the listener's reconnection can deliver the
    // events written while it was gone.
    let a: PostgresStore = schema
        .connect(|o| {
            o.url = pg::with_application_name(&o.url, &name);
            o.head_poll_interval = Duration::from_secs(3600);
        })
        .await;
    let b = schema.connect(|_| {}).await;
    let admin = pg::raw(&url).await.unwrap();
    let first_pid = session_of(&admin, &listener).await;

    let mut subscription = a.subscribe_all(Position::START);
    b.append("lost", ExpectedVersion::NoStream, batch("before", 5))
        .await
        .unwrap();
    assert_eq!(
        take(&mut subscription, 5).await.last().unwrap().position,
        Position(5)
    );

    let terminated: bool = admin
        .query_one("SELECT pg_terminate_backend($1, 5000)", &[&first_pid])
        .await
        .unwrap()
        .get(0);
    assert!(terminated);
    // Written while node a's listener is gone: these notifications are lost to it.
    b.append("lost", ExpectedVersion::Exact(4), batch("during", 5))
        .await
        .unwrap();
    let seen = take(&mut subscription, 5).await;
    let positions: Vec<u64> = seen.iter().map(|e| e.position.0).collect();
    assert_eq!(positions, (6..=10).collect::<Vec<_>>());
    let second_pid = session_of(&admin, &listener).await;
    assert_ne!(first_pid, second_pid, "the listener did not reconnect");

    // And it listens again: a later append arrives too.
    b.append("lost", ExpectedVersion::Exact(9), batch("after", 1))
        .await
        .unwrap();
    assert_eq!(take(&mut subscription, 1).await[0].position, Position(11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_transactions() {
    const TASKS: usize = 32;
    const APPENDS: usize = 10;
    let Some(url) = pg::server().await else {
        return;
    };
    let schema = TestSchema::new(&url);
    let store = schema.connect(|_| {}).await;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..APPENDS {
                store
                    .append(
                        &format!("group-{task}"),
                        ExpectedVersion::Any,
                        vec![event(&i.to_string())],
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Every transaction stamps its events with one commit time, so distinct times count them.
    let admin = pg::raw(&url).await.unwrap();
    let transactions: i64 = admin
        .query_one(
            &format!(
                "SELECT count(DISTINCT recorded_at) FROM {}",
                schema.table("events")
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!("{} appends in {transactions} transactions", TASKS * APPENDS);
    assert!(
        transactions < (TASKS * APPENDS / 2) as i64,
        "{transactions} transactions for {} appends: no group commit",
        TASKS * APPENDS
    );
}

/// A cursor saved through one node is read by another, and by a node started after the first
/// one stopped: it lives in the schema, not in a process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cursors_are_shared_and_survive_restarts() {
    let Some(url) = pg::server().await else {
        return;
    };
    let schema = TestSchema::new(&url);
    let (a, b) = tokio::join!(schema.connect(|_| {}), schema.connect(|_| {}));
    a.write_index()
        .save_cursor("imap-a", b"from a".to_vec())
        .await
        .unwrap();
    assert_eq!(
        b.write_index().cursor("imap-a").await.unwrap(),
        Some(b"from a".to_vec())
    );
    drop((a, b));
    let c = schema.connect(|_| {}).await;
    assert_eq!(
        c.write_index().cursor("imap-a").await.unwrap(),
        Some(b"from a".to_vec())
    );
}

/// Waits until `lease` is held, failing after the deadline.
async fn until_held(lease: &mut switchboard_store::Lease, who: &str) {
    tokio::time::timeout(DEADLINE, lease.held.wait_for(|held| *held))
        .await
        .unwrap_or_else(|_| panic!("{who} never got the lease"))
        .expect("the keeper runs");
}

/// A singleton task's lease is one node's at a time: the other gets it when the holder gives
/// it up (or its session ends), and a lease of another name is independent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_is_held_by_one_node_at_a_time_and_passes_on() {
    let Some(url) = pg::server().await else {
        return;
    };
    let schema = TestSchema::new(&url);
    let (a, b) = tokio::join!(schema.connect(|_| {}), schema.connect(|_| {}));
    let mut first = a.lease("delivery");
    until_held(&mut first, "the first node").await;
    let mut second = b.lease("delivery");
    let mut other = b.lease("imap");
    until_held(&mut other, "the second node, for another name").await;
    // Whenever the second node's keeper tried, the delivery lease was the first node's.
    assert!(!second.is_held(), "two nodes hold one lease");
    assert!(first.is_held());
    drop(first);
    until_held(&mut second, "the second node, after the first gave up").await;
}

/// A schema a newer version migrated is refused with a message that says so, not used without
/// what that version stores.
#[tokio::test]
async fn a_schema_of_a_newer_version_is_refused() {
    let Some(url) = pg::server().await else {
        return;
    };
    let schema = TestSchema::new(&url);
    drop(schema.connect(|_| {}).await);
    let admin = pg::raw(&url).await.unwrap();
    admin
        .execute(
            &format!(
                "INSERT INTO {} (version) VALUES (99)",
                schema.table("migrations")
            ),
            &[],
        )
        .await
        .unwrap();
    let refused = switchboard_store_postgres::PostgresStore::connect(schema.options())
        .await
        .expect_err("refused");
    assert!(
        matches!(
            refused,
            switchboard_store_postgres::ConnectError::NewerSchema { version: 99, .. }
        ),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("newer Switchboard"),
        "{refused}"
    );
}
