//! Tests of the thread-view projector: one binary, built from a hand-written history of several
//! conversations across two inboxes and four channels.
#![allow(clippy::unwrap_used)]

mod determinism;
mod erasure;
mod history;
mod lists;
mod thread;
