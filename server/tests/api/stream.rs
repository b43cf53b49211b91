//! `GET /api/events`: the behaviour browsers and the hub promise each other.

use crate::helpers::{PATIENCE, add_token, next_envelope, next_event, spawn_app, spawn_app_with};
use futures::StreamExt;
use shared::{Event, Role};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_has_the_headers_proxies_and_browsers_need() {
    let app = spawn_app().await;
    let response = app.open_stream(None).await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_starts_with_retry_then_a_snapshot() {
    let app = spawn_app().await;
    let text = app.raw_stream_until("event: snapshot").await;
    assert!(text.starts_with("retry: "), "{text:.80}");
    let snapshot_at = text.find("event: snapshot").unwrap();
    assert!(
        text[..snapshot_at].contains("id: "),
        "the snapshot carries an id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_gets_a_snapshot_first_then_live_events_with_strictly_increasing_ids() {
    let app = spawn_app().await;
    app.first_sample().await;
    let mut events = app.events(None).await;

    let (first, snapshot) = next_envelope(&mut events).await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.id, snapshot.seq.to_string());
    let Event::Snapshot(s) = &snapshot.event else {
        panic!("first event is {:?}", snapshot.event)
    };
    assert_eq!(s.interval_ms, 100);
    assert_eq!(
        s.hosts.len(),
        1,
        "the snapshot already holds this host's reading"
    );

    let mut last = snapshot.seq;
    for _ in 0..5 {
        let (event, env) = next_envelope(&mut events).await;
        assert_eq!(event.event, "health");
        assert_eq!(event.id, env.seq.to_string());
        assert!(env.seq > last, "{} after {last}", env.seq);
        let Event::Health(h) = env.event else {
            panic!("expected health")
        };
        assert!((0.0..=100.0).contains(&h.cpu_pct));
        assert!(h.memory.total > 0);
        last = env.seq;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_last_event_id_replays_exactly_the_missed_events() {
    let app = spawn_app().await;
    let mut first = app.events(None).await;
    next_envelope(&mut first).await; // snapshot
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_envelope(&mut first).await.1);
    }
    // The second client saw up to the first health event, then dropped; it comes back with that id.
    let resume_from = seen[0].seq;
    let mut second = app.events(Some(&resume_from.to_string())).await;
    let mut resumed = Vec::new();
    for _ in 0..6 {
        let (event, env) = next_envelope(&mut second).await;
        assert_ne!(
            event.event, "snapshot",
            "a known id must be replayed, not answered with a snapshot"
        );
        resumed.push(env);
    }
    while seen.len() < 7 {
        seen.push(next_envelope(&mut first).await.1);
    }
    assert_eq!(
        resumed,
        seen[1..7],
        "exactly the events after {resume_from}, in order, without gap or repeat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_the_newest_id_replays_nothing_and_sends_no_snapshot() {
    // No readings and no interval figures for an hour: nothing is published after the snapshot.
    let app = spawn_app_with(|c| {
        c.sampling.interval = Duration::from_secs(3600);
        c.sampling.api_interval = Duration::from_secs(3600);
    })
    .await;
    let mut first = app.events(None).await;
    let (_, snapshot) = next_envelope(&mut first).await;
    let mut second = app.events(Some(&snapshot.seq.to_string())).await;
    // Nothing was published since the snapshot, so the resumed stream is quiet: it only pings.
    let quiet = tokio::time::timeout(Duration::from_millis(500), second.next()).await;
    assert!(quiet.is_err() || quiet.unwrap().is_some_and(|e| e.event == "ping"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_malformed_last_event_id_gets_a_fresh_snapshot() {
    let app = spawn_app().await;
    app.first_sample().await;
    // From before this server started (ids are clock-based), never issued, far future, and not a number.
    for id in ["1", "12345", "18446744073709551615", "not-a-number"] {
        let mut events = app.events(Some(id)).await;
        let (event, env) = next_envelope(&mut events).await;
        assert_eq!(event.event, "snapshot", "Last-Event-ID {id}");
        assert!(matches!(env.event, Event::Snapshot(_)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_gets_a_keepalive() {
    let app = spawn_app_with(|c| {
        c.sampling.interval = Duration::from_secs(3600);
        c.sampling.api_interval = Duration::from_secs(3600);
        c.stream.keepalive = Duration::from_millis(200);
    })
    .await;
    // Read the raw frames: an SSE client library carries the last id forward, which would hide an `id:`.
    let text = app.raw_stream_until("event: ping").await;
    let frames: Vec<&str> = text.split("\n\n").collect();
    assert!(
        frames.iter().any(|f| f.contains("event: snapshot")),
        "the snapshot comes first"
    );
    let ping = frames.iter().find(|f| f.contains("event: ping")).unwrap();
    assert!(
        !ping.lines().any(|l| l.starts_with("id:")),
        "a ping carries no id: {ping:?}"
    );
    assert!(
        ping.lines().any(|l| l.starts_with("data: {\"at_ms\":")),
        "{ping:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_does_not_delay_one_that_reads() {
    // A queue of 4: a fan-out that waited for the slowest reader would stall after four events.
    let app = spawn_app_with(|c| c.stream.client_queue = 4).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let token = add_token(app.data_dir(), "raw", Role::Viewer).await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!(
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        stalled.push(socket); // never read
    }
    let mut reader = app.events(None).await;
    next_envelope(&mut reader).await;
    let mut last = 0;
    for _ in 0..20 {
        let (_, env) = next_envelope(&mut reader).await;
        assert!(env.seq > last);
        last = env.seq;
    }
    assert_eq!(
        app.healthz().await.stream_clients,
        4,
        "the stalled clients are still held, not dropped"
    );

    // A stalled client that finally reads is given a consistent view: snapshot, then events after it.
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(PATIENCE, stalled[0].read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:.80}");
    assert!(text.contains("event: snapshot"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_client_hangs_up_is_released_before_anything_more_is_written_to_it() {
    // Nothing is written to the stream for a minute after its snapshot: no reading, no keepalive. The
    // hang-up alone has to free it (and its place under the per-user limit).
    let app = spawn_app_with(|c| {
        c.sampling.interval = Duration::from_secs(60);
        c.sampling.api_interval = Duration::from_secs(60);
        c.stream.keepalive = Duration::from_secs(60);
    })
    .await;
    let mut events = app.events(None).await;
    assert_eq!(next_event(&mut events).await.event, "snapshot");
    assert_eq!(app.healthz().await.stream_clients, 1);
    drop(events);
    let released = tokio::time::timeout(Duration::from_secs(5), async {
        while app.healthz().await.stream_clients != 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(released.is_ok(), "a hung-up stream is released at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_clients_are_counted_while_open_and_released_when_closed() {
    let app = spawn_app().await;
    let a = app.events(None).await;
    let b = app.events(None).await;
    assert_eq!(app.healthz().await.stream_clients, 2);
    drop(a);
    drop(b);
    let released = tokio::time::timeout(PATIENCE, async {
        while app.healthz().await.stream_clients != 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(released.is_ok(), "closed streams are released");
}
