//! An operator acknowledges a security alert; every tab shows who did.

use super::{ActionError, Services, UserAction, me};
use shared::{Action, Caller, SecurityAlert};

pub struct AcknowledgeSecurity {
    pub id: i64,
}

impl UserAction for AcknowledgeSecurity {
    type Done = SecurityAlert;
    const NEEDS: Action = Action::Acknowledge;
    const LABEL: &'static str = "security.acknowledge";

    async fn target(&self, _: &Services) -> String {
        format!("alert {}", self.id)
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<SecurityAlert, ActionError> {
        Ok(services.auth.acknowledge(&me(by), self.id).await?)
    }

    fn detail(a: &SecurityAlert) -> String {
        format!("acknowledged: {}", a.message)
    }
}
