//! The web app's view of the server: the `Backend` its server functions call, mapping each domain answer to
//! the app's typed error (the server functions' edge, as the routes are the JSON API's).

use crate::alerts::Alerts;
use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::clock::now_millis;
use crate::commands::{CommandError, Commands};
use crate::deploy::DeployBook;
use crate::history::{History, HistoryError};
use crate::hub::Hub;
use crate::logs::LogBook;
use crate::notify::Notifier;
use app::api::{Backend, BoxFuture};
use app::error::AppError;
use shared::{
    AccountsView, Action, Alert, AlertFilter, AlertRule, ApiToken, AuditFilter, AuditPage, Caller,
    CommandRun, Deployment, Envelope, HistorySeries, LogCursor, LogFilter, LogPage, Me, Metric,
    NewToken, OutputPage, Role, RuleDraft, SecurityAlert, TimeRange, User,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use store::StoreError;

/// The app's view of the server.
pub struct ServerBackend {
    pub hub: Arc<Hub>,
    pub history: History,
    pub logs: LogBook,
    pub auth: Auth,
    pub audit: AuditLog,
    pub commands: Commands,
    pub deploys: DeployBook,
    pub alerts: Alerts,
    pub notifier: Notifier,
    /// Alert history, for the Alerts page.
    pub alert_history: Arc<dyn store::AlertHistory>,
}

impl From<crate::auth::admin::AdminError> for AppError {
    fn from(e: crate::auth::admin::AdminError) -> Self {
        use crate::auth::admin::AdminError;
        match e {
            AdminError::Invalid(m) => AppError::BadRequest(m),
            AdminError::NotFound(..) => AppError::BadRequest(e.to_string()),
            AdminError::Conflict(m) => AppError::Conflict(m),
            AdminError::Store(_) | AdminError::Secret(_) => AppError::Unavailable(e.to_string()),
        }
    }
}

fn unavailable(e: StoreError) -> AppError {
    AppError::Storage(e.to_string())
}

impl Backend for ServerBackend {
    fn snapshot(&self) -> Envelope {
        self.hub.snapshot()
    }

    fn history(
        &self,
        metric: Metric,
        subject: Option<String>,
        range: TimeRange,
    ) -> BoxFuture<Result<HistorySeries, AppError>> {
        let history = self.history.clone();
        Box::pin(async move {
            history
                .query(metric, subject.as_deref(), range, now_millis())
                .await
                .map_err(|e| match e {
                    HistoryError::Range(_)
                    | HistoryError::BadSubject(..)
                    | HistoryError::NoSubject(..) => AppError::BadRequest(e.to_string()),
                    HistoryError::Store(e) => unavailable(e),
                })
        })
    }

    fn logs(
        &self,
        filter: LogFilter,
        before: Option<LogCursor>,
        limit: usize,
    ) -> BoxFuture<Result<LogPage, AppError>> {
        let logs = self.logs.clone();
        Box::pin(async move { logs.page(&filter, before, limit).await.map_err(unavailable) })
    }

    fn log_services(&self) -> BoxFuture<Result<Vec<String>, AppError>> {
        let logs = self.logs.clone();
        Box::pin(async move { logs.services().await.map_err(unavailable) })
    }

    fn forbidden(&self, who: &Caller, action: Action) {
        self.auth.forbidden(&me(who), action);
    }

    fn accounts(&self) -> BoxFuture<Result<AccountsView, AppError>> {
        let auth = self.auth.clone();
        Box::pin(async move { Ok(auth.accounts_view().await?) })
    }

    fn add_user(
        &self,
        by: &Caller,
        name: String,
        role: Role,
        password: String,
    ) -> BoxFuture<Result<User, AppError>> {
        let (auth, audit, by) = (self.auth.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            let params = BTreeMap::from([("role".to_owned(), role.to_string())]);
            let done = audit
                .around(
                    &by,
                    ("user.add", &name.clone()),
                    params,
                    auth.add_user(&me(&by), name, role, password),
                    |u| format!("added {} ({})", u.name, u.role),
                )
                .await;
            Ok(done?)
        })
    }

    fn update_user(
        &self,
        by: &Caller,
        id: i64,
        role: Option<Role>,
        disabled: Option<bool>,
        password: Option<String>,
    ) -> BoxFuture<Result<User, AppError>> {
        let (auth, audit, by) = (self.auth.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            let target = user_name(&auth, id).await;
            // What changed, never the password itself.
            let mut params = BTreeMap::new();
            if let Some(role) = role {
                params.insert("role".to_owned(), role.to_string());
            }
            if let Some(disabled) = disabled {
                params.insert("disabled".to_owned(), disabled.to_string());
            }
            if password.is_some() {
                params.insert("password".to_owned(), "changed".to_owned());
            }
            let done = audit
                .around(
                    &by,
                    ("user.update", &target),
                    params,
                    auth.update_user(&me(&by), id, role, disabled, password),
                    |u| {
                        format!(
                            "{} is {}{}",
                            u.name,
                            u.role,
                            if u.disabled { ", disabled" } else { "" }
                        )
                    },
                )
                .await;
            Ok(done?)
        })
    }

    fn remove_user(&self, by: &Caller, id: i64) -> BoxFuture<Result<(), AppError>> {
        let (auth, audit, by) = (self.auth.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            let target = user_name(&auth, id).await;
            let done = audit
                .around(
                    &by,
                    ("user.remove", &target),
                    BTreeMap::new(),
                    auth.remove_user(&me(&by), id),
                    |()| "removed".to_owned(),
                )
                .await;
            Ok(done?)
        })
    }

    fn create_token(
        &self,
        by: &Caller,
        name: String,
        role: Role,
    ) -> BoxFuture<Result<NewToken, AppError>> {
        let (auth, audit, by) = (self.auth.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            let params = BTreeMap::from([("role".to_owned(), role.to_string())]);
            let done = audit
                .around(
                    &by,
                    ("token.create", &name.clone()),
                    params,
                    auth.create_token(&me(&by), name, role),
                    |t| format!("token {} created (id {})", t.token.name, t.token.id),
                )
                .await;
            Ok(done?)
        })
    }

    fn revoke_token(&self, by: &Caller, id: i64) -> BoxFuture<Result<ApiToken, AppError>> {
        let (auth, audit, by) = (self.auth.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            let target = match auth.accounts_view().await {
                Ok(view) => view
                    .tokens
                    .iter()
                    .find(|t| t.id == id)
                    .map_or_else(|| format!("token {id}"), |t| t.name.clone()),
                Err(_) => format!("token {id}"),
            };
            let done = audit
                .around(
                    &by,
                    ("token.revoke", &target),
                    BTreeMap::new(),
                    auth.revoke_token(&me(&by), id),
                    |t| format!("token {} revoked", t.name),
                )
                .await;
            Ok(done?)
        })
    }

    fn acknowledge(&self, by: &Caller, id: i64) -> BoxFuture<Result<SecurityAlert, AppError>> {
        let (auth, audit, by) = (self.auth.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            let done = audit
                .around(
                    &by,
                    ("security.acknowledge", &format!("alert {id}")),
                    BTreeMap::new(),
                    auth.acknowledge(&me(&by), id),
                    |a| format!("acknowledged: {}", a.message),
                )
                .await;
            Ok(done?)
        })
    }

    fn run_command(
        &self,
        by: &Caller,
        name: String,
        target: String,
        params: BTreeMap<String, String>,
    ) -> BoxFuture<Result<CommandRun, AppError>> {
        let (commands, auth, by) = (self.commands.clone(), self.auth.clone(), by.clone());
        Box::pin(async move {
            commands
                .run(&by, &name, &target, params)
                .await
                .map_err(|e| command_error(&auth, &by, e))
        })
    }

    fn cancel_command(&self, by: &Caller, run: i64) -> BoxFuture<Result<CommandRun, AppError>> {
        let (commands, auth, by) = (self.commands.clone(), self.auth.clone(), by.clone());
        Box::pin(async move {
            commands
                .cancel(&by, run)
                .await
                .map_err(|e| command_error(&auth, &by, e))
        })
    }

    fn command_output(
        &self,
        by: &Caller,
        run: i64,
        first: u64,
    ) -> BoxFuture<Result<OutputPage, AppError>> {
        let (commands, auth, by) = (self.commands.clone(), self.auth.clone(), by.clone());
        Box::pin(async move {
            commands
                .output(&by, run, first, crate::commands::output::MAX_PAGE_LINES)
                .await
                .map_err(|e| command_error(&auth, &by, e))
        })
    }

    fn acknowledge_alert(&self, by: &Caller, id: i64) -> BoxFuture<Result<Alert, AppError>> {
        let (alerts, audit, by) = (self.alerts.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            let done = audit
                .around(
                    &by,
                    ("alert.acknowledge", &format!("alert {id}")),
                    BTreeMap::new(),
                    alerts.acknowledge(id, &by.name),
                    |a| format!("acknowledged: {}", a.message),
                )
                .await;
            done.map_err(alert_error)
        })
    }

    fn silence_alert(
        &self,
        by: &Caller,
        id: i64,
        until_ms: Option<i64>,
    ) -> BoxFuture<Result<Alert, AppError>> {
        let (alerts, audit, by) = (self.alerts.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            let params: BTreeMap<String, String> = until_ms
                .map(|u| ("until_ms".to_owned(), u.to_string()))
                .into_iter()
                .collect();
            audit
                .around(
                    &by,
                    ("alert.silence", &format!("alert {id}")),
                    params,
                    alerts.silence(id, until_ms, &by.name),
                    |a| match a.silenced_until_ms {
                        Some(until) => format!("silenced until {until}"),
                        None => "silence lifted".to_owned(),
                    },
                )
                .await
                .map_err(alert_error)
        })
    }

    fn save_alert_rule(
        &self,
        by: &Caller,
        draft: RuleDraft,
    ) -> BoxFuture<Result<AlertRule, AppError>> {
        let (alerts, audit, by) = (self.alerts.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            let name = draft.name.trim().to_owned();
            let params: BTreeMap<String, String> = [
                ("metric", &draft.metric),
                ("subject", &draft.subject),
                ("comparison", &draft.comparison),
                ("threshold", &draft.threshold),
                ("resolve", &draft.resolve),
                ("for", &draft.for_),
                ("clear_after", &draft.clear_after),
                ("severity", &draft.severity),
                ("labels", &draft.labels),
            ]
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
            audit
                .around(
                    &by,
                    ("alert_rule.save", &format!("rule {name}")),
                    params,
                    async {
                        let rule = crate::alerts::rule_from_draft(draft)
                            .map_err(crate::alerts::AlertError::Invalid)?;
                        alerts.put_rule(rule, &by.name).await
                    },
                    |r| {
                        format!(
                            "{} {} {}",
                            r.metric.as_str(),
                            r.condition.comparison.symbol(),
                            r.condition.threshold
                        )
                    },
                )
                .await
                .map_err(alert_error)
        })
    }

    fn delete_alert_rule(&self, by: &Caller, name: String) -> BoxFuture<Result<(), AppError>> {
        let (alerts, audit, by) = (self.alerts.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            audit
                .around(
                    &by,
                    ("alert_rule.delete", &format!("rule {name}")),
                    BTreeMap::new(),
                    alerts.delete_rule(&name),
                    |()| "removed".to_owned(),
                )
                .await
                .map_err(alert_error)
        })
    }

    fn test_channel(&self, by: &Caller, name: String) -> BoxFuture<Result<String, AppError>> {
        let (notifier, audit, by) = (self.notifier.clone(), self.audit.clone(), by.clone());
        Box::pin(async move {
            let done: Result<String, TestError> = audit
                .around(
                    &by,
                    ("channel.test", &format!("channel {name}")),
                    BTreeMap::new(),
                    async {
                        notifier
                            .test(&name, &by.name)
                            .await
                            .map_err(TestError::Notify)
                    },
                    Clone::clone,
                )
                .await;
            done.map_err(|e| match e {
                TestError::Notify(crate::notify::NotifyError::NoChannel(_)) => {
                    AppError::NotFound(e.to_string())
                }
                TestError::Notify(crate::notify::NotifyError::Failed(_)) => {
                    AppError::Unavailable(e.to_string())
                }
                TestError::Store(_) => AppError::Unavailable(e.to_string()),
            })
        })
    }

    fn alert_history(
        &self,
        filter: AlertFilter,
        before: Option<i64>,
        limit: usize,
    ) -> BoxFuture<Result<Vec<Alert>, AppError>> {
        let store = self.alert_history.clone();
        Box::pin(async move {
            store
                .alerts(&filter, before, limit)
                .await
                .map_err(unavailable)
        })
    }

    fn deployments(
        &self,
        service: Option<String>,
        limit: usize,
    ) -> BoxFuture<Result<Vec<Deployment>, AppError>> {
        let deploys = self.deploys.clone();
        Box::pin(async move {
            deploys
                .history(service.as_deref(), limit)
                .await
                .map_err(unavailable)
        })
    }

    fn audit(
        &self,
        filter: AuditFilter,
        before: Option<i64>,
        limit: usize,
    ) -> BoxFuture<Result<AuditPage, AppError>> {
        let audit = self.audit.clone();
        Box::pin(async move {
            audit
                .store()
                .audit(&filter, before, limit)
                .await
                .map_err(unavailable)
        })
    }
}

