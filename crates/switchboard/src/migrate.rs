//! `switchboard migrate encrypt`: turns sealing of personal data on for a log that was written
//! in the clear, without re-writing it (ADR 0007, `switchboard_codec::plaintext`).
//!
//! It checks the master key against the secrets already sealed beside the log (the key
//! `serve` uses, generated in the data directory when none is configured), records the position
//! sealing begins at, searches the log for personal fields stored in the clear, records by data
//! subject what it found, and prints what it did as one JSON object. From then on every node
//! that starts on the store seals what it writes, whatever `[privacy] seal_personal_data` says.
//! `--dry-run` only reads, needs no key, and works beside a running server.
//!
//! On the embedded store the server must be stopped (the data directory is locked). On
//! PostgreSQL it runs beside running nodes, which seal from their next start: run it again
//! after restarting them to record what they wrote in the clear meanwhile. An empty store is
//! refused (a mistyped data directory or schema). Like every command on PostgreSQL, connecting
//! creates or migrates the configured schema first, `--dry-run` included.

use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use switchboard_store::Position;

use crate::config::{self, ConfigArgs};
use crate::support::{self, StoreUse, refuse};

/// `switchboard migrate encrypt`.
#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// Search the log and print what would be recorded, recording nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Records what the log holds in the clear and that sealing began; prints the outcome.
pub async fn encrypt(args: EncryptArgs) -> anyhow::Result<ExitCode> {
    let config = support::load_config(&args.config)?;
    // A dry run only reads (beside a running server too); a migration needs the store to exist
    // (a mistyped data directory is refused, not created) and the server's key: sealing with
    // another one would make every node refuse to start.
    let usage = if args.dry_run {
        StoreUse::ReadAsStored
    } else {
        StoreUse::ExistingAsStored
    };
    let store = support::configured_store(&config, usage).await?;
    // An empty store is no install to migrate: most likely a mistyped `postgres_schema` (which
    // connecting created) or data directory. A new install seals from the start with
    // `[privacy] seal_personal_data`.
    if store.head().await.context("reading the store's head")? == Position::START {
        refuse!(
            "{} holds no events: nothing to migrate (check the data directory or postgres_schema; \
             a new install seals from its start with [privacy] seal_personal_data = true)",
            support::describe_store(&config)
        );
    }
    if !args.dry_run {
        let key = config::secret_key(&config)?;
        support::checked_vault(&config, store.as_ref(), &key).await?;
    }
    let secrets = store.secrets();
    let migration = switchboard_codec::plaintext::migrate(
        store.as_ref(),
        secrets.as_ref(),
        Utc::now(),
        args.dry_run,
    )
    .await
    .with_context(|| format!("searching {}", support::describe_store(&config)))?;
    eprintln!(
        "{}: {} events with personal fields in the clear ({} found by this run, after position \
         {} up to {}), of {} data subjects ({} naming none); sealing {} from position {}",
        support::describe_store(&config),
        migration.events_in_clear,
        migration.found_events,
        migration.searched_from,
        migration.searched_through,
        migration.subjects_in_clear,
        migration.without_subject,
        match (args.dry_run, migration.turned_on) {
            (true, true) => "would begin",
            (false, true) => "begins",
            (_, false) => "began",
        },
        migration.sealing_since.position,
    );
    let mut line = serde_json::to_value(&migration).context("writing the outcome")?;
    line["dry_run"] = serde_json::Value::Bool(args.dry_run);
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
