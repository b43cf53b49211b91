//! The live view's server functions: the snapshot, stored history and the error log. What every server
//! function reaches the server through is in [`crate::ports`].

use crate::error::AppError;
use leptos::prelude::*;
use shared::{Envelope, HistorySeries, LogCursor, LogFilter, LogPage, Me, Metric, TimeRange};

#[cfg(feature = "ssr")]
use crate::ports::ports;

/// The whole dashboard state as of the newest event: what the server renders into the first HTML.
#[server(prefix = "/api", endpoint = "snapshot", output = crate::codec::JsonText)]
pub async fn get_snapshot() -> Result<Envelope, AppError> {
    let live = ports()?.live;
    // What the reader may see, as the stream would send it.
    let access = crate::ports::access();
    let mut env = live.snapshot();
    if let shared::Event::Snapshot(snapshot) = env.event {
        env.event = shared::Event::Snapshot(snapshot.for_access(&access, &env.scope.environment));
    }
    Ok(env)
}

/// Stored history of `metrics` over `range` for `subject` — the host, service or database target the
/// metrics are of (this server's own host when `None`) — one series per distinct metric in `Metric` order,
/// each at most about a thousand points. The metrics must all be of the same kind of subject.
#[server(prefix = "/api", endpoint = "get_history", input = server_fn::codec::Json, output = crate::codec::JsonText)]
pub async fn get_history(
    metrics: Vec<Metric>,
    range: TimeRange,
    subject: Option<String>,
) -> Result<Vec<HistorySeries>, AppError> {
    let live = ports()?.live;
    // 400 for a bad request, 404 for a subject that does not exist (or that the reader may not see).
    let bad_request = |e: AppError| {
        crate::ports::set_status(&e);
        e
    };
    let mut metrics = metrics;
    metrics.sort();
    metrics.dedup();
    if let Some(first) = metrics.first()
        && let Some(other) = metrics.iter().find(|m| m.subject() != first.subject())
    {
        return Err(bad_request(AppError::BadRequest(format!(
            "{first} is a metric of a {}, {other} of a {}; ask for them separately",
            first.subject().label(),
            other.subject().label()
        ))));
    }
    let mut series = Vec::with_capacity(metrics.len());
    for metric in metrics {
        series.push(
            live.history(crate::ports::access(), metric, subject.clone(), range)
                .await
                .map_err(bad_request)?,
        );
    }
    Ok(series)
}

/// A page of the error log, newest first, strictly older than `before` when given.
#[server(prefix = "/api", endpoint = "get_logs", input = server_fn::codec::Json, output = crate::codec::JsonText)]
pub async fn get_logs(
    filter: LogFilter,
    before: Option<LogCursor>,
    limit: u32,
) -> Result<LogPage, AppError> {
    let live = ports()?.live;
    live.logs(crate::ports::access(), filter, before, limit as usize)
        .await
}

/// Every service with log entries, for the service filter.
#[server(prefix = "/api", endpoint = "get_log_services", output = crate::codec::JsonText)]
pub async fn get_log_services() -> Result<Vec<String>, AppError> {
    let live = ports()?.live;
    live.log_services().await
}

/// Who the request is from (the session's user or the token's name) and the role.
#[server(prefix = "/api", endpoint = "get_me", output = crate::codec::JsonText)]
pub async fn get_me() -> Result<Me, AppError> {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Me>().cloned())
        .ok_or_else(|| AppError::Unavailable("the request carries no signed-in user".into()))
}
