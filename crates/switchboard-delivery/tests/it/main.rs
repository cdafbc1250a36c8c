//! Tests of the delivery worker with a real SMTP server as the relay.

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod delivery;
mod support;
