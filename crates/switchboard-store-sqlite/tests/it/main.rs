//! Tests of the embedded store: the shared conformance suite, plus what only this backend has
//! (tamper evidence on the file, the immutability triggers, crash safety, the directory lock).

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod conformance;
mod crash;
mod index;
mod read_only;
mod tamper;
