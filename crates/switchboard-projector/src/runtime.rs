//! Running projectors beside each other, each from its own checkpoint.
//!
//! One feed task subscribes to the store after the smallest checkpoint, gathers the events that
//! are ready (up to [`BATCH`]), decodes them once and hands the same decoded batch to every
//! projector. Each projector has a task of its own that applies what is queued for it (several
//! batches at once, up to [`MAX_TRANSACTION`] events, when it has fallen behind) in one
//! read-model transaction with its checkpoint ([`crate::model::apply_events`]), skipping what its
//! checkpoint already includes. The queues are bounded, so the feed runs at most [`QUEUE`]
//! batches ahead of the slowest projector. A projector that fails on an event stops, with the
//! event's position and type in its status; the others go on. [`ProjectionRuntime::wait_for`] is
//! what read-your-writes waits on; [`ProjectionRuntime::lag`] what `/readyz` and metrics report.
//! Each read model's write-ahead log is copied into its database file by a checkpointer thread
//! beside its projector ([`Checkpointer`]), never inside a batch's commit.
//!
//! Files: a read model lives in `<name>.<generation>.sqlite3`, and `<name>.current` names the
//! generation in use. [`ProjectionRuntime::rebuild`] builds generation n+1 from the start of the
//! log while generation n keeps answering queries, then switches over: no downtime, and a crash
//! mid-rebuild leaves generation n in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::StreamExt;
use proto_events::Envelope;
use rusqlite::Connection;
use switchboard_sqlite::Checkpointer;
use switchboard_store::{EventStore, Position, RecordedEvent, StoreError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::model::{self, BatchError, Checkpoint, ReadModel};
use crate::projector::{Event, Projector};

/// Most events the feed reads and decodes at once.
pub const BATCH: usize = 1024;

/// Most events applied in one read-model transaction: a projector that has fallen behind (a
/// rebuild, a restart after downtime) applies several batches at once (waiting for the feed to
/// read them while behind the head), so that the rows every batch touches (the ends of
/// indexes, running totals) are written once per transaction.
pub const MAX_TRANSACTION: usize = 16 * BATCH;

/// The longest a projector behind the head waits for its feed's next batch to fill a
/// transaction ([`MAX_TRANSACTION`]) before applying what it has.
const FILL_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Decoded batches queued per projector.
pub const QUEUE: usize = 32;

/// The least time between two checkpoints of a read model's write-ahead log. Checkpoints run
/// beside the projector ([`Checkpointer`]); inside a commit, SQLite's own would hold a live
/// event back for tens of milliseconds every few hundred batches.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Why the runtime could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A read model's database could not be opened or written (INTERNAL).
    #[error("read model {name}: {source}")]
    Database {
        /// The projector.
        name: String,
        /// The failure.
        #[source]
        source: rusqlite::Error,
    },
    /// A file of the read models directory could not be used (INTERNAL).
    #[error("read models directory: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed (retry).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The deadline passed before every read model reached the position: answer with a clear
    /// "not yet consistent" error and let the client retry.
    #[error("read models did not reach position {position} in time (slowest: {slowest} at {at})")]
    Timeout {
        /// The position waited for.
        position: Position,
        /// The projector furthest behind.
        slowest: &'static str,
        /// Where it was.
        at: Position,
    },
    /// A projector stopped on an event and will not get further until fixed (INTERNAL).
    #[error("{0}")]
    Failed(String),
    /// No projector has this name (BAD_USER_INPUT for the CLI).
    #[error("no projector named {0:?}")]
    Unknown(String),
}

/// Where one projector stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Opening its read model.
    Starting,
    /// Applying events; everything up to the checkpoint is in the read model.
    Running(Checkpoint),
    /// Stopped on an event: the error names it. The read model holds everything before it.
    Failed(Checkpoint, String),
}

impl Status {
    fn checkpoint(&self) -> Position {
        self.checkpoint_record().position
    }

    fn checkpoint_record(&self) -> Checkpoint {
        match self {
            Status::Starting => Checkpoint::default(),
            Status::Running(c) | Status::Failed(c, _) => *c,
        }
    }
}

