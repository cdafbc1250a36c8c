//! The `switchboard` binary: parses the command line and dispatches to the library.
//!
//! Exit codes: `0` success, `1` the hash chain or an anchor does not verify (`audit verify`,
//! `audit anchor`), `2` the request
//! was refused (bad arguments or configuration, a missing data directory or user, a data
//! directory in use, a non-empty store for `import`, a malformed input line), `3` anything else
//! failed (I/O, the store, a projector).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use switchboard::config::{self, Config, ConfigArgs, Flags, LogFormat};
use switchboard::support::Refused;
use switchboard::{
    Application, audit, contact, demo, export, import, init, migrate, projections, startup, token,
};

/// Switchboard: an event-sourced shared inbox.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: GraphQL API, projections and routing, on the embedded store in the data
    /// directory, or on PostgreSQL when `postgres_url` (SWITCHBOARD_POSTGRES_URL) is set.
    ///
    /// Configuration: defaults < the TOML file (`--config`, or SWITCHBOARD_CONFIG) < SWITCHBOARD_*
    /// environment variables < these flags. See deploy/switchboard.example.toml for every key.
    Serve(ServeArgs),
    /// Create the organisation and its first super admin in a new store (the data directory's,
    /// or PostgreSQL's when `postgres_url` is set), and print
    /// the admin's token (once per install; the server must be stopped).
    Init(init::InitArgs),
    /// Print a JWT for a user of the directory (works while the server runs).
    Token(token::TokenArgs),
    /// Check the event log's integrity, and sign its head.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write events as NDJSON, one object per line.
    Export(export::ExportArgs),
    /// Append NDJSON events (as written by `export`) to an empty store.
    ///
    /// Event ids, streams, stream versions and order are preserved, so positions match the
    /// source when the export started at position 0. The new store assigns `recorded_at` (the
    /// time of the import) and therefore every `hash` afresh; both are ignored in the input. The
    /// whole input is validated before anything is written.
    Import(import::ImportArgs),
    /// Manage the read models.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// A person's data.
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Change how the store keeps what it holds.
    #[command(subcommand)]
    Migrate(MigrateCommand),
}

#[derive(Debug, Subcommand)]
enum MigrateCommand {
    /// Seal personal data from now on, in a log written in the clear: re-writes nothing,
    /// records which data subjects have fields in the clear (an erasure redacts those wherever
    /// they are read) and the position sealing begins at; every node started on the store
    /// afterwards seals, whatever `[privacy] seal_personal_data` says. Prints one JSON object.
    Encrypt(migrate::EncryptArgs),
}

/// `switchboard serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Seed a demo organisation on first start (empty store) and print an admin token.
    #[arg(long)]
    demo: bool,
    /// The address to listen on [default: 127.0.0.1:8080; env: SWITCHBOARD_LISTEN].
    #[arg(long, value_name = "ADDR", value_parser = config::parse_listen)]
    listen: Option<SocketAddr>,
    /// The data directory [default: ./switchboard-data; env: SWITCHBOARD_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file [env: SWITCHBOARD_CONFIG].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format [default: text; env: SWITCHBOARD_LOG_FORMAT].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `debug,hyper=info` [default: info; env: SWITCHBOARD_LOG_LEVEL;
    /// RUST_LOG wins when set].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain of every event, and check signed anchors with `--anchors`; exit 1 at
    /// the first event or anchor that does not verify.
    Verify(audit::VerifyArgs),
    /// Verify the log since the last anchor and sign its head with an Ed25519 key kept outside
    /// the store; append the anchor to the anchors file and print it.
    Anchor(audit::AnchorArgs),
    /// Make an Ed25519 signing key for anchors and print its public key.
    Keygen(audit::KeygenArgs),
}

