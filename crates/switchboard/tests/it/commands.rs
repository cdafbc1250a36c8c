//! Each command against a store of a few hundred events.

use std::path::Path;

use tempfile::TempDir;

use crate::support::{EVENTS, populate, run, text};

fn dir_arg(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

async fn populated() -> TempDir {
    let dir = TempDir::new().unwrap();
    populate(dir.path()).await;
    dir
}

#[tokio::test]
async fn verify_reports_the_count_and_head_hash() {
    let dir = populated().await;
    let out = run(
        &["audit", "verify", "--data-dir", dir_arg(dir.path())],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("{EVENTS} events")), "{stdout}");
    assert!(stdout.contains("head hash "), "{stdout}");
}

#[tokio::test]
async fn verify_names_the_first_tampered_position() {
    let dir = populated().await;
    let db = dir.path().join("events").join("events.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DROP TRIGGER events_are_immutable")
        .unwrap();
    let changed = conn
        .execute(
            "UPDATE events SET payload = CAST('{\"tampered\":true}' AS BLOB) WHERE position = 123",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let out = run(
        &["audit", "verify", "--data-dir", dir_arg(dir.path())],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("position 123"), "{stdout}");
    assert!(stdout.contains("hash mismatch"), "{stdout}");
}

#[test]
fn a_missing_data_dir_is_refused() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nope");
    for args in [
        vec!["audit", "verify"],
        vec!["export"],
        vec!["projections", "rebuild"],
    ] {
        let mut args = args;
        args.extend(["--data-dir", dir_arg(&missing)]);
        let out = run(&args, None);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("does not exist"), "{stderr}");
    }
    assert!(
        !missing.exists(),
        "a reading command created the data directory"
    );
}