/// How far behind the store one read model is.
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    /// The projector.
    pub name: &'static str,
    /// The last position it applied.
    pub checkpoint: Position,
    /// The store's head when asked.
    pub head: Position,
    /// `head - checkpoint`.
    pub positions_behind: u64,
    /// How long ago the store recorded the oldest event it has not applied; zero when it is caught
    /// up.
    pub seconds_behind: f64,
    /// The error that stopped it, if it stopped.
    pub failed: Option<String>,
}

struct Entry {
    projector: Arc<dyn Projector>,
    model: Arc<ReadModel>,
    /// Shared by every runner this projector has had (a rebuild starts a new one).
    status: Arc<watch::Sender<Status>>,
    runner: Mutex<Option<Runner>>,
}

/// Tasks stopped together: a projector's task (and the feed it has to itself after a rebuild),
/// or a feed shared by several projectors.
struct Runner {
    stops: Vec<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Runner {
    /// Stops the tasks after what they are doing and waits for them.
    async fn stop(self) {
        for stop in &self.stops {
            let _ = stop.send(true);
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// One runner stopping the tasks of both.
    fn merge(mut self, other: Runner) -> Runner {
        self.stops.extend(other.stops);
        self.tasks.extend(other.tasks);
        self
    }
}

/// The projectors of one node and their read models.
pub struct ProjectionRuntime {
    store: Arc<dyn EventStore>,
    dir: PathBuf,
    entries: Vec<Entry>,
    /// The feed the projectors started with share.
    feed: Mutex<Option<Runner>>,
}

impl std::fmt::Debug for ProjectionRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|e| e.projector.name()).collect();
        f.debug_struct("ProjectionRuntime")
            .field("dir", &self.dir)
            .field("projectors", &names)
            .finish()
    }
}

fn generation_file(dir: &Path, name: &str, generation: u64) -> PathBuf {
    dir.join(format!("{name}.{generation}.sqlite3"))
}

