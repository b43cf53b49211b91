//! The embedded store: one SQLite file in WAL mode under the data directory.
//!
//! WAL with `synchronous = NORMAL`: a crash of the process (kill -9) loses nothing that was committed and never
//! corrupts the file; only a power cut can lose the last transactions. Writes go through a single connection
//! (SQLite has one writer at a time anyway, and a lone writer never meets `SQLITE_BUSY`); reads use a small
//! pool of their own, so a chart query never waits for a write.

use crate::chunk;
use crate::plan::{Retention, bucket};
use crate::{
    MAX_LOG_PAGE, Maintenance, NewLog, OperationStats, PoolStats, ReaderScope, Store, StoreError,
    StoreStats,
};
use async_trait::async_trait;
use shared::{HistoryPoint, Level, LogCursor, LogEntry, LogFilter, LogPage, Tier};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
/// A minute is rolled up this long after it ends: points reach the store up to a second late (they are
/// batched once a second), and this leaves room for a slow batch.
const ROLLUP_DELAY_MS: i64 = 5_000;
/// Rows in one multi-row statement (a power of two, see [`row_groups`]): 6 parameters each, well under
/// SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 128;
/// Address space SQLite may map of the database file (not memory it takes: pages are the OS page cache).
const MMAP_BYTES: u64 = 256 << 20;
/// SQLite's page size, which the quota is counted in.
const PAGE_SIZE: u64 = 4096;

/// `rows` cut into the groups of one multi-row statement each: whole groups of [`ROWS_PER_INSERT`], then
/// the rest in powers of two, largest first. So every such statement has one of eight shapes, which sqlx
/// prepares once and keeps. Cut any other way, the last group's size differs from one batch to the next:
/// each is new SQL text, parsed again, and kept in sqlx's statement cache (up to 100 per connection) with
/// a program sized by its rows — with 200 agents pushing, that cache held over 2 MB of such programs.
pub(crate) fn row_groups<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let n = if rows.len() >= ROWS_PER_INSERT {
            ROWS_PER_INSERT
        } else {
            1 << rows.len().ilog2()
        };
        let (group, rest) = rows.split_at(n);
        rows = rest;
        Some(group)
    })
}

/// A store in a directory of its own, for tests: the directory goes when the first value is dropped.
#[cfg(test)]
pub(crate) async fn scratch() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("w.db"), &OpenOptions::default())
        .await
        .unwrap();
    (dir, store)
}

/// How the database is opened.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The most bytes the database may grow to; past it, writes fail as on a full disk.
    pub quota_bytes: Option<u64>,
}

pub struct SqliteStore {
    path: PathBuf,
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    /// Series name → id, filled as series are first written or read.
    ids: Mutex<HashMap<String, i64>>,
    /// Calls and total time per operation since start, for the database panel.
    timings: Mutex<BTreeMap<&'static str, (u64, Duration)>>,
}

/// Adds the time from its creation to its drop to the store's figures for `kind`.
pub(crate) struct Timed<'a> {
    store: &'a SqliteStore,
    kind: &'static str,
    started: Instant,
}

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        if let Ok(mut timings) = self.store.timings.lock() {
            let entry = timings.entry(self.kind).or_default();
            entry.0 += 1;
            entry.1 += self.started.elapsed();
        }
    }
}

