//! `switchboard init`: create the organisation and its first super admin in a new data
//! directory, and print a token for that admin — what an installer does once, so that a real
//! (non-demo) deployment can be set up without touching the store by hand.
//!
//! Both commands go through the command service as the system (only the system may create the
//! organisation), like every other write. A second `init` is refused: the organisation exists.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use proto_events::Actor;
use proto_events::clock::SystemClock;
use proto_events::event::Role;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::{Command, CommandMeta, CommandService, ServiceError};
use uuid::Uuid;

use crate::config::{self, ConfigArgs};
use crate::support::refuse;

/// `switchboard init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The organisation's display name.
    #[arg(long, value_name = "NAME")]
    organisation: String,
    /// The organisation's IANA time zone, e.g. `Europe/Paris` (business hours are set later).
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    time_zone: String,
    /// The first super admin's login e-mail.
    #[arg(long, value_name = "EMAIL")]
    admin_email: String,
    /// The first super admin's display name.
    #[arg(long, value_name = "NAME")]
    admin_name: String,
    /// How long the printed token is valid: `30m`, `24h`, `7d`...
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = config::parse_duration)]
    ttl: std::time::Duration,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Creates the organisation and admin, and prints the admin's token on stdout. Exit code 2 when
/// the store (the data directory's, or PostgreSQL's) already holds an organisation or an input is
/// invalid (nothing written).
pub async fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let config = crate::support::load_config(&args.config)?;
    let ttl = crate::token::allowed_ttl(&config, args.ttl)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let store = crate::support::keyed(&config, crate::startup::open_store(&config).await?)?;
    let service = CommandService::open(store, Arc::new(SystemClock))
        .await
        .context("reading the directory")?;
    if service
        .view()
        .await
        .context("reading the directory")?
        .directory
        .organisation
        .is_some()
    {
        refuse!(
            "{} already holds an organisation; use `switchboard token --user EMAIL` for a token",
            crate::support::describe_store(&config)
        );
    }
    let system = CommandMeta::by(Actor::System {
        component: "init".to_owned(),
    });
    let admin_id = Uuid::now_v7();
    let commands = [
        SetupCommand::CreateOrganisation {
            organisation_id: Uuid::now_v7(),
            name: args.organisation,
            time_zone: args.time_zone,
        },
        SetupCommand::CreateUser {
            user_id: admin_id,
            email: args.admin_email,
            name: args.admin_name,
            role: Role::SuperAdmin,
        },
    ];
    for command in commands {
        match service
            .execute(system.clone(), Command::Setup(command))
            .await
        {
            Ok(_) => {}
            Err(ServiceError::Domain(e)) => refuse!("{e}"),
            Err(e) => return Err(e).context("writing the organisation"),
        }
    }
    let email = {
        let view = service.view().await.context("reading the directory")?;
        view.directory
            .user(admin_id)
            .map(|u| u.email.clone())
            .context("the admin was written but is not in the directory")?
    };
    let secret = config::jwt_secret(&config, true)?
        .context("no JWT secret could be configured or generated")?;
    let token = crate::token::keys(&config, &secret).mint(admin_id, &email, Utc::now(), ttl);
    eprintln!(
        "initialised {}: organisation and super admin {email}; token below",
        crate::support::describe_store(&config)
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
