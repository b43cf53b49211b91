//! The fleet page (`/hosts`): one row per host — its state, last contact, CPU / memory / disk now with a
//! five-minute CPU sparkline, load, uptime, firing alerts, agent version (a version other than the hub's is
//! highlighted) and environment — filtered by environment and state, sorted by any column, with totals per
//! environment. A row opens that host's dashboard.
//!
//! Sparklines are inline SVG polylines drawn from the five-minute trend the live store already keeps: a few
//! hundred of them cost a few attributes each per second, where a chart instance per row would cost a canvas
//! and an ECharts instance each.

use crate::api::get_snapshot;
use crate::error::AppError;
use crate::format;
use crate::live::LiveStore;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use shared::{AlertState, FleetHost, HealthPoint, HostState, LiveState, Presence};

/// One row: the host as the fleet lists it, and its newest reading when there is one.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    host: FleetHost,
    cpu: Option<f32>,
    memory: Option<f32>,
    disk: Option<f32>,
    load: Option<f64>,
    uptime_s: Option<u64>,
    /// The `seq` of the newest reading: the sparkline is redrawn only when it moves.
    version: u64,
    firing: usize,
    /// The newest of the host's last contact and its newest reading: a host's fleet entry changes only
    /// with its state, its readings every interval.
    seen_ms: Option<i64>,
}

impl Row {
    fn of(state: &LiveState, host: &FleetHost) -> Row {
        let reading: Option<&HostState> = state.host(&host.host);
        let health = reading.map(|r| &r.health);
        Row {
            host: host.clone(),
            cpu: health.map(|h| h.cpu_pct),
            memory: health.map(|h| h.mem_pct()),
            disk: health.map(|h| h.disk_pct()),
            load: health.map(|h| h.load.one),
            uptime_s: health.map(|h| h.uptime_s),
            version: reading.map_or(0, |r| r.version),
            seen_ms: host.seen_ms.max(health.map(|h| h.sampled_at_ms)),
            firing: state
                .alerts()
                .iter()
                .filter(|a| a.state == AlertState::Firing && a.subject == host.host.0)
                .count(),
        }
    }
}

/// The columns a person can sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Host,
    Environment,
    State,
    Seen,
    Interval,
    Cpu,
    Memory,
    Disk,
    Load,
    Uptime,
    Alerts,
    Version,
}

impl Column {
    fn label(self) -> &'static str {
        match self {
            Column::Host => "Host",
            Column::Environment => "Environment",
            Column::State => "State",
            Column::Seen => "Last seen",
            Column::Interval => "Interval",
            Column::Cpu => "CPU",
            Column::Memory => "Memory",
            Column::Disk => "Disk",
            Column::Load => "Load",
            Column::Uptime => "Uptime",
            Column::Alerts => "Alerts",
            Column::Version => "Agent",
        }
    }

    fn compare(self, a: &Row, b: &Row) -> std::cmp::Ordering {
        let num = |v: Option<f64>| v.unwrap_or(f64::NEG_INFINITY);
        match self {
            Column::Host => a.host.host.cmp(&b.host.host),
            Column::Environment => a.host.environment.cmp(&b.host.environment),
            Column::State => a.host.presence.cmp(&b.host.presence),
            Column::Seen => a.seen_ms.cmp(&b.seen_ms),
            Column::Interval => a.host.interval_ms.cmp(&b.host.interval_ms),
            Column::Cpu => num(a.cpu.map(f64::from)).total_cmp(&num(b.cpu.map(f64::from))),
            Column::Memory => num(a.memory.map(f64::from)).total_cmp(&num(b.memory.map(f64::from))),
            Column::Disk => num(a.disk.map(f64::from)).total_cmp(&num(b.disk.map(f64::from))),
            Column::Load => num(a.load).total_cmp(&num(b.load)),
            Column::Uptime => a.uptime_s.cmp(&b.uptime_s),
            Column::Alerts => a.firing.cmp(&b.firing),
            Column::Version => a.host.version.cmp(&b.host.version),
        }
    }

    const ALL: [Column; 12] = [
        Column::Host,
        Column::Environment,
        Column::State,
        Column::Seen,
        Column::Interval,
        Column::Cpu,
        Column::Memory,
        Column::Disk,
        Column::Load,
        Column::Uptime,
        Column::Alerts,
        Column::Version,
    ];
}

