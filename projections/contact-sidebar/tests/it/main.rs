//! Tests of the contact-sidebar projector: hand-built histories in, queries out.
#![allow(clippy::unwrap_used)]

mod contacts;
mod conversations;
mod determinism;
mod erasure;
mod records;
mod support;
