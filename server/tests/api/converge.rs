//! The proof of scale-out, short form (`.ci/run` runs it): three instances on one PostgreSQL database and
//! one JetStream stream, behind a real haproxy (Debian's package, on free ports); 20 SSE clients that
//! apply every event with `shared`'s `LiveState` — the code the browser runs — and reconnect through the
//! balancer with `Last-Event-ID` as a browser does. For a fixed time instances are SIGKILLed and started
//! again, clients drop their connections at random, and logs and deployment reports are written through
//! the balancer. At the end every client's state equals the snapshot every instance serves, and no client
//! saw an event twice or missed one. `WATCHPOST_CONVERGE_SECS` and `WATCHPOST_CONVERGE_CLIENTS` make it
//! longer and larger (the benchmark harness's long form).

use crate::engines::{ScratchDatabase, ScratchStream};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::json;
use shared::{Envelope, Event, LiveState};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_watchpost");
const PASSWORD: &str = "a long converge password";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One Watchpost instance on a fixed port, so haproxy finds it again after a restart.
struct Instance {
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl Instance {
    fn start(&mut self) {
        let child = Command::new(BIN)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(&self.args)
            .env("WATCHPOST_DATA_DIR", self.dir.path())
            .env_remove("WATCHPOST_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        self.child = Some(child);
    }

    /// Waits until it answers `/healthz`.
    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        while !reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                Instant::now() < deadline,
                "instance on {} starts",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// haproxy in front of the instances, configured as the README says for SSE.
struct Balancer {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(backends: &[u16]) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, p)| format!("    server w{i} 127.0.0.1:{p} check\n"))
            .collect();
        let config = format!(
            "global\n    maxconn 4096\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 1h\n    \
             timeout server 1h\n    timeout tunnel 1h\n\
             frontend watchpost\n    bind 127.0.0.1:{port}\n    default_backend instances\n\
             backend instances\n    balance roundrobin\n    option httpchk GET /healthz\n    \
             default-server inter 250ms fall 1 rise 2\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "haproxy runs (Debian's haproxy package; scripts/setup.sh --browser installs it)",
            );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy listens");
            std::thread::sleep(Duration::from_millis(20));
        }
        Balancer {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client with a cookie jar and no overall timeout (a stream lasts as long as it likes), signed in.
async fn signed_in(base: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client
            .post(format!("{base}/api/login"))
            .json(&json!({ "name": "ana", "password": PASSWORD }))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            return client;
        }
        assert!(Instant::now() < deadline, "ana signs in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a client counted while it followed the stream.
#[derive(Debug, Default)]
struct Seen {
    events: u64,
    duplicates: u64,
    lost: u64,
    reconnects: u64,
}

/// What must be the same everywhere once things are quiet: the state the actions changed.
#[derive(Debug, PartialEq)]
struct Settled {
    logs: Vec<(i64, String)>,
    deployments: Vec<(i64, String, String)>,
}

fn settled(state: &LiveState) -> Settled {
    let mut logs: Vec<(i64, String)> = state
        .logs()
        .iter()
        .filter(|e| e.service == "converge")
        .map(|e| (e.id, e.message.clone()))
        .collect();
    logs.sort();
    let mut deployments: Vec<(i64, String, String)> = state
        .deployments()
        .iter()
        .filter(|d| d.service == "converge")
        .map(|d| (d.id, d.state.as_str().to_owned(), d.version.clone()))
        .collect();
    deployments.sort();
    Settled { logs, deployments }
}

/// Follows the stream through the balancer until `stop`, applying every event, dropping the connection
/// now and then, resuming with the last id as a browser does.
async fn follow(
    base: String,
    client: reqwest::Client,
    stop: Arc<AtomicBool>,
    state: Arc<std::sync::Mutex<LiveState>>,
) -> Seen {
    let mut seen = Seen::default();
    let mut last: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut request = client
            .get(format!("{base}/api/events"))
            .header("accept", "text/event-stream");
        if let Some(id) = last {
            request = request.header("last-event-id", id.to_string());
        }
        let Ok(response) = request.send().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if !response.status().is_success() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        seen.reconnects += 1;
        let mut events = response.bytes_stream().eventsource();
        let drop_at = Instant::now() + Duration::from_millis(fastrand::u64(1_000..6_000));
        loop {
            if stop.load(Ordering::Relaxed) {
                return seen;
            }
            let next = tokio::time::timeout(Duration::from_millis(200), events.next()).await;
            let event = match next {
                Err(_) if Instant::now() > drop_at => break, // a browser tab put to sleep, say
                Err(_) => continue,
                Ok(Some(Ok(e))) => e,
                Ok(_) => break, // the instance went away
            };
            if event.event == "ping" {
                continue;
            }
            let Ok(env) = serde_json::from_str::<Envelope>(&event.data) else {
                continue;
            };
            if !matches!(env.event, Event::Snapshot(_)) {
                match last {
                    Some(l) if env.seq <= l => {
                        seen.duplicates += 1;
                        continue;
                    }
                    Some(l) if env.seq > l + 1 => seen.lost += env.seq - l - 1,
                    _ => {}
                }
                seen.events += 1;
            }
            state.lock().unwrap().apply(&env);
            last = Some(env.seq);
            if Instant::now() > drop_at {
                break;
            }
        }
    }
    seen
}

/// The snapshot `port`'s instance serves a new client, as that client's state.
async fn served(client: &reqwest::Client, port: u16) -> LiveState {
    let response = client
        .get(format!("http://127.0.0.1:{port}/api/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut events = response.bytes_stream().eventsource();
    let mut state = LiveState::new(1000);
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("a snapshot in time")
            .expect("the stream opens")
            .expect("well-formed SSE");
        if event.event == "ping" || event.event == "bus" {
            continue;
        }
        let env: Envelope = serde_json::from_str(&event.data).unwrap();
        state.apply(&env);
        return state;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_converges_to_every_instance_through_kills_and_reconnects() {
    let run_for = Duration::from_secs(setting("WATCHPOST_CONVERGE_SECS", 20));
    let clients = setting("WATCHPOST_CONVERGE_CLIENTS", 20) as usize;
    let db = ScratchDatabase::new().await;
    let bus = ScratchStream::new("converge");
    let add = Command::new(BIN)
        .args(["user", "add", "ana", "--role", "admin", "--password-stdin"])
        .env("WATCHPOST_STORE", &db.url)
        .env_remove("WATCHPOST_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{PASSWORD}\n").as_bytes())?;
            child.wait()
        })
        .unwrap();
    assert!(add.success());
    let args: Vec<String> = [
        "--store",
        &db.url,
        "--bus",
        &bus.url,
        "--bus-stream",
        &bus.name,
        // All the clients are one user; the per-user limit is not what this test is about.
        "--max-streams-per-user",
        "1000",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut instances: Vec<Instance> = (0..3)
        .map(|_| Instance {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            args: args.clone(),
            child: None,
        })
        .collect();
    for i in &mut instances {
        i.start();
    }
    for i in &instances {
        i.ready().await;
    }
    let balancer = Balancer::start(&instances.iter().map(|i| i.port).collect::<Vec<_>>());
    let base = format!("http://127.0.0.1:{}", balancer.port);
    tokio::time::sleep(Duration::from_millis(600)).await; // haproxy's first health checks

    let stop = Arc::new(AtomicBool::new(false));
    let mut followers = Vec::new();
    let mut states = Vec::new();
    for _ in 0..clients {
        let state = Arc::new(std::sync::Mutex::new(LiveState::new(1000)));
        states.push(state.clone());
        followers.push(tokio::spawn(follow(
            base.clone(),
            signed_in(&base).await,
            stop.clone(),
            state,
        )));
    }

    // Writers through the balancer: error-log lines and a deployment moving through its states.
    let writing = Arc::new(AtomicBool::new(true));
    let (accepted, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (base, writing, accepted, refused) = (
            base.clone(),
            writing.clone(),
            accepted.clone(),
            refused.clone(),
        );
        let client = signed_in(&base).await;
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut deployment: Option<i64> = None;
            while writing.load(Ordering::Relaxed) {
                n += 1;
                let r = client
                    .post(format!("{base}/api/ingest/logs"))
                    .header("content-type", "application/x-ndjson")
                    .body(
                        json!({ "level": "error", "service": "converge", "message": format!("line {n}") })
                            .to_string(),
                    )
                    .send()
                    .await;
                let counter = if r.is_ok_and(|r| r.status().is_success()) {
                    &accepted
                } else {
                    &refused
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(5) {
                    let body = match deployment {
                        None => json!({ "service": "converge", "environment": "ci",
                                        "version": format!("v{n}"), "state": "queued" }),
                        Some(id) => {
                            json!({ "id": id, "state": if n.is_multiple_of(10) { "success" } else { "in_progress" } })
                        }
                    };
                    if let Ok(r) = client
                        .post(format!("{base}/api/deployments"))
                        .json(&body)
                        .send()
                        .await
                        && let Ok(d) = r.json::<shared::Deployment>().await
                    {
                        deployment = (!d.state.finished()).then_some(d.id);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Chaos: a random instance is killed now and then, and started again a moment later.
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < run_for {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1_500..3_500))).await;
        let victim = fastrand::usize(..instances.len());
        instances[victim].kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(fastrand::u64(300..1_500))).await;
        instances[victim].start();
        instances[victim].ready().await;
    }
    writing.store(false, Ordering::Relaxed);
    writer.await.unwrap();
    let last_write = Instant::now();

    // Every instance agrees, and every client reaches what they agree on.
    let check = signed_in(&base).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (expected, converged_after) = loop {
        let mut views = Vec::new();
        for i in &instances {
            views.push(settled(&served(&check, i.port).await));
        }
        let agreed = views.windows(2).all(|w| w[0] == w[1]);
        let all = agreed
            && states
                .iter()
                .all(|s| settled(&s.lock().unwrap()) == views[0]);
        if all {
            break (views.swap_remove(0), last_write.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "clients and instances agree within 20 s of the last write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let mut totals = Seen::default();
    for f in followers {
        let seen = f.await.unwrap();
        totals.events += seen.events;
        totals.duplicates += seen.duplicates;
        totals.lost += seen.lost;
        totals.reconnects += seen.reconnects;
    }
    let divergent = states
        .iter()
        .filter(|s| settled(&s.lock().unwrap()) != expected)
        .count();
    println!(
        "converge: {clients} clients, {} s, {kills} instance kills, {} reconnects, {} events applied, \
         {} log lines accepted ({} refused while an instance was going), {} of them in the converged \
         state; divergent clients {divergent}, duplicated {}, lost {}, converged {} ms after the last write",
        run_for.as_secs(),
        totals.reconnects,
        totals.events,
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        expected.logs.len(),
        totals.duplicates,
        totals.lost,
        converged_after.as_millis()
    );
    assert_eq!(divergent, 0);
    assert_eq!(totals.duplicates, 0, "no event twice");
    assert_eq!(totals.lost, 0, "no event missed");
    assert!(kills > 0 && totals.reconnects > clients as u64);
    assert!(!expected.logs.is_empty());
    drop(balancer);
}
