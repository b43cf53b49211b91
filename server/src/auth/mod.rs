//! Accounts, sessions and tokens: who a credential stands for, and whether a principal may take an action.
//!
//! Every route but `/healthz`, the sign-in and setup pages and the static assets needs a session
//! cookie (set by signing in) or an API token (`Authorization: Bearer wpt_…`); the HTTP edge reads the
//! [`Credential`] off the request and asks [`Auth::principal`] whom it stands for.

pub mod admin;
pub mod principal;
pub mod secrets;
pub mod security;
pub mod streams;

pub use principal::{Principal, PrincipalKind};

use crate::auth::streams::OpenStreams;
use crate::clock::now_millis;
use crate::notify::Notifier;
use crate::outlet::Outlet;
use shared::{Action, Me, Refused};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Accounts, StoreError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "watchpost_session";

/// How sessions are handed out.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// How long a session lasts from sign-in.
    pub session_ttl: Duration,
    /// Mark the cookie `Secure`: set when Watchpost is reached over TLS (a proxy in front).
    pub secure_cookie: bool,
    /// When failed sign-ins lock out.
    pub lockout: security::LockoutConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            secure_cookie: false,
            lockout: security::LockoutConfig::default(),
        }
    }
}

/// Accounts, sessions and the one-time setup code. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    pub(crate) accounts: Arc<dyn Accounts>,
    pub(crate) config: AuthConfig,
    /// While no user exists: the code of the one-time setup link printed in the log.
    setup_code: Arc<Mutex<Option<String>>>,
    /// Where account changes and security alerts are published.
    outlet: Outlet,
    /// The open live streams, ended when their credential ends.
    pub(crate) streams: Arc<OpenStreams>,
    guard: Arc<security::Guard>,
    /// Where security alerts are sent beyond the dashboard.
    notifier: Notifier,
}

impl Auth {
    /// `streams`: the open live streams, ended when their credential ends.
    pub fn new(
        accounts: Arc<dyn Accounts>,
        config: AuthConfig,
        outlet: Outlet,
        streams: Arc<OpenStreams>,
        notifier: Notifier,
    ) -> Self {
        Auth {
            accounts,
            config,
            setup_code: Arc::default(),
            outlet,
            guard: Arc::default(),
            streams,
            notifier,
        }
    }

    /// Raises the alert for an attempt the permission table refused (in the background: the refusal
    /// itself does not wait for the store).
    pub fn forbidden(&self, refused: &Refused) {
        let (auth, refused) = (self.clone(), refused.clone());
        tokio::spawn(async move { auth.forbidden_attempt(&refused).await });
    }

