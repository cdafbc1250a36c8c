//! Executing commands: stamping, rejections, conflicts, retries and idempotency.

use std::sync::Arc;

use chrono::TimeDelta;
use proto_events::{Actor, DomainEvent, streams};
use switchboard_domain::DomainError;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::{Command, CommandMeta, CommandService, ServiceError, codec};
use switchboard_store::{Direction, EventStore, Position, StreamFrom};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use uuid::Uuid;

use crate::support::*;

fn create_inbox(id: u128, name: &str) -> Command {
    Command::Setup(SetupCommand::CreateInbox {
        inbox_id: Uuid::from_u128(id),
        name: name.into(),
    })
}

/// A command waiting for its append to be durable does not hold back the next one: catching
/// the view up over events that change no directory (the usual case: messages, replies) does
/// not wait for the commands in flight, which hold the view until their appends return.
#[tokio::test]
async fn a_command_waiting_for_its_append_does_not_hold_back_the_next() {
    let app = app().await;
    let store = Arc::new(Instrumented::new(app.store.clone()));
    let service = Arc::new(
        CommandService::open(store.clone(), app.clock.clone())
            .await
            .unwrap(),
    );
    let (held, release) = store.hold_next_append_to(&streams::inbox(Uuid::from_u128(41)));
    let first = tokio::spawn({
        let service = service.clone();
        async move {
            service
                .execute(CommandMeta::by(admin()), create_inbox(41, "Held"))
                .await
        }
    });
    held.await.unwrap();
    // Another writer's event moves the head past the view.
    let comment = DomainEvent::CommentAdded(proto_events::event::CommentAdded {
        conversation_id: Uuid::from_u128(7),
        inbox_id: Uuid::from_u128(7),
        comment_id: Uuid::now_v7(),
        author_user_id: ADMIN,
        body_text: "elsewhere".into(),
        mentions: Vec::new(),
    });
    let metadata = proto_events::Metadata {
        actor: admin(),
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        occurred_at: chrono::Utc::now(),
        idempotency_key: None,
        command_fingerprint: None,
    };
    app.store
        .append(
            "conversation-elsewhere",
            switchboard_store::ExpectedVersion::Any,
            vec![codec::encode(&comment, &metadata)],
        )
        .await
        .unwrap();
    let company = Uuid::now_v7();
    let second = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        service.execute(
            CommandMeta::by(admin()),
            Command::CreateCompany {
                company_id: company,
                name: "Globex".into(),
                domain: None,
            },
        ),
    )
    .await
    .expect("the second command waited for the first one's append")
    .unwrap();
    assert_eq!(second.written, 1);
    assert!(!first.is_finished(), "the first append is still held");
    release.send(()).unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.stream, streams::inbox(Uuid::from_u128(41)));
    let view = service.view().await.unwrap();
    assert!(view.directory.inboxes.contains_key(&Uuid::from_u128(41)));
    assert!(view.position() >= first.last_position);
}

#[tokio::test]
async fn events_carry_actor_correlation_causation_time_and_key() {
    let app = app().await;
    app.clock.advance(TimeDelta::minutes(5));
    let correlation = Uuid::now_v7();
    let cause = Uuid::now_v7();
    let meta = CommandMeta {
        actor: admin(),
        correlation_id: Some(correlation),
        causation_id: Some(cause),
        idempotency_key: Some("create-support".into()),
        fingerprint: None,
        expected_version: None,
    };
    let outcome = app
        .service
        .execute(meta, create_inbox(30, "Support"))
        .await
        .unwrap();
    assert_eq!(outcome.stream, streams::inbox(Uuid::from_u128(30)));
    assert_eq!((outcome.stream_version, outcome.replayed), (0, false));
    let stored = app
        .store
        .read_all(Position(outcome.first_position.0 - 1), 1)
        .await
        .unwrap()
        .remove(0);
    let envelope = codec::decode(&stored).unwrap();
    assert_eq!(envelope.metadata.actor, admin());
    assert_eq!(envelope.metadata.correlation_id, correlation);
    assert_eq!(envelope.metadata.causation_id, cause);
    assert_eq!(
        envelope.metadata.occurred_at,
        proto_events::clock::Clock::now(app.clock.as_ref())
    );
    assert_eq!(
        envelope.metadata.idempotency_key.as_deref(),
        Some("create-support")
    );
    assert!(matches!(envelope.payload, DomainEvent::InboxCreated(ref e) if e.name == "Support"));
}

