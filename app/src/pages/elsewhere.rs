//! A page this build of the app does not carry (the dashboard's own build, feature `dashboard-only`): the
//! router reached it by a link, so the browser loads it from the server, which renders it and sends the build
//! that holds it.

use leptos::prelude::*;

/// Loads the address the router reached from the server. Only after a link was followed: the page this tab
/// was loaded with is never one this build lacks (the server sends the dashboard's build with the dashboard
/// only), and reloading it would go round for ever if it were. Offline, it says so and loads the page when
/// the browser is back online, rather than leaving the tab on the browser's own error page.
#[component]
pub fn Elsewhere() -> impl IntoView {
    // The router's address, not the window's: the router draws the new page before it puts the address in
    // the history.
    let location = leptos_router::hooks::use_location();
    let offline = RwSignal::new(false);
    Effect::new(move |_| {
        let path = location.pathname.get_untracked();
        let search = location.search.get_untracked();
        let Some(window) = web_sys::window() else {
            return;
        };
        if !LOADED_AT.with(|at| at.get().is_some_and(|at| *at != path)) {
            leptos::logging::error!("{path}: this page is not in this build of the app");
            return;
        }
        let target = if search.is_empty() {
            path
        } else {
            format!("{path}?{search}")
        };
        if window.navigator().on_line() {
            let _ = window.location().assign(&target);
            return;
        }
        offline.set(true);
        let handle = window_event_listener(leptos::ev::online, move |_| {
            if let Some(window) = web_sys::window() {
                let _ = window.location().assign(&target);
            }
        });
        on_cleanup(move || handle.remove());
    });
    // Framed as the dashboard frames its own loading state, so the tab is not a bare line of text.
    view! {
        <main class="grid">
            <section class="panel wide">
                {move || {
                    if offline.get() {
                        view! {
                            <p class="empty" role="status" data-testid="page-offline">
                                "Offline: this page loads when the connection is back."
                            </p>
                        }
                            .into_any()
                    } else {
                        view! { <p class="empty" role="status">"Loading…"</p> }.into_any()
                    }
                }}
            </section>
        </main>
    }
}

thread_local! {
    /// The path the page was loaded with, taken when the app first starts in this tab.
    static LOADED_AT: std::cell::OnceCell<String> = const { std::cell::OnceCell::new() };
}

/// Notes the path this tab was loaded with (called once, as the app starts).
pub fn note_loaded_path() {
    if let Some(path) = web_sys::window().and_then(|w| w.location().pathname().ok()) {
        LOADED_AT.with(|at| {
            let _ = at.set(path);
        });
    }
}
