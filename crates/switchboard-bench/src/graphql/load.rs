//! A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending one
//! pre-encoded request, reading the whole response, and sending the next, until a deadline.
//!
//! It writes raw bytes on tokio's `TcpStream` rather than going through an HTTP client crate so
//! that the generator costs as little CPU as possible: on a two-core machine it shares the cores
//! with the server it measures, and every microsecond it spends is one the server does not get.
//! It runs on a current-thread runtime of its own (one OS thread), which also caps it at one core.
//! Responses are parsed just enough to know where they end (`Content-Length`, or chunked
//! transfer encoding) and whether they are `200 OK`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request, as bytes on the wire.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    bytes: Vec<u8>,
}

impl Request {
    /// `POST path` with a JSON body and extra headers.
    pub(crate) fn post_json(path: &str, headers: &[(&str, &str)], body: &str) -> Request {
        let mut text = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(body);
        Request {
            bytes: text.into_bytes(),
        }
    }

    /// `GET path`.
    pub(crate) fn get(path: &str) -> Request {
        Request {
            bytes: format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes(),
        }
    }
}

/// One response: status and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// A keep-alive connection.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends `request` and reads its whole response.
    pub(crate) async fn send(&mut self, request: &Request) -> anyhow::Result<Response> {
        self.stream.write_all(&request.bytes).await?;
        self.buffer.clear();
        // The head.
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end]).context("a non-UTF-8 head")?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status code")?;
        let mut length = None;
        let mut chunked = false;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("a bad Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
        let body = if let Some(length) = length {
            while self.buffer.len() < head_end + length {
                self.fill().await?;
            }
            self.buffer[head_end..head_end + length].to_vec()
        } else if chunked {
            self.read_chunked(head_end).await?
        } else {
            bail!("a response without Content-Length or chunked encoding");
        };
        Ok(Response { status, body })
    }

    async fn read_chunked(&mut self, mut at: usize) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buffer[at..], b"\r\n") {
                    break at + end;
                }
                self.fill().await?;
            };
            let size_text = std::str::from_utf8(&self.buffer[at..line_end])?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .context("a bad chunk size")?;
            let data = line_end + 2;
            while self.buffer.len() < data + size + 2 {
                self.fill().await?;
            }
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&self.buffer[data..data + size]);
            at = data + size + 2;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) requests: u64,
    pub(crate) elapsed: Duration,
    /// Latency of every request, in microseconds, sorted.
    pub(crate) latencies_us: Vec<u32>,
}

impl Outcome {
    /// The `q` quantile (0..=1) in milliseconds.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        f64::from(self.latencies_us[rank]) / 1000.0
    }
}

/// Drives `addr` with `request` over `connections` connections: `warmup` unmeasured, then
/// `duration` measured. Any answer other than `200 OK` fails the run. Runs on a thread and a
/// current-thread runtime of its own.
pub(crate) fn drive(
    addr: SocketAddr,
    request: Request,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the load generator's runtime")?;
        runtime.block_on(drive_on(addr, request, connections, warmup, duration))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the load generator panicked"))?
}

async fn drive_on(
    addr: SocketAddr,
    request: Request,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop = measure_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.spawn(async move {
            let mut connection = Connection::open(addr).await?;
            let mut latencies = Vec::with_capacity(64 * 1024);
            loop {
                let sent = Instant::now();
                if sent >= stop {
                    break;
                }
                let response = connection.send(&request).await?;
                if response.status != 200 {
                    bail!(
                        "HTTP {}: {}",
                        response.status,
                        String::from_utf8_lossy(&response.body)
                    );
                }
                if sent >= measure_from {
                    let micros = sent.elapsed().as_micros();
                    latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.context("a connection task")??);
    }
    // Throughput counts the requests sent inside the measured window, over that window.
    all.sort_unstable();
    Ok(Outcome {
        requests: all.len() as u64,
        elapsed: duration,
        latencies_us: all,
    })
}
