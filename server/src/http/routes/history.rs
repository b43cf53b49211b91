//! `GET /api/history`: one metric's stored history over a range.

use crate::clock::now_millis;
use crate::fleet::Fleet;
use crate::history::History;
use crate::http::error::ApiError;
use crate::hub::Hub;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use shared::{Access, HistorySeries, Metric, Subject, TimeRange};
use std::collections::HashMap;
use std::sync::Arc;

/// `GET /api/history?metric=cpu&range=1h` (or `from=…&to=…` in Unix ms). A host metric may name its host
/// (`host=…`, this server's by default); an API metric needs `service=…`, a database metric `target=…`.
pub async fn get(
    State(history): State<History>,
    State(fleet): State<Fleet>,
    State(hub): State<Arc<Hub>>,
    access: Option<Extension<Access>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<HistorySeries>, ApiError> {
    let param = |name: &str| params.get(name).map(String::as_str);
    let metric: Metric = param("metric")
        .ok_or_else(|| ApiError::bad_request("metric is required, e.g. metric=cpu"))?
        .parse()
        .map_err(|e: shared::UnknownMetric| ApiError::bad_request(e.to_string()))?;
    let range = TimeRange::parse(param("range"), param("from"), param("to"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let kind = metric.subject();
    if let Some(other) = Subject::ALL
        .into_iter()
        .find(|s| *s != kind && params.contains_key(s.label()))
    {
        return Err(ApiError::bad_request(format!(
            "{metric} is a metric of a {}, not of a {}: use {}=NAME",
            kind.label(),
            other.label(),
            kind.label()
        )));
    }
    let subject = param(kind.label());
    // A host's history is of the host's environment, everything else of the hub's: one the reader may not
    // see is answered as if it did not exist.
    let access = access.map_or_else(|| Access::uniform(shared::Role::Viewer), |a| a.0);
    let home = hub.environment();
    let visible = match (kind, subject) {
        (Subject::Host, Some(host)) => fleet
            .may_see_history(host, &access, home)
            .await
            .map_err(|e| ApiError::unavailable(format!("the fleet cannot be read: {e}")))?,
        _ => access.sees(home),
    };
    if !visible {
        return Err(ApiError::not_found(format!(
            "no {} named '{}'",
            kind.label(),
            subject.unwrap_or("(this host)")
        )));
    }
    let series = history.query(metric, subject, range, now_millis()).await?;
    Ok(Json(series))
}
