//! Security alerts as real sources: failed sign-ins and the lockout, a sign-in from a new address, a
//! forbidden action, an invalid token; who sees them, and acknowledging them.

use crate::helpers::{
    ADMIN, Events, PASSWORD, PATIENCE, add_user, get_json, http_client, next_envelope, sign_in,
    spawn_app, spawn_app_in, spawn_app_with, stream_of,
};
use serde_json::{Value, json};
use shared::{Event, Role, SecurityAlert, SecurityKind, Severity};
use std::time::Duration;

/// The next `security` event on `events`, failing the test after the patience period.
async fn next_alert(events: &mut Events) -> SecurityAlert {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let (
                _,
                shared::Envelope {
                    event: Event::Security(alert),
                    ..
                },
            ) = next_envelope(events).await
            {
                return alert;
            }
        }
    })
    .await
    .expect("a security alert in time")
}

/// Security alerts that arrive within `window`.
async fn alerts_within(events: &mut Events, window: Duration) -> Vec<SecurityAlert> {
    let mut found = Vec::new();
    let _ = tokio::time::timeout(window, async {
        loop {
            if let (
                _,
                shared::Envelope {
                    event: Event::Security(alert),
                    ..
                },
            ) = next_envelope(events).await
            {
                found.push(alert);
            }
        }
    })
    .await;
    found
}

/// A client whose connections come from `ip` (another loopback address stands for another machine).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