fn current_generation(dir: &Path, name: &str) -> std::io::Result<u64> {
    match std::fs::read_to_string(dir.join(format!("{name}.current"))) {
        Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Points `<name>.current` at `generation`, atomically.
fn set_current_generation(dir: &Path, name: &str, generation: u64) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.current.tmp"));
    std::fs::write(&tmp, generation.to_string())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(tmp, dir.join(format!("{name}.current")))
}

/// Removes the files of generations other than `keep`.
fn remove_other_generations(dir: &Path, name: &str, keep: u64) -> std::io::Result<()> {
    let prefix = format!("{name}.");
    for entry in std::fs::read_dir(dir)? {
        let file = entry?.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let Some((generation, _)) = rest.split_once(".sqlite3") else {
            continue;
        };
        if generation.parse::<u64>().is_ok_and(|g| g != keep) {
            std::fs::remove_file(dir.join(file))?;
        }
    }
    Ok(())
}

impl ProjectionRuntime {
    /// Starts every projector from its checkpoint, with read models in `dir`.
    pub fn start(
        store: Arc<dyn EventStore>,
        dir: impl Into<PathBuf>,
        projectors: Vec<Arc<dyn Projector>>,
    ) -> Result<ProjectionRuntime, RuntimeError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let mut entries = Vec::new();
        let mut members = Vec::new();
        for projector in projectors {
            let name = projector.name();
            let generation = current_generation(&dir, name)?;
            remove_other_generations(&dir, name, generation)?;
            let path = generation_file(&dir, name, generation);
            // Create (or migrate) the database now, so queries work before the first event.
            let (conn, checkpoint) =
                model::open_for_writing(&path, projector.as_ref()).map_err(|source| {
                    RuntimeError::Database {
                        name: name.to_owned(),
                        source,
                    }
                })?;
            let status = Arc::new(watch::channel(Status::Starting).0);
            members.push(Member {
                writer: ModelWriter::new(conn, projector.clone(), &path, checkpoint)?,
                checkpoint,
                status: status.clone(),
            });
            entries.push(Entry {
                model: ReadModel::new(name, path),
                projector,
                status,
                runner: Mutex::new(None),
            });
        }
        let (feed, runners) = spawn_group(store.clone(), members);
        for (entry, runner) in entries.iter().zip(runners) {
            if let Ok(mut slot) = entry.runner.lock() {
                *slot = Some(runner);
            }
        }
        Ok(ProjectionRuntime {
            store,
            dir,
            entries,
            feed: Mutex::new(feed),
        })
    }

    /// The read model of the projector called `name`, for queries.
    pub fn read_model(&self, name: &str) -> Option<Arc<ReadModel>> {
        self.entry(name).map(|e| e.model.clone())
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.projector.name() == name)
    }

    /// Each projector's status.
    pub fn statuses(&self) -> Vec<(&'static str, Status)> {
        self.entries
            .iter()
            .map(|e| (e.projector.name(), e.status.borrow().clone()))
            .collect()
    }

    /// The position every read model includes now: the smallest checkpoint (a stopped read
    /// model's included). What a read started after this call sees includes at least this much.
    pub fn included(&self) -> Position {
        self.entries
            .iter()
            .map(|e| e.status.borrow().checkpoint())
            .min()
            .unwrap_or_default()
    }

    /// Waits until every read model includes `position`, or fails at `deadline`.
    pub async fn wait_for(
        &self,
        position: Position,
        deadline: Instant,
    ) -> Result<(), RuntimeError> {
        for entry in &self.entries {
            let mut status = entry.status.subscribe();
            let reached = tokio::time::timeout_at(
                deadline,
                status.wait_for(|s| s.checkpoint() >= position || matches!(s, Status::Failed(..))),
            )
            .await;
            match reached {
                Ok(Ok(s)) => {
                    if let Status::Failed(c, error) = &*s
                        && c.position < position
                    {
                        return Err(RuntimeError::Failed(error.clone()));
                    }
                }
                Ok(Err(_)) => {
                    return Err(RuntimeError::Failed(format!(
                        "projector {} stopped",
                        entry.projector.name()
                    )));
                }
                Err(_) => {
                    return Err(RuntimeError::Timeout {
                        position,
                        slowest: entry.projector.name(),
                        at: entry.status.borrow().checkpoint(),
                    });
                }
            }
        }
        Ok(())
    }

    /// How far behind the store each read model is. `seconds_behind` is the age of the oldest
    /// event a read model has not applied yet (zero when it has applied everything), so a quiet
    /// night followed by one new event does not look like hours of lag.
    pub async fn lag(&self) -> Result<Vec<Lag>, RuntimeError> {
        let head = self.store.head().await?;
        let now = Utc::now();
        let mut lags = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let status = e.status.borrow().clone();
            let (checkpoint, failed) = match &status {
                Status::Starting => (Checkpoint::default(), None),
                Status::Running(c) => (*c, None),
                Status::Failed(c, error) => (*c, Some(error.clone())),
            };
            let behind = head.0.saturating_sub(checkpoint.position.0);
            let seconds_behind = if behind == 0 {
                0.0
            } else {
                match self.store.read_all(checkpoint.position, 1).await?.first() {
                    Some(oldest) => {
                        (now - oldest.recorded_at).num_milliseconds().max(0) as f64 / 1000.0
                    }
                    None => 0.0,
                }
            };
            lags.push(Lag {
                name: e.projector.name(),
                checkpoint: checkpoint.position,
                head,
                positions_behind: behind,
                seconds_behind,
                failed,
            });
        }
        Ok(lags)
    }

    /// Rebuilds one read model from the start of the log into a fresh copy while the current one
    /// keeps answering queries, then switches queries and the live projector to the copy.
    pub async fn rebuild(&self, name: &str) -> Result<(), RuntimeError> {
        self.rebuild_reporting(name, None).await
    }

    /// [`Self::rebuild`], announcing on `progress` the position the copy has reached after each
    /// batch (for progress bars).
    pub async fn rebuild_reporting(
        &self,
        name: &str,
        progress: Option<&watch::Sender<Position>>,
    ) -> Result<(), RuntimeError> {
        let entry = self
            .entry(name)
            .ok_or_else(|| RuntimeError::Unknown(name.to_owned()))?;
        let projector = entry.projector.clone();
        let generation = current_generation(&self.dir, name)? + 1;
        let path = generation_file(&self.dir, name, generation);
        remove_other_generations(&self.dir, name, current_generation(&self.dir, name)?)?;
        // Build the copy up to the head as it is now; the live projector goes on meanwhile.
        let head = self.store.head().await?;
        catch_up_file(&self.store, projector.clone(), &path, head, progress).await?;
        // Stop the live projector, finish the copy up to where the log is now, and switch.
        let old = entry.runner.lock().ok().and_then(|mut r| r.take());
        if let Some(old) = old {
            old.stop().await;
        }
        let switched = async {
            let head = self.store.head().await?;
            catch_up_file(&self.store, projector.clone(), &path, head, progress).await?;
            set_current_generation(&self.dir, name, generation)?;
            Ok::<(), RuntimeError>(())
        }
        .await;
        // On success the live projector continues on the copy, from the copy's checkpoint; on
        // failure it goes back to the generation queries still use, as if nothing happened.
        let live = match &switched {
            Ok(()) => {
                entry.model.swap(path.clone());
                path
            }
            Err(error) => {
                tracing::error!(projector = name, %error, "rebuild failed; keeping the current read model");
                generation_file(&self.dir, name, generation - 1)
            }
        };
        let runner = match ModelWriter::open(projector, live).await {
            Ok((writer, checkpoint)) => {
                let member = Member {
                    writer,
                    checkpoint,
                    status: entry.status.clone(),
                };
                // The projector now follows the log on a feed of its own.
                let (feed, runners) = spawn_group(self.store.clone(), vec![member]);
                runners.into_iter().fold(
                    feed.unwrap_or(Runner {
                        stops: Vec::new(),
                        tasks: Vec::new(),
                    }),
                    Runner::merge,
                )
            }
            Err(error) => {
                let checkpoint = entry.status.borrow().checkpoint_record();
                entry
                    .status
                    .send_replace(Status::Failed(checkpoint, error.to_string()));
                return switched.and(Err(error));
            }
        };
        if let Ok(mut slot) = entry.runner.lock() {
            *slot = Some(runner);
        }
        switched
    }

    /// Rebuilds every read model, one after the other (see [`Self::rebuild`]).
    pub async fn rebuild_all(&self) -> Result<(), RuntimeError> {
        for entry in &self.entries {
            self.rebuild(entry.projector.name()).await?;
        }
        Ok(())
    }

    /// Stops every projector, after its current batch.
    pub async fn shutdown(&self) {
        for entry in &self.entries {
            let runner = entry.runner.lock().ok().and_then(|mut r| r.take());
            if let Some(runner) = runner {
                runner.stop().await;
            }
        }
        let feed = self.feed.lock().ok().and_then(|mut f| f.take());
        if let Some(feed) = feed {
            feed.stop().await;
        }
    }
}

