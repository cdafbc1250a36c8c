//! The `switchboard` binary's library: the server ([`startup::Application`]), its
//! configuration, the demo organisation, and the maintenance commands. `main.rs` only parses the
//! command line and calls in here, so tests can build the application without a process.
//!
//! # Layout
//! - [`config`]: the typed [`config::Config`], layered defaults < file < environment < flags.
//! - [`startup`]: [`startup::Application`]: opens the store, the command service, the routing
//!   reactor, the projections and the API; binds; runs until a shutdown future resolves.
//! - [`telemetry`]: `tracing` to stderr, as text or JSON.
//! - [`demo`]: the demo organisation of `serve --demo`, seeded through the command service.
//! - [`init`]: `switchboard init`, the organisation and first super admin of a new install.
//! - [`token`]: `switchboard token`, a JWT for a user of the directory.
//! - [`audit`], [`export`], [`import`], [`projections`]: the maintenance commands.
//! - [`anchor`]: signed anchors of the hash chain (`audit anchor`, `audit verify --anchors`, and
//!   the server's periodic anchoring).
//! - `line`: the NDJSON shape `export` writes and `import` reads.
//! - `progress`: progress bars on a terminal, plain periodic lines otherwise.
//! - [`support`]: the data directory's layout, opening the store, [`support::Refused`].

pub mod anchor;
pub mod audit;
pub mod config;
pub mod demo;
pub mod export;
pub mod import;
pub mod init;
mod line;
mod progress;
pub mod projections;
pub mod startup;
pub mod support;
pub mod telemetry;
pub mod token;

pub use config::Config;
pub use startup::Application;

/// The allocator of the server and of anything that links this library (the benchmarks run the
/// server in-process with it). A GraphQL request allocates and frees thousands of small values
/// (the parsed and validated document's copy, one future per field, the response tree, its
/// JSON); with the system allocator that was about a quarter of the server's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
