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
use switchboard_api::auth::Keys;
use switchboard_service::CommandService;

use crate::config::{self, ConfigArgs};
use crate::support::{self, StoreUse, refuse};

/// `switchboard token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user's login e-mail.
    #[arg(long, value_name = "EMAIL")]
    user: String,
    /// How long the token is valid: `30m`, `24h`, `7d`... At most `token_max_ttl` (30 days
    /// unless configured).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = config::parse_duration)]
    ttl: std::time::Duration,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Prints a token for `--user` on stdout; exit code 2 when there is no such user.
pub async fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let config = support::load_config(&args.config)?;
    let ttl = allowed_ttl(&config, args.ttl)?;
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
    let token = keys(&config, &secret).mint(user_id, &email, Utc::now(), ttl);
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// `ttl` as a time span, refused (exit code 2) when it is longer than the configured
/// `token_max_ttl`: long-lived tokens are what a leak turns into a long-lived breach.
pub(crate) fn allowed_ttl(
    config: &config::Config,
    ttl: std::time::Duration,
) -> anyhow::Result<TimeDelta> {
    if ttl > config.token_max_ttl {
        refuse!(
            "--ttl {} is longer than the longest allowed, {} (token_max_ttl, \
             SWITCHBOARD_TOKEN_MAX_TTL); ask for a shorter token",
            humane(ttl),
            humane(config.token_max_ttl)
        );
    }
    if ttl.is_zero() {
        refuse!("--ttl must be longer than 0s");
    }
    TimeDelta::from_std(ttl).context("--ttl is too long")
}

/// A duration as the configuration writes it: `90m`, `7d`.
fn humane(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The keys tokens are minted with: the secret, and the configured issuer and audience.
pub(crate) fn keys(config: &config::Config, secret: &config::Secret) -> Keys {
    Keys::new(secret.expose().as_bytes(), config.tokens.clone())
}
