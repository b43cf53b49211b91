//! Who a request is from, and whether it may come in at all.
//!
//! Every route but `/healthz`, the sign-in and setup pages and the static assets needs a session
//! cookie (set by signing in) or an API token (`Authorization: Bearer wpt_…`). [`authenticate`] finds the
//! principal and puts it, and the [`Me`] the app reads, into the request's extensions. [`same_origin`]
//! refuses state-changing requests a browser sent from another site, besides what the SameSite cookie does.

pub mod admin;
pub mod principal;
pub mod routes;
pub mod secrets;
pub mod security;
pub mod streams;

pub use principal::{Principal, PrincipalKind};

use crate::api_error::ApiError;
use crate::clock::now_millis;
use crate::notify::Notifier;
use crate::outlet::Outlet;
use crate::auth::streams::OpenStreams;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use shared::{Action, Caller, Me};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Accounts;

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
    pub fn forbidden(&self, who: &Me, action: Action) {
        let (auth, who) = (self.clone(), who.clone());
        tokio::spawn(async move { auth.forbidden_attempt(&who, action.describe()).await });
    }

    /// [`require`], raising a security alert when the principal's role is not enough.
    pub fn authorize<'a>(
        &self,
        principal: Option<&'a Principal>,
        action: Action,
    ) -> Result<&'a Principal, ApiError> {
        let result = require(principal, action);
        if let (Err(_), Some(p)) = (&result, principal) {
            self.forbidden(
                &Me {
                    name: p.name.clone(),
                    role: p.role,
                },
                action,
            );
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
    fn take_setup_code(&self, code: &str) -> bool {
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
    fn restore_setup_code(&self, code: String) {
        if let Ok(mut slot) = self.setup_code.lock() {
            *slot = Some(code);
        }
    }

    fn setup_pending(&self) -> bool {
        self.setup_code.lock().is_ok_and(|s| s.is_some())
    }

    /// The principal a request's cookie or bearer token stands for.
    async fn principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
        let now = now_millis();
        if let Some(token) = bearer(headers) {
            let found = self
                .accounts
                .token(&secrets::digest(token))
                .await
                .map_err(unavailable)?;
            return Ok(found.map(|t| Principal {
                name: format!("token:{}", t.name),
                role: t.role,
                kind: PrincipalKind::Token { id: t.id },
                checked_ms: now,
            }));
        }
        let Some(secret) = cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let session = secrets::digest(secret);
        let found = self
            .accounts
            .session_user(&session, now)
            .await
            .map_err(unavailable)?;
        Ok(found.map(|s| Principal {
            name: s.user.name,
            role: s.user.role,
            kind: PrincipalKind::User {
                id: s.user.id,
                session,
                expires_ms: s.expires_ms,
            },
            checked_ms: now,
        }))
    }
}

fn unavailable(e: store::StoreError) -> ApiError {
    tracing::error!("cannot read accounts: {e}");
    ApiError::unavailable(format!("accounts cannot be read: {e}"))
}

/// The value of `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Paths anyone may reach: the health check (for load balancers and monitors), the sign-in and
/// setup pages and their form targets, the static assets those pages load, and `--demo`'s sample API (it
/// stands for a user's own service, which its load calls without an account).
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz"
            | "/login"
            | "/setup"
            | "/api/login"
            | "/api/setup"
            | "/favicon.svg"
            | "/echarts.js"
    ) || path.starts_with("/pkg/")
        || path.starts_with("/demo/")
}

/// Whether a browser is asking for a page (which gets sent to sign in) rather than an API (which gets 401).
fn wants_page(req: &Request) -> bool {
    req.method() == Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// Lets a request through with its principal in the extensions, or answers 401 (an API) or sends a browser
/// to the sign-in page (a page).
pub async fn authenticate(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if is_public(path) {
        return next.run(req).await;
    }
    match auth.principal(req.headers()).await {
        Ok(Some(principal)) => {
            let ip = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
            req.extensions_mut().insert(Me {
                name: principal.name.clone(),
                role: principal.role,
            });
            req.extensions_mut().insert(Caller {
                name: principal.name.clone(),
                role: principal.role,
                ip,
            });
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Ok(None) if wants_page(&req) => {
            let target = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            Redirect::to(&format!("/login?next={}", encode(&target))).into_response()
        }
        Ok(None) => {
            if bearer(req.headers()).is_some()
                && let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>()
            {
                auth.invalid_token(peer.ip(), req.uri().path()).await;
            }
            let message = if bearer(req.headers()).is_some() {
                "the API token is not valid (unknown or revoked)"
            } else if auth.setup_pending() {
                "no account exists yet: open the setup link the server printed in its log"
            } else {
                "sign in first (a session cookie or an API token is needed)"
            };
            ApiError::new(StatusCode::UNAUTHORIZED, message).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Percent-encodes a path for a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Refuses a state-changing request (anything but GET, HEAD, OPTIONS) that a browser says came from
/// another site: `Sec-Fetch-Site` when the browser sends it, else `Origin` against `Host`. Requests without
/// either (curl, agents with a token) are not from a browser page and pass.
pub async fn same_origin(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let refused = match (text("sec-fetch-site"), text("origin")) {
        (Some(site), _) => !matches!(site, "same-origin" | "none"),
        (None, Some(origin)) => {
            let host = text("host").unwrap_or_default();
            origin
                .split_once("://")
                .is_none_or(|(_, authority)| authority != host)
        }
        (None, None) => false,
    };
    if refused {
        tracing::warn!(
            path = %req.uri().path(),
            origin = text("origin").unwrap_or("-"),
            "cross-origin request refused"
        );
        return ApiError::forbidden("cross-origin request refused").into_response();
    }
    next.run(req).await
}

/// The principal of a request that passed [`authenticate`], if the permission table lets it take `action`;
/// else a 403 naming the role it needs.
pub fn require(principal: Option<&Principal>, action: Action) -> Result<&Principal, ApiError> {
    match principal {
        Some(p) if action.allowed(p.role) => Ok(p),
        Some(p) => Err(ApiError::forbidden(format!(
            "only an {} or above may {}; {} is {}",
            action.least_role(),
            action.describe(),
            p.name,
            p.role
        ))),
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "sign in first")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_bearer_tokens_are_read_from_headers() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; watchpost_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        h.insert(header::AUTHORIZATION, "Bearer wpt_x".parse().unwrap());
        assert_eq!(bearer(&h), Some("wpt_x"));
    }

    #[test]
    fn only_the_listed_paths_are_public() {
        for p in ["/healthz", "/login", "/pkg/watchpost.wasm", "/api/login"] {
            assert!(is_public(p), "{p}");
        }
        for p in [
            "/",
            "/api/events",
            "/api/history",
            "/api/ingest/logs",
            "/loginx",
            "/api/get_history",
        ] {
            assert!(!is_public(p), "{p}");
        }
        assert_eq!(encode("/?range=1h&x=a b"), "/%3Frange%3D1h%26x%3Da%20b");
    }
}
