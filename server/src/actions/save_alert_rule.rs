//! An admin adds or replaces a rule on the Alerts page.

use super::{ActionError, Services, UserAction};
use crate::alerts::rule_from_draft;
use shared::{Action, AlertRule, Caller, RuleDraft};
use std::collections::BTreeMap;

pub struct SaveAlertRule {
    pub draft: RuleDraft,
}

impl UserAction for SaveAlertRule {
    type Done = AlertRule;
    const NEEDS: Action = Action::ManageAlerts;
    const LABEL: &'static str = "alert_rule.save";

    async fn target(&self, _: &Services) -> String {
        format!("rule {}", self.draft.name.trim())
    }

    /// The fields as typed, the empty ones left out.
    fn params(&self) -> BTreeMap<String, String> {
        let d = &self.draft;
        [
            ("metric", &d.metric),
            ("subject", &d.subject),
            ("comparison", &d.comparison),
            ("threshold", &d.threshold),
            ("resolve", &d.resolve),
            ("for", &d.for_),
            ("clear_after", &d.clear_after),
            ("severity", &d.severity),
            ("labels", &d.labels),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<AlertRule, ActionError> {
        let rule = rule_from_draft(self.draft).map_err(ActionError::Invalid)?;
        Ok(services.alerts.put_rule(rule, &by.name).await?)
    }

    fn detail(r: &AlertRule) -> String {
        format!(
            "{} {} {}",
            r.metric.as_str(),
            r.condition.comparison.symbol(),
            r.condition.threshold
        )
    }
}