/// Puts a host in maintenance for `duration` from now (`4h`, `1d`: expected offline, no alerts), or with
/// `end` ends it. Checked against the caller's role in the host's environment.
#[server(prefix = "/api", endpoint = "maintain_host", output = crate::codec::JsonText)]
pub async fn maintain_host(host: String, duration: String) -> Result<FleetHost, AppError> {
    let (caller, ports) = crate::ports::caller()?;
    let duration = Some(duration).filter(|d| d.trim() != "end");
    crate::ports::with_status(
        ports
            .operations
            .maintain_host(&caller, host, duration)
            .await,
    )
}

/// Sets a host's sampling interval (`5s`, `1m`: its agent applies it without a restart), or with `own`
/// gives it back its agent's own `--interval`. Checked against the caller's role in the host's environment.
#[server(prefix = "/api", endpoint = "configure_host", output = crate::codec::JsonText)]
pub async fn configure_host(host: String, interval: String) -> Result<FleetHost, AppError> {
    let (caller, ports) = crate::ports::caller()?;
    let interval = Some(interval).filter(|i| i.trim() != "own");
    crate::ports::with_status(
        ports
            .operations
            .configure_host(&caller, host, interval)
            .await,
    )
}

/// The intervals an operator picks from: ms, the menu's value, its label. `own` is the agent's `--interval`.
const INTERVALS: [(u64, &str, &str); 6] = [
    (1_000, "1000ms", "every 1s"),
    (5_000, "5000ms", "every 5s"),
    (10_000, "10000ms", "every 10s"),
    (30_000, "30000ms", "every 30s"),
    (60_000, "60000ms", "every 1m"),
    (300_000, "300000ms", "every 5m"),
];

/// The maintenance windows an operator picks from.
const WINDOWS: [(&str, &str); 4] = [
    ("1h", "1 hour"),
    ("4h", "4 hours"),
    ("1d", "1 day"),
    ("7d", "1 week"),
];

