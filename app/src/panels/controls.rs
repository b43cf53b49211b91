//! Controls: the configured commands per service (Restart, Logs, a Deploy form), the runs under way and
//! the recent ones, and a run's output as it streams.
//!
//! The panel follows the host chosen in the top bar: the hub's own commands for the hub's host, the
//! commands an agent declared for its host (run there, by that agent) for any other.
//!
//! A button never decides by itself when a run is over: it shows "Restarting…" while the server's state has
//! a run of that command on that target, and is enabled again by the event that ends the run. Every tab
//! sees the same, since every tab applies the same events.

use crate::api::get_me;
use crate::error::AppError;
use crate::format;
use crate::live::LiveStore;
use leptos::prelude::*;
use shared::{Action, CommandInfo, CommandKind, CommandRun, OutputPage, Role, RunState, Target};
use std::collections::BTreeMap;

/// Starts a configured command on a target; answers at once with the run, whose progress follows as
/// `command` events. 400 for a bad parameter, 403 below the command's role, 409 when the target is busy.
#[server(prefix = "/api", endpoint = "run_command", input = server_fn::codec::Json, output = crate::codec::JsonText)]
pub async fn run_command(
    name: String,
    target: String,
    #[server(default)] params: BTreeMap<String, String>,
    /// An agent's host, to run the command that host declared; none: the hub's own.
    #[server(default)]
    host: Option<String>,
) -> Result<CommandRun, AppError> {
    let (caller, ports) = crate::ports::caller()?;
    crate::ports::with_status(
        ports
            .operations
            .run_command(&caller, host, name, target, params)
            .await,
    )
}

/// Asks a running run to stop; the run ends as Cancelled (the event says when).
#[server(prefix = "/api", endpoint = "cancel_command", output = crate::codec::JsonText)]
pub async fn cancel_command(run: i64) -> Result<CommandRun, AppError> {
    let (caller, ports) = crate::ports::caller()?;
    crate::ports::with_status(ports.operations.cancel_command(&caller, run).await)
}

/// A run's output from its log file, from line `first` on.
#[server(prefix = "/api", endpoint = "command_output", output = crate::codec::JsonText)]
pub async fn command_output(run: i64, first: u64) -> Result<OutputPage, AppError> {
    let (caller, ports) = crate::ports::caller()?;
    crate::ports::with_status(ports.operations.command_output(&caller, run, first).await)
}

/// Runs listed under the controls.
const LISTED_RUNS: usize = 10;

/// Every target the commands name, in the order they first appear.
fn targets(commands: &[CommandInfo]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for target in commands.iter().flat_map(|c| c.targets.iter()) {
        if !out.contains(target) {
            out.push(target.clone());
        }
    }
    out
}

