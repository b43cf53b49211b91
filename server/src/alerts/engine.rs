//! The alert engine: one task owns every rule's series and alerts, evaluates the readings and logged errors
//! the outlet hands it, and applies what the handle asks.

use super::handle::{AlertError, Alerts, Msg};
use crate::clock::now_millis;
use crate::notify::Notifier;
use crate::outlet::{Interest, Observation, Outlet};
use crate::tasks::Tasks;
use shared::{
    Alert, AlertRule, AlertState, Event, HostCheck, LogRate, Phase, Presence, RECENT_ALERTS,
    RuleMetric, RuleSource, Tracker, Transition, render_message,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use store::{AlertFilter, AlertHistory, StoreError};
use tokio::sync::mpsc;

/// A firing alert's value is written and sent at most this often, besides every change of state and every
/// new peak.
const VALUE_EVERY_MS: i64 = 10_000;
/// Readings and logged errors waiting for the engine: it evaluates each in microseconds unless a store write
/// holds it up, and one it misses is only one point of a series the next reading evaluates again.
const QUEUE: usize = 1024;
/// The window of the error log's rate.
const LOG_WINDOW_MS: i64 = 60_000;

/// A series: (rule, subject, environment). A service's error rate in prod and the same service's in
/// staging are two series.
type Key = (String, String, String);

/// One rule's series: its state machine and its current alert.
struct Series {
    tracker: Tracker,
    alert: Option<Alert>,
    last_sent_ms: i64,
}

struct Engine {
    /// The configuration file's rules, then the dashboard's.
    rules: Vec<AlertRule>,
    store: Arc<dyn AlertHistory>,
    outlet: Outlet,
    notifier: Notifier,
    /// By (rule name, subject, environment).
    series: HashMap<Key, Series>,
    /// Times of error-level log entries in the last minute, per (environment, service).
    log_errors: HashMap<(String, String), VecDeque<i64>>,
    /// Every host of the fleet as its presence events said: its environment, and how it stands.
    fleet: HashMap<String, (String, Presence)>,
    /// The hub's own environment: of its services and databases, and of what names no other.
    home: String,
}

/// Starts the engine: reads the rules written on the dashboard, takes up the alerts a previous run left open,
/// publishes the rules and the recent alerts, then evaluates until `shutdown`.
pub async fn start(
    mut rules: Vec<AlertRule>,
    store: Arc<dyn AlertHistory>,
    outlet: &Outlet,
    notifier: Notifier,
    tasks: &Tasks,
) -> Result<Alerts, StoreError> {
    // Subscribed before anything is read, so no reading that arrives meanwhile is missed.
    let mut observed = outlet.subscribe(Interest::ReadingsAndLogErrors, QUEUE);
    for saved in store.saved_rules().await? {
        if rules.iter().any(|r| r.name == saved.name) {
            tracing::warn!(
                rule = %saved.name,
                "a rule written on the dashboard has the name of one in the configuration file; the file's is used"
            );
            continue;
        }
        rules.push(saved);
    }
    let mut engine = Engine {
        rules,
        store,
        outlet: outlet.clone(),
        notifier,
        series: HashMap::new(),
        log_errors: HashMap::new(),
        fleet: HashMap::new(),
        home: outlet.hub().environment().to_owned(),
    };
    engine
        .outlet
        .emit(None, Event::AlertRules(engine.rules.clone()));
    let mut recent = engine
        .store
        .alerts(
            &AlertFilter::default(),
            &store::ReaderScope::default(),
            None,
            RECENT_ALERTS,
        )
        .await?;
    let mut open = engine.store.open_alerts().await?;
    // Alerts of rules that are gone (removed from the file while Watchpost was down) resolve now.
    let now = now_millis();
    for alert in open.iter_mut() {
        if !engine.rules.iter().any(|r| r.name == alert.rule) {
            alert.state = AlertState::Resolved;
            alert.resolved_ms = Some(now);
            alert.updated_ms = now.max(alert.updated_ms + 1);
            engine.store.save_alert(alert).await?;
            if let Some(at) = recent.iter_mut().find(|a| a.id == alert.id) {
                *at = alert.clone();
            }
        }
    }
    open.retain(|a| a.state != AlertState::Resolved);
    engine.notifier.seed(&open);
    for alert in &open {
        let phase = match alert.state {
            AlertState::Firing => Phase::Firing {
                since_ms: alert.fired_ms.unwrap_or(alert.started_ms),
                clean: 0,
            },
            _ => Phase::Pending {
                since_ms: alert.started_ms,
            },
        };
        let environment = alert
            .labels
            .get(shared::ENVIRONMENT_FIELD)
            .cloned()
            .unwrap_or_else(|| engine.home.clone());
        engine.series.insert(
            (alert.rule.clone(), alert.subject.clone(), environment),
            Series {
                tracker: Tracker {
                    phase,
                    peak: Some(alert.peak),
                },
                alert: Some(alert.clone()),
                last_sent_ms: alert.updated_ms,
            },
        );
    }
    // Open alerts older than the newest hundred are in the state too.
    for alert in open {
        if !recent.iter().any(|a| a.id == alert.id) {
            recent.push(alert);
        }
    }
    recent.sort_by_key(|a| a.id);
    for alert in recent {
        publish(&engine.outlet, alert);
    }
    let (tx, mut rx) = mpsc::channel(1024);
    let shutdown = tasks.token().clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                msg = rx.recv() => match msg {
                    Some(msg) => engine.handle(msg).await,
                    None => return,
                },
                received = observed.recv() => match received {
                    Some(observation) => {
                        let missed = observed.take_missed();
                        if missed > 0 {
                            tracing::debug!(missed, "the alert engine is behind; readings were not evaluated");
                        }
                        engine.observe(&observation).await;
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    let now = now_millis();
                    engine.log_rates(now).await;
                    engine.presences(now).await;
                }
            }
        }
    });
    Ok(Alerts { tx })
}

