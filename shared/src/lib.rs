//! Typed events and DTOs shared by the Watchpost server and the browser.
//!
//! Types only, no I/O: this crate compiles for the server and for `wasm32-unknown-unknown`. The same
//! [`Envelope`] is the JSON of an SSE `data:` line and what server functions return, so both sides agree on
//! the protocol at compile time. [`LiveState`] holds the state transition (apply an envelope) so that the hub's
//! copy of the state and every browser's copy are computed by the very same code.

mod alerts;
mod api;
mod audit;
mod auth;
mod commands;
mod db;
mod deploy;
mod event_de;
mod fleet;
mod health;
mod history;
mod logs;
mod notify;
mod security;
mod state;

pub use alerts::{
    Alert, AlertFilter, AlertRule, AlertState, Comparison, Condition, HostCheck, LogRate, Phase,
    RECENT_ALERTS, RuleDraft, RuleMetric, RuleSource, Tracker, Transition, merge_alert_instance,
    render_message, value_text,
};
pub use api::{ApiPoint, LatencyUnit, RECENT_API_POINTS, RouteStats, ServiceApi, band_quantile};
pub use audit::{AUDIT_CSV_HEADER, AuditEntry, AuditFilter, AuditPage, MAX_AUDIT_PAGE, Outcome};
pub use auth::{
    Access, AccountsView, Action, ApiToken, Caller, EnvironmentRole, MIN_PASSWORD_CHARS, Me,
    NewToken, Refused, Role, Target, UnknownRole, User, check_password, check_user_name,
    parse_environment_role,
};
pub use commands::{
    CommandInfo, CommandKind, CommandRun, OutputChunk, OutputLine, OutputPage, ParamInfo,
    RECENT_RUNS, RunState, merge_output, merge_run,
};
pub use db::{ConnectionCount, DbKind, DbReading, QueryStat, STATEMENT_AUDIENCE};
pub use deploy::{
    DeployState, Deployment, DeploymentReport, RECENT_DEPLOYMENTS, current_deployments,
    merge_deployment, parse_step,
};
pub use fleet::{
    EnrolledHost, FleetHost, IntervalSetting, MAX_MAINTENANCE_MS, MAX_SET_INTERVAL_MS,
    MIN_SET_INTERVAL_MS, Maintenance, NewHost, Presence,
};
pub use health::{DiskUsage, HealthPoint, HostHealth, LoadAvg, NetRates, Usage};
pub use history::{
    HistoryPoint, HistorySeries, MAX_POINTS, Metric, RangeError, Subject, Tier, TimeRange, Unit,
    UnknownMetric,
};
pub use logs::{
    BadCursor, ENVIRONMENT_FIELD, HOST_FIELD, Level, LogCursor, LogEntry, LogFilter, LogPage,
    MAX_MESSAGE_BYTES, NewLog, RECENT_LOGS, UnknownLevel, merge_recent, truncate,
};
pub use notify::{ChannelKind, ChannelStatus, DeliveryState};
pub use security::{RECENT_SECURITY, SecurityAlert, SecurityKind, Severity, merge_alert};
pub use state::{HostState, LiveState, RECENT_WINDOW_MS};

use serde::{Deserialize, Serialize};

/// One event as it travels from the hub to a browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Strictly increasing for the stream a client reads, and never reused across restarts (the hub seeds it
    /// from the clock in microseconds), so a browser's `Last-Event-ID` from an earlier run is recognised.
    pub seq: u64,
    /// When the hub sequenced the event (Unix ms): the origin of the delivery-latency figures.
    pub at_ms: i64,
    /// Who may see the event.
    pub scope: Scope,
    pub event: Event,
}

/// Which environment and host an event belongs to; `host: None` means the whole environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub environment: String,
    pub host: Option<HostId>,
}

