//! The alert engine's handle: acknowledgements, silences and rule changes reach the engine's task through one
//! channel, each answered once applied.

use crate::clock::now_millis;
use shared::{Alert, AlertRule};
use store::StoreError;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("there is no alert {0}")]
    NotFound(i64),
    #[error("{0}")]
    Invalid(String),
    #[error("alerts cannot be written right now: {0}")]
    Store(#[from] StoreError),
    #[error("the alert engine has stopped")]
    Stopped,
    #[error("the rule '{0}' is declared in the configuration file; change it there")]
    Declared(String),
    #[error("there is no alert rule named '{0}'")]
    NoRule(String),
}

pub(super) enum Msg {
    Acknowledge {
        id: i64,
        by: String,
        reply: oneshot::Sender<Result<Alert, AlertError>>,
    },
    Silence {
        id: i64,
        until_ms: Option<i64>,
        by: String,
        reply: oneshot::Sender<Result<Alert, AlertError>>,
    },
    PutRule {
        rule: AlertRule,
        by: String,
        reply: oneshot::Sender<Result<AlertRule, AlertError>>,
    },
    DeleteRule {
        name: String,
        reply: oneshot::Sender<Result<(), AlertError>>,
    },
}

/// The alert engine's handle: acknowledgements, silences and rule changes, each answered once the engine has
/// applied it. Cheap to clone. Readings do not come through here: the engine takes them from the outlet.
#[derive(Clone)]
pub struct Alerts {
    pub(super) tx: mpsc::Sender<Msg>,
}

impl Alerts {
    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<Alert, AlertError>>) -> Msg,
    ) -> Result<Alert, AlertError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| AlertError::Stopped)?;
        answer.await.map_err(|_| AlertError::Stopped)?
    }

    /// Marks an alert acknowledged by `by` (once: the first acknowledgement stays).
    pub async fn acknowledge(&self, id: i64, by: &str) -> Result<Alert, AlertError> {
        let by = by.to_owned();
        self.ask(|reply| Msg::Acknowledge { id, by, reply }).await
    }

    /// Adds a rule written on the Alerts page, or replaces one of that name.
    pub async fn put_rule(&self, rule: AlertRule, by: &str) -> Result<AlertRule, AlertError> {
        let (reply, answer) = oneshot::channel();
        let by = by.to_owned();
        self.tx
            .send(Msg::PutRule { rule, by, reply })
            .await
            .map_err(|_| AlertError::Stopped)?;
        answer.await.map_err(|_| AlertError::Stopped)?
    }

    /// Removes a rule written on the Alerts page; its open alerts resolve.
    pub async fn delete_rule(&self, name: &str) -> Result<(), AlertError> {
        let (reply, answer) = oneshot::channel();
        let name = name.to_owned();
        self.tx
            .send(Msg::DeleteRule { name, reply })
            .await
            .map_err(|_| AlertError::Stopped)?;
        answer.await.map_err(|_| AlertError::Stopped)?
    }

    /// Holds back an alert's notifications until `until_ms` (`None` lifts the silence).
    pub async fn silence(
        &self,
        id: i64,
        until_ms: Option<i64>,
        by: &str,
    ) -> Result<Alert, AlertError> {
        if let Some(until) = until_ms
            && until <= now_millis()
        {
            return Err(AlertError::Invalid(
                "silence until a time in the future".into(),
            ));
        }
        let by = by.to_owned();
        self.ask(|reply| Msg::Silence {
            id,
            until_ms,
            by,
            reply,
        })
        .await
    }
}
