//! The hosts other than the hub's: their enrolment, and what their agents push.
//!
//! An agent's push is checked here (its token, and that it pushes for the host it was enrolled as), then
//! every record above the agent's acknowledged mark goes where the hub's own readings go: a health reading
//! to the outlet (the dashboards, history and alerts) when it is the host's newest, to history only when it
//! is from a backlog; log lines to the log book, marked with their host. The mark is kept in the store, so a
//! batch sent again — the answer was lost, or the hub restarted — is recorded once.

use crate::auth::Auth;
use crate::auth::secrets::{self, SecretDigest, SecretError};
use crate::clock::now_millis;
use crate::logs::LogBook;
use crate::outlet::Outlet;
use crate::tasks::Tasks;
use collect::wire::{Ack, Batch, Gap, Order, Record};
use shared::{
    EnrolledHost, Event, FleetHost, HostId, Level, NewHost, Presence, Scope, SecurityKind, Severity,
};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Agent, Enrolments, StoreError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often every host's presence is judged.
const JUDGE_EVERY: Duration = Duration::from_secs(1);
/// A host is stale after this many intervals without a reading.
const STALE_INTERVALS: u64 = 3;
/// How long a token found in the store is taken as valid without asking the store again: a revocation made
/// by this process counts at once; one made elsewhere (another instance, the CLI) within this.
const TOKEN_TRUST: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the agent token is not valid (unknown or revoked)")]
    Unauthorized,
    #[error(
        "this token was enrolled for the host '{enrolled}' and may push only for it, not for '{claimed}'"
    )]
    Forbidden { enrolled: String, claimed: String },
    #[error("{0}")]
    BadBatch(String),
    #[error("the hub cannot record readings right now: {0}")]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum HostChangeError {
    #[error("there is no host '{0}'")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Where one agent stands in this process.
#[derive(Debug, Default)]
struct Standing {
    /// Records at or below this were recorded.
    acked: u64,
    /// The sample time of the newest health reading the dashboards show.
    shown_ms: i64,
}

/// One agent's standing, behind a lock held across its push.
type AgentSlot = Arc<tokio::sync::Mutex<Option<Standing>>>;

/// The host the hub runs on: a member of the fleet that needs no agent.
#[derive(Debug, Clone)]
pub struct OwnHost {
    pub host: HostId,
    pub environment: String,
    pub interval: Duration,
}

/// What the hub knows of a host's contact, from which its presence is judged.
#[derive(Debug, Clone)]
struct Tracked {
    host: FleetHost,
    /// When the last health reading arrived (Unix ms).
    reading_ms: Option<i64>,
    /// Whether its agent has pushed since this hub started: until then the host is offline whatever its last
    /// contact before the restart was, and nothing is announced about it.
    heard: bool,
    /// Its agent's stream of orders, while one is open.
    listener: Option<Listener>,
}

/// An agent's open stream of orders: which one, how to close it (a newer stream of the same agent, or the
/// host's removal, closes it), and where the host's settings go down it.
#[derive(Debug, Clone)]
struct Listener {
    epoch: u64,
    token: CancellationToken,
    settings: mpsc::UnboundedSender<Order>,
}

impl Tracked {
    /// The presence the host has at `now_ms`.
    fn judge(&self, now_ms: i64, offline_after: Duration) -> Presence {
        if self.host.hub {
            return Presence::Live;
        }
        if self
            .host
            .maintenance
            .as_ref()
            .is_some_and(|m| m.until_ms > now_ms)
        {
            return Presence::Maintenance;
        }
        if !self.heard {
            return Presence::Offline;
        }
        // A host that samples slower than `--offline-after` calls less often than that: it is offline
        // after two of its intervals without contact.
        let offline_ms = (offline_after.as_millis() as i64).max(2 * self.host.interval_ms as i64);
        match self.host.seen_ms {
            Some(seen) if now_ms - seen <= offline_ms => {
                let stale_ms = (STALE_INTERVALS * self.host.interval_ms.max(1)) as i64;
                if self.reading_ms.is_some_and(|r| now_ms - r <= stale_ms) {
                    Presence::Live
                } else {
                    Presence::Stale
                }
            }
            _ => Presence::Offline,
        }
    }
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    store: Arc<dyn Enrolments>,
    outlet: Outlet,
    logs: LogBook,
    auth: Auth,
    /// Every host, by name.
    hosts: Arc<Mutex<BTreeMap<String, Tracked>>>,
    /// The hub's own host, which no agent may push for.
    own: HostId,
    offline_after: Duration,
    /// Per agent (by enrolment id), behind a lock of its own: one agent's pushes are taken one at a time (a
    /// push sent again while the first is still being recorded waits, then finds its records acknowledged),
    /// and agents never wait for each other.
    standings: Arc<Mutex<HashMap<i64, AgentSlot>>>,
    /// Agents by their token's digest, as the store last had them (see [`TOKEN_TRUST`]): an agent's push
    /// costs no read of the store.
    tokens: Arc<Mutex<HashMap<SecretDigest, (Agent, std::time::Instant)>>>,
    /// Marks taken but not yet in the store, by enrolment id: the acknowledged sequence number and when
    /// the agent was heard. A push of readings only is written with the others once a second (a reading
    /// recorded twice after a crash is one point of history); one with log lines, at once.
    marks: Arc<Mutex<HashMap<i64, (u64, i64)>>>,
}

