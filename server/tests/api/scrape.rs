//! Scrape targets: a Prometheus endpoint the test serves is read, its histogram turned into the right
//! quantiles; a target that is down shows as down and is written to the error log.

use crate::helpers::{PATIENCE, TestApp, next_envelope, spawn_app_with};
use axum::Router;
use axum::routing::get;
use server::testing::{ScrapeTarget, TargetOptions, attach_to_targets};
use shared::{ApiPoint, Event, LogPage};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) fn exposition(le_100ms: u64, le_200ms: u64, le_500ms: u64, total: u64) -> String {
    let line = |le: &str, n: u64| {
        format!(
            "shop_http_request_duration_seconds_bucket{{handler=\"/checkout\",method=\"POST\",le=\"{le}\"}} {n}\n"
        )
    };
    format!(
        "# HELP shop_http_request_duration_seconds Request latency.\n\
         # TYPE shop_http_request_duration_seconds histogram\n{}{}{}{}\
         shop_http_request_duration_seconds_sum{{handler=\"/checkout\",method=\"POST\"}} 12.5\n\
         shop_http_request_duration_seconds_count{{handler=\"/checkout\",method=\"POST\"}} {total}\n\
         # TYPE shop_up gauge\nshop_up 1\n",
        line("0.1", le_100ms),
        line("0.2", le_200ms),
        line("0.5", le_500ms),
        line("+Inf", total)
    )
}

/// Serves `/metrics` with whatever `body` holds; returns its address.
pub(crate) async fn serve_metrics(body: Arc<Mutex<String>>) -> String {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let body = body.clone();
            async move { body.lock().map(|b| b.clone()).unwrap_or_default() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/metrics")
}

pub(crate) async fn next_point_of(events: &mut crate::helpers::Events, service: &str) -> ApiPoint {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let (
                _,
                shared::Envelope {
                    event: Event::Api(p),
                    ..
                },
            ) = next_envelope(events).await
                && p.service == service
            {
                return p;
            }
        }
    })
    .await
    .expect("a point of the service")
}

/// An app scraping `url` as `shop` every 300 ms.
pub(crate) async fn scraping(url: String) -> TestApp {
    scraping_targets(&[format!("shop={url}")], TargetOptions::default()).await
}

