//! Integration tests of inbound e-mail: parsing, ingestion into a real embedded store, the
//! SMTP/LMTP listener driven by swaks, an independent SMTP client, and IMAP accounts imported
//! from a real Dovecot.

mod dovecot;
mod imap;
mod ingest;
mod parse;
mod smtp;
mod support;
