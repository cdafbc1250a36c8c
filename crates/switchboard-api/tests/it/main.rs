//! Integration tests of the API through its axum router, over a real SQLite store and the real
//! projection runtime (no socket: `tower::ServiceExt::oneshot`). The end-to-end tests with the
//! real binary, HTTP and WebSocket clients live in the workspace's `tests` crate.

mod support;

mod analytics;
mod audit;
mod basics;
mod bots;
mod chat;
mod files;
mod forms;
mod history;
mod idempotency;
mod live;
mod mail;
mod messenger;
mod mutations;
mod people;
mod privacy;
mod protocol;
mod schema;
mod subscriptions;
mod tokens;
mod uploads;
