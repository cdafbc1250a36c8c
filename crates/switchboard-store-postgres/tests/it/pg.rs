//! Test helpers: finding the server (or deciding to skip), and a throw-away schema per test.

use std::io::Write;
use std::time::Duration;

use switchboard_store_postgres::{PostgresOptions, PostgresStore};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};
use uuid::Uuid;

/// Where the test server is.
pub(crate) const URL_VAR: &str = "SWITCHBOARD_TEST_POSTGRES_URL";
/// Set to `1` to fail, rather than skip, when the server is unreachable.
pub(crate) const REQUIRE_VAR: &str = "SWITCHBOARD_REQUIRE_POSTGRES";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How long a test waits for something asynchronous before failing.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// The server's URL when it answers. When it does not: panics if it is required, otherwise says
/// loudly that the test is skipped and returns `None`.
pub(crate) async fn server() -> Option<String> {
    let url = url();
    match raw(&url).await {
        Ok(_) => Some(url),
        Err(e) => {
            let (place, e) = (describe(&url), with_causes(&e));
            if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
                panic!("{REQUIRE_VAR}=1 but PostgreSQL is unreachable at {place}: {e}");
            }
            // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** skipping: PostgreSQL unreachable at {place} ({e}). Set {URL_VAR}, or \
                 {REQUIRE_VAR}=1 to make this a failure. ***\n"
            );
            None
        }
    }
}

/// A plain connection (the test user is a superuser), driven on the current runtime.
pub(crate) async fn raw(url: &str) -> Result<Client, tokio_postgres::Error> {
    let mut config: Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Host, port and database of a URL, without its credentials.
fn describe(url: &str) -> String {
    let Ok(config) = url.parse::<Config>() else {
        return format!("an unparseable {URL_VAR}");
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(host) => host.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{} port {} database {}",
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or("(default)")
    )
}

/// An error with its causes, which `tokio_postgres::Error`'s `Display` leaves out.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// `url` with an `application_name`, so that a test can find the store's sessions.
pub(crate) fn with_application_name(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}application_name={name}")
    } else {
        format!("{url} application_name={name}")
    }
}

/// A fresh schema, dropped with everything in it when the guard is dropped.
#[derive(Debug)]
pub(crate) struct TestSchema {
    url: String,
    pub(crate) name: String,
}

impl TestSchema {
    pub(crate) fn new(url: &str) -> TestSchema {
        TestSchema {
            url: url.to_owned(),
            name: format!("test_{}", Uuid::now_v7().simple()),
        }
    }

    pub(crate) fn options(&self) -> PostgresOptions {
        let mut options = PostgresOptions::new(&self.url);
        options.schema = self.name.clone();
        options.pool_size = 4;
        options
    }

    /// A store (a "node") on this schema, with `tweak` applied to the test options.
    pub(crate) async fn connect(&self, tweak: impl FnOnce(&mut PostgresOptions)) -> PostgresStore {
        let mut options = self.options();
        tweak(&mut options);
        PostgresStore::connect(options).await.unwrap()
    }

    /// `table` qualified with this schema.
    pub(crate) fn table(&self, table: &str) -> String {
        format!("\"{}\".{table}", self.name)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on a future: use a runtime of
        // our own on a thread of our own.
        let url = self.url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = raw(&url).await.map_err(|e| e.to_string())?;
                client.batch_execute(&sql).await.map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test schema {}: {e}", self.name),
            Err(_) => eprintln!("dropping test schema {} panicked", self.name),
        }
    }
}
