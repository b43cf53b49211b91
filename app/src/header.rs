//! The top bar: product name and the connection indicator.

use crate::format;
use crate::live::LiveStore;
use leptos::prelude::*;

#[component]
pub fn TopBar() -> impl IntoView {
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
        </header>
    }
}
