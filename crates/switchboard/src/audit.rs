//! `switchboard audit verify`: walks the hash chain of the whole log.

use std::process::ExitCode;

use anyhow::Context;
use switchboard_store::chain::{self, Verification};

use crate::config::ConfigArgs;
use crate::support::{self, StoreUse};

/// Verifies every event of the configured store; exit code 1 names the first position that does
/// not verify.
pub async fn verify(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = support::load_config(args)?;
    let store = support::configured_store(&config, StoreUse::Read).await?;
    let verification = chain::verify(store.as_ref())
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
