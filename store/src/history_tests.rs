//! The behaviour every engine's [`Store`] must have, one test body each, run on SQLite and on PostgreSQL
//! (a throw-away database per test): the engines differ in dialect and in who may write at once, never in
//! what a reader gets back.

use crate::plan::Retention;
use crate::{Accounts, HOUR, MINUTE, NewLog, ROLLUP_DELAY_MS, ReaderScope, Store};
use shared::{HistoryPoint, Level, LogFilter, Tier};
use std::time::Duration;

pub(crate) const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR;

pub(crate) fn singles(name: &str, from: i64, values: &[f64]) -> Vec<(String, HistoryPoint)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            (
                name.to_owned(),
                HistoryPoint::single(from + i as i64 * 1000, v),
            )
        })
        .collect()
}

fn new_log(t_ms: i64, level: Level, service: &str, message: &str) -> NewLog {
    NewLog {
        t_ms,
        level,
        service: service.into(),
        message: message.into(),
        fields: [("k".to_string(), "v".to_string())].into(),
    }
}

async fn minute_and_hour_rollups_are_exact_on_known_data(s: &impl Store) {
    // Two hours of one reading a second: value = second of the minute, except one spike.
    let mut values: Vec<f64> = (0..7200).map(|i| (i % 60) as f64).collect();
    values[61] = 1000.0;
    s.append(&singles("m", T0, &values)).await.unwrap();
    let done = s
        .maintain(T0 + 2 * HOUR + ROLLUP_DELAY_MS, &Retention::default())
        .await
        .unwrap();
    assert_eq!(done.minutes_rolled, 120);
    assert_eq!(done.hours_rolled, 2);
    assert_eq!(done.chunks_sealed, 2);

    let minutes = s
        .read(
            "m",
            Tier::Minute,
            (T0, T0 + 2 * HOUR),
            Tier::Minute.resolution_ms(),
        )
        .await
        .unwrap();
    assert_eq!(minutes.len(), 120);
    assert_eq!(
        (
            minutes[0].t_ms,
            minutes[0].min,
            minutes[0].max,
            minutes[0].avg,
            minutes[0].count
        ),
        (T0, 0.0, 59.0, 29.5, 60)
    );
    // The spike replaced a 1 in the second minute.
    assert_eq!(minutes[1].max, 1000.0);
    assert!((minutes[1].avg - (1770.0 - 1.0 + 1000.0) / 60.0).abs() < 1e-9);

    let hours = s
        .read(
            "m",
            Tier::Hour,
            (T0, T0 + 2 * HOUR),
            Tier::Hour.resolution_ms(),
        )
        .await
        .unwrap();
    assert_eq!(hours.len(), 2);
    assert_eq!(
        (hours[0].min, hours[0].max, hours[0].count),
        (0.0, 1000.0, 3600)
    );
    assert!((hours[0].avg - (29.5 * 3600.0 + 999.0) / 3600.0).abs() < 1e-9);
    assert_eq!((hours[1].max, hours[1].avg), (59.0, 29.5));

    // Sealed seconds read back exactly, across the chunk boundary.
    let seconds = s
        .read(
            "m",
            Tier::Second,
            (T0, T0 + 2 * HOUR),
            Tier::Second.resolution_ms(),
        )
        .await
        .unwrap();
    assert_eq!(seconds.len(), 7200);
    assert!(seconds.iter().zip(&values).all(|(p, v)| p.avg == *v));
}

