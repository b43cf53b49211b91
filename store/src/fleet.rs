//! Enrolled agents in the store: which host names may push, in which environment, with which token (its
//! hash only), and how far the hub has taken each agent's batches.

use crate::StoreError;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use async_trait::async_trait;
use sqlx::Row;

/// One enrolment of a host's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: i64,
    /// The host name the agent pushes for, and its readings are recorded under.
    pub name: String,
    pub environment: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
    /// The newest batch item the hub has recorded: items at or below it are duplicates.
    pub acked_seq: u64,
    /// When the agent last pushed, if ever.
    pub seen_ms: Option<i64>,
    /// The host's maintenance window, if an operator set one (it may have passed).
    pub maintenance: Option<shared::Maintenance>,
    /// The sampling interval set from the hub for its agent, if one is.
    pub interval_set: Option<shared::IntervalSetting>,
}

/// Enrolled agents, as every implementation of the store keeps them.
#[async_trait]
pub trait Enrolments: Send + Sync + 'static {
    /// Enrols a host; [`StoreError::Exists`] when a live enrolment has that name.
    async fn add_agent(
        &self,
        name: &str,
        environment: &str,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Agent, StoreError>;

    /// The live enrolment whose token has this hash.
    async fn agent_by_token(&self, token_hash: &[u8]) -> Result<Option<Agent>, StoreError>;

    /// Every enrolment, revoked ones too, by id.
    async fn agents(&self) -> Result<Vec<Agent>, StoreError>;

    /// Revokes an enrolment; `None` when there is no such one.
    async fn revoke_agent(&self, id: i64, now_ms: i64) -> Result<Option<Agent>, StoreError>;

    /// Records that the hub has taken the agent's items up to `acked_seq` (never moving it back) at `now_ms`.
    async fn agent_pushed(&self, id: i64, acked_seq: u64, now_ms: i64) -> Result<(), StoreError>;

    /// [`Enrolments::agent_pushed`] for many agents at once, `(id, acked_seq, now_ms)` each, in one
    /// transaction: what the hub writes once a second for agents that pushed readings only.
    async fn agents_pushed(&self, marks: &[(i64, u64, i64)]) -> Result<(), StoreError>;

    /// Sets (or with `None` ends) a live enrolment's maintenance window; `None` when there is no such one.
    async fn set_maintenance(
        &self,
        id: i64,
        maintenance: Option<&shared::Maintenance>,
    ) -> Result<Option<Agent>, StoreError>;

    /// Sets (or with `None` clears) the sampling interval of a live enrolment's agent; `None` when there is
    /// no such one.
    async fn set_interval(
        &self,
        id: i64,
        interval: Option<&shared::IntervalSetting>,
    ) -> Result<Option<Agent>, StoreError>;
}

const AGENT_COLUMNS: &str = "id, name, environment, created_ms, revoked_ms, acked_seq, seen_ms, \
     maintenance_until_ms, maintenance_by, interval_ms, interval_by";

/// The `interval_ms` column's value for a setting (the hub allows at most an hour, far inside `i64`).
fn interval_column(interval: Option<&shared::IntervalSetting>) -> Option<i64> {
    interval.map(|i| i64::try_from(i.interval_ms).unwrap_or(i64::MAX))
}

/// An agent as either engine's row has it.
fn agent_of<'r, R: Row>(row: &'r R) -> Result<Agent, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let acked: i64 = row.try_get("acked_seq")?;
    Ok(Agent {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        environment: row.try_get("environment")?,
        created_ms: row.try_get("created_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
        acked_seq: u64::try_from(acked)
            .map_err(|_| StoreError::Corrupt(format!("negative agent sequence {acked}")))?,
        seen_ms: row.try_get("seen_ms")?,
        maintenance: match (
            row.try_get::<Option<i64>, _>("maintenance_until_ms")?,
            row.try_get::<Option<String>, _>("maintenance_by")?,
        ) {
            (Some(until_ms), by) => Some(shared::Maintenance {
                until_ms,
                by: by.unwrap_or_default(),
            }),
            (None, _) => None,
        },
        interval_set: match row.try_get::<Option<i64>, _>("interval_ms")? {
            Some(ms) => Some(shared::IntervalSetting {
                interval_ms: u64::try_from(ms)
                    .map_err(|_| StoreError::Corrupt(format!("negative agent interval {ms}")))?,
                by: row
                    .try_get::<Option<String>, _>("interval_by")?
                    .unwrap_or_default(),
            }),
            None => None,
        },
    })
}

