//! Security alerts: the notification panel (newest first, with severity, time, and who acknowledged) and the
//! toasts that pop up when a new alert arrives. Alerts reach operators and admins only; operators
//! acknowledge them, and the acknowledgement shows in every open tab.

use crate::api::get_me;
use crate::error::AppError;
use crate::format;
use crate::live::LiveStore;
use leptos::prelude::*;
use shared::{SECURITY_AUDIENCE, SecurityAlert};

/// Marks a security alert acknowledged by the signed-in operator.
#[server(prefix = "/api", endpoint = "acknowledge_security", output = crate::codec::JsonText)]
pub async fn acknowledge_security(id: i64) -> Result<SecurityAlert, AppError> {
    let (me, ports) = crate::ports::authorize(shared::Action::Acknowledge)?;
    crate::ports::with_status(ports.security.acknowledge(&me, id).await)
}

#[component]
pub fn SecurityPanel() -> impl IntoView {
    let live = LiveStore::expect();
    let me = Resource::new_blocking(|| (), |_| get_me());
    let alerts = Memo::new(move |_| live.state.with(|s| s.security().to_vec()));
    let open = move || alerts.with(|a| a.iter().filter(|a| a.acknowledged_by.is_none()).count());
    let acknowledge = ServerAction::<AcknowledgeSecurity>::new();
    let error = move || {
        acknowledge
            .value()
            .get()
            .and_then(|r| r.err())
            .map(|e| view! { <p class="auth-error" role="alert">{e.to_string()}</p> })
    };
    let rows = move || {
        alerts
            .get()
            .into_iter()
            .map(|a| {
                let id = a.id;
                let acknowledged = a.acknowledged_by.clone().map(|by| {
                    format!(
                        "acknowledged by {by}{}",
                        a.acknowledged_ms
                            .map(|t| format!(" at {}", format::clock_utc(t)))
                            .unwrap_or_default()
                    )
                });
                let acked = acknowledged.is_some();
                view! {
                    <li
                        class=format!("security-alert sev-{}", a.severity.as_str())
                        data-testid="security-alert"
                        data-kind=a.kind.as_str()
                        data-acknowledged=acked.to_string()
                    >
                        <div class="security-line">
                            <span class="badge">{a.severity.as_str()}</span>
                            <strong>{a.kind.label()}</strong>
                            <time class="muted">{format::clock_utc(a.t_ms)} " UTC"</time>
                        </div>
                        <p class="security-message">{a.message.clone()}</p>
                        {match acknowledged {
                            Some(text) => view! { <p class="muted ack" data-testid="acknowledged">{text}</p> }.into_any(),
                            None => view! {
                                <button
                                    class="link"
                                    data-testid="acknowledge"
                                    on:click=move |_| { acknowledge.dispatch(AcknowledgeSecurity { id }); }
                                >
                                    "Acknowledge"
                                </button>
                            }
                            .into_any(),
                        }}
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <section class="panel security" data-testid="panel-security" aria-labelledby="security-title">
            <div class="panel-head">
                <h2 id="security-title">"Security alerts"</h2>
                <span class="panel-meta" data-testid="security-open">
                    {move || format!("{} not acknowledged", open())}
                </span>
            </div>
            {error}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let role = me.await.map(|m| m.role).unwrap_or_default();
                    if role < SECURITY_AUDIENCE {
                        view! {
                            <p class="empty" data-testid="security-hidden">
                                "Security alerts are shown to operators and admins."
                            </p>
                        }
                            .into_any()
                    } else {
                        view! {
                            <Show
                                when=move || alerts.with(|a| !a.is_empty())
                                fallback=|| view! { <p class="empty">"No security alerts."</p> }
                            >
                                <ul class="security-list">{rows}</ul>
                            </Show>
                        }
                            .into_any()
                    }
                })}
            </Suspense>
        </section>
    }
    .into_any()
}

/// One toast: a title and a message, edged by severity; a click dismisses it.
#[component]
pub(crate) fn Toast(
    severity: shared::Severity,
    title: String,
    message: String,
    testid: &'static str,
    close: impl Fn() + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <div
            class=format!("toast sev-{}", severity.as_str())
            role="status"
            data-testid=testid
            on:click=move |_| close()
        >
            <strong>{title}</strong>
            <span>{message}</span>
        </div>
    }
}

/// Shows `item` among the toasts `shown` for `ms`, then takes it away (unless dismissed before, or the
/// toasts are gone with their page).
#[cfg(feature = "hydrate")]
pub(crate) fn pop_up<T: Send + Sync + 'static>(
    shown: RwSignal<Vec<T>>,
    item: T,
    is_it: impl Fn(&T) -> bool + 'static,
    ms: u64,
) {
    shown.update(|s| s.push(item));
    set_timeout(
        move || {
            let _ = shown.try_update(|s| s.retain(|t| !is_it(t)));
        },
        std::time::Duration::from_millis(ms),
    );
}

/// How long a toast stays up unless dismissed.
#[cfg(feature = "hydrate")]
const TOAST_MS: u64 = 8_000;

/// Toasts for alerts that arrive while the page is open (not for those already there when it loaded).
#[component]
pub fn Toasts() -> impl IntoView {
    let live = LiveStore::expect();
    let shown = RwSignal::new(Vec::<SecurityAlert>::new());
    #[cfg(feature = "hydrate")]
    {
        let newest_seen = StoredValue::new(None::<i64>);
        Effect::new(move |_| {
            let alerts = live.state.with(|s| s.security().to_vec());
            let newest = alerts.first().map_or(0, |a| a.id);
            let Some(before) = newest_seen.get_value() else {
                newest_seen.set_value(Some(newest));
                return;
            };
            let fresh: Vec<SecurityAlert> = alerts.into_iter().filter(|a| a.id > before).collect();
            if fresh.is_empty() {
                return;
            }
            newest_seen.set_value(Some(newest.max(before)));
            for alert in fresh.into_iter().rev() {
                let id = alert.id;
                pop_up(shown, alert, move |a| a.id == id, TOAST_MS);
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = live;
    view! {
        <div class="toasts" aria-live="polite">
            <For each=move || shown.get() key=|a| a.id let:alert>
                {
                    let id = alert.id;
                    view! {
                        <Toast
                            severity=alert.severity
                            title=alert.kind.label().to_owned()
                            message=alert.message.clone()
                            testid="toast"
                            close=move || shown.update(|s| s.retain(|a| a.id != id))
                        />
                    }
                }
            </For>
        </div>
    }
    .into_any()
}
