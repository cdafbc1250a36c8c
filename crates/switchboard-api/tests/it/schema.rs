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