/// A test notification's failure, or the audit trail's.
#[derive(Debug, thiserror::Error)]
enum TestError {
    #[error(transparent)]
    Notify(crate::notify::NotifyError),
    #[error("the audit trail cannot be written: {0}")]
    Store(#[from] StoreError),
}

fn alert_error(e: crate::alerts::AlertError) -> AppError {
    use crate::alerts::AlertError;
    match e {
        AlertError::NotFound(_) | AlertError::NoRule(_) => AppError::NotFound(e.to_string()),
        AlertError::Invalid(_) => AppError::BadRequest(e.to_string()),
        AlertError::Declared(_) => AppError::Conflict(e.to_string()),
        AlertError::Store(_) | AlertError::Stopped => AppError::Unavailable(e.to_string()),
    }
}

/// The name a caller is known by to the parts that take a [`Me`].
fn me(caller: &Caller) -> Me {
    Me {
        name: caller.name.clone(),
        role: caller.role,
    }
}

/// A user's name for the audit trail (the id when it cannot be read).
async fn user_name(auth: &Auth, id: i64) -> String {
    match auth.accounts_view().await {
        Ok(view) => view
            .users
            .iter()
            .find(|u| u.id == id)
            .map_or_else(|| format!("user {id}"), |u| u.name.clone()),
        Err(_) => format!("user {id}"),
    }
}

/// A command refusal as the app reports it; a forbidden attempt also raises a security alert.
fn command_error(auth: &Auth, by: &Caller, e: CommandError) -> AppError {
    match e {
        CommandError::Forbidden { ref what, .. } => {
            let (auth, who, what) = (auth.clone(), me(by), what.clone());
            tokio::spawn(async move { auth.forbidden_attempt(&who, &what).await });
            AppError::Forbidden(e.to_string())
        }
        CommandError::UnknownCommand(_) | CommandError::NoRun(_) => {
            AppError::NotFound(e.to_string())
        }
        CommandError::Param(_) => AppError::BadRequest(e.to_string()),
        CommandError::Busy { .. } | CommandError::Ended(_) => AppError::Conflict(e.to_string()),
        CommandError::Store(_) | CommandError::Output(_) | CommandError::Internal(_) => {
            AppError::Unavailable(e.to_string())
        }
    }
}
