//! An operator holds back an alert's notifications until a time (or lifts the silence).

use super::{ActionError, Services, UserAction};
use shared::{Action, Alert, Caller};
use std::collections::BTreeMap;

pub struct SilenceAlert {
    pub id: i64,
    /// `None` lifts the silence.
    pub until_ms: Option<i64>,
}

impl UserAction for SilenceAlert {
    type Done = Alert;
    const NEEDS: Action = Action::Acknowledge;
    const LABEL: &'static str = "alert.silence";

    async fn target(&self, _: &Services) -> String {
        format!("alert {}", self.id)
    }

    fn environment(&self, services: &Services) -> Option<String> {
        services.auth.hub().alert_environment(self.id)
    }

    fn params(&self) -> BTreeMap<String, String> {
        self.until_ms
            .map(|u| ("until_ms".to_owned(), u.to_string()))
            .into_iter()
            .collect()
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<Alert, ActionError> {
        Ok(services
            .alerts
            .silence(self.id, self.until_ms, &by.name)
            .await?)
    }

    fn detail(a: &Alert) -> String {
        match a.silenced_until_ms {
            Some(until) => format!("silenced until {until}"),
            None => "silence lifted".to_owned(),
        }
    }
}