/// An app scraping `targets` (`SERVICE=URL`) every 300 ms, with the per-target files `options` names.
pub(crate) async fn scraping_targets(targets: &[String], options: TargetOptions<'_>) -> TestApp {
    let mut targets: Vec<ScrapeTarget> = targets.iter().map(|t| t.parse().unwrap()).collect();
    attach_to_targets(&mut targets, options).unwrap();
    spawn_app_with(move |c| {
        c.sampling.api_interval = Duration::from_millis(300);
        c.sources.scrape = targets;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_prometheus_endpoint_is_scraped_and_its_quantiles_are_right() {
    let body = Arc::new(Mutex::new(exposition(0, 0, 0, 0)));
    let app = scraping(serve_metrics(body.clone()).await).await;
    let mut events = app.events(None).await;
    // One interval without traffic: a point with no requests.
    let idle = next_point_of(&mut events, "shop").await;
    assert_eq!(
        (idle.requests, idle.p50_ms, idle.error.as_deref()),
        (0, None, None)
    );

    // 100 requests: 50 under 100 ms, 40 more under 200 ms, 10 more under 500 ms.
    *body.lock().unwrap() = exposition(50, 90, 100, 100);
    let point = loop {
        let p = next_point_of(&mut events, "shop").await;
        if p.requests > 0 {
            break p;
        }
    };
    assert_eq!(point.requests, 100);
    let close = |got: Option<f64>, want: f64| (got.unwrap() - want).abs() < 1e-6;
    assert!(close(point.p50_ms, 100.0), "{:?}", point.p50_ms);
    assert!(close(point.p95_ms, 350.0), "{:?}", point.p95_ms);
    assert!(close(point.p99_ms, 470.0), "{:?}", point.p99_ms);
    let route = &point.routes[0];
    assert_eq!(
        (route.route.as_str(), route.method.as_str()),
        ("/checkout", "POST")
    );
    assert!(point.rate_per_s > 0.0);

    // The scraped figures are kept like the own ones: the p95 of that interval is in the history.
    tokio::time::timeout(crate::helpers::PATIENCE, async {
        loop {
            let s: shared::HistorySeries = app
                .history("metric=http_p95_ms&service=shop&range=1h")
                .await
                .json()
                .await
                .unwrap();
            if s.points.iter().any(|p| (p.max - 350.0).abs() < 1e-6) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the scraped p95 is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_down_shows_as_down_and_writes_an_error_log_entry() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metrics", closed.local_addr().unwrap());
    drop(closed);
    let app = scraping(url.clone()).await;
    let mut events = app.events(None).await;
    let point = next_point_of(&mut events, "shop").await;
    let error = point.error.expect("the point says why");
    assert!(
        error.contains("refused") || error.contains("unreachable"),
        "{error}"
    );

    let entry = tokio::time::timeout(PATIENCE, async {
        loop {
            let page: LogPage = app
                .log_page("service=watchpost&level=error")
                .await
                .json()
                .await
                .unwrap();
            if let Some(e) = page
                .entries
                .into_iter()
                .find(|e| e.message.contains("scrape target shop"))
            {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("an error-log entry");
    assert!(
        entry.message.contains(&url) && entry.message.contains("is down"),
        "{}",
        entry.message
    );
    // Once, not every interval.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let page: LogPage = app
        .log_page("service=watchpost&q=scrape%20target%20shop")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_watchpost_scrapes_another_with_a_token_and_without_one_is_refused() {
    let scraped = crate::helpers::spawn_app().await;
    let token =
        crate::helpers::add_token(scraped.data_dir(), "scraper", shared::Role::Viewer).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("scraper.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let url = format!("{}/metrics", scraped.base);
    let tokens = [format!("peer={}", token_file.display()).parse().unwrap()];
    let app = scraping_targets(
        &[format!("peer={url}"), format!("tokenless={url}")],
        TargetOptions {
            tokens: &tokens,
            ..Default::default()
        },
    )
    .await;
    let mut events = app.events(None).await;

    // The peer's own scrapes of its `/metrics` are requests it times, so two scrapes apart there is traffic.
    let point = loop {
        let p = next_point_of(&mut events, "peer").await;
        assert_eq!(p.error, None, "the token opens the peer's /metrics");
        if p.requests > 0 {
            break p;
        }
    };
    assert!(
        point.routes.iter().any(|r| r.route == "/metrics"),
        "{:?}",
        point.routes
    );
    let refused = next_point_of(&mut events, "tokenless").await;
    assert_eq!(refused.error.as_deref(), Some("answered 401 Unauthorized"));
}

/// A target that answers with a redirect is not followed (its token would go along to wherever it points),
/// and one that answers without end is cut off at the limit, not read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_and_an_endless_answer_is_cut_off() {
    use axum::response::Redirect;
    let followed = Arc::new(Mutex::new(0u32));
    let counted = followed.clone();
    let app = Router::new()
        .route(
            "/moved",
            get(|| async { Redirect::temporary("/elsewhere") }),
        )
        .route(
            "/elsewhere",
            get(move || {
                let counted = counted.clone();
                async move {
                    *counted.lock().unwrap() += 1;
                    exposition(0, 0, 0, 0)
                }
            }),
        )
        .route(
            "/endless",
            get(|| async {
                // 1 MiB chunks, forever.
                let chunk = bytes::Bytes::from(vec![b'#'; 1 << 20]);
                let chunks =
                    futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
                axum::body::Body::from_stream(chunks)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let moved = scraping(format!("http://{addr}/moved")).await;
    let mut events = moved.events(None).await;
    let error = next_point_of(&mut events, "shop")
        .await
        .error
        .unwrap_or_default();
    assert!(error.contains("redirects are not followed"), "{error}");
    assert_eq!(*followed.lock().unwrap(), 0);
    drop(moved);

    let endless = scraping(format!("http://{addr}/endless")).await;
    let mut events = endless.events(None).await;
    let error = next_point_of(&mut events, "shop")
        .await
        .error
        .unwrap_or_default();
    assert!(error.contains("over 8 MiB"), "{error}");
}
