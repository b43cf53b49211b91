//! Bad input, generated: every route and every server function gets malformed bodies, content types and
//! query strings, huge and negative numbers, non-UTF-8, deep nesting and hostile `Last-Event-ID`s, from a
//! fixed seed and in a fixed count. The real binary must answer each with a status below 500 and, for a
//! 4xx, a message a person can read; afterwards it is alive, its memory bounded and its log free of panics.

use crate::helpers::{ADMIN, PASSWORD, add_token, add_user};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use shared::Role;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Requests generated per route and per server function.
const CASES: usize = 24;
/// Memory the server may hold after the run, in all (it starts at about 20 MiB).
const MAX_RSS_KIB: u64 = 300 * 1024;

/// The JSON routes, with the method each takes.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/history"),
    ("GET", "/api/logs"),
    ("POST", "/api/ingest/logs"),
    ("POST", "/api/login"),
    ("POST", "/api/setup"),
    ("POST", "/api/logout"),
    ("GET", "/api/me"),
    ("GET", "/api/deployments"),
    ("POST", "/api/deployments"),
    ("GET", "/api/alerts"),
    ("GET", "/api/audit"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/alerts"),
    ("GET", "/audit"),
    ("GET", "/login"),
];

/// Names the handlers read, so that generated queries and bodies reach past the first check.
const NAMES: &[&str] = &[
    "metric",
    "range",
    "from",
    "to",
    "step",
    "limit",
    "before",
    "service",
    "level",
    "q",
    "id",
    "host",
    "name",
    "password",
    "next",
    "code",
    "state",
    "version",
    "environment",
    "progress",
    "params",
    "target",
    "command",
    "run",
    "first",
    "minutes",
    "rule",
    "filter",
    "user",
    "action",
    "format",
];

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("-1".to_owned()),
        Just("-9223372036854775809".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1e309".to_owned()),
        Just("NaN".to_owned()),
        Just("0x10".to_owned()),
        Just("9".repeat(400)),
        Just("\u{0}\u{7f}\u{202e}".to_owned()),
        Just("//evil.example/\t\\".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "\\PC{0,40}",
    ]
}

/// A JSON value: scalars of every kind, objects with the names handlers read, and deep nesting.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("1e400".to_owned()),
        Just("-0.0".to_owned()),
        Just("123456789012345678901234567890".to_owned()),
        hostile_text().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ];
    let nested =
        (1usize..3000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
    let object = proptest::collection::vec((proptest::sample::select(NAMES), leaf.clone()), 0..6)
        .prop_map(|pairs| {
            let fields: Vec<String> = pairs
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap_or_default()))
                .collect();
            format!("{{{}}}", fields.join(","))
        });
    prop_oneof![leaf, nested, object]
}

fn form_body() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            proptest::sample::select(NAMES),
            prop_oneof![
                hostile_text(),
                Just("%FF%FE".to_owned()),
                Just("a[b][c]".to_owned())
            ],
        ),
        0..6,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", v.replace('&', "%26")))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// One generated request: content type, body, query string, whether it carries the admin's token.
#[derive(Debug, Clone)]
struct Case {
    content_type: Option<String>,
    body: Vec<u8>,
    query: String,
    signed_in: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let content_type = prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("text/plain; charset=utf-8".to_owned())),
        Just(Some("multipart/form-data; boundary=x".to_owned())),
        Just(Some("application/cbor".to_owned())),
        Just(Some("a/b;;;=".to_owned())),
    ];
    let body = prop_oneof![
        json_value().prop_map(String::into_bytes),
        form_body().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..512),
        Just(vec![0xff, 0xfe, 0x00, 0x80]),
    ];
    let query = proptest::collection::vec((proptest::sample::select(NAMES), form_body()), 0..4)
        .prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={}", v.replace(['&', '#', ' '], "%20")))
                .collect::<Vec<_>>()
                .join("&")
        });
    (content_type, body, query, any::<bool>()).prop_map(|(content_type, body, query, signed_in)| {
        Case {
            content_type,
            body,
            query,
            signed_in,
        }
    })
}

/// `CASES` cases from a fixed seed, so a failure is the same on every run.
fn generate(seed: u8) -> Vec<Case> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let strategy = case();
    (0..CASES)
        .map(|_| strategy.new_tree(&mut runner).expect("a case").current())
        .collect()
}

