//! The integration tests of switchboard-codec, in one binary (see STYLE.md).

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod keyed_store;
mod keyring;
mod seal;
mod support;
