//! Expositions as the common tools write them, each read as a user would read the figure in the panel:
//! Kong's millisecond histograms, OpenTelemetry's label names, status codes only on Prometheus's own request
//! counter, node_exporter's exposition without request metrics, and a target over https with a private CA.
//! Also: history of a subject never seen is a 404.

use crate::helpers::{PATIENCE, TestApp};
use crate::scrape::{next_point_of, scraping, scraping_targets, serve_metrics};
use shared::{ApiPoint, LatencyUnit, LogPage};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serves `before`, waits for one point, then serves `after`: the first point with traffic, which is the
/// difference between the two.
async fn traffic(before: String, after: String) -> (TestApp, ApiPoint) {
    let body = Arc::new(Mutex::new(before));
    let app = scraping(serve_metrics(body.clone()).await).await;
    let mut events = app.events(None).await;
    next_point_of(&mut events, "shop").await;
    *body.lock().unwrap() = after;
    let point = loop {
        let p = next_point_of(&mut events, "shop").await;
        assert_eq!(p.error, None);
        if p.requests > 0 {
            break p;
        }
    };
    (app, point)
}

fn close(got: Option<f64>, want: f64) -> bool {
    got.is_some_and(|g| (g - want).abs() < 1e-6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_histogram_in_milliseconds_reads_as_milliseconds() {
    // Kong's style: 100 requests, all between 25 and 30 ms; the median is 27.5 ms, not 27,500.
    let kong = |n: u64| {
        format!(
            "# HELP kong_request_latency_ms Total latency incurred during requests.\n\
             # TYPE kong_request_latency_ms histogram\n\
             kong_request_latency_ms_bucket{{service=\"shop\",route=\"orders\",le=\"25\"}} 0\n\
             kong_request_latency_ms_bucket{{service=\"shop\",route=\"orders\",le=\"30\"}} {n}\n\
             kong_request_latency_ms_bucket{{service=\"shop\",route=\"orders\",le=\"+Inf\"}} {n}\n\
             kong_request_latency_ms_count{{service=\"shop\",route=\"orders\"}} {n}\n\
             kong_request_latency_ms_sum{{service=\"shop\",route=\"orders\"}} {}\n",
            n as f64 * 27.5
        )
    };
    let (_app, point) = traffic(kong(0), kong(100)).await;
    assert!(close(point.p50_ms, 27.5), "{:?}", point.p50_ms);
    assert_eq!(point.unit, Some(LatencyUnit::Milliseconds));
    assert!(close(Some(point.routes[0].p50_ms), 27.5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openmetrics_unit_line_names_the_unit() {
    // OpenMetrics, with `# UNIT`: a family in microseconds; 100 requests between 2,000 and 3,000 µs.
    let om = |n: u64| {
        format!(
            "# TYPE rpc_request_duration_microseconds histogram\n\
             # UNIT rpc_request_duration_microseconds microseconds\n\
             rpc_request_duration_microseconds_bucket{{route=\"/q\",le=\"2000.0\"}} 0\n\
             rpc_request_duration_microseconds_bucket{{route=\"/q\",le=\"3000.0\"}} {n}\n\
             rpc_request_duration_microseconds_bucket{{route=\"/q\",le=\"+Inf\"}} {n}\n\
             rpc_request_duration_microseconds_count{{route=\"/q\"}} {n}\n\
             rpc_request_duration_microseconds_sum{{route=\"/q\"}} {}\n\
             # EOF\n",
            n * 2500
        )
    };
    let (_app, point) = traffic(om(0), om(100)).await;
    assert_eq!(point.unit, Some(LatencyUnit::Microseconds));
    assert!(close(point.p50_ms, 2.5), "{:?}", point.p50_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_names_give_route_method_and_5xx() {
    let otel = |ok: u64, failed: u64| {
        let series = |code: u16, n: u64| {
            let labels = format!(
                "http_route=\"/cart/{{id}}\",http_request_method=\"POST\",http_response_status_code=\"{code}\""
            );
            format!(
                "http_server_request_duration_seconds_bucket{{{labels},le=\"0.05\"}} {n}\n\
                 http_server_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {n}\n\
                 http_server_request_duration_seconds_count{{{labels}}} {n}\n\
                 http_server_request_duration_seconds_sum{{{labels}}} 0.1\n"
            )
        };
        format!(
            "# TYPE http_server_request_duration_seconds histogram\n{}{}",
            series(200, ok),
            series(503, failed)
        )
    };
    let (_app, point) = traffic(otel(0, 0), otel(20, 5)).await;
    assert_eq!((point.requests, point.errors), (25, 5));
    let route = &point.routes[0];
    assert_eq!(
        (route.route.as_str(), route.method.as_str(), route.errors),
        ("/cart/{id}", "POST", 5)
    );
    assert_eq!(point.unit, Some(LatencyUnit::Seconds));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_on_the_request_counter_count_as_errors() {
    // Prometheus's own exposition: the histogram has no status label, the counter has `code`.
    let prom = |ok: u64, failed: u64| {
        format!(
            "# HELP prometheus_http_request_duration_seconds Histogram of latencies for HTTP requests.\n\
             # TYPE prometheus_http_request_duration_seconds histogram\n\
             prometheus_http_request_duration_seconds_bucket{{handler=\"/api/v1/query\",le=\"0.1\"}} {n}\n\
             prometheus_http_request_duration_seconds_bucket{{handler=\"/api/v1/query\",le=\"+Inf\"}} {n}\n\
             prometheus_http_request_duration_seconds_sum{{handler=\"/api/v1/query\"}} 0.3\n\
             prometheus_http_request_duration_seconds_count{{handler=\"/api/v1/query\"}} {n}\n\
             # HELP prometheus_http_requests_total Counter of HTTP requests.\n\
             # TYPE prometheus_http_requests_total counter\n\
             prometheus_http_requests_total{{code=\"200\",handler=\"/api/v1/query\"}} {ok}\n\
             prometheus_http_requests_total{{code=\"503\",handler=\"/api/v1/query\"}} {failed}\n",
            n = ok + failed
        )
    };
    let (_app, point) = traffic(prom(3, 0), prom(13, 5)).await;
    assert_eq!((point.requests, point.errors), (15, 5));
    assert_eq!(point.routes[0].errors, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_request_metrics_is_up_and_logs_no_error() {
    let node = "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.42\n\
                # TYPE node_cpu_seconds_total counter\nnode_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12345.6\n";
    let body = Arc::new(Mutex::new(node.to_owned()));
    let app = scraping(serve_metrics(body).await).await;
    let mut events = app.events(None).await;
    for _ in 0..3 {
        let p = next_point_of(&mut events, "shop").await;
        assert_eq!((p.no_request_metrics, p.error.as_deref()), (true, None));
    }
    let errors: LogPage = app
        .log_page("service=watchpost&level=error")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        errors.entries.iter().all(|e| !e.message.contains("shop")),
        "{:?}",
        errors.entries
    );
    // No rate of zero is stored for it, as if it had served nothing: it has no API series at all, once the
    // recorder has written Watchpost's own intervals of the same time.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 1000;
    tokio::time::timeout(PATIENCE, async {
        loop {
            let own: shared::HistorySeries = app
                .history("metric=http_requests_per_s&service=watchpost&range=1h")
                .await
                .json()
                .await
                .unwrap();
            if own.points.iter().any(|p| p.t_ms >= since) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the recorder writes the own service's rate");
    let rate = app
        .history("metric=http_requests_per_s&service=shop&range=1h")
        .await;
    assert_eq!(rate.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_of_a_subject_never_seen_is_a_404() {
    let app = crate::helpers::spawn_app().await;
    app.first_sample().await;
    let unknown = app
        .history("metric=http_p95_ms&service=nosuch&range=1h")
        .await;
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("nosuch"),
        "{body}"
    );
    let host = app.history("metric=cpu&host=nosuch&range=1h").await;
    assert_eq!(host.status(), 404);
    // This server's own host is known before anything is stored for it, and an unknown metric stays a 400.
    assert_eq!(app.history("metric=cpu&range=1h").await.status(), 200);
    assert_eq!(
        app.history("metric=nosuch&service=x&range=1h")
            .await
            .status(),
        400
    );
}

/// A test CA, and a certificate for `localhost` it signed, served by rustls.
pub(crate) struct TestCa {
    pub ca_pem: String,
    pub url: String,
}

/// Serves `body` to any request over https, with a certificate a fresh test CA signed.
pub(crate) async fn serve_https(body: String) -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(body)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TestCa {
        ca_pem: ca.pem(),
        url: format!("https://localhost:{port}/metrics"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_target_is_read_with_its_ca_and_refused_without_it() {
    let body = crate::scrape::exposition(1, 2, 3, 4);
    let tls = serve_https(body).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &tls.ca_pem).unwrap();
    let cas = [format!("trusted={}", ca_file.display()).parse().unwrap()];
    let app = scraping_targets(
        &[
            format!("trusted={}", tls.url),
            format!("unknown={}", tls.url),
        ],
        server::testing::TargetOptions {
            cas: &cas,
            ..Default::default()
        },
    )
    .await;
    let mut events = app.events(None).await;
    let trusted = next_point_of(&mut events, "trusted").await;
    assert_eq!(trusted.error, None, "the CA file verifies the certificate");
    assert_eq!(trusted.unit, Some(LatencyUnit::Seconds));
    let refused = next_point_of(&mut events, "unknown").await;
    let reason = refused.error.unwrap_or_default();
    assert!(
        reason.contains("TLS") && reason.contains("ssuer"),
        "an unknown issuer is refused, and says so: {reason}"
    );
    tokio::time::timeout(PATIENCE, async {
        loop {
            let page: LogPage = app
                .log_page("service=watchpost&level=error")
                .await
                .json()
                .await
                .unwrap();
            if page
                .entries
                .iter()
                .any(|e| e.message.contains("scrape target unknown"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the refused target is logged");
}