/// A read model's writing connection, used from the blocking pool one transaction at a time,
/// and the checkpointer that copies its write-ahead log into the database file after commits.
///
/// A read model that starts from position 0 is built without a write-ahead log
/// ([`model::begin_build`]) until it first reaches the head of the log, or until it is closed
/// before that; then it switches to the log, is flushed, and gets its checkpointer
/// ([`model::finish_build`]).
struct ModelWriter {
    conn: Option<Connection>,
    checkpointer: Option<Checkpointer>,
    projector: Arc<dyn Projector>,
    path: PathBuf,
    /// Whether the read model is being built from the start of the log.
    building: bool,
    /// Whether this writer has applied a batch at the head (and so run `caught_up`).
    caught_up: bool,
}

impl ModelWriter {
    /// A writer on `conn`, the writing connection of the read model at `path`, which stands at
    /// `checkpoint`.
    fn new(
        conn: Connection,
        projector: Arc<dyn Projector>,
        path: &Path,
        checkpoint: Checkpoint,
    ) -> std::io::Result<ModelWriter> {
        let building = checkpoint.position == Position::START && model::begin_build(&conn, path)?;
        let checkpointer = if building {
            None
        } else {
            Some(Checkpointer::spawn(
                &conn,
                path.to_owned(),
                projector.name(),
                CHECKPOINT_EVERY,
            )?)
        };
        Ok(ModelWriter {
            conn: Some(conn),
            checkpointer,
            projector,
            path: path.to_owned(),
            building,
            caught_up: false,
        })
    }