/// Whether a 4xx body says something a person can read: a JSON message, or text.
fn readable(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    if text.contains("panicked") {
        return false;
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map.values().any(|v| match v {
            serde_json::Value::String(s) => s.trim().len() >= 3,
            serde_json::Value::Object(inner) => inner
                .values()
                .any(|v| v.as_str().is_some_and(|s| s.len() >= 3)),
            _ => false,
        }),
        Ok(serde_json::Value::String(s)) => s.trim().len() >= 3,
        Ok(_) => false,
        Err(_) => text.trim().len() >= 3,
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_bad_input_never_gets_a_5xx_and_never_panics() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), ADMIN, Role::Admin, PASSWORD).await;
    // A token of its own first, so that a generated `revoke_token` of a small id spares the one in use.
    let _decoy = add_token(data.path(), "decoy", Role::Admin).await;
    let token = add_token(data.path(), "fuzz", Role::Admin).await;
    let log_path = data.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["--listen", "127.0.0.1:0", "--lockout-after", "1000"])
        .env("WATCHPOST_DATA_DIR", data.path())
        .env_remove("WATCHPOST_CONFIG")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut log = Vec::new();
    let addr = stdout
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            let addr = l.split("listening on http://").nth(1).map(str::to_owned);
            log.push(l);
            addr
        })
        .expect("the server logs its address");
    let base = format!("http://{addr}");
    let drained = std::thread::spawn(move || stdout.map_while(Result::ok).collect::<Vec<_>>());

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut targets: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let functions = server::testing::server_fn_paths();
    assert!(functions.len() >= 20, "{functions:?}");
    targets.extend(functions.into_iter().map(|(path, method)| (method, path)));

    let mut failures = Vec::new();
    let mut sent = 0;
    for (i, (method, path)) in targets.iter().enumerate() {
        for case in generate(i as u8) {
            let url = if case.query.is_empty() {
                format!("{base}{path}")
            } else {
                format!("{base}{path}?{}", case.query)
            };
            let mut request = client
                .request(method.parse().unwrap(), &url)
                .body(case.body.clone());
            if let Some(ct) = &case.content_type {
                request = request.header("content-type", ct);
            }
            if case.signed_in {
                request = request.bearer_auth(&token);
            }
            sent += 1;
            match request.send().await {
                Err(e) => failures.push(format!("{method} {path} {case:?}: no answer: {e}")),
                Ok(response) => {
                    let status = response.status();
                    let body = response.bytes().await.unwrap_or_default();
                    if status.is_server_error() {
                        failures.push(format!(
                            "{method} {path} {case:?}: {status} {}",
                            String::from_utf8_lossy(&body)
                        ));
                    } else if status.is_client_error() && !readable(&body) {
                        failures.push(format!(
                            "{method} {path} {case:?}: {status} without a readable message: {:?}",
                            String::from_utf8_lossy(&body)
                        ));
                    }
                }
            }
        }
    }

    // The event stream, resumed from hostile ids: each starts (from a snapshot) and never fails.
    for id in [
        "",
        "-1",
        "0",
        "abc",
        "18446744073709551616",
        "1 2",
        "-0",
        "0x10",
        "1e3",
        " 7 ",
        &"9".repeat(500),
    ] {
        sent += 1;
        let response = client
            .get(format!("{base}/api/events"))
            .bearer_auth(&token)
            .header("last-event-id", id)
            .send()
            .await;
        match response {
            Ok(r) if r.status() == 200 => {
                let mut r = r;
                let first = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await;
                assert!(
                    matches!(first, Ok(Ok(Some(_)))),
                    "the stream from id {id:?} sends something"
                );
            }
            Ok(r) if r.status().is_client_error() => {}
            Ok(r) => failures.push(format!("events from id {id:?}: {}", r.status())),
            Err(e) => failures.push(format!("events from id {id:?}: {e}")),
        }
    }

    let alive = client.get(format!("{base}/healthz")).send().await;
    let rss = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    log.extend(drained.join().unwrap_or_default());
    let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        alive.is_ok_and(|r| r.status() == 200),
        "the server is alive"
    );
    assert!(
        rss > 0 && rss < MAX_RSS_KIB,
        "RSS {rss} KiB after {sent} requests"
    );
    assert!(
        !stderr.contains("panicked") && !log.iter().any(|l| l.contains("panicked")),
        "a panic:\n{stderr}"
    );
}
