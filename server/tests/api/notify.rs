//! Notifications outside the dashboard, against receivers the test runs on 127.0.0.1: a webhook receiver and
//! an SMTP sink. A storm of ten firing series is one grouped message on each channel and its end another; a
//! receiver that is down is retried and reported; the test button; security alerts; rules written on the
//! Alerts page.

use crate::alerts::rules;
use crate::helpers::{
    Events, PASSWORD, PATIENCE, TestApp, add_user, next_envelope, sign_in, spawn_app_in,
    spawn_app_with,
};
use crate::scrape::{exposition, serve_metrics};
use axum::Router;
use axum::routing::post;
use serde_json::Value;
use server::testing::NotifyConfig;
use server::testing::Timing;
use server::testing::{Channel, ChannelFile, check_channels};
use shared::{AlertState, ChannelStatus, DeliveryState, Event, Role, RuleSource};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn channels(toml_text: &str) -> Vec<Channel> {
    #[derive(serde::Deserialize)]
    struct File {
        channels: Vec<ChannelFile>,
    }
    let file: File = toml::from_str(toml_text).expect("valid channels");
    check_channels(file.channels).expect("checked channels")
}

fn notify(group_wait_ms: i64, group_interval_ms: i64) -> NotifyConfig {
    NotifyConfig {
        timing: Timing {
            group_by: vec!["alertname".into()],
            group_wait_ms,
            group_interval_ms,
            repeat_interval_ms: 3_600_000,
        },
        retries: 3,
        retry_backoff: Duration::from_millis(100),
        external_url: Some("http://dash.example".into()),
    }
}

