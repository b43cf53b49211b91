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
/// the charts draw with the global `echarts` it defines. Every static file is asked for by its
/// content-hashed name ([`assets`]).
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    content_security_policy();
    let echarts = assets::echarts_src(&options);
    // The dashboard gets its own build of the app, without the other pages' code; every other page the
    // whole app.
    let dashboard = use_context::<http::request::Parts>()
        .filter(|request| request.uri.path() == "/")
        .and_then(|_| assets::dashboard_build(&options));
    let scripts = dashboard.unwrap_or_else(|| options.clone());
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
                <HydrationScripts options=scripts />
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
    #[cfg(feature = "dashboard-only")]
    pages::elsewhere::note_loaded_path();
    view! {
        <Title text="Watchpost" />
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                // Async: the page is rendered once the snapshot (read from memory) is in, so the first HTML shows
                // current values in place, even to a browser without scripts; streamed out-of-order chunks
                // would need a script to swap them in.
                <Route path=StaticSegment("") view=pages::dashboard::Dashboard ssr=SsrMode::Async />
                <Route path=StaticSegment("login") view=routed::LoginPage />
                <Route path=StaticSegment("setup") view=routed::SetupPage />
                <Route path=StaticSegment("admin") view=routed::AdminPage />
                <Route path=StaticSegment("audit") view=routed::AuditPage />
                <Route path=StaticSegment("alerts") view=routed::AlertsPage ssr=SsrMode::Async />
                <Route path=StaticSegment("hosts") view=routed::HostsPage ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}

/// The pages this build hydrates. The server renders every page; the browser gets one of two builds of the
/// app: the dashboard's own (feature `dashboard-only`, sent with `/`), which holds no other page, and the
/// whole app (every other page). A page the dashboard's build lacks is loaded from the server when a link
/// leads to it (`pages::elsewhere`), so the dashboard's first load carries none of their code (issue 18).
#[cfg(not(feature = "dashboard-only"))]
mod routed {
    pub use crate::pages::account::{LoginPage, SetupPage};
    pub use crate::pages::admin::AdminPage;
    pub use crate::pages::alerts::AlertsPage;
    pub use crate::pages::audit::AuditPage;
    pub use crate::pages::hosts::HostsPage;
}

#[cfg(feature = "dashboard-only")]
mod routed {
    pub use crate::pages::elsewhere::Elsewhere as LoginPage;
    pub use crate::pages::elsewhere::Elsewhere as SetupPage;
    pub use crate::pages::elsewhere::Elsewhere as AdminPage;
    pub use crate::pages::elsewhere::Elsewhere as AuditPage;
    pub use crate::pages::elsewhere::Elsewhere as AlertsPage;
    pub use crate::pages::elsewhere::Elsewhere as HostsPage;
}
