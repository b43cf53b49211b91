//! `GET /api/alerts`: alert history, filtered and paged.

use crate::http::error::ApiError;
use crate::logs::LogBook;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use shared::{Access, AlertState, Role};
use std::collections::HashMap;
use std::sync::Arc;
use store::{AlertFilter, AlertHistory};

/// `GET /api/alerts?rule=&subject=&state=&from_ms=&to_ms=&before=&limit=`: alert history, newest first.
pub async fn list(
    State(store): State<Arc<dyn AlertHistory>>,
    State(logs): State<LogBook>,
    access: Option<Extension<Access>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    // Only the environments the reader may see; a request without access (none reaches here) sees only
    // what every viewer may.
    let scope = logs.scope_for(&access.map_or_else(|| Access::uniform(Role::Viewer), |a| a.0));
    let text = |name: &str| params.get(name).filter(|v| !v.trim().is_empty()).cloned();
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        text(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{name} must be a whole number")))
            })
            .transpose()
    };
    let parsed = (|| {
        let state = match text("state").as_deref() {
            None => None,
            Some("pending") => Some(AlertState::Pending),
            Some("firing") => Some(AlertState::Firing),
            Some("resolved") => Some(AlertState::Resolved),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "state must be pending, firing or resolved, got '{other}'"
                )));
            }
        };
        let filter = AlertFilter {
            rule: text("rule"),
            subject: text("subject"),
            state,
            from_ms: number("from_ms")?,
            to_ms: number("to_ms")?,
        };
        let limit = number("limit")?.unwrap_or(100).clamp(1, 1000) as usize;
        Ok((filter, number("before")?, limit))
    })();
    match parsed {
        Err(e) => e.into_response(),
        Ok((filter, before, limit)) => match store.alerts(&filter, &scope, before, limit).await {
            Ok(list) => Json(list).into_response(),
            Err(e) => ApiError::unavailable(format!("alerts cannot be read: {e}")).into_response(),
        },
    }
}
