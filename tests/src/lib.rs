//! End-to-end tests of Switchboard. The crate's substance is its one integration-test binary,
//! `tests/e2e/main.rs`, which starts the real `switchboard` binary (compiled here as the
//! `switchboard-e2e` target from `crates/switchboard/src/main.rs`, see `Cargo.toml`) on a free
//! port with its own data directory and drives it over HTTP and WebSocket.
//!
//! Run it with `cargo test -p switchboard-tests`. This library is empty on purpose: helpers live
//! with the tests that use them.
