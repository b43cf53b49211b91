//! The audit trail and command runs in the store.
//!
//! The trail is append-only, and the database enforces it (triggers in the migration): an entry is written
//! before its action takes effect, completed once after, and never changed again or deleted.

use crate::StoreError;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use async_trait::async_trait;
use shared::{
    AuditEntry, AuditFilter, AuditPage, CommandRun, MAX_AUDIT_PAGE, Outcome, Role, RunState,
};
use sqlx::Row;
use std::collections::BTreeMap;

/// An audit entry before the store has given it an id; its outcome is pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    pub at_ms: i64,
    pub actor: String,
    pub role: Role,
    pub ip: String,
    pub action: String,
    pub target: String,
    pub params: BTreeMap<String, String>,
    /// The host acted on when it is not the hub's own, and its environment.
    pub place: Option<Place>,
}

/// An agent's host and its environment: where a remote action happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub host: String,
    pub environment: String,
}

/// A run before the store has given it an id; it is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub command: String,
    pub target: String,
    pub params: BTreeMap<String, String>,
    pub actor: String,
    pub audit_id: i64,
    pub started_ms: i64,
    /// The agent's host it runs on (`None`: the hub's own).
    pub place: Option<Place>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub state: RunState,
    pub finished_ms: i64,
    pub exit_code: Option<i32>,
    pub detail: String,
    pub output_lines: u64,
}

#[async_trait]
pub trait AuditTrail: Send + Sync + 'static {
    /// Writes an entry with a pending outcome, before its action takes effect.
    async fn begin_audit(&self, entry: NewAudit) -> Result<AuditEntry, StoreError>;

    /// Completes a pending entry; `None` when there is no such entry or it was completed already.
    async fn complete_audit(
        &self,
        id: i64,
        outcome: Outcome,
        detail: &str,
        finished_ms: i64,
    ) -> Result<Option<AuditEntry>, StoreError>;

    /// Entries matching `filter` with an id below `before`, newest first.
    async fn audit(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<AuditPage, StoreError>;

    /// Stores a new run (its `audit_id` entry written already).
    async fn add_run(&self, run: NewRun) -> Result<CommandRun, StoreError>;

    /// Records how a run ended, and completes its audit entry with it, in one transaction.
    async fn finish_run(&self, id: i64, end: RunEnd) -> Result<Option<CommandRun>, StoreError>;

    /// Marks every run still running as interrupted (and completes its audit entry): at start, these are
    /// the runs a previous process did not see end. Pending entries of other actions are completed as
    /// interrupted too.
    async fn interrupt_runs(&self, now_ms: i64) -> Result<Vec<CommandRun>, StoreError>;

    /// The newest runs, newest first.
    async fn recent_runs(&self, limit: usize) -> Result<Vec<CommandRun>, StoreError>;

    async fn run(&self, id: i64) -> Result<Option<CommandRun>, StoreError>;
}

const AUDIT_COLUMNS: &str = "id, at_ms, actor, role, ip, action, target, params, outcome, detail, \
                             finished_ms, host, environment";
const RUN_COLUMNS: &str = "id, command, target, params, actor, state, started_ms, finished_ms, \
                           exit_code, detail, output_lines, host, environment";

fn params_json(params: &BTreeMap<String, String>) -> Result<String, StoreError> {
    serde_json::to_string(params).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn params_of(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("parameters {text}: {e}")))
}

/// An audit entry as either engine's row has it.
fn audit_of<'r, R: Row>(row: &'r R) -> Result<AuditEntry, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let role: String = row.try_get("role")?;
    let outcome: String = row.try_get("outcome")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at_ms: row.try_get("at_ms")?,
        actor: row.try_get("actor")?,
        role: role
            .parse()
            .map_err(|e: shared::UnknownRole| StoreError::Corrupt(e.to_string()))?,
        ip: row.try_get("ip")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        params: params_of(&row.try_get::<String, _>("params")?)?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("outcome '{outcome}'")))?,
        detail: row.try_get("detail")?,
        finished_ms: row.try_get("finished_ms")?,
        host: row.try_get("host")?,
        environment: row.try_get("environment")?,
    })
}

/// A run as either engine's row has it.
fn run_of<'r, R: Row>(row: &'r R) -> Result<CommandRun, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    let lines: i64 = row.try_get("output_lines")?;
    Ok(CommandRun {
        id: row.try_get("id")?,
        command: row.try_get("command")?,
        target: row.try_get("target")?,
        params: params_of(&row.try_get::<String, _>("params")?)?,
        actor: row.try_get("actor")?,
        state: RunState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("run state '{state}'")))?,
        started_ms: row.try_get("started_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        exit_code: row.try_get("exit_code")?,
        detail: row.try_get("detail")?,
        output_lines: u64::try_from(lines).unwrap_or(0),
        cancelling: false,
        // The server sets who sees a run from its command's configuration.
        audience: Role::Viewer,
        host: row
            .try_get::<Option<String>, _>("host")?
            .map(shared::HostId),
        environment: row.try_get("environment")?,
    })
}

