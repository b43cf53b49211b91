//! Database metrics for the database panel, one reading per target every `--api-interval`:
//!
//! - Watchpost's own store: calls and mean time per kind of operation in the interval, and the pools'
//!   connections in use and idle.
//! - PostgreSQL targets from configuration (`--postgres NAME=postgres://…`): connections by state and database
//!   (`pg_stat_activity`), transactions per second, cache hit ratio and deadlocks (`pg_stat_database`), and the
//!   slowest normalised statements from `pg_stat_statements` when that extension is there — otherwise the
//!   reading says how to enable it. A target that cannot be read shows the reason in its panel and is written
//!   to the error log once, when it goes down.

use super::poll::{self, Polled, Schedule};
use crate::clock::now_millis;
use crate::logs::LogBook;
use crate::outlet::Outlet;
use crate::tasks::Tasks;
use shared::{ConnectionCount, DbKind, DbReading, Event, QueryStat};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Store;

/// The target name of Watchpost's own store.
pub const STORE_TARGET: &str = "store";
/// Statements the panel lists.
const TOP_QUERIES: i64 = 10;
const ENABLE_STATEMENTS: &str = "pg_stat_statements is not enabled: add it to shared_preload_libraries in \
     postgresql.conf, restart PostgreSQL, then run CREATE EXTENSION pg_stat_statements; in this database";

/// A PostgreSQL database to watch. Its `Debug` shows the URL without the password (`check-config` prints it).
#[derive(Clone)]
pub struct PostgresTarget {
    pub name: String,
    pub options: PgConnectOptions,
    /// The URL without its password, for messages.
    pub shown: String,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("name", &self.name)
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// `--postgres-url-file NAME=PATH`: a file holding the URL (with its password) of one database, so the
/// password is in neither the command line (`ps` shows it to every local user) nor the environment.
pub type PostgresUrlFile = super::NamedFile;

impl super::NamedFile {
    /// As a `--postgres-url-file`: the target the file names, its one line parsed as `--postgres` would
    /// parse `NAME=URL`.
    pub fn postgres_target(&self) -> Result<PostgresTarget, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let url = text.trim();
        if url.is_empty() || url.contains(char::is_whitespace) {
            return Err(format!(
                "{} must hold one URL on one line",
                self.path.display()
            ));
        }
        format!("{}={url}", self.name).parse()
    }
}

impl PartialEq for PostgresTarget {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.shown == other.shown
    }
}

impl FromStr for PostgresTarget {
    type Err = String;

    /// `NAME=postgres://user@host:port/database`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, url) = s
            .split_once('=')
            .map(|(a, b)| (a.trim(), b.trim()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| "expected NAME=postgres://user@host/database".to_string())?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!("'{name}': the URL must start with postgres://"));
        }
        if name == STORE_TARGET {
            return Err(format!(
                "'{STORE_TARGET}' is the name of Watchpost's own store"
            ));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| format!("'{name}': not a PostgreSQL URL: {e}"))?
            .application_name("watchpost");
        let shown = format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        Ok(PostgresTarget {
            name: name.to_owned(),
            options,
            shown,
        })
    }
}

fn reading(target: &str, kind: DbKind) -> DbReading {
    DbReading {
        target: target.to_owned(),
        kind,
        t_ms: now_millis(),
        error: None,
        connections: Vec::new(),
        queries: Vec::new(),
        tps: None,
        cache_hit_ratio: None,
        deadlocks: None,
        note: None,
    }
}

/// Watchpost's own store: its operations and pools over each interval.
struct StoreReader {
    store: Arc<dyn Store>,
    /// Each operation's call count and total time at the last reading.
    before: HashMap<&'static str, (u64, Duration)>,
}

impl Polled for StoreReader {
    fn describe(&self) -> Option<String> {
        None
    }

    async fn poll(&mut self) -> Result<Option<Event>, String> {
        Ok(Some(Event::Db(store_reading(
            &*self.store,
            &mut self.before,
        ))))
    }

    fn failed(&mut self, _: &str) -> Option<Event> {
        None
    }
}

/// One PostgreSQL target.
struct PostgresReader {
    target: PostgresTarget,
    pool: PgPool,
    /// When the transaction count was last read, and what it was: transactions per second need two.
    last: Option<(Instant, i64)>,
}

impl Polled for PostgresReader {
    fn describe(&self) -> Option<String> {
        Some(format!(
            "database {} ({})",
            self.target.name, self.target.shown
        ))
    }

    async fn poll(&mut self) -> Result<Option<Event>, String> {
        let mut r = reading(&self.target.name, DbKind::Postgres);
        read_postgres(&self.pool, &mut r, &mut self.last)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(Event::Db(r)))
    }

    fn failed(&mut self, reason: &str) -> Option<Event> {
        self.last = None;
        Some(Event::Db(DbReading {
            error: Some(reason.to_owned()),
            ..reading(&self.target.name, DbKind::Postgres)
        }))
    }
}

