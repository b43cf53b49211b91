//! The embedded store: one SQLite file in WAL mode under the data directory.
//!
//! WAL with `synchronous = NORMAL`: a crash of the process (kill -9) loses nothing that was committed and never
//! corrupts the file; only a power cut can lose the last transactions. Writes go through a single connection
//! (SQLite has one writer at a time anyway, and a lone writer never meets `SQLITE_BUSY`); reads use a small
//! pool of their own, so a chart query never waits for a write.

use crate::chunk;
use crate::plan::{Retention, bucket};
use crate::timing::{Timed, Timings};
use crate::{
    HOUR, MAX_LOG_PAGE, MINUTE, Maintenance, NewLog, PoolStats, ROLLUP_DELAY_MS, ReaderScope,
    Store, StoreError, StoreStats,
};
use async_trait::async_trait;
use shared::{HistoryPoint, Level, LogCursor, LogEntry, LogFilter, LogPage, Tier};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

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
    timings: Timings,
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
            timings: Timings::default(),
        })
    }

    pub(crate) fn timed(&self, kind: &'static str) -> Timed<'_> {
        self.timings.start(kind)
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
            operations: self.timings.operations(),
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
    use crate::history_tests::{T0, singles};

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