/// The outcome an audit entry gets from a run's end.
fn outcome_of(state: RunState) -> Outcome {
    match state {
        RunState::Running => Outcome::Pending,
        RunState::Succeeded => Outcome::Succeeded,
        RunState::Interrupted => Outcome::Interrupted,
        RunState::Failed | RunState::TimedOut | RunState::Cancelled => Outcome::Failed,
    }
}

/// The audit trail on each engine, from one text: the statements are written in the SQL both dialects share
/// (`$n` placeholders, which sqlx's SQLite driver binds by number too). `$db` is the engine's sqlx database,
/// `$reader` and `$writer` the store's pools for reads and writes (one pool on PostgreSQL).
macro_rules! audit_on {
    ($store:ty, $db:ty, $reader:ident, $writer:ident) => {
#[async_trait]
        impl AuditTrail for $store {
    async fn begin_audit(&self, entry: NewAudit) -> Result<AuditEntry, StoreError> {
        let _timed = self.timed("audit");
        let row = sqlx::query(&format!(
            "INSERT INTO audit (at_ms, actor, role, ip, action, target, params, outcome, host, \
             environment) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9) RETURNING {AUDIT_COLUMNS}"
        ))
        .bind(entry.at_ms)
        .bind(&entry.actor)
        .bind(entry.role.as_str())
        .bind(&entry.ip)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(params_json(&entry.params)?)
        .bind(entry.place.as_ref().map(|p| p.host.clone()))
        .bind(entry.place.map(|p| p.environment))
        .fetch_one(&self.$writer)
        .await?;
        audit_of(&row)
    }

    async fn complete_audit(
        &self,
        id: i64,
        outcome: Outcome,
        detail: &str,
        finished_ms: i64,
    ) -> Result<Option<AuditEntry>, StoreError> {
        let _timed = self.timed("audit");
        let row = sqlx::query(&format!(
            "UPDATE audit SET outcome = $1, detail = $2, finished_ms = $3 \
             WHERE id = $4 AND outcome = 'pending' RETURNING {AUDIT_COLUMNS}"
        ))
        .bind(outcome.as_str())
        .bind(detail)
        .bind(finished_ms)
        .bind(id)
        .fetch_optional(&self.$writer)
        .await?;
        row.as_ref().map(audit_of).transpose()
    }

    async fn audit(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let _timed = self.timed("audit");
        let limit = limit.clamp(1, MAX_AUDIT_PAGE);
        let mut query = sqlx::QueryBuilder::<$db>::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit WHERE 1 = 1"
        ));
        if let Some(before) = before {
            query.push(" AND id < ").push_bind(before);
        }
        if let Some(actor) = &filter.actor {
            query.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(action) = &filter.action {
            // `command.` matches every command: a prefix, with LIKE's own wildcards escaped.
            let escaped = action
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            if action.ends_with('.') {
                query
                    .push(" AND action LIKE ")
                    .push_bind(format!("{escaped}%"))
                    .push(" ESCAPE '\\'");
            } else {
                query.push(" AND action = ").push_bind(action.clone());
            }
        }
        if let Some(target) = &filter.target {
            query.push(" AND target = ").push_bind(target.clone());
        }
        if let Some(from) = filter.from_ms {
            query.push(" AND at_ms >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            query.push(" AND at_ms < ").push_bind(to);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::try_from(limit + 1).unwrap_or(i64::MAX));
        let rows = query.build().fetch_all(&self.$reader).await?;
        let mut entries = rows.iter().map(audit_of).collect::<Result<Vec<_>, _>>()?;
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.id)
        } else {
            None
        };
        Ok(AuditPage { entries, next })
    }

    async fn add_run(&self, run: NewRun) -> Result<CommandRun, StoreError> {
        let _timed = self.timed("commands");
        let row = sqlx::query(&format!(
            "INSERT INTO command_runs (command, target, params, actor, audit_id, state, started_ms, \
             host, environment) VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8) RETURNING {RUN_COLUMNS}"
        ))
        .bind(&run.command)
        .bind(&run.target)
        .bind(params_json(&run.params)?)
        .bind(&run.actor)
        .bind(run.audit_id)
        .bind(run.started_ms)
        .bind(run.place.as_ref().map(|p| p.host.clone()))
        .bind(run.place.map(|p| p.environment))
        .fetch_one(&self.$writer)
        .await?;
        run_of(&row)
    }

    async fn finish_run(&self, id: i64, end: RunEnd) -> Result<Option<CommandRun>, StoreError> {
        let _timed = self.timed("commands");
        let mut tx = self.$writer.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE command_runs SET state = $1, finished_ms = $2, exit_code = $3, detail = $4, \
             output_lines = $5 WHERE id = $6 AND state = 'running' RETURNING {RUN_COLUMNS}, audit_id"
        ))
        .bind(end.state.as_str())
        .bind(end.finished_ms)
        .bind(end.exit_code)
        .bind(&end.detail)
        .bind(i64::try_from(end.output_lines).unwrap_or(i64::MAX))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let audit_id: i64 = row.try_get("audit_id")?;
        sqlx::query(
            "UPDATE audit SET outcome = $1, detail = $2, finished_ms = $3 \
             WHERE id = $4 AND outcome = 'pending'",
        )
        .bind(outcome_of(end.state).as_str())
        .bind(format!("{}: {}", end.state.label(), end.detail))
        .bind(end.finished_ms)
        .bind(audit_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        run_of(&row).map(Some)
    }

    async fn interrupt_runs(&self, now_ms: i64) -> Result<Vec<CommandRun>, StoreError> {
        let _timed = self.timed("commands");
        let detail = "Watchpost stopped while it ran";
        let mut tx = self.$writer.begin().await?;
        let rows = sqlx::query(&format!(
            "UPDATE command_runs SET state = 'interrupted', finished_ms = $1, detail = $2 \
             WHERE state = 'running' RETURNING {RUN_COLUMNS}"
        ))
        .bind(now_ms)
        .bind(detail)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE audit SET outcome = 'interrupted', detail = $1, finished_ms = $2 \
             WHERE outcome = 'pending'",
        )
        .bind(format!("Interrupted: {detail}"))
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(run_of).collect()
    }

    async fn recent_runs(&self, limit: usize) -> Result<Vec<CommandRun>, StoreError> {
        let _timed = self.timed("commands");
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM command_runs ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.$reader)
        .await?;
        rows.iter().map(run_of).collect()
    }

    async fn run(&self, id: i64) -> Result<Option<CommandRun>, StoreError> {
        let _timed = self.timed("commands");
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM command_runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.$reader)
        .await?;
        row.as_ref().map(run_of).transpose()
    }
}

    };
}