#[component]
pub fn ControlsPanel() -> impl IntoView {
    let live = LiveStore::expect();
    let me = Resource::new_blocking(|| (), |_| get_me());
    let selected = crate::selection::use_selected_host();
    // The agent's host the panel follows, when the chosen host is not the hub's own.
    let remote = Memo::new(move |_| {
        let chosen = selected.get()?;
        live.state
            .with(|s| s.fleet_host(&chosen).filter(|h| !h.hub).cloned())
    });
    let remote_name = Memo::new(move |_| remote.with(|r| r.as_ref().map(|h| h.host.clone())));
    // A host chosen that the fleet does not hold (removed, or not the reader's to see): nothing to run,
    // rather than the hub's own commands under its name.
    let unknown = Memo::new(move |_| {
        selected.get().filter(|chosen| {
            live.state
                .with(|s| s.fleet().next().is_some() && s.fleet_host(chosen).is_none())
        })
    });
    let listening = Memo::new(move |_| remote.with(|r| r.as_ref().is_none_or(|h| h.listening)));
    let commands = Memo::new(move |_| match (remote.get(), unknown.get()) {
        (Some(host), _) => host.commands,
        (None, Some(_)) => Vec::new(),
        (None, None) => live.state.with(|s| s.commands().to_vec()),
    });
    let runs = Memo::new(move |_| {
        let on = remote_name.get();
        live.state.with(|s| {
            s.runs()
                .iter()
                .filter(|r| r.runs_on(on.as_ref()))
                .cloned()
                .collect::<Vec<_>>()
        })
    });
    let start = ServerAction::<RunCommand>::new();
    let cancel = ServerAction::<CancelCommand>::new();
    // The run whose output is open.
    let shown = RwSignal::new(None::<i64>);
    Effect::new(move |_| {
        if let Some(Ok(run)) = start.value().get() {
            shown.set(Some(run.id));
        }
    });
    let error = move || {
        let failed = |v: Option<Result<CommandRun, AppError>>| v.and_then(|r| r.err());
        failed(start.value().get())
            .or_else(|| failed(cancel.value().get()))
            .map(|e| view! { <p class="auth-error" role="alert" data-testid="control-error">{e.to_string()}</p> })
    };
    view! {
        <section class="panel wide controls" data-testid="panel-controls" aria-labelledby="controls-title">
            <div class="panel-head">
                <h2 id="controls-title">"Controls"</h2>
                <span class="panel-meta" data-testid="controls-host">
                    {move || {
                        let running = runs.with(|r| r.iter().filter(|r| r.state == RunState::Running).count());
                        let state = if running == 0 { "nothing running".to_string() } else { format!("{running} running") };
                        match remote_name.get() {
                            Some(host) => format!("on {host} · {state}"),
                            None => state,
                        }
                    }}
                </span>
            </div>
            {error}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let me = me.await.ok();
                    // The role where the commands run: the host's environment for an agent's host.
                    let role = Memo::new(move |_| {
                        let environment = remote.with(|r| r.as_ref().map(|h| h.environment.clone()));
                        match (&me, environment) {
                            (Some(me), Some(environment)) => me.role_in(&environment).unwrap_or_default(),
                            (Some(me), None) => me.role,
                            (None, _) => Role::default(),
                        }
                    });
                    view! {
                        <Show
                            when=move || commands.with(|c| !c.is_empty())
                            fallback=move || match (remote_name.get(), unknown.get()) {
                                (None, Some(host)) => view! {
                                    <p class="empty" data-testid="controls-empty">
                                        <strong>{format!("There is no host {host}.")}</strong>
                                        " Choose one in the top bar."
                                    </p>
                                }
                                .into_any(),
                                (Some(host), _) => view! {
                                    <p class="empty" data-testid="controls-empty">
                                        <strong>{format!("{host} declares no commands.")}</strong>
                                        " Its agent offers commands with --commands FILE (see the README)."
                                    </p>
                                }
                                .into_any(),
                                (None, None) => view! {
                                    <p class="empty" data-testid="controls-empty">
                                        <strong>"No commands are configured."</strong>
                                        " Declare them as [[commands]] in the configuration file (see the README)."
                                    </p>
                                }
                                .into_any(),
                            }
                        >
                            <Show when=move || !listening.get()>
                                <p class="muted" data-testid="controls-offline">
                                    {move || format!(
                                        "{}'s agent is not connected: its commands cannot run until it is back.",
                                        remote_name.get().map(|h| h.0).unwrap_or_default()
                                    )}
                                </p>
                            </Show>
                            <Show when=move || { role.get() < Role::Operator }>
                                <p class="muted" data-testid="controls-viewer">
                                    "You are a viewer here: you see the controls and their runs, an operator runs them."
                                </p>
                            </Show>
                            <ul class="control-list">
                                {move || {
                                    let all = commands.get();
                                    let (role, host) = (role.get(), remote_name.get().map(|h| h.0));
                                    targets(&all)
                                        .into_iter()
                                        .map(|target| view! { <TargetRow target role host=host.clone() listening commands=all.clone() runs start cancel /> })
                                        .collect_view()
                                }}
                            </ul>
                        </Show>
                    }
                        .into_any()
                })}
            </Suspense>
            <RecentRuns runs shown />
            {move || shown.get().map(|id| view! { <RunOutputView id runs /> })}
        </section>
    }
    .into_any()
}

