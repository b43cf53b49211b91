//! Alert rules and the state machine every rule runs per series: inactive → pending → firing → resolved.
//!
//! Hysteresis is what keeps a value hovering at its threshold from flapping (the long-standing complaint of
//! grafana #6202 and kibana #49412): a rule fires when the value crosses `threshold` and stays across for
//! `for`, and resolves only when the value is back past a separate `resolve` threshold (the threshold itself
//! when none is set) for `clear_after` evaluations in a row. A value between the two keeps a firing alert
//! firing and resets its count of clean evaluations.

use crate::Severity;
use serde::{Deserialize, Serialize};

/// Which side of the threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Fires when the value is above the threshold (CPU, latency, errors).
    Above,
    /// Fires when the value is below it (free space, a cache hit ratio).
    Below,
}

impl Comparison {
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Above => ">",
            Comparison::Below => "<",
        }
    }
}

/// When a series is in trouble, and when it is out of it again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub comparison: Comparison,
    pub threshold: f64,
    /// The value must get back past this to resolve; between it and `threshold` nothing changes. On the
    /// good side of `threshold` or equal to it; `None` means the threshold itself.
    pub resolve: Option<f64>,
    /// How long the value must stay across the threshold before the alert fires (0: at once).
    pub for_ms: i64,
    /// Clean evaluations in a row needed to resolve (at least 1).
    pub clear_after: u32,
}

impl Condition {
    /// Whether `value` is across the threshold.
    pub fn breached(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Above => value > self.threshold,
            Comparison::Below => value < self.threshold,
        }
    }

    /// Whether `value` is back past the resolve threshold.
    pub fn recovered(&self, value: f64) -> bool {
        let resolve = self.resolve.unwrap_or(self.threshold);
        match self.comparison {
            Comparison::Above => value <= resolve,
            Comparison::Below => value >= resolve,
        }
    }

    /// Why the condition cannot work, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !self.threshold.is_finite() {
            return Err("the threshold must be a number".into());
        }
        if let Some(resolve) = self.resolve {
            let wrong_side = match self.comparison {
                Comparison::Above => resolve > self.threshold,
                Comparison::Below => resolve < self.threshold,
            };
            if !resolve.is_finite() || wrong_side {
                return Err(format!(
                    "resolve ({resolve}) must be on the good side of the threshold ({}) or equal to it",
                    self.threshold
                ));
            }
        }
        if self.for_ms < 0 {
            return Err("for must not be negative".into());
        }
        if self.clear_after == 0 {
            return Err("clear_after must be at least 1".into());
        }
        Ok(())
    }
}

/// Where one series of a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Inactive,
    /// Across the threshold since `since_ms`, not yet for long enough.
    Pending {
        since_ms: i64,
    },
    /// Fired at `since_ms`; `clean` evaluations in a row have been back past the resolve threshold.
    Firing {
        since_ms: i64,
        clean: u32,
    },
}

/// What an evaluation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing.
    Stay,
    /// Across the threshold; waiting for `for`.
    Pending,
    /// Back before `for` was over: it never fired.
    Cleared,
    Fired,
    Resolved,
}

/// One series' state under a rule: its phase and the worst value seen while pending or firing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    pub phase: Phase,
    pub peak: Option<f64>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            phase: Phase::Inactive,
            peak: None,
        }
    }
}

impl Tracker {
    /// Evaluates the reading `value` taken at `t_ms`.
    pub fn step(&mut self, condition: &Condition, t_ms: i64, value: f64) -> Transition {
        if !value.is_finite() {
            return Transition::Stay;
        }
        let breached = condition.breached(value);
        let worse = |peak: Option<f64>| match (peak, condition.comparison) {
            (None, _) => Some(value),
            (Some(p), Comparison::Above) => Some(p.max(value)),
            (Some(p), Comparison::Below) => Some(p.min(value)),
        };
        match self.phase {
            Phase::Inactive if breached => {
                self.peak = Some(value);
                if condition.for_ms <= 0 {
                    self.phase = Phase::Firing {
                        since_ms: t_ms,
                        clean: 0,
                    };
                    Transition::Fired
                } else {
                    self.phase = Phase::Pending { since_ms: t_ms };
                    Transition::Pending
                }
            }
            Phase::Inactive => Transition::Stay,
            Phase::Pending { since_ms } if breached => {
                self.peak = worse(self.peak);
                if t_ms - since_ms >= condition.for_ms {
                    self.phase = Phase::Firing {
                        since_ms: t_ms,
                        clean: 0,
                    };
                    Transition::Fired
                } else {
                    Transition::Stay
                }
            }
            Phase::Pending { .. } => {
                *self = Tracker::default();
                Transition::Cleared
            }
            Phase::Firing { since_ms, clean } => {
                self.peak = worse(self.peak);
                if condition.recovered(value) {
                    let clean = clean + 1;
                    if clean >= condition.clear_after {
                        self.phase = Phase::Inactive;
                        return Transition::Resolved;
                    }
                    self.phase = Phase::Firing { since_ms, clean };
                } else {
                    self.phase = Phase::Firing { since_ms, clean: 0 };
                }
                Transition::Stay
            }
        }
    }
}

