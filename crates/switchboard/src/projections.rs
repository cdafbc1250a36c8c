//! `switchboard projections rebuild`: every read model rebuilt from the start of the log.
//!
//! Progress is counted in events: each read model is rebuilt in turn up to the head, and the bar
//! follows the position its copy has reached (the runtime announces it after every batch).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use switchboard_projector::ProjectionRuntime;
use switchboard_projector::runtime::Status;
use switchboard_store::Position;

use crate::config::ConfigArgs;
use crate::progress::Progress;
use crate::support::{self, StoreUse};

/// Starts the runtime on `<data-dir>/read-models` (with the configured store) and rebuilds each read model in turn, which
/// is what [`ProjectionRuntime::rebuild_all`] does, one call per projector so that progress
/// can be reported between them.
pub async fn rebuild(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = support::load_config(args)?;
    let store = support::configured_store(&config, StoreUse::Existing).await?;
    let head = store.head().await.context("reading the store's head")?;
    let dir = support::read_models_dir(&config.data_dir);
    let runtime = ProjectionRuntime::start(store, &dir, switchboard_read_models::all())
        .with_context(|| format!("starting the projectors in {}", dir.display()))?;
    let names: Vec<&'static str> = runtime.statuses().into_iter().map(|(n, _)| n).collect();
    eprintln!(
        "rebuilding {} read models up to position {head}",
        names.len()
    );
    let mut outcome = Ok(());
    let per_model = head.0.max(1);
    let total = per_model * names.len() as u64;
    let mut progress = Progress::new("rebuild", "events", total);
    for (i, name) in names.iter().enumerate() {
        let base = i as u64 * per_model;
        progress.set(base, name);
        progress.line(&format!("[{}/{}] {name}: rebuilding", i + 1, names.len()));
        let started = Instant::now();
        let (reached, mut watching) = tokio::sync::watch::channel(Position::START);
        let rebuilt = runtime.rebuild_reporting(name, Some(&reached));
        tokio::pin!(rebuilt);
        let result = loop {
            tokio::select! {
                result = &mut rebuilt => break result,
                Ok(()) = watching.changed() => {
                    let at = watching.borrow_and_update().0.min(per_model);
                    progress.set(base + at, name);
                }
            }
        };
        if let Err(e) = result {
            outcome = Err(e).with_context(|| format!("rebuilding {name}"));
            break;
        }
        progress.line(&format!(
            "[{}/{}] {name}: done in {:.1}s",
            i + 1,
            names.len(),
            started.elapsed().as_secs_f64()
        ));
    }
    progress.set(total, "done");
    progress.finish();
    runtime.shutdown().await;
    outcome?;
    for (name, status) in runtime.statuses() {
        if let Status::Failed(_, error) = status {
            anyhow::bail!("projector {name} stopped: {error}");
        }
    }
    println!("rebuilt {} read models in {}", names.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}
