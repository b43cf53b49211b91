//! Deployments in the store: one row per deployment, rewritten whole as its status moves.

use crate::StoreError;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use async_trait::async_trait;
use shared::{DeployState, Deployment, Role};
use sqlx::Row;

/// A deployment before the store has given it an id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeployment {
    pub service: String,
    pub environment: String,
    pub version: String,
    pub state: DeployState,
    pub actor: String,
    pub run: Option<i64>,
    pub url: Option<String>,
    pub description: Option<String>,
    pub at_ms: i64,
    /// The least role that sees it.
    pub audience: Role,
}

#[async_trait]
pub trait Deployments: Send + Sync + 'static {
    async fn add_deployment(&self, d: NewDeployment) -> Result<Deployment, StoreError>;

    /// Writes `d`'s status (state, step, progress, link, description, times); `None` when there is no such
    /// deployment.
    async fn update_deployment(&self, d: &Deployment) -> Result<Option<Deployment>, StoreError>;

    async fn deployment(&self, id: i64) -> Result<Option<Deployment>, StoreError>;

    /// The newest deployments (of `service` when given), newest first.
    /// The newest deployments of `service` (every service's when `None`) that `role` may see, newest first.
    async fn deployments(
        &self,
        service: Option<&str>,
        limit: usize,
        role: Role,
    ) -> Result<Vec<Deployment>, StoreError>;

    /// Deployments that a command run carried out and that never finished (Watchpost died): they end as
    /// errors, returned.
    async fn end_orphaned_deployments(&self, now_ms: i64) -> Result<Vec<Deployment>, StoreError>;
}

const COLUMNS: &str = "id, service, environment, version, state, step, progress, actor, run_id, url, \
                       description, created_ms, updated_ms, finished_ms, audience";

/// [`COLUMNS`] on PostgreSQL, where `progress` is a `REAL` read as the `f64` SQLite gives.
const PG_COLUMNS: &str = "id, service, environment, version, state, step, \
                          progress::DOUBLE PRECISION AS progress, actor, run_id, url, description, \
                          created_ms, updated_ms, finished_ms, audience";

/// The audiences `role` sees: its own and every role below it.
fn audiences_seen_by(role: Role) -> Vec<&'static str> {
    Role::ALL
        .iter()
        .filter(|r| **r <= role)
        .map(|r| r.as_str())
        .collect()
}

/// A deployment as either engine's row has it.
fn deployment_of<'r, R: Row>(row: &'r R) -> Result<Deployment, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    let progress: Option<f64> = row.try_get("progress")?;
    Ok(Deployment {
        id: row.try_get("id")?,
        service: row.try_get("service")?,
        environment: row.try_get("environment")?,
        version: row.try_get("version")?,
        state: DeployState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("deployment state '{state}'")))?,
        step: row.try_get("step")?,
        progress: progress.map(|p| p as f32),
        actor: row.try_get("actor")?,
        run: row.try_get("run_id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        audience: row
            .try_get::<String, _>("audience")?
            .parse()
            .map_err(|e: shared::UnknownRole| StoreError::Corrupt(e.to_string()))?,
    })
}

#[async_trait]
impl Deployments for SqliteStore {
    async fn add_deployment(&self, d: NewDeployment) -> Result<Deployment, StoreError> {
        let _timed = self.timed("deployments");
        let finished = d.state.finished().then_some(d.at_ms);
        let row = sqlx::query(&format!(
            "INSERT INTO deployments (service, environment, version, state, actor, run_id, url, description, \
             created_ms, updated_ms, finished_ms, audience) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING {COLUMNS}"
        ))
        .bind(&d.service)
        .bind(&d.environment)
        .bind(&d.version)
        .bind(d.state.as_str())
        .bind(&d.actor)
        .bind(d.run)
        .bind(&d.url)
        .bind(&d.description)
        .bind(d.at_ms)
        .bind(d.at_ms)
        .bind(finished)
        .bind(d.audience.as_str())
        .fetch_one(&self.writer)
        .await?;
        deployment_of(&row)
    }

    async fn update_deployment(&self, d: &Deployment) -> Result<Option<Deployment>, StoreError> {
        let _timed = self.timed("deployments");
        let row = sqlx::query(&format!(
            "UPDATE deployments SET state = ?, step = ?, progress = ?, url = ?, description = ?, \
             updated_ms = ?, finished_ms = ? WHERE id = ? RETURNING {COLUMNS}"
        ))
        .bind(d.state.as_str())
        .bind(&d.step)
        .bind(d.progress.map(f64::from))
        .bind(&d.url)
        .bind(&d.description)
        .bind(d.updated_ms)
        .bind(d.finished_ms)
        .bind(d.id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(deployment_of).transpose()
    }

    async fn deployment(&self, id: i64) -> Result<Option<Deployment>, StoreError> {
        let _timed = self.timed("deployments");
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM deployments WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(deployment_of).transpose()
    }

    async fn deployments(
        &self,
        service: Option<&str>,
        limit: usize,
        role: Role,
    ) -> Result<Vec<Deployment>, StoreError> {
        let _timed = self.timed("deployments");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // The roles at or below `role`, as a JSON array for `json_each`: one statement for any role.
        let seen = serde_json::to_string(&audiences_seen_by(role)).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM deployments WHERE (? IS NULL OR service = ?) \
             AND audience IN (SELECT value FROM json_each(?)) ORDER BY id DESC LIMIT ?"
        ))
        .bind(service)
        .bind(service)
        .bind(seen)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(deployment_of).collect()
    }

    async fn end_orphaned_deployments(&self, now_ms: i64) -> Result<Vec<Deployment>, StoreError> {
        let _timed = self.timed("deployments");
        let rows = sqlx::query(&format!(
            "UPDATE deployments SET state = 'error', step = NULL, \
             description = 'Watchpost stopped while the deploy command ran', updated_ms = ?, \
             finished_ms = ? WHERE run_id IS NOT NULL AND state IN ('queued', 'in_progress') \
             RETURNING {COLUMNS}"
        ))
        .bind(now_ms)
        .bind(now_ms)
        .fetch_all(&self.writer)
        .await?;
        rows.iter().map(deployment_of).collect()
    }
}