/// One target: its latest run, a button per action command, a form per deploy command, Cancel while a run
/// the user may stop is under way.
#[component]
fn TargetRow(
    target: String,
    role: Role,
    /// The agent's host the commands run on (`None`: the hub's own).
    host: Option<String>,
    /// Whether that host's agent is connected (always, for the hub's own).
    listening: Memo<bool>,
    commands: Vec<CommandInfo>,
    runs: Memo<Vec<CommandRun>>,
    start: ServerAction<RunCommand>,
    cancel: ServerAction<CancelCommand>,
) -> impl IntoView {
    let mine: Vec<CommandInfo> = commands
        .into_iter()
        .filter(|c| c.targets.contains(&target))
        .collect();
    let latest = {
        let target = target.clone();
        Memo::new(move |_| runs.with(|r| r.iter().find(|r| r.target == target).cloned()))
    };
    let running = {
        let target = target.clone();
        Memo::new(move |_| {
            runs.with(|r| {
                r.iter()
                    .filter(|r| r.target == target && r.state == RunState::Running)
                    .cloned()
                    .collect::<Vec<_>>()
            })
        })
    };
    let exclusive_busy = {
        let mine = mine.clone();
        move || {
            running.with(|r| {
                r.iter()
                    .any(|run| mine.iter().any(|c| c.exclusive && c.name == run.command))
            })
        }
    };
    let status = move || {
        latest.get().map(|run| {
            let when = run.finished_ms.unwrap_or(run.started_ms);
            view! {
                <span class="run-status" data-testid="run-status" data-state=run.state.as_str()>
                    <span class=format!("state state-{}", run.state.as_str())>{run.state.label()}</span>
                    " "
                    {format!("{} by {} · {} UTC", run.command, run.actor, format::clock_utc(when))}
                </span>
            }
        })
    };
    let buttons = mine
        .iter()
        .filter(|c| c.kind != CommandKind::Deploy)
        .map(|info| {
            let allowed = Action::RunCommand.allowed_on(role, Target::Command(info, &target));
            let needed = Action::RunCommand.least_role_on(Target::Command(info, &target));
            let (name, title, running_title, exclusive) = (
                info.name.clone(),
                info.title.clone(),
                info.running_title.clone(),
                info.exclusive,
            );
            let this_running = {
                let name = name.clone();
                move || running.with(|r| r.iter().any(|run| run.command == name))
            };
            let busy = {
                let (this_running, exclusive_busy) = (this_running.clone(), exclusive_busy.clone());
                move || this_running() || (exclusive && exclusive_busy())
            };
            let (target, testid, host) = (target.clone(), format!("run-{name}"), host.clone());
            let busy_attr = busy.clone();
            view! {
                <button
                    class="control"
                    data-testid=testid
                    data-busy=move || busy_attr().to_string()
                    disabled=move || !allowed || !listening.get() || busy() || start.pending().get()
                    title=if allowed { String::new() } else { format!("needs an {needed}") }
                    on:click=move |_| {
                        start.dispatch(RunCommand {
                            name: name.clone(),
                            target: target.clone(),
                            params: BTreeMap::new(),
                            host: host.clone(),
                        });
                    }
                >
                    {move || if this_running() { running_title.clone() } else { title.clone() }}
                </button>
            }
        })
        .collect_view();
    let may_stop = {
        let (mine, target) = (mine.clone(), target.clone());
        move |command: &str| {
            mine.iter()
                .find(|c| c.name == command)
                .is_some_and(|c| Action::RunCommand.allowed_on(role, Target::Command(c, &target)))
        }
    };
    let cancel_buttons = move || {
        running
            .get()
            .into_iter()
            .filter(|run| may_stop(&run.command))
            .map(|run| {
                let id = run.id;
                view! {
                    <button
                        class="control danger"
                        data-testid="cancel"
                        disabled=run.cancelling
                        on:click=move |_| { cancel.dispatch(CancelCommand { run: id }); }
                    >
                        {if run.cancelling { "Cancelling…".to_string() } else { format!("Cancel {}", run.command) }}
                    </button>
                }
            })
            .collect_view()
    };
    let forms = mine
        .iter()
        .filter(|c| c.kind == CommandKind::Deploy)
        .map(|info| {
            let allowed = Action::RunCommand.allowed_on(role, Target::Command(info, &target));
            view! { <DeployForm info=info.clone() target=target.clone() host=host.clone() allowed=allowed running listening start /> }
        })
        .collect_view();
    let testid_target = target.clone();
    view! {
        <li class="control-row" data-testid="control-row" data-target=testid_target>
            <div class="control-head">
                <strong class="control-target">{target.clone()}</strong>
                {status}
            </div>
            <div class="control-buttons">{buttons} {cancel_buttons}</div>
            {forms}
        </li>
    }
    .into_any()
}

