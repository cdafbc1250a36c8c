//! Leases on singleton tasks across nodes: a session-level advisory lock, taken and kept on a
//! connection of its own.
//!
//! The keeper connects, tries `pg_try_advisory_lock` on the lease's key (the schema and the
//! lease's name) until it gets it, says so, then checks its connection every
//! [`CHECK_EVERY`]. PostgreSQL releases a session's advisory locks when the session ends, so a
//! node that dies or loses its connection gives the lease up by itself, and another node's
//! keeper takes it at its next try. The session asks the server for frequent TCP keepalives, so
//! a holder that vanishes without closing its connection loses the lock within about 15 s. A
//! keeper whose connection fails or stops answering (each check waits [`CHECK_EVERY`]) says the
//! lease is lost, then connects and tries again. Between a connection's silent death and the
//! check that notices it, two nodes may both believe they hold a lease for a few seconds: the
//! tasks it guards must tolerate that (e-mail delivery is at least once). Sessions must be
//! PostgreSQL's own: a pooler in transaction or statement mode (PgBouncer) loses session locks.

use std::time::Duration;

use switchboard_store::Lease;
use tokio::sync::watch;
use tokio_postgres::{Config, NoTls};

/// How often a held lease's connection is checked, and a missing lease tried again.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Starts keeping the lease `name` of `schema`.
pub(crate) fn keep(config: Config, schema: String, name: String) -> Lease {
    let (held_tx, held) = watch::channel(false);
    let keeper = tokio::spawn(async move {
        // However the keeper ends (aborted, panicked), the lease reads as not held.
        let held_tx = NotHeldOnDrop(held_tx);
        let held_tx = &held_tx.0;
        let key = format!("{schema}/{name}");
        loop {
            if let Err(error) = hold(&config, &key, held_tx).await {
                tracing::warn!(lease = %key, %error, "lease connection failed; trying again");
            }
            held_tx.send_replace(false);
            tokio::time::sleep(CHECK_EVERY).await;
        }
    });
    Lease::kept_by(held, keeper)
}

/// Connects, takes the lease when it is free, and keeps it while the connection answers.
async fn hold(
    config: &Config,
    key: &str,
    held: &watch::Sender<bool>,
) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    // Stopped however `hold` ends, aborted included: the session, and the lock, end with it.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    // A holder that vanishes without closing its connection (a crash of its host, a network
    // partition) must lose the lock in seconds, not after the system's two-hour TCP keepalive:
    // the server probes this session often and gives up after a few unanswered probes.
    if let Err(error) = client
        .simple_query(
            "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; \
             SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000",
        )
        .await
    {
        tracing::warn!(lease = %key, %error, "keepalives could not be set on the lease connection");
    }
    async {
        loop {
            let taken: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtext('switchboard.lease'), hashtext($1))",
                    &[&key],
                )
                .await?
                .try_get(0)?;
            if taken {
                tracing::info!(lease = %key, "lease taken");
                held.send_replace(true);
                loop {
                    tokio::time::sleep(CHECK_EVERY).await;
                    // A connection that stopped answering (a dead network does not say so)
                    // counts as lost: PostgreSQL may already have ended the session.
                    match tokio::time::timeout(CHECK_EVERY, client.simple_query("SELECT 1")).await {
                        Ok(answer) => drop(answer?),
                        Err(_) => {
                            tracing::warn!(lease = %key, "lease connection stopped answering");
                            return Ok(());
                        }
                    }
                }
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }
    .await
}

/// Says "not held" when dropped.
struct NotHeldOnDrop(watch::Sender<bool>);

impl Drop for NotHeldOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
