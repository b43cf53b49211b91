//! The state a dashboard shows, and the one function that moves it forward: [`LiveState::apply`].
//!
//! The hub keeps one `LiveState` to answer snapshots; every browser keeps one fed by the stream. Because both
//! run this code, a browser that applied the same envelopes holds exactly the server's state.

use crate::{
    Alert, AlertRule, ChannelStatus, CommandInfo, CommandRun, DbReading, Deployment, Envelope,
    Event, FleetHost, HealthPoint, HostHealth, HostId, LogEntry, SecurityAlert, ServiceApi,
    Snapshot, StorageStatus, merge_alert, merge_alert_instance, merge_deployment, merge_recent,
    merge_run,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far back the trend beside the gauges reaches: five minutes.
pub const RECENT_WINDOW_MS: i64 = 5 * 60 * 1000;

/// One host: its newest reading, the version (stream sequence) that set it, and the short trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub health: HostHealth,
    /// The `seq` of the envelope that carried `health`; older envelopes are ignored.
    pub version: u64,
    /// Points of the last [`RECENT_WINDOW_MS`], oldest first.
    pub recent: Vec<HealthPoint>,
    /// The environment the reading was published in (the envelope's scope): who may see the host.
    #[serde(default)]
    pub environment: String,
}

/// Everything a client knows, as of `seq`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveState {
    /// The sequence number of the last envelope applied (0 before any).
    pub seq: u64,
    pub interval_ms: u64,
    hosts: BTreeMap<HostId, HostState>,
    /// Whether history is being saved, and the `seq` that said so.
    storage: (StorageStatus, u64),
    /// The newest error-log entries, newest first.
    logs: Vec<LogEntry>,
    /// API performance per service.
    api: BTreeMap<String, ServiceApi>,
    /// The newest reading of each database target.
    db: BTreeMap<String, DbReading>,
    /// The newest security alerts, newest first.
    security: Vec<SecurityAlert>,
    /// The configured commands.
    commands: Vec<CommandInfo>,
    /// The newest command runs, newest first.
    runs: Vec<CommandRun>,
    /// The newest deployments, newest first.
    deployments: Vec<Deployment>,
    alert_rules: Vec<AlertRule>,
    /// Open alerts and the newest resolved ones, newest first.
    alerts: Vec<Alert>,
    /// The notification channels' delivery status.
    channels: Vec<ChannelStatus>,
    /// Every host of the fleet, by name.
    fleet: BTreeMap<HostId, FleetHost>,
}

impl LiveState {
    /// An empty state for a collector sampling every `interval_ms`.
    pub fn new(interval_ms: u64) -> Self {
        LiveState {
            interval_ms,
            ..LiveState::default()
        }
    }

    /// Applies one envelope. Idempotent: applying an envelope twice, or an older one after a newer, changes
    /// nothing, so replays and duplicates are harmless.
    pub fn apply(&mut self, env: &Envelope) {
        match &env.event {
            Event::Snapshot(snapshot) => {
                // A snapshot is as of its seq: one older than what we hold would step back in time.
                if env.seq < self.seq {
                    return;
                }
                self.replace(snapshot.clone());
            }
            Event::Health(health) => {
                self.apply_health(health.clone(), env.seq, &env.scope.environment)
            }
            Event::Logs(entries) => merge_recent(&mut self.logs, entries),
            Event::Db(reading) => {
                let newer = self
                    .db
                    .get(&reading.target)
                    .is_none_or(|old| old.t_ms <= reading.t_ms);
                if newer {
                    self.db.insert(reading.target.clone(), reading.clone());
                }
            }
            Event::Api(point) => self
                .api
                .entry(point.service.clone())
                .or_insert_with(|| ServiceApi {
                    service: point.service.clone(),
                    points: Vec::new(),
                })
                .push(point.clone()),
            Event::Storage(status) => {
                if env.seq >= self.storage.1 {
                    self.storage = (status.clone(), env.seq);
                }
            }
            // Not part of the dashboard's state (nor of a snapshot, which every role reads): the admin page
            // reloads its lists when one arrives.
            Event::Accounts(_) => {}
            Event::Security(alert) => merge_alert(&mut self.security, alert),
            Event::Commands(commands) => self.commands = commands.clone(),
            Event::Command(run) => merge_run(&mut self.runs, run.clone()),
            // Output is appended by whoever shows it; the state keeps each run's line count only.
            Event::CommandOutput(_) => {}
            Event::Deployment(d) => merge_deployment(&mut self.deployments, d.clone()),
            Event::AlertRules(rules) => self.alert_rules = rules.clone(),
            Event::Alert(alert) => merge_alert_instance(&mut self.alerts, alert.clone()),
            Event::Channels(channels) => self.channels = channels.clone(),
            Event::Host(host) if host.removed => {
                self.fleet.remove(&host.host);
                self.hosts.remove(&host.host);
            }
            Event::Host(host) => {
                self.fleet.insert(host.host.clone(), host.clone());
            }
        }
        self.seq = self.seq.max(env.seq);
    }