async fn a_coarse_read_buckets_sealed_and_open_points_alike(s: &impl Store) {
    // 1h 30m of 0, 1, 2, …: the first hour is sealed into a chunk, the rest stays open rows.
    let values: Vec<f64> = (0..5400).map(f64::from).collect();
    s.append(&singles("m", T0, &values)).await.unwrap();
    let done = s
        .maintain(T0 + 90 * MINUTE, &Retention::default())
        .await
        .unwrap();
    assert_eq!(done.chunks_sealed, 1);
    // Buckets of 4 s straddle nothing: each holds 4 consecutive seconds.
    let got = s
        .read("m", Tier::Second, (T0, T0 + 2 * HOUR), 4_000)
        .await
        .unwrap();
    assert_eq!(got.len(), 1350);
    for (i, p) in got.iter().enumerate() {
        let first = i as f64 * 4.0;
        assert_eq!(p.t_ms, T0 + i as i64 * 4_000);
        assert_eq!(
            (p.min, p.max, p.avg, p.count),
            (first, first + 3.0, first + 1.5, 4)
        );
    }
    // A 7-minute step crosses the sealed hour's end (420 s does not divide 3600 s).
    let got = s
        .read("m", Tier::Second, (T0, T0 + 2 * HOUR), 420_000)
        .await
        .unwrap();
    assert_eq!(got.iter().map(|p| p.count).sum::<u32>(), 5400);
    let offset = T0.rem_euclid(420_000);
    let straddling = got
        .iter()
        .find(|p| p.t_ms <= T0 + HOUR && p.t_ms + 420_000 > T0 + HOUR)
        .unwrap();
    assert_eq!(straddling.count, 420, "offset {offset}");
}
async fn log_pages_walk_back_without_gaps_or_repeats_and_filter(s: &impl Store) {
    // Two entries share each millisecond: the id breaks the tie.
    let batch: Vec<NewLog> = (0..1000)
        .map(|i| {
            let level = if i % 10 == 0 {
                Level::Critical
            } else {
                Level::Info
            };
            let service = if i % 2 == 0 { "api" } else { "db" };
            new_log(T0 + i / 2, level, service, &format!("Line {i}"))
        })
        .collect();
    let stored = s.append_logs(batch).await.unwrap();
    assert_eq!(stored.len(), 1000);
    assert!(stored.windows(2).all(|w| w[1].id == w[0].id + 1));

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .logs(&LogFilter::default(), &ReaderScope::default(), before, 64)
            .await
            .unwrap();
        seen.extend(page.entries.iter().map(|e| e.id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<i64> = stored.iter().map(|e| e.id).collect();
    expected.reverse();
    assert_eq!(seen, expected, "every entry once, newest first");

    let critical = LogFilter {
        level: Some(Level::Error),
        service: Some("api".into()),
        text: Some("LINE 99".into()),
        host: None,
    };
    let page = s
        .logs(&critical, &ReaderScope::default(), None, 500)
        .await
        .unwrap();
    let messages: Vec<&str> = page.entries.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["Line 990"]);
    assert_eq!(page.entries[0].fields["k"], "v");
    assert_eq!(s.log_services().await.unwrap(), ["api", "db"]);
}

async fn logs_filter_by_host_and_leave_out_hidden_environments(s: &impl Store) {
    let at = |host: Option<&str>, env: Option<&str>, message: &str| {
        let mut e = new_log(T0, Level::Error, "api", message);
        e.fields.clear();
        if let Some(h) = host {
            e.fields.insert("host".into(), h.into());
        }
        if let Some(env) = env {
            e.fields.insert("environment".into(), env.into());
        }
        e
    };
    s.append_logs(vec![
        at(None, None, "hub, unmarked"),
        at(Some("hub-1"), Some("ops"), "hub, marked"),
        at(Some("web-1"), Some("prod"), "prod web"),
        at(Some("web-2"), Some("staging"), "staging web"),
    ])
    .await
    .unwrap();
    let scope = ReaderScope {
        hidden: vec!["prod".into()],
        home_host: "hub-1".into(),
        home_environment: "ops".into(),
    };
    let messages = |filter: LogFilter, scope: ReaderScope| {
        let s = &s;
        async move {
            let mut m: Vec<String> = s
                .logs(&filter, &scope, None, 100)
                .await
                .unwrap()
                .entries
                .into_iter()
                .map(|e| e.message)
                .collect();
            m.sort();
            m
        }
    };
    assert_eq!(
        messages(LogFilter::default(), scope.clone()).await,
        ["hub, marked", "hub, unmarked", "staging web"]
    );
    let hub_only = LogFilter {
        host: Some("hub-1".into()),
        ..LogFilter::default()
    };
    assert_eq!(
        messages(hub_only, scope.clone()).await,
        ["hub, marked", "hub, unmarked"]
    );
    let prod = LogFilter {
        host: Some("web-1".into()),
        ..LogFilter::default()
    };
    assert!(messages(prod.clone(), scope).await.is_empty());
    assert_eq!(messages(prod, ReaderScope::default()).await, ["prod web"]);
}

async fn logs_past_their_retention_are_pruned(s: &impl Store) {
    let retention = Retention {
        logs: Duration::from_secs(60),
        ..Retention::default()
    };
    let now = T0 + HOUR;
    s.append_logs(vec![
        new_log(now - 60_001, Level::Error, "a", "old"),
        new_log(now - 60_000, Level::Error, "a", "kept"),
    ])
    .await
    .unwrap();
    let done = s.maintain(now, &retention).await.unwrap();
    assert_eq!(done.logs_pruned, 1);
    let page = s
        .logs(&LogFilter::default(), &ReaderScope::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].message, "kept");
}