#[tokio::test]
async fn a_rejected_command_writes_nothing() {
    let app = app().await;
    let head = app.store.head().await.unwrap();
    let agent_tries = app
        .service
        .execute(
            CommandMeta::by(Actor::User {
                id: Uuid::from_u128(404),
            }),
            create_inbox(30, "Support"),
        )
        .await;
    assert!(
        matches!(
            agent_tries,
            Err(ServiceError::Domain(DomainError::Forbidden { .. }))
        ),
        "{agent_tries:?}"
    );
    let invalid = app
        .service
        .execute(CommandMeta::by(admin()), create_inbox(30, " "))
        .await;
    assert!(matches!(
        invalid,
        Err(ServiceError::Domain(DomainError::Invalid { ref field, .. })) if field == "name"
    ));
    assert_eq!(app.store.head().await.unwrap(), head);
}

#[tokio::test]
async fn a_client_expected_version_that_moved_is_a_conflict() {
    let app = app().await;
    app.service
        .execute(CommandMeta::by(admin()), create_inbox(30, "Support"))
        .await
        .unwrap();
    let rename = |name: &str| {
        Command::Setup(SetupCommand::RenameInbox {
            inbox_id: Uuid::from_u128(30),
            name: name.into(),
        })
    };
    let meta = CommandMeta {
        expected_version: Some(0),
        ..CommandMeta::by(admin())
    };
    let first = app
        .service
        .execute(meta.clone(), rename("Help"))
        .await
        .unwrap();
    assert_eq!(first.stream_version, 1);
    match app.service.execute(meta, rename("Helpdesk")).await {
        Err(ServiceError::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (Some(0), Some(1))),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let versions = app
        .store
        .read_stream(&first.stream, Direction::Forwards, StreamFrom::Start, 10)
        .await
        .unwrap();
    assert_eq!(versions.len(), 2, "the conflicting command wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_on_one_stream_are_retried_until_all_land() {
    let app = Arc::new(app().await);
    app.service
        .execute(CommandMeta::by(admin()), create_inbox(30, "Support"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let rename = SetupCommand::RenameInbox {
                inbox_id: Uuid::from_u128(30),
                name: format!("Support {i}"),
            };
            app.service
                .execute(CommandMeta::by(admin()), Command::Setup(rename))
                .await
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().unwrap().stream_version);
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=10).collect::<Vec<_>>(),
        "every rename landed at its own version"
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_result_even_after_a_restart() {
    let app = app().await;
    let meta = CommandMeta {
        idempotency_key: Some("mutation-42".into()),
        fingerprint: None,
        ..CommandMeta::by(admin())
    };
    let first = app
        .service
        .execute(meta.clone(), create_inbox(30, "Support"))
        .await
        .unwrap();
    let head = app.store.head().await.unwrap();
    // The same command again would be rejected (the inbox exists); with its key it is a replay.
    let again = app
        .service
        .execute(meta.clone(), create_inbox(30, "Support"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.stream.as_str(), again.last_position),
        (first.stream.as_str(), first.last_position)
    );
    // Another actor's identical key is another command.
    let other = CommandMeta {
        idempotency_key: Some("mutation-42".into()),
        fingerprint: None,
        ..CommandMeta::by(system())
    };
    let theirs = app
        .service
        .execute(other, create_inbox(31, "Sales"))
        .await
        .unwrap();
    assert!(!theirs.replayed);
    assert!(
        theirs.first_position > head,
        "the other actor's command was written"
    );
    let head = app.store.head().await.unwrap();

    let App {
        dir,
        clock,
        service,
        store,
    } = app;
    drop(service);
    drop(store);
    let app = service_on(dir, clock).await;
    let after_restart = app
        .service
        .execute(meta, create_inbox(30, "Support"))
        .await
        .unwrap();
    assert!(after_restart.replayed);
    assert_eq!(after_restart.last_position, first.last_position);
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "nothing new was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_reads_only_the_events_after_the_last_snapshot() {
    let app = app().await;
    // A long history of events the write view only looks at for their keys.
    let metadata = proto_events::Metadata {
        actor: system(),
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        occurred_at: proto_events::clock::Clock::now(app.clock.as_ref()),
        idempotency_key: None,
        command_fingerprint: None,
    };
    for batch in 0..25 {
        let events = (0..1000)
            .map(|n| {
                let comment = DomainEvent::CommentAdded(proto_events::event::CommentAdded {
                    conversation_id: Uuid::from_u128(batch),
                    inbox_id: Uuid::from_u128(batch),
                    comment_id: Uuid::now_v7(),
                    author_user_id: ADMIN,
                    body_text: format!("note {n}"),
                    mentions: Vec::new(),
                });
                codec::encode(&comment, &metadata)
            })
            .collect();
        app.store
            .append(
                &format!("conversation-{batch}"),
                switchboard_store::ExpectedVersion::Any,
                events,
            )
            .await
            .unwrap();
    }
    // Folding them snapshots the view (after at least 20,000 events, wherever the follower's
    // pages ended); an inbox made after the snapshot is not in it.
    drop(app.service.view().await.unwrap());
    let (snapshot_at, _) = app
        .store
        .write_index()
        .snapshot("write-view")
        .await
        .unwrap()
        .expect("a snapshot after 25,000 events");
    assert!(snapshot_at.0 >= 20_000, "{snapshot_at:?}");
    app.service
        .execute(CommandMeta::by(admin()), create_inbox(40, "After"))
        .await
        .unwrap();
    let expected = app.service.view().await.unwrap().directory.clone();
    let head = app.store.head().await.unwrap();
    let App {
        dir,
        clock,
        service,
        store,
    } = app;
    drop(service);
    drop(store);

    let reopen = |dir: &std::path::Path| {
        let store = SqliteStore::open(dir, SqliteOptions::default()).unwrap();
        Arc::new(Instrumented::new(store))
    };
    let store = reopen(dir.path());
    let service = Arc::new(
        CommandService::open(store.clone(), clock.clone())
            .await
            .unwrap(),
    );
    let read = store.events_read.load(std::sync::atomic::Ordering::SeqCst);
    let after_snapshot = head.0 - snapshot_at.0;
    assert!(
        read <= after_snapshot,
        "a start after the snapshot read {read} events, {after_snapshot} came after it"
    );
    assert_eq!(service.view().await.unwrap().directory, expected);
    assert_eq!(service.view().await.unwrap().position(), head);
    // Routing and the bot reactor fold the log once and snapshot their states; started again,
    // they read from there.
    for run in 0..4 {
        // The write view's follower subscribes too (from the head): only this run's
        // subscriptions count, and the reactor's is the one that is not at the head.
        let before = store.subscribed_after.lock().unwrap().len();
        let (mut processed, task) = if run < 2 {
            let reactor = switchboard_service::reactor::RoutingReactor::spawn(service.clone());
            (reactor.processed, reactor.task)
        } else {
            let reactor = switchboard_service::bot::BotReactor::spawn(service.clone());
            (reactor.processed, reactor.task)
        };
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            processed.wait_for(|processed| *processed >= head),
        )
        .await
        .expect("the reactor caught up")
        .unwrap();
        task.abort();
        let started: Vec<Position> = store.subscribed_after.lock().unwrap()[before..].to_vec();
        if run % 2 == 0 {
            assert!(started.contains(&Position::START), "{started:?}");
        } else {
            assert!(
                !started.is_empty() && started.iter().all(|at| at.0 >= 20_000),
                "reactor {run} restarted after {started:?}"
            );
        }
    }
    drop(service);
    drop(store);

    // Without the index the whole log is folded, to the same directory.
    for file in [
        "write-index.sqlite3",
        "write-index.sqlite3-wal",
        "write-index.sqlite3-shm",
    ] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let store = reopen(dir.path());
    let service = CommandService::open(store.clone(), clock).await.unwrap();
    assert_eq!(
        store.events_read.load(std::sync::atomic::Ordering::SeqCst),
        head.0
    );
    assert_eq!(service.view().await.unwrap().directory, expected);
}

#[tokio::test]
async fn a_deactivated_user_can_do_nothing_and_a_reactivated_one_again() {
    let app = app().await;
    let other = Uuid::from_u128(12);
    run(
        &app,
        system(),
        Command::Setup(SetupCommand::CreateUser {
            user_id: other,
            email: "other@acme.test".into(),
            name: "Other Admin".into(),
            role: proto_events::event::Role::Admin,
        }),
    )
    .await;
    run(
        &app,
        admin(),
        Command::Setup(SetupCommand::DeactivateUser { user_id: other }),
    )
    .await;
    let head = app.store.head().await.unwrap();
    let refused = app
        .service
        .execute(
            CommandMeta::by(Actor::User { id: other }),
            create_inbox(31, "Sales"),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::Domain(DomainError::Forbidden { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(app.store.head().await.unwrap(), head, "nothing written");
    run(
        &app,
        admin(),
        Command::Setup(SetupCommand::ReactivateUser { user_id: other }),
    )
    .await;
    run(&app, Actor::User { id: other }, create_inbox(31, "Sales")).await;
}

#[tokio::test]
async fn a_use_whose_owner_stopped_after_its_main_append_is_answered_from_the_log() {
    // A request claimed its key and appended its main stream, then stopped before recording
    // the outcome (a crash, or a lost write to the index): the key is still pending.
    let app = app().await;
    let key = "create-bea";
    let correlation = Uuid::now_v7();
    let index = app.store.write_index();
    let claim = switchboard_store::index::KeyUse {
        fingerprint: None,
        correlation_id: correlation,
        owner: Uuid::now_v7(),
        used_at: proto_events::clock::Clock::now(app.clock.as_ref()),
        salt: 0,
        state: switchboard_store::index::KeyState::Pending,
    };
    let scope = serde_json::to_string(&admin()).unwrap();
    index
        .claim(&scope, key, &claim, claim.used_at)
        .await
        .unwrap();
    let metadata = proto_events::Metadata {
        actor: admin(),
        correlation_id: correlation,
        causation_id: correlation,
        occurred_at: claim.used_at,
        idempotency_key: Some(key.to_owned()),
        command_fingerprint: None,
    };
    let bea = Uuid::from_u128(30);
    let created = DomainEvent::UserCreated(proto_events::event::UserCreated {
        user_id: bea,
        email: "bea@acme.test".into(),
        name: "Bea".into(),
        role: proto_events::event::Role::Agent,
        availability: proto_events::event::Availability::Available,
    });
    let written = app
        .store
        .append(
            &streams::user(bea),
            switchboard_store::ExpectedVersion::NoStream,
            vec![codec::encode(&created, &metadata)],
        )
        .await
        .unwrap();
    let head = app.store.head().await.unwrap();

    // The same request again is that use's repeat, at once: not a second run (which would be
    // refused, the user existing) nor a wait for the claim to go stale.
    let meta = CommandMeta {
        idempotency_key: Some(key.into()),
        ..CommandMeta::by(admin())
    };
    let again = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.service.execute(
            meta,
            Command::Setup(SetupCommand::CreateUser {
                user_id: bea,
                email: "bea@acme.test".into(),
                name: "Bea".into(),
                role: proto_events::event::Role::Agent,
            }),
        ),
    )
    .await
    .expect("answered without waiting for the claim to go stale")
    .unwrap();
    assert!(again.replayed, "{again:?}");
    assert_eq!(again.last_position, written.last_position);
    assert_eq!(app.store.head().await.unwrap(), head, "nothing written");
}

/// The write view follows the log in the background: what another node (here, another service
/// on the same store) commits reaches it without a command catching up, and a subscription that
/// fails (a lost connection) is taken up again from where the view stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_view_follows_the_log_and_resubscribes_after_an_error() {
    let app = app().await;
    let store = Arc::new(Instrumented::new(app.store.clone()));
    store
        .fail_next_subscription
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let other = CommandService::open(store.clone(), app.clock.clone())
        .await
        .unwrap();
    app.service
        .execute(CommandMeta::by(admin()), create_inbox(41, "Followed"))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let known = other
            .view_as_is()
            .await
            .directory
            .inboxes
            .contains_key(&Uuid::from_u128(41));
        if known {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other service's view never learnt of the inbox"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let subscriptions = store.subscribed_after.lock().unwrap().len();
    assert_eq!(
        subscriptions, 2,
        "the failed subscription was taken up again once"
    );
}
