//! What a person does on the dashboard, one file each (as mini-redis keeps one command a file): the typed
//! request, the role it needs, how the audit trail names it, and how it applies. [`perform`] is the one
//! path every action takes: the permission table (a refusal raises a security alert), an audit entry
//! written before the action takes effect (an action that cannot be audited does not happen), the action,
//! and the entry completed with how it ended.
//!
//! Commands are the exception: a run is audited by `commands` itself, since it ends long after it starts.

mod acknowledge_alert;
mod acknowledge_security;
mod add_host;
mod add_user;
mod configure_host;
mod create_token;
mod delete_alert_rule;
mod maintain_host;
mod remove_user;
mod revoke_host;
mod revoke_token;
mod save_alert_rule;
mod set_environment_role;
mod silence_alert;
mod test_channel;
mod update_user;

pub use acknowledge_alert::AcknowledgeAlert;
pub use acknowledge_security::AcknowledgeSecurity;
pub use add_host::AddHost;
pub use add_user::AddUser;
pub use configure_host::ConfigureHost;
pub use create_token::CreateToken;
pub use delete_alert_rule::DeleteAlertRule;
pub use maintain_host::MaintainHost;
pub use remove_user::RemoveUser;
pub use revoke_host::RevokeHost;
pub use revoke_token::RevokeToken;
pub use save_alert_rule::SaveAlertRule;
pub use set_environment_role::SetEnvironmentRole;
pub use silence_alert::SilenceAlert;
pub use test_channel::TestChannel;
pub use update_user::UpdateUser;

use crate::alerts::{AlertError, Alerts};
use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::auth::admin::AdminError;
use crate::notify::{Notifier, NotifyError};
use shared::{Action, Caller, Me, Refused};
use std::collections::BTreeMap;
use std::future::Future;
use store::StoreError;

/// What actions act on. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub auth: Auth,
    pub audit: AuditLog,
    pub alerts: Alerts,
    pub notifier: Notifier,
    pub fleet: crate::fleet::Fleet,
}

/// One thing a person does.
pub trait UserAction: Send + Sized {
    type Done: Send + Sync;
    /// The least the permission table asks of the caller's role.
    const NEEDS: Action;
    /// How the audit trail names it: `user.add`.
    const LABEL: &'static str;

    /// What it is taken on, as the audit trail names it (a user's name rather than an id, where it can).
    fn target(&self, services: &Services) -> impl Future<Output = String> + Send;

    /// The request's settings, as the audit trail records them (never a secret).
    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn apply(
        self,
        services: &Services,
        by: &Caller,
    ) -> impl Future<Output = Result<Self::Done, ActionError>> + Send;

    /// The environment of what it is taken on, when that is not the hub's own (an alert of an agent's
    /// host): the caller's role there is the one checked.
    fn environment(&self, _services: &Services) -> Option<String> {
        None
    }

    /// How the audit trail describes a success.
    fn detail(done: &Self::Done) -> String;
}

/// Checks, audits and applies `action` for `by`.
pub async fn perform<A: UserAction>(
    services: &Services,
    by: &Caller,
    action: A,
) -> Result<A::Done, ActionError> {
    let home = services.auth.home();
    let environment = action.environment(services);
    let environment = environment.as_deref().unwrap_or(home);
    let refused = match by.role_in(environment) {
        None => Some(Refused::outside(A::NEEDS, &by.name, environment)),
        Some(role) if !A::NEEDS.allowed(role) => Some(Refused::of(A::NEEDS, &by.name, role)),
        Some(_) => None,
    };
    if let Some(refused) = refused {
        services.auth.forbidden(&refused);
        return Err(ActionError::Forbidden(refused));
    }
    let target = action.target(services).await;
    let params = action.params();
    services
        .audit
        .around(
            by,
            (A::LABEL, &target),
            params,
            action.apply(services, by),
            A::detail,
        )
        .await
}

/// Why an action did not happen, in the kinds the edges answer differently (400, 403, 404, 409, 503).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(Refused),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<crate::fleet::HostChangeError> for ActionError {
    fn from(e: crate::fleet::HostChangeError) -> Self {
        use crate::fleet::HostChangeError;
        match e {
            HostChangeError::NotFound(_) => ActionError::NotFound(e.to_string()),
            HostChangeError::Invalid(m) => ActionError::Invalid(m),
            HostChangeError::Store(_) => ActionError::Unavailable(e.to_string()),
        }
    }
}

impl From<StoreError> for ActionError {
    /// The audit entry could not be written, so the action did not happen.
    fn from(e: StoreError) -> Self {
        ActionError::Unavailable(format!(
            "the audit trail cannot be written, so nothing was changed: {e}"
        ))
    }
}

impl From<AdminError> for ActionError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(m) => ActionError::Invalid(m),
            // An id the request named that does not exist is the request's mistake.
            AdminError::NotFound(..) => ActionError::Invalid(e.to_string()),
            AdminError::Conflict(m) => ActionError::Conflict(m),
            AdminError::Store(_) | AdminError::Secret(_) => ActionError::Unavailable(e.to_string()),
        }
    }
}

impl From<AlertError> for ActionError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::NotFound(_) | AlertError::NoRule(_) => ActionError::NotFound(e.to_string()),
            AlertError::Invalid(_) => ActionError::Invalid(e.to_string()),
            AlertError::Declared(_) => ActionError::Conflict(e.to_string()),
            AlertError::Store(_) | AlertError::Stopped => ActionError::Unavailable(e.to_string()),
        }
    }
}

impl From<NotifyError> for ActionError {
    fn from(e: NotifyError) -> Self {
        match e {
            NotifyError::NoChannel(_) => ActionError::NotFound(e.to_string()),
            NotifyError::Failed(_) => ActionError::Unavailable(e.to_string()),
        }
    }
}

/// The caller as the parts that take a [`Me`] know them.
fn me(caller: &Caller) -> Me {
    Me {
        name: caller.name.clone(),
        role: caller.role,
        access: caller.access.clone(),
    }
}

/// A user's name for the audit trail (the id when it cannot be read).
async fn user_name(auth: &Auth, id: i64) -> String {
    match auth.accounts_view().await {
        Ok(view) => view
            .users
            .iter()
            .find(|u| u.id == id)
            .map_or_else(|| format!("user {id}"), |u| u.name.clone()),
        Err(_) => format!("user {id}"),
    }
}
