//! The agent's routes: `POST /api/agent/push` (what an agent on another host sends), `POST
//! /api/agent/orders` (its stream of orders: it declares its commands, the hub sends runs, cancels and the host's settings as
//! server-sent events) and `POST /api/agent/runs/{id}` (a run's output and end). The agent's token, not a
//! user's, speaks for it, so each route checks it itself (see [`crate::fleet::Fleet::authenticate`])
//! before it reads the body; the middleware lets them through.

use crate::commands::{CommandError, Commands};
use crate::fleet::{Fleet, PushError};
use crate::http::client_addr::ClientAddr;
use crate::http::error::ApiError;
use crate::http::middleware::bearer;
use crate::http::serve::ConnectionSlot;
use crate::http::sse::StreamConfig;
use axum::body::Body;
use axum::extract::Path;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use collect::wire::{Ack, Batch};
use collect::wire::{Hello, Report};
use futures::StreamExt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use store::Agent;

/// The largest push: a full batch of records with room to spare.
pub const MAX_PUSH_BYTES: usize = 2 * collect::wire::MAX_BATCH_BYTES;

/// The largest declaration of commands, and the largest report of a run.
pub const MAX_HELLO_BYTES: usize = 256 * 1024;
pub const MAX_REPORT_BYTES: usize = 4 * 1024 * 1024;
/// How often a quiet stream of orders carries a comment, so proxies keep it and a dead peer shows.
const ORDERS_KEEPALIVE: Duration = Duration::from_secs(15);

/// An agent's request: its address, and the agent its token speaks for.
struct Caller {
    agent: Agent,
    ip: IpAddr,
}

/// Checks the agent's token, before anything of the body is read.
async fn agent_of(
    fleet: &Fleet,
    client: Option<Extension<ClientAddr>>,
    headers: &HeaderMap,
    path: &str,
) -> Result<Caller, ApiError> {
    let Some(secret) = bearer(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "an agent speaks with its token: Authorization: Bearer wpa_…",
        ));
    };
    let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0);
    let agent = fleet
        .authenticate(secret, ip, path)
        .await
        .map_err(refusal)?;
    Ok(Caller { agent, ip })
}

/// The body as JSON of `what`, at most `limit` bytes.
async fn json_body<T: serde::de::DeserializeOwned>(
    body: Body,
    limit: usize,
    what: &str,
) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} holds at most {limit} bytes: {e}"),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("not valid JSON of {what}: {e}")))
}

pub async fn push(
    State(fleet): State<Fleet>,
    client: Option<Extension<ClientAddr>>,
    slot: Option<Extension<Arc<ConnectionSlot>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Ack>, ApiError> {
    // The token first: the body of a request without a valid one is never read.
    let Caller { agent, ip } = agent_of(&fleet, client, &headers, collect::wire::PUSH_PATH).await?;
    let batch: Batch = json_body(body, MAX_PUSH_BYTES, "a push").await?;
    let ack = fleet.push(agent, ip, batch).await.map_err(refusal)?;
    if let Some(slot) = slot {
        slot.signed_in();
    }
    Ok(Json(ack))
}

/// `POST /api/agent/orders`: the agent declares its commands and holds this stream open; each run,
/// cancel or change of the host's settings the hub asks of it is one `order` event. The stream ends when the hub shuts down, the host is
/// removed (its token revoked) or the agent opens a newer one; the agent then reconnects (or stops, once
/// its token is refused).
pub async fn orders(
    State(fleet): State<Fleet>,
    State(commands): State<Commands>,
    State(stream): State<StreamConfig>,
    client: Option<Extension<ClientAddr>>,
    slot: Option<Extension<Arc<ConnectionSlot>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Caller { agent, ip } =
        agent_of(&fleet, client, &headers, collect::wire::ORDERS_PATH).await?;
    let hello: Hello = json_body(body, MAX_HELLO_BYTES, "an agent's hello").await?;
    fleet
        .check_claim(&agent, &hello.agent, ip)
        .await
        .map_err(refusal)?;
    if agent.name == fleet.own().0 {
        return Err(ApiError::bad_request(format!(
            "'{}' is the hub's own host, whose commands are the hub's: give this agent another --name",
            agent.name
        )));
    }
    let (attachment, orders) = commands
        .attach(&agent.name, &agent.environment, hello.commands.clone())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The host's settings come down the same stream as its runs: first as they stand, then each change.
    let (settings, settings_rx) = tokio::sync::mpsc::unbounded_channel();
    let listening = fleet.listen(&agent, hello.commands, attachment.epoch(), settings);
    if let Some(slot) = slot {
        slot.signed_in();
    }
    tracing::debug!(host = %agent.name, version = %hello.version, "agent listening for orders");
    let (closed, shutdown) = (listening.closed(), stream.shutdown.clone());
    let events = futures::stream::select(
        tokio_stream::wrappers::UnboundedReceiverStream::new(settings_rx),
        tokio_stream::wrappers::UnboundedReceiverStream::new(orders),
    )
    .map(move |order| {
        // The stream owns the host's attachment and its listening mark: both end with it.
        let _held = (&attachment, &listening);
        Ok::<_, std::convert::Infallible>(
            SseEvent::default()
                .event("order")
                .json_data(&order)
                .unwrap_or_else(|_| SseEvent::default().comment("an order that is not JSON")),
        )
    })
    .take_until(async move {
        tokio::select! {
            () = closed.cancelled() => {}
            () = shutdown.cancelled() => {}
        }
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(ORDERS_KEEPALIVE))
        .into_response();
    response.headers_mut().insert(
        axum::http::header::HeaderName::from_static("x-accel-buffering"),
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// `POST /api/agent/runs/{id}`: a run's next output lines and, last, its end, from the agent of the host
/// it runs on. 404 for a run that is not this agent's, 409 for one already over (the agent stops it).
pub async fn report(
    State(fleet): State<Fleet>,
    State(commands): State<Commands>,
    client: Option<Extension<ClientAddr>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let Caller { agent, .. } = agent_of(&fleet, client, &headers, collect::wire::RUN_PATH).await?;
    let report: Report = json_body(body, MAX_REPORT_BYTES, "a run's report").await?;
    match commands.report(&agent.name, id, report).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e @ CommandError::NoRun(_)) => Err(ApiError::new(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ CommandError::Ended(_)) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e @ CommandError::Report(_)) => Err(ApiError::bad_request(e.to_string())),
        Err(e) => {
            tracing::error!(run = id, "cannot take an agent's report: {e}");
            Err(ApiError::unavailable(e.to_string()))
        }
    }
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