/// Creates the database file with mode 0600 before SQLite opens it (SQLite would create it with the
/// process's umask, usually world-readable), and narrows an existing one. SQLite gives its `-wal` and `-shm`
/// files the mode of the database file.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date. A database whose
    /// schema is newer than this build is refused rather than touched.
    pub async fn open(path: &Path, options: &OpenOptions) -> Result<SqliteStore, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        private_file(path).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        let base = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Reads straight from the OS page cache, without copying into each connection's own cache.
            .pragma("mmap_size", MMAP_BYTES.to_string());
        // Migrations run on a connection of their own, without the quota, so that a quota smaller than the
        // schema still lets the database open (SQLite then caps it at its current size).
        let migrations = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await
            .map_err(open_err)?;
        let migrated = MIGRATOR.run(&migrations).await;
        migrations.close().await;
        migrated.map_err(|e| match e {
            MigrateError::VersionMissing(version) => StoreError::Newer {
                path: path.to_owned(),
                version,
            },
            other => StoreError::Migrate {
                path: path.to_owned(),
                message: other.to_string(),
            },
        })?;
        let mut write_options = base.clone();
        if let Some(quota) = options.quota_bytes {
            write_options =
                write_options.pragma("max_page_count", (quota / PAGE_SIZE).max(1).to_string());
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(write_options)
            .await
            .map_err(open_err)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base.read_only(true))
            .await
            .map_err(open_err)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer,
            reader,
            ids: Mutex::default(),
            timings: Mutex::default(),
        })
    }

    pub(crate) fn timed(&self, kind: &'static str) -> Timed<'_> {
        Timed {
            store: self,
            kind,
            started: Instant::now(),
        }
    }

    fn cached_id(&self, name: &str) -> Option<i64> {
        self.ids.lock().ok()?.get(name).copied()
    }

    async fn id_for_read(&self, name: &str) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self.cached_id(name) {
            return Ok(Some(id));
        }
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM series WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        if let (Some(id), Ok(mut ids)) = (id, self.ids.lock()) {
            ids.insert(name.to_owned(), id);
        }
        Ok(id)
    }

    async fn mark(tx: &mut Transaction<'_, Sqlite>, tier: Tier) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT until_ms FROM rollup_marks WHERE tier = ?")
                .bind(tier.as_str())
                .fetch_optional(&mut **tx)
                .await?,
        )
    }

    async fn set_mark(
        tx: &mut Transaction<'_, Sqlite>,
        tier: Tier,
        until_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rollup_marks (tier, until_ms) VALUES (?, ?) \
             ON CONFLICT (tier) DO UPDATE SET until_ms = excluded.until_ms",
        )
        .bind(tier.as_str())
        .bind(until_ms)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Rolls `[mark, target)` of the finer table into `tier`, advancing the mark. Returns the rows written and
    /// the tier's mark afterwards (`None` while there is nothing to roll up yet).
    async fn roll_up(&self, tier: Tier, target: i64) -> Result<(u64, Option<i64>), StoreError> {
        let (source, dest, res) = match tier {
            Tier::Minute => ("second_open", "minute_points", MINUTE),
            Tier::Hour => ("minute_points", "hour_points", HOUR),
            Tier::Second => return Ok((0, None)),
        };
        let mut tx = self.writer.begin().await?;
        let start = match Self::mark(&mut tx, tier).await? {
            Some(mark) => mark,
            None => {
                let first: Option<i64> =
                    sqlx::query_scalar(&format!("SELECT MIN(t_ms) FROM {source}"))
                        .fetch_one(&mut *tx)
                        .await?;
                match first {
                    Some(first) => first.div_euclid(res) * res,
                    None => return Ok((0, None)),
                }
            }
        };
        if target <= start {
            return Ok((0, Some(start)));
        }
        let rows = sqlx::query(&format!(
            "INSERT INTO {dest} (series_id, t_ms, min, max, avg, count) \
             SELECT series_id, (t_ms / {res}) * {res} AS bucket, MIN(min), MAX(max), \
                    SUM(avg * count) / SUM(count), SUM(count) \
             FROM {source} WHERE t_ms >= ? AND t_ms < ? GROUP BY series_id, bucket"
        ))
        .bind(start)
        .bind(target)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Self::set_mark(&mut tx, tier, target).await?;
        tx.commit().await?;
        Ok((rows, Some(target)))
    }

    /// Deletes what is past its retention; returns (points and chunks, log entries) deleted.
    async fn prune(&self, now_ms: i64, retention: &Retention) -> Result<(u64, u64), StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut rows = 0;
        let second_cutoff = retention.cutoff(Tier::Second, now_ms);
        // Rows not yet rolled into the next tier are kept past their retention until they are: expiring
        // them would lose them from every tier.
        let rolled = |mark: Option<i64>, cutoff: i64| mark.unwrap_or(i64::MIN).min(cutoff);
        let minute_mark = Self::mark(&mut tx, Tier::Minute).await?;
        let hour_mark = Self::mark(&mut tx, Tier::Hour).await?;
        // The point tables are keyed (series, time): naming the series lets SQLite walk the key to the cutoff
        // instead of scanning a month of minutes every ten seconds.
        for (sql, cutoff) in [
            ("DELETE FROM second_chunks WHERE end_ms < ?", second_cutoff),
            (
                "DELETE FROM second_open WHERE series_id IN (SELECT id FROM series) AND t_ms < ?",
                rolled(minute_mark, second_cutoff),
            ),
            (
                "DELETE FROM minute_points WHERE series_id IN (SELECT id FROM series) AND t_ms < ?",
                rolled(hour_mark, retention.cutoff(Tier::Minute, now_ms)),
            ),
            (
                "DELETE FROM hour_points WHERE series_id IN (SELECT id FROM series) AND t_ms < ?",
                retention.cutoff(Tier::Hour, now_ms),
            ),
        ] {
            rows += sqlx::query(sql)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        let logs = sqlx::query("DELETE FROM logs WHERE t_ms < ?")
            .bind(retention.logs_cutoff(now_ms))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((rows, logs))
    }

    /// Prunes what requests without an account can add rows to, and what has expired: security alerts past
    /// their age or beyond their count (the newest stay), sessions past their end, lapsed sign-in locks.
    async fn prune_accounts(&self, now_ms: i64, retention: &Retention) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut pruned = sqlx::query("DELETE FROM security_alerts WHERE t_ms < ?")
            .bind(retention.security_cutoff(now_ms))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        pruned += sqlx::query(
            "DELETE FROM security_alerts WHERE id <= \
             (SELECT id FROM security_alerts ORDER BY id DESC LIMIT 1 OFFSET ?)",
        )
        .bind(i64::try_from(retention.security_max).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        for sql in [
            "DELETE FROM sessions WHERE expires_ms <= ?",
            "DELETE FROM login_locks WHERE until_ms <= ?",
        ] {
            pruned += sqlx::query(sql)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(pruned)
    }

    /// Seals the open per-second points before `before` into one compressed chunk per series and hour.
    async fn seal(&self, before: i64) -> Result<u64, StoreError> {
        // Per series through the primary key, rather than a scan of every open row.
        let series: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM series WHERE EXISTS \
             (SELECT 1 FROM second_open WHERE series_id = series.id AND t_ms < ?)",
        )
        .bind(before)
        .fetch_all(&self.writer)
        .await?;
        let mut sealed = 0;
        for id in series {
            let mut tx = self.writer.begin().await?;
            let points = Self::points(&mut *tx, "second_open", id, (i64::MIN, before), 1).await?;
            for hour in points.chunk_by(|a, b| a.t_ms.div_euclid(HOUR) == b.t_ms.div_euclid(HOUR)) {
                let mut group = hour.to_vec();
                // Points that arrive after their hour was sealed (the clock stepped back, say) and start
                // where an existing chunk starts are merged into it rather than colliding with it.
                let existing: Option<Vec<u8>> = sqlx::query_scalar(
                    "SELECT data FROM second_chunks WHERE series_id = ? AND start_ms = ?",
                )
                .bind(id)
                .bind(group[0].t_ms)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(data) = existing {
                    group.extend(chunk::decode(&data)?);
                    group.sort_by_key(|p| p.t_ms);
                    group = bucket(group, 1);
                }
                let data = chunk::encode(&group)?;
                sqlx::query(
                    "INSERT INTO second_chunks (series_id, start_ms, end_ms, points, data) \
                     VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT (series_id, start_ms) DO UPDATE SET \
                       end_ms = excluded.end_ms, points = excluded.points, data = excluded.data",
                )
                .bind(id)
                .bind(group[0].t_ms)
                .bind(group[group.len() - 1].t_ms)
                .bind(group.len() as i64)
                .bind(data)
                .execute(&mut *tx)
                .await?;
                sealed += 1;
            }
            sqlx::query("DELETE FROM second_open WHERE series_id = ? AND t_ms < ?")
                .bind(id)
                .bind(before)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(sealed)
    }

    /// Points of `table` in `[from_ms, to_ms)`, merged into buckets of `step_ms` by SQLite itself: a chart's
    /// thousand points cross the connection instead of every stored row.
    async fn points<'e, E>(
        executor: E,
        table: &str,
        id: i64,
        (from_ms, to_ms): (i64, i64),
        step_ms: i64,
    ) -> Result<Vec<HistoryPoint>, StoreError>
    where
        E: sqlx::Executor<'e, Database = Sqlite>,
    {
        let rows: Vec<(i64, f64, f64, f64, i64)> = sqlx::query_as(&format!(
            "SELECT (t_ms / ?1) * ?1 AS bucket, MIN(min), MAX(max), SUM(avg * count) / SUM(count), \
                    SUM(count) \
             FROM {table} WHERE series_id = ?2 AND t_ms >= ?3 AND t_ms < ?4 \
             GROUP BY bucket ORDER BY bucket"
        ))
        .bind(step_ms.max(1))
        .bind(id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(executor)
        .await?;
        Ok(rows.into_iter().map(point).collect())
    }
}

