//! Spawning a test application and reading its event stream.

use eventsource_stream::{Event as SseEvent, Eventsource};
use futures::{Stream, StreamExt};
use server::config::Config;
use server::startup::Application;
use shared::{Envelope, HealthzReport};
use std::pin::Pin;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Long enough for anything that should happen, so a hang fails instead of blocking the suite.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    _data: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A fast collector (100 ms) so stream tests see many events quickly.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        interval: Duration::from_millis(100),
        data_dir: data.path().to_owned(),
        ..Config::default()
    };
    configure(&mut config);
    let app = Application::build(config)
        .await
        .expect("the application starts");
    let base = format!("http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run());
    // A timeout on every request turns a hang into a failure with a name.
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("HTTP client");
    TestApp {
        base,
        client,
        shutdown,
        _data: data,
    }
}

pub type Events = Pin<Box<dyn Stream<Item = SseEvent> + Send>>;

impl TestApp {
    pub async fn healthz(&self) -> HealthzReport {
        self.client
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .expect("healthz answers")
            .json()
            .await
            .expect("healthz is JSON")
    }

    /// Waits until the collector has published its first reading.
    pub async fn first_sample(&self) -> HealthzReport {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let report = self.healthz().await;
                if report.last_sample_ms.is_some() {
                    return report;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("a first sample within the patience period")
    }

    pub async fn open_stream(&self, last_event_id: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .get(format!("{}/api/events", self.base))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("the stream answers");
        assert_eq!(response.status(), 200);
        response
    }

    /// The stream's raw text from its first byte until `marker` appears: for what an SSE client library
    /// would hide (`retry:`, which fields a frame has).
    pub async fn raw_stream_until(&self, marker: &str) -> String {
        let mut response = self.open_stream(None).await;
        let mut text = String::new();
        while !text.contains(marker) {
            let chunk = tokio::time::timeout(PATIENCE, response.chunk())
                .await
                .expect("a chunk in time")
                .expect("the stream stays readable")
                .expect("the stream stays open");
            text.push_str(std::str::from_utf8(&chunk).expect("SSE is UTF-8"));
        }
        text
    }

    pub async fn events(&self, last_event_id: Option<&str>) -> Events {
        let response = self.open_stream(last_event_id).await;
        Box::pin(
            response
                .bytes_stream()
                .eventsource()
                .map(|e| e.expect("well-formed SSE")),
        )
    }
}

/// The next event, failing the test rather than hanging.
pub async fn next_event(events: &mut Events) -> SseEvent {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event in time")
        .expect("the stream stays open")
}

/// The next event that carries state (keepalive pings skipped), decoded.
pub async fn next_envelope(events: &mut Events) -> (SseEvent, Envelope) {
    loop {
        let event = next_event(events).await;
        if event.event == "ping" {
            continue;
        }
        let envelope: Envelope = serde_json::from_str(&event.data).expect("data is an Envelope");
        return (event, envelope);
    }
}
