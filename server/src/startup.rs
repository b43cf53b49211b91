//! Builds the application on a listener and runs it until shutdown.
//!
//! Binding happens in [`Application::build`], so the caller learns the real port (tests ask for port 0) and a
//! port in use is reported before anything else starts.

use crate::audit::AuditLog;
use crate::auth::{Auth, Principal, authenticate, same_origin};
use crate::collector::{Collector, CollectorError, CollectorStatus, HostSampler};
use crate::commands::{CommandError, Commands};
use crate::config::Config;
use crate::deploy::DeployBook;
use crate::healthz::{HealthzState, healthz};
use crate::history::{History, HistoryError, history_route, spawn_recorder};
use crate::http_metrics::{HttpMetrics, metrics_route, spawn_aggregator, track};
use crate::clock::now_millis;
use crate::auth::streams::OpenStreams;
use crate::hub::Hub;
use crate::outlet::Outlet;
use crate::logs::{
    LogBook, MAX_INGEST_BYTES, OwnLogs, ingest_route, page_route, spawn_own_log_writer,
};
use crate::stream::{StreamConfig, events};
use app::api::{Backend, BackendHandle, BoxFuture};
use app::error::AppError;
use app::{App, shell};
use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use shared::{
    AccountsView, Action, Alert, AlertFilter, AlertRule, ApiToken, AuditFilter, AuditPage, Caller,
    CommandRun, Deployment, Envelope, HistorySeries, LogCursor, LogFilter, LogPage, Me, Metric,
    NewToken, OutputPage, Role, RuleDraft, SecurityAlert, TimeRange, User,
};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{OpenOptions, SqliteStore, StoreError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

/// After shutdown is requested, connections get this long to finish before the process exits anyway,
/// keeping the whole exit under two seconds.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Collector(#[from] CollectorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot prepare accounts: {0}")]
    Accounts(String),
}

/// The database file under the data directory.
pub const DATABASE_FILE: &str = "watchpost.db";

pub struct Application {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    collector: Collector,
    recorder: JoinHandle<()>,
    own_log_writer: Option<JoinHandle<()>>,
}

