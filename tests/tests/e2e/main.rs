//! The end-to-end suite: the real `switchboard` binary on a free port with its own data
//! directory, driven by a real HTTP client and a real WebSocket client.
//!
//! Run it with `cargo test -p switchboard-tests` (it builds the binary first; see `server`).
//!
//! # Layout
//! - `server`: starting, stopping and bootstrapping the binary; tokens.
//! - `client`: GraphQL over HTTP, subscriptions over `graphql-transport-ws`, waiting with a
//!   deadline.
//! - `scenario`: a day in a shared inbox, the restricted inbox's outsider, and a restart.
//! - `demo`: `serve --demo` as a newcomer meets it.

mod client;
mod demo;
mod scenario;
mod server;
