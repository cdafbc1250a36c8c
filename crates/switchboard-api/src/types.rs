//! The GraphQL objects: thin wrappers over directory entries and read-model rows.
//!
//! # Layout
//! - [`directory`]: the organisation's users, teams, bots, channels; [`chat_bot`]: a chat
//!   channel's bot configuration.
//! - [`inbox`]: inboxes, their lists, badge counts and Filtered view.
//! - [`conversation`]: conversations and access-filtered lists; [`timeline`]: their entries.
//! - [`contact`]: contacts and the sidebar.
//! - [`event`]: raw events of the log.
//! - [`analytics`]: response-time metrics; [`audit`]: audit-trail entries.
//! - [`node`]: the `Node` interface and `node(id:)`.
//! - [`page`]: Relay connection arguments, capped, and keyset cursors.

pub(crate) mod analytics;
pub(crate) mod audit;
pub(crate) mod chat_bot;
pub(crate) mod contact;
pub(crate) mod conversation;
pub(crate) mod directory;
pub(crate) mod event;
pub(crate) mod inbox;
pub(crate) mod node;
pub(crate) mod page;
pub(crate) mod timeline;
