//! Accepting connections and serving them over HTTP/1.1: what `axum::serve` does, plus the one hyper setting
//! it does not expose and the event streams need.
//!
//! Every dashboard tab holds one long response, the event stream. While a response is being written, hyper
//! by default keeps reading the connection to notice a client that hangs up, and that read reserves a fresh
//! 8 KiB buffer while the request's headers still hold the one the request arrived in, so the connection
//! keeps both for as long as the stream lasts (valgrind's massif: 16 KiB of read buffer per stream, 8 KiB
//! with this). With `half_close`, hyper leaves the read side alone until the response ends; a client that
//! went away is noticed on the next write instead, which for a stream is the next event (one collector
//! interval, or at most the keepalive period when nothing changes). The price for ordinary requests: one
//! whose client hangs up midway is still answered, into a closed socket; they are short.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::io;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets open connections finish their
/// response for up to `grace` (streams end by themselves on the same token) before returning.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.half_close(true).timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Events are small writes that must leave at once: no Nagle delay behind an unacknowledged frame.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(Body::new))
        });
        // No upgrades: nothing here speaks WebSocket, the live channel is the event stream.
        let connection = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!("connection from {peer} ended: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("connections still open {grace:?} after shutdown; closing them");
        }
    }
}

/// What `axum::serve` does with a failed accept: a connection that died in the backlog is nobody's problem;
/// anything else (out of file descriptors, say) is logged and retried after a pause, so that a burst of
/// clients cannot spin the loop.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
