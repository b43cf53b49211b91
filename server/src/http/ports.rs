//! The server's side of the app's ports: what server functions call. Reads go straight to the domain; what
//! a person does goes through [`actions::perform`] (permission, audit, apply). Each domain answer is mapped
//! to the app's typed error here, at the edge, as the JSON routes map theirs to statuses.

use crate::actions::{self, ActionError, Services, UserAction};
use crate::auth::Auth;
use crate::clock::now_millis;
use crate::commands::{CommandError, Commands};
use crate::deploy::DeployBook;
use crate::history::{History, HistoryError};
use crate::hub::Hub;
use crate::logs::LogBook;
use app::error::AppError;
use app::ports::{
    AccountsPort, AlertsPort, AuditPort, BoxFuture, LivePort, OperationsPort, Ports, SecurityPort,
};
use shared::{
    Access, AccountsView, Alert, AlertFilter, AlertRule, ApiToken, AuditFilter, AuditPage, Caller,
    CommandRun, Deployment, EnrolledHost, Envelope, FleetHost, HistorySeries, LogCursor, LogFilter,
    LogPage, Metric, NewHost, NewToken, OutputPage, Refused, Role, RuleDraft, SecurityAlert,
    TimeRange, User,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use store::StoreError;

/// Everything the ports reach. One value implements every port; each server function sees only the port
/// it names.
pub struct ServerPorts {
    pub hub: Arc<Hub>,
    pub history: History,
    pub logs: LogBook,
    pub commands: Commands,
    pub deploys: DeployBook,
    /// Alert history, for the Alerts page.
    pub alert_history: Arc<dyn store::AlertHistory>,
    pub services: Services,
}

impl ServerPorts {
    /// The ports as the app takes them from context.
    pub fn into_ports(self) -> Ports {
        let me = Arc::new(self);
        Ports {
            live: me.clone(),
            security: me.clone(),
            accounts: me.clone(),
            alerts: me.clone(),
            operations: me.clone(),
            audit: me,
        }
    }

    /// Performs `action` for `by`, in the background of the request's future.
    fn perform<A: UserAction + 'static>(
        &self,
        by: &Caller,
        action: A,
    ) -> BoxFuture<Result<A::Done, AppError>>
    where
        A::Done: 'static,
    {
        let (services, by) = (self.services.clone(), by.clone());
        Box::pin(async move {
            actions::perform(&services, &by, action)
                .await
                .map_err(app_error)
        })
    }
}

impl ServerPorts {
    /// Asks the command runner for `by`; a refusal is reported as a security alert.
    fn command<T, F, Fut>(&self, by: &Caller, call: F) -> BoxFuture<Result<T, AppError>>
    where
        F: FnOnce(Commands, Caller) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, CommandError>> + Send + 'static,
        T: 'static,
    {
        let (commands, auth, by) = (
            self.commands.clone(),
            self.services.auth.clone(),
            by.clone(),
        );
        Box::pin(async move {
            call(commands, by)
                .await
                .map_err(|e| command_error(&auth, e))
        })
    }
}

/// An action's failure as the app shows it.
fn app_error(e: ActionError) -> AppError {
    match e {
        ActionError::Invalid(m) => AppError::BadRequest(m),
        ActionError::Forbidden(refused) => AppError::Forbidden(refused.to_string()),
        ActionError::NotFound(m) => AppError::NotFound(m),
        ActionError::Conflict(m) => AppError::Conflict(m),
        ActionError::Unavailable(m) => AppError::Unavailable(m),
    }
}

fn unavailable(e: StoreError) -> AppError {
    AppError::Storage(e.to_string())
}

/// A command refusal as the app reports it; a forbidden attempt also raises a security alert.
fn command_error(auth: &Auth, e: CommandError) -> AppError {
    match e {
        CommandError::Forbidden(ref refused) => {
            auth.forbidden(refused);
            AppError::Forbidden(e.to_string())
        }
        CommandError::UnknownCommand(_) | CommandError::NoRun(_) => {
            AppError::NotFound(e.to_string())
        }
        CommandError::Param(_) => AppError::BadRequest(e.to_string()),
        CommandError::Busy { .. } | CommandError::Ended(_) | CommandError::NotConnected(_) => {
            AppError::Conflict(e.to_string())
        }
        CommandError::Report(_) => AppError::BadRequest(e.to_string()),
        CommandError::Store(_) | CommandError::Output(_) | CommandError::Internal(_) => {
            AppError::Unavailable(e.to_string())
        }
    }
}

impl LivePort for ServerPorts {
    fn snapshot(&self) -> Envelope {
        self.hub.snapshot()
    }

    fn environment(&self) -> String {
        self.hub.environment().to_owned()
    }