/// The lifecycle of one alert as people see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// A value as messages and the dashboard show it: whole numbers without decimals, others with two.
pub fn value_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Fills a message template: `{value}`, `{threshold}`, `{subject}` and `{rule}` are replaced.
pub fn render_message(
    template: &str,
    rule: &str,
    subject: &str,
    value: f64,
    threshold: f64,
) -> String {
    template
        .replace("{value}", &value_text(value))
        .replace("{threshold}", &value_text(threshold))
        .replace("{subject}", subject)
        .replace("{rule}", rule)
}

/// What a rule watches: a stored metric of a host, service or database, or the error log's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RuleMetric {
    Stored(crate::Metric),
    Log(LogRate),
    Host(HostCheck),
}

/// What a rule may watch of a host of the fleet besides its readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostCheck {
    /// 1 while the host is offline (no contact for `--offline-after`), 0 otherwise; a host in maintenance
    /// counts as 0, so its alert resolves and no new one starts.
    HostOffline,
}

/// Rates read from the error log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogRate {
    /// Entries at level error or critical in the last minute, per service.
    LogErrorsPerMinute,
}

impl RuleMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleMetric::Stored(m) => m.as_str(),
            RuleMetric::Log(LogRate::LogErrorsPerMinute) => "log_errors_per_minute",
            RuleMetric::Host(HostCheck::HostOffline) => "host_offline",
        }
    }

    pub fn parse(s: &str) -> Option<RuleMetric> {
        if s == "log_errors_per_minute" {
            return Some(RuleMetric::Log(LogRate::LogErrorsPerMinute));
        }
        if s == "host_offline" {
            return Some(RuleMetric::Host(HostCheck::HostOffline));
        }
        s.parse::<crate::Metric>().ok().map(RuleMetric::Stored)
    }

    /// The label that names a series of this metric (`host`, `service`, `target`).
    pub fn subject_label(self) -> &'static str {
        match self {
            RuleMetric::Stored(m) => m.subject().label(),
            RuleMetric::Log(_) => "service",
            RuleMetric::Host(_) => "host",
        }
    }

    /// The dashboard panel an alert on this metric concerns (its `data-testid` suffix).
    pub fn panel(self) -> &'static str {
        use crate::Metric::*;
        match self {
            RuleMetric::Stored(Cpu | Memory | Disk | Swap | Load1 | NetRx | NetTx) => "health",
            RuleMetric::Stored(HttpP50Ms | HttpP95Ms | HttpP99Ms | HttpRequestsPerS) => "api",
            RuleMetric::Stored(DbConnections | DbTps | DbCacheHitPct) => "database",
            RuleMetric::Log(_) => "errors",
            RuleMetric::Host(_) => "health",
        }
    }
}

/// Where a rule was declared: the configuration file's rules are changed there; the dashboard's by admins on
/// the Alerts page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    #[default]
    Config,
    Dashboard,
}

/// A rule as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub name: String,
    #[serde(default)]
    pub source: RuleSource,
    pub metric: RuleMetric,
    /// The one host, service or target it watches; `None` for every series of the metric.
    pub subject: Option<String>,
    /// The one environment whose series it watches (a host's is its own, a service's or database's the
    /// hub's); `None` for every environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub condition: Condition,
    pub severity: Severity,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The message, with `{value}`, `{threshold}`, `{subject}` and `{rule}` filled in when it fires.
    pub message: String,
}

/// A rule as an admin types it on the Alerts page: every field as text, checked by the server exactly as a
/// `[[alerts]]` table of the configuration file is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDraft {
    pub name: String,
    pub metric: String,
    /// Empty: every host, service or target.
    pub subject: String,
    /// Empty: every environment.
    #[serde(default)]
    pub environment: String,
    /// `above` or `below`.
    pub comparison: String,
    pub threshold: String,
    /// Empty: the threshold itself.
    pub resolve: String,
    /// A duration such as `30s` or `2m`; empty: at once.
    pub for_: String,
    /// Empty: 1.
    pub clear_after: String,
    pub severity: String,
    /// `key=value` pairs separated by commas.
    pub labels: String,
    /// Empty: a message naming the metric, the value and the threshold.
    pub message: String,
}

/// One alert: a rule's series from the moment it went pending to the moment it resolved (or until now).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: i64,
    pub rule: String,
    /// The host, service or target of the series.
    pub subject: String,
    pub metric: RuleMetric,
    pub state: AlertState,
    pub severity: Severity,
    pub labels: std::collections::BTreeMap<String, String>,
    pub message: String,
    /// The newest value evaluated, and the worst.
    pub value: f64,
    pub peak: f64,
    pub threshold: f64,
    /// When it went pending (or fired at once).
    pub started_ms: i64,
    pub fired_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_ms: Option<i64>,
    /// Notifications for it are held back until then (set by an operator).
    pub silenced_until_ms: Option<i64>,
    pub silenced_by: Option<String>,
    /// Changes with every update, so an older copy never replaces a newer one.
    pub updated_ms: i64,
}

