//! The bus on NATS JetStream, for several instances behind a load balancer (`--bus nats://…`).
//!
//! Every event goes through one stream, bounded like the replay ring (`--replay-buffer` messages, and a
//! day): an instance publishes what happens on it, and consumes the whole stream in order into its own hub,
//! so every tab on every instance sees the same events in the same order.
//!
//! An event's id is the stream's creation time in microseconds plus its stream sequence. All instances
//! give a message the same id, so a browser may resume on any of them: each instance's replay ring holds the
//! same window as the stream, and a `Last-Event-ID` it does not hold gets a fresh snapshot, never a gap. A
//! stream that is lost and created again starts from a later creation time, so its ids are above every id
//! of the old one: they never repeat, and an id from the old stream is simply unknown (a snapshot).
//!
//! Publishing never waits for the network: events queue for a publisher task, which sends them in order
//! and waits for JetStream's acknowledgement, retrying while NATS is away. Each message carries a
//! `Nats-Msg-Id`, so a retry of one that did arrive is dropped by JetStream's duplicate window.

use super::{Hub, bus::Bus};
use crate::clock::{now_micros, now_millis};
use async_nats::jetstream::{self, consumer, stream};
use async_nats::{HeaderMap, ServerAddr};
use bytes::Bytes;
use futures::StreamExt;
use shared::{Envelope, Event, HostId, Scope};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The subject every event is published on (one per stream name, so tests can share a server).
fn subject(stream: &str) -> String {
    format!("{stream}.events")
}

/// How long messages stay in the stream at most (the replay ring's window is the other bound).
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Events waiting for the publisher. Past it, events are dropped (and counted) rather than held in memory
/// without bound while NATS is away.
const PUBLISH_QUEUE: usize = 65_536;
/// How long an instance waits at start to apply what the stream holds before it serves anyway.
const CATCH_UP: Duration = Duration::from_secs(30);
/// How often a consumer checks that its stream is the one it follows.
const STREAM_CHECK: Duration = Duration::from_secs(2);
/// Between attempts to reach NATS again.
const RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot reach NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("NATS at {url} has no usable JetStream (start nats-server with -js): {message}")]
    JetStream { url: String, message: String },
}

/// Where the bus is and how its stream is named.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `nats://host:port`.
    pub url: String,
    /// The stream's name (tests give each their own).
    pub stream: String,
    /// Messages the stream keeps: the replay ring's size.
    pub max_messages: usize,
}

/// What an instance publishes with: the hub's environment, the queue to the publisher, and the figures
/// `/healthz` and `/metrics` read.
pub struct JetStreamBus {
    environment: String,
    queue: mpsc::Sender<Bytes>,
    pub health: Arc<BusHealth>,
}

/// Whether the bus is reachable now, and how many events were dropped while it was not.
pub struct BusHealth {
    client: async_nats::Client,
    /// Whether the last publish or consume succeeded.
    connected: AtomicBool,
    dropped: AtomicU64,
    /// [`BusHealth::connected`] as it changes, for this instance's streams: each tells its tab when the
    /// bus goes away and comes back (see `http::sse`).
    reachable: watch::Sender<bool>,
}

/// How often the bus's reachability is looked at for the streams' notice: within a second of a change.
const REACHABLE_CHECK: Duration = Duration::from_millis(250);

impl BusHealth {
    /// Connected to NATS, and the last publish and read of the stream went through.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
            && self.connected.load(Ordering::Relaxed)
    }

    /// Follows whether the bus is reachable (true while it is).
    pub fn reachable(&self) -> watch::Receiver<bool> {
        self.reachable.subscribe()
    }

    /// Keeps [`BusHealth::reachable`] current, as long as the health is kept anywhere. Polled: the two
    /// halves of [`BusHealth::connected`] (the client's connection and the last publish or read) change in
    /// different tasks, and four looks a second cost nothing.
    fn watch_reachable(health: &Arc<BusHealth>) {
        let health = Arc::downgrade(health);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(REACHABLE_CHECK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(health) = health.upgrade() else {
                    return;
                };
                let now = health.connected();
                health.reachable.send_if_modified(|was| {
                    let changed = *was != now;
                    *was = now;
                    changed
                });
            }
        });
    }
}

/// A connected stream: its context, and the id base of its current incarnation.
pub struct Connected {
    context: jetstream::Context,
    config: BusConfig,
    /// The stream's creation time in microseconds: ids are this plus the stream sequence.
    pub base: u64,
    /// The newest sequence in the stream when the instance connected: what it applies before serving.
    last_at_start: u64,
    /// Counts the client's (re)connections to NATS: the consumer is made again after each.
    reconnected: watch::Receiver<u64>,
}

