//! What each kind of channel is sent for a batch: Grafana's webhook JSON, a Slack message, an email.

use super::group::Batch;
use super::notice::{Notice, NoticeStatus};
use crate::clock::rfc3339;
use serde_json::{Value, json};
use shared::value_text as number;
use std::collections::BTreeMap;

/// What Grafana writes for an alert that has not ended.
const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

/// `[FIRING:3] cpu-high`, `[RESOLVED] cpu-high`: the subject line of every kind.
pub fn title(batch: &Batch) -> String {
    let names: Vec<&str> = batch.group_labels.values().map(String::as_str).collect();
    let what = if names.is_empty() {
        "alerts".to_owned()
    } else {
        names.join(" ")
    };
    match batch.firing() {
        0 => format!("[RESOLVED] {what}"),
        n => format!("[FIRING:{n}] {what}"),
    }
}

/// An email subject: one line (a header cannot hold a line break; lettre would encode one, but a mail client
/// may still show it as a second header), control characters dropped, bounded.
pub fn subject(batch: &Batch) -> String {
    title(batch)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// Text for Slack's `mrkdwn`: `&`, `<` and `>` escaped as Slack asks, so text that came from a user (a
/// typed user name in a security alert, a label) cannot become `<!channel>`, a mention or a disguised link.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn link(external_url: &str, notice: &Notice) -> String {
    format!("{}{}", external_url.trim_end_matches('/'), notice.path)
}

