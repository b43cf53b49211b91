//! How server functions reach the server: one small port per area, provided together as context by the
//! server (`leptos_routes_with_context`). This crate never depends on the server crate, which keeps the
//! dependency arrow pointing one way (server → app); a server function names only the port it needs.

use crate::error::AppError;
use leptos::prelude::*;
use shared::{
    Access, AccountsView, Action, Alert, AlertFilter, AlertRule, ApiToken, AuditFilter, AuditPage,
    Caller, CommandRun, Deployment, EnrolledHost, Envelope, FleetHost, HistorySeries, LogCursor,
    LogFilter, LogPage, Metric, NewHost, NewToken, OutputPage, Refused, Role, RuleDraft,
    SecurityAlert, TimeRange, User,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the live view reads: the state, stored history, the error log.
pub trait LivePort: Send + Sync + 'static {
    /// The current state, with the sequence number it is as of (the whole of it: each reader is given
    /// what its access lets it see, [`shared::Snapshot::for_access`]).
    fn snapshot(&self) -> Envelope;

    /// The environment of the hub's own host, where the hub's own things belong.
    fn environment(&self) -> String;

    /// One metric's stored history, of a host, service or database target, if `access` may see it.
    fn history(
        &self,
        access: Access,
        metric: Metric,
        subject: Option<String>,
        range: TimeRange,
    ) -> BoxFuture<Result<HistorySeries, AppError>>;

    /// A page of the error log, of the environments `access` may see.
    fn logs(
        &self,
        access: Access,
        filter: LogFilter,
        before: Option<LogCursor>,
        limit: usize,
    ) -> BoxFuture<Result<LogPage, AppError>>;

    /// Services with log entries.
    fn log_services(&self) -> BoxFuture<Result<Vec<String>, AppError>>;
}

/// Refusals and security alerts.
pub trait SecurityPort: Send + Sync + 'static {
    /// Notes an attempt the permission table refused (a security alert).
    fn forbidden(&self, refused: &Refused);

    /// Marks a security alert acknowledged by `by` and tells every tab.
    fn acknowledge(&self, by: &Caller, id: i64) -> BoxFuture<Result<SecurityAlert, AppError>>;
}

/// Users and API tokens.
pub trait AccountsPort: Send + Sync + 'static {
    /// Every user and token.
    fn accounts(&self) -> BoxFuture<Result<AccountsView, AppError>>;

    fn add_user(
        &self,
        by: &Caller,
        name: String,
        role: Role,
        password: String,
    ) -> BoxFuture<Result<User, AppError>>;

    fn update_user(
        &self,
        by: &Caller,
        id: i64,
        role: Option<Role>,
        disabled: Option<bool>,
        password: Option<String>,
    ) -> BoxFuture<Result<User, AppError>>;

    /// Sets a user's role in one environment (`Some(None)`: no access), or lets the account's apply.
    fn set_environment_role(
        &self,
        by: &Caller,
        id: i64,
        environment: String,
        role: Option<Option<Role>>,
    ) -> BoxFuture<Result<User, AppError>>;

    fn remove_user(&self, by: &Caller, id: i64) -> BoxFuture<Result<(), AppError>>;

    fn create_token(
        &self,
        by: &Caller,
        name: String,
        role: Role,
    ) -> BoxFuture<Result<NewToken, AppError>>;

    fn revoke_token(&self, by: &Caller, id: i64) -> BoxFuture<Result<ApiToken, AppError>>;

    /// Every host added for an agent, removed ones too.
    fn hosts(&self) -> BoxFuture<Result<Vec<EnrolledHost>, AppError>>;

    /// Adds a host in `environment`; its agent's token is in the answer, once.
    fn add_host(
        &self,
        by: &Caller,
        name: String,
        environment: String,
    ) -> BoxFuture<Result<NewHost, AppError>>;

    /// Removes a host: its agent's token is revoked.
    fn revoke_host(&self, by: &Caller, id: i64) -> BoxFuture<Result<EnrolledHost, AppError>>;
}

/// Alert rules, their alerts and the notification channels.
pub trait AlertsPort: Send + Sync + 'static {
    /// Marks an alert acknowledged by `by` and tells every tab.
    fn acknowledge_alert(&self, by: &Caller, id: i64) -> BoxFuture<Result<Alert, AppError>>;

    /// Holds back an alert's notifications until `until_ms` (`None` lifts it).
    fn silence_alert(
        &self,
        by: &Caller,
        id: i64,
        until_ms: Option<i64>,
    ) -> BoxFuture<Result<Alert, AppError>>;

    /// Adds or replaces a rule written on the Alerts page.
    fn save_alert_rule(
        &self,
        by: &Caller,
        draft: RuleDraft,
    ) -> BoxFuture<Result<AlertRule, AppError>>;

    /// Removes a rule written on the Alerts page.
    fn delete_alert_rule(&self, by: &Caller, name: String) -> BoxFuture<Result<(), AppError>>;

    /// Sends a test notification on a channel at once; says where it went.
    fn test_channel(&self, by: &Caller, name: String) -> BoxFuture<Result<String, AppError>>;

    /// Alert history, newest first, with ids below `before`.
    /// A page of the alert history, of the environments `access` may see.
    fn alert_history(
        &self,
        access: Access,
        filter: AlertFilter,
        before: Option<i64>,
        limit: usize,
    ) -> BoxFuture<Result<Vec<Alert>, AppError>>;
}

