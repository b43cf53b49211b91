//! An admin revokes an API token: whatever holds it is refused from its next request on.

use super::{ActionError, Services, UserAction, me};
use shared::{Action, ApiToken, Caller};

pub struct RevokeToken {
    pub id: i64,
}

impl UserAction for RevokeToken {
    type Done = ApiToken;
    const NEEDS: Action = Action::ManageTokens;
    const LABEL: &'static str = "token.revoke";

    async fn target(&self, services: &Services) -> String {
        let id = self.id;
        match services.auth.accounts_view().await {
            Ok(view) => view
                .tokens
                .iter()
                .find(|t| t.id == id)
                .map_or_else(|| format!("token {id}"), |t| t.name.clone()),
            Err(_) => format!("token {id}"),
        }
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<ApiToken, ActionError> {
        Ok(services.auth.revoke_token(&me(by), self.id).await?)
    }

    fn detail(t: &ApiToken) -> String {
        format!("token {} revoked", t.name)
    }
}
