//! Security alerts from the sign-in, token and permission checks, and the brute-force lockout.
//!
//! Each alert is stored, then published as a `security` event (operators' and admins' streams only). Failed
//! sign-ins are counted per address and per user name in a sliding window; reaching the limit locks both out
//! for a while (even the right password is refused then) and raises one critical alert. Alerts about invalid
//! tokens are raised at most once a minute per address, so a misconfigured agent cannot flood the panel.

use super::Auth;
use crate::clock::now_millis;
use shared::{Event, Refused, SecurityAlert, SecurityKind, Severity};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When failed sign-ins lock an address or a user name out.
#[derive(Debug, Clone)]
pub struct LockoutConfig {
    /// Failures within `window` that lock out.
    pub after: u32,
    pub window: Duration,
    /// How long a lockout lasts.
    pub duration: Duration,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            after: 5,
            window: Duration::from_secs(600),
            duration: Duration::from_secs(900),
        }
    }
}

/// How often an address may raise an invalid-token alert.
const TOKEN_ALERT_EVERY: Duration = Duration::from_secs(60);
/// Keys tracked at most, so that a scan from many addresses cannot grow memory without bound.
const MAX_TRACKED: usize = 100_000;

/// Failure counts and lockouts, per key (`ip:…` or `user:…`).
#[derive(Default)]
pub struct Guard {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    locked: Mutex<HashMap<String, Instant>>,
    token_alerts: Mutex<HashMap<IpAddr, Instant>>,
}

fn keys(name: &str, ip: IpAddr) -> [String; 2] {
    [format!("ip:{ip}"), format!("user:{}", name.to_lowercase())]
}

/// A typed user name as an alert may show it: bounded, one line.
fn shown(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

impl Auth {
    /// Stores and publishes an alert. A store failure is logged, and the alert is not lost from the log.
    pub async fn raise(
        &self,
        kind: SecurityKind,
        severity: Severity,
        user: Option<String>,
        ip: Option<IpAddr>,
        message: String,
    ) {
        let alert = SecurityAlert {
            id: 0,
            t_ms: now_millis(),
            kind,
            severity,
            user,
            ip: ip.map(|ip| ip.to_string()),
            message,
            acknowledged_by: None,
            acknowledged_ms: None,
        };
        match self.accounts.add_security_alert(alert.clone()).await {
            Ok(stored) => {
                self.notifier.security(&stored);
                self.outlet.emit(None, Event::Security(stored));
            }
            Err(e) => tracing::error!(
                kind = kind.as_str(),
                message = %alert.message,
                "cannot store a security alert: {e}"
            ),
        }
    }

    /// How long sign-ins for `name` or from `ip` stay locked, if they are.
    pub fn locked_for(&self, name: &str, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut locked = self.guard.locked.lock().ok()?;
        locked.retain(|_, until| *until > now);
        keys(name, ip)
            .iter()
            .filter_map(|k| locked.get(k))
            .max()
            .map(|until| *until - now)
    }

    /// Counts a failed sign-in, raises its alert, and locks out (with a critical alert) at the limit.
    pub async fn failed_login(&self, name: &str, ip: IpAddr) {
        let name = shown(name);
        let limit = &self.config.lockout;
        let now = Instant::now();
        let mut reached = None;
        if let Ok(mut failures) = self.guard.failures.lock() {
            if failures.len() > MAX_TRACKED {
                failures.retain(|_, times| times.back().is_some_and(|t| now - *t < limit.window));
            }
            for key in keys(&name, ip) {
                let times = failures.entry(key.clone()).or_default();
                times.push_back(now);
                while times.front().is_some_and(|t| now - *t > limit.window) {
                    times.pop_front();
                }
                if times.len() >= limit.after as usize {
                    times.clear();
                    reached.get_or_insert(key);
                }
            }
        }
        self.raise(
            SecurityKind::FailedLogin,
            Severity::Warning,
            Some(name.clone()),
            Some(ip),
            format!("failed sign-in as '{name}' from {ip}"),
        )
        .await;
        if let Some(key) = reached {
            if let Ok(mut locked) = self.guard.locked.lock() {
                for k in keys(&name, ip) {
                    locked.insert(k, now + limit.duration);
                }
            }
            let by = if key.starts_with("ip:") {
                format!("from {ip}")
            } else {
                format!("for '{name}'")
            };
            tracing::warn!(user = %name, %ip, "sign-ins locked after repeated failures");
            self.raise(
                SecurityKind::BruteForce,
                Severity::Critical,
                Some(name.clone()),
                Some(ip),
                format!(
                    "{} failed sign-ins {by} within {}: sign-ins for '{name}' and from {ip} are locked for {}",
                    limit.after,
                    humantime::format_duration(limit.window),
                    humantime::format_duration(limit.duration)
                ),
            )
            .await;
        }
    }

    /// A successful sign-in clears the counts that led up to it.
    pub fn signed_in_ok(&self, name: &str, ip: IpAddr) {
        if let Ok(mut failures) = self.guard.failures.lock() {
            for key in keys(name, ip) {
                failures.remove(&key);
            }
        }
    }

    /// Raises the alert for an attempt the permission table refused.
    pub async fn forbidden_attempt(&self, refused: &Refused) {
        let Refused {
            who, role, what, ..
        } = refused;
        tracing::warn!(user = %who, role = %role, "forbidden: tried to {what}");
        self.raise(
            SecurityKind::Forbidden,
            Severity::Warning,
            Some(who.clone()),
            None,
            format!("{who} ({role}) tried to {what}"),
        )
        .await;
    }

    /// Raises the alert for an unknown or revoked token, at most once a minute per address.
    pub async fn invalid_token(&self, ip: IpAddr, path: &str) {
        let now = Instant::now();
        let due = self.guard.token_alerts.lock().is_ok_and(|mut last| {
            if last.len() > MAX_TRACKED {
                last.retain(|_, t| now - *t < TOKEN_ALERT_EVERY);
            }
            match last.get(&ip) {
                Some(t) if now - *t < TOKEN_ALERT_EVERY => false,
                _ => {
                    last.insert(ip, now);
                    true
                }
            }
        });
        if due {
            let path: String = path.chars().take(128).collect();
            self.raise(
                SecurityKind::InvalidToken,
                Severity::Warning,
                None,
                Some(ip),
                format!("a request from {ip} to {path} used an unknown or revoked API token"),
            )
            .await;
        }
    }
}
