//! The middleware every request passes: the timing of `/metrics` and the API panel, the cross-site check of
//! writes, and finding whom the request is from.

use crate::auth::{Auth, Credential, SESSION_COOKIE};
use crate::http::client_addr::ClientAddr;
use crate::http::error::ApiError;
use crate::http::serve::ConnectionSlot;
use crate::sources::http_self::{FALLBACK_ROUTE, HttpMetrics, UNTIMED, method_label};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use shared::{Caller, Me};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

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

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
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
        "/healthz" | "/login" | "/setup" | "/api/login" | "/api/setup"
    ) || is_asset(path)
        || path.starts_with("/demo/")
}

/// The static files served from the site root: the WASM, its JS and CSS, the ECharts bundle, the icon.
pub fn is_asset(path: &str) -> bool {
    path.starts_with("/pkg/")
        || path == "/favicon.svg"
        || path
            .strip_prefix("/echarts.")
            .is_some_and(|rest| rest.ends_with(".js") && !rest.contains('/'))
}

/// Whether a static file's name carries a hash of its content, `name.<hash>.ext`: the build gives a changed
/// file a new name, so whatever is served under this one never changes. cargo-leptos's hashes are 22
/// characters of URL-safe base64, esbuild's 8 letters and digits.
pub fn is_content_hashed(path: &str) -> bool {
    if !is_asset(path) {
        return false;
    }
    let name = path.rsplit('/').next().unwrap_or_default();
    let mut parts = name.rsplit('.');
    let (Some(_ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !stem.is_empty()
        && hash.len() >= 8
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
    let probation = req
        .extensions()
        .get::<Arc<ConnectionSlot>>()
        .is_some_and(|slot| slot.on_probation());
    let path = req.uri().path();
    if is_public(path) && !probation {
        return next.run(req).await;
    }
    // An agent's requests carry the agent's token, which their routes check (and answer 401 or 403 for)
    // before they read the body. A connection on probation must show one.
    if collect::wire::is_agent_path(path) {
        if probation && bearer(req.headers()).is_none() {
            return too_many_unsigned();
        }
        return next.run(req).await;
    }
    let found = auth.principal(credential(req.headers())).await;
    if probation && !matches!(found, Ok(Some(_))) {
        return too_many_unsigned();
    }
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    match found {
        Ok(Some(principal)) => {
            if let Some(slot) = req.extensions().get::<Arc<ConnectionSlot>>() {
                slot.signed_in();
            }
            let ip = client(&req).to_string();
            req.extensions_mut().insert(Me {
                name: principal.name.clone(),
                role: principal.role,
                access: Some(principal.access.clone()),
            });
            req.extensions_mut().insert(Caller {
                name: principal.name.clone(),
                role: principal.role,
                ip,
                access: Some(principal.access.clone()),
            });
            req.extensions_mut().insert(principal.access.clone());
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
            if bearer(req.headers()).is_some() {
                auth.invalid_token(client(&req), req.uri().path()).await;
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
        Err(e) => {
            tracing::error!("cannot read accounts: {e}");
            ApiError::unavailable(format!("accounts cannot be read: {e}")).into_response()
        }
    }
}

/// The answer to a request that is not signed in on a connection past its address's cap: 429, and the
/// connection closes.
fn too_many_unsigned() -> Response {
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too many connections from this address that have not signed in: sign in, or try again shortly",
    )
    .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// The client's address, as [`crate::http::client_addr::resolve`] found it.
fn client(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0)
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

/// The credential a request carries: an API token first, else the session cookie.
fn credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    bearer(headers)
        .map(Credential::Token)
        .or_else(|| cookie(headers, SESSION_COOKIE).map(Credential::Session))
}

/// Times every request into the route's histogram (refused ones too).
pub async fn track(State(metrics): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(FALLBACK_ROUTE, |p| p.as_str())
        .to_owned();
    if UNTIMED.contains(&route.as_str()) {
        return next.run(req).await;
    }
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.record(&route, method, response.status(), started.elapsed());
    response
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
    fn hashed_names_are_told_from_plain_ones() {
        for p in [
            "/pkg/watchpost.Xk3_9aZ-0qWmLr7tYb2c1Q.wasm",
            "/pkg/watchpost.Xk3_9aZ-0qWmLr7tYb2c1Q.js",
            "/echarts.7QHXKZ2M.js",
        ] {
            assert!(is_content_hashed(p), "{p}");
        }
        for p in [
            "/pkg/watchpost.wasm",
            "/pkg/watchpost.css",
            "/echarts.js",
            "/favicon.svg",
            "/pkg/snippets/charming-1/x.js",
            "/api/watchpost.Xk3_9aZ-0qWmLr7tYb2c1Q.js",
            "/echarts.7QHXKZ2M.js/x",
            "/pkg/.Xk3_9aZ-0qWmLr7tYb2c1Q.js",
        ] {
            assert!(!is_content_hashed(p), "{p}");
        }
    }

    #[test]
    fn only_the_listed_paths_are_public() {
        for p in [
            "/healthz",
            "/login",
            "/pkg/watchpost.wasm",
            "/echarts.7QHXKZ2M.js",
            "/api/login",
        ] {
            assert!(is_public(p), "{p}");
        }
        for p in [
            "/",
            "/api/events",
            "/api/history",
            "/api/ingest/logs",
            "/loginx",
            "/api/get_history",
            "/echarts.x/y.js",
            "/echarts.json",
        ] {
            assert!(!is_public(p), "{p}");
        }
        assert_eq!(encode("/?range=1h&x=a b"), "/%3Frange%3D1h%26x%3Da%20b");
    }
}