    /// Upserts a host's reading carried by the envelope `version`, and extends its trend.
    pub fn apply_health(&mut self, health: HostHealth, version: u64, environment: &str) {
        let point = health.point();
        match self.hosts.get_mut(&health.host) {
            Some(host) if host.version >= version => {}
            Some(host) => {
                host.health = health;
                host.version = version;
                push_point(&mut host.recent, point);
                if host.environment != environment {
                    host.environment = environment.to_owned();
                }
            }
            None => {
                self.hosts.insert(
                    health.host.clone(),
                    HostState {
                        health,
                        version,
                        recent: vec![point],
                        environment: environment.to_owned(),
                    },
                );
            }
        }
    }

    /// Replaces everything with a snapshot's content.
    pub fn replace(&mut self, snapshot: Snapshot) {
        self.interval_ms = snapshot.interval_ms;
        self.hosts = snapshot
            .hosts
            .into_iter()
            .map(|h| (h.health.host.clone(), h))
            .collect();
        self.storage = (snapshot.storage, snapshot.storage_version);
        self.logs = snapshot.logs;
        self.api = snapshot
            .api
            .into_iter()
            .map(|s| (s.service.clone(), s))
            .collect();
        self.db = snapshot
            .db
            .into_iter()
            .map(|r| (r.target.clone(), r))
            .collect();
        self.security = snapshot.security;
        self.commands = snapshot.commands;
        self.runs = snapshot.runs;
        self.deployments = snapshot.deployments;
        self.alert_rules = snapshot.alert_rules;
        self.alerts = snapshot.alerts;
        self.channels = snapshot.channels;
        self.fleet = snapshot
            .fleet
            .into_iter()
            .map(|h| (h.host.clone(), h))
            .collect();
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            interval_ms: self.interval_ms,
            hosts: self.hosts.values().cloned().collect(),
            storage: self.storage.0.clone(),
            storage_version: self.storage.1,
            logs: self.logs.clone(),
            api: self.api.values().cloned().collect(),
            db: self.db.values().cloned().collect(),
            security: self.security.clone(),
            commands: self.commands.clone(),
            runs: self.runs.clone(),
            deployments: self.deployments.clone(),
            alert_rules: self.alert_rules.clone(),
            alerts: self.alerts.clone(),
            channels: self.channels.clone(),
            fleet: self.fleet.values().cloned().collect(),
        }
    }

    /// The notification channels' delivery status, in configuration order.
    pub fn channels(&self) -> &[ChannelStatus] {
        &self.channels
    }

    pub fn alert_rules(&self) -> &[AlertRule] {
        &self.alert_rules
    }

    /// Open alerts and the newest resolved ones, newest first.
    pub fn alerts(&self) -> &[Alert] {
        &self.alerts
    }

    /// The newest deployments, newest first.
    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }

    /// The configured commands.
    pub fn commands(&self) -> &[CommandInfo] {
        &self.commands
    }

    /// The newest command runs, newest first.
    pub fn runs(&self) -> &[CommandRun] {
        &self.runs
    }

    /// The newest security alerts, newest first.
    pub fn security(&self) -> &[SecurityAlert] {
        &self.security
    }

    /// The newest reading of each database target, in name order.
    pub fn db(&self) -> impl Iterator<Item = &DbReading> {
        self.db.values()
    }

    /// API performance per service, in service-name order.
    pub fn api(&self) -> impl Iterator<Item = &ServiceApi> {
        self.api.values()
    }

    /// The newest error-log entries, newest first.
    pub fn logs(&self) -> &[LogEntry] {
        &self.logs
    }

    pub fn storage(&self) -> &StorageStatus {
        &self.storage.0
    }

    pub fn hosts(&self) -> impl Iterator<Item = &HostState> {
        self.hosts.values()
    }

    pub fn host(&self, id: &HostId) -> Option<&HostState> {
        self.hosts.get(id)
    }

    /// One host of the fleet.
    pub fn fleet_host(&self, id: &HostId) -> Option<&FleetHost> {
        self.fleet.get(id)
    }

    /// Every host of the fleet, by name.
    pub fn fleet(&self) -> impl Iterator<Item = &FleetHost> {
        self.fleet.values()
    }

    /// The host the hub runs on, once the hub has said which it is.
    pub fn hub_host(&self) -> Option<&HostId> {
        self.fleet.values().find(|h| h.hub).map(|h| &h.host)
    }
}