/// Every kind of event on the stream. New sources add a variant here, never a stringly typed map.
///
/// On the wire `{"kind": "health", "data": {…}}`, the kind first; it is read back by a reader of its own
/// ([`event_de`]) that needs that order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// Everything in the client's scope as of `Envelope::seq`; replaces whatever the client held.
    Snapshot(Snapshot),
    /// A host's whole current health reading; an idempotent upsert keyed by `HostHealth::host`.
    Health(HostHealth),
    /// Whether history is being saved; the whole current status, replacing the previous one.
    Storage(StorageStatus),
    /// New error-log entries (at most [`RECENT_LOGS`] of a batch; the rest are in the store). Keyed by id,
    /// so a replayed entry is not added twice.
    Logs(Vec<LogEntry>),
    /// One service's API figures for the interval that just ended; appended to that service's points.
    Api(ApiPoint),
    /// A database target's whole current reading; replaces the previous one of that target.
    Db(DbReading),
    /// Every account and token after a change: for admins only.
    Accounts(AccountsView),
    /// A security alert, new or acknowledged; an upsert keyed by its id. Operators and admins only.
    Security(SecurityAlert),
    /// Every configured command, whole (sent at start; the configuration is read once).
    Commands(Vec<CommandInfo>),
    /// A command run, whole, on every change of its state; an upsert keyed by its id. Reaches the run's
    /// audience only.
    Command(CommandRun),
    /// A stretch of a run's output, numbered, so a tab appends each line once. Reaches the command's output
    /// audience only; not part of the state (a tab that missed some reads the run's log).
    CommandOutput(OutputChunk),
    /// A deployment, whole, on every change of its status; an upsert keyed by its id.
    Deployment(Deployment),
    /// Every alert rule, whole (sent at start and when the rules change).
    AlertRules(Vec<AlertRule>),
    /// An alert, whole, on every change (pending, firing, a new value, acknowledged, silenced, resolved); an
    /// upsert keyed by its id.
    Alert(Alert),
    /// Every notification channel's delivery status, whole, after each attempt.
    Channels(Vec<ChannelStatus>),
    /// A host of the fleet, whole, when it joins or its presence changes; an upsert keyed by its name.
    Host(FleetHost),
}

impl Event {
    /// The SSE `event:` name of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Snapshot(_) => EventKind::Snapshot,
            Event::Health(_) => EventKind::Health,
            Event::Storage(_) => EventKind::Storage,
            Event::Logs(_) => EventKind::Logs,
            Event::Api(_) => EventKind::Api,
            Event::Db(_) => EventKind::Db,
            Event::Accounts(_) => EventKind::Accounts,
            Event::Security(_) => EventKind::Security,
            Event::Commands(_) => EventKind::Commands,
            Event::Command(_) => EventKind::Command,
            Event::CommandOutput(_) => EventKind::CommandOutput,
            Event::Deployment(_) => EventKind::Deployment,
            Event::AlertRules(_) => EventKind::AlertRules,
            Event::Alert(_) => EventKind::Alert,
            Event::Channels(_) => EventKind::Channels,
            Event::Host(_) => EventKind::Host,
        }
    }

    /// The form of this event that readers below [`STATEMENT_AUDIENCE`] get, when it differs (a
    /// database reading with statement texts): the stream sends them this instead.
    pub fn for_lesser_readers(&self) -> Option<Event> {
        match self {
            Event::Db(reading) if reading.has_statements() => {
                Some(Event::Db(reading.clone().for_role(Role::Viewer)))
            }
            _ => None,
        }
    }

    /// The least role whose streams carry this event: the stream leaves it out for everyone else.
    pub fn audience(&self) -> Role {
        match self {
            Event::Accounts(_) => Action::ManageUsers.least_role(),
            Event::Security(_) => SECURITY_AUDIENCE,
            Event::Command(run) => run.audience,
            Event::CommandOutput(chunk) => chunk.audience,
            Event::Deployment(d) => d.audience,
            _ => Action::View.least_role(),
        }
    }
}

