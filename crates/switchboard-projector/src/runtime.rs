//! Running projectors beside each other, each from its own checkpoint.
//!
//! Each projector gets a task that subscribes to the store after its checkpoint, gathers the
//! events that are ready (up to [`BATCH`]) and applies them in one read-model transaction with the
//! checkpoint ([`crate::model::apply_batch`]). A projector that fails on an event stops, with the
//! event's position and type in its status; the others go on. [`ProjectionRuntime::wait_for`] is
//! what read-your-writes waits on; [`ProjectionRuntime::lag`] what `/readyz` and metrics report.
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
use switchboard_store::{EventStore, Position, RecordedEvent, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::model::{self, BatchError, Checkpoint, ReadModel};
use crate::projector::Projector;

/// Most events applied in one read-model transaction.
pub const BATCH: usize = 1024;

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
        match self {
            Status::Starting => Position::START,
            Status::Running(c) | Status::Failed(c, _) => c.position,
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

struct Runner {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The projectors of one node and their read models.
pub struct ProjectionRuntime {
    store: Arc<dyn EventStore>,
    dir: PathBuf,
    entries: Vec<Entry>,
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
        for projector in projectors {
            let name = projector.name();
            let generation = current_generation(&dir, name)?;
            remove_other_generations(&dir, name, generation)?;
            let path = generation_file(&dir, name, generation);
            // Create (or migrate) the database now, so queries work before the first event.
            model::open_for_writing(&path, projector.as_ref()).map_err(|source| {
                RuntimeError::Database {
                    name: name.to_owned(),
                    source,
                }
            })?;
            let status = Arc::new(watch::channel(Status::Starting).0);
            let runner = spawn_runner(
                store.clone(),
                projector.clone(),
                path.clone(),
                status.clone(),
            );
            entries.push(Entry {
                model: ReadModel::new(name, path),
                projector,
                status,
                runner: Mutex::new(Some(runner)),
            });
        }
        Ok(ProjectionRuntime {
            store,
            dir,
            entries,
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
        let entry = self
            .entry(name)
            .ok_or_else(|| RuntimeError::Unknown(name.to_owned()))?;
        let projector = entry.projector.clone();
        let generation = current_generation(&self.dir, name)? + 1;
        let path = generation_file(&self.dir, name, generation);
        remove_other_generations(&self.dir, name, current_generation(&self.dir, name)?)?;
        // Build the copy up to the head as it is now; the live projector goes on meanwhile.
        let head = self.store.head().await?;
        catch_up_file(&self.store, projector.clone(), &path, head).await?;
        // Stop the live projector, finish the copy up to where the log is now, and switch.
        let old = entry.runner.lock().ok().and_then(|mut r| r.take());
        if let Some(old) = old {
            let _ = old.stop.send(true);
            let _ = old.task.await;
        }
        let switched = async {
            let head = self.store.head().await?;
            catch_up_file(&self.store, projector.clone(), &path, head).await?;
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
        let runner = spawn_runner(self.store.clone(), projector, live, entry.status.clone());
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
                let _ = runner.stop.send(true);
                let _ = runner.task.await;
            }
        }
    }
}

/// A read model's writing connection, used from the blocking pool one batch at a time.
struct ModelWriter {
    conn: Option<Connection>,
    projector: Arc<dyn Projector>,
}

impl ModelWriter {
    /// Opens (creating or migrating) the read model at `path`; returns it with its checkpoint.
    async fn open(
        projector: Arc<dyn Projector>,
        path: PathBuf,
    ) -> Result<(ModelWriter, Checkpoint), RuntimeError> {
        let name = projector.name();
        let opening = projector.clone();
        let (conn, checkpoint) =
            tokio::task::spawn_blocking(move || model::open_for_writing(&path, opening.as_ref()))
                .await
                .map_err(|e| RuntimeError::Failed(e.to_string()))?
                .map_err(|source| RuntimeError::Database {
                    name: name.to_owned(),
                    source,
                })?;
        Ok((
            ModelWriter {
                conn: Some(conn),
                projector,
            },
            checkpoint,
        ))
    }

    /// Applies one batch with its checkpoint ([`model::apply_batch`]).
    async fn apply(&mut self, envelopes: Vec<Envelope>) -> Result<Checkpoint, RuntimeError> {
        let mut conn = self
            .conn
            .take()
            .ok_or_else(|| RuntimeError::Failed("read model connection lost".into()))?;
        let projector = self.projector.clone();
        let (conn, applied) = tokio::task::spawn_blocking(move || {
            let _span =
                tracing::debug_span!("projection_batch", events = envelopes.len()).entered();
            let applied = model::apply_batch(&mut conn, projector.as_ref(), &envelopes);
            (conn, applied)
        })
        .await
        .map_err(|e| RuntimeError::Failed(e.to_string()))?;
        self.conn = Some(conn);
        applied.map_err(|e| RuntimeError::Failed(e.to_string()))
    }
}

/// Applies the log from the file's checkpoint up to `until` to the read model at `path`.
async fn catch_up_file(
    store: &Arc<dyn EventStore>,
    projector: Arc<dyn Projector>,
    path: &Path,
    until: Position,
) -> Result<(), RuntimeError> {
    let (mut writer, mut checkpoint) = ModelWriter::open(projector, path.to_owned()).await?;
    while checkpoint.position < until {
        let page = store.read_all(checkpoint.position, BATCH * 4).await?;
        if page.is_empty() {
            break;
        }
        let envelopes = decode_all(&page).map_err(|e| RuntimeError::Failed(e.to_string()))?;
        checkpoint = writer.apply(envelopes).await?;
    }
    Ok(())
}

fn decode_all(events: &[RecordedEvent]) -> Result<Vec<Envelope>, BatchError> {
    events
        .iter()
        .map(|recorded| {
            switchboard_codec::decode(recorded).map_err(|e| BatchError {
                projector: "decoder",
                position: recorded.position,
                event_type: recorded.event_type.clone(),
                source: crate::ApplyError::Inconsistent(e.to_string()),
            })
        })
        .collect()
}

fn spawn_runner(
    store: Arc<dyn EventStore>,
    projector: Arc<dyn Projector>,
    path: PathBuf,
    status: Arc<watch::Sender<Status>>,
) -> Runner {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        if let Err(error) = run(store, projector.clone(), path, &status, stopped).await {
            tracing::error!(projector = projector.name(), %error, "projector stopped");
            let checkpoint = match &*status.borrow() {
                Status::Running(c) | Status::Failed(c, _) => *c,
                Status::Starting => Checkpoint::default(),
            };
            status.send_replace(Status::Failed(checkpoint, error));
        }
    });
    Runner { stop, task }
}

#[tracing::instrument(skip_all, fields(projector = projector.name()))]
async fn run(
    store: Arc<dyn EventStore>,
    projector: Arc<dyn Projector>,
    path: PathBuf,
    status: &watch::Sender<Status>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), String> {
    let (mut writer, checkpoint) = ModelWriter::open(projector.clone(), path)
        .await
        .map_err(|e| e.to_string())?;
    status.send_replace(Status::Running(checkpoint));
    let mut events = store.subscribe_all(checkpoint.position).ready_chunks(BATCH);
    loop {
        let chunk = tokio::select! {
            _ = stopped.changed() => return Ok(()),
            chunk = events.next() => chunk,
        };
        let Some(chunk) = chunk else { return Ok(()) };
        let recorded: Vec<RecordedEvent> = chunk
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let envelopes =
            decode_all(&recorded).map_err(|e| format!("projector {}: {e}", projector.name()))?;
        let checkpoint = writer.apply(envelopes).await.map_err(|e| e.to_string())?;
        status.send_replace(Status::Running(checkpoint));
    }
}
