//! Watchpost's store: one [`Store`] interface, with SQLite (WAL, under the data directory) as the embedded
//! implementation. The PostgreSQL implementation for scale-out ([`PgStore`]) uses the same schema
//! (`migrations/postgres`) and arrives one store trait at a time, each tested against both engines.
//!
//! Metric history is kept in tiers, as Netdata's dbengine does: per-second points (recent ones as rows,
//! finished hours sealed into compressed chunks, see [`chunk`]), per-minute and per-hour rollups. Every point
//! keeps min, max, average and count, so a spike survives zooming out.

mod accounts;
mod alerts;
mod audit;
pub mod chunk;
mod deploy;
mod fleet;
#[cfg(test)]
mod history_tests;
pub mod plan;
mod postgres;
mod sqlite;
mod timing;

pub use accounts::{Accounts, Credentials, SessionUser};
pub use alerts::{AlertFilter, AlertHistory};
pub use audit::{AuditTrail, NewAudit, NewRun, Place, RunEnd};
pub use deploy::{Deployments, NewDeployment};
pub use fleet::{Agent, Enrolments};
pub use plan::{Retention, bucket, plan};
pub use postgres::{PgStore, describe as describe_postgres};
pub use sqlite::{OpenOptions, SqliteStore};

use async_trait::async_trait;
use shared::{HistoryPoint, LogCursor, LogEntry, LogFilter, LogPage, Tier};
use std::path::PathBuf;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
/// A minute is rolled up this long after it ends: points reach the store up to a second late (they are
/// batched once a second), and this leaves room for a slow batch.
const ROLLUP_DELAY_MS: i64 = 5_000;

/// The most entries one log page holds.
pub const MAX_LOG_PAGE: usize = 500;

/// A log entry before the store has given it an id.
pub use shared::NewLog;

/// A host metric's series name, e.g. `cpu{host="web-1"}`.
pub fn series_name(metric: &str, host: &str) -> String {
    labeled_series(metric, &[("host", host)])
}

/// A stored series' name: the metric and its labels, as Prometheus writes them, e.g.
/// `http_p95_ms{service="api"}`.
pub fn labeled_series(metric: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{metric}{{{}}}", labels.join(","))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error(
        "the database {path} was written by a newer Watchpost (schema version {version} is unknown to this \
         one); run the newer version, or start with another --data-dir (or database)"
    )]
    Newer { path: PathBuf, version: i64 },
    #[error("cannot update the database schema of {path}: {message}")]
    Migrate { path: PathBuf, message: String },
    /// The disk (or the configured quota) is full: nothing more can be written until space is freed.
    #[error("the disk or the database quota is full")]
    Full,
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A name that must be unique is taken; the text names it ("a user named 'ana'").
    #[error("{0} already exists")]
    Exists(String),
    /// A stored value this build cannot read (written by hand, or by a broken build).
    #[error("unreadable stored value: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Chunk(#[from] chunk::ChunkError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // SQLITE_FULL (13): out of disk, or past max_page_count; PostgreSQL's disk_full (53100).
        if let sqlx::Error::Database(db) = &e
            && matches!(db.code().as_deref(), Some("13" | "53100"))
        {
            return StoreError::Full;
        }
        StoreError::Database(e)
    }
}

/// The store's own figures, cumulative since start: what the database panel shows for Watchpost itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub operations: Vec<OperationStats>,
    pub pools: Vec<PoolStats>,
}

/// Calls of one kind of store operation and the time they took, since start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationStats {
    pub kind: &'static str,
    pub calls: u64,
    pub total: std::time::Duration,
}

/// A connection pool's connections right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub name: String,
    pub in_use: u64,
    pub idle: u64,
}

/// What one round of [`Store::maintain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub minutes_rolled: u64,
    pub hours_rolled: u64,
    pub chunks_sealed: u64,
    pub rows_pruned: u64,
    pub logs_pruned: u64,
    /// Security alerts past their retention or count, expired sessions and sign-in locks.
    pub accounts_pruned: u64,
}

/// What a reader may be given of the error log and the alert history: nothing of the `hidden`
/// environments. An entry or alert that names no environment is the hub's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderScope {
    pub hidden: Vec<String>,
    pub home_host: String,
    pub home_environment: String,
}

/// Every store trait at once: what a server opens, whichever engine it runs on, and hands to each part as
/// the one trait that part needs.
pub trait Database:
    Store + Accounts + AuditTrail + AlertHistory + Deployments + Enrolments
{
}

impl<T: Store + Accounts + AuditTrail + AlertHistory + Deployments + Enrolments> Database for T {}

/// The store every part of Watchpost writes to and reads from.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Adds per-second points (`series name`, point). A point for a second that is already stored is merged
    /// into it. Non-finite values are not stored (they would read back as gaps anyway). Returns how many
    /// points were stored.
    async fn append(&self, points: &[(String, HistoryPoint)]) -> Result<usize, StoreError>;

    /// Rolls finished minutes and hours up, seals finished hours of per-second points into compressed chunks,
    /// and prunes what is past its tier's retention.
    async fn maintain(&self, now_ms: i64, retention: &Retention)
    -> Result<Maintenance, StoreError>;

    /// The points of `series` in `tier` with `from_ms <= t < to_ms`, merged into buckets of `step_ms` (a
    /// multiple of the tier's resolution) aligned to multiples of it, in time order.
    async fn read(
        &self,
        series: &str,
        tier: Tier,
        range: (i64, i64),
        step_ms: i64,
    ) -> Result<Vec<HistoryPoint>, StoreError>;

    /// Whether `series` was ever written (its points may since have passed their retention): a subject
    /// never seen is told apart from one with no points in a range.
    async fn has_series(&self, series: &str) -> Result<bool, StoreError>;

    /// The names of the stored series that begin with `prefix` (a metric and its first labels), in name
    /// order: the bands of one service's latency, say.
    async fn series_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Stores log entries, all or none, and returns them with their ids, in the order given.
    async fn append_logs(&self, entries: Vec<NewLog>) -> Result<Vec<LogEntry>, StoreError>;

    /// Up to `limit` (at most [`MAX_LOG_PAGE`]) entries matching `filter` within `scope`, newest first,
    /// strictly older than `before` when given.
    async fn logs(
        &self,
        filter: &LogFilter,
        scope: &ReaderScope,
        before: Option<LogCursor>,
        limit: usize,
    ) -> Result<LogPage, StoreError>;

    /// Every service that has entries, for the panel's service selector.
    async fn log_services(&self) -> Result<Vec<String>, StoreError>;

    /// Operation counts and times since start, and the pools' connections.
    fn stats(&self) -> StoreStats;

    /// Bytes the store occupies on disk.
    async fn size_bytes(&self) -> Result<u64, StoreError>;
}

/// SQL run as it is, for tests that check what the database itself refuses (the audit trail's triggers).
#[cfg(test)]
#[async_trait]
pub(crate) trait RawSql {
    async fn raw_sql(&self, sql: &str) -> Result<u64, sqlx::Error>;
}

#[cfg(test)]
#[async_trait]
impl RawSql for SqliteStore {
    async fn raw_sql(&self, sql: &str) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(sql)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
#[async_trait]
impl RawSql for PgStore {
    async fn raw_sql(&self, sql: &str) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(sql).execute(&self.pool).await?.rows_affected())
    }
}
