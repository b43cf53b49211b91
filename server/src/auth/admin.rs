//! Account management as the admin page (and its server functions) ask for it. The caller has checked the
//! permission table; here are the rules the table cannot express: names and passwords must be valid, and
//! the last enabled admin cannot be removed, disabled or demoted (nobody could manage accounts after).
//! Every change is logged with who made it and published as an `accounts` event, which only admins see.

use super::{Auth, secrets};
use crate::auth::streams::Which;
use crate::clock::now_millis;
use shared::{
    AccountsView, AfterClose, ApiToken, Event, Me, NewToken, Role, User, check_password,
    check_user_name,
};
use store::StoreError;

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("no {0} with id {1}")]
    NotFound(&'static str, i64),
    #[error("accounts cannot be changed right now: {0}")]
    Store(StoreError),
    #[error("{0}")]
    Secret(#[from] secrets::SecretError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists(what) => AdminError::Conflict(format!("{what} already exists")),
            other => AdminError::Store(other),
        }
    }
}

impl Auth {
    /// Every user and token.
    pub async fn accounts_view(&self) -> Result<AccountsView, AdminError> {
        Ok(AccountsView {
            users: self.accounts.users().await?,
            tokens: self.accounts.tokens().await?,
        })
    }

    /// Tells every admin's tab that accounts changed.
    async fn publish_accounts(&self) {
        match self.accounts_view().await {
            Ok(view) => {
                self.outlet.emit(None, Event::Accounts(view));
            }
            Err(e) => tracing::warn!("cannot publish the accounts after a change: {e}"),
        }
    }

    /// The user `id`, refused (409) when the change would leave no enabled admin: `still_admin` says
    /// whether the user is an enabled admin after it. One read of the users serves both checks.
    async fn user_keeping_an_admin(
        &self,
        id: i64,
        still_admin: impl Fn(&User) -> bool,
    ) -> Result<User, AdminError> {
        let users = self.accounts.users().await?;
        let user = users
            .iter()
            .find(|u| u.id == id)
            .cloned()
            .ok_or(AdminError::NotFound("user", id))?;
        // An admin of the hub is one whose role in the hub's own environment is admin.
        let home = self.home().to_owned();
        let enabled_admin =
            |u: &User| u.access().role_in(&home) == Some(Role::Admin) && !u.disabled;
        if enabled_admin(&user)
            && !still_admin(&user)
            && users.iter().filter(|u| enabled_admin(u)).count() <= 1
        {
            return Err(AdminError::Conflict(format!(
                "{} is the last admin: make another user admin first",
                user.name
            )));
        }
        Ok(user)
    }

    pub async fn add_user(
        &self,
        actor: &Me,
        name: String,
        role: Role,
        password: String,
    ) -> Result<User, AdminError> {
        check_user_name(&name).map_err(AdminError::Invalid)?;
        check_password(&password).map_err(AdminError::Invalid)?;
        let hash = secrets::hash_password(password).await?;
        let user = self
            .accounts
            .add_user(&name, role, &hash, now_millis())
            .await?;
        tracing::info!(by = %actor.name, user = %user.name, role = %user.role, "user added");
        self.publish_accounts().await;
        Ok(user)
    }