/// Connects to NATS and finds or creates the stream. An unreachable NATS, or one without JetStream, is an
/// error (the instance does not start).
pub async fn connect(config: BusConfig) -> Result<Connected, BusError> {
    let url = config.url.clone();
    let address: ServerAddr = url.parse().map_err(|e| BusError::Connect {
        url: url.clone(),
        message: format!("not a NATS URL: {e}"),
    })?;
    // A NATS that restarted has forgotten the consumer (ordered consumers live in its memory): the client
    // only notices after missed heartbeats, 15 s of no events, so each reconnection is counted and the
    // consumer made again at once (`consume`). Only a connection after a loss counts: the first one is
    // announced too, by a task of its own that may run after the first consumer is made.
    let (reconnected_tx, reconnected) = watch::channel(0u64);
    let reconnected_tx = Arc::new(reconnected_tx);
    let disconnected = Arc::new(AtomicBool::new(false));
    let client = async_nats::ConnectOptions::new()
        .name("watchpost")
        .event_callback(move |event| {
            let reconnected = reconnected_tx.clone();
            let disconnected = disconnected.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected => disconnected.store(true, Ordering::Relaxed),
                    async_nats::Event::Connected if disconnected.swap(false, Ordering::Relaxed) => {
                        reconnected.send_modify(|n| *n += 1)
                    }
                    _ => {}
                }
            }
        })
        .connection_timeout(Duration::from_secs(5))
        // Keep trying after a later loss: the instance stays up and reports `degraded` meanwhile. At start
        // there is no retrying: a NATS that does not answer is an error naming it, and no start.
        .max_reconnects(None)
        .connect(address);
    let client = tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .map_err(|_| BusError::Connect {
            url: url.clone(),
            message: "no answer within 10 s".into(),
        })?
        .map_err(|e| BusError::Connect {
            url: url.clone(),
            message: e.to_string(),
        })?;
    let context = jetstream::new(client);
    let (base, last_at_start) =
        stream_base(&context, &config)
            .await
            .map_err(|message| BusError::JetStream {
                url: url.clone(),
                message,
            })?;
    Ok(Connected {
        context,
        config,
        base,
        last_at_start,
        reconnected,
    })
}

/// Finds or creates the stream; its id base and newest sequence.
async fn stream_base(
    context: &jetstream::Context,
    config: &BusConfig,
) -> Result<(u64, u64), String> {
    let mut stream = context
        .get_or_create_stream(stream::Config {
            name: config.stream.clone(),
            subjects: vec![subject(&config.stream)],
            max_messages: i64::try_from(config.max_messages).unwrap_or(i64::MAX),
            max_age: MAX_AGE,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let info = stream.info().await.map_err(|e| e.to_string())?;
    let base = u64::try_from(info.created.unix_timestamp_nanos() / 1000).unwrap_or(0);
    Ok((base, info.state.last_sequence))
}

impl Connected {
    /// Starts the publisher and the consumer feeding `hub` (made with [`Connected::seed`]), and waits until
    /// the hub holds what the stream held at connect time, so the first snapshot served is built from it.
    pub async fn start(self, hub: Arc<Hub>) -> JetStreamBus {
        let health = Arc::new(BusHealth {
            client: self.context.client(),
            connected: AtomicBool::new(true),
            dropped: AtomicU64::new(0),
            reachable: watch::channel(true).0,
        });
        BusHealth::watch_reachable(&health);
        let (queue, rx) = mpsc::channel(PUBLISH_QUEUE);
        let (applied_tx, mut applied) = watch::channel(0u64);
        tokio::spawn(publish(
            self.context.clone(),
            self.config.clone(),
            rx,
            health.clone(),
        ));
        tokio::spawn(consume(
            self.context.clone(),
            self.config.clone(),
            hub.clone(),
            applied_tx,
            health.clone(),
            self.reconnected,
        ));
        let target = self.base + self.last_at_start;
        let caught_up = tokio::time::timeout(CATCH_UP, applied.wait_for(|head| *head >= target));
        if self.last_at_start > 0 && caught_up.await.is_err() {
            tracing::warn!(
                "the event stream was not applied within {}s; serving what is applied so far",
                CATCH_UP.as_secs()
            );
        }
        JetStreamBus {
            environment: hub.environment().to_owned(),
            queue,
            health,
        }
    }

    /// The JetStream context, for the other things kept on NATS (the leases' bucket).
    pub fn context(&self) -> &jetstream::Context {
        &self.context
    }

    /// The seed for this instance's hub: just below the stream's first id, so every message is applied.
    pub fn seed(&self) -> u64 {
        self.base
    }
}

impl JetStreamBus {
    fn send(&self, scope: Scope, event: Event) {
        let env = Envelope {
            seq: 0,
            at_ms: now_millis(),
            scope,
            event,
        };
        let payload = match serde_json::to_vec(&env) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::error!("cannot encode an event for the bus: {e}");
                return;
            }
        };
        if self.queue.try_send(payload).is_err()
            && self
                .health
                .dropped
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(10_000)
        {
            tracing::error!(
                dropped = self.health.dropped.load(Ordering::Relaxed),
                "the queue to the event bus is full (NATS unreachable for a while): events are dropped"
            );
        }
    }
}