/// Starts the readers: the store's always, one per PostgreSQL target.
pub fn spawn_db_readers(
    store: Arc<dyn Store>,
    targets: &[PostgresTarget],
    interval: Duration,
    outlet: Outlet,
    logs: LogBook,
    tasks: &Tasks,
) {
    let schedule = Schedule::every(interval);
    // A reading covers an interval: the first one after the first interval, as for HTTP figures.
    let store = StoreReader {
        store,
        before: HashMap::new(),
    };
    poll::spawn(
        store,
        schedule.after_first_interval(),
        outlet.clone(),
        logs.clone(),
        tasks,
    );
    for target in targets.iter().cloned() {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(interval.clamp(Duration::from_secs(1), Duration::from_secs(10)))
            .connect_lazy_with(target.options.clone());
        let reader = PostgresReader {
            target,
            pool,
            last: None,
        };
        poll::spawn(reader, schedule, outlet.clone(), logs.clone(), tasks);
    }
}

/// The store's figures for the interval since `before` (updated to now).
fn store_reading(
    store: &dyn Store,
    before: &mut HashMap<&'static str, (u64, Duration)>,
) -> DbReading {
    let stats = store.stats();
    let mut r = reading(STORE_TARGET, DbKind::Store);
    for op in &stats.operations {
        let (calls0, total0) = before.get(op.kind).copied().unwrap_or_default();
        let calls = op.calls.saturating_sub(calls0);
        let total = op.total.saturating_sub(total0);
        before.insert(op.kind, (op.calls, op.total));
        if calls > 0 {
            let total_ms = total.as_secs_f64() * 1000.0;
            r.queries.push(QueryStat {
                query: op.kind.to_owned(),
                calls,
                mean_ms: total_ms / calls as f64,
                total_ms,
            });
        }
    }
    r.queries.sort_by(|a, b| b.mean_ms.total_cmp(&a.mean_ms));
    for pool in stats.pools {
        for (state, count) in [("in use", pool.in_use), ("idle", pool.idle)] {
            r.connections.push(ConnectionCount {
                database: format!("watchpost.db ({})", pool.name),
                state: state.into(),
                count,
            });
        }
    }
    r
}

/// Fills `r` from one PostgreSQL round trip set; `last` carries the transaction count between readings.
async fn read_postgres(
    pool: &PgPool,
    r: &mut DbReading,
    last: &mut Option<(Instant, i64)>,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let states: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT COALESCE(datname, ''), COALESCE(state, 'unknown'), count(*) \
         FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    r.connections = states
        .into_iter()
        .map(|(database, state, count)| ConnectionCount {
            database,
            state,
            count: u64::try_from(count).unwrap_or(0),
        })
        .collect();
    let (xacts, hit, read, deadlocks): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(xact_commit + xact_rollback), 0)::bigint, COALESCE(sum(blks_hit), 0)::bigint, \
                COALESCE(sum(blks_read), 0)::bigint, COALESCE(sum(deadlocks), 0)::bigint \
         FROM pg_stat_database",
    )
    .fetch_one(&mut *conn)
    .await?;
    let now = Instant::now();
    if let Some((at, before)) = *last {
        r.tps =
            Some((xacts - before).max(0) as f64 / now.duration_since(at).as_secs_f64().max(1e-3));
    }
    *last = Some((now, xacts));
    r.cache_hit_ratio = (hit + read > 0).then(|| hit as f64 / (hit + read) as f64);
    r.deadlocks = u64::try_from(deadlocks).ok();

    let installed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !installed {
        r.note = Some(ENABLE_STATEMENTS.into());
        return Ok(());
    }
    let top: Result<Vec<(String, i64, f64, f64)>, _> = sqlx::query_as(
        "SELECT query, calls, mean_exec_time, total_exec_time FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         ORDER BY mean_exec_time DESC LIMIT $1",
    )
    .bind(TOP_QUERIES)
    .fetch_all(&mut *conn)
    .await;
    match top {
        Ok(rows) => {
            r.queries = rows
                .into_iter()
                .map(|(query, calls, mean_ms, total_ms)| QueryStat {
                    query,
                    calls: u64::try_from(calls).unwrap_or(0),
                    mean_ms,
                    total_ms,
                })
                .collect();
        }
        // Created but not preloaded: the view exists and refuses to be read.
        Err(sqlx::Error::Database(e)) => {
            r.note = Some(format!("{ENABLE_STATEMENTS} ({})", e.message()))
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_printed_and_can_come_from_a_file() {
        let t: PostgresTarget = "shop=postgres://app:s3cret-pw@db:5433/shop"
            .parse()
            .unwrap();
        let shown = format!("{t:?} {t:#?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("postgres://app@db:5433/shop"), "{shown}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.url");
        std::fs::write(&path, "postgres://app:s3cret-pw@db/shop\n").unwrap();
        let file: PostgresUrlFile = format!("shop={}", path.display()).parse().unwrap();
        let from_file = file.postgres_target().unwrap();
        assert_eq!(
            (from_file.name.as_str(), from_file.options.get_port()),
            ("shop", 5432)
        );
        std::fs::write(&path, "").unwrap();
        assert!(file.postgres_target().unwrap_err().contains("one URL"));
        assert!("shop".parse::<PostgresUrlFile>().is_err());
    }

    #[test]
    fn targets_are_name_equals_url_and_hide_the_password() {
        let t: PostgresTarget = "main=postgres://app:secret@db.local:5433/shop"
            .parse()
            .unwrap();
        assert_eq!(t.name, "main");
        assert_eq!(t.shown, "postgres://app@db.local:5433/shop");
        assert!("main".parse::<PostgresTarget>().is_err());
        assert!("main=http://x".parse::<PostgresTarget>().is_err());
        assert!("store=postgres://x/y".parse::<PostgresTarget>().is_err());
    }
}
