//! An admin removes a host: its agent's token is revoked, so its next push is refused, and the host leaves
//! the fleet.

use super::{ActionError, Services, UserAction};
use shared::{Action, Caller, EnrolledHost};
use std::collections::BTreeMap;

pub struct RevokeHost {
    pub id: i64,
}

impl UserAction for RevokeHost {
    type Done = EnrolledHost;
    const NEEDS: Action = Action::ManageTokens;
    const LABEL: &'static str = "host.revoke";

    async fn target(&self, services: &Services) -> String {
        services
            .fleet
            .enrolled()
            .await
            .ok()
            .and_then(|hosts| hosts.into_iter().find(|h| h.id == self.id))
            .map_or_else(|| format!("host {}", self.id), |h| h.name)
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    async fn apply(self, services: &Services, _: &Caller) -> Result<EnrolledHost, ActionError> {
        services
            .fleet
            .revoke(self.id)
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?
            .ok_or_else(|| ActionError::NotFound(format!("there is no host with id {}", self.id)))
    }

    fn detail(h: &EnrolledHost) -> String {
        format!(
            "host {} ({}) removed; its agent token is revoked",
            h.name, h.environment
        )
    }
}
