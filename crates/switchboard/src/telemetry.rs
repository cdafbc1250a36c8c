//! Logs: `tracing` events on stderr, human-readable or one JSON object per line.
//!
//! The filter is the configured `log.level`, unless `RUST_LOG` is set: then `RUST_LOG` wins, as
//! developers expect of every `tracing` program. Whatever the filter, async-imap's trace of
//! the commands it sends (`LOGIN` with a password) is never logged.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. A second call (tests building several applications in one
/// process) keeps the first one.
pub fn init(log: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&log.level));
    // A constant that parses; the most specific directive wins over a broader `trace`.
    let filter = match switchboard_email::imap::LOG_DIRECTIVE.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    // Colours only on a terminal: piped logs (files, journald, CI) stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
