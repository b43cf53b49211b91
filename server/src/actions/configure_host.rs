//! An operator sets a host's sampling interval from the hub (its agent applies it without a restart), or
//! gives the host back its agent's own `--interval`.

use super::{ActionError, Services, UserAction};
use shared::{Action, Caller, FleetHost};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct ConfigureHost {
    pub host: String,
    /// The interval to sample at; `None`: the agent's own.
    pub interval: Option<Duration>,
}

impl UserAction for ConfigureHost {
    type Done = FleetHost;
    const NEEDS: Action = Action::ConfigureHost;
    const LABEL: &'static str = "host.interval";

    async fn target(&self, _: &Services) -> String {
        self.host.chars().take(64).collect()
    }

    fn params(&self) -> BTreeMap<String, String> {
        let value = self.interval.map_or_else(
            || "agent's own".to_owned(),
            |d| humantime::format_duration(d).to_string(),
        );
        BTreeMap::from([("interval".to_owned(), value)])
    }

    /// The host's: an operator in staging may set a staging host's interval, a viewer there may not.
    fn environment(&self, services: &Services) -> Option<String> {
        services.fleet.environment_now(&self.host)
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<FleetHost, ActionError> {
        services
            .fleet
            .configure(&self.host, self.interval, &by.name)
            .await
            .map_err(ActionError::from)
    }

    fn detail(h: &FleetHost) -> String {
        match &h.interval_set {
            Some(i) => format!(
                "{} samples every {}",
                h.host,
                humantime::format_duration(Duration::from_millis(i.interval_ms))
            ),
            None => format!("{} samples at its agent's own interval", h.host),
        }
    }
}
