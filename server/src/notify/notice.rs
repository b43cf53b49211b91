//! What a notification says about one alert: its labels (which identify it), annotations, status and times,
//! built from a rule's alert or a security alert.

use sha2::{Digest, Sha256};
use shared::{Alert, AlertState, SecurityAlert, Severity, value_text};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeStatus {
    Firing,
    Resolved,
}

impl NoticeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeStatus::Firing => "firing",
            NoticeStatus::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Of the labels: the same series has the same fingerprint across episodes and restarts.
    pub fingerprint: String,
    pub status: NoticeStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub severity: Severity,
    pub starts_ms: i64,
    pub ends_ms: Option<i64>,
    pub value: Option<f64>,
    pub silenced_until_ms: Option<i64>,
    pub acknowledged: bool,
    /// Told once and never resolved: a security alert is an event, not a state.
    pub one_off: bool,
    /// Where on the dashboard it is shown (joined to the external URL).
    pub path: String,
}

impl Notice {
    pub fn silenced_at(&self, now_ms: i64) -> bool {
        self.silenced_until_ms.is_some_and(|until| until > now_ms)
    }

    /// A rule's alert; `None` while it is only pending (nothing is told until it fires).
    pub fn of_alert(alert: &Alert) -> Option<Notice> {
        let status = match alert.state {
            AlertState::Pending => return None,
            AlertState::Firing => NoticeStatus::Firing,
            // Resolved before it ever fired: it was never told.
            AlertState::Resolved if alert.fired_ms.is_none() => return None,
            AlertState::Resolved => NoticeStatus::Resolved,
        };
        let mut labels = alert.labels.clone();
        labels.insert("alertname".into(), alert.rule.clone());
        labels.insert("severity".into(), alert.severity.as_str().into());
        labels.insert(alert.metric.subject_label().into(), alert.subject.clone());
        labels.insert("metric".into(), alert.metric.as_str().into());
        let annotations = BTreeMap::from([
            ("summary".to_string(), alert.message.clone()),
            ("threshold".to_string(), value_text(alert.threshold)),
            ("peak".to_string(), value_text(alert.peak)),
        ]);
        Some(Notice {
            fingerprint: fingerprint(&labels),
            status,
            labels,
            annotations,
            severity: alert.severity,
            starts_ms: alert.fired_ms.unwrap_or(alert.started_ms),
            ends_ms: alert.resolved_ms,
            value: Some(alert.value),
            silenced_until_ms: alert.silenced_until_ms,
            acknowledged: alert.acknowledged_by.is_some(),
            one_off: false,
            path: format!("/alerts?rule={}", urlencode(&alert.rule)),
        })
    }

    /// A security alert (a failed sign-in, a refused action), told once.
    pub fn of_security(alert: &SecurityAlert) -> Notice {
        let mut labels = BTreeMap::from([
            ("alertname".to_string(), "security".to_string()),
            ("kind".to_string(), alert.kind.as_str().to_string()),
            ("severity".to_string(), alert.severity.as_str().to_string()),
        ]);
        if let Some(user) = &alert.user {
            labels.insert("user".into(), user.clone());
        }
        if let Some(ip) = &alert.ip {
            labels.insert("ip".into(), ip.clone());
        }
        Notice {
            fingerprint: fingerprint(&labels),
            status: NoticeStatus::Firing,
            annotations: BTreeMap::from([("summary".to_string(), alert.message.clone())]),
            labels,
            severity: alert.severity,
            starts_ms: alert.t_ms,
            ends_ms: None,
            value: None,
            silenced_until_ms: None,
            acknowledged: false,
            one_off: true,
            path: "/#security".into(),
        }
    }

    /// The rule or kind it is about, and its series (for a line of text).
    pub fn title(&self) -> String {
        let name = self.labels.get("alertname").cloned().unwrap_or_default();
        let series: Vec<&str> = ["host", "service", "target", "kind", "user", "ip"]
            .iter()
            .filter_map(|l| self.labels.get(*l).map(String::as_str))
            .collect();
        if series.is_empty() {
            name
        } else {
            format!("{name} ({})", series.join(", "))
        }
    }

    pub fn summary(&self) -> &str {
        self.annotations.get("summary").map_or("", String::as_str)
    }
}

/// 16 hex digits of SHA-256 over the sorted labels, as Grafana's fingerprints look.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash = Sha256::new();
    for (k, v) in labels {
        hash.update(k.as_bytes());
        hash.update([0xff]);
        hash.update(v.as_bytes());
        hash.update([0xff]);
    }
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|t| t.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_every_label_and_nothing_else() {
        let a = BTreeMap::from([("alertname".to_string(), "cpu".to_string())]);
        let mut b = a.clone();
        b.insert("host".into(), "web-1".into());
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).len(), 16);
        // The separator keeps ("ab","c") and ("a","bc") apart.
        let x = BTreeMap::from([("ab".to_string(), "c".to_string())]);
        let y = BTreeMap::from([("a".to_string(), "bc".to_string())]);
        assert_ne!(fingerprint(&x), fingerprint(&y));
    }

    #[test]
    fn rule_names_are_encoded_in_links() {
        assert_eq!(urlencode("cpu high&x"), "cpu+high%26x");
    }
}
