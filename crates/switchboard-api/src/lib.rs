//! The GraphQL API of Switchboard and the HTTP server around it.
//!
//! This is the only crate that knows GraphQL and HTTP. Its GraphQL types are thin wrappers over
//! the read models (`projections/*`) and the write side (`switchboard-service`); their `///` docs
//! become the schema's descriptions.
//!
//! # Layout
//! - [`state`]: [`ApiState`], what every request shares (service, projections, keys, limits).
//! - [`http`]: the axum [`router`]: `/graphql` (queries, mutations, GraphiQL), `/graphql/ws`
//!   (subscriptions over `graphql-transport-ws`), `/ingest/email/{channel}`, `/files/...`,
//!   `/livez`, `/readyz`, `/metrics`.
//! - `ingest`: raw e-mails posted into a channel with its ingest secret.
//! - [`messenger`]: Facebook Messenger's webhook (verification handshake, signed page events).
//! - [`forms`]: web form submissions (`POST /forms/{publicKey}`), their CORS and rate limits.
//! - [`client`]: who a request comes from, for per-address limits (trusted proxies'
//!   `X-Forwarded-For`).
//! - [`chat`]: website chat for visitors (`/widget/v1.js`, `/chat/{publicKey}/...`: visitor
//!   tokens, messages, the visitor's WebSocket, typing signals).
//! - `files`: downloads of conversations' attachments and original e-mails.
//! - `access`: what the viewer may see (the write side's access rules, applied to reads).
//! - [`auth`]: JWT bearer tokens (our own, and an OpenID Connect provider's) and the viewer they
//!   name.
//! - [`consistency`]: signed positions for read-your-writes.
//! - [`error`]: the one mapping from failures to `extensions.code` and `userErrors`.
//! - `hub`: the live feed subscriptions read from.
//! - [`ids`]: opaque global ids for the `Node` interface.
//! - [`schema`]: the schema, its limits and its SDL.
//! - `query`, `mutation`, `subscription`: the three roots; `types`: the objects they return.
//! - [`metrics`]: Prometheus counters and histograms.

mod access;
pub mod auth;
pub mod chat;
pub mod client;
pub mod consistency;
pub mod error;
mod files;
pub mod forms;
pub mod http;
mod hub;
pub mod ids;
mod ingest;
pub mod messenger;
pub mod metrics;
mod mutation;
mod query;
pub mod schema;
pub mod state;
mod subscription;
mod types;

pub use chat::ChatLimits;
pub use client::{Cidr, CidrError, TrustedProxies};
pub use forms::FormLimits;
pub use http::router;
pub use schema::{SwitchboardSchema, sdl};
pub use state::{ApiSettings, ApiState, Limits, MailSettings};
