//! Drives a server with `wrk` (Debian's `wrk` package), as a child process, instead of the
//! in-process generator.
//!
//! A standard tool with its own latency histogram, in its own process, so that the numbers do not
//! rest on the suite's own generator alone; on a two-core machine either generator shares the
//! cores with the server it measures (measured back to back, they cost about the same). The
//! request (method, body, headers) goes to `wrk` as a Lua script
//! written to a temporary file; the script's `done` function prints one JSON line with what the
//! suite reports (requests, duration, p50 and p99 in microseconds, errors), which is the only
//! output read. `wrk` counts an answer with status 400 or more as an error, and so do socket
//! errors and timeouts: any error fails the run. The suite checks one answer's content with an
//! ordinary request before driving `wrk`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::{Call, Measured};

/// How `wrk` is run.
#[derive(Debug, Clone)]
pub(crate) struct Wrk {
    /// The executable.
    pub(crate) program: PathBuf,
    /// `wrk` threads (`-t`).
    pub(crate) threads: usize,
}

/// The line the script's `done` prints, after this marker.
const MARKER: &str = "switchboard-wrk ";

/// What the script's `done` function reports.
#[derive(Debug, Deserialize)]
struct Done {
    requests: u64,
    duration_us: u64,
    p50_us: f64,
    p99_us: f64,
    errors_connect: u64,
    errors_read: u64,
    errors_write: u64,
    errors_status: u64,
    errors_timeout: u64,
}

/// `wrk` on `PATH`, if there is one.
pub(crate) fn find_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("wrk"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Wrk {
    /// Drives `addr` with `request` on `connections` connections: `warmup` unmeasured (a run of
    /// its own), then `duration` measured. `wrk` counts whole seconds, so both round up.
    pub(crate) async fn drive(
        &self,
        addr: SocketAddr,
        request: &Call,
        connections: usize,
        warmup: Duration,
        duration: Duration,
    ) -> anyhow::Result<Measured> {
        let mut script = tempfile::Builder::new()
            .prefix("switchboard-bench-")
            .suffix(".lua")
            .tempfile()
            .context("a temporary file for the wrk script")?;
        std::io::Write::write_all(&mut script, lua_script(request).as_bytes())
            .context("writing the wrk script")?;
        let url = format!("http://{addr}{}", request.path);
        if !warmup.is_zero() {
            self.run(script.path(), &url, connections, warmup).await?;
        }
        let done = self.run(script.path(), &url, connections, duration).await?;
        Ok(Measured {
            requests: done.requests,
            elapsed: Duration::from_micros(done.duration_us),
            p50_ms: done.p50_us / 1000.0,
            p99_ms: done.p99_us / 1000.0,
        })
    }

    async fn run(
        &self,
        script: &Path,
        url: &str,
        connections: usize,
        duration: Duration,
    ) -> anyhow::Result<Done> {
        let seconds = whole_seconds(duration);
        let threads = self.threads.clamp(1, connections.max(1));
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg(format!("--threads={threads}"))
            .arg(format!("--connections={connections}"))
            .arg(format!("--duration={seconds}s"))
            .arg("--timeout=2s")
            .arg("--script")
            .arg(script)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        // `wrk` stops by itself after `--duration`; this bounds a hung one (the child is
        // killed when the future is dropped).
        let bound = Duration::from_secs(seconds + 30);
        let output = tokio::time::timeout(bound, command.output())
            .await
            .with_context(|| format!("wrk did not finish within {bound:?}"))?
            .with_context(|| format!("running {}", self.program.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk failed ({}): {}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let line = stdout
            .lines()
            .find_map(|line| line.strip_prefix(MARKER))
            .with_context(|| format!("wrk printed no result line: {stdout}"))?;
        let done: Done =
            serde_json::from_str(line).with_context(|| format!("wrk's result line: {line}"))?;
        let errors = done.errors_connect
            + done.errors_read
            + done.errors_write
            + done.errors_status
            + done.errors_timeout;
        if errors > 0 || done.requests == 0 {
            bail!(
                "wrk against {url}: {} requests, {errors} errors (connect {}, read {}, write {}, \
                 HTTP status >= 400 {}, timeout {})",
                done.requests,
                done.errors_connect,
                done.errors_read,
                done.errors_write,
                done.errors_status,
                done.errors_timeout
            );
        }
        Ok(done)
    }
}

/// Seconds for `wrk --duration`: at least one, rounded up.
fn whole_seconds(duration: Duration) -> u64 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    seconds.max(1)
}

/// The Lua script: the request, and a `done` that prints the result line.
fn lua_script(request: &Call) -> String {
    let mut script = String::new();
    if let Some(body) = &request.body {
        let _ = writeln!(script, "wrk.method = \"POST\"");
        let _ = writeln!(script, "wrk.body = {}", lua_string(body));
        let _ = writeln!(
            script,
            "wrk.headers[\"Content-Type\"] = \"application/json\""
        );
    }
    for (name, value) in &request.headers {
        let _ = writeln!(
            script,
            "wrk.headers[{}] = {}",
            lua_string(name),
            lua_string(value)
        );
    }
    let _ = write!(
        script,
        r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{marker}{{"requests":%d,"duration_us":%d,"p50_us":%.1f,"p99_us":%.1f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
    '"errors_timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#,
        marker = MARKER,
    );
    script
}

/// `text` as a Lua string literal: printable ASCII as is, everything else (quotes, backslashes,
/// control characters, UTF-8 bytes) as decimal escapes, which Lua reads byte for byte.
fn lua_string(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    for byte in text.bytes() {
        if (byte.is_ascii_graphic() || byte == b' ') && byte != b'"' && byte != b'\\' {
            literal.push(char::from(byte));
        } else {
            let _ = write!(literal, "\\{byte:03}");
        }
    }
    literal.push('"');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_strings_escape_what_lua_would_read_differently() {
        assert_eq!(lua_string("a b"), "\"a b\"");
        assert_eq!(
            lua_string("\"x\\\"\n{é}"),
            "\"\\034x\\092\\034\\010{\\195\\169}\""
        );
    }

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(500)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds(Duration::from_millis(3_001)), 4);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }
}
