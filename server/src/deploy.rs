//! Deployment status: what moves each (service, environment) indicator.
//!
//! Two sources: a deploy command run from the Controls panel (Queued when asked, In progress once the
//! program runs, a step and progress from its `step N/M: …` lines, Success or Failure when it ends), and CI
//! systems reporting over `POST /api/deployments` with a token, shaped like GitHub's deployment statuses.
//! Every change is stored and published whole as a `deployment` event.

use crate::clock::now_millis;
use crate::outlet::Outlet;
use shared::{
    DeployState, Deployment, DeploymentReport, Event, RECENT_DEPLOYMENTS, Role, RunState,
    parse_step,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use store::{Deployments, NewDeployment, StoreError};

/// Names and versions longer than this are refused.
pub const MAX_NAME: usize = 128;
const MAX_TEXT: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Invalid(String),
    #[error("there is no deployment {0}")]
    NotFound(i64),
    #[error("{0}")]
    Conflict(String),
    #[error("deployments cannot be written right now: {0}")]
    Store(#[from] StoreError),
}

/// Deployments as the server keeps them. Cheap to clone.
#[derive(Clone)]
pub struct DeployBook {
    store: Arc<dyn Deployments>,
    outlet: Outlet,
    /// The environment a deploy command's run goes to when it has no `environment` parameter.
    default_environment: String,
}

impl DeployBook {
    /// Ends deployments a previous process left running, then publishes the newest ones so the hub's state
    /// (and every snapshot) holds them.
    pub async fn start(
        store: Arc<dyn Deployments>,
        outlet: Outlet,
        default_environment: String,
    ) -> Result<DeployBook, StoreError> {
        let book = DeployBook {
            store,
            outlet,
            default_environment,
        };
        for d in book.store.end_orphaned_deployments(now_millis()).await? {
            tracing::warn!(
                deployment = d.id,
                service = %d.service,
                "a deployment was cut short: Watchpost stopped while its command ran"
            );
        }
        // Every deployment: each stream and snapshot leaves out what its reader's role may not see.
        let mut recent = book
            .store
            .deployments(None, RECENT_DEPLOYMENTS, Role::Admin)
            .await?;
        recent.reverse();
        for d in recent {
            book.publish(&d);
        }
        Ok(book)
    }

    /// On the stream in the deployment's environment: a reader with no role there never gets it.
    fn publish(&self, d: &Deployment) {
        let scope = shared::Scope {
            environment: d.environment.clone(),
            host: None,
        };
        self.outlet.emit_in(scope, Event::Deployment(d.clone()));
    }

    /// The newest deployments of `service` (all services when `None`) that a reader with `access` may see
    /// (by its role in each deployment's environment), newest first.
    pub async fn history_for(
        &self,
        service: Option<&str>,
        limit: usize,
        access: &shared::Access,
    ) -> Result<Vec<Deployment>, StoreError> {
        // The store filters by the highest role the reader has anywhere; the environments narrow it.
        let highest = access
            .environments
            .iter()
            .filter_map(|e| e.role)
            .fold(access.role, Role::max);
        let mut list = self.history(service, limit, highest).await?;
        list.retain(|d| d.visible_to(access));
        Ok(list)
    }

    /// The newest deployments of `service` (all services when `None`) that `role` may see, newest first.
    pub async fn history(
        &self,
        service: Option<&str>,
        limit: usize,
        role: Role,
    ) -> Result<Vec<Deployment>, StoreError> {
        self.store
            .deployments(service, limit.clamp(1, 500), role)
            .await
    }

    /// A deploy command's run was asked for: its deployment, queued, seen by the run's `audience`.
    pub async fn queue_run(
        &self,
        actor: &str,
        service: &str,
        params: &BTreeMap<String, String>,
        run: i64,
        audience: Role,
    ) -> Result<Deployment, StoreError> {
        let param = |names: &[&str]| names.iter().find_map(|n| params.get(*n).cloned());
        let d = self
            .store
            .add_deployment(NewDeployment {
                service: service.to_owned(),
                environment: param(&["environment", "env"])
                    .unwrap_or_else(|| self.default_environment.clone()),
                version: param(&["version", "ref", "tag"]).unwrap_or_else(|| "unversioned".into()),
                state: DeployState::Queued,
                actor: actor.to_owned(),
                run: Some(run),
                url: None,
                description: None,
                at_ms: now_millis(),
                audience,
            })
            .await?;
        self.publish(&d);
        Ok(d)
    }

    /// Writes and publishes a changed deployment. A finished one keeps the time it first finished (a later
    /// `inactive` does not make it look longer); one under way again has none.
    async fn write(
        &self,
        mut d: Deployment,
        finished_before: Option<i64>,
    ) -> Result<Deployment, DeployError> {
        d.updated_ms = now_millis().max(d.updated_ms);
        d.finished_ms = if d.state.finished() {
            finished_before.or(Some(d.updated_ms))
        } else {
            None
        };
        let stored = self
            .store
            .update_deployment(&d)
            .await?
            .ok_or(DeployError::NotFound(d.id))?;
        self.publish(&stored);
        Ok(stored)
    }

    /// [`DeployBook::write`] for a run's own updates: a store failure is logged, and the tabs still learn.
    async fn save(&self, d: Deployment) -> Deployment {
        let finished = d.finished_ms;
        match self.write(d.clone(), finished).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(
                    deployment = d.id,
                    "cannot store the deployment's status: {e}"
                );
                self.publish(&d);
                d
            }
        }
    }

    /// The run's program started.
    pub async fn run_started(&self, d: Deployment) -> Deployment {
        self.save(Deployment {
            state: DeployState::InProgress,
            ..d
        })
        .await
    }

    /// An output line of the run: a `step N/M: …` line moves the step and progress.
    pub async fn run_line(&self, d: Deployment, line: &str) -> Deployment {
        match parse_step(line) {
            Some((step, progress)) if d.step.as_deref() != Some(step.as_str()) => {
                self.save(Deployment {
                    step: Some(step),
                    progress: Some(progress),
                    ..d
                })
                .await
            }
            _ => d,
        }
    }

    /// The run ended as `state`, with `detail`.
    pub async fn run_ended(&self, d: Deployment, state: RunState, detail: &str) -> Deployment {
        let (state, progress) = match state {
            RunState::Succeeded => (DeployState::Success, Some(100.0)),
            RunState::Interrupted => (DeployState::Error, d.progress),
            _ => (DeployState::Failure, d.progress),
        };
        self.save(Deployment {
            state,
            progress,
            step: None,
            description: Some(detail.to_owned()),
            ..d
        })
        .await
    }

    /// A CI system's report: a new deployment, or a new status of one.
    pub async fn report(
        &self,
        actor: &str,
        report: DeploymentReport,
    ) -> Result<(Deployment, bool), DeployError> {
        let state = DeployState::parse(&report.state).ok_or_else(|| {
            DeployError::Invalid(format!(
                "state must be one of queued, pending, in_progress, success, failure, error, inactive; \
                 got '{}'",
                report.state.chars().take(32).collect::<String>()
            ))
        })?;
        let text =
            |name: &str, v: &Option<String>, max: usize| -> Result<Option<String>, DeployError> {
                match v.as_deref().map(str::trim) {
                    None | Some("") => Ok(None),
                    Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => {
                        Err(DeployError::Invalid(format!(
                            "{name} must have at most {max} characters and no control characters"
                        )))
                    }
                    Some(v) => Ok(Some(v.to_owned())),
                }
            };
        let url = text("log_url", &report.log_url, MAX_TEXT)?.or(text(
            "environment_url",
            &report.environment_url,
            MAX_TEXT,
        )?);
        if let Some(u) = &url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(DeployError::Invalid(
                "log_url must be an http:// or https:// link".into(),
            ));
        }
        let description = text("description", &report.description, MAX_TEXT)?;
        let step = text("step", &report.step, MAX_NAME)?;
        if let Some(p) = report.progress
            && !(0.0..=100.0).contains(&p)
        {
            return Err(DeployError::Invalid(format!(
                "progress must be between 0 and 100, got {p}"
            )));
        }
        match report.id {
            Some(id) => {
                let d = self
                    .store
                    .deployment(id)
                    .await?
                    .ok_or(DeployError::NotFound(id))?;
                if let Some(run) = d.run {
                    return Err(DeployError::Conflict(format!(
                        "deployment {id} is carried out by Watchpost's run {run}, which reports its status"
                    )));
                }
                let finished_before = d.finished_ms;
                let next = Deployment {
                    state,
                    step: if state.finished() {
                        None
                    } else {
                        step.or(d.step.clone())
                    },
                    progress: report.progress.or(if state == DeployState::Success {
                        Some(100.0)
                    } else {
                        d.progress
                    }),
                    url: url.or(d.url.clone()),
                    description: description.or(d.description.clone()),
                    ..d
                };
                Ok((self.write(next, finished_before).await?, false))
            }
            None => {
                let required = |name: &str, v: &Option<String>| -> Result<String, DeployError> {
                    text(name, v, MAX_NAME)?.ok_or_else(|| {
                        DeployError::Invalid(format!(
                            "{name} is needed for a new deployment (or give the id of one)"
                        ))
                    })
                };
                let service = required("service", &report.service)?;
                let environment = required("environment", &report.environment)?;
                let version = required("version", &report.version)?;
                let mut d = self
                    .store
                    .add_deployment(NewDeployment {
                        service,
                        environment,
                        version,
                        state,
                        actor: actor.to_owned(),
                        run: None,
                        url,
                        description,
                        at_ms: now_millis(),
                        audience: Role::Viewer,
                    })
                    .await?;
                if step.is_some() || report.progress.is_some() {
                    let finished = d.finished_ms;
                    d = self
                        .write(
                            Deployment {
                                step,
                                progress: report.progress,
                                ..d
                            },
                            finished,
                        )
                        .await?;
                } else {
                    self.publish(&d);
                }
                Ok((d, true))
            }
        }
    }
}
