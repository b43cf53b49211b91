//! The Alerts page (`/alerts`): the open alerts, the rules (admins add, change and remove the dashboard's
//! rules here; the configuration file's are shown read-only), the notification channels with their delivery
//! status and a test button, and the alert history with filters.
//!
//! Rules, alerts and channel statuses come from the live store, so a change made in one tab shows in every
//! tab; the history is read from the server and read again whenever an alert changes.

use crate::api::get_me;
use crate::api::get_snapshot;
use crate::error::AppError;
use crate::format;
use crate::format::query_string;
use crate::live::LiveStore;
use crate::panels::alerts::{AlertToasts, AlertsPanel};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use shared::{Alert, AlertFilter, AlertRule, AlertState, ChannelStatus, RuleSource, Severity};

/// Alerts per history page.
const PAGE: u32 = 50;

pub use save_rule::*;

/// Twelve form fields, one argument each: that is what lets a plain form post to it (the lint is allowed for
/// the module, since the server macro does not carry an item's attributes to the functions it generates).
mod save_rule {
    #![allow(clippy::too_many_arguments)]
    use crate::error::AppError;
    use leptos::prelude::*;
    use shared::AlertRule;

    /// Adds a rule, or replaces the dashboard rule of that name. Admins. Every field is text, checked by the
    /// server as the configuration file's rules are; a bad one is a 400 naming the field.
    #[server(prefix = "/api", endpoint = "save_alert_rule", output = crate::codec::JsonText)]
    pub async fn save_alert_rule(
        name: String,
        metric: String,
        subject: String,
        // Optional, so that a form (or a script) written before rules had an environment still posts.
        environment: Option<String>,
        comparison: String,
        threshold: String,
        resolve: String,
        for_: String,
        clear_after: String,
        severity: String,
        labels: String,
        message: String,
    ) -> Result<AlertRule, AppError> {
        let (me, ports) = crate::ports::authorize(shared::Action::ManageAlerts)?;
        let draft = shared::RuleDraft {
            name,
            metric,
            subject,
            environment: environment.unwrap_or_default(),
            comparison,
            threshold,
            resolve,
            for_,
            clear_after,
            severity,
            labels,
            message,
        };
        crate::ports::with_status(ports.alerts.save_alert_rule(&me, draft).await)
    }
}

/// Removes a rule written on the dashboard; its open alerts resolve. Admins.
#[server(prefix = "/api", endpoint = "delete_alert_rule", output = crate::codec::JsonText)]
pub async fn delete_alert_rule(name: String) -> Result<(), AppError> {
    let (me, ports) = crate::ports::authorize(shared::Action::ManageAlerts)?;
    crate::ports::with_status(ports.alerts.delete_alert_rule(&me, name).await)
}

/// Sends a test notification on a channel at once and says how it went. Admins.
#[server(prefix = "/api", endpoint = "test_channel", output = crate::codec::JsonText)]
pub async fn test_channel(name: String) -> Result<String, AppError> {
    let (me, ports) = crate::ports::authorize(shared::Action::ManageAlerts)?;
    crate::ports::with_status(ports.alerts.test_channel(&me, name).await)
}

