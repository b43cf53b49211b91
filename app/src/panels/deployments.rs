//! Deployments: an indicator per (service, environment) that moves Queued → In progress (step, progress,
//! live log) → Success / Failed, with version, who, when and how long; and each service's history.

use crate::error::AppError;
use crate::format;
use crate::live::LiveStore;
use leptos::prelude::*;
use shared::{DeployState, Deployment, current_deployments};

/// The newest deployments of `service` (every service's when `None`), newest first.
#[server(prefix = "/api", endpoint = "deployment_history", output = crate::codec::JsonText)]
pub async fn deployment_history(
    service: Option<String>,
    limit: u32,
) -> Result<Vec<Deployment>, AppError> {
    // Each deployment by the reader's role in the environment it went to.
    let (caller, ports) = crate::ports::caller()?;
    crate::ports::with_status(
        ports
            .operations
            .deployments(&caller, service, limit as usize)
            .await,
    )
}

/// Deployments a service's history shows.
#[cfg(feature = "hydrate")]
const HISTORY: u32 = 20;

#[component]
pub fn DeploymentsPanel() -> impl IntoView {
    let live = LiveStore::expect();
    let current = Memo::new(move |_| {
        live.state.with(|s| {
            current_deployments(s.deployments())
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        })
    });
    // The service whose history is open, and the deployments whose log is: kept here, since every update
    // draws the cards anew.
    let open = RwSignal::new(None::<String>);
    let logs = RwSignal::new(std::collections::BTreeSet::<i64>::new());
    let cards = move || {
        current
            .get()
            .into_iter()
            .map(|d| view! { <DeploymentCard d open logs /> })
            .collect_view()
    };
    view! {
        <section class="panel deployments" data-testid="panel-deployments" aria-labelledby="deployments-title">
            <div class="panel-head">
                <h2 id="deployments-title">"Deployments"</h2>
                <span class="panel-meta">
                    {move || {
                        let busy = current.with(|c| c.iter().filter(|d| !d.state.finished()).count());
                        if busy == 0 { String::new() } else { format!("{busy} under way") }
                    }}
                </span>
            </div>
            <Show
                when=move || current.with(|c| !c.is_empty())
                fallback=|| view! {
                    <p class="empty" data-testid="deployments-empty">
                        <strong>"No deployments yet."</strong>
                        " Run a deploy command from Controls, or let CI report them to POST /api/deployments (see the README)."
                    </p>
                }
            >
                <ul class="deploy-cards">{cards}</ul>
            </Show>
            {move || open.get().map(|service| view! { <DeploymentHistory service /> })}
        </section>
    }
    .into_any()
}

