//! The error log over HTTP: `POST /api/ingest/logs` writes entries, `GET /api/logs` pages them back.

use crate::auth::{Auth, Principal};
use crate::clock::now_millis;
use crate::http::error::ApiError;
use crate::logs::LogBook;
use crate::sources::ingest::{IngestError, parse_ingest};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::{Extension, Json};
use serde_json::Value;
use shared::{Access, Action, Level, LogCursor, LogFilter, LogPage};
use std::collections::HashMap;
use store::MAX_LOG_PAGE;

/// `POST /api/ingest/logs`.
pub async fn ingest(
    State(book): State<LogBook>,
    State(auth): State<Auth>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // Writing to the log is an operator's action: an agent or a service ingests with an operator token.
    auth.authorize(principal.as_deref(), Action::IngestLogs)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let entries = parse_ingest(content_type, &body, now_millis()).map_err(|e| match e {
        IngestError::Body(message) => ApiError::bad_request(message),
        IngestError::Lines { total, errors } => ApiError::bad_request_with(
            format!(
                "{} of {total} entries are invalid; nothing was stored",
                errors.len()
            ),
            serde_json::json!({ "lines": errors.into_iter().take(100).collect::<Vec<_>>() }),
        ),
    })?;
    let stored = book.append(entries).await.map_err(|e| {
        tracing::error!("cannot store ingested log entries: {e}");
        ApiError::unavailable(format!("the log cannot be written right now: {e}"))
    })?;
    Ok(Json(serde_json::json!({ "stored": stored.len() })))
}

/// `GET /api/logs?level=warn&service=api&host=web-1&q=text&before=CURSOR&limit=100`: only entries of the
/// environments the reader may see.
pub async fn page(
    State(book): State<LogBook>,
    access: Option<Extension<Access>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<LogPage>, ApiError> {
    let param = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let filter = LogFilter {
        level: param("level")
            .map(str::parse::<Level>)
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        service: param("service").map(str::to_owned),
        text: param("q").map(str::to_owned),
        host: param("host").map(str::to_owned),
    };
    // Signed-in requests always carry their access; a route reached without one sees only the hub's own.
    let access = access.map_or_else(|| Access::uniform(shared::Role::Viewer), |a| a.0);
    let before = param("before")
        .map(str::parse::<LogCursor>)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = match param("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LOG_PAGE).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit: a number from 1 to {MAX_LOG_PAGE}"))
            })?,
    };
    let page = book
        .page(&filter, &access, before, limit)
        .await
        .map_err(|e| {
            tracing::error!("cannot read the log: {e}");
            ApiError::unavailable(format!("the log cannot be read right now: {e}"))
        })?;
    Ok(Json(page))
}
