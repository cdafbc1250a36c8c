//! `switchboard contact export`: everything recorded about one person as one JSON document, for
//! a subject access request (GDPR Art. 15); the same document as the GraphQL `contactData`.
//!
//! It reads the log through the data subjects' keys (so it needs the configured `secret_key`
//! when personal data was sealed), and finds the person's conversations by reading the whole
//! log, so it works on a stopped server's data and beside a running one.

use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use proto_events::clock::SystemClock;
use switchboard_service::CommandService;
use uuid::Uuid;

use crate::config::ConfigArgs;
use crate::support::{self, StoreUse, refuse};

/// `switchboard contact export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The contact: its UUID, or its GraphQL id.
    #[arg(long, value_name = "ID")]
    contact: String,
    /// Where to write the document; `-` (the default) is stdout.
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    out: String,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Writes the document; exit code 2 when there is no such contact.
pub async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let contact_id = contact_id(&args.contact)?;
    let config = support::load_config(&args.config)?;
    let store = support::configured_store(&config, StoreUse::Read).await?;
    let service = CommandService::open(store, Arc::new(SystemClock))
        .await
        .context("reading the log")?;
    let Some(document) = service
        .subject_access(contact_id, Utc::now())
        .await
        .context("reading the contact's data")?
    else {
        refuse!(
            "no contact {contact_id} in {}",
            support::describe_store(&config)
        );
    };
    let mut text = serde_json::to_vec_pretty(&document).context("writing the document")?;
    text.push(b'\n');
    if args.out == "-" {
        std::io::stdout()
            .lock()
            .write_all(&text)
            .context("writing to stdout")?;
    } else {
        File::create(&args.out)
            .and_then(|mut file| file.write_all(&text).and_then(|()| file.sync_all()))
            .with_context(|| format!("writing {}", args.out))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `text` as a contact's id: a UUID, or a GraphQL id of a contact.
fn contact_id(text: &str) -> anyhow::Result<Uuid> {
    let text = text.trim();
    if let Ok(id) = Uuid::parse_str(text) {
        return Ok(id);
    }
    let id = async_graphql::ID(text.to_owned());
    match switchboard_api::ids::decode(&id, switchboard_api::ids::Kind::Contact, "contact") {
        Ok(id) => Ok(id),
        Err(_) => refuse!("--contact {text:?} is neither a UUID nor a contact's GraphQL id"),
    }
}
