//! The server-rendered dashboard and `/healthz`.

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_version_clients_last_sample_and_rss() {
    let app = spawn_app().await;
    let _stream = app.open_stream(None).await;
    let report = app.first_sample().await;
    assert_eq!(report.status, "ok");
    assert_eq!(report.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(report.stream_clients, 1);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let sampled = report.last_sample_ms.unwrap();
    assert!(
        sampled <= now_ms && sampled > now_ms - 60_000,
        "the last sample is recent"
    );
    assert!(report.rss_bytes.unwrap() > 1 << 20, "RSS is a real reading");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_html_carries_current_values_before_any_script_runs() {
    let app = spawn_app().await;
    app.first_sample().await;
    let response = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("Server health"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(html.contains(hostname.trim()), "the host name is rendered");
    // The CPU gauge's figure is in the HTML: a number and a percent sign.
    let at = html
        .find("data-testid=\"gauge-cpu-value\"")
        .expect("the CPU value is rendered");
    let figure: String = html[at..]
        .chars()
        .skip_while(|&c| c != '>')
        .skip(1)
        .take_while(|&c| c != '<')
        .collect();
    assert!(
        figure.ends_with('%') && figure.trim_end_matches('%').parse::<f64>().is_ok(),
        "{figure:?}"
    );
    for panel in [
        "Error log",
        "API performance",
        "Database",
        "Security alerts",
        "Deployments",
        "Controls",
    ] {
        assert!(html.contains(panel), "{panel} has a slot");
    }
    // A fresh install has neither: each says so, and how to get one.
    assert!(html.contains("No deployments yet."));
    assert!(html.contains("No commands are configured."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_page_is_a_404() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/no-such-page", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
