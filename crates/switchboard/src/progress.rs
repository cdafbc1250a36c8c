//! Progress of long commands on stderr: a bar when stderr is a terminal, otherwise a plain line
//! every few seconds, so that logs of scripted runs show progress without control characters.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is written when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Progress towards `total` units (events, read models).
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    unit: &'static str,
    total: u64,
    last_line: Instant,
}

impl Progress {
    /// Progress of `label` over `total` `unit`s.
    pub(crate) fn new(label: &str, unit: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {msg} ({eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            label: label.to_owned(),
            unit,
            total,
            last_line: Instant::now(),
        }
    }

    /// Sets how many units are done, with a note (e.g. the position reached, or what is being
    /// worked on).
    pub(crate) fn set(&mut self, done: u64, note: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(note.to_owned());
            }
            None => {
                if self.last_line.elapsed() >= PLAIN_EVERY {
                    self.last_line = Instant::now();
                    eprintln!(
                        "{}: {done} of {} {} {note}",
                        self.label, self.total, self.unit
                    );
                }
            }
        }
    }

    /// Writes a line above the bar (or just the line, without one).
    pub(crate) fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Removes the bar (plain mode writes nothing here: the caller prints its summary).
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
