//! Team e-mail in: raw messages become conversations.
//!
//! - [`parse`]: reading a raw e-mail (mail-parser; HTML sanitised with ammonia), never failing.
//! - [`ingest`]: [`Ingester`] keeps the raw message and attachments in the blob store and
//!   records the message through the command service; durable when it returns.
//! - [`smtp`]: the SMTP/LMTP listener `switchboard serve` runs, on smtp-proto.
//! - [`imap`]: IMAP accounts (async-imap over tokio, TLS with rustls): a mailbox hosted
//!   elsewhere imported into its channel, checkpointed by UIDVALIDITY and last UID in the
//!   store's cursors, then followed with `IDLE` or by polling. An account is an
//!   [`imap::ImapAccount`] handed to [`imap::spawn`]; [`imap::check`] is the connection test.
//! - [`accounts`]: the importers of the accounts channels were given through the API, started,
//!   restarted and stopped as their settings change.
//!
//! Depends on the command service and the store contract, not on the API.

pub mod accounts;
pub mod imap;
pub mod ingest;
pub mod parse;
pub mod smtp;

pub use crate::ingest::{IngestError, Ingested, Ingester};
