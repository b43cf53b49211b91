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
        Hub::start_with(data_dir, addr, |_| {}).await
    }

    async fn start_with(
        data_dir: &Path,
        addr: SocketAddr,
        configure: impl FnOnce(&mut Config),
    ) -> Hub {
        let mut config = Config::default();
        config.server.listen = addr;
        config.server.data_dir = data_dir.to_owned();
        config.server.environment = "hub-env".into();
        configure(&mut config);
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
        let client = sign_in(&base, ADMIN).await;
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
    async fn stream(&self) -> Envelopes {
        stream_of(&self.client, &self.base).await
    }

    /// `GET path` as the admin: the JSON it answers.
    async fn get_json(&self, path: &str) -> serde_json::Value {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET path` as the admin: the `field` of every entry of the listing (`{"entries": [...]}`) it answers.
    async fn entry_fields(&self, path: &str, field: &str) -> Vec<String> {
        let page = self.get_json(path).await;
        page["entries"]
            .as_array()
            .expect("a listing")
            .iter()
            .filter_map(|e| e[field].as_str().map(str::to_owned))
            .collect()
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

type Envelopes = std::pin::Pin<Box<dyn futures::Stream<Item = Envelope> + Send>>;

/// The stream of the reader signed in on `client`: envelopes as they come.
async fn stream_of(client: &reqwest::Client, base: &str) -> Envelopes {
    let r = client
        .get(format!("{base}/api/events"))
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

async fn open(data_dir: &Path) -> SqliteStore {
    SqliteStore::open(&data_dir.join(DATABASE_FILE), &OpenOptions::default())
        .await
        .expect("the store opens")
}

/// Adds `name` (of `role`, with the tests' password) to the store under `data_dir`.
async fn add_user(data_dir: &Path, name: &str, role: Role) -> shared::User {
    let hash = server::testing::hash_password(PASSWORD.to_owned())
        .await
        .unwrap();
    open(data_dir)
        .await
        .add_user(name, role, &hash, 0)
        .await
        .unwrap()
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
            // What a command run by the agent must not see.
            .env("WATCHPOST_SECRET", "hush")
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

/// The two hosts most tests run: web-1 in prod (with `web_extra` flags) and db-1 in staging, enrolled with
/// the token files given, spooling under `dir`.
fn web_and_db(hub: &Hub, dir: &Path, tokens: (&Path, &Path), web_extra: &[&str]) -> (Agent, Agent) {
    let web = Agent::start(
        &hub.base,
        tokens.0,
        "web-1",
        "prod",
        &dir.join("s1"),
        web_extra,
    );
    let db = Agent::start(&hub.base, tokens.1, "db-1", "staging", &dir.join("s2"), &[]);
    (web, db)
}

/// The next `Host` event on `stream` that `wanted` accepts.
async fn host_event(
    stream: &mut Envelopes,
    what: &str,
    wanted: impl Fn(&shared::FleetHost) -> bool,
) -> shared::FleetHost {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Host(h) = stream.next().await.expect("the stream goes on").event
                && wanted(&h)
            {
                return h;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited too long for {what}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn wait_for(what: &str, done: impl AsyncFnMut() -> bool) {
    wait_for_within(what, PATIENCE, done).await;
}

async fn wait_for_within(what: &str, patience: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < patience, "waited too long for {what}");
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
    let (_web, _db) = web_and_db(&hub, dir.path(), (&web_token, &db_token), &[]);

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
    wait_for("the agent's log lines", async || {
        agent.lines_with("refused this agent (") > 0
            && agent.lines_with("refused this agent's stream of orders (403") > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        agent.lines_with("refused this agent ("),
        1,
        "{}",
        agent.log()
    );
    assert_eq!(
        agent.lines_with("refused this agent's stream of orders"),
        1,
        "{}",
        agent.log()
    );
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
            .json(&serde_json::json!({"agent": "db-9", "environment": "prod", "version": "x", "interval_ms": 1000, "items": []}));
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
    // What the agent sends is held to the hub's limits: no record from the future, no unreadable service.
    let lines = |t_ms: i64, service: &str| {
        serde_json::json!({"agent": "web-1", "environment": "prod", "version": "x", "interval_ms": 1000,
            "items": [{"seq": 7, "record": {"kind": "lines",
                "data": [{"t_ms": t_ms, "level": "info", "service": service, "message": "m"}]}}]})
    };
    for (body, says) in [
        (lines(now_ms() + 600_000, "app"), "set the agent's clock"),
        (lines(now_ms(), "a\u{7}b"), "no control characters"),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{}/api/agent/push", hub.base))
            .bearer_auth(&secret)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains(says));
    }
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
    // Everything spooled arrives: points from before the outage to after it. The agent tries again on its
    // own schedule (backing off to 30 s, ±25 %), so it may take that long to notice the hub is back.
    wait_for_within("the backlog", Duration::from_secs(60), async || {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_turns_its_host_offline_and_a_restarted_one_live_again() {
    let dir = tempfile::tempdir().unwrap();
    let token = enrol(dir.path(), "web-1", "prod").await;
    enrol(dir.path(), "never-1", "staging").await;
    let offline_after = Duration::from_secs(3);
    let hub = Hub::start_with(dir.path(), "127.0.0.1:0".parse().unwrap(), |c| {
        c.sampling.offline_after = offline_after;
    })
    .await;
    let mut stream = hub.stream().await;
    let presence = async |stream: &mut Envelopes, host: &str, want: shared::Presence| {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let env = stream.next().await.expect("the stream goes on");
                let hosts = match env.event {
                    Event::Snapshot(s) => s.fleet,
                    Event::Host(h) => {
                        // A host's event is of its own environment.
                        assert_eq!(env.scope.environment, h.environment);
                        vec![h]
                    }
                    _ => continue,
                };
                if let Some(h) = hosts
                    .into_iter()
                    .find(|h| h.host.0 == host && h.presence == want)
                {
                    return h;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{host} never became {want:?}"))
    };
    // A host added but never heard from is listed, offline; the hub's own is live.
    let first = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .unwrap()
        .unwrap();
    let Event::Snapshot(snapshot) = first.event else {
        panic!("a stream starts with a snapshot");
    };
    let own = snapshot
        .fleet
        .iter()
        .find(|h| h.hub)
        .expect("the hub's own host");
    assert_eq!(
        (own.host.0.clone(), own.presence),
        (hub_host(), shared::Presence::Live)
    );
    assert_eq!(own.environment, "hub-env");
    let never = snapshot
        .fleet
        .into_iter()
        .find(|h| h.host.0 == "never-1")
        .expect("an added host is listed before its agent calls");
    assert_eq!(never.presence, shared::Presence::Offline);
    assert_eq!(
        (never.seen_ms, never.environment.as_str()),
        (None, "staging")
    );

    let mut agent = Agent::start(
        &hub.base,
        &token,
        "web-1",
        "prod",
        &dir.path().join("s"),
        &[],
    );
    let live = presence(&mut stream, "web-1", shared::Presence::Live).await;
    assert_eq!(live.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(live.interval_ms, 1000);

    agent.child.kill().unwrap();
    let killed = Instant::now();
    presence(&mut stream, "web-1", shared::Presence::Offline).await;
    // Judged once a second: offline within --offline-after and one interval (and a judging tick).
    let took = killed.elapsed();
    assert!(
        took <= offline_after + Duration::from_secs(2) + Duration::from_millis(500),
        "{took:?}"
    );

    let _again = Agent::start(
        &hub.base,
        &token,
        "web-1",
        "prod",
        &dir.path().join("s"),
        &[],
    );
    presence(&mut stream, "web-1", shared::Presence::Live).await;
    // Each change is one line in the error log (written just after the change is published).
    wait_for("both lines in the error log", async || {
        let messages = hub
            .entry_fields("/api/logs?service=watchpost&q=web-1", "message")
            .await;
        messages
            .iter()
            .any(|m| m.starts_with("host web-1 (prod) is offline: no contact for"))
            && messages
                .iter()
                .any(|m| m == "host web-1 (prod) is live again (was offline)")
    })
    .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_in_the_wrong_environment_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let token = enrol(dir.path(), "web-1", "prod").await;
    let hub = Hub::start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let agent = Agent::start(
        &hub.base,
        &token,
        "web-1",
        "staging",
        &dir.path().join("s"),
        &[],
    );
    wait_for("the agent's log line", async || {
        agent.lines_with(
            "the hub rejected this agent's batch: 400 Bad Request: this host was added to the environment 'prod', not 'staging'",
        ) > 0
    })
    .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_added_on_the_admin_page_pushes_and_is_disconnected_when_removed() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let mut stream = hub.stream().await;
    let call = async |name: &str, form: &[(&str, &str)]| {
        hub.client
            .post(format!("{}/api/{name}", hub.base))
            .form(form)
            .send()
            .await
            .unwrap()
    };
    // Bad names are a 400 with the rule; a name taken is a 409.
    let r = call("add_host", &[("name", "web 1"), ("environment", "prod")]).await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("letters, digits and . _ - only")
    );
    let r = call("add_host", &[("name", "web-1"), ("environment", "prod")]).await;
    assert_eq!(r.status(), 200);
    let added: shared::NewHost = r.json().await.unwrap();
    assert!(added.token.starts_with("wpa_"));
    let r = call("add_host", &[("name", "web-1"), ("environment", "staging")]).await;
    assert_eq!(r.status(), 409);
    // The hub's own host is sampled by the hub: no agent may push for it.
    let r = call(
        "add_host",
        &[("name", &hub_host()), ("environment", "prod")],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("the hub's own host"));

    let token = dir.path().join("token");
    std::fs::write(&token, &added.token).unwrap();
    let agent = Agent::start(
        &hub.base,
        &token,
        "web-1",
        "prod",
        &dir.path().join("s"),
        &[],
    );
    host_event(&mut stream, "the added host to go live", |h| {
        h.host.0 == "web-1" && h.presence == shared::Presence::Live
    })
    .await;

    let id = added.host.id.to_string();
    let r = call("revoke_host", &[("id", &id)]).await;
    assert_eq!(r.status(), 200);
    host_event(&mut stream, "the removed host to leave the fleet", |h| {
        h.host.0 == "web-1" && h.removed
    })
    .await;
    // Its next push is refused: one clear line in its log.
    wait_for("the agent to be refused", async || {
        agent.lines_with("refused this agent (401 Unauthorized)") > 0
    })
    .await;
    // Its stream of orders was closed by the removal, and is refused from then on.
    wait_for("the agent's stream of orders to be refused", async || {
        agent.lines_with("refused this agent's stream of orders (401 Unauthorized)") > 0
    })
    .await;
    // And the audit trail names both actions.
    let actions = hub.entry_fields("/api/audit?action=host.", "action").await;
    assert!(
        actions.iter().any(|a| a == "host.add") && actions.iter().any(|a| a == "host.revoke"),
        "{actions:?}"
    );
    hub.stop().await;
}

/// A reader signed in as `name` on the hub at `base`: a client of its own (the admin's, in `Hub`, too).
async fn sign_in(base: &str, name: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({ "name": name, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{name} signs in");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_limited_to_staging_never_receives_a_prod_host() {
    let dir = tempfile::tempdir().unwrap();
    let web_token = enrol(dir.path(), "web-1", "prod").await;
    let db_token = enrol(dir.path(), "db-1", "staging").await;
    // Sam: a viewer everywhere but prod, where Sam has no role at all.
    let sam = add_user(dir.path(), "sam", Role::Viewer).await;
    open(dir.path())
        .await
        .set_environment_role(sam.id, "prod", Some(None))
        .await
        .unwrap();
    let hub = Hub::start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let app_log = dir.path().join("app.log");
    std::fs::write(&app_log, "").unwrap();
    let tail = format!("shop={}", app_log.display());
    let (_web, _db) = web_and_db(
        &hub,
        dir.path(),
        (&web_token, &db_token),
        &["--tail-log", &tail],
    );
    // The admin sees both hosts' readings, and the prod host's error line in the log.
    wait_for("both hosts' history", async || {
        hub.cpu_history("web-1", now_ms() - 60_000, now_ms())
            .await
            .points
            .len()
            >= 2
            && hub
                .cpu_history("db-1", now_ms() - 60_000, now_ms())
                .await
                .points
                .len()
                >= 2
    })
    .await;
    wait_for("the prod line in the admin's log", async || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&app_log)
            .unwrap();
        writeln!(f, "ERROR payment gateway timed out on PRODLINE").unwrap();
        hub.entry_fields("/api/logs?host=web-1", "message")
            .await
            .iter()
            .any(|m| m.contains("PRODLINE"))
    })
    .await;

    let sam = sign_in(&hub.base, "sam").await;
    let get = |path: &str| {
        let (sam, url) = (sam.clone(), format!("{}{path}", hub.base));
        async move {
            let r = sam.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // The stream: its snapshot and several seconds of live events carry staging, never prod.
    let r = sam
        .get(format!("{}/api/events", hub.base))
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut events = Box::pin(r.bytes_stream().eventsource());
    let mut frames = Vec::new();
    let mut first_id = String::new();
    let until = Instant::now() + Duration::from_secs(5);
    while let Ok(Some(Ok(e))) = tokio::time::timeout_at(until.into(), events.next()).await {
        if first_id.is_empty() {
            first_id = e.id.clone();
        }
        frames.push(e.data);
    }
    drop(events);
    assert!(frames.len() > 3, "the stream carries events: {frames:?}");
    assert!(
        frames.iter().any(|f| f.contains("\"db-1\"")),
        "the staging host reaches Sam"
    );
    for f in &frames {
        assert!(
            !f.contains("web-1") && !f.contains("PRODLINE"),
            "no prod host on Sam's stream: {f}"
        );
    }
    // Resumed from its first id, the replay of those seconds leaves prod out too.
    let r = sam
        .get(format!("{}/api/events", hub.base))
        .header("Last-Event-ID", &first_id)
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .unwrap();
    let mut events = Box::pin(r.bytes_stream().eventsource());
    let mut replayed = Vec::new();
    let until = Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(e))) = tokio::time::timeout_at(until.into(), events.next()).await {
        replayed.push((e.event, e.data));
    }
    assert!(
        replayed.iter().all(|(kind, _)| kind != "snapshot"),
        "a replay, not a snapshot"
    );
    assert!(replayed.iter().any(|(_, d)| d.contains("\"db-1\"")));
    for (_, d) in &replayed {
        assert!(!d.contains("web-1"), "no prod host in the replay: {d}");
    }

    // The snapshot a page is rendered from, and the pages themselves.
    let snapshot = sam
        .post(format!("{}/api/snapshot", hub.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(snapshot.contains("db-1") && !snapshot.contains("web-1"));
    for page in [
        "/",
        "/hosts",
        "/hosts?env=prod",
        "/?host=web-1",
        "/?env=prod",
    ] {
        let (status, body) = get(page).await;
        assert_eq!(status, 200, "{page}");
        // A page asked for web-1 may echo the name it was asked for (the host picker, its links), never
        // anything the hub knows of it.
        if !page.contains("web-1") {
            assert!(!body.contains("web-1"), "{page} shows no prod host");
        }
        assert!(
            !body.contains(r#""environment":"prod""#),
            "{page} carries nothing of prod"
        );
        assert!(!body.contains("PRODLINE"), "{page} shows no prod line");
    }
    assert!(get("/hosts").await.1.contains("db-1"));

    // History and the log.
    assert_eq!(
        get("/api/history?metric=cpu&host=web-1&range=1h").await.0,
        404
    );
    assert_eq!(
        get("/api/history?metric=cpu&host=db-1&range=1h").await.0,
        200
    );
    let (status, logs) = get("/api/logs").await;
    assert_eq!(status, 200);
    assert!(
        !logs.contains("PRODLINE") && !logs.contains("web-1"),
        "{logs}"
    );
    let (_, logs) = get("/api/logs?host=web-1").await;
    assert!(!logs.contains("PRODLINE"), "{logs}");
    let history = sam
        .post(format!("{}/api/get_history", hub.base))
        .json(&serde_json::json!({ "metrics": ["cpu"], "range": "Hour", "subject": "web-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(history.status(), 404);
    let logs = sam
        .post(format!("{}/api/get_logs", hub.base))
        .json(&serde_json::json!({ "filter": {}, "before": null, "limit": 100 }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!logs.contains("PRODLINE"), "{logs}");

    // The admin, with no limit, still sees prod on the same routes.
    assert!(
        hub.entry_fields("/api/logs", "message")
            .await
            .iter()
            .any(|m| m.contains("PRODLINE"))
    );
    hub.stop().await;
}

/// The next `Alert` event on `stream` that `wanted` accepts.
async fn alert_event(
    stream: &mut Envelopes,
    what: &str,
    wanted: impl Fn(&shared::Alert) -> bool,
) -> (shared::Alert, String) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let env = stream.next().await.expect("the stream goes on");
            if let Event::Alert(a) = env.event
                && wanted(&a)
            {
                return (a, env.scope.environment);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited too long for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_offline_rule_fires_per_host_in_its_environment_and_maintenance_silences_it() {
    let dir = tempfile::tempdir().unwrap();
    let web_token = enrol(dir.path(), "web-1", "prod").await;
    let db_token = enrol(dir.path(), "db-1", "staging").await;
    // As `[[alerts]] name = "host-down"  metric = "host_offline"  environment = "prod"` declares it.
    let rule = shared::AlertRule {
        name: "host-down".into(),
        source: shared::RuleSource::Config,
        metric: shared::RuleMetric::Host(shared::HostCheck::HostOffline),
        subject: None,
        environment: Some("prod".into()),
        condition: shared::Condition {
            comparison: shared::Comparison::Above,
            threshold: 0.0,
            resolve: None,
            for_ms: 0,
            clear_after: 1,
        },
        severity: shared::Severity::Critical,
        labels: [("team".to_string(), "ops".to_string())].into(),
        message: "{subject} is offline".into(),
    };
    let hub = Hub::start_with(dir.path(), "127.0.0.1:0".parse().unwrap(), |c| {
        c.sampling.offline_after = Duration::from_secs(3);
        c.alerting.rules = vec![rule];
    })
    .await;
    let mut stream = hub.stream().await;
    let (mut web, mut db) = web_and_db(&hub, dir.path(), (&web_token, &db_token), &[]);
    let mut live = std::collections::BTreeSet::new();
    while live.len() < 2 {
        let h = host_event(&mut stream, "both hosts live", |h| {
            h.presence == shared::Presence::Live && !h.hub
        })
        .await;
        live.insert(h.host.0);
    }

    // Both agents stop: prod's host fires the rule, staging's does not (the rule is scoped to prod).
    let _ = web.child.kill();
    let _ = db.child.kill();
    let (mut fired, mut db_offline) = (None, false);
    tokio::time::timeout(PATIENCE, async {
        while fired.is_none() || !db_offline {
            let env = stream.next().await.expect("the stream goes on");
            match &env.event {
                Event::Alert(a) if a.rule == "host-down" => {
                    assert_ne!(a.subject, "db-1", "the rule keeps to prod");
                    if a.state == shared::AlertState::Firing {
                        fired = Some((a.clone(), env.scope.environment.clone()));
                    }
                }
                Event::Host(h) if h.host.0 == "db-1" => {
                    db_offline |= h.presence == shared::Presence::Offline;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("web-1's alert fires and db-1 goes offline");
    let (fired, scope) = fired.expect("fired");
    assert_eq!(fired.subject, "web-1");
    assert_eq!(fired.labels["host"], "web-1");
    assert_eq!(fired.labels["environment"], "prod");
    assert_eq!(fired.labels["team"], "ops");
    assert_eq!(fired.message, "web-1 is offline");
    assert_eq!(scope, "prod", "on the stream in the host's environment");

    // A viewer may not put a host in maintenance; an admin may, and the alert resolves.
    let maintain = |client: reqwest::Client, duration: &str| {
        let (url, duration) = (
            format!("{}/api/maintain_host", hub.base),
            duration.to_owned(),
        );
        async move {
            let r = client
                .post(url)
                .form(&[("host", "web-1"), ("duration", duration.as_str())])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    add_user(dir.path(), "vic", Role::Viewer).await;
    let vic = sign_in(&hub.base, "vic").await;
    let (status, body) = maintain(vic, "4h").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = maintain(hub.client.clone(), "soon").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a length of time"), "{body}");
    let (status, body) = maintain(hub.client.clone(), "4h").await;
    assert_eq!(status, 200, "{body}");
    let in_maintenance = host_event(&mut stream, "web-1 in maintenance", |h| {
        h.host.0 == "web-1" && h.presence == shared::Presence::Maintenance
    })
    .await;
    assert_eq!(
        in_maintenance.maintenance.as_ref().map(|m| m.by.as_str()),
        Some(ADMIN)
    );
    let (resolved, _) = alert_event(&mut stream, "web-1's alert resolved", |a| {
        a.rule == "host-down" && a.state == shared::AlertState::Resolved
    })
    .await;
    assert_eq!(resolved.id, fired.id);
    wait_for("the maintenance line in the log", async || {
        hub.entry_fields("/api/logs?host=web-1", "message")
            .await
            .iter()
            .any(|m| m.contains("is in maintenance until") && m.contains("set by admin"))
    })
    .await;
    assert!(
        hub.entry_fields("/api/audit", "action")
            .await
            .iter()
            .any(|a| a == "host.maintenance")
    );

    // Ended: offline again, and a new alert fires.
    let (status, body) = maintain(hub.client.clone(), "end").await;
    assert_eq!(status, 200, "{body}");
    host_event(&mut stream, "web-1 offline again", |h| {
        h.host.0 == "web-1" && h.presence == shared::Presence::Offline && h.maintenance.is_none()
    })
    .await;
    let (again, _) = alert_event(&mut stream, "a new alert", |a| {
        a.rule == "host-down" && a.state == shared::AlertState::Firing
    })
    .await;
    assert_ne!(again.id, fired.id);
    db.child.wait().ok();
    web.child.wait().ok();
    hub.stop().await;
}

/// The output lines of run `id` on `stream` until the run ends, and its end; every event of the run must be
/// of `environment`.
async fn run_on_stream(
    stream: &mut Envelopes,
    id: i64,
    environment: &str,
) -> (Vec<shared::OutputLine>, shared::CommandRun) {
    let mut lines = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let env = stream.next().await.expect("the stream goes on");
            match env.event {
                Event::CommandOutput(chunk) if chunk.run == id => {
                    assert_eq!(env.scope.environment, environment);
                    assert_eq!(chunk.first, lines.len() as u64, "chunks come in order");
                    lines.extend(chunk.lines);
                }
                Event::Command(run) if run.id == id => {
                    assert_eq!(env.scope.environment, environment);
                    if run.state.finished() {
                        return (lines, run);
                    }
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited too long for run {id} to end"))
}

/// `POST /api/run_command` on `client`: the status and the answer's text.
async fn run_command(
    client: &reqwest::Client,
    base: &str,
    body: serde_json::Value,
) -> (reqwest::StatusCode, String) {
    let r = client
        .post(format!("{base}/api/run_command"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_an_agent_declares_runs_on_its_host_and_streams_back_to_every_tab() {
    let dir = tempfile::tempdir().unwrap();
    let web_token = enrol(dir.path(), "web-1", "prod").await;
    let db_token = enrol(dir.path(), "db-1", "staging").await;
    add_user(dir.path(), "olive", Role::Operator).await;
    // The host's own commands: a script that prints, and a program that hangs.
    let script = dir.path().join("greet.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ni=1\nwhile [ $i -le $2 ]; do echo \"line $i for $1\"; i=$((i+1)); done\n\
         echo \"to stderr\" >&2\necho \"secret=${WATCHPOST_SECRET:-none}\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let commands = dir.path().join("commands.toml");
    std::fs::write(
        &commands,
        format!(
            "[[commands]]\nname = \"greet\"\nprogram = \"{}\"\nargs = [\"{{target}}\", \"{{count}}\"]\n\
             targets = [\"nginx\"]\nparams = {{ count = {{ pattern = \"[0-9]{{1,3}}\" }} }}\n\n\
             [[commands]]\nname = \"hang\"\nprogram = \"/bin/sleep\"\nargs = [\"{{target}}\"]\n\
             targets = [\"600\"]\n",
            script.display()
        ),
    )
    .unwrap();
    let hub = Hub::start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let olive = sign_in(&hub.base, "olive").await;
    let mut admin_stream = hub.stream().await;
    let mut olive_stream = stream_of(&olive, &hub.base).await;
    let commands_flag = commands.display().to_string();
    // Every agent has WATCHPOST_SECRET in its environment (see `Agent::start`): the programs it runs must
    // not.
    let (mut web, _db) = web_and_db(
        &hub,
        dir.path(),
        (&web_token, &db_token),
        &["--commands", &commands_flag],
    );
    // The host lists what it declared once its agent listens.
    let web_host = host_event(
        &mut admin_stream,
        "web-1 to listen with its commands",
        |h| h.host.0 == "web-1" && h.listening,
    )
    .await;
    let names: Vec<&str> = web_host.commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["greet", "hang"]);

    // A bad parameter is a 400 before anything goes to the agent; a command the host does not declare, 404.
    let (status, text) = run_command(
        &olive,
        &hub.base,
        serde_json::json!({"name": "greet", "target": "nginx", "params": {"count": "many"}, "host": "web-1"}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("does not match"), "{text}");
    wait_for("db-1 to listen", async || {
        let (status, _) = run_command(
            &olive,
            &hub.base,
            serde_json::json!({"name": "greet", "target": "nginx", "params": {"count": "1"}, "host": "db-1"}),
        )
        .await;
        status == 404
    })
    .await;

    // The run: on web-1, by its agent, output to both tabs in order, in web-1's environment.
    let (status, text) = run_command(
        &olive,
        &hub.base,
        serde_json::json!({"name": "greet", "target": "nginx", "params": {"count": "300"}, "host": "web-1"}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let started: shared::CommandRun = serde_json::from_str(&text).unwrap();
    assert_eq!(started.host.as_ref().map(|h| h.0.as_str()), Some("web-1"));
    assert_eq!(started.environment.as_deref(), Some("prod"));
    for stream in [&mut admin_stream, &mut olive_stream] {
        let (lines, end) = run_on_stream(stream, started.id, "prod").await;
        assert_eq!(end.state, shared::RunState::Succeeded, "{}", end.detail);
        let out: Vec<&str> = lines
            .iter()
            .filter(|l| !l.stderr)
            .map(|l| l.text.as_str())
            .collect();
        let expected: Vec<String> = (1..=300).map(|i| format!("line {i} for nginx")).collect();
        assert_eq!(&out[..300], expected.as_slice());
        assert_eq!(
            out[300], "secret=none",
            "the agent's environment is not passed on"
        );
        assert!(lines.iter().any(|l| l.stderr && l.text == "to stderr"));
        assert_eq!(end.output_lines, 302);
    }
    // Its whole output is in the hub's log of the run too.
    let page: shared::OutputPage = olive
        .post(format!("{}/api/command_output", hub.base))
        .form(&[("run", started.id.to_string()), ("first", "0".into())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page.lines.len(), 302);
    // The audit entry names who, from where, on which host and environment, and how it ended.
    let audit = hub.get_json("/api/audit?action=command.greet").await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["actor"], "olive");
    assert_eq!(entry["ip"], "127.0.0.1");
    assert_eq!(entry["host"], "web-1");
    assert_eq!(entry["environment"], "prod");
    assert_eq!(entry["target"], "nginx");
    assert_eq!(entry["outcome"], "succeeded");

    // One run per target of an exclusive command, on a remote host too.
    let hang = serde_json::json!({"name": "hang", "target": "600", "host": "web-1"});
    let (status, text) = run_command(&olive, &hub.base, hang.clone()).await;
    assert_eq!(status, 200, "{text}");
    let hanging: shared::CommandRun = serde_json::from_str(&text).unwrap();
    let (status, text) = run_command(&olive, &hub.base, hang.clone()).await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("600 on web-1 is busy"), "{text}");

    // The agent dies mid-run: the run ends Interrupted, and the next request is a 409 at once.
    web.child.kill().unwrap();
    let _ = web.child.wait();
    let (_, end) = run_on_stream(&mut admin_stream, hanging.id, "prod").await;
    assert_eq!(end.state, shared::RunState::Interrupted);
    assert!(end.detail.contains("went away"), "{}", end.detail);
    let asked = Instant::now();
    let (status, text) = run_command(
        &olive,
        &hub.base,
        serde_json::json!({"name": "greet", "target": "nginx", "params": {"count": "1"}, "host": "web-1"}),
    )
    .await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("web-1's agent is not connected"), "{text}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "a 409 at once, not a hang"
    );

    // A peer that holds the stream open but never answers (what a cut cable looks like from the hub): the
    // run ends Interrupted rather than hold its target until its timeout.
    let silent = reqwest::Client::new()
        .post(format!("{}/api/agent/orders", hub.base))
        .bearer_auth(std::fs::read_to_string(&web_token).unwrap().trim())
        .json(&serde_json::json!({"agent": "web-1", "version": "test", "commands": web_host.commands}))
        .send()
        .await
        .unwrap();
    assert_eq!(silent.status(), 200);
    let (status, text) = run_command(&olive, &hub.base, hang.clone()).await;
    assert_eq!(status, 200, "{text}");
    let unanswered: shared::CommandRun = serde_json::from_str(&text).unwrap();
    let (_, end) = run_on_stream(&mut admin_stream, unanswered.id, "prod").await;
    assert_eq!(end.state, shared::RunState::Interrupted);
    assert!(
        end.detail.contains("did not take the run"),
        "{}",
        end.detail
    );
    let (status, text) = run_command(&olive, &hub.base, hang).await;
    assert_eq!(status, 200, "the target is free again: {text}");
    drop(silent);
    hub.stop().await;
}

/// Readings of `host` on `stream` until `n` have come: their sample times.
async fn sample_times(stream: &mut Envelopes, host: &str, n: usize) -> Vec<i64> {
    let mut times = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while times.len() < n {
            if let Event::Health(h) = stream.next().await.expect("the stream goes on").event
                && h.host.0 == host
            {
                times.push(h.sampled_at_ms);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited too long for {n} readings of {host}"));
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_set_on_the_hub_reaches_the_agent_without_a_restart_and_after_one() {
    let dir = tempfile::tempdir().unwrap();
    let token = enrol(dir.path(), "web-1", "prod").await;
    let hub = Hub::start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let mut stream = hub.stream().await;
    let spool = dir.path().join("s1");
    let agent = Agent::start(&hub.base, &token, "web-1", "prod", &spool, &[]);
    host_event(&mut stream, "web-1 live at 1s", |h| {
        h.host.0 == "web-1" && h.presence == shared::Presence::Live && h.interval_ms == 1000
    })
    .await;
    let configure = |client: reqwest::Client, host: &str, interval: &str| {
        let url = format!("{}/api/configure_host", hub.base);
        let form = [("host", host.to_owned()), ("interval", interval.to_owned())];
        async move {
            let r = client.post(url).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    // Refused: a viewer; an interval that is not one, or out of range; the hub's own host; no such host.
    add_user(dir.path(), "vic", Role::Viewer).await;
    let vic = sign_in(&hub.base, "vic").await;
    let (status, body) = configure(vic, "web-1", "5s").await;
    assert_eq!(status, 403, "{body}");
    for (interval, says) in [
        ("often", "not an interval"),
        ("100ms", "between 1s and 1h"),
        ("2h", "between 1s and 1h"),
    ] {
        let (status, body) = configure(hub.client.clone(), "web-1", interval).await;
        assert_eq!(status, 400, "{interval}: {body}");
        assert!(body.contains(says), "{interval}: {body}");
    }
    let (status, body) = configure(hub.client.clone(), &hub_host(), "5s").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("hub's own host"), "{body}");
    let (status, body) = configure(hub.client.clone(), "nowhere", "5s").await;
    assert_eq!(status, 404, "{body}");

    // Set to 3 s: the host's entry says so at once, the agent takes it down its stream of orders without a
    // restart, and its readings come 3 s apart from then on.
    let (status, body) = configure(hub.client.clone(), "web-1", "3s").await;
    assert_eq!(status, 200, "{body}");
    let set: shared::FleetHost = serde_json::from_str(&body).unwrap();
    assert_eq!(
        set.interval_set,
        Some(shared::IntervalSetting {
            interval_ms: 3000,
            by: ADMIN.into()
        })
    );
    host_event(&mut stream, "web-1 sampling every 3s", |h| {
        h.host.0 == "web-1" && h.interval_ms == 3000
    })
    .await;
    let times = sample_times(&mut stream, "web-1", 3).await;
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= 2_500, "readings 3 s apart: {times:?}");
    }
    assert_eq!(
        agent.lines_with("sampling every 3s from now on, as the hub set"),
        1,
        "{}",
        agent.log()
    );
    assert!(
        hub.entry_fields("/api/audit", "action")
            .await
            .iter()
            .any(|a| a == "host.interval")
    );

    // The agent restarts with its own --interval 1s: the hub's setting holds, sent as its stream opens.
    drop(agent);
    let agent = Agent::start(&hub.base, &token, "web-1", "prod", &spool, &[]);
    wait_for(
        "the restarted agent to take the hub's interval",
        async || agent.lines_with("sampling every 3s from now on, as the hub set") == 1,
    )
    .await;
    // After its first reading (which may be at its own pace), 3 s apart again.
    let times = sample_times(&mut stream, "web-1", 4).await;
    for pair in times[1..].windows(2) {
        assert!(
            pair[1] - pair[0] >= 2_500,
            "readings 3 s apart after a restart: {times:?}"
        );
    }

    // Cleared: the agent samples at its own interval again.
    let (status, body) = configure(hub.client.clone(), "web-1", "own").await;
    assert_eq!(status, 200, "{body}");
    host_event(&mut stream, "web-1 at its own 1s", |h| {
        h.host.0 == "web-1" && h.interval_ms == 1000 && h.interval_set.is_none()
    })
    .await;
    wait_for("the agent back at its own interval", async || {
        agent.lines_with("sampling every 1s from now on (this agent's own --interval)") == 1
    })
    .await;
    drop(agent);
    hub.stop().await;
}
