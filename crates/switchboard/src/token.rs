//! `switchboard token`: a JWT for a user of the directory, signed with the server's secret.
//!
//! The user is looked up in the write side's directory (by e-mail, case-insensitively), so a
//! token is only ever minted for someone who exists; the secret is the configured one or the one
//! the server generated in the data directory. The store is the configured one (PostgreSQL, or
//! the embedded store opened read-only), so this works while the server runs.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use clap::Args;
use proto_events::clock::SystemClock;
use switchboard_service::CommandService;

use crate::config::{self, ConfigArgs};
use crate::support::{self, StoreUse, refuse};

/// `switchboard token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user's login e-mail.
    #[arg(long, value_name = "EMAIL")]
    user: String,
    /// How long the token is valid: `30m`, `24h`, `7d`...
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = config::parse_duration)]
    ttl: std::time::Duration,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Prints a token for `--user` on stdout; exit code 2 when there is no such user.
pub async fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let config = support::load_config(&args.config)?;
    let store = support::configured_store(&config, StoreUse::Read).await?;
    let service = CommandService::open(store, Arc::new(SystemClock))
        .await
        .context("reading the directory")?;
    let user = {
        let view = service.view().await.context("reading the directory")?;
        view.directory
            .user_by_email(args.user.trim())
            .map(|u| (u.id, u.email.clone()))
    };
    let Some((user_id, email)) = user else {
        refuse!(
            "no user with e-mail {} in {}",
            args.user.trim(),
            support::describe_store(&config)
        );
    };
    let Some(secret) = config::jwt_secret(&config, false)? else {
        refuse!(
            "no JWT secret: set SWITCHBOARD_JWT_SECRET (or jwt_secret in the configuration \
             file), or start `switchboard serve` once with this data directory to generate one"
        );
    };
    let ttl = TimeDelta::from_std(args.ttl).context("--ttl is too long")?;
    let token = switchboard_api::auth::Keys::new(secret.expose().as_bytes()).mint(
        user_id,
        &email,
        Utc::now(),
        ttl,
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
