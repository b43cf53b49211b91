//! Alert rules as written: `[[alerts]]` tables of the configuration file and rules typed on the Alerts page,
//! each checked into a `shared::AlertRule`.

use serde::Deserialize;
use shared::{AlertRule, Comparison, Condition, RuleDraft, RuleMetric, RuleSource, Severity};
use std::collections::BTreeMap;

/// An `[[alerts]]` table of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleFile {
    pub name: String,
    pub metric: String,
    pub subject: Option<String>,
    /// Only the series of this environment (a host's own; a service's or database's is the hub's).
    pub environment: Option<String>,
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
                "unknown metric '{}'; use one of {}, log_errors_per_minute, host_offline",
                self.metric,
                shared::Metric::ALL.map(|m| m.as_str()).join(", ")
            ))
        })?;
        let offline_check = matches!(metric, RuleMetric::Host(_));
        let (comparison, threshold) = match (self.above, self.below) {
            // A host's being offline is yes or no: the rule fires while it is.
            (None, None) if offline_check => (Comparison::Above, 0.0),
            _ if offline_check => {
                return Err(context(
                    "host_offline takes no threshold: it fires while the host is offline (leave out above and below)"
                        .into(),
                ));
            }
            (Some(t), None) => (Comparison::Above, t),
            (None, Some(t)) => (Comparison::Below, t),
            _ => return Err(context("give exactly one of above = … or below = …".into())),
        };
        if let Some(environment) = self.environment.as_deref().filter(|e| !e.trim().is_empty())
            && (environment.len() > 64
                || !environment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(context(format!(
                "environment '{}' is not an environment name (letters, digits and . _ -)",
                environment.chars().take(64).collect::<String>()
            )));
        }
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
            if offline_check {
                "{subject} is offline".to_owned()
            } else {
                format!(
                    "{{subject}}: {} is {{value}} ({} {{threshold}})",
                    metric.as_str(),
                    comparison.symbol()
                )
            }
        });
        Ok(AlertRule {
            name,
            source: RuleSource::Config,
            metric,
            subject: self.subject.filter(|s| !s.trim().is_empty()),
            environment: self
                .environment
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty()),
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
    let threshold = match number("threshold", &d.threshold)? {
        Some(t) => Some(t),
        // A host_offline rule needs none: it fires while the host is offline.
        None if d.metric.trim() == "host_offline" => None,
        None => return Err("a threshold is needed".into()),
    };
    let (above, below) = match (d.comparison.trim(), threshold) {
        (_, None) => (None, None),
        ("above" | ">", t) => (t, None),
        ("below" | "<", t) => (None, t),
        (other, _) => return Err(format!("comparison must be above or below, got '{other}'")),
    };
    if d.environment.chars().count() > 64 {
        return Err("the environment is over 64 characters".into());
    }
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
        environment: text(&d.environment),
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
    fn a_host_offline_rule_needs_no_threshold_and_may_keep_to_an_environment() {
        let r = rule(
            "name = \"host-down\"\nmetric = \"host_offline\"\nenvironment = \"prod\"\nfor = \"1m\"",
        )
        .unwrap();
        assert_eq!(r.metric, RuleMetric::Host(shared::HostCheck::HostOffline));
        assert_eq!(
            (r.condition.comparison, r.condition.threshold),
            (Comparison::Above, 0.0)
        );
        assert_eq!(r.environment.as_deref(), Some("prod"));
        assert_eq!(r.message, "{subject} is offline");
        assert_eq!(r.metric.subject_label(), "host");
        let e = rule("name = \"x\"\nmetric = \"cpu\"\nabove = 1.0\nenvironment = \"pr od\"")
            .unwrap_err();
        assert!(e.contains("not an environment name"), "{e}");
        // Other metrics still need one, and host_offline takes none.
        assert!(rule("name = \"x\"\nmetric = \"cpu\"").is_err());
        let e = rule("name = \"x\"\nmetric = \"host_offline\"\nbelow = 1.0").unwrap_err();
        assert!(e.contains("takes no threshold"), "{e}");
    }

    #[test]
    fn a_rule_typed_on_the_page_is_checked_like_the_files() {
        let draft = RuleDraft {
            name: " disk-full ".into(),
            metric: "disk".into(),
            subject: "".into(),
            environment: "".into(),
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
