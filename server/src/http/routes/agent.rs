//! `POST /api/agent/push`: what an agent on another host sends. The agent's token, not a user's, speaks for
//! it, so the route checks it itself (see [`crate::fleet::Fleet::authenticate`]) before it reads the body;
//! the middleware lets it through.

use crate::fleet::{Fleet, PushError};
use crate::http::client_addr::ClientAddr;
use crate::http::error::ApiError;
use crate::http::middleware::bearer;
use crate::http::serve::ConnectionSlot;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use collect::wire::{Ack, Batch};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// The largest push: a full batch of records with room to spare.
pub const MAX_PUSH_BYTES: usize = 2 * collect::wire::MAX_BATCH_BYTES;

pub async fn push(
    State(fleet): State<Fleet>,
    client: Option<Extension<ClientAddr>>,
    slot: Option<Extension<Arc<ConnectionSlot>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Ack>, ApiError> {
    let Some(secret) = bearer(&headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "an agent pushes with its token: Authorization: Bearer wpa_…",
        ));
    };
    let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0);
    // The token first: the body of a request without a valid one is never read.
    let agent = fleet.authenticate(secret, ip).await.map_err(refusal)?;
    let body = axum::body::to_bytes(body, MAX_PUSH_BYTES)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a push holds at most {MAX_PUSH_BYTES} bytes: {e}"),
            )
        })?;
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("the batch is not valid JSON of a push: {e}"))
    })?;
    let ack = fleet.push(agent, ip, batch).await.map_err(refusal)?;
    if let Some(slot) = slot {
        slot.signed_in();
    }
    Ok(Json(ack))
}

/// The status and message of a refused push.
fn refusal(e: PushError) -> ApiError {
    match e {
        PushError::Unauthorized => ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()),
        PushError::Forbidden { .. } => ApiError::forbidden(e.to_string()),
        PushError::BadBatch(_) => ApiError::bad_request(e.to_string()),
        PushError::Store(_) => {
            tracing::error!("cannot record an agent's push: {e}");
            ApiError::unavailable(e.to_string())
        }
    }
}