/// Publishes an alert to the readers of its environment (its `environment` label; the hub's own when it
/// names none).
fn publish(outlet: &Outlet, alert: Alert) {
    let environment = alert
        .labels
        .get(shared::ENVIRONMENT_FIELD)
        .cloned()
        .unwrap_or_else(|| outlet.hub().environment().to_owned());
    let scope = shared::Scope {
        environment,
        host: None,
    };
    outlet.emit_in(scope, Event::Alert(alert));
}

/// A new alert's labels: the rule's, its series' `environment`, and for a host's series the `host`, so
/// that notifications name them and only the readers of that environment see it.
fn labels_of(
    rule: &std::collections::BTreeMap<String, String>,
    metric: RuleMetric,
    subject: &str,
    environment: &str,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = rule.clone();
    if metric.subject_label() == shared::HOST_FIELD {
        labels.insert(shared::HOST_FIELD.into(), subject.to_owned());
    }
    labels.insert(shared::ENVIRONMENT_FIELD.into(), environment.to_owned());
    labels
}

impl Engine {
    /// Evaluates the rules that watch what the outlet handed over.
    async fn observe(&mut self, observation: &Observation) {
        match observation {
            Observation::Readings(readings) => {
                for r in readings {
                    let environment = if r.metric.subject() == shared::Subject::Host {
                        match self.fleet.get(&r.subject) {
                            // A host in maintenance raises no alerts.
                            Some((_, Presence::Maintenance)) => continue,
                            Some((environment, _)) => environment.clone(),
                            None => self.home.clone(),
                        }
                    } else {
                        self.home.clone()
                    };
                    self.evaluate(
                        RuleMetric::Stored(r.metric),
                        &r.subject,
                        &environment,
                        r.t_ms,
                        r.value,
                    )
                    .await;
                }
            }
            Observation::Presence(host) => {
                if host.removed {
                    // A removed host's series end: its open alerts resolve, and a host added again later
                    // starts afresh.
                    self.fleet.remove(&host.host.0);
                    let gone: Vec<Key> = self
                        .series
                        .keys()
                        .filter(|(_, subject, _)| *subject == host.host.0)
                        .cloned()
                        .collect();
                    self.end_series(gone).await;
                } else {
                    self.fleet.insert(
                        host.host.0.clone(),
                        (host.environment.clone(), host.presence),
                    );
                    self.presences(now_millis()).await;
                }
            }
            // Not evaluated by any rule; never handed to the engine (its interest leaves them out).
            Observation::Bands(_) => {}
            Observation::LogErrors(entries) => {
                if !self
                    .rules
                    .iter()
                    .any(|r| matches!(r.metric, RuleMetric::Log(_)))
                {
                    return;
                }
                for (service, environment, t_ms) in entries {
                    self.log_errors
                        .entry((environment.clone(), service.clone()))
                        .or_default()
                        .push_back(*t_ms);
                }
                self.log_rates(now_millis()).await;
            }
        }
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Acknowledge { id, by, reply } => {
                let result = self
                    .change(id, |a, now| {
                        if a.acknowledged_by.is_none() {
                            a.acknowledged_by = Some(by.clone());
                            a.acknowledged_ms = Some(now);
                        }
                    })
                    .await;
                let _ = reply.send(result);
            }
            Msg::Silence {
                id,
                until_ms,
                by,
                reply,
            } => {
                let result = self
                    .change(id, |a, _| {
                        a.silenced_until_ms = until_ms;
                        a.silenced_by = until_ms.map(|_| by.clone());
                    })
                    .await;
                let _ = reply.send(result);
            }
            Msg::PutRule { rule, by, reply } => {
                let _ = reply.send(self.put_rule(rule, &by).await);
            }
            Msg::DeleteRule { name, reply } => {
                let _ = reply.send(self.delete_rule(&name).await);
            }
        }
    }

    async fn put_rule(&mut self, mut rule: AlertRule, by: &str) -> Result<AlertRule, AlertError> {
        rule.source = RuleSource::Dashboard;
        let existing = self.rules.iter().position(|r| r.name == rule.name);
        if let Some(i) = existing
            && self.rules[i].source == RuleSource::Config
        {
            return Err(AlertError::Declared(rule.name));
        }
        self.store.save_rule(&rule, by, now_millis()).await?;
        let metric_changed = existing.is_some_and(|i| self.rules[i].metric != rule.metric);
        match existing {
            Some(i) => self.rules[i] = rule.clone(),
            None => self.rules.push(rule.clone()),
        }
        // Series the rule no longer watches end (all of them when it watches another metric now); the others
        // go on under the new condition.
        let gone: Vec<Key> = self
            .series
            .keys()
            .filter(|(name, subject, environment)| {
                *name == rule.name
                    && (metric_changed
                        || rule.subject.as_deref().is_some_and(|s| s != subject)
                        || rule
                            .environment
                            .as_deref()
                            .is_some_and(|e| e != environment))
            })
            .cloned()
            .collect();
        self.end_series(gone).await;
        self.rules_changed();
        Ok(rule)
    }

    async fn delete_rule(&mut self, name: &str) -> Result<(), AlertError> {
        let Some(i) = self.rules.iter().position(|r| r.name == name) else {
            return Err(AlertError::NoRule(name.to_owned()));
        };
        if self.rules[i].source == RuleSource::Config {
            return Err(AlertError::Declared(name.to_owned()));
        }
        self.store.delete_rule(name).await?;
        self.rules.remove(i);
        let gone: Vec<Key> = self
            .series
            .keys()
            .filter(|(rule, _, _)| rule == name)
            .cloned()
            .collect();
        self.end_series(gone).await;
        self.rules_changed();
        Ok(())
    }

    fn rules_changed(&mut self) {
        self.outlet
            .emit(None, Event::AlertRules(self.rules.clone()));
    }

    /// Resolves the open alerts of series whose rule changed or went, and forgets the series.
    async fn end_series(&mut self, keys: Vec<Key>) {
        let now = now_millis();
        for key in keys {
            let Some(series) = self.series.remove(&key) else {
                continue;
            };
            let Some(mut alert) = series.alert else {
                continue;
            };
            alert.state = AlertState::Resolved;
            alert.resolved_ms = Some(now);
            alert.updated_ms = now.max(alert.updated_ms + 1);
            if let Err(e) = self.store.save_alert(&alert).await {
                tracing::error!(alert = alert.id, "cannot store an alert: {e}");
            }
            self.notifier.alert(&alert);
            publish(&self.outlet, alert);
        }
    }

    /// Evaluates the error log's rate of every service that has recent errors or an open alert on it.
    async fn log_rates(&mut self, now_ms: i64) {
        let metric = RuleMetric::Log(LogRate::LogErrorsPerMinute);
        if !self.rules.iter().any(|r| r.metric == metric) {
            self.log_errors.clear();
            return;
        }
        let mut services: Vec<(String, String)> = Vec::new();
        for (key, times) in &mut self.log_errors {
            while times.front().is_some_and(|t| *t <= now_ms - LOG_WINDOW_MS) {
                times.pop_front();
            }
            services.push(key.clone());
        }
        for ((rule, subject, environment), series) in &self.series {
            let key = (environment.clone(), subject.clone());
            if self
                .rules
                .iter()
                .any(|r| r.name == *rule && r.metric == metric)
                && series.alert.is_some()
                && !services.contains(&key)
            {
                services.push(key);
            }
        }
        self.log_errors.retain(|_, times| !times.is_empty());
        for key in services {
            let count = self.log_errors.get(&key).map_or(0, VecDeque::len);
            let (environment, service) = key;
            self.evaluate(metric, &service, &environment, now_ms, count as f64)
                .await;
        }
    }

    /// Takes every host's presence from the hub's state (so nothing depends on a presence change having
    /// reached the engine: a host that was already down when the hub started, or a change dropped while
    /// the engine was behind), ends the series of hosts in maintenance (their open alerts resolve: they
    /// are expected offline), and evaluates `host_offline` rules for every host: 1 while it is offline, 0
    /// otherwise. Each second, so a rule's `for` runs out while nothing else happens.
    async fn presences(&mut self, now_ms: i64) {
        self.fleet = self
            .outlet
            .hub()
            .fleet_presences()
            .into_iter()
            .map(|(host, environment, presence)| (host, (environment, presence)))
            .collect();
        let host_rules: Vec<&str> = self
            .rules
            .iter()
            .filter(|r| r.metric.subject_label() == shared::HOST_FIELD)
            .map(|r| r.name.as_str())
            .collect();
        let resting: Vec<Key> = self
            .series
            .keys()
            .filter(|(rule, subject, _)| {
                host_rules.contains(&rule.as_str())
                    && self
                        .fleet
                        .get(subject)
                        .is_some_and(|(_, p)| *p == Presence::Maintenance)
            })
            .cloned()
            .collect();
        if !resting.is_empty() {
            self.end_series(resting).await;
        }
        let metric = RuleMetric::Host(HostCheck::HostOffline);
        if !self.rules.iter().any(|r| r.metric == metric) {
            return;
        }
        let hosts: Vec<(String, String, f64)> = self
            .fleet
            .iter()
            .map(|(host, (environment, presence))| {
                let offline = *presence == Presence::Offline;
                (
                    host.clone(),
                    environment.clone(),
                    f64::from(u8::from(offline)),
                )
            })
            .collect();
        for (host, environment, value) in hosts {
            self.evaluate(metric, &host, &environment, now_ms, value)
                .await;
        }
    }

    /// Runs every rule that watches this series (of `subject` in `environment`).
    async fn evaluate(
        &mut self,
        metric: RuleMetric,
        subject: &str,
        environment: &str,
        t_ms: i64,
        value: f64,
    ) {
        for index in 0..self.rules.len() {
            let rule = &self.rules[index];
            if rule.metric != metric
                || rule.subject.as_deref().is_some_and(|s| s != subject)
                || rule
                    .environment
                    .as_deref()
                    .is_some_and(|e| e != environment)
            {
                continue;
            }
            let key = (
                rule.name.clone(),
                subject.to_owned(),
                environment.to_owned(),
            );
            let series = self.series.entry(key.clone()).or_insert_with(|| Series {
                tracker: Tracker::default(),
                alert: None,
                last_sent_ms: 0,
            });
            let transition = series.tracker.step(&rule.condition, t_ms, value);
            let peak = series.tracker.peak.unwrap_or(value);
            let now = now_millis();
            // Filled in only when it is shown anew: when an alert starts or fires.
            let message = || {
                render_message(
                    &rule.message,
                    &rule.name,
                    subject,
                    value,
                    rule.condition.threshold,
                )
            };
            let changed = match (transition, series.alert.take()) {
                (Transition::Pending | Transition::Fired, None) => {
                    let fired = transition == Transition::Fired;
                    let new = Alert {
                        id: 0,
                        rule: rule.name.clone(),
                        subject: subject.to_owned(),
                        metric,
                        state: if fired {
                            AlertState::Firing
                        } else {
                            AlertState::Pending
                        },
                        severity: rule.severity,
                        labels: labels_of(&rule.labels, metric, subject, environment),
                        message: message(),
                        value,
                        peak,
                        threshold: rule.condition.threshold,
                        started_ms: t_ms,
                        fired_ms: fired.then_some(t_ms),
                        resolved_ms: None,
                        acknowledged_by: None,
                        acknowledged_ms: None,
                        silenced_until_ms: None,
                        silenced_by: None,
                        updated_ms: now,
                    };
                    match self.store.add_alert(&new).await {
                        Ok(stored) => Some(stored),
                        Err(e) => {
                            tracing::error!(rule = %rule.name, "cannot store an alert: {e}");
                            None
                        }
                    }
                }
                (_, None) => None,
                (transition, Some(mut alert)) => {
                    let new_peak = peak != alert.peak;
                    alert.value = value;
                    alert.peak = peak;
                    match transition {
                        Transition::Fired => {
                            alert.state = AlertState::Firing;
                            alert.fired_ms = Some(t_ms);
                            alert.message = message();
                        }
                        Transition::Resolved | Transition::Cleared => {
                            alert.state = AlertState::Resolved;
                            alert.resolved_ms = Some(t_ms);
                        }
                        Transition::Pending | Transition::Stay => {}
                    }
                    let due = transition != Transition::Stay
                        || new_peak
                        || now - series.last_sent_ms >= VALUE_EVERY_MS;
                    if due {
                        alert.updated_ms = now.max(alert.updated_ms + 1);
                        match self.store.save_alert(&alert).await {
                            Ok(_) => {}
                            Err(e) => {
                                tracing::error!(alert = alert.id, "cannot store an alert: {e}")
                            }
                        }
                        Some(alert)
                    } else {
                        series.alert = Some(alert);
                        None
                    }
                }
            };
            if let Some(alert) = changed {
                if matches!(transition, Transition::Fired) {
                    // INFO, not WARN: WARN events are copied into the error log as the hub's own, and an
                    // alert of an agent's host belongs to that host's environment (the alert itself is on
                    // the stream, scoped so).
                    tracing::info!(rule = %rule.name, subject, value, "alert firing: {}", alert.message);
                }
                series.last_sent_ms = now;
                series.alert = (alert.state != AlertState::Resolved).then(|| alert.clone());
                if matches!(transition, Transition::Fired | Transition::Resolved) {
                    self.notifier.alert(&alert);
                }
                publish(&self.outlet, alert);
            }
            if series.alert.is_none() && series.tracker.phase == Phase::Inactive {
                self.series.remove(&key);
            }
        }
    }

    /// Changes an alert (acknowledge, silence): the engine's own copy when it is open, else the stored one.
    async fn change(
        &mut self,
        id: i64,
        edit: impl Fn(&mut Alert, i64),
    ) -> Result<Alert, AlertError> {
        let now = now_millis();
        let open = self
            .series
            .values_mut()
            .find(|s| s.alert.as_ref().is_some_and(|a| a.id == id));
        let mut alert = match &open {
            Some(series) => series.alert.clone().ok_or(AlertError::NotFound(id))?,
            None => self
                .store
                .alert(id)
                .await?
                .ok_or(AlertError::NotFound(id))?,
        };
        edit(&mut alert, now);
        alert.updated_ms = now.max(alert.updated_ms + 1);
        self.store.save_alert(&alert).await?;
        let mut open_now = false;
        if let Some(series) = self
            .series
            .values_mut()
            .find(|s| s.alert.as_ref().is_some_and(|a| a.id == id))
        {
            series.alert = Some(alert.clone());
            open_now = true;
        }
        // Only an open alert's change is news to the channels: an old episode shares its series' fingerprint,
        // and must not stand in for the current one.
        if open_now {
            self.notifier.alert(&alert);
        }
        publish(&self.outlet, alert.clone());
        Ok(alert)
    }
}
