//! `GET /healthz`: liveness and the figures an operator checks first. Never needs a session.

use crate::history::History;
use crate::http::BusStatus;
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
    State(BusStatus(bus)): State<BusStatus>,
) -> Json<HealthzReport> {
    let storage = history.health().await;
    let bus = bus.map(|b| {
        if b.connected() {
            "ok".to_owned()
        } else {
            "unreachable".to_owned()
        }
    });
    Json(HealthzReport {
        // Degraded, not down: the dashboard works, but history has a gap until the store accepts writes,
        // and with the bus away this instance's tabs miss the others' events until it is back.
        status: if storage.error.is_some() || bus.as_deref() == Some("unreachable") {
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
        bus,
    })
}
