//! `GET /api/events`: the Server-Sent Events stream every dashboard tab reads.
//!
//! A stream starts with `retry:`, then a snapshot or the replay of what the client missed, then live frames
//! and a `ping` whenever it has been quiet for the keepalive period. It ends when the server shuts down, so
//! the browser reconnects (to this server after a restart, or to another instance).

use crate::auth::Principal;
use crate::auth::streams::{OpenStreams, Ticket};
use crate::clock::now_millis;
use crate::hub::{Frame, Hub, Start, Subscription};
use axum::Extension;
use axum::body::Body;
use axum::extract;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;
use shared::StreamClosed;
use shared::{Access, Role};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a browser waits before reconnecting: short, since a restart takes about a second.
const RETRY_MS: u32 = 1000;

/// Everything one stream needs, kept by the `events` handler's caller.
#[derive(Clone)]
pub struct StreamConfig {
    pub hub: Arc<Hub>,
    pub keepalive: Duration,
    pub shutdown: CancellationToken,
    /// Every open stream, so that ending a credential ends its streams (and the per-user limit).
    pub streams: Arc<OpenStreams>,
    /// Whether the bus other instances share is reachable, when events come over one: a resume may wait
    /// for this instance to catch up, and while the bus is away each tab is told (a `bus` frame).
    pub bus: Option<watch::Receiver<bool>>,
}

/// How long a resume waits for this instance to apply the id a browser brings from another one.
const CATCH_UP: Duration = Duration::from_secs(2);

/// `GET /api/events`: the live stream.
pub async fn events(
    extract::State(cfg): extract::State<StreamConfig>,
    headers: HeaderMap,
    principal: Option<Extension<Principal>>,
) -> Response {
    let principal = principal.map(|p| p.0);
    let access = principal
        .as_ref()
        .map_or_else(|| Access::uniform(Role::Viewer), |p| p.access.clone());
    let ticket = principal.as_ref().map(|p| cfg.streams.open(p));
    // An id that is not a number cannot be one of ours: treat it as unknown, which yields a snapshot.
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Not while the bus is away: nothing new would come, and the tab would wait for its banner.
    if cfg.bus.as_ref().is_some_and(|bus| *bus.borrow())
        && let Some(id) = last_event_id
    {
        cfg.hub.reach(id, CATCH_UP).await;
    }
    let subscription = cfg.hub.subscribe(last_event_id, &access);
    let body = Body::from_stream(frames(cfg, subscription, access, ticket));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        body,
    )
        .into_response()
}

struct State {
    cfg: StreamConfig,
    /// Frames of an environment the reader has no role in, or for a wider audience than that role, are
    /// left out.
    access: Access,
    /// The stream's registration, given back when the stream ends.
    _ticket: Option<Ticket>,
    /// Resolves when the stream's credential ends (or the per-user limit closes it): made once.
    ended: Pin<Box<dyn Future<Output = StreamClosed> + Send>>,
    /// Resolves when the server shuts down. Made once, on a child of the server's token: polling a token
    /// takes its lock, and with every stream polling the one shared token on every event, thousands of
    /// streams would queue on that lock; each child has a lock of its own.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Set once the closing frame is sent: the stream then ends.
    done: bool,
    live: tokio::sync::broadcast::Receiver<Arc<Frame>>,
    /// The bus's reachability, when there is a bus: each change is a `bus` frame.
    bus: Option<watch::Receiver<bool>>,
    /// Frames to write before waiting for anything new.
    queued: VecDeque<Bytes>,
    keepalive: Interval,
}

/// The stream body: bytes of SSE frames.
fn frames(
    cfg: StreamConfig,
    sub: Subscription,
    access: Access,
    ticket: Option<Ticket>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let mut queued = VecDeque::from([Bytes::from(format!("retry: {RETRY_MS}\n\n"))]);
    match sub.start {
        Start::Snapshot { frame, .. } => queued.push_back(frame),
        Start::Replay(frames) => {
            queued.extend(frames.iter().filter_map(|f| f.for_access(&access).cloned()))
        }
    }
    // A tab that connects while the bus is away is told at once; one that connects while it is there hears
    // nothing until it goes (a tab starts each stream assuming the bus is there).
    let mut bus = cfg.bus.clone();
    if let Some(bus) = &mut bus
        && !*bus.borrow_and_update()
    {
        queued.push_back(bus_frame(false));
    }
    let mut keepalive = tokio::time::interval_at(Instant::now() + cfg.keepalive, cfg.keepalive);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = State {
        live: sub.live,
        bus,
        access,
        ended: match &ticket {
            Some(ticket) => ticket.ended(),
            None => Box::pin(std::future::pending()),
        },
        _ticket: ticket,
        shutdown: Box::pin(cfg.shutdown.child_token().cancelled_owned()),
        done: false,
        cfg,
        queued,
        keepalive,
    };
    futures::stream::unfold(state, |mut s| async move {
        let next = s.next_frame().await?;
        Some((Ok(next), s))
    })
}

