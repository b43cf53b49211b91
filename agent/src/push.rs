//! Sends the spool to the hub: oldest first, the newest reading riding along while a backlog drains, each
//! batch forgotten once the hub acknowledges it. Failures back off with jitter and are logged once per
//! change of state (the hub away, the token refused, back again), not once per attempt.

use crate::config::Config;
use crate::pace::Pace;
use crate::spool::Spool;
use collect::wire::{Ack, Batch, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, PUSH_PATH};
use reqwest::StatusCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The longest wait between attempts while the hub is away, and after the hub refused the token.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
pub const REFUSED_BACKOFF: Duration = Duration::from_secs(60);
/// One push may take this long before it counts as failed.
const PUSH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum PushSetupError {
    #[error("cannot read the CA file {0}: {1}")]
    CaFile(String, std::io::Error),
    #[error("the CA file {0} holds no usable certificate: {1}")]
    Certificate(String, reqwest::Error),
    #[error("cannot set up HTTPS: {0}")]
    Client(reqwest::Error),
    #[error("--hub {0} cannot take a path: {1}")]
    Url(String, String),
}

/// How long a request to the hub may take.
pub enum Timeout {
    /// The whole request, answer included.
    Whole(Duration),
    /// Between two reads of the answer: a stream that stays open, on which the hub sends a comment at
    /// least every 15 s.
    BetweenReads(Duration),
}

/// An HTTP client for the hub: rustls with the webpki roots, or only the `--ca-file`'s authority.
pub fn client(config: &Config, timeout: Timeout) -> Result<reqwest::Client, PushSetupError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("watchpost-agent/", env!("CARGO_PKG_VERSION")));
    builder = match timeout {
        Timeout::Whole(t) => builder.timeout(t),
        Timeout::BetweenReads(t) => builder.read_timeout(t),
    };
    if let Some(ca) = &config.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| PushSetupError::CaFile(ca.display().to_string(), e))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| PushSetupError::Certificate(ca.display().to_string(), e))?;
        // The given authority only: a hub with a private CA is not also trusted under public ones.
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(PushSetupError::Client)
}

/// How the link to the hub stands, so each change is logged once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    Up,
    /// Unreachable, or answering 5xx: the reason's kind, without the details that change each attempt.
    Away(String),
    /// 401 or 403: the hub refused the agent itself.
    Refused(StatusCode),
    /// Another 4xx: the hub says what is wrong (a setting of this agent, say); nothing is sent until it is
    /// mended, and nothing is dropped.
    Rejected(String),
}

pub struct Pusher {
    client: reqwest::Client,
    url: reqwest::Url,
    token: String,
    name: String,
    environment: String,
    pace: Pace,
    spool: Arc<Mutex<Spool>>,
    ready: Arc<Notify>,
}

impl Pusher {
    pub fn new(
        config: &Config,
        spool: Arc<Mutex<Spool>>,
        ready: Arc<Notify>,
        pace: Pace,
    ) -> Result<Pusher, PushSetupError> {
        let client = client(config, Timeout::Whole(PUSH_TIMEOUT))?;
        let url = config
            .hub
            .join(PUSH_PATH)
            .map_err(|e| PushSetupError::Url(config.hub.to_string(), e.to_string()))?;
        Ok(Pusher {
            client,
            url,
            token: config.token.clone(),
            name: config.name.clone(),
            environment: config.environment.clone(),
            pace,
            spool,
            ready,
        })
    }

