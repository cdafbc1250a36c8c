//! The command service: where deciding meets the event store.
//!
//! For each command it catches the write-side [`view::WriteView`] up with the store (the
//! directory of users, teams, inboxes and channels, stream versions, idempotency keys), loads the
//! target aggregate's stream, lets the pure deciders of `switchboard-domain` decide, and appends
//! the events with the expected version, stamped with actor, correlation and causation ids, the
//! command's idempotency key and the time from an injectable clock. Version conflicts are retried
//! for commands that can safely be decided again, and reported otherwise.
//!
//! # Layout
//! - [`error`]: [`ServiceError`], and what a caller (the API) should do with each variant.
//! - [`view`]: the write-side view kept at the store's head.
//! - [`service`]: [`CommandService`], [`Command`], [`CommandMeta`], [`Outcome`].
//! - [`reactor`]: the routing reactor, which assigns new conversations by their rules.
//! - [`bot`]: the bot reactor, with which chat channels' bots greet, ask, answer and hand off.
//! - [`retention`]: the retention reactor, which erases conversations closed longer ago than
//!   their inbox keeps them.
//! - [`running`]: [`running::Reactor`], a running reactor's task and progress.
//! - `snapshot`: the reactors' snapshots in the write index.

pub mod bot;
pub mod error;
pub mod reactor;
pub mod retention;
pub mod running;
pub mod service;
mod snapshot;
pub mod subject;
pub mod view;

pub use switchboard_codec as codec;

pub use crate::error::ServiceError;
pub use crate::service::{Command, CommandMeta, CommandService, Outcome, chat_conversation_id};