    pub async fn update_user(
        &self,
        actor: &Me,
        id: i64,
        role: Option<Role>,
        disabled: Option<bool>,
        password: Option<String>,
    ) -> Result<User, AdminError> {
        let home = self.home().to_owned();
        let before = self
            .user_keeping_an_admin(id, |u| {
                let access = shared::Access::with(role.unwrap_or(u.role), u.environments.clone());
                access.role_in(&home) == Some(Role::Admin) && disabled.map_or(!u.disabled, |d| !d)
            })
            .await?;
        let hash = match password {
            Some(p) => {
                check_password(&p).map_err(AdminError::Invalid)?;
                Some(secrets::hash_password(p).await?)
            }
            None => None,
        };
        let updated = self
            .accounts
            .update_user(id, role, disabled, hash.as_deref())
            .await?
            .ok_or(AdminError::NotFound("user", id))?;
        tracing::info!(
            by = %actor.name,
            user = %updated.name,
            role = %updated.role,
            disabled = updated.disabled,
            password_changed = hash.is_some(),
            "user changed"
        );
        // The store ended the sessions already; their open streams end here, each tab told why.
        let ending = if updated.disabled && !before.disabled {
            Some(("an admin disabled your account", AfterClose::SignIn))
        } else if hash.is_some() {
            Some((
                "your password was changed: sign in again",
                AfterClose::SignIn,
            ))
        } else if updated.role != before.role {
            Some(("your role changed: the page reloads", AfterClose::Reload))
        } else {
            None
        };
        if let Some((reason, then)) = ending {
            self.streams.end(Which::User(id), reason, then);
        }
        self.publish_accounts().await;
        Ok(updated)
    }

    /// Sets the user's role in one environment (`Some(None)`: no access there), or with `None` lets the
    /// account's role apply there again. The user's open streams end with a reload, so the next carries
    /// what the new access may see.
    pub async fn set_environment_role(
        &self,
        actor: &Me,
        id: i64,
        environment: &str,
        role: Option<Option<Role>>,
    ) -> Result<User, AdminError> {
        crate::fleet::check_name(environment, "environment").map_err(AdminError::Invalid)?;
        let home = self.home().to_owned();
        let before = self
            .user_keeping_an_admin(id, |u| {
                let mut environments = u.environments.clone();
                environments.retain(|e| e.environment != environment);
                if let Some(role) = role {
                    environments.push(shared::EnvironmentRole {
                        environment: environment.to_owned(),
                        role,
                    });
                }
                let access = shared::Access::with(u.role, environments);
                access.role_in(&home) == Some(Role::Admin) && !u.disabled
            })
            .await?;
        let updated = self
            .accounts
            .set_environment_role(id, environment, role)
            .await?
            .ok_or(AdminError::NotFound("user", id))?;
        tracing::info!(
            by = %actor.name,
            user = %updated.name,
            environment,
            role = %role.map_or("default".to_owned(), |r| r.map_or("none".to_owned(), |r| r.to_string())),
            "user's role in an environment changed"
        );
        if updated.access() != before.access() {
            self.streams.end(
                Which::User(id),
                "your role changed: the page reloads",
                AfterClose::Reload,
            );
        }
        self.publish_accounts().await;
        Ok(updated)
    }

    pub async fn remove_user(&self, actor: &Me, id: i64) -> Result<(), AdminError> {
        let user = self.user_keeping_an_admin(id, |_| false).await?;
        if !self.accounts.remove_user(id).await? {
            return Err(AdminError::NotFound("user", id));
        }
        tracing::info!(by = %actor.name, user = %user.name, "user removed");
        self.streams.end(
            Which::User(id),
            "your account was removed",
            AfterClose::SignIn,
        );
        self.publish_accounts().await;
        Ok(())
    }

    pub async fn create_token(
        &self,
        actor: &Me,
        name: String,
        role: Role,
    ) -> Result<NewToken, AdminError> {
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(AdminError::Invalid(
                "a token name has 1 to 64 characters".into(),
            ));
        }
        let secret = secrets::new_token()?;
        let token = self
            .accounts
            .add_token(&name, role, &secrets::digest(&secret), now_millis())
            .await?;
        tracing::info!(by = %actor.name, token = %token.name, role = %token.role, "API token created");
        self.publish_accounts().await;
        Ok(NewToken { token, secret })
    }

    pub async fn revoke_token(&self, actor: &Me, id: i64) -> Result<ApiToken, AdminError> {
        let token = self
            .accounts
            .revoke_token(id, now_millis())
            .await?
            .ok_or(AdminError::NotFound("token", id))?;
        tracing::info!(by = %actor.name, token = %token.name, "API token revoked");
        self.streams
            .end(Which::Token(id), "the token was revoked", AfterClose::Stay);
        self.publish_accounts().await;
        Ok(token)
    }
}
