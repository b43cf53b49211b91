//! Accounts in the store: users, sessions, API tokens and the addresses users signed in from. The store
//! only keeps what it is given: hashing passwords and making secrets is the server's job, so no secret ever
//! reaches this crate in the clear.

use crate::StoreError;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use async_trait::async_trait;
use shared::{ApiToken, Role, SecurityAlert, SecurityKind, Severity, User};
use sqlx::Row;

/// A user with the password hash, for signing in.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

/// The user a live session belongs to, and when the session ends.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user: User,
    pub expires_ms: i64,
}

/// Accounts, as every implementation of the store keeps them.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    async fn user_count(&self) -> Result<u64, StoreError>;

    /// Adds a user; [`StoreError::Exists`] when the name is taken.
    async fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<User, StoreError>;

    async fn credentials(&self, name: &str) -> Result<Option<Credentials>, StoreError>;

    async fn users(&self) -> Result<Vec<User>, StoreError>;

    /// Changes a user's role, disabled flag or password hash (those given); `None` when there is no such user.
    /// Disabling a user, or changing the password, ends the user's sessions.
    async fn update_user(
        &self,
        id: i64,
        role: Option<Role>,
        disabled: Option<bool>,
        password_hash: Option<&str>,
    ) -> Result<Option<User>, StoreError>;

    /// Removes a user and the user's sessions; false when there was no such user.
    async fn remove_user(&self, id: i64) -> Result<bool, StoreError>;

    /// Sets the user's role in `environment` (`Some(None)`: no access there) or, with `None`, removes it so
    /// the user's own role applies there again. `None` when there is no such user.
    async fn set_environment_role(
        &self,
        id: i64,
        environment: &str,
        role: Option<Option<Role>>,
    ) -> Result<Option<User>, StoreError>;

    async fn add_session(
        &self,
        token_hash: &[u8],
        user_id: i64,
        now_ms: i64,
        expires_ms: i64,
        ip: &str,
    ) -> Result<(), StoreError>;

    /// The enabled user a live session belongs to.
    async fn session_user(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<SessionUser>, StoreError>;

    async fn remove_session(&self, token_hash: &[u8]) -> Result<(), StoreError>;

    /// Drops expired sessions; how many.
    async fn prune_sessions(&self, now_ms: i64) -> Result<u64, StoreError>;

    /// How many addresses `user_id` has signed in from.
    async fn address_count(&self, user_id: i64) -> Result<u64, StoreError>;

    /// Whether `user_id` has signed in from `ip` before.
    async fn known_address(&self, user_id: i64, ip: &str) -> Result<bool, StoreError>;

    /// Locks sign-ins under each of `keys` until `until_ms` (a later lock of a key wins).
    async fn lock_logins(&self, keys: &[String], until_ms: i64) -> Result<(), StoreError>;

    /// The latest time any of `keys` stays locked until, if one is locked after `now_ms`.
    async fn logins_locked_until(
        &self,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError>;

    /// Lifts every lock that names `name` (its own, and those of it with an address); also drops expired
    /// locks. How many were lifted.
    async fn unlock_logins(&self, name: &str, now_ms: i64) -> Result<u64, StoreError>;

    /// Notes that `user_id` signed in from `ip`; true when it is the first time.
    async fn remember_address(
        &self,
        user_id: i64,
        ip: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    async fn add_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<ApiToken, StoreError>;

    /// The token with this hash, if it is not revoked.
    async fn token(&self, token_hash: &[u8]) -> Result<Option<ApiToken>, StoreError>;

    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError>;

    /// Revokes a token; `None` when there is no such token.
    async fn revoke_token(&self, id: i64, now_ms: i64) -> Result<Option<ApiToken>, StoreError>;

    /// Stores a security alert (its `id` is assigned here) and returns it.
    async fn add_security_alert(&self, alert: SecurityAlert) -> Result<SecurityAlert, StoreError>;

    /// Marks an alert acknowledged by `by` (the first acknowledgement stands); `None` when there is no such
    /// alert.
    async fn acknowledge_security_alert(
        &self,
        id: i64,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<SecurityAlert>, StoreError>;

    /// The newest `limit` alerts, newest first.
    async fn security_alerts(&self, limit: usize) -> Result<Vec<SecurityAlert>, StoreError>;
}

const ALERT_COLUMNS: &str =
    "id, t_ms, kind, severity, user_name, ip, message, acknowledged_by, acknowledged_ms";

fn alert_of<'r, R: Row>(row: &'r R) -> Result<SecurityAlert, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kind: String = row.try_get("kind")?;
    let severity: String = row.try_get("severity")?;
    Ok(SecurityAlert {
        id: row.try_get("id")?,
        t_ms: row.try_get("t_ms")?,
        kind: SecurityKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown alert kind '{kind}'")))?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown severity '{severity}'")))?,
        user: row.try_get("user_name")?,
        ip: row.try_get("ip")?,
        message: row.try_get("message")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        acknowledged_ms: row.try_get("acknowledged_ms")?,
    })
}

