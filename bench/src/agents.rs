//! `agents`: N simulated agents pushing to a running hub over real HTTP, as `watchpost-agent` does — one
//! batch per interval each with a whole health reading of this machine (varied per agent), a few log lines
//! every tenth batch — while `viewers` dashboards hold the event stream.
//!
//! Hosts are added through the hub's own "Add host" server function (`WATCHPOST_TOKEN` must be an admin's),
//! named `bench-NNN` and split between `prod` and `staging`, and removed again at the end. Reported: the
//! hub's CPU over the window and its RSS per agent (the growth from before the hosts were added, over their
//! number, read from `/proc` when `--pid` is given, else from `/healthz`; and the marginal cost: half the
//! agents push for a window first, and the growth the other half brings is divided by their number), push
//! latency (p50, p99, max),
//! pushes per second and refusals; with viewers, the stream's delivery figures as `clients` prints them.

use crate::{TICKS_PER_SECOND, proc_sample};
use anyhow::{Context, Result, bail};
use collect::wire::{Batch, Hello, Item, ORDERS_PATH, PUSH_PATH, Record};
use hdrhistogram::Histogram;
use shared::{HostHealth, HostId, Level, NewHost, NewLog};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the bench needs of one added host.
struct Host {
    id: i64,
    name: String,
    environment: String,
    token: String,
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    records: AtomicU64,
}

/// How a run is shaped.
pub struct AgentsLoad {
    pub url: String,
    pub token: Option<String>,
    pub agents: usize,
    pub interval: Duration,
    pub window: Duration,
    pub viewers: usize,
    pub pid: Option<u32>,
}

pub async fn agents_bench(load: AgentsLoad) -> Result<()> {
    let Some(admin) = load.token.clone() else {
        bail!("an admin's token is needed to add the hosts: set WATCHPOST_TOKEN or --token");
    };
    let url = load.url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.agents + 16)
        .timeout(Duration::from_secs(30))
        .build()?;
    // Each agent also holds its stream of orders open, as a real one does: a connection without a deadline.
    let stream_client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.agents + 16)
        .build()?;
    let rss_before = rss(&client, &url, load.pid).await?;
    let mut rss_half = None;
    let hosts = add_hosts(&client, &url, &admin, load.agents).await?;
    println!(
        "added {} hosts (bench-000 …), half prod, half staging",
        hosts.len()
    );
    let template = reading()?;
    let counts = Arc::new(Counts::default());
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    // Half the agents first, then the rest: what the hub holds for the second half over its number is the
    // cost of one more agent, without what the hub's bounded buffers (its replay ring of 4,096 events, the
    // store's caches) take once as they fill, which the growth from before any host counts in.
    let half = hosts.len() / 2;
    for (i, host) in hosts.iter().enumerate() {
        if i == half && half > 0 {
            tokio::time::sleep(load.interval * 5 + load.window).await;
            rss_half = rss(&client, &url, load.pid).await?;
        }
        tasks.push(tokio::spawn(listen(
            stream_client.clone(),
            format!("{url}{ORDERS_PATH}"),
            host.name.clone(),
            host.token.clone(),
            stop.clone(),
        )));
        let pusher = Pusher {
            client: client.clone(),
            url: format!("{url}{PUSH_PATH}"),
            name: host.name.clone(),
            environment: host.environment.clone(),
            token: host.token.clone(),
            interval: load.interval,
            template: template.clone(),
            counts: counts.clone(),
            latency: latency.clone(),
            stop: stop.clone(),
        };
        // Spread over the interval, as agents started at different times are.
        let phase = load.interval.mul_f64(i as f64 / hosts.len().max(1) as f64);
        tasks.push(tokio::spawn(pusher.run(phase, i as u64)));
    }
    // A few intervals for every agent to have pushed (and the hub to have made room for each) before the
    // window opens.
    tokio::time::sleep(load.interval * 5).await;
    println!(
        "{} agents, one batch per {:?} each:",
        hosts.len(),
        load.interval
    );
    let window = Window::open(&counts, &latency, load.pid)?;
    tokio::time::sleep(load.window).await;
    window.report("alone", &counts, &latency, load.pid)?;
    let rss_agents = rss(&client, &url, load.pid).await?;
    let kib = |bytes: u64, agents: usize| bytes as f64 / 1024.0 / agents.max(1) as f64;
    match (rss_before, rss_agents) {
        (Some(before), Some(after)) => println!(
            "  hub RSS         {:.1} MiB before the hosts were added, {:.1} MiB with them pushing: {:.1} KiB per agent",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            kib(after.saturating_sub(before), hosts.len())
        ),
        _ => {
            println!("  hub RSS         not known (give --pid, or a hub whose /healthz reports it)")
        }
    }
    if let (Some(mid), Some(after)) = (rss_half, rss_agents) {
        let added = hosts.len() - half;
        println!(
            "  hub RSS         {:.1} MiB with {half} agents, {:.1} MiB with {}: {:.1} KiB for each agent added ({})",
            mid as f64 / 1048576.0,
            after as f64 / 1048576.0,
            hosts.len(),
            kib(after.saturating_sub(mid), added),
            if after >= mid {
                "the marginal cost"
            } else {
                "the hub gave memory back"
            }
        );
    }
    if load.viewers > 0 {
        println!(
            "the same agents with {} viewers on the stream (the viewers' figures first):",
            load.viewers
        );
        let window = Window::open(&counts, &latency, load.pid)?;
        crate::streams::clients_bench(
            url.clone(),
            load.token.clone(),
            load.viewers,
            load.window,
            200,
            None,
        )
        .await?;
        window.report("with viewers", &counts, &latency, load.pid)?;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    println!(
        "  answers         {} recorded, {} refused (4xx), {} failed (5xx or no answer), {} records in all",
        counts.ok.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        counts.records.load(Ordering::Relaxed)
    );
    let removed = remove_hosts(&client, &url, &admin, &hosts).await;
    println!("removed {removed} of the {} bench hosts", hosts.len());
    Ok(())
}

