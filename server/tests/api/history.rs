//! Metric history over HTTP: stored points, restarts, kill -9, bad queries and a full store.

use crate::helpers::{
    PATIENCE, add_token, http_client, next_envelope, spawn_app, spawn_app_in, spawn_app_with,
    start_binary,
};
use serde_json::Value;
use shared::{Event, HistorySeries, Metric, Role, Tier};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_are_stored_and_read_back_from_the_second_tier() {
    let app = spawn_app().await;
    let series = app.stored_points(3).await;
    assert_eq!(series.metric, Metric::Cpu);
    assert_eq!(series.tier, Tier::Second);
    assert_eq!(series.step_ms, 4_000);
    assert!(series.to_ms - series.from_ms == 3_600_000);
    // At 100 ms a reading, each stored second holds several readings, merged.
    let p = series.points[0];
    assert!(p.count >= 1 && p.min <= p.avg && p.avg <= p.max, "{p:?}");
    assert!((0.0..=100.0).contains(&p.avg));
    // Every metric of the host is stored.
    for metric in Metric::HOST {
        let r = app.history(&format!("metric={metric}&range=6h")).await;
        assert_eq!(r.status(), 200, "{metric}");
        let s: HistorySeries = r.json().await.unwrap();
        assert!(!s.points.is_empty(), "{metric} has points");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let first = spawn_app_in(data.path(), |_| {}).await;
    let before = first.stored_points(3).await;
    first.stop().await;

    let second = spawn_app_in(data.path(), |_| {}).await;
    let after: HistorySeries = second
        .history("metric=cpu&range=1h")
        .await
        .json()
        .await
        .unwrap();
    for p in &before.points {
        assert!(
            after.points.iter().any(|q| q.t_ms == p.t_ms),
            "the point at {} survived the restart",
            p.t_ms
        );
    }
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_writing_leaves_a_readable_database() {
    let data = tempfile::tempdir().unwrap();
    let token = add_token(data.path(), "test", Role::Viewer).await;
    let client = http_client();
    let stored = |addr: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let series: HistorySeries = client
                .get(format!("http://{addr}/api/history?metric=cpu&range=1h"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            series.points.len()
        }
    };
    // Kill it several times at different moments of its write cycle.
    let mut last = 0;
    for round in 0..3u64 {
        let (mut child, addr) = start_binary(data.path(), &["--interval", "100ms"]);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let n = stored(addr.clone()).await;
            if n > last {
                last = n;
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: no new points"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(137 * round)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let path = data.path().join(server::DATABASE_FILE);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    pool.close().await;
    // And the next start reads everything that was committed.
    let (mut child, addr) = start_binary(data.path(), &[]);
    assert!(stored(addr).await >= last);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_history_queries_get_400_with_a_message() {
    let app = spawn_app().await;
    let cases = [
        ("range=1h", "metric is required"),
        ("metric=cpux&range=1h", "unknown metric 'cpux'"),
        ("metric=cpu&range=2h", "unknown range '2h'"),
        ("metric=cpu&from=2000&to=1000", "start before it ends"),
        ("metric=cpu&from=1000", "needs both from and to"),
        ("metric=cpu&from=yesterday&to=1000", "not a time"),
        ("metric=cpu&range=1h&host=", "'' is not a host name"),
        ("metric=http_p95_ms&range=1h", "name one with service=NAME"),
        ("metric=db_tps&range=1h", "name one with target=NAME"),
        (
            "metric=cpu&range=1h&service=api",
            "cpu is a metric of a host, not of a service",
        ),
    ];
    for (query, message) in cases {
        let r = app.history(query).await;
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{query}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_server_function_returns_typed_series_and_rejects_bad_ranges() {
    let app = spawn_app().await;
    app.stored_points(1).await;
    let call = |body: Value| {
        app.client
            .post(format!("{}/api/get_history", app.base))
            .json(&body)
            .send()
    };
    let r =
        call(serde_json::json!({ "metrics": ["cpu", "memory"], "range": "Hour", "subject": null }))
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let series: Vec<HistorySeries> = r.json().await.unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[1].metric, Metric::Memory);
    assert!(!series[0].points.is_empty());

    let r = call(serde_json::json!({
        "metrics": ["cpu"],
        "range": { "Custom": { "from_ms": 2000, "to_ms": 1000 } },
        "subject": null
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("start before it ends"), "{text}");

    let r = call(serde_json::json!({
        "metrics": ["cpu", "http_p95_ms"],
        "range": "Hour",
        "subject": null
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("ask for them separately"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_is_reported_and_the_live_stream_goes_on() {
    // A quota below the new database's size: SQLite then caps the file where it is, as a full disk would.
    let app = spawn_app_with(|c| c.storage.quota = Some(4096)).await;
    let mut events = app.events(None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let error = loop {
        let (_, env) = next_envelope(&mut events).await;
        if let Event::Storage(status) = env.event {
            break status
                .error
                .expect("a storage event while full carries the error");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no storage error event"
        );
    };
    assert!(error.contains("full"), "{error}");
    let report = app.healthz().await;
    assert_eq!(report.status, "degraded");
    assert_eq!(report.storage.status, "error");
    assert!(report.storage.error.unwrap().contains("full"));
    // The dashboard keeps working from memory: readings keep arriving.
    let mut readings = 0;
    while readings < 3 {
        if let (
            _,
            shared::Envelope {
                event: Event::Health(_),
                ..
            },
        ) = next_envelope(&mut events).await
        {
            readings += 1;
        }
    }
    // And a new client's snapshot says history is not being saved.
    let mut fresh = app.events(None).await;
    let (_, env) = next_envelope(&mut fresh).await;
    let Event::Snapshot(snapshot) = env.event else {
        panic!("a snapshot first");
    };
    assert!(snapshot.storage.error.is_some());
}

/// The API and database figures the sources publish are stored too, per service and per target, and read
/// back through the same route and server function the range picker uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_database_figures_are_stored_per_service_and_target() {
    let app = spawn_app_with(|c| c.sampling.api_interval = Duration::from_millis(300)).await;
    for _ in 0..30 {
        assert_eq!(app.healthz_response().await.status(), 200);
    }
    let stored = |query: &'static str| {
        let app = &app;
        async move {
            tokio::time::timeout(PATIENCE, async {
                loop {
                    let r = app.history(query).await;
                    // A subject is unknown (404) until its first reading: a moment after the start.
                    if r.status() == 404 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    assert_eq!(r.status(), 200, "{query}");
                    let s: HistorySeries = r.json().await.unwrap();
                    if s.points.iter().map(|p| p.count).sum::<u32>() >= 1 {
                        return s;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{query} gets stored points"))
        }
    };
    // The 30 requests above: at least one interval had a nonzero rate, and its latency is stored.
    let rate = tokio::time::timeout(PATIENCE, async {
        loop {
            let s = stored("metric=http_requests_per_s&service=watchpost&range=1h").await;
            if s.points.iter().any(|p| p.max > 0.0) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a nonzero request rate is stored");
    assert_eq!(rate.metric, Metric::HttpRequestsPerS);
    assert_eq!(rate.subject, "watchpost");
    let p95 = stored("metric=http_p95_ms&service=watchpost&range=1h").await;
    assert!(p95.points.iter().all(|p| p.min > 0.0), "{p95:?}");
    // The store's own database reading: its pool always holds a connection.
    let connections = stored("metric=db_connections&target=store&range=1h").await;
    assert!(
        connections.points.iter().all(|p| p.min >= 1.0),
        "{connections:?}"
    );
    // A service never seen is a 404 that says so, not an empty series that looks like a quiet one.
    let r = app
        .history("metric=http_p95_ms&service=nobody&range=1h")
        .await;
    assert_eq!(r.status(), 404);
    // One that is known, over a range before it existed, is an empty series.
    let before = app
        .history("metric=http_p95_ms&service=watchpost&from=1000&to=2000")
        .await;
    assert_eq!(before.status(), 200);
    let s: HistorySeries = before.json().await.unwrap();
    assert!(s.points.is_empty());

    let r = app
        .client
        .post(format!("{}/api/get_history", app.base))
        .json(&serde_json::json!({
            "metrics": ["http_p99_ms", "http_p50_ms"],
            "range": "SixHours",
            "subject": "watchpost"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let series: Vec<HistorySeries> = r.json().await.unwrap();
    assert_eq!(
        series.iter().map(|s| s.metric).collect::<Vec<_>>(),
        [Metric::HttpP50Ms, Metric::HttpP99Ms]
    );
    assert!(series.iter().all(|s| s.subject == "watchpost"));
}
