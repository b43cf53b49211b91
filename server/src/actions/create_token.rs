//! An admin creates an API token (shown once).

use super::{ActionError, Services, UserAction, me};
use shared::{Action, Caller, NewToken, Role};
use std::collections::BTreeMap;

pub struct CreateToken {
    pub name: String,
    pub role: Role,
}

impl UserAction for CreateToken {
    type Done = NewToken;
    const NEEDS: Action = Action::ManageTokens;
    const LABEL: &'static str = "token.create";

    async fn target(&self, _: &Services) -> String {
        self.name.clone()
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("role".to_owned(), self.role.to_string())])
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<NewToken, ActionError> {
        Ok(services
            .auth
            .create_token(&me(by), self.name, self.role)
            .await?)
    }

    fn detail(t: &NewToken) -> String {
        format!("token {} created (id {})", t.token.name, t.token.id)
    }
}
