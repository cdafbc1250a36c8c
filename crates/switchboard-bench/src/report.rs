//! The one result line every workload prints: a JSON object on stdout.
//!
//! The field names are the benchmark's output contract (scripts and CI compare them across runs),
//! which is why this is the one place in the crate that derives `Serialize`.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

/// How much work was done in how long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Measurement {
    pub(crate) events: u64,
    pub(crate) elapsed: Duration,
}

impl Measurement {
    fn seconds(self) -> f64 {
        self.elapsed.as_secs_f64()
    }

    fn per_sec(self) -> f64 {
        self.events as f64 / self.seconds().max(f64::MIN_POSITIVE)
    }
}

/// One workload's result, compared with its baseline.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// The workload's name, e.g. `append_concurrent`.
    pub(crate) workload: &'static str,
    /// Events the measured system handled.
    pub(crate) events: u64,
    pub(crate) seconds: f64,
    pub(crate) events_per_sec: f64,
    /// Events the baseline handled (fewer than `events` only if it hit its time budget).
    pub(crate) baseline_events: u64,
    pub(crate) baseline_seconds: f64,
    pub(crate) baseline_events_per_sec: f64,
    /// `events_per_sec / baseline_events_per_sec`.
    pub(crate) ratio: f64,
    /// Mean bytes of metadata plus payload per event.
    pub(crate) event_bytes: f64,
    /// Concurrent writers, for append workloads that have several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) writers: Option<u64>,
    /// Events per append (or per baseline transaction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) batch: Option<u64>,
    /// Events per read call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) page: Option<u64>,
    /// What the baseline is, in a few words.
    pub(crate) baseline: &'static str,
    /// The target this workload is held to, in words, and whether this run met it.
    pub(crate) target: String,
    pub(crate) target_met: bool,
}

/// The parts of a [`Report`] that describe the workload rather than its timings.
#[derive(Debug)]
pub(crate) struct Workload {
    pub(crate) name: &'static str,
    pub(crate) event_bytes: f64,
    pub(crate) writers: Option<u64>,
    pub(crate) batch: Option<u64>,
    pub(crate) page: Option<u64>,
    pub(crate) baseline: &'static str,
    pub(crate) target: Target,
}

/// What a workload should reach.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// At least this many events per second.
    EventsPerSec(f64),
    /// At least this fraction of the baseline's throughput.
    Ratio(f64),
}

impl Report {
    pub(crate) fn new(workload: Workload, measured: Measurement, baseline: Measurement) -> Report {
        let events_per_sec = measured.per_sec();
        let baseline_events_per_sec = baseline.per_sec();
        let ratio = events_per_sec / baseline_events_per_sec.max(f64::MIN_POSITIVE);
        let (target, target_met) = match workload.target {
            Target::EventsPerSec(min) => {
                (format!("events_per_sec >= {min}"), events_per_sec >= min)
            }
            Target::Ratio(min) => (format!("ratio >= {min}"), ratio >= min),
        };
        Report {
            workload: workload.name,
            events: measured.events,
            seconds: round(measured.seconds(), 3),
            events_per_sec: round(events_per_sec, 0),
            baseline_events: baseline.events,
            baseline_seconds: round(baseline.seconds(), 3),
            baseline_events_per_sec: round(baseline_events_per_sec, 0),
            ratio: round(ratio, 3),
            event_bytes: round(workload.event_bytes, 1),
            writers: workload.writers,
            batch: workload.batch,
            page: workload.page,
            baseline: workload.baseline,
            target,
            target_met,
        }
    }

    /// Writes the report as one line on stdout.
    pub(crate) fn emit(&self) -> anyhow::Result<()> {
        let line = serde_json::to_string(self)?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        Ok(())
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}
