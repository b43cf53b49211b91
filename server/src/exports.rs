//! What Watchpost knows, exported for Prometheus at `/metrics` beside its own request figures: each host's
//! gauges, each scrape target's health and the time its scrape took, each database target's figures, the
//! streams open and the store's health, under stable `watchpost_*` names, so that one scrape of one
//! Watchpost gives a Prometheus or a Grafana everything it watches.
//!
//! Built from the hub's state when `/metrics` is read: the figures are the newest the dashboard shows, never
//! a second reading of the sources, and nothing is kept between scrapes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use shared::{DbKind, Snapshot, StorageStatus};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;

/// What the exported figures are read from.
pub struct Known<'a> {
    pub snapshot: &'a Snapshot,
    pub stream_clients: usize,
    pub storage: &'a StorageStatus,
    pub rss_bytes: Option<u64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostInfoLabels {
    host: String,
    hostname: String,
    os: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountLabels {
    host: String,
    mountpoint: String,
    fstype: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    target: String,
    database: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NoLabels {}

/// Registers a gauge family `name` holding `values`.
fn gauges<L>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, f64)>,
) where
    L: EncodeLabelSet + Clone + Debug + Hash + Eq + Send + Sync + 'static,
{
    let family = Family::<L, Gauge<f64, AtomicU64>>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).set(value);
    }
    registry.register(name, help, family);
}