/// The SSE `event:` names; the browser subscribes to each by name. An event's `kind` field carries the same
/// names (read by [`event_de`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Snapshot,
    Health,
    Storage,
    Logs,
    Api,
    Db,
    Accounts,
    Security,
    Commands,
    Command,
    CommandOutput,
    Deployment,
    AlertRules,
    Alert,
    Channels,
    Host,
    /// Keepalive: carries no state and no `id:`, only proof that the stream is alive.
    Ping,
    /// The server ended this stream for good (`data:` a [`StreamClosed`], no id): the tab must not
    /// reconnect as it was.
    Closed,
    /// The bus the instances share went away or came back (`data:` a [`BusNotice`], no id): this
    /// instance's own news, so it carries no place in the stream.
    Bus,
}

/// Whether the event bus is reachable from the instance serving this stream. While it is not, no event
/// reaches the tab (each goes through the bus, the instance's own too): they arrive once it is back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusNotice {
    pub reachable: bool,
}

/// Why the server ended a stream, and what its tab should do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamClosed {
    /// Said to the person in the tab.
    pub reason: String,
    pub then: AfterClose,
}

/// What a tab does after its stream was ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterClose {
    /// Show the reason and stay as it is (too many tabs, a revoked token).
    Stay,
    /// The session is over (signed out, expired, disabled, password changed): offer to sign in again.
    SignIn,
    /// The session goes on but what it may see changed (a new role): load the page again.
    Reload,
}

impl EventKind {
    pub const ALL: [EventKind; 19] = [
        EventKind::Snapshot,
        EventKind::Health,
        EventKind::Storage,
        EventKind::Logs,
        EventKind::Api,
        EventKind::Db,
        EventKind::Accounts,
        EventKind::Security,
        EventKind::Commands,
        EventKind::Command,
        EventKind::CommandOutput,
        EventKind::Deployment,
        EventKind::AlertRules,
        EventKind::Alert,
        EventKind::Channels,
        EventKind::Host,
        EventKind::Ping,
        EventKind::Closed,
        EventKind::Bus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Snapshot => "snapshot",
            EventKind::Health => "health",
            EventKind::Storage => "storage",
            EventKind::Logs => "logs",
            EventKind::Api => "api",
            EventKind::Db => "db",
            EventKind::Accounts => "accounts",
            EventKind::Security => "security",
            EventKind::Commands => "commands",
            EventKind::Command => "command",
            EventKind::CommandOutput => "command_output",
            EventKind::Deployment => "deployment",
            EventKind::AlertRules => "alert_rules",
            EventKind::Alert => "alert",
            EventKind::Channels => "channels",
            EventKind::Host => "host",
            EventKind::Ping => "ping",
            EventKind::Closed => "closed",
            EventKind::Bus => "bus",
        }
    }
}

/// The complete state a client needs to draw every panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The collector's interval: the browser dims values after three intervals without news.
    pub interval_ms: u64,
    pub hosts: Vec<HostState>,
    /// Whether history is being saved.
    #[serde(default)]
    pub storage: StorageStatus,
    /// The `seq` of the event that last changed `storage` (0 if none did).
    #[serde(default)]
    pub storage_version: u64,
    /// The newest error-log entries, newest first.
    #[serde(default)]
    pub logs: Vec<LogEntry>,
    /// API performance per service, by service name.
    #[serde(default)]
    pub api: Vec<ServiceApi>,
    /// The newest reading of each database target, by target name.
    #[serde(default)]
    pub db: Vec<DbReading>,
    /// The newest security alerts, newest first; empty in a snapshot for a role below
    /// [`SECURITY_AUDIENCE`].
    #[serde(default)]
    pub security: Vec<SecurityAlert>,
    /// The configured commands.
    #[serde(default)]
    pub commands: Vec<CommandInfo>,
    /// The newest command runs, newest first, each only for its audience.
    #[serde(default)]
    pub runs: Vec<CommandRun>,
    /// The newest deployments, newest first.
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    /// The alert rules.
    #[serde(default)]
    pub alert_rules: Vec<AlertRule>,
    /// Every open alert and the newest resolved ones, newest first.
    #[serde(default)]
    pub alerts: Vec<Alert>,
    /// The notification channels and how their deliveries go.
    #[serde(default)]
    pub channels: Vec<ChannelStatus>,
    /// Every host of the fleet.
    #[serde(default)]
    pub fleet: Vec<FleetHost>,
}

