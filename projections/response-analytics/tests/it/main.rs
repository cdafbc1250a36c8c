//! Tests of the response-analytics projector: a hand-worked scenario, business hours and time
//! zones, statistics, and determinism of batched builds.
#![allow(clippy::unwrap_used)]

mod determinism;
mod erasure;
mod hours;
mod scenario;
mod stats;
mod support;
