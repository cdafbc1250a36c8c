//! The GraphQL objects: thin wrappers over directory entries and read-model rows.
//!
//! # Layout
//! - [`directory`]: the organisation, users, teams, bots, inboxes, channels.
//! - [`node`]: the `Node` interface and `node(id:)`.
//! - [`page`]: Relay connection arguments, capped, and keyset cursors.

pub(crate) mod directory;
pub(crate) mod node;
pub(crate) mod page;
