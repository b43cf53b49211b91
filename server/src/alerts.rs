//! Alert rules: declared as `[[alerts]]` in the configuration file, evaluated on every new reading (host, API
//! and database figures as the recorder gets them, and the error log's rate), with the state machine in
//! `shared::alerts` per (rule, series). Every change of an alert is stored (its history) and published whole.
//!
//! One task owns the alerts: readings, the clock, and acknowledgements and silences all reach it through one
//! channel, so an acknowledgement can never be overwritten by an evaluation that read the alert before it.
//!
//! ```toml
//! [[alerts]]
//! name = "cpu-high"
//! metric = "cpu"               # a stored metric (cpu, memory, disk, http_p95_ms, db_connections, …)
//!                              # or log_errors_per_minute (error and critical entries per service)
//! subject = "web-1"            # one host, service or target; every one when left out
//! above = 90                   # or: below = 10
//! resolve = 80                 # back below this to resolve (default: the threshold)
//! for = "2m"                   # across the threshold this long before it fires (default 0)
//! clear_after = 3              # clean evaluations in a row to resolve (default 1)
//! severity = "warning"         # info, warning, error, critical
//! labels = { team = "ops" }
//! message = "{subject}: CPU at {value}% (over {threshold}%)"
//! ```

use crate::clock::now_millis;
use crate::notify::Notifier;
use crate::outlet::{Observation, Outlet};
use serde::Deserialize;
use shared::{
    Alert, AlertRule, AlertState, Comparison, Condition, Event, LogRate, Phase, RECENT_ALERTS,
    RuleDraft, RuleMetric, RuleSource, Severity, Tracker, Transition, render_message,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use store::{AlertFilter, AlertHistory, StoreError};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A firing alert's value is written and sent at most this often, besides every change of state and every
/// new peak.
const VALUE_EVERY_MS: i64 = 10_000;
/// The window of the error log's rate.
const LOG_WINDOW_MS: i64 = 60_000;

/// An `[[alerts]]` table of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleFile {
    pub name: String,
    pub metric: String,
    pub subject: Option<String>,
    pub above: Option<f64>,
    pub below: Option<f64>,
    pub resolve: Option<f64>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub clear_after: Option<u32>,
    pub severity: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub message: Option<String>,
}

impl AlertRuleFile {
    /// Checks the declaration; the error names the rule and what is wrong.
    pub fn check(self) -> Result<AlertRule, String> {
        let name = self.name.trim().to_owned();
        let context = |e: String| format!("alert rule '{name}': {e}");
        if name.is_empty() || name.chars().count() > 64 {
            return Err("an alert rule needs a name of 1 to 64 characters".into());
        }
        let metric = RuleMetric::parse(&self.metric).ok_or_else(|| {
            context(format!(
                "unknown metric '{}'; use one of {}, log_errors_per_minute",
                self.metric,
                shared::Metric::ALL.map(|m| m.as_str()).join(", ")
            ))
        })?;
        let (comparison, threshold) = match (self.above, self.below) {
            (Some(t), None) => (Comparison::Above, t),
            (None, Some(t)) => (Comparison::Below, t),
            _ => return Err(context("give exactly one of above = … or below = …".into())),
        };
        let for_ms = match &self.for_ {
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| context(format!("for '{text}': {e}")))?
                .as_millis() as i64,
            None => 0,
        };
        let condition = Condition {
            comparison,
            threshold,
            resolve: self.resolve,
            for_ms,
            clear_after: self.clear_after.unwrap_or(1),
        };
        condition.check().map_err(context)?;
        let severity = match &self.severity {
            Some(s) => Severity::parse(s).ok_or_else(|| {
                context(format!(
                    "severity '{s}' is not one of info, warning, error, critical"
                ))
            })?,
            None => Severity::Warning,
        };
        let message = self.message.unwrap_or_else(|| {
            format!(
                "{{subject}}: {} is {{value}} ({} {{threshold}})",
                metric.as_str(),
                comparison.symbol()
            )
        });
        Ok(AlertRule {
            name,
            source: RuleSource::Config,
            metric,
            subject: self.subject.filter(|s| !s.trim().is_empty()),
            condition,
            severity,
            labels: self.labels,
            message,
        })
    }
}

