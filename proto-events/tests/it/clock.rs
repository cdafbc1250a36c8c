//! The clocks: a manual clock moves only when told; the system clock follows the wall.

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use proto_events::clock::{Clock, ManualClock, SystemClock};

#[test]
fn manual_clock_stands_still_until_set_or_advanced() {
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 9, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let shared: Arc<dyn Clock> = clock.clone();
    assert_eq!(shared.now(), start);
    assert_eq!(shared.now(), start);

    clock.advance(TimeDelta::minutes(90));
    assert_eq!(shared.now(), start + TimeDelta::minutes(90));

    let earlier = Utc.with_ymd_and_hms(2024, 12, 31, 23, 0, 0).unwrap();
    clock.set(earlier);
    assert_eq!(shared.now(), earlier);
}

#[test]
fn system_clock_follows_the_wall_clock() {
    let before = Utc::now();
    let now = SystemClock.now();
    assert!(before <= now && now <= Utc::now());
}
