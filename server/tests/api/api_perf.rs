//! API performance of Watchpost's own HTTP server: requests the test makes show up in the figures and in
//! `/metrics`.

use crate::helpers::{PATIENCE, TestApp, next_envelope, spawn_app_with};
use shared::{Event, RouteStats};
use std::time::Duration;

/// The app's `/metrics` text, read as its admin.
async fn metrics(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_test_makes_appear_in_the_api_figures_by_route_template() {
    let app = spawn_app_with(|c| c.sampling.api_interval = Duration::from_millis(300)).await;
    let mut events = app.events(None).await;
    for _ in 0..20 {
        assert_eq!(app.healthz_response().await.status(), 200);
    }
    for _ in 0..5 {
        // Two different raw paths, one route template; and one 400.
        assert_eq!(app.history("metric=cpu&range=1h").await.status(), 200);
        assert_eq!(app.history("metric=nope&range=1h").await.status(), 400);
    }
    // Add up the route's requests over the intervals until all of them are counted.
    let mut healthz = 0;
    let mut history = 0;
    let mut seen: Vec<RouteStats> = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while healthz < 20 || history < 10 {
            if let (
                _,
                shared::Envelope {
                    event: Event::Api(point),
                    ..
                },
            ) = next_envelope(&mut events).await
            {
                assert_eq!(point.service, "watchpost");
                assert!(
                    point.routes.iter().all(|r| r.route != "/api/events"),
                    "streams are not timed"
                );
                for r in point.routes {
                    match r.route.as_str() {
                        "/healthz" => healthz += r.requests,
                        "/api/history" => history += r.requests,
                        _ => {}
                    }
                    seen.push(r);
                }
            }
        }
    })
    .await
    .expect("the requests are counted");
    assert_eq!((healthz, history), (20, 10), "each request counted once");
    let r = seen.iter().find(|r| r.route == "/healthz").unwrap();
    assert_eq!(r.method, "GET");
    assert!(
        r.p50_ms > 0.0 && r.p50_ms <= r.p95_ms && r.p95_ms <= r.p99_ms,
        "{r:?}"
    );
    assert_eq!(r.errors, 0);

    let text = metrics(&app).await;
    assert!(
        text.contains(
            r#"watchpost_http_requests_total{method="GET",route="/healthz",status="2xx"} 20"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"watchpost_http_requests_total{method="GET",route="/api/history",status="4xx"} 5"#
        ),
        "{text}"
    );
    assert!(
        text.contains("watchpost_http_request_duration_seconds_bucket{"),
        "{text}"
    );
}

/// A client may send any token as a method, before signing in: each must not become a series of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_do_not_become_series() {
    let app = spawn_app_with(|_| {}).await;
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("XM{i}").as_bytes()).unwrap();
        let response = app
            .anon
            .request(method, format!("{}/nowhere/{i}", app.base))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let text = metrics(&app).await;
    assert!(
        !text.contains("XM1"),
        "a made-up method became a label:\n{text}"
    );
    assert!(
        !text.contains("/nowhere"),
        "a raw path became a label:\n{text}"
    );
    assert!(
        text.contains(r#"method="OTHER",route="(other)",status="4xx"} 300"#),
        "{text}"
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("watchpost_http_requests_total{"))
        .count();
    assert!(series < 20, "{series} series:\n{text}");
}
