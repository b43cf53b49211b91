//! The HTTP edge: the router (one line a route), the middleware, the mapping of domain errors to statuses,
//! serving connections, the SSE stream, and every route handler. Nothing below this module knows HTTP: the
//! domain returns its own errors, mapped to a status and a readable message here.

pub mod client_addr;
pub mod error;
mod headers;
pub mod middleware;
mod ports;
mod routes;
pub mod serve;
pub mod sse;

pub use ports::ServerPorts;

use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::deploy::DeployBook;
use crate::history::History;
use crate::hub::Hub;
use crate::logs::LogBook;
use crate::sources::host::CollectorStatus;
use crate::sources::http_self::HttpMetrics;
use crate::sources::ingest::MAX_INGEST_BYTES;
use app::ports::Ports;
use app::{App, shell};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use sse::StreamConfig;
use std::sync::Arc;
use std::time::Instant;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

/// Sign-in and setup forms are a name and a password or two: a larger body is not one.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// A deployment report is a few names and a step text.
const MAX_DEPLOYMENT_BYTES: usize = 64 * 1024;

/// The built site's files (WASM, JS, CSS, the ECharts bundle, assets), each sent as the `.br` or `.gz` file
/// the release build wrote beside it (`scripts/build.sh`, by `scripts/precompress.mjs`) when the browser accepts
/// that encoding: brotli at its best setting costs a build a few seconds once, where compressing on every
/// request would cost each one CPU and bytes. A file without a precompressed copy is compressed on the fly
/// by the layer around the site; a path that is no file gets the app's "Page not found".
fn static_files(options: &LeptosOptions) -> axum::routing::MethodRouter {
    use axum::handler::HandlerWithoutStateExt;
    let not_found = leptos_axum::file_and_error_handler(shell);
    let options = options.clone();
    let root = options.site_root.to_string();
    let not_found = move |uri: axum::http::Uri, req: axum::extract::Request| {
        not_found(uri, axum::extract::State(options.clone()), req)
    };
    axum::routing::any_service(
        tower_http::services::ServeDir::new(root)
            .precompressed_br()
            .precompressed_gzip()
            .append_index_html_on_directories(false)
            .call_fallback_on_method_not_allowed(true)
            .fallback(not_found.into_service()),
    )
}

/// What the route handlers read, each part extracted on its own with `State<Part>`.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub history: History,
    pub logs: LogBook,
    pub auth: Auth,
    pub audit: AuditLog,
    pub deploys: DeployBook,
    pub fleet: crate::fleet::Fleet,
    pub commands: crate::commands::Commands,
    pub alert_history: Arc<dyn store::AlertHistory>,
    pub http_metrics: Arc<HttpMetrics>,
    pub collector: Arc<CollectorStatus>,
    pub stream: StreamConfig,
    pub started: Instant,
    /// Proxies whose forwarding headers give the client's address.
    pub trusted: client_addr::TrustedProxies,
    pub bus: BusStatus,
}

/// The NATS bus's health, when events go over one (scale-out); `None` in one process.
#[derive(Clone)]
pub struct BusStatus(pub Option<Arc<crate::hub::jetstream::BusHealth>>);

/// The whole router: the live routes, the JSON API, `--demo`'s sample API when `demo`, and the web app, inside
/// the middleware every request passes.
pub fn router(state: AppState, demo: bool, leptos_options: LeptosOptions, ports: Ports) -> Router {
    // The stream is the hot path: no compression (a compressor buffers, and an event must reach the browser
    // as it happens) and no per-chunk tracing around its body.
    let live = Router::new()
        .route("/api/events", get(sse::events))
        .route(
            collect::wire::ORDERS_PATH,
            post(routes::agent::orders)
                .layer(DefaultBodyLimit::max(routes::agent::MAX_HELLO_BYTES)),
        )
        .route(
            &format!("{}/{{id}}", collect::wire::RUN_PATH),
            post(routes::agent::report)
                .layer(DefaultBodyLimit::max(routes::agent::MAX_REPORT_BYTES)),
        )
        .route("/healthz", get(routes::healthz::get))
        .route("/metrics", get(routes::metrics::get));
    let api = Router::new()
        .route("/api/history", get(routes::history::get))
        .route("/api/logs", get(routes::logs::page))
        .route(
            "/api/ingest/logs",
            post(routes::logs::ingest).layer(DefaultBodyLimit::max(MAX_INGEST_BYTES)),
        )
        .route(
            "/api/login",
            post(routes::auth::login).layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
        )
        .route(
            "/api/setup",
            post(routes::auth::setup).layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
        )
        .route(
            collect::wire::PUSH_PATH,
            post(routes::agent::push).layer(DefaultBodyLimit::max(routes::agent::MAX_PUSH_BYTES)),
        )
        .route("/api/logout", post(routes::auth::logout))
        .route("/api/me", get(routes::auth::me))
        .route(
            "/api/deployments",
            post(routes::deployments::report)
                .get(routes::deployments::list)
                .layer(DefaultBodyLimit::max(MAX_DEPLOYMENT_BYTES)),
        )
        .route("/api/alerts", get(routes::alerts::list))
        .route("/api/audit", get(routes::audit::list))
        .layer(CompressionLayer::new());
    let site = Router::new()
        .leptos_routes_with_context(
            &leptos_options,
            generate_route_list(App),
            move || provide_context(ports.clone()),
            {
                let options = leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .fallback_service(static_files(&leptos_options))
        .with_state(leptos_options)
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http());

    // Outermost first: find the client's address (behind a trusted proxy), time every request (refused ones
    // too), refuse cross-site writes, then find who the request is from.
    let (auth, metrics, trusted) = (
        state.auth.clone(),
        state.http_metrics.clone(),
        state.trusted.clone(),
    );
    let demo_api = demo.then(|| routes::demo::routes(state.logs.clone()));
    let routes = live.merge(api).with_state(state);
    // `--demo`'s sample API stands for a user's own service: served as such, not compressed.
    let routes = match demo_api {
        Some(demo) => routes.merge(demo),
        None => routes,
    };
    routes
        .merge(site)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            middleware::authenticate,
        ))
        .layer(axum::middleware::from_fn(middleware::same_origin))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            middleware::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            trusted,
            client_addr::resolve,
        ))
        .layer(axum::middleware::from_fn(headers::security_headers))
}