fn one(value: f64) -> [(NoLabels, f64); 1] {
    [(NoLabels {}, value)]
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Everything Watchpost knows, as a registry to encode in either text format.
pub fn registry(known: &Known<'_>) -> Registry {
    let mut r = Registry::default();
    hosts(&mut r, known.snapshot);
    scrape_targets(&mut r, known.snapshot);
    databases(&mut r, known.snapshot);
    gauges(
        &mut r,
        "watchpost_stream_clients",
        "Live dashboard streams (SSE) open on this instance",
        one(known.stream_clients as f64),
    );
    gauges(
        &mut r,
        "watchpost_store_up",
        "1 while the history store accepts writes, 0 while they fail (history then has a gap)",
        one(flag(known.storage.error.is_none())),
    );
    if let Some(rss) = known.rss_bytes {
        gauges(
            &mut r,
            "watchpost_process_resident_memory_bytes",
            "Resident memory of the Watchpost process, as of the last host sample",
            one(rss as f64),
        );
    }
    r
}

fn hosts(r: &mut Registry, s: &Snapshot) {
    let host = |h: &shared::HostState| HostLabels {
        host: h.health.host.0.clone(),
    };
    let each = |f: &dyn Fn(&shared::HostHealth) -> f64| {
        s.hosts
            .iter()
            .map(|h| (host(h), f(&h.health)))
            .collect::<Vec<_>>()
    };
    gauges(
        r,
        "watchpost_host_info",
        "A watched host: its name and operating system (always 1)",
        s.hosts.iter().map(|h| {
            let labels = HostInfoLabels {
                host: h.health.host.0.clone(),
                hostname: h.health.hostname.clone(),
                os: h.health.os.clone(),
            };
            (labels, 1.0)
        }),
    );
    gauges(
        r,
        "watchpost_host_cpu_usage_ratio",
        "Share of all cores busy over the last sample interval, 0-1",
        // Through the f32's shortest decimal form: 19.047619 %, not 0.19047618865966799.
        each(&|h| {
            let pct: f64 = h.cpu_pct.to_string().parse().unwrap_or(0.0);
            pct / 100.0
        }),
    );
    for (name, minutes) in [("load1", 1), ("load5", 5), ("load15", 15)] {
        gauges(
            r,
            &format!("watchpost_host_{name}"),
            &format!("{minutes}-minute load average"),
            each(&|h| match minutes {
                1 => h.load.one,
                5 => h.load.five,
                _ => h.load.fifteen,
            }),
        );
    }
    gauges(
        r,
        "watchpost_host_memory_used_bytes",
        "Memory in use",
        each(&|h| h.memory.used as f64),
    );
    gauges(
        r,
        "watchpost_host_memory_size_bytes",
        "Memory installed",
        each(&|h| h.memory.total as f64),
    );
    gauges(
        r,
        "watchpost_host_swap_used_bytes",
        "Swap in use",
        each(&|h| h.swap.used as f64),
    );
    gauges(
        r,
        "watchpost_host_swap_size_bytes",
        "Swap configured",
        each(&|h| h.swap.total as f64),
    );
    let mounts = |f: fn(&shared::DiskUsage) -> u64| {
        s.hosts
            .iter()
            .flat_map(|h| {
                h.health.disks.iter().map(move |d| {
                    let labels = MountLabels {
                        host: h.health.host.0.clone(),
                        mountpoint: d.mount.clone(),
                        fstype: d.fs.clone(),
                    };
                    (labels, f(d) as f64)
                })
            })
            .collect::<Vec<_>>()
    };
    gauges(
        r,
        "watchpost_host_filesystem_used_bytes",
        "Space in use on a mounted file system",
        mounts(|d| d.used),
    );
    gauges(
        r,
        "watchpost_host_filesystem_size_bytes",
        "Size of a mounted file system",
        mounts(|d| d.total),
    );
    gauges(
        r,
        "watchpost_host_network_receive_bytes_per_second",
        "Bytes received per second over all interfaces, over the last sample interval",
        each(&|h| h.net.rx_bytes_per_s),
    );
    gauges(
        r,
        "watchpost_host_network_transmit_bytes_per_second",
        "Bytes sent per second over all interfaces, over the last sample interval",
        each(&|h| h.net.tx_bytes_per_s),
    );
    gauges(
        r,
        "watchpost_host_uptime_seconds",
        "Time since the host booted",
        each(&|h| h.uptime_s as f64),
    );
    gauges(
        r,
        "watchpost_host_last_sample_timestamp_seconds",
        "When the host's newest reading was taken (Unix time): a host that stopped reporting falls behind",
        each(&|h| h.sampled_at_ms as f64 / 1000.0),
    );
}

fn scrape_targets(r: &mut Registry, s: &Snapshot) {
    // A scrape target's point always says how its scrape went: how long it took, or why it failed.
    // Watchpost's own request figures carry neither and are not a target.
    let newest: Vec<_> = s
        .api
        .iter()
        .filter_map(|a| a.points.last())
        .filter(|p| p.scrape_ms.is_some() || p.error.is_some())
        .collect();
    let service = |p: &shared::ApiPoint| ServiceLabels {
        service: p.service.clone(),
    };
    gauges(
        r,
        "watchpost_scrape_up",
        "1 if the newest scrape of a target succeeded, 0 if it failed",
        newest.iter().map(|p| (service(p), flag(p.error.is_none()))),
    );
    gauges(
        r,
        "watchpost_scrape_duration_seconds",
        "How long the newest successful scrape of a target took",
        newest
            .iter()
            .filter_map(|p| Some((service(p), p.scrape_ms? / 1000.0))),
    );
    gauges(
        r,
        "watchpost_scrape_request_metrics",
        "1 if a target exposes request metrics (a request-duration histogram), 0 if it answers without them",
        newest
            .iter()
            .filter(|p| p.error.is_none())
            .map(|p| (service(p), flag(!p.no_request_metrics))),
    );
}

fn databases(r: &mut Registry, s: &Snapshot) {
    let target = |d: &shared::DbReading| TargetLabels {
        target: d.target.clone(),
        kind: match d.kind {
            DbKind::Store => "store",
            DbKind::Postgres => "postgres",
        }
        .to_owned(),
    };
    gauges(
        r,
        "watchpost_database_up",
        "1 if the newest reading of a database target succeeded, 0 if it failed",
        s.db.iter().map(|d| (target(d), flag(d.error.is_none()))),
    );
    gauges(
        r,
        "watchpost_database_connections",
        "Connections to a database target, by database and state",
        s.db.iter().flat_map(|d| {
            d.connections.iter().map(|c| {
                let labels = ConnectionLabels {
                    target: d.target.clone(),
                    database: c.database.clone(),
                    state: c.state.clone(),
                };
                (labels, c.count as f64)
            })
        }),
    );
    gauges(
        r,
        "watchpost_database_transactions_per_second",
        "Committed and rolled-back transactions per second between the two newest readings",
        s.db.iter().filter_map(|d| Some((target(d), d.tps?))),
    );
    gauges(
        r,
        "watchpost_database_cache_hit_ratio",
        "Share of block reads served from the buffer cache, 0-1",
        s.db.iter()
            .filter_map(|d| Some((target(d), d.cache_hit_ratio?))),
    );
    // The database counts deadlocks since its statistics were reset; a counter, so that rate() and
    // increase() see a reset as one.
    let deadlocks = Family::<TargetLabels, Counter>::default();
    for d in &s.db {
        if let Some(n) = d.deadlocks {
            deadlocks.get_or_create(&target(d)).inc_by(n);
        }
    }
    r.register(
        "watchpost_database_deadlocks",
        "Deadlocks since the database's statistics were reset",
        deadlocks,
    );
}
