//! Signing in and out, and creating the first admin account through the one-time setup link.
//!
//! The forms are plain HTML forms posting here, so they work before (or without) the WASM: a form gets a
//! 303 back to a page, a JSON request (an API client, the tests) gets JSON.

use crate::auth::security::Gate;
use crate::auth::streams::Which;
use crate::auth::{Auth, Principal, PrincipalKind, SESSION_COOKIE, secrets};
use crate::clock::now_millis;
use crate::http::client_addr::ClientAddr;
use crate::http::error::ApiError;
use crate::http::middleware::cookie;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use shared::{Me, Role, check_password, check_user_name};

#[derive(Debug, Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SetupForm {
    code: String,
    name: String,
    password: String,
    /// The form's "repeat password"; JSON clients may leave it out.
    #[serde(default)]
    confirm: Option<String>,
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Parses a form or JSON body into `T`, or a 400 saying what is wrong.
fn parse<T: serde::de::DeserializeOwned>(json: bool, body: &Bytes) -> Result<T, ApiError> {
    if json {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON: {e}")))
    } else {
        serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::bad_request(format!("bad form: {e}")))
    }
}

/// Where to go after signing in: a path on this site only, so the sign-in page is never an open redirect.
/// A browser reads `Location` loosely (it drops tabs and newlines, turns `\\` into `/`), so besides
/// resolving to this origin the text may hold none of those: `/\t/evil.example` would become
/// `//evil.example` in the browser.
fn local_target(next: Option<&str>) -> &str {
    match next {
        Some(n) if is_local_path(n) => n,
        _ => "/",
    }
}

fn is_local_path(n: &str) -> bool {
    const HOST: &str = "watchpost.invalid";
    let plain = n.starts_with('/')
        && !n.starts_with("//")
        && !n
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace());
    plain
        && reqwest::Url::parse(&format!("http://{HOST}/"))
            .and_then(|origin| origin.join(n))
            .is_ok_and(|url| {
                url.scheme() == "http" && url.host_str() == Some(HOST) && url.port().is_none()
            })
}

fn query_escape(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .map(|q| q.trim_start_matches("v=").to_owned())
        .unwrap_or_default()
}

impl Auth {
    /// The `Set-Cookie` value of a new session.
    fn session_cookie(&self, secret: &str) -> String {
        let secure = if self.config.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.config.session_ttl.as_secs()
        )
    }

    fn expired_cookie(&self) -> String {
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }

    /// Creates a session for `user_id`; the `Set-Cookie` value.
    async fn start_session(&self, user_id: i64, ip: &str) -> Result<String, ApiError> {
        let secret =
            secrets::new_session_secret().map_err(|e| ApiError::unavailable(e.to_string()))?;
        let now = now_millis();
        let ttl = i64::try_from(self.config.session_ttl.as_millis()).unwrap_or(i64::MAX);
        self.accounts
            .add_session(
                &secrets::digest(&secret),
                user_id,
                now,
                now.saturating_add(ttl),
                ip,
            )
            .await
            .map_err(|e| ApiError::unavailable(format!("cannot start a session: {e}")))?;
        Ok(self.session_cookie(&secret))
    }
}

impl Auth {
    /// Starts a session for `user` and answers with its cookie: `{name, role}` to a JSON request, a redirect
    /// to `next` to a form.
    async fn signed_in(&self, user: shared::User, ip: &str, json: bool, next: &str) -> Response {
        let cookie = match self.start_session(user.id, ip).await {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        };
        let response = if json {
            axum::Json(Me {
                name: user.name,
                role: user.role,
                access: None,
            })
            .into_response()
        } else {
            Redirect::to(next).into_response()
        };
        with_cookie(response, &cookie)
    }
}

/// A hashing failure as an answer: 503 with `Retry-After` when every hashing slot is taken.
fn busy_error(e: secrets::SecretError) -> ApiError {
    ApiError::unavailable(e.to_string())
}