impl Fleet {
    /// The fleet as the store has it (every enrolled host offline until its agent pushes, the hub's own
    /// live), published, and judged every second from now on.
    pub async fn start(
        store: Arc<dyn Enrolments>,
        outlet: Outlet,
        logs: LogBook,
        auth: Auth,
        own: OwnHost,
        offline_after: Duration,
        tasks: &Tasks,
    ) -> Result<Fleet, StoreError> {
        let now = now_millis();
        let own_host = own.host.clone();
        let mut hosts = BTreeMap::new();
        for agent in store.agents().await? {
            if agent.revoked_ms.is_none() {
                let mut t = tracked(&agent, now);
                // In maintenance from the start when its window is still open, not offline for a second.
                t.host.presence = t.judge(now, offline_after);
                hosts.insert(agent.name.clone(), t);
            }
        }
        hosts.insert(
            own.host.0.clone(),
            Tracked {
                host: FleetHost {
                    host: own.host.clone(),
                    environment: own.environment,
                    presence: Presence::Live,
                    since_ms: now,
                    seen_ms: Some(now),
                    interval_ms: own.interval.as_millis() as u64,
                    version: env!("CARGO_PKG_VERSION").into(),
                    hub: true,
                    removed: false,
                    maintenance: None,
                    commands: Vec::new(),
                    listening: false,
                    interval_set: None,
                },
                reading_ms: Some(now),
                heard: true,
                listener: None,
            },
        );
        let fleet = Fleet {
            store,
            outlet,
            logs,
            auth,
            hosts: Arc::new(Mutex::new(hosts)),
            own: own_host,
            offline_after,
            standings: Arc::default(),
            tokens: Arc::default(),
            marks: Arc::default(),
        };
        let all: Vec<FleetHost> = fleet
            .lock_hosts()
            .values()
            .map(|t| t.host.clone())
            .collect();
        for host in &all {
            fleet.publish(host);
        }
        let judge = fleet.clone();
        let stop = tasks.token().clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(JUDGE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => {
                        judge.write_marks().await;
                        return;
                    }
                    _ = tick.tick() => {
                        judge.write_marks().await;
                        judge.judge_all().await;
                    }
                }
            }
        });
        Ok(fleet)
    }

    /// Adds a host (offline until its agent calls) and returns its listing and the agent's token.
    pub async fn add(&self, name: &str, environment: &str) -> Result<NewHost, EnrolError> {
        if name == self.own.0 {
            return Err(EnrolError::Invalid(format!(
                "'{name}' is the hub's own host, which the hub samples itself"
            )));
        }
        let (agent, token) = enrol(self.store.as_ref(), name, environment).await?;
        let host = tracked(&agent, now_millis());
        self.lock_hosts().insert(agent.name.clone(), host.clone());
        self.publish(&host.host);
        tracing::info!(host = %agent.name, environment = %agent.environment, "host added");
        Ok(NewHost {
            host: enrolled(&agent),
            token,
        })
    }

    /// Revokes a host's agent token (its next push is refused) and takes the host out of the fleet; `None`
    /// when there is no such enrolment.
    pub async fn revoke(&self, id: i64) -> Result<Option<EnrolledHost>, StoreError> {
        let now = now_millis();
        let Some(agent) = self.store.revoke_agent(id, now).await? else {
            return Ok(None);
        };
        // Revoked just now, not earlier: the name may since belong to a new enrolment, which stays.
        if agent.revoked_ms == Some(now) {
            self.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, (a, _)| a.id != agent.id);
            let gone = self.lock_hosts().remove(&agent.name);
            if let Some(mut gone) = gone {
                // Its stream of orders closes now, not at its next request.
                if let Some(listener) = gone.listener.take() {
                    listener.token.cancel();
                }
                gone.host.removed = true;
                self.publish(&gone.host);
            }
            tracing::info!(host = %agent.name, "host removed; its agent token is revoked");
        }
        Ok(Some(enrolled(&agent)))
    }

    /// Puts `host` in maintenance until `until_ms` (ends it with `None`), as `by`: while in maintenance the
    /// host is expected offline, raises no alerts and is shown grey; past `until_ms` it is judged by its
    /// contact again.
    pub async fn maintain(
        &self,
        host: &str,
        until_ms: Option<i64>,
        by: &str,
    ) -> Result<FleetHost, HostChangeError> {
        let now = now_millis();
        if host == self.own.0 {
            return Err(HostChangeError::Invalid(format!(
                "'{host}' is the hub's own host: it is never expected offline"
            )));
        }
        if let Some(until) = until_ms
            && !(now < until && until <= now + shared::MAX_MAINTENANCE_MS)
        {
            return Err(HostChangeError::Invalid(
                "a maintenance window ends in the future, at most 30 days from now".into(),
            ));
        }
        let agent = self.live_enrolment(host).await?;
        let window = until_ms.map(|until_ms| shared::Maintenance {
            until_ms,
            by: by.to_owned(),
        });
        self.store
            .set_maintenance(agent.id, window.as_ref())
            .await?
            .ok_or_else(|| HostChangeError::NotFound(host.to_owned()))?;
        let (host, was) = {
            let mut hosts = self.lock_hosts();
            let t = hosts
                .get_mut(host)
                .ok_or_else(|| HostChangeError::NotFound(host.to_owned()))?;
            t.host.maintenance = window;
            let was = t.host.presence;
            let is = t.judge(now, self.offline_after);
            t.host.presence = is;
            if is != was {
                t.host.since_ms = now;
            }
            (t.host.clone(), was)
        };
        // Every change is one line, a window moved while the host is in maintenance too.
        if host.presence != was || host.presence == Presence::Maintenance {
            self.announce(&host, was, now, false).await;
        } else {
            self.publish(&host);
        }
        Ok(host)
    }

    /// Sets `host`'s sampling interval (back to its agent's own `--interval` with `None`), as `by`: kept in
    /// the store, and sent down its agent's stream of orders now if one is open, else when it opens. The
    /// agent applies it without a restart; the host's entry shows the setting at once and the interval the
    /// agent samples at from its next push.
    pub async fn configure(
        &self,
        host: &str,
        interval: Option<Duration>,
        by: &str,
    ) -> Result<FleetHost, HostChangeError> {
        if host == self.own.0 {
            return Err(HostChangeError::Invalid(format!(
                "'{host}' is the hub's own host: its interval is the hub's --interval"
            )));
        }
        let setting = match interval {
            None => None,
            Some(d) => {
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                if !(shared::MIN_SET_INTERVAL_MS..=shared::MAX_SET_INTERVAL_MS).contains(&ms) {
                    return Err(HostChangeError::Invalid(
                        "a host's interval is between 1s and 1h".into(),
                    ));
                }
                Some(shared::IntervalSetting {
                    interval_ms: ms,
                    by: by.to_owned(),
                })
            }
        };
        let agent = self.live_enrolment(host).await?;
        self.store
            .set_interval(agent.id, setting.as_ref())
            .await?
            .ok_or_else(|| HostChangeError::NotFound(host.to_owned()))?;
        let changed = {
            let mut hosts = self.lock_hosts();
            let t = hosts
                .get_mut(host)
                .ok_or_else(|| HostChangeError::NotFound(host.to_owned()))?;
            t.host.interval_set = setting;
            if let Some(listener) = &t.listener {
                let _ = listener.settings.send(configure(&t.host));
            }
            t.host.clone()
        };
        tracing::info!(
            host,
            by,
            interval = changed.interval_set.as_ref().map_or_else(
                || "the agent's own".to_owned(),
                |i| format!("{} ms", i.interval_ms)
            ),
            "a host's sampling interval was set"
        );
        self.publish(&changed);
        Ok(changed)
    }

    /// `host`'s live enrolment, as the store has it (not the cache of tokens: a change is made on what the
    /// store holds now).
    async fn live_enrolment(&self, host: &str) -> Result<Agent, HostChangeError> {
        self.store
            .agents()
            .await?
            .into_iter()
            .find(|a| a.name == host && a.revoked_ms.is_none())
            .ok_or_else(|| HostChangeError::NotFound(host.chars().take(64).collect()))
    }

    /// The environment `host` belongs to now, if it is a host of the fleet.
    /// `agent`'s stream of orders number `epoch` (its attachment's: newer streams have greater numbers) is
    /// open, declaring `commands`: the host's entry says so (what the Controls panel offers for it) until
    /// the returned guard is dropped. The guard's token is cancelled when a newer stream of the same agent
    /// opens or the host is removed: the stream then ends. A stream older than the one listening ends at
    /// once. The host's settings go to `settings` now and whenever they change while the stream is open.
    pub fn listen(
        &self,
        agent: &Agent,
        commands: Vec<shared::CommandInfo>,
        epoch: u64,
        settings: mpsc::UnboundedSender<Order>,
    ) -> Listening {
        let token = CancellationToken::new();
        let published = {
            let mut hosts = self.lock_hosts();
            match hosts.get_mut(&agent.name) {
                Some(tracked) if tracked.listener.as_ref().is_some_and(|l| l.epoch > epoch) => {
                    token.cancel();
                    None
                }
                Some(tracked) => {
                    let _ = settings.send(configure(&tracked.host));
                    let listener = Listener {
                        epoch,
                        token: token.clone(),
                        settings,
                    };
                    if let Some(older) = tracked.listener.replace(listener) {
                        older.token.cancel();
                    }
                    tracked.host.commands = commands;
                    tracked.host.listening = true;
                    Some(tracked.host.clone())
                }
                // Removed in the meantime: nothing listens.
                None => {
                    token.cancel();
                    None
                }
            }
        };
        if let Some(host) = published {
            self.publish(&host);
        }
        Listening {
            fleet: self.clone(),
            host: agent.name.clone(),
            epoch,
            token,
        }
    }

    /// The host the hub itself runs on.
    pub fn own(&self) -> &HostId {
        &self.own
    }

    pub fn environment_now(&self, host: &str) -> Option<String> {
        self.lock_hosts()
            .get(host)
            .map(|t| t.host.environment.clone())
    }

    /// Every enrolment, revoked ones too.
    pub async fn enrolled(&self) -> Result<Vec<EnrolledHost>, StoreError> {
        Ok(self.store.agents().await?.iter().map(enrolled).collect())
    }

    /// Every environment `host` has belonged to: its own now, and those of earlier enrolments of that name
    /// (a host removed, or added again elsewhere, keeps its stored history). Empty for a name the fleet has
    /// never held: a service or the hub's own data.
    pub async fn environments_of(&self, host: &str) -> Result<Vec<String>, StoreError> {
        let mut environments: Vec<String> = self
            .lock_hosts()
            .get(host)
            .map(|t| t.host.environment.clone())
            .into_iter()
            .collect();
        for agent in self.store.agents().await? {
            if agent.name == host && !environments.contains(&agent.environment) {
                environments.push(agent.environment);
            }
        }
        Ok(environments)
    }

    /// Whether a reader with `access` may see the stored history of the host named `host`: only when it may
    /// see every environment that name has belonged to (the hub's own, for a name the fleet never held).
    pub async fn may_see_history(
        &self,
        host: &str,
        access: &shared::Access,
        home: &str,
    ) -> Result<bool, StoreError> {
        let environments = self.environments_of(host).await?;
        if environments.is_empty() {
            return Ok(access.sees(home));
        }
        Ok(environments.iter().all(|e| access.sees(e)))
    }

    fn lock_hosts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Tracked>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, host: &FleetHost) {
        let scope = Scope {
            environment: host.environment.clone(),
            host: Some(host.host.clone()),
        };
        self.outlet.emit_in(scope, Event::Host(host.clone()));
    }

    /// Judges every host's presence now; each change is published and logged.
    async fn judge_all(&self) {
        let now = now_millis();
        let changed: Vec<(FleetHost, Presence)> = {
            let mut hosts = self.lock_hosts();
            hosts
                .values_mut()
                .filter_map(|t| {
                    let was = t.host.presence;
                    let is = t.judge(now, self.offline_after);
                    // A window that has passed is over: the host is judged by its contact from now on.
                    if t.host
                        .maintenance
                        .as_ref()
                        .is_some_and(|m| m.until_ms <= now)
                    {
                        t.host.maintenance = None;
                    }
                    (is != was).then(|| {
                        t.host.presence = is;
                        t.host.since_ms = now;
                        (t.host.clone(), was)
                    })
                })
                .collect()
        };
        for (host, was) in changed {
            self.announce(&host, was, now, false).await;
        }
    }

    /// Publishes a change of presence, and writes it to the error log as one line.
    async fn announce(&self, host: &FleetHost, was: Presence, now_ms: i64, first_contact: bool) {
        self.publish(host);
        let name = format!("{} ({})", host.host, host.environment);
        let (level, message) = match host.presence {
            Presence::Live if first_contact => (
                Level::Info,
                format!("host {name} is live: its agent called for the first time"),
            ),
            Presence::Live => (
                Level::Info,
                format!("host {name} is live again (was {})", was.as_str()),
            ),
            Presence::Stale => (
                Level::Warn,
                format!(
                    "host {name} is stale: no reading for {STALE_INTERVALS} intervals ({})",
                    humantime::format_duration(Duration::from_millis(
                        STALE_INTERVALS * host.interval_ms
                    ))
                ),
            ),
            Presence::Maintenance => (
                Level::Info,
                match &host.maintenance {
                    Some(m) => format!(
                        "host {name} is in maintenance until {} (set by {})",
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + Duration::from_millis(m.until_ms.max(0) as u64)
                        ),
                        m.by
                    ),
                    None => format!("host {name} is in maintenance"),
                },
            ),
            Presence::Offline => (
                Level::Warn,
                match host.seen_ms {
                    Some(seen) => format!(
                        "host {name} is offline: no contact for {}",
                        humantime::format_duration(Duration::from_secs(
                            ((now_ms - seen).max(0) / 1000) as u64
                        ))
                    ),
                    None => format!("host {name} is offline: its agent has never been in contact"),
                },
            ),
        };
        tracing::info!(host = %host.host, environment = %host.environment, "{message}");
        let origin = crate::logs::Origin {
            host: host.host.0.clone(),
            environment: host.environment.clone(),
        };
        self.logs.own_about(&origin, level, message).await;
    }

    /// Notes a push from `agent`, and judges its host at once (back from offline the moment it calls).
    async fn heard(&self, agent: &Agent, version: &str, interval_ms: u64, reading: bool) {
        let now = now_millis();
        let version: String = version.chars().take(64).collect();
        let interval_ms = interval_ms.clamp(100, 3_600_000);
        let changed = {
            let mut hosts = self.lock_hosts();
            // A host removed while this push was under way stays removed.
            let Some(t) = hosts.get_mut(&agent.name) else {
                return;
            };
            let first_contact = t.host.seen_ms.is_none();
            t.heard = true;
            t.host.seen_ms = Some(now);
            if reading {
                t.reading_ms = Some(now);
            }
            let mut details = false;
            if t.host.version != version || t.host.interval_ms != interval_ms {
                t.host.version = version;
                t.host.interval_ms = interval_ms;
                details = true;
            }
            let was = t.host.presence;
            let is = t.judge(now, self.offline_after);
            t.host.presence = is;
            if is != was {
                t.host.since_ms = now;
                Some((t.host.clone(), Some((was, first_contact))))
            } else {
                details.then(|| (t.host.clone(), None))
            }
        };
        match changed {
            Some((host, Some((was, first)))) => self.announce(&host, was, now, first).await,
            Some((host, None)) => self.publish(&host),
            None => {}
        }
    }

    /// The enrolment the token `secret` stands for: checked before a push's body is read, so a request
    /// without a valid token costs the hub no more than the lookup. 401 (and, once a minute per address,
    /// the invalid-token alert) otherwise.
    pub async fn authenticate(
        &self,
        secret: &str,
        ip: IpAddr,
        path: &str,
    ) -> Result<Agent, PushError> {
        if !secret.starts_with(secrets::AGENT_TOKEN_PREFIX) {
            self.auth.invalid_token(ip, path).await;
            return Err(PushError::Unauthorized);
        }
        let digest = secrets::digest(secret);
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
            .filter(|(_, at)| at.elapsed() < TOKEN_TRUST)
            .map(|(agent, _)| agent.clone());
        if let Some(agent) = cached {
            return Ok(agent);
        }
        match self.store.agent_by_token(&digest).await? {
            Some(agent) => {
                self.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(digest, (agent.clone(), std::time::Instant::now()));
                Ok(agent)
            }
            None => {
                self.auth.invalid_token(ip, path).await;
                Err(PushError::Unauthorized)
            }
        }
    }

    /// Takes one push of `agent` (see [`Fleet::authenticate`]) from `ip`.
    pub async fn push(&self, agent: Agent, ip: IpAddr, batch: Batch) -> Result<Ack, PushError> {
        self.check_claim(&agent, &batch.agent, ip).await?;
        check_order(&batch)?;
        if agent.name == self.own.0 {
            return Err(PushError::BadBatch(format!(
                "'{}' is the hub's own host, which the hub samples itself: give this agent another --name",
                agent.name
            )));
        }
        self.take(agent, batch).await
    }

    /// An agent speaks only for the host it was enrolled as: anything else is a 403 and a security alert.
    pub async fn check_claim(
        &self,
        agent: &Agent,
        claimed: &str,
        ip: IpAddr,
    ) -> Result<(), PushError> {
        if claimed != agent.name {
            let claimed: String = claimed.chars().take(64).collect();
            tracing::info!(agent = %agent.name, claimed = %claimed, "forbidden: an agent spoke for another host");
            self.auth
                .raise(
                    SecurityKind::Forbidden,
                    Severity::Critical,
                    Some(format!("agent:{}", agent.name)),
                    Some(ip),
                    format!(
                        "the agent enrolled as '{}' tried to speak for the host '{claimed}'",
                        agent.name
                    ),
                )
                .await;
            return Err(PushError::Forbidden {
                enrolled: agent.name.clone(),
                claimed,
            });
        }
        Ok(())
    }

    /// Records a checked push.
    async fn take(&self, agent: Agent, mut batch: Batch) -> Result<Ack, PushError> {
        bound(&mut batch, now_millis())?;
        if batch.environment != agent.environment {
            return Err(PushError::BadBatch(format!(
                "this host was added to the environment '{}', not '{}': start the agent with --environment {}",
                agent.environment,
                batch.environment.chars().take(64).collect::<String>(),
                agent.environment
            )));
        }
        let reading = batch
            .live
            .iter()
            .chain(&batch.items)
            .any(|i| matches!(i.record, Record::Health(_)));
        let standing = self.standing(agent.id);
        let mut standing = standing.lock().await;
        let standing = standing.get_or_insert_with(|| Standing {
            acked: agent.acked_seq,
            shown_ms: 0,
        });
        let scope = Scope {
            environment: agent.environment.clone(),
            host: Some(HostId(agent.name.clone())),
        };
        // The newest reading first, for the dashboards: what the backlog holds is older and goes to history
        // only. It is recorded itself when its turn in the backlog comes.
        if let Some(live) = batch.live
            && live.seq > standing.acked
            && let Record::Health(mut health) = live.record
            && health.sampled_at_ms > standing.shown_ms
        {
            health.host = HostId(agent.name.clone());
            standing.shown_ms = health.sampled_at_ms;
            self.outlet.show_in(scope.clone(), Event::Health(health));
        }
        // Of the readings this push holds, only the newest is the host's present.
        // Whether what this push records would be recorded twice if it came again after a crash (log lines,
        // and the lines about its gaps): its mark goes to the store at once.
        let mut durable = !batch.gaps.is_empty();
        let newest = batch
            .items
            .iter()
            .filter(|i| i.seq > standing.acked)
            .filter_map(|i| match &i.record {
                Record::Health(h) => Some(h.sampled_at_ms),
                Record::Lines(_) => None,
            })
            .max()
            .unwrap_or(0);
        for item in batch.items {
            if item.seq <= standing.acked {
                continue;
            }
            match item.record {
                Record::Health(mut health) => {
                    health.host = HostId(agent.name.clone());
                    let t = health.sampled_at_ms;
                    let event = Event::Health(health);
                    if t == newest && t > standing.shown_ms {
                        standing.shown_ms = t;
                        self.outlet.emit_in(scope.clone(), event);
                    } else {
                        self.outlet.backfill(&event);
                    }
                }
                Record::Lines(lines) => {
                    let origin = crate::logs::Origin {
                        host: agent.name.clone(),
                        environment: agent.environment.clone(),
                    };
                    durable = true;
                    if let Err(e) = self.logs.append_from(&origin, lines).await {
                        // What was recorded so far stays acknowledged; the rest comes again.
                        self.acknowledge(&agent, standing.acked, true).await;
                        return Err(e.into());
                    }
                }
            }
            standing.acked = item.seq;
        }
        let origin = crate::logs::Origin {
            host: agent.name.clone(),
            environment: agent.environment.clone(),
        };
        for gap in batch.gaps {
            self.logs
                .own_about(&origin, Level::Warn, gap_message(&agent.name, gap))
                .await;
        }
        self.heard(&agent, &batch.version, batch.interval_ms, reading)
            .await;
        self.acknowledge(&agent, standing.acked, durable).await;
        Ok(Ack {
            acked: standing.acked,
        })
    }

    /// Keeps the agent's mark (and when it was last heard from) in the store: at once when `durable`, else
    /// with the others at the next second.
    async fn acknowledge(&self, agent: &Agent, acked: u64, durable: bool) {
        let now = now_millis();
        {
            let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
            if !durable {
                marks.insert(agent.id, (acked, now));
                return;
            }
            marks.remove(&agent.id);
        }
        if let Err(e) = self.store.agent_pushed(agent.id, acked, now).await {
            // The mark in memory stands for this run; a restart may then record a resent batch twice, which
            // history merges (a second's point is stored once).
            tracing::warn!(agent = %agent.name, "cannot keep an agent's position: {e}");
        }
    }

    /// Writes the marks waiting since the last second, in one transaction.
    async fn write_marks(&self) {
        let marks: Vec<(i64, u64, i64)> = {
            let mut waiting = self.marks.lock().unwrap_or_else(|p| p.into_inner());
            waiting
                .drain()
                .map(|(id, (acked, seen))| (id, acked, seen))
                .collect()
        };
        if marks.is_empty() {
            return;
        }
        if let Err(e) = self.store.agents_pushed(&marks).await {
            tracing::warn!(
                agents = marks.len(),
                "cannot keep the agents' positions: {e}"
            );
        }
    }

    fn standing(&self, id: i64) -> AgentSlot {
        let mut standings = self.standings.lock().unwrap_or_else(|p| p.into_inner());
        standings.entry(id).or_default().clone()
    }
}

