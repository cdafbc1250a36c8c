//! The mutation root: one mutation per write-side command, merged from one object per area.
//!
//! Every mutation takes one `input` (with `clientMutationId`, the idempotency key) and returns a
//! payload carrying the result, the stream's new `version`, a `consistencyToken` for
//! read-your-writes, and `userErrors` for business-rule failures.
//!
//! Commands that are not mutations: creating the organisation (once, at installation, by the
//! system), assigning an inbox's fallback address (the command service does it), applying a
//! routing decision (the routing reactor does it), and an inbound message's conversation command
//! (the service resolves its conversation; clients use `receiveMessage`).
//!
//! # Layout
//! - [`common`]: the shared payload fields and [`common::run`], which executes a command.
//! - `setup`: organisation, users, teams, inboxes.
//! - `channel`: channels, routing rules, e-mail filters.
//! - `mail`: e-mail channels' IMAP, SMTP and ingest settings, and their connection test.
//! - `form`: form channels' fields, allowed origins and honeypot.
//! - `chat_bot`: chat channels' bots.
//! - `chat`: chat channels' widgets, and agents' typing signals.
//! - `messenger`: Messenger channels' page access token (write-only) and human-agent tag.
//! - `conversation`: replies, comments, assignment, status, inbound messages.
//! - `contact`: contacts and their merges.
//! - `record`: companies, deals, tickets, associations.
//! - `upload`: files received as uploads, checked and stored as attachments.

mod channel;
mod chat;
mod chat_bot;
pub(crate) mod common;
mod contact;
mod conversation;
mod form;
mod mail;
mod messenger;

pub(crate) use chat_bot::ChatBotCollects;
pub(crate) use form::FormFieldType;
pub(crate) use mail::{MailServerSecurity, manages};
pub(crate) use upload::file_name;
mod record;
mod setup;
mod upload;

use async_graphql::MergedObject;

/// Everything a client can change.
#[derive(Debug, MergedObject, Default)]
pub struct Mutation(
    setup::SetupMutation,
    channel::ChannelMutation,
    mail::MailMutation,
    form::FormMutation,
    chat_bot::ChatBotMutation,
    chat::ChatMutation,
    messenger::MessengerMutation,
    conversation::ConversationMutation,
    contact::ContactMutation,
    record::RecordMutation,
);
