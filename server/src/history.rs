//! Metric history: the recorder that writes host readings, API figures and database figures to the store,
//! and the queries that read them back.
//!
//! The recorder subscribes to the outlet's readings (sources never wait for it) and batches what arrived
//! into one transaction a second. So a slow or full disk can delay history, never the event fan-out. While writes fail, the batch is kept (up to
//! [`MAX_PENDING`] points) and retried, the failure is published as a `Storage` event and shown in
//! `/healthz`, and the live dashboard carries on from memory.

use crate::clock::now_millis;
use crate::outlet::{Interest, Observation, Observations, Outlet, Reading};
use crate::tasks::Tasks;
use shared::{
    Event, HistoryPoint, HistorySeries, HostId, Metric, RangeError, StorageHealth, StorageStatus,
    Subject, TimeRange,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Retention, Store, StoreError, labeled_series, plan};
use tokio_util::sync::CancellationToken;

/// Readings waiting for the recorder between two batches: at the fastest interval (100 ms) ten a second, so
/// this is minutes of slack before a stalled recorder starts dropping readings.
const QUEUE: usize = 4096;
/// Points kept for retry while the store refuses writes: about four hours of the host's seven series at one
/// point a second. Past it the oldest are dropped (and counted), so memory stays bounded.
const MAX_PENDING: usize = 100_000;
/// How often the batch is written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often rollups, sealing and pruning run.
const MAINTAIN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0}")]
    Range(#[from] RangeError),
    #[error("'{0}' is not a {1} name")]
    BadSubject(String, &'static str),
    #[error("{0} is a metric of a {1}: name one with {1}=NAME")]
    NoSubject(Metric, &'static str),
    /// A subject no reading ever named (a typo, a service never scraped), told apart from one that had no
    /// points in the range.
    #[error("no {1} named '{0}' has ever been recorded")]
    UnknownSubject(String, &'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the store's health looks like from outside: shared by the recorder, `/healthz` and snapshots.
#[derive(Default)]
struct Status {
    current: Mutex<StorageStatus>,
    /// The last failure of each kind of work, kept apart so that a successful write does not clear a
    /// maintenance failure (which would make the alert flap near a full quota).
    failures: Mutex<Failures>,
    last_write_ms: AtomicI64,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Failures {
    write: Option<String>,
    maintain: Option<String>,
}

/// Which work a status update reports on.
#[derive(Clone, Copy)]
enum Work {
    Write,
    Maintain,
}

/// Reads history, and reports how writing it goes. Cheap to clone.
#[derive(Clone)]
pub struct History {
    store: Arc<dyn Store>,
    retention: Retention,
    /// The host whose history is shown when a query names none: this server's own.
    local_host: HostId,
    status: Arc<Status>,
    /// Every series a reading has been observed for since start, written yet or not: a subject the
    /// dashboard already shows is known to a history query before its first point reaches the store.
    seen: Arc<Mutex<HashSet<String>>>,
}

impl History {
    pub fn new(store: Arc<dyn Store>, retention: Retention, local_host: HostId) -> Self {
        History {
            store,
            retention,
            local_host,
            status: Arc::default(),
            seen: Arc::default(),
        }
    }

    pub fn status(&self) -> StorageStatus {
        self.status
            .current
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The `/healthz` view of the store.
    pub async fn health(&self) -> StorageHealth {
        let status = self.status();
        StorageHealth {
            status: if status.error.is_some() {
                "error"
            } else {
                "ok"
            }
            .into(),
            error: status.error,
            since_ms: status.since_ms,
            last_write_ms: Some(self.status.last_write_ms.load(Ordering::Relaxed))
                .filter(|&t| t != 0),
            db_bytes: self.store.size_bytes().await.ok(),
        }
    }

    /// One metric of `subject` (a host, service or database target, as the metric says; this server's own
    /// host when a host metric names none) over `range`, at most about a thousand points, read from the tier
    /// that fits.
    pub async fn query(
        &self,
        metric: Metric,
        subject: Option<&str>,
        range: TimeRange,
        now_ms: i64,
    ) -> Result<HistorySeries, HistoryError> {
        if let TimeRange::Custom { from_ms, to_ms } = range {
            // Typed input can still carry bounds that were never validated (a hand-made server-fn call).
            TimeRange::custom(from_ms, to_ms)?;
        }
        let kind = metric.subject();
        let subject = match (subject, kind) {
            (Some(s), _) => s,
            (None, Subject::Host) => &self.local_host.0,
            (None, _) => return Err(HistoryError::NoSubject(metric, kind.label())),
        };
        if subject.is_empty() || subject.len() > 253 {
            return Err(HistoryError::BadSubject(
                subject.chars().take(64).collect(),
                kind.label(),
            ));
        }
        let (from_ms, to_ms) = range.bounds(now_ms);
        let (tier, step_ms) = plan(from_ms, to_ms, now_ms, &self.retention);
        let series = labeled_series(metric.as_str(), &[(kind.label(), subject)]);
        // This server's own host is known before its first reading is written.
        let own_host = kind == Subject::Host && subject == self.local_host.0;
        if !own_host && !self.knows(&series).await? {
            let any_metric_of_it = Metric::ALL
                .iter()
                .filter(|m| m.subject() == kind && **m != metric)
                .map(|m| labeled_series(m.as_str(), &[(kind.label(), subject)]));
            let mut seen = false;
            for other in any_metric_of_it {
                if self.knows(&other).await? {
                    seen = true;
                    break;
                }
            }
            if !seen {
                return Err(HistoryError::UnknownSubject(
                    subject.chars().take(64).collect(),
                    kind.label(),
                ));
            }
        }
        let points = self
            .store
            .read(&series, tier, (from_ms, to_ms), step_ms)
            .await?;
        Ok(HistorySeries {
            metric,
            subject: subject.to_owned(),
            tier,
            step_ms,
            from_ms,
            to_ms,
            points,
        })
    }

    /// Whether `series` has been observed since start or is in the store.
    async fn knows(&self, series: &str) -> Result<bool, HistoryError> {
        if self.seen.lock().is_ok_and(|seen| seen.contains(series)) {
            return Ok(true);
        }
        Ok(self.store.has_series(series).await?)
    }

    /// Records how `work` went; publishes the store's health when it changed.
    fn set_status(&self, outlet: &Outlet, work: Work, error: Option<String>) {
        let error = {
            let Ok(mut failures) = self.status.failures.lock() else {
                return;
            };
            match work {
                Work::Write => failures.write = error,
                Work::Maintain => failures.maintain = error,
            }
            failures.write.clone().or_else(|| failures.maintain.clone())
        };
        let changed = {
            let Ok(mut current) = self.status.current.lock() else {
                return;
            };
            if current.error == error {
                false
            } else {
                current.since_ms = error.as_ref().map(|_| now_millis());
                current.error = error;
                true
            }
        };
        if changed {
            let status = self.status();
            match &status.error {
                Some(e) => tracing::error!("history is not being saved: {e}"),
                None => tracing::info!("history is being saved again"),
            }
            outlet.emit(None, Event::Storage(status));
        }
    }
}

/// Points of one reading, each named by its series.
type Points = Vec<(String, HistoryPoint)>;

/// A metric's point in the second of `t_ms`, rounded to the metric's storage precision.
fn point(r: &Reading) -> (String, HistoryPoint) {
    (
        labeled_series(
            r.metric.as_str(),
            &[(r.metric.subject().label(), &r.subject)],
        ),
        HistoryPoint::single(r.t_ms.div_euclid(1000) * 1000, r.metric.quantize(r.value)),
    )
}

impl Status {
    /// Counts readings the recorder missed by falling behind the outlet.
    fn dropped(&self, n: u64) {
        if n == 0 {
            return;
        }
        let before = self.dropped.fetch_add(n, Ordering::Relaxed);
        // Warn at each power of two, so a long stall does not flood the log.
        if (before + n).ilog2() != before.checked_ilog2().unwrap_or(u32::MAX) {
            tracing::warn!(
                dropped = before + n,
                "history recorder is behind; readings dropped"
            );
        }
    }
}

/// Starts the recorder task. It subscribes to the outlet's readings at once (the server builds it before any
/// source starts), batches them, and writes until `shutdown`, then writes what it still holds and ends. A
/// slow or full disk delays history, never a source: past [`QUEUE`] readings waiting, new ones are dropped,
/// and counted.
pub fn spawn_recorder(history: History, outlet: &Outlet, tasks: &Tasks) {
    let rx = outlet.subscribe(Interest::Readings, QUEUE);
    tasks.spawn(run(history, outlet.clone(), rx, tasks.token().clone()));
}

async fn run(history: History, outlet: Outlet, mut rx: Observations, shutdown: CancellationToken) {
    let mut batch = Batch::default();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut maintain = tokio::time::interval(MAINTAIN_EVERY);
    maintain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some(observation) => {
                    history.status.dropped(rx.take_missed());
                    batch.observe(&observation, &history);
                }
                None => break,
            },
            _ = flush.tick() => batch.write(&history, &outlet).await,
            _ = maintain.tick() => {
                // Write first, and never let the rollups pass a point still waiting to be written: it would
                // land behind them and miss the minute and hour tiers.
                batch.write(&history, &outlet).await;
                let now = batch.oldest().map_or(now_millis(), |t| t.min(now_millis()));
                match history.store.maintain(now, &history.retention).await {
                    Ok(done) => {
                        tracing::debug!(?done, "history maintenance");
                        history.set_status(&outlet, Work::Maintain, None);
                    }
                    Err(e) => {
                        tracing::warn!("history maintenance failed: {e}");
                        history.set_status(&outlet, Work::Maintain, Some(e.to_string()));
                    }
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
    while let Some(observation) = rx.try_recv() {
        batch.observe(&observation, &history);
    }
    history.status.dropped(rx.take_missed());
    batch.write(&history, &outlet).await;
}

/// Points waiting to be written, merged per series and second.
#[derive(Default)]
struct Batch {
    points: HashMap<(String, i64), HistoryPoint>,
    /// Insertion order of `points`' keys, oldest first, for dropping the oldest when over the limit.
    order: Vec<(String, i64)>,
}

impl Batch {
    /// Adds the points of a reading, and notes their series as seen; other observations are not history.
    fn observe(&mut self, observation: &Observation, history: &History) {
        if let Observation::Readings(readings) = observation {
            let points: Points = readings.iter().map(point).collect();
            if let Ok(mut seen) = history.seen.lock() {
                for (series, _) in &points {
                    if !seen.contains(series) {
                        seen.insert(series.clone());
                    }
                }
            }
            self.add(points);
        }
    }

    fn add(&mut self, points: Points) {
        for (series, point) in points {
            let key = (series, point.t_ms);
            match self.points.get_mut(&key) {
                Some(existing) => existing.merge(&point),
                None => {
                    self.points.insert(key.clone(), point);
                    self.order.push(key);
                }
            }
        }
        if self.order.len() > MAX_PENDING {
            let excess = self.order.len() - MAX_PENDING;
            for key in self.order.drain(..excess) {
                self.points.remove(&key);
            }
            tracing::warn!(
                excess,
                "history points dropped while the store refuses writes"
            );
        }
    }

    /// The time of the oldest point still waiting.
    fn oldest(&self) -> Option<i64> {
        self.points.keys().map(|(_, t)| *t).min()
    }

    async fn write(&mut self, history: &History, outlet: &Outlet) {
        if self.order.is_empty() {
            return;
        }
        let points: Vec<(String, HistoryPoint)> = self
            .order
            .iter()
            .filter_map(|key| self.points.get(key).map(|p| (key.0.clone(), *p)))
            .collect();
        match history.store.append(&points).await {
            Ok(_) => {
                self.points.clear();
                self.order.clear();
                history
                    .status
                    .last_write_ms
                    .store(now_millis(), Ordering::Relaxed);
                history.set_status(outlet, Work::Write, None);
            }
            Err(e) => history.set_status(outlet, Work::Write, Some(e.to_string())),
        }
    }
}
