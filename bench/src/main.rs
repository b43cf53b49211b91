//! `watchpost-bench`: the load harness for a running Watchpost. Prints figures; asserts nothing.
//!
//! - `clients`: opens N event-stream clients, and reports how many the server holds, its RSS per client and
//!   the delivery latency of live events (receipt time minus the event's own `at_ms`).
//! - `idle`: CPU and RSS of an idle server process over a window, read from /proc.
//! - `size`: gzip -9 sizes of what a browser downloads on first load.
//! - `store`: the embedded store under simulated per-second readings (see `store.rs`).
//! - `logs`: error-log ingest throughput and page latency against a running server (see `logs.rs`).
//! - `command`: one run of a configured command, end to end, and its output path (see `command.rs`).

mod command;
mod logs;
mod store;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "watchpost-bench",
    about = "Load harness for a running Watchpost"
)]
struct Cli {
    /// An API token of the server (`watchpost token add bench --role operator`): every route but /healthz
    /// needs one.
    #[arg(long, env = "WATCHPOST_TOKEN", global = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Hold N stream clients and measure delivery latency and server memory per client.
    Clients {
        /// The server, e.g. http://127.0.0.1:3000
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// How long to measure once every client is connected, in seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Connections opened at once while ramping up.
        #[arg(long, default_value_t = 200)]
        ramp: usize,
        /// The server's pid, when it runs on this machine: its CPU use during the window is reported too.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// CPU and RSS of a running (idle) server process.
    Idle {
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Insert throughput, bytes per sample and history query latency of the embedded store.
    Store {
        /// Simulated days of per-second data to write.
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
    /// Error-log ingest throughput and page latency of a running server.
    Logs {
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        #[arg(long, default_value_t = 1_000_000)]
        lines: usize,
        /// Lines per request.
        #[arg(long, default_value_t = 5_000)]
        batch: usize,
        /// Concurrent connections sending.
        #[arg(long, default_value_t = 2)]
        senders: usize,
    },
    /// One run of a configured command: time to its end, output lines, what the stream carried.
    Command {
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        /// The command's name.
        #[arg(long)]
        name: String,
        #[arg(long)]
        target: String,
        /// A parameter, NAME=VALUE; repeat for more.
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// The server's pid, when it runs on this machine: its CPU over the run is reported too.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// First-load sizes (gzip -9) of the built site.
    Size {
        #[arg(long, default_value = "target/site")]
        site: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Clients {
            url,
            clients,
            seconds,
            ramp,
            pid,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(clients_bench(
                url,
                cli.token,
                clients,
                Duration::from_secs(seconds),
                ramp.max(1),
                pid,
            ))
        }
        Cmd::Idle { pid, seconds } => idle_bench(pid, Duration::from_secs(seconds)),
        Cmd::Size { site } => size_bench(&site),
        Cmd::Logs {
            url,
            lines,
            batch,
            senders,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(logs::logs_bench(
                url,
                cli.token,
                lines,
                batch.max(1),
                senders,
            )),
        Cmd::Command {
            url,
            name,
            target,
            params,
            pid,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(command::command_bench(
                url,
                cli.token,
                name,
                target,
                params.into_iter().collect(),
                pid,
            )),
        Cmd::Store { days } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(store::store_bench(days.max(1))),
    }
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))
}

#[derive(serde::Deserialize)]
struct Healthz {
    stream_clients: usize,
    rss_bytes: Option<u64>,
}

async fn healthz(authority: &str) -> Result<Healthz> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .context("connecting for /healthz")?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get("/healthz")
        .header("host", authority)
        .body(Empty::<Bytes>::new())?;
    let body = sender
        .send_request(req)
        .await?
        .into_body()
        .collect()
        .await?
        .to_bytes();
    serde_json::from_slice(&body).context("parsing /healthz")
}

struct Shared {
    histogram: Mutex<Histogram<u64>>,
    measuring: AtomicBool,
    connected: AtomicUsize,
    failed: AtomicUsize,
}

async fn clients_bench(
    url: String,
    token: Option<String>,
    n: usize,
    window: Duration,
    ramp: usize,
    pid: Option<u32>,
) -> Result<()> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if (limit as usize) < n + 64 {
        bail!("the open-file limit is {limit}, too low for {n} clients");
    }
    let authority = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // Let the server settle, then take its baseline RSS.
    let before = healthz(&authority).await?;
    let shared = Arc::new(Shared {
        histogram: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        measuring: AtomicBool::new(false),
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
    });
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(ramp) {
        let target = shared.connected.load(Ordering::Relaxed) + batch.len();
        for _ in batch {
            tasks.push(tokio::spawn(client(
                authority.clone(),
                token.clone(),
                shared.clone(),
            )));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
            < target
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let connected = shared.connected.load(Ordering::Relaxed);
    println!(
        "connected {connected}/{n} clients in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // let snapshots drain before measuring
    shared.measuring.store(true, Ordering::Relaxed);
    let cpu_before = pid.map(proc_sample).transpose()?;
    let window_start = Instant::now();
    tokio::time::sleep(window).await;
    shared.measuring.store(false, Ordering::Relaxed);
    if let (Some(pid), Some((t0, _))) = (pid, cpu_before) {
        let (t1, _) = proc_sample(pid)?;
        let cpu =
            (t1 - t0) as f64 / TICKS_PER_SECOND / window_start.elapsed().as_secs_f64() * 100.0;
        println!("server CPU        {cpu:.1}% of one core while fanning out");
    }
    let after = healthz(&authority).await?;

    let h = shared
        .histogram
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?;
    let ms = |us: u64| us as f64 / 1000.0;
    let rss_delta = after
        .rss_bytes
        .unwrap_or(0)
        .saturating_sub(before.rss_bytes.unwrap_or(0));
    println!(
        "server holds      {} stream clients (bench connected {connected}, failed {})",
        after.stream_clients,
        shared.failed.load(Ordering::Relaxed)
    );
    println!(
        "server RSS        {:.1} MiB before, {:.1} MiB after: {:.1} KiB per client",
        before.rss_bytes.unwrap_or(0) as f64 / 1048576.0,
        after.rss_bytes.unwrap_or(0) as f64 / 1048576.0,
        rss_delta as f64 / 1024.0 / connected.max(1) as f64
    );
    println!(
        "delivery latency  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} live events in {}s",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len(),
        window.as_secs()
    );
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// One stream client: a raw socket, so the harness spends as little of the machine as it can on its own
/// side (it shares the cores with the server). Each SSE frame is one HTTP chunk, so scanning the bytes for
/// `event: health` and the envelope's `"at_ms":` needs no HTTP or JSON parsing.
async fn client(authority: String, token: Option<String>, shared: Arc<Shared>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let result: Result<()> = async {
        let mut socket = tokio::net::TcpStream::connect(&authority).await?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /api/events HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\n{auth}\r\n"
        );
        socket.write_all(request.as_bytes()).await?;
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut counted = false;
        loop {
            buf.reserve(4096);
            if socket.read_buf(&mut buf).await? == 0 {
                bail!("the server closed the stream");
            }
            let received_us = now_us();
            if !counted && buf.starts_with(b"HTTP/1.1 200") {
                counted = true;
                shared.connected.fetch_add(1, Ordering::Relaxed);
            }
            // Complete frames end in a blank line; HTTP's CRLFs and chunk headers never form "\n\n".
            let mut consumed = 0;
            while let Some(end) = find(&buf[consumed..], b"\n\n") {
                let frame = &buf[consumed..consumed + end];
                if shared.measuring.load(Ordering::Relaxed)
                    && find(frame, b"event: health\n").is_some()
                    && let Some(at_ms) = at_ms(frame)
                {
                    let latency = received_us.saturating_sub(at_ms * 1000).max(1);
                    if let Ok(mut h) = shared.histogram.lock() {
                        h.saturating_record(latency);
                    }
                }
                consumed += end + 2;
            }
            buf.drain(..consumed);
        }
    }
    .await;
    if result.is_err() {
        shared.failed.fetch_add(1, Ordering::Relaxed);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The envelope's own `"at_ms":` (the first one: `sampled_at_ms` does not match the leading quote).
fn at_ms(block: &[u8]) -> Option<u64> {
    let key = b"\"at_ms\":";
    let start = find(block, key)? + key.len();
    let digits: String = block[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    digits.parse().ok()
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// utime + stime of a process in clock ticks, and its RSS in bytes.
fn proc_sample(pid: u32) -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("no process {pid}"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields overall.
    let after = stat
        .rsplit_once(')')
        .context("unexpected /proc stat format")?
        .1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("VmRSS")?
        .parse::<u64>()?;
    Ok((ticks, rss_kib * 1024))
}

/// Linux reports process times in USER_HZ, 100 per second on every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

fn idle_bench(pid: u32, window: Duration) -> Result<()> {
    let (t0, _) = proc_sample(pid)?;
    let start = Instant::now();
    std::thread::sleep(window);
    let (t1, rss) = proc_sample(pid)?;
    let cpu = (t1 - t0) as f64 / TICKS_PER_SECOND / start.elapsed().as_secs_f64() * 100.0;
    println!(
        "idle server pid {pid} over {}s: CPU {cpu:.2}% of one core, RSS {:.1} MiB",
        window.as_secs(),
        rss as f64 / 1048576.0
    );
    Ok(())
}

fn size_bench(site: &std::path::Path) -> Result<()> {
    let files = [
        "pkg/watchpost.wasm",
        "pkg/watchpost.js",
        "pkg/watchpost.css",
        "echarts.js",
        "favicon.svg",
    ];
    let mut total = 0;
    for file in files {
        let bytes = std::fs::read(site.join(file))
            .with_context(|| format!("{} (build the site first)", site.join(file).display()))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes)?;
        let zipped = gz.finish()?.len();
        total += zipped;
        println!(
            "{file:24} {:>9} bytes raw {:>9} bytes gzip -9",
            bytes.len(),
            zipped
        );
    }
    println!(
        "{:24} {:>9} bytes gzip -9 ({:.0} KiB)",
        "first load total",
        total,
        total as f64 / 1024.0
    );
    Ok(())
}
