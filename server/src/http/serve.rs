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
//! Slow and numerous clients are bounded (see [`Limits`]): a request head must arrive whole within
//! `header_read_timeout` (hyper's own limit, which needs a timer to take effect; an idle keep-alive
//! connection included), a request body within `body_read_timeout` of its head (a total, not a gap between
//! bytes, so one byte a second does not keep it open); at most `max_connections` are open at once, and one
//! address holds at most `max_unsigned_per_address` connections that have not carried a signed-in request.
//! Past the connection cap, a connection gets a short 503 and is closed. Past its address's cap, a connection
//! is taken on probation: it has [`PROBATION_HEAD_TIMEOUT`] to send a request head, and that request must be
//! signed in, else it gets a 429 and is closed. So signed-in users behind one address (an office, a NAT, a
//! thousand tabs reconnecting after a restart) are never turned away, while connections that never sign in
//! stay bounded per address. Signed-in users' streams have their own per-user limit (`auth::streams`).

use crate::http::client_addr::TrustedProxies;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How slow and how many clients may be.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections one address may hold that have not carried a signed-in request (a trusted proxy's are not
    /// counted: it speaks for many clients).
    pub max_unsigned_per_address: usize,
    /// How long a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// How long a client has to send a request body, from the end of its head.
    pub body_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 25_000,
            max_unsigned_per_address: 128,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// The open connections, in all and per address while not signed in.
struct Admission {
    open: Arc<Semaphore>,
    unsigned: Mutex<HashMap<IpAddr, usize>>,
    per_address: usize,
    trusted: TrustedProxies,
}

/// How long a connection past its address's cap has to send its (signed-in) request head.
const PROBATION_HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a connection was turned away.
enum Refused {
    Full,
}

impl Admission {
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Arc<ConnectionSlot>, Refused> {
        let permit = self
            .open
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Full)?;
        let mut counted = false;
        let mut probation = false;
        if !self.trusted.trusts(peer) {
            let mut unsigned = self.unsigned.lock().map_err(|_| Refused::Full)?;
            let n = unsigned.entry(peer).or_default();
            if *n >= self.per_address {
                probation = true;
            } else {
                *n += 1;
                counted = true;
            }
        }
        Ok(Arc::new(ConnectionSlot {
            peer,
            counted: AtomicBool::new(counted),
            probation,
            admission: self.clone(),
            _permit: permit,
        }))
    }

    fn release(&self, peer: IpAddr) {
        if let Ok(mut unsigned) = self.unsigned.lock()
            && let Some(n) = unsigned.get_mut(&peer)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                unsigned.remove(&peer);
            }
        }
    }
}

/// One open connection, in each of its requests' extensions: it holds its place under the connection cap
/// until it closes, and under its address's cap until a request on it is signed in.
pub struct ConnectionSlot {
    peer: IpAddr,
    /// Still counted under the address's cap.
    counted: AtomicBool,
    /// Admitted past its address's cap: its requests must be signed in.
    probation: bool,
    admission: Arc<Admission>,
    _permit: OwnedSemaphorePermit,
}

impl ConnectionSlot {
    /// Whether this connection was admitted past its address's cap, so that a request on it that is not
    /// signed in is refused (429).
    pub fn on_probation(&self) -> bool {
        self.probation
    }

    /// A request on this connection was signed in: the connection no longer counts against its address.
    pub fn signed_in(&self) {
        if self.counted.swap(false, Ordering::AcqRel) {
            self.admission.release(self.peer);
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.signed_in();
    }
}

/// Answers a connection past a cap with a short response, and closes it.
async fn turn_away(mut tcp: TcpStream, why: Refused) {
    let (status, message) = match why {
        Refused::Full => (
            "503 Service Unavailable",
            "the server has as many connections as it takes: try again shortly",
        ),
    };
    let body = format!("{{\"error\":\"{message}\"}}");
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 5\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        tcp.write_all(response.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

/// A request body that fails once `deadline` has passed, however it trickles in.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err("the request body did not arrive in time".into())));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(axum::BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets open connections finish their
/// response for up to `grace` (streams end by themselves on the same token) before returning.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    trusted: TrustedProxies,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut on_probation = http.clone();
    on_probation.header_read_timeout(PROBATION_HEAD_TIMEOUT.min(limits.header_read_timeout));
    let admission = Arc::new(Admission {
        open: Arc::new(Semaphore::new(limits.max_connections)),
        unsigned: Mutex::default(),
        per_address: limits.max_unsigned_per_address,
        trusted,
    });
    let body_timeout = limits.body_read_timeout;
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
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tokio::spawn(turn_away(tcp, why));
                continue;
            }
        };
        // Events are small writes that must leave at once: no Nagle delay behind an unacknowledged frame.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let builder = if slot.on_probation() {
            &on_probation
        } else {
            &http
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(slot.clone());
            // A request without a body (every GET, every stream) needs no deadline, nor a timer for one.
            router.clone().oneshot(req.map(|inner| {
                if inner.is_end_stream() {
                    Body::new(inner)
                } else {
                    Body::new(DeadlineBody {
                        inner,
                        deadline: Box::pin(tokio::time::sleep(body_timeout)),
                    })
                }
            }))
        });
        // No upgrades: nothing here speaks WebSocket, the live channel is the event stream.
        let connection =
            graceful.watch(builder.serve_connection(TokioIo::new(Socket { tcp }), service));
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
/// is left for hyper. The peek is made on every flush, the first of a response too: skipping it while hyper
/// had just read the request left no wake-up registered when the response head and the snapshot went out in
/// one flush, and a tab closed right after its snapshot then held its stream until the next event.
struct Socket {
    tcp: TcpStream,
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
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