    /// Pushes until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut link = Link::Up;
        let mut failures = 0u32;
        loop {
            let outcome = self.push_once().await;
            let wait = match outcome {
                Ok(more) => {
                    if link != Link::Up {
                        let waiting = self.lock().unacked();
                        tracing::info!(
                            waiting,
                            "the hub answers again; sending what was spooled, oldest first"
                        );
                        link = Link::Up;
                    }
                    failures = 0;
                    if more {
                        continue;
                    }
                    None
                }
                Err(now) => {
                    if now != link {
                        let spooled = self.lock().unacked();
                        match &now {
                            Link::Away(why) => tracing::warn!(
                                spooled,
                                "the hub is unreachable ({why}); spooling readings until it answers"
                            ),
                            Link::Refused(status) => tracing::error!(
                                "the hub refused this agent ({status}): {}; retrying every minute",
                                if *status == StatusCode::UNAUTHORIZED {
                                    "the token is unknown or revoked — add the host again and replace the token file"
                                } else {
                                    "this token may not push for this host name — check --name"
                                }
                            ),
                            Link::Rejected(why) => tracing::error!(
                                spooled,
                                "the hub rejected this agent's batch: {why}; retrying every minute"
                            ),
                            Link::Up => {}
                        }
                        link = now.clone();
                    }
                    failures = failures.saturating_add(1);
                    Some(match now {
                        Link::Refused(_) | Link::Rejected(_) => REFUSED_BACKOFF,
                        _ => backoff(failures),
                    })
                }
            };
            let sleep = wait.unwrap_or(self.pace.get() * 5);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(sleep) => {}
                // New records wake the pusher, unless it is backing off.
                () = self.ready.notified(), if wait.is_none() => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends one batch; `Ok(true)` when more is waiting.
    async fn push_once(&self) -> Result<bool, Link> {
        let batch = {
            let mut spool = self.lock();
            let items = spool
                .peek(MAX_BATCH_RECORDS, MAX_BATCH_BYTES)
                .map_err(|e| Link::Away(format!("the spool cannot be read: {e}")))?;
            let gaps = spool.gaps().to_vec();
            if items.is_empty() && gaps.is_empty() {
                return Ok(false);
            }
            let last = items.last().map_or(0, |i| i.seq);
            // A backlog is draining: the dashboard shows the newest reading meanwhile.
            let live = spool.latest_health().filter(|l| l.seq > last).cloned();
            Batch {
                agent: self.name.clone(),
                environment: self.environment.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
                interval_ms: self.pace.get().as_millis() as u64,
                items,
                live,
                gaps,
            }
        };
        let sent = self
            .client
            .post(self.url.clone())
            .bearer_auth(&self.token)
            .json(&batch)
            .send()
            .await
            .map_err(|e| Link::Away(reason(&e)))?;
        let status = sent.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Link::Refused(status));
        }
        if !status.is_success() {
            let said = error_text(sent).await;
            // The status alone for a 5xx: its text may change with every attempt, and each change of the
            // reason would be logged again.
            return Err(if status.is_client_error() {
                Link::Rejected(format!("{status}: {said}"))
            } else {
                Link::Away(format!("HTTP {status}"))
            });
        }
        let ack: Ack = sent
            .json()
            .await
            .map_err(|e| Link::Away(format!("an answer that is not an acknowledgement: {e}")))?;
        let mut spool = self.lock();
        spool
            .ack(ack.acked)
            .map_err(|e| Link::Away(format!("the spool cannot be written: {e}")))?;
        spool.gaps_reported(batch.gaps.len());
        // More waiting (a backlog, or what was read meanwhile): send it now rather than at the next wake-up,
        // as long as the hub took everything this batch held (else wait, rather than send it again at once).
        let took_all = batch.items.last().is_none_or(|i| i.seq <= ack.acked);
        Ok(took_all && spool.unacked() > 0)
    }
}

/// What the hub said of a refused request: its JSON error's `{"error": "…"}`, else the text as it came,
/// cut short.
pub async fn error_text(answer: reqwest::Response) -> String {
    let text = answer.text().await.unwrap_or_default();
    let said = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(text);
    said.chars().take(300).collect()
}

/// What kind of failure: connection refused, timed out, … (the same words each attempt).
pub fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = s.to_string();
            source = s.source();
        }
        text
    }
}

/// 1 s, 2 s, 4 s … up to [`MAX_BACKOFF`], each with ±25 % jitter so agents cut off together do not return
/// together.
pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(MAX_BACKOFF);
    base.mul_f64(0.75 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        assert!(
            backoff(1) >= Duration::from_millis(750) && backoff(1) <= Duration::from_millis(1250)
        );
        assert!(backoff(3) >= Duration::from_secs(3));
        for n in [6, 10, 1000] {
            assert!(backoff(n) <= MAX_BACKOFF.mul_f64(1.25));
            assert!(backoff(n) >= MAX_BACKOFF.mul_f64(0.75));
        }
    }
}
