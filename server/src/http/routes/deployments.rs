//! `POST /api/deployments` (a CI job reports a deployment's progress) and `GET /api/deployments`.

use crate::audit::AuditLog;
use crate::auth::{Auth, Principal};
use crate::deploy::{DeployBook, DeployError, MAX_NAME};
use crate::http::error::ApiError;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use shared::{Action, Caller, DeploymentReport};
use std::collections::{BTreeMap, HashMap};

/// `POST /api/deployments` (JSON, a token or session of an operator or above): 201 with the new
/// deployment, 200 with an updated one.
pub async fn report(
    State(book): State<DeployBook>,
    State(auth): State<Auth>,
    State(audit): State<AuditLog>,
    principal: Option<Extension<Principal>>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Response {
    let principal = match auth.authorize(principal.as_deref(), Action::ReportDeployment) {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let report: DeploymentReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_request(format!("not a deployment status: {e}")).into_response();
        }
    };
    let caller = caller.map(|c| c.0).unwrap_or_else(|| Caller {
        name: principal.name.clone(),
        role: principal.role,
        ip: "unknown".into(),
        access: Some(principal.access.clone()),
    });
    // What the entry names, cut to size: it is written before the report is checked.
    let target: String = report
        .service
        .clone()
        .or(report.id.map(|id| format!("deployment {id}")))
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    let params: BTreeMap<String, String> = [
        ("state", Some(report.state.clone())),
        ("environment", report.environment.clone()),
        ("version", report.version.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.chars().take(MAX_NAME).collect())))
    .collect();
    let result = audit
        .around(
            &caller,
            ("deployment.report", &target),
            params,
            book.report(&principal.name, report),
            |(d, _)| format!("deployment {} is {}", d.id, d.state.as_str()),
        )
        .await;
    match result {
        Ok((d, created)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(d)).into_response()
        }
        Err(e @ DeployError::Invalid(_)) => ApiError::bad_request(e.to_string()).into_response(),
        Err(e @ DeployError::NotFound(_)) => {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string()).into_response()
        }
        Err(e @ DeployError::Conflict(_)) => {
            ApiError::new(StatusCode::CONFLICT, e.to_string()).into_response()
        }
        Err(e @ DeployError::Store(_)) => ApiError::unavailable(e.to_string()).into_response(),
    }
}

/// `GET /api/deployments?service=shop&limit=50`: newest first.
pub async fn list(
    State(book): State<DeployBook>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let limit = match params.get("limit").map(|v| v.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            return ApiError::bad_request("limit must be a whole number above 0").into_response();
        }
    };
    match book
        .history_for(
            params.get("service").map(String::as_str),
            limit,
            &principal.access,
        )
        .await
    {
        Ok(list) => Json(list).into_response(),
        Err(e) => ApiError::unavailable(format!("deployments cannot be read: {e}")).into_response(),
    }
}
