//! Reactors' snapshots: their state folded up to a position, kept in the write index under a
//! name, so that a start folds only what came after. A snapshot is an optimisation: one of
//! another layout, one past the log's head (a log restored from a backup) or one that cannot be
//! read is ignored and the log folded from the start; failing to save one only makes the next
//! start fold more.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use switchboard_store::{Position, StoreError, WriteIndex};

use crate::ServiceError;

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct Snapshot<T> {
    format: u32,
    state: T,
}

/// The state saved as `name` in layout `format` and the position it reflects, or the default
/// state at the start of the log when there is none to use.
pub(crate) async fn load<T: DeserializeOwned + Default>(
    index: &dyn WriteIndex,
    name: &str,
    format: u32,
    head: Position,
) -> Result<(T, Position), ServiceError> {
    let fresh = || (T::default(), Position::START);
    Ok(match index.snapshot(name).await? {
        Some((position, _)) if position > head => {
            tracing::warn!(name, %position, %head, "snapshot past the log's head: folding the log");
            fresh()
        }
        Some((position, body)) => match serde_json::from_slice::<Snapshot<T>>(&body) {
            Ok(snapshot) if snapshot.format == format => (snapshot.state, position),
            Ok(_) | Err(_) => {
                tracing::info!(name, "snapshot of another format: folding the log");
                fresh()
            }
        },
        None => fresh(),
    })
}

/// Saves `state`, folded and acted upon up to `position`, as `name` in layout `format`.
pub(crate) async fn save<T: Serialize>(
    index: &dyn WriteIndex,
    name: &str,
    format: u32,
    state: &T,
    position: Position,
) -> Result<(), ServiceError> {
    let body = serde_json::to_vec(&Snapshot { format, state }).map_err(StoreError::backend)?;
    index.save_snapshot(name, position, body).await?;
    Ok(())
}