/// The order that gives `host`'s agent its settings.
fn configure(host: &FleetHost) -> Order {
    Order::Configure {
        interval_ms: host.interval_set.as_ref().map(|i| i.interval_ms),
    }
}

/// A host enrolled in the store, before the hub has heard from it since it started.
fn tracked(agent: &Agent, now_ms: i64) -> Tracked {
    Tracked {
        host: FleetHost {
            host: HostId(agent.name.clone()),
            environment: agent.environment.clone(),
            presence: Presence::Offline,
            since_ms: now_ms,
            seen_ms: agent.seen_ms,
            interval_ms: agent.interval_set.as_ref().map_or(1000, |i| i.interval_ms),
            version: String::new(),
            hub: false,
            removed: false,
            maintenance: agent.maintenance.clone(),
            commands: Vec::new(),
            listening: false,
            interval_set: agent.interval_set.clone(),
        },
        reading_ms: None,
        heard: false,
        listener: None,
    }
}

/// An enrolment as the admin page lists it.
fn enrolled(agent: &Agent) -> EnrolledHost {
    EnrolledHost {
        id: agent.id,
        name: agent.name.clone(),
        environment: agent.environment.clone(),
        created_ms: agent.created_ms,
        revoked_ms: agent.revoked_ms,
        seen_ms: agent.seen_ms,
    }
}