fn busy(e: secrets::SecretError) -> Response {
    let busy = matches!(e, secrets::SecretError::Busy);
    let mut response = busy_error(e).into_response();
    if busy {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /api/login`: name and password (form or JSON) → a session cookie.
pub async fn login(
    State(auth): State<Auth>,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = is_json(&headers);
    let form: LoginForm = match parse(json, &body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let next = local_target(form.next.as_deref()).to_owned();
    let failed = |message: &str| {
        if json {
            ApiError::new(StatusCode::UNAUTHORIZED, message).into_response()
        } else {
            Redirect::to(&format!("/login?failed=1&next={}", query_escape(&next))).into_response()
        }
    };
    let credentials = match auth.accounts.credentials(&form.name).await {
        Ok(c) => c,
        Err(e) => {
            return ApiError::unavailable(format!("accounts cannot be read: {e}")).into_response();
        }
    };
    let (user, hash) = match credentials {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    let known = match &user {
        Some(u) => auth
            .accounts
            .known_address(u.id, &ip.to_string())
            .await
            .unwrap_or(false),
        None => false,
    };
    let ticket = match auth.begin_sign_in(&form.name, ip, known).await {
        Gate::Go(ticket) => ticket,
        Gate::Locked(left) => {
            let minutes = left.as_secs().div_ceil(60).max(1);
            let message = format!(
                "too many failed sign-ins: try again in {minutes} minute{}",
                if minutes == 1 { "" } else { "s" }
            );
            return if json {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, message).into_response()
            } else {
                Redirect::to(&format!(
                    "/login?failed=locked&next={}",
                    query_escape(&next)
                ))
                .into_response()
            };
        }
    };
    let matches = match secrets::verify_password(form.password, hash).await {
        Ok(matches) => matches,
        Err(e) => {
            auth.sign_in_unchecked(ticket);
            return busy(e);
        }
    };
    let user = match user {
        Some(u) if matches && !u.disabled => u,
        Some(u) if matches => {
            auth.sign_in_passed(ticket);
            // Not WARN: WARN lines reach the error log, which viewers read, and this names a user.
            tracing::info!(user = %u.name, %ip, "sign-in refused: the account is disabled");
            return failed("this account is disabled");
        }
        _ => {
            tracing::info!(%ip, "failed sign-in");
            auth.sign_in_failed(ticket).await;
            return failed("wrong user name or password");
        }
    };
    auth.sign_in_passed(ticket);
    let known = auth.accounts.address_count(user.id).await.unwrap_or(0);
    let peer_ip = ip;
    let ip = ip.to_string();
    match auth
        .accounts
        .remember_address(user.id, &ip, now_millis())
        .await
    {
        Ok(true) if known > 0 => {
            auth.raise(
                shared::SecurityKind::NewAddress,
                shared::Severity::Warning,
                Some(user.name.clone()),
                Some(peer_ip),
                format!(
                    "{} signed in from {ip}, an address not used before",
                    user.name
                ),
            )
            .await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot note the sign-in address: {e}"),
    }
    tracing::info!(user = %user.name, ip = %ip, "signed in");
    auth.signed_in(user, &ip, json, &next).await
}

/// `POST /api/logout`: ends the session and clears the cookie.
pub async fn logout(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        let session = secrets::digest(secret);
        if let Err(e) = auth.accounts.remove_session(&session).await {
            return ApiError::unavailable(format!("cannot end the session: {e}")).into_response();
        }
        // The session's other tabs stop showing live values at once, and say why.
        auth.streams.end(
            Which::Session(session),
            "you signed out",
            shared::AfterClose::SignIn,
        );
    }
    let response = if is_json(&headers) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        Redirect::to("/login").into_response()
    };
    with_cookie(response, &auth.expired_cookie())
}

/// `POST /api/setup`: the one-time code from the log, a name and a password → the first admin, signed in.
pub async fn setup(
    State(auth): State<Auth>,
    Extension(ClientAddr(peer)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = is_json(&headers);
    let form: SetupForm = match parse(json, &body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let refuse = |status: StatusCode, message: &str| {
        if json {
            ApiError::new(status, message).into_response()
        } else {
            Redirect::to(&format!(
                "/setup?code={}&error={}",
                query_escape(&form.code),
                query_escape(message)
            ))
            .into_response()
        }
    };
    if let Err(e) = check_user_name(&form.name).and_then(|()| check_password(&form.password)) {
        return refuse(StatusCode::BAD_REQUEST, &e);
    }
    if form.confirm.as_ref().is_some_and(|c| *c != form.password) {
        return refuse(StatusCode::BAD_REQUEST, "the two passwords differ");
    }
    if !auth.take_setup_code(&form.code) {
        // Not WARN: a request without an account must not write to the error log (viewers read it, and a
        // flood would fill it).
        tracing::info!(ip = %peer, "setup refused: wrong or used setup code");
        return refuse(
            StatusCode::FORBIDDEN,
            "this setup link is not valid (already used, or from an earlier start)",
        );
    }
    let created = async {
        let hash = secrets::hash_password(form.password.clone())
            .await
            .map_err(busy_error)?;
        auth.accounts
            .add_user(&form.name, Role::Admin, &hash, now_millis())
            .await
            .map_err(|e| ApiError::unavailable(format!("cannot create the account: {e}")))
    }
    .await;
    let user = match created {
        Ok(u) => u,
        Err(e) => {
            auth.restore_setup_code(form.code.clone());
            return e.into_response();
        }
    };
    tracing::info!(user = %user.name, "first admin account created through the setup link");
    let ip = peer.to_string();
    let _ = auth
        .accounts
        .remember_address(user.id, &ip, now_millis())
        .await;
    auth.signed_in(user, &ip, json, "/").await
}

/// `GET /api/me`: who the request is from.
pub async fn me(principal: Option<axum::Extension<Principal>>) -> Response {
    match principal {
        Some(axum::Extension(p)) => axum::Json(serde_json::json!({
            "name": p.name,
            "role": p.role,
            "kind": match p.kind { PrincipalKind::User { .. } => "user", PrincipalKind::Token { .. } => "token" },
        }))
        .into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "sign in first").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_target(Some("/?range=1h")), "/?range=1h");
        assert_eq!(local_target(Some("//evil.example")), "/");
        assert_eq!(local_target(Some("https://evil.example")), "/");
        assert_eq!(local_target(Some("/\\evil.example")), "/");
        assert_eq!(local_target(None), "/");
        for hostile in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil.example",
            "/\u{0}/x",
            "/x\\..\\\\evil.example",
            "\t//evil.example",
            "/\u{a0}/evil.example",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(local_target(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(
            local_target(Some("/audit?user=a%20b#x")),
            "/audit?user=a%20b#x"
        );
    }
}
