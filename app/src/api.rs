//! Server functions, and the small interface through which they reach the server's internals.
//!
//! The server provides a [`Backend`] as context; this crate never depends on the server crate, which keeps
//! the dependency arrow pointing one way (server → app).

use crate::error::AppError;
use leptos::prelude::*;
use shared::{Envelope, HistorySeries, LogCursor, LogFilter, LogPage, Metric, TimeRange};

#[cfg(feature = "ssr")]
pub use ssr::{Backend, BackendHandle, BoxFuture};

/// The whole dashboard state as of the newest event: what the server renders into the first HTML.
#[server(prefix = "/api", endpoint = "snapshot")]
pub async fn get_snapshot() -> Result<Envelope, AppError> {
    let backend = use_context::<BackendHandle>()
        .ok_or_else(|| AppError::Unavailable("no backend was provided to the app".into()))?;
    // What the reader's role may see, as the stream would send it.
    let role = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<shared::Me>().map(|m| m.role))
        .unwrap_or_default();
    let mut env = backend.0.snapshot();
    if let shared::Event::Snapshot(snapshot) = env.event {
        env.event = shared::Event::Snapshot(snapshot.for_role(role));
    }
    Ok(env)
}

/// Stored history of `metrics` over `range` for `subject` — the host, service or database target the
/// metrics are of (this server's own host when `None`) — one series per distinct metric in `Metric` order,
/// each at most about a thousand points. The metrics must all be of the same kind of subject.
#[server(prefix = "/api", endpoint = "get_history", input = server_fn::codec::Json)]
pub async fn get_history(
    metrics: Vec<Metric>,
    range: TimeRange,
    subject: Option<String>,
) -> Result<Vec<HistorySeries>, AppError> {
    let backend = use_context::<BackendHandle>()
        .ok_or_else(|| AppError::Unavailable("no backend was provided to the app".into()))?;
    let bad_request = |e: AppError| {
        if let (AppError::BadRequest(_), Some(response)) =
            (&e, use_context::<leptos_axum::ResponseOptions>())
        {
            response.set_status(http::StatusCode::BAD_REQUEST);
        }
        e
    };
    let mut metrics = metrics;
    metrics.sort();
    metrics.dedup();
    if let Some(first) = metrics.first()
        && let Some(other) = metrics.iter().find(|m| m.subject() != first.subject())
    {
        return Err(bad_request(AppError::BadRequest(format!(
            "{first} is a metric of a {}, {other} of a {}; ask for them separately",
            first.subject().label(),
            other.subject().label()
        ))));
    }
    let mut series = Vec::with_capacity(metrics.len());
    for metric in metrics {
        series.push(
            backend
                .0
                .history(metric, subject.clone(), range)
                .await
                .map_err(bad_request)?,
        );
    }
    Ok(series)
}

/// A page of the error log, newest first, strictly older than `before` when given.
#[server(prefix = "/api", endpoint = "get_logs", input = server_fn::codec::Json)]
pub async fn get_logs(
    filter: LogFilter,
    before: Option<LogCursor>,
    limit: u32,
) -> Result<LogPage, AppError> {
    let backend = use_context::<BackendHandle>()
        .ok_or_else(|| AppError::Unavailable("no backend was provided to the app".into()))?;
    backend.0.logs(filter, before, limit as usize).await
}

/// Every service with log entries, for the service filter.
#[server(prefix = "/api", endpoint = "get_log_services")]
pub async fn get_log_services() -> Result<Vec<String>, AppError> {
    let backend = use_context::<BackendHandle>()
        .ok_or_else(|| AppError::Unavailable("no backend was provided to the app".into()))?;
    backend.0.log_services().await
}

#[cfg(feature = "ssr")]
mod ssr {
    use crate::error::AppError;
    use shared::{
        AccountsView, Action, Alert, AlertFilter, AlertRule, ApiToken, AuditFilter, AuditPage,
        Caller, CommandRun, Deployment, Envelope, HistorySeries, LogCursor, LogFilter, LogPage,
        Metric, NewToken, OutputPage, Role, RuleDraft, SecurityAlert, TimeRange, User,
    };
    use std::collections::BTreeMap;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

    /// What the app needs from the server.
    pub trait Backend: Send + Sync + 'static {
        /// The current state, with the sequence number it is as of.
        fn snapshot(&self) -> Envelope;

        /// One metric's stored history, of a host, service or database target.
        fn history(
            &self,
            metric: Metric,
            subject: Option<String>,
            range: TimeRange,
        ) -> BoxFuture<Result<HistorySeries, AppError>>;

        /// A page of the error log.
        fn logs(
            &self,
            filter: LogFilter,
            before: Option<LogCursor>,
            limit: usize,
        ) -> BoxFuture<Result<LogPage, AppError>>;

        /// Services with log entries.
        fn log_services(&self) -> BoxFuture<Result<Vec<String>, AppError>>;

        /// Notes an attempt the permission table refused.
        fn forbidden(&self, who: &Caller, action: Action);

        /// Every user and token (the caller has checked the permission).
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

        fn remove_user(&self, by: &Caller, id: i64) -> BoxFuture<Result<(), AppError>>;

        fn create_token(
            &self,
            by: &Caller,
            name: String,
            role: Role,
        ) -> BoxFuture<Result<NewToken, AppError>>;

        fn revoke_token(&self, by: &Caller, id: i64) -> BoxFuture<Result<ApiToken, AppError>>;

        /// Marks a security alert acknowledged by `by` and tells every tab.
        fn acknowledge(&self, by: &Caller, id: i64) -> BoxFuture<Result<SecurityAlert, AppError>>;

        /// Marks an alert acknowledged by `by` and tells every tab.
        fn acknowledge_alert(&self, by: &Caller, id: i64) -> BoxFuture<Result<Alert, AppError>>;

        /// Holds back an alert's notifications until `until_ms` (`None` lifts it).
        fn silence_alert(
            &self,
            by: &Caller,
            id: i64,
            until_ms: Option<i64>,
        ) -> BoxFuture<Result<Alert, AppError>>;

        /// Starts a configured command; its progress follows as events. The backend checks the
        /// permission table for the command and target (and reports a refusal).
        fn run_command(
            &self,
            by: &Caller,
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

        /// Adds or replaces a rule written on the Alerts page (the caller has checked the permission).
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
        fn alert_history(
            &self,
            filter: AlertFilter,
            before: Option<i64>,
            limit: usize,
        ) -> BoxFuture<Result<Vec<Alert>, AppError>>;

        /// The newest deployments of `service` (every service's when `None`), newest first.
        fn deployments(
            &self,
            service: Option<String>,
            limit: usize,
        ) -> BoxFuture<Result<Vec<Deployment>, AppError>>;

        /// A page of the audit trail (the caller has checked the permission).
        fn audit(
            &self,
            filter: AuditFilter,
            before: Option<i64>,
            limit: usize,
        ) -> BoxFuture<Result<AuditPage, AppError>>;
    }

    /// The backend as the server provides it through context.
    #[derive(Clone)]
    pub struct BackendHandle(pub Arc<dyn Backend>);
}
