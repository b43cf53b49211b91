//! Builds the application on a listener and runs it until shutdown.
//!
//! Binding happens in [`Application::build`], so the caller learns the real port (tests ask for port 0) and a
//! port in use is reported before anything else starts.

use crate::actions::Services;
use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::auth::streams::OpenStreams;
use crate::commands::{Commands, RunLogs};
use crate::config::Config;
use crate::deploy::DeployBook;
use crate::history::{History, spawn_recorder};
use crate::http::client_addr::TrustedProxies;
use crate::http::sse::StreamConfig;
use crate::http::{AppState, ServerPorts};
use crate::hub::Hub;
use crate::lease::{KvLeases, Leases, LocalLeases};
use crate::logs::LogBook;
use crate::outlet::Outlet;
use crate::sources::host::{Collector, CollectorError, CollectorStatus, HostSampler};
use crate::sources::http_self::{HttpMetrics, spawn_aggregator};
use crate::sources::own_logs::{OwnLogs, spawn_own_log_writer};
use crate::sources::{Local, Sink};
use crate::tasks::Tasks;
use axum::Router;
use leptos::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::StoreError;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// After the connections, the tasks get this long to finish (the recorder's last batch is usually written by
/// then), keeping the whole exit under two seconds.
const TASKS_GRACE: Duration = Duration::from_millis(400);

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
    #[error(transparent)]
    Bus(#[from] crate::hub::jetstream::BusError),
}

