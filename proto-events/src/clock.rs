//! The source of domain time.
//!
//! Deciders stamp `occurred_at` from a [`Clock`] instead of calling `Utc::now()` so that tests (and
//! response-time metrics built from those stamps) can control time: production passes
//! [`SystemClock`], tests a [`ManualClock`] they set and advance.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// Tells the current time. Shared across threads, hence `Send + Sync`.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// The wall clock of the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until told otherwise; for tests.
///
/// Share it as `Arc<ManualClock>`: the test keeps one handle to move time, the code under test
/// gets another as its `Clock`.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock to `instant`, which may be in the past.
    pub fn set(&self, instant: DateTime<Utc>) {
        *self.lock() = instant;
    }

    /// Moves the clock forward by `by` (backward if negative).
    ///
    /// # Panics
    /// If the result is outside the range `DateTime<Utc>` can represent.
    pub fn advance(&self, by: TimeDelta) {
        *self.lock() += by;
    }

    // A panic while holding the lock cannot leave a `DateTime` half-written, so a poisoned lock
    // still holds a valid time.
    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}
