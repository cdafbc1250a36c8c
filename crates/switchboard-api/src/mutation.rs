//! The mutation root: one mutation per write-side command, merged from one object per area.
//!
//! Every mutation takes one `input` (with `clientMutationId`, the idempotency key) and returns a
//! payload carrying the result, the stream's new `version`, a `consistencyToken` for
//! read-your-writes, and `userErrors` for business-rule failures.
//!
//! # Layout
//! - [`common`]: the shared payload fields and [`common::run`], which executes a command.
//! - `setup`: organisation, users, teams, inboxes.

pub(crate) mod common;
mod setup;

use async_graphql::MergedObject;

/// Everything a client can change.
#[derive(Debug, MergedObject, Default)]
pub struct Mutation(setup::SetupMutation);
