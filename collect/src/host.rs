//! The host source: the only code in Watchpost that talks to sysinfo.
//!
//! Runs on a dedicated OS thread, because sysinfo's refreshes are blocking file reads of /proc and /sys and
//! must never stall the async reactor that serves the streams. Refreshes only the parts it reports.

use crate::Sink;
use crate::clock::now_millis;
use shared::{DiskUsage, Event, HostHealth, HostId, LoadAvg, NetRates, Usage};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, Pid, ProcessRefreshKind,
    ProcessesToUpdate, RefreshKind, System,
};

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("cannot read host information: {0}")]
    Sysinfo(#[from] sysinfo::Error),
    #[error("cannot start the collector thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What `/healthz` reports about the collector, written by its thread, read by any request.
#[derive(Debug, Default)]
pub struct CollectorStatus {
    /// Unix ms of the newest sample; 0 before the first.
    last_sample_ms: AtomicI64,
    /// The server's own resident set size at the newest sample; 0 before the first.
    rss_bytes: AtomicU64,
}

impl CollectorStatus {
    pub fn last_sample_ms(&self) -> Option<i64> {
        Some(self.last_sample_ms.load(Ordering::Relaxed)).filter(|&v| v != 0)
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        Some(self.rss_bytes.load(Ordering::Relaxed)).filter(|&v| v != 0)
    }
}

/// Reads one host's health. Keeps the sysinfo handles between readings: rates and CPU usage are differences
/// between two refreshes.
pub struct HostSampler {
    system: System,
    disks: Disks,
    networks: Networks,
    pid: Option<Pid>,
    host: HostId,
    hostname: String,
    os: String,
    last_net: Instant,
}

impl HostSampler {
    /// The name this host's readings carry.
    pub fn host(&self) -> &HostId {
        &self.host
    }

    /// Readings carry `host` instead of the system's host name (an agent's `--name`).
    pub fn named(mut self, host: HostId) -> Self {
        self.host = host;
        self
    }

    pub fn new() -> Result<Self, CollectorError> {
        let mut system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::everything()),
        )?;
        // The first CPU reading has nothing to compare with; this refresh is the baseline that is discarded.
        system.refresh_cpu_usage();
        let hostname = System::host_name().unwrap_or_else(|_| "localhost".into());
        let os = System::long_os_version()
            .or_else(|_| System::name())
            .unwrap_or_else(|_| "unknown OS".into());
        Ok(HostSampler {
            system,
            disks: Disks::new_with_refreshed_list_specifics(
                DiskRefreshKind::nothing().with_storage(),
            )?,
            networks: Networks::new_with_refreshed_list()?,
            pid: sysinfo::get_current_pid().ok(),
            host: HostId(hostname.clone()),
            hostname,
            os,
            last_net: Instant::now(),
        })
    }

    /// Takes a reading, and the server's own RSS.
    pub fn sample(&mut self) -> (HostHealth, Option<u64>) {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.disks
            .refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        self.networks.refresh(true);
        let elapsed = self.last_net.elapsed().as_secs_f64().max(1e-3);
        self.last_net = Instant::now();

        let rss = self.pid.and_then(|pid| {
            self.system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                false,
                ProcessRefreshKind::nothing().with_memory(),
            );
            self.system.process(pid).map(|p| p.memory())
        });

        let (rx, tx) = self
            .networks
            .iter()
            .filter(|(name, _)| name.as_os_str() != "lo")
            .fold((0u64, 0u64), |(rx, tx), (_, n)| {
                (rx + n.received(), tx + n.transmitted())
            });
        let mut disks: Vec<DiskUsage> = self
            .disks
            .iter()
            .filter(|d| d.total_space() > 0)
            .map(|d| DiskUsage {
                mount: d.mount_point().to_string_lossy().into_owned(),
                fs: d.file_system().to_string_lossy().into_owned(),
                used: d.total_space().saturating_sub(d.available_space()),
                total: d.total_space(),
            })
            .collect();
        // Bind mounts and containers list the same mount point more than once; one row per mount.
        disks.sort_by(|a, b| a.mount.cmp(&b.mount));
        disks.dedup_by(|a, b| a.mount == b.mount);
        let load = System::load_average().unwrap_or(sysinfo::LoadAvg {
            one: 0.0,
            five: 0.0,
            fifteen: 0.0,
        });

        let health = HostHealth {
            host: self.host.clone(),
            hostname: self.hostname.clone(),
            os: self.os.clone(),
            sampled_at_ms: now_millis(),
            uptime_s: System::uptime().unwrap_or(0),
            cpu_pct: self.system.global_cpu_usage(),
            cores: self.system.cpus().iter().map(|c| c.usage()).collect(),
            load: LoadAvg {
                one: load.one,
                five: load.five,
                fifteen: load.fifteen,
            },
            memory: Usage {
                used: self.system.used_memory(),
                total: self.system.total_memory(),
            },
            swap: Usage {
                used: self.system.used_swap(),
                total: self.system.total_swap(),
            },
            disks,
            net: NetRates {
                rx_bytes_per_s: rx as f64 / elapsed,
                tx_bytes_per_s: tx as f64 / elapsed,
            },
        };
        (health, rss)
    }
}