#[component]
fn DeploymentCard(
    d: Deployment,
    open: RwSignal<Option<String>>,
    logs: RwSignal<std::collections::BTreeSet<i64>>,
) -> impl IntoView {
    let live = LiveStore::expect();
    let (service, started) = (d.service.clone(), d.created_ms);
    let finished = d.finished_ms;
    // Ticks with the store's clock while under way, so "for 12s" moves without events.
    let took = move || {
        let now = finished.unwrap_or_else(|| live.now_ms().unwrap_or(started as f64) as i64);
        format::span((now - started).max(0))
    };
    let progress = (!d.state.finished()).then(|| {
        let pct = d.progress.unwrap_or(0.0).clamp(0.0, 100.0);
        view! {
            <div class="deploy-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=pct.round().to_string()>
                <div class="deploy-bar" style=format!("width: {pct:.0}%")></div>
            </div>
            <p class="deploy-step muted" data-testid="deploy-step">{d.step.clone().unwrap_or_else(|| d.state.label().to_owned())}</p>
        }
    });
    let link = d.url.clone().map(|url| {
        view! { <a href=url target="_blank" rel="noopener noreferrer">"CI log"</a> }
    });
    let id = d.id;
    let log = d.run.map(|run| {
        let shown = move || logs.with(|l| l.contains(&id));
        let runs = Memo::new(move |_| live.state.with(|s| s.runs().to_vec()));
        view! {
            <button
                class="link"
                data-testid="deploy-log"
                on:click=move |_| logs.update(|l| if !l.remove(&id) { l.insert(id); })
            >
                {move || if shown() { "Hide log" } else { "Log" }}
            </button>
            " "
            {move || shown().then(|| view! { <super::controls::RunOutputView id=run runs /> })}
        }
    });
    let description = d
        .description
        .clone()
        .filter(|_| d.state.finished())
        .map(|text| view! { <p class="deploy-description muted">{text}</p> });
    let toggle = {
        let service = service.clone();
        move |_| {
            open.update(|o| {
                *o = if o.as_deref() == Some(service.as_str()) {
                    None
                } else {
                    Some(service.clone())
                }
            })
        }
    };
    view! {
        <li
            class=format!("deploy-card state-{}", d.state.as_str())
            data-testid="deploy-card"
            data-service=d.service.clone()
            data-environment=d.environment.clone()
            data-state=d.state.as_str()
        >
            <div class="deploy-head">
                <strong>{d.service.clone()}</strong>
                <span class="badge">{d.environment.clone()}</span>
                <span class=format!("state state-{}", d.state.as_str()) data-testid="deploy-state">{state_label(d.state)}</span>
            </div>
            <p class="deploy-version">
                <code>{d.version.clone()}</code>
                {format!(" by {} · {} UTC · ", d.actor, format::clock_utc(d.created_ms))}
                <span data-testid="deploy-took">{took}</span>
            </p>
            {progress}
            {description}
            <p class="deploy-links">
                <button class="link" data-testid="deploy-history" on:click=toggle>"History"</button>
                " "
                {link}
                " "
                {log}
            </p>
        </li>
    }
    .into_any()
}

fn state_label(state: DeployState) -> &'static str {
    match state {
        DeployState::InProgress => "In progress",
        other => other.label(),
    }
}

/// A service's deployments, newest first, read from the store (older ones than the live state holds too).
#[component]
fn DeploymentHistory(service: String) -> impl IntoView {
    let live = LiveStore::expect();
    let list = RwSignal::new(None::<Result<Vec<Deployment>, AppError>>);
    // Reloaded when a deployment of this service changes.
    let changes = {
        let service = service.clone();
        Memo::new(move |_| {
            live.state.with(|s| {
                s.deployments()
                    .iter()
                    .filter(|d| d.service == service)
                    .map(|d| (d.id, d.updated_ms))
                    .collect::<Vec<_>>()
            })
        })
    };
    #[cfg(feature = "hydrate")]
    {
        let service = service.clone();
        Effect::new(move |_| {
            crate::reactive::depend_on(changes);
            let service = service.clone();
            leptos::task::spawn_local(async move {
                let result = deployment_history(Some(service), HISTORY).await;
                let _ = list.try_set(Some(result));
            });
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = changes;
    let rows = move || match list.get() {
        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
        Some(Err(e)) => view! { <p class="auth-error" role="alert">{e.to_string()}</p> }.into_any(),
        Some(Ok(list)) => {
            let rows = list
                .into_iter()
                .map(|d| {
                    let took = d
                        .finished_ms
                        .map(|f| format::span(f - d.created_ms))
                        .unwrap_or_else(|| "…".into());
                    view! {
                        <tr data-testid="deploy-history-row" data-state=d.state.as_str()>
                            <td>{format::clock_utc(d.created_ms)}</td>
                            <td><code>{d.version.clone()}</code></td>
                            <td>{d.environment.clone()}</td>
                            <td><span class=format!("state state-{}", d.state.as_str())>{state_label(d.state)}</span></td>
                            <td>{d.actor.clone()}</td>
                            <td class="num">{took}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <div class="table-scroll">
                <table class="runs">
                    <thead>
                        <tr><th>"When (UTC)"</th><th>"Version"</th><th>"Environment"</th><th>"State"</th><th>"By"</th><th class="num">"Took"</th></tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
                </div>
            }
            .into_any()
        }
    };
    view! {
        <div class="deploy-history" data-testid="deploy-history-list">
            <h3 class="run-output-title">{format!("{service}: deployments")}</h3>
            {rows}
        </div>
    }
    .into_any()
}