/// Which alerts the history lists; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFilter {
    pub rule: Option<String>,
    pub subject: Option<String>,
    pub state: Option<AlertState>,
    /// Alerts that started in [from_ms, to_ms).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// Alerts kept in the live state: every open one, and the newest resolved ones up to this many in all.
pub const RECENT_ALERTS: usize = 100;

/// Upserts `alert` into `list` (newest first by id); an older copy never replaces a newer one. Open alerts
/// are never dropped for room; resolved ones are, oldest first.
pub fn merge_alert_instance(list: &mut Vec<Alert>, alert: Alert) {
    match list.iter_mut().find(|a| a.id == alert.id) {
        Some(existing) => {
            if existing.updated_ms <= alert.updated_ms {
                *existing = alert;
            }
        }
        None => {
            let at = list
                .iter()
                .position(|a| a.id < alert.id)
                .unwrap_or(list.len());
            list.insert(at, alert);
        }
    }
    while list.len() > RECENT_ALERTS {
        match list.iter().rposition(|a| a.state == AlertState::Resolved) {
            Some(oldest_resolved) => {
                list.remove(oldest_resolved);
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn above(threshold: f64, resolve: Option<f64>, for_ms: i64, clear_after: u32) -> Condition {
        Condition {
            comparison: Comparison::Above,
            threshold,
            resolve,
            for_ms,
            clear_after,
        }
    }

    /// The transitions a series of (t, value) readings makes.
    fn run(condition: &Condition, readings: &[(i64, f64)]) -> Vec<Transition> {
        let mut t = Tracker::default();
        readings
            .iter()
            .map(|(at, v)| t.step(condition, *at, *v))
            .collect()
    }

    use Transition::*;

    #[test]
    fn the_threshold_itself_is_not_a_breach() {
        let c = above(90.0, None, 0, 1);
        assert_eq!(
            run(&c, &[(0, 90.0), (1, 90.01), (2, 90.0)]),
            [Stay, Fired, Resolved]
        );
        let below = Condition {
            comparison: Comparison::Below,
            ..above(10.0, None, 0, 1)
        };
        assert_eq!(
            run(&below, &[(0, 10.0), (1, 9.0), (2, 10.0)]),
            [Stay, Fired, Resolved]
        );
    }

    #[test]
    fn for_holds_an_alert_pending_and_a_dip_clears_it() {
        let c = above(80.0, None, 3_000, 1);
        assert_eq!(
            run(
                &c,
                &[
                    (0, 85.0),
                    (1_000, 90.0),
                    (2_000, 70.0),
                    (3_000, 85.0),
                    (5_999, 85.0),
                    (6_000, 85.0)
                ]
            ),
            [Pending, Stay, Cleared, Pending, Stay, Fired]
        );
    }

    #[test]
    fn a_value_hovering_at_the_threshold_does_not_flap() {
        // Fires above 80, resolves only below 70, and only after 3 clean readings in a row.
        let c = above(80.0, Some(70.0), 0, 3);
        let hovering = [
            (0, 81.0),
            (1, 79.0),
            (2, 81.0),
            (3, 79.5),
            (4, 80.5),
            (5, 69.0),
            (6, 69.0),
            (7, 75.0),
            (8, 69.0),
            (9, 68.0),
            (10, 60.0),
        ];
        let transitions = run(&c, &hovering);
        assert_eq!(
            transitions.iter().filter(|t| **t == Fired).count(),
            1,
            "{transitions:?}"
        );
        // 75 (in the band) reset the clean count: it resolves on the third clean reading after it.
        assert_eq!(transitions[10], Resolved);
        assert!(transitions[..10].iter().all(|t| *t != Resolved));
    }

    #[test]
    fn the_peak_is_the_worst_value_while_it_lasted() {
        let c = above(80.0, None, 0, 1);
        let mut t = Tracker::default();
        for (at, v) in [(0, 85.0), (1, 97.5), (2, 90.0)] {
            t.step(&c, at, v);
        }
        assert_eq!(t.peak, Some(97.5));
    }

    #[test]
    fn conditions_are_checked() {
        assert!(
            above(80.0, Some(90.0), 0, 1)
                .check()
                .unwrap_err()
                .contains("good side")
        );
        assert!(
            above(80.0, None, 0, 0)
                .check()
                .unwrap_err()
                .contains("clear_after")
        );
        assert!(above(f64::NAN, None, 0, 1).check().is_err());
        assert!(above(80.0, Some(70.0), 1000, 2).check().is_ok());
    }

    #[test]
    fn messages_carry_the_value() {
        assert_eq!(
            render_message(
                "{subject}: CPU {value}% > {threshold}%",
                "cpu",
                "web-1",
                93.456,
                90.0
            ),
            "web-1: CPU 93.46% > 90%"
        );
    }
}
