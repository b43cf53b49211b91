//! `POST /api/agent/push`: what an agent on another host sends. The agent's token, not a user's, speaks for
//! it, so the route checks it itself (see [`crate::fleet::Fleet::push`]); the middleware lets it through.

use crate::fleet::{Fleet, PushError};
use crate::http::client_addr::ClientAddr;
use crate::http::error::ApiError;
use crate::http::serve::ConnectionSlot;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
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
    body: Bytes,
) -> Result<Json<Ack>, ApiError> {
    let Some(secret) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "an agent pushes with its token: Authorization: Bearer wpa_…",
        ));
    };
    let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0);
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("the batch is not valid JSON of a push: {e}"))
    })?;
    match fleet.push(secret, ip, batch).await {
        Ok(ack) => {
            if let Some(slot) = slot {
                slot.signed_in();
            }
            Ok(Json(ack))
        }
        Err(e @ PushError::Unauthorized) => {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
        }
        Err(e @ PushError::Forbidden { .. }) => Err(ApiError::forbidden(e.to_string())),
        Err(e @ PushError::BadBatch(_)) => Err(ApiError::bad_request(e.to_string())),
        Err(e @ PushError::Store(_)) => {
            tracing::error!("cannot record an agent's push: {e}");
            Err(ApiError::unavailable(e.to_string()))
        }
    }
}