/// Holds an agent's stream of orders open (declaring no commands), reading what comes, until `stop`; opened
/// again if the hub closes it.
async fn listen(
    client: reqwest::Client,
    url: String,
    name: String,
    token: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let hello = Hello {
        agent: name,
        version: "bench".into(),
        commands: Vec::new(),
    };
    while !stop.load(Ordering::Relaxed) {
        let opened = client
            .post(&url)
            .bearer_auth(&token)
            .json(&hello)
            .send()
            .await;
        if let Ok(mut answer) = opened
            && answer.status().is_success()
        {
            loop {
                let chunk = tokio::time::timeout(Duration::from_millis(500), answer.chunk()).await;
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                match chunk {
                    Ok(Ok(Some(_))) | Err(_) => {}
                    Ok(Ok(None) | Err(_)) => break,
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A measuring window: the hub's CPU and the pushes between its opening and its report.
struct Window {
    started: Instant,
    pushes: u64,
    cpu: Option<(u64, u64)>,
}

impl Window {
    fn open(counts: &Counts, latency: &Mutex<Histogram<u64>>, pid: Option<u32>) -> Result<Window> {
        if let Ok(mut h) = latency.lock() {
            h.reset();
        }
        Ok(Window {
            started: Instant::now(),
            pushes: counts.ok.load(Ordering::Relaxed),
            cpu: pid.map(proc_sample).transpose()?,
        })
    }

    fn report(
        self,
        what: &str,
        counts: &Counts,
        latency: &Mutex<Histogram<u64>>,
        pid: Option<u32>,
    ) -> Result<()> {
        let elapsed = self.started.elapsed();
        let pushes = counts.ok.load(Ordering::Relaxed) - self.pushes;
        if let (Some((t0, _)), Some((t1, _))) = (self.cpu, pid.map(proc_sample).transpose()?) {
            let cpu = (t1 - t0) as f64 / TICKS_PER_SECOND / elapsed.as_secs_f64() * 100.0;
            println!(
                "  hub CPU         {cpu:.1} % of one core ({what}, over {:.0} s)",
                elapsed.as_secs_f64()
            );
        }
        if let Ok(h) = latency.lock() {
            let ms = |us: u64| us as f64 / 1000.0;
            println!(
                "  push latency    p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({what}: {pushes} pushes, {:.0} per second)",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
                pushes as f64 / elapsed.as_secs_f64()
            );
        }
        Ok(())
    }
}

/// One simulated agent.
struct Pusher {
    client: reqwest::Client,
    url: String,
    name: String,
    environment: String,
    token: String,
    interval: Duration,
    template: HostHealth,
    counts: Arc<Counts>,
    latency: Arc<Mutex<Histogram<u64>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Pusher {
    async fn run(self, phase: Duration, salt: u64) {
        tokio::time::sleep(phase).await;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = now_micros();
        let mut n: u64 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            tick.tick().await;
            n += 1;
            let mut items = vec![Item {
                seq,
                record: Record::Health(self.reading(n, salt)),
            }];
            seq += 1;
            if n.is_multiple_of(10) {
                items.push(Item {
                    seq,
                    record: Record::Lines(self.lines(n)),
                });
                seq += 1;
            }
            let records = items.len() as u64;
            let batch = Batch {
                agent: self.name.clone(),
                environment: self.environment.clone(),
                version: "bench".into(),
                interval_ms: self.interval.as_millis() as u64,
                items,
                live: None,
                gaps: Vec::new(),
            };
            let sent = Instant::now();
            let answer = self
                .client
                .post(&self.url)
                .bearer_auth(&self.token)
                .json(&batch)
                .send()
                .await;
            let took = sent.elapsed();
            match answer {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    self.counts.ok.fetch_add(1, Ordering::Relaxed);
                    self.counts.records.fetch_add(records, Ordering::Relaxed);
                    if let Ok(mut h) = self.latency.lock() {
                        let _ = h.record((took.as_micros() as u64).max(1));
                    }
                }
                Ok(r) if r.status().is_client_error() => {
                    self.counts.refused.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    self.counts.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// This machine's reading, renamed and varied so that no two hosts (or seconds) read the same.
    fn reading(&self, n: u64, salt: u64) -> HostHealth {
        let mut h = self.template.clone();
        h.host = HostId(self.name.clone());
        h.hostname = self.name.clone();
        h.sampled_at_ms = now_micros() as i64 / 1000;
        let wobble = ((n * 7 + salt * 13) % 40) as f32;
        h.cpu_pct = (10.0 + wobble).min(100.0);
        for (i, core) in h.cores.iter_mut().enumerate() {
            *core = (5.0 + wobble + i as f32).min(100.0);
        }
        h.uptime_s += n;
        h
    }

    fn lines(&self, n: u64) -> Vec<NewLog> {
        let t_ms = now_micros() as i64 / 1000;
        vec![
            NewLog {
                t_ms,
                level: Level::Warn,
                service: "shop".into(),
                message: format!("slow checkout on {} (request {n})", self.name),
                fields: Default::default(),
            },
            NewLog {
                t_ms,
                level: Level::Error,
                service: "shop".into(),
                message: format!("payment gateway timed out after 30s (request {n})"),
                fields: Default::default(),
            },
        ]
    }
}

/// A real reading of this machine, taken twice so its CPU figures are rates over a moment.
fn reading() -> Result<HostHealth> {
    let mut sampler = collect::host::HostSampler::new().context("cannot read this host")?;
    sampler.sample();
    std::thread::sleep(Duration::from_millis(250));
    Ok(sampler.sample().0)
}

async fn add_hosts(
    client: &reqwest::Client,
    url: &str,
    admin: &str,
    n: usize,
) -> Result<Vec<Host>> {
    let mut hosts = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("bench-{i:03}");
        let environment = if i % 2 == 0 { "prod" } else { "staging" };
        let r = client
            .post(format!("{url}/api/add_host"))
            .bearer_auth(admin)
            .form(&[("name", name.as_str()), ("environment", environment)])
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        if !status.is_success() {
            bail!(
                "adding {name} was answered {status}: {body} (an admin's token, and a hub without bench hosts, are needed)"
            );
        }
        let added: NewHost =
            serde_json::from_str(&body).with_context(|| format!("the answer to adding {name}"))?;
        hosts.push(Host {
            id: added.host.id,
            name,
            environment: environment.to_owned(),
            token: added.token,
        });
    }
    Ok(hosts)
}

/// Removes the bench's hosts again; how many went.
async fn remove_hosts(client: &reqwest::Client, url: &str, admin: &str, hosts: &[Host]) -> usize {
    let mut removed = 0;
    for host in hosts {
        let r = client
            .post(format!("{url}/api/revoke_host"))
            .bearer_auth(admin)
            .form(&[("id", host.id.to_string())])
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            removed += 1;
        }
    }
    removed
}

/// The hub's RSS: from /proc when its pid is known, else as its `/healthz` reports it.
async fn rss(client: &reqwest::Client, url: &str, pid: Option<u32>) -> Result<Option<u64>> {
    if let Some(pid) = pid {
        return Ok(Some(proc_sample(pid)?.1));
    }
    let health: serde_json::Value = client
        .get(format!("{url}/healthz"))
        .send()
        .await?
        .json()
        .await?;
    Ok(health["rss_bytes"].as_u64())
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
