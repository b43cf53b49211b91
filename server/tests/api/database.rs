//! Database metrics from real sources: Watchpost's own store, and the PostgreSQL this machine runs on
//! 127.0.0.1:5432 (trust authentication, database `test`).

use crate::helpers::{Events, PATIENCE, next_envelope, spawn_app_with};
use shared::{DbKind, DbReading, Event};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::time::Duration;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The next reading of `target` that satisfies `ok`.
async fn reading_where(
    events: &mut Events,
    target: &str,
    ok: impl Fn(&DbReading) -> bool,
) -> DbReading {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let (
                _,
                shared::Envelope {
                    event: Event::Db(r),
                    ..
                },
            ) = next_envelope(events).await
                && r.target == target
                && ok(&r)
            {
                return r;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("a reading of {target} as expected"))
}

fn idle_in_test(r: &DbReading) -> u64 {
    r.connections
        .iter()
        .filter(|c| c.database == "test" && c.state == "idle")
        .map(|c| c.count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_test_opens_to_postgres_appear_in_the_counts() {
    let app = spawn_app_with(|c| {
        c.sampling.api_interval = Duration::from_millis(300);
        c.sources.postgres = vec![format!("local={POSTGRES}").parse().unwrap()];
    })
    .await;
    let mut events = app.events(None).await;
    let first = reading_where(&mut events, "local", |r| r.error.is_none()).await;
    assert_eq!(first.kind, DbKind::Postgres);
    assert!(
        first
            .cache_hit_ratio
            .is_some_and(|h| (0.0..=1.0).contains(&h))
    );
    assert!(first.deadlocks.is_some());
    // Either the slowest statements, or how to enable pg_stat_statements.
    assert!(
        !first.queries.is_empty()
            || first
                .note
                .as_deref()
                .is_some_and(|n| n.contains("pg_stat_statements"))
    );
    let before = idle_in_test(&first);

    const K: usize = 6;
    let mut held = Vec::new();
    for _ in 0..K {
        held.push(
            PgConnection::connect(POSTGRES)
                .await
                .expect("PostgreSQL on 127.0.0.1:5432"),
        );
    }
    let surged = reading_where(&mut events, "local", |r| {
        idle_in_test(r) >= before + K as u64
    })
    .await;
    assert!(
        surged.tps.is_some(),
        "a second reading has a transaction rate"
    );
    for c in held {
        c.close().await.unwrap();
    }
    reading_where(&mut events, "local", |r| idle_in_test(r) <= before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reports_its_own_operations_and_pools() {
    let app = spawn_app_with(|c| c.sampling.api_interval = Duration::from_millis(300)).await;
    let mut events = app.events(None).await;
    for _ in 0..3 {
        assert_eq!(app.history("metric=cpu&range=1h").await.status(), 200);
    }
    let r = reading_where(&mut events, "store", |r| {
        r.queries.iter().any(|q| q.query == "read history")
    })
    .await;
    assert_eq!(r.kind, DbKind::Store);
    let read = r
        .queries
        .iter()
        .find(|q| q.query == "read history")
        .unwrap();
    assert!(read.calls >= 1 && read.mean_ms > 0.0, "{read:?}");
    assert!(r.connections.iter().any(|c| c.database.contains("writer")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_read_says_why_and_is_logged_once() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = spawn_app_with(move |c| {
        c.sampling.api_interval = Duration::from_millis(300);
        c.sources.postgres = vec![
            format!("gone=postgres://postgres:hunter2@127.0.0.1:{port}/test")
                .parse()
                .unwrap(),
        ];
    })
    .await;
    let mut events = app.events(None).await;
    let r = reading_where(&mut events, "gone", |r| r.error.is_some()).await;
    assert!(r.connections.is_empty());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let page: shared::LogPage = app
        .log_page("service=watchpost&q=database%20gone")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1, "{:?}", page.entries);
    assert!(
        !page.entries[0].message.contains("hunter2"),
        "no password in the log"
    );
}
