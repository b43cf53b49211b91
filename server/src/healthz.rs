//! `GET /healthz`: liveness and the figures an operator checks first. Never needs a session.

use crate::collector::CollectorStatus;
use crate::history::History;
use crate::hub::Hub;
use axum::Json;
use shared::HealthzReport;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone)]
pub struct HealthzState {
    pub hub: Arc<Hub>,
    pub collector: Arc<CollectorStatus>,
    pub history: History,
    pub started: Instant,
}

pub async fn healthz(state: HealthzState) -> Json<HealthzReport> {
    let storage = state.history.health().await;
    Json(HealthzReport {
        // Degraded, not down: the dashboard works, but history has a gap until the store accepts writes.
        status: if storage.error.is_some() {
            "degraded"
        } else {
            "ok"
        }
        .into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: state.started.elapsed().as_secs(),
        stream_clients: state.hub.stream_count(),
        last_sample_ms: state.collector.last_sample_ms(),
        rss_bytes: state.collector.rss_bytes(),
        storage,
    })
}
