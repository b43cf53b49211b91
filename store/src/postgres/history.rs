//! The metric history and the error log on PostgreSQL: the same tiers, compressed chunks and pages as on
//! SQLite (see `sqlite.rs`), shaped for a database that several Watchpost instances write at once.
//!
//! What differs, and why:
//! - Maintenance (rollups, sealing, pruning) runs on one instance at a time, under a session advisory lock:
//!   two instances rolling the same minutes up would count them twice. An instance that finds the lock
//!   taken skips the round; the lock goes with its connection if the instance dies.
//! - A batch of points is sent as arrays (`UNNEST`), one statement whatever its size; points for the same
//!   second are merged first, because PostgreSQL refuses to update one row twice in one statement.
//! - Log ids come from a sequence, taken in order for a batch, since no instance is the only writer.
//! - A read of several tables runs in one `REPEATABLE READ` transaction, so a seal committing between its
//!   statements cannot hide an hour (SQLite's read transaction gives this by itself).

use super::PgStore;
use crate::chunk;
use crate::plan::{Retention, bucket};
use crate::{
    HOUR, MAX_LOG_PAGE, MINUTE, Maintenance, NewLog, PoolStats, ROLLUP_DELAY_MS, ReaderScope,
    Store, StoreError, StoreStats,
};
use async_trait::async_trait;
use shared::{HistoryPoint, Level, LogCursor, LogEntry, LogFilter, LogPage, Tier};
use sqlx::{Connection, PgConnection};
use std::collections::{BTreeMap, HashMap};

/// The advisory lock an instance holds while it maintains the history ("WATCHPOS" in ASCII): one instance
/// at a time.
const MAINTENANCE_LOCK: i64 = 0x5741_5443_4850_4f53;

/// A sum of doubles over a sum of counts (which PostgreSQL sums as `numeric`): the weighted average.
const WEIGHTED_AVG: &str = "SUM(avg * count) / SUM(count)::DOUBLE PRECISION";

fn point((t_ms, min, max, avg, count): (i64, f64, f64, f64, i64)) -> HistoryPoint {
    HistoryPoint {
        t_ms,
        min,
        max,
        avg,
        count: u32::try_from(count).unwrap_or(u32::MAX),
    }
}

async fn mark(conn: &mut PgConnection, tier: Tier) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT until_ms FROM rollup_marks WHERE tier = $1")
            .bind(tier.as_str())
            .fetch_optional(conn)
            .await?,
    )
}

async fn set_mark(conn: &mut PgConnection, tier: Tier, until_ms: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rollup_marks (tier, until_ms) VALUES ($1, $2) \
         ON CONFLICT (tier) DO UPDATE SET until_ms = excluded.until_ms",
    )
    .bind(tier.as_str())
    .bind(until_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Points of `table` in `[from_ms, to_ms)`, merged into buckets of `step_ms` by the database.
async fn points(
    conn: &mut PgConnection,
    table: &str,
    id: i64,
    (from_ms, to_ms): (i64, i64),
    step_ms: i64,
) -> Result<Vec<HistoryPoint>, StoreError> {
    let rows: Vec<(i64, f64, f64, f64, i64)> = sqlx::query_as(&format!(
        "SELECT (t_ms / $1) * $1 AS bucket, MIN(min), MAX(max), {WEIGHTED_AVG}, SUM(count)::BIGINT \
         FROM {table} WHERE series_id = $2 AND t_ms >= $3 AND t_ms < $4 \
         GROUP BY bucket ORDER BY bucket"
    ))
    .bind(step_ms.max(1))
    .bind(id)
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(point).collect())
}

/// Rolls `[mark, target)` of the finer table into `tier`, advancing the mark. Returns the rows written and
/// the tier's mark afterwards (`None` while there is nothing to roll up yet).
async fn roll_up(
    conn: &mut PgConnection,
    tier: Tier,
    target: i64,
) -> Result<(u64, Option<i64>), StoreError> {
    let (source, dest, res) = match tier {
        Tier::Minute => ("second_open", "minute_points", MINUTE),
        Tier::Hour => ("minute_points", "hour_points", HOUR),
        Tier::Second => return Ok((0, None)),
    };
    let mut tx = conn.begin().await?;
    let start = match mark(&mut tx, tier).await? {
        Some(mark) => mark,
        None => {
            let first: Option<i64> = sqlx::query_scalar(&format!("SELECT MIN(t_ms) FROM {source}"))
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
         SELECT series_id, (t_ms / {res}) * {res} AS bucket, MIN(min), MAX(max), {WEIGHTED_AVG}, \
                SUM(count) \
         FROM {source} WHERE t_ms >= $1 AND t_ms < $2 GROUP BY series_id, bucket"
    ))
    .bind(start)
    .bind(target)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    set_mark(&mut tx, tier, target).await?;
    tx.commit().await?;
    Ok((rows, Some(target)))
}

