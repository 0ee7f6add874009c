//! The benchmark's load generator, built as the example `bench-load` and driven by
//! `scripts/bench` (never installed, never part of the test suite). It sends one fixed request
//! over HTTP/1.1 keep-alive connections and prints what it measured as one JSON line on stdout.
//!
//! Modes:
//! - `seq`: one connection, one request at a time (added latency at concurrency 1).
//! - `rate`: an open loop at a constant rate, each request on a free pre-opened connection
//!   (capacity). Tokio's timer ticks every millisecond, so requests leave in per-millisecond
//!   bursts, up to about 2 ms after they were due; latency therefore counts from the moment a
//!   request is sent, and a request sent more than 5 ms late (every connection busy: the server
//!   fell behind) is counted as `late`, so falling behind cannot hide (no coordinated omission).
//! - `streams`: streaming requests, each on its own pre-opened connection, started evenly over a
//!   ramp: time to first byte, gaps between content events, content events received.
//! - `cold`: starts the command given after `--` and sends the request every millisecond until
//!   the first 200 (cold start).
//!
//! It owns no server and knows no gateway internals: only the URL, the body and the headers the
//! script gives it.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::{Args, Parser, Subcommand};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(about = "izzi's benchmark load generator (see scripts/bench)")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// One request at a time on one connection.
    Seq {
        #[command(flatten)]
        target: Target,
        /// Seconds to measure, after the warm-up.
        #[arg(long, default_value_t = 1.0)]
        secs: f64,
        #[arg(long, default_value_t = 0.2)]
        warmup_secs: f64,
    },
    /// A constant rate, open loop.
    Rate {
        #[command(flatten)]
        target: Target,
        /// Requests per second.
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 1.0)]
        secs: f64,
        /// Requests sent at the same rate before measuring.
        #[arg(long, default_value_t = 0.2)]
        warmup_secs: f64,
        /// Connections opened up front; the most requests in flight at once.
        #[arg(long, default_value_t = 128)]
        conns: usize,
    },
    /// Concurrent streams.
    Streams {
        #[command(flatten)]
        target: Target,
        /// Streams in all.
        #[arg(long)]
        n: usize,
        /// Streams start evenly spread over this many milliseconds.
        #[arg(long, default_value_t = 500)]
        ramp_ms: u64,
        /// Content events each stream should carry (the mock's words).
        #[arg(long)]
        expect: u64,
        /// Gives up on streams still open after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// Cold start: time from spawning the command to its first 200.
    Cold {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// The server command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// Where to send what.
#[derive(Args)]
struct Target {
    /// `http://HOST:PORT` (plain HTTP/1.1 only).
    #[arg(long)]
    url: String,
    /// Request path, e.g. `/v1/messages`.
    #[arg(long)]
    path: String,
    /// File holding the JSON request body.
    #[arg(long)]
    body: PathBuf,
    /// Extra header `NAME: VALUE`; repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
}

/// A request that can be sent again and again.
struct Template {
    addr: SocketAddr,
    authority: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Template {
    fn new(target: &Target) -> Result<Self, String> {
        let authority = target
            .url
            .strip_prefix("http://")
            .ok_or_else(|| format!("`--url {}` must start with http://", target.url))?
            .trim_end_matches('/')
            .to_owned();
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&authority)
            .map_err(|e| format!("`--url {}`: {e}", target.url))?
            .next()
            .ok_or_else(|| format!("`--url {}` resolves to nothing", target.url))?;
        let body = fs_err::read(&target.body).map_err(|e| e.to_string())?;
        let headers = target
            .headers
            .iter()
            .map(|h| {
                h.split_once(':')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .ok_or_else(|| format!("`--header {h}` must be `NAME: VALUE`"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            addr,
            authority,
            path: target.path.clone(),
            headers,
            body: Bytes::from(body),
        })
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut builder = Request::post(self.path.as_str())
            .header("host", self.authority.as_str())
            .header("content-type", "application/json");
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(Full::new(self.body.clone()))
            .expect("the request parts were checked when the template was built")
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // The connection ends when the server closes it or the sender is dropped.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer; a non-200 is an error naming the status.
async fn exchange(sender: &mut Sender, template: &Template) -> Result<(), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(template.request())
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ))
    }
}

/// Microseconds, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Nearest-rank percentile of sorted, non-empty values.
fn pct(sorted: &[u64], p: f64) -> u64 {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a vector far shorter than 2^52"
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p90, p99, p99.9 and max of `values`, in microseconds; nulls when there are none.
fn summary(mut values: Vec<u64>) -> Value {
    if values.is_empty() {
        return json!({"p50": null, "p90": null, "p99": null, "p999": null, "max": null});
    }
    values.sort_unstable();
    json!({
        "p50": pct(&values, 50.0), "p90": pct(&values, 90.0), "p99": pct(&values, 99.0),
        "p999": pct(&values, 99.9), "max": values[values.len() - 1],
    })
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

async fn seq(template: &Template, measure: f64, warmup: f64) -> Result<Value, String> {
    let mut sender = connect(template.addr).await?;
    let warm_until = Instant::now() + secs(warmup);
    let mut warm = 0u64;
    while Instant::now() < warm_until {
        exchange(&mut sender, template).await?;
        warm += 1;
    }
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    let mut first_error = None;
    let started = Instant::now();
    let until = started + secs(measure);
    while Instant::now() < until {
        let sent = Instant::now();
        match exchange(&mut sender, template).await {
            Ok(()) => latencies.push(micros(sent.elapsed())),
            Err(err) => {
                errors += 1;
                first_error.get_or_insert(err);
                sender = connect(template.addr).await?;
            }
        }
    }
    Ok(json!({
        "mode": "seq", "ok": latencies.len(), "errors": errors, "first_error": first_error,
        "requests_total": warm + latencies.len() as u64 + errors,
        "secs": started.elapsed().as_secs_f64(), "latency_us": summary(latencies),
    }))
}

/// What one `rate` worker saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<u64>,
    errors: u64,
    /// Requests sent more than [`LATE`] after they were due: every connection was busy.
    late: u64,
    first_error: Option<String>,
}

/// How far behind its due time a request may leave before it counts as late. The timer ticks
/// each millisecond and the runtime shares its core, so a few milliseconds are normal.
const LATE: Duration = Duration::from_millis(5);

async fn rate(
    template: Arc<Template>,
    rate: f64,
    measure: f64,
    warmup: f64,
    conns: usize,
) -> Result<Value, String> {
    let period = Duration::from_secs_f64(1.0 / rate);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a positive request count far below 2^52"
    )]
    let (warm, total) = (
        (rate * warmup).round() as u64,
        (rate * (warmup + measure)).round() as u64,
    );
    let mut senders = Vec::with_capacity(conns);
    for _ in 0..conns {
        senders.push(connect(template.addr).await?);
    }
    let next = Arc::new(AtomicU64::new(0));
    // Started a little ahead, so every worker is waiting when the first request is due.
    let start = tokio::time::Instant::now() + Duration::from_millis(5);
    // A server that cannot keep up would otherwise stretch the run without bound: after this,
    // requests not yet sent count as `unsent`.
    let stop = start + secs(warmup + measure + 1.0);
    let workers: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let (template, next) = (Arc::clone(&template), Arc::clone(&next));
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    if tokio::time::Instant::now() > stop {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let due = start + period * u32::try_from(i).unwrap_or(u32::MAX);
                    tokio::time::sleep_until(due).await;
                    let sent = tokio::time::Instant::now();
                    let result = exchange(&mut sender, &template).await;
                    if i < warm {
                        continue;
                    }
                    if sent - due > LATE {
                        tally.late += 1;
                    }
                    match result {
                        Ok(()) => tally.latencies.push(micros(sent.elapsed())),
                        Err(err) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(err);
                            match connect(template.addr).await {
                                Ok(fresh) => sender = fresh,
                                Err(_) => break,
                            }
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for worker in workers {
        let tally = worker.await.map_err(|e| e.to_string())?;
        all.latencies.extend(tally.latencies);
        all.errors += tally.errors;
        all.late += tally.late;
        if all.first_error.is_none() {
            all.first_error = tally.first_error;
        }
    }
    // Everything answered, warm-up included, over the whole run: the throughput actually served.
    let sent = next.load(Ordering::Relaxed).min(total);
    #[expect(clippy::cast_precision_loss, reason = "request counts far below 2^52")]
    let achieved = sent.saturating_sub(all.errors) as f64 / start.elapsed().as_secs_f64();
    Ok(json!({
        "mode": "rate", "rate": rate, "ok": all.latencies.len(), "errors": all.errors,
        "requests_total": sent, "late": all.late,
        "unsent": (total - warm).saturating_sub(all.latencies.len() as u64 + all.errors),
        "first_error": all.first_error, "achieved_rps": achieved,
        "latency_us": summary(all.latencies),
    }))
}

/// What one stream delivered.
#[derive(Default)]
struct StreamSeen {
    ttfb_us: u64,
    content: u64,
    max_gap_us: u64,
    completed: bool,
    error: Option<String>,
}

/// Whether an SSE event's data is a content delta (Anthropic `text_delta`, or a Chat Completions
/// chunk whose `content` is a non-empty string), and whether it is the stream's last event.
/// Substring checks rather than a JSON parse: the load generator shares its core with the mock,
/// and a thousand streams bring tens of thousands of events a second.
fn classify(data: &[u8]) -> (bool, bool) {
    use memchr::memmem::find;
    if data == b"[DONE]" || find(data, b"\"message_stop\"").is_some() {
        return (false, true);
    }
    if find(data, b"\"text_delta\"").is_some() {
        return (true, false);
    }
    let mut rest = data;
    while let Some(i) = find(rest, b"\"content\":") {
        rest = rest[i + 10..].trim_ascii_start();
        if rest.starts_with(b"\"") && !rest.starts_with(b"\"\"") {
            return (true, false);
        }
    }
    (false, false)
}

async fn one_stream(
    mut sender: Sender,
    template: Arc<Template>,
    at: tokio::time::Instant,
) -> StreamSeen {
    tokio::time::sleep_until(at).await;
    let mut seen = StreamSeen::default();
    if let Err(err) = read_stream(&mut sender, &template, &mut seen).await {
        seen.error = Some(err);
    }
    seen
}

async fn read_stream(
    sender: &mut Sender,
    template: &Template,
    seen: &mut StreamSeen,
) -> Result<(), String> {
    let sent = Instant::now();
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(template.request())
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let mut body = response.into_body();
    let mut buffer = BytesMut::new();
    let mut last_content: Option<Instant> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let now = Instant::now();
        if seen.ttfb_us == 0 {
            seen.ttfb_us = micros(now - sent).max(1);
        }
        if status != StatusCode::OK {
            buffer.extend_from_slice(&data);
            continue;
        }
        // SSE payloads carry no meaningful `\r`; dropping them leaves one separator to find.
        buffer.extend(data.iter().copied().filter(|b| *b != b'\r'));
        while let Some(end) = memchr::memmem::find(&buffer, b"\n\n") {
            let event = buffer.split_to(end + 2);
            for line in event[..].split(|b| *b == b'\n') {
                let Some(data) = line.strip_prefix(b"data:") else {
                    continue;
                };
                let (content, last) = classify(data.trim_ascii());
                if content {
                    if let Some(previous) = last_content {
                        seen.max_gap_us = seen.max_gap_us.max(micros(now - previous));
                    }
                    last_content = Some(now);
                    seen.content += 1;
                }
                seen.completed |= last;
            }
        }
    }
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&buffer[..buffer.len().min(300)])
        ))
    }
}

