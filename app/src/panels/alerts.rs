//! Alerts from the rules: the list (open ones first, then the newest resolved), a badge on each panel an open
//! alert concerns, and a toast when one fires. Operators acknowledge and silence; every tab sees it at once,
//! since the change comes back as an `alert` event.

use crate::api::get_me;
use crate::error::AppError;
use crate::format;
use crate::live::LiveStore;
use leptos::prelude::*;
use shared::{Alert, AlertState, Role, value_text as number};

/// Marks an alert acknowledged by the signed-in operator.
#[server(prefix = "/api", endpoint = "acknowledge_alert", output = crate::codec::JsonText)]
pub async fn acknowledge_alert(id: i64) -> Result<Alert, AppError> {
    let (me, ports) = crate::ports::authorize(shared::Action::Acknowledge)?;
    crate::ports::with_status(ports.alerts.acknowledge_alert(&me, id).await)
}

/// Holds back an alert's notifications for `minutes` (0 lifts the silence).
#[server(prefix = "/api", endpoint = "silence_alert", output = crate::codec::JsonText)]
pub async fn silence_alert(id: i64, minutes: u32) -> Result<Alert, AppError> {
    let (me, ports) = crate::ports::authorize(shared::Action::Acknowledge)?;
    if minutes > 7 * 24 * 60 {
        return crate::ports::with_status(Err(AppError::BadRequest(
            "silence for at most 7 days".into(),
        )));
    }
    let until = (minutes > 0).then(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        now + i64::from(minutes) * 60_000
    });
    crate::ports::with_status(ports.alerts.silence_alert(&me, id, until).await)
}

/// Resolved alerts the panel lists under the open ones.
const RESOLVED_SHOWN: usize = 20;

/// `link`: whether the head links to the Alerts page (not on that page itself).
#[component]
pub fn AlertsPanel(#[prop(default = true)] link: bool) -> impl IntoView {
    let live = LiveStore::expect();
    let me = Resource::new_blocking(|| (), |_| get_me());
    let alerts = Memo::new(move |_| {
        live.state.with(|s| {
            let (open, resolved): (Vec<Alert>, Vec<Alert>) = s
                .alerts()
                .iter()
                .cloned()
                .partition(|a| a.state != AlertState::Resolved);
            open.into_iter()
                .chain(resolved.into_iter().take(RESOLVED_SHOWN))
                .collect::<Vec<_>>()
        })
    });
    let rules = Memo::new(move |_| live.state.with(|s| s.alert_rules().to_vec()));
    let firing =
        move || alerts.with(|a| a.iter().filter(|a| a.state == AlertState::Firing).count());
    let acknowledge = ServerAction::<AcknowledgeAlert>::new();
    let silence = ServerAction::<SilenceAlert>::new();
    let error = move || {
        let failed = |v: Option<Result<Alert, AppError>>| v.and_then(|r| r.err());
        failed(acknowledge.value().get())
            .or_else(|| failed(silence.value().get()))
            .map(|e| view! { <p class="auth-error" role="alert">{e.to_string()}</p> })
    };
    let rule_list = move || {
        rules
            .get()
            .into_iter()
            .map(|r| {
                view! {
                    <li>
                        <strong>{r.name.clone()}</strong>
                        {format!(
                            ": {} of {} {} {}{}, {}",
                            r.metric.as_str(),
                            r.subject.clone().unwrap_or_else(|| format!("every {}", r.metric.subject_label())),
                            r.condition.comparison.symbol(),
                            r.condition.threshold,
                            if r.condition.for_ms > 0 { format!(" for {}", format::span(r.condition.for_ms)) } else { String::new() },
                            r.severity.as_str()
                        )}
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <section class="panel alerts" data-testid="panel-alerts" aria-labelledby="alerts-title">
            <div class="panel-head">
                <h2 id="alerts-title">"Alerts"</h2>
                <span class="panel-meta" data-testid="alerts-firing">{move || format!("{} firing", firing())}</span>
                {link.then(|| view! { <a class="panel-link" href="/alerts" data-testid="alerts-page-link">"Rules, channels, history →"</a> })}
            </div>
            {error}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let operator = me.await.map(|m| m.role >= Role::Operator).unwrap_or(false);
                    view! {
                        <Show
                            when=move || alerts.with(|a| !a.is_empty())
                            fallback=move || view! {
                                <p class="empty" data-testid="alerts-empty">
                                    {move || if rules.with(Vec::is_empty) {
                                        "No alert rules yet. Admins add them on the Alerts page, or declare [[alerts]] in the configuration file (see the README)."
                                    } else {
                                        "No alerts: every rule is quiet."
                                    }}
                                </p>
                            }
                        >
                            <ul class="security-list alert-list">
                                <For each=move || alerts.get() key=|a| (a.id, a.updated_ms) let:alert>
                                    <AlertRow alert operator acknowledge silence />
                                </For>
                            </ul>
                        </Show>
                    }
                    .into_any()
                })}
            </Suspense>
            <Show when=move || rules.with(|r| !r.is_empty())>
                <details class="alert-rules">
                    <summary>
                        {move || {
                            let n = rules.with(Vec::len);
                            format!("{n} rule{}", if n == 1 { "" } else { "s" })
                        }}
                    </summary>
                    <ul>{rule_list}</ul>
                </details>
            </Show>
        </section>
    }
    .into_any()
}

