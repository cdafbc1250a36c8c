//! Building a data directory with events, and running the binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use proto_events::event::{InboxCreated, InboxRenamed};
use proto_events::{Actor, DomainEvent, Metadata};
use switchboard_store::{EventStore, ExpectedVersion, NewEvent};
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use uuid::Uuid;

/// How many events [`populate`] writes.
pub(crate) const EVENTS: u64 = 300;

/// Metadata of events written by a test, as the system.
fn metadata() -> Metadata {
    Metadata {
        actor: Actor::System {
            component: "test".into(),
        },
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        occurred_at: chrono::Utc::now(),
        idempotency_key: None,
        command_fingerprint: None,
    }
}

/// `InboxCreated` (`created`) or else `InboxRenamed` to `name`, ready to append.
fn inbox_event(inbox_id: Uuid, created: bool, name: String, metadata: &Metadata) -> NewEvent {
    let event: DomainEvent = if created {
        InboxCreated { inbox_id, name }.into()
    } else {
        InboxRenamed { inbox_id, name }.into()
    };
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event.event_type().into(),
        schema_version: event.schema_version(),
        metadata: metadata.encode(),
        payload: event.encode(),
    }
}

/// Fills `<data_dir>/events` with [`EVENTS`] real domain events: 10 inboxes, each created and
/// then renamed, interleaved so that streams alternate in the log. The store is closed on return.
pub(crate) async fn populate(data_dir: &Path) {
    let store = SqliteStore::open(data_dir.join("events"), SqliteOptions::default()).unwrap();
    let inboxes: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
    let metadata = metadata();
    let per_inbox = EVENTS / 10;
    for round in 0..per_inbox / 3 {
        for inbox_id in &inboxes {
            let events: Vec<NewEvent> = (0..3)
                .map(|i| {
                    let created = round == 0 && i == 0;
                    let name = if created {
                        "Support".to_owned()
                    } else {
                        format!("Support {round}.{i}")
                    };
                    inbox_event(*inbox_id, created, name, &metadata)
                })
                .collect();
            let stream = proto_events::streams::inbox(*inbox_id);
            store
                .append(&stream, ExpectedVersion::Any, events)
                .await
                .unwrap();
        }
    }
    assert_eq!(store.head().await.unwrap().0, EVENTS);
}

/// Appends `count` more events to the store of `data_dir`: a new inbox `Sales`, then renames.
pub(crate) async fn append_inbox(data_dir: &Path, count: u64) {
    let store = SqliteStore::open(data_dir.join("events"), SqliteOptions::default()).unwrap();
    let inbox_id = Uuid::now_v7();
    let metadata = metadata();
    let events = (0..count)
        .map(|i| {
            let name = if i == 0 {
                "Sales".to_owned()
            } else {
                format!("Sales {i}")
            };
            inbox_event(inbox_id, i == 0, name, &metadata)
        })
        .collect();
    store
        .append(
            &proto_events::streams::inbox(inbox_id),
            ExpectedVersion::NoStream,
            events,
        )
        .await
        .unwrap();
}

/// Runs the binary with `args`, feeding it `stdin`.
pub(crate) fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        // A command that refuses early stops reading: a broken pipe here is its answer, which
        // the caller asserts on.
        let _ = input.write_all(bytes);
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Standard output and error as text, for assertions and failure messages.
pub(crate) fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whether swaks can run (see [`tool_available`]).
pub(crate) fn swaks_available() -> bool {
    tool_available("swaks", "--version", "swaks", "sending mail with swaks")
}

/// Whether `program` runs (`program version_arg` succeeds). Without it a test's part that needs
/// it (`purpose`) is skipped, loudly, unless `SWITCHBOARD_REQUIRE_TOOLS=1` (as `.ci/run` sets,
/// after installing the Debian `package`) makes that a failure.
pub(crate) fn tool_available(
    program: &str,
    version_arg: &str,
    package: &str,
    purpose: &str,
) -> bool {
    let found = Command::new(program)
        .arg(version_arg)
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var("SWITCHBOARD_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{program} is required (SWITCHBOARD_REQUIRE_TOOLS=1) but cannot run: \
             apt-get install {package}"
        );
        eprintln!("SKIPPED: {purpose} (Debian package `{package}`), not installed");
    }
    found
}
