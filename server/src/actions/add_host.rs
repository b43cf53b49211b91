//! An admin adds a host whose watchpost-agent may push (the token is shown once).

use super::{ActionError, Services, UserAction};
use crate::fleet::EnrolError;
use shared::{Action, Caller, NewHost};
use std::collections::BTreeMap;
use store::StoreError;

pub struct AddHost {
    pub name: String,
    pub environment: String,
}

impl UserAction for AddHost {
    type Done = NewHost;
    const NEEDS: Action = Action::ManageTokens;
    const LABEL: &'static str = "host.add";

    async fn target(&self, _: &Services) -> String {
        self.name.clone()
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("environment".to_owned(), self.environment.clone())])
    }

    async fn apply(self, services: &Services, _: &Caller) -> Result<NewHost, ActionError> {
        services
            .fleet
            .add(self.name.trim(), self.environment.trim())
            .await
            .map_err(|e| match e {
                EnrolError::Invalid(m) => ActionError::Invalid(m),
                EnrolError::Store(StoreError::Exists(what)) => {
                    ActionError::Conflict(format!("{what} already exists"))
                }
                other => ActionError::Unavailable(other.to_string()),
            })
    }

    fn detail(h: &NewHost) -> String {
        format!(
            "host {} added in {} (id {})",
            h.host.name, h.host.environment, h.host.id
        )
    }
}
