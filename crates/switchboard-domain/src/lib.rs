//! The write side of Switchboard: what may happen, decided by pure functions.
//!
//! Every command is decided as `decide(state, command, context) -> Result<events, DomainError>`
//! over state folded from history with `evolve(state, event)`. Nothing here does IO: loading
//! streams, appending with an expected version and retrying belong to the command service that
//! wraps these functions.
//!
//! # Layout
//! - [`error`]: [`DomainError`], the typed rejections and how the API should present them.
//! - [`context`]: [`Context`], who asks, when, and the directory they ask in.
//! - [`directory`]: the organisation's people and setup (users, teams, inboxes, channels, rules)
//!   folded into one [`directory::Directory`], which also answers every access question.
//! - [`setup`]: commands on the organisation, users, teams and inboxes.
//! - [`channel`]: commands on channels, routing rules and e-mail filter rules.
//! - [`form`]: what a form channel is configured with, and whether a submission fits it.
//! - [`chatbot`]: what a chat channel's bot is configured with, and what it says and does.
//! - [`chat`]: what a chat channel's widget is configured with, and whether the team can answer
//!   now.
//! - [`filter`]: whether an inbound e-mail goes to the Filtered view, and why.
//! - [`routing`]: who a new conversation goes to under its rule, and the recorded reason.
//! - [`conversation`]: the conversation aggregate: messages, replies, comments, assignment, status.
//! - [`contact`]: the contact aggregate: records created from visitors, properties, identities,
//!   merges.
//! - [`record`]: companies, deals, tickets and associations between records.
//! - `validate`: input checks shared by several deciders; [`display_name`], how a name someone
//!   outside the organisation gave is kept.

pub mod channel;
pub mod chat;
pub mod chatbot;
pub mod contact;
pub mod context;
pub mod conversation;
pub mod directory;
pub mod error;
pub mod filter;
pub mod form;
pub mod record;
pub mod routing;
pub mod setup;
mod validate;

pub use crate::context::Context;
pub use crate::error::DomainError;
pub use crate::validate::display_name;
