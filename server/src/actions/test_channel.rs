//! An admin sends a test message on a notification channel, at once; the answer says where it went.

use super::{ActionError, Services, UserAction};
use shared::{Action, Caller};

pub struct TestChannel {
    pub name: String,
}

impl UserAction for TestChannel {
    type Done = String;
    const NEEDS: Action = Action::ManageAlerts;
    const LABEL: &'static str = "channel.test";

    async fn target(&self, _: &Services) -> String {
        format!("channel {}", self.name)
    }

    async fn apply(self, services: &Services, by: &Caller) -> Result<String, ActionError> {
        Ok(services.notifier.test(&self.name, &by.name).await?)
    }

    fn detail(sent: &String) -> String {
        sent.clone()
    }
}
