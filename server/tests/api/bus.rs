//! The event bus on NATS JetStream (`--bus`): two instances on the machine's NATS (127.0.0.1:4222, or
//! `WATCHPOST_TEST_NATS`), each test with a stream of its own, deleted when it ends.

use crate::engines::ScratchStream;
use crate::helpers::{Events, PATIENCE, TestApp, next_envelope, next_event, spawn_app_in};
use serde_json::json;
use shared::{Envelope, Event};

async fn instance(bus: &ScratchStream, dir: &std::path::Path) -> TestApp {
    spawn_app_in(dir, |c| c.stream.bus = Some(bus.section())).await
}

async fn ingest(app: &TestApp, message: &str) {
    let r = app
        .client
        .post(format!("{}/api/ingest/logs", app.base))
        .header("content-type", "application/x-ndjson")
        .body(json!({ "level": "error", "service": "bus-test", "message": message }).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// The next notice on `events` that the bus went away or came back: whether it is reachable. With `held`,
/// the stream's last event id before this call, it also checks the notice takes no place in the stream: SSE
/// keeps the last `id:` until a frame sets another, so the notice must leave it at the event before it.
async fn next_bus_notice(events: &mut Events, mut held: Option<String>) -> bool {
    loop {
        let event = next_event(events).await;
        if event.event == "bus" {
            if let Some(held) = held {
                assert_eq!(event.id, held, "a bus notice sets no id");
            }
            let notice: shared::BusNotice = serde_json::from_str(&event.data).unwrap();
            return notice.reachable;
        }
        if let Some(held) = &mut held {
            *held = event.id;
        }
    }
}

/// The next error-log event of the test's service on `events`: its id and message.
async fn next_log(events: &mut Events) -> (u64, String) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let (_, env): (_, Envelope) = next_envelope(events).await;
            if let Event::Logs(entries) = &env.event
                && let Some(e) = entries.iter().find(|e| e.service == "bus-test")
            {
                return (env.seq, e.message.clone());
            }
        }
    })
    .await
    .expect("the log event arrives")
}

/// What one instance publishes, every instance serves, with the same id; a browser resumes on the other
/// instance with exactly the events after its id; an id the stream does not hold gets a snapshot; and
/// when the stream is lost and made again, both instances go on and the new ids are above every old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_stream_serve_the_same_events_and_resume_on_each_other() {
    let bus = ScratchStream::new("resume");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = instance(&bus, dir_a.path()).await;
    let b = instance(&bus, dir_b.path()).await;
    let mut on_a = a.events(None).await;
    let mut on_b = b.events(None).await;
    for events in [&mut on_a, &mut on_b] {
        let (_, first) = next_envelope(events).await;
        assert!(matches!(first.event, Event::Snapshot(_)));
    }

    ingest(&a, "one").await;
    let (id_a, message) = next_log(&mut on_a).await;
    assert_eq!(message, "one");
    let (id_b, message) = next_log(&mut on_b).await;
    assert_eq!(
        (id_b, message.as_str()),
        (id_a, "one"),
        "the same event, the same id"
    );

    ingest(&a, "two").await;
    ingest(&b, "three").await;
    let (two, _) = next_log(&mut on_b).await;
    let (three, _) = next_log(&mut on_b).await;
    // A browser that saw "one" on A resumes on B: exactly "two" and "three" follow, no snapshot.
    let mut resumed = b.events(Some(&id_a.to_string())).await;
    let (id, first) = next_envelope(&mut resumed).await;
    assert!(
        !matches!(first.event, Event::Snapshot(_)),
        "a replay, not a snapshot"
    );
    let mut replayed = vec![(first.seq, id.id.clone())];
    while replayed.last().map(|(seq, _)| *seq) != Some(three) {
        let (id, env) = next_envelope(&mut resumed).await;
        replayed.push((env.seq, id.id));
    }
    let seqs: Vec<u64> = replayed.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert!(seqs.contains(&two) && seqs.iter().all(|s| *s > id_a));
    assert!(replayed.iter().all(|(seq, id)| *id == seq.to_string()));

    // An id no stream gave is not resumed from: a snapshot.
    let mut unknown = b.events(Some("12345")).await;
    let (_, first) = next_envelope(&mut unknown).await;
    assert!(matches!(first.event, Event::Snapshot(_)));

    // The stream is lost (a NATS without its storage): both instances make it again and carry on, with
    // ids above every earlier one.
    bus.delete().await;
    let deadline = std::time::Instant::now() + PATIENCE;
    let after = loop {
        ingest(&a, "after").await;
        let (id, message) = next_log(&mut on_b).await;
        if message == "after" {
            break id;
        }
        assert!(std::time::Instant::now() < deadline);
    };
    assert!(after > three, "ids never repeat: {after} after {three}");
    let (id, message) = loop {
        let got = next_log(&mut on_a).await;
        if got.1 == "after" {
            break got;
        }
    };
    assert_eq!((id, message.as_str()), (after, "after"));
    a.stop().await;
    b.stop().await;
}

