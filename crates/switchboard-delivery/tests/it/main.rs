//! Tests of the delivery worker with a real SMTP server as the relay, and with a local stand-in
//! for Meta's Graph API.

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod delivery;
mod messenger;
mod support;
