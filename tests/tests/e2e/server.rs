//! The real `switchboard` binary as a child process: bootstrapping a data directory, starting
//! `serve` on a free port, minting tokens, stopping it with SIGTERM.
//!
//! # Which binary
//! A package's binaries are built for its own integration tests only, so this crate compiles the
//! binary's own `crates/switchboard/src/main.rs` as its `switchboard-e2e` target (see
//! `Cargo.toml`): `cargo test -p switchboard-tests` always runs the current code, and Cargo hands
//! us its path in `CARGO_BIN_EXE_switchboard-e2e`. `SWITCHBOARD_E2E_BIN` overrides it, to run the
//! suite against another build (say, `target/release/switchboard`).
//!
//! # Bootstrapping
//! A fresh data directory has no organisation, and no mutation creates one (the organisation and
//! its first super admin are created "at installation, by the system"; only `serve --demo` does
//! it in the binary). [`bootstrap`] therefore writes exactly those two commands through the
//! command service into `<data-dir>/events`, the way an installer would, and closes the store
//! before the server starts. Everything after that goes through the binary.
//!
//! # Tokens
//! `switchboard token` opens the embedded store, whose `LOCK` a running server holds, so it can
//! only run while the server is stopped. The admin's first token comes from the CLI before the
//! first start; users created over GraphQL while the server runs get tokens minted in-process
//! with [`switchboard_api::auth::Keys`] and the JWT secret every process of a test shares
//! (`SWITCHBOARD_JWT_SECRET`); after a restart the CLI mints them again.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use proto_events::Actor;
use proto_events::clock::SystemClock;
use proto_events::event::Role;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::{Command as ServiceCommand, CommandMeta, CommandService};
use switchboard_store::EventStore;
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use uuid::Uuid;

/// How long a start may take (a debug build seeding the demo needs seconds to a minute).
pub(crate) const START_DEADLINE: Duration = Duration::from_secs(240);

/// How long the server may take to exit after SIGTERM.
pub(crate) const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// The `switchboard` executable under test.
pub(crate) fn binary() -> PathBuf {
    match std::env::var_os("SWITCHBOARD_E2E_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_switchboard-e2e")),
    }
}

/// A JWT secret for one test's processes (64 hex characters, fresh per test).
pub(crate) fn fresh_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Creates the organisation and its super admin in the fresh data directory `data_dir`, and
/// closes the store again. Returns the admin's id.
pub(crate) fn bootstrap(data_dir: &Path, admin_email: &str) -> Uuid {
    let events = data_dir.join("events");
    let email = admin_email.to_owned();
    // A runtime of its own, dropped before returning: nothing may keep the store (and its LOCK)
    // open once the server is to start.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let store: Arc<dyn EventStore> = Arc::new(
                SqliteStore::open(&events, SqliteOptions::default()).expect("open the store"),
            );
            let service = CommandService::open(store, Arc::new(SystemClock))
                .await
                .expect("open the command service");
            let installer = CommandMeta::by(Actor::System {
                component: "e2e-installer".to_owned(),
            });
            service
                .execute(
                    installer.clone(),
                    ServiceCommand::Setup(SetupCommand::CreateOrganisation {
                        organisation_id: Uuid::now_v7(),
                        name: "Acme Outdoor".to_owned(),
                        time_zone: "Europe/Berlin".to_owned(),
                    }),
                )
                .await
                .expect("create the organisation");
            let admin = Uuid::now_v7();
            service
                .execute(
                    installer,
                    ServiceCommand::Setup(SetupCommand::CreateUser {
                        user_id: admin,
                        email,
                        name: "Ada Admin".to_owned(),
                        role: Role::SuperAdmin,
                    }),
                )
                .await
                .expect("create the super admin");
            admin
        })
    })
    .join()
    .expect("bootstrap thread")
}

/// Runs `switchboard token --user EMAIL --data-dir DIR` and returns the token it prints.
pub(crate) fn cli_token(data_dir: &Path, secret: &str, email: &str) -> String {
    let output = Command::new(binary())
        .args(["token", "--user", email, "--ttl", "1h", "--data-dir"])
        .arg(data_dir)
        .env("SWITCHBOARD_JWT_SECRET", secret)
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run switchboard token");
    assert!(
        output.status.success(),
        "switchboard token --user {email} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token:?}");
    token
}

/// A token for `user`, minted with the shared secret (for use while the server runs).
pub(crate) fn mint(secret: &str, user: Uuid, email: &str) -> String {
    switchboard_api::auth::Keys::new(secret.as_bytes(), Default::default()).mint(
        user,
        email,
        Utc::now(),
        TimeDelta::hours(1),
    )
}

/// A running `switchboard serve`. Dropping it kills the process if it still runs.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    /// `http://ADDR`, from the `listening on` line.
    pub(crate) base: String,
    /// Everything printed on stdout up to that line.
    pub(crate) banner: String,
    /// Everything printed on stderr so far (the logs), for failure messages.
    logs: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `serve --listen 127.0.0.1:0 --data-dir DIR` plus `extra`, and waits (within
    /// [`START_DEADLINE`]) for the `listening on http://ADDR` line on stdout.
    pub(crate) fn start(data_dir: &Path, secret: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("SWITCHBOARD_JWT_SECRET", secret)
            .env("SWITCHBOARD_LOG_LEVEL", "warn")
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard serve");
        let logs = Arc::new(Mutex::new(String::new()));
        if let Some(mut stderr) = child.stderr.take() {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut logs) = logs.lock() {
                        logs.push_str(&String::from_utf8_lossy(&chunk[..n]));
                    }
                }
            });
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_DEADLINE;
        let mut banner = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    banner.push_str(&line);
                    banner.push('\n');
                    if let Some(base) = line.strip_prefix("listening on ") {
                        return Server {
                            child,
                            base: base.trim().to_owned(),
                            banner,
                            logs,
                        };
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let logs = logs.lock().map(|l| l.clone()).unwrap_or_default();
                    panic!(
                        "no `listening on` line within {START_DEADLINE:?} ({e:?}); stdout:\n\
                         {banner}\nstderr:\n{logs}"
                    );
                }
            }
        }
    }

    /// `http://ADDR/path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `ws://ADDR/path`.
    pub(crate) fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.base.replacen("http://", "ws://", 1))
    }

    /// The server's log so far.
    pub(crate) fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The admin token `serve --demo` prints in its banner.
    pub(crate) fn banner_token(&self) -> Option<String> {
        let mut lines = self.banner.lines();
        lines.find(|l| l.contains("Admin token for"))?;
        lines
            .map(str::trim)
            .find(|l| l.split('.').count() == 3 && l.starts_with("eyJ"))
            .map(str::to_owned)
    }

    /// Sends SIGTERM and waits (within [`STOP_DEADLINE`]) for the exit; returns the exit code.
    pub(crate) fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {STOP_DEADLINE:?} of SIGTERM; log:\n{}",
                self.logs()
            );
            // Polling a child's exit status: there is no portable blocking wait with a timeout.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