async fn streams(
    template: Arc<Template>,
    n: usize,
    ramp_ms: u64,
    expect: u64,
    timeout: u64,
) -> Result<Value, String> {
    let mut senders = Vec::with_capacity(n);
    // In batches, so a thousand connects do not overflow the server's accept backlog.
    for batch in (0..n).collect::<Vec<_>>().chunks(100) {
        let connects: Vec<_> = batch
            .iter()
            .map(|_| tokio::spawn(connect(template.addr)))
            .collect();
        for connect in connects {
            senders.push(connect.await.map_err(|e| e.to_string())??);
        }
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let step = Duration::from_millis(ramp_ms) / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, sender)| {
            let at = start + step * u32::try_from(i).unwrap_or(u32::MAX);
            tokio::spawn(one_stream(sender, Arc::clone(&template), at))
        })
        .collect();
    let deadline = start + Duration::from_secs(timeout);
    let mut seen = Vec::with_capacity(n);
    let mut timed_out = 0u64;
    for task in tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(result) => seen.push(result.map_err(|e| e.to_string())?),
            Err(_) => timed_out += 1,
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let completed = seen
        .iter()
        .filter(|s| s.completed && s.error.is_none())
        .count();
    let errors = seen.iter().filter(|s| s.error.is_some()).count();
    let first_error = seen.iter().find_map(|s| s.error.clone());
    let content: u64 = seen.iter().map(|s| s.content).sum();
    let ttfb: Vec<u64> = seen
        .iter()
        .filter(|s| s.ttfb_us > 0)
        .map(|s| s.ttfb_us)
        .collect();
    let gaps: Vec<u64> = seen.iter().map(|s| s.max_gap_us).collect();
    Ok(json!({
        "mode": "streams", "n": n, "completed": completed, "errors": errors,
        "timed_out": timed_out, "first_error": first_error,
        "content_received": content, "content_sent": expect * n as u64,
        "ttfb_us": summary(ttfb), "max_gap_us": summary(gaps), "wall_secs": wall,
    }))
}