/// The form of a deploy command: a field per parameter (a choice where the values are listed).
#[component]
fn DeployForm(
    info: CommandInfo,
    target: String,
    host: Option<String>,
    allowed: bool,
    running: Memo<Vec<CommandRun>>,
    listening: Memo<bool>,
    start: ServerAction<RunCommand>,
) -> impl IntoView {
    let values = RwSignal::new(
        info.params
            .iter()
            .map(|p| {
                let first = p
                    .values
                    .as_ref()
                    .and_then(|v| v.first().cloned())
                    .unwrap_or_default();
                (p.name.clone(), first)
            })
            .collect::<BTreeMap<String, String>>(),
    );
    let name = info.name.clone();
    let this_running = {
        let name = name.clone();
        move || running.with(|r| r.iter().any(|run| run.command == name))
    };
    let fields = info
        .params
        .iter()
        .map(|p| {
            let param = p.name.clone();
            let label = format!("{} {}", info.title, p.name);
            match &p.values {
                Some(choices) => {
                    let options = choices
                        .iter()
                        .map(|v| view! { <option value=v.clone()>{v.clone()}</option> })
                        .collect_view();
                    view! {
                        <label class="field">
                            {p.name.clone()}
                            <select
                                aria-label=label
                                data-testid=format!("param-{}", p.name)
                                disabled=!allowed
                                on:change=move |ev| {
                                    let v = event_target_value(&ev);
                                    values.update(|m| { m.insert(param.clone(), v); });
                                }
                            >
                                {options}
                            </select>
                        </label>
                    }
                    .into_any()
                }
                None => view! {
                    <label class="field">
                        {p.name.clone()}
                        <input
                            aria-label=label
                            data-testid=format!("param-{}", p.name)
                            placeholder=p.example.as_ref().map(|e| format!("e.g. {e}"))
                            title=p.pattern.as_ref().map(|rule| format!("Must match {rule}"))
                            disabled=!allowed
                            on:input=move |ev| {
                                let v = event_target_value(&ev);
                                values.update(|m| { m.insert(param.clone(), v); });
                            }
                        />
                    </label>
                }
                .into_any(),
            }
        })
        .collect_view();
    let (title, running_title) = (info.title.clone(), info.running_title.clone());
    let busy = this_running.clone();
    view! {
        <form
            class="deploy-form"
            data-testid=format!("form-{name}")
            on:submit=move |ev| {
                ev.prevent_default();
                start.dispatch(RunCommand {
                    name: name.clone(),
                    target: target.clone(),
                    params: values.get_untracked(),
                    host: host.clone(),
                });
            }
        >
            {fields}
            <button
                type="submit"
                class="control primary"
                data-testid=format!("submit-{}", info.name)
                disabled=move || !allowed || !listening.get() || busy() || start.pending().get()
            >
                {move || if this_running() { running_title.clone() } else { title.clone() }}
            </button>
        </form>
    }
    .into_any()
}

