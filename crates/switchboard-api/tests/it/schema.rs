//! The committed SDL (`crates/switchboard-api/schema.graphql`) is the schema: frontends generate
//! types from it and review its diffs. This test fails when the code's schema drifts from it;
//! `SWITCHBOARD_BLESS=1 cargo test -p switchboard-api schema` rewrites it after an intended
//! change.

use std::path::PathBuf;

#[test]
fn the_committed_sdl_matches_the_schema() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let sdl = switchboard_api::sdl();
    if std::env::var_os("SWITCHBOARD_BLESS").is_some() {
        std::fs::write(&path, &sdl).expect("write schema.graphql");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "the schema differs from {}: review the change, then run \
         `SWITCHBOARD_BLESS=1 cargo test -p switchboard-api schema` and commit the file",
        path.display()
    );
}

/// The description of `type_name.field` (a field, or an enum value) in `sdl`.
fn description<'s>(sdl: &'s str, type_name: &str, field: &str) -> &'s str {
    let body = sdl
        .split_once(&format!("type {type_name} {{"))
        .or_else(|| sdl.split_once(&format!("enum {type_name} {{")))
        .map_or("", |(_, rest)| {
            rest.split_once("\n}").map_or(rest, |(b, _)| b)
        });
    let closing = format!("\"\"\"\n\t{field}");
    let end = body
        .match_indices(&closing)
        .map(|(at, _)| at)
        .find(|at| body[at + closing.len()..].starts_with([':', '(', '\n']))
        .unwrap_or_else(|| panic!("{type_name}.{field} has a description"));
    let before = &body[..end];
    before
        .rfind("\"\"\"")
        .map_or("", |start| &before[start + 3..])
}

/// PRODUCT.md: a wait that began while a bot held the conversation starts at the handoff, for
/// response time and the live "waiting longest" figure alike (the read model measures so).
#[test]
fn response_time_docs_say_a_wait_under_a_bot_starts_at_the_handoff() {
    let sdl = switchboard_api::sdl();
    for (type_name, field) in [
        ("Analytics", "responseTime"),
        ("Metric", "RESPONSE"),
        ("InboxLive", "waitingLongestSince"),
    ] {
        let docs = description(&sdl, type_name, field);
        assert!(
            docs.contains("handoff"),
            "{type_name}.{field} says when a wait under a bot starts: {docs:?}"
        );
    }
}
