//! `--demo`: the sample workload is measured by the real sources.

use crate::helpers::{ADMIN, PASSWORD, add_user, sign_in, start_binary};
use shared::LogPage;
use shared::Role;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_workload_shows_in_the_api_figures_and_the_error_log() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), ADMIN, Role::Admin, PASSWORD).await;
    let (mut child, addr) = start_binary(data.path(), &["--demo", "--api-interval", "300ms"]);
    let client = sign_in(&format!("http://{addr}"), ADMIN, PASSWORD).await;
    let outcome = tokio::time::timeout(Duration::from_secs(40), async {
        let mut served = false;
        let mut logged = false;
        while !(served && logged) {
            let metrics = client
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            served = metrics.contains(r#"route="/demo/checkout""#)
                && metrics.contains(r#"route="/demo/orders""#);
            let page: LogPage = client
                .get(format!(
                    "http://{addr}/api/logs?service=watchpost&q=for%20order"
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            // Captured from the demo handlers' own tracing events, like any WARN/ERROR of Watchpost.
            logged = page
                .entries
                .iter()
                .any(|e| e.fields.get("target").is_some_and(|t| t == "demo"));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    outcome.expect("demo traffic measured and its errors logged");
}
