//! The error log over HTTP: ingest (NDJSON and JSON), validation, size limit, live events and paging back.

use crate::helpers::{PATIENCE, TestApp, next_envelope, spawn_app};
use serde_json::{Value, json};
use shared::{Event, Level, LogEntry, LogPage};
use std::collections::HashSet;

impl TestApp {
    async fn ingest(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}/api/ingest/logs", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("ingest answers")
    }
}

fn line(level: &str, service: &str, message: &str) -> String {
    json!({ "level": level, "service": service, "message": message }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_lines_are_stored_streamed_live_and_read_back_newest_first() {
    let app = spawn_app().await;
    let mut events = app.events(None).await;
    let body = [
        line("error", "api", "first"),
        line("critical", "api", "<b>second</b>"),
        json!({"level": "warning", "service": "db", "message": "third", "timestamp": "2030-01-01T00:00:00Z",
               "fields": {"query": "SELECT 1", "ms": 1200}})
        .to_string(),
    ]
    .join("\n");
    let r = app.ingest("application/x-ndjson", body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["stored"], 3);

    let live = tokio::time::timeout(PATIENCE, async {
        loop {
            if let (
                _,
                shared::Envelope {
                    event: Event::Logs(entries),
                    ..
                },
            ) = next_envelope(&mut events).await
            {
                return entries;
            }
        }
    })
    .await
    .expect("a logs event");
    let messages: Vec<&str> = live.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages[0], "third",
        "newest (by timestamp) first: {messages:?}"
    );
    assert!(
        messages.contains(&"<b>second</b>"),
        "stored as text, unchanged"
    );

    let page: LogPage = app.log_page("limit=10").await.json().await.unwrap();
    assert_eq!(page.entries.len(), 3);
    assert_eq!(page.entries[0].fields["ms"], "1200");
    assert_eq!(page.entries[0].level, Level::Warn);
    assert_eq!(page.next, None);
    // A new client's snapshot carries the newest entries too.
    let mut fresh = app.events(None).await;
    let (_, env) = next_envelope(&mut fresh).await;
    let Event::Snapshot(snapshot) = env.event else {
        panic!("a snapshot first")
    };
    assert_eq!(snapshot.logs.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_lines_page_back_complete_with_no_gap_or_duplicate() {
    let app = spawn_app().await;
    // Many lines share a timestamp: the cursor must still never skip or repeat one.
    for batch in 0..2 {
        let body: Vec<Value> = (0..5000)
            .map(|i| {
                json!({"level": "error", "service": "bulk", "message": format!("line {}", batch * 5000 + i),
                       "timestamp": 1_800_000_000_000i64 + (i / 7)})
            })
            .collect();
        let r = app
            .ingest("application/json", serde_json::to_vec(&body).unwrap())
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let mut seen: Vec<LogEntry> = Vec::new();
    let mut query = "service=bulk&limit=500".to_string();
    loop {
        let page: LogPage = app.log_page(&query).await.json().await.unwrap();
        seen.extend(page.entries);
        match page.next {
            Some(next) => query = format!("service=bulk&limit=500&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10_000);
    let ids: HashSet<i64> = seen.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 10_000, "no duplicates");
    assert!(
        seen.windows(2).all(|w| w[0].cursor() > w[1].cursor()),
        "strictly newest first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_400_with_reasons_and_nothing_is_written() {
    let app = spawn_app().await;
    let body = [
        line("error", "api", "fine"),
        "{not json".to_string(),
        line("loud", "api", "bad level"),
        json!({"level": "info", "message": "no service"}).to_string(),
    ]
    .join("\n");
    let r = app.ingest("application/x-ndjson", body).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"],
        "3 of 4 entries are invalid; nothing was stored"
    );
    let lines: Vec<(u64, String)> = body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), [2, 3, 4]);
    assert!(lines[1].1.contains("unknown level 'loud'"), "{lines:?}");
    assert_eq!(lines[2].1, "service is required");
    let page: LogPage = app.log_page("").await.json().await.unwrap();
    assert!(
        page.entries.iter().all(|e| e.message != "fine"),
        "nothing half-written"
    );

    for (content_type, body) in [("application/json", "{"), ("application/x-ndjson", "")] {
        let r = app.ingest(content_type, body).await;
        assert_eq!(r.status(), 400, "{content_type} {body:?}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_413() {
    let app = spawn_app().await;
    let big = line("info", "api", &"x".repeat(1000)) + "\n";
    let r = app
        .ingest("application/x-ndjson", big.repeat(5 * 1024))
        .await;
    assert_eq!(r.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_filter_by_level_service_and_text_and_reject_bad_parameters() {
    let app = spawn_app().await;
    let body = [
        line("info", "api", "request served"),
        line("error", "api", "Upstream TIMEOUT"),
        line("critical", "db", "disk full"),
    ]
    .join("\n");
    assert_eq!(app.ingest("application/x-ndjson", body).await.status(), 200);
    let messages = |page: LogPage| {
        page.entries
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
    };
    let page = app.log_page("level=error").await.json().await.unwrap();
    assert_eq!(messages(page), ["disk full", "Upstream TIMEOUT"]);
    let page = app
        .log_page("service=api&q=timeout")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(messages(page), ["Upstream TIMEOUT"]);
    for (query, message) in [
        ("level=loud", "unknown level 'loud'"),
        ("before=yesterday", "is not a log cursor"),
        ("limit=0", "limit: a number from 1 to 500"),
    ] {
        let r = app.log_page(query).await;
        assert_eq!(r.status(), 400, "{query}");
        let error = r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(error.contains(message), "{query}: {error}");
    }
}

/// Polls the log until an entry of `service` with `message` is there.
async fn wait_for_line(app: &TestApp, service: &str, message: &str) -> LogEntry {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let page: LogPage = app
                .log_page(&format!("service={service}&limit=500"))
                .await
                .json()
                .await
                .unwrap();
            if let Some(e) = page.entries.into_iter().find(|e| e.message == message) {
                return e;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("'{message}' reached the log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_log_file_feeds_the_log_through_rotation_and_truncation() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    append("written before Watchpost started\n");
    let tailed = format!("app={}", path.display());
    let app =
        crate::helpers::spawn_app_with(|c| c.sources.tail_logs = vec![tailed.parse().unwrap()])
            .await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    append("2026-11-26 ERROR payment failed\n");
    let e = wait_for_line(&app, "app", "2026-11-26 ERROR payment failed").await;
    assert_eq!(e.level, Level::Error);
    // A line arrives in two writes: one entry, once complete.
    append("WARN half ");
    append("a line\n");
    wait_for_line(&app, "app", "WARN half a line").await;

    // Rename-and-create rotation: the rest of the old file, then the new one from its start.
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    append("first line of the new file\n");
    wait_for_line(&app, "app", "first line of the new file").await;

    // Copy-and-truncate rotation.
    std::fs::write(&path, "").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    append("after truncation\n");
    wait_for_line(&app, "app", "after truncation").await;

    let page: LogPage = app
        .log_page("service=app&limit=500")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        page.entries
            .iter()
            .all(|e| e.message != "written before Watchpost started"),
        "a file is followed from its end, like tail -F"
    );
    let messages: HashSet<&str> = page.entries.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), page.entries.len(), "no line twice");
}