/// Appends in time order and drops what fell out of the window.
fn push_point(recent: &mut Vec<HealthPoint>, point: HealthPoint) {
    if recent.last().is_some_and(|last| last.at_ms >= point.at_ms) {
        return;
    }
    recent.push(point);
    let horizon = point.at_ms - RECENT_WINDOW_MS;
    let expired = recent.iter().take_while(|p| p.at_ms < horizon).count();
    recent.drain(..expired);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scope;
    use crate::tests::reading;

    fn env(seq: u64, event: Event) -> Envelope {
        Envelope {
            seq,
            at_ms: 0,
            scope: Scope {
                environment: "e".into(),
                host: None,
            },
            event,
        }
    }

    #[test]
    fn applying_the_same_envelope_twice_changes_nothing() {
        let mut s = LiveState::default();
        let e = env(10, Event::Health(reading("a", 1000, 5.0)));
        s.apply(&e);
        let once = s.clone();
        s.apply(&e);
        assert_eq!(s, once);
        assert_eq!(s.host(&HostId("a".into())).unwrap().recent.len(), 1);
    }

    #[test]
    fn an_older_reading_never_overwrites_a_newer_one() {
        let mut s = LiveState::default();
        s.apply(&env(20, Event::Health(reading("a", 2000, 20.0))));
        s.apply(&env(10, Event::Health(reading("a", 1000, 10.0))));
        assert_eq!(s.host(&HostId("a".into())).unwrap().health.cpu_pct, 20.0);
        assert_eq!(s.seq, 20);
    }

    #[test]
    fn a_snapshot_replaces_and_an_older_snapshot_is_ignored() {
        let mut server = LiveState::new(1000);
        server.apply(&env(5, Event::Health(reading("a", 1000, 1.0))));
        let old = env(5, Event::Snapshot(server.snapshot()));
        server.apply(&env(6, Event::Health(reading("b", 1000, 2.0))));
        let new = env(6, Event::Snapshot(server.snapshot()));

        let mut client = LiveState::default();
        client.apply(&new);
        assert_eq!(client, server);
        client.apply(&old);
        assert_eq!(
            client, server,
            "a stale snapshot must not roll the client back"
        );
    }

    #[test]
    fn the_newest_storage_status_wins() {
        let mut s = LiveState::default();
        let failing = StorageStatus {
            error: Some("disk full".into()),
            since_ms: Some(1),
        };
        s.apply(&env(7, Event::Storage(failing.clone())));
        s.apply(&env(6, Event::Storage(StorageStatus::default())));
        assert_eq!(s.storage(), &failing);
        s.apply(&env(8, Event::Storage(StorageStatus::default())));
        assert_eq!(s.storage(), &StorageStatus::default());
        assert_eq!(s.snapshot().storage, StorageStatus::default());
    }

    #[test]
    fn the_trend_keeps_exactly_the_last_five_minutes() {
        let mut s = LiveState::default();
        for i in 0..=400 {
            s.apply_health(reading("a", i * 1000, 1.0), i as u64 + 1, "t");
        }
        let recent = &s.host(&HostId("a".into())).unwrap().recent;
        assert_eq!(recent.first().unwrap().at_ms, 100_000);
        assert_eq!(recent.last().unwrap().at_ms, 400_000);
        assert_eq!(recent.len(), 301);
    }
}