/// Security alerts name users and addresses: they reach operators and admins, who act on them.
pub const SECURITY_AUDIENCE: Role = Role::Operator;

impl Snapshot {
    /// This snapshot as a reader with `access` may see it, on a hub in `home`: only the environments the
    /// reader may see, each thing as the reader's role there may see it. A host belongs to its fleet
    /// entry's environment, a log entry or an alert to its `environment` field or label; everything else
    /// (and whatever names no environment) to the hub's own.
    pub fn for_access(mut self, access: &Access, home: &str) -> Snapshot {
        if access.environments.is_empty() {
            return self.for_role(access.role);
        }
        let sees = |env: Option<&String>| access.sees(env.map_or(home, String::as_str));
        // A host's readings by the environment they were published in, its fleet entry by its own.
        self.hosts.retain(|h| {
            access.sees(if h.environment.is_empty() {
                home
            } else {
                &h.environment
            })
        });
        self.fleet.retain(|h| access.sees(&h.environment));
        self.logs.retain(|e| sees(e.fields.get(ENVIRONMENT_FIELD)));
        self.alerts
            .retain(|a| sees(a.labels.get(ENVIRONMENT_FIELD)));
        // A deployment is of the environment it went to, by the reader's role there.
        let mut deployments = std::mem::take(&mut self.deployments);
        deployments.retain(|d| d.visible_to(access));
        // A run is of its host's environment (the hub's own when it ran there), by the reader's role there.
        let mut runs = std::mem::take(&mut self.runs);
        runs.retain(|r| {
            access
                .role_in(r.environment.as_deref().unwrap_or(home))
                .is_some_and(|role| r.audience <= role)
        });
        let mut snapshot = match access.role_in(home) {
            Some(role) => self.for_role(role),
            None => {
                // Nothing of the hub's own environment: its services, databases, commands, rules and
                // channels.
                self.security.clear();
                self.api.clear();
                self.db.clear();
                self.commands.clear();
                self.alert_rules.clear();
                self.channels.clear();
                self
            }
        };
        snapshot.deployments = deployments;
        snapshot.runs = runs;
        snapshot
    }

    /// This snapshot as a reader with `role` may see it.
    pub fn for_role(mut self, role: Role) -> Snapshot {
        if role < SECURITY_AUDIENCE {
            self.security.clear();
        }
        self.runs.retain(|r| r.audience <= role);
        self.deployments.retain(|d| d.audience <= role);
        self.db = self.db.into_iter().map(|d| d.for_role(role)).collect();
        self
    }
}

/// Whether the store accepts writes. While it does not (a full disk, say), the live dashboard keeps working
/// from memory and this says why history has a gap.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StorageStatus {
    /// `None` while writes succeed; otherwise what went wrong, worded for a person.
    pub error: Option<String>,
    /// Unix ms of the first failed write of the current failure.
    pub since_ms: Option<i64>,
}

