//! What an attacker without an account can cost a running server: made-up methods, a burst of wrong
//! passwords, slow clients, and a flood of bad requests against the database's size. Each prints figures; the
//! hardening tests (`server/tests/api/`) check the behaviour itself.

use crate::proc_sample;
use anyhow::{Context, Result};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A loopback source address for the `i`-th client (127.1.0.0 upwards), so that clients count as many
/// addresses rather than one.
fn source(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).unwrap_or(0) % (1 << 22);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i)
}

async fn connect(from: Ipv4Addr, to: SocketAddr) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    Ok(socket.connect(to).await?)
}

fn addr_of(url: &str) -> Result<SocketAddr> {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .context("the URL must be http://IP:PORT")
}

/// One request on a fresh connection; the status code, or 0 when the server gave none.
async fn raw_request(from: Ipv4Addr, to: SocketAddr, request: &str) -> u16 {
    let Ok(mut tcp) = connect(from, to).await else {
        return 0;
    };
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// `requests` requests with made-up methods (a new one each) to made-up paths: the server's RSS before and
/// after, and the series `/metrics` then holds.
pub async fn methods(url: String, token: Option<String>, pid: u32, requests: usize) -> Result<()> {
    let to = addr_of(&url)?;
    let (_, before) = proc_sample(pid)?;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for chunk in (0..requests).collect::<Vec<_>>().chunks(200) {
        let sent = chunk.iter().map(|i| async move {
            raw_request(
                Ipv4Addr::LOCALHOST,
                to,
                &format!(
                    "XMETHOD{i} /made/up/{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                ),
            )
            .await
        });
        for status in futures::future::join_all(sent).await {
            *statuses.entry(status).or_default() += 1;
        }
    }
    let (_, after) = proc_sample(pid)?;
    let client = reqwest::Client::new();
    let mut metrics = client.get(format!("{url}/metrics"));
    if let Some(token) = &token {
        metrics = metrics.bearer_auth(token);
    }
    let text = metrics.send().await?.text().await?;
    let series = text
        .lines()
        .filter(|l| l.starts_with("watchpost_http_requests_total{"))
        .count();
    println!(
        "{requests} made-up-method requests: statuses {statuses:?}; RSS {:.1} MiB before, {:.1} MiB after \
         ({:+.1} MiB); /metrics holds {series} request series",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after as f64 - before as f64) / 1048576.0
    );
    Ok(())
}

/// `attempts` concurrent wrong-password sign-ins for `name`, from one address or from `addresses`: how many
/// reached a password check (401), were refused by the lockout (429) or by the hashing queue (503), and the
/// server's peak RSS meanwhile (sampled every 5 ms).
pub async fn sign_ins(
    url: String,
    pid: u32,
    name: String,
    attempts: usize,
    addresses: usize,
) -> Result<()> {
    let to = addr_of(&url)?;
    let (_, before) = proc_sample(pid)?;
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Ok((_, rss)) = proc_sample(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let began = Instant::now();
    let sent = (0..attempts).map(|i| {
        let body = format!(r#"{{"name":"{name}","password":"guess number {i}"}}"#);
        let from = if addresses <= 1 {
            Ipv4Addr::LOCALHOST
        } else {
            source(i % addresses)
        };
        async move {
            raw_request(
                from,
                to,
                &format!(
                    "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
            )
            .await
        }
    });
    let statuses = futures::future::join_all(sent).await;
    let took = began.elapsed();
    tokio::time::sleep(Duration::from_millis(50)).await;
    sampling.abort();
    let count = |code: u16| statuses.iter().filter(|s| **s == code).count();
    println!(
        "{attempts} concurrent failed sign-ins for '{name}' from {} address(es) in {took:.2?}: {} password \
         checks (401), {} locked out (429), {} turned away by the hashing queue (503), {} other; RSS {:.1} \
         MiB before, peak {:.1} MiB",
        addresses.max(1),
        count(401),
        count(429),
        count(503),
        attempts - count(401) - count(429) - count(503),
        before as f64 / 1048576.0,
        peak.load(Ordering::Relaxed) as f64 / 1048576.0,
    );
    Ok(())
}

/// `clients` slow clients, each sending a request head one byte a second from its own address, held for
/// `seconds`: how many the server still holds open as time passes, and how long a signed-in user's dashboard
/// takes to load meanwhile.
pub async fn slow(url: String, token: Option<String>, clients: usize, seconds: u64) -> Result<()> {
    let to = addr_of(&url)?;
    let open = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let window = Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (open, refused) = (open.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut tcp) = connect(source(i), to).await else {
                refused.fetch_add(1, Ordering::Relaxed);
                return;
            };
            open.fetch_add(1, Ordering::Relaxed);
            let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            let mut sent = 0;
            let mut buf = [0u8; 256];
            while began.elapsed() < window {
                let byte = head.get(sent).copied().unwrap_or(b'a');
                if tcp.write_all(&[byte]).await.is_err() {
                    break;
                }
                sent += 1;
                // The server's answer or its closing ends the client.
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await
                    && (n == 0 || buf[..n].starts_with(b"HTTP/1.1 "))
                {
                    break;
                }
            }
            open.fetch_sub(1, Ordering::Relaxed);
        }));
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut line = Vec::new();
    while began.elapsed() < window + Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let load_began = Instant::now();
        let mut page = client.get(format!("{url}/"));
        if let Some(token) = &token {
            page = page.bearer_auth(token);
        }
        let status = match page.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                status.to_string()
            }
            Err(e) => format!("failed ({e})"),
        };
        line.push(format!(
            "t={:>3}s held {:>5}, dashboard {status} in {:.0} ms",
            began.elapsed().as_secs(),
            open.load(Ordering::Relaxed),
            load_began.elapsed().as_secs_f64() * 1000.0
        ));
    }
    for task in tasks {
        task.abort();
    }
    println!(
        "{clients} slow clients (one byte a second, each from its own address; {} could not connect):",
        refused.load(Ordering::Relaxed)
    );
    for l in line {
        println!("  {l}");
    }
    Ok(())
}

/// `requests` bad requests without an account, a quarter each: cross-site POSTs, wrong setup codes, wrong
/// passwords from many addresses, and unknown tokens from many addresses. The database's size in
/// `data_dir` before and after.
pub async fn flood(url: String, data_dir: &Path, requests: usize) -> Result<()> {
    let to = addr_of(&url)?;
    let size = || -> u64 {
        ["watchpost.db", "watchpost.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(data_dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    };
    let before = size();
    let began = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for chunk in (0..requests).collect::<Vec<_>>().chunks(256) {
        let sent = chunk.iter().map(|&i| {
            let from = source(i);
            let request = match i % 4 {
                0 => "POST /api/logout HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n\
                      Content-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned(),
                1 => {
                    let body = format!("code=wrong{i}&name=eve&password=long+enough+password");
                    format!(
                        "POST /api/setup HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
                2 => {
                    let body = format!(r#"{{"name":"user{i}","password":"guess"}}"#);
                    format!(
                        "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
                _ => format!(
                    "GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wpt_{i:064}\r\n\
                     Connection: close\r\n\r\n"
                ),
            };
            async move { raw_request(from, to, &request).await }
        });
        for status in futures::future::join_all(sent).await {
            *statuses.entry(status).or_default() += 1;
        }
    }
    // Let the writers catch up before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = size();
    println!(
        "{requests} bad requests in {:.1?}: statuses {statuses:?}; database {:.2} MiB before, {:.2} MiB after \
         ({:+.2} MiB)",
        began.elapsed(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after as f64 - before as f64) / 1048576.0
    );
    Ok(())
}
