//! The integration tests of proto-events, in one binary (see STYLE.md): the event contract as
//! other crates and the stored history see it.

// Everything here is test code, helpers included; clippy's `allow-unwrap-in-tests` only covers
// `#[test]` bodies.
#![allow(clippy::unwrap_used)]

mod clock;
mod envelope;
mod golden;
mod personal;
mod samples;
mod streams;
mod upcast;
