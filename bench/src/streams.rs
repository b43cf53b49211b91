//! Stream clients: `clients` holds N event streams against a running Watchpost and measures delivery;
//! `floor` runs the same clients against the least a server can do, to show what the machine allows.
//!
//! The floor matters because the harness shares the machine with the server: on loopback every frame costs a
//! write on the server's side and a read on the harness's, both mostly in the kernel, and the two compete for
//! the same cores. `floor` serves a frame of the same size with one blocking write per socket from plain
//! threads, no HTTP library and no async runtime, so the gap between the two runs is what Watchpost itself
//! adds.

use crate::{TICKS_PER_SECOND, proc_sample};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// N clients, connected and reading.
struct Load {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Load {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Raises this process's open-file limit to `needed` when it is lower (the hard limit too, given the
/// privilege); child processes started afterwards inherit it.
fn raise_fd_limit(needed: u64) -> Result<()> {
    let mut limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if limit < needed && rlimit::Resource::NOFILE.set(needed, needed).is_ok() {
        // Raising the hard limit takes privilege (root, or CAP_SYS_RESOURCE).
        limit = needed;
    }
    if limit < needed {
        bail!("the open-file limit is {limit}, too low: {needed} are needed");
    }
    Ok(())
}

/// Opens `n` stream clients, `ramp` at a time, and waits until each has its response or has failed.
async fn connect(authority: &str, token: Option<&str>, n: usize, ramp: usize) -> Result<Load> {
    raise_fd_limit(n as u64 + 64)?;
    let shared = Arc::new(Shared {
        histogram: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        measuring: AtomicBool::new(false),
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
    });
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let mut opened = 0;
    while opened < n {
        let batch = ramp.min(n - opened);
        for _ in 0..batch {
            tasks.push(tokio::spawn(client(
                authority.to_owned(),
                token.map(str::to_owned),
                shared.clone(),
            )));
        }
        opened += batch;
        let deadline = Instant::now() + Duration::from_secs(30);
        while shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
            < opened
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    println!(
        "connected {}/{n} clients in {:.1}s",
        shared.connected.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    Ok(Load { shared, tasks })
}

/// Records delivery latency for `window`, printing the CPU the server (`pid`) and the harness spent in it.
async fn measure(load: &Load, window: Duration, pid: Option<u32>) -> Result<()> {
    tokio::time::sleep(Duration::from_secs(2)).await; // let snapshots drain before measuring
    load.shared.measuring.store(true, Ordering::Relaxed);
    let cpu_before = pid.map(proc_sample).transpose()?;
    let own_before = proc_sample(std::process::id())?;
    let window_start = Instant::now();
    tokio::time::sleep(window).await;
    load.shared.measuring.store(false, Ordering::Relaxed);
    let share = |t0: u64, t1: u64| {
        t1.saturating_sub(t0) as f64 / TICKS_PER_SECOND / window_start.elapsed().as_secs_f64()
            * 100.0
    };
    if let (Some(pid), Some((t0, _))) = (pid, cpu_before) {
        let (t1, _) = proc_sample(pid)?;
        println!(
            "server CPU        {:.1}% of one core while fanning out",
            share(t0, t1)
        );
    }
    // The harness shares the machine with the server: what it spends reading is time the server's
    // fan-out competes with, so it is part of the picture.
    println!(
        "bench CPU         {:.1}% of one core while reading",
        share(own_before.0, proc_sample(std::process::id())?.0)
    );
    Ok(())
}

fn print_latency(load: &Load, window: Duration) -> Result<()> {
    let h = load
        .shared
        .histogram
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?;
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "delivery latency  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} live events in {}s",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len(),
        window.as_secs()
    );
    Ok(())
}

/// `clients`: N streams against a running server.
pub async fn clients_bench(
    url: String,
    token: Option<String>,
    n: usize,
    window: Duration,
    ramp: usize,
    pid: Option<u32>,
) -> Result<()> {
    let authority = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let before = healthz(&authority).await?;
    let load = connect(&authority, token.as_deref(), n, ramp).await?;
    measure(&load, window, pid).await?;
    let after = healthz(&authority).await?;
    let connected = load.shared.connected.load(Ordering::Relaxed);
    let rss_delta = after
        .rss_bytes
        .unwrap_or(0)
        .saturating_sub(before.rss_bytes.unwrap_or(0));
    println!(
        "server holds      {} stream clients (bench connected {connected}, failed {})",
        after.stream_clients,
        load.shared.failed.load(Ordering::Relaxed)
    );
    println!(
        "server RSS        {:.1} MiB before, {:.1} MiB after: {:.1} KiB per client",
        before.rss_bytes.unwrap_or(0) as f64 / 1048576.0,
        after.rss_bytes.unwrap_or(0) as f64 / 1048576.0,
        rss_delta as f64 / 1024.0 / connected.max(1) as f64
    );
    print_latency(&load, window)
}

/// `floor`: the same clients against [`FloorServer`], run as a child process (`floor-serve`) so that its
/// sockets and CPU are counted apart from the harness's, as a real server's are.
pub async fn floor_bench(
    n: usize,
    window: Duration,
    ramp: usize,
    frame_bytes: usize,
    writers: usize,
) -> Result<()> {
    // Before the child starts, so that it inherits the limit.
    raise_fd_limit(n as u64 + 64)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "floor-serve",
            "--frame-bytes",
            &frame_bytes.to_string(),
            "--writers",
            &writers.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the floor server")?;
    let stdout = child.stdout.take();
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        if let Some(out) = stdout {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        Ok::<_, std::io::Error>(line)
    });
    let result = async {
        let line = match tokio::time::timeout(Duration::from_secs(30), first_line).await {
            Ok(Ok(Ok(line))) if !line.is_empty() => line,
            _ => bail!("the floor server did not say where it listens"),
        };
        let (authority, frame_len) = line
            .trim()
            .split_once(' ')
            .context("the floor server's first line is `ADDRESS FRAME_LEN`")?;
        let load = connect(authority, None, n, ramp).await?;
        measure(&load, window, Some(child.id())).await?;
        println!(
            "floor server      {writers} writer thread(s), one {frame_len}-byte chunk per client a second"
        );
        print_latency(&load, window)
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// `floor-serve`: runs [`FloorServer`] until stdin closes (the parent exits or kills it), after printing
/// `ADDRESS FRAME_LEN` on stdout.
pub fn floor_serve(frame_bytes: usize, writers: usize) -> Result<()> {
    // The open-file limit is the parent's, raised before it started this process.
    let server = FloorServer::start(frame_bytes, writers)?;
    println!("{} {}", server.authority, server.frame_len);
    std::io::stdout().flush()?;
    // Until the parent goes away: its end of our stdin closes then.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    server.stop();
    Ok(())
}

/// The least a stream server can do: accept, answer the request with a chunked `text/event-stream`, then
/// once a second write the same frame to every socket with one blocking `write` each, from `writers` plain
/// threads (Watchpost's runtime has one worker per core).
struct FloorServer {
    authority: String,
    frame_len: usize,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl FloorServer {
    fn start(frame_bytes: usize, writers: usize) -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let authority = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Vec<Arc<Mutex<Vec<std::net::TcpStream>>>> =
            (0..writers).map(|_| Arc::default()).collect();
        let mut threads = Vec::new();
        {
            let (stop, sockets) = (stop.clone(), sockets.clone());
            threads.push(std::thread::spawn(move || {
                accept_loop(&listener, &sockets, &stop);
            }));
        }
        let frame_len = floor_frame(0, frame_bytes).len();
        for list in sockets {
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // On the second, as the collector's readings are.
                    let now = now_us();
                    std::thread::sleep(Duration::from_micros(1_000_000 - now % 1_000_000));
                    let frame = floor_frame(now_us() / 1000, frame_bytes);
                    let Ok(mut list) = list.lock() else { return };
                    // A socket whose reader is gone is dropped; the others are written in turn.
                    list.retain_mut(|s| s.write_all(&frame).is_ok());
                }
            }));
        }
        Ok(FloorServer {
            authority,
            frame_len,
            stop,
            threads,
        })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        // The accept loop blocks in `accept`: one more connection lets it see the flag.
        let _ = std::net::TcpStream::connect(&self.authority);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: &std::net::TcpListener,
    sockets: &[Arc<Mutex<Vec<std::net::TcpStream>>>],
    stop: &AtomicBool,
) {
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut socket, _)) = listener.accept() else {
            // Out of descriptors, say: pause rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let mut request = [0u8; 2048];
        // The harness always reads; the timeouts only keep a stuck client from stopping everyone else.
        let answered = socket.set_nodelay(true).is_ok()
            && socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .is_ok()
            && socket
                .set_write_timeout(Some(Duration::from_secs(5)))
                .is_ok()
            && socket.read(&mut request).is_ok()
            && socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                      cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
                )
                .is_ok();
        if answered && let Ok(mut list) = sockets[next % sockets.len()].lock() {
            list.push(socket);
            next += 1;
        }
    }
}

