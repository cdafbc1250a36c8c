//! Tests of the PostgreSQL store: the shared conformance suite, plus what only this backend has
//! (several nodes on one schema, the head listener, the immutability triggers, tamper evidence),
//! and the command service's idempotency across nodes.
//!
//! They need a server: `SWITCHBOARD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`, a superuser). When it is unreachable they are
//! skipped loudly, unless `SWITCHBOARD_REQUIRE_POSTGRES=1` (as in CI), which makes them fail.

// Test code: a failed expectation must panic.
#![allow(clippy::unwrap_used)]

mod commands;
mod conformance;
mod nodes;
mod pg;
mod tamper;