/// Deletes what is past its retention; returns (points and chunks, log entries) deleted.
async fn prune(
    conn: &mut PgConnection,
    now_ms: i64,
    retention: &Retention,
) -> Result<(u64, u64), StoreError> {
    let mut tx = conn.begin().await?;
    let mut rows = 0;
    let second_cutoff = retention.cutoff(Tier::Second, now_ms);
    // Rows not yet rolled into the next tier are kept past their retention until they are.
    let rolled = |mark: Option<i64>, cutoff: i64| mark.unwrap_or(i64::MIN).min(cutoff);
    let minute_mark = mark(&mut tx, Tier::Minute).await?;
    let hour_mark = mark(&mut tx, Tier::Hour).await?;
    for (sql, cutoff) in [
        ("DELETE FROM second_chunks WHERE end_ms < $1", second_cutoff),
        (
            "DELETE FROM second_open WHERE t_ms < $1",
            rolled(minute_mark, second_cutoff),
        ),
        (
            "DELETE FROM minute_points WHERE t_ms < $1",
            rolled(hour_mark, retention.cutoff(Tier::Minute, now_ms)),
        ),
        (
            "DELETE FROM hour_points WHERE t_ms < $1",
            retention.cutoff(Tier::Hour, now_ms),
        ),
    ] {
        rows += sqlx::query(sql)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    let logs = sqlx::query("DELETE FROM logs WHERE t_ms < $1")
        .bind(retention.logs_cutoff(now_ms))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok((rows, logs))
}

/// Prunes security alerts past their age or beyond their count (the newest stay), sessions past their end
/// and lapsed sign-in locks.
async fn prune_accounts(
    conn: &mut PgConnection,
    now_ms: i64,
    retention: &Retention,
) -> Result<u64, StoreError> {
    let mut tx = conn.begin().await?;
    let mut pruned = sqlx::query("DELETE FROM security_alerts WHERE t_ms < $1")
        .bind(retention.security_cutoff(now_ms))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    pruned += sqlx::query(
        "DELETE FROM security_alerts WHERE id <= \
         (SELECT id FROM security_alerts ORDER BY id DESC LIMIT 1 OFFSET $1)",
    )
    .bind(i64::try_from(retention.security_max).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    for sql in [
        "DELETE FROM sessions WHERE expires_ms <= $1",
        "DELETE FROM login_locks WHERE until_ms <= $1",
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
async fn seal(conn: &mut PgConnection, before: i64) -> Result<u64, StoreError> {
    let series: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM series WHERE EXISTS \
         (SELECT 1 FROM second_open WHERE series_id = series.id AND t_ms < $1)",
    )
    .bind(before)
    .fetch_all(&mut *conn)
    .await?;
    let mut sealed = 0;
    for id in series {
        let mut tx = conn.begin().await?;
        let open = points(&mut tx, "second_open", id, (i64::MIN, before), 1).await?;
        for hour in open.chunk_by(|a, b| a.t_ms.div_euclid(HOUR) == b.t_ms.div_euclid(HOUR)) {
            let mut group = hour.to_vec();
            // Points that arrive after their hour was sealed and start where a chunk starts are merged into
            // it rather than colliding with it.
            let existing: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT data FROM second_chunks WHERE series_id = $1 AND start_ms = $2",
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
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (series_id, start_ms) DO UPDATE SET \
                   end_ms = excluded.end_ms, points = excluded.points, data = excluded.data",
            )
            .bind(id)
            .bind(group[0].t_ms)
            .bind(group[group.len() - 1].t_ms)
            .bind(i64::try_from(group.len()).unwrap_or(i64::MAX))
            .bind(data)
            .execute(&mut *tx)
            .await?;
            sealed += 1;
        }
        sqlx::query("DELETE FROM second_open WHERE series_id = $1 AND t_ms < $2")
            .bind(id)
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(sealed)
}

/// One round of maintenance, on the connection that holds the maintenance lock.
async fn maintain_on(
    conn: &mut PgConnection,
    now_ms: i64,
    retention: &Retention,
) -> Result<Maintenance, StoreError> {
    let (rows_pruned, logs_pruned) = prune(conn, now_ms, retention).await?;
    let accounts_pruned = prune_accounts(conn, now_ms, retention).await?;
    let settled = now_ms - ROLLUP_DELAY_MS;
    let (minutes_rolled, minute_mark) =
        roll_up(conn, Tier::Minute, settled.div_euclid(MINUTE) * MINUTE).await?;
    let mut done = Maintenance {
        minutes_rolled,
        rows_pruned,
        logs_pruned,
        accounts_pruned,
        ..Maintenance::default()
    };
    if let Some(minute_mark) = minute_mark {
        done.hours_rolled = roll_up(conn, Tier::Hour, minute_mark.div_euclid(HOUR) * HOUR)
            .await?
            .0;
        let before = (settled.div_euclid(HOUR) * HOUR).min(minute_mark);
        done.chunks_sealed = seal(conn, before).await?;
    }
    Ok(done)
}

impl PgStore {
    /// The ids of `names`, adding the series not stored yet (another instance may add one at the same
    /// moment: the name is unique, and both then read the one id).
    async fn series_ids(
        &self,
        conn: &mut PgConnection,
        names: &[&str],
    ) -> Result<HashMap<String, i64>, StoreError> {
        let mut ids = HashMap::new();
        let mut missing = Vec::new();
        for &name in names {
            match self.cached_id(name) {
                Some(id) => {
                    ids.insert(name.to_owned(), id);
                }
                None => missing.push(name.to_owned()),
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        missing.sort();
        missing.dedup();
        sqlx::query(
            "INSERT INTO series (name) SELECT UNNEST($1::TEXT[]) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&missing)
        .execute(&mut *conn)
        .await?;
        let found: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM series WHERE name = ANY($1)")
                .bind(&missing)
                .fetch_all(&mut *conn)
                .await?;
        if let Ok(mut cache) = self.ids.lock() {
            cache.extend(found.iter().map(|(id, name)| (name.clone(), *id)));
        }
        ids.extend(found.into_iter().map(|(id, name)| (name, id)));
        Ok(ids)
    }

    fn cached_id(&self, name: &str) -> Option<i64> {
        self.ids.lock().ok()?.get(name).copied()
    }

    async fn id_for_read(&self, name: &str) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self.cached_id(name) {
            return Ok(Some(id));
        }
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM series WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        if let (Some(id), Ok(mut ids)) = (id, self.ids.lock()) {
            ids.insert(name.to_owned(), id);
        }
        Ok(id)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn append(&self, points: &[(String, HistoryPoint)]) -> Result<usize, StoreError> {
        let _timed = self.timed("append history");
        let valid: Vec<&(String, HistoryPoint)> = points
            .iter()
            .filter(|(_, p)| {
                p.min.is_finite() && p.max.is_finite() && p.avg.is_finite() && p.count > 0
            })
            .collect();
        if valid.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let names: Vec<&str> = valid.iter().map(|(name, _)| name.as_str()).collect();
        let ids = self.series_ids(&mut tx, &names).await?;
        // Per series, in time order, points of one second merged into one.
        let mut by_series: BTreeMap<i64, Vec<HistoryPoint>> = BTreeMap::new();
        for (name, p) in &valid {
            let id = ids
                .get(name.as_str())
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("series '{name}' has no id")))?;
            by_series.entry(id).or_default().push(*p);
        }
        let (mut series, mut t_ms, mut min, mut max, mut avg, mut count) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for (id, mut points) in by_series {
            points.sort_by_key(|p| p.t_ms);
            for p in bucket(points, 1) {
                series.push(id);
                t_ms.push(p.t_ms);
                min.push(p.min);
                max.push(p.max);
                avg.push(p.avg);
                count.push(i64::from(p.count));
            }
        }
        sqlx::query(
            "INSERT INTO second_open (series_id, t_ms, min, max, avg, count) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::DOUBLE PRECISION[], \
                                  $4::DOUBLE PRECISION[], $5::DOUBLE PRECISION[], $6::BIGINT[]) \
             ON CONFLICT (series_id, t_ms) DO UPDATE SET \
               min = LEAST(second_open.min, excluded.min), \
               max = GREATEST(second_open.max, excluded.max), \
               avg = (second_open.avg * second_open.count + excluded.avg * excluded.count) \
                     / (second_open.count + excluded.count), \
               count = second_open.count + excluded.count",
        )
        .bind(series)
        .bind(t_ms)
        .bind(min)
        .bind(max)
        .bind(avg)
        .bind(count)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(valid.len())
    }

    async fn maintain(
        &self,
        now_ms: i64,
        retention: &Retention,
    ) -> Result<Maintenance, StoreError> {
        let _timed = self.timed("maintain");
        let mut conn = self.pool.acquire().await?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(MAINTENANCE_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if !held {
            // Another instance is maintaining the history right now.
            return Ok(Maintenance::default());
        }
        let done = maintain_on(&mut conn, now_ms, retention).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MAINTENANCE_LOCK)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // The lock belongs to the session: closing it is what frees the lock for the others.
            let _ = conn.detach().close().await;
        }
        done
    }

    async fn has_series(&self, series: &str) -> Result<bool, StoreError> {
        Ok(self.id_for_read(series).await?.is_some())
    }

    async fn series_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let _t = self.timed("read history");
        Ok(sqlx::query_scalar(
            "SELECT name FROM series WHERE substr(name, 1, length($1)) = $1 ORDER BY name",
        )
        .bind(prefix)
        .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let mut found = match tier {
            Tier::Second => {
                let chunks: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT data FROM second_chunks \
                     WHERE series_id = $1 AND end_ms >= $2 AND start_ms < $3 ORDER BY start_ms",
                )
                .bind(id)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(&mut *tx)
                .await?;
                let mut found = Vec::new();
                for data in chunks {
                    found.extend(
                        chunk::decode(&data)?
                            .into_iter()
                            .filter(|p| p.t_ms >= from_ms && p.t_ms < to_ms),
                    );
                }
                found.extend(points(&mut tx, "second_open", id, range, step_ms).await?);
                found
            }
            Tier::Minute => {
                let mut found = points(&mut tx, "minute_points", id, range, step_ms).await?;
                // Minutes not rolled up yet come from the open per-second rows.
                let mark = mark(&mut tx, Tier::Minute).await?;
                let recent_from = mark.unwrap_or(i64::MIN).max(from_ms);
                if recent_from < to_ms {
                    found.extend(
                        points(&mut tx, "second_open", id, (recent_from, to_ms), step_ms).await?,
                    );
                }
                found
            }
            Tier::Hour => points(&mut tx, "hour_points", id, range, step_ms).await?,
        };
        tx.commit().await?;
        found.sort_by_key(|p| p.t_ms);
        Ok(bucket(found, step_ms))
    }

    async fn append_logs(&self, entries: Vec<NewLog>) -> Result<Vec<LogEntry>, StoreError> {
        let _timed = self.timed("append logs");
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        // Taken in one statement, in order: the batch's ids ascend in the order given.
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval('logs_id_seq') FROM generate_series(1, $1) ORDER BY 1",
        )
        .bind(i64::try_from(entries.len()).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        ids.sort_unstable();
        let stored: Vec<LogEntry> = entries
            .into_iter()
            .zip(ids)
            .map(|(e, id)| LogEntry {
                id,
                t_ms: e.t_ms,
                level: e.level,
                service: e.service,
                message: e.message,
                fields: e.fields,
            })
            .collect();
        let ranks: Vec<i16> = stored
            .iter()
            .map(|e| i16::try_from(e.level.rank()).unwrap_or(i16::MAX))
            .collect();
        let fields: Vec<String> = stored
            .iter()
            .map(|e| serde_json::to_string(&e.fields).unwrap_or_else(|_| "{}".into()))
            .collect();
        sqlx::query(
            "INSERT INTO logs (id, t_ms, level, service, message, fields) \
             SELECT id, t_ms, level, service, message, fields::JSONB \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::SMALLINT[], $4::TEXT[], $5::TEXT[], \
                         $6::TEXT[]) AS given (id, t_ms, level, service, message, fields)",
        )
        .bind(stored.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(stored.iter().map(|e| e.t_ms).collect::<Vec<_>>())
        .bind(ranks)
        .bind(
            stored
                .iter()
                .map(|e| e.service.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            stored
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(fields)
        .execute(&mut *tx)
        .await?;
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
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT id, t_ms, level::BIGINT, service, message, fields::TEXT FROM logs WHERE TRUE",
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
            q.push(" AND COALESCE(fields ->> 'host', ")
                .push_bind(scope.home_host.as_str())
                .push(") = ")
                .push_bind(host.as_str());
        }
        if !scope.hidden.is_empty() {
            q.push(" AND COALESCE(fields ->> 'environment', ")
                .push_bind(scope.home_environment.as_str())
                .push(") <> ALL(")
                .push_bind(scope.hidden.clone())
                .push(")");
        }
        if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
            q.push(" AND strpos(lower(message), lower(")
                .push_bind(text)
                .push(")) > 0");
        }
        q.push(" ORDER BY t_ms DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<(i64, i64, i64, String, String, String)> =
            q.build_query_as().fetch_all(&self.pool).await?;
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
        // PostgreSQL has no skip scan: this walks the (service, …) index one service at a time (a "loose
        // index scan"), however many entries each has.
        Ok(sqlx::query_scalar(
            "WITH RECURSIVE services (service) AS ( \
               (SELECT service FROM logs ORDER BY service LIMIT 1) \
               UNION ALL \
               SELECT (SELECT l.service FROM logs l WHERE l.service > s.service \
                       ORDER BY l.service LIMIT 1) \
               FROM services s WHERE s.service IS NOT NULL \
             ) \
             SELECT service FROM services WHERE service IS NOT NULL LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    fn stats(&self) -> StoreStats {
        let size = u64::from(self.pool.size());
        let idle = self.pool.num_idle() as u64;
        StoreStats {
            operations: self.timings.operations(),
            pools: vec![PoolStats {
                name: "postgres".to_owned(),
                in_use: size.saturating_sub(idle),
                idle,
            }],
        }
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history_tests::{T0, singles};
    use shared::Level;

    /// Two instances maintaining the same database at once: the rollups count each minute once.
    #[tokio::test]
    async fn instances_sharing_a_database_roll_each_minute_up_once() {
        let scratch = super::super::scratch().await;
        let (a, b) = (&scratch.store, scratch.another().await);
        let values: Vec<f64> = (0..7200).map(|i| (i % 60) as f64).collect();
        a.append(&singles("m", T0, &values)).await.unwrap();
        let now = T0 + 2 * HOUR + ROLLUP_DELAY_MS;
        let retention = Retention::default();
        // While another session holds the maintenance lock, a round is skipped and touches nothing.
        let mut holder = a.pool.acquire().await.unwrap();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MAINTENANCE_LOCK)
            .execute(&mut *holder)
            .await
            .unwrap();
        assert_eq!(
            b.maintain(now, &retention).await.unwrap(),
            Maintenance::default()
        );
        let marks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollup_marks")
            .fetch_one(&b.pool)
            .await
            .unwrap();
        assert_eq!(
            marks, 0,
            "nothing rolled up while the lock was held elsewhere"
        );
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MAINTENANCE_LOCK)
            .execute(&mut *holder)
            .await
            .unwrap();
        drop(holder);
        let (x, y) = tokio::join!(a.maintain(now, &retention), b.maintain(now, &retention));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.minutes_rolled + y.minutes_rolled, 120, "{x:?} {y:?}");
        // And a later round on either finds nothing left to do twice.
        let again = b.maintain(now, &retention).await.unwrap();
        assert_eq!((again.minutes_rolled, again.chunks_sealed), (0, 0));
        let minutes = a
            .read("m", Tier::Minute, (T0, T0 + 2 * HOUR), MINUTE)
            .await
            .unwrap();
        assert_eq!(minutes.len(), 120);
        assert!(minutes.iter().all(|p| p.count == 60 && p.avg == 29.5));
        let seconds = b
            .read("m", Tier::Second, (T0, T0 + 2 * HOUR), 1000)
            .await
            .unwrap();
        assert_eq!(seconds.len(), 7200);
    }

    /// Instances writing the error log at once: every entry gets an id of its own, and each batch's ids
    /// rise in the order it was given.
    #[tokio::test]
    async fn log_ids_from_several_instances_never_collide() {
        let scratch = super::super::scratch().await;
        let b = scratch.another().await;
        let batch = |who: &str| -> Vec<NewLog> {
            (0..200)
                .map(|i| NewLog {
                    t_ms: T0 + i,
                    level: Level::Error,
                    service: who.into(),
                    message: format!("{who} {i}"),
                    fields: Default::default(),
                })
                .collect()
        };
        let mut written = Vec::new();
        for _ in 0..5 {
            let (x, y) = tokio::join!(
                scratch.store.append_logs(batch("a")),
                b.append_logs(batch("b"))
            );
            for stored in [x.unwrap(), y.unwrap()] {
                assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
                written.extend(stored.into_iter().map(|e| e.id));
            }
        }
        let count = written.len();
        written.sort_unstable();
        written.dedup();
        assert_eq!(written.len(), count, "no id given twice");
        let on_disk: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM logs")
            .fetch_one(&b.pool)
            .await
            .unwrap();
        assert_eq!(on_disk as usize, count);
    }
}
