//! Security alerts from the sign-in, token and permission checks, and the brute-force lockout.
//!
//! Each alert is stored, then published as a `security` event (operators' and admins' streams only). Sign-in
//! attempts are counted before the password is checked, in a sliding window, per name from an address, per
//! address, and per name from addresses the user has never signed in from; what reaches the limit is locked
//! for a while (even the right password is refused then) and raises one critical alert. So a burst of any
//! size gets at most the limit's password checks, and failures from elsewhere never lock a user out of the
//! addresses they sign in from. Alerts about invalid
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

/// Sign-in attempts in the window, per key (see [`keys`]), and the invalid-token alert times per address.
#[derive(Default)]
pub struct Guard {
    counts: Mutex<Counts>,
    token_alerts: Mutex<HashMap<IpAddr, Instant>>,
}

#[derive(Default)]
struct Counts {
    attempts: HashMap<String, VecDeque<Instant>>,
    /// Locks this server set, and when: the store is where locks live (so `watchpost user unlock` can lift
    /// one), but a store read that began before a lock was written cannot see it, so until a read begun
    /// later says the lock is gone, this copy refuses.
    locks: HashMap<String, Instant>,
}

/// What a sign-in attempt counts against: the name from this address, the address (whatever the name), and
/// the name from anywhere, which only counts (and locks) for addresses the user has not signed in from:
/// failures elsewhere never lock a user out of the addresses they use.
fn keys(name: &str, ip: IpAddr, known_address: bool) -> Vec<String> {
    let name = name.to_lowercase();
    let mut keys = vec![format!("pair:{name}|{ip}"), format!("ip:{ip}")];
    if !known_address {
        keys.push(format!("name:{name}"));
    }
    keys
}