/// A webhook receiver: answers 503 to the first `fail_first` requests, then 200, keeping the bodies it took.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(AtomicUsize::new(0));
        let (b, a) = (bodies.clone(), attempts.clone());
        let app = Router::new().route(
            "/hook",
            post(move |axum::Json(body): axum::Json<Value>| {
                let (b, a) = (b.clone(), a.clone());
                async move {
                    if a.fetch_add(1, Ordering::SeqCst) < fail_first {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    b.lock().unwrap().push(body);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook"),
            bodies,
            attempts,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// An SMTP sink: speaks just enough SMTP for a client to deliver, and keeps each message's DATA.
struct SmtpSink {
    addr: std::net::SocketAddr,
    mails: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                let _ = write.write_all(b"354 end with .\r\n").await;
                                let mut data = String::new();
                                while let Ok(Some(l)) = lines.next_line().await {
                                    if l == "." {
                                        break;
                                    }
                                    data.push_str(&l);
                                    data.push('\n');
                                }
                                kept.lock().unwrap().push(data);
                                b"250 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 OK\r\n",
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        SmtpSink { addr, mails }
    }

    fn mails(&self) -> Vec<String> {
        self.mails.lock().unwrap().clone()
    }
}

/// Waits until `check` holds.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} in time"));
}

/// Reads alert events until `n` distinct subjects of `rule` are in `state`.
async fn alerts_in(events: &mut Events, rule: &str, state: AlertState, n: usize) {
    let mut seen = BTreeSet::new();
    tokio::time::timeout(PATIENCE, async {
        while seen.len() < n {
            if let Event::Alert(a) = next_envelope(events).await.1.event
                && a.rule == rule
                && a.state == state
            {
                seen.insert(a.subject);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} {rule} alerts {state:?} in time, saw {seen:?}"));
}

/// The app's state as a new stream starts with it.
async fn snapshot(app: &TestApp) -> shared::Snapshot {
    let mut events = app.events(None).await;
    match next_envelope(&mut events).await.1.event {
        Event::Snapshot(s) => s,
        other => panic!("a stream starts with a snapshot, not {other:?}"),
    }
}

/// The next channel statuses that satisfy `check`.
async fn channels_where(
    events: &mut Events,
    check: impl Fn(&[ChannelStatus]) -> bool,
) -> Vec<ChannelStatus> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match next_envelope(events).await.1.event {
                Event::Channels(list) if check(&list) => return list,
                Event::Snapshot(s) if check(&s.channels) => return s.channels,
                _ => {}
            }
        }
    })
    .await
    .expect("the channel status in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_ten_is_one_message_per_channel_and_its_end_another() {
    let hook = Receiver::start(0).await;
    let smtp = SmtpSink::start().await;
    let body = Arc::new(Mutex::new(exposition(0, 0, 0, 0)));
    let url = serve_metrics(body.clone()).await;
    let targets: Vec<_> = (0..10)
        .map(|i| format!("svc-{i}={url}").parse().unwrap())
        .collect();
    let specs = rules(
        r#"
        [[alerts]]
        name = "slow"
        metric = "http_p95_ms"
        above = 300
        resolve = 200
        severity = "critical"
        labels = { team = "checkout" }
        message = "{subject} p95 is {value} ms"
        "#,
    );
    let outlets = channels(&format!(
        r#"
        [[channels]]
        name = "hook"
        kind = "webhook"
        url = "{}"

        [[channels]]
        name = "mail"
        kind = "email"
        smtp = "{}"
        tls = "none"
        from = "Watchpost <watchpost@example.com>"
        to = ["ops@example.com"]
        "#,
        hook.url, smtp.addr
    ));
    let app = spawn_app_with(move |c| {
        c.sampling.api_interval = Duration::from_millis(300);
        c.sources.scrape = targets;
        c.alerting.rules = specs;
        c.alerting.channels = outlets;
        // The storm arrives within one scrape; a wide interval keeps the ten resolves in one message too.
        c.alerting.notify = notify(1_500, 4_000);
    })
    .await;
    let mut events = app.events(None).await;

    // 100 requests, 10 of them between 200 and 500 ms: p95 is 350 ms on all ten services.
    *body.lock().unwrap() = exposition(50, 90, 100, 100);
    alerts_in(&mut events, "slow", AlertState::Firing, 10).await;
    until("the firing message", || !hook.bodies().is_empty()).await;
    until("the firing email", || !smtp.mails().is_empty()).await;
    // Nothing more while nothing changes (two group intervals).
    tokio::time::sleep(Duration::from_millis(8_500)).await;
    let sent = hook.bodies();
    assert_eq!(sent.len(), 1, "one message for the storm: {sent:#?}");
    let firing = &sent[0];
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["title"], "[FIRING:10] slow");
    assert_eq!(firing["receiver"], "hook");
    assert_eq!(firing["groupLabels"]["alertname"], "slow");
    assert_eq!(firing["commonLabels"]["team"], "checkout");
    let alerts = firing["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 10);
    let services: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["labels"]["service"].as_str().unwrap())
        .collect();
    assert_eq!(services.len(), 10);
    let fingerprints: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(fingerprints.len(), 10);
    assert!(alerts.iter().all(|a| {
        a["status"] == "firing"
            && a["endsAt"] == "0001-01-01T00:00:00Z"
            && a["annotations"]["summary"]
                .as_str()
                .unwrap()
                .ends_with("p95 is 350 ms")
            && a["generatorURL"] == "http://dash.example/alerts?rule=slow"
    }));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "one email for the storm");
    assert!(
        mails[0].contains("Subject: [FIRING:10] slow"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("svc-7"), "{}", mails[0]);

    // 1,000 more requests, all under 100 ms: every service resolves.
    *body.lock().unwrap() = exposition(1050, 1090, 1100, 1100);
    alerts_in(&mut events, "slow", AlertState::Resolved, 10).await;
    until("the resolve message", || hook.bodies().len() >= 2).await;
    until("the resolve email", || smtp.mails().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let sent = hook.bodies();
    assert_eq!(sent.len(), 2, "one resolve message: {:#?}", &sent[1..]);
    let resolved = &sent[1];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["title"], "[RESOLVED] slow");
    let alerts = resolved["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 10);
    assert!(
        alerts
            .iter()
            .all(|a| a["status"] == "resolved" && a["endsAt"] != "0001-01-01T00:00:00Z")
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), 2);
    assert!(
        mails[1].contains("Subject: [RESOLVED] slow"),
        "{}",
        mails[1]
    );
    // Both channels report their deliveries.
    let status = snapshot(&app).await.channels;
    assert!(
        status
            .iter()
            .all(|c| c.state == DeliveryState::Ok && c.sent == 2 && c.failed == 0),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_is_retried_and_a_lost_message_reported() {
    // Answers 503 twice, then takes the third attempt.
    let flaky = Receiver::start(2).await;
    // Nothing listens here.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let specs = rules(
        r#"
        [[alerts]]
        name = "shop-errors"
        metric = "log_errors_per_minute"
        subject = "shop"
        above = 0
        severity = "error"
        "#,
    );
    let outlets = channels(&format!(
        r#"
        [[channels]]
        name = "flaky"
        kind = "webhook"
        url = "{}"

        [[channels]]
        name = "dead"
        kind = "slack"
        url = "http://{dead}/services/T000/B000/XXXX"
        "#,
        flaky.url
    ));
    let app = spawn_app_with(move |c| {
        c.alerting.rules = specs;
        c.alerting.channels = outlets;
        c.alerting.notify = notify(200, 1_000);
    })
    .await;
    let mut events = app.events(None).await;
    let r = app
        .client
        .post(format!("{}/api/ingest/logs", app.base))
        .header("content-type", "application/x-ndjson")
        .body(r#"{"level":"error","service":"shop","message":"payment failed"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    alerts_in(&mut events, "shop-errors", AlertState::Firing, 1).await;
    let done = channels_where(&mut events, |list| {
        list.iter().any(|c| c.name == "flaky" && c.sent == 1)
            && list.iter().any(|c| c.name == "dead" && c.failed == 1)
    })
    .await;
    assert_eq!(flaky.attempts.load(Ordering::SeqCst), 3, "two retries");
    assert_eq!(flaky.bodies().len(), 1);
    let flaky_status = done.iter().find(|c| c.name == "flaky").unwrap();
    assert_eq!(flaky_status.state, DeliveryState::Ok);
    assert!(
        flaky_status
            .last_error
            .as_deref()
            .unwrap()
            .contains("503 Service Unavailable"),
        "{flaky_status:?}"
    );
    let dead_status = done.iter().find(|c| c.name == "dead").unwrap();
    assert_eq!(dead_status.state, DeliveryState::Failing);
    let why = dead_status.last_error.as_deref().unwrap();
    assert!(why.contains("4 attempts failed"), "{why}");
    // The Slack URL is a secret: neither the status nor the error log shows it.
    assert!(
        !why.contains("XXXX") && !dead_status.target.contains("XXXX"),
        "{why}"
    );
    // The error log says so too.
    let logs: shared::LogPage = crate::helpers::get_json(
        &app.client,
        &format!("{}/api/logs?service=watchpost", app.base),
    )
    .await;
    let entry = logs
        .entries
        .iter()
        .find(|e| e.message.contains("channel 'dead' could not deliver"))
        .expect("an error-log entry for the lost message");
    assert_eq!(entry.level, shared::Level::Error);
    assert!(!entry.message.contains("XXXX"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_alerts_and_the_test_button_reach_a_channel() {
    let hook = Receiver::start(0).await;
    let outlets = channels(&format!(
        "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nmin_severity = \"warning\"\n",
        hook.url
    ));
    let app = spawn_app_with(move |c| {
        c.alerting.channels = outlets;
        // Three sign-ins, each hashing a password, fit in the wait.
        c.alerting.notify = notify(3_000, 5_000);
    })
    .await;
    // Failed sign-ins are security alerts (warning): they reach the channel, grouped in one message.
    for _ in 0..3 {
        let r = app
            .anon
            .post(format!("{}/api/login", app.base))
            .form(&[("name", "mallory"), ("password", "guess")])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error() || r.status().is_redirection());
    }
    until("the security message", || {
        hook.bodies()
            .iter()
            .any(|b| b["groupLabels"]["alertname"] == "security")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let security: Vec<Value> = hook
        .bodies()
        .into_iter()
        .filter(|b| b["groupLabels"]["alertname"] == "security")
        .collect();
    assert_eq!(security.len(), 1, "{security:#?}");
    let kinds: BTreeSet<&str> = security[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains("failed_login"), "{kinds:?}");
    let mallory = security[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["user"] == "mallory")
        .expect("mallory's failed sign-ins");
    assert_eq!(mallory["status"], "firing");
    let r = app
        .client
        .post(format!("{}/api/test_channel", app.base))
        .form(&[("name", "hook")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let said: String = r.json().await.unwrap();
    assert!(said.starts_with("sent to 127.0.0.1:"), "{said}");
    let sent = hook.bodies();
    let test = sent.last().unwrap();
    assert_eq!(test["alerts"][0]["labels"]["alertname"], "TestAlert");
    assert!(
        test["alerts"][0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("sent by admin")
    );
    let r = app
        .client
        .post(format!("{}/api/test_channel", app.base))
        .form(&[("name", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    add_user(app.data_dir(), "olga", Role::Operator, PASSWORD).await;
    let olga = sign_in(&app.base, "olga", PASSWORD).await;
    let r = olga
        .post(format!("{}/api/test_channel", app.base))
        .form(&[("name", "hook")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "operators may not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_written_on_the_alerts_page_are_checked_kept_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let declared = rules("[[alerts]]\nname = \"cpu-high\"\nmetric = \"cpu\"\nabove = 90\n");
    let d = declared.clone();
    let app = spawn_app_in(dir.path(), move |c| c.alerting.rules = d).await;
    let mut events = app.events(None).await;
    let form = |name: &str, threshold: &str| {
        vec![
            ("name", name.to_owned()),
            ("metric", "log_errors_per_minute".into()),
            ("subject", "shop".into()),
            ("comparison", "above".into()),
            ("threshold", threshold.to_owned()),
            ("resolve", "".into()),
            ("for_", "".into()),
            // The error count is in memory: after the restart below it is 0, and the alert must stay open
            // until the rule is removed.
            ("clear_after", "1000".into()),
            ("severity", "critical".into()),
            ("labels", "team=checkout".into()),
            ("message", "{subject}: {value} errors".into()),
        ]
    };
    let save = |form: Vec<(&'static str, String)>| {
        app.client
            .post(format!("{}/api/save_alert_rule", app.base))
            .form(&form)
            .send()
    };
    let r = save(form("shop-errors", "many")).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("threshold must be a number, got 'many'")
    );
    let r = save(form("cpu-high", "5")).await.unwrap();
    assert_eq!(r.status(), 409, "a rule of the configuration file");
    let r = save(form("shop-errors", "5")).await.unwrap();
    assert_eq!(r.status(), 200);
    let rules_now = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::AlertRules(list) = next_envelope(&mut events).await.1.event
                && list.iter().any(|r| r.name == "shop-errors")
            {
                return list;
            }
        }
    })
    .await
    .expect("the new rule reaches the stream");
    let added = rules_now.iter().find(|r| r.name == "shop-errors").unwrap();
    assert_eq!(added.source, RuleSource::Dashboard);
    assert_eq!(added.condition.clear_after, 1000);
    assert_eq!(rules_now[0].source, RuleSource::Config);
    // A viewer may not write rules.
    add_user(app.data_dir(), "vera", Role::Viewer, PASSWORD).await;
    let vera = sign_in(&app.base, "vera", PASSWORD).await;
    let r = vera
        .post(format!("{}/api/save_alert_rule", app.base))
        .form(&form("x", "1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The rule fires like a declared one.
    let r = app
        .client
        .post(format!("{}/api/ingest/logs", app.base))
        .header("content-type", "application/x-ndjson")
        .body(
            (0..6)
                .map(|_| r#"{"level":"error","service":"shop","message":"boom"}"#)
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    alerts_in(&mut events, "shop-errors", AlertState::Firing, 1).await;

    // It outlives a restart.
    app.stop().await;
    let d = declared.clone();
    let app = spawn_app_in(dir.path(), move |c| c.alerting.rules = d).await;
    let snapshot = snapshot(&app).await;
    assert!(
        snapshot
            .alert_rules
            .iter()
            .any(|r| r.name == "shop-errors" && r.source == RuleSource::Dashboard)
    );
    // Removing it resolves its open alert.
    let mut events = app.events(None).await;
    let r = app
        .client
        .post(format!("{}/api/delete_alert_rule", app.base))
        .form(&[("name", "shop-errors")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    alerts_in(&mut events, "shop-errors", AlertState::Resolved, 1).await;
    let r = app
        .client
        .post(format!("{}/api/delete_alert_rule", app.base))
        .form(&[("name", "shop-errors")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .client
        .post(format!("{}/api/delete_alert_rule", app.base))
        .form(&[("name", "cpu-high")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // The history filters by rule and state.
    let history: Vec<shared::Alert> = crate::helpers::get_json(
        &app.client,
        &format!("{}/api/alerts?rule=shop-errors&state=resolved", app.base),
    )
    .await;
    assert_eq!(history.len(), 1);
}

/// A webhook on https whose certificate a private CA signed is reached with the channel's `ca_file`, and
/// refused, saying why, without it; a `ca_file` on an http URL is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_is_reached_with_its_ca_file_and_refused_without_it() {
    let tls = crate::interop::serve_https(String::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let outlets = channels(&format!(
        "[[channels]]\nname = \"private\"\nkind = \"webhook\"\nurl = \"{url}\"\nca_file = \"{ca}\"\n\n\
         [[channels]]\nname = \"public\"\nkind = \"webhook\"\nurl = \"{url}\"\n",
        url = tls.url,
        ca = ca.display()
    ));
    let app = spawn_app_with(move |c| c.alerting.channels = outlets).await;
    let test = |name: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/api/test_channel", app.base))
                .form(&[("name", name)])
                .send()
                .await
                .unwrap()
        }
    };
    let r = test("private").await;
    assert_eq!(r.status(), 200);
    let said: String = r.json().await.unwrap();
    assert!(said.starts_with("sent to localhost:"), "{said}");
    let r = test("public").await;
    assert_eq!(r.status(), 503);
    let said = r.text().await.unwrap();
    assert!(said.contains("UnknownIssuer"), "says why: {said}");

    #[derive(serde::Deserialize)]
    struct File {
        channels: Vec<ChannelFile>,
    }
    let plain: File = toml::from_str(&format!(
        "[[channels]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nca_file = \"{}\"\n",
        ca.display()
    ))
    .unwrap();
    let e = check_channels(plain.channels).unwrap_err();
    assert!(e.contains("ca_file is for an https:// URL"), "{e}");
}
