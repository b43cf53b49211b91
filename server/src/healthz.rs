//! `GET /healthz`: liveness and the figures an operator checks first. Never needs a session.

use crate::collector::CollectorStatus;
use crate::hub::Hub;
use axum::Json;
use shared::HealthzReport;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone)]
pub struct HealthzState {
    pub hub: Arc<Hub>,
    pub collector: Arc<CollectorStatus>,
    pub started: Instant,
}

pub async fn healthz(state: HealthzState) -> Json<HealthzReport> {
    Json(HealthzReport {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: state.started.elapsed().as_secs(),
        stream_clients: state.hub.stream_count(),
        last_sample_ms: state.collector.last_sample_ms(),
        rss_bytes: state.collector.rss_bytes(),
    })
}
