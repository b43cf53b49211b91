//! An admin removes a user.

use super::{ActionError, Services, UserAction, me, user_name};
use shared::{Action, Caller};

pub struct RemoveUser {
    pub id: i64,
}

impl UserAction for RemoveUser {
    type Done = ();
    const NEEDS: Action = Action::ManageUsers;
    const LABEL: &'static str = "user.remove";

    async fn target(&self, services: &Services) -> String {
        user_name(&services.auth, self.id).await
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<(), ActionError> {
        Ok(services.auth.remove_user(&me(by), self.id).await?)
    }

    fn detail((): &()) -> String {
        "removed".to_owned()
    }
}