const USER_COLUMNS: &str = "id, name, role, disabled, created_ms";
const TOKEN_COLUMNS: &str = "id, name, role, created_ms, revoked_ms";

fn role_of(text: &str) -> Result<Role, StoreError> {
    text.parse()
        .map_err(|e: shared::UnknownRole| StoreError::Corrupt(e.to_string()))
}

fn user_of<'r, R: Row>(row: &'r R) -> Result<User, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role_of(&row.try_get::<String, _>("role")?)?,
        disabled: row.try_get("disabled")?,
        created_ms: row.try_get("created_ms")?,
        environments: Vec::new(),
    })
}

fn token_of<'r, R: Row>(row: &'r R) -> Result<ApiToken, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role_of(&row.try_get::<String, _>("role")?)?,
        created_ms: row.try_get("created_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}

/// A unique constraint turned into the error a caller can name.
fn exists(e: sqlx::Error, what: String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Exists(what),
        _ => e.into(),
    }
}

/// The accounts on each engine, from one text: the statements are written in the SQL both dialects share
/// (`$n` placeholders, which sqlx's SQLite driver binds by number too), so the engines cannot drift apart.
/// `$reader` and `$writer` name the store's pools for reads and writes (one pool on PostgreSQL).
macro_rules! accounts_on {
    ($store:ty, $reader:ident, $writer:ident) => {
impl $store {
    /// `users` with their roles per environment filled in.
    async fn with_environments(&self, mut users: Vec<User>) -> Result<Vec<User>, StoreError> {
        if users.is_empty() {
            return Ok(users);
        }
        let rows: Vec<(i64, String, Option<String>)> = if let [one] = users.as_slice() {
            sqlx::query_as(
                "SELECT user_id, environment, role FROM user_environments WHERE user_id = $1 \
                 ORDER BY environment",
            )
            .bind(one.id)
            .fetch_all(&self.$reader)
            .await?
        } else {
            sqlx::query_as(
                "SELECT user_id, environment, role FROM user_environments ORDER BY environment",
            )
            .fetch_all(&self.$reader)
            .await?
        };
        for (user_id, environment, role) in rows {
            if let Some(user) = users.iter_mut().find(|u| u.id == user_id) {
                user.environments.push(shared::EnvironmentRole {
                    environment,
                    role: role.as_deref().map(role_of).transpose()?,
                });
            }
        }
        Ok(users)
    }

    async fn one_with_environments(&self, user: User) -> Result<User, StoreError> {
        Ok(self
            .with_environments(vec![user])
            .await?
            .pop()
            .unwrap_or_else(|| unreachable!("one user in, one out")))
    }
}

#[async_trait]
        impl Accounts for $store {
    async fn user_count(&self) -> Result<u64, StoreError> {
        let _timed = self.timed("accounts");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.$reader)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        let _timed = self.timed("accounts");
        let row = sqlx::query(&format!(
            "INSERT INTO users (name, role, password_hash, created_ms) VALUES ($1, $2, $3, $4) \
             RETURNING {USER_COLUMNS}"
        ))
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_ms)
        .fetch_one(&self.$writer)
        .await
        .map_err(|e| exists(e, format!("a user named '{name}'")))?;
        user_of(&row)
    }

    async fn credentials(&self, name: &str) -> Result<Option<Credentials>, StoreError> {
        let _timed = self.timed("accounts");
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.$reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Credentials {
            user: self.one_with_environments(user_of(&row)?).await?,
            password_hash: row.try_get("password_hash")?,
        }))
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        let _timed = self.timed("accounts");
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))
            .fetch_all(&self.$reader)
            .await?;
        let users = rows.iter().map(user_of).collect::<Result<Vec<_>, _>>()?;
        self.with_environments(users).await
    }

    async fn update_user(
        &self,
        id: i64,
        role: Option<Role>,
        disabled: Option<bool>,
        password_hash: Option<&str>,
    ) -> Result<Option<User>, StoreError> {
        let _timed = self.timed("accounts");
        let mut tx = self.$writer.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE users SET role = COALESCE($1, role), disabled = COALESCE($2, disabled), \
             password_hash = COALESCE($3, password_hash) WHERE id = $4 RETURNING {USER_COLUMNS}"
        ))
        .bind(role.map(Role::as_str))
        .bind(disabled)
        .bind(password_hash)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_some() && (disabled == Some(true) || password_hash.is_some()) {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        match row.as_ref().map(user_of).transpose()? {
            Some(user) => Ok(Some(self.one_with_environments(user).await?)),
            None => Ok(None),
        }
    }

    async fn set_environment_role(
        &self,
        id: i64,
        environment: &str,
        role: Option<Option<Role>>,
    ) -> Result<Option<User>, StoreError> {
        let _timed = self.timed("accounts");
        let mut tx = self.$writer.begin().await?;
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let user = user_of(&row)?;
        match role {
            Some(role) => {
                sqlx::query(
                    "INSERT INTO user_environments (user_id, environment, role) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id, environment) DO UPDATE SET role = excluded.role",
                )
                .bind(id)
                .bind(environment)
                .bind(role.map(Role::as_str))
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM user_environments WHERE user_id = $1 AND environment = $2")
                    .bind(id)
                    .bind(environment)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Some(self.one_with_environments(user).await?))
    }

    async fn remove_user(&self, id: i64) -> Result<bool, StoreError> {
        let _timed = self.timed("accounts");
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.$writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_session(
        &self,
        token_hash: &[u8],
        user_id: i64,
        now_ms: i64,
        expires_ms: i64,
        ip: &str,
    ) -> Result<(), StoreError> {
        let _timed = self.timed("accounts");
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_ms, expires_ms, ip) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now_ms)
        .bind(expires_ms)
        .bind(ip)
        .execute(&self.$writer)
        .await?;
        Ok(())
    }

    async fn session_user(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<SessionUser>, StoreError> {
        let _timed = self.timed("sessions");
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role, u.disabled, u.created_ms, s.expires_ms FROM sessions s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_ms > $2 AND NOT u.disabled",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.$reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionUser {
            user: self.one_with_environments(user_of(&row)?).await?,
            expires_ms: row.try_get("expires_ms")?,
        }))
    }

    async fn remove_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        let _timed = self.timed("accounts");
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.$writer)
            .await?;
        Ok(())
    }

    async fn prune_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        let _timed = self.timed("accounts");
        let done = sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&self.$writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn address_count(&self, user_id: i64) -> Result<u64, StoreError> {
        let _timed = self.timed("accounts");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_addresses WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.$reader)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn known_address(&self, user_id: i64, ip: &str) -> Result<bool, StoreError> {
        let _timed = self.timed("accounts");
        let found: Option<i64> =
            sqlx::query_scalar("SELECT user_id FROM login_addresses WHERE user_id = $1 AND ip = $2")
                .bind(user_id)
                .bind(ip)
                .fetch_optional(&self.$reader)
                .await?;
        Ok(found.is_some())
    }

    async fn lock_logins(&self, keys: &[String], until_ms: i64) -> Result<(), StoreError> {
        let _timed = self.timed("accounts");
        let mut tx = self.$writer.begin().await?;
        for key in keys {
            sqlx::query(
                "INSERT INTO login_locks (lock_key, until_ms) VALUES ($1, $2) \
                 ON CONFLICT (lock_key) DO UPDATE SET until_ms = \
                 CASE WHEN excluded.until_ms > login_locks.until_ms THEN excluded.until_ms \
                 ELSE login_locks.until_ms END",
            )
            .bind(key)
            .bind(until_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn logins_locked_until(
        &self,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let _timed = self.timed("accounts");
        let mut latest: Option<i64> = None;
        for key in keys {
            let until: Option<i64> = sqlx::query_scalar(
                "SELECT until_ms FROM login_locks WHERE lock_key = $1 AND until_ms > $2",
            )
            .bind(key)
            .bind(now_ms)
            .fetch_optional(&self.$reader)
            .await?;
            latest = latest.max(until);
        }
        Ok(latest)
    }

    async fn unlock_logins(&self, name: &str, now_ms: i64) -> Result<u64, StoreError> {
        let _timed = self.timed("accounts");
        let name = name.to_lowercase();
        let done = sqlx::query(
            "DELETE FROM login_locks \
             WHERE (lock_key = $1 OR substr(lock_key, 1, length($2)) = $2) AND until_ms > $3",
        )
        .bind(format!("name:{name}"))
        .bind(format!("pair:{name}|"))
        .bind(now_ms)
        .execute(&self.$writer)
        .await?;
        sqlx::query("DELETE FROM login_locks WHERE until_ms <= $1")
            .bind(now_ms)
            .execute(&self.$writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn remember_address(
        &self,
        user_id: i64,
        ip: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let _timed = self.timed("accounts");
        let done = sqlx::query(
            "INSERT INTO login_addresses (user_id, ip, first_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(ip)
        .bind(now_ms)
        .execute(&self.$writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<ApiToken, StoreError> {
        let _timed = self.timed("accounts");
        let row = sqlx::query(&format!(
            "INSERT INTO api_tokens (name, role, token_hash, created_ms) VALUES ($1, $2, $3, $4) \
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(now_ms)
        .fetch_one(&self.$writer)
        .await?;
        token_of(&row)
    }

    async fn token(&self, token_hash: &[u8]) -> Result<Option<ApiToken>, StoreError> {
        let _timed = self.timed("sessions");
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_ms IS NULL"
        ))
        .bind(token_hash)
        .fetch_optional(&self.$reader)
        .await?;
        row.as_ref().map(token_of).transpose()
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let _timed = self.timed("accounts");
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
        ))
        .fetch_all(&self.$reader)
        .await?;
        rows.iter().map(token_of).collect()
    }

    async fn revoke_token(&self, id: i64, now_ms: i64) -> Result<Option<ApiToken>, StoreError> {
        let _timed = self.timed("accounts");
        let row = sqlx::query(&format!(
            "UPDATE api_tokens SET revoked_ms = COALESCE(revoked_ms, $1) WHERE id = $2 \
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(now_ms)
        .bind(id)
        .fetch_optional(&self.$writer)
        .await?;
        row.as_ref().map(token_of).transpose()
    }

    async fn add_security_alert(&self, alert: SecurityAlert) -> Result<SecurityAlert, StoreError> {
        let _timed = self.timed("security alerts");
        let row = sqlx::query(&format!(
            "INSERT INTO security_alerts (t_ms, kind, severity, user_name, ip, message) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ALERT_COLUMNS}"
        ))
        .bind(alert.t_ms)
        .bind(alert.kind.as_str())
        .bind(alert.severity.as_str())
        .bind(alert.user.as_deref())
        .bind(alert.ip.as_deref())
        .bind(alert.message.as_str())
        .fetch_one(&self.$writer)
        .await?;
        alert_of(&row)
    }

    async fn acknowledge_security_alert(
        &self,
        id: i64,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<SecurityAlert>, StoreError> {
        let _timed = self.timed("security alerts");
        let row = sqlx::query(&format!(
            "UPDATE security_alerts SET acknowledged_by = COALESCE(acknowledged_by, $1), \
             acknowledged_ms = COALESCE(acknowledged_ms, $2) WHERE id = $3 RETURNING {ALERT_COLUMNS}"
        ))
        .bind(by)
        .bind(now_ms)
        .bind(id)
        .fetch_optional(&self.$writer)
        .await?;
        row.as_ref().map(alert_of).transpose()
    }

    async fn security_alerts(&self, limit: usize) -> Result<Vec<SecurityAlert>, StoreError> {
        let _timed = self.timed("security alerts");
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM security_alerts ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.$reader)
        .await?;
        rows.iter().map(alert_of).collect()
    }
}

    };
}

accounts_on!(SqliteStore, reader, writer);
accounts_on!(PgStore, pool, pool);

#[cfg(test)]
mod tests {
    use super::*;

    async fn sign_in_locks_are_kept_lifted_by_name_and_expire(s: &impl Accounts) {
        let keys = |v: &[&str]| v.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        s.lock_logins(&keys(&["pair:ana|10.0.0.9", "ip:10.0.0.9"]), 1_000)
            .await
            .unwrap();
        s.lock_logins(&keys(&["pair:ana|10.0.0.9"]), 500)
            .await
            .unwrap();
        s.lock_logins(&keys(&["pair:anabel|10.0.0.7"]), 1_000)
            .await
            .unwrap();
        let ana = keys(&["pair:ana|10.0.0.9", "name:ana"]);
        assert_eq!(s.logins_locked_until(&ana, 100).await.unwrap(), Some(1_000));
        assert_eq!(s.logins_locked_until(&ana, 1_000).await.unwrap(), None);
        assert_eq!(s.unlock_logins("ANA", 100).await.unwrap(), 1);
        assert_eq!(s.logins_locked_until(&ana, 100).await.unwrap(), None);
        // The address's own lock and another name's stay.
        assert_eq!(
            s.logins_locked_until(&keys(&["ip:10.0.0.9"]), 100)
                .await
                .unwrap(),
            Some(1_000)
        );
        assert_eq!(
            s.logins_locked_until(&keys(&["pair:anabel|10.0.0.7"]), 100)
                .await
                .unwrap(),
            Some(1_000)
        );
    }

    async fn users_sessions_and_tokens_round_trip(s: &impl Accounts) {
        assert_eq!(s.user_count().await.unwrap(), 0);
        let ana = s
            .add_user("ana", Role::Admin, "$argon2id$x", 1)
            .await
            .unwrap();
        assert!(matches!(
            s.add_user("ana", Role::Viewer, "h", 2).await,
            Err(StoreError::Exists(_))
        ));
        assert_eq!(
            s.credentials("ana").await.unwrap().unwrap().password_hash,
            "$argon2id$x"
        );
        assert!(s.credentials("bob").await.unwrap().is_none());

        s.add_session(b"h1", ana.id, 10, 100, "127.0.0.1")
            .await
            .unwrap();
        assert_eq!(
            s.session_user(b"h1", 50).await.unwrap().unwrap().user.name,
            "ana"
        );
        assert!(
            s.session_user(b"h1", 100).await.unwrap().is_none(),
            "expired"
        );
        assert!(s.session_user(b"h2", 50).await.unwrap().is_none());

        // Disabling ends the sessions; a role change does not.
        s.update_user(ana.id, Some(Role::Operator), None, None)
            .await
            .unwrap();
        assert_eq!(
            s.session_user(b"h1", 50).await.unwrap().unwrap().user.role,
            Role::Operator
        );
        s.update_user(ana.id, None, Some(true), None).await.unwrap();
        assert!(s.session_user(b"h1", 50).await.unwrap().is_none());

        assert!(s.remember_address(ana.id, "10.0.0.1", 1).await.unwrap());
        assert!(!s.remember_address(ana.id, "10.0.0.1", 2).await.unwrap());

        let t = s.add_token("ci", Role::Operator, b"t1", 5).await.unwrap();
        assert_eq!(s.token(b"t1").await.unwrap().unwrap().name, "ci");
        s.revoke_token(t.id, 6).await.unwrap();
        assert!(s.token(b"t1").await.unwrap().is_none());
        assert_eq!(s.tokens().await.unwrap()[0].revoked_ms, Some(6));

        let alert = SecurityAlert {
            id: 0,
            t_ms: 7,
            kind: SecurityKind::FailedLogin,
            severity: Severity::Warning,
            user: Some("ana".into()),
            ip: Some("10.0.0.9".into()),
            message: "failed".into(),
            acknowledged_by: None,
            acknowledged_ms: None,
        };
        let stored = s.add_security_alert(alert.clone()).await.unwrap();
        assert!(stored.id > 0);
        let acked = s
            .acknowledge_security_alert(stored.id, "olga", 9)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (acked.acknowledged_by.as_deref(), acked.acknowledged_ms),
            (Some("olga"), Some(9))
        );
        let again = s
            .acknowledge_security_alert(stored.id, "bob", 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            again.acknowledged_by.as_deref(),
            Some("olga"),
            "the first acknowledgement stands"
        );
        assert_eq!(s.security_alerts(10).await.unwrap(), [again]);
        assert!(
            s.acknowledge_security_alert(999, "x", 1)
                .await
                .unwrap()
                .is_none()
        );

        // Roles per environment: set, changed, none, and back to the account's.
        let staging = |r| s.set_environment_role(ana.id, "staging", r);
        staging(Some(Some(Role::Admin))).await.unwrap();
        let user = s
            .set_environment_role(ana.id, "prod", Some(None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            user.environments,
            [
                shared::EnvironmentRole {
                    environment: "prod".into(),
                    role: None
                },
                shared::EnvironmentRole {
                    environment: "staging".into(),
                    role: Some(Role::Admin)
                },
            ]
        );
        staging(Some(Some(Role::Viewer))).await.unwrap();
        let listed = s.users().await.unwrap();
        assert_eq!(listed[0].access().role_in("staging"), Some(Role::Viewer));
        assert_eq!(listed[0].access().role_in("prod"), None);
        staging(None).await.unwrap();
        let cred = s.credentials("ana").await.unwrap().unwrap();
        assert_eq!(cred.user.environments.len(), 1);
        assert!(
            s.set_environment_role(999, "prod", None)
                .await
                .unwrap()
                .is_none()
        );

        assert!(s.remove_user(ana.id).await.unwrap());
        assert!(!s.remove_user(ana.id).await.unwrap());
        assert_eq!(s.user_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn sign_in_locks_on_sqlite() {
        let (_dir, s) = crate::sqlite::scratch().await;
        sign_in_locks_are_kept_lifted_by_name_and_expire(&s).await;
    }

    #[tokio::test]
    async fn sign_in_locks_on_postgres() {
        let scratch = crate::postgres::scratch().await;
        sign_in_locks_are_kept_lifted_by_name_and_expire(&scratch.store).await;
    }

    #[tokio::test]
    async fn accounts_on_sqlite() {
        let (_dir, s) = crate::sqlite::scratch().await;
        users_sessions_and_tokens_round_trip(&s).await;
    }

    #[tokio::test]
    async fn accounts_on_postgres() {
        let scratch = crate::postgres::scratch().await;
        users_sessions_and_tokens_round_trip(&scratch.store).await;
    }
}
