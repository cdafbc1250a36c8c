//! Signed anchors: `audit keygen`, `audit anchor`, `audit verify --anchors`, against a history
//! rewritten directly in SQLite with every hash recomputed, and checked with OpenSSL.

use std::path::Path;
use std::process::{Command, Stdio};

use switchboard_store::{EventStore, Position};
use switchboard_store_sqlite::SqliteStore;
use tempfile::TempDir;

use crate::support::{EVENTS, append_inbox, populate, run, text, tool_available};

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Rewrites the payload of the event at `position` and recomputes the hash of it and of every
/// event after it, directly in the database: what someone with write access to it can do.
async fn rewrite_and_recompute(data_dir: &Path, position: u64) {
    let store = SqliteStore::open_read_only(data_dir.join("events")).unwrap();
    let mut events = Vec::new();
    let mut after = Position(position - 1);
    loop {
        let page = store.read_all(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        events.extend(page);
    }
    let mut previous = store
        .read_all(Position(position - 2), 1)
        .await
        .unwrap()
        .remove(0)
        .hash;
    drop(store);
    let conn = rusqlite::Connection::open(data_dir.join("events").join("events.sqlite3")).unwrap();
    conn.execute_batch("DROP TRIGGER events_are_immutable")
        .unwrap();
    for (i, mut event) in events.into_iter().enumerate() {
        if i == 0 {
            let forged = String::from_utf8(event.payload.clone())
                .unwrap()
                .replace("\"name\":\"", "\"name\":\"Forged ");
            assert_ne!(forged.as_bytes(), event.payload, "nothing to rewrite");
            event.payload = forged.into_bytes();
        }
        let hash = event.canonical().hash(&previous);
        conn.execute(
            "UPDATE events SET payload = ?1, hash = ?2 WHERE position = ?3",
            rusqlite::params![event.payload, hash, event.position.0 as i64],
        )
        .unwrap();
        previous = hash;
    }
}

fn keygen(dir: &Path) -> (std::path::PathBuf, String) {
    let key = dir.join("anchor-key.pem");
    let out = run(&["audit", "keygen", "--out", arg(&key)], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let public = stdout
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .to_owned();
    (key, public)
}

fn anchor(data_dir: &Path, key: &Path, anchors: &Path) -> (Option<i32>, String) {
    let out = run(
        &[
            "audit",
            "anchor",
            "--data-dir",
            arg(data_dir),
            "--signing-key",
            arg(key),
            "--anchors",
            arg(anchors),
        ],
        None,
    );
    let (stdout, stderr) = text(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

fn verify(data_dir: &Path, anchors: Option<(&Path, &str)>) -> (Option<i32>, String) {
    let mut args = vec!["audit", "verify", "--data-dir", arg(data_dir)];
    if let Some((file, key)) = anchors {
        args.extend(["--anchors", arg(file), "--public-key", key]);
    }
    let out = run(&args, None);
    let (stdout, stderr) = text(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// Three anchors at positions 300, 350 and 400.
async fn anchored() -> (TempDir, std::path::PathBuf, std::path::PathBuf, String) {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    populate(&data).await;
    let (key, public) = keygen(dir.path());
    let anchors = dir.path().join("anchors.ndjson");
    for round in 0..3 {
        if round > 0 {
            append_inbox(&data, 50).await;
        }
        let (code, out) = anchor(&data, &key, &anchors);
        assert_eq!(code, Some(0), "{out}");
    }
    (dir, data, anchors, public)
}

#[tokio::test]
async fn a_recomputed_chain_passes_plain_verify_and_fails_at_the_first_anchor_after_the_rewrite() {
    let (_dir, data, anchors, public) = anchored().await;
    let lines = std::fs::read_to_string(&anchors).unwrap();
    let positions: Vec<u64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["position"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, [EVENTS, EVENTS + 50, EVENTS + 100]);
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("3 anchor(s) hold"), "{out}");

    // The first event after the first anchor.
    rewrite_and_recompute(&data, EVENTS + 1).await;

    let (code, out) = verify(&data, None);
    assert_eq!(
        code,
        Some(0),
        "plain verify cannot see a recomputed chain: {out}"
    );
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("the anchor on line 2 (position {}", EVENTS + 50)),
        "{out}"
    );
    assert!(out.contains("does not hold"), "{out}");
    assert!(
        out.contains(&format!(
            "the anchor before it, at position {EVENTS}, holds"
        )),
        "{out}"
    );

    // Nor does anchoring vouch for the rewritten log: nothing is signed or appended.
    let before = std::fs::read_to_string(&anchors).unwrap();
    append_inbox(&data, 5).await;
    let key = anchors.parent().unwrap().join("anchor-key.pem");
    let (code, out) = anchor(&data, &key, &anchors);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no longer the one it signed"), "{out}");
    assert_eq!(std::fs::read_to_string(&anchors).unwrap(), before);
}

#[tokio::test]
async fn a_rewrite_before_the_first_anchor_fails_at_the_first_anchor() {
    let (_dir, data, anchors, public) = anchored().await;
    rewrite_and_recompute(&data, 2).await;
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("the anchor on line 1 (position {EVENTS}")),
        "{out}"
    );
}

#[tokio::test]
async fn removed_events_and_altered_anchors_are_named() {
    let (_dir, data, anchors, public) = anchored().await;
    // Dropping the tail leaves a chain that verifies on its own.
    let conn = rusqlite::Connection::open(data.join("events").join("events.sqlite3")).unwrap();
    conn.execute_batch("DROP TRIGGER events_are_permanent")
        .unwrap();
    conn.execute("DELETE FROM events WHERE position > ?1", [EVENTS + 60])
        .unwrap();
    drop(conn);
    let (code, out) = verify(&data, None);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("the anchor on line 3 (position {}", EVENTS + 100)),
        "{out}"
    );
    assert!(out.contains("events were removed"), "{out}");

    // An anchor edited to match: its signature gives it away.
    let text = std::fs::read_to_string(&anchors).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[2]["position"] = serde_json::json!(EVENTS + 60);
    let edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&anchors, edited.join("\n")).unwrap();
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("line 3"), "{out}");
    assert!(out.contains("signature does not verify"), "{out}");

    // Another key has no anchor there: nothing vouches for the log.
    let other = TempDir::new().unwrap();
    let (_, other_public) = keygen(other.path());
    std::fs::write(&anchors, &text).unwrap();
    let (code, out) = verify(&data, Some((&anchors, &other_public)));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("no anchor signed by this key (3 of other keys)"),
        "{out}"
    );
}

