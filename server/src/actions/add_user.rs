//! An admin adds a user.

use super::{ActionError, Services, UserAction, me};
use shared::{Action, Caller, Role, User};
use std::collections::BTreeMap;

pub struct AddUser {
    pub name: String,
    pub role: Role,
    pub password: String,
}

impl UserAction for AddUser {
    type Done = User;
    const NEEDS: Action = Action::ManageUsers;
    const LABEL: &'static str = "user.add";

    async fn target(&self, _: &Services) -> String {
        self.name.clone()
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("role".to_owned(), self.role.to_string())])
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<User, ActionError> {
        Ok(services
            .auth
            .add_user(&me(by), self.name, self.role, self.password)
            .await?)
    }

    fn detail(u: &User) -> String {
        format!("added {} ({})", u.name, u.role)
    }
}