impl State {
    async fn next_frame(&mut self) -> Option<Bytes> {
        if let Some(bytes) = self.queued.pop_front() {
            return Some(bytes);
        }
        if self.done {
            return None;
        }
        loop {
            return tokio::select! {
                biased;
                () = &mut self.shutdown => None,
                closed = &mut self.ended => {
                    self.done = true;
                    let data = serde_json::to_string(&closed).unwrap_or_default();
                    Some(Bytes::from(format!("event: closed\ndata: {data}\n\n")))
                }
                received = self.live.recv() => match received {
                    Ok(frame) => match frame.for_access(&self.access) {
                        Some(bytes) => {
                            self.keepalive.reset();
                            Some(bytes.clone())
                        }
                        // Not for this reader: wait for the next one (the keepalive timer keeps running).
                        None => continue,
                    },
                // This stream fell more than a queue behind: what it missed is gone from the channel,
                // so it starts over as a new subscriber would, from a snapshot and a fresh position in
                // the channel (the old position would lag again on the very next event).
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "slow stream resynchronised with a snapshot");
                    let (snapshot, live) = self.cfg.hub.resubscribe(&self.access);
                    self.live = live;
                    Some(snapshot)
                }
                Err(RecvError::Closed) => None,
            },
            reachable = bus_changed(&mut self.bus) => Some(bus_frame(reachable)),
            _ = self.keepalive.tick() => {
                Some(Bytes::from(format!("event: ping\ndata: {{\"at_ms\":{}}}\n\n", now_millis())))
            }
            };
        }
    }
}

/// Resolves with the bus's reachability when it changes; never without a bus (or once it is dropped).
async fn bus_changed(bus: &mut Option<watch::Receiver<bool>>) -> bool {
    match bus {
        Some(rx) => match rx.changed().await {
            Ok(()) => *rx.borrow_and_update(),
            // The instance is shutting down: its streams end on their own.
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The `bus` frame: unsequenced (no `id:`), since it is this instance's own news and not an event of the
/// stream every instance shares: a resume on another instance must not skip or repeat anything for it.
fn bus_frame(reachable: bool) -> Bytes {
    let data = serde_json::to_string(&shared::BusNotice { reachable }).unwrap_or_default();
    Bytes::from(format!("event: bus\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::tests::health;
    use futures::StreamExt;
    use shared::Envelope;

    fn parse(frame: &Bytes) -> (Option<u64>, String, Option<Envelope>) {
        let text = std::str::from_utf8(frame).unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).map(str::to_owned))
        };
        let id = field("id: ").map(|v| v.parse().unwrap());
        let kind = field("event: ").unwrap_or_default();
        let env = field("data: ").and_then(|d| serde_json::from_str(&d).ok());
        (id, kind, env)
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_resynchronised_with_a_snapshot() {
        let hub = Arc::new(Hub::with_seed("t".into(), 1000, 64, 4, 1));
        let cfg = StreamConfig {
            hub: hub.clone(),
            keepalive: Duration::from_secs(60),
            shutdown: CancellationToken::new(),
            streams: OpenStreams::new(4),
            bus: None,
        };
        let viewer = Access::uniform(Role::Viewer);
        let stream = frames(cfg, hub.subscribe(None, &viewer), viewer.clone(), None);
        tokio::pin!(stream);
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            Bytes::from("retry: 1000\n\n")
        );
        assert_eq!(parse(&stream.next().await.unwrap().unwrap()).1, "snapshot");

        // The reader stalls while ten events pass through a queue of four.
        let ids: Vec<u64> = (0..10)
            .map(|i| hub.publish(None, health(i as f32)))
            .collect();
        let (id, kind, env) = parse(&stream.next().await.unwrap().unwrap());
        assert_eq!(kind, "snapshot");
        assert_eq!(id, Some(ids[9]));
        let env = env.unwrap();
        assert_eq!(env.seq, ids[9]);

        // Frames already inside that snapshot are not sent again; the next one is the next event.
        let next = hub.publish(None, health(99.0));
        let (id, kind, _) = parse(&stream.next().await.unwrap().unwrap());
        assert_eq!((id, kind.as_str()), (Some(next), "health"));
    }

    #[tokio::test]
    async fn shutdown_ends_the_stream() {
        let hub = Arc::new(Hub::with_seed("t".into(), 1000, 8, 8, 1));
        let shutdown = CancellationToken::new();
        let cfg = StreamConfig {
            hub: hub.clone(),
            keepalive: Duration::from_secs(60),
            shutdown: shutdown.clone(),
            streams: OpenStreams::new(4),
            bus: None,
        };
        let viewer = Access::uniform(Role::Viewer);
        let stream = frames(cfg, hub.subscribe(None, &viewer), viewer.clone(), None);
        tokio::pin!(stream);
        stream.next().await;
        stream.next().await;
        shutdown.cancel();
        assert!(stream.next().await.is_none());
    }
}