/// The same, on PostgreSQL.
#[async_trait]
impl Deployments for PgStore {
    async fn add_deployment(&self, d: NewDeployment) -> Result<Deployment, StoreError> {
        let finished = d.state.finished().then_some(d.at_ms);
        let row = sqlx::query(&format!(
            "INSERT INTO deployments (service, environment, version, state, actor, run_id, url, description, \
             created_ms, updated_ms, finished_ms, audience) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {PG_COLUMNS}"
        ))
        .bind(&d.service)
        .bind(&d.environment)
        .bind(&d.version)
        .bind(d.state.as_str())
        .bind(&d.actor)
        .bind(d.run)
        .bind(&d.url)
        .bind(&d.description)
        .bind(d.at_ms)
        .bind(d.at_ms)
        .bind(finished)
        .bind(d.audience.as_str())
        .fetch_one(&self.pool)
        .await?;
        deployment_of(&row)
    }

    async fn update_deployment(&self, d: &Deployment) -> Result<Option<Deployment>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE deployments SET state = $1, step = $2, progress = $3, url = $4, description = $5, \
             updated_ms = $6, finished_ms = $7 WHERE id = $8 RETURNING {PG_COLUMNS}"
        ))
        .bind(d.state.as_str())
        .bind(&d.step)
        .bind(d.progress.map(f64::from))
        .bind(&d.url)
        .bind(&d.description)
        .bind(d.updated_ms)
        .bind(d.finished_ms)
        .bind(d.id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(deployment_of).transpose()
    }

    async fn deployment(&self, id: i64) -> Result<Option<Deployment>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PG_COLUMNS} FROM deployments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(deployment_of).transpose()
    }

    async fn deployments(
        &self,
        service: Option<&str>,
        limit: usize,
        role: Role,
    ) -> Result<Vec<Deployment>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let seen = audiences_seen_by(role);
        let rows = sqlx::query(&format!(
            "SELECT {PG_COLUMNS} FROM deployments WHERE ($1::TEXT IS NULL OR service = $1) \
             AND audience = ANY($2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(service)
        .bind(seen)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment_of).collect()
    }

    async fn end_orphaned_deployments(&self, now_ms: i64) -> Result<Vec<Deployment>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE deployments SET state = 'error', step = NULL, \
             description = 'Watchpost stopped while the deploy command ran', updated_ms = $1, \
             finished_ms = $1 WHERE run_id IS NOT NULL AND state IN ('queued', 'in_progress') \
             RETURNING {PG_COLUMNS}"
        ))
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment_of).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deployments_are_stored_updated_and_listed_per_service() {
        let (_dir, s) = crate::sqlite::scratch().await;
        deployments_are_kept(&s).await;
    }

    #[tokio::test]
    async fn on_postgres_deployments_are_stored_updated_and_listed_per_service() {
        let scratch = crate::postgres::scratch().await;
        deployments_are_kept(&scratch.store).await;
    }

    /// One test body for both engines, so they stay equal.
    async fn deployments_are_kept(s: &dyn Deployments) {
        let new = |service: &str, version: &str| NewDeployment {
            service: service.into(),
            environment: "production".into(),
            version: version.into(),
            state: DeployState::Queued,
            actor: "token:ci".into(),
            run: None,
            url: Some("https://ci.example/1".into()),
            description: None,
            at_ms: 100,
            audience: Role::Viewer,
        };
        let first = s.add_deployment(new("shop", "1.0")).await.unwrap();
        s.add_deployment(new("blog", "2.0")).await.unwrap();
        let mut moved = first.clone();
        moved.state = DeployState::Success;
        moved.progress = Some(100.0);
        moved.updated_ms = 150;
        moved.finished_ms = Some(150);
        let stored = s.update_deployment(&moved).await.unwrap().unwrap();
        assert_eq!(stored, moved);
        assert_eq!(s.deployment(first.id).await.unwrap(), Some(moved));
        let shop = s.deployments(Some("shop"), 10, Role::Viewer).await.unwrap();
        assert_eq!(shop.len(), 1);
        assert_eq!(
            s.deployments(None, 10, Role::Viewer).await.unwrap().len(),
            2
        );
        let admins_only = s
            .add_deployment(NewDeployment {
                audience: Role::Admin,
                ..new("db", "9")
            })
            .await
            .unwrap();
        assert_eq!(admins_only.audience, Role::Admin);
        assert_eq!(
            s.deployments(None, 10, Role::Operator).await.unwrap().len(),
            2
        );
        assert_eq!(s.deployments(None, 10, Role::Admin).await.unwrap().len(), 3);
        assert!(
            s.deployments(Some("db"), 10, Role::Viewer)
                .await
                .unwrap()
                .is_empty()
        );
        // Only deployments a command carries out are orphaned by a crash; CI's go on reporting.
        assert!(s.end_orphaned_deployments(200).await.unwrap().is_empty());
    }
}
