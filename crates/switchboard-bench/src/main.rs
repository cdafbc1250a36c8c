//! `switchboard-bench`: Switchboard's benchmarks, one suite per subcommand.
//!
//! Every suite measures a workload and, in the same run and on the same machine, a baseline that
//! does the same work with the least machinery possible, so that the number that matters is the
//! ratio between the two rather than an absolute figure from one particular disk. Results go to
//! stdout as one JSON object per line ([`report::Report`]) and nothing else; progress goes to
//! stderr. This file only dispatches: each suite parses its own options.
//!
//! # Layout
//! - [`args`]: the small hand-written argument parser the suites share.
//! - [`report`]: the JSON line every workload prints.
//! - [`store`]: the event store suite (`store`): appends and reads of the embedded SQLite store.

mod args;
mod report;
mod store;

use std::process::ExitCode;

use crate::args::{Args, UsageError};

const USAGE: &str = "\
usage: switchboard-bench <suite> [options]

suites:
  store    appends and reads of the embedded SQLite event store

store options:
  --quick            small sizes that finish in under a minute
  --events N         events per append workload (default 200000 concurrent, 1000000 batched)
  --writers N        concurrent writers of append_concurrent (default 64)
  --batch N          events per append of append_batched (default 1000)
  --page N           events per read_all call (default 4096)
  --only WORKLOAD    run one of append_concurrent, append_batched, read_all

Results are printed to stdout as one JSON object per line; progress goes to stderr.";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let suite = args.next();
    let args = Args::new(args);
    let outcome = match suite.as_deref() {
        Some("store") => store::Options::parse(args).map(store::run),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(UsageError(format!("unknown suite `{other}`"))),
        None => Err(UsageError("missing the suite to run".to_owned())),
    };
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
        Err(UsageError(message)) => {
            eprintln!("error: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