async fn cold(template: &Template, timeout: u64, command: &[String]) -> Result<Value, String> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| "`cold` needs a command after `--`".to_owned())?;
    let started = Instant::now();
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let deadline = started + Duration::from_secs(timeout);
    let mut last_error = String::new();
    let result = loop {
        if Instant::now() > deadline {
            break Err(format!("no 200 within {timeout} s: {last_error}"));
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("`{program}` exited with {status} before answering"));
        }
        let attempt = async {
            let mut sender = connect(template.addr).await?;
            exchange(&mut sender, template).await
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(())) => break Ok(started.elapsed()),
            Ok(Err(err)) => last_error = err,
            Err(_) => "attempt timed out".clone_into(&mut last_error),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let elapsed = result?;
    Ok(json!({"mode": "cold", "ms": elapsed.as_secs_f64() * 1000.0}))
}

/// Runs one mode against its target.
async fn run(mode: Mode) -> Result<Value, String> {
    match mode {
        Mode::Seq {
            target,
            secs,
            warmup_secs,
        } => seq(&Template::new(&target)?, secs, warmup_secs).await,
        Mode::Rate {
            target,
            rate: per_second,
            secs,
            warmup_secs,
            conns,
        } => {
            rate(
                Arc::new(Template::new(&target)?),
                per_second,
                secs,
                warmup_secs,
                conns,
            )
            .await
        }
        Mode::Streams {
            target,
            n,
            ramp_ms,
            expect,
            timeout_secs,
        } => {
            streams(
                Arc::new(Template::new(&target)?),
                n,
                ramp_ms,
                expect,
                timeout_secs,
            )
            .await
        }
        Mode::Cold {
            target,
            timeout_secs,
            command,
        } => cold(&Template::new(&target)?, timeout_secs, &command).await,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = run(cli.mode).await;
    let (value, code) = match outcome {
        Ok(value) => (value, std::process::ExitCode::SUCCESS),
        Err(err) => (json!({"error": err}), std::process::ExitCode::FAILURE),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    code
}
