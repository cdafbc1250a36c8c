//! Tests that run the real `switchboard` binary: maintenance commands against stores built in
//! temporary directories, the server and `token` as processes over HTTP, and the configuration's
//! layering through the library.

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod anchors;
mod browser;
mod commands;
mod config;
#[path = "../../../switchboard-email/tests/it/dovecot.rs"]
mod dovecot;
mod erasure;
mod privacy;
mod server;
mod support;
