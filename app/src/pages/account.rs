//! Signing in, the first-run setup page, and who is signed in (shown in the top bar with a sign-out button).
//!
//! The forms post to the server's plain routes (`/api/login`, `/api/setup`, `/api/logout`), so they work
//! before the WASM has loaded; the server answers with a redirect, and errors come back in the query string.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use shared::MIN_PASSWORD_CHARS;

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
