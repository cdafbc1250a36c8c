//! Summary statistics of a set of durations.

/// Count, mean, median and 90th percentile of durations in whole seconds. All are `None` when
/// the set is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// How many durations.
    pub count: usize,
    /// The arithmetic mean, seconds.
    pub mean_seconds: Option<f64>,
    /// The middle value, or the mean of the two middle values for an even count, seconds.
    pub median_seconds: Option<f64>,
    /// The 90th percentile by nearest rank: the value at rank `ceil(0.9 × count)` (from 1) of
    /// the ascending values, seconds. Always one of the durations.
    pub p90_seconds: Option<i64>,
}

impl Stats {
    /// The statistics of `values` (any order).
    pub fn of(mut values: Vec<i64>) -> Stats {
        values.sort_unstable();
        let count = values.len();
        if count == 0 {
            return Stats {
                count,
                mean_seconds: None,
                median_seconds: None,
                p90_seconds: None,
            };
        }
        let sum: i128 = values.iter().map(|&v| i128::from(v)).sum();
        let mean = sum as f64 / count as f64;
        let median = if count % 2 == 1 {
            values[count / 2] as f64
        } else {
            (values[count / 2 - 1] as f64 + values[count / 2] as f64) / 2.0
        };
        // Nearest rank: ceil(90 * n / 100), in integers to avoid float rounding.
        let rank = (90 * count).div_ceil(100).max(1);
        let p90 = values.get(rank - 1).copied();
        Stats {
            count,
            mean_seconds: Some(mean),
            median_seconds: Some(median),
            p90_seconds: p90,
        }
    }
}