impl Bus for JetStreamBus {
    fn publish(&self, host: Option<HostId>, event: Event) {
        let scope = Scope {
            environment: self.environment.clone(),
            host,
        };
        self.send(scope, event);
    }

    fn publish_in(&self, scope: Scope, event: Event) {
        self.send(scope, event);
    }
}

/// Sends queued events in order, each until JetStream acknowledges it.
async fn publish(
    context: jetstream::Context,
    config: BusConfig,
    mut rx: mpsc::Receiver<Bytes>,
    health: Arc<BusHealth>,
) {
    let subject = subject(&config.stream);
    // Unique per process and message: JetStream drops a retried message it already stored.
    let origin = format!("{:x}-{}", now_micros(), std::process::id());
    let mut n: u64 = 0;
    while let Some(payload) = rx.recv().await {
        n += 1;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{origin}-{n}").as_str());
        loop {
            let sent = match context
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                .await
            {
                Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match sent {
                Ok(()) => {
                    if !health.connected.swap(true, Ordering::Relaxed) {
                        tracing::info!("the event bus is reachable again");
                    }
                    break;
                }
                Err(e) => {
                    if health.connected.swap(false, Ordering::Relaxed) {
                        tracing::error!("cannot publish to the event bus, retrying: {e}");
                    }
                    tokio::time::sleep(RETRY).await;
                    // The stream may be gone (a NATS that lost its storage): make it again. The
                    // consumers notice the new stream by its creation time.
                    let _ = stream_base(&context, &config).await;
                }
            }
        }
    }
}

/// Applies the stream to `hub` in order, from its first message, for as long as the process runs: an
/// ordered consumer (it recreates itself after a gap), and a new one from the next sequence when it fails
/// or the client reconnects to NATS; a stream created anew (a new base) is followed from its start.
async fn consume(
    context: jetstream::Context,
    config: BusConfig,
    hub: Arc<Hub>,
    applied: watch::Sender<u64>,
    health: Arc<BusHealth>,
    mut reconnected: watch::Receiver<u64>,
) {
    let mut position: Option<(u64, u64)> = None; // (base, last applied sequence)
    loop {
        let (base, stream) = match context.get_stream(&config.stream).await {
            Ok(mut stream) => match stream.info().await {
                Ok(info) => (
                    u64::try_from(info.created.unix_timestamp_nanos() / 1000).unwrap_or(0),
                    stream,
                ),
                Err(e) => {
                    lost(&health, &e.to_string());
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
            Err(_) => {
                // Gone (NATS lost its storage, or someone deleted it): make it again.
                if let Err(e) = stream_base(&context, &config).await {
                    lost(&health, &e);
                    tokio::time::sleep(RETRY).await;
                }
                continue;
            }
        };
        reconnected.borrow_and_update();
        let deliver_policy = match position {
            Some((b, seq)) if b == base => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
            _ => consumer::DeliverPolicy::All,
        };
        let messages = match stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy,
                ..Default::default()
            })
            .await
        {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                lost(&health, &e);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        // The ordered consumer recreates itself after a gap, but not onto a stream made anew (whose
        // sequences start again at 1): that is noticed here, by the stream's creation time.
        let mut check = tokio::time::interval(STREAM_CHECK);
        check.tick().await;
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = check.tick() => {
                    if same_stream(&context, &config.stream, base).await {
                        continue;
                    }
                    lost(&health, "the event stream was lost; following it anew");
                    break;
                }
                () = reconnection(&mut reconnected) => {
                    tracing::info!("reconnected to NATS: following the stream on from where it was");
                    break;
                }
            };
            let message = match message {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    lost(&health, &e.to_string());
                    break;
                }
                None => break,
            };
            health.connected.store(true, Ordering::Relaxed);
            let Ok(info) = message.info() else { continue };
            let seq = info.stream_sequence;
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(mut env) => {
                    env.seq = base + seq;
                    hub.ingest(env);
                }
                Err(e) => tracing::error!(seq, "an unreadable event on the bus, skipped: {e}"),
            }
            position = Some((base, seq));
            applied.send_replace(base + seq);
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Resolves when the client has connected to NATS again; never once the client is gone.
async fn reconnection(reconnected: &mut watch::Receiver<u64>) {
    if reconnected.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Whether the stream named `name` is still the incarnation whose ids start at `base`.
async fn same_stream(context: &jetstream::Context, name: &str, base: u64) -> bool {
    match context.get_stream(name).await {
        Ok(mut stream) => match stream.info().await {
            Ok(info) => {
                u64::try_from(info.created.unix_timestamp_nanos() / 1000).ok() == Some(base)
            }
            // Unreachable: the consumer itself waits for NATS to come back.
            Err(_) => true,
        },
        Err(e) => !matches!(
            e.kind(),
            jetstream::context::GetStreamErrorKind::JetStream(_)
        ),
    }
}

fn lost(health: &BusHealth, e: &str) {
    if health.connected.swap(false, Ordering::Relaxed) {
        tracing::error!("the event bus is not reachable, retrying: {e}");
    }
}
