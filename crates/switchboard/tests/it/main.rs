//! Tests that run the real `switchboard` binary against stores built in temporary directories.

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod commands;
mod support;