/// An instance that starts while others run builds its state from the stream before it serves: its first
/// snapshot already holds what the stream carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_serves_the_stream_s_state_from_its_first_snapshot() {
    let bus = ScratchStream::new("join");
    let dir_a = tempfile::tempdir().unwrap();
    let a = instance(&bus, dir_a.path()).await;
    let mut on_a = a.events(None).await;
    ingest(&a, "before the second instance").await;
    next_log(&mut on_a).await;
    let dir_b = tempfile::tempdir().unwrap();
    let b = instance(&bus, dir_b.path()).await;
    let (_, first) = next_envelope(&mut b.events(None).await).await;
    let Event::Snapshot(snapshot) = first.event else {
        panic!("a snapshot first")
    };
    assert!(
        snapshot
            .logs
            .iter()
            .any(|e| e.message == "before the second instance"),
        "the stream's events are in the new instance's first snapshot"
    );
    a.stop().await;
    b.stop().await;
}

/// A nats-server of the test's own (JetStream, file storage in a directory of its own) on a free port, so
/// the test can kill it and start it again on the same port and storage.
struct OwnNats {
    port: u16,
    store: tempfile::TempDir,
    child: std::process::Child,
}

impl OwnNats {
    fn start() -> OwnNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = tempfile::tempdir().unwrap();
        let child = Self::spawn(port, store.path());
        OwnNats { port, store, child }
    }

    fn spawn(port: u16, store: &std::path::Path) -> std::process::Child {
        let child = std::process::Command::new("/usr/sbin/nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server runs (Debian's nats-server package)");
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nats-server listens");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.child = Self::spawn(self.port, self.store.path());
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn health(app: &TestApp) -> shared::HealthzReport {
    crate::helpers::get_json(&app.anon, &format!("{}/healthz", app.base)).await
}

/// NATS killed and started again (its file storage keeps the stream): the instance stays up, says
/// `degraded` while the bus is away, and recovers without a restart; a tab either goes on or gets a
/// snapshot, and events published after recovery reach it. Every tab is told while the bus is away (the
/// banner): one open before at once, one that opens meanwhile right after its snapshot, and both when it is
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_outlives_a_nats_restart() {
    let mut nats = OwnNats::start();
    let bus = ScratchStream {
        url: format!("nats://127.0.0.1:{}", nats.port),
        name: "watchpost".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let app = instance(&bus, dir.path()).await;
    assert_eq!(health(&app).await.bus.as_deref(), Some("ok"));
    let mut events = app.events(None).await;
    ingest(&app, "before").await;
    let (before, _) = next_log(&mut events).await;

    nats.kill();
    // The open tab is told, and its place in the stream stays that of the last event.
    assert!(!next_bus_notice(&mut events, Some(before.to_string())).await);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let h = health(&app).await;
        if h.bus.as_deref() == Some("unreachable") {
            assert_eq!(h.status, "degraded");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "degraded while NATS is away"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let mut opened_meanwhile = app.events(None).await;
    let (_, first) = next_envelope(&mut opened_meanwhile).await;
    assert!(matches!(first.event, Event::Snapshot(_)));
    assert!(!next_bus_notice(&mut opened_meanwhile, Some(first.seq.to_string())).await);

    nats.restart();
    let deadline = std::time::Instant::now() + PATIENCE;
    while health(&app).await.bus.as_deref() != Some("ok") {
        assert!(std::time::Instant::now() < deadline, "the bus recovers");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(next_bus_notice(&mut events, None).await, "told it is back");
    assert!(next_bus_notice(&mut opened_meanwhile, None).await);
    ingest(&app, "after").await;
    // The tab that stayed open gets it (or, had it lost its place, a snapshot first).
    let (after, message) = loop {
        let got = next_log(&mut events).await;
        if got.1 == "after" {
            break got;
        }
    };
    assert_eq!(message, "after");
    assert!(after > before);
    app.stop().await;
}

/// A bus that does not answer at start is one line on stderr naming it, and a non-zero exit.
#[test]
fn a_bus_that_does_not_answer_is_one_line_and_a_non_zero_exit() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = crate::cli::run(&[
        "--listen",
        "127.0.0.1:0",
        "--bus",
        &format!("nats://127.0.0.1:{port}"),
    ]);
    let line = crate::cli::the_one_error_line(&out);
    assert!(
        line.contains(&format!("cannot reach NATS at nats://127.0.0.1:{port}")),
        "{line}"
    );
}
