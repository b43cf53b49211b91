//! Alert history in the store: one row per episode of a rule's series, rewritten whole as it moves.

use crate::StoreError;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use async_trait::async_trait;
use shared::{Alert, AlertRule, AlertState, RuleMetric, RuleSource, Severity};
use sqlx::Row;

pub use shared::AlertFilter;

#[async_trait]
pub trait AlertHistory: Send + Sync + 'static {
    /// Stores a new alert (its `id` is assigned here).
    async fn add_alert(&self, alert: &Alert) -> Result<Alert, StoreError>;

    /// Writes `alert` whole; `None` when there is no such alert.
    async fn save_alert(&self, alert: &Alert) -> Result<Option<Alert>, StoreError>;

    async fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError>;

    /// Pending and firing alerts, oldest first: what a restart takes up again.
    async fn open_alerts(&self) -> Result<Vec<Alert>, StoreError>;

    /// Alerts matching `filter` within `scope` with an id below `before`, newest first.
    async fn alerts(
        &self,
        filter: &AlertFilter,
        scope: &crate::ReaderScope,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError>;

    /// The rules written on the Alerts page, by name.
    async fn saved_rules(&self) -> Result<Vec<AlertRule>, StoreError>;

    /// Writes a rule (a new one, or a new version of one by its name).
    async fn save_rule(&self, rule: &AlertRule, by: &str, at_ms: i64) -> Result<(), StoreError>;

    /// Removes a rule; `false` when there was none of that name.
    async fn delete_rule(&self, name: &str) -> Result<bool, StoreError>;
}

const COLUMNS: &str = "id, rule, subject, metric, state, severity, labels, message, value, peak, threshold, \
                       started_ms, fired_ms, resolved_ms, acknowledged_by, acknowledged_ms, \
                       silenced_until_ms, silenced_by, updated_ms";

fn state_of(s: &str) -> Result<AlertState, StoreError> {
    match s {
        "pending" => Ok(AlertState::Pending),
        "firing" => Ok(AlertState::Firing),
        "resolved" => Ok(AlertState::Resolved),
        other => Err(StoreError::Corrupt(format!("alert state '{other}'"))),
    }
}

/// An alert as either engine's row has it.
fn alert_of<'r, R: Row>(row: &'r R) -> Result<Alert, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let metric: String = row.try_get("metric")?;
    let severity: String = row.try_get("severity")?;
    let labels: String = row.try_get("labels")?;
    Ok(Alert {
        id: row.try_get("id")?,
        rule: row.try_get("rule")?,
        subject: row.try_get("subject")?,
        metric: RuleMetric::parse(&metric)
            .ok_or_else(|| StoreError::Corrupt(format!("alert metric '{metric}'")))?,
        state: state_of(&row.try_get::<String, _>("state")?)?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| StoreError::Corrupt(format!("alert severity '{severity}'")))?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| StoreError::Corrupt(format!("alert labels: {e}")))?,
        message: row.try_get("message")?,
        value: row.try_get("value")?,
        peak: row.try_get("peak")?,
        threshold: row.try_get("threshold")?,
        started_ms: row.try_get("started_ms")?,
        fired_ms: row.try_get("fired_ms")?,
        resolved_ms: row.try_get("resolved_ms")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        acknowledged_ms: row.try_get("acknowledged_ms")?,
        silenced_until_ms: row.try_get("silenced_until_ms")?,
        silenced_by: row.try_get("silenced_by")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

