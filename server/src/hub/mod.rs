//! The event hub: gives each event the next sequence number, keeps the state and a ring buffer of recent
//! events for resuming, and fans events out to every stream.
//!
//! Shaped for the fan-out hot path: an event is serialised once, into the exact SSE frame bytes, and every
//! subscriber receives a reference-counted pointer to those bytes. The broadcast channel gives each
//! subscriber a bounded window; one that falls behind gets `Lagged` and is resynchronised with a snapshot, so
//! a client that reads nothing never holds up the publisher or anyone else.
//!
//! Where sequence numbers come from is the [`bus`]: in one process the hub numbers events itself.

pub mod bus;
pub mod jetstream;

use crate::clock::{now_micros, now_millis};
use bytes::Bytes;
use shared::{Access, Envelope, Event, HostId, LiveState, Role, Scope, Snapshot};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// One event, ready to write to any stream.
#[derive(Debug)]
pub struct Frame {
    pub seq: u64,
    /// The environment the event belongs to: a reader with no role there never gets it.
    pub environment: Box<str>,
    /// The least role whose streams carry this frame.
    pub audience: shared::Role,
    /// `id:`, `event:` and `data:` lines with the terminating blank line.
    pub bytes: Bytes,
    /// The frame for readers below [`shared::STATEMENT_AUDIENCE`], when theirs differs (see
    /// [`Event::for_lesser_readers`]).
    pub lesser: Option<Bytes>,
}

impl Frame {
    /// What a reader with `access` gets of this frame: nothing, this frame, or its lesser form, by the
    /// reader's role in the frame's environment.
    pub fn for_access(&self, access: &Access) -> Option<&Bytes> {
        self.for_role(access.role_in(&self.environment)?)
    }

    /// What a reader with `role` gets of this frame: nothing, this frame, or its lesser form.
    pub fn for_role(&self, role: Role) -> Option<&Bytes> {
        if self.audience > role {
            None
        } else if role < shared::STATEMENT_AUDIENCE {
            Some(self.lesser.as_ref().unwrap_or(&self.bytes))
        } else {
            Some(&self.bytes)
        }
    }
}

/// How a new stream starts.
#[derive(Debug)]
pub enum Start {
    /// Everything as of `seq`, as the subscriber's role may see it, already an SSE frame: for new clients,
    /// unknown or evicted ids, and resynchronisation.
    Snapshot { seq: u64, frame: Bytes },
    /// Exactly the events after the client's `Last-Event-ID`, oldest first (possibly none).
    Replay(Vec<Arc<Frame>>),
}

/// A stream's view of the hub: how to begin, then live frames with `seq` greater than anything in `start`.
pub struct Subscription {
    pub start: Start,
    pub live: broadcast::Receiver<Arc<Frame>>,
}

pub struct Hub {
    inner: Mutex<Inner>,
    live: broadcast::Sender<Arc<Frame>>,
    environment: String,
    replay_capacity: usize,
}

struct Inner {
    /// The newest sequence number issued (or the boot seed before the first event): a snapshot is "as of" it.
    head: u64,
    /// The sequence number just before the oldest frame in `ring`: a client that has seen `floor` can be
    /// replayed the whole ring. It is the boot seed until the ring first evicts.
    floor: u64,
    ring: VecDeque<Arc<Frame>>,
    state: LiveState,
    /// The snapshot frame as of `head`, per reader's access, encoded for the first stream that needed it and shared
    /// with every other until the next event: after a restart all dashboards reconnect within a second or
    /// two, and thousands of streams then cost one encoding per role per event instead of one each (CPU
    /// and transient memory). Encoded under the lock, which holds up a publish for that one encoding.
    snapshots: Vec<(Access, Bytes)>,
}

impl Hub {
    /// `replay_capacity`: events kept for `Last-Event-ID` resumes. `client_queue`: how many events a stream may
    /// fall behind before it is resynchronised with a snapshot.
    pub fn new(
        environment: String,
        interval_ms: u64,
        replay_capacity: usize,
        client_queue: usize,
    ) -> Self {
        Self::with_seed(
            environment,
            interval_ms,
            replay_capacity,
            client_queue,
            now_micros(),
        )
    }

