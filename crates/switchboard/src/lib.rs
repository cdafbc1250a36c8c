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
pub mod contact;
pub mod demo;
pub mod export;
pub mod import;
pub mod init;
mod line;
pub mod migrate;
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

/// Turns transparent huge pages off for this process: what `switchboard serve` does once its
/// logging is set up, and the benchmarks (which run the server in their process) at start.
///
/// The allocator asks the kernel for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`), so
/// wherever the kernel has a free 2 MiB block, the first touch of any byte of it faults in and
/// zeroes all 2 MiB. Under load that starts at once (1,000 chat visitors), that was 70 % of the
/// CPU for the first half second: the agents' updates waited up to 300 ms, and the process held
/// 400–600 MB where it needs 150 MB (docs/benchmarks.md, website chat). It happened whenever
/// the kernel had had time to assemble free huge pages, so most often after a quiet spell, which
/// is when a server's traffic comes back. The flag is the process's, not the calling
/// thread's (`PR_SET_THP_DISABLE` sets it on the shared address space, so threads already
/// running are covered), applies to memory mapped before the call too (Linux 4.13 and later;
/// huge pages already faulted in stay), and is kept across `fork` and `exec`. A failure (a
/// sandbox that refuses the call) leaves things as they were; on other systems this does
/// nothing.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}