#[async_trait]
impl Enrolments for SqliteStore {
    async fn add_agent(
        &self,
        name: &str,
        environment: &str,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Agent, StoreError> {
        let _timed = self.timed("accounts");
        let row = sqlx::query(&format!(
            "INSERT INTO agents (name, environment, token_hash, created_ms) VALUES (?, ?, ?, ?) \
             RETURNING {AGENT_COLUMNS}"
        ))
        .bind(name)
        .bind(environment)
        .bind(token_hash)
        .bind(now_ms)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Exists(format!("a host named '{name}'"))
            }
            _ => e.into(),
        })?;
        agent_of(&row)
    }

    async fn agent_by_token(&self, token_hash: &[u8]) -> Result<Option<Agent>, StoreError> {
        let _timed = self.timed("sessions");
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE token_hash = ? AND revoked_ms IS NULL"
        ))
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(agent_of).transpose()
    }

    async fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        let _timed = self.timed("accounts");
        let rows = sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(agent_of).collect()
    }

    async fn revoke_agent(&self, id: i64, now_ms: i64) -> Result<Option<Agent>, StoreError> {
        let _timed = self.timed("accounts");
        let row = sqlx::query(&format!(
            "UPDATE agents SET revoked_ms = COALESCE(revoked_ms, ?) WHERE id = ? RETURNING {AGENT_COLUMNS}"
        ))
        .bind(now_ms)
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(agent_of).transpose()
    }

    async fn agent_pushed(&self, id: i64, acked_seq: u64, now_ms: i64) -> Result<(), StoreError> {
        let _timed = self.timed("accounts");
        let acked = i64::try_from(acked_seq).unwrap_or(i64::MAX);
        sqlx::query("UPDATE agents SET acked_seq = MAX(acked_seq, ?), seen_ms = ? WHERE id = ?")
            .bind(acked)
            .bind(now_ms)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn agents_pushed(&self, marks: &[(i64, u64, i64)]) -> Result<(), StoreError> {
        let _timed = self.timed("accounts");
        let mut tx = self.writer.begin().await?;
        // A statement per group of agents, not per agent: each statement is a round trip to sqlx's worker
        // thread, and a second of a fleet's pushes is hundreds of marks.
        for group in crate::sqlite::row_groups(marks) {
            let mut update = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "UPDATE agents SET acked_seq = MAX(agents.acked_seq, m.acked), \
                 seen_ms = MAX(COALESCE(agents.seen_ms, 0), m.seen) \
                 FROM (SELECT column1 AS id, MAX(column2) AS acked, MAX(column3) AS seen FROM (",
            );
            update.push_values(group, |mut row, &(id, acked_seq, now_ms)| {
                row.push_bind(id)
                    .push_bind(i64::try_from(acked_seq).unwrap_or(i64::MAX))
                    .push_bind(now_ms);
            });
            // An agent named twice keeps the greater of each (as one update after the other would).
            update.push(") GROUP BY column1) AS m WHERE agents.id = m.id");
            update.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_maintenance(
        &self,
        id: i64,
        maintenance: Option<&shared::Maintenance>,
    ) -> Result<Option<Agent>, StoreError> {
        let _timed = self.timed("accounts");
        let row = sqlx::query(&format!(
            "UPDATE agents SET maintenance_until_ms = ?, maintenance_by = ? \
             WHERE id = ? AND revoked_ms IS NULL RETURNING {AGENT_COLUMNS}"
        ))
        .bind(maintenance.map(|m| m.until_ms))
        .bind(maintenance.map(|m| m.by.as_str()))
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(agent_of).transpose()
    }

    async fn set_interval(
        &self,
        id: i64,
        interval: Option<&shared::IntervalSetting>,
    ) -> Result<Option<Agent>, StoreError> {
        let _timed = self.timed("accounts");
        let ms = interval_column(interval);
        let row = sqlx::query(&format!(
            "UPDATE agents SET interval_ms = ?, interval_by = ? \
             WHERE id = ? AND revoked_ms IS NULL RETURNING {AGENT_COLUMNS}"
        ))
        .bind(ms)
        .bind(interval.map(|i| i.by.as_str()))
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(agent_of).transpose()
    }
}

/// The same, on PostgreSQL: the statements differ only where the dialects do (`GREATEST`, arrays).
#[async_trait]
impl Enrolments for PgStore {
    async fn add_agent(
        &self,
        name: &str,
        environment: &str,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Agent, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO agents (name, environment, token_hash, created_ms) VALUES ($1, $2, $3, $4) \
             RETURNING {AGENT_COLUMNS}"
        ))
        .bind(name)
        .bind(environment)
        .bind(token_hash)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Exists(format!("a host named '{name}'"))
            }
            _ => e.into(),
        })?;
        agent_of(&row)
    }

    async fn agent_by_token(&self, token_hash: &[u8]) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE token_hash = $1 AND revoked_ms IS NULL"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(agent_of).transpose()
    }

    async fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_of).collect()
    }

    async fn revoke_agent(&self, id: i64, now_ms: i64) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE agents SET revoked_ms = COALESCE(revoked_ms, $1) WHERE id = $2 RETURNING {AGENT_COLUMNS}"
        ))
        .bind(now_ms)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(agent_of).transpose()
    }

    async fn agent_pushed(&self, id: i64, acked_seq: u64, now_ms: i64) -> Result<(), StoreError> {
        let acked = i64::try_from(acked_seq).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE agents SET acked_seq = GREATEST(acked_seq, $1), seen_ms = $2 WHERE id = $3",
        )
        .bind(acked)
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn agents_pushed(&self, marks: &[(i64, u64, i64)]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        // One statement of three arrays, whatever the number of agents: one shape, one round trip.
        let ids: Vec<i64> = marks.iter().map(|m| m.0).collect();
        let acked: Vec<i64> = marks
            .iter()
            .map(|m| i64::try_from(m.1).unwrap_or(i64::MAX))
            .collect();
        let seen: Vec<i64> = marks.iter().map(|m| m.2).collect();
        // An agent named twice keeps the greater of each (as one update after the other would).
        sqlx::query(
            "UPDATE agents SET acked_seq = GREATEST(agents.acked_seq, m.acked), \
             seen_ms = GREATEST(COALESCE(agents.seen_ms, 0), m.seen) \
             FROM (SELECT id, MAX(acked) AS acked, MAX(seen) AS seen \
                   FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS t(id, acked, seen) \
                   GROUP BY id) AS m \
             WHERE agents.id = m.id",
        )
        .bind(ids)
        .bind(acked)
        .bind(seen)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_maintenance(
        &self,
        id: i64,
        maintenance: Option<&shared::Maintenance>,
    ) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE agents SET maintenance_until_ms = $1, maintenance_by = $2 \
             WHERE id = $3 AND revoked_ms IS NULL RETURNING {AGENT_COLUMNS}"
        ))
        .bind(maintenance.map(|m| m.until_ms))
        .bind(maintenance.map(|m| m.by.as_str()))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(agent_of).transpose()
    }

    async fn set_interval(
        &self,
        id: i64,
        interval: Option<&shared::IntervalSetting>,
    ) -> Result<Option<Agent>, StoreError> {
        let ms = interval_column(interval);
        let row = sqlx::query(&format!(
            "UPDATE agents SET interval_ms = $1, interval_by = $2 \
             WHERE id = $3 AND revoked_ms IS NULL RETURNING {AGENT_COLUMNS}"
        ))
        .bind(ms)
        .bind(interval.map(|i| i.by.as_str()))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(agent_of).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[tokio::test]
    async fn a_fleets_marks_are_kept_in_groups_each_agent_its_own() {
        let (_dir, store) = crate::sqlite::scratch().await;
        marks_are_kept_each_agent_its_own(&store).await;
    }

    #[tokio::test]
    async fn on_postgres_a_fleets_marks_are_kept_each_agent_its_own() {
        let scratch = crate::postgres::scratch().await;
        marks_are_kept_each_agent_its_own(&scratch.store).await;
    }

    #[tokio::test]
    async fn on_postgres_an_enrolment_is_found_by_its_token_until_revoked() {
        let scratch = crate::postgres::scratch().await;
        enrolments_are_kept(&scratch.store).await;
    }

    /// One test body for both engines, so they stay equal.
    async fn marks_are_kept_each_agent_its_own(store: &dyn Enrolments) {
        // More than one statement's group, and a rest that is not a power of two.
        let mut agents = Vec::new();
        for i in 0..203 {
            let token = format!("h{i}");
            agents.push(
                store
                    .add_agent(&format!("host-{i:03}"), "prod", token.as_bytes(), 1)
                    .await
                    .unwrap(),
            );
        }
        let marks: Vec<(i64, u64, i64)> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id, 1000 + i as u64, 2000 + i as i64))
            .collect();
        store.agents_pushed(&marks).await.unwrap();
        // Behind what is kept: nothing moves back.
        store.agents_pushed(&[(agents[7].id, 3, 4)]).await.unwrap();
        let kept: BTreeMap<String, (u64, Option<i64>)> = store
            .agents()
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.name, (a.acked_seq, a.seen_ms)))
            .collect();
        assert_eq!(kept.len(), 203);
        for i in 0..203 {
            assert_eq!(
                kept[&format!("host-{i:03}")],
                (1000 + i as u64, Some(2000 + i as i64)),
                "host-{i:03}"
            );
        }
    }

    #[tokio::test]
    async fn an_enrolment_is_found_by_its_token_until_revoked_and_its_name_is_one_of_a_kind() {
        let (_dir, store) = crate::sqlite::scratch().await;
        enrolments_are_kept(&store).await;
    }

    async fn enrolments_are_kept(store: &dyn Enrolments) {
        let web = store.add_agent("web-1", "prod", b"h1", 10).await.unwrap();
        assert_eq!(
            (web.name.as_str(), web.environment.as_str()),
            ("web-1", "prod")
        );
        assert!(matches!(
            store.add_agent("web-1", "staging", b"h2", 11).await,
            Err(StoreError::Exists(_))
        ));
        assert_eq!(
            store.agent_by_token(b"h1").await.unwrap(),
            Some(web.clone())
        );
        store.agent_pushed(web.id, 500, 20).await.unwrap();
        store.agent_pushed(web.id, 400, 21).await.unwrap();
        let seen = store.agent_by_token(b"h1").await.unwrap().unwrap();
        assert_eq!(
            (seen.acked_seq, seen.seen_ms),
            (500, Some(21)),
            "the mark never moves back"
        );
        // Many at once, as the hub writes them each second: never back either.
        store
            .agents_pushed(&[(web.id, 450, 19), (web.id, 700, 25)])
            .await
            .unwrap();
        let seen = store.agent_by_token(b"h1").await.unwrap().unwrap();
        assert_eq!((seen.acked_seq, seen.seen_ms), (700, Some(25)));
        // A maintenance window is kept, and ended.
        let window = shared::Maintenance {
            until_ms: 99,
            by: "olga".into(),
        };
        let kept = store.set_maintenance(web.id, Some(&window)).await.unwrap();
        assert_eq!(kept.unwrap().maintenance, Some(window));
        let ended = store.set_maintenance(web.id, None).await.unwrap();
        assert_eq!(ended.unwrap().maintenance, None);
        // An interval set from the hub is kept, and cleared.
        let five = shared::IntervalSetting {
            interval_ms: 5_000,
            by: "olga".into(),
        };
        let set = store.set_interval(web.id, Some(&five)).await.unwrap();
        assert_eq!(set.unwrap().interval_set, Some(five));
        let cleared = store.set_interval(web.id, None).await.unwrap();
        assert_eq!(cleared.unwrap().interval_set, None);
        store.revoke_agent(web.id, 30).await.unwrap();
        assert!(
            store.set_maintenance(web.id, None).await.unwrap().is_none(),
            "not for a revoked host"
        );
        assert_eq!(store.agent_by_token(b"h1").await.unwrap(), None);
        // Revoked, the name may be enrolled again.
        store.add_agent("web-1", "prod", b"h3", 40).await.unwrap();
        assert_eq!(store.agents().await.unwrap().len(), 2);
    }
}
