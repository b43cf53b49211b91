//! `watchpost-bench`: the load harness for a running Watchpost. Prints figures; asserts nothing.
//!
//! - `clients`: opens N event-stream clients, and reports how many the server holds, its RSS per client and
//!   the delivery latency of live events (receipt time minus the event's own `at_ms`).
//! - `floor`: the same clients against a minimal stream server in a child process: what this machine allows.
//! - `idle`: CPU and RSS of an idle server process over a window, read from /proc.
//! - `size`: gzip -9 sizes of what a browser downloads on first load.
//! - `store`: the embedded store under simulated per-second readings (see `store.rs`).
//! - `logs`: error-log ingest throughput and page latency against a running server (see `logs.rs`).
//! - `command`: one run of a configured command, end to end, and its output path (see `command.rs`).
//! - `abuse`: what requests without an account cost a running server: made-up methods, a burst of wrong
//!   passwords, slow clients, a flood of bad requests (see `abuse.rs`).
//! - `agents`: simulated agents pushing to a hub over real HTTP, with viewers on the stream (see
//!   `agents.rs`).

mod abuse;
mod agents;
mod command;
mod logs;
mod store;
mod streams;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
        #[command(flatten)]
        load: LoadArgs,
        /// The server's pid, when it runs on this machine: its CPU use during the window is reported too.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// The same clients against the least a stream server can do (plain threads, one write per client per
    /// second, no HTTP library), in a child process: the machine's own floor for `clients`.
    Floor {
        #[command(flatten)]
        load: LoadArgs,
        /// Size of each SSE frame; 530 is a health event of a one-disk host.
        #[arg(long, default_value_t = 530)]
        frame_bytes: usize,
        /// Writer threads of the floor server (Watchpost runs one runtime worker per core).
        #[arg(long, default_value_t = 2)]
        writers: usize,
    },
    /// The server side of `floor`, started by it as a child process.
    #[command(hide = true)]
    FloorServe {
        #[arg(long, default_value_t = 530)]
        frame_bytes: usize,
        #[arg(long, default_value_t = 2)]
        writers: usize,
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
    /// What requests without an account cost a running server (see `abuse.rs`).
    Abuse {
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        #[command(subcommand)]
        what: Abuse,
    },
    /// N simulated agents pushing a real reading each interval to a running hub (admin token), while
    /// `viewers` hold the stream: hub CPU, RSS per agent, push latency, delivery to the viewers.
    Agents {
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        #[arg(long, default_value_t = 200)]
        agents: usize,
        /// How often each agent pushes, e.g. 1s.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// How long to measure once every agent is pushing, in seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Stream clients held meanwhile (0 for none).
        #[arg(long, default_value_t = 0)]
        viewers: usize,
        /// The hub's pid, when it runs on this machine: its CPU and RSS are read from /proc.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// First-load sizes (gzip -9) of the built site.
    Size {
        #[arg(long, default_value = "target/site")]
        site: PathBuf,
    },
}

#[derive(Subcommand)]
enum Abuse {
    /// Requests with made-up methods: the server's RSS before and after, and its /metrics series.
    Methods {
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 10_000)]
        requests: usize,
    },
    /// Concurrent wrong-password sign-ins: password checks, lockouts, refusals and peak RSS.
    SignIns {
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value = "admin")]
        name: String,
        #[arg(long, default_value_t = 500)]
        attempts: usize,
        /// Source addresses to spread the attempts over (loopback 127.1.x.y).
        #[arg(long, default_value_t = 1)]
        addresses: usize,
    },
    /// Slow clients sending a head a byte a second, each from its own address; a signed-in user's
    /// dashboard loads meanwhile (WATCHPOST_TOKEN).
    Slow {
        #[arg(long, default_value_t = 2_000)]
        clients: usize,
        #[arg(long, default_value_t = 45)]
        seconds: u64,
    },
    /// Bad requests without an account (cross-site POSTs, wrong setup codes, wrong passwords, unknown tokens)
    /// from many addresses: the database's size before and after.
    Flood {
        /// The server's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
    },
}

/// How many stream clients, and for how long.
#[derive(clap::Args)]
struct LoadArgs {
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// How long to measure once every client is connected, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Connections opened at once while ramping up.
    #[arg(long, default_value_t = 200)]
    ramp: usize,
}