#[tokio::test]
async fn anchors_removed_from_the_file_or_junk_in_it_fail_verification() {
    let (_dir, data, anchors, public) = anchored().await;
    let text = std::fs::read_to_string(&anchors).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for kept in [
        vec![lines[0], lines[2]],
        vec![lines[1], lines[2]],
        vec![lines[1], lines[0], lines[2]],
    ] {
        std::fs::write(&anchors, format!("{}\n", kept.join("\n"))).unwrap();
        let (code, out) = verify(&data, Some((&anchors, &public)));
        assert_eq!(code, Some(1), "{kept:?}: {out}");
        assert!(
            out.contains("does not follow the anchor before it"),
            "{out}"
        );
    }
    // Removing the last ones cannot be seen from the file: that is what copies elsewhere are for.
    std::fs::write(&anchors, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(0), "{out}");

    std::fs::write(
        &anchors,
        format!("{}\nnot an anchor\n{}\n", lines[0], lines[1]),
    )
    .unwrap();
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("line 2 of the anchors file is not an anchor"),
        "{out}"
    );
}

#[tokio::test]
async fn an_unfinished_last_line_is_cut_off_by_the_next_anchor() {
    let (dir, data, anchors, public) = anchored().await;
    let key = dir.path().join("anchor-key.pem");
    let mut text = std::fs::read_to_string(&anchors).unwrap();
    text.push_str("{\"position\":4");
    std::fs::write(&anchors, &text).unwrap();
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("unfinished line"), "{out}");
    append_inbox(&data, 5).await;
    let (code, out) = anchor(&data, &key, &anchors);
    assert_eq!(code, Some(0), "{out}");
    let text = std::fs::read_to_string(&anchors).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.ends_with("}\n"), "{text}");
    assert!(!text.contains("{\"position\":4{"), "{text}");
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("4 anchor(s) hold"), "{out}");
}

#[tokio::test]
async fn anchoring_refuses_a_log_changed_at_the_last_anchor() {
    let (dir, data, anchors, _) = anchored().await;
    let key = dir.path().join("anchor-key.pem");
    // The last anchored event itself, rewritten with its hash recomputed.
    rewrite_and_recompute(&data, EVENTS + 100).await;
    let before = std::fs::read_to_string(&anchors).unwrap();
    let (code, out) = anchor(&data, &key, &anchors);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no longer the one it signed"), "{out}");
    append_inbox(&data, 5).await;
    let (code, out) = anchor(&data, &key, &anchors);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(std::fs::read_to_string(&anchors).unwrap(), before);
}

#[tokio::test]
async fn anchoring_an_unmoved_head_signs_nothing_and_bad_keys_are_refused() {
    let (dir, data, anchors, _) = anchored().await;
    let key = dir.path().join("anchor-key.pem");
    let (code, out) = anchor(&data, &key, &anchors);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("nothing to sign"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&anchors).unwrap().lines().count(),
        3
    );

    let (code, out) = verify(&data, Some((&anchors, "00ff")));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--public-key"), "{out}");
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    let (code, out) = anchor(&data, &not_a_key, &anchors);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("PKCS#8"), "{out}");
    let out = run(&["audit", "keygen", "--out", arg(&key)], None);
    assert_eq!(out.status.code(), Some(2), "keygen overwrote a key");
    std::fs::write(&anchors, "{\"position\": 1}\n").unwrap();
    let (code, out) = anchor(&data, &key, &anchors);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("line 1"), "{out}");
}

