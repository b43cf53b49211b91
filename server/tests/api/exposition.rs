//! Watchpost's own `/metrics`: the format each scraper asks for, HELP and TYPE that `promtool check metrics`
//! accepts, and what Watchpost watches (hosts, scrape targets, databases, streams, store) under `watchpost_*`
//! names with the figures the dashboard shows.

use crate::helpers::{Events, PATIENCE, TestApp, next_envelope, spawn_app_with};
use crate::scrape::{exposition, serve_metrics};
use shared::{Event, HostHealth};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// What Prometheus 2.42 sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// An app scraping one target that is up (`shop`) and one that is down (`gone`) and reading this machine's
/// PostgreSQL (`local`, with a connection of the test's own to database `test`), once each has been read;
/// the newest host reading; a stream that stays open (counted in `watchpost_stream_clients`); and the
/// connection.
async fn watching_everything() -> (TestApp, HostHealth, (Events, PgConnection)) {
    let connection = PgConnection::connect(POSTGRES).await.unwrap();
    let shop = serve_metrics(Arc::new(Mutex::new(exposition(1, 2, 3, 4)))).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}/metrics", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(move |c| {
        c.sampling.api_interval = Duration::from_millis(300);
        c.sources.scrape = vec![
            format!("shop={shop}").parse().unwrap(),
            format!("gone={gone}").parse().unwrap(),
        ];
        c.sources.postgres = vec![format!("local={POSTGRES}").parse().unwrap()];
    })
    .await;
    let mut events = app.events(None).await;
    let (mut host, mut shop_up, mut gone_down, mut db) = (None, false, false, false);
    tokio::time::timeout(PATIENCE, async {
        while host.is_none() || !shop_up || !gone_down || !db {
            match next_envelope(&mut events).await.1.event {
                Event::Health(h) => host = Some(h),
                Event::Api(p) if p.service == "shop" => shop_up |= p.scrape_ms.is_some(),
                Event::Api(p) if p.service == "gone" => gone_down |= p.error.is_some(),
                Event::Db(r) if r.target == "local" => {
                    db |= r.connections.iter().any(|c| c.database == "test")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("every source is read");
    (app, host.expect("a host reading"), (events, connection))
}

/// `/metrics` as a scraper sending `accept` gets it: its content type and text.
async fn metrics_as(app: &TestApp, accept: Option<&str>) -> (String, String) {
    let mut request = app.client.get(format!("{}/metrics", app.base));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

/// The value of the sample line that starts with `series ` (name and labels exactly as written).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_watchpost_watches_is_exported_in_the_format_the_scraper_asks_for() {
    let (app, host, _stream) = watching_everything().await;
    let (content_type, text) = metrics_as(&app, None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains("# HELP watchpost_http_requests_total ")
            && text.contains("# TYPE watchpost_http_requests_total counter"),
        "the classic format names a counter's family with its _total:\n{text}"
    );

    let h = format!("{{host=\"{}\"}}", host.host);
    assert_eq!(
        value(&text, &format!("watchpost_host_memory_size_bytes{h}")),
        host.memory.total as f64
    );
    let cpu = value(&text, &format!("watchpost_host_cpu_usage_ratio{h}"));
    assert!((0.0..=1.0).contains(&cpu), "{cpu}");
    assert!(
        text.contains("watchpost_host_filesystem_size_bytes{"),
        "{text}"
    );
    assert_eq!(value(&text, r#"watchpost_scrape_up{service="shop"}"#), 1.0);
    assert_eq!(value(&text, r#"watchpost_scrape_up{service="gone"}"#), 0.0);
    let took = value(
        &text,
        r#"watchpost_scrape_duration_seconds{service="shop"}"#,
    );
    assert!(took > 0.0 && took < 10.0, "{took}");
    assert_eq!(
        value(&text, r#"watchpost_scrape_request_metrics{service="shop"}"#),
        1.0
    );
    assert!(
        !text.contains(r#"watchpost_scrape_up{service="watchpost"}"#),
        "Watchpost's own figures are not a scrape target:\n{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"watchpost_database_up{target="local",kind="postgres"}"#
        ),
        1.0
    );
    assert!(
        text.contains(r#"watchpost_database_connections{target="local",database="test",state="#),
        "{text}"
    );
    let hit = value(
        &text,
        r#"watchpost_database_cache_hit_ratio{target="local",kind="postgres"}"#,
    );
    assert!((0.0..=1.0).contains(&hit), "{hit}");
    assert!(value(&text, "watchpost_stream_clients") >= 1.0);
    assert_eq!(value(&text, "watchpost_store_up"), 1.0);

    // What Prometheus asks for, it gets: OpenMetrics, with its own family names and the end marker.
    let (content_type, open) = metrics_as(&app, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert_eq!(open.matches("# EOF").count(), 1, "{open}");
    assert!(
        open.contains("# TYPE watchpost_http_requests counter"),
        "{open}"
    );
    assert_eq!(value(&open, r#"watchpost_scrape_up{service="shop"}"#), 1.0);
}

/// Prometheus's own checker reads the classic exposition without a complaint: every family has HELP and
/// TYPE, and the names follow its conventions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_classic_exposition() {
    let (app, _, _stream) = watching_everything().await;
    let (_, text) = metrics_as(&app, Some("text/plain;version=0.0.4")).await;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/setup.sh --browser installs Debian's prometheus package for it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}