/// A page of the alert history, newest first, with ids below `before`.
#[server(prefix = "/api", endpoint = "alert_history", input = server_fn::codec::Json, output = crate::codec::JsonText)]
pub async fn alert_history(
    filter: AlertFilter,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Alert>, AppError> {
    let (_, ports) = crate::ports::caller()?;
    // Only the alerts of environments the reader may see (an alert names its host's environment in a
    // label; one that names none is of the hub's own).
    crate::ports::with_status(
        ports
            .alerts
            .alert_history(
                crate::ports::access(),
                filter,
                before,
                limit.clamp(1, 500) as usize,
            )
            .await,
    )
}

/// `> 90 (resolves at ≤ 80) for 2m, 3 clean readings`.
fn condition_text(rule: &AlertRule) -> String {
    let c = &rule.condition;
    let mut text = format!("{} {}", c.comparison.symbol(), number(c.threshold));
    if let Some(resolve) = c.resolve {
        text.push_str(&format!(" (resolves past {})", number(resolve)));
    }
    if c.for_ms > 0 {
        text.push_str(&format!(" for {}", format::span(c.for_ms)));
    }
    if c.clear_after > 1 {
        text.push_str(&format!(", {} clean readings to resolve", c.clear_after));
    }
    text
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    let live = LiveStore::provide();
    let initial = Resource::new_blocking(|| (), |_| get_snapshot());
    #[cfg(feature = "hydrate")]
    crate::live::connect(live);
    let me = Resource::new_blocking(|| (), |_| get_me());
    view! {
        <crate::header::TopBar />
        <main class="admin alerts-page">
            <p class="back"><a href="/">"← Dashboard"</a></p>
            <Suspense fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let env = initial.await;
                    let admin = me
                        .await
                        .map(|m| shared::Action::ManageAlerts.allowed(m.role))
                        .unwrap_or(false);
                    match env {
                        Err(e) => view! { <p class="auth-error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(env) => {
                            live.apply(&env);
                            view! {
                                <AlertsPanel link=false />
                                <RulesSection admin />
                                <ChannelsSection admin />
                                <HistorySection />
                                <AlertToasts />
                            }
                            .into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
    .into_any()
}

#[component]
fn RulesSection(admin: bool) -> impl IntoView {
    let live = LiveStore::expect();
    let rules = Memo::new(move |_| live.state.with(|s| s.alert_rules().to_vec()));
    let save = ServerAction::<SaveAlertRule>::new();
    let delete = ServerAction::<DeleteAlertRule>::new();
    // The rule being changed, if any; a new rule otherwise. Bumped after a save, so the form starts afresh.
    let editing = RwSignal::new(None::<AlertRule>);
    let generation = RwSignal::new(0u32);
    Effect::new(move |_| {
        if let Some(Ok(_)) = save.value().get() {
            editing.set(None);
            generation.update(|g| *g += 1);
        }
    });
    let error = move || {
        save.value()
            .get()
            .and_then(|r| r.err())
            .or_else(|| delete.value().get().and_then(|r| r.err()))
            .map(|e| view! { <p class="auth-error" role="alert" data-testid="rule-error">{e.to_string()}</p> })
    };
    let rows = move || {
        rules
            .get()
            .into_iter()
            .map(|r| {
                let labels = r
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let watches = format!(
                    "{} of {}{}",
                    r.metric.as_str(),
                    r.subject.clone().unwrap_or_else(|| format!("every {}", r.metric.subject_label())),
                    r.environment.as_ref().map(|e| format!(" in {e}")).unwrap_or_default()
                );
                let editable = admin && r.source == RuleSource::Dashboard;
                let (for_edit, name) = (r.clone(), r.name.clone());
                view! {
                    <tr data-testid="rule-row" data-rule=r.name.clone() data-source=match r.source { RuleSource::Config => "config", RuleSource::Dashboard => "dashboard" }>
                        <td><strong>{r.name.clone()}</strong></td>
                        <td>{watches}</td>
                        <td>{condition_text(&r)}</td>
                        <td><span class=format!("badge sev-{}", r.severity.as_str())>{r.severity.as_str()}</span></td>
                        <td class="muted">{labels}</td>
                        <td class="muted">{match r.source { RuleSource::Config => "configuration file", RuleSource::Dashboard => "dashboard" }}</td>
                        <td>
                            <Show when=move || editable>
                                <button class="link" data-testid="rule-edit" on:click={
                                    let r = for_edit.clone();
                                    move |_| editing.set(Some(r.clone()))
                                }>"Edit"</button>
                                " "
                                <button class="link" data-testid="rule-delete" on:click={
                                    let name = name.clone();
                                    move |_| { delete.dispatch(DeleteAlertRule { name: name.clone() }); }
                                }>"Delete"</button>
                            </Show>
                        </td>
                    </tr>
                }
                .into_any()
            })
            .collect_view()
    };
    // Each part its own view: one nested type for the whole section overflows the compiler's depth limit.
    let table = move || {
        if rules.with(Vec::is_empty) {
            return view! { <p class="empty" data-testid="rules-empty">"No alert rules yet."</p> }
                .into_any();
        }
        view! {
            <div class="table-scroll">
                <table class="admin-table rules-table">
                    <thead>
                        <tr><th>"Name"</th><th>"Watches"</th><th>"Condition"</th><th>"Severity"</th><th>"Labels"</th><th>"Declared in"</th><th></th></tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        }
        .into_any()
    };
    let form = move || {
        if !admin {
            return view! { <p class="muted">"Admins add and change rules here; the configuration file's rules are changed in the file."</p> }.into_any();
        }
        generation.get();
        view! { <RuleForm rule=editing.get() save editing /> }.into_any()
    };
    view! {
        <section class="panel wide" data-testid="rules-section" aria-labelledby="rules-title">
            <div class="panel-head">
                <h2 id="rules-title">"Alert rules"</h2>
                <span class="panel-meta">{move || {
                    let n = rules.with(Vec::len);
                    format!("{n} rule{}", if n == 1 { "" } else { "s" })
                }}</span>
            </div>
            {error}
            {table}
            {form}
        </section>
    }
    .into_any()
}

/// The form that adds a rule, or changes `rule`. A plain form posting to the server function, so it works
/// before the WASM has loaded too.
#[component]
fn RuleForm(
    rule: Option<AlertRule>,
    save: ServerAction<SaveAlertRule>,
    editing: RwSignal<Option<AlertRule>>,
) -> impl IntoView {
    let is_edit = rule.is_some();
    let r = rule.as_ref();
    let text = |f: &dyn Fn(&AlertRule) -> String| r.map(f).unwrap_or_default();
    let name = text(&|r| r.name.clone());
    let metric = r
        .map(|r| r.metric.as_str().to_owned())
        .unwrap_or_else(|| "cpu".into());
    let subject = text(&|r| r.subject.clone().unwrap_or_default());
    let environment = text(&|r| r.environment.clone().unwrap_or_default());
    let below = r.is_some_and(|r| r.condition.comparison == shared::Comparison::Below);
    let threshold = text(&|r| number(r.condition.threshold));
    let resolve = text(&|r| r.condition.resolve.map(number).unwrap_or_default());
    let for_ = text(&|r| {
        if r.condition.for_ms > 0 {
            format!("{}ms", r.condition.for_ms)
        } else {
            String::new()
        }
    });
    let clear_after = text(&|r| r.condition.clear_after.to_string());
    let severity = r.map_or(Severity::Warning, |r| r.severity);
    let labels = text(&|r| {
        r.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let message = text(&|r| r.message.clone());
    let metrics: Vec<&'static str> = shared::Metric::ALL
        .iter()
        .map(|m| m.as_str())
        .chain(["log_errors_per_minute", "host_offline"])
        .collect();
    view! {
        <ActionForm action=save attr:class="rule-form" attr:data-testid="rule-form">
            <h3>{if is_edit { "Change rule" } else { "New rule" }}</h3>
            <label>"Name "
                <input name="name" required value=name.clone() prop:value=name readonly=is_edit data-testid="rule-name" placeholder="e.g. cpu-high" />
            </label>
            <label>"Metric "
                <select name="metric" data-testid="rule-metric" prop:value=metric.clone()>
                    {metrics.into_iter().map(|m| view! { <option value=m selected=m == metric>{m}</option> }).collect_view()}
                </select>
            </label>
            <label>"Of "
                <input name="subject" value=subject.clone() prop:value=subject data-testid="rule-subject" placeholder="every host, service or target" />
            </label>
            <label>"In "
                <input name="environment" value=environment.clone() prop:value=environment data-testid="rule-environment" placeholder="every environment" size="12" />
            </label>
            <label>"When "
                <select name="comparison" data-testid="rule-comparison" prop:value=if below { "below" } else { "above" }>
                    <option value="above" selected=!below>"above"</option>
                    <option value="below" selected=below>"below"</option>
                </select>
            </label>
            <label>"Threshold "
                <input name="threshold" inputmode="decimal" value=threshold.clone() prop:value=threshold data-testid="rule-threshold" />
            </label>
            <label>"Resolve past "
                <input name="resolve" inputmode="decimal" value=resolve.clone() prop:value=resolve data-testid="rule-resolve" placeholder="the threshold" />
            </label>
            <label>"For "
                <input name="for_" value=for_.clone() prop:value=for_ data-testid="rule-for" placeholder="e.g. 2m" />
            </label>
            <label>"Clean readings to resolve "
                <input name="clear_after" inputmode="numeric" value=clear_after.clone() prop:value=clear_after data-testid="rule-clear-after" placeholder="1" />
            </label>
            <label>"Severity "
                <select name="severity" data-testid="rule-severity" prop:value=severity.as_str()>
                    {Severity::ALL.into_iter().map(|s| view! { <option value=s.as_str() selected=s == severity>{s.as_str()}</option> }).collect_view()}
                </select>
            </label>
            <label class="wide">"Labels "
                <input name="labels" value=labels.clone() prop:value=labels data-testid="rule-labels" placeholder="team=ops, tier=web" />
            </label>
            <label class="wide">"Message "
                <input name="message" value=message.clone() prop:value=message data-testid="rule-message" placeholder="{subject}: {value} (threshold {threshold})" />
            </label>
            <div class="form-actions">
                <button type="submit" class="primary" data-testid="rule-save">{if is_edit { "Save changes" } else { "Add rule" }}</button>
                <Show when=move || is_edit>
                    <button type="button" class="link" on:click=move |_| editing.set(None)>"Cancel"</button>
                </Show>
            </div>
        </ActionForm>
    }
    .into_any()
}

#[component]
fn ChannelsSection(admin: bool) -> impl IntoView {
    let live = LiveStore::expect();
    let channels = Memo::new(move |_| live.state.with(|s| s.channels().to_vec()));
    let test = ServerAction::<TestChannel>::new();
    // The channel last tested: one action serves every row, and its result shows on that row.
    let tested = RwSignal::new(None::<String>);
    let result = move |name: String| {
        move || {
            if tested.get().as_deref() != Some(name.as_str()) {
                return None;
            }
            if test.pending().get() {
                return Some(view! { <span class="muted" data-testid="channel-test-result">"sending…"</span> }.into_any());
            }
            Some(match test.value().get()? {
                Ok(text) => view! { <span class="state outcome-succeeded" data-testid="channel-test-result">{text}</span> }.into_any(),
                Err(e) => view! { <span class="state outcome-failed" role="alert" data-testid="channel-test-result">{e.to_string()}</span> }.into_any(),
            })
        }
    };
    let rows = move || {
        channels
            .get()
            .into_iter()
            .map(|c: ChannelStatus| {
                let error = c.last_error.clone().map(|e| {
                    let when = c.last_error_ms.map(|t| format!("{} UTC: ", format::clock_utc(t))).unwrap_or_default();
                    view! { <p class="muted channel-error" data-testid="channel-error">{format!("{when}{e}")}</p> }
                });
                let name = c.name.clone();
                view! {
                    <tr data-testid="channel-row" data-channel=c.name.clone() data-state=c.state.as_str()>
                        <td><strong>{c.name.clone()}</strong></td>
                        <td>{c.kind.as_str()}</td>
                        <td class="muted">{c.target.clone()}</td>
                        <td>{format!("{} and worse", c.min_severity.as_str())}</td>
                        <td>
                            <span class=format!("state channel-{}", c.state.as_str())>{c.state.as_str()}</span>
                            {error}
                        </td>
                        <td class="num">{c.sent}</td>
                        <td class="num">{c.failed}</td>
                        <td>
                            <Show when=move || admin>
                                <button class="link" data-testid="channel-test" on:click={
                                    let name = name.clone();
                                    move |_| {
                                        tested.set(Some(name.clone()));
                                        test.dispatch(TestChannel { name: name.clone() });
                                    }
                                }>"Send test"</button>
                            </Show>
                            " "
                            {result(c.name.clone())}
                        </td>
                    </tr>
                }
                .into_any()
            })
            .collect_view()
    };
    let table = move || {
        if channels.with(Vec::is_empty) {
            return view! {
                <p class="empty" data-testid="channels-empty">
                    "No notification channels: alerts show on the dashboard only. Declare [[channels]] (webhook, slack, email) in the configuration file (see the README)."
                </p>
            }
            .into_any();
        }
        view! {
            <div class="table-scroll">
                <table class="admin-table channels-table">
                    <thead>
                        <tr><th>"Name"</th><th>"Kind"</th><th>"Sends to"</th><th>"Alerts"</th><th>"Status"</th><th class="num">"Sent"</th><th class="num">"Failed"</th><th></th></tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        }
        .into_any()
    };
    view! {
        <section class="panel wide" data-testid="channels-section" aria-labelledby="channels-title">
            <div class="panel-head">
                <h2 id="channels-title">"Notification channels"</h2>
            </div>
            {table}
        </section>
    }
    .into_any()
}

#[component]
fn HistorySection() -> impl IntoView {
    let live = LiveStore::expect();
    let query = use_query_map();
    let filter = Memo::new(move |_| {
        query.with(|q| {
            let text = |name: &str| q.get(name).filter(|v| !v.trim().is_empty());
            AlertFilter {
                rule: text("rule"),
                subject: text("subject"),
                state: text("state").and_then(|s| match s.as_str() {
                    "pending" => Some(AlertState::Pending),
                    "firing" => Some(AlertState::Firing),
                    "resolved" => Some(AlertState::Resolved),
                    _ => None,
                }),
                from_ms: text("from_ms").and_then(|v| v.parse().ok()),
                to_ms: text("to_ms").and_then(|v| v.parse().ok()),
            }
        })
    });
    let before =
        Memo::new(move |_| query.with(|q| q.get("before").and_then(|v| v.parse::<i64>().ok())));
    // Any alert change reads the first page again.
    let changed = Memo::new(move |_| {
        live.state
            .with(|s| s.alerts().iter().map(|a| a.updated_ms).max().unwrap_or(0))
    });
    let page = Resource::new(
        move || {
            (
                filter.get(),
                before.get(),
                if before.get().is_none() {
                    changed.get()
                } else {
                    0
                },
            )
        },
        |(filter, before, _)| alert_history(filter, before, PAGE),
    );
    let rule_names = Memo::new(move |_| {
        live.state.with(|s| {
            s.alert_rules()
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        })
    });
    let rows = move |list: Vec<Alert>| {
        list.into_iter()
            .map(|a| {
                let ack = a
                    .acknowledged_by
                    .clone()
                    .map(|by| format!("{by}, {}", a.acknowledged_ms.map(format::clock_utc).unwrap_or_default()))
                    .unwrap_or_default();
                view! {
                    <tr data-testid="history-row" data-rule=a.rule.clone() data-state=a.state.as_str()>
                        <td><time datetime=format::iso_utc(a.started_ms)>{format::clock_utc(a.started_ms)}</time></td>
                        <td><strong>{a.rule.clone()}</strong></td>
                        <td>{a.subject.clone()}</td>
                        <td><span class=format!("state state-{}", a.state.as_str())>{a.state.as_str()}</span></td>
                        <td><span class=format!("badge sev-{}", a.severity.as_str())>{a.severity.as_str()}</span></td>
                        <td>{a.fired_ms.map(format::clock_utc).unwrap_or_default()}</td>
                        <td>{a.resolved_ms.map(format::clock_utc).unwrap_or_default()}</td>
                        <td class="num">{shared::value_text(a.peak)}</td>
                        <td data-testid="history-ack">{ack}</td>
                        <td class="muted">{a.message.clone()}</td>
                    </tr>
                }
                .into_any()
            })
            .collect_view()
    };
    let older = move |list: &[Alert]| {
        (list.len() as u32 == PAGE).then(|| {
            let last = list.last().map_or(0, |a| a.id);
            let mut pairs = pairs_of(&filter.get());
            pairs.push(("before", last.to_string()));
            view! { <a class="range-option" data-testid="history-older" href=format!("/alerts?{}", query_string(&pairs))>"Older alerts →"</a> }
        })
    };
    view! {
        <section class="panel wide" data-testid="history-section" aria-labelledby="history-title">
            <div class="panel-head">
                <h2 id="history-title">"Alert history"</h2>
            </div>
            <HistoryFilter filter rule_names />
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Err(e) => view! { <p class="auth-error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="empty" data-testid="history-empty">"No alerts match."</p> }.into_any(),
                        Ok(list) => {
                            let more = older(&list);
                            view! {
                                <div class="table-scroll">
                                    <table class="admin-table history-table">
                                        <thead>
                                            <tr>
                                                <th>"Started (UTC)"</th><th>"Rule"</th><th>"Of"</th><th>"State"</th><th>"Severity"</th>
                                                <th>"Fired"</th><th>"Resolved"</th><th class="num">"Peak"</th><th>"Acknowledged"</th><th>"Message"</th>
                                            </tr>
                                        </thead>
                                        <tbody>{rows(list)}</tbody>
                                    </table>
                                </div>
                                {more}
                            }
                            .into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
    .into_any()
}

fn pairs_of(filter: &AlertFilter) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(v) = &filter.rule {
        pairs.push(("rule", v.clone()));
    }
    if let Some(v) = &filter.subject {
        pairs.push(("subject", v.clone()));
    }
    if let Some(v) = filter.state {
        pairs.push(("state", v.as_str().to_owned()));
    }
    if let Some(v) = filter.from_ms {
        pairs.push(("from_ms", v.to_string()));
    }
    if let Some(v) = filter.to_ms {
        pairs.push(("to_ms", v.to_string()));
    }
    pairs
}

/// The history's filter: a plain GET form (works before the WASM loads, without the times, which need the
/// browser's time zone); in the browser the times become `from_ms`/`to_ms`.
#[component]
fn HistoryFilter(filter: Memo<AlertFilter>, rule_names: Memo<Vec<String>>) -> impl IntoView {
    let current = filter.get_untracked();
    let rule = NodeRef::<leptos::html::Select>::new();
    let subject = NodeRef::<leptos::html::Input>::new();
    let state = NodeRef::<leptos::html::Select>::new();
    let from = NodeRef::<leptos::html::Input>::new();
    let to = NodeRef::<leptos::html::Input>::new();
    let error = RwSignal::new(None::<String>);
    let navigate = leptos_router::hooks::use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let input = |node: NodeRef<leptos::html::Input>| {
            node.get()
                .map(|i| i.value())
                .filter(|v| !v.trim().is_empty())
        };
        let select = |node: NodeRef<leptos::html::Select>| {
            node.get().map(|s| s.value()).filter(|v| !v.is_empty())
        };
        let (from_ms, to_ms) = match crate::range::from_to(input(from), input(to)) {
            Ok(span) => span,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        error.set(None);
        let filter = AlertFilter {
            rule: select(rule),
            subject: input(subject),
            state: select(state).and_then(|s| match s.as_str() {
                "pending" => Some(AlertState::Pending),
                "firing" => Some(AlertState::Firing),
                "resolved" => Some(AlertState::Resolved),
                _ => None,
            }),
            from_ms,
            to_ms,
        };
        navigate(
            &format!("/alerts?{}", query_string(&pairs_of(&filter))),
            Default::default(),
        );
    };
    let chosen_rule = current.rule.clone().unwrap_or_default();
    let chosen_state = current.state.map(|s| s.as_str()).unwrap_or("");
    view! {
        <form class="audit-filter" method="get" action="/alerts" on:submit=submit data-testid="history-filter">
            <label>"Rule "
                <select name="rule" node_ref=rule data-testid="history-rule">
                    <option value="">"any"</option>
                    {move || {
                        let mut names = rule_names.get();
                        if !chosen_rule.is_empty() && !names.contains(&chosen_rule) {
                            names.push(chosen_rule.clone());
                        }
                        names
                            .into_iter()
                            .map(|n| {
                                let selected = n == chosen_rule;
                                let label = n.clone();
                                view! { <option value=n selected=selected>{label}</option> }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            <label>"Of " <input name="subject" node_ref=subject value=current.subject.clone() placeholder="host, service or target" data-testid="history-subject" /></label>
            <label>"State "
                <select name="state" node_ref=state data-testid="history-state">
                    {["", "pending", "firing", "resolved"].into_iter().map(|s| view! {
                        <option value=s selected=s == chosen_state>{if s.is_empty() { "any" } else { s }}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>"From " <input type="datetime-local" node_ref=from /></label>
            <label>"To " <input type="datetime-local" node_ref=to /></label>
            <button type="submit" class="primary" data-testid="history-apply">"Filter"</button>
            <a href="/alerts" class="link">"Clear"</a>
            {move || error.get().map(|e| view! { <span class="range-error" role="alert">{e}</span> })}
        </form>
    }
    .into_any()
}