fn labels_json(alert: &Alert) -> Result<String, StoreError> {
    serde_json::to_string(&alert.labels).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The alerts and rules on each engine, from one text: the statements are written in the SQL both dialects
/// share (`$n` placeholders, which sqlx's SQLite driver binds by number too). `$db` is the engine's sqlx
/// database, `$reader` and `$writer` the store's pools for reads and writes (one pool on PostgreSQL), and
/// `$environment_label` the expression for an alert's `environment` label, where the dialects' JSON differ.
macro_rules! alerts_on {
    ($store:ty, $db:ty, $reader:ident, $writer:ident, $environment_label:expr) => {
#[async_trait]
        impl AlertHistory for $store {
    async fn add_alert(&self, a: &Alert) -> Result<Alert, StoreError> {
        let _timed = self.timed("alerts");
        let row = sqlx::query(&format!(
            "INSERT INTO alerts (rule, subject, metric, state, severity, labels, message, value, peak, \
             threshold, started_ms, fired_ms, resolved_ms, acknowledged_by, acknowledged_ms, \
             silenced_until_ms, silenced_by, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING {COLUMNS}"
        ))
        .bind(&a.rule)
        .bind(&a.subject)
        .bind(a.metric.as_str())
        .bind(a.state.as_str())
        .bind(a.severity.as_str())
        .bind(labels_json(a)?)
        .bind(&a.message)
        .bind(a.value)
        .bind(a.peak)
        .bind(a.threshold)
        .bind(a.started_ms)
        .bind(a.fired_ms)
        .bind(a.resolved_ms)
        .bind(&a.acknowledged_by)
        .bind(a.acknowledged_ms)
        .bind(a.silenced_until_ms)
        .bind(&a.silenced_by)
        .bind(a.updated_ms)
        .fetch_one(&self.$writer)
        .await?;
        alert_of(&row)
    }

    async fn save_alert(&self, a: &Alert) -> Result<Option<Alert>, StoreError> {
        let _timed = self.timed("alerts");
        let row = sqlx::query(&format!(
            "UPDATE alerts SET state = $1, message = $2, value = $3, peak = $4, fired_ms = $5, resolved_ms = $6, \
             acknowledged_by = $7, acknowledged_ms = $8, silenced_until_ms = $9, silenced_by = $10, \
             updated_ms = $11 WHERE id = $12 RETURNING {COLUMNS}"
        ))
        .bind(a.state.as_str())
        .bind(&a.message)
        .bind(a.value)
        .bind(a.peak)
        .bind(a.fired_ms)
        .bind(a.resolved_ms)
        .bind(&a.acknowledged_by)
        .bind(a.acknowledged_ms)
        .bind(a.silenced_until_ms)
        .bind(&a.silenced_by)
        .bind(a.updated_ms)
        .bind(a.id)
        .fetch_optional(&self.$writer)
        .await?;
        row.as_ref().map(alert_of).transpose()
    }

    async fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError> {
        let _timed = self.timed("alerts");
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.$reader)
            .await?;
        row.as_ref().map(alert_of).transpose()
    }

    async fn open_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let _timed = self.timed("alerts");
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM alerts WHERE state <> 'resolved' ORDER BY id"
        ))
        .fetch_all(&self.$reader)
        .await?;
        rows.iter().map(alert_of).collect()
    }

    async fn alerts(
        &self,
        filter: &AlertFilter,
        scope: &crate::ReaderScope,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError> {
        let _timed = self.timed("alerts");
        let mut query = sqlx::QueryBuilder::<$db>::new(format!(
            "SELECT {COLUMNS} FROM alerts WHERE 1 = 1"
        ));
        if !scope.hidden.is_empty() {
            query
                .push(" AND COALESCE(")
                .push($environment_label)
                .push(", ")
                .push_bind(scope.home_environment.clone())
                .push(") NOT IN (");
            let mut list = query.separated(", ");
            for env in &scope.hidden {
                list.push_bind(env.clone());
            }
            query.push(")");
        }
        if let Some(before) = before {
            query.push(" AND id < ").push_bind(before);
        }
        if let Some(rule) = &filter.rule {
            query.push(" AND rule = ").push_bind(rule.clone());
        }
        if let Some(subject) = &filter.subject {
            query.push(" AND subject = ").push_bind(subject.clone());
        }
        if let Some(state) = filter.state {
            query.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(from) = filter.from_ms {
            query.push(" AND started_ms >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            query.push(" AND started_ms < ").push_bind(to);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::try_from(limit.clamp(1, 1000)).unwrap_or(1000));
        let rows = query.build().fetch_all(&self.$reader).await?;
        rows.iter().map(alert_of).collect()
    }

    async fn saved_rules(&self) -> Result<Vec<AlertRule>, StoreError> {
        let _timed = self.timed("alerts");
        let rows = sqlx::query("SELECT name, rule FROM alert_rules ORDER BY name")
            .fetch_all(&self.$reader)
            .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                let text: String = row.try_get("rule")?;
                let mut rule: AlertRule = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("alert rule '{name}': {e}")))?;
                rule.source = RuleSource::Dashboard;
                Ok(rule)
            })
            .collect()
    }

    async fn save_rule(&self, rule: &AlertRule, by: &str, at_ms: i64) -> Result<(), StoreError> {
        let _timed = self.timed("alerts");
        let text = serde_json::to_string(rule).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO alert_rules (name, rule, updated_by, updated_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET rule = excluded.rule, updated_by = excluded.updated_by, \
             updated_ms = excluded.updated_ms",
        )
        .bind(&rule.name)
        .bind(text)
        .bind(by)
        .bind(at_ms)
        .execute(&self.$writer)
        .await?;
        Ok(())
    }

    async fn delete_rule(&self, name: &str) -> Result<bool, StoreError> {
        let _timed = self.timed("alerts");
        let done = sqlx::query("DELETE FROM alert_rules WHERE name = $1")
            .bind(name)
            .execute(&self.$writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

    };
}