    fn history(
        &self,
        access: Access,
        metric: Metric,
        subject: Option<String>,
        range: TimeRange,
    ) -> BoxFuture<Result<HistorySeries, AppError>> {
        let history = self.history.clone();
        let fleet = self.services.fleet.clone();
        let home = self.hub.environment().to_owned();
        Box::pin(async move {
            // A host's history belongs to the host's environment, everything else to the hub's; one the
            // reader may not see is answered as if it did not exist.
            let visible = match (metric.subject(), subject.as_deref()) {
                (shared::Subject::Host, Some(host)) => fleet
                    .may_see_history(host, &access, &home)
                    .await
                    .map_err(unavailable)?,
                _ => access.sees(&home),
            };
            if !visible {
                return Err(AppError::NotFound(format!(
                    "no {} named '{}'",
                    metric.subject().label(),
                    subject.as_deref().unwrap_or("(this host)")
                )));
            }
            history
                .query(metric, subject.as_deref(), range, now_millis())
                .await
                .map_err(|e| match e {
                    HistoryError::Range(_)
                    | HistoryError::BadSubject(..)
                    | HistoryError::NoSubject(..) => AppError::BadRequest(e.to_string()),
                    HistoryError::UnknownSubject(..) => AppError::NotFound(e.to_string()),
                    HistoryError::Store(e) => unavailable(e),
                })
        })
    }

    fn logs(
        &self,
        access: Access,
        filter: LogFilter,
        before: Option<LogCursor>,
        limit: usize,
    ) -> BoxFuture<Result<LogPage, AppError>> {
        let logs = self.logs.clone();
        Box::pin(async move {
            logs.page(&filter, &access, before, limit)
                .await
                .map_err(unavailable)
        })
    }

    fn log_services(&self) -> BoxFuture<Result<Vec<String>, AppError>> {
        let logs = self.logs.clone();
        Box::pin(async move { logs.services().await.map_err(unavailable) })
    }
}

impl SecurityPort for ServerPorts {
    fn forbidden(&self, refused: &Refused) {
        self.services.auth.forbidden(refused);
    }

    fn acknowledge(&self, by: &Caller, id: i64) -> BoxFuture<Result<SecurityAlert, AppError>> {
        self.perform(by, actions::AcknowledgeSecurity { id })
    }
}

impl AccountsPort for ServerPorts {
    fn accounts(&self) -> BoxFuture<Result<AccountsView, AppError>> {
        let auth = self.services.auth.clone();
        Box::pin(async move { auth.accounts_view().await.map_err(|e| app_error(e.into())) })
    }

    fn add_user(
        &self,
        by: &Caller,
        name: String,
        role: Role,
        password: String,
    ) -> BoxFuture<Result<User, AppError>> {
        self.perform(
            by,
            actions::AddUser {
                name,
                role,
                password,
            },
        )
    }

    fn update_user(
        &self,
        by: &Caller,
        id: i64,
        role: Option<Role>,
        disabled: Option<bool>,
        password: Option<String>,
    ) -> BoxFuture<Result<User, AppError>> {
        self.perform(
            by,
            actions::UpdateUser {
                id,
                role,
                disabled,
                password,
            },
        )
    }

    fn set_environment_role(
        &self,
        by: &Caller,
        id: i64,
        environment: String,
        role: Option<Option<Role>>,
    ) -> BoxFuture<Result<User, AppError>> {
        self.perform(
            by,
            actions::SetEnvironmentRole {
                id,
                environment,
                role,
            },
        )
    }

    fn remove_user(&self, by: &Caller, id: i64) -> BoxFuture<Result<(), AppError>> {
        self.perform(by, actions::RemoveUser { id })
    }

    fn create_token(
        &self,
        by: &Caller,
        name: String,
        role: Role,
    ) -> BoxFuture<Result<NewToken, AppError>> {
        self.perform(by, actions::CreateToken { name, role })
    }

    fn revoke_token(&self, by: &Caller, id: i64) -> BoxFuture<Result<ApiToken, AppError>> {
        self.perform(by, actions::RevokeToken { id })
    }

    fn hosts(&self) -> BoxFuture<Result<Vec<EnrolledHost>, AppError>> {
        let fleet = self.services.fleet.clone();
        Box::pin(async move {
            fleet
                .enrolled()
                .await
                .map_err(|e| AppError::Unavailable(format!("hosts cannot be read: {e}")))
        })
    }

    fn add_host(
        &self,
        by: &Caller,
        name: String,
        environment: String,
    ) -> BoxFuture<Result<NewHost, AppError>> {
        self.perform(by, actions::AddHost { name, environment })
    }

    fn revoke_host(&self, by: &Caller, id: i64) -> BoxFuture<Result<EnrolledHost, AppError>> {
        self.perform(by, actions::RevokeHost { id })
    }
}

impl AlertsPort for ServerPorts {
    fn acknowledge_alert(&self, by: &Caller, id: i64) -> BoxFuture<Result<Alert, AppError>> {
        self.perform(by, actions::AcknowledgeAlert { id })
    }

