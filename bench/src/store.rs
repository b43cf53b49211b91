//! `watchpost-bench store`: the embedded store under simulated host readings.
//!
//! Writes `--days` of per-second points for one host's seven metrics into a fresh SQLite store exactly as the
//! server does (one transaction a second of simulated time, maintenance every ten), then reports insert
//! throughput, bytes per sample of the per-second tier after one day, and the latency of the 7-day query the
//! dashboard makes, for one series and for all seven.
//!
//! The readings are simulated, with the shape and precision of the real ones (see [`Host`]): CPU as whole
//! jiffies out of 200 with a daily cycle, noise and bursts; memory in a slow random walk; the disk filling
//! slowly; the kernel's load average; network rates as whole bytes per second with heavy-tailed noise. Every
//! value is rounded to the metric's storage precision, as the recorder does.

use anyhow::{Context, Result};
use shared::{HistoryPoint, Metric, Tier, TimeRange};
use std::time::{Duration, Instant};
use store::{Retention, SqliteStore, Store, plan, series_name};

const HOST: &str = "bench-host";
const DAY_S: i64 = 86_400;

/// One simulated host, advanced a second at a time.
struct Host {
    rng: fastrand::Rng,
    t: i64,
    cpu_burst: u32,
    memory: f64,
    disk: f64,
    load: f64,
}

impl Host {
    fn new(seed: u64) -> Self {
        Host {
            rng: fastrand::Rng::with_seed(seed),
            t: 0,
            cpu_burst: 0,
            memory: 40.0,
            disk: 62.0,
            load: 0.5,
        }
    }

    /// The next second's value of every metric.
    fn next(&mut self) -> [(Metric, f64); 7] {
        self.t += 1;
        let day = (self.t % DAY_S) as f64 / DAY_S as f64;
        // CPU: busy jiffies out of 200 (two cores at USER_HZ 100), a daily cycle, noise, and bursts.
        if self.cpu_burst == 0 && self.rng.u32(..3600) == 0 {
            self.cpu_burst = self.rng.u32(5..120);
        }
        let busy = if self.cpu_burst > 0 {
            self.cpu_burst -= 1;
            self.rng.u32(150..=200)
        } else {
            let base = 14.0 + 10.0 * (day * std::f64::consts::TAU).sin();
            (base + self.rng.f64() * 10.0 - 5.0).clamp(0.0, 200.0) as u32
        };
        let cpu = f64::from(busy) * 100.0 / 200.0;
        self.memory = (self.memory + (self.rng.f64() - 0.5) * 0.02).clamp(20.0, 90.0);
        if self.rng.u32(..1200) == 0 {
            self.disk += 0.01;
        }
        // The kernel's 1-minute load: an exponential average of the runnable count, every 5 s.
        if self.t % 5 == 0 {
            let running = f64::from(busy) / 100.0 + f64::from(self.rng.u32(..2));
            let e = (-5.0f64 / 60.0).exp();
            self.load = self.load * e + running * (1.0 - e);
        }
        let heavy = |rng: &mut fastrand::Rng, base: f64| base * (1.0 + rng.f64() * rng.f64() * 8.0);
        let rx = heavy(&mut self.rng, 2_000.0);
        let tx = heavy(&mut self.rng, 800.0);
        [
            (Metric::Cpu, cpu),
            (Metric::Memory, self.memory),
            (Metric::Disk, self.disk),
            (Metric::Swap, 0.0),
            (Metric::Load1, self.load),
            (Metric::NetRx, rx),
            (Metric::NetTx, tx),
        ]
        .map(|(m, v)| (m, m.quantize(v)))
    }
}