#[tokio::test]
async fn export_import_round_trips_every_byte_and_keeps_the_hashes() {
    let source = populated().await;
    let target = TempDir::new().unwrap();
    let first = source.path().join("first.ndjson");
    let out = run(
        &[
            "export",
            "--data-dir",
            dir_arg(source.path()),
            "--out",
            dir_arg(&first),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let first = std::fs::read_to_string(first).unwrap();
    assert_eq!(first.lines().count() as u64, EVENTS);

    // Through stdin this time.
    let out = run(
        &["import", "--data-dir", dir_arg(target.path()), "--in", "-"],
        Some(first.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    let out = run(&["export", "--data-dir", dir_arg(target.path())], None);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let second = String::from_utf8(out.stdout).unwrap();
    // Every byte, commit times and hashes included: an import does not launder history.
    assert_eq!(first, second);

    // So the copy verifies with the original's head hash, which an auditor may have recorded.
    let verify = |dir: &Path| {
        let out = run(&["audit", "verify", "--data-dir", dir_arg(dir)], None);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
        assert!(stdout.contains(&format!("{EVENTS} events")), "{stdout}");
        stdout
    };
    assert_eq!(verify(source.path()), verify(target.path()));
}

#[tokio::test]
async fn export_honours_from_and_to() {
    let dir = populated().await;
    let out = run(
        &[
            "export",
            "--data-dir",
            dir_arg(dir.path()),
            "--from",
            "10",
            "--to",
            "20",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let positions: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["position"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, (11..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn import_into_a_non_empty_store_is_refused() {
    let dir = populated().await;
    let out = run(&["export", "--data-dir", dir_arg(dir.path())], None);
    assert_eq!(out.status.code(), Some(0));
    let out = run(
        &["import", "--data-dir", dir_arg(dir.path()), "--in", "-"],
        Some(&out.stdout),
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("empty store"), "{stderr}");
}

#[tokio::test]
async fn a_malformed_line_is_refused_by_number_and_nothing_is_written() {
    let source = populated().await;
    let out = run(&["export", "--data-dir", dir_arg(source.path())], None);
    assert_eq!(out.status.code(), Some(0));
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines[41] = "{\"event_id\": \"not a uuid\"".into();
    let input = lines.join("\n");

    let target = TempDir::new().unwrap();
    let out = run(
        &["import", "--data-dir", dir_arg(target.path()), "--in", "-"],
        Some(input.as_bytes()),
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 42"), "{stderr}");

    let out = run(
        &["audit", "verify", "--data-dir", dir_arg(target.path())],
        None,
    );
    let (stdout, _) = text(&out);
    assert!(stdout.contains("0 events"), "{stdout}");
}

#[tokio::test]
async fn projections_rebuild_creates_every_read_model() {
    let dir = populated().await;
    let out = run(
        &["projections", "rebuild", "--data-dir", dir_arg(dir.path())],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let files: Vec<String> = std::fs::read_dir(dir.path().join("read-models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for name in [
        "thread_view",
        "contact_sidebar",
        "response_analytics",
        "audit_trail",
    ] {
        assert!(stderr.contains(name), "{stderr}");
        let current = dir
            .path()
            .join("read-models")
            .join(format!("{name}.current"));
        let generation = std::fs::read_to_string(&current).unwrap();
        let file = format!("{name}.{}.sqlite3", generation.trim());
        assert!(files.contains(&file), "{file} missing from {files:?}");
        let conn = rusqlite::Connection::open(dir.path().join("read-models").join(file)).unwrap();
        let checkpoint: i64 = conn
            .query_row("SELECT checkpoint FROM _projection WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(checkpoint as u64, EVENTS, "{name}");
    }
}

#[tokio::test]
async fn import_refuses_an_export_whose_chain_breaks_naming_the_position() {
    let source = populated().await;
    let out = run(&["export", "--data-dir", dir_arg(source.path())], None);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    // One event's payload edited on the way (its JSON still valid), and one event dropped.
    let mut edited = lines.clone();
    let mut line: serde_json::Value = serde_json::from_str(&edited[41]).unwrap();
    line["payload"]["edited"] = serde_json::json!(true);
    edited[41] = line.to_string();
    let mut dropped = lines.clone();
    dropped.remove(9);
    for (input, says, repairable) in [
        (edited, "breaks at position 42", true),
        (
            dropped,
            "breaks at position 10: position 10 is missing",
            false,
        ),
    ] {
        let target = TempDir::new().unwrap();
        let input = input.join("\n");
        let out = run(
            &["import", "--data-dir", dir_arg(target.path()), "--in", "-"],
            Some(input.as_bytes()),
        );
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        let out = run(
            &["audit", "verify", "--data-dir", dir_arg(target.path())],
            None,
        );
        let (stdout, _) = text(&out);
        assert!(stdout.contains("0 events"), "nothing written: {stdout}");

        if !repairable {
            // A stream with a hole stays refused, chain or no chain.
            continue;
        }
        // On purpose, by someone, with a reason, it is imported and chained anew...
        let rechain = [
            "import",
            "--data-dir",
            dir_arg(target.path()),
            "--in",
            "-",
            "--rechain",
            "--reason",
            "restoring a hand-repaired export",
        ];
        let out = run(&rechain, Some(input.as_bytes()));
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--by"), "--by is required: {stderr}");
        let blank = [&rechain[..], &["--by", " "]].concat();
        let (_, stderr) = text(&run(&blank, Some(input.as_bytes())));
        assert!(stderr.contains("--by must say something"), "{stderr}");
        let out = run(
            &[&rechain[..], &["--by", "Ada <ada@acme.test>"]].concat(),
            Some(input.as_bytes()),
        );
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains("restoring a hand-repaired export"),
            "{stderr}"
        );
        // ...and the history says so, before the imported events: who, why, where it broke.
        let out = run(&["export", "--data-dir", dir_arg(target.path())], None);
        let exported: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(exported.len() as u64, EVENTS + 1);
        let record = &exported[0];
        assert_eq!(record["event_type"], "HistoryRechained");
        assert_eq!(record["stream"], "history");
        assert_eq!(record["metadata"]["actor"]["component"], "import");
        let payload = &record["payload"];
        assert_eq!(payload["by"], "Ada <ada@acme.test>");
        assert_eq!(payload["reason"], "restoring a hand-repaired export");
        assert_eq!(payload["events"], EVENTS);
        assert_eq!(payload["broken_at"]["position"], 42);
        let input_head = serde_json::from_str::<serde_json::Value>(lines.last().unwrap()).unwrap()
            ["hash"]
            .clone();
        assert_eq!(payload["input_head_hash"], input_head);
        for verb in [&["audit", "verify"][..], &["projections", "rebuild"]] {
            let out = run(
                &[verb, &["--data-dir", dir_arg(target.path())]].concat(),
                None,
            );
            assert_eq!(out.status.code(), Some(0), "{verb:?}: {:?}", text(&out));
        }
    }
}