    fn silence_alert(
        &self,
        by: &Caller,
        id: i64,
        until_ms: Option<i64>,
    ) -> BoxFuture<Result<Alert, AppError>> {
        self.perform(by, actions::SilenceAlert { id, until_ms })
    }

    fn save_alert_rule(
        &self,
        by: &Caller,
        draft: RuleDraft,
    ) -> BoxFuture<Result<AlertRule, AppError>> {
        self.perform(by, actions::SaveAlertRule { draft })
    }

    fn delete_alert_rule(&self, by: &Caller, name: String) -> BoxFuture<Result<(), AppError>> {
        self.perform(by, actions::DeleteAlertRule { name })
    }

    fn test_channel(&self, by: &Caller, name: String) -> BoxFuture<Result<String, AppError>> {
        self.perform(by, actions::TestChannel { name })
    }

    fn alert_history(
        &self,
        access: Access,
        filter: AlertFilter,
        before: Option<i64>,
        limit: usize,
    ) -> BoxFuture<Result<Vec<Alert>, AppError>> {
        let store = self.alert_history.clone();
        let scope = self.logs.scope_for(&access);
        Box::pin(async move {
            store
                .alerts(&filter, &scope, before, limit)
                .await
                .map_err(unavailable)
        })
    }
}

impl OperationsPort for ServerPorts {
    fn run_command(
        &self,
        by: &Caller,
        host: Option<String>,
        name: String,
        target: String,
        params: BTreeMap<String, String>,
    ) -> BoxFuture<Result<CommandRun, AppError>> {
        let fleet = &self.services.fleet;
        let place = match host.filter(|h| !h.is_empty() && *h != fleet.own().0) {
            None => None,
            // A host the caller may not see is answered as one that does not exist.
            Some(host) => match fleet.environment_now(&host) {
                Some(environment) if by.role_in(&environment).is_some() => {
                    Some(store::Place { host, environment })
                }
                _ => {
                    let message = format!(
                        "there is no host '{}'",
                        host.chars().take(64).collect::<String>()
                    );
                    return Box::pin(async move { Err(AppError::NotFound(message)) });
                }
            },
        };
        self.command(by, move |commands, by| async move {
            commands.run(&by, place, &name, &target, params).await
        })
    }

    fn cancel_command(&self, by: &Caller, run: i64) -> BoxFuture<Result<CommandRun, AppError>> {
        self.command(by, move |commands, by| async move {
            commands.cancel(&by, run).await
        })
    }

    fn command_output(
        &self,
        by: &Caller,
        run: i64,
        first: u64,
    ) -> BoxFuture<Result<OutputPage, AppError>> {
        self.command(by, move |commands, by| async move {
            commands
                .output(&by, run, first, crate::commands::output::MAX_PAGE_LINES)
                .await
        })
    }

    fn maintain_host(
        &self,
        by: &Caller,
        host: String,
        duration: Option<String>,
    ) -> BoxFuture<Result<FleetHost, AppError>> {
        let duration = match duration.as_deref().map(str::trim) {
            None | Some("" | "end") => None,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => Some(d),
                _ => {
                    let message = format!(
                        "'{}' is not a length of time: use e.g. 30m, 4h or 1d, or end",
                        text.chars().take(32).collect::<String>()
                    );
                    return Box::pin(async move { Err(AppError::BadRequest(message)) });
                }
            },
        };
        self.perform(by, actions::MaintainHost { host, duration })
    }

    fn configure_host(
        &self,
        by: &Caller,
        host: String,
        interval: Option<String>,
    ) -> BoxFuture<Result<FleetHost, AppError>> {
        let interval = match interval.as_deref().map(str::trim) {
            None | Some("" | "own") => None,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) => Some(d),
                Err(_) => {
                    let message = format!(
                        "'{}' is not an interval: use e.g. 5s, 30s or 1m, or own",
                        text.chars().take(32).collect::<String>()
                    );
                    return Box::pin(async move { Err(AppError::BadRequest(message)) });
                }
            },
        };
        self.perform(by, actions::ConfigureHost { host, interval })
    }

    fn deployments(
        &self,
        by: &Caller,
        service: Option<String>,
        limit: usize,
    ) -> BoxFuture<Result<Vec<Deployment>, AppError>> {
        let deploys = self.deploys.clone();
        let access = by
            .access
            .clone()
            .unwrap_or_else(|| Access::uniform(by.role));
        Box::pin(async move {
            deploys
                .history_for(service.as_deref(), limit, &access)
                .await
                .map_err(unavailable)
        })
    }
}

impl AuditPort for ServerPorts {
    fn audit(
        &self,
        filter: AuditFilter,
        before: Option<i64>,
        limit: usize,
    ) -> BoxFuture<Result<AuditPage, AppError>> {
        let audit = self.services.audit.clone();
        Box::pin(async move {
            audit
                .page(&filter, before, limit)
                .await
                .map_err(unavailable)
        })
    }
}
