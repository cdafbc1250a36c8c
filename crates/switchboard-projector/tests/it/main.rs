//! Tests of the projection runtime against the embedded store.

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod crash;
mod runtime;
mod support;
