//! The fleet end to end: a real hub (the server, in this process, on a port of its own) and real
//! `watchpost-agent` processes pushing to it over HTTP.

use eventsource_stream::Eventsource;
use futures::StreamExt;
use server::{Application, Config, DATABASE_FILE};
use shared::{Envelope, Event, HistorySeries, Role};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{Accounts, OpenOptions, SqliteStore, StoreError};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(30);
const ADMIN: &str = "admin";
const PASSWORD: &str = "correct horse battery";

struct Hub {
    base: String,
    addr: SocketAddr,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Hub {
    /// Starts a hub on `data_dir`, at `addr` (port 0 for any).
    async fn start(data_dir: &Path, addr: SocketAddr) -> Hub {
        let mut config = Config::default();
        config.server.listen = addr;
        config.server.data_dir = data_dir.to_owned();
        config.server.environment = "hub-env".into();
        let store = open(data_dir).await;
        let hash = server::testing::hash_password(PASSWORD.to_owned())
            .await
            .unwrap();
        match store.add_user(ADMIN, Role::Admin, &hash, 0).await {
            Ok(_) | Err(StoreError::Exists(_)) => {}
            Err(e) => panic!("{e}"),
        }
        let app = Application::build(config).await.expect("the hub starts");
        let addr = app.local_addr();
        let base = format!("http://{addr}");
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run());
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(PATIENCE)
            .build()
            .unwrap();
        let r = client
            .post(format!("{base}/api/login"))
            .json(&serde_json::json!({ "name": ADMIN, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        Hub {
            base,
            addr,
            client,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the hub stops in time")
            .expect("the hub's task ends normally");
    }

    /// The admin's stream: envelopes as they come.
    async fn stream(&self) -> std::pin::Pin<Box<dyn futures::Stream<Item = Envelope> + Send>> {
        let r = self
            .client
            .get(format!("{}/api/events", self.base))
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        Box::pin(r.bytes_stream().eventsource().filter_map(|e| async move {
            let e = e.ok()?;
            serde_json::from_str::<Envelope>(&e.data).ok()
        }))
    }

    /// The host's CPU history; no points while nothing of the host is recorded yet (404).
    async fn cpu_history(&self, host: &str, from_ms: i64, to_ms: i64) -> HistorySeries {
        let r = self
            .client
            .get(format!(
                "{}/api/history?metric=cpu&host={host}&from={from_ms}&to={to_ms}",
                self.base
            ))
            .send()
            .await
            .unwrap();
        if r.status() == 404 {
            return HistorySeries {
                metric: shared::Metric::Cpu,
                subject: host.into(),
                tier: shared::Tier::Second,
                step_ms: 1000,
                from_ms,
                to_ms,
                points: Vec::new(),
            };
        }
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        r.json().await.unwrap()
    }
}

async fn open(data_dir: &Path) -> SqliteStore {
    SqliteStore::open(&data_dir.join(DATABASE_FILE), &OpenOptions::default())
        .await
        .expect("the store opens")
}

/// Enrols `name` in `environment` and writes its token to a file; the file's path.
async fn enrol(data_dir: &Path, name: &str, environment: &str) -> PathBuf {
    let store = open(data_dir).await;
    let (_, secret) = server::testing::enrol_agent(&store, name, environment)
        .await
        .expect("the host is enrolled");
    let path = data_dir.join(format!("{name}.token"));
    std::fs::write(&path, secret).unwrap();
    path
}

/// A running agent and the lines it logged.
struct Agent {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(
        hub: &str,
        token: &Path,
        name: &str,
        environment: &str,
        spool: &Path,
        extra: &[&str],
    ) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_watchpost-agent"))
            .args([
                "--hub",
                hub,
                "--name",
                name,
                "--environment",
                environment,
                "--interval",
                "1s",
            ])
            .arg("--token-file")
            .arg(token)
            .arg("--spool-dir")
            .arg(spool)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the agent starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Agent { child, log }
    }

    fn lines_with(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < PATIENCE, "waited too long for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_from_each_agent_reach_the_stream_in_their_environment_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let web_token = enrol(dir.path(), "web-1", "prod").await;
    let db_token = enrol(dir.path(), "db-1", "staging").await;
    let hub = Hub::start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let mut stream = hub.stream().await;
    let t0 = now_ms() - 1000;
    let _web = Agent::start(
        &hub.base,
        &web_token,
        "web-1",
        "prod",
        &dir.path().join("s1"),
        &[],
    );
    let _db = Agent::start(
        &hub.base,
        &db_token,
        "db-1",
        "staging",
        &dir.path().join("s2"),
        &[],
    );

    let mut seen = std::collections::BTreeMap::new();
    tokio::time::timeout(PATIENCE, async {
        while seen.len() < 2 {
            let env = stream.next().await.expect("the stream goes on");
            if let Event::Health(h) = &env.event
                && h.host.0 != hub_host()
            {
                assert_eq!(env.scope.host.as_ref(), Some(&h.host));
                seen.insert(
                    h.host.0.clone(),
                    (env.scope.environment.clone(), h.cores.len()),
                );
            }
        }
    })
    .await
    .expect("both agents' readings reach the stream");
    assert_eq!(seen["web-1"].0, "prod");
    assert_eq!(seen["db-1"].0, "staging");
    assert!(
        seen["web-1"].1 > 0,
        "a real reading, with this machine's cores"
    );

    wait_for("web-1's history", async || {
        hub.cpu_history("web-1", t0, now_ms()).await.points.len() >= 3
    })
    .await;
    let series = hub.cpu_history("web-1", t0, now_ms()).await;
    assert_eq!(series.subject, "web-1");
    hub.stop().await;
}

/// The hub's own host name: its readings are on the stream too.
fn hub_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_pushing_for_another_host_is_refused_and_raises_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let token = enrol(dir.path(), "web-1", "prod").await;
    let hub = Hub::start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let mut stream = hub.stream().await;
    let agent = Agent::start(
        &hub.base,
        &token,
        "db-9",
        "prod",
        &dir.path().join("s"),
        &[],
    );

    let alert = tokio::time::timeout(PATIENCE, async {
        loop {
            let env = stream.next().await.expect("the stream goes on");
            if let Event::Security(alert) = env.event {
                return alert;
            }
        }
    })
    .await
    .expect("a security alert");
    assert_eq!(alert.kind, shared::SecurityKind::Forbidden);
    assert!(
        alert.message.contains("'web-1'") && alert.message.contains("'db-9'"),
        "{}",
        alert.message
    );

    // The refusal is one clear line in the agent's log however often it retries.
    wait_for("the agent's log line", async || {
        agent.lines_with("refused this agent") > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(agent.lines_with("refused this agent"), 1, "{}", agent.log());
    assert!(agent.lines_with("403") > 0, "{}", agent.log());

    // Nothing of db-9 was recorded.
    let r = hub
        .client
        .get(format!(
            "{}/api/history?metric=cpu&host=db-9&range=1h",
            hub.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("no host named 'db-9' has ever been recorded")
    );

    // By hand: 403 with the reason, and 401 for no token or a wrong one.
    let push = |token: Option<&str>| {
        let mut r = reqwest::Client::new()
            .post(format!("{}/api/agent/push", hub.base))
            .json(&serde_json::json!({"agent": "db-9", "version": "x", "interval_ms": 1000, "items": []}));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let secret = std::fs::read_to_string(&token).unwrap();
    let r = push(Some(&secret)).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("may push only for it"),
        "{body}"
    );
    assert_eq!(push(None).await.unwrap().status(), 401);
    assert_eq!(push(Some("wpa_0000")).await.unwrap().status(), 401);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_away_for_a_minute_leaves_no_gap_in_the_hosts_per_second_history() {
    let dir = tempfile::tempdir().unwrap();
    let token = enrol(dir.path(), "web-1", "prod").await;
    let hub = Hub::start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let addr = hub.addr;
    let agent = Agent::start(
        &hub.base,
        &token,
        "web-1",
        "prod",
        &dir.path().join("spool"),
        &[],
    );
    let t0 = now_ms() - 1000;
    wait_for("the first readings", async || {
        hub.cpu_history("web-1", t0, now_ms()).await.points.len() >= 3
    })
    .await;
    hub.stop().await;
    let down_at = now_ms();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        agent.lines_with("the hub is unreachable"),
        1,
        "one line for the outage:\n{}",
        agent.log()
    );

    let hub = Hub::start(dir.path(), addr).await;
    let up_at = now_ms();
    // Everything spooled arrives: points from before the outage to after it.
    wait_for("the backlog", async || {
        let s = hub.cpu_history("web-1", t0, now_ms()).await;
        s.points.last().is_some_and(|p| p.t_ms > up_at)
            && s.points
                .iter()
                .filter(|p| p.t_ms > down_at && p.t_ms < up_at)
                .count()
                >= 55
    })
    .await;
    let series = hub.cpu_history("web-1", t0, now_ms()).await;
    assert_eq!(series.step_ms, 1000, "per-second points");
    let worst = series
        .points
        .windows(2)
        .map(|w| w[1].t_ms - w[0].t_ms)
        .max()
        .unwrap();
    // One reading a second; a sample landing a few ms late can share a second with the next one.
    assert!(
        worst <= 2000,
        "a gap of {worst} ms in {:?}",
        series.points.iter().map(|p| p.t_ms).collect::<Vec<_>>()
    );
    assert_eq!(
        agent.lines_with("the hub answers again"),
        1,
        "{}",
        agent.log()
    );
    hub.stop().await;
}