fn point((t_ms, min, max, avg, count): (i64, f64, f64, f64, i64)) -> HistoryPoint {
    HistoryPoint {
        t_ms,
        min,
        max,
        avg,
        count: u32::try_from(count).unwrap_or(u32::MAX),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, points: &[(String, HistoryPoint)]) -> Result<usize, StoreError> {
        let _timed = self.timed("append history");
        let mut tx = self.writer.begin().await?;
        let mut new_ids: HashMap<&str, i64> = HashMap::new();
        let mut rows: Vec<(i64, HistoryPoint)> = Vec::with_capacity(points.len());
        for (name, p) in points {
            if !(p.min.is_finite() && p.max.is_finite() && p.avg.is_finite()) || p.count == 0 {
                continue;
            }
            let id = match self
                .cached_id(name)
                .or_else(|| new_ids.get(name.as_str()).copied())
            {
                Some(id) => id,
                None => {
                    sqlx::query(
                        "INSERT INTO series (name) VALUES (?) ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                    let id: i64 = sqlx::query_scalar("SELECT id FROM series WHERE name = ?")
                        .bind(name)
                        .fetch_one(&mut *tx)
                        .await?;
                    new_ids.insert(name, id);
                    id
                }
            };
            rows.push((id, *p));
        }
        // Many rows per statement: each statement is a round trip to sqlx's SQLite worker thread, which costs
        // far more than SQLite's own work for a row.
        for group in row_groups(&rows) {
            let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO second_open (series_id, t_ms, min, max, avg, count) ",
            );
            insert.push_values(group, |mut row, (id, p)| {
                row.push_bind(*id)
                    .push_bind(p.t_ms)
                    .push_bind(p.min)
                    .push_bind(p.max)
                    .push_bind(p.avg)
                    .push_bind(i64::from(p.count));
            });
            insert.push(
                " ON CONFLICT (series_id, t_ms) DO UPDATE SET \
                   min = MIN(second_open.min, excluded.min), \
                   max = MAX(second_open.max, excluded.max), \
                   avg = (second_open.avg * second_open.count + excluded.avg * excluded.count) \
                         / (second_open.count + excluded.count), \
                   count = second_open.count + excluded.count",
            );
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if let Ok(mut ids) = self.ids.lock() {
            ids.extend(new_ids.into_iter().map(|(name, id)| (name.to_owned(), id)));
        }
        Ok(rows.len())
    }

    async fn maintain(
        &self,
        now_ms: i64,
        retention: &Retention,
    ) -> Result<Maintenance, StoreError> {
        let _timed = self.timed("maintain");
        // Pruning first: it frees pages, so on a full disk or quota the rollups below get room again.
        let (rows_pruned, logs_pruned) = self.prune(now_ms, retention).await?;
        let accounts_pruned = self.prune_accounts(now_ms, retention).await?;
        let settled = now_ms - ROLLUP_DELAY_MS;
        let (minutes_rolled, minute_mark) = self
            .roll_up(Tier::Minute, settled.div_euclid(MINUTE) * MINUTE)
            .await?;
        let mut done = Maintenance {
            minutes_rolled,
            rows_pruned,
            logs_pruned,
            accounts_pruned,
            ..Maintenance::default()
        };
        if let Some(minute_mark) = minute_mark {
            done.hours_rolled = self
                .roll_up(Tier::Hour, minute_mark.div_euclid(HOUR) * HOUR)
                .await?
                .0;
            // Only what the minute tier already holds is sealed: the rollup reads the open rows.
            let before = (settled.div_euclid(HOUR) * HOUR).min(minute_mark);
            done.chunks_sealed = self.seal(before).await?;
        }
        Ok(done)
    }

    async fn has_series(&self, series: &str) -> Result<bool, StoreError> {
        Ok(self.id_for_read(series).await?.is_some())
    }

    async fn series_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let _t = self.timed("read history");
        Ok(sqlx::query_scalar(
            "SELECT name FROM series WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name",
        )
        .bind(prefix)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn read(
        &self,
        series: &str,
        tier: Tier,
        (from_ms, to_ms): (i64, i64),
        step_ms: i64,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        let _timed = self.timed("read history");
        let Some(id) = self.id_for_read(series).await? else {
            return Ok(Vec::new());
        };
        let range = (from_ms, to_ms);
        // One read transaction: a seal committing between the statements below could otherwise move an
        // hour from the open rows into a chunk unseen by both.
        let mut conn = self.reader.begin().await?;
        let mut points = match tier {
            Tier::Second => {
                let chunks: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT data FROM second_chunks \
                     WHERE series_id = ? AND end_ms >= ? AND start_ms < ? ORDER BY start_ms",
                )
                .bind(id)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(&mut *conn)
                .await?;
                let mut points = Vec::new();
                for data in chunks {
                    points.extend(
                        chunk::decode(&data)?
                            .into_iter()
                            .filter(|p| p.t_ms >= from_ms && p.t_ms < to_ms),
                    );
                }
                points.extend(Self::points(&mut *conn, "second_open", id, range, step_ms).await?);
                points
            }
            Tier::Minute => {
                let mut points =
                    Self::points(&mut *conn, "minute_points", id, range, step_ms).await?;
                // Minutes not rolled up yet are summarised from the open per-second rows, so the newest
                // minutes are not missing from a 24-hour chart.
                let mark = Self::mark(&mut conn, Tier::Minute).await?;
                let recent_from = mark.unwrap_or(i64::MIN).max(from_ms);
                if recent_from < to_ms {
                    points.extend(
                        Self::points(&mut *conn, "second_open", id, (recent_from, to_ms), step_ms)
                            .await?,
                    );
                }
                points
            }
            Tier::Hour => Self::points(&mut *conn, "hour_points", id, range, step_ms).await?,
        };
        // Chunks and rows (or two tables) can share a bucket at their boundary: merge in time order.
        points.sort_by_key(|p| p.t_ms);
        Ok(bucket(points, step_ms))
    }

    async fn append_logs(&self, entries: Vec<NewLog>) -> Result<Vec<LogEntry>, StoreError> {
        let _timed = self.timed("append logs");
        let mut tx = self.writer.begin().await?;
        // The only writer assigns ids itself, so it knows them without reading each row back.
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM logs")
            .fetch_one(&mut *tx)
            .await?;
        let stored: Vec<LogEntry> = entries
            .into_iter()
            .zip(last + 1..)
            .map(|(e, id)| LogEntry {
                id,
                t_ms: e.t_ms,
                level: e.level,
                service: e.service,
                message: e.message,
                fields: e.fields,
            })
            .collect();
        for group in row_groups(&stored) {
            let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO logs (id, t_ms, level, service, message, fields) ",
            );
            insert.push_values(group, |mut row, e| {
                row.push_bind(e.id)
                    .push_bind(e.t_ms)
                    .push_bind(e.level.rank())
                    .push_bind(e.service.as_str())
                    .push_bind(e.message.as_str())
                    .push_bind(serde_json::to_string(&e.fields).unwrap_or_else(|_| "{}".into()));
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn logs(
        &self,
        filter: &LogFilter,
        scope: &ReaderScope,
        before: Option<LogCursor>,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        let _timed = self.timed("page logs");
        let limit = limit.clamp(1, MAX_LOG_PAGE);
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "SELECT id, t_ms, level, service, message, fields FROM logs WHERE 1 = 1",
        );
        if let Some(c) = before {
            q.push(" AND (t_ms, id) < (")
                .push_bind(c.t_ms)
                .push(", ")
                .push_bind(c.id)
                .push(")");
        }
        if let Some(level) = filter.level {
            q.push(" AND level >= ").push_bind(level.rank());
        }
        if let Some(service) = &filter.service {
            q.push(" AND service = ").push_bind(service.as_str());
        }
        if let Some(host) = &filter.host {
            q.push(" AND COALESCE(json_extract(fields, '$.host'), ")
                .push_bind(scope.home_host.as_str())
                .push(") = ")
                .push_bind(host.as_str());
        }
        if !scope.hidden.is_empty() {
            q.push(" AND COALESCE(json_extract(fields, '$.environment'), ")
                .push_bind(scope.home_environment.as_str())
                .push(") NOT IN (");
            let mut list = q.separated(", ");
            for env in &scope.hidden {
                list.push_bind(env.as_str());
            }
            q.push(")");
        }
        if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
            q.push(" AND instr(lower(message), lower(")
                .push_bind(text)
                .push(")) > 0");
        }
        q.push(" ORDER BY t_ms DESC, id DESC LIMIT ")
            .push_bind(limit as i64);
        let rows: Vec<(i64, i64, i64, String, String, String)> =
            q.build_query_as().fetch_all(&self.reader).await?;
        let entries: Vec<LogEntry> = rows
            .into_iter()
            .map(|(id, t_ms, level, service, message, fields)| LogEntry {
                id,
                t_ms,
                level: Level::from_rank(level).unwrap_or(Level::Error),
                service,
                message,
                fields: serde_json::from_str(&fields).unwrap_or_default(),
            })
            .collect();
        let next = (entries.len() == limit)
            .then(|| entries.last().map(LogEntry::cursor))
            .flatten();
        Ok(LogPage { entries, next })
    }

    async fn log_services(&self) -> Result<Vec<String>, StoreError> {
        let _timed = self.timed("log services");
        // A skip scan of the (service, …) index: one step per service, however many entries each has.
        Ok(
            sqlx::query_scalar("SELECT DISTINCT service FROM logs ORDER BY service LIMIT 1000")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    fn stats(&self) -> StoreStats {
        let pool = |name: &str, pool: &SqlitePool| {
            let size = u64::from(pool.size());
            let idle = pool.num_idle() as u64;
            PoolStats {
                name: name.to_owned(),
                in_use: size.saturating_sub(idle),
                idle,
            }
        };
        StoreStats {
            operations: self
                .timings
                .lock()
                .map(|t| {
                    t.iter()
                        .map(|(kind, (calls, total))| OperationStats {
                            kind,
                            calls: *calls,
                            total: *total,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            pools: vec![pool("writer", &self.writer), pool("reader", &self.reader)],
        }
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for suffix in ["", "-wal"] {
            let mut name = self.path.as_os_str().to_owned();
            name.push(suffix);
            if let Ok(meta) = std::fs::metadata(&name) {
                total += meta.len();
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR;

    async fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("w.db"), &OpenOptions::default())
            .await
            .unwrap()
    }

    #[test]
    fn rows_go_in_groups_of_a_few_shapes_only() {
        let sizes = |n: usize| {
            let rows: Vec<usize> = (0..n).collect();
            let groups: Vec<&[usize]> = row_groups(&rows).collect();
            // Every row once, in order.
            assert_eq!(groups.concat(), rows);
            groups.iter().map(|g| g.len()).collect::<Vec<_>>()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(128), [128]);
        assert_eq!(sizes(300), [128, 128, 32, 8, 4]);
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..2000 {
            shapes.extend(sizes(n));
        }
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64, 128]
        );
    }

    #[tokio::test]
    async fn the_database_and_its_journal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        crate::Accounts::user_count(&s).await.unwrap();
        for name in ["w.db", "w.db-wal", "w.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    fn singles(name: &str, from: i64, values: &[f64]) -> Vec<(String, HistoryPoint)> {
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

    #[tokio::test]
    async fn minute_and_hour_rollups_are_exact_on_known_data() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
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

    #[tokio::test]
    async fn a_coarse_read_buckets_sealed_and_open_points_alike() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
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

    fn new_log(t_ms: i64, level: Level, service: &str, message: &str) -> NewLog {
        NewLog {
            t_ms,
            level,
            service: service.into(),
            message: message.into(),
            fields: [("k".to_string(), "v".to_string())].into(),
        }
    }

    #[tokio::test]
    async fn log_pages_walk_back_without_gaps_or_repeats_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
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

    #[tokio::test]
    async fn logs_filter_by_host_and_leave_out_hidden_environments() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
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

    #[tokio::test]
    async fn logs_past_their_retention_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
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

    #[tokio::test]
    async fn security_alerts_sessions_and_locks_are_pruned_by_age_and_count() {
        use crate::Accounts;
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
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

    #[tokio::test]
    async fn points_for_the_same_second_merge() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
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
    }

    #[tokio::test]
    async fn pruning_keeps_points_at_the_cutoff_and_drops_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
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

    #[tokio::test]
    async fn a_database_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'future', 1, x'00', 0)",
        )
        .execute(&s.writer)
        .await
        .unwrap();
        drop(s);
        let e = SqliteStore::open(&dir.path().join("w.db"), &OpenOptions::default())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, StoreError::Newer { .. }), "{e}");
        assert!(e.to_string().contains("newer Watchpost"), "{e}");
    }

    #[tokio::test]
    async fn a_full_quota_is_reported_as_full() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(
            &dir.path().join("w.db"),
            &OpenOptions {
                quota_bytes: Some(256 * 1024),
            },
        )
        .await
        .unwrap();
        let mut result = Ok(0);
        for batch in 0..100 {
            result = s
                .append(&singles(&format!("m{batch}"), T0, &vec![1.5; 600]))
                .await;
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(StoreError::Full)), "{result:?}");
        // Reading still works.
        assert!(
            !s.read("m0", Tier::Second, (T0, T0 + HOUR), 1000)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