async fn login(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/api/login"))
        .json(&json!({ "name": name, "password": password }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_raise_alerts_and_lock_out_after_the_limit() {
    let app = spawn_app_with(|c| c.auth.lockout.after = 3).await;
    add_user(app.data_dir(), "vera", Role::Viewer, PASSWORD).await;
    let vera = sign_in(&app.base, "vera", PASSWORD).await;
    let mut admin_events = app.events(None).await;
    let attacker = http_client();
    for attempt in 1..=2 {
        let r = login(
            &attacker,
            &app.base,
            ADMIN,
            &format!("guess-{attempt}-secret"),
        )
        .await;
        assert_eq!(r.status(), 401);
        let alert = next_alert(&mut admin_events).await;
        assert_eq!(
            (alert.kind, alert.severity),
            (SecurityKind::FailedLogin, Severity::Warning)
        );
        assert_eq!(alert.user.as_deref(), Some(ADMIN));
        assert_eq!(alert.ip.as_deref(), Some("127.0.0.1"));
        assert!(
            !alert.message.contains("secret"),
            "no password in an alert: {}",
            alert.message
        );
    }
    // The third failure locks the name and the address out, with one critical alert.
    assert_eq!(
        login(&attacker, &app.base, ADMIN, "guess-3-secret")
            .await
            .status(),
        401
    );
    assert_eq!(
        next_alert(&mut admin_events).await.kind,
        SecurityKind::FailedLogin
    );
    let lockout = next_alert(&mut admin_events).await;
    assert_eq!(
        (lockout.kind, lockout.severity),
        (SecurityKind::BruteForce, Severity::Critical)
    );
    assert!(
        lockout.message.contains("locked for 15m"),
        "{}",
        lockout.message
    );
    // Even the right password is refused while locked.
    let r = login(&attacker, &app.base, ADMIN, PASSWORD).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("try again in 15 minutes"),
        "{body}"
    );

    // A viewer's stream carries none of it, and its snapshot holds no alerts.
    let mut viewer = stream_of(&vera, &app.base, None).await;
    let (_, first) = next_envelope(&mut viewer).await;
    let Event::Snapshot(snapshot) = first.event else {
        panic!("a snapshot first")
    };
    assert!(snapshot.security.is_empty());
    let (_, admin_first) = next_envelope(&mut app.events(None).await).await;
    let Event::Snapshot(admin_snapshot) = admin_first.event else {
        panic!("a snapshot first")
    };
    assert_eq!(
        admin_snapshot.security.len(),
        4,
        "the admin's snapshot has all four"
    );
    // A failure from another address (this one is locked): the admin hears of it, the viewer does not.
    let elsewhere = client_from([127, 0, 0, 3]);
    assert_eq!(
        login(&elsewhere, &app.base, "vera", "wrong password")
            .await
            .status(),
        401
    );
    let alert = next_alert(&mut admin_events).await;
    assert_eq!(
        (alert.kind, alert.user.as_deref()),
        (SecurityKind::FailedLogin, Some("vera"))
    );
    assert!(
        alerts_within(&mut viewer, Duration::from_secs(1))
            .await
            .is_empty()
    );
    // Nor does the error log, which viewers read: no sign-in line names a user or an address there.
    let page: Value = get_json(&vera, &format!("{}/api/logs?service=watchpost", app.base)).await;
    let text = page.to_string();
    for secret in ["127.0.0.", "vera", "sign-in"] {
        assert!(!text.contains(secret), "{secret} in the error log: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_action_and_an_invalid_token_raise_alerts() {
    let app = spawn_app().await;
    add_user(app.data_dir(), "vera", Role::Viewer, PASSWORD).await;
    let vera = sign_in(&app.base, "vera", PASSWORD).await;
    let mut events = app.events(None).await;

    let r = vera
        .post(format!("{}/api/acknowledge_security", app.base))
        .form(&[("id", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let alert = next_alert(&mut events).await;
    assert_eq!(
        (alert.kind, alert.user.as_deref()),
        (SecurityKind::Forbidden, Some("vera"))
    );
    assert!(
        alert.message.contains("acknowledge alerts"),
        "{}",
        alert.message
    );

    let r = vera
        .post(format!("{}/api/ingest/logs", app.base))
        .json(&json!({ "level": "info", "service": "s", "message": "m" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        next_alert(&mut events)
            .await
            .message
            .contains("ingest logs")
    );

    // A bad token: refused each time, reported once a minute per address.
    for _ in 0..3 {
        let r = http_client()
            .post(format!("{}/api/ingest/logs", app.base))
            .bearer_auth("wpt_0000000000000000000000000000000000000000000000000000000000000000")
            .json(&json!({ "level": "info", "service": "s", "message": "m" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let alerts = alerts_within(&mut events, Duration::from_secs(1)).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, SecurityKind::InvalidToken);
    assert!(
        !alerts[0].message.contains("wpt_"),
        "the token is not repeated: {}",
        alerts[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_from_a_new_address_raises_an_alert() {
    let app = spawn_app().await; // the admin has signed in from 127.0.0.1
    let mut events = app.events(None).await;
    // Another loopback address stands for another machine.
    let elsewhere = client_from([127, 0, 0, 2]);
    assert_eq!(
        login(&elsewhere, &app.base, ADMIN, PASSWORD).await.status(),
        200
    );
    let alert = next_alert(&mut events).await;
    assert_eq!(alert.kind, SecurityKind::NewAddress);
    assert_eq!(alert.ip.as_deref(), Some("127.0.0.2"));
    // The same address again is not news.
    assert_eq!(
        login(&elsewhere, &app.base, ADMIN, PASSWORD).await.status(),
        200
    );
    assert!(
        alerts_within(&mut events, Duration::from_secs(1))
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_acknowledges_and_every_stream_sees_it_even_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let app = spawn_app_in(data.path(), |_| {}).await;
    add_user(data.path(), "olga", Role::Operator, PASSWORD).await;
    let olga = sign_in(&app.base, "olga", PASSWORD).await;
    let mut admin_events = app.events(None).await;
    let _ = login(&http_client(), &app.base, "olga", "wrong password").await;
    let alert = next_alert(&mut admin_events).await;

    let r = olga
        .post(format!("{}/api/acknowledge_security", app.base))
        .form(&[("id", alert.id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let acked = next_alert(&mut admin_events).await;
    assert_eq!(acked.id, alert.id);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("olga"));
    let r = olga
        .post(format!("{}/api/acknowledge_security", app.base))
        .form(&[("id", "999999")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;

    // After a restart the alert, acknowledged, is in the snapshot.
    let app = spawn_app_in(data.path(), |_| {}).await;
    let (_, first) = next_envelope(&mut app.events(None).await).await;
    let Event::Snapshot(snapshot) = first.event else {
        panic!("a snapshot first")
    };
    let kept = snapshot
        .security
        .iter()
        .find(|a| a.id == alert.id)
        .expect("kept");
    assert_eq!(kept.acknowledged_by.as_deref(), Some("olga"));
}

/// Failures from one address lock that address, and the name for addresses its user never signed in from;
/// the user's own address stays open, and `watchpost user unlock` lifts the name's locks at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_never_shuts_a_user_out_of_their_own_address() {
    let app = spawn_app_with(|c| c.auth.lockout.after = 3).await;
    // The admin signed in from 127.0.0.1 when the app started: a known address.
    let attacker = client_from([127, 0, 0, 5]);
    for _ in 0..3 {
        assert_eq!(
            login(&attacker, &app.base, ADMIN, "a wrong guess")
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        login(&attacker, &app.base, ADMIN, PASSWORD).await.status(),
        429,
        "the guessing address is locked"
    );
    assert_eq!(
        login(&attacker, &app.base, "someone-else", "x")
            .await
            .status(),
        429,
        "for every name"
    );
    let stranger = client_from([127, 0, 0, 6]);
    assert_eq!(
        login(&stranger, &app.base, ADMIN, PASSWORD).await.status(),
        429,
        "the name is locked for addresses its user has not signed in from"
    );
    let own = client_from([127, 0, 0, 1]);
    assert_eq!(
        login(&own, &app.base, ADMIN, PASSWORD).await.status(),
        200,
        "the admin's own address is not locked by failures elsewhere"
    );

    let unlock = std::process::Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["user", "unlock", ADMIN])
        .env("WATCHPOST_DATA_DIR", app.data_dir())
        .env_remove("WATCHPOST_CONFIG")
        .output()
        .expect("the binary runs");
    let said = String::from_utf8_lossy(&unlock.stdout);
    // The name's lock for unknown addresses, and its lock from the guessing address.
    assert!(
        unlock.status.success() && said.contains("lifted 2"),
        "{said}"
    );
    assert_eq!(
        login(&stranger, &app.base, ADMIN, PASSWORD).await.status(),
        200,
        "unlocked at once, without a restart"
    );
}

/// A burst of concurrent wrong guesses is counted before any password is checked: at most the limit of
/// them reach the check, whatever their number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_guesses_gets_at_most_the_limit_of_password_checks() {
    let app = spawn_app_with(|c| c.auth.lockout.after = 5).await;
    let mut admin_events = app.events(None).await;
    let attacker = client_from([127, 0, 0, 7]);
    let guesses = (0..80).map(|i| {
        let attacker = attacker.clone();
        let base = app.base.clone();
        async move {
            login(&attacker, &base, ADMIN, &format!("guess number {i}"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| matches!(**s, 429 | 503)).count();
    assert!(checked <= 5, "{checked} passwords checked: {statuses:?}");
    assert_eq!(checked + refused, 80, "{statuses:?}");
    let failed = alerts_within(&mut admin_events, Duration::from_secs(2))
        .await
        .into_iter()
        .filter(|a| a.kind == SecurityKind::FailedLogin)
        .count();
    assert_eq!(failed, checked, "one failed sign-in alert per check");
}

/// Behind a trusted proxy, the client's address comes from its `X-Forwarded-For`; from anyone else the
/// header is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_trusted_proxy_says_who_the_client_is() {
    let app = spawn_app_with(|c| {
        c.server.trusted_proxies = vec!["127.0.0.9/32".parse().unwrap()];
    })
    .await;
    let mut admin_events = app.events(None).await;
    for (from, expected) in [
        ([127, 0, 0, 9], "203.0.113.5"),
        ([127, 0, 0, 10], "127.0.0.10"),
    ] {
        let r = client_from(from)
            .post(format!("{}/api/login", app.base))
            .header("x-forwarded-for", "203.0.113.5")
            .json(&json!({ "name": "nobody", "password": "wrong password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let alert = next_alert(&mut admin_events).await;
        assert_eq!(alert.ip.as_deref(), Some(expected), "{alert:?}");
    }
}