    /// After [`model::finish_build`]: starts the checkpointer. A failure (a reader held the
    /// database past the busy timeout) leaves the build on, to be finished after the next batch
    /// or when closing; until then the marker stays.
    fn finished_build(&mut self, conn: &Connection, finished: std::io::Result<()>) {
        if let Err(error) = finished {
            tracing::warn!(projector = self.projector.name(), %error, "could not end the read model's build yet");
            return;
        }
        self.building = false;
        match Checkpointer::spawn(
            conn,
            self.path.clone(),
            self.projector.name(),
            CHECKPOINT_EVERY,
        ) {
            Ok(checkpointer) => self.checkpointer = Some(checkpointer),
            Err(error) => {
                tracing::warn!(projector = self.projector.name(), %error, "no checkpointer: SQLite checkpoints in commits");
            }
        }
    }

    /// Ends a build still under way (keeping what was applied), then stops the checkpointer
    /// after it has folded the whole log into the database.
    async fn close(mut self) {
        if self.building
            && let Some(conn) = self.conn.take()
        {
            let path = self.path.clone();
            let name = self.projector.name();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(error) = model::finish_build(&conn, &path) {
                    tracing::warn!(projector = name, %error, "could not end the read model's build: it starts again next time");
                }
            })
            .await;
        }
        if let Some(checkpointer) = self.checkpointer.take() {
            let _ = tokio::task::spawn_blocking(move || checkpointer.stop()).await;
        }
    }

    /// Opens (creating or migrating) the read model at `path`; returns it with its checkpoint.
    async fn open(
        projector: Arc<dyn Projector>,
        path: PathBuf,
    ) -> Result<(ModelWriter, Checkpoint), RuntimeError> {
        let name = projector.name();
        let opening = projector.clone();
        let file = path.clone();
        let (conn, checkpoint) =
            tokio::task::spawn_blocking(move || model::open_for_writing(&file, opening.as_ref()))
                .await
                .map_err(|e| RuntimeError::Failed(e.to_string()))?
                .map_err(|source| RuntimeError::Database {
                    name: name.to_owned(),
                    source,
                })?;
        let writer = tokio::task::spawn_blocking(move || {
            ModelWriter::new(conn, projector, &path, checkpoint)
        })
        .await
        .map_err(|e| RuntimeError::Failed(e.to_string()))??;
        Ok((writer, checkpoint))
    }

    /// Applies the events of `batches` after `after` in one transaction with the checkpoint
    /// ([`model::apply_events`]); `None` if there was nothing after `after`.
    async fn apply(
        &mut self,
        batches: Vec<Arc<Decoded>>,
        after: Position,
    ) -> Result<Option<Checkpoint>, RuntimeError> {
        // `caught_up` is work for the first time the read model reaches the head (building
        // indexes); after that, each live batch at the head would only repeat it for nothing.
        let at_head = batches.last().is_some_and(|b| b.at_head) && !self.caught_up;
        let mut conn = self
            .conn
            .take()
            .ok_or_else(|| RuntimeError::Failed("read model connection lost".into()))?;
        let projector = self.projector.clone();
        let (mut conn, applied) = tokio::task::spawn_blocking(move || {
            let events: Vec<Event<'_>> = batches
                .iter()
                .flat_map(|batch| batch.events())
                .filter(|event| event.envelope.position > after.0)
                .collect();
            if events.is_empty() {
                return (conn, Ok(None));
            }
            let _span = tracing::debug_span!("projection_batch", events = events.len()).entered();
            let applied =
                model::apply_events(&mut conn, projector.as_ref(), &events, at_head).map(Some);
            (conn, applied)
        })
        .await
        .map_err(|e| RuntimeError::Failed(e.to_string()))?;
        let applied = applied.map_err(|e| RuntimeError::Failed(e.to_string()));
        if self.building && (at_head || self.caught_up) && matches!(applied, Ok(Some(_))) {
            // The read model reached the head: from here on its commits must be durable.
            let path = self.path.clone();
            let (back, finished) = tokio::task::spawn_blocking(move || {
                let finished = model::finish_build(&conn, &path);
                (conn, finished)
            })
            .await
            .map_err(|e| RuntimeError::Failed(e.to_string()))?;
            conn = back;
            self.finished_build(&conn, finished);
        }
        self.conn = Some(conn);
        let applied = applied?;
        if applied.is_some()
            && let Some(checkpointer) = &self.checkpointer
        {
            checkpointer.nudge();
        }
        if at_head && applied.is_some() {
            self.caught_up = true;
        }
        Ok(applied)
    }
}

