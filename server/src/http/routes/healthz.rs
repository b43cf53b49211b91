//! `GET /healthz`: liveness and the figures an operator checks first. Never needs a session.

use crate::history::History;
use crate::hub::Hub;
use crate::sources::host::CollectorStatus;
use axum::Json;
use axum::extract::State;
use shared::HealthzReport;
use std::sync::Arc;
use std::time::Instant;

pub async fn get(
    State(hub): State<Arc<Hub>>,
    State(collector): State<Arc<CollectorStatus>>,
    State(history): State<History>,
    State(started): State<Instant>,
) -> Json<HealthzReport> {
    let storage = history.health().await;
    Json(HealthzReport {
        // Degraded, not down: the dashboard works, but history has a gap until the store accepts writes.
        status: if storage.error.is_some() {
            "degraded"
        } else {
            "ok"
        }
        .into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: started.elapsed().as_secs(),
        stream_clients: hub.stream_count(),
        last_sample_ms: collector.last_sample_ms(),
        rss_bytes: collector.rss_bytes(),
        storage,
    })
}
