//! Metric history: the recorder that writes host readings, API figures and database figures to the store,
//! and the queries that read them back.
//!
//! The recorder subscribes to the outlet's readings (sources never wait for it) and batches what arrived
//! into one transaction a second. So a slow or full disk can delay history, never the event fan-out. While writes fail, the batch is kept (up to
//! [`MAX_PENDING`] points) and retried, the failure is published as a `Storage` event and shown in
//! `/healthz`, and the live dashboard carries on from memory.

use crate::clock::now_millis;
use crate::outlet::{Bands, Interest, Observation, Observations, Outlet, Reading};
use crate::tasks::Tasks;
use shared::{
    Event, HistoryPoint, HistorySeries, HostId, Metric, RangeError, StorageHealth, StorageStatus,
    Subject, Tier, TimeRange, band_quantile,
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
        let quantile = match metric {
            Metric::HttpP50Ms => Some(0.5),
            Metric::HttpP95Ms => Some(0.95),
            Metric::HttpP99Ms => Some(0.99),
            _ => None,
        };
        let points = match quantile {
            Some(q) if points.iter().any(|p| p.count > 1) => {
                self.pooled(q, subject, tier, (from_ms, to_ms), step_ms, points)
                    .await?
            }
            _ => points,
        };
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

    /// `points` of the `q`-quantile of `service`, each one that spans more than one interval computed from
    /// the pooled duration bands of those intervals, as Prometheus computes a quantile over a range: the
    /// average of ten-second quantiles is not the quantile of the hour (it misses a tail that only some
    /// intervals had). A point without stored bands (written before they were) keeps its average.
    async fn pooled(
        &self,
        q: f64,
        service: &str,
        tier: Tier,
        range: (i64, i64),
        step_ms: i64,
        mut points: Vec<HistoryPoint>,
    ) -> Result<Vec<HistoryPoint>, HistoryError> {
        let any = band_series(service, "");
        let prefix = any.strip_suffix("\"}").unwrap_or(&any);
        let mut by_step: HashMap<i64, Vec<(f64, f64)>> = HashMap::new();
        for name in self.store.series_with_prefix(prefix).await? {
            let Some(le) = name
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix("\"}"))
                .and_then(|le| le.parse::<f64>().ok())
            else {
                continue;
            };
            for p in self.store.read(&name, tier, range, step_ms).await? {
                let requests = (p.avg * f64::from(p.count)).round();
                by_step.entry(p.t_ms).or_default().push((le, requests));
            }
        }
        for p in points.iter_mut().filter(|p| p.count > 1) {
            let Some(mut bands) = by_step.remove(&p.t_ms) else {
                continue;
            };
            bands.sort_by(|a, b| a.0.total_cmp(&b.0));
            let overflow = bands
                .iter()
                .filter(|b| b.0.is_infinite())
                .map(|b| b.1)
                .sum();
            bands.retain(|b| b.0.is_finite());
            if let Some(v) = band_quantile(q, &bands, overflow) {
                p.avg = v;
            }
        }
        Ok(points)
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

/// The metric of the stored duration bands: `http_latency_band{service="shop",le="25"}` holds, per interval,
/// the requests above the bound before 25 ms and up to 25 ms; `le="+Inf"` those above the last bound.
const BAND_SERIES: &str = "http_latency_band";

/// The stored series of one band of `service`.
fn band_series(service: &str, le: &str) -> String {
    labeled_series(BAND_SERIES, &[("service", service), ("le", le)])
}

/// The points of an interval's bands, in the second of its end.
fn band_points(b: &Bands) -> Points {
    let t_ms = b.t_ms.div_euclid(1000) * 1000;
    let overflow = (b.overflow > 0).then_some(("+Inf".to_owned(), b.overflow));
    b.bands
        .iter()
        .map(|&(le, n)| (le.to_string(), n))
        .chain(overflow)
        .map(|(le, n)| {
            (
                band_series(&b.service, &le),
                HistoryPoint::single(t_ms, n as f64),
            )
        })
        .collect()
}

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
    let rx = outlet.subscribe(Interest::ReadingsAndBands, QUEUE);
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
    /// Adds the points of readings and duration bands, and notes their series as seen; logged errors and
    /// presence changes are not history.
    fn observe(&mut self, observation: &Observation, history: &History) {
        let points: Points = match observation {
            Observation::Readings(readings) => readings.iter().map(point).collect(),
            Observation::Bands(bands) => band_points(bands),
            Observation::LogErrors(_) | Observation::Presence(_) => return,
        };
        if let Ok(mut seen) = history.seen.lock() {
            for (series, _) in &points {
                if !seen.contains(series) {
                    seen.insert(series.clone());
                }
            }
        }
        self.add(points);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use store::{OpenOptions, SqliteStore};

    const TEN_S: i64 = 10_000;

    /// An interval's bands: most are fast; one in seven has a slow tail, one in thirteen some requests past
    /// the last bound.
    fn interval(i: i64) -> (Vec<(f64, u64)>, u64) {
        if i % 7 == 0 {
            (vec![(10.0, 50), (25.0, 20), (100.0, 20), (250.0, 10)], 0)
        } else if i % 13 == 0 {
            (vec![(10.0, 80), (25.0, 15)], 5)
        } else {
            (vec![(10.0, 90), (25.0, 10)], 0)
        }
    }

    /// The quantile of pooled counts, written out here on its own: the cumulative count reaches the rank in
    /// some band; interpolate linearly inside it from the bound before (0 for the first); past the last
    /// finite bound it is that bound.
    fn expected(q: f64, pooled: &BTreeMap<u64, u64>, overflow: u64) -> f64 {
        let total: u64 = pooled.values().sum::<u64>() + overflow;
        let rank = q * total as f64;
        let mut cumulative = 0u64;
        let mut lower = 0.0;
        for (&le_tenths, &n) in pooled {
            let upper = le_tenths as f64 / 10.0;
            if n > 0 && (cumulative + n) as f64 >= rank {
                return lower + (upper - lower) * (rank - cumulative as f64) / n as f64;
            }
            cumulative += n;
            lower = upper;
        }
        lower
    }

    /// Two hours of ten-second intervals, rolled up into the minute and hour tiers, read back over a day and
    /// over two months: each point of p99 is the quantile of its intervals' pooled bands (computed here
    /// independently), not the mean of their quantiles, which the slow tail of a few intervals would leave
    /// far lower.
    #[tokio::test]
    async fn a_quantile_over_a_long_range_is_that_of_the_pooled_bands() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("h.db"), &OpenOptions::default())
            .await
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let now = now_millis();
        let start = (now - 4 * 3_600_000).div_euclid(3_600_000) * 3_600_000;
        let mut points = Vec::new();
        let mut interval_p99 = Vec::new();
        for i in 0..720 {
            let t_ms = start + i * TEN_S;
            let (bands, overflow) = interval(i);
            let counts: Vec<(f64, f64)> = bands.iter().map(|&(le, n)| (le, n as f64)).collect();
            let p99 = band_quantile(0.99, &counts, overflow as f64).unwrap();
            interval_p99.push((t_ms, p99));
            points.push((
                labeled_series("http_p99_ms", &[("service", "shop")]),
                HistoryPoint::single(t_ms, p99),
            ));
            points.extend(band_points(&Bands {
                service: "shop".into(),
                t_ms,
                bands,
                overflow,
            }));
        }
        store.append(&points).await.unwrap();
        store.maintain(now, &Retention::default()).await.unwrap();
        let history = History::new(store, Retention::default(), HostId("here".into()));

        // Each point against the bands of its intervals merged here; how many are far from the mean of
        // the intervals' quantiles.
        let check = |series: &HistorySeries| {
            let mut far_from_the_mean = 0;
            for p in &series.points {
                let in_step = |t: &i64| *t >= p.t_ms && *t < p.t_ms + series.step_ms;
                let mut pooled: BTreeMap<u64, u64> = BTreeMap::new();
                let mut overflow = 0;
                for i in 0..720 {
                    if in_step(&(start + i * TEN_S)) {
                        let (bands, over) = interval(i);
                        for (le, n) in bands {
                            *pooled.entry((le * 10.0) as u64).or_default() += n;
                        }
                        overflow += over;
                    }
                }
                let want = expected(0.99, &pooled, overflow);
                assert!(
                    (p.avg - want).abs() < 1e-9,
                    "{:?} at {}: {} against {want}",
                    series.tier,
                    p.t_ms,
                    p.avg
                );
                let quantiles: Vec<f64> = interval_p99
                    .iter()
                    .filter(|(t, _)| in_step(t))
                    .map(|(_, v)| *v)
                    .collect();
                assert_eq!(quantiles.len() as u32, p.count);
                let mean = quantiles.iter().sum::<f64>() / quantiles.len() as f64;
                if (mean - want).abs() > 10.0 {
                    far_from_the_mean += 1;
                }
            }
            far_from_the_mean
        };
        let day = history
            .query(Metric::HttpP99Ms, Some("shop"), TimeRange::Day, now)
            .await
            .unwrap();
        assert_eq!(day.tier, Tier::Minute);
        assert_eq!(day.points.len(), 60, "two hours in two-minute steps");
        assert!(check(&day) > 30);
        // Past the minute tier's retention, the hour tier: points of hours of intervals.
        let months = history
            .query(
                Metric::HttpP99Ms,
                Some("shop"),
                TimeRange::Custom {
                    from_ms: now - 60 * 24 * 3_600_000,
                    to_ms: now,
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(months.tier, Tier::Hour);
        assert!(!months.points.is_empty());
        check(&months);
    }
}