/// Whether OpenSSL can run (see [`tool_available`]).
fn openssl_available() -> bool {
    tool_available(
        "openssl",
        "version",
        "openssl",
        "checking anchors with OpenSSL",
    )
}

fn openssl(args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An anchor signed with a key OpenSSL made is verified by OpenSSL from the signed message alone,
/// and by `audit verify` with OpenSSL's public key file.
#[tokio::test]
async fn openssl_keys_sign_anchors_that_openssl_verifies() {
    if !openssl_available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    populate(&data).await;
    let key = dir.path().join("key.pem");
    let public = dir.path().join("public.pem");
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", arg(&key)]);
    openssl(&["pkey", "-in", arg(&key), "-pubout", "-out", arg(&public)]);
    let anchors = dir.path().join("anchors.ndjson");
    let (code, out) = anchor(&data, &key, &anchors);
    assert_eq!(code, Some(0), "{out}");
    let message = out
        .lines()
        .find_map(|l| l.strip_prefix("signed message: "))
        .unwrap();
    assert!(
        message.contains(&format!("position={EVENTS} ")),
        "{message}"
    );
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&anchors).unwrap().trim()).unwrap();
    let signature = hex::decode(line["signature"].as_str().unwrap()).unwrap();
    let message_file = dir.path().join("message");
    let signature_file = dir.path().join("signature");
    std::fs::write(&message_file, message).unwrap();
    std::fs::write(&signature_file, &signature).unwrap();
    let verified = openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        arg(&public),
        "-rawin",
        "-in",
        arg(&message_file),
        "-sigfile",
        arg(&signature_file),
    ]);
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains("Signature Verified Successfully"),
        "{verified:?}"
    );
    // A message changed by one digit does not verify.
    std::fs::write(&message_file, message.replace("position=", "position=1")).unwrap();
    let refused = Command::new("openssl")
        .args([
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            arg(&public),
            "-rawin",
        ])
        .args(["-in", arg(&message_file), "-sigfile", arg(&signature_file)])
        .output()
        .unwrap();
    assert!(!refused.status.success());

    let (code, out) = verify(&data, Some((&anchors, arg(&public))));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 anchor(s) hold"), "{out}");
}

/// `serve` with a signing key configured signs the head as it starts (and, had it moved, again at
/// every interval and as it stops).
#[tokio::test]
async fn the_server_anchors_the_chain_it_serves() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    populate(&data).await;
    let (key, public) = keygen(dir.path());
    let anchors = dir.path().join("anchors.ndjson");
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "[audit]\nanchor_signing_key = {:?}\nanchors_file = {:?}\nanchor_interval = \"1h\"\n",
            arg(&key),
            arg(&anchors)
        ),
    )
    .unwrap();
    let server = crate::server::Server::start(&data, &["--config", arg(&config)]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&anchors).map_or(true, |t| t.is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no anchor within 60 s of the start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(server.terminate(), Some(0));
    let text = std::fs::read_to_string(&anchors).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(first["position"].as_u64().unwrap() >= EVENTS, "{text}");
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains(" 0 anchor"), "{out}");
}

#[tokio::test]
async fn signers_sharing_one_file_keep_its_anchors_in_one_chain() {
    let (dir, data, anchors, public) = anchored().await;
    let key = dir.path().join("anchor-key.pem");
    for _ in 0..3 {
        append_inbox(&data, 3).await;
        let signers: Vec<_> = (0..4)
            .map(|_| {
                let (data, key, anchors) = (data.clone(), key.clone(), anchors.clone());
                std::thread::spawn(move || anchor(&data, &key, &anchors))
            })
            .collect();
        for signer in signers {
            let (code, out) = signer.join().unwrap();
            assert_eq!(code, Some(0), "{out}");
        }
    }
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("6 anchor(s) hold"), "{out}");
}

#[tokio::test]
async fn anchoring_refuses_to_follow_an_altered_or_unreadable_last_anchor() {
    let (dir, data, anchors, _) = anchored().await;
    let key = dir.path().join("anchor-key.pem");
    append_inbox(&data, 5).await;
    let text = std::fs::read_to_string(&anchors).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let signature = lines[2]["signature"].as_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        if signature.starts_with('0') { "1" } else { "0" },
        &signature[1..]
    );
    lines[2]["signature"] = serde_json::json!(flipped);
    let altered: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&anchors, &altered).unwrap();
    let (code, out) = anchor(&data, &key, &anchors);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("anchors file was changed"), "{out}");
    assert!(out.contains("line 3"), "{out}");
    assert_eq!(std::fs::read_to_string(&anchors).unwrap(), altered);

    // A whole last line of another shape, without its newline, is not an interrupted append:
    // it is kept, and refused.
    let other = format!("{}{{\"position\":1,\"from_the_future\":true}}", text);
    std::fs::write(&anchors, &other).unwrap();
    let (code, out) = anchor(&data, &key, &anchors);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("line 4"), "{out}");
    assert_eq!(std::fs::read_to_string(&anchors).unwrap(), other);
}
