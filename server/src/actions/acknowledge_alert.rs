//! An operator acknowledges a rule's alert; every tab shows who did.

use super::{ActionError, Services, UserAction};
use shared::{Action, Alert, Caller};

pub struct AcknowledgeAlert {
    pub id: i64,
}

impl UserAction for AcknowledgeAlert {
    type Done = Alert;
    const NEEDS: Action = Action::Acknowledge;
    const LABEL: &'static str = "alert.acknowledge";

    async fn target(&self, _: &Services) -> String {
        format!("alert {}", self.id)
    }

    fn environment(&self, services: &Services) -> Option<String> {
        services.auth.hub().alert_environment(self.id)
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<Alert, ActionError> {
        Ok(services.alerts.acknowledge(self.id, &by.name).await?)
    }

    fn detail(a: &Alert) -> String {
        format!("acknowledged: {}", a.message)
    }
}
