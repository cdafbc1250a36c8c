//! `switchboard serve` and `switchboard token`, as processes: the real binary on port 0 with a
//! temporary data directory, driven over HTTP.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use mail_parser::MimeHeaders;
use tempfile::TempDir;

use crate::support::text;

/// How long a start may take: seeding the demo in a debug build takes seconds.
const START_DEADLINE: Duration = Duration::from_secs(180);

/// How long the server may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// How many of the server's last log lines a failing test prints.
const LOG_TAIL: usize = 300;

/// A running `switchboard serve`. Dropping it kills the process if it still runs, and, when the
/// test is failing, prints the server's last log lines (its stderr).
pub(crate) struct Server {
    child: Child,
    /// The last [`LOG_TAIL`] lines the server logged.
    log: Arc<Mutex<VecDeque<String>>>,
    /// `http://ADDR` from the `listening on` line.
    base: String,
    /// Everything printed on stdout up to that line.
    pub(crate) banner: String,
}

impl Server {
    /// Starts `serve --listen 127.0.0.1:0 --data-dir DIR` plus `extra`, and waits for the
    /// `listening on` line.
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("SWITCHBOARD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_TAIL)));
        let stderr = child.stderr.take().unwrap();
        let kept = log.clone();
        std::thread::spawn(move || {
            // Read to the end whatever comes, so the server never writes into a closed pipe.
            let mut stderr = BufReader::new(stderr);
            let mut line = Vec::new();
            while stderr.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if let Ok(mut kept) = kept.lock() {
                    if kept.len() == LOG_TAIL {
                        kept.pop_front();
                    }
                    kept.push_back(String::from_utf8_lossy(&line).trim_end().to_owned());
                }
                line.clear();
            }
        });
        let stdout = child.stdout.take().unwrap();
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
                            log,
                            base: base.trim().to_owned(),
                            banner,
                        };
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "no `listening on` line ({e:?}); stdout so far:\n{banner}\nstderr:\n{}",
                        logged(&log)
                    );
                }
            }
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and returns the exit code, failing if the process outlives the deadline.
    pub(crate) fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {STOP_DEADLINE:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The demo admin token printed in the banner.
    pub(crate) fn admin_token(&self) -> Option<String> {
        let mut lines = self.banner.lines();
        lines.find(|l| l.contains("Admin token for"))?;
        lines
            .map(str::trim)
            .find(|l| l.starts_with("eyJ"))
            .map(str::to_owned)
    }
}

/// The log lines kept in `log`, one per line.
fn logged(log: &Mutex<VecDeque<String>>) -> String {
    log.lock()
        .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- the server's last log lines ---\n{}", logged(&self.log));
        }
    }
}