/// Enrols a host in `store`: shared by the admin page and `watchpost token add --role agent`.
pub async fn enrol(
    store: &dyn Enrolments,
    name: &str,
    environment: &str,
) -> Result<(Agent, String), EnrolError> {
    check_name(name, "host").map_err(EnrolError::Invalid)?;
    check_name(environment, "environment").map_err(EnrolError::Invalid)?;
    let secret = secrets::new_agent_token()?;
    let agent = store
        .add_agent(name, environment, &secrets::digest(&secret), now_millis())
        .await?;
    Ok((agent, secret))
}

/// Host and environment names: what a URL, a label and a log line carry without quoting.
pub fn check_name(name: &str, what: &str) -> Result<(), String> {
    let a = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{a} {what} name has 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "{a} {what} name may hold letters, digits and . _ - only ('{}')",
            name.chars().take(64).collect::<String>()
        ));
    }
    Ok(())
}

/// How far ahead of the hub's clock an agent's reading may be dated: more is a clock to set right, and would
/// hold the host's newest reading in the future.
const MAX_CLOCK_AHEAD_MS: i64 = 60_000;
/// Dropped stretches one push may report.
const MAX_GAPS: usize = 16;

/// Holds what an agent sends to the limits the hub keeps for everything it stores: the log's limits for lines
/// (as `POST /api/ingest/logs` does), bounded lists and names for readings, times not ahead of the hub.
fn bound(batch: &mut Batch, now_ms: i64) -> Result<(), PushError> {
    use crate::logs::{MAX_FIELD_BYTES, MAX_FIELDS, MAX_SERVICE_CHARS, clip, truncate};
    if batch.gaps.len() > MAX_GAPS {
        return Err(PushError::BadBatch(format!(
            "a push reports at most {MAX_GAPS} gaps"
        )));
    }
    let ahead = |t: i64| -> Result<(), PushError> {
        if t < 0 || t > now_ms + MAX_CLOCK_AHEAD_MS {
            return Err(PushError::BadBatch(format!(
                "a record is dated {} ms from the hub's clock: set the agent's clock (NTP)",
                t.saturating_sub(now_ms)
            )));
        }
        Ok(())
    };
    for item in batch.items.iter_mut().chain(batch.live.iter_mut()) {
        match &mut item.record {
            Record::Health(h) => {
                ahead(h.sampled_at_ms)?;
                h.hostname = clip(std::mem::take(&mut h.hostname), 255);
                h.os = clip(std::mem::take(&mut h.os), 255);
                h.cores.truncate(4096);
                h.disks.truncate(1024);
                for d in &mut h.disks {
                    d.mount = clip(std::mem::take(&mut d.mount), 512);
                    d.fs = clip(std::mem::take(&mut d.fs), 64);
                }
            }
            Record::Lines(lines) => {
                for line in lines.iter_mut() {
                    ahead(line.t_ms)?;
                    let service = line.service.trim();
                    if service.is_empty()
                        || service.chars().count() > MAX_SERVICE_CHARS
                        || service.chars().any(char::is_control)
                    {
                        return Err(PushError::BadBatch(format!(
                            "a line's service must have 1 to {MAX_SERVICE_CHARS} characters, no control characters"
                        )));
                    }
                    line.service = service.to_owned();
                    line.message = truncate(std::mem::take(&mut line.message));
                    let fields = std::mem::take(&mut line.fields);
                    line.fields = fields
                        .into_iter()
                        .take(MAX_FIELDS)
                        .map(|(k, v)| (clip(k, 128), clip(v, MAX_FIELD_BYTES)))
                        .collect();
                }
            }
        }
    }
    Ok(())
}