/// What the collector thread is told.
enum Control {
    /// Sample every this long from now on.
    Pace(Duration),
    Stop,
}

/// The running collector thread; dropping it (or calling [`Collector::stop`]) ends it.
pub struct Collector {
    control: Option<mpsc::Sender<Control>>,
    thread: Option<JoinHandle<()>>,
}

/// Changes a running collector's interval (an agent's, when the hub sets it). Cheap to clone.
#[derive(Clone)]
pub struct Pacer(mpsc::Sender<Control>);

impl Pacer {
    /// Samples at once, then every `interval`; false when the collector has stopped.
    pub fn set(&self, interval: Duration) -> bool {
        self.0.send(Control::Pace(interval)).is_ok()
    }
}

impl Collector {
    /// Starts sampling every `interval` with `sampler`, handing each reading to `sink`. The first reading
    /// is published one interval after start, once CPU usage has a baseline to compare with.
    pub fn spawn(
        mut sampler: HostSampler,
        sink: Arc<dyn Sink>,
        interval: Duration,
        status: Arc<CollectorStatus>,
    ) -> Result<Self, CollectorError> {
        let (control, told) = mpsc::channel::<Control>();
        let thread = std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                let mut interval = interval;
                let mut next = Instant::now() + interval;
                loop {
                    match told.recv_timeout(next.saturating_duration_since(Instant::now())) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Ok(Control::Pace(pace)) => {
                            // A reading at once, then one every new interval: the reading says the new
                            // interval (an agent's push carries it), so the hub judges the host by it from
                            // now, not after an old interval, or a new one, has passed.
                            interval = pace;
                            next = Instant::now();
                            continue;
                        }
                        Ok(Control::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    let (health, rss) = sampler.sample();
                    status
                        .last_sample_ms
                        .store(health.sampled_at_ms, Ordering::Relaxed);
                    status.rss_bytes.store(rss.unwrap_or(0), Ordering::Relaxed);
                    let host = health.host.clone();
                    sink.emit(Some(host), Event::Health(health));
                    // Fixed-rate schedule; after a long stall (suspend, overload) skip the missed ticks.
                    next += interval;
                    let now = Instant::now();
                    if next < now {
                        next = now + interval;
                    }
                }
            })?;
        Ok(Collector {
            control: Some(control),
            thread: Some(thread),
        })
    }

    /// A handle that changes this collector's interval.
    pub fn pacer(&self) -> Option<Pacer> {
        self.control.clone().map(Pacer)
    }

    /// Stops the thread and waits for its current sample to finish.
    pub fn stop(&mut self) {
        if let Some(control) = self.control.take() {
            // Pacers may outlive the collector: the thread is told, not left waiting for them to go.
            let _ = control.send(Control::Stop);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts readings.
    #[derive(Default)]
    struct Count(std::sync::Mutex<Vec<Instant>>);

    impl Sink for Count {
        fn emit(&self, _host: Option<HostId>, _event: Event) {
            self.0.lock().unwrap().push(Instant::now());
        }

        fn lines(
            &self,
            _entries: Vec<shared::NewLog>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>>
        {
            Box::pin(async { Ok(()) })
        }
    }

    #[test]
    fn a_collectors_pace_changes_while_it_runs() {
        let count = Arc::new(Count::default());
        let mut collector = Collector::spawn(
            HostSampler::new().unwrap(),
            count.clone(),
            Duration::from_secs(3600),
            Arc::default(),
        )
        .unwrap();
        let pacer = collector.pacer().unwrap();
        // An hour's interval shortened to 200 ms: readings come without waiting out the hour.
        assert!(pacer.set(Duration::from_millis(200)));
        let deadline = Instant::now() + Duration::from_secs(20);
        while count.0.lock().unwrap().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            count.0.lock().unwrap().len() >= 3,
            "readings at the new pace"
        );
        // Lengthened again: one reading at once, then none for the next hour.
        assert!(pacer.set(Duration::from_secs(3600)));
        std::thread::sleep(Duration::from_millis(300));
        let settled = count.0.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(count.0.lock().unwrap().len(), settled);
        // The pacer outlives the collector, which stops anyway.
        collector.stop();
        assert!(!pacer.set(Duration::from_secs(1)));
    }

    #[test]
    fn a_reading_of_this_machine_is_plausible() {
        let mut sampler = HostSampler::new().unwrap();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let (h, rss) = sampler.sample();
        assert!(!h.hostname.is_empty());
        assert_eq!(
            h.cores.len(),
            std::thread::available_parallelism().unwrap().get()
        );
        assert!((0.0..=100.0).contains(&h.cpu_pct));
        assert!(h.memory.total > 0 && h.memory.used <= h.memory.total);
        assert!(h.disks.iter().any(|d| d.mount == "/"), "{:?}", h.disks);
        assert!(rss.unwrap() > 1 << 20, "our own RSS is at least a MiB");
    }
}
