//! Tests of the write side, written as given events / when command / then events or error.

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod access;
mod channel;
mod chatbot;
mod contact;
mod conversation;
mod filter;
mod properties;
mod record;
mod routing;
mod setup;
mod support;
