//! The one door for what Watchpost learns. Every source and every domain service hands its events to the
//! [`Outlet`]: the outlet publishes each to the hub (which sequences it and fans it out to the streams) and
//! hands what consumers need of it — metric readings, errors written to the log — to whoever subscribed
//! (the history recorder, the alert engine). Sources know only the outlet; consumers subscribe at start, so
//! adding a consumer touches no source and no source is built after a consumer.

use crate::hub::Hub;
use crate::hub::bus::Bus;
use shared::{
    ApiPoint, DbReading, Event, HostHealth, HostId, Level, LogEntry, Metric, RECENT_LOGS, Scope,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The service name Watchpost's own log entries and request figures carry.
pub const OWN_SERVICE: &str = "watchpost";

/// One value of a metric's series at a time: what a source measured, before it is stored or evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub metric: Metric,
    /// The host, service or target.
    pub subject: String,
    pub t_ms: i64,
    pub value: f64,
}

/// What the outlet hands its consumers besides the event itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The stored metrics of one host, API or database reading.
    Readings(Vec<Reading>),
    /// Error- and critical-level entries just written to the error log, as (service, environment, time).
    LogErrors(Vec<(String, String, i64)>),
    /// A host of the fleet, whole, when it joins or its presence changes (for `host_offline` rules, and so
    /// that a host in maintenance raises no alerts).
    Presence(shared::FleetHost),
    /// An API interval's requests by duration band, for history (see [`ApiPoint::bands`]).
    Bands(Bands),
}

/// One interval's duration bands of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Bands {
    pub service: String,
    pub t_ms: i64,
    /// `(upper bound in ms, requests)`, ascending, the empty ones left out.
    pub bands: Vec<(f64, u64)>,
    /// Requests above the last bound.
    pub overflow: u64,
}

/// Where events go in. Cheap to clone.
#[derive(Clone)]
pub struct Outlet {
    bus: Arc<dyn Bus>,
    hub: Arc<Hub>,
    /// One bounded queue per consumer, so each falls behind on its own, by as much as it chose, and frees
    /// what it has read at once.
    taps: Arc<Mutex<Vec<Tap>>>,
}

struct Tap {
    tx: mpsc::Sender<Arc<Observation>>,
    missed: Arc<AtomicU64>,
    interest: Interest,
}

/// What a consumer wants handed over, so that what it ignores neither takes room in its queue nor counts
/// as missed: the history recorder stores readings and duration bands; the alert engine evaluates readings
/// and logged errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    ReadingsAndBands,
    ReadingsAndLogErrors,
}

/// A consumer's end: observations in order, and how many were dropped because it was behind.
pub struct Observations {
    rx: mpsc::Receiver<Arc<Observation>>,
    missed: Arc<AtomicU64>,
}

impl Observations {
    /// The next observation; `None` once the outlet is gone.
    pub async fn recv(&mut self) -> Option<Arc<Observation>> {
        self.rx.recv().await
    }

    /// An observation already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Observation>> {
        self.rx.try_recv().ok()
    }

    /// How many were dropped since the last call, because the queue was full.
    pub fn take_missed(&self) -> u64 {
        self.missed.swap(0, Ordering::Relaxed)
    }
}

impl Outlet {
    /// Events go out on `bus`; `hub` is this process's, which readers (streams, snapshots) subscribe to.
    pub fn new(bus: Arc<dyn Bus>, hub: Arc<Hub>) -> Self {
        Outlet {
            bus,
            hub,
            taps: Arc::default(),
        }
    }

    /// The outlet of one process: the hub is its own bus.
    pub fn local(hub: Arc<Hub>) -> Self {
        Outlet::new(hub.clone(), hub)
    }

    /// Publishes `event` (of `host`, when it is about one) and hands its readings to the consumers. Never
    /// waits for a reader.
    pub fn emit(&self, host: Option<HostId>, event: Event) {
        let (readings, bands) = observations_of(&event);
        self.bus.publish(host, event);
        self.hand_over(readings, bands);
    }

    /// As [`Outlet::emit`], for an event of `scope`: an agent's host, in its own environment.
    pub fn emit_in(&self, scope: Scope, event: Event) {
        let (readings, bands) = observations_of(&event);
        let presence = match &event {
            Event::Host(host) => Some(host.clone()),
            _ => None,
        };
        self.bus.publish_in(scope, event);
        self.hand_over(readings, bands);
        if let Some(host) = presence {
            self.tap(Observation::Presence(host));
        }
    }

    /// Publishes `event` for the dashboards only: its readings reach the consumers later, in their turn (an
    /// agent's newest reading shown while its backlog is still being recorded, see [`Outlet::backfill`]).
    pub fn show_in(&self, scope: Scope, event: Event) {
        self.bus.publish_in(scope, event);
    }

    /// Readings from the past (an agent's backlog after an outage) for history only: the dashboards already
    /// show something newer, and alerts judge the present.
    pub fn backfill(&self, event: &Event) {
        let readings = readings_of(event);
        if !readings.is_empty() {
            self.tap_for(
                Observation::Readings(readings),
                Some(Interest::ReadingsAndBands),
            );
        }
    }

