//! `switchboard export`: events in global order as NDJSON, on stdout or into a file, with progress
//! on stderr.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use switchboard_store::Position;

use crate::config::ConfigArgs;
use crate::line::ExportedLine;
use crate::progress::Progress;
use crate::support::{self, StoreUse, refuse};

/// Events read from the store per call.
const PAGE: usize = 4096;

/// `switchboard export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Export events after this position (exclusive); 0 is the start of the log.
    #[arg(long, value_name = "POS", default_value_t = 0)]
    from: u64,
    /// Export events up to this position (inclusive); the default is the head when the export
    /// starts.
    #[arg(long, value_name = "POS")]
    to: Option<u64>,
    /// Where to write the NDJSON; `-` (the default) is stdout.
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    out: String,
}

/// Writes every event with a position in `(from, to]`, one JSON object per line: `event_id`,
/// `stream`, `stream_version`, `position`, `event_type`, `schema_version`, `recorded_at`
/// (RFC 3339), `metadata` and `payload` (as stored), `hash` (hex).
pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let config = support::load_config(&args.config)?;
    let store = support::configured_store(&config, StoreUse::ReadAsStored).await?;
    // What an erased person wrote while sealing was off is redacted (sealed fields stay sealed).
    let keyring = support::keyring(&config, store.as_ref())?;
    let head = store.head().await.context("reading the store's head")?;
    let to = args.to.unwrap_or(head.0);
    if args.from > to {
        refuse!("--from {} is after --to {to}", args.from);
    }
    let (mut out, target): (BufWriter<Box<dyn Write>>, String) = if args.out == "-" {
        (
            BufWriter::new(Box::new(std::io::stdout().lock())),
            "stdout".into(),
        )
    } else {
        let file = File::create(&args.out).with_context(|| format!("creating {}", args.out))?;
        (BufWriter::new(Box::new(file)), args.out.clone())
    };
    let mut after = Position(args.from);
    let mut count = 0u64;
    let mut progress = Progress::new("export", "events", to - args.from);
    while after.0 < to {
        let limit = usize::try_from(to - after.0)
            .unwrap_or(usize::MAX)
            .min(PAGE);
        let page = store
            .read_all(after, limit)
            .await
            .with_context(|| format!("reading events after position {after}"))?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for mut event in page.into_iter().filter(|e| e.position.0 <= to) {
            let redacted = keyring
                .redact_erased(&mut event)
                .await
                .with_context(|| format!("reading the event at position {}", event.position))?;
            let line = if redacted {
                ExportedLine::redacted(&event)
            } else {
                ExportedLine::new(&event)
            }
            .map_err(|reason| anyhow::anyhow!("event at position {}: {reason}", event.position))?;
            serde_json::to_writer(&mut out, &line)
                .and_then(|()| out.write_all(b"\n").map_err(serde_json::Error::io))
                .with_context(|| format!("writing to {target}"))?;
            count += 1;
        }
        progress.set(after.0.min(to) - args.from, &format!("(position {after})"));
    }
    progress.finish();
    out.flush()
        .with_context(|| format!("writing to {target}"))?;
    eprintln!(
        "exported {count} events, positions {}..={to}, to {target}",
        args.from + 1
    );
    Ok(ExitCode::SUCCESS)
}