    /// As [`Hub::new`], numbering from `seed`: tests use it to control the ids.
    pub fn with_seed(
        environment: String,
        interval_ms: u64,
        replay_capacity: usize,
        client_queue: usize,
        seed: u64,
    ) -> Self {
        let (live, _) = broadcast::channel(client_queue.max(1));
        let state = LiveState::new(interval_ms);
        Hub {
            inner: Mutex::new(Inner {
                head: seed,
                floor: seed,
                ring: VecDeque::new(),
                state,
                snapshots: Vec::new(),
            }),
            live,
            environment,
            replay_capacity: replay_capacity.max(1),
        }
    }

    /// Sequences, records and fans out one event; returns its sequence number. Never waits for a reader.
    pub fn publish(&self, host: Option<HostId>, event: Event) -> u64 {
        let scope = Scope {
            environment: self.environment.clone(),
            host,
        };
        self.publish_in(scope, event)
    }

    /// As [`Hub::publish`], for an event of another environment than the hub's own (an agent's host).
    pub fn publish_in(&self, scope: Scope, event: Event) -> u64 {
        let mut inner = self.lock();
        // Time-based ids survive restarts (a new run starts above the old one's ids) and stay unique when
        // many events land in one microsecond.
        let seq = now_micros().max(inner.head + 1);
        let env = Envelope {
            seq,
            at_ms: now_millis(),
            scope,
            event,
        };
        self.record(&mut inner, env);
        seq
    }

    /// Records and fans out an event the bus has already sequenced (in scale-out, JetStream's stream
    /// sequence). One at or below the newest applied is a redelivery and is dropped; `false` says so.
    pub fn ingest(&self, env: Envelope) -> bool {
        let mut inner = self.lock();
        if env.seq <= inner.head {
            return false;
        }
        self.record(&mut inner, env);
        true
    }

    /// Applies `env` to the state, keeps its frame for resumes and sends it to every stream, under the lock
    /// so that the channel's order is the sequence order.
    fn record(&self, inner: &mut Inner, env: Envelope) {
        let seq = env.seq;
        inner.state.apply(&env);
        inner.snapshots.clear();
        let lesser = env.event.for_lesser_readers().map(|event| {
            encode(&Envelope {
                seq: env.seq,
                at_ms: env.at_ms,
                scope: env.scope.clone(),
                event,
            })
        });
        let frame = Arc::new(Frame {
            seq,
            environment: env.scope.environment.as_str().into(),
            audience: env.event.audience(),
            bytes: encode(&env),
            lesser,
        });
        inner.head = seq;
        if inner.ring.len() == self.replay_capacity
            && let Some(evicted) = inner.ring.pop_front()
        {
            inner.floor = evicted.seq;
        }
        inner.ring.push_back(frame.clone());
        // An error only means nobody is listening right now, which is fine.
        let _ = self.live.send(frame);
    }