/// How long a lease held across instances outlives its holder: another instance takes over within it.
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: crate::http::serve::Limits,
    trusted: TrustedProxies,
    local_addr: SocketAddr,
    tasks: Tasks,
    collector: Collector,
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
        crate::data_dir::prepare(&config.server.data_dir).map_err(|source| {
            StartupError::DataDir {
                path: config.server.data_dir.clone(),
                source,
            }
        })?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|source| StartupError::Listen {
                addr: config.server.listen,
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: config.server.listen,
                source,
            })?;

        // Built in dependency order: the hub and the outlet first, then the consumers that subscribe to the
        // outlet (alert engine, history recorder), then the sources that feed it.
        let interval_ms = config.sampling.interval.as_millis() as u64;
        let (hub, outlet, bus_health, leases) = match &config.stream.bus {
            None => {
                let hub = Arc::new(Hub::new(
                    config.server.environment.clone(),
                    interval_ms,
                    config.stream.replay_buffer,
                    config.stream.client_queue,
                ));
                let leases: Arc<dyn Leases> = Arc::new(LocalLeases::default());
                (hub.clone(), Outlet::local(hub), None, leases)
            }
            Some(bus) => {
                let connected = crate::hub::jetstream::connect(crate::hub::jetstream::BusConfig {
                    url: bus.url.clone(),
                    stream: bus.stream.clone(),
                    max_messages: config.stream.replay_buffer,
                })
                .await?;
                let hub = Arc::new(Hub::with_seed(
                    config.server.environment.clone(),
                    interval_ms,
                    config.stream.replay_buffer,
                    config.stream.client_queue,
                    connected.seed(),
                ));
                let leases: Arc<dyn Leases> = KvLeases::open(
                    connected.context(),
                    &format!("{}_leases", bus.stream),
                    LEASE_TTL,
                )
                .await
                .map_err(|message| crate::hub::jetstream::BusError::JetStream {
                    url: bus.url.clone(),
                    message,
                })?;
                let bus = connected.start(hub.clone()).await;
                let health = bus.health.clone();
                (
                    hub.clone(),
                    Outlet::new(Arc::new(bus), hub),
                    Some(health),
                    leases,
                )
            }
        };
        let store = crate::storage::open(
            &config.storage.engine,
            &config.server.data_dir,
            config.storage.quota,
        )
        .await?;
        let sampler = HostSampler::new()?;
        let tasks = Tasks::new();
        let logs = LogBook::new(
            store.clone(),
            outlet.clone(),
            crate::logs::Origin {
                host: sampler.host().0.clone(),
                environment: config.server.environment.clone(),
            },
        );
        let notifier = crate::notify::Notifier::start(
            config.alerting.channels.clone(),
            config.alerting.notify.clone(),
            format!("http://{local_addr}"),
            outlet.clone(),
            logs.clone(),
            &tasks,
        );
        let streams = OpenStreams::new(config.stream.max_streams_per_user);
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
        let fleet = crate::fleet::Fleet::start(
            store.clone(),
            outlet.clone(),
            logs.clone(),
            auth.clone(),
            crate::fleet::OwnHost {
                host: sampler.host().clone(),
                environment: config.server.environment.clone(),
                interval: config.sampling.interval,
            },
            config.sampling.offline_after,
            &tasks,
        )
        .await?;
        let deploys = DeployBook::start(
            store.clone(),
            outlet.clone(),
            config.server.environment.clone(),
        )
        .await?;
        let alert_history: Arc<dyn store::AlertHistory> = store.clone();
        let alerts = crate::alerts::start(
            config.alerting.rules.clone(),
            alert_history.clone(),
            &outlet,
            notifier.clone(),
            &tasks,
        )
        .await?;
        let store: Arc<dyn store::Store> = store;
        let history = History::new(
            store.clone(),
            config.storage.retention,
            sampler.host().clone(),
        );
        spawn_recorder(history.clone(), &outlet, &tasks);
        let commands = Commands::start(
            config.commands.clone(),
            audit.clone(),
            deploys.clone(),
            outlet.clone(),
            leases,
            RunLogs {
                dir: config.server.data_dir.join("commands"),
                keep: config.storage.retention.logs,
            },
            tasks.clone(),
        )
        .await?;

        // Sources, last: everything they feed is listening.
        if let Some(own) = own_logs {
            spawn_own_log_writer(logs.clone(), own, &tasks);
        }
        // What the host and file-tail sources read goes to this process's outlet and log book.
        let sink: Arc<dyn Sink> = Arc::new(Local {
            outlet: outlet.clone(),
            logs: logs.clone(),
        });
        if let Some(tailers) = crate::sources::tail::spawn_tailers(
            &config.sources.tail_logs,
            sink.clone(),
            tasks.token(),
        ) {
            tasks.spawn(tailers);
        }
        crate::sources::scrape::spawn_scrapers(
            &config.sources.scrape,
            config.sampling.api_interval,
            outlet.clone(),
            logs.clone(),
            &tasks,
        );
        crate::sources::postgres::spawn_db_readers(
            store.clone(),
            &config.sources.postgres,
            config.sampling.api_interval,
            outlet.clone(),
            logs.clone(),
            &tasks,
        );
        let http_metrics = HttpMetrics::new();
        spawn_aggregator(
            http_metrics.clone(),
            config.sampling.api_interval,
            outlet.clone(),
            logs.clone(),
            &tasks,
        );
        let status = Arc::new(CollectorStatus::default());
        let collector = Collector::spawn(sampler, sink, config.sampling.interval, status.clone())?;

        let demo = config.server.demo;
        if demo {
            crate::sources::demo::spawn_load(format!("http://{local_addr}"), &tasks);
        }
        let trusted = TrustedProxies::new(config.server.trusted_proxies.clone());
        let state = AppState {
            hub: hub.clone(),
            history: history.clone(),
            logs: logs.clone(),
            auth: auth.clone(),
            audit: audit.clone(),
            deploys: deploys.clone(),
            fleet: fleet.clone(),
            commands: commands.clone(),
            alert_history: alert_history.clone(),
            http_metrics,
            collector: status,
            stream: StreamConfig {
                hub: hub.clone(),
                keepalive: config.stream.keepalive,
                shutdown: tasks.token().clone(),
                streams,
                bus: bus_health.as_ref().map(|b| b.reachable()),
            },
            started: Instant::now(),
            trusted: trusted.clone(),
            bus: crate::http::BusStatus(bus_health),
        };
        let ports = ServerPorts {
            hub,
            history,
            logs,
            commands,
            deploys,
            alert_history,
            services: Services {
                auth,
                audit,
                alerts,
                notifier,
                fleet,
            },
        }
        .into_ports();
        let leptos_options = app::assets::with_hashed_names(
            LeptosOptions::builder()
                .output_name("watchpost")
                .site_root(config.server.site_root.to_string_lossy().into_owned())
                .site_pkg_dir("pkg")
                .site_addr(local_addr)
                .build(),
        );
        let router = crate::http::router(state, demo, leptos_options, ports);
        Ok(Application {
            listener,
            router,
            limits: config.server.limits.clone(),
            trusted,
            local_addr,
            tasks,
            collector,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Cancel this token to shut the server down: streams end, the collector stops, every task finishes what
    /// it holds (the recorder its last batch), `run` returns.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.tasks.token().clone()
    }

    /// Serves until the shutdown token is cancelled, then stops the collector and waits for the tasks.
    pub async fn run(mut self) {
        crate::http::serve::serve(
            self.listener,
            self.router,
            self.limits,
            self.trusted,
            self.tasks.token().clone(),
            SHUTDOWN_GRACE,
        )
        .await;
        self.collector.stop();
        // The tasks saw the same cancellation when serving began to wind down, and are finishing.
        if !self.tasks.stop(TASKS_GRACE).await {
            tracing::warn!(
                "some tasks had not finished when the server exited (the last history batch, say)"
            );
        }
    }
}
