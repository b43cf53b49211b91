//! Signing in, the first-run setup page, and who is signed in (shown in the top bar with a sign-out button).
//!
//! The forms post to the server's plain routes (`/api/login`, `/api/setup`, `/api/logout`), so they work
//! before the WASM has loaded; the server answers with a redirect, and errors come back in the query string.

use crate::error::AppError;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use shared::{MIN_PASSWORD_CHARS, Me};

/// Who the request is from (the session's user or the token's name) and the role.
#[server(prefix = "/api", endpoint = "get_me")]
pub async fn get_me() -> Result<Me, AppError> {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Me>().cloned())
        .ok_or_else(|| AppError::Unavailable("the request carries no signed-in user".into()))
}

/// The product's mark and name at the top of the sign-in and setup cards.
#[component]
fn Brand() -> impl IntoView {
    view! {
        <div class="brand">
            <img src="/favicon.svg" alt="" width="28" height="28" />
            <h1>"Watchpost"</h1>
        </div>
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let failed = move || query.with(|q| q.get("failed"));
    let next = move || query.with(|q| q.get("next").unwrap_or_else(|| "/".into()));
    view! {
        <main class="auth-page">
            <form class="auth-card" method="post" action="/api/login" data-testid="login-form">
                <Brand />
                <p class="muted">"Sign in to see the dashboard."</p>
                {move || {
                    failed()
                        .map(|_| {
                            view! {
                                <p class="auth-error" role="alert" data-testid="login-error">
                                    "Wrong user name or password, or the account is disabled."
                                </p>
                            }
                        })
                }}
                <label>
                    "User name"
                    <input name="name" autocomplete="username" required autofocus />
                </label>
                <label>
                    "Password"
                    <input type="password" name="password" autocomplete="current-password" required />
                </label>
                <input type="hidden" name="next" value=next />
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </main>
    }
    .into_any()
}

/// The first-run page behind the one-time link the server prints while no account exists.
#[component]
pub fn SetupPage() -> impl IntoView {
    let query = use_query_map();
    let code = move || query.with(|q| q.get("code").unwrap_or_default());
    let error = move || query.with(|q| q.get("error"));
    view! {
        <main class="auth-page">
            <form class="auth-card" method="post" action="/api/setup" data-testid="setup-form">
                <Brand />
                <p class="muted">
                    "Create the first account. It is an admin: it can add the other users afterwards."
                </p>
                {move || {
                    error()
                        .map(|e| {
                            view! {
                                <p class="auth-error" role="alert" data-testid="setup-error">{e}</p>
                            }
                        })
                }}
                <label>
                    "User name"
                    <input name="name" autocomplete="username" required autofocus maxlength="64" />
                </label>
                <label>
                    {format!("Password (at least {MIN_PASSWORD_CHARS} characters)")}
                    <input
                        type="password"
                        name="password"
                        autocomplete="new-password"
                        required
                        minlength=MIN_PASSWORD_CHARS.to_string()
                    />
                </label>
                <label>
                    "Password again"
                    <input type="password" name="confirm" autocomplete="new-password" required />
                </label>
                <input type="hidden" name="code" value=code />
                <button type="submit" class="primary">"Create the admin account"</button>
            </form>
        </main>
    }
    .into_any()
}

/// The signed-in user and a sign-out button, for the top bar.
#[component]
pub fn UserMenu() -> impl IntoView {
    let me = Resource::new_blocking(|| (), |_| get_me());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                me.await
                    .ok()
                    .map(|me| {
                        let admin = shared::Action::ManageUsers.allowed(me.role);
                        let audit = shared::Action::ViewAudit.allowed(me.role);
                        view! {
                            <form class="user-menu" method="post" action="/api/logout">
                                <a href="/alerts" data-testid="alerts-link">"Alerts"</a>
                                <Show when=move || audit>
                                    <a href="/audit" data-testid="audit-link">"Audit"</a>
                                </Show>
                                <Show when=move || admin>
                                    <a href="/admin" data-testid="admin-link">"Users & tokens"</a>
                                </Show>
                                <span class="user-name" data-testid="user-name" data-role=me.role.as_str()>
                                    {me.name.clone()}
                                    <span class="muted">{format!(" · {}", me.role)}</span>
                                </span>
                                <button type="submit" class="link" data-testid="logout">"Sign out"</button>
                            </form>
                        }
                    })
            })}
        </Suspense>
    }
    .into_any()
}
