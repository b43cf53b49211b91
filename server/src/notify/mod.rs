//! Notifications that reach people outside the dashboard: alerts (and security alerts) are grouped as
//! Alertmanager groups them, and each group's message goes to every channel (webhook, Slack, email).
//!
//! Nothing here can hold up an evaluation: alerts arrive through a bounded queue that is never waited on, a
//! single task groups them, and each channel delivers from its own queue with retries and exponential
//! backoff. Every attempt updates the channel's status (published to every dashboard); a delivery given up
//! on is also written to the error log.
//!
//! ```toml
//! [notify]
//! group_by = ["alertname"]   # labels whose values form a group (default: the rule's name)
//! group_wait = "30s"         # a new group waits this long for the rest of its storm
//! group_interval = "5m"      # then changes are sent at most this often
//! repeat_interval = "4h"     # and firing alerts repeated this often (not once all are acknowledged)
//! retries = 5                # attempts after the first
//! retry_backoff = "1s"       # the first wait; it doubles after each failure, up to 5 minutes
//! external_url = "https://watchpost.example.com"   # links in messages (default: the listen address)
//! ```

pub mod channel;
pub mod group;
pub mod notice;
pub mod payload;

use crate::clock::now_millis;
use crate::logs::LogBook;
use crate::outlet::Outlet;
use crate::tasks::Tasks;
use channel::Channel;
use group::{Batch, Groups, Timing};
use notice::{Notice, NoticeStatus};
use serde::Deserialize;
use shared::{Alert, ChannelStatus, DeliveryState, Event, Level, SecurityAlert};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Alerts waiting to be grouped; a full queue drops (and logs) rather than wait.
const QUEUE: usize = 4096;
/// Messages waiting for one channel.
const CHANNEL_QUEUE: usize = 256;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The `[notify]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    pub group_by: Option<Vec<String>>,
    pub group_wait: Option<String>,
    pub group_interval: Option<String>,
    pub repeat_interval: Option<String>,
    pub retries: Option<u32>,
    pub retry_backoff: Option<String>,
    pub external_url: Option<String>,
}

/// Grouping, retries and links, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub timing: Timing,
    pub retries: u32,
    pub retry_backoff: Duration,
    /// `None`: the listen address.
    pub external_url: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            timing: Timing {
                group_by: vec!["alertname".into()],
                group_wait_ms: 30_000,
                group_interval_ms: 300_000,
                repeat_interval_ms: 4 * 3_600_000,
            },
            retries: 5,
            retry_backoff: Duration::from_secs(1),
            external_url: None,
        }
    }
}

impl NotifyFile {
    pub fn check(self) -> Result<NotifyConfig, String> {
        let mut config = NotifyConfig::default();
        let duration = |name: &str, text: &Option<String>, into: &mut i64| -> Result<(), String> {
            if let Some(text) = text {
                let d = humantime::parse_duration(text)
                    .map_err(|e| format!("[notify] {name} '{text}': {e}"))?;
                *into = d.as_millis() as i64;
            }
            Ok(())
        };
        if let Some(labels) = self.group_by {
            if labels.iter().any(|l| l.trim().is_empty()) {
                return Err("[notify] group_by: a label name is empty".into());
            }
            config.timing.group_by = labels;
        }
        duration(
            "group_wait",
            &self.group_wait,
            &mut config.timing.group_wait_ms,
        )?;
        duration(
            "group_interval",
            &self.group_interval,
            &mut config.timing.group_interval_ms,
        )?;
        duration(
            "repeat_interval",
            &self.repeat_interval,
            &mut config.timing.repeat_interval_ms,
        )?;
        if config.timing.group_interval_ms < 100 {
            return Err("[notify] group_interval must be at least 100ms".into());
        }
        if config.timing.repeat_interval_ms < config.timing.group_interval_ms {
            return Err("[notify] repeat_interval must not be shorter than group_interval".into());
        }
        if let Some(retries) = self.retries {
            if retries > 20 {
                return Err("[notify] retries: at most 20".into());
            }
            config.retries = retries;
        }
        let mut backoff = config.retry_backoff.as_millis() as i64;
        duration("retry_backoff", &self.retry_backoff, &mut backoff)?;
        if backoff < 10 {
            return Err("[notify] retry_backoff must be at least 10ms".into());
        }
        config.retry_backoff = Duration::from_millis(backoff as u64);
        if let Some(url) = self.external_url {
            reqwest::Url::parse(&url).map_err(|e| format!("[notify] external_url '{url}': {e}"))?;
            config.external_url = Some(url.trim_end_matches('/').to_owned());
        }
        Ok(config)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("there is no channel named '{0}'")]
    NoChannel(String),
    #[error("{0}")]
    Failed(String),
}

/// Channel statuses, published whole under the lock so the newest event always holds the newest status.
struct Statuses {
    list: Mutex<Vec<ChannelStatus>>,
    outlet: Outlet,
}

impl Statuses {
    fn update(&self, index: usize, change: impl FnOnce(&mut ChannelStatus)) {
        let Ok(mut list) = self.list.lock() else {
            return;
        };
        if let Some(status) = list.get_mut(index) {
            change(status);
        }
        self.outlet.emit(None, Event::Channels(list.clone()));
    }
}

struct Worker {
    channel: Channel,
    queue: mpsc::Sender<Batch>,
}

struct Shared {
    workers: Vec<Worker>,
    statuses: Statuses,
    http: reqwest::Client,
    external_url: String,
    /// Where a delivery given up on is written.
    logs: LogBook,
}

/// Where alerts are handed for notification, and the channels' test button. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Notice>,
    shared: Arc<Shared>,
}

impl Notifier {
    /// Starts the grouping task and one delivery task per channel.
    pub fn start(
        channels: Vec<Channel>,
        config: NotifyConfig,
        default_url: String,
        outlet: Outlet,
        logs: LogBook,
        tasks: &Tasks,
    ) -> Notifier {
        let statuses: Vec<ChannelStatus> = channels
            .iter()
            .map(|c| ChannelStatus {
                name: c.name.clone(),
                kind: c.kind,
                target: c.target.clone(),
                min_severity: c.min_severity,
                state: DeliveryState::Idle,
                sent: 0,
                failed: 0,
                last_ok_ms: None,
                last_error: None,
                last_error_ms: None,
            })
            .collect();
        outlet.emit(None, Event::Channels(statuses.clone()));
        let mut receivers = Vec::new();
        let workers = channels
            .into_iter()
            .map(|channel| {
                let (queue, rx) = mpsc::channel(CHANNEL_QUEUE);
                receivers.push(rx);
                Worker { channel, queue }
            })
            .collect();
        let http = http_client(None).unwrap_or_default();
        let shared = Arc::new(Shared {
            workers,
            statuses: Statuses {
                list: Mutex::new(statuses),
                outlet,
            },
            http,
            external_url: config.external_url.clone().unwrap_or(default_url),
            logs,
        });
        for (index, rx) in receivers.into_iter().enumerate() {
            tasks.spawn(deliver_loop(
                shared.clone(),
                index,
                rx,
                config.retries,
                config.retry_backoff,
                tasks.token().clone(),
            ));
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tasks.spawn(group_loop(
            shared.clone(),
            Groups::new(config.timing),
            rx,
            tasks.token().clone(),
        ));
        Notifier { tx, shared }
    }

    fn hand(&self, notice: Notice) {
        if self.shared.workers.is_empty() {
            return;
        }
        if self.tx.try_send(notice).is_err() {
            tracing::warn!("the notification queue is full; an alert change was not notified");
        }
    }

    /// A rule's alert changed (fired, resolved, acknowledged, silenced).
    pub fn alert(&self, alert: &Alert) {
        if let Some(notice) = Notice::of_alert(alert) {
            self.hand(notice);
        }
    }

    /// Alerts that were firing before a restart: their resolve will be told, their firing not again.
    pub fn seed(&self, alerts: &[Alert]) {
        for alert in alerts {
            if let Some(mut notice) = Notice::of_alert(alert)
                && notice.status == NoticeStatus::Firing
            {
                // Marked as seeded by the value: see `group_loop`.
                notice.annotations.insert(SEEDED.into(), String::new());
                self.hand(notice);
            }
        }
    }

    pub fn security(&self, alert: &SecurityAlert) {
        self.hand(Notice::of_security(alert));
    }

    /// Sends one test message on `channel` at once (no grouping, no retries), saying who asked.
    pub async fn test(&self, channel: &str, by: &str) -> Result<String, NotifyError> {
        let index = self
            .shared
            .workers
            .iter()
            .position(|w| w.channel.name == channel)
            .ok_or_else(|| NotifyError::NoChannel(channel.to_owned()))?;
        let worker = &self.shared.workers[index];
        let labels = BTreeMap::from([
            ("alertname".to_string(), "TestAlert".to_string()),
            ("instance".to_string(), "watchpost".to_string()),
        ]);
        let now = now_millis();
        let batch = Batch {
            group_key: "{}:{alertname=\"TestAlert\"}".into(),
            group_labels: BTreeMap::from([("alertname".to_string(), "TestAlert".to_string())]),
            alerts: vec![Notice {
                fingerprint: notice::fingerprint(&labels),
                status: NoticeStatus::Firing,
                labels,
                annotations: BTreeMap::from([(
                    "summary".to_string(),
                    format!(
                        "A test notification from Watchpost, sent by {by}: this channel works."
                    ),
                )]),
                severity: worker.channel.min_severity.max(shared::Severity::Info),
                starts_ms: now,
                ends_ms: None,
                value: None,
                silenced_until_ms: None,
                acknowledged: false,
                one_off: true,
                path: "/alerts".into(),
            }],
        };
        let result = worker
            .channel
            .deliver(&self.shared.http, &batch, &self.shared.external_url)
            .await;
        record(&self.shared, index, &result, false);
        result
            .map(|()| format!("sent to {}", worker.channel.target))
            .map_err(NotifyError::Failed)
    }
}

/// The annotation that marks a seeded notice on its way to the grouping task (removed there).
const SEEDED: &str = "__seeded";

async fn group_loop(
    shared: Arc<Shared>,
    mut groups: Groups,
    mut rx: mpsc::Receiver<Notice>,
    shutdown: CancellationToken,
) {
    loop {
        let due = groups.next_due();
        let sleep = async {
            match due {
                Some(at) => {
                    let wait = (at - now_millis()).max(0) as u64;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            received = rx.recv() => match received {
                Some(mut notice) => {
                    if notice.annotations.remove(SEEDED).is_some() {
                        groups.seed(notice, now_millis());
                    } else {
                        groups.add(notice, now_millis());
                    }
                }
                None => return,
            },
            () = sleep => {
                for batch in groups.flush(now_millis()) {
                    for (index, worker) in shared.workers.iter().enumerate() {
                        let Some(batch) = worker.channel.filter(&batch) else {
                            continue;
                        };
                        if worker.queue.try_send(batch).is_err() {
                            let e = "its queue is full (deliveries are failing or slow); a message was dropped";
                            give_up(&shared, index, e).await;
                            record(&shared, index, &Err(e.to_owned()), false);
                        }
                    }
                }
            }
        }
    }
}

/// Delivers one channel's messages in order, each with retries.
async fn deliver_loop(
    shared: Arc<Shared>,
    index: usize,
    mut rx: mpsc::Receiver<Batch>,
    retries: u32,
    backoff: Duration,
    shutdown: CancellationToken,
) {
    let channel = &shared.workers[index].channel;
    loop {
        let batch = tokio::select! {
            () = shutdown.cancelled() => return,
            received = rx.recv() => match received {
                Some(batch) => batch,
                None => return,
            },
        };
        let mut wait = backoff;
        for attempt in 0..=retries {
            let result = channel
                .deliver(&shared.http, &batch, &shared.external_url)
                .await;
            match result {
                Ok(()) => {
                    record(&shared, index, &Ok(()), false);
                    break;
                }
                Err(e) if attempt < retries => {
                    tracing::debug!(channel = %channel.name, attempt, "notification failed, retrying: {e}");
                    record(&shared, index, &Err(e), true);
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    let why = format!("{} attempts failed; the last: {e}", retries + 1);
                    // The error log first: whoever sees the status can find the entry.
                    give_up(&shared, index, &why).await;
                    record(&shared, index, &Err(why), false);
                }
            }
        }
    }
}

/// Updates a channel's status after an attempt; `retrying` when another attempt follows.
fn record(shared: &Shared, index: usize, result: &Result<(), String>, retrying: bool) {
    let now = now_millis();
    shared.statuses.update(index, |s| match result {
        Ok(()) => {
            s.state = DeliveryState::Ok;
            s.sent += 1;
            s.last_ok_ms = Some(now);
        }
        Err(e) => {
            s.state = if retrying {
                DeliveryState::Retrying
            } else {
                s.failed += 1;
                DeliveryState::Failing
            };
            s.last_error = Some(e.clone());
            s.last_error_ms = Some(now);
        }
    });
}

/// A message given up on: the error log says so (and the status already does).
async fn give_up(shared: &Shared, index: usize, why: &str) {
    let name = &shared.workers[index].channel.name;
    let message = format!("notification channel '{name}' could not deliver a message: {why}");
    shared.logs.own(Level::Error, message).await;
}

/// The client webhook and Slack deliveries go through, trusting `ca` besides the public roots when given.
/// Redirects are not followed: the webhook's URL is the one the admin checked; a redirect could send the
/// alert's text to a host nobody named.
pub(crate) fn http_client(ca: Option<&crate::tls::CaFile>) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("watchpost/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    let builder = match ca {
        Some(ca) => ca.trusted_by(builder),
        None => builder,
    };
    builder
        .build()
        .map_err(|e| format!("cannot create the notification client: {e}"))
}
