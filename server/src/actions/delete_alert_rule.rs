//! An admin removes a rule written on the Alerts page (rules from the configuration file stay).

use super::{ActionError, Services, UserAction};
use shared::{Action, Caller};

pub struct DeleteAlertRule {
    pub name: String,
}

impl UserAction for DeleteAlertRule {
    type Done = ();
    const NEEDS: Action = Action::ManageAlerts;
    const LABEL: &'static str = "alert_rule.delete";

    async fn target(&self, _: &Services) -> String {
        format!("rule {}", self.name)
    }

    async fn apply(self, services: &Services, _: &Caller) -> Result<(), ActionError> {
        Ok(services.alerts.delete_rule(&self.name).await?)
    }

    fn detail((): &()) -> String {
        "removed".to_owned()
    }
}
