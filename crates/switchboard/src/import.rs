//! `switchboard import`: NDJSON written by `export` into an empty store.
//!
//! The whole input is read and validated first (its hash chain verifies from the genesis hash,
//! so an export edited on the way in is refused naming the first position that does not verify,
//! unless `--rechain --reason --by` says to chain it anew; every line parses, positions increase,
//! every stream starts at version 0 and has no gaps, no event id twice, every append within the
//! store's limits); only then is anything written. Events are appended in input order, one
//! append per run of consecutive events of one stream, with the exact expected version, so ids,
//! streams, versions and order are preserved.
//!
//! A verified input is restored ([`EventStore::restore`]): every event keeps its commit time, so
//! it keeps its position and hash, and the copy's head hash is the original's (an auditor's
//! recorded head hash still checks out). With `--rechain` the store assigns new commit times and
//! hashes, and a [`HistoryRechained`] event, written before the imported ones, records who did
//! it, why, and where the input's chain broke. Should the store fail half-way (a full disk), the error says
//! so: the target then holds a prefix of the input and should be deleted.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use proto_events::event::{BrokenChain, HistoryRechained};
use proto_events::{Actor, DomainEvent, Metadata};
use switchboard_store::error::validate_append;
use switchboard_store::{ExpectedVersion, NewEvent, Origin, Position};
use uuid::Uuid;

use crate::config::ConfigArgs;
use crate::line::ImportedLine;
use crate::progress::Progress;
use crate::support::{self, StoreUse, refuse};

/// Most events in one append.
const MAX_RUN_EVENTS: usize = 1024;

/// `switchboard import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The target: the configured store (PostgreSQL, or `<data-dir>/events`), which must be
    /// empty or absent.
    #[command(flatten)]
    config: ConfigArgs,
    /// The NDJSON to read; `-` is stdin.
    #[arg(long = "in", value_name = "FILE|-")]
    input: String,
    /// Import an input whose hash chain does not verify (an edited export); the target store
    /// chains it anew and records that it did, with `--by` and `--reason`, as a
    /// `HistoryRechained` event before the imported ones.
    #[arg(long, requires_all = ["reason", "by"])]
    rechain: bool,
    /// Why the chain is rebuilt (with `--rechain`): recorded in the history.
    #[arg(long, value_name = "TEXT", requires = "rechain")]
    reason: Option<String>,
    /// Who rebuilds the chain (with `--rechain`), e.g. a name and e-mail address: recorded in the
    /// history.
    #[arg(long, value_name = "WHO", requires = "rechain")]
    by: Option<String>,
}

/// What `read_runs` learnt about the input's chain.
#[derive(Debug, Default)]
struct InputChain {
    /// Where it first failed to verify, if it did.
    broken_at: Option<BrokenChain>,
    /// The hash its last line states, if it states one.
    head_hash: Option<String>,
}

