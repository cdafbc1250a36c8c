//! `switchboard audit verify`: walks the hash chain of the whole log.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use switchboard_store::chain::{self, Verification};

use crate::support;

/// Verifies every event; exit code 1 names the first position that does not verify.
pub async fn verify(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let store = support::open_for_reading(data_dir)?;
    let verification = chain::verify(&store)
        .await
        .context("reading the event log")?;
    match verification {
        Verification::Intact { events, head_hash } => {
            println!("chain intact: {events} events, head hash {head_hash}");
            Ok(ExitCode::SUCCESS)
        }
        Verification::Broken { position, reason } => {
            println!("chain broken at position {position}: {reason}");
            Ok(ExitCode::from(1))
        }
    }
}
