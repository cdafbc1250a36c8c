//! Integration tests of inbound e-mail: parsing, ingestion into a real embedded store, and the
//! SMTP/LMTP listener driven by swaks, an independent SMTP client.

mod ingest;
mod parse;
mod smtp;
mod support;