/// A host's identity, as the collector names it (its host name, unless configured otherwise).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostId(pub String);

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The body of `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthzReport {
    pub status: String,
    pub version: String,
    pub uptime_s: u64,
    /// SSE streams open right now.
    pub stream_clients: usize,
    /// Unix ms of the newest host sample, `None` before the first one.
    pub last_sample_ms: Option<i64>,
    /// Resident set size of the server process in bytes, as of the last sample.
    pub rss_bytes: Option<u64>,
    pub storage: StorageHealth,
    /// The NATS event bus (scale-out): `ok`, or `unreachable` while this instance cannot publish to or
    /// consume from it; absent in one process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

/// The store as `/healthz` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StorageHealth {
    /// `ok`, or `error` while writes fail.
    pub status: String,
    pub error: Option<String>,
    /// Unix ms of the first failed write of the current failure.
    pub since_ms: Option<i64>,
    /// Unix ms of the newest successful write of history.
    pub last_write_ms: Option<i64>,
    /// Size of the database files on disk.
    pub db_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn reading(host: &str, at_ms: i64, cpu: f32) -> HostHealth {
        HostHealth {
            host: HostId(host.into()),
            hostname: host.into(),
            os: "Debian GNU/Linux 12".into(),
            sampled_at_ms: at_ms,
            uptime_s: 1234,
            cpu_pct: cpu,
            cores: vec![cpu, cpu / 2.0],
            load: LoadAvg {
                one: 0.5,
                five: 0.25,
                fifteen: 0.125,
            },
            memory: Usage {
                used: 3 << 30,
                total: 8 << 30,
            },
            swap: Usage { used: 0, total: 0 },
            disks: vec![
                DiskUsage {
                    mount: "/".into(),
                    fs: "ext4".into(),
                    used: 50,
                    total: 100,
                },
                DiskUsage {
                    mount: "/data".into(),
                    fs: "xfs".into(),
                    used: 90,
                    total: 100,
                },
            ],
            net: NetRates {
                rx_bytes_per_s: 1024.0,
                tx_bytes_per_s: 512.0,
            },
        }
    }

    #[test]
    fn every_event_round_trips_through_json() {
        let scope = Scope {
            environment: "prod".into(),
            host: Some(HostId("web-1".into())),
        };
        let health = reading("web-1", 1_700_000_000_000, 12.5);
        let mut state = LiveState::default();
        state.apply_health(health.clone(), 7, "t");
        let events = [
            Event::Health(health),
            Event::Snapshot(Snapshot {
                interval_ms: 1000,
                hosts: state.hosts().cloned().collect(),
                storage: StorageStatus::default(),
                storage_version: 0,
                logs: Vec::new(),
                api: Vec::new(),
                db: Vec::new(),
                security: Vec::new(),
                commands: Vec::new(),
                runs: Vec::new(),
                deployments: Vec::new(),
                alert_rules: Vec::new(),
                alerts: Vec::new(),
                channels: Vec::new(),
                fleet: Vec::new(),
            }),
            Event::Host(FleetHost {
                host: HostId("web-1".into()),
                environment: "prod".into(),
                presence: Presence::Stale,
                since_ms: 1_700_000_000_000,
                seen_ms: None,
                interval_ms: 1000,
                version: "0.1.0".into(),
                hub: false,
                removed: false,
                maintenance: None,
                commands: Vec::new(),
                listening: false,
                interval_set: None,
            }),
            Event::Logs(vec![LogEntry {
                id: 3,
                t_ms: 1_700_000_000_000,
                level: Level::Critical,
                service: "api".into(),
                message: "disk <b>full</b>\n\"quoted\"".into(),
                fields: [("node".to_string(), "7".to_string())].into(),
            }]),
            Event::Storage(StorageStatus {
                error: Some("database or disk is full".into()),
                since_ms: Some(1_700_000_000_000),
            }),
        ];
        for event in events {
            let env = Envelope {
                seq: u64::MAX - 1,
                at_ms: -5,
                scope: scope.clone(),
                event,
            };
            let json = serde_json::to_string(&env).unwrap();
            assert!(
                !json.contains('\n'),
                "an SSE data line must be a single line"
            );
            let back: Envelope = serde_json::from_str(&json).unwrap();
            assert_eq!(back, env);
        }
    }

    #[test]
    fn events_are_tagged_by_kind_name() {
        let env = Event::Health(reading("a", 1, 1.0));
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["kind"], "health");
        assert_eq!(env.kind().as_str(), "health");
    }

    #[test]
    fn healthz_report_round_trips() {
        let r = HealthzReport {
            status: "ok".into(),
            version: "0.1.0".into(),
            uptime_s: 3,
            stream_clients: 2,
            last_sample_ms: None,
            rss_bytes: Some(1 << 20),
            storage: StorageHealth {
                status: "error".into(),
                error: Some("disk full".into()),
                since_ms: Some(5),
                last_write_ms: Some(4),
                db_bytes: Some(4096),
            },
            bus: Some("unreachable".into()),
        };
        let back: HealthzReport =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