#[component]
pub fn HostsPage() -> impl IntoView {
    let live = LiveStore::provide();
    let initial = Resource::new_blocking(|| (), |_| get_snapshot());
    #[cfg(feature = "hydrate")]
    crate::live::connect(live);
    view! {
        <crate::header::TopBar />
        <main class="admin hosts-page">
            <p class="back"><a href="/">"← Dashboard"</a></p>
            <Suspense fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match initial.await {
                        Err(e) => view! { <p class="auth-error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(env) => {
                            live.apply(&env);
                            view! { <Fleet /> }.into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
    .into_any()
}

#[component]
fn Fleet() -> impl IntoView {
    let live = LiveStore::expect();
    let query = use_query_map();
    let env_filter = RwSignal::new(query.with_untracked(|q| q.get("env")).unwrap_or_default());
    let state_filter = RwSignal::new(query.with_untracked(|q| q.get("state")).unwrap_or_default());
    let sort = RwSignal::new((Column::Host, false));
    let maintain = ServerAction::<MaintainHost>::new();
    let configure = ServerAction::<ConfigureHost>::new();
    // Operators (and admins) of a host's environment see its maintenance control; the server checks the
    // same.
    let me = Resource::new(|| (), |_| crate::api::get_me());
    let operator = Signal::derive(move || me.get().and_then(Result::ok));
    let rows = Memo::new(move |_| {
        live.state
            .with(|s| s.fleet().map(|h| Row::of(s, h)).collect::<Vec<_>>())
    });
    let hub_version = Memo::new(move |_| {
        rows.with(|r| {
            r.iter()
                .find(|r| r.host.hub)
                .map(|r| r.host.version.clone())
        })
    });
    let environments = Memo::new(move |_| {
        rows.with(|rows| {
            let mut envs: Vec<String> = rows.iter().map(|r| r.host.environment.clone()).collect();
            envs.sort();
            envs.dedup();
            envs
        })
    });
    let shown = Memo::new(move |_| {
        let (env, state, (column, descending)) = (env_filter.get(), state_filter.get(), sort.get());
        let mut shown: Vec<Row> = rows.with(|rows| {
            rows.iter()
                .filter(|r| env.is_empty() || r.host.environment == env)
                .filter(|r| state.is_empty() || r.host.presence.as_str() == state)
                .cloned()
                .collect()
        });
        shown.sort_by(|a, b| {
            let o = column
                .compare(a, b)
                .then_with(|| a.host.host.cmp(&b.host.host));
            if descending { o.reverse() } else { o }
        });
        shown
    });
    let totals = move || {
        environments
            .get()
            .into_iter()
            .map(|env| {
                let (n, live_n, stale_n, offline_n, maintenance_n) = rows.with(|rows| {
                    let of_env: Vec<&Row> =
                        rows.iter().filter(|r| r.host.environment == env).collect();
                    let count = |p| of_env.iter().filter(|r| r.host.presence == p).count();
                    (
                        of_env.len(),
                        count(Presence::Live),
                        count(Presence::Stale),
                        count(Presence::Offline),
                        count(Presence::Maintenance),
                    )
                });
                view! {
                    <li data-testid="env-total" data-env=env.clone()>
                        <strong>{env.clone()}</strong>
                        {format!(
                            " · {n} host{} · {live_n} live · {stale_n} stale · {offline_n} offline{}",
                            if n == 1 { "" } else { "s" },
                            if maintenance_n > 0 { format!(" · {maintenance_n} in maintenance") } else { String::new() }
                        )}
                    </li>
                }
            })
            .collect_view()
    };
    let header = Column::ALL
        .into_iter()
        .map(|column| {
            let current = move || sort.get().0 == column;
            let aria = move || {
                current().then(|| {
                    if sort.get().1 {
                        "descending"
                    } else {
                        "ascending"
                    }
                })
            };
            view! {
                <th scope="col" aria-sort=aria>
                    <button
                        type="button"
                        class="link sort"
                        data-column=column.label()
                        on:click=move |_| sort.update(|(c, d)| {
                            if *c == column { *d = !*d } else { *c = column; *d = false }
                        })
                    >
                        {column.label()}
                        {move || current().then(|| if sort.get().1 { " ▼" } else { " ▲" })}
                    </button>
                </th>
            }
        })
        .collect_view();
    view! {
        <section class="panel wide fleet" data-testid="fleet" aria-labelledby="fleet-title">
            <div class="panel-head">
                <h2 id="fleet-title">"Hosts"</h2>
                <span class="panel-meta">{move || format!("{} of {}", shown.with(Vec::len), rows.with(Vec::len))}</span>
            </div>
            <ul class="env-totals">{totals}</ul>
            <div class="filters">
                <label>
                    "Environment "
                    <select data-testid="fleet-env" on:change=move |ev| env_filter.set(event_target_value(&ev))>
                        <option value="" selected=move || env_filter.get().is_empty()>"All"</option>
                        {move || {
                            let chosen = env_filter.get();
                            environments
                                .get()
                                .into_iter()
                                .map(|e| {
                                    let selected = chosen == e;
                                    { let label = e.clone(); view! { <option value=e selected=selected>{label}</option> } }
                                })
                                .collect_view()
                        }}
                    </select>
                </label>
                <label>
                    "State "
                    <select data-testid="fleet-state" on:change=move |ev| state_filter.set(event_target_value(&ev))>
                        <option value="" selected=move || state_filter.get().is_empty()>"All"</option>
                        {Presence::ALL
                            .into_iter()
                            .map(|p| view! {
                                <option value=p.as_str() selected=move || state_filter.get() == p.as_str()>
                                    {p.as_str()}
                                </option>
                            })
                            .collect_view()}
                    </select>
                </label>
            </div>
            <div class="table-scroll">
                <table class="fleet-table">
                    <thead><tr>{header}</tr></thead>
                    <tbody>
                        <For
                            each=move || shown.get()
                            key=|r| r.host.host.0.clone()
                            children=move |row| {
                                let name = row.host.host.0.clone();
                                view! { <HostRow name hub_version operator maintain configure /> }
                            }
                        />
                    </tbody>
                </table>
            </div>
            <Show when=move || rows.with(Vec::is_empty)>
                <p class="empty">"No hosts yet."</p>
            </Show>
            {move || {
                maintain
                    .value()
                    .get()
                    .and_then(Result::err)
                    .map(|e| view! { <p class="auth-error" role="alert" data-testid="maintain-error">{e.to_string()}</p> })
            }}
            {move || {
                configure
                    .value()
                    .get()
                    .and_then(Result::err)
                    .map(|e| view! { <p class="auth-error" role="alert" data-testid="configure-error">{e.to_string()}</p> })
            }}
        </section>
    }
    .into_any()
}

/// One host's row, reading its own values from the store so a reading redraws only its row.
#[component]
fn HostRow(
    name: String,
    hub_version: Memo<Option<String>>,
    operator: Signal<Option<shared::Me>>,
    maintain: ServerAction<MaintainHost>,
    configure: ServerAction<ConfigureHost>,
) -> impl IntoView {
    let live = LiveStore::expect();
    let id = shared::HostId(name.clone());
    // Each row looks its own host up by name (no walk over the fleet, no copy of the trend): with 200 hosts
    // reading every second, every row's memo runs at every redraw and must cost next to nothing.
    let row = Memo::new({
        let id = id.clone();
        move |_| {
            live.state
                .with(|s| s.fleet_host(&id).map(|h| Row::of(s, h)))
        }
    });
    let get =
        move |f: fn(&Row) -> String| move || row.with(|r| r.as_ref().map(f).unwrap_or_default());
    let href = move || {
        row.with(|r| {
            r.as_ref()
                .map(|r| {
                    format!(
                        "/?{}",
                        format::query_string(&[
                            ("env", r.host.environment.clone()),
                            ("host", r.host.host.0.clone())
                        ])
                    )
                })
                .unwrap_or_default()
        })
    };
    let presence = move || row.with(|r| r.as_ref().map_or("offline", |r| r.host.presence.as_str()));
    let seen = move || {
        let now = live.now_ms().unwrap_or_else(server_now);
        row.with(|r| match r.as_ref().and_then(|r| r.seen_ms) {
            Some(seen) => format::age(now - seen as f64),
            None => "never".into(),
        })
    };
    let drift = move || {
        let hub = hub_version.get();
        row.with(|r| {
            r.as_ref().is_some_and(|r| {
                !r.host.version.is_empty() && hub.as_ref().is_some_and(|h| *h != r.host.version)
            })
        })
    };
    // Whether the caller may change this host's settings (an operator of its environment; never the hub's
    // own host, whose settings are the hub's flags). The server checks the same.
    // Memos, so the menus below are drawn again only when these change, not at every reading (a menu drawn
    // again while open would close under the person's hand).
    let may_change = Memo::new(move |_| {
        let hub = row.with(|r| r.as_ref().is_none_or(|r| r.host.hub));
        let environment = row.with(|r| r.as_ref().map(|r| r.host.environment.clone()));
        let may = operator.with(|me| {
            me.as_ref().zip(environment).is_some_and(|(me, env)| {
                me.role_in(&env)
                    .is_some_and(|r| r >= shared::Role::Operator)
            })
        });
        may && !hub
    });
    let in_maintenance = Memo::new(move |_| presence() == "maintenance");
    let interval_set = Memo::new(move |_| {
        row.with(|r| {
            r.as_ref()
                .and_then(|r| r.host.interval_set.as_ref())
                .map(|s| s.interval_ms)
        })
    });
    let interval = move || {
        row.with(|r| {
            r.as_ref().map_or_else(String::new, |r| {
                // Not heard from since the hub started: what it samples at is not known yet.
                let now = if r.host.version.is_empty() {
                    "—".to_owned()
                } else {
                    format::interval(r.host.interval_ms)
                };
                match &r.host.interval_set {
                    // Set on the hub, not yet what the agent says it samples at (it is offline, or its
                    // next push has not come).
                    Some(set) if set.interval_ms != r.host.interval_ms => {
                        format!("{now} → {}", format::interval(set.interval_ms))
                    }
                    _ => now,
                }
            })
        })
    };
    let interval_title = move || {
        row.with(|r| {
            r.as_ref()
                .and_then(|r| r.host.interval_set.as_ref())
                .map(|set| format!("set on the hub by {}", set.by))
        })
    };
    let version = Memo::new(move |_| row.with(|r| r.as_ref().map_or(0, |r| r.version)));
    let sparkline = Memo::new(move |_| {
        crate::reactive::depend_on(version);
        live.state.with_untracked(|s| {
            s.host(&id)
                .map(|h| sparkline(&h.recent))
                .unwrap_or_default()
        })
    });
    view! {
        <tr data-testid="host-row" data-host=name.clone() data-state=presence>
            <th scope="row">
                <a href=href data-testid="host-link">{name.clone()}</a>
                {move || row.with(|r| r.as_ref().is_some_and(|r| r.host.hub)).then(|| view! { <span class="muted">" · hub"</span> })}
            </th>
            <td>{get(|r| r.host.environment.clone())}</td>
            <td class="state-cell">
                <span class="presence" data-state=presence>{presence}</span>
                {move || {
                    row.with(|r| {
                        r.as_ref()
                            .and_then(|r| r.host.maintenance.as_ref())
                            .filter(|_| presence() == "maintenance")
                            .map(|m| {
                                let text = format!(" until {} UTC", format::clock_utc(m.until_ms));
                                let title = format!("set by {}", m.by);
                                view! { <span class="muted" title=title>{text}</span> }
                            })
                    })
                }}
                {
                    let host = name.clone();
                    move || {
                        may_change.get().then(|| {
                            let host = host.clone();
                            let in_maintenance = in_maintenance.get();
                            let menu = NodeRef::<leptos::html::Select>::new();
                            view! {
                                <select
                                    class="maintain"
                                    data-testid="maintain"
                                    node_ref=menu
                                    aria-label=format!("Maintenance of {host}")
                                    on:change=move |ev| {
                                        let duration = event_target_value(&ev);
                                        if !duration.is_empty() {
                                            maintain.dispatch(MaintainHost { host: host.clone(), duration });
                                        }
                                        // A menu, not a setting: it reads "Maintenance…" again.
                                        if let Some(menu) = menu.get_untracked() {
                                            menu.set_value("");
                                        }
                                    }
                                >
                                    <option value="" selected=true>"Maintenance…"</option>
                                    {WINDOWS
                                        .into_iter()
                                        .map(|(value, label)| view! { <option value=value>{format!("for {label}")}</option> })
                                        .collect_view()}
                                    {in_maintenance.then(|| view! { <option value="end">"End maintenance"</option> })}
                                </select>
                            }
                        })
                    }
                }
            </td>
            <td>{seen}</td>
            <td class="interval-cell" data-testid="host-interval">
                <span title=interval_title>{interval}</span>
                {
                    let host = name.clone();
                    move || {
                        may_change.get().then(|| {
                            let host = host.clone();
                            let set = interval_set.get();
                            // One set over HTTP to a value the menu does not list is shown as it is.
                            let other = set.filter(|ms| INTERVALS.iter().all(|(i, _, _)| i != ms));
                            view! {
                                <select
                                    class="configure"
                                    data-testid="configure-interval"
                                    aria-label=format!("Sampling interval of {host}")
                                    on:change=move |ev| {
                                        configure.dispatch(ConfigureHost {
                                            host: host.clone(),
                                            interval: event_target_value(&ev),
                                        });
                                    }
                                >
                                    <option value="own" selected=set.is_none()>"agent's own"</option>
                                    {other.map(|ms| view! {
                                        <option value=format!("{ms}ms") selected=true>{format!("every {}", format::interval(ms))}</option>
                                    })}
                                    {INTERVALS
                                        .into_iter()
                                        .map(|(ms, value, label)| view! { <option value=value selected=set == Some(ms)>{label}</option> })
                                        .collect_view()}
                                </select>
                            }
                        })
                    }
                }
            </td>
            <td class="num" data-testid="host-cpu">
                {get(|r| pct(r.cpu))}
                <svg class="sparkline" viewBox="0 0 100 20" preserveAspectRatio="none" aria-hidden="true">
                    <polyline points=sparkline />
                </svg>
            </td>
            <td class="num">{get(|r| pct(r.memory))}</td>
            <td class="num">{get(|r| pct(r.disk))}</td>
            <td class="num">{get(|r| r.load.map_or_else(|| "—".into(), |l| format!("{l:.2}")))}</td>
            <td class="num">{get(|r| r.uptime_s.map_or_else(|| "—".into(), format::uptime))}</td>
            <td class="num" class:firing=move || row.with(|r| r.as_ref().is_some_and(|r| r.firing > 0))>
                {get(|r| r.firing.to_string())}
            </td>
            <td class:drift=drift title=move || drift().then_some("not the hub's version")>
                {get(|r| if r.host.version.is_empty() { "—".into() } else { r.host.version.clone() })}
            </td>
        </tr>
    }
    .into_any()
}

/// The server's clock while it renders the page, so that the page says "2s ago" as the browser will once it
/// takes over: a text the browser's first rendering finds different is left as the server wrote it until
/// the value changes again, and a host's age stays "0s ago" while it is live.
fn server_now() -> f64 {
    #[cfg(feature = "ssr")]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_millis() as f64)
    }
    #[cfg(not(feature = "ssr"))]
    {
        0.0
    }
}

/// A percentage as the table shows it; a dash before the first reading.
fn pct(v: Option<f32>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.0}%"))
}

/// The points of a 100 × 20 sparkline of CPU over the trend's five minutes (0 % at the bottom).
fn sparkline(points: &[HealthPoint]) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return String::new();
    };
    let span = (last.at_ms - first.at_ms).max(1) as f64;
    points
        .iter()
        .map(|p| {
            let x = (p.at_ms - first.at_ms) as f64 * 100.0 / span;
            let y = 20.0 - f64::from(p.cpu_pct.clamp(0.0, 100.0)) * 0.2;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_spans_its_box() {
        let p = |at_ms, cpu_pct| HealthPoint {
            at_ms,
            cpu_pct,
            mem_pct: 0.0,
        };
        assert_eq!(
            sparkline(&[p(0, 0.0), p(500, 50.0), p(1000, 100.0)]),
            "0.0,20.0 50.0,10.0 100.0,0.0"
        );
        assert_eq!(sparkline(&[]), "");
    }
}