/// Polls `GET url` until it answers `200`, failing at the deadline with the last answer.
pub(crate) async fn wait_for_200(client: &reqwest::Client, url: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let last = match client.get(url).send().await {
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if status == reqwest::StatusCode::OK {
                    return body;
                }
                format!("{status}: {body}")
            }
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "{url} did not answer 200 within {within:?}; last answer: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /graphql` with `query` and an optional bearer token; the JSON answer.
pub(crate) async fn graphql(
    client: &reqwest::Client,
    server: &Server,
    token: Option<&str>,
    query: &str,
) -> serde_json::Value {
    let mut request = client
        .post(server.url("/graphql"))
        .json(&serde_json::json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{status}: {body}: {e}"))
}

/// The `data` of a GraphQL answer as `token`'s user, after asserting it has no errors.
pub(crate) async fn data_of(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    query: String,
) -> serde_json::Value {
    let answer = graphql(client, server, Some(token), &query).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"].clone()
}

/// Creates the inbox Support with the e-mail channel support@acme.test; the channel's id.
pub(crate) async fn support_channel(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
) -> String {
    let inbox = data_of(
        client,
        server,
        token,
        r#"mutation { createInbox(input: {name: "Support"}) { inbox { id } } }"#.into(),
    )
    .await["createInbox"]["inbox"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    data_of(
        client,
        server,
        token,
        format!(
            r#"mutation {{ connectEmailChannel(input: {{inboxId: "{inbox}", address: "support@acme.test"}}) {{ channel {{ id }} }} }}"#
        ),
    )
    .await["connectEmailChannel"]["channel"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// How many conversations the store holds, counted in an export (the server must be stopped).
fn conversations_started(data_dir: &Path) -> usize {
    let out = crate::support::run(&["export", "--data-dir", data_dir.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"event_type\":\"ConversationStarted\""))
        .count()
}

fn token_for(data_dir: &Path, email: &str) -> std::process::Output {
    crate::support::run(
        &[
            "token",
            "--user",
            email,
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        None,
    )
}

const VIEWER: &str = "{ viewer { email name } }";

/// The whole life of a demo server: seeded start, health, metrics, GraphQL with the printed
/// token, a token minted by the CLI while the server runs, SIGTERM, a restart that keeps the data and does not seed
/// again, and that token accepted by the restarted server.
#[tokio::test]
async fn a_demo_server_serves_stops_and_restarts_with_its_data() {
    let dir = TempDir::new().unwrap();
    let client = reqwest::Client::new();

    let server = Server::start(dir.path(), &["--demo"]);
    assert!(server.banner.contains("/graphql"), "{}", server.banner);
    assert!(
        server.banner.contains("seeded 500 conversations"),
        "{}",
        server.banner
    );
    let admin = server.admin_token().expect("no admin token in the banner");

    wait_for_200(&client, &server.url("/livez"), Duration::from_secs(10)).await;
    let ready = wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(120)).await;
    assert!(ready.contains("\"ready\":true"), "{ready}");

    let answer = graphql(&client, &server, Some(&admin), VIEWER).await;
    assert_eq!(
        answer["data"]["viewer"]["email"], "admin@demo.switchboard.test",
        "{answer}"
    );
    let refused = graphql(&client, &server, None, VIEWER).await;
    assert!(refused["errors"].is_array(), "{refused}");
    assert!(refused["data"]["viewer"].is_null(), "{refused}");

    // The demo site embeds the chat widget, whose channel answers for the demo's origins.
    assert!(server.banner.contains("/demo/"), "{}", server.banner);
    let site = wait_for_200(&client, &server.url("/demo/"), Duration::from_secs(5)).await;
    assert!(site.contains("/widget/v1.js"), "{site}");
    let chat = wait_for_200(
        &client,
        &server.url("/chat/northwind-demo-chat-widget"),
        Duration::from_secs(5),
    )
    .await;
    assert!(chat.contains("Northwind Support"), "{chat}");

    let metrics = wait_for_200(&client, &server.url("/metrics"), Duration::from_secs(5)).await;
    assert!(metrics.contains("switchboard_http_requests"), "{metrics}");

    // `token` and `export` read the store beside the running server.
    let out = token_for(dir.path(), "mia@demo.switchboard.test");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let mia = stdout.trim().to_owned();
    assert!(mia.starts_with("eyJ"), "{stdout}");
    let answer = graphql(&client, &server, Some(&mia), VIEWER).await;
    assert_eq!(
        answer["data"]["viewer"]["email"], "mia@demo.switchboard.test",
        "{answer}"
    );
    // The demo receives mail: swaks, as the banner says, to the Support address.
    if crate::support::swaks_available() {
        send_the_demo_a_mail(&server, dir.path());
    }
    let started = conversations_started(dir.path());
    assert!(started >= 500, "only {started} conversations were seeded");

    assert_eq!(server.terminate(), Some(0));

    let server = Server::start(dir.path(), &["--demo"]);
    assert!(
        server.banner.contains("not seeded again"),
        "{}",
        server.banner
    );
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(60)).await;
    let answer = graphql(&client, &server, Some(&mia), VIEWER).await;
    assert_eq!(
        answer["data"]["viewer"]["email"], "mia@demo.switchboard.test",
        "{answer}"
    );
    assert_eq!(server.terminate(), Some(0));
    assert_eq!(conversations_started(dir.path()), started);
}

/// Sends the demo's Support address a mail with swaks at the banner's SMTP address, and checks
/// it is in the log once swaks got its `250`.
fn send_the_demo_a_mail(server: &Server, dir: &Path) {
    let smtp = server
        .banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("SMTP"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no SMTP line in the banner:\n{}", server.banner));
    assert!(
        server.banner.contains("swaks --server"),
        "{}",
        server.banner
    );
    let subject = format!("Hello from swaks {}", std::process::id());
    let sent = Command::new("swaks")
        .args([
            "--server",
            &smtp.ip().to_string(),
            "--port",
            &smtp.port().to_string(),
        ])
        .args([
            "--to",
            "support@northwind.example",
            "--from",
            "you@example.com",
        ])
        .args([
            "--header",
            &format!("Subject: {subject}"),
            "--body",
            "Testing",
        ])
        .args(["--timeout", "20"])
        .stdin(Stdio::null())
        .output()
        .expect("swaks runs (Debian package swaks; .ci/run installs it)");
    let transcript = String::from_utf8_lossy(&sent.stdout);
    assert!(sent.status.success(), "{transcript}");
    let exported = crate::support::run(&["export", "--data-dir", dir.to_str().unwrap()], None);
    assert!(
        String::from_utf8_lossy(&exported.stdout).contains(&subject),
        "the mail is in the log once swaks got its 250"
    );
}

#[tokio::test]
async fn a_plain_server_generates_and_keeps_its_secret() {
    let dir = TempDir::new().unwrap();
    let client = reqwest::Client::new();
    let server = Server::start(dir.path(), &[]);
    assert!(server.admin_token().is_none(), "{}", server.banner);
    wait_for_200(&client, &server.url("/livez"), Duration::from_secs(10)).await;
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
    assert_eq!(server.terminate(), Some(0));

    let secret_file = dir.path().join("jwt-secret");
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert!(secret.trim().len() >= 32, "{secret:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.terminate(), Some(0));
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);
}

#[test]
fn a_token_for_an_unknown_user_is_refused() {
    let dir = TempDir::new().unwrap();
    // A store with an empty directory: a server started and stopped once.
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.terminate(), Some(0));
    let out = token_for(dir.path(), "nobody@example.com");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("no user with e-mail nobody@example.com"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let dir = TempDir::new().unwrap();
    let first = Server::start(dir.path(), &[]);
    let out = crate::support::run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert_eq!(first.terminate(), Some(0));
}

#[test]
fn a_bad_configuration_file_is_refused_naming_the_key() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("switchboard.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nlisten_backlog = 5\n").unwrap();
    let out = crate::support::run(
        &[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ],
        None,
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("listen_backlog"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "a refused start created the data directory"
    );
}

/// `switchboard init` of the Acme organisation with the super admin `root@acme.test` in
/// `data_dir`; its output (the admin's token on stdout).
pub(crate) fn init_acme(data_dir: &Path) -> std::process::Output {
    crate::support::run(
        &[
            "init",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--organisation",
            "Acme",
            "--time-zone",
            "Europe/Berlin",
            "--admin-email",
            "root@acme.test",
            "--admin-name",
            "Root Admin",
        ],
        None,
    )
}

/// An IMAP account must name a connected e-mail channel's address: otherwise the server does
/// not start (its mail would have nowhere to go), and says which account.
#[test]
fn an_imap_account_without_its_channel_is_refused_at_start() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let init = init_acme(&data);
    assert_eq!(init.status.code(), Some(0), "{:?}", text(&init));
    let file = dir.path().join("switchboard.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:0\"\n[[imap]]\naddress = \"nobody@acme.test\"\n\
         host = \"127.0.0.1\"\ntls = \"plain\"\nusername = \"nobody\"\n\
         password = \"not-printed-anywhere\"\n",
    )
    .unwrap();
    let out = crate::support::run(
        &[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("nobody@acme.test"), "{stderr}");
    assert!(!format!("{stdout}{stderr}").contains("not-printed-anywhere"));
}

/// `init` creates the organisation and a super admin once and prints a token the server
/// accepts; a second `init` is refused and writes nothing.
#[tokio::test]
async fn init_sets_up_a_new_install_once() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let init = [
        "init",
        "--data-dir",
        data_dir,
        "--organisation",
        "Acme",
        "--time-zone",
        "Europe/Paris",
        "--admin-email",
        "Root@Acme.test",
        "--admin-name",
        "Root",
    ];
    let out = crate::support::run(&init, None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let token = stdout.trim().to_owned();
    assert!(token.starts_with("eyJ"), "{stdout}");

    let again = crate::support::run(&init, None);
    let (_, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("already holds an organisation"), "{stderr}");

    // `--ttl` is capped by `token_max_ttl` (30 days unless configured), for `token` and `init`.
    let ttl = |ttl: &str| {
        crate::support::run(
            &[
                "token",
                "--user",
                "root@acme.test",
                "--ttl",
                ttl,
                "--data-dir",
                data_dir,
            ],
            None,
        )
    };
    let long = ttl("31d");
    let (stdout, stderr) = text(&long);
    assert_eq!(long.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.is_empty(), "no token: {stdout}");
    assert!(
        stderr.contains("--ttl 31d is longer than the longest allowed, 30d (token_max_ttl"),
        "{stderr}"
    );
    assert_eq!(ttl("30d").status.code(), Some(0));
    let untouched = TempDir::new().unwrap();
    let mut too_long = init;
    too_long[2] = untouched.path().to_str().unwrap();
    let out = crate::support::run(&[&too_long[..], &["--ttl", "90d"]].concat(), None);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(
        !untouched.path().join("events").exists(),
        "a refused init writes nothing"
    );

    let bad = TempDir::new().unwrap();
    let out = crate::support::run(
        &[
            "init",
            "--data-dir",
            bad.path().to_str().unwrap(),
            "--organisation",
            "Acme",
            "--time-zone",
            "Mars/Olympus",
            "--admin-email",
            "root@acme.test",
            "--admin-name",
            "Root",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));

    let client = reqwest::Client::new();
    let server = Server::start(dir.path(), &[]);
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
    let answer = graphql(&client, &server, Some(&token), VIEWER).await;
    assert_eq!(
        answer["data"]["viewer"]["email"], "root@acme.test",
        "{answer}"
    );
    assert_eq!(server.terminate(), Some(0));
}

/// The PostgreSQL server the tests may use: `None` (with a loud message) when none answers,
/// unless `SWITCHBOARD_REQUIRE_POSTGRES=1` (CI), which fails instead.
async fn postgres_url() -> Option<String> {
    let url = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let required = std::env::var("SWITCHBOARD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok(_) => Some(url),
        Err(e) if required => panic!("PostgreSQL at {url} is required but unreachable: {e}"),
        Err(e) => {
            eprintln!(
                "SKIPPED: no PostgreSQL at {url} ({e}); set SWITCHBOARD_REQUIRE_POSTGRES=1 to fail instead"
            );
            None
        }
    }
}

/// Two server nodes on one PostgreSQL history, each with its own read models: a write on one is
/// read on the other with its consistency token.
#[tokio::test]
async fn two_nodes_share_one_postgres_history() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let schema = format!("sb_nodes_{}", uuid::Uuid::now_v7().simple());
    let config_dir = TempDir::new().unwrap();
    let config = config_dir.path().join("switchboard.toml");
    let shared = format!(
        "postgres_url = {url:?}\npostgres_schema = {schema:?}\njwt_secret = {:?}\n",
        "0123456789abcdef".repeat(4)
    );
    std::fs::write(
        &config,
        format!("{shared}secret_key = {:?}\n", "5ec7e7".repeat(10) + "abcd"),
    )
    .unwrap();
    // A node that would generate a key of its own: refused, since the secrets are sealed with
    // the shared one.
    let stranger = config_dir.path().join("stranger.toml");
    std::fs::write(&stranger, &shared).unwrap();
    let config = config.to_str().unwrap();
    let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let out = crate::support::run(
        &[
            "init",
            "--config",
            config,
            "--data-dir",
            a.path().to_str().unwrap(),
            "--organisation",
            "Acme",
            "--admin-email",
            "root@acme.test",
            "--admin-name",
            "Root",
        ],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let token = stdout.trim().to_owned();

    let client = reqwest::Client::new();
    let node_a = Server::start(a.path(), &["--config", config]);
    let node_b = Server::start(b.path(), &["--config", config]);
    let c = TempDir::new().unwrap();
    let refused = crate::support::run(
        &[
            "serve",
            "--config",
            stranger.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            c.path().to_str().unwrap(),
        ],
        None,
    );
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("secret_key"), "{stderr}");
    let created = graphql(
        &client,
        &node_a,
        Some(&token),
        r#"mutation { createTeam(input: {name: "Night shift"}) { consistencyToken userErrors { message } } }"#,
    )
    .await;
    let consistency = created["data"]["createTeam"]["consistencyToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let answer = client
        .post(node_b.url("/graphql"))
        .bearer_auth(&token)
        .header("Switchboard-Consistency-Token", &consistency)
        .json(&serde_json::json!({"query": "{ teams { name } viewer { email } }"}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        answer["data"]["teams"],
        serde_json::json!([{"name": "Night shift"}]),
        "{answer}"
    );
    assert_eq!(answer["data"]["viewer"]["email"], "root@acme.test");
    assert_eq!(node_a.terminate(), Some(0));
    assert_eq!(node_b.terminate(), Some(0));

    // The maintenance commands work on the configured PostgreSQL store too.
    let cli = |args: &[&str]| {
        let out = crate::support::run(args, None);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}{stderr}");
        stdout
    };
    let minted = cli(&["token", "--config", config, "--user", "root@acme.test"]);
    assert_eq!(minted.trim().split('.').count(), 3, "a JWT: {minted}");
    assert!(cli(&["audit", "verify", "--config", config]).starts_with("chain intact"));
    let rebuilt = ["projections", "rebuild", "--config", config, "--data-dir"];
    cli(&[&rebuilt[..], &[a.path().to_str().unwrap()]].concat());
    let exported = cli(&["export", "--config", config]);
    let events: Vec<serde_json::Value> = exported
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["event_type"] == "TeamCreated"));
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=events.len() as u64).collect::<Vec<_>>());
    // ...and `import` copies the whole history into another schema, where it verifies.
    let copy_schema = format!("{schema}_copy");
    let copy = config_dir.path().join("copy.toml");
    std::fs::write(
        &copy,
        format!("postgres_url = {url:?}\npostgres_schema = {copy_schema:?}\n"),
    )
    .unwrap();
    let copy = copy.to_str().unwrap();
    let export_file = config_dir.path().join("events.ndjson");
    std::fs::write(&export_file, &exported).unwrap();
    cli(&[
        "import",
        "--config",
        copy,
        "--in",
        export_file.to_str().unwrap(),
    ]);
    assert!(cli(&["audit", "verify", "--config", copy]).starts_with("chain intact"));
    let copied: Vec<serde_json::Value> = cli(&["export", "--config", copy])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // Event for event, commit times and hashes included.
    assert_eq!(copied, events);

    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for schema in [schema, copy_schema] {
        db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
}

/// The delivery tests' SMTP relay (aiosmtpd running `switchboard-delivery`'s `relay.py`): its
/// port and the directory it writes each message it accepts to. `None` (the test is skipped)
/// when aiosmtpd is not installed, unless `SWITCHBOARD_REQUIRE_TOOLS=1` (CI).
fn smtp_relay(out: &Path) -> Option<(Child, u16)> {
    smtp_server(out, None)
}

/// [`smtp_relay`], requiring clients to log in with `auth` (`USER:PASSWORD`) when given.
fn smtp_server(out: &Path, auth: Option<&str>) -> Option<(Child, u16)> {
    let python = std::env::var("SWITCHBOARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let installed = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        let required = std::env::var("SWITCHBOARD_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
        assert!(!required, "aiosmtpd is not importable by {python}");
        eprintln!("skipped: aiosmtpd is not importable by {python}");
        return None;
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../switchboard-delivery/tests/it/relay.py");
    let mut child = Command::new(&python)
        .arg(script)
        .arg(out)
        .args(
            auth.map(|credentials| ["--auth", credentials])
                .into_iter()
                .flatten(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the relay prints its port");
    Some((child, port))
}

#[tokio::test]
async fn serve_sends_an_agents_email_reply_through_the_configured_relay() {
    let mails = TempDir::new().unwrap();
    let Some((mut relay, port)) = smtp_relay(mails.path()) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let init = init_acme(&data_dir);
    let token = text(&init).0.trim().to_owned();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!("smtp_relay_url = \"smtp://127.0.0.1:{port}?tls=none\"\ndelivery_from_name = \"agent\"\n"),
    )
    .unwrap();
    let server = Server::start(&data_dir, &["--config", config.to_str().unwrap()]);
    let client = reqwest::Client::new();
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
    let run = |query: String| data_of(&client, &server, &token, query);
    let channel = support_channel(&client, &server, &token).await;
    let conversation = run(format!(
        r#"mutation {{ receiveMessage(input: {{channelId: "{channel}", from: {{kind: EMAIL, value: "grace@customer.test"}}, subject: "Pricing", bodyText: "How much?", email: {{messageId: "c1@customer.test"}}}}) {{ conversation {{ id }} }} }}"#
    ))
    .await["receiveMessage"]["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let replied = run(format!(
        r#"mutation {{ sendReply(input: {{conversationId: "{conversation}", bodyText: "200 EUR a month."}}) {{ userErrors {{ message }} }} }}"#
    ))
    .await;
    assert_eq!(replied["sendReply"]["userErrors"], serde_json::json!([]));

    let mail = relayed(mails.path(), 1).await;
    // `delivery_from_name = "agent"`: the author's name on the channel's address.
    assert!(
        mail.contains("From: \"Root Admin\" <support@acme.test>"),
        "{mail}"
    );
    assert!(mail.contains("To: grace@customer.test"), "{mail}");
    assert!(mail.contains("Subject: Re: Pricing"), "{mail}");
    assert!(mail.contains("In-Reply-To: <c1@customer.test>"), "{mail}");
    assert_eq!(server.terminate(), Some(0));
    let _ = relay.kill();
    let _ = relay.wait();
}

/// The relay's `n`th message (1-based), once it arrived (within the deadline).
async fn relayed(dir: &Path, n: usize) -> String {
    let file = dir.join(format!("{n}.eml"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "message {n} never reached the relay"
        );
        // The relay is another process writing a file: polled, within the deadline.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned()
}

/// A header's value in a raw message (first occurrence, unfolded).
fn header_of(mail: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut lines = mail.lines();
    let mut value = lines.find(|l| l.to_ascii_lowercase().starts_with(&prefix))?[prefix.len()..]
        .trim()
        .to_owned();
    for more in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        value.push(' ');
        value.push_str(more.trim());
    }
    Some(value)
}

/// Team e-mail end to end through the real binary and servers nobody here wrote: swaks sends
/// to the SMTP listener, routing assigns the conversation, the agent replies through GraphQL,
/// with a file uploaded as a GraphQL multipart request, the reply reaches the relay (aiosmtpd)
/// threaded to the customer's mail with that file byte for byte, the conversation is
/// closed, and the customer's answer to the reply (In-Reply-To) reopens that same conversation.
#[tokio::test]
async fn mail_in_reply_out_and_the_customers_answer_reopens_the_conversation() {
    if !crate::support::swaks_available() {
        return;
    }
    let mails = TempDir::new().unwrap();
    let Some((mut relay, relay_port)) = smtp_relay(mails.path()) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let init = init_acme(&data_dir);
    let token = text(&init).0.trim().to_owned();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "smtp_relay_url = \"smtp://127.0.0.1:{relay_port}?tls=none\"\n\
             [smtp]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(&data_dir, &["--config", config.to_str().unwrap()]);
    let smtp: std::net::SocketAddr = server
        .banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("SMTP"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no SMTP line:\n{}", server.banner));
    let client = reqwest::Client::new();
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
    let run = |query: String| {
        let (client, server, token) = (&client, &server, &token);
        async move {
            let answer = graphql(client, server, Some(token), &query).await;
            assert!(answer.get("errors").is_none(), "{query}: {answer}");
            answer["data"].clone()
        }
    };
    let me = run("{ viewer { id } }".into()).await["viewer"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let inbox =
        run(r#"mutation { createInbox(input: {name: "Support"}) { inbox { id } } }"#.into()).await
            ["createInbox"]["inbox"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    for setup in [
        format!(
            r#"addInboxMember(input: {{inboxId: "{inbox}", memberId: "{me}"}}) {{ userErrors {{ message }} }}"#
        ),
        r#"setUserAvailability(input: {availability: AVAILABLE}) { userErrors { message } }"#
            .to_owned(),
        format!(
            r#"setRoutingRule(input: {{scopeId: "{inbox}", strategy: ROUND_ROBIN, targetIds: ["{me}"]}}) {{ userErrors {{ message }} }}"#
        ),
        format!(
            r#"connectEmailChannel(input: {{inboxId: "{inbox}", address: "support@acme.test"}}) {{ userErrors {{ message }} }}"#
        ),
    ] {
        let data = run(format!("mutation {{ {setup} }}")).await;
        let payload = data.as_object().and_then(|o| o.values().next()).unwrap();
        assert_eq!(payload["userErrors"], serde_json::json!([]), "{setup}");
    }

    let swaks = |args: Vec<String>| {
        let out = Command::new("swaks")
            .args([
                "--server",
                &smtp.ip().to_string(),
                "--port",
                &smtp.port().to_string(),
            ])
            .args(["--from", "grace@customer.test", "--to", "support@acme.test"])
            .args(["--timeout", "20"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    swaks(vec![
        "--header".into(),
        "Subject: Pricing for 20 seats".into(),
        "--header".into(),
        "Message-ID: <ask-1@customer.test>".into(),
        "--body".into(),
        "How much would 20 seats cost?".into(),
    ]);

    // Routed to the only available member.
    let list = format!(
        r#"{{ conversations(first: 5, filter: {{inboxId: "{inbox}"}}) {{ nodes {{ id status
            assignee {{ ... on User {{ id }} }} timeline(first: 20) {{ nodes {{ kind }} }} }} }} }}"#
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let conversation = loop {
        let data = run(list.clone()).await;
        let nodes = data["conversations"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(c) = nodes.first().filter(|c| c["assignee"]["id"] == me.as_str()) {
            break c.clone();
        }
        assert!(Instant::now() < deadline, "not routed: {data}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = conversation["id"].as_str().unwrap().to_owned();

    // The reply carries a file uploaded as a GraphQL multipart request.
    let quote: Vec<u8> = b"%PDF-1.7\r\n"
        .iter()
        .copied()
        .chain((0..=255_u8).cycle().take(40_000))
        .collect();
    let operations = serde_json::json!({
        "query": "mutation($input: SendReplyInput!) { sendReply(input: $input) { userErrors { message } } }",
        "variables": {"input": {"conversationId": id, "bodyText": "400 EUR a month.", "attachments": [null]}},
    });
    let boundary = "e2e-upload-3b7d";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\": [\"variables.input.attachments.0\"]}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"quote.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&quote);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    let replied: serde_json::Value = client
        .post(server.url("/graphql"))
        .bearer_auth(&token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        replied["data"]["sendReply"]["userErrors"],
        serde_json::json!([]),
        "{replied}"
    );
    let reply = relayed(mails.path(), 1).await;
    // What the relay took, read by a MIME parser: the uploaded file, byte for byte.
    let parsed = mail_parser::MessageParser::default()
        .parse(reply.as_bytes())
        .expect("a MIME message");
    assert_eq!(parsed.attachment_count(), 1, "{reply}");
    let attachment = parsed.attachment(0).expect("the attachment");
    assert_eq!(attachment.attachment_name(), Some("quote.pdf"));
    assert_eq!(attachment.contents(), quote.as_slice(), "byte for byte");
    assert_eq!(
        header_of(&reply, "To").as_deref(),
        Some("grace@customer.test"),
        "{reply}"
    );
    assert_eq!(
        header_of(&reply, "Subject").as_deref(),
        Some("Re: Pricing for 20 seats")
    );
    assert_eq!(
        header_of(&reply, "In-Reply-To").as_deref(),
        Some("<ask-1@customer.test>")
    );
    let reply_id = header_of(&reply, "Message-ID").expect("the reply's Message-ID");

    let closed = run(format!(
        r#"mutation {{ closeConversation(input: {{conversationId: "{id}"}}) {{ userErrors {{ message }} }} }}"#
    ))
    .await;
    assert_eq!(
        closed["closeConversation"]["userErrors"],
        serde_json::json!([])
    );

    // The customer answers the reply from their mail client.
    swaks(vec![
        "--header".into(),
        "Subject: Re: Pricing for 20 seats".into(),
        "--header".into(),
        "Message-ID: <ask-2@customer.test>".into(),
        "--header".into(),
        format!("In-Reply-To: {reply_id}"),
        "--header".into(),
        format!("References: <ask-1@customer.test> {reply_id}"),
        "--body".into(),
        "Deal. Send the contract.".into(),
    ]);
    let one = format!(
        r#"{{ conversation(id: "{id}") {{ status timeline(first: 20) {{ nodes {{ kind bodyText }} }} }} }}"#
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let data = run(one.clone()).await;
        let inbound = data["conversation"]["timeline"]["nodes"]
            .as_array()
            .map(|n| n.iter().filter(|e| e["kind"] == "INBOUND_MESSAGE").count())
            .unwrap_or(0);
        if inbound == 2 {
            assert_eq!(data["conversation"]["status"], "OPEN", "reopened: {data}");
            break;
        }
        assert!(Instant::now() < deadline, "the answer did not join: {data}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = run(list).await;
    assert_eq!(
        all["conversations"]["nodes"].as_array().map(Vec::len),
        Some(1),
        "one conversation: {all}"
    );
    assert_eq!(server.terminate(), Some(0));
    let _ = relay.kill();
    let _ = relay.wait();
}

/// Every byte of the files in `dir` (recursively), for searching them.
pub(crate) fn bytes_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(bytes_under(&path));
        } else {
            found.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

/// A user's private account, set up entirely through the API with servers nobody here wrote:
/// its IMAP mailbox on Dovecot and its own SMTP server (aiosmtpd, with a login). The
/// connection test names the failing server; the mailbox is imported; the reply goes out
/// through the account's own server, not the installation's relay; mail posted over HTTP
/// needs the channel's ingest secret. No password or secret is readable back through the API
/// or stored in clear anywhere in the data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_account_set_through_the_api_is_tested_imported_and_answered_through_its_own_server()
 {
    use crate::dovecot::{Dovecot, PASSWORD, USER, dovecot_available};
    const SMTP_PASSWORD: &str = "smtp-pässword 42";
    const INGEST_SECRET: &str = "ingest-secret-0123456789abcdef";
    if !dovecot_available() {
        return;
    }
    let own_mail = TempDir::new().unwrap();
    let Some((mut own_smtp, own_port)) =
        smtp_server(own_mail.path(), Some(&format!("admin:{SMTP_PASSWORD}")))
    else {
        return;
    };
    let team_mail = TempDir::new().unwrap();
    let Some((mut team_relay, team_port)) = smtp_relay(team_mail.path()) else {
        return;
    };
    let dovecot = Dovecot::start();
    dovecot
        .append(
            "INBOX",
            &[
                b"From: Ada <ada@customer.example>\r\nTo: admin@mail.acme.test\r\n\
                Subject: Pricing\r\nMessage-ID: <p1@customer.example>\r\n\
                Date: Sun, 6 Dec 2026 09:00:00 +0000\r\n\r\nHow much for 20 seats?\r\n"
                    .to_vec(),
            ],
        )
        .await;

    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let token = text(&init_acme(&data_dir)).0.trim().to_owned();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!("smtp_relay_url = \"smtp://127.0.0.1:{team_port}?tls=none\"\n"),
    )
    .unwrap();
    let server = Server::start(&data_dir, &["--config", config.to_str().unwrap()]);
    let client = reqwest::Client::new();
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
    let run = |query: String| {
        let (client, server, token) = (&client, &server, &token);
        async move {
            let answer = graphql(client, server, Some(token), &query).await;
            assert!(answer.get("errors").is_none(), "{answer}");
            answer["data"].clone()
        }
    };
    let inbox =
        run(r#"mutation { createInbox(input: {name: "Support"}) { inbox { id } } }"#.into()).await
            ["createInbox"]["inbox"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let channel = run(format!(
        r#"mutation {{ connectEmailChannel(input: {{inboxId: "{inbox}", address: "admin@mail.acme.test", private: true}}) {{ channel {{ id }} }} }}"#
    ))
    .await["connectEmailChannel"]["channel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Set with a wrong IMAP password: saved, but the test names IMAP; SMTP logs in.
    let set = |imap_password: &str| {
        format!(
            r#"mutation {{ updateEmailChannel(input: {{channelId: "{channel}",
                imap: {{host: "127.0.0.1", port: {imap_port}, security: PLAIN, username: "{USER}", password: "{imap_password}"}},
                smtp: {{host: "127.0.0.1", port: {own_port}, security: PLAIN, username: "admin", password: "{SMTP_PASSWORD}"}},
                ingestSecret: "{INGEST_SECRET}"}}) {{
              userErrors {{ field code message }}
              channel {{ imap {{ host port security username mailbox }} smtp {{ host port username }} httpIngest }} }} }}"#,
            imap_port = dovecot.port
        )
    };
    let updated = run(set("not the password")).await;
    let text_of = updated.to_string();
    assert_eq!(
        updated["updateEmailChannel"]["userErrors"],
        serde_json::json!([]),
        "{text_of}"
    );
    let saved = &updated["updateEmailChannel"]["channel"];
    assert_eq!(saved["imap"]["username"], USER);
    assert_eq!(saved["imap"]["mailbox"], "INBOX");
    assert_eq!(saved["smtp"]["username"], "admin");
    assert_eq!(saved["httpIngest"], true);
    assert!(
        !text_of.contains(SMTP_PASSWORD) && !text_of.contains(INGEST_SECRET),
        "{text_of}"
    );
    let test = format!(
        r#"mutation {{ testEmailChannel(input: {{channelId: "{channel}"}}) {{
            userErrors {{ field code message }} imap {{ ok message }} smtp {{ ok message }} }} }}"#
    );
    let tested = run(test.clone()).await["testEmailChannel"].clone();
    assert_eq!(tested["userErrors"][0]["code"], "IMAP_FAILED", "{tested}");
    assert_eq!(
        tested["userErrors"][0]["field"],
        serde_json::json!(["input", "imap"])
    );
    assert_eq!(
        tested["userErrors"].as_array().unwrap().len(),
        1,
        "{tested}"
    );
    assert_eq!(
        (&tested["imap"]["ok"], &tested["smtp"]["ok"]),
        (&serde_json::json!(false), &serde_json::json!(true))
    );

    // The right password: both pass, and the mailbox is imported.
    assert_eq!(
        run(set(PASSWORD)).await["updateEmailChannel"]["userErrors"],
        serde_json::json!([])
    );
    let tested = run(test).await["testEmailChannel"].clone();
    assert_eq!(tested["userErrors"], serde_json::json!([]), "{tested}");
    assert_eq!(tested["imap"]["ok"], true);
    let deadline = Instant::now() + Duration::from_secs(30);
    let conversation = loop {
        let found = run(format!(
            r#"{{ conversations(first: 5, filter: {{inboxId: "{inbox}"}}) {{ nodes {{ id subject }} }} }}"#
        ))
        .await;
        if let Some(id) = found["conversations"]["nodes"][0]["id"].as_str() {
            assert_eq!(found["conversations"]["nodes"][0]["subject"], "Pricing");
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "the mailbox was never imported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The reply goes out through the account's own server, logged in.
    let replied = run(format!(
        r#"mutation {{ sendReply(input: {{conversationId: "{conversation}", bodyText: "200 EUR a month."}}) {{ userErrors {{ message }} }} }}"#
    ))
    .await;
    assert_eq!(replied["sendReply"]["userErrors"], serde_json::json!([]));
    let mail = relayed(own_mail.path(), 1).await;
    assert_eq!(
        header_of(&mail, "To").as_deref(),
        Some("ada@customer.example"),
        "{mail}"
    );
    assert_eq!(
        header_of(&mail, "In-Reply-To").as_deref(),
        Some("<p1@customer.example>")
    );
    assert!(
        header_of(&mail, "From")
            .unwrap()
            .contains("<admin@mail.acme.test>")
    );

    // Mail posted over HTTP needs the secret; with it, it is a conversation.
    let post = |secret: Option<&str>, body: &'static str| {
        let mut request = client
            .post(server.url(&format!("/ingest/email/{channel}")))
            .body(body);
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        request.send()
    };
    let posted = "From: Grace <grace@customer.example>\r\nTo: admin@mail.acme.test\r\n\
                  Subject: Posted\r\nMessage-ID: <h1@customer.example>\r\n\r\nBy webhook.\r\n";
    for refused in [None, Some("wrong-secret-0123456789abcdef")] {
        let response = post(refused, posted).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    }
    let response = post(Some(INGEST_SECRET), posted).await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["duplicate"], false, "{answer}");
    let again: serde_json::Value = post(Some(INGEST_SECRET), posted)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["conversationId"], answer["conversationId"]);
    let posted_conversation = answer["conversationId"].as_str().unwrap();
    let found = run(format!(
        r#"{{ conversation(id: "{posted_conversation}") {{ subject }} }}"#
    ))
    .await;
    assert_eq!(found["conversation"]["subject"], "Posted");

    assert_eq!(server.terminate(), Some(0));
    // Nothing went through the installation's relay.
    assert!(
        std::fs::read_dir(team_mail.path())
            .unwrap()
            .next()
            .is_none()
    );
    // No secret in clear anywhere in the data directory (log, secrets, key store, read models).
    for (path, bytes) in bytes_under(&data_dir) {
        for secret in [PASSWORD, SMTP_PASSWORD, INGEST_SECRET, "not the password"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds {secret:?} in clear",
                path.display()
            );
        }
    }
    for child in [&mut own_smtp, &mut team_relay] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
