//! The admin page: users (add, change role, disable, remove) and API tokens (create, shown once; revoke).
//!
//! Every server function here checks the permission table first; the lists reload when an `accounts` event
//! arrives, which only admins' streams carry, so a change made in one tab shows in every admin's tab.

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ports::{authorize, with_status};
use leptos::prelude::*;
#[cfg(feature = "ssr")]
use shared::Action;
use shared::{AccountsView, ApiToken, EnrolledHost, NewHost, NewToken, Role, User};

#[server(prefix = "/api", endpoint = "list_accounts", output = crate::codec::JsonText)]
pub async fn list_accounts() -> Result<AccountsView, AppError> {
    let (_, ports) = authorize(Action::ManageUsers)?;
    with_status(ports.accounts.accounts().await)
}

#[server(prefix = "/api", endpoint = "add_user", output = crate::codec::JsonText)]
pub async fn add_user(name: String, role: Role, password: String) -> Result<User, AppError> {
    let (me, ports) = authorize(Action::ManageUsers)?;
    with_status(ports.accounts.add_user(&me, name, role, password).await)
}

/// Changes what is given: the role, the disabled flag, the password.
#[server(prefix = "/api", endpoint = "update_user", output = crate::codec::JsonText)]
pub async fn update_user(
    id: i64,
    role: Option<Role>,
    disabled: Option<bool>,
    password: Option<String>,
) -> Result<User, AppError> {
    let (me, ports) = authorize(Action::ManageUsers)?;
    with_status(
        ports
            .accounts
            .update_user(&me, id, role, disabled, password.filter(|p| !p.is_empty()))
            .await,
    )
}

/// Sets a user's role in one environment: `viewer`, `operator`, `admin`, `none` (no access to it) or
/// `default` (the user's own role applies there again).
#[server(prefix = "/api", endpoint = "set_environment_role", output = crate::codec::JsonText)]
pub async fn set_environment_role(
    id: i64,
    environment: String,
    role: String,
) -> Result<User, AppError> {
    let (me, ports) = authorize(Action::ManageUsers)?;
    let role =
        with_status(shared::parse_environment_role(role.trim()).map_err(AppError::BadRequest))?;
    with_status(
        ports
            .accounts
            .set_environment_role(&me, id, environment.trim().to_owned(), role)
            .await,
    )
}

#[server(prefix = "/api", endpoint = "remove_user", output = crate::codec::JsonText)]
pub async fn remove_user(id: i64) -> Result<(), AppError> {
    let (me, ports) = authorize(Action::ManageUsers)?;
    with_status(ports.accounts.remove_user(&me, id).await)
}

#[server(prefix = "/api", endpoint = "create_token", output = crate::codec::JsonText)]
pub async fn create_token(name: String, role: Role) -> Result<NewToken, AppError> {
    let (me, ports) = authorize(Action::ManageTokens)?;
    with_status(ports.accounts.create_token(&me, name, role).await)
}

#[server(prefix = "/api", endpoint = "revoke_token", output = crate::codec::JsonText)]
pub async fn revoke_token(id: i64) -> Result<ApiToken, AppError> {
    let (me, ports) = authorize(Action::ManageTokens)?;
    with_status(ports.accounts.revoke_token(&me, id).await)
}

#[server(prefix = "/api", endpoint = "list_hosts", output = crate::codec::JsonText)]
pub async fn list_hosts() -> Result<Vec<EnrolledHost>, AppError> {
    let (_, ports) = authorize(Action::ManageTokens)?;
    with_status(ports.accounts.hosts().await)
}

#[server(prefix = "/api", endpoint = "add_host", output = crate::codec::JsonText)]
pub async fn add_host(name: String, environment: String) -> Result<NewHost, AppError> {
    let (me, ports) = authorize(Action::ManageTokens)?;
    with_status(ports.accounts.add_host(&me, name, environment).await)
}