/// Checks every rule and that their names are unique.
pub fn check_rules(files: Vec<AlertRuleFile>) -> Result<Vec<AlertRule>, String> {
    let mut rules: Vec<AlertRule> = Vec::new();
    for file in files {
        let rule = file.check()?;
        if let Some((label, _)) = rule.labels.iter().find(|(k, _)| !label_name_ok(k)) {
            return Err(format!(
                "alert rule '{}': '{label}' is not a label name (letters, digits and _)",
                rule.name
            ));
        }
        if rules.iter().any(|r| r.name == rule.name) {
            return Err(format!("two alert rules are named '{}'", rule.name));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// Label names as Prometheus allows them.
fn label_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A rule typed on the Alerts page, checked exactly as a `[[alerts]]` table is; the error says which field
/// is wrong.
pub fn rule_from_draft(d: RuleDraft) -> Result<AlertRule, String> {
    let text = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    };
    let number = |field: &str, s: &str| -> Result<Option<f64>, String> {
        text(s)
            .map(|t| {
                t.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("{field} must be a number, got '{t}'"))
            })
            .transpose()
    };
    let threshold = number("threshold", &d.threshold)?.ok_or("a threshold is needed")?;
    let (above, below) = match d.comparison.trim() {
        "above" | ">" => (Some(threshold), None),
        "below" | "<" => (None, Some(threshold)),
        other => return Err(format!("comparison must be above or below, got '{other}'")),
    };
    let clear_after = text(&d.clear_after)
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| format!("clear_after must be a whole number, got '{t}'"))
        })
        .transpose()?;
    let mut labels = BTreeMap::new();
    for pair in d.labels.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("labels: '{pair}' is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if !label_name_ok(k) || k.len() > 64 {
            return Err(format!(
                "labels: '{k}' is not a label name (letters, digits and _, not starting with a digit)"
            ));
        }
        if v.chars().count() > 200 {
            return Err(format!("labels: the value of '{k}' is over 200 characters"));
        }
        labels.insert(k.to_owned(), v.to_owned());
    }
    if labels.len() > 20 {
        return Err("labels: at most 20".into());
    }
    if d.message.chars().count() > 500 {
        return Err("the message is over 500 characters".into());
    }
    if d.subject.chars().count() > 200 {
        return Err("the subject is over 200 characters".into());
    }
    let mut rule = AlertRuleFile {
        name: d.name,
        metric: d.metric.trim().to_owned(),
        subject: text(&d.subject),
        above,
        below,
        resolve: number("resolve", &d.resolve)?,
        for_: text(&d.for_),
        clear_after,
        severity: text(&d.severity),
        labels,
        message: text(&d.message),
    }
    .check()?;
    rule.source = RuleSource::Dashboard;
    Ok(rule)
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("there is no alert {0}")]
    NotFound(i64),
    #[error("{0}")]
    Invalid(String),
    #[error("alerts cannot be written right now: {0}")]
    Store(#[from] StoreError),
    #[error("the alert engine has stopped")]
    Stopped,
    #[error("the rule '{0}' is declared in the configuration file; change it there")]
    Declared(String),
    #[error("there is no alert rule named '{0}'")]
    NoRule(String),
}

enum Msg {
    Acknowledge {
        id: i64,
        by: String,
        reply: oneshot::Sender<Result<Alert, AlertError>>,
    },
    Silence {
        id: i64,
        until_ms: Option<i64>,
        by: String,
        reply: oneshot::Sender<Result<Alert, AlertError>>,
    },
    PutRule {
        rule: AlertRule,
        by: String,
        reply: oneshot::Sender<Result<AlertRule, AlertError>>,
    },
    DeleteRule {
        name: String,
        reply: oneshot::Sender<Result<(), AlertError>>,
    },
}

/// The alert engine's handle: acknowledgements, silences and rule changes, each answered once the engine has
/// applied it. Cheap to clone. Readings do not come through here: the engine takes them from the outlet.
#[derive(Clone)]
pub struct Alerts {
    tx: mpsc::Sender<Msg>,
}

impl Alerts {
    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<Alert, AlertError>>) -> Msg,
    ) -> Result<Alert, AlertError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| AlertError::Stopped)?;
        answer.await.map_err(|_| AlertError::Stopped)?
    }

    /// Marks an alert acknowledged by `by` (once: the first acknowledgement stays).
    pub async fn acknowledge(&self, id: i64, by: &str) -> Result<Alert, AlertError> {
        let by = by.to_owned();
        self.ask(|reply| Msg::Acknowledge { id, by, reply }).await
    }

    /// Adds a rule written on the Alerts page, or replaces one of that name.
    pub async fn put_rule(&self, rule: AlertRule, by: &str) -> Result<AlertRule, AlertError> {
        let (reply, answer) = oneshot::channel();
        let by = by.to_owned();
        self.tx
            .send(Msg::PutRule { rule, by, reply })
            .await
            .map_err(|_| AlertError::Stopped)?;
        answer.await.map_err(|_| AlertError::Stopped)?
    }

    /// Removes a rule written on the Alerts page; its open alerts resolve.
    pub async fn delete_rule(&self, name: &str) -> Result<(), AlertError> {
        let (reply, answer) = oneshot::channel();
        let name = name.to_owned();
        self.tx
            .send(Msg::DeleteRule { name, reply })
            .await
            .map_err(|_| AlertError::Stopped)?;
        answer.await.map_err(|_| AlertError::Stopped)?
    }

    /// Holds back an alert's notifications until `until_ms` (`None` lifts the silence).
    pub async fn silence(
        &self,
        id: i64,
        until_ms: Option<i64>,
        by: &str,
    ) -> Result<Alert, AlertError> {
        if let Some(until) = until_ms
            && until <= now_millis()
        {
            return Err(AlertError::Invalid(
                "silence until a time in the future".into(),
            ));
        }
        let by = by.to_owned();
        self.ask(|reply| Msg::Silence {
            id,
            until_ms,
            by,
            reply,
        })
        .await
    }
}

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
    /// By (rule name, subject).
    series: HashMap<(String, String), Series>,
    /// Times of error-level log entries in the last minute, per service.
    log_errors: HashMap<String, VecDeque<i64>>,
}