    fn hand_over(&self, readings: Vec<Reading>, bands: Option<Bands>) {
        if !readings.is_empty() {
            self.tap(Observation::Readings(readings));
        }
        if let Some(bands) = bands {
            self.tap(Observation::Bands(bands));
        }
    }

    /// Entries just stored in the error log: the newest go on the stream (an ingest of thousands is read
    /// back from the store, not streamed), the errors among all of them to the consumers.
    pub fn logged(&self, stored: &[LogEntry]) {
        // Copied only when some consumer counts them (the alert engine does).
        if self
            .lock_taps()
            .iter()
            .any(|t| t.interest == Interest::ReadingsAndLogErrors)
        {
            let home = self.hub.environment();
            let errors: Vec<(String, String, i64)> = stored
                .iter()
                .filter(|e| e.level >= Level::Error)
                .map(|e| {
                    let environment = e
                        .fields
                        .get(shared::ENVIRONMENT_FIELD)
                        .map_or(home, String::as_str);
                    (e.service.clone(), environment.to_owned(), e.t_ms)
                })
                .collect();
            if !errors.is_empty() {
                self.tap(Observation::LogErrors(errors));
            }
        }
        let mut newest: Vec<&LogEntry> = stored.iter().collect();
        newest.sort_by_key(|e| std::cmp::Reverse(e.cursor()));
        newest.truncate(RECENT_LOGS);
        // One event per environment (a batch is almost always of one): each reaches only the readers who
        // may see that environment.
        let home = self.hub.environment();
        let mut by_environment: Vec<(&str, Vec<LogEntry>)> = Vec::new();
        for entry in newest {
            let environment = entry
                .fields
                .get(shared::ENVIRONMENT_FIELD)
                .map_or(home, String::as_str);
            match by_environment.iter_mut().find(|(e, _)| *e == environment) {
                Some((_, entries)) => entries.push(entry.clone()),
                None => by_environment.push((environment, vec![entry.clone()])),
            }
        }
        for (environment, entries) in by_environment {
            let scope = Scope {
                environment: environment.to_owned(),
                host: None,
            };
            self.bus.publish_in(scope, Event::Logs(entries));
        }
    }

    /// Observations of `interest` from now on, up to `capacity` queued before the newest are dropped (and counted).
    /// Consumers subscribe while the server is built, before any source starts.
    pub fn subscribe(&self, interest: Interest, capacity: usize) -> Observations {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let missed = Arc::new(AtomicU64::new(0));
        self.lock_taps().push(Tap {
            tx,
            missed: missed.clone(),
            interest,
        });
        Observations { rx, missed }
    }

