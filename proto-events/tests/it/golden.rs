//! Golden fixtures: one stored payload per event type and schema version, kept forever.
//!
//! `tests/golden/<EventType>.v<N>.json` holds a payload as a release wrote it, and
//! `tests/golden/metadata/<actor kind>.json` a metadata blob. History is never rewritten, so every
//! fixture must keep decoding (old versions through the upcasters), and the current versions must
//! re-encode to the same JSON.
//!
//! Fixtures for new event types are written from `samples.rs` by
//! `SWITCHBOARD_BLESS=1 cargo test -p proto-events golden`, which only creates missing files and
//! never overwrites one. Review and commit them; after that they are frozen.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use proto_events::{Actor, DomainEvent, Metadata};
use serde_json::Value;

use crate::samples::{metadata_samples, samples};

pub(crate) fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

pub(crate) fn fixture_path(event_type: &str, version: u32) -> PathBuf {
    golden_dir().join(format!("{event_type}.v{version}.json"))
}

fn blessing() -> bool {
    std::env::var_os("SWITCHBOARD_BLESS").is_some_and(|value| value == "1")
}

/// Writes `value` to `path` unless the file exists: fixtures are never overwritten.
fn bless(path: &Path, value: &impl serde::Serialize) {
    let mut json = serde_json::to_string_pretty(value).unwrap();
    json.push('\n');
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(json.as_bytes()).unwrap();
            eprintln!("blessed {}", path.display());
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => panic!("writing {}: {error}", path.display()),
    }
}

fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The event fixtures present, as (type, version, path).
fn event_fixtures() -> Vec<(String, u32, PathBuf)> {
    let mut fixtures = Vec::new();
    for entry in fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (event_type, version) = name
            .strip_suffix(".json")
            .and_then(|stem| stem.rsplit_once(".v"))
            .and_then(|(event_type, version)| Some((event_type, version.parse().ok()?)))
            .unwrap_or_else(|| panic!("{name}: not named <EventType>.v<N>.json"));
        fixtures.push((event_type.to_owned(), version, path));
    }
    fixtures.sort();
    fixtures
}

#[test]
fn every_type_has_a_fixture_for_every_version() {
    if blessing() {
        for sample in samples() {
            bless(
                &fixture_path(sample.event_type(), sample.schema_version()),
                &sample,
            );
        }
        for (kind, metadata) in metadata_samples() {
            bless(
                &golden_dir().join(format!("metadata/{kind}.json")),
                &metadata,
            );
        }
    }
    let missing: Vec<String> = DomainEvent::TYPES
        .iter()
        .flat_map(|&(event_type, current)| (1..=current).map(move |v| (event_type, v)))
        .map(|(event_type, version)| fixture_path(event_type, version))
        .filter(|path| !path.exists())
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "missing golden fixtures (for a new type's current version, run \
         `SWITCHBOARD_BLESS=1 cargo test -p proto-events golden` and commit the result; an old \
         version's fixture must be restored from history):\n{}",
        missing.join("\n"),
    );
}

#[test]
fn every_fixture_decodes_and_current_ones_round_trip() {
    let fixtures = event_fixtures();
    assert!(!fixtures.is_empty());
    for (event_type, version, path) in fixtures {
        let bytes = fs::read(&path).unwrap();
        let event = DomainEvent::decode(&event_type, version, &bytes)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert_eq!(event.event_type(), event_type, "{}", path.display());
        if Some(version) == DomainEvent::current_version(&event_type) {
            let reencoded: Value = serde_json::from_slice(&event.encode()).unwrap();
            assert_eq!(
                reencoded,
                read_json(&path),
                "{} does not round-trip",
                path.display()
            );
        }
    }
}

#[test]
fn metadata_fixtures_decode_round_trip_and_cover_every_actor_kind() {
    // Exhaustive on purpose: a new actor kind does not compile until it is listed here, and then
    // fails until it has a fixture.
    fn kind(actor: &Actor) -> &'static str {
        match actor {
            Actor::User { .. } => "user",
            Actor::Contact { .. } => "contact",
            Actor::Bot { .. } => "bot",
            Actor::System { .. } => "system",
            Actor::Channel { .. } => "channel",
        }
    }
    for (expected_kind, sample) in metadata_samples() {
        assert_eq!(kind(&sample.actor), expected_kind);
        let path = golden_dir().join(format!("metadata/{expected_kind}.json"));
        let bytes = fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let metadata: Metadata = serde_json::from_slice(&bytes)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert_eq!(kind(&metadata.actor), expected_kind);
        let reencoded: Value = serde_json::from_slice(&metadata.encode()).unwrap();
        assert_eq!(
            reencoded,
            read_json(&path),
            "{} does not round-trip",
            path.display()
        );
    }
}