/// Starts the engine: reads the rules written on the dashboard, takes up the alerts a previous run left open,
/// publishes the rules and the recent alerts, then evaluates until `shutdown`.
pub async fn start(
    mut rules: Vec<AlertRule>,
    store: Arc<dyn AlertHistory>,
    outlet: &Outlet,
    notifier: Notifier,
    shutdown: CancellationToken,
) -> Result<Alerts, StoreError> {
    // Subscribed before anything is read, so no reading that arrives meanwhile is missed.
    let mut observed = outlet.subscribe();
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
    };
    engine
        .outlet
        .emit(None, Event::AlertRules(engine.rules.clone()));
    let mut recent = engine
        .store
        .alerts(&AlertFilter::default(), None, RECENT_ALERTS)
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
        engine.series.insert(
            (alert.rule.clone(), alert.subject.clone()),
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
        engine.outlet.emit(None, Event::Alert(alert));
    }
    let (tx, mut rx) = mpsc::channel(1024);
    tokio::spawn(async move {
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
                    Ok(observation) => engine.observe(&observation).await,
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "the alert engine is behind; readings were not evaluated");
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => engine.log_rates(now_millis()).await,
            }
        }
    });
    Ok(Alerts { tx })
}

impl Engine {
    /// Evaluates the rules that watch what the outlet handed over.
    async fn observe(&mut self, observation: &Observation) {
        match observation {
            Observation::Readings(readings) => {
                for r in readings {
                    self.evaluate(RuleMetric::Stored(r.metric), &r.subject, r.t_ms, r.value)
                        .await;
                }
            }
            Observation::LogErrors(entries) => {
                if !self
                    .rules
                    .iter()
                    .any(|r| matches!(r.metric, RuleMetric::Log(_)))
                {
                    return;
                }
                for (service, t_ms) in entries {
                    self.log_errors
                        .entry(service.clone())
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
        let gone: Vec<(String, String)> = self
            .series
            .keys()
            .filter(|(name, subject)| {
                *name == rule.name
                    && (metric_changed || rule.subject.as_deref().is_some_and(|s| s != subject))
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
        let gone: Vec<(String, String)> = self
            .series
            .keys()
            .filter(|(rule, _)| rule == name)
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
    async fn end_series(&mut self, keys: Vec<(String, String)>) {
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
            self.outlet.emit(None, Event::Alert(alert));
        }
    }

    /// Evaluates the error log's rate of every service that has recent errors or an open alert on it.
    async fn log_rates(&mut self, now_ms: i64) {
        let metric = RuleMetric::Log(LogRate::LogErrorsPerMinute);
        if !self.rules.iter().any(|r| r.metric == metric) {
            self.log_errors.clear();
            return;
        }
        let mut services: Vec<String> = Vec::new();
        for (service, times) in &mut self.log_errors {
            while times.front().is_some_and(|t| *t <= now_ms - LOG_WINDOW_MS) {
                times.pop_front();
            }
            services.push(service.clone());
        }
        for ((rule, subject), series) in &self.series {
            if self
                .rules
                .iter()
                .any(|r| r.name == *rule && r.metric == metric)
                && series.alert.is_some()
                && !services.contains(subject)
            {
                services.push(subject.clone());
            }
        }
        self.log_errors.retain(|_, times| !times.is_empty());
        for service in services {
            let count = self.log_errors.get(&service).map_or(0, VecDeque::len);
            self.evaluate(metric, &service, now_ms, count as f64).await;
        }
    }

    /// Runs every rule that watches this series.
    async fn evaluate(&mut self, metric: RuleMetric, subject: &str, t_ms: i64, value: f64) {
        for index in 0..self.rules.len() {
            let rule = &self.rules[index];
            if rule.metric != metric || rule.subject.as_deref().is_some_and(|s| s != subject) {
                continue;
            }
            let key = (rule.name.clone(), subject.to_owned());
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
                        labels: rule.labels.clone(),
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
                    tracing::warn!(rule = %rule.name, subject, value, "alert firing: {}", alert.message);
                }
                series.last_sent_ms = now;
                series.alert = (alert.state != AlertState::Resolved).then(|| alert.clone());
                if matches!(transition, Transition::Fired | Transition::Resolved) {
                    self.notifier.alert(&alert);
                }
                self.outlet.emit(None, Event::Alert(alert));
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
        self.outlet.emit(None, Event::Alert(alert.clone()));
        Ok(alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Result<AlertRule, String> {
        toml::from_str::<AlertRuleFile>(text)
            .map_err(|e| e.to_string())
            .and_then(AlertRuleFile::check)
    }

    #[test]
    fn rules_are_checked_at_start() {
        let r = rule(
            "name = \"cpu\"\nmetric = \"cpu\"\nabove = 90\nresolve = 80\nfor = \"2m\"\nclear_after = 3\n",
        )
        .unwrap();
        assert_eq!(
            (r.condition.for_ms, r.condition.clear_after, r.severity),
            (120_000, 3, Severity::Warning)
        );
        assert_eq!(r.message, "{subject}: cpu is {value} (> {threshold})");
        assert!(rule("name = \"x\"\nmetric = \"log_errors_per_minute\"\nabove = 5\n").is_ok());
        for (text, message) in [
            (
                "name = \"x\"\nmetric = \"nope\"\nabove = 1\n",
                "unknown metric 'nope'",
            ),
            ("name = \"x\"\nmetric = \"cpu\"\n", "exactly one of above"),
            (
                "name = \"x\"\nmetric = \"cpu\"\nabove = 1\nbelow = 2\n",
                "exactly one of above",
            ),
            (
                "name = \"x\"\nmetric = \"cpu\"\nabove = 90\nresolve = 95\n",
                "good side",
            ),
            (
                "name = \"x\"\nmetric = \"cpu\"\nabove = 90\nseverity = \"loud\"\n",
                "severity 'loud'",
            ),
            (
                "name = \"x\"\nmetric = \"cpu\"\nabove = 90\nfor = \"soon\"\n",
                "for 'soon'",
            ),
            (
                "name = \"x\"\nmetric = \"cpu\"\nabove = 90\nwhen = 1\n",
                "unknown field",
            ),
        ] {
            let e = rule(text).unwrap_err();
            assert!(e.contains(message), "{text}: {e}");
        }
    }

    #[test]
    fn a_rule_typed_on_the_page_is_checked_like_the_files() {
        let draft = RuleDraft {
            name: " disk-full ".into(),
            metric: "disk".into(),
            subject: "".into(),
            comparison: "above".into(),
            threshold: "90".into(),
            resolve: "85".into(),
            for_: "5m".into(),
            clear_after: "".into(),
            severity: "critical".into(),
            labels: "team=ops, tier = db".into(),
            message: "".into(),
        };
        let rule = rule_from_draft(draft.clone()).unwrap();
        assert_eq!(rule.name, "disk-full");
        assert_eq!(rule.source, RuleSource::Dashboard);
        assert_eq!(rule.subject, None);
        assert_eq!(rule.condition.for_ms, 300_000);
        assert_eq!(rule.labels["tier"], "db");
        for (change, message) in [
            (
                RuleDraft {
                    threshold: "lots".into(),
                    ..draft.clone()
                },
                "threshold must be a number",
            ),
            (
                RuleDraft {
                    threshold: "".into(),
                    ..draft.clone()
                },
                "a threshold is needed",
            ),
            (
                RuleDraft {
                    comparison: "near".into(),
                    ..draft.clone()
                },
                "above or below",
            ),
            (
                RuleDraft {
                    resolve: "95".into(),
                    ..draft.clone()
                },
                "good side",
            ),
            (
                RuleDraft {
                    labels: "team".into(),
                    ..draft.clone()
                },
                "not key=value",
            ),
            (
                RuleDraft {
                    labels: "9x=1".into(),
                    ..draft.clone()
                },
                "not a label name",
            ),
            (
                RuleDraft {
                    clear_after: "-1".into(),
                    ..draft.clone()
                },
                "clear_after",
            ),
            (
                RuleDraft {
                    metric: "vibes".into(),
                    ..draft.clone()
                },
                "unknown metric",
            ),
            (
                RuleDraft {
                    name: "".into(),
                    ..draft.clone()
                },
                "name of 1 to 64",
            ),
        ] {
            let e = rule_from_draft(change).unwrap_err();
            assert!(e.contains(message), "{e}");
        }
    }
}