    /// Waits, at most `within`, until the hub has applied the event with id `seq`: with a shared bus, a
    /// browser may resume on an instance that is a moment behind the one it came from, and a snapshot from
    /// before what the browser already showed would take its dashboard back in time. Returns whether it
    /// got there.
    pub async fn reach(&self, seq: u64, within: std::time::Duration) -> bool {
        let mut live = self.live.subscribe();
        if self.lock().head >= seq {
            return true;
        }
        tokio::time::timeout(within, async {
            loop {
                match live.recv().await {
                    Ok(frame) if frame.seq >= seq => return true,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if self.lock().head >= seq {
                            return true;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        })
        .await
        .unwrap_or(false)
    }

    /// Subscribes a stream of a reader with `access`. `last_event_id` is the browser's `Last-Event-ID`, if
    /// it sent one.
    pub fn subscribe(&self, last_event_id: Option<u64>, access: &Access) -> Subscription {
        let mut inner = self.lock();
        // Subscribing under the lock means the receiver sees exactly the events after `head`.
        let live = self.live.subscribe();
        let start = match last_event_id.and_then(|id| inner.replay_after(id)) {
            Some(frames) => Start::Replay(frames),
            None => Start::Snapshot {
                seq: inner.head,
                frame: inner.snapshot_frame(&self.environment, access),
            },
        };
        Subscription { start, live }
    }

    /// A snapshot frame and a receiver positioned right after it, taken together: how a stream that fell
    /// behind starts over.
    pub fn resubscribe(&self, access: &Access) -> (Bytes, broadcast::Receiver<Arc<Frame>>) {
        let mut inner = self.lock();
        (
            inner.snapshot_frame(&self.environment, access),
            self.live.subscribe(),
        )
    }

    /// The whole state as of the newest event.
    pub fn snapshot(&self) -> Envelope {
        self.lock().snapshot(&self.environment)
    }

    /// The environment of the hub's own host, and of every event that names no other.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Every host of the fleet as the state has it: (name, environment, presence).
    pub fn fleet_presences(&self) -> Vec<(String, String, shared::Presence)> {
        self.lock()
            .state
            .fleet()
            .map(|h| (h.host.0.clone(), h.environment.clone(), h.presence))
            .collect()
    }

    /// The environment of an alert the state holds (its `environment` label), when it names one.
    pub fn alert_environment(&self, id: i64) -> Option<String> {
        self.lock()
            .state
            .alerts()
            .iter()
            .find(|a| a.id == id)
            .and_then(|a| a.labels.get(shared::ENVIRONMENT_FIELD).cloned())
    }

    /// The newest sequence number issued.
    #[cfg(test)]
    pub fn head(&self) -> u64 {
        self.lock().head
    }

    pub fn stream_count(&self) -> usize {
        self.live.receiver_count()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated in a way that matters more than
        // losing the dashboard, so recover the guard rather than propagate the poison.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// The frames strictly after `id`, or `None` when `id` cannot be resumed from: evicted, from an earlier
    /// run, or never issued. `Some(vec![])` when the client is up to date.
    fn replay_after(&self, id: u64) -> Option<Vec<Arc<Frame>>> {
        if id == self.head {
            return Some(Vec::new());
        }
        if id == self.floor {
            return Some(self.ring.iter().cloned().collect());
        }
        let at = self.ring.binary_search_by_key(&id, |f| f.seq).ok()?;
        Some(self.ring.iter().skip(at + 1).cloned().collect())
    }

    /// The snapshot frame as of `head` for `access`, from the cache when a stream with the same access
    /// already needed it.
    fn snapshot_frame(&mut self, environment: &str, access: &Access) -> Bytes {
        if let Some((_, frame)) = self.snapshots.iter().find(|(a, _)| a == access) {
            return frame.clone();
        }
        let mut env = self.snapshot(environment);
        if let Event::Snapshot(snapshot) = env.event {
            env.event = Event::Snapshot(snapshot.for_access(access, environment));
        }
        let frame = encode(&env);
        // Bounded: a burst of readers each with roles of their own must not grow it without end.
        if self.snapshots.len() >= MAX_CACHED_SNAPSHOTS {
            self.snapshots.remove(0);
        }
        self.snapshots.push((access.clone(), frame.clone()));
        frame
    }

    fn snapshot(&self, environment: &str) -> Envelope {
        let snapshot: Snapshot = self.state.snapshot();
        Envelope {
            seq: self.head,
            at_ms: now_millis(),
            scope: Scope {
                environment: environment.to_owned(),
                host: None,
            },
            event: Event::Snapshot(snapshot),
        }
    }
}

/// How many readers' snapshot frames are kept between events.
const MAX_CACHED_SNAPSHOTS: usize = 16;

/// The SSE frame of an envelope. Compact JSON never contains a raw newline, so one `data:` line suffices.
pub fn encode(env: &Envelope) -> Bytes {
    let json = serde_json::to_string(env).unwrap_or_else(|e| {
        // Our own types always serialise; if that ever breaks, say so on the stream rather than panic.
        format!(r#"{{"error":"could not encode event {}: {e}"}}"#, env.seq)
    });
    let kind = env.event.kind().as_str();
    let mut out = String::with_capacity(json.len() + kind.len() + 40);
    out.push_str("id: ");
    out.push_str(&env.seq.to_string());
    out.push_str("\nevent: ");
    out.push_str(kind);
    out.push_str("\ndata: ");
    out.push_str(&json);
    out.push_str("\n\n");
    Bytes::from(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use shared::{HostHealth, LoadAvg, NetRates, Usage};

    pub(crate) fn health(cpu: f32) -> Event {
        Event::Health(HostHealth {
            host: HostId("h".into()),
            hostname: "h".into(),
            os: "test".into(),
            sampled_at_ms: now_millis(),
            uptime_s: 1,
            cpu_pct: cpu,
            cores: vec![cpu],
            load: LoadAvg {
                one: 0.0,
                five: 0.0,
                fifteen: 0.0,
            },
            memory: Usage { used: 1, total: 2 },
            swap: Usage { used: 0, total: 0 },
            disks: vec![],
            net: NetRates {
                rx_bytes_per_s: 0.0,
                tx_bytes_per_s: 0.0,
            },
        })
    }

    fn hub(ring: usize) -> Hub {
        Hub::with_seed("test".into(), 1000, ring, 16, 1_000)
    }

    fn publish_n(hub: &Hub, n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| hub.publish(Some(HostId("h".into())), health(i as f32)))
            .collect()
    }

    fn replayed(sub: Subscription) -> Vec<u64> {
        match sub.start {
            Start::Replay(frames) => frames.iter().map(|f| f.seq).collect(),
            Start::Snapshot { seq, .. } => panic!("expected a replay, got a snapshot as of {seq}"),
        }
    }

    fn snapshot_seq(sub: Subscription) -> u64 {
        match sub.start {
            Start::Snapshot { seq, .. } => seq,
            Start::Replay(f) => panic!("expected a snapshot, got a replay of {} frames", f.len()),
        }
    }

    #[test]
    fn sequence_numbers_strictly_increase_and_start_above_the_seed() {
        let hub = Hub::with_seed("t".into(), 1000, 8, 8, u64::MAX / 2);
        let ids = publish_n(&hub, 100);
        assert!(ids[0] > u64::MAX / 2);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(hub.head(), *ids.last().unwrap());
    }

    #[test]
    fn a_new_client_gets_a_snapshot_as_of_the_head() {
        let hub = hub(8);
        let ids = publish_n(&hub, 3);
        assert_eq!(
            snapshot_seq(hub.subscribe(None, &Access::uniform(Role::Viewer))),
            ids[2]
        );
    }

    #[test]
    fn resuming_from_the_newest_id_replays_nothing() {
        let hub = hub(8);
        let ids = publish_n(&hub, 3);
        assert_eq!(
            replayed(hub.subscribe(Some(ids[2]), &Access::uniform(Role::Viewer))),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn resuming_from_inside_the_buffer_replays_strictly_after_it() {
        let hub = hub(8);
        let ids = publish_n(&hub, 6);
        assert_eq!(
            replayed(hub.subscribe(Some(ids[2]), &Access::uniform(Role::Viewer))),
            ids[3..].to_vec()
        );
    }

    #[test]
    fn resuming_from_the_last_evicted_id_replays_the_whole_buffer() {
        let hub = hub(4);
        let ids = publish_n(&hub, 6);
        assert_eq!(
            replayed(hub.subscribe(Some(ids[1]), &Access::uniform(Role::Viewer))),
            ids[2..].to_vec()
        );
    }

    #[test]
    fn resuming_from_an_older_evicted_id_gets_a_snapshot() {
        let hub = hub(4);
        let ids = publish_n(&hub, 6);
        assert_eq!(
            snapshot_seq(hub.subscribe(Some(ids[0]), &Access::uniform(Role::Viewer))),
            ids[5]
        );
    }

    #[test]
    fn resuming_from_an_id_never_issued_gets_a_snapshot() {
        let hub = hub(8);
        let ids = publish_n(&hub, 4);
        for never in [ids[1] + 1, ids[3] + 1, 5, 0, u64::MAX] {
            assert_ne!(
                ids[1] + 1,
                ids[2],
                "the clock-based ids leave gaps this test relies on"
            );
            assert_eq!(
                snapshot_seq(hub.subscribe(Some(never), &Access::uniform(Role::Viewer))),
                ids[3],
                "id {never}"
            );
        }
    }

    #[test]
    fn a_client_that_saw_the_boot_snapshot_is_replayed_everything_since() {
        let hub = hub(8);
        let boot = snapshot_seq(hub.subscribe(None, &Access::uniform(Role::Viewer)));
        let ids = publish_n(&hub, 3);
        assert_eq!(
            replayed(hub.subscribe(Some(boot), &Access::uniform(Role::Viewer))),
            ids
        );
    }

    #[test]
    fn live_frames_follow_the_start_without_gap_or_overlap() {
        let hub = hub(8);
        publish_n(&hub, 2);
        let mut sub = hub.subscribe(None, &Access::uniform(Role::Viewer));
        let at = match &sub.start {
            Start::Snapshot { seq, .. } => *seq,
            Start::Replay(_) => unreachable!(),
        };
        let next = publish_n(&hub, 2);
        assert!(next[0] > at);
        assert_eq!(sub.live.try_recv().unwrap().seq, next[0]);
        assert_eq!(sub.live.try_recv().unwrap().seq, next[1]);
    }

    fn snapshot_frame(hub: &Hub, role: Role) -> Bytes {
        match hub.subscribe(None, &Access::uniform(role)).start {
            Start::Snapshot { frame, .. } => frame,
            Start::Replay(f) => panic!("expected a snapshot, got a replay of {} frames", f.len()),
        }
    }

    #[test]
    fn a_snapshot_is_encoded_once_per_role_until_the_next_event() {
        let hub = hub(8);
        publish_n(&hub, 1);
        let viewer = snapshot_frame(&hub, Role::Viewer);
        // The same allocation, not an equal copy: thousands of reconnecting streams share one encoding.
        assert_eq!(snapshot_frame(&hub, Role::Viewer).as_ptr(), viewer.as_ptr());
        let admin = snapshot_frame(&hub, Role::Admin);
        assert_ne!(admin.as_ptr(), viewer.as_ptr());
        assert_eq!(
            hub.resubscribe(&Access::uniform(Role::Admin)).0.as_ptr(),
            admin.as_ptr()
        );

        let next = publish_n(&hub, 1)[0];
        let after = snapshot_frame(&hub, Role::Viewer);
        assert_ne!(after.as_ptr(), viewer.as_ptr());
        assert!(after.starts_with(format!("id: {next}\nevent: snapshot\n").as_bytes()));
    }

    #[test]
    fn a_viewer_gets_statement_kinds_where_operators_get_statement_texts() {
        let hub = hub(8);
        let mut live = hub.subscribe(None, &Access::uniform(Role::Viewer)).live;
        let reading = shared::DbReading {
            target: "shop".into(),
            kind: shared::DbKind::Postgres,
            t_ms: 1,
            error: None,
            connections: Vec::new(),
            queries: vec![shared::QueryStat {
                query: "ALTER ROLE app PASSWORD 'SECRETPW'".into(),
                calls: 1,
                mean_ms: 1.0,
                total_ms: 1.0,
            }],
            tps: None,
            cache_hit_ratio: None,
            deadlocks: None,
            note: None,
        };
        hub.publish(None, Event::Db(reading));
        let frame = live.try_recv().unwrap();
        let text = |b: Option<&Bytes>| String::from_utf8_lossy(b.unwrap()).into_owned();
        let viewer = text(frame.for_role(Role::Viewer));
        assert!(
            !viewer.contains("SECRETPW") && viewer.contains("ALTER …"),
            "{viewer}"
        );
        assert!(text(frame.for_role(Role::Operator)).contains("SECRETPW"));
        // Replays and snapshots alike.
        let Start::Snapshot {
            frame: snapshot, ..
        } = hub.subscribe(None, &Access::uniform(Role::Viewer)).start
        else {
            panic!("a snapshot")
        };
        assert!(!String::from_utf8_lossy(&snapshot).contains("SECRETPW"));
        let Start::Snapshot {
            frame: snapshot, ..
        } = hub.subscribe(None, &Access::uniform(Role::Admin)).start
        else {
            panic!("a snapshot")
        };
        assert!(String::from_utf8_lossy(&snapshot).contains("SECRETPW"));
    }

    #[test]
    fn a_snapshot_frame_leaves_out_what_the_role_may_not_see() {
        let hub = hub(8);
        hub.publish(
            None,
            Event::Security(shared::SecurityAlert {
                id: 1,
                t_ms: 1,
                kind: shared::SecurityKind::FailedLogin,
                severity: shared::Severity::Warning,
                user: Some("SECRETUSER".into()),
                ip: None,
                message: "failed sign-in".into(),
                acknowledged_by: None,
                acknowledged_ms: None,
            }),
        );
        let text = |role| String::from_utf8(snapshot_frame(&hub, role).to_vec()).unwrap();
        assert!(!text(Role::Viewer).contains("SECRETUSER"));
        assert!(text(Role::Operator).contains("SECRETUSER"));
    }

    #[test]
    fn a_reader_with_no_role_in_an_environment_gets_nothing_of_it() {
        let hub = hub(8);
        let host = |name: &str, env: &str| shared::FleetHost {
            host: HostId(name.into()),
            environment: env.into(),
            presence: shared::Presence::Live,
            since_ms: 1,
            seen_ms: Some(1),
            interval_ms: 1000,
            version: "1".into(),
            hub: false,
            removed: false,
            maintenance: None,
            commands: Vec::new(),
            listening: false,
            interval_set: None,
        };
        let in_env = |env: &str, host: &str| Scope {
            environment: env.into(),
            host: Some(HostId(host.into())),
        };
        let mut web1 = health(1.0);
        if let Event::Health(h) = &mut web1 {
            h.host = HostId("web-1".into());
        }
        hub.publish_in(in_env("prod", "web-1"), Event::Host(host("web-1", "prod")));
        hub.publish_in(in_env("prod", "web-1"), web1);
        hub.publish_in(
            in_env("staging", "web-2"),
            Event::Host(host("web-2", "staging")),
        );
        let staging_only = Access::with(
            Role::Viewer,
            vec![shared::EnvironmentRole {
                environment: "prod".into(),
                role: None,
            }],
        );
        // Snapshot: no prod host, no prod reading.
        let Start::Snapshot { frame, .. } = hub.subscribe(None, &staging_only).start else {
            panic!("a snapshot")
        };
        let text = String::from_utf8(frame.to_vec()).unwrap();
        assert!(text.contains("web-2") && !text.contains("web-1"), "{text}");
        // Live and replayed: the prod frames are left out.
        let mut sub = hub.subscribe(None, &staging_only);
        hub.publish_in(in_env("prod", "web-1"), Event::Host(host("web-1", "prod")));
        hub.publish_in(
            in_env("staging", "web-2"),
            Event::Host(host("web-2", "staging")),
        );
        let prod = sub.live.try_recv().unwrap();
        let staging = sub.live.try_recv().unwrap();
        assert!(prod.for_access(&staging_only).is_none());
        assert!(staging.for_access(&staging_only).is_some());
        assert!(prod.for_access(&Access::uniform(Role::Viewer)).is_some());
    }

    #[test]
    fn an_event_sequenced_by_the_bus_is_applied_once_and_replayed() {
        let hub = hub(8);
        let boot = snapshot_seq(hub.subscribe(None, &Access::uniform(Role::Viewer)));
        let env = |seq| Envelope {
            seq,
            at_ms: 1,
            scope: Scope {
                environment: "test".into(),
                host: Some(HostId("h".into())),
            },
            event: health(seq as f32),
        };
        let mut sub = hub.subscribe(None, &Access::uniform(Role::Viewer));
        assert!(hub.ingest(env(boot + 10)));
        assert!(!hub.ingest(env(boot + 10)), "a redelivery is dropped");
        assert!(!hub.ingest(env(boot + 5)), "an older one too");
        assert!(hub.ingest(env(boot + 11)));
        assert_eq!(sub.live.try_recv().unwrap().seq, boot + 10);
        assert_eq!(sub.live.try_recv().unwrap().seq, boot + 11);
        assert!(sub.live.try_recv().is_err());
        assert_eq!(
            replayed(hub.subscribe(Some(boot + 10), &Access::uniform(Role::Viewer))),
            vec![boot + 11]
        );
    }

    #[tokio::test]
    async fn a_resume_waits_for_an_id_the_hub_has_not_applied_yet() {
        let hub = Arc::new(hub(8));
        let head = snapshot_seq(hub.subscribe(None, &Access::uniform(Role::Viewer)));
        assert!(
            hub.reach(head, std::time::Duration::ZERO).await,
            "reached already"
        );
        let later = hub.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            for seq in [head + 1, head + 2] {
                later.ingest(Envelope {
                    seq,
                    at_ms: 1,
                    scope: Scope {
                        environment: "test".into(),
                        host: None,
                    },
                    event: health(1.0),
                });
            }
        });
        assert!(hub.reach(head + 2, std::time::Duration::from_secs(5)).await);
        assert_eq!(hub.head(), head + 2);
        assert!(
            !hub.reach(head + 3, std::time::Duration::from_millis(20))
                .await,
            "an id never applied is given up on"
        );
    }

    #[test]
    fn frames_are_well_formed_sse() {
        let hub = hub(8);
        let id = hub.publish(None, health(1.0));
        let mut sub = hub.subscribe(Some(id - 1), &Access::uniform(Role::Viewer));
        drop(sub.start);
        let id2 = hub.publish(None, health(2.0));
        let text = String::from_utf8(sub.live.try_recv().unwrap().bytes.to_vec()).unwrap();
        assert!(text.starts_with(&format!("id: {id2}\nevent: health\ndata: {{")));
        assert!(text.ends_with("}\n\n"));
        assert_eq!(text.matches('\n').count(), 4);
    }
}
