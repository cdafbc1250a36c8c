//! Tests of the audit-trail projector: hand-built histories in, filtered pages out.
#![allow(clippy::unwrap_used)]

mod determinism;
mod erasure;
mod filters;
mod pagination;
mod support;
