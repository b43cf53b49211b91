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

    async fn log_page(&self, query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/api/logs?{query}", self.base))
            .send()
            .await
            .expect("the log answers")
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