/// Records must come oldest first, each numbered above the one before.
fn check_order(batch: &Batch) -> Result<(), PushError> {
    if batch.items.len() > collect::wire::MAX_BATCH_RECORDS {
        return Err(PushError::BadBatch(format!(
            "a batch holds at most {} records",
            collect::wire::MAX_BATCH_RECORDS
        )));
    }
    if let Some(w) = batch.items.windows(2).find(|w| w[1].seq <= w[0].seq) {
        return Err(PushError::BadBatch(format!(
            "records must be numbered in increasing order ({} came after {})",
            w[1].seq, w[0].seq
        )));
    }
    Ok(())
}

fn gap_message(host: &str, gap: Gap) -> String {
    let span = humantime::format_duration(std::time::Duration::from_secs(
        gap.to_ms.saturating_sub(gap.from_ms).max(0) as u64 / 1000,
    ));
    format!(
        "agent {host} dropped {} records from {} to {} ({span}) because its spool was full: history of {host} has a gap there",
        gap.records,
        crate::clock::rfc3339(gap.from_ms),
        crate::clock::rfc3339(gap.to_ms),
    )
}

/// While held, a host's agent holds its stream of orders open (see [`Fleet::listen`]).
pub struct Listening {
    fleet: Fleet,
    host: String,
    epoch: u64,
    token: CancellationToken,
}