pub async fn store_bench(days: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let store = SqliteStore::open(&path, &Default::default())
        .await
        .context("opening the store")?;
    let retention = Retention::default();
    // Simulated time starts `days` before now, so the 7-day query at the end covers the data.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let start_ms = (now_ms - i64::from(days) * DAY_S * 1000) / 1000 * 1000;
    let mut host = Host::new(42);
    let names: Vec<(Metric, String)> = Metric::HOST
        .iter()
        .map(|m| (*m, series_name(m.as_str(), HOST)))
        .collect();

    let mut inserting = Duration::ZERO;
    let mut maintaining = Duration::ZERO;
    let mut samples: u64 = 0;
    let mut day_one = None;
    let total_s = i64::from(days) * DAY_S;
    let mut batch = Vec::with_capacity(names.len());
    for s in 0..total_s {
        let t_ms = start_ms + s * 1000;
        batch.clear();
        for (metric, value) in host.next() {
            let name = &names.iter().find(|(m, _)| *m == metric).expect("named").1;
            batch.push((name.clone(), HistoryPoint::single(t_ms, value)));
        }
        let began = Instant::now();
        samples += store.append(&batch).await? as u64;
        inserting += began.elapsed();
        if s % 10 == 9 {
            let began = Instant::now();
            store.maintain(t_ms + 1000, &retention).await?;
            maintaining += began.elapsed();
        }
        if s == DAY_S - 1 {
            // One day written: every finished hour is sealed; the current one is still open rows.
            store.maintain(t_ms + 1000, &retention).await?;
            day_one = Some(second_tier_size(&path).await?);
        }
        if s % DAY_S == DAY_S - 1 {
            eprintln!("  day {} written", s / DAY_S + 1);
        }
    }
    store.maintain(now_ms, &retention).await?;

    println!(
        "store benchmark: {days} simulated days, {} series, one point a second",
        names.len()
    );
    println!(
        "  insert: {samples} samples in {:.1} s of transactions: {:.0} samples/s ({} per one-second batch of {})",
        inserting.as_secs_f64(),
        samples as f64 / inserting.as_secs_f64(),
        micros(inserting / u32::try_from(total_s).unwrap_or(u32::MAX)),
        names.len()
    );
    println!(
        "  maintenance (rollups, sealing, pruning) every 10 s of data: {:.1} s in all",
        maintaining.as_secs_f64()
    );
    if let Some((chunk_bytes, sealed, file_bytes)) = day_one {
        let day_samples = DAY_S as f64 * names.len() as f64;
        println!(
            "  after one day: per-second tier {chunk_bytes} bytes of chunks for {sealed} sealed samples = {:.3} \
             bytes/sample; database file {:.2} MiB = {:.2} bytes per sample of the day (open rows of the \
             current hour, rollup tiers, indexes and free pages included; WAL not counted)",
            chunk_bytes as f64 / sealed as f64,
            file_bytes as f64 / (1 << 20) as f64,
            file_bytes as f64 / day_samples,
        );
    }

    // The dashboard's 7-day query: plan, read the tier, bucket, as the history route does.
    let (from, to) = TimeRange::Week.bounds(now_ms);
    let (tier, step) = plan(from, to, now_ms, &retention);
    let one = time_queries(&store, &names[..1], tier, step, from, to).await?;
    let all = time_queries(&store, &names, tier, step, from, to).await?;
    println!(
        "  7-day query ({} tier, {} s per point): one series p50 {} / max {}; all {} series p50 {} / max {} (20 runs each)",
        tier.as_str(),
        step / 1000,
        micros(one.0),
        micros(one.1),
        names.len(),
        micros(all.0),
        micros(all.1)
    );
    let (from, to) = TimeRange::Hour.bounds(now_ms);
    let (tier, step) = plan(from, to, now_ms, &retention);
    let one = time_queries(&store, &names[..1], tier, step, from, to).await?;
    let all = time_queries(&store, &names, tier, step, from, to).await?;
    println!(
        "  1-hour query ({} tier): one series p50 {} / max {}; all {} series p50 {} / max {}",
        tier.as_str(),
        micros(one.0),
        micros(one.1),
        names.len(),
        micros(all.0),
        micros(all.1)
    );
    println!(
        "  database after {days} days: {:.2} MiB",
        store.size_bytes().await? as f64 / (1 << 20) as f64
    );

    // Many series at once (agents, scrape targets): 1,000 series, one point each per second, for 100 s,
    // one transaction per second.
    let mut bulk = Vec::with_capacity(1000);
    let began = Instant::now();
    let mut written = 0;
    for s in 0..100 {
        bulk.clear();
        for i in 0..1000 {
            bulk.push((
                series_name("cpu", &format!("host-{i}")),
                HistoryPoint::single(now_ms + s * 1000, f64::from(host.rng.u32(..10_000)) / 100.0),
            ));
        }
        written += store.append(&bulk).await?;
    }
    let elapsed = began.elapsed();
    println!(
        "  bulk insert: {written} samples of 1,000 series in batches of 1,000 in {:.2} s: {:.0} samples/s",
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// (p50, max) of 20 runs of reading and bucketing every series in `names`.
async fn time_queries(
    store: &SqliteStore,
    names: &[(Metric, String)],
    tier: Tier,
    step: i64,
    from: i64,
    to: i64,
) -> Result<(Duration, Duration)> {
    let mut times = Vec::new();
    for _ in 0..20 {
        let began = Instant::now();
        for (_, name) in names {
            let points = store.read(name, tier, (from, to), step).await?;
            anyhow::ensure!(!points.is_empty(), "{name} has no points");
        }
        times.push(began.elapsed());
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() - 1]))
}

/// Bytes of per-second chunks, the samples they hold, and bytes of the database file (without its WAL, which
/// SQLite checkpoints back into the file and keeps to about 4 MiB).
async fn second_tier_size(path: &std::path::Path) -> Result<(u64, u64, u64)> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display())).await?;
    let (bytes, points): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(LENGTH(data)), 0), COALESCE(SUM(points), 0) FROM second_chunks",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    let file = std::fs::metadata(path)?.len();
    Ok((bytes as u64, points as u64, file))
}

fn micros(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{} µs", d.as_micros())
    }
}