    /// The hub behind the outlet, for what reads it (streams, snapshots, `/healthz`).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn tap(&self, observation: Observation) {
        let only_for = match observation {
            Observation::Readings(_) => None,
            Observation::LogErrors(_) | Observation::Presence(_) => {
                Some(Interest::ReadingsAndLogErrors)
            }
            Observation::Bands(_) => Some(Interest::ReadingsAndBands),
        };
        self.tap_for(observation, only_for);
    }

    /// Hands `observation` to every consumer, or to those of `only_for`.
    fn tap_for(&self, observation: Observation, only_for: Option<Interest>) {
        let taps = self.lock_taps();
        if taps.is_empty() {
            return;
        }
        let observation = Arc::new(observation);
        for tap in taps
            .iter()
            .filter(|t| only_for.is_none_or(|i| i == t.interest))
        {
            // Full: the consumer is behind and learns how many it missed. Closed: it has stopped.
            if let Err(mpsc::error::TrySendError::Full(_)) = tap.tx.try_send(observation.clone()) {
                tap.missed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn lock_taps(&self) -> std::sync::MutexGuard<'_, Vec<Tap>> {
        // Taps are only added; a panic elsewhere while holding the lock leaves the list whole.
        self.taps.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What an event hands the consumers: its readings, and an API interval's duration bands.
fn observations_of(event: &Event) -> (Vec<Reading>, Option<Bands>) {
    let bands = match event {
        Event::Api(api) => bands_of(api),
        _ => None,
    };
    (readings_of(event), bands)
}

/// The stored metrics an event carries: a host's health, an interval's API figures, a database target's
/// figures. Failed readings carry none.
pub fn readings_of(event: &Event) -> Vec<Reading> {
    match event {
        Event::Health(health) => host_readings(health),
        Event::Api(api) => api_readings(api),
        Event::Db(db) => db_readings(db),
        _ => Vec::new(),
    }
}

fn reading(metric: Metric, subject: &str, t_ms: i64, value: f64) -> Reading {
    Reading {
        metric,
        subject: subject.to_owned(),
        t_ms,
        value,
    }
}

/// The series of a host reading.
fn host_readings(health: &HostHealth) -> Vec<Reading> {
    Metric::HOST
        .into_iter()
        .filter_map(|m| {
            m.read(health)
                .map(|v| reading(m, &health.host.0, health.sampled_at_ms, v))
        })
        .collect()
}

/// The series of an API interval. A service that is down, or had no requests, has no latency; its rate
/// (zero) counts unless it is down, so a chart shows a gap for an outage. A target without request metrics
/// has none at all: a zero rate would claim it served nothing.
fn api_readings(api: &ApiPoint) -> Vec<Reading> {
    if api.error.is_some() || api.no_request_metrics {
        return Vec::new();
    }
    let mut readings = vec![reading(
        Metric::HttpRequestsPerS,
        &api.service,
        api.t_ms,
        api.rate_per_s,
    )];
    for (metric, value) in [
        (Metric::HttpP50Ms, api.p50_ms),
        (Metric::HttpP95Ms, api.p95_ms),
        (Metric::HttpP99Ms, api.p99_ms),
    ] {
        if let Some(v) = value {
            readings.push(reading(metric, &api.service, api.t_ms, v));
        }
    }
    readings
}

/// The duration bands of an API interval that had requests.
fn bands_of(api: &ApiPoint) -> Option<Bands> {
    if api.error.is_some() || api.bands.is_empty() {
        return None;
    }
    let banded: u64 = api.bands.iter().map(|b| b.1).sum();
    Some(Bands {
        service: api.service.clone(),
        t_ms: api.t_ms,
        bands: api.bands.clone(),
        overflow: api.requests.saturating_sub(banded),
    })
}

/// The series of a database reading: total connections, transactions per second, cache hit ratio.
fn db_readings(db: &DbReading) -> Vec<Reading> {
    if db.error.is_some() {
        return Vec::new();
    }
    let mut readings = vec![reading(
        Metric::DbConnections,
        &db.target,
        db.t_ms,
        db.total_connections() as f64,
    )];
    if let Some(tps) = db.tps {
        readings.push(reading(Metric::DbTps, &db.target, db.t_ms, tps));
    }
    if let Some(ratio) = db.cache_hit_ratio {
        readings.push(reading(
            Metric::DbCacheHitPct,
            &db.target,
            db.t_ms,
            ratio * 100.0,
        ));
    }
    readings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::tests::health;

    fn outlet() -> Outlet {
        Outlet::local(Arc::new(Hub::with_seed("t".into(), 1000, 8, 8, 1)))
    }

    #[test]
    fn a_reading_reaches_the_hub_and_every_consumer() {
        let outlet = outlet();
        let (mut recorder, mut alerts) = (
            outlet.subscribe(Interest::ReadingsAndLogErrors, 8),
            outlet.subscribe(Interest::ReadingsAndLogErrors, 8),
        );
        let mut stream = outlet
            .hub()
            .subscribe(None, &shared::Access::uniform(shared::Role::Viewer))
            .live;
        outlet.emit(Some(HostId("h".into())), health(42.0));
        assert!(stream.try_recv().is_ok());
        for rx in [&mut recorder, &mut alerts] {
            let Observation::Readings(readings) = &*rx.try_recv().unwrap() else {
                panic!("expected readings");
            };
            let cpu = readings
                .iter()
                .find(|r| r.metric == Metric::Cpu)
                .expect("the CPU reading");
            assert_eq!((cpu.subject.as_str(), cpu.value), ("h", 42.0));
        }
    }

    #[test]
    fn an_event_without_readings_goes_to_the_hub_only() {
        let outlet = outlet();
        let mut rx = outlet.subscribe(Interest::ReadingsAndLogErrors, 8);
        let mut stream = outlet
            .hub()
            .subscribe(None, &shared::Access::uniform(shared::Role::Viewer))
            .live;
        outlet.emit(None, Event::AlertRules(Vec::new()));
        assert!(stream.try_recv().is_ok());
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn logged_errors_reach_only_the_consumers_that_want_them() {
        let outlet = outlet();
        let (mut recorder, mut alerts) = (
            outlet.subscribe(Interest::ReadingsAndBands, 8),
            outlet.subscribe(Interest::ReadingsAndLogErrors, 8),
        );
        let entry = |level| LogEntry {
            id: 1,
            t_ms: 5,
            level,
            service: "api".into(),
            message: "boom".into(),
            fields: Default::default(),
        };
        outlet.logged(&[entry(Level::Error), entry(Level::Info)]);
        assert!(recorder.try_recv().is_none());
        assert_eq!(
            *alerts.try_recv().unwrap(),
            Observation::LogErrors(vec![("api".into(), "t".into(), 5)])
        );
    }

    #[test]
    fn a_consumer_that_falls_behind_misses_the_newest_and_is_told_how_many() {
        let outlet = outlet();
        let (mut slow, mut fast) = (
            outlet.subscribe(Interest::ReadingsAndLogErrors, 2),
            outlet.subscribe(Interest::ReadingsAndLogErrors, 8),
        );
        for cpu in 0..5 {
            outlet.emit(Some(HostId("h".into())), health(cpu as f32));
        }
        assert_eq!(slow.take_missed(), 3);
        assert_eq!(fast.take_missed(), 0);
        assert!(slow.try_recv().is_some() && slow.try_recv().is_some());
        assert!(slow.try_recv().is_none());
        assert_eq!((0..5).filter_map(|_| fast.try_recv()).count(), 5);
    }
}
