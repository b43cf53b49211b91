//! The top bar: product name, the time range picker, the connection indicator, and a warning while history
//! is not being saved or the event bus is away.

use crate::api::get_me;
use crate::format;
use crate::live::{Connection, LiveStore};
use crate::range::RangePicker;
use leptos::prelude::*;

/// `picker`: the environment and host selectors (on the dashboard).
#[component]
pub fn TopBar(#[prop(optional)] picker: bool) -> impl IntoView {
    let live = LiveStore::expect();
    let connection = Memo::new(move |_| live.connection());
    let age = move || {
        live.event_age_ms()
            .map(|ms| format!("· last event {}", format::age(ms)))
    };
    view! {
        <header class="topbar">
            <div class="brand">
                <img src="/favicon.svg" alt="" width="22" height="22" />
                <span>"Watchpost"</span>
            </div>
            {picker.then(|| view! { <crate::selection::HostPicker /> })}
            <RangePicker />
            <div
                class="connection"
                data-state=move || connection.get().as_str()
                data-testid="connection"
                role="status"
                aria-live="polite"
            >
                <span class="dot" aria-hidden="true"></span>
                <span class="connection-label">{move || connection.get().label()}</span>
                <span class="connection-age">{age}</span>
            </div>
            <UserMenu />
        </header>
        <StorageAlert />
        <BusAlert />
        <ClosedAlert />
    }
    .into_any()
}

/// Shown when the server ended this tab's stream (too many tabs of one user, the session over): values here
/// no longer move. After a sign-out it links to the sign-in page, which brings the person back here.
#[component]
fn ClosedAlert() -> impl IntoView {
    let live = LiveStore::expect();
    move || {
        live.closed_reason().map(|reason| {
            let sign_in = (live.connection() == Connection::SignedOut).then(|| {
                view! {
                    " "
                    <a href=sign_in_href() data-testid="sign-in-again">
                        "Sign in again"
                    </a>
                }
            });
            view! {
                <div class="storage-alert" role="alert" data-testid="closed-alert">
                    {reason}
                    {sign_in}
                </div>
            }
        })
    }
}

/// Shown while the store refuses writes (a full disk): the dashboard still works, history has a gap.
#[component]
fn StorageAlert() -> impl IntoView {
    let live = LiveStore::expect();
    let error = Memo::new(move |_| live.state.with(|s| s.storage().error.clone()));
    move || {
        error.get().map(|e| {
            view! {
                <div class="storage-alert" role="alert" data-testid="storage-alert">
                    "History is not being saved: " {e}
                </div>
            }
        })
    }
}

/// Shown while the instance serving this tab cannot reach the event bus it shares with the others (scale-out):
/// every event, this instance's own too, reaches its tabs through the bus, so nothing moves until it is back.
#[component]
fn BusAlert() -> impl IntoView {
    let live = LiveStore::expect();
    move || {
        live.bus_away().then(|| {
            view! {
                <div class="storage-alert" role="alert" data-testid="bus-alert">
                    "The event bus is unreachable: live updates are paused and what this page shows may \
                     be out of date. They resume, with what happened meanwhile, once the bus is back."
                </div>
            }
        })
    }
}

/// The sign-in page, told to come back to the page this tab shows.
fn sign_in_href() -> String {
    #[cfg(feature = "hydrate")]
    if let Some(location) = web_sys::window().map(|w| w.location()) {
        let here = format!(
            "{}{}",
            location.pathname().unwrap_or_default(),
            location.search().unwrap_or_default()
        );
        return format!("/login?next={}", js_sys::encode_uri_component(&here));
    }
    "/login".into()
}

/// The signed-in user and a sign-out button, for the top bar.
#[component]
pub fn UserMenu() -> impl IntoView {
    let me = Resource::new_blocking(|| (), |_| get_me());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                me.await
                    .ok()
                    .map(|me| {
                        let admin = shared::Action::ManageUsers.allowed(me.role);
                        let audit = shared::Action::ViewAudit.allowed(me.role);
                        view! {
                            <form class="user-menu" method="post" action="/api/logout">
                                <a href="/hosts" data-testid="hosts-link">"Hosts"</a>
                                <a href="/alerts" data-testid="alerts-link">"Alerts"</a>
                                <Show when=move || audit>
                                    <a href="/audit" data-testid="audit-link">"Audit"</a>
                                </Show>
                                <Show when=move || admin>
                                    <a href="/admin" data-testid="admin-link">"Users & tokens"</a>
                                </Show>
                                <span class="user-name" data-testid="user-name" data-role=me.role.as_str()>
                                    {me.name.clone()}
                                    <span class="muted">{format!(" · {}", me.role)}</span>
                                </span>
                                <button type="submit" class="link" data-testid="logout">"Sign out"</button>
                            </form>
                        }
                    })
            })}
        </Suspense>
    }
    .into_any()
}