#[server(prefix = "/api", endpoint = "revoke_host", output = crate::codec::JsonText)]
pub async fn revoke_host(id: i64) -> Result<EnrolledHost, AppError> {
    let (me, ports) = authorize(Action::ManageTokens)?;
    with_status(ports.accounts.revoke_host(&me, id).await)
}

/// The hosts whose agents may push: added here (name and environment; the agent's start command and token
/// are shown once), removed here (the token is revoked, the agent refused on its next push).
#[component]
fn HostsSection() -> impl IntoView {
    let add = ServerAction::<AddHost>::new();
    let revoke = ServerAction::<RevokeHost>::new();
    let hosts = Resource::new(
        move || (add.version().get(), revoke.version().get()),
        |_| list_hosts(),
    );
    let error = move || {
        add.value()
            .get()
            .and_then(|r| r.err())
            .or_else(|| revoke.value().get().and_then(|r| r.err()))
            .map(|e| view! { <p class="auth-error" role="alert" data-testid="host-error">{e.to_string()}</p> })
    };
    let added = move || {
        add.value().get().and_then(Result::ok).map(|h| {
            let command = format!(
                "watchpost-agent --hub {} --token-file /etc/watchpost/agent.token --name {} --environment {}",
                origin(),
                h.host.name,
                h.host.environment
            );
            view! {
                <div class="token-once" role="status" data-testid="new-host">
                    <p>
                        "Host " <strong>{h.host.name.clone()}</strong> " added to " {h.host.environment.clone()}
                        ". Put this token in " <code>"/etc/watchpost/agent.token"</code>
                        " on that host (it is not shown again):"
                    </p>
                    <pre data-testid="new-host-token">{h.token.clone()}</pre>
                    <p>"and start the agent there:"</p>
                    <pre data-testid="new-host-command">{command}</pre>
                </div>
            }
        })
    };
    view! {
        <section class="panel wide" data-testid="admin-hosts">
            <h2>"Hosts"</h2>
            {error}
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let rows = hosts
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .map(|h| {
                            let (id, revoked) = (h.id, h.revoked_ms.is_some());
                            view! {
                                <tr data-testid="enrolled-host" data-name=h.name.clone()>
                                    <td>{h.name.clone()}</td>
                                    <td>{h.environment.clone()}</td>
                                    <td>{crate::format::iso_utc(h.created_ms)}</td>
                                    <td>{h.seen_ms.map(crate::format::iso_utc).unwrap_or_else(|| "never".into())}</td>
                                    <td>{h.revoked_ms.map(|t| format!("removed {}", crate::format::iso_utc(t))).unwrap_or_else(|| "active".into())}</td>
                                    <td class="actions">
                                        <Show when=move || !revoked>
                                            <button class="link danger" on:click=move |_| { revoke.dispatch(RevokeHost { id }); }>
                                                "Remove"
                                            </button>
                                        </Show>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        <table class="admin-table">
                            <thead><tr><th>"Host"</th><th>"Environment"</th><th>"Added"</th><th>"Last push"</th><th>"State"</th><th></th></tr></thead>
                            <tbody>{rows}</tbody>
                        </table>
                    }
                })}
            </Transition>
            <div class="admin-form">
                <ActionForm action=add>
                    <input name="name" placeholder="host name, e.g. web-1" aria-label="New host's name" required />
                    <input name="environment" placeholder="environment, e.g. prod" aria-label="New host's environment" required />
                    <button type="submit" class="primary">"Add host"</button>
                </ActionForm>
            </div>
            {added}
        </section>
    }
    .into_any()
}