    /// [`require`], raising a security alert when the principal's role is not enough.
    pub fn authorize<'a>(
        &self,
        principal: Option<&'a Principal>,
        action: Action,
    ) -> Result<&'a Principal, Refusal> {
        let result = require(principal, action);
        if let Err(Refusal::Forbidden(refused)) = &result {
            self.forbidden(refused);
        }
        result
    }

    /// Publishes the newest stored alerts, oldest first, so the hub's state (and every snapshot) starts with
    /// them after a restart.
    pub async fn publish_recent_alerts(&self) {
        match self.accounts.security_alerts(shared::RECENT_SECURITY).await {
            Ok(alerts) => {
                for alert in alerts.into_iter().rev() {
                    self.outlet.emit(None, shared::Event::Security(alert));
                }
            }
            Err(e) => tracing::warn!("cannot read the stored security alerts: {e}"),
        }
    }

    /// Marks an alert acknowledged by `who` and tells every tab.
    pub async fn acknowledge(
        &self,
        who: &Me,
        id: i64,
    ) -> Result<shared::SecurityAlert, admin::AdminError> {
        let alert = self
            .accounts
            .acknowledge_security_alert(id, &who.name, now_millis())
            .await?
            .ok_or(admin::AdminError::NotFound("security alert", id))?;
        tracing::info!(by = %who.name, alert = id, "security alert acknowledged");
        self.outlet
            .emit(None, shared::Event::Security(alert.clone()));
        Ok(alert)
    }

    /// With no users yet, makes a one-time setup code and returns it for the log; `None` once users exist.
    pub async fn begin_setup(&self) -> anyhow::Result<Option<String>> {
        if self.accounts.user_count().await? > 0 {
            return Ok(None);
        }
        let code = secrets::new_setup_code()?;
        if let Ok(mut slot) = self.setup_code.lock() {
            *slot = Some(code.clone());
        }
        Ok(Some(code))
    }

    /// Takes the setup code if `code` is it: it works once.
    pub(crate) fn take_setup_code(&self, code: &str) -> bool {
        let Ok(mut slot) = self.setup_code.lock() else {
            return false;
        };
        match slot.as_deref() {
            Some(expected) if secrets::same_secret(expected, code) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    /// Puts a setup code back, when creating the account failed after it was taken.
    pub(crate) fn restore_setup_code(&self, code: String) {
        if let Ok(mut slot) = self.setup_code.lock() {
            *slot = Some(code);
        }
    }

    pub(crate) fn setup_pending(&self) -> bool {
        self.setup_code.lock().is_ok_and(|s| s.is_some())
    }

    /// The principal a request's credential stands for; `None` for no credential, or one that is unknown,
    /// revoked or expired.
    pub async fn principal(
        &self,
        credential: Option<Credential<'_>>,
    ) -> Result<Option<Principal>, StoreError> {
        let now = now_millis();
        let secret = match credential {
            None => return Ok(None),
            Some(Credential::Session(secret)) => secret,
            Some(Credential::Token(token)) => {
                let found = self.accounts.token(&secrets::digest(token)).await?;
                return Ok(found.map(|t| Principal {
                    name: format!("token:{}", t.name),
                    role: t.role,
                    access: shared::Access::uniform(t.role),
                    outside: None,
                    kind: PrincipalKind::Token { id: t.id },
                    checked_ms: now,
                }));
            }
        };
        let session = secrets::digest(secret);
        let found = self.accounts.session_user(&session, now).await?;
        let home = self.outlet.hub().environment();
        Ok(found.map(|s| {
            let access = s.user.access();
            Principal {
                name: s.user.name,
                role: access.role_in(home).unwrap_or(shared::Role::Viewer),
                outside: (!access.sees(home)).then(|| home.to_owned()),
                access,
                kind: PrincipalKind::User {
                    id: s.user.id,
                    session,
                    expires_ms: s.expires_ms,
                },
                checked_ms: now,
            }
        }))
    }

    /// The environment of the hub's own host.
    pub fn home(&self) -> &str {
        self.outlet.hub().environment()
    }

    /// The hub, for what an action needs to know of the state (an alert's environment).
    pub fn hub(&self) -> &std::sync::Arc<crate::hub::Hub> {
        self.outlet.hub()
    }
}

/// The principal of a request that passed [`authenticate`], if the permission table lets it take `action`;
/// else a 403 naming the role it needs.
pub fn require(principal: Option<&Principal>, action: Action) -> Result<&Principal, Refusal> {
    match principal {
        Some(Principal {
            name,
            outside: Some(home),
            ..
        }) => Err(Refusal::Forbidden(Refused::outside(action, name, home))),
        Some(p) if action.allowed(p.role) => Ok(p),
        Some(p) => Err(Refusal::Forbidden(Refused::of(action, &p.name, p.role))),
        None => Err(Refusal::SignIn),
    }
}

/// A credential as a request presents it.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// An API token (`Authorization: Bearer wpt_…`).
    Token(&'a str),
    /// The secret of a session cookie.
    Session(&'a str),
}

/// Why a request may not take an action: the HTTP edge answers 401 or 403 with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("sign in first")]
    SignIn,
    #[error("{0}")]
    Forbidden(Refused),
}