#[derive(Debug, Subcommand)]
enum ContactCommand {
    /// Write everything recorded about a contact as one JSON document (GDPR Art. 15 subject
    /// access): the same document as GraphQL `contactData`. Reads the whole log.
    Export(contact::ExportArgs),
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Rebuild every read model (in `<data-dir>/read-models`) from the start of the log.
    Rebuild(ConfigArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Init(args) => init::run(args).await,
        Command::Token(args) => token::run(args).await,
        Command::Audit(AuditCommand::Verify(args)) => audit::verify(&args).await,
        Command::Audit(AuditCommand::Anchor(args)) => audit::anchor(&args).await,
        Command::Audit(AuditCommand::Keygen(args)) => audit::keygen(&args),
        Command::Export(args) => export::run(args).await,
        Command::Import(args) => import::run(args).await,
        Command::Contact(ContactCommand::Export(args)) => contact::export(args).await,
        Command::Migrate(MigrateCommand::Encrypt(args)) => migrate::encrypt(args).await,
        Command::Projections(ProjectionsCommand::Rebuild(args)) => {
            projections::rebuild(&args).await
        }
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<Refused>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(3)
            }
        }
    }
}

/// `switchboard serve`: load the configuration, build, print the banner, run until a signal.
async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let flags = Flags {
        config: args.config,
        listen: args.listen,
        data_dir: args.data_dir,
        log_format: args.log_format,
        log_level: args.log_level,
        demo: args.demo,
    };
    let config = Config::load(&flags).map_err(|e| Refused(e.to_string()))?;
    switchboard::telemetry::init(&config.log);
    if let Err(e) = switchboard::disable_transparent_huge_pages() {
        tracing::warn!(error = %e, "transparent huge pages stay on for the server's memory");
    }
    tracing::info!(?config, "configuration");
    // Installed before anything starts: a signal during seeding stops the server right after.
    let stop = startup::shutdown_signal()?;
    let app = Application::build(config).await?;
    print_banner(&app);
    app.run_until_stopped(stop).await?;
    Ok(ExitCode::SUCCESS)
}

fn print_banner(app: &Application) {
    let bound = app.local_addr();
    // A wildcard address is not something a browser can open: show the loopback one.
    let browse = if bound.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], bound.port()))
    } else {
        bound
    };
    println!();
    println!("  Switchboard is running.");
    println!();
    println!("  GraphiQL   http://{browse}/graphql");
    println!("  Health     http://{browse}/livez   http://{browse}/readyz");
    println!("  Metrics    http://{browse}/metrics");
    println!(
        "  Store      {}",
        switchboard::support::describe_store(app.config())
    );
    println!("  Data       {}", app.config().data_dir.display());
    if let Some(smtp) = app.smtp_addr() {
        println!("  SMTP       {smtp} (LMTP too)");
    }
    if let Some(seeded) = app.seeded() {
        println!(
            "  Demo       seeded {} conversations ({} events) in {:.1} s",
            seeded.conversations,
            seeded.events,
            seeded.elapsed.as_secs_f64()
        );
    } else if app.config().demo {
        println!("  Demo       the store already holds data: not seeded again");
    }
    if app.config().demo {
        println!("  Demo site  http://{browse}/demo/ (website chat and a form)");
    }
    if let Some(token) = app.admin_token() {
        println!();
        println!("  Admin token for {} (valid 7 days):", demo::ADMIN_EMAIL);
        println!();
        println!("  {token}");
        println!();
        println!(
            "  Paste it into GraphiQL's headers as {{\"Authorization\": \"Bearer <token>\"}}, or:"
        );
        println!(
            "  curl -s http://{browse}/graphql -H 'Content-Type: application/json' \\\n       \
             -H \"Authorization: Bearer $TOKEN\" -d '{{\"query\":\"{{ viewer {{ id }} }}\"}}'"
        );
        if let Some(smtp) = app.smtp_addr() {
            println!();
            println!("  Send the demo's support address a mail (swaks is in Debian's packages):");
            println!(
                "  swaks --server {} --port {} --to {} --from you@example.com \\\n       \
                 --header 'Subject: Hello' --body 'Does this reach the Support inbox?'",
                smtp.ip(),
                smtp.port(),
                demo::SUPPORT_ADDRESS
            );
        }
    }
    println!();
    println!("listening on http://{bound}");
}
