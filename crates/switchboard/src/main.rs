//! The `switchboard` binary: store maintenance and read-model rebuilds from the command line.
//!
//! This file only parses the command line, dispatches to one module per command and turns the
//! outcome into an exit code; the work lives in the modules.
//!
//! Exit codes: `0` success, `1` the hash chain does not verify (`audit verify`), `2` the request
//! was refused (bad arguments, a missing data directory, a non-empty store for `import`, a
//! malformed input line), `3` anything else failed (I/O, the store, a projector).
//!
//! # Layout
//! - `support`: the data directory's layout, opening the store, and [`support::Refused`].
//! - `audit`: `switchboard audit verify`.
//! - `export`: `switchboard export`, events as NDJSON.
//! - `import`: `switchboard import`, NDJSON into an empty store.
//! - `line`: the NDJSON shape `export` writes and `import` reads.
//! - `projections`: `switchboard projections rebuild`.

mod audit;
mod export;
mod import;
mod line;
mod projections;
mod support;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::support::Refused;

/// Switchboard: an event-sourced shared inbox.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the event log's integrity.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write events as NDJSON, one object per line.
    Export(export::ExportArgs),
    /// Append NDJSON events (as written by `export`) to an empty store.
    ///
    /// Event ids, streams, stream versions and order are preserved, so positions match the
    /// source when the export started at position 0. The new store assigns `recorded_at` (the
    /// time of the import) and therefore every `hash` afresh; both are ignored in the input. The
    /// whole input is validated before anything is written.
    Import(import::ImportArgs),
    /// Manage the read models.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain of every event; exit 1 at the first event that does not verify.
    Verify(DataDirArg),
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Rebuild every read model from the start of the log.
    Rebuild(DataDirArg),
}

/// The `--data-dir` flag every command shares.
#[derive(Debug, Args)]
struct DataDirArg {
    /// The data directory: events in `<DIR>/events`, read models in `<DIR>/read-models`.
    #[arg(long, value_name = "DIR", default_value = support::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Audit(AuditCommand::Verify(args)) => audit::verify(&args.data_dir).await,
        Command::Export(args) => export::run(args).await,
        Command::Import(args) => import::run(args).await,
        Command::Projections(ProjectionsCommand::Rebuild(args)) => {
            projections::rebuild(&args.data_dir).await
        }
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<Refused>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(3)
            }
        }
    }
}
