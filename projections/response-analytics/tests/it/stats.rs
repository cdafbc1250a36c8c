//! The summary statistics on small hand-checked sets.

use response_analytics::Stats;

#[test]
fn empty_set_has_no_figures() {
    assert_eq!(
        Stats::of(vec![]),
        Stats {
            count: 0,
            mean_seconds: None,
            median_seconds: None,
            p90_seconds: None
        }
    );
}

#[test]
fn odd_and_even_sets() {
    // 10, 20, 30, 40, 1000: mean 1100 / 5 = 220; median 30; p90 rank ceil(4.5) = 5 -> 1000.
    let s = Stats::of(vec![40, 10, 1000, 30, 20]);
    assert_eq!(
        (s.count, s.mean_seconds, s.median_seconds, s.p90_seconds),
        (5, Some(220.0), Some(30.0), Some(1000))
    );
    // 1..=10: mean 5.5; median (5 + 6) / 2 = 5.5; p90 rank ceil(9.0) = 9 -> 9.
    let s = Stats::of((1..=10).rev().collect());
    assert_eq!(
        (s.mean_seconds, s.median_seconds, s.p90_seconds),
        (Some(5.5), Some(5.5), Some(9))
    );
    // A single value is its own median and percentile.
    let s = Stats::of(vec![7]);
    assert_eq!((s.median_seconds, s.p90_seconds), (Some(7.0), Some(7)));
}