/// Commands and deployments.
pub trait OperationsPort: Send + Sync + 'static {
    /// Starts a configured command — on the hub's own host, or on `host` by the command its agent
    /// declared; its progress follows as events. The server checks the permission table for the command,
    /// target and the host's environment (and reports a refusal).
    fn run_command(
        &self,
        by: &Caller,
        host: Option<String>,
        name: String,
        target: String,
        params: BTreeMap<String, String>,
    ) -> BoxFuture<Result<CommandRun, AppError>>;

    fn cancel_command(&self, by: &Caller, run: i64) -> BoxFuture<Result<CommandRun, AppError>>;

    /// Lines of a run's output from its log file, from line `first` on.
    fn command_output(
        &self,
        by: &Caller,
        run: i64,
        first: u64,
    ) -> BoxFuture<Result<OutputPage, AppError>>;

    /// Puts `host` in maintenance for `duration` from now (`"4h"`, `"1d"`), or ends it with `None`.
    fn maintain_host(
        &self,
        by: &Caller,
        host: String,
        duration: Option<String>,
    ) -> BoxFuture<Result<FleetHost, AppError>>;

    /// Sets `host`'s sampling interval (`"5s"`, `"1m"`), or with `None` gives it back its agent's own.
    fn configure_host(
        &self,
        by: &Caller,
        host: String,
        interval: Option<String>,
    ) -> BoxFuture<Result<FleetHost, AppError>>;

    /// The newest deployments of `service` (every service's when `None`) that `by` may see, newest first.
    fn deployments(
        &self,
        by: &Caller,
        service: Option<String>,
        limit: usize,
    ) -> BoxFuture<Result<Vec<Deployment>, AppError>>;
}

/// The audit trail.
pub trait AuditPort: Send + Sync + 'static {
    /// A page of the audit trail.
    fn audit(
        &self,
        filter: AuditFilter,
        before: Option<i64>,
        limit: usize,
    ) -> BoxFuture<Result<AuditPage, AppError>>;
}

/// Every port, as the server provides them through context.
#[derive(Clone)]
pub struct Ports {
    pub live: Arc<dyn LivePort>,
    pub security: Arc<dyn SecurityPort>,
    pub accounts: Arc<dyn AccountsPort>,
    pub alerts: Arc<dyn AlertsPort>,
    pub operations: Arc<dyn OperationsPort>,
    pub audit: Arc<dyn AuditPort>,
}

/// The ports the server provided.
pub(crate) fn ports() -> Result<Ports, AppError> {
    use_context::<Ports>()
        .ok_or_else(|| AppError::Unavailable("no backend was provided to the app".into()))
}

/// The signed-in caller, if the permission table lets them take `action`; else 403 (and the attempt is
/// reported to the server).
pub(crate) fn authorize(action: Action) -> Result<(Caller, Ports), AppError> {
    let (caller, ports) = caller()?;
    // The caller's role is the one in the hub's own environment, where every server function acts; with
    // no role there at all, nothing is allowed.
    let home = ports.live.environment();
    let refused = if !access().sees(&home) {
        Refused::outside(action, &caller.name, &home)
    } else if action.allowed(caller.role) {
        return Ok((caller, ports));
    } else {
        Refused::of(action, &caller.name, caller.role)
    };
    ports.security.forbidden(&refused);
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::FORBIDDEN);
    }
    Err(AppError::Forbidden(refused.to_string()))
}

/// What the request's reader may see and do in each environment.
pub(crate) fn access() -> Access {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Access>().cloned())
        // Unreachable in practice: every signed-in request carries its access (the middleware puts it
        // there), and server functions are not reached without signing in.
        .unwrap_or_else(|| Access {
            role: Role::Viewer,
            environments: Vec::new(),
        })
}

/// The signed-in caller (name, role, address) and the server's ports, for server functions whose permission
/// depends on more than the action (the server checks those).
pub(crate) fn caller() -> Result<(Caller, Ports), AppError> {
    let ports = ports()?;
    let caller = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>().cloned())
        .ok_or_else(|| AppError::Forbidden("sign in first".into()))?;
    Ok((caller, ports))
}

/// Sets the HTTP status an error stands for, so API clients see 400 and 409, not 500.
pub(crate) fn with_status<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(e) = &result {
        set_status(e);
    }
    result
}

/// Sets the HTTP status `e` stands for on the response being made.
pub(crate) fn set_status(e: &AppError) {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        let status = match e {
            AppError::BadRequest(_) => http::StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => http::StatusCode::CONFLICT,
            AppError::Forbidden(_) => http::StatusCode::FORBIDDEN,
            AppError::NotFound(_) => http::StatusCode::NOT_FOUND,
            _ => http::StatusCode::SERVICE_UNAVAILABLE,
        };
        response.set_status(status);
    }
}