impl LoadArgs {
    fn window(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

/// Runs an async benchmark on a multi-threaded runtime (one worker per core, as the server has).
fn block_on(bench: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Clients { url, load, pid } => block_on(streams::clients_bench(
            url,
            cli.token,
            load.clients,
            load.window(),
            load.ramp.max(1),
            pid,
        )),
        Cmd::Floor {
            load,
            frame_bytes,
            writers,
        } => block_on(streams::floor_bench(
            load.clients,
            load.window(),
            load.ramp.max(1),
            frame_bytes,
            writers.max(1),
        )),
        Cmd::FloorServe {
            frame_bytes,
            writers,
        } => streams::floor_serve(frame_bytes, writers.max(1)),
        Cmd::Idle { pid, seconds } => idle_bench(pid, Duration::from_secs(seconds)),
        Cmd::Size { site } => size_bench(&site),
        Cmd::Logs {
            url,
            lines,
            batch,
            senders,
        } => block_on(logs::logs_bench(
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
        } => block_on(command::command_bench(
            url,
            cli.token,
            name,
            target,
            params.into_iter().collect(),
            pid,
        )),
        Cmd::Store { days } => block_on(store::store_bench(days.max(1))),
        Cmd::Agents {
            url,
            agents,
            interval,
            seconds,
            viewers,
            pid,
        } => block_on(agents::agents_bench(agents::AgentsLoad {
            url,
            token: cli.token,
            agents: agents.max(1),
            interval: interval.max(Duration::from_millis(100)),
            window: Duration::from_secs(seconds.max(1)),
            viewers,
            pid,
        })),
        Cmd::Abuse { url, what } => match what {
            Abuse::Methods { pid, requests } => {
                block_on(abuse::methods(url, cli.token, pid, requests))
            }
            Abuse::SignIns {
                pid,
                name,
                attempts,
                addresses,
            } => block_on(abuse::sign_ins(url, pid, name, attempts, addresses)),
            Abuse::Slow { clients, seconds } => {
                block_on(abuse::slow(url, cli.token, clients, seconds))
            }
            Abuse::Flood { data_dir, requests } => block_on(abuse::flood(url, &data_dir, requests)),
        },
    }
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))
}

/// utime + stime of a process in clock ticks, and its RSS in bytes.
pub(crate) fn proc_sample(pid: u32) -> Result<(u64, u64)> {
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
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

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

/// Each file of the first load raw, at gzip -9, and as the brotli file the release build wrote beside it
/// (`scripts/precompress.mjs`, run by `scripts/build.sh`; what a browser that accepts brotli gets).
fn size_bench(site: &std::path::Path) -> Result<()> {
    let files = site_files(site)?;
    let (mut total, mut total_br) = (0, 0);
    for file in files {
        let path = site.join(&file);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("{} (build the site first)", path.display()))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes)?;
        let zipped = gz.finish()?.len();
        let mut br_path = path.into_os_string();
        br_path.push(".br");
        let br = std::fs::metadata(&br_path).map_or(bytes.len(), |m| m.len() as usize);
        total += zipped;
        total_br += br;
        println!(
            "{file:40} {:>9} bytes raw {:>9} bytes gzip -9 {br:>9} bytes brotli",
            bytes.len(),
            zipped
        );
    }
    println!(
        "{:40} {:>9} bytes gzip -9 ({:.0} KiB), {total_br} bytes brotli ({:.0} KiB)",
        "first load total (without the page)",
        total,
        total as f64 / 1024.0,
        total_br as f64 / 1024.0
    );
    Ok(())
}

/// The files a first load fetches, by the names the build gave them: cargo-leptos's content hashes from the
/// site's `hash.txt` (plain names for a site built without), the ECharts bundle's hashed name as it is.
fn site_files(site: &std::path::Path) -> Result<Vec<String>> {
    let hashes = std::fs::read_to_string(site.join("hash.txt")).unwrap_or_default();
    let hashed = |ext: &str| {
        let hash = hashes.lines().find_map(|l| {
            let (kind, hash) = l.split_once(':')?;
            (kind.trim() == ext).then(|| format!(".{}", hash.trim()))
        });
        format!("pkg/watchpost{}.{ext}", hash.unwrap_or_default())
    };
    let echarts = std::fs::read_dir(site)
        .with_context(|| format!("{} (build the site first)", site.display()))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| n.starts_with("echarts.") && n.ends_with(".js"))
        .context("no echarts.<hash>.js in the site (run scripts/setup.sh, then build)")?;
    Ok(vec![
        hashed("wasm"),
        hashed("js"),
        hashed("css"),
        echarts,
        "favicon.svg".to_owned(),
    ])
}