/// The app's view of the server.
struct ServerBackend {
    hub: Arc<Hub>,
    history: History,
    logs: LogBook,
    auth: Auth,
    audit: AuditLog,
    commands: Commands,
    deploys: DeployBook,
    alerts: crate::alerts::Alerts,
    notifier: crate::notify::Notifier,
    /// Alert history, for the Alerts page.
    alert_history: Arc<dyn store::AlertHistory>,
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

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        Self::build_with_logs(config, None).await
    }

    /// As [`Application::build`], also writing the process's own WARN/ERROR events (captured by the layer that
    /// gave `own_logs`) to the error log.
    pub async fn build_with_logs(
        config: Config,
        own_logs: Option<OwnLogs>,
    ) -> Result<Application, StartupError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartupError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: config.listen,
                source,
            })?;

        // Built in dependency order: the hub and the outlet first, then the consumers that subscribe to the
        // outlet (alert engine, history recorder), then the sources that feed it.
        let interval_ms = config.interval.as_millis() as u64;
        let hub = Arc::new(Hub::new(
            config.environment.clone(),
            interval_ms,
            config.replay_buffer,
            config.client_queue,
        ));
        let outlet = Outlet::new(hub.clone());
        let store = SqliteStore::open(
            &config.data_dir.join(DATABASE_FILE),
            &OpenOptions {
                quota_bytes: config.store_quota,
            },
        )
        .await?;
        let sampler = HostSampler::new()?;
        let store = Arc::new(store);
        let shutdown = CancellationToken::new();
        let logs = LogBook::new(store.clone(), outlet.clone());
        let notifier = crate::notify::Notifier::start(
            config.channels.clone(),
            config.notify.clone(),
            format!("http://{local_addr}"),
            outlet.clone(),
            logs.clone(),
            shutdown.clone(),
        );
        let streams = OpenStreams::new(config.max_streams_per_user);
        let auth = Auth::new(
            store.clone(),
            config.auth.clone(),
            outlet.clone(),
            streams.clone(),
            notifier.clone(),
        );
        auth.publish_recent_alerts().await;
        if let Some(code) = auth
            .begin_setup()
            .await
            .map_err(|e| StartupError::Accounts(e.to_string()))?
        {
            // INFO, not WARN: the code is a secret, and WARN events are also written to the error log.
            tracing::info!(
                "no account exists yet: open http://{local_addr}/setup?code={code} to create the admin \
                 account (the link works once; `watchpost user add` is the other way)"
            );
        }
        let audit = AuditLog::new(store.clone());
        let deploys =
            DeployBook::start(store.clone(), outlet.clone(), config.environment.clone()).await?;
        let alert_history: Arc<dyn store::AlertHistory> = store.clone();
        let alerts = crate::alerts::start(
            config.alert_rules.clone(),
            alert_history.clone(),
            &outlet,
            notifier.clone(),
            shutdown.clone(),
        )
        .await?;
        let store: Arc<dyn store::Store> = store;
        let history = History::new(store.clone(), config.retention, sampler.host().clone());
        let recorder_task = spawn_recorder(history.clone(), &outlet, shutdown.clone());
        let commands = Commands::start(
            config.commands.clone(),
            audit.clone(),
            deploys.clone(),
            outlet.clone(),
            config.data_dir.join("commands"),
            config.retention.logs,
            shutdown.clone(),
        )
        .await?;

        // Sources, last: everything they feed is listening.
        let own_log_writer =
            own_logs.map(|own| spawn_own_log_writer(logs.clone(), own, shutdown.clone()));
        crate::tail::spawn_tailers(&config.tail_logs, logs.clone(), shutdown.clone());
        crate::scrape::spawn_scrapers(
            &config.scrape,
            config.api_interval,
            outlet.clone(),
            logs.clone(),
            shutdown.clone(),
        );
        crate::db_metrics::spawn_db_readers(
            store.clone(),
            &config.postgres,
            config.api_interval,
            outlet.clone(),
            logs.clone(),
            shutdown.clone(),
        );
        let http_metrics = HttpMetrics::new();
        spawn_aggregator(
            http_metrics.clone(),
            outlet.clone(),
            config.api_interval,
            shutdown.clone(),
        );
        let status = Arc::new(CollectorStatus::default());
        let collector = Collector::spawn(sampler, outlet, config.interval, status.clone())?;

        let stream = StreamConfig {
            hub: hub.clone(),
            keepalive: config.keepalive,
            shutdown: shutdown.clone(),
            streams,
        };
        let health = HealthzState {
            hub: hub.clone(),
            collector: status,
            history: history.clone(),
            started: Instant::now(),
        };
        // Not compressed: a compressor buffers, and an event stream must reach the browser as it happens.
        let live = Router::new()
            .route(
                "/api/events",
                get(
                    move |headers: HeaderMap, principal: Option<Extension<Principal>>| {
                        events(stream.clone(), headers, principal.map(|p| p.0))
                    },
                ),
            )
            .route("/healthz", get(move || healthz(health.clone())))
            .route(
                "/metrics",
                get({
                    let metrics = http_metrics.clone();
                    move || metrics_route(metrics.clone())
                }),
            );
        let api = Router::new()
            .route(
                "/api/history",
                get({
                    let history = history.clone();
                    move |Query(params): Query<HashMap<String, String>>| {
                        history_route(history.clone(), params)
                    }
                }),
            )
            .route(
                "/api/logs",
                get({
                    let logs = logs.clone();
                    move |Query(params): Query<HashMap<String, String>>| {
                        page_route(logs.clone(), params)
                    }
                }),
            )
            .route(
                "/api/ingest/logs",
                post({
                    let (logs, auth) = (logs.clone(), auth.clone());
                    move |principal: Option<Extension<Principal>>,
                          headers: HeaderMap,
                          body: Bytes| {
                        let (logs, auth) = (logs.clone(), auth.clone());
                        async move {
                            ingest_route(logs, &auth, principal.as_deref(), headers, body).await
                        }
                    }
                })
                .layer(DefaultBodyLimit::max(MAX_INGEST_BYTES)),
            )
            .route(
                "/api/login",
                post({
                    let auth = auth.clone();
                    move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                          headers: HeaderMap,
                          body: Bytes| {
                        crate::auth::routes::login(auth.clone(), peer, headers, body)
                    }
                })
                .layer(DefaultBodyLimit::max(16 * 1024)),
            )
            .route(
                "/api/setup",
                post({
                    let auth = auth.clone();
                    move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                          headers: HeaderMap,
                          body: Bytes| {
                        crate::auth::routes::setup(auth.clone(), peer, headers, body)
                    }
                })
                .layer(DefaultBodyLimit::max(16 * 1024)),
            )
            .route(
                "/api/logout",
                post({
                    let auth = auth.clone();
                    move |headers: HeaderMap| crate::auth::routes::logout(auth.clone(), headers)
                }),
            )
            .route("/api/me", get(crate::auth::routes::me))
            .route(
                "/api/deployments",
                post({
                    let (deploys, auth, audit) = (deploys.clone(), auth.clone(), audit.clone());
                    move |principal: Option<Extension<Principal>>,
                          caller: Option<Extension<Caller>>,
                          body: Bytes| {
                        let (deploys, auth, audit) = (deploys.clone(), auth.clone(), audit.clone());
                        async move {
                            crate::deploy::report_route(
                                &deploys,
                                &auth,
                                &audit,
                                caller.as_deref(),
                                principal.as_deref(),
                                body,
                            )
                            .await
                        }
                    }
                })
                .get({
                    let deploys = deploys.clone();
                    move |Query(params): Query<HashMap<String, String>>| {
                        let deploys = deploys.clone();
                        async move { crate::deploy::list_route(&deploys, params).await }
                    }
                })
                .layer(DefaultBodyLimit::max(64 * 1024)),
            )
            .route(
                "/api/alerts",
                get({
                    let history = alert_history.clone();
                    move |Query(params): Query<HashMap<String, String>>| {
                        let history = history.clone();
                        async move { crate::alerts::list_route(&history, params).await }
                    }
                }),
            )
            .route(
                "/api/audit",
                get({
                    let (auth, audit) = (auth.clone(), audit.clone());
                    move |principal: Option<Extension<Principal>>,
                          Query(params): Query<HashMap<String, String>>| {
                        let (auth, audit) = (auth.clone(), audit.clone());
                        async move {
                            crate::audit::list(&auth, &audit, principal.as_deref(), params).await
                        }
                    }
                }),
            )
            .layer(CompressionLayer::new());

        let api = if config.demo {
            crate::demo::spawn_load(format!("http://{local_addr}"), shutdown.clone());
            api.merge(crate::demo::routes(logs.clone()))
        } else {
            api
        };

        let leptos_options = LeptosOptions::builder()
            .output_name("watchpost")
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(local_addr)
            .build();
        let backend = BackendHandle(Arc::new(ServerBackend {
            hub,
            history,
            logs,
            auth: auth.clone(),
            audit,
            commands,
            deploys,
            alerts,
            notifier,
            alert_history: alert_history.clone(),
        }));
        let site = Router::new()
            .leptos_routes_with_context(
                &leptos_options,
                generate_route_list(App),
                move || provide_context(backend.clone()),
                {
                    let options = leptos_options.clone();
                    move || shell(options.clone())
                },
            )
            .fallback(leptos_axum::file_and_error_handler(shell))
            .with_state(leptos_options)
            .layer(CompressionLayer::new())
            .layer(TraceLayer::new_for_http());

        // The stream is the hot path: no per-chunk tracing or compression wrappers around its body.
        // Outermost first: time every request (refused ones too), refuse cross-site writes, then find who
        // the request is from.
        let router = live
            .merge(api)
            .merge(site)
            .layer(axum::middleware::from_fn_with_state(auth, authenticate))
            .layer(axum::middleware::from_fn(same_origin))
            .layer(axum::middleware::from_fn_with_state(http_metrics, track));
        Ok(Application {
            listener,
            router,
            local_addr,
            shutdown,
            collector,
            recorder: recorder_task,
            own_log_writer,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Cancel this token to shut the server down: streams end, the collector stops, the recorder writes its
    /// last batch, `run` returns.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then stops the collector and lets the recorder finish.
    pub async fn run(mut self) {
        crate::serve::serve(
            self.listener,
            self.router,
            self.shutdown.clone(),
            SHUTDOWN_GRACE,
        )
        .await;
        self.collector.stop();
        // The recorder saw the same cancellation and is writing its last batch: a moment to finish it.
        if tokio::time::timeout(Duration::from_millis(400), self.recorder)
            .await
            .is_err()
        {
            tracing::warn!("the last history batch was not written before exit");
        }
        if let Some(writer) = self.own_log_writer {
            writer.abort();
        }
    }
}