impl Listening {
    /// Cancelled when the stream must close: a newer one of the same agent, or the host removed.
    pub fn closed(&self) -> CancellationToken {
        self.token.clone()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let published = {
            let mut hosts = self.fleet.lock_hosts();
            match hosts.get_mut(&self.host) {
                Some(tracked)
                    if tracked
                        .listener
                        .as_ref()
                        .is_some_and(|l| l.epoch == self.epoch) =>
                {
                    tracked.listener = None;
                    tracked.host.listening = false;
                    Some(tracked.host.clone())
                }
                _ => None,
            }
        };
        if let Some(host) = published {
            self.fleet.publish(&host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_a_url_and_a_label_carry() {
        assert!(check_name("web-1.prod_a", "host").is_ok());
        assert!(check_name("", "host").is_err());
        assert!(check_name("web 1", "host").is_err());
        assert!(check_name(&"a".repeat(65), "environment").is_err());
    }

    #[test]
    fn records_out_of_order_are_refused() {
        use collect::wire::Item;
        let lines = |seq| Item {
            seq,
            record: Record::Lines(Vec::new()),
        };
        let batch = |items| Batch {
            agent: "a".into(),
            environment: "e".into(),
            version: "0".into(),
            interval_ms: 1000,
            items,
            live: None,
            gaps: Vec::new(),
        };
        assert!(check_order(&batch(vec![lines(1), lines(2)])).is_ok());
        assert!(matches!(
            check_order(&batch(vec![lines(2), lines(2)])),
            Err(PushError::BadBatch(_))
        ));
    }
}