#[component]
fn AlertRow(
    alert: Alert,
    operator: bool,
    acknowledge: ServerAction<AcknowledgeAlert>,
    silence: ServerAction<SilenceAlert>,
) -> impl IntoView {
    let id = alert.id;
    let when = match (alert.state, alert.fired_ms, alert.resolved_ms) {
        (AlertState::Resolved, _, Some(r)) => format!("resolved {} UTC", format::clock_utc(r)),
        (_, Some(f), _) => format!("firing since {} UTC", format::clock_utc(f)),
        _ => format!("pending since {} UTC", format::clock_utc(alert.started_ms)),
    };
    let ack = alert.acknowledged_by.clone().map(|by| {
        view! {
            <p class="muted ack" data-testid="alert-acknowledged">
                {format!(
                    "acknowledged by {by}{}",
                    alert.acknowledged_ms.map(|t| format!(" at {} UTC", format::clock_utc(t))).unwrap_or_default()
                )}
            </p>
        }
    });
    let silenced = alert.silenced_until_ms.map(|until| {
        view! {
            <p class="muted" data-testid="alert-silenced">
                {format!(
                    "silenced until {} UTC by {}",
                    format::clock_utc(until),
                    alert.silenced_by.clone().unwrap_or_default()
                )}
            </p>
        }
    });
    let open = alert.state != AlertState::Resolved;
    let can_ack = operator && open && alert.acknowledged_by.is_none();
    let can_silence = operator && open;
    let is_silenced = alert.silenced_until_ms.is_some();
    view! {
        <li
            class=format!("security-alert alert-row sev-{} state-{}", alert.severity.as_str(), alert.state.as_str())
            data-testid="alert-row"
            data-rule=alert.rule.clone()
            data-subject=alert.subject.clone()
            data-state=alert.state.as_str()
            data-acknowledged=alert.acknowledged_by.is_some().to_string()
        >
            <div class="security-line">
                <span class="badge">{alert.severity.as_str()}</span>
                <span class=format!("state state-{}", alert.state.as_str())>{alert.state.as_str()}</span>
                <strong>{alert.rule.clone()}</strong>
                <span class="muted">{alert.subject.clone()}</span>
                <time class="muted">{when}</time>
            </div>
            <p class="security-message">{alert.message.clone()}</p>
            <p class="muted">{format!("value {} · peak {} · threshold {}", number(alert.value), number(alert.peak), number(alert.threshold))}</p>
            {ack}
            {silenced}
            <div class="alert-actions">
                <Show when=move || can_ack>
                    <button class="link" data-testid="alert-acknowledge" on:click=move |_| { acknowledge.dispatch(AcknowledgeAlert { id }); }>
                        "Acknowledge"
                    </button>
                </Show>
                <Show when=move || can_silence>
                    <button
                        class="link"
                        data-testid="alert-silence"
                        on:click=move |_| { silence.dispatch(SilenceAlert { id, minutes: if is_silenced { 0 } else { 60 } }); }
                    >
                        {if is_silenced { "Lift silence" } else { "Silence 1h" }}
                    </button>
                </Show>
            </div>
        </li>
    }
    .into_any()
}

/// A badge in a panel's head while alerts concerning it fire (`panel`: health, api, database, errors).
#[component]
pub fn AlertBadge(panel: &'static str) -> impl IntoView {
    let live = LiveStore::expect();
    let firing = Memo::new(move |_| {
        live.state.with(|s| {
            s.alerts()
                .iter()
                .filter(|a| a.state == AlertState::Firing && a.metric.panel() == panel)
                .map(|a| a.rule.clone())
                .collect::<Vec<_>>()
        })
    });
    move || {
        firing.with(|rules| {
            (!rules.is_empty()).then(|| {
                view! {
                    <span class="badge alert-badge" data-testid=format!("alert-badge-{panel}") title=rules.join(", ")>
                        {format!("{} alert{} firing", rules.len(), if rules.len() == 1 { "" } else { "s" })}
                    </span>
                }
            })
        })
    }
}

/// How long an alert toast stays up unless dismissed.
#[cfg(feature = "hydrate")]
const TOAST_MS: u64 = 10_000;

/// A toast for each alert that starts firing while the page is open.
#[component]
pub fn AlertToasts() -> impl IntoView {
    let live = LiveStore::expect();
    let shown = RwSignal::new(Vec::<Alert>::new());
    #[cfg(feature = "hydrate")]
    {
        // The alerts already firing when the page loaded are not news.
        let seen = StoredValue::new(None::<std::collections::BTreeSet<i64>>);
        Effect::new(move |_| {
            let firing: Vec<Alert> = live.state.with(|s| {
                s.alerts()
                    .iter()
                    .filter(|a| a.state == AlertState::Firing)
                    .cloned()
                    .collect()
            });
            let Some(mut known) = seen.get_value() else {
                seen.set_value(Some(firing.iter().map(|a| a.id).collect()));
                return;
            };
            for alert in firing {
                if known.insert(alert.id) {
                    let id = alert.id;
                    super::security::pop_up(shown, alert, move |a| a.id == id, TOAST_MS);
                }
            }
            seen.set_value(Some(known));
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = live;
    view! {
        <div class="toasts alert-toasts" aria-live="polite">
            <For each=move || shown.get() key=|a| a.id let:alert>
                {
                    let id = alert.id;
                    view! {
                        <super::security::Toast
                            severity=alert.severity
                            title=format!("Alert firing: {}", alert.rule)
                            message=alert.message.clone()
                            testid="alert-toast"
                            close=move || shown.update(|s| s.retain(|a| a.id != id))
                        />
                    }
                }
            </For>
        </div>
    }
    .into_any()
}