/// Events read once from the store and decoded once, shared by every projector of a feed.
#[derive(Debug)]
struct Decoded {
    envelopes: Vec<Envelope>,
    /// Whether the batch reached the head of the log as it was when read.
    at_head: bool,
}

impl Decoded {
    fn events(&self) -> impl Iterator<Item = Event<'_>> {
        self.envelopes.iter().map(Event::decoded)
    }
}

/// Decodes stored events.
fn decode(recorded: Vec<RecordedEvent>, at_head: bool) -> Result<Decoded, BatchError> {
    let mut envelopes = Vec::with_capacity(recorded.len());
    for event in recorded {
        let envelope = switchboard_codec::decode(&event).map_err(|e| BatchError {
            projector: "decoder",
            position: event.position,
            event_type: event.event_type.clone(),
            source: crate::ApplyError::Inconsistent(e.to_string()),
        })?;
        envelopes.push(envelope);
    }
    Ok(Decoded { envelopes, at_head })
}

/// [`decode`] on the blocking pool, for a feed.
async fn decode_blocking(recorded: Vec<RecordedEvent>, at_head: bool) -> Fed {
    match tokio::task::spawn_blocking(move || decode(recorded, at_head)).await {
        Ok(Ok(decoded)) => Ok(Arc::new(decoded)),
        Ok(Err(error)) => Err(error.to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// Applies the log from the file's checkpoint up to `until` to the read model at `path`.
async fn catch_up_file(
    store: &Arc<dyn EventStore>,
    projector: Arc<dyn Projector>,
    path: &Path,
    until: Position,
    progress: Option<&watch::Sender<Position>>,
) -> Result<(), RuntimeError> {
    let (mut writer, mut checkpoint) = ModelWriter::open(projector, path.to_owned()).await?;
    while checkpoint.position < until {
        let page = store.read_all(checkpoint.position, MAX_TRANSACTION).await?;
        let Some(last) = page.last() else { break };
        let at_head = page.len() < MAX_TRANSACTION || last.position >= until;
        let decoded = tokio::task::spawn_blocking(move || decode(page, at_head))
            .await
            .map_err(|e| RuntimeError::Failed(e.to_string()))?
            .map_err(|e| RuntimeError::Failed(e.to_string()))?;
        match writer
            .apply(vec![Arc::new(decoded)], checkpoint.position)
            .await?
        {
            Some(applied) => checkpoint = applied,
            None => break,
        }
        if let Some(progress) = progress {
            progress.send_replace(checkpoint.position);
        }
    }
    writer.close().await;
    Ok(())
}

/// What a feed hands its projectors: a decoded batch, or why the feed stopped.
type Fed = Result<Arc<Decoded>, String>;

/// A projector about to follow a feed: its open read model, where it stands, its status.
struct Member {
    writer: ModelWriter,
    checkpoint: Checkpoint,
    status: Arc<watch::Sender<Status>>,
}

/// Starts one feed for `members` (from the smallest checkpoint) and one task per member.
/// Returns the feed's runner (`None` without members) and one runner per member.
fn spawn_group(store: Arc<dyn EventStore>, members: Vec<Member>) -> (Option<Runner>, Vec<Runner>) {
    let Some(after) = members.iter().map(|m| m.checkpoint.position).min() else {
        return (None, Vec::new());
    };
    let mut queues = Vec::with_capacity(members.len());
    let mut runners = Vec::with_capacity(members.len());
    for member in members {
        let (queue, batches) = mpsc::channel(QUEUE);
        queues.push(queue);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let Member {
                writer,
                checkpoint,
                status,
            } = member;
            let mut writer = writer;
            let projector = writer.projector.name();
            status.send_replace(Status::Running(checkpoint));
            if let Err(error) = consume(&mut writer, checkpoint, batches, &status, stopped).await {
                tracing::error!(projector, %error, "projector stopped");
                let checkpoint = status.borrow().checkpoint_record();
                status.send_replace(Status::Failed(checkpoint, error));
            }
            writer.close().await;
        });
        runners.push(Runner {
            stops: vec![stop],
            tasks: vec![task],
        });
    }
    let (stop, stopped) = watch::channel(false);
    let feed = Runner {
        stops: vec![stop],
        tasks: vec![tokio::spawn(run_feed(store, after, queues, stopped))],
    };
    (Some(feed), runners)
}

/// Reads the log after `after` once, decodes each batch once and queues it for every projector
/// still following. Ends when stopped, when the store closes, when no projector follows any
/// more, or after handing them an event it could not read or decode.
#[tracing::instrument(skip_all, fields(after = after.0))]
async fn run_feed(
    store: Arc<dyn EventStore>,
    after: Position,
    mut queues: Vec<mpsc::Sender<Fed>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut events = store.subscribe_all(after).ready_chunks(BATCH);
    while !queues.is_empty() {
        let chunk = tokio::select! {
            _ = stopped.changed() => return,
            chunk = events.next() => chunk,
        };
        let Some(chunk) = chunk else { return };
        let fed: Fed = match chunk.into_iter().collect::<Result<Vec<_>, _>>() {
            Err(error) => Err(error.to_string()),
            Ok(recorded) => {
                // A chunk shorter than a full one ends what was stored; a full one may too.
                let last = recorded.last().map_or(Position::START, |e| e.position);
                let at_head =
                    recorded.len() < BATCH || store.head().await.is_ok_and(|head| last >= head);
                decode_blocking(recorded, at_head).await
            }
        };
        let failed = fed.is_err();
        let mut following = Vec::with_capacity(queues.len());
        for queue in queues {
            // A projector that stopped (failed, or was stopped for a rebuild) dropped its queue.
            if queue.send(fed.clone()).await.is_ok() {
                following.push(queue);
            }
        }
        queues = following;
        if failed {
            return;
        }
    }
}

/// One projector's task: applies the batches its feed queues, several at once when they pile up.
#[tracing::instrument(skip_all, fields(projector = writer.projector.name()))]
async fn consume(
    writer: &mut ModelWriter,
    mut checkpoint: Checkpoint,
    mut batches: mpsc::Receiver<Fed>,
    status: &watch::Sender<Status>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), String> {
    let name = writer.projector.name();
    loop {
        let first = tokio::select! {
            _ = stopped.changed() => return Ok(()),
            first = batches.recv() => first,
        };
        // The feed ended: the store closed, or the runtime is shutting down.
        let Some(first) = first else { return Ok(()) };
        let mut failure = None;
        let mut taken = Vec::new();
        let mut events = 0;
        let mut next = Some(first);
        while let Some(fed) = next.take() {
            let catching_up = match fed {
                Ok(batch) => {
                    events += batch.envelopes.len();
                    let catching_up = !batch.at_head;
                    taken.push(batch);
                    catching_up
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            if events >= MAX_TRANSACTION {
                break;
            }
            next = if catching_up {
                // Behind the head, a projector that keeps up with its feed would otherwise
                // apply each batch as it comes and write the rows a batch touches (headers,
                // the last chunk of a list) once per batch: it waits to fill a transaction,
                // but not past `FILL_WAIT`, in case the batch was the last one after all (the
                // feed could not read the store's head, or another node's head ran ahead).
                tokio::select! {
                    _ = stopped.changed() => return Ok(()),
                    fed = tokio::time::timeout(FILL_WAIT, batches.recv()) => fed.ok().flatten(),
                }
            } else {
                batches.try_recv().ok()
            };
        }
        if !taken.is_empty()
            && let Some(applied) = writer
                .apply(taken, checkpoint.position)
                .await
                .map_err(|e| e.to_string())?
        {
            checkpoint = applied;
            status.send_replace(Status::Running(checkpoint));
        }
        if let Some(error) = failure {
            return Err(format!("projector {name}: {error}"));
        }
    }
}
