//! `--demo`'s sample API, standing for a service of the user's: its handlers do real work (they query the
//! store, take time, sometimes fail and log an error), which the ordinary sources then measure.

use crate::logs::LogBook;
use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use shared::{Level, LogFilter};
use std::time::Duration;

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
                        host: None,
                    };
                    let access = shared::Access::uniform(shared::Role::Viewer);
                    match logs.page(&filter, &access, None, 20).await {
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