audit_on!(SqliteStore, sqlx::Sqlite, reader, writer);
audit_on!(PgStore, sqlx::Postgres, pool, pool);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: i64, actor: &str, action: &str, target: &str) -> NewAudit {
        NewAudit {
            at_ms,
            actor: actor.into(),
            role: Role::Operator,
            ip: "127.0.0.1".into(),
            action: action.into(),
            target: target.into(),
            params: BTreeMap::from([("version".into(), "1.2.3".into())]),
            place: None,
        }
    }

    async fn entries_are_completed_once_and_never_changed_or_deleted(
        s: &(impl AuditTrail + crate::RawSql),
    ) {
        let e = s
            .begin_audit(entry(10, "ana", "command.restart", "shop"))
            .await
            .unwrap();
        assert_eq!(e.outcome, Outcome::Pending);
        let done = s
            .complete_audit(e.id, Outcome::Succeeded, "exit status 0", 25)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                done.outcome,
                done.duration_ms(),
                done.params["version"].as_str()
            ),
            (Outcome::Succeeded, Some(15), "1.2.3")
        );
        assert!(
            s.complete_audit(e.id, Outcome::Failed, "again", 30)
                .await
                .unwrap()
                .is_none(),
            "completed once"
        );
        // Not even SQL from inside Watchpost can rewrite or remove it.
        for sql in [
            "UPDATE audit SET actor = 'mallory'",
            "UPDATE audit SET outcome = 'failed'",
            "DELETE FROM audit",
        ] {
            let e = s.raw_sql(sql).await.unwrap_err();
            assert!(e.to_string().contains("audit"), "{sql}: {e}");
        }
        let page = s.audit(&AuditFilter::default(), None, 10).await.unwrap();
        assert_eq!(page.entries, vec![done]);
    }

    async fn filters_narrow_and_pages_continue_below(s: &impl AuditTrail) {
        for (i, (actor, action, target)) in [
            ("ana", "command.restart", "shop"),
            ("bob", "command.deploy", "shop"),
            ("ana", "user.add", "carl"),
            ("ana", "command.restart", "blog"),
            ("ana", "command_x", "blog"),
        ]
        .into_iter()
        .enumerate()
        {
            s.begin_audit(entry(100 * i as i64, actor, action, target))
                .await
                .unwrap();
        }
        let ids = |page: &AuditPage| page.entries.iter().map(|e| e.id).collect::<Vec<_>>();
        let all = s.audit(&AuditFilter::default(), None, 2).await.unwrap();
        assert_eq!(ids(&all), [5, 4]);
        let rest = s
            .audit(&AuditFilter::default(), all.next, 10)
            .await
            .unwrap();
        assert_eq!((ids(&rest), rest.next), (vec![3, 2, 1], None));
        let filter = |f: AuditFilter| async move { ids(&s.audit(&f, None, 10).await.unwrap()) };
        let commands = AuditFilter {
            action: Some("command.".into()),
            ..AuditFilter::default()
        };
        assert_eq!(
            filter(commands.clone()).await,
            [4, 2, 1],
            "a prefix, `_` literal"
        );
        assert_eq!(
            filter(AuditFilter {
                actor: Some("ana".into()),
                target: Some("shop".into()),
                ..commands
            })
            .await,
            [1]
        );
        assert_eq!(
            filter(AuditFilter {
                from_ms: Some(100),
                to_ms: Some(300),
                ..AuditFilter::default()
            })
            .await,
            [3, 2]
        );
    }

    async fn a_run_ends_once_with_its_audit_entry_and_a_crash_leaves_it_interrupted(
        s: &impl AuditTrail,
    ) {
        let mut ids = Vec::new();
        for target in ["shop", "blog"] {
            let audit = s
                .begin_audit(entry(10, "ana", "command.restart", target))
                .await
                .unwrap();
            let run = s
                .add_run(NewRun {
                    command: "restart".into(),
                    target: target.into(),
                    params: BTreeMap::new(),
                    actor: "ana".into(),
                    audit_id: audit.id,
                    started_ms: 10,
                    place: None,
                })
                .await
                .unwrap();
            assert_eq!(run.state, RunState::Running);
            ids.push(run.id);
        }
        let end = RunEnd {
            state: RunState::Failed,
            finished_ms: 40,
            exit_code: Some(1),
            detail: "exit status 1".into(),
            output_lines: 3,
        };
        let done = s.finish_run(ids[0], end.clone()).await.unwrap().unwrap();
        assert_eq!(
            (done.state, done.exit_code, done.output_lines),
            (RunState::Failed, Some(1), 3)
        );
        assert!(s.finish_run(ids[0], end).await.unwrap().is_none(), "once");

        let interrupted = s.interrupt_runs(99).await.unwrap();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(
            (interrupted[0].id, interrupted[0].state),
            (ids[1], RunState::Interrupted)
        );
        let trail = s.audit(&AuditFilter::default(), None, 10).await.unwrap();
        let outcomes: Vec<(Outcome, &str)> = trail
            .entries
            .iter()
            .map(|e| (e.outcome, e.detail.as_str()))
            .collect();
        assert_eq!(
            outcomes,
            [
                (
                    Outcome::Interrupted,
                    "Interrupted: Watchpost stopped while it ran"
                ),
                (Outcome::Failed, "Failed: exit status 1")
            ]
        );
        let recent = s.recent_runs(10).await.unwrap();
        assert_eq!(
            recent.iter().map(|r| r.id).collect::<Vec<_>>(),
            [ids[1], ids[0]]
        );
        assert_eq!(
            s.run(ids[0]).await.unwrap().unwrap().state,
            RunState::Failed
        );
    }

    #[tokio::test]
    async fn the_trail_is_append_only_on_sqlite() {
        let (_dir, s) = crate::sqlite::scratch().await;
        entries_are_completed_once_and_never_changed_or_deleted(&s).await;
    }

    #[tokio::test]
    async fn the_trail_is_append_only_on_postgres() {
        let scratch = crate::postgres::scratch().await;
        entries_are_completed_once_and_never_changed_or_deleted(&scratch.store).await;
    }

    #[tokio::test]
    async fn audit_filters_on_sqlite() {
        let (_dir, s) = crate::sqlite::scratch().await;
        filters_narrow_and_pages_continue_below(&s).await;
    }

    #[tokio::test]
    async fn audit_filters_on_postgres() {
        let scratch = crate::postgres::scratch().await;
        filters_narrow_and_pages_continue_below(&scratch.store).await;
    }

    #[tokio::test]
    async fn runs_on_sqlite() {
        let (_dir, s) = crate::sqlite::scratch().await;
        a_run_ends_once_with_its_audit_entry_and_a_crash_leaves_it_interrupted(&s).await;
    }

    #[tokio::test]
    async fn runs_on_postgres() {
        let scratch = crate::postgres::scratch().await;
        a_run_ends_once_with_its_audit_entry_and_a_crash_leaves_it_interrupted(&scratch.store)
            .await;
    }
}
