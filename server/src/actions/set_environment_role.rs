//! An admin sets a user's role in one environment: a role of its own, no access at all, or back to the
//! account's role.

use super::{ActionError, Services, UserAction, me, user_name};
use shared::{Action, Caller, Role, User};
use std::collections::BTreeMap;

pub struct SetEnvironmentRole {
    pub id: i64,
    pub environment: String,
    /// `Some(None)`: no access; `None`: the account's role applies.
    pub role: Option<Option<Role>>,
}

/// How a role per environment is written: a role's name, `none` or `default`.
pub fn role_text(role: Option<Option<Role>>) -> String {
    match role {
        None => "default".to_owned(),
        Some(None) => "none".to_owned(),
        Some(Some(role)) => role.to_string(),
    }
}

impl UserAction for SetEnvironmentRole {
    type Done = User;
    const NEEDS: Action = Action::ManageUsers;
    const LABEL: &'static str = "user.environment_role";

    async fn target(&self, services: &Services) -> String {
        user_name(&services.auth, self.id).await
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("environment".to_owned(), self.environment.clone()),
            ("role".to_owned(), role_text(self.role)),
        ])
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<User, ActionError> {
        Ok(services
            .auth
            .set_environment_role(&me(by), self.id, &self.environment, self.role)
            .await?)
    }

    fn detail(u: &User) -> String {
        let roles: Vec<String> = u
            .environments
            .iter()
            .map(|e| format!("{} in {}", role_text(Some(e.role)), e.environment))
            .collect();
        if roles.is_empty() {
            format!("{} is {} everywhere", u.name, u.role)
        } else {
            format!("{} is {}; {}", u.name, u.role, roles.join(", "))
        }
    }
}
