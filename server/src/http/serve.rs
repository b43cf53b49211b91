//! Accepting connections and serving them over HTTP/1.1: what `axum::serve` does, with the hyper settings it
//! does not expose.
//!
//! Every dashboard tab holds one long response, the event stream. While a response is being written, hyper
//! by default keeps reading the connection to notice a client that hangs up, and that read reserves a fresh
//! 8 KiB buffer while the request's headers still hold the one the request arrived in, so the connection
//! keeps both for as long as the stream lasts (valgrind's massif: 16 KiB of read buffer per stream, 8 KiB
//! with this). With `half_close`, hyper leaves the read side alone until the response ends, and
//! [`Socket`] notices the hang-up instead, without a buffer: the end of a client's stream wakes the
//! connection at once, as it did before, so its slot (and its place under the per-user stream limit) is
//! given back at once.
//!
//! hyper's own 30 s limit for reading a request head is set explicitly (it needs a timer to take effect):
//! a client that sends no complete head within 30 s, an idle keep-alive connection included, is closed.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client has to send a complete request head (hyper's default, made explicit).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets open connections finish their
/// response for up to `grace` (streams end by themselves on the same token) before returning.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if needs_pause(&e) {
                        tracing::error!("accepting a connection failed: {e}");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = shutdown.cancelled() => break,
                        }
                    }
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
        let connection = graceful.watch(http.serve_connection(
            TokioIo::new(Socket {
                tcp,
                reading: false,
            }),
            service,
        ));
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
fn needs_pause(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A connection's socket as hyper uses it, which also notices a client that hangs up while its response is
/// being written (hyper itself does not look, with `half_close`).
///
/// hyper flushes on every turn of its connection loop, so the check sits in `poll_flush`: a one-byte
/// `MSG_PEEK` that costs no system call while the socket has not become readable (tokio tracks readiness),
/// and registers the connection to be woken when it does. A stream's client sends nothing after its
/// request, so the socket becomes readable only when the client goes away; the peek then reads the end
/// of the stream and the flush fails, which ends the connection. Data waiting to be read (a next request)
/// is left for hyper. While hyper is reading (a request body, an idle connection awaiting its next
/// request) it sees the end itself, and the peek is skipped.
struct Socket {
    tcp: TcpStream,
    /// hyper read since the last flush.
    reading: bool,
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reading = true;
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if std::mem::take(&mut self.reading) {
            return Pin::new(&mut self.tcp).poll_flush(cx);
        }
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        match self.tcp.poll_peek(cx, &mut probe) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the client closed the connection",
                )));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(_)) | Poll::Pending => {}
        }
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
