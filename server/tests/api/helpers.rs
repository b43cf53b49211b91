//! Spawning a test application and reading its event stream.

use eventsource_stream::{Event as SseEvent, Eventsource};
use futures::{Stream, StreamExt};
use server::Application;
use server::Config;
use server::DATABASE_FILE;
use shared::{Envelope, HealthzReport, HistorySeries, Role};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use store::{Accounts, OpenOptions, SqliteStore, StoreError};
use tokio_util::sync::CancellationToken;

/// Long enough for anything that should happen, so a hang fails instead of blocking the suite.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The admin account every test app has; `TestApp::client` is signed in as it.
pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    /// Signed in as [`ADMIN`].
    pub client: reqwest::Client,
    /// Signed in as nobody.
    pub anon: reqwest::Client,
    data_dir: std::path::PathBuf,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The data directory, removed with the app unless the test brought its own.
    _data: Option<tempfile::TempDir>,
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
    let mut app = spawn_app_in(data.path(), configure).await;
    app._data = Some(data);
    app
}

/// An app on a data directory the test owns, so a second app can be started on the same one.
pub async fn spawn_app_in(data_dir: &Path, configure: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.sampling.interval = Duration::from_millis(100);
    config.server.data_dir = data_dir.to_owned();
    configure(&mut config);
    add_user(data_dir, ADMIN, Role::Admin, PASSWORD).await;
    let app = Application::build(config)
        .await
        .expect("the application starts");
    let base = format!("http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    let task = tokio::spawn(app.run());
    let client = sign_in(&base, ADMIN, PASSWORD).await;
    TestApp {
        base,
        client,
        anon: http_client(),
        data_dir: data_dir.to_owned(),
        shutdown,
        task: Some(task),
        _data: None,
    }
}

/// An HTTP client with a cookie jar. A timeout on every request turns a hang into a failure with a name.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

/// Adds a user to the store under `data_dir` (before the server starts, or beside a running one), unless
/// one of that name exists.
pub async fn add_user(data_dir: &Path, name: &str, role: Role, password: &str) {
    let store = SqliteStore::open(&data_dir.join(DATABASE_FILE), &OpenOptions::default())
        .await
        .expect("the store opens");
    let hash = server::testing::hash_password(password.to_owned())
        .await
        .expect("the password hashes");
    match store.add_user(name, role, &hash, 0).await {
        Ok(_) | Err(StoreError::Exists(_)) => {}
        Err(e) => panic!("cannot add {name}: {e}"),
    }
}

/// A new API token with `role`, added to the store under `data_dir`; its secret.
pub async fn add_token(data_dir: &Path, name: &str, role: Role) -> String {
    let store = SqliteStore::open(&data_dir.join(DATABASE_FILE), &OpenOptions::default())
        .await
        .expect("the store opens");
    let secret = server::testing::new_token().expect("a token");
    store
        .add_token(name, role, &server::testing::digest(&secret), 0)
        .await
        .expect("the token is stored");
    secret
}

/// `GET url` as `client`, its JSON body; fails the test on anything but a 2xx.
pub async fn get_json<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &str) -> T {
    let r = client.get(url).send().await.expect("the server answers");
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.expect("a JSON body of the expected shape")
}

/// `GET url` as `client`, its body as text, whatever the status.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let r = client.get(url).send().await.expect("the server answers");
    r.text().await.expect("a text body")
}

/// A client signed in as `name`.
pub async fn sign_in(base: &str, name: &str, password: &str) -> reqwest::Client {
    let client = http_client();
    let r = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({ "name": name, "password": password }))
        .send()
        .await
        .expect("the sign-in answers");
    assert_eq!(r.status(), 200, "{name} signs in");
    client
}

/// Starts the real binary on a free port with `data_dir`; returns the child and its address once it listens.
pub fn start_binary(data_dir: &Path, args: &[&str]) -> (Child, String) {
    let (child, addr, _) = start_binary_with_log(data_dir, args);
    (child, addr)
}

/// As [`start_binary`], also returning the lines the server logged before it listened.
pub fn start_binary_with_log(data_dir: &Path, args: &[&str]) -> (Child, String, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("WATCHPOST_DATA_DIR", data_dir)
        .env_remove("WATCHPOST_CONFIG")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut early = Vec::new();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            let addr = l.split("listening on http://").nth(1).map(str::to_owned);
            early.push(l);
            addr
        })
        .expect("the server logs its address");
    std::thread::spawn(move || for _ in lines {}); // keep draining the log
    (child, addr, early)
}

pub type Events = Pin<Box<dyn Stream<Item = SseEvent> + Send>>;

impl TestApp {
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Shuts the app down and waits until it has stopped (its last history batch written).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("the app stops in time")
                .expect("the app task ends normally");
        }
    }

    /// `GET /api/history?{query}`.
    pub async fn history(&self, query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/api/history?{query}", self.base))
            .send()
            .await
            .expect("the history route answers")
    }

    /// `GET /api/logs?{query}`.
    pub async fn log_page(&self, query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/api/logs?{query}", self.base))
            .send()
            .await
            .expect("the log answers")
    }

    /// Waits until the one-hour CPU history holds at least `n` points; returns them.
    pub async fn stored_points(&self, n: usize) -> HistorySeries {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let series: HistorySeries = self
                    .history("metric=cpu&range=1h")
                    .await
                    .json()
                    .await
                    .expect("history is JSON");
                if series.points.len() >= n {
                    return series;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("points are stored within the patience period")
    }

    pub async fn healthz_response(&self) -> reqwest::Response {
        self.client
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .expect("healthz answers")
    }

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
        events_of_response(self.open_stream(last_event_id).await)
    }
}

/// The event stream as `client` reads it, resuming after `last_event_id` when given.
pub async fn stream_of(client: &reqwest::Client, base: &str, last_event_id: Option<u64>) -> Events {
    let mut request = client
        .get(format!("{base}/api/events"))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    events_of_response(response)
}

/// A stream response's events, each failing the test if malformed.
fn events_of_response(response: reqwest::Response) -> Events {
    Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|e| e.expect("well-formed SSE")),
    )
}

/// The next event, failing the test rather than hanging.
pub async fn next_event(events: &mut Events) -> SseEvent {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event in time")
        .expect("the stream stays open")
}

/// The next event that carries state (keepalive pings and the instance's bus notices skipped), decoded.
pub async fn next_envelope(events: &mut Events) -> (SseEvent, Envelope) {
    loop {
        let event = next_event(events).await;
        if event.event == "ping" || event.event == "bus" {
            continue;
        }
        let envelope: Envelope = serde_json::from_str(&event.data).expect("data is an Envelope");
        return (event, envelope);
    }
}
