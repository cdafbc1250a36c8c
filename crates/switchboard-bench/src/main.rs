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
//! - [`projections`]: the projection suite (`projections`): rebuilding every read model, and the
//!   lag from append to visible.
//! - [`graphql`]: the GraphQL suite (`graphql`): the API's read throughput and latency on demo
//!   data, against a bare axum handler over the same read model.
//! - [`email`]: the inbound e-mail suite (`email`): messages through the SMTP listener to
//!   durable events, against appending the same bytes raw.
//! - [`chat`]: the website chat suite (`chat`): 1,000 visitors' live sockets to the agents'
//!   subscriptions and back, against the same messages over plain HTTP.
//! - [`startup`]: the start-up suite (`startup`): restart time and memory of the real server on
//!   a million events, against the same restart folding the whole log.

mod args;
mod chat;
mod email;
mod graphql;
mod projections;
mod report;
mod startup;
mod store;

use std::process::ExitCode;

use crate::args::{Args, UsageError};

const USAGE: &str = "\
usage: switchboard-bench <suite> [options]

suites:
  store        appends and reads of the embedded SQLite event store
  projections  rebuild of every read model, and lag from append to visible at 1000 events/s
  graphql      the GraphQL API's reads (a thread, an inbox page) on demo data, against bare axum
  startup      restart time and memory of `switchboard serve` on the projections' history
  email        mail through the SMTP listener to durable events, against raw appends
  chat         1,000 visitors' live chat sockets to agents' subscriptions, against plain HTTP

store options:
  --quick            small sizes that finish in under a minute
  --events N         events per append workload (default 200000 concurrent, 1000000 batched)
  --writers N        concurrent writers of append_concurrent (default 64)
  --batch N          events per append of append_batched (default 1000)
  --page N           events per read_all call (default 4096)
  --only WORKLOAD    run one of append_concurrent, append_concurrent_sealed, append_batched,
                     read_all

projections options:
  --quick            5,000 conversations (~100,000 events) and 3 s of lag, instead of 50,000 and 10 s
  --conversations N  conversations in the generated history (about 20 events each, and a
                     contact created for three in four: the others are returning customers)
  --projector NAMES  run only these projectors, comma-separated (thread_view,audit_trail)
  --rebuild-only     skip the lag workload
  --history DIR      keep the generated history's event store in DIR and reuse it when DIR
                     already holds one (a history of another size or layout is refused); the
                     workloads run on a copy, so DIR keeps the history as written
  --contiguous       write each conversation's events together, one conversation after the
                     other, instead of interleaving all conversations' events by time
  --sealed           also rebuild a copy of the history with personal fields sealed (kept in
                     <history>.sealed with --history), against the rebuild in the clear

graphql options:
  --quick            3 s per workload instead of 10 s
  --seconds N        measured seconds per workload (and per baseline)
  --connections N    concurrent keep-alive connections (default 32)
  --only WORKLOAD    run one of graphql_thread, graphql_inbox_list
  --load GENERATOR   wrk (the default when `wrk` is on PATH) or inprocess
  --threads N        wrk threads (default 1)

startup options:
  --quick            5,000 conversations (~100,000 events) instead of 50,000 (~1,000,000)
  --conversations N  conversations in the history (as for projections)
  --history DIR      keep the history in DIR and reuse it (as for projections)
  --binary PATH      the switchboard binary (default: the one beside this benchmark)

email options:
  --quick            800 messages instead of 4,000
  --messages N       messages delivered (10 KB each, one in five with a 200 KB attachment)
  --clients N        concurrent SMTP clients, one connection each (default 16)
  --sealed           seal personal fields at append, as [privacy] seal_personal_data does

chat options:
  --quick            5 s of load instead of 20 s
  --seconds N        seconds of load (each of the measured run and the baseline)
  --visitors N       visitors, each with its own live socket (default 1000; needs ~2 file
                     descriptors each: check `ulimit -n`)
  --agents N         agents, each with an inboxActivity subscription (default 4)
  --interval-ms N    mean time between a visitor's messages (default 2000, ±20 %)

Results are printed to stdout as one JSON object per line; progress goes to stderr.";

fn main() -> ExitCode {
    // As `switchboard serve` does: most suites run the server in this process.
    if let Err(e) = switchboard::disable_transparent_huge_pages() {
        eprintln!("switchboard-bench: transparent huge pages stay on: {e}");
    }
    let mut args = std::env::args().skip(1);
    let suite = args.next();
    let args = Args::new(args);
    let outcome = match suite.as_deref() {
        Some("store") => store::Options::parse(args).map(store::run),
        Some("projections") => projections::Options::parse(args).map(projections::run),
        Some("graphql") => graphql::Options::parse(args).map(graphql::run),
        Some("startup") => startup::Options::parse(args).map(startup::run),
        Some("email") => email::Options::parse(args).map(email::run),
        Some("chat") => chat::Options::parse(args).map(chat::run),
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
