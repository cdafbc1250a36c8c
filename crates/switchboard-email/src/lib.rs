//! Team e-mail in: raw messages become conversations.
//!
//! - [`parse`]: reading a raw e-mail (mail-parser; HTML sanitised with ammonia), never failing.
//! - [`ingest`]: [`Ingester`] keeps the raw message and attachments in the blob store and
//!   records the message through the command service; durable when it returns.
//! - [`smtp`]: the SMTP/LMTP listener `switchboard serve` runs, on smtp-proto.
//!
//! Depends on the command service and the store contract, not on the API.

pub mod ingest;
pub mod parse;
pub mod smtp;

pub use crate::ingest::{IngestError, Ingested, Ingester};
