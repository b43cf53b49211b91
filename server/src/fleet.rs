//! The hosts other than the hub's: their enrolment, and what their agents push.
//!
//! An agent's push is checked here (its token, and that it pushes for the host it was enrolled as), then
//! every record above the agent's acknowledged mark goes where the hub's own readings go: a health reading
//! to the outlet (the dashboards, history and alerts) when it is the host's newest, to history only when it
//! is from a backlog; log lines to the log book, marked with their host. The mark is kept in the store, so a
//! batch sent again — the answer was lost, or the hub restarted — is recorded once.

use crate::auth::Auth;
use crate::auth::secrets::{self, SecretError};
use crate::clock::now_millis;
use crate::logs::LogBook;
use crate::outlet::Outlet;
use collect::wire::{Ack, Batch, Gap, Record};
use shared::{Event, HostId, Level, Scope, SecurityKind, Severity};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use store::{Agent, Enrolments, StoreError};

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

/// Cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    store: Arc<dyn Enrolments>,
    outlet: Outlet,
    logs: LogBook,
    auth: Auth,
    /// Per agent (by enrolment id), behind a lock of its own: one agent's pushes are taken one at a time (a
    /// push sent again while the first is still being recorded waits, then finds its records acknowledged),
    /// and agents never wait for each other.
    standings: Arc<Mutex<HashMap<i64, AgentSlot>>>,
}

impl Fleet {
    pub fn new(store: Arc<dyn Enrolments>, outlet: Outlet, logs: LogBook, auth: Auth) -> Self {
        Fleet {
            store,
            outlet,
            logs,
            auth,
            standings: Arc::default(),
        }
    }

    /// Takes one push from `ip` with the token `secret`.
    pub async fn push(&self, secret: &str, ip: IpAddr, batch: Batch) -> Result<Ack, PushError> {
        let Some(agent) = self.store.agent_by_token(&secrets::digest(secret)).await? else {
            self.auth.invalid_token(ip, collect::wire::PUSH_PATH).await;
            return Err(PushError::Unauthorized);
        };
        if batch.agent != agent.name {
            let claimed: String = batch.agent.chars().take(64).collect();
            tracing::info!(agent = %agent.name, claimed = %claimed, "forbidden: an agent pushed for another host");
            self.auth
                .raise(
                    SecurityKind::Forbidden,
                    Severity::Critical,
                    Some(format!("agent:{}", agent.name)),
                    Some(ip),
                    format!(
                        "the agent enrolled as '{}' tried to push readings for the host '{claimed}'",
                        agent.name
                    ),
                )
                .await;
            return Err(PushError::Forbidden {
                enrolled: agent.name,
                claimed,
            });
        }
        check_order(&batch)?;
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
                Record::Lines(mut lines) => {
                    for line in &mut lines {
                        line.fields.insert("host".into(), agent.name.clone());
                    }
                    if let Err(e) = self.logs.append(lines).await {
                        // What was recorded so far stays acknowledged; the rest comes again.
                        self.acknowledge(&agent, standing.acked).await;
                        return Err(e.into());
                    }
                }
            }
            standing.acked = item.seq;
        }
        for gap in batch.gaps {
            self.logs
                .own(Level::Warn, gap_message(&agent.name, gap))
                .await;
        }
        self.acknowledge(&agent, standing.acked).await;
        Ok(Ack {
            acked: standing.acked,
        })
    }

    /// Keeps the agent's mark (and when it was last heard from) in the store.
    async fn acknowledge(&self, agent: &Agent, acked: u64) {
        if let Err(e) = self.store.agent_pushed(agent.id, acked, now_millis()).await {
            // The mark in memory stands for this run; a restart may then record a resent batch twice, which
            // history merges (a second's point is stored once).
            tracing::warn!(agent = %agent.name, "cannot keep an agent's position: {e}");
        }
    }

    fn standing(&self, id: i64) -> AgentSlot {
        let mut standings = self.standings.lock().unwrap_or_else(|p| p.into_inner());
        standings.entry(id).or_default().clone()
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
    if name.is_empty() || name.len() > 64 {
        return Err(format!("a {what} name has 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "a {what} name may hold letters, digits and . _ - only ('{}')",
            name.chars().take(64).collect::<String>()
        ));
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
        (gap.to_ms - gap.from_ms).max(0) as u64 / 1000,
    ));
    format!(
        "agent {host} dropped {} records from {} to {} ({span}) because its spool was full: history of {host} has a gap there",
        gap.records,
        crate::clock::rfc3339(gap.from_ms),
        crate::clock::rfc3339(gap.to_ms),
    )
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
