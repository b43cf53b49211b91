//! Deployments: each (service, environment) moves Queued → In progress → Success / Failure, whether a
//! deploy command run from Watchpost drives it or an external CI reports it (`POST /api/deployments`,
//! shaped like GitHub's deployment statuses).

use serde::{Deserialize, Serialize};

/// Where a deployment is; the names are GitHub's deployment-status states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployState {
    /// Waiting to start (GitHub's `pending` reads as this too).
    Queued,
    InProgress,
    Success,
    Failure,
    /// The deployment could not be carried out (as opposed to a deployed version that failed).
    Error,
    /// Replaced by a newer deployment.
    Inactive,
}

impl DeployState {
    pub const ALL: [DeployState; 6] = [
        DeployState::Queued,
        DeployState::InProgress,
        DeployState::Success,
        DeployState::Failure,
        DeployState::Error,
        DeployState::Inactive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeployState::Queued => "queued",
            DeployState::InProgress => "in_progress",
            DeployState::Success => "success",
            DeployState::Failure => "failure",
            DeployState::Error => "error",
            DeployState::Inactive => "inactive",
        }
    }

    /// Reads a state as CI systems send it (GitHub's names, and `pending` for queued).
    pub fn parse(s: &str) -> Option<DeployState> {
        match s {
            "pending" => Some(DeployState::Queued),
            _ => DeployState::ALL.into_iter().find(|d| d.as_str() == s),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DeployState::Queued => "Queued",
            DeployState::InProgress => "In progress",
            DeployState::Success => "Success",
            DeployState::Failure => "Failed",
            DeployState::Error => "Error",
            DeployState::Inactive => "Inactive",
        }
    }

    pub fn finished(self) -> bool {
        !matches!(self, DeployState::Queued | DeployState::InProgress)
    }
}

/// One deployment of a version of a service to an environment, whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub state: DeployState,
    /// What it is doing now ("migrating the database"), while in progress.
    pub step: Option<String>,
    /// How far along, 0–100, when known.
    pub progress: Option<f32>,
    /// Who started it: a user, or the token a CI system reported with.
    pub actor: String,
    /// The command run that carries it out, when Watchpost runs it (its output is the live log).
    pub run: Option<i64>,
    /// A link to the external log or build (CI's `log_url` / `target_url`).
    pub url: Option<String>,
    pub description: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub finished_ms: Option<i64>,
    /// The least role that sees it: a command's deployment is seen by whoever sees the command's runs.
    #[serde(default)]
    pub audience: crate::Role,
}

impl Deployment {
    /// How long it took (or has taken so far, as of `now_ms`).
    pub fn duration_ms(&self, now_ms: i64) -> i64 {
        self.finished_ms.unwrap_or(now_ms) - self.created_ms
    }
}

/// Deployments kept in the live state, newest first.
pub const RECENT_DEPLOYMENTS: usize = 100;

/// A status report from CI (`POST /api/deployments`), GitHub-style: a new deployment when `id` is absent,
/// else a new status of deployment `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentReport {
    pub id: Option<i64>,
    pub service: Option<String>,
    pub environment: Option<String>,
    /// The version deployed (GitHub's `ref`, also accepted under that name).
    #[serde(alias = "ref")]
    pub version: Option<String>,
    pub state: String,
    pub description: Option<String>,
    /// A link to the run's log (GitHub's `log_url`; `target_url` is accepted too).
    #[serde(alias = "target_url")]
    pub log_url: Option<String>,
    pub environment_url: Option<String>,
    pub step: Option<String>,
    pub progress: Option<f32>,
}

/// Upserts `d` into `list` (newest first by id), keeping at most [`RECENT_DEPLOYMENTS`]; an older copy
/// (by `updated_ms`) never replaces a newer one.
pub fn merge_deployment(list: &mut Vec<Deployment>, d: Deployment) {
    match list.iter_mut().find(|x| x.id == d.id) {
        Some(existing) => {
            if existing.updated_ms <= d.updated_ms {
                *existing = d;
            }
        }
        None => {
            let at = list.iter().position(|x| x.id < d.id).unwrap_or(list.len());
            list.insert(at, d);
            list.truncate(RECENT_DEPLOYMENTS);
        }
    }
}

