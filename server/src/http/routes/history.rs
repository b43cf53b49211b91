//! `GET /api/history`: one metric's stored history over a range.

use crate::clock::now_millis;
use crate::history::History;
use crate::http::error::ApiError;
use axum::Json;
use axum::extract::{Query, State};
use shared::{HistorySeries, Metric, Subject, TimeRange};
use std::collections::HashMap;

/// `GET /api/history?metric=cpu&range=1h` (or `from=…&to=…` in Unix ms). A host metric may name its host
/// (`host=…`, this server's by default); an API metric needs `service=…`, a database metric `target=…`.
pub async fn get(
    State(history): State<History>,
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
    let series = history
        .query(metric, param(kind.label()), range, now_millis())
        .await?;
    Ok(Json(series))
}