async fn security_alerts_sessions_and_locks_are_pruned_by_age_and_count(
    s: &(impl Store + Accounts),
) {
    let retention = Retention {
        security: Duration::from_secs(60),
        security_max: 3,
        ..Retention::default()
    };
    let now = T0 + HOUR;
    for (i, t) in [
        now - 60_001,
        now - 50_000,
        now - 40_000,
        now - 30_000,
        now - 20_000,
    ]
    .into_iter()
    .enumerate()
    {
        s.add_security_alert(shared::SecurityAlert {
            id: 0,
            t_ms: t,
            kind: shared::SecurityKind::FailedLogin,
            severity: shared::Severity::Warning,
            user: None,
            ip: None,
            message: format!("alert {i}"),
            acknowledged_by: None,
            acknowledged_ms: None,
        })
        .await
        .unwrap();
    }
    let user = s
        .add_user("ana", shared::Role::Viewer, "$argon2id$x", 1)
        .await
        .unwrap();
    s.add_session(&[1; 32], user.id, 1, now - 1, "::1")
        .await
        .unwrap();
    s.add_session(&[2; 32], user.id, 1, now + HOUR, "::1")
        .await
        .unwrap();
    s.lock_logins(&["ip:10.0.0.1".to_owned()], now - 1)
        .await
        .unwrap();
    let done = s.maintain(now, &retention).await.unwrap();
    // One too old, one beyond the count of three; one session and one lock expired.
    assert_eq!(done.accounts_pruned, 4);
    let kept: Vec<String> = s
        .security_alerts(10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.message)
        .collect();
    assert_eq!(kept, ["alert 4", "alert 3", "alert 2"]);
    assert!(s.session_user(&[2; 32], now).await.unwrap().is_some());
}

async fn points_for_the_same_second_merge(s: &impl Store) {
    s.append(&singles("m", T0, &[1.0])).await.unwrap();
    s.append(&singles("m", T0, &[3.0])).await.unwrap();
    let got = s
        .read(
            "m",
            Tier::Second,
            (T0, T0 + 1000),
            Tier::Second.resolution_ms(),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].min, got[0].max, got[0].avg, got[0].count),
        (1.0, 3.0, 2.0, 2)
    );
    // Two points of one second in one batch (an agent's and a late retry, say) merge too.
    let mut batch = singles("m", T0 + 1000, &[2.0]);
    batch.extend(singles("m", T0 + 1000, &[6.0]));
    assert_eq!(s.append(&batch).await.unwrap(), 2);
    let got = s
        .read("m", Tier::Second, (T0 + 1000, T0 + 2000), 1000)
        .await
        .unwrap();
    assert_eq!(
        (got[0].min, got[0].max, got[0].avg, got[0].count),
        (2.0, 6.0, 4.0, 2)
    );
}

async fn pruning_keeps_points_at_the_cutoff_and_drops_older_ones(s: &impl Store) {
    let retention = Retention {
        second: Duration::from_secs(3600),
        minute: Duration::from_secs(2 * 3600),
        hour: Duration::from_secs(3 * 3600),
        logs: Duration::from_secs(3600),
        ..Retention::default()
    };
    s.append(&singles("m", T0, &vec![1.0; 4 * 3600]))
        .await
        .unwrap();
    let now = T0 + 4 * HOUR + ROLLUP_DELAY_MS;
    // The first round rolls up and seals; pruning (which runs first in each round) then finds the
    // sealed chunks and rolled-up rows in the second.
    s.maintain(now, &retention).await.unwrap();
    s.maintain(now, &retention).await.unwrap();
    // Seconds: whole hour chunks older than the cutoff go; the chunk ending at or after it stays.
    let cutoff = retention.cutoff(Tier::Second, now);
    let seconds = s
        .read("m", Tier::Second, (T0, now), Tier::Second.resolution_ms())
        .await
        .unwrap();
    let first = seconds.first().unwrap().t_ms;
    assert!(
        first <= cutoff && first > cutoff - HOUR,
        "first second {first}"
    );
    // Minutes and hours are pruned point by point, keeping t >= cutoff.
    let minutes = s
        .read("m", Tier::Minute, (T0, now), Tier::Minute.resolution_ms())
        .await
        .unwrap();
    assert_eq!(
        minutes.first().unwrap().t_ms,
        crate::plan::ceil_div(retention.cutoff(Tier::Minute, now), MINUTE) * MINUTE
    );
    let hours = s
        .read("m", Tier::Hour, (T0, now), Tier::Hour.resolution_ms())
        .await
        .unwrap();
    // The hour cutoff is 5 s past T0 + 1h: the hours starting at T0 + 2h and T0 + 3h remain.
    assert_eq!(hours.len(), 2, "{hours:?}");
    assert_eq!(hours[0].t_ms, T0 + 2 * HOUR);
}

/// Each body above as a test on each engine.
macro_rules! on_both_engines {
    ($($body:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $body() {
                    let (_dir, s) = crate::sqlite::scratch().await;
                    super::$body(&s).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $body() {
                    let scratch = crate::postgres::scratch().await;
                    super::$body(&scratch.store).await;
                }
            )*
        }
    };
}

on_both_engines!(
    minute_and_hour_rollups_are_exact_on_known_data,
    a_coarse_read_buckets_sealed_and_open_points_alike,
    log_pages_walk_back_without_gaps_or_repeats_and_filter,
    logs_filter_by_host_and_leave_out_hidden_environments,
    logs_past_their_retention_are_pruned,
    security_alerts_sessions_and_locks_are_pruned_by_age_and_count,
    points_for_the_same_second_merge,
    pruning_keeps_points_at_the_cutoff_and_drops_older_ones,
);