/// A typed user name as an alert may show it: bounded, one line.
fn shown(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// An attempt let through to the password check, counted already: a burst can never have more checks in
/// flight than the limit allows. Settle it with [`Auth::sign_in_failed`], [`Auth::sign_in_passed`] or
/// [`Auth::sign_in_unchecked`].
#[must_use]
pub struct Ticket {
    name: String,
    ip: IpAddr,
    keys: Vec<String>,
    /// Keys whose count reached the limit with this attempt: locked if it fails.
    reached: Vec<String>,
}

/// Whether a sign-in attempt may go on to the password check.
pub enum Gate {
    Go(Ticket),
    /// Locked out (for about this long): no password is checked.
    Locked(Duration),
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

    /// Counts an attempt to sign in as `name` from `ip` before its password is checked, or refuses it when
    /// a lock is in force or the attempts in the window have reached the limit. `known_address`: whether the
    /// user has signed in from `ip` before.
    pub async fn begin_sign_in(&self, name: &str, ip: IpAddr, known_address: bool) -> Gate {
        let name = shown(name);
        let keys = keys(&name, ip, known_address);
        let limit = &self.config.lockout;
        let asked = Instant::now();
        let stored = self.accounts.logins_locked_until(&keys, now_millis()).await;
        match &stored {
            Ok(Some(until_ms)) => {
                let left = u64::try_from(until_ms - now_millis()).unwrap_or(0);
                return Gate::Locked(Duration::from_millis(left));
            }
            Ok(None) => {}
            // The counts below still bound the checks.
            Err(e) => tracing::error!("cannot read the sign-in locks: {e}"),
        }
        let now = Instant::now();
        let Ok(mut counts) = self.guard.counts.lock() else {
            return Gate::Locked(limit.duration);
        };
        let Counts { attempts, locks } = &mut *counts;
        if attempts.len() > MAX_TRACKED {
            attempts.retain(|_, times| times.back().is_some_and(|t| now - *t < limit.window));
        }
        if locks.len() > MAX_TRACKED {
            locks.retain(|_, set| now - *set < limit.duration);
        }
        for key in &keys {
            if let Some(set) = locks.get(key) {
                if stored.is_ok() && asked > *set {
                    // Expired or lifted in the store, read after the lock was set.
                    locks.remove(key);
                } else {
                    return Gate::Locked(limit.duration);
                }
            }
        }
        let after = limit.after.max(1) as usize;
        for key in &keys {
            if let Some(times) = attempts.get_mut(key) {
                while times.front().is_some_and(|t| now - *t > limit.window) {
                    times.pop_front();
                }
                if times.len() >= after {
                    return Gate::Locked(limit.duration);
                }
            }
        }
        let mut reached = Vec::new();
        for key in &keys {
            let times = attempts.entry(key.clone()).or_default();
            times.push_back(now);
            if times.len() == after {
                reached.push(key.clone());
            }
        }
        Gate::Go(Ticket {
            name,
            ip,
            keys,
            reached,
        })
    }

    /// The password was right: the counts for this name from this address, and for the address, start over.
    pub fn sign_in_passed(&self, ticket: Ticket) {
        if let Ok(mut counts) = self.guard.counts.lock() {
            let attempts = &mut counts.attempts;
            for key in &ticket.keys {
                if key.starts_with("name:") {
                    // The name's count is about other addresses: only this attempt comes off it.
                    if let Some(times) = attempts.get_mut(key) {
                        times.pop_back();
                    }
                } else {
                    attempts.remove(key);
                }
            }
        }
    }

    /// The password was never checked (no hashing slot was free): the attempt does not count.
    pub fn sign_in_unchecked(&self, ticket: Ticket) {
        if let Ok(mut counts) = self.guard.counts.lock() {
            let attempts = &mut counts.attempts;
            for key in &ticket.keys {
                if let Some(times) = attempts.get_mut(key) {
                    times.pop_back();
                }
            }
        }
    }

    /// The password was wrong: raises the failed sign-in alert, and when this attempt reached the limit,
    /// locks what reached it (kept in the store, so `watchpost user unlock` and restarts see it) and raises
    /// a critical alert.
    pub async fn sign_in_failed(&self, ticket: Ticket) {
        let Ticket {
            name, ip, reached, ..
        } = ticket;
        let limit = &self.config.lockout;
        self.raise(
            SecurityKind::FailedLogin,
            Severity::Warning,
            Some(name.clone()),
            Some(ip),
            format!("failed sign-in as '{name}' from {ip}"),
        )
        .await;
        if reached.is_empty() {
            return;
        }
        let until_ms = now_millis()
            .saturating_add(i64::try_from(limit.duration.as_millis()).unwrap_or(i64::MAX));
        match self.accounts.lock_logins(&reached, until_ms).await {
            Ok(()) => {
                // The lock holds from now on; after it the count starts over.
                if let Ok(mut counts) = self.guard.counts.lock() {
                    let now = Instant::now();
                    for key in &reached {
                        counts.attempts.remove(key);
                        counts.locks.insert(key.clone(), now);
                    }
                }
            }
            // The counts stay at the limit, which refuses attempts until the window passes.
            Err(e) => tracing::error!("cannot store a sign-in lock: {e}"),
        }
        let what: Vec<String> = reached
            .iter()
            .map(|key| {
                if key.starts_with("pair:") {
                    format!("'{name}' from {ip}")
                } else if key.starts_with("ip:") {
                    format!("every name from {ip}")
                } else {
                    format!("'{name}' from addresses it has not signed in from")
                }
            })
            .collect();
        // INFO, not WARN: WARN lines go to the error log, which viewers read; the alert below carries
        // the name and the address to operators and admins.
        tracing::info!(user = %name, %ip, "sign-ins locked after repeated failures");
        self.raise(
            SecurityKind::BruteForce,
            Severity::Critical,
            Some(name.clone()),
            Some(ip),
            format!(
                "{} failed sign-ins within {}: sign-ins for {} are locked for {} (watchpost user unlock lifts it)",
                limit.after,
                humantime::format_duration(limit.window),
                what.join(" and "),
                humantime::format_duration(limit.duration)
            ),
        )
        .await;
    }

    /// Raises the alert for an attempt the permission table refused.
    pub async fn forbidden_attempt(&self, refused: &Refused) {
        let Refused {
            who,
            role,
            what,
            outside,
            ..
        } = refused;
        // INFO, not WARN (the error log is for viewers too): the alert below reaches operators and admins.
        tracing::info!(user = %who, role = %role, "forbidden: tried to {what}");
        let message = match outside {
            Some(environment) => format!("{who} (no role in {environment}) tried to {what}"),
            None => format!("{who} ({role}) tried to {what}"),
        };
        self.raise(
            SecurityKind::Forbidden,
            Severity::Warning,
            Some(who.clone()),
            None,
            message,
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