alerts_on!(
    SqliteStore,
    sqlx::Sqlite,
    reader,
    writer,
    "json_extract(labels, '$.environment')"
);
alerts_on!(
    PgStore,
    sqlx::Postgres,
    pool,
    pool,
    "(labels::jsonb ->> 'environment')"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &str, subject: &str, state: AlertState, started_ms: i64) -> Alert {
        Alert {
            id: 0,
            rule: rule.into(),
            subject: subject.into(),
            metric: RuleMetric::parse("cpu").unwrap(),
            state,
            severity: Severity::Warning,
            labels: [("team".to_string(), "ops".to_string())].into(),
            message: "CPU high".into(),
            value: 91.0,
            peak: 91.0,
            threshold: 90.0,
            started_ms,
            fired_ms: None,
            resolved_ms: None,
            acknowledged_by: None,
            acknowledged_ms: None,
            silenced_until_ms: None,
            silenced_by: None,
            updated_ms: started_ms,
        }
    }

    async fn alerts_are_stored_moved_and_listed(s: &impl AlertHistory) {
        let a = s
            .add_alert(&alert("cpu-high", "web-1", AlertState::Pending, 10))
            .await
            .unwrap();
        s.add_alert(&alert("cpu-high", "web-2", AlertState::Firing, 20))
            .await
            .unwrap();
        let mut fired = a.clone();
        fired.state = AlertState::Firing;
        fired.fired_ms = Some(15);
        fired.peak = 97.0;
        fired.acknowledged_by = Some("olga".into());
        fired.updated_ms = 15;
        assert_eq!(s.save_alert(&fired).await.unwrap(), Some(fired.clone()));
        assert_eq!(s.open_alerts().await.unwrap().len(), 2);
        let mut resolved = fired.clone();
        resolved.state = AlertState::Resolved;
        resolved.resolved_ms = Some(30);
        s.save_alert(&resolved).await.unwrap();
        assert_eq!(s.open_alerts().await.unwrap().len(), 1);
        let st = s;
        let only = |f: AlertFilter| async move {
            st.alerts(&f, &crate::ReaderScope::default(), None, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.subject)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            only(AlertFilter {
                state: Some(AlertState::Resolved),
                ..AlertFilter::default()
            })
            .await,
            ["web-1"]
        );
        assert_eq!(
            only(AlertFilter {
                from_ms: Some(15),
                ..AlertFilter::default()
            })
            .await,
            ["web-2"]
        );
        assert_eq!(s.alert(a.id).await.unwrap().unwrap().labels["team"], "ops");

        // A reader with no role in prod gets none of prod's alerts; one that names no environment is the
        // hub's own.
        let mut prod = alert("cpu-high", "db-9", AlertState::Firing, 40);
        prod.labels.insert("environment".into(), "prod".into());
        s.add_alert(&prod).await.unwrap();
        let scope = crate::ReaderScope {
            hidden: vec!["prod".into()],
            home_host: "hub".into(),
            home_environment: "ops".into(),
        };
        let seen_by = |scope: crate::ReaderScope| async move {
            st.alerts(&AlertFilter::default(), &scope, None, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.subject)
                .collect::<Vec<_>>()
        };
        assert_eq!(seen_by(scope.clone()).await, ["web-2", "web-1"]);
        let hidden_home = crate::ReaderScope {
            hidden: vec!["ops".into()],
            ..scope
        };
        assert_eq!(seen_by(hidden_home).await, ["db-9"]);
    }

    async fn rules_written_on_the_page_are_kept_by_name(s: &impl AlertHistory) {
        let mut rule = AlertRule {
            name: "cpu".into(),
            source: RuleSource::Config,
            metric: RuleMetric::parse("cpu").unwrap(),
            subject: None,
            environment: None,
            condition: shared::Condition {
                comparison: shared::Comparison::Above,
                threshold: 90.0,
                resolve: None,
                for_ms: 0,
                clear_after: 1,
            },
            severity: Severity::Warning,
            labels: Default::default(),
            message: "{value}".into(),
        };
        s.save_rule(&rule, "ada", 1).await.unwrap();
        rule.condition.threshold = 95.0;
        s.save_rule(&rule, "ada", 2).await.unwrap();
        let saved = s.saved_rules().await.unwrap();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].condition.threshold, 95.0);
        assert_eq!(saved[0].source, RuleSource::Dashboard);
        assert!(s.delete_rule("cpu").await.unwrap());
        assert!(!s.delete_rule("cpu").await.unwrap());
        assert!(s.saved_rules().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn alerts_on_sqlite() {
        let (_dir, s) = crate::sqlite::scratch().await;
        alerts_are_stored_moved_and_listed(&s).await;
    }

    #[tokio::test]
    async fn alerts_on_postgres() {
        let scratch = crate::postgres::scratch().await;
        alerts_are_stored_moved_and_listed(&scratch.store).await;
    }

    #[tokio::test]
    async fn rules_on_sqlite() {
        let (_dir, s) = crate::sqlite::scratch().await;
        rules_written_on_the_page_are_kept_by_name(&s).await;
    }

    #[tokio::test]
    async fn rules_on_postgres() {
        let scratch = crate::postgres::scratch().await;
        rules_written_on_the_page_are_kept_by_name(&scratch.store).await;
    }
}
