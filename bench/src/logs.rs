//! `watchpost-bench logs`: the error log against a running server, over HTTP as a log shipper would use it.
//!
//! Sends `--lines` entries to `POST /api/ingest/logs` as NDJSON in batches of `--batch`, from `--senders`
//! concurrent connections, and reports lines per second end to end (parse, validate, one transaction per
//! batch, fan-out). Then measures page latency of `GET /api/logs` with everything stored: the newest page, a page
//! from the middle (by cursor) and a filtered page, 50 runs each.

use anyhow::{Context, Result, bail, ensure};
use shared::LogPage;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub async fn logs_bench(
    url: String,
    token: Option<String>,
    lines: usize,
    batch: usize,
    senders: usize,
) -> Result<()> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .default_headers(headers)
        .build()?;
    const LEVELS: [&str; 6] = ["info", "info", "info", "warn", "error", "critical"];
    const SERVICES: [&str; 5] = ["api", "db", "worker", "auth", "billing"];
    let make_batch = move |start: usize| -> String {
        let mut body = String::with_capacity(batch * 160);
        for i in start..(start + batch).min(lines) {
            body.push_str(
                &serde_json::json!({
                    "level": LEVELS[i % LEVELS.len()],
                    "service": SERVICES[i % SERVICES.len()],
                    "message": format!("request {i} failed: upstream timed out after 3000 ms (attempt {})", i % 3),
                    "fields": { "route": "/api/orders", "status": 504 },
                })
                .to_string(),
            );
            body.push('\n');
        }
        body
    };
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders.max(1) {
        let (client, next, url) = (client.clone(), next.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = 0usize;
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= lines {
                    return Ok::<usize, anyhow::Error>(sent);
                }
                let body = make_batch(start);
                let r = client
                    .post(format!("{url}/api/ingest/logs"))
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await
                    .context("ingest request")?;
                if !r.status().is_success() {
                    bail!(
                        "ingest answered {}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    );
                }
                sent += (start + batch).min(lines) - start;
            }
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await??;
    }
    let elapsed = began.elapsed();
    println!(
        "ingest: {sent} lines in batches of {batch} from {senders} connections in {:.1} s: {:.0} lines/s",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );

    let page = |query: String| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let began = Instant::now();
            let r = client.get(format!("{url}/api/logs?{query}")).send().await?;
            ensure!(r.status().is_success(), "page answered {}", r.status());
            let page: LogPage = r.json().await?;
            Ok::<_, anyhow::Error>((began.elapsed(), page))
        }
    };
    let (_, first) = page("limit=100".into()).await?;
    ensure!(!first.entries.is_empty(), "nothing stored");
    // Walk to the middle by cursor, 500 at a time, for a cursor deep in the log.
    let total = sent;
    let mut cursor = first.next;
    let mut walked = first.entries.len();
    while walked < total / 2 {
        let Some(c) = cursor else { break };
        let (_, p) = page(format!("limit=500&before={c}")).await?;
        walked += p.entries.len();
        cursor = p.next;
    }
    let middle = cursor.context("the log ended before its middle")?;
    for (name, query) in [
        ("newest page (100)", "limit=100".to_string()),
        (
            "page from the middle (100)",
            format!("limit=100&before={middle}"),
        ),
        (
            "filtered: critical, service auth (100)",
            "limit=100&level=critical&service=auth".into(),
        ),
        (
            "text search 'request 4242' (100)",
            "limit=100&q=request%204242".into(),
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..50 {
            times.push(page(query.clone()).await?.0);
        }
        times.sort();
        println!(
            "  {name}: p50 {:.2} ms, p99 {:.2} ms",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() * 99 / 100].as_secs_f64() * 1e3
        );
    }
    Ok(())
}