impl Deployment {
    /// Whether a reader with `access` sees this deployment: by the reader's role in its environment.
    pub fn visible_to(&self, access: &crate::Access) -> bool {
        access
            .role_in(&self.environment)
            .is_some_and(|role| self.audience <= role)
    }
}

/// The newest deployment of each (service, environment), in service then environment order.
pub fn current_deployments(list: &[Deployment]) -> Vec<&Deployment> {
    let mut seen = std::collections::BTreeMap::new();
    for d in list {
        seen.entry((d.service.as_str(), d.environment.as_str()))
            .or_insert(d);
    }
    seen.into_values().collect()
}

/// Reads "step 2/5: migrating" (any case, the text optional) from a deploy script's output line: the step's
/// text and the progress it means. Lines that say nothing of the kind give `None`.
pub fn parse_step(line: &str) -> Option<(String, f32)> {
    let lower = line.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix("step ")?;
    let (numbers, text) = match rest.split_once(':') {
        Some((n, t)) => (n.trim(), t.trim()),
        None => (rest.trim(), ""),
    };
    let (n, m) = numbers.split_once('/')?;
    let (n, m): (u32, u32) = (n.trim().parse().ok()?, m.trim().parse().ok()?);
    if m == 0 || n > m {
        return None;
    }
    let original = line.trim();
    let text = if text.is_empty() {
        format!("step {n} of {m}")
    } else {
        // The text as written, not lower-cased.
        original[original.len() - text.len()..].to_owned()
    };
    Some((text, 100.0 * n as f32 / m as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(id: i64, service: &str, env: &str, updated_ms: i64) -> Deployment {
        Deployment {
            id,
            service: service.into(),
            environment: env.into(),
            version: "1.0".into(),
            state: DeployState::Queued,
            step: None,
            progress: None,
            actor: "ci".into(),
            run: None,
            url: None,
            description: None,
            created_ms: 0,
            updated_ms,
            finished_ms: None,
            audience: crate::Role::Viewer,
        }
    }

    #[test]
    fn states_read_githubs_names() {
        assert_eq!(DeployState::parse("pending"), Some(DeployState::Queued));
        assert_eq!(
            DeployState::parse("in_progress"),
            Some(DeployState::InProgress)
        );
        assert_eq!(DeployState::parse("failure"), Some(DeployState::Failure));
        assert_eq!(DeployState::parse("done"), None);
        assert!(DeployState::Success.finished() && !DeployState::InProgress.finished());
    }

    #[test]
    fn the_newest_per_service_and_environment_is_current() {
        let mut list = Vec::new();
        merge_deployment(&mut list, deployment(1, "shop", "prod", 1));
        merge_deployment(&mut list, deployment(2, "shop", "staging", 1));
        merge_deployment(&mut list, deployment(3, "shop", "prod", 1));
        let mut older = deployment(3, "shop", "prod", 0);
        older.state = DeployState::Failure;
        merge_deployment(&mut list, older);
        assert_eq!(
            list[0].state,
            DeployState::Queued,
            "an older copy is ignored"
        );
        let current: Vec<i64> = current_deployments(&list).iter().map(|d| d.id).collect();
        assert_eq!(current, [3, 2]);
    }

    #[test]
    fn steps_become_progress() {
        assert_eq!(
            parse_step("Step 2/5: Migrating the DB"),
            Some(("Migrating the DB".into(), 40.0))
        );
        assert_eq!(parse_step("step 1/4"), Some(("step 1 of 4".into(), 25.0)));
        assert_eq!(parse_step("step 5/4: no"), None);
        assert_eq!(parse_step("deploying step 1/2"), None);
    }
}
