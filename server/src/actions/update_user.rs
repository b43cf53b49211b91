//! An admin changes a user's role, disables or enables them, or sets a new password.

use super::{ActionError, Services, UserAction, me, user_name};
use shared::{Action, Caller, Role, User};
use std::collections::BTreeMap;

pub struct UpdateUser {
    pub id: i64,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

impl UserAction for UpdateUser {
    type Done = User;
    const NEEDS: Action = Action::ManageUsers;
    const LABEL: &'static str = "user.update";

    async fn target(&self, services: &Services) -> String {
        user_name(&services.auth, self.id).await
    }

    /// What changed, never the password itself.
    fn params(&self) -> BTreeMap<String, String> {
        let mut params = BTreeMap::new();
        if let Some(role) = self.role {
            params.insert("role".to_owned(), role.to_string());
        }
        if let Some(disabled) = self.disabled {
            params.insert("disabled".to_owned(), disabled.to_string());
        }
        if self.password.is_some() {
            params.insert("password".to_owned(), "changed".to_owned());
        }
        params
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<User, ActionError> {
        Ok(services
            .auth
            .update_user(&me(by), self.id, self.role, self.disabled, self.password)
            .await?)
    }

    fn detail(u: &User) -> String {
        format!(
            "{} is {}{}",
            u.name,
            u.role,
            if u.disabled { ", disabled" } else { "" }
        )
    }
}