/// This page's origin (`https://watchpost.example.com`): the address agents push to.
fn origin() -> String {
    #[cfg(feature = "hydrate")]
    {
        window().location().origin().unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        String::new()
    }
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let live = crate::live::LiveStore::provide();
    #[cfg(feature = "hydrate")]
    crate::live::connect(live);
    let add = ServerAction::<AddUser>::new();
    let update = ServerAction::<UpdateUser>::new();
    let remove = ServerAction::<RemoveUser>::new();
    let set_env = ServerAction::<SetEnvironmentRole>::new();
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    // Reloads after this tab's own changes and after any admin's (the `accounts` event).
    let accounts = Resource::new(
        move || {
            (
                add.version().get(),
                update.version().get(),
                remove.version().get(),
                set_env.version().get(),
                create.version().get(),
                revoke.version().get(),
                live.accounts_changed(),
            )
        },
        |_| list_accounts(),
    );
    let error = Memo::new(move |_| {
        [
            add.value().get().and_then(|r| r.err()),
            update.value().get().and_then(|r| r.err()),
            remove.value().get().and_then(|r| r.err()),
            set_env.value().get().and_then(|r| r.err()),
            create.value().get().and_then(|r| r.err()),
            revoke.value().get().and_then(|r| r.err()),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|e| e.to_string())
    });
    let role_options = move |selected: Role| {
        Role::ALL
            .into_iter()
            .map(|r| {
                view! {
                    <option value=r.as_str() selected=r == selected>
                        {r.as_str()}
                    </option>
                }
            })
            .collect_view()
    };
    let env_role_options = || {
        ["viewer", "operator", "admin", "none"]
            .into_iter()
            .map(|r| view! { <option value=r>{r}</option> })
            .collect_view()
    };
    view! {
        <crate::header::TopBar />
        <main class="admin">
            <p class="back"><a href="/">"← Dashboard"</a></p>
            {move || {
                error
                    .get()
                    .map(|e| view! { <p class="auth-error" role="alert" data-testid="admin-error">{e}</p> })
            }}
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match accounts.await {
                        Err(e) => view! { <p class="auth-error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(view) => {
                            let users = view
                                .users
                                .into_iter()
                                .map(|u| {
                                    let id = u.id;
                                    let disabled = u.disabled;
                                    let env_label = format!("Environment for {}", u.name);
                                    let role_label = format!("Role of {} there", u.name);
                                    let environments = u
                                        .environments
                                        .iter()
                                        .map(|e| {
                                            let environment = e.environment.clone();
                                            let role = e.role.map_or("none", Role::as_str);
                                            view! {
                                                <span class="env-role" data-testid="env-role" data-env=e.environment.clone() data-role=role>
                                                    {format!("{}: {role}", e.environment)}
                                                    <button
                                                        class="link"
                                                        title="Let the user's own role apply here again"
                                                        aria-label=format!("Reset the role in {}", e.environment)
                                                        on:click=move |_| {
                                                            set_env.dispatch(SetEnvironmentRole {
                                                                id,
                                                                environment: environment.clone(),
                                                                role: "default".into(),
                                                            });
                                                        }
                                                    >
                                                        "×"
                                                    </button>
                                                </span>
                                            }
                                        })
                                        .collect_view();
                                    view! {
                                        <tr data-testid="user-row" data-name=u.name.clone()>
                                            <td>{u.name.clone()}</td>
                                            <td>
                                                <select
                                                    aria-label=format!("Role of {}", u.name)
                                                    on:change=move |ev| {
                                                        let role = event_target_value(&ev).parse().ok();
                                                        update.dispatch(UpdateUser { id, role, disabled: None, password: None });
                                                    }
                                                >
                                                    {role_options(u.role)}
                                                </select>
                                            </td>
                                            <td class="env-roles">
                                                {environments}
                                                <ActionForm action=set_env attr:class="env-role-form">
                                                    <input type="hidden" name="id" value=id />
                                                    <input
                                                        name="environment"
                                                        placeholder="environment"
                                                        aria-label=env_label
                                                        list="known-environments"
                                                        required
                                                        size="9"
                                                    />
                                                    <select name="role" aria-label=role_label>
                                                        {env_role_options()}
                                                    </select>
                                                    <button type="submit" class="link">"Set"</button>
                                                </ActionForm>
                                            </td>
                                            <td>{if disabled { "disabled" } else { "active" }}</td>
                                            <td class="actions">
                                                <button
                                                    class="link"
                                                    on:click=move |_| {
                                                        update.dispatch(UpdateUser { id, role: None, disabled: Some(!disabled), password: None });
                                                    }
                                                >
                                                    {if disabled { "Enable" } else { "Disable" }}
                                                </button>
                                                <button class="link danger" on:click=move |_| { remove.dispatch(RemoveUser { id }); }>
                                                    "Remove"
                                                </button>
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view();
                            let tokens = view
                                .tokens
                                .into_iter()
                                .map(|t| {
                                    let id = t.id;
                                    let revoked = t.revoked_ms.is_some();
                                    view! {
                                        <tr data-testid="token-row" data-name=t.name.clone()>
                                            <td>{t.name.clone()}</td>
                                            <td>{t.role.as_str()}</td>
                                            <td>{crate::format::iso_utc(t.created_ms)}</td>
                                            <td>{t.revoked_ms.map(crate::format::iso_utc).unwrap_or_else(|| "active".into())}</td>
                                            <td class="actions">
                                                <Show when=move || !revoked>
                                                    <button class="link danger" on:click=move |_| { revoke.dispatch(RevokeToken { id }); }>
                                                        "Revoke"
                                                    </button>
                                                </Show>
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view();
                            view! {
                                <section class="panel wide" data-testid="admin-users">
                                    <h2>"Users"</h2>
                                    <table class="admin-table">
                                        <thead><tr><th>"Name"</th><th>"Role"</th><th title="A role per environment overrides the user's role there; none hides it">"Per environment"</th><th>"State"</th><th></th></tr></thead>
                                        <tbody>{users}</tbody>
                                    </table>
                                    <datalist id="known-environments">
                                        {move || {
                                            let mut envs: Vec<String> = live
                                                .state
                                                .with(|s| s.fleet().map(|h| h.environment.clone()).collect());
                                            envs.sort();
                                            envs.dedup();
                                            envs.into_iter().map(|e| view! { <option value=e.clone()></option> }).collect_view()
                                        }}
                                    </datalist>
                                    <div class="admin-form">
                                    <ActionForm action=add>
                                        <input name="name" placeholder="name" aria-label="New user's name" required />
                                        <select name="role" aria-label="New user's role">{role_options(Role::Viewer)}</select>
                                        <input name="password" type="password" placeholder="password" aria-label="New user's password" required />
                                        <button type="submit" class="primary">"Add user"</button>
                                    </ActionForm>
                                    </div>
                                </section>
                                <section class="panel wide" data-testid="admin-tokens">
                                    <h2>"API tokens"</h2>
                                    <table class="admin-table">
                                        <thead><tr><th>"Name"</th><th>"Role"</th><th>"Created"</th><th>"State"</th><th></th></tr></thead>
                                        <tbody>{tokens}</tbody>
                                    </table>
                                    <div class="admin-form">
                                    <ActionForm action=create>
                                        <input name="name" placeholder="name, e.g. log-shipper" aria-label="New token's name" required />
                                        <select name="role" aria-label="New token's role">{role_options(Role::Operator)}</select>
                                        <button type="submit" class="primary">"Create token"</button>
                                    </ActionForm>
                                    </div>
                                </section>
                            }
                                .into_any()
                        }
                    }
                })}
            </Transition>
            <HostsSection />
            {move || {
                create
                    .value()
                    .get()
                    .and_then(Result::ok)
                    .map(|t| {
                        view! {
                            <p class="token-once" role="status" data-testid="new-token">
                                "Token " <strong>{t.token.name.clone()}</strong>
                                " created. Copy it now, it is not shown again: "
                                <code>{t.secret.clone()}</code>
                            </p>
                        }
                    })
            }}
        </main>
    }
    .into_any()
}
