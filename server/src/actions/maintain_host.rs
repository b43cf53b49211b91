//! An operator puts a host in maintenance until a time (expected offline: no alerts, shown grey), or ends
//! it.

use super::{ActionError, Services, UserAction};
use shared::{Action, Caller, FleetHost};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct MaintainHost {
    pub host: String,
    /// How long from now; `None` ends the maintenance.
    pub duration: Option<Duration>,
}

impl UserAction for MaintainHost {
    type Done = FleetHost;
    const NEEDS: Action = Action::Maintain;
    const LABEL: &'static str = "host.maintenance";

    async fn target(&self, _: &Services) -> String {
        self.host.chars().take(64).collect()
    }

    fn params(&self) -> BTreeMap<String, String> {
        let value = self.duration.map_or_else(
            || "end".to_owned(),
            |d| humantime::format_duration(d).to_string(),
        );
        BTreeMap::from([("for".to_owned(), value)])
    }

    /// The host's: an operator in staging may put a staging host in maintenance, a viewer there may not.
    fn environment(&self, services: &Services) -> Option<String> {
        services.fleet.environment_now(&self.host)
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<FleetHost, ActionError> {
        let until_ms = match self.duration {
            None => None,
            Some(d) => match i64::try_from(d.as_millis()) {
                Ok(ms) if ms <= shared::MAX_MAINTENANCE_MS => {
                    Some(crate::clock::now_millis().saturating_add(ms))
                }
                _ => {
                    return Err(ActionError::Invalid(
                        "a maintenance window lasts at most 30 days".into(),
                    ));
                }
            },
        };
        services
            .fleet
            .maintain(&self.host, until_ms, &by.name)
            .await
            .map_err(ActionError::from)
    }

    fn detail(h: &FleetHost) -> String {
        match &h.maintenance {
            Some(m) => format!("{} is in maintenance until {}", h.host, m.until_ms),
            None => format!(
                "{}'s maintenance ended; it is {}",
                h.host,
                h.presence.as_str()
            ),
        }
    }
}
