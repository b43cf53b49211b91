//! `--demo`: a sample workload for a first look, so every panel moves on a fresh install.
//!
//! Nothing here produces a figure for display. A small sample API is served under `/demo/…`; a load task
//! calls it over real HTTP. Its handlers do real work: they query the store, take time, and sometimes fail and
//! log an error. The ordinary sources then measure all of it: the request middleware (API panel), the store's
//! own timings (database panel) and the tracing capture (error log).

use crate::logs::LogBook;
use crate::tasks::Tasks;
use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use shared::{Level, LogFilter};
use std::time::Duration;

/// Requests the load task sends per second, on average.
const REQUESTS_PER_S: f64 = 8.0;

#[derive(Deserialize)]
struct OrdersQuery {
    #[serde(default)]
    service: Option<String>,
}

/// The sample API: `GET /demo/orders` and `POST /demo/checkout`.
pub fn routes(logs: LogBook) -> Router {
    Router::new()
        .route(
            "/demo/orders",
            get(move |Query(q): Query<OrdersQuery>| {
                let logs = logs.clone();
                async move {
                    // A real query of the store, like a listing page would make.
                    let filter = LogFilter {
                        level: Some(Level::Warn),
                        service: q.service,
                        text: None,
                    };
                    match logs.page(&filter, None, 20).await {
                        Ok(page) => (StatusCode::OK, format!("{} orders", page.entries.len())),
                        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                    }
                }
            }),
        )
        .route(
            "/demo/checkout",
            post(|| async {
                let order = fastrand::u32(10_000..99_999);
                // The "payment provider" takes its time, occasionally a long time, and sometimes gives up.
                let millis = if fastrand::u8(..20) == 0 {
                    fastrand::u64(300..1200)
                } else {
                    fastrand::u64(8..80)
                };
                tokio::time::sleep(Duration::from_millis(millis)).await;
                match fastrand::u8(..100) {
                    0..3 => {
                        tracing::error!(target: "demo", order, "payment provider timed out for order {order}");
                        (StatusCode::BAD_GATEWAY, "payment provider timed out")
                    }
                    3..8 => {
                        tracing::warn!(target: "demo", order, "inventory lookup was slow for order {order}");
                        (StatusCode::OK, "ordered")
                    }
                    _ => (StatusCode::OK, "ordered"),
                }
            }),
        )
}

/// Calls the sample API at `base` (this server) until shutdown.
pub fn spawn_load(base: String, tasks: &Tasks) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("cannot start the demo workload: {e}");
            return;
        }
    };
    let shutdown = tasks.token().clone();
    tasks.spawn(async move {
        loop {
            // Exponential gaps: a Poisson stream of requests, as real traffic roughly is.
            let gap = -(1.0 - fastrand::f64()).ln() / REQUESTS_PER_S;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs_f64(gap)) => {}
                () = shutdown.cancelled() => return,
            }
            let request = if fastrand::bool() {
                client.get(format!("{base}/demo/orders"))
            } else {
                client.post(format!("{base}/demo/checkout"))
            };
            // Fire and forget: a slow checkout must not hold back the next request.
            tokio::spawn(async move {
                let _ = request.send().await;
            });
        }
    });
}