/// Consecutive events of one stream, appended together.
#[derive(Debug)]
struct Run {
    stream: String,
    first_version: u64,
    /// The input line of the first event, for error messages.
    line: usize,
    events: Vec<NewEvent>,
    /// Where each event stood in the input's history; empty when the input is chained anew.
    origins: Vec<Origin>,
    bytes: usize,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let input: Box<dyn Read> = if args.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.input) {
            Ok(file) => Box::new(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                refuse!("input file {} does not exist", args.input)
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", args.input)),
        }
    };

    let config = support::load_config(&args.config)?;
    let store = support::configured_store(&config, StoreUse::Write).await?;
    let head = store.head().await.context("reading the store's head")?;
    if head != Position::START {
        refuse!(
            "the store in {} already holds {} events; import only into an empty store",
            support::describe_store(&config),
            head.0
        );
    }

    let (runs, chain) = read_runs(
        BufReader::new(input),
        &args.input,
        store.max_append_bytes(),
        !args.rechain,
    )?;
    if args.rechain {
        let state = match &chain.broken_at {
            Some(broken) => format!(
                "the input's hash chain breaks at position {}: {}",
                broken.position, broken.reason
            ),
            None => "the input's hash chain verifies".to_owned(),
        };
        eprintln!(
            "warning: {state}; --rechain: the target store chains the events anew and records \
             that it did, by {}, because: {}",
            args.by.as_deref().unwrap_or_default(),
            args.reason.as_deref().unwrap_or_default()
        );
    }
    let total: usize = runs.iter().map(|r| r.events.len()).sum();
    // Recorded first, so that a re-chained store says so even if the import stops half-way.
    let rechained = match (args.rechain, total) {
        (true, 1..) => {
            let event = rechain_record(&args, total, &chain, store.max_append_bytes())?;
            let at = store
                .append(
                    &proto_events::streams::history(),
                    ExpectedVersion::Any,
                    vec![event],
                )
                .await
                .context("recording the re-chained import; nothing was imported")?;
            Some(at.last_position)
        }
        _ => None,
    };
    let mut progress = Progress::new("import", "events", total as u64);
    let mut imported = 0usize;
    let mut first_position = None;
    let mut last_position = Position::START;
    for run in runs {
        let expected = match run.first_version {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v - 1),
        };
        let n = run.events.len();
        let result = if run.origins.is_empty() {
            store.append(&run.stream, expected, run.events).await
        } else {
            let events = run.events.into_iter().zip(run.origins).collect();
            store.restore(&run.stream, expected, events).await
        };
        let result = result.with_context(|| {
            format!(
                "appending the events of line {} onwards to stream {}; {imported} events \
                     were imported before this failure, delete {} before trying again",
                run.line,
                run.stream,
                support::describe_store(&config)
            )
        })?;
        first_position.get_or_insert(result.first_position);
        last_position = result.last_position;
        imported += n;
        progress.set(imported as u64, &format!("(position {last_position})"));
    }
    progress.finish();
    let Some(first) = first_position else {
        eprintln!("the input holds no events; nothing imported");
        return Ok(ExitCode::SUCCESS);
    };
    match rechained {
        Some(at) => eprintln!(
            "imported {imported} events, positions {first}..={last_position}, with new commit \
             times and hashes; recorded as HistoryRechained at position {at}"
        ),
        None => eprintln!(
            "imported {imported} events, positions {first}..={last_position}, with their \
             original commit times and hashes (head hash {})",
            chain.head_hash.as_deref().unwrap_or_default()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The longest `--by` or `--reason`, in bytes.
const MAX_RECORD_TEXT: usize = 2000;

/// The `HistoryRechained` event of this import (of `events` events), by the import itself,
/// checked against the store's limits before anything is written.
fn rechain_record(
    args: &ImportArgs,
    events: usize,
    chain: &InputChain,
    max_append_bytes: usize,
) -> anyhow::Result<NewEvent> {
    let text = |flag: &str, value: &Option<String>| -> anyhow::Result<String> {
        let value = value.as_deref().unwrap_or_default().trim();
        if value.is_empty() {
            refuse!("{flag} must say something: it is recorded in the history");
        }
        if value.len() > MAX_RECORD_TEXT {
            refuse!(
                "{flag} is {} bytes long, the limit is {MAX_RECORD_TEXT}",
                value.len()
            );
        }
        Ok(value.to_owned())
    };
    let recorded = HistoryRechained {
        by: text("--by", &args.by)?,
        reason: text("--reason", &args.reason)?,
        events: events as u64,
        broken_at: chain.broken_at.clone(),
        // What the input claims, kept only if it is a hash at all.
        input_head_hash: chain
            .head_hash
            .as_deref()
            .map(str::to_ascii_lowercase)
            .filter(|h| switchboard_store::blob::is_blob_hash(h)),
    };
    let correlation_id = Uuid::now_v7();
    let metadata = Metadata {
        actor: Actor::System {
            component: "import".to_owned(),
        },
        correlation_id,
        causation_id: correlation_id,
        occurred_at: Utc::now(),
        idempotency_key: None,
        command_fingerprint: None,
    };
    let event = switchboard_codec::encode(&DomainEvent::from(recorded), &metadata);
    if let Err(e) = validate_append(
        &proto_events::streams::history(),
        std::slice::from_ref(&event),
        max_append_bytes,
    ) {
        refuse!("the store would refuse the record of this re-chained import: {e}");
    }
    Ok(event)
}

/// Reads and validates the whole input, grouped into appends. Its hash chain is checked from the
/// genesis hash (the input must be a whole export); with `verify` a break refuses the input and
/// every event carries its origin, to be restored with its hash; without, the first break is
/// only reported.
fn read_runs(
    input: impl BufRead,
    name: &str,
    max_append_bytes: usize,
    verify: bool,
) -> anyhow::Result<(Vec<Run>, InputChain)> {
    let mut chain = Some(switchboard_store::chain::GENESIS);
    let mut input_chain = InputChain::default();
    let mut runs: Vec<Run> = Vec::new();
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut ids = HashSet::new();
    let mut previous_position = 0u64;
    for (index, text) in input.lines().enumerate() {
        let number = index + 1;
        let text = text.with_context(|| format!("reading line {number} of {name}"))?;
        if text.trim().is_empty() {
            continue;
        }
        let line: ImportedLine = match serde_json::from_str(&text) {
            Ok(line) => line,
            Err(e) => refuse!("line {number}: malformed event: {e}"),
        };
        if line.position <= previous_position {
            refuse!(
                "line {number}: position {} does not follow position {previous_position}",
                line.position
            );
        }
        let mut origin = None;
        if let Some(previous) = chain {
            let verified = if line.position != previous_position + 1 {
                Err((
                    previous_position + 1,
                    format!("position {} is missing", previous_position + 1),
                ))
            } else {
                line.origin(&previous).map_err(|why| (line.position, why))
            };
            match verified {
                Ok(o) => {
                    chain = Some(o.hash);
                    origin = Some(o);
                }
                Err((position, why)) if verify && line.redacted => refuse!(
                    "line {number}: position {position} was redacted by the export (an erased \
                     person's data), so the input's hash chain breaks there ({why}); nothing was \
                     imported: import it with --rechain --reason TEXT --by WHO to chain it anew, \
                     recorded in the history"
                ),
                Err((position, why)) if verify => refuse!(
                    "line {number}: the input's hash chain breaks at position {position}: {why}; \
                     nothing was imported (an edited or partial export: import it with \
                     --rechain --reason TEXT --by WHO to chain it anew, recorded in the history)"
                ),
                Err((position, reason)) => {
                    chain = None;
                    input_chain.broken_at = Some(BrokenChain { position, reason });
                }
            }
        }
        input_chain.head_hash = line.hash.clone();
        previous_position = line.position;
        let expected_version = versions.get(&line.stream).map_or(0, |v| v + 1);
        if line.stream_version != expected_version {
            if expected_version == 0 {
                refuse!(
                    "line {number}: stream {} starts at version {}, not 0; only whole streams \
                     can be imported (export from position 0)",
                    line.stream,
                    line.stream_version
                );
            }
            refuse!(
                "line {number}: stream {} jumps from version {} to {}",
                line.stream,
                expected_version - 1,
                line.stream_version
            );
        }
        versions.insert(line.stream.clone(), line.stream_version);
        if !ids.insert(line.event_id) {
            refuse!("line {number}: event id {} appears twice", line.event_id);
        }
        let event = NewEvent {
            event_id: line.event_id,
            event_type: line.event_type,
            schema_version: line.schema_version,
            metadata: line.metadata.get().as_bytes().to_vec(),
            payload: line.payload.get().as_bytes().to_vec(),
        };
        if let Err(e) =
            validate_append(&line.stream, std::slice::from_ref(&event), max_append_bytes)
        {
            refuse!("line {number}: the store would refuse this event: {e}");
        }
        let size = event.size();
        match runs.last_mut() {
            Some(run)
                if run.stream == line.stream
                    && run.events.len() < MAX_RUN_EVENTS
                    && run.bytes + size <= max_append_bytes =>
            {
                run.events.push(event);
                run.origins.extend(origin.filter(|_| verify));
                run.bytes += size;
            }
            _ => runs.push(Run {
                stream: line.stream,
                first_version: line.stream_version,
                line: number,
                events: vec![event],
                origins: origin.filter(|_| verify).into_iter().collect(),
                bytes: size,
            }),
        }
    }
    Ok((runs, input_chain))
}
