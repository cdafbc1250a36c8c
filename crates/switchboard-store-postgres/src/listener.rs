//! Following the head written by every node: `LISTEN` on the schema's channel, plus a slow poll.
//!
//! Each append transaction calls `pg_notify(channel, new head)`, and PostgreSQL delivers that only
//! when the transaction commits, in commit order, to every listening session of every node. So a
//! notification always names a committed position, and the listener moves this node's head to it.
//!
//! Notifications sent while a session is not listening are lost (a dropped connection, a restart).
//! The listener therefore reads the head row right after every successful `LISTEN`, and again
//! every `poll` interval as a safety net; the head row only ever holds committed positions too.
//! The task runs until it is aborted, reconnecting with a growing delay when its connection fails.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use switchboard_store::Position;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use crate::reader::head_position;
use crate::schema::Sql;
use crate::writer::advance;

/// The first delay before reconnecting; it doubles up to the poll interval.
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// Starts the listener; abort the handle to stop it.
pub(crate) fn spawn(
    config: Config,
    sql: Arc<Sql>,
    head: watch::Sender<Position>,
    poll: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut retry = FIRST_RETRY;
        loop {
            match follow(&config, &sql, &head, poll, &mut retry).await {
                Ok(()) => tracing::warn!(schema = %sql.schema, "head listener connection closed"),
                Err(e) => tracing::warn!(schema = %sql.schema, error = %e, "head listener failed"),
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(poll.max(FIRST_RETRY));
        }
    })
}

/// Aborts the task driving a listener connection when the listener lets go of it.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Listens on one connection until it fails. Resets `retry` once listening works.
async fn follow(
    config: &Config,
    sql: &Sql,
    head: &watch::Sender<Position>,
    poll: Duration,
    retry: &mut Duration,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notes, mut received) = mpsc::unbounded_channel();
    // The connection delivers notifications only to whoever polls it for messages.
    let _driver = Driver(tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if notes.send(note.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "head listener connection failed");
                    break;
                }
            }
        }
    }));
    client.batch_execute(&sql.listen).await?;
    // Anything committed while nobody listened is in the head row.
    advance(head, read_head(&client, sql).await?);
    *retry = FIRST_RETRY;
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            note = received.recv() => {
                let Some(payload) = note else { return Ok(()) };
                match payload.parse::<u64>() {
                    Ok(position) => advance(head, Position(position)),
                    // Not one of ours: trust only the head row.
                    Err(_) => advance(head, read_head(&client, sql).await?),
                }
            }
            _ = ticker.tick() => advance(head, read_head(&client, sql).await?),
        }
    }
}

async fn read_head(client: &Client, sql: &Sql) -> Result<Position, tokio_postgres::Error> {
    let position: i64 = client.query_one(&sql.head, &[]).await?.try_get(0)?;
    match head_position(position) {
        Ok(position) => Ok(position),
        Err(e) => {
            // A damaged head row is reported by appends and reads; do not move subscribers.
            tracing::error!(error = %e, "cannot follow the head");
            Ok(Position::START)
        }
    }
}
