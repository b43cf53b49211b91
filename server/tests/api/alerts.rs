//! Alert rules on real readings: the error log's rate (entries the test ingests) and a served Prometheus
//! endpoint's p95 (a scrape target the test controls) fire, are acknowledged in every tab, and resolve.

use crate::helpers::{
    Events, PASSWORD, PATIENCE, TestApp, add_user, get_json, next_envelope, sign_in,
    spawn_app_with, stream_of,
};
use crate::scrape::{exposition, serve_metrics};
use serde_json::json;
use server::testing::{AlertRuleFile, check_rules};
use shared::{Alert, AlertState, Event, Role};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `[[alerts]]` tables, checked as the configuration file's are.
pub(crate) fn rules(toml_text: &str) -> Vec<shared::AlertRule> {
    #[derive(serde::Deserialize)]
    struct File {
        alerts: Vec<AlertRuleFile>,
    }
    let file: File = toml::from_str(toml_text).expect("valid rules");
    check_rules(file.alerts).expect("checked rules")
}

/// The next alert event of `rule` in `state`.
async fn alert_in(events: &mut Events, rule: &str, state: AlertState) -> Alert {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Alert(alert) = next_envelope(events).await.1.event
                && alert.rule == rule
                && alert.state == state
            {
                return alert;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{rule} {state:?} in time"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_storm_fires_a_rule_and_an_acknowledgement_reaches_every_tab() {
    let specs = rules(
        r#"
        [[alerts]]
        name = "shop-errors"
        metric = "log_errors_per_minute"
        subject = "shop"
        above = 3
        severity = "critical"
        labels = { team = "checkout" }
        message = "{subject}: {value} errors in the last minute"
        "#,
    );
    let app: TestApp = spawn_app_with(move |c| c.alerting.rules = specs).await;
    add_user(app.data_dir(), "vera", Role::Viewer, PASSWORD).await;
    let vera = sign_in(&app.base, "vera", PASSWORD).await;
    let mut admin_events = app.events(None).await;
    let mut viewer_events = stream_of(&vera, &app.base, None).await;

    // Three errors are not more than three; the fourth is; warnings and other services do not count.
    let line = |service: &str, level: &str| {
        json!({ "level": level, "service": service, "message": "payment failed" }).to_string()
    };
    let mut body: Vec<String> = (0..3).map(|_| line("shop", "error")).collect();
    body.extend([line("shop", "warn"), line("blog", "critical")]);
    let ingest = |body: Vec<String>| {
        app.client
            .post(format!("{}/api/ingest/logs", app.base))
            .header("content-type", "application/x-ndjson")
            .body(body.join("\n"))
            .send()
    };
    assert_eq!(ingest(body).await.unwrap().status(), 200);
    assert_eq!(
        ingest(vec![line("shop", "critical")])
            .await
            .unwrap()
            .status(),
        200
    );
    let fired = alert_in(&mut admin_events, "shop-errors", AlertState::Firing).await;
    assert_eq!(
        (
            fired.subject.as_str(),
            fired.value,
            fired.message.as_str(),
            fired.severity
        ),
        (
            "shop",
            4.0,
            "shop: 4 errors in the last minute",
            shared::Severity::Critical
        )
    );
    assert_eq!(fired.labels["team"], "checkout");

    // An operator (the admin here) acknowledges; the viewer's tab sees it too.
    let r = app
        .client
        .post(format!("{}/api/acknowledge_alert", app.base))
        .form(&[("id", fired.id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Alert(a) = next_envelope(&mut viewer_events).await.1.event
                && a.id == fired.id
                && a.acknowledged_by.is_some()
            {
                return a;
            }
        }
    })
    .await
    .expect("the acknowledgement reaches the viewer's tab");
    assert_eq!(seen.acknowledged_by.as_deref(), Some(crate::helpers::ADMIN));
    // A viewer may not acknowledge or silence.
    for (name, form) in [
        ("acknowledge_alert", vec![("id", fired.id.to_string())]),
        (
            "silence_alert",
            vec![("id", fired.id.to_string()), ("minutes", "60".into())],
        ),
    ] {
        let r = vera
            .post(format!("{}/api/{name}", app.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}");
    }
    let r = app
        .client
        .post(format!("{}/api/silence_alert", app.base))
        .form(&[("id", fired.id.to_string()), ("minutes", "60".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let silenced: Alert = r.json().await.unwrap();
    assert!(silenced.silenced_until_ms.is_some());
    // Both are in the audit trail.
    let trail: shared::AuditPage = get_json(
        &app.client,
        &format!("{}/api/audit?action=alert.", app.base),
    )
    .await;
    assert_eq!(trail.entries.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_scrape_target_fires_a_latency_rule_that_resolves_when_it_is_fast_again() {
    let body = Arc::new(Mutex::new(exposition(0, 0, 0, 0)));
    let url = serve_metrics(body.clone()).await;
    let specs = rules(
        r#"
        [[alerts]]
        name = "shop-slow"
        metric = "http_p95_ms"
        subject = "shop"
        above = 300
        resolve = 200
        message = "{subject} p95 is {value} ms"
        "#,
    );
    let target = format!("shop={url}");
    let app = spawn_app_with(move |c| {
        c.sampling.api_interval = Duration::from_millis(300);
        c.sources.scrape = vec![target.parse().unwrap()];
        c.alerting.rules = specs;
    })
    .await;
    let mut events = app.events(None).await;
    // 100 requests, 10 of them between 200 and 500 ms: p95 is 350 ms.
    *body.lock().unwrap() = exposition(50, 90, 100, 100);
    let fired = alert_in(&mut events, "shop-slow", AlertState::Firing).await;
    assert!((fired.value - 350.0).abs() < 1e-6, "{}", fired.value);
    // 1,000 more, all under 100 ms: p95 of the next interval is under the resolve threshold.
    *body.lock().unwrap() = exposition(1050, 1090, 1100, 1100);
    let resolved = alert_in(&mut events, "shop-slow", AlertState::Resolved).await;
    assert_eq!(resolved.id, fired.id);
    assert!((resolved.peak - 350.0).abs() < 1e-6);
    assert!(resolved.resolved_ms.is_some() && resolved.fired_ms.is_some());
    // The history keeps it.
    let history: Vec<Alert> = get_json(
        &app.client,
        &format!("{}/api/alerts?rule=shop-slow&state=resolved", app.base),
    )
    .await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, fired.id);
    let r = app
        .client
        .get(format!("{}/api/alerts?state=loud", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