/// The newest runs, each opening its output.
#[component]
fn RecentRuns(runs: Memo<Vec<CommandRun>>, shown: RwSignal<Option<i64>>) -> impl IntoView {
    let rows = move || {
        runs.get()
            .into_iter()
            .take(LISTED_RUNS)
            .map(|run| {
                let id = run.id;
                let took = run
                    .finished_ms
                    .map(|f| format::span(f - run.started_ms))
                    .unwrap_or_else(|| "…".into());
                let params = run
                    .params
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                view! {
                    <tr
                        data-testid="run-row"
                        data-state=run.state.as_str()
                        data-command=run.command.clone()
                        data-target=run.target.clone()
                        class:selected=move || shown.get() == Some(id)
                        on:click=move |_| shown.set(Some(id))
                    >
                        <td>{format::clock_utc(run.started_ms)}</td>
                        <td>{run.command.clone()} " " <span class="muted">{params}</span></td>
                        <td>{run.target.clone()}</td>
                        <td>{run.actor.clone()}</td>
                        <td><span class=format!("state state-{}", run.state.as_str())>{run.state.label()}</span></td>
                        <td class="num">{took}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <Show when=move || runs.with(|r| !r.is_empty())>
            <div class="table-scroll">
            <table class="runs">
                <caption>"Recent runs (UTC) — select one to see its output"</caption>
                <thead>
                    <tr><th>"Started"</th><th>"Command"</th><th>"Target"</th><th>"By"</th><th>"State"</th><th class="num">"Took"</th></tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
            </div>
        </Show>
    }
    .into_any()
}

/// A run's output: what the stream brought, completed from the run's log when the tab opened it late,
/// missed chunks, or the stream's cap was reached.
#[component]
pub(crate) fn RunOutputView(id: i64, runs: Memo<Vec<CommandRun>>) -> impl IntoView {
    let live = LiveStore::expect();
    let output = Memo::new(move |_| {
        live.outputs
            .with(|o| o.get(&id).cloned().unwrap_or_default())
    });
    let run = Memo::new(move |_| runs.with(|r| r.iter().find(|r| r.id == id).cloned()));
    let error = RwSignal::new(None::<String>);
    let more = RwSignal::new(false);
    // Reads the log from the first line this tab does not hold.
    let read = move || {
        let first = live
            .outputs
            .with_untracked(|o| o.get(&id).map_or(0, |o| o.lines.len() as u64));
        leptos::task::spawn_local(async move {
            match command_output(id, first).await {
                Ok(page) => {
                    more.set(page.more);
                    live.add_output(id, page.first, &page.lines, false);
                    live.outputs.update(|o| {
                        if let Some(out) = o.get_mut(&id) {
                            out.gap = false;
                        }
                    });
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    #[cfg(feature = "hydrate")]
    {
        read();
        // A chunk past the end means lines were missed: read them.
        Effect::new(move |_| {
            if output.with(|o| o.gap) {
                read();
            }
        });
    }
    let lines = move || {
        output
            .get()
            .lines
            .into_iter()
            .map(|l| {
                view! { <span class:stderr=l.stderr>{l.text}"\n"</span> }
            })
            .collect_view()
    };
    let heading = move || {
        run.get().map(|r| {
            format!(
                "{} on {}{} — {}{}",
                r.command,
                r.target,
                r.host
                    .as_ref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default(),
                r.state.label(),
                if r.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.detail)
                }
            )
        })
    };
    let capped = move || {
        let finished = run.with(|r| r.as_ref().is_some_and(|r| r.state.finished()));
        let held = output.with(|o| o.lines.len() as u64);
        let total = run.with(|r| r.as_ref().map_or(0, |r| r.output_lines));
        (output.with(|o| o.capped) || more.get() || (finished && held < total)).then(|| {
            view! {
                <p class="muted">
                    {format!("{held} of {} lines shown; the whole output is in the run's log. ", total.max(held))}
                    <button class="link" data-testid="output-more" on:click=move |_| read()>"Show more"</button>
                </p>
            }
        })
    };
    view! {
        <div class="run-output-box" data-testid="run-output-box" data-run=id>
            <h3 class="run-output-title" data-testid="run-output-title">{heading}</h3>
            {move || error.get().map(|e| view! { <p class="auth-error" role="alert">{e}</p> })}
            <pre class="run-output" data-testid="run-output">{lines}</pre>
            {capped}
        </div>
    }
    .into_any()
}
