//! The projection runtime: projectors fold the event log into local SQLite read models.
//!
//! A [`Projector`] owns its tables and says how one event changes them. The runtime applies
//! events to it in batches, each batch in one transaction that also moves the projector's
//! checkpoint, so after a crash a read model is exactly "everything up to its checkpoint":
//! nothing applied twice, nothing skipped. Every node keeps its own read models and can rebuild
//! them from the log.
//!
//! # Layout
//! - [`projector`]: the [`Projector`] trait and [`ApplyError`].
//! - [`batch`]: [`BatchRows`], the rows a projector keeps in memory for one batch.
//! - [`model`]: one read model's database: migrations, checkpoint, applying a batch.
//! - [`runtime`]: running projectors beside each other, lag, `wait_for`, rebuilds.
//! - [`scope`]: [`Scope`], which conversations a reader may see, as SQL conditions.
//! - [`pack`]: a compact binary encoding for rows packed into one BLOB.
//! - [`statements`]: [`BatchTx`], a batch's transaction with its statements prepared once.
//! - [`text`]: text helpers several read models share (message previews).
//! - [`testing`]: building a read model from events in tests, and dumping it
//!   row by row to compare two builds.

pub mod batch;
pub mod model;
pub mod pack;
pub mod projector;
pub mod runtime;
pub mod scope;
pub mod statements;
pub mod testing;
pub mod text;

pub use crate::batch::{BatchMap, BatchRows};
pub use crate::model::ReadModel;
pub use crate::projector::{ApplyError, Event, EventError, Projector};
pub use crate::runtime::{Lag, ProjectionRuntime, RuntimeError};
pub use crate::scope::Scope;
pub use crate::statements::BatchTx;
