//! `watchpost-bench command`: one run of a configured command, end to end, as a tab sees it.
//!
//! Opens the event stream, starts the command with `POST /api/run_command`, and reads the stream until the
//! run has ended. Reports how long the run took from the request to the event that ends it, its output
//! lines (all in the log file) against what the stream carried (capped), the stream's bytes, and with
//! `--pid` the server's CPU over the run. A program printing a flood of lines (`seq 1 1000000`) measures the
//! output path: the pipes, the log file, the cap.

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use shared::{CommandRun, Envelope, Event};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub async fn command_bench(
    url: String,
    token: Option<String>,
    name: String,
    target: String,
    params: BTreeMap<String, String>,
    pid: Option<u32>,
) -> Result<()> {
    let token = token.context("a token is needed (--token or WATCHPOST_TOKEN), of an operator")?;
    let client = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse()?,
            )]
            .into_iter()
            .collect(),
        )
        .build()?;
    let stream = client
        .get(format!("{url}/api/events"))
        .header("accept", "text/event-stream")
        .send()
        .await?;
    if !stream.status().is_success() {
        bail!("the stream answered {}", stream.status());
    }
    let mut bytes = stream.bytes_stream();
    let cpu_before = pid.map(crate::proc_sample).transpose()?;
    let began = Instant::now();
    let r = client
        .post(format!("{url}/api/run_command"))
        .json(&serde_json::json!({ "name": name, "target": target, "params": params }))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("run_command answered {}: {}", r.status(), r.text().await?);
    }
    let started: CommandRun = r.json().await?;
    let answered = began.elapsed();

    let mut buffer = Vec::<u8>::new();
    let (mut streamed_lines, mut chunks, mut stream_bytes) = (0u64, 0u64, 0u64);
    let finished = tokio::time::timeout(Duration::from_secs(600), async {
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk?;
            stream_bytes += chunk.len() as u64;
            buffer.extend_from_slice(&chunk);
            while let Some(end) = crate::streams::find(&buffer, b"\n\n") {
                let block: Vec<u8> = buffer.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block);
                let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                let Ok(env) = serde_json::from_str::<Envelope>(data) else {
                    continue;
                };
                match env.event {
                    Event::CommandOutput(c) if c.run == started.id => {
                        chunks += 1;
                        streamed_lines += c.lines.len() as u64;
                    }
                    Event::Command(run) if run.id == started.id && run.state.finished() => {
                        return Ok::<_, anyhow::Error>(run);
                    }
                    _ => {}
                }
            }
        }
        bail!("the stream ended before the run did")
    })
    .await
    .context("the run did not end within 10 minutes")??;
    let took = began.elapsed();
    println!(
        "run {} of {name} on {target}: {} ({}) after {:.3} s (run_command answered in {:.1} ms)",
        finished.id,
        finished.state.label(),
        finished.detail,
        took.as_secs_f64(),
        answered.as_secs_f64() * 1000.0
    );
    println!(
        "output: {} lines in the log file ({:.0} lines/s); the stream carried {streamed_lines} of them in \
         {chunks} chunks, {:.1} KiB of stream in all",
        finished.output_lines,
        finished.output_lines as f64 / took.as_secs_f64(),
        stream_bytes as f64 / 1024.0
    );
    if let (Some(pid), Some((t0, _))) = (pid, cpu_before) {
        let (t1, rss) = crate::proc_sample(pid)?;
        println!(
            "server pid {pid}: {:.2} s of CPU over the run ({:.0}% of one core), RSS {:.1} MiB after",
            (t1 - t0) as f64 / crate::TICKS_PER_SECOND,
            (t1 - t0) as f64 / crate::TICKS_PER_SECOND / took.as_secs_f64() * 100.0,
            rss as f64 / 1048576.0
        );
    }
    Ok(())
}
