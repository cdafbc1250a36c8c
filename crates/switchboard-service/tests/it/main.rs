//! Tests of the command service against the embedded store.

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod bots;
mod contacts;
mod inbox;
mod retention;
mod routing;
mod service;
mod support;