/// The plain-text body: firing alerts, then resolved ones, each with its summary, value and times.
pub fn text(batch: &Batch, external_url: &str) -> String {
    let mut out = String::new();
    for (status, heading) in [
        (NoticeStatus::Firing, "Firing"),
        (NoticeStatus::Resolved, "Resolved"),
    ] {
        let alerts: Vec<&Notice> = batch.alerts.iter().filter(|a| a.status == status).collect();
        if alerts.is_empty() {
            continue;
        }
        out.push_str(&format!("{heading}:\n"));
        for a in alerts {
            out.push_str(&format!("- {}: {}\n", a.title(), a.summary()));
            if let Some(v) = a.value {
                out.push_str(&format!("  value {}", number(v)));
                if let Some(t) = a.annotations.get("threshold") {
                    out.push_str(&format!(", threshold {t}"));
                }
                out.push('\n');
            }
            out.push_str(&format!("  since {}", rfc3339(a.starts_ms)));
            if let Some(end) = a.ends_ms {
                out.push_str(&format!(", until {}", rfc3339(end)));
            }
            out.push('\n');
            out.push_str(&format!("  {}\n", link(external_url, a)));
        }
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// The labels (or annotations) every alert of the batch shares.
fn common(
    batch: &Batch,
    of: impl Fn(&Notice) -> &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut alerts = batch.alerts.iter();
    let Some(first) = alerts.next() else {
        return BTreeMap::new();
    };
    let mut shared = of(first).clone();
    for a in alerts {
        shared.retain(|k, v| of(a).get(k) == Some(v));
    }
    shared
}

/// Grafana's webhook notifier's JSON (Alertmanager's webhook with Grafana's additions).
pub fn webhook(batch: &Batch, receiver: &str, external_url: &str) -> Value {
    let status = batch.status().as_str();
    let alerts: Vec<Value> = batch
        .alerts
        .iter()
        .map(|a| {
            let mut values = serde_json::Map::new();
            if let Some(v) = a.value {
                values.insert("value".into(), json!(v));
            }
            json!({
                "status": a.status.as_str(),
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_ms),
                "endsAt": a.ends_ms.map_or_else(|| NOT_ENDED.to_owned(), rfc3339),
                "generatorURL": link(external_url, a),
                "fingerprint": a.fingerprint,
                "silenceURL": link(external_url, a),
                "dashboardURL": format!("{}/", external_url.trim_end_matches('/')),
                "panelURL": "",
                "values": values,
                "valueString": a.value.map(|v| format!("[ var='value' value={} ]", number(v))).unwrap_or_default(),
            })
        })
        .collect();
    json!({
        "receiver": receiver,
        "status": status,
        "orgId": 1,
        "alerts": alerts,
        "groupLabels": batch.group_labels,
        "commonLabels": common(batch, |a| &a.labels),
        "commonAnnotations": common(batch, |a| &a.annotations),
        "externalURL": external_url,
        "version": "1",
        "groupKey": batch.group_key,
        "truncatedAlerts": 0,
        "title": title(batch),
        "state": if batch.firing() > 0 { "alerting" } else { "ok" },
        "message": text(batch, external_url),
    })
}

/// A Slack incoming-webhook message: the title, and an attachment coloured by the worst severity.
pub fn slack(batch: &Batch, external_url: &str) -> Value {
    let color = match batch
        .alerts
        .iter()
        .filter(|a| a.status == NoticeStatus::Firing)
        .map(|a| a.severity)
        .max()
    {
        None => "good",
        Some(shared::Severity::Info) => "#439fe0",
        Some(shared::Severity::Warning) => "warning",
        Some(_) => "danger",
    };
    let title = slack_escape(&title(batch));
    json!({
        "username": "Watchpost",
        "text": title,
        "attachments": [{
            "color": color,
            "title": title,
            "title_link": batch.alerts.first().map(|a| link(external_url, a)),
            "text": slack_escape(&text(batch, external_url)),
            "footer": "Watchpost",
            "ts": batch.alerts.iter().map(|a| a.starts_ms).max().unwrap_or(0) / 1000,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::notice::fingerprint;

    fn batch(statuses: &[NoticeStatus]) -> Batch {
        let alerts = statuses
            .iter()
            .enumerate()
            .map(|(i, status)| {
                let labels = BTreeMap::from([
                    ("alertname".to_string(), "cpu-high".to_string()),
                    ("host".to_string(), format!("web-{i}")),
                    ("team".to_string(), "ops".to_string()),
                ]);
                Notice {
                    fingerprint: fingerprint(&labels),
                    status: *status,
                    labels,
                    annotations: BTreeMap::from([(
                        "summary".to_string(),
                        format!("web-{i}: CPU at 95%"),
                    )]),
                    severity: shared::Severity::Critical,
                    starts_ms: 1_764_000_000_000,
                    ends_ms: (*status == NoticeStatus::Resolved).then_some(1_764_000_060_000),
                    value: Some(95.0),
                    silenced_until_ms: None,
                    acknowledged: false,
                    one_off: false,
                    path: "/alerts?rule=cpu-high".into(),
                }
            })
            .collect();
        Batch {
            group_key: "{}:{alertname=\"cpu-high\"}".into(),
            group_labels: BTreeMap::from([("alertname".to_string(), "cpu-high".to_string())]),
            alerts,
        }
    }

    #[test]
    fn the_webhook_body_is_shaped_like_grafanas() {
        use NoticeStatus::*;
        let body = webhook(
            &batch(&[Firing, Firing, Resolved]),
            "ops",
            "http://dash:3000",
        );
        assert_eq!(body["status"], "firing");
        assert_eq!(body["title"], "[FIRING:2] cpu-high");
        assert_eq!(body["alerts"].as_array().unwrap().len(), 3);
        let first = &body["alerts"][0];
        assert_eq!(first["endsAt"], NOT_ENDED);
        assert_eq!(first["startsAt"], "2025-11-24T16:00:00Z");
        assert_eq!(first["fingerprint"].as_str().unwrap().len(), 16);
        assert_eq!(
            first["generatorURL"],
            "http://dash:3000/alerts?rule=cpu-high"
        );
        assert_eq!(body["alerts"][2]["endsAt"], "2025-11-24T16:01:00Z");
        assert_eq!(body["commonLabels"]["team"], "ops");
        assert!(body["commonLabels"].get("host").is_none());
        let resolved = webhook(&batch(&[Resolved]), "ops", "http://dash:3000");
        assert_eq!(
            (resolved["status"].as_str(), resolved["state"].as_str()),
            (Some("resolved"), Some("ok"))
        );
    }

    #[test]
    fn slack_and_email_text_name_every_alert() {
        use NoticeStatus::*;
        let b = batch(&[Firing, Resolved]);
        let message = slack(&b, "http://dash:3000");
        assert_eq!(message["attachments"][0]["color"], "danger");
        let body = text(&b, "http://dash:3000");
        assert!(
            body.contains("Firing:\n- cpu-high (web-0): web-0: CPU at 95%"),
            "{body}"
        );
        assert!(body.contains("Resolved:\n- cpu-high (web-1)"), "{body}");
    }

    #[test]
    fn text_from_users_cannot_mention_link_or_break_a_subject() {
        let mut b = batch(&[NoticeStatus::Firing]);
        b.group_labels.insert(
            "alertname".into(),
            "<!channel> <https://evil.example|click> &amp;\r\nBcc: x@y".into(),
        );
        b.alerts[0].annotations.insert(
            "summary".into(),
            "failed sign-in as '<!here>' from 10.0.0.1".into(),
        );
        let message = slack(&b, "http://dash:3000");
        let all = message.to_string();
        for raw in ["<!channel>", "<!here>", "<https://evil"] {
            assert!(!all.contains(raw), "{raw} in {all}");
        }
        assert!(
            message["text"]
                .as_str()
                .unwrap()
                .contains("&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp;amp;"),
            "{message}"
        );
        let subject = subject(&b);
        assert!(
            !subject.contains('\n') && !subject.contains('\r'),
            "{subject:?}"
        );
    }
}