/// One chunk of HTTP/1.1 chunked encoding holding an SSE `health` frame of about `frame_bytes` bytes, with
/// `"at_ms":` as Watchpost's envelope has it.
fn floor_frame(at_ms: u64, frame_bytes: usize) -> Vec<u8> {
    let head = format!("id: {at_ms}000\nevent: health\ndata: {{\"at_ms\":{at_ms},\"pad\":\"");
    let pad = frame_bytes.saturating_sub(head.len() + 4);
    let sse = format!("{head}{}\"}}\n\n", "x".repeat(pad));
    let mut chunk = format!("{:x}\r\n", sse.len()).into_bytes();
    chunk.extend_from_slice(sse.as_bytes());
    chunk.extend_from_slice(b"\r\n");
    chunk
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

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_frame_is_one_chunk_the_client_reads_as_a_health_event() {
        let chunk = floor_frame(1_795_000_000_123, 530);
        let text = String::from_utf8(chunk.clone()).unwrap();
        let (size, rest) = text.split_once("\r\n").unwrap();
        let body = rest.strip_suffix("\r\n").unwrap();
        assert_eq!(usize::from_str_radix(size, 16).unwrap(), body.len());
        assert!((525..=535).contains(&body.len()), "{}", body.len());
        let end = find(body.as_bytes(), b"\n\n").unwrap();
        assert_eq!(end + 2, body.len());
        let frame = &body.as_bytes()[..end];
        assert!(find(frame, b"event: health\n").is_some());
        assert_eq!(at_ms(frame), Some(1_795_000_000_123));
    }
}
