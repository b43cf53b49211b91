//! The error every JSON route returns: a status and a message a person can read, as `{"error": "…"}`, with
//! more detail beside it where there is some (the rejected lines of an ingest request, say).

use crate::auth::Refusal;
use crate::history::HistoryError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Extra keys for the body, e.g. `{"lines": […]}`.
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 400 whose body carries `details` (an object) beside the message.
    pub fn bad_request_with(message: impl Into<String>, details: Value) -> Self {
        ApiError {
            details: Some(details),
            ..ApiError::bad_request(message)
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let (Some(Value::Object(details)), Some(map)) = (self.details, body.as_object_mut()) {
            map.extend(details);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::SignIn => ApiError::new(StatusCode::UNAUTHORIZED, refusal.to_string()),
            Refusal::Forbidden(refused) => ApiError::forbidden(refused.to_string()),
        }
    }
}

impl From<HistoryError> for ApiError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Range(_) | HistoryError::BadSubject(..) | HistoryError::NoSubject(..) => {
                ApiError::bad_request(e.to_string())
            }
            HistoryError::UnknownSubject(..) => ApiError::not_found(e.to_string()),
            HistoryError::Store(e) => {
                tracing::error!("history query failed: {e}");
                ApiError::unavailable(format!("history cannot be read: {e}"))
            }
        }
    }
}
