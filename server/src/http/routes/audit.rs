//! `GET /api/audit`: the audit trail a page at a time, or exported whole as CSV or JSON.

use crate::audit::{AuditLog, csv};
use crate::auth::{Auth, Principal};
use crate::clock::now_millis;
use crate::http::error::ApiError;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use shared::{Action, AuditEntry, AuditFilter, MAX_AUDIT_PAGE};
use std::collections::HashMap;

/// The query of `GET /api/audit`.
fn filter_of(
    params: &HashMap<String, String>,
) -> Result<(AuditFilter, Option<i64>, usize), String> {
    let text = |name: &str| {
        params
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let number = |name: &str| -> Result<Option<i64>, String> {
        text(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("{name} must be a whole number, got '{v}'"))
            })
            .transpose()
    };
    let filter = AuditFilter {
        actor: text("actor"),
        action: text("action"),
        target: text("target"),
        from_ms: number("from_ms")?,
        to_ms: number("to_ms")?,
    };
    if let (Some(from), Some(to)) = (filter.from_ms, filter.to_ms)
        && from >= to
    {
        return Err(format!("from_ms ({from}) must be before to_ms ({to})"));
    }
    let limit = match number("limit")? {
        Some(n) if n < 1 => return Err(format!("limit must be at least 1, got {n}")),
        Some(n) => usize::try_from(n)
            .unwrap_or(MAX_AUDIT_PAGE)
            .min(MAX_AUDIT_PAGE),
        None => 100,
    };
    Ok((filter, number("before")?, limit))
}

/// `GET /api/audit?actor=&action=&target=&from_ms=&to_ms=&before=&limit=`: a page, newest first;
/// `format=csv` or `format=json` exports every matching entry as a download instead.
pub async fn list(
    State(auth): State<Auth>,
    State(log): State<AuditLog>,
    principal: Option<Extension<Principal>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = auth.authorize(principal.as_deref(), Action::ViewAudit) {
        return ApiError::from(e).into_response();
    }
    let (filter, before, limit) = match filter_of(&params) {
        Ok(parsed) => parsed,
        Err(message) => return ApiError::new(StatusCode::BAD_REQUEST, message).into_response(),
    };
    let format = params.get("format").map(String::as_str);
    match format {
        None => match log.page(&filter, before, limit).await {
            Ok(page) => Json(page).into_response(),
            Err(e) => ApiError::unavailable(format!("the audit trail cannot be read: {e}"))
                .into_response(),
        },
        Some(kind @ ("csv" | "json")) => match log.export(&filter, before).await {
            Ok(entries) => download(kind, &entries),
            Err(e) => ApiError::unavailable(format!("the audit trail cannot be read: {e}"))
                .into_response(),
        },
        Some(other) => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("format must be csv or json, got '{other}'"),
        )
        .into_response(),
    }
}

fn download(kind: &str, entries: &[AuditEntry]) -> Response {
    let (body, content_type) = if kind == "csv" {
        (csv(entries), "text/csv; charset=utf-8")
    } else {
        (
            serde_json::to_string_pretty(entries).unwrap_or_else(|_| "[]".into()),
            "application/json",
        )
    };
    let disposition = format!(
        "attachment; filename=\"watchpost-audit-{}.{kind}\"",
        now_millis()
    );
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked() {
        let q = |pairs: &[(&str, &str)]| {
            filter_of(
                &pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        };
        let (f, before, limit) =
            q(&[("actor", "ana"), ("before", "9"), ("limit", "5000")]).unwrap();
        assert_eq!(
            (f.actor.as_deref(), before, limit),
            (Some("ana"), Some(9), MAX_AUDIT_PAGE)
        );
        assert!(q(&[("from_ms", "x")]).unwrap_err().contains("whole number"));
        assert!(
            q(&[("from_ms", "5"), ("to_ms", "5")])
                .unwrap_err()
                .contains("before")
        );
        assert!(q(&[("limit", "0")]).unwrap_err().contains("at least 1"));
    }
}
