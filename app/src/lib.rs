//! The Watchpost web app: rendered on the server, hydrated in the browser, kept live by one SSE stream.
//!
//! Panels only read the [`live::LiveStore`]; the store is fed by the server-rendered snapshot and then by the
//! stream. Server-only code (the ports to the server) sits behind the `ssr` feature, browser-only code (charts,
//! the `EventSource`) behind `hydrate`, so neither build carries the other's dependencies.

pub mod api;
#[cfg(feature = "ssr")]
pub mod assets;
#[cfg(feature = "hydrate")]
mod charts;
pub mod codec;
pub mod error;
mod format;
pub(crate) mod header;
pub mod live;
pub mod pages;
mod panels;
#[cfg(feature = "ssr")]
pub mod ports;
mod range;
mod reactive;
mod selection;
mod series;
mod stored;

use leptos::prelude::*;
#[cfg(feature = "ssr")]
use leptos_meta::{HashedStylesheet, MetaTags};
use leptos_meta::{Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, StaticSegment};

/// The HTML document around the app. ECharts is a classic script ahead of the hydration scripts, because
/// charming's renderer binds to the global `echarts` it defines. Every static file is asked for by its
/// content-hashed name ([`assets`]).
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    content_security_policy();
    let echarts = assets::echarts_src(&options);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <HashedStylesheet options=options.clone() id="leptos" />
                <script src=echarts></script>
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The page's Content-Security-Policy, as a response header: scripts only from this origin or carrying this
/// response's nonce (leptos puts it on its inline hydration scripts), WASM compiled from this origin, no
/// plugins, no framing, forms and requests to this origin only. Styles allow inline `style` attributes:
/// two panels set a bar's width that way, and ECharts writes its tooltips' markup with them.
#[cfg(feature = "ssr")]
fn content_security_policy() {
    use leptos::nonce::use_nonce;
    let (Some(nonce), Some(response)) =
        (use_nonce(), use_context::<leptos_axum::ResponseOptions>())
    else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Watchpost" />
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                // Async: the page is rendered once the snapshot (read from memory) is in, so the first HTML shows
                // current values in place, even to a browser without scripts; streamed out-of-order chunks
                // would need a script to swap them in.
                <Route path=StaticSegment("") view=pages::dashboard::Dashboard ssr=SsrMode::Async />
                <Route path=StaticSegment("login") view=pages::account::LoginPage />
                <Route path=StaticSegment("setup") view=pages::account::SetupPage />
                <Route path=StaticSegment("admin") view=pages::admin::AdminPage />
                <Route path=StaticSegment("audit") view=pages::audit::AuditPage />
                <Route path=StaticSegment("alerts") view=pages::alerts::AlertsPage ssr=SsrMode::Async />
                <Route path=StaticSegment("hosts") view=pages::hosts::HostsPage ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}
