//! The Audit page (`/audit`): every command and admin action, newest first, filtered by user, action,
//! target and time, with CSV and JSON export of what the filter selects.
//!
//! The filter lives in the URL (`?actor=ana&action=command.&from_ms=…`), so a reload, a shared link and the
//! export all ask for the same entries; older pages follow with `before=`.

use crate::error::AppError;
use crate::format::{self, query_string};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use shared::{AuditFilter, AuditPage};

/// Entries per page.
const PAGE: u32 = 100;

/// A page of the audit trail, newest first, strictly older than `before` when given. Operators and admins.
#[server(prefix = "/api", endpoint = "list_audit", input = server_fn::codec::Json, output = crate::codec::JsonText)]
pub async fn list_audit(
    filter: AuditFilter,
    before: Option<i64>,
    limit: u32,
) -> Result<AuditPage, AppError> {
    let (_, ports) = crate::ports::authorize(shared::Action::ViewAudit)?;
    crate::ports::with_status(ports.audit.audit(filter, before, limit as usize).await)
}

/// The filter as query pairs.
fn query_of(filter: &AuditFilter) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    for (name, value) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("target", &filter.target),
    ] {
        if let Some(v) = value {
            pairs.push((name, v.clone()));
        }
    }
    if let Some(v) = filter.from_ms {
        pairs.push(("from_ms", v.to_string()));
    }
    if let Some(v) = filter.to_ms {
        pairs.push(("to_ms", v.to_string()));
    }
    pairs
}

#[component]
pub fn AuditPage() -> impl IntoView {
    // The top bar's connection indicator reads the live store, as on every page.
    let live = crate::live::LiveStore::provide();
    #[cfg(feature = "hydrate")]
    crate::live::connect(live);
    #[cfg(not(feature = "hydrate"))]
    let _ = live;
    let query = use_query_map();
    let filter = Memo::new(move |_| {
        query.with(|q| {
            let text = |name: &str| q.get(name).filter(|v| !v.trim().is_empty());
            AuditFilter {
                actor: text("actor"),
                action: text("action"),
                target: text("target"),
                from_ms: text("from_ms").and_then(|v| v.parse().ok()),
                to_ms: text("to_ms").and_then(|v| v.parse().ok()),
            }
        })
    });
    let before = Memo::new(move |_| query.with(|q| q.get("before").and_then(|v| v.parse().ok())));
    let page = Resource::new(
        move || (filter.get(), before.get()),
        |(filter, before)| list_audit(filter, before, PAGE),
    );
    let export = move |format: &str| {
        let mut pairs = query_of(&filter.get());
        pairs.push(("format", format.to_owned()));
        format!("/api/audit?{}", query_string(&pairs))
    };
    let rows = move |page: AuditPage| {
        page.entries
            .into_iter()
            .map(|e| {
                let params = e
                    .params
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let took = e.duration_ms().map(format::span).unwrap_or_else(|| "…".into());
                view! {
                    <tr data-testid="audit-row" data-action=e.action.clone() data-outcome=e.outcome.as_str()>
                        <td><time datetime=format::iso_utc(e.at_ms)>{format::clock_utc(e.at_ms)}</time></td>
                        <td>{e.actor.clone()} <span class="muted">{format!(" {}", e.role)}</span></td>
                        <td class="muted">{e.ip.clone()}</td>
                        <td>{e.action.clone()}</td>
                        <td data-testid="audit-target">
                            {e.target.clone()}
                            {e.host.clone().map(|host| {
                                let place = match &e.environment {
                                    Some(env) => format!(" on {host} ({env})"),
                                    None => format!(" on {host}"),
                                };
                                view! { <span class="muted">{place}</span> }
                            })}
                        </td>
                        <td class="muted">{params}</td>
                        <td><span class=format!("state outcome-{}", e.outcome.as_str())>{e.outcome.as_str()}</span> " " {e.detail.clone()}</td>
                        <td class="num">{took}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    let older = move |next: Option<i64>| {
        next.map(|id| {
            let mut pairs = query_of(&filter.get());
            pairs.push(("before", id.to_string()));
            view! { <a class="range-option" data-testid="audit-older" href=format!("/audit?{}", query_string(&pairs))>"Older entries →"</a> }
        })
    };
    view! {
        <crate::header::TopBar />
        <main class="admin audit">
            <p class="back"><a href="/">"← Dashboard"</a></p>
            <section class="panel wide" data-testid="audit-page">
                <div class="panel-head">
                    <h2>"Audit trail"</h2>
                    <span class="panel-meta">
                        "Export: "
                        <a href=move || export("csv") data-testid="export-csv" download>"CSV"</a>
                        " · "
                        <a href=move || export("json") data-testid="export-json" download>"JSON"</a>
                    </span>
                </div>
                <AuditFilterForm filter />
                <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match page.await {
                            Err(e) => view! { <p class="auth-error" role="alert">{e.to_string()}</p> }.into_any(),
                            Ok(p) if p.entries.is_empty() => view! {
                                <p class="empty" data-testid="audit-empty">"No entries match."</p>
                            }
                            .into_any(),
                            Ok(p) => {
                                let next = p.next;
                                view! {
                                    <div class="table-scroll">
                                        <table class="admin-table audit-table">
                                            <thead>
                                                <tr>
                                                    <th>"When (UTC)"</th><th>"Who"</th><th>"From"</th><th>"Action"</th>
                                                    <th>"Target"</th><th>"Parameters"</th><th>"Result"</th><th class="num">"Took"</th>
                                                </tr>
                                            </thead>
                                            <tbody>{rows(p)}</tbody>
                                        </table>
                                    </div>
                                    {older(next)}
                                }
                                .into_any()
                            }
                        }
                    })}
                </Transition>
            </section>
        </main>
    }
    .into_any()
}

/// The filter form: a plain GET form (it works before the WASM loads, without the time fields, which need
/// the browser's time zone); in the browser the times are turned into `from_ms`/`to_ms`.
#[component]
fn AuditFilterForm(filter: Memo<AuditFilter>) -> impl IntoView {
    let current = filter.get_untracked();
    let from = NodeRef::<leptos::html::Input>::new();
    let to = NodeRef::<leptos::html::Input>::new();
    let actor = NodeRef::<leptos::html::Input>::new();
    let action = NodeRef::<leptos::html::Input>::new();
    let target = NodeRef::<leptos::html::Input>::new();
    let error = RwSignal::new(None::<String>);
    let navigate = leptos_router::hooks::use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let value = |node: NodeRef<leptos::html::Input>| {
            node.get()
                .map(|i| i.value())
                .filter(|v| !v.trim().is_empty())
        };
        let (from_ms, to_ms) = match crate::range::from_to(value(from), value(to)) {
            Ok(span) => span,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        error.set(None);
        let filter = AuditFilter {
            actor: value(actor),
            action: value(action),
            target: value(target),
            from_ms,
            to_ms,
        };
        navigate(
            &format!("/audit?{}", query_string(&query_of(&filter))),
            Default::default(),
        );
    };
    view! {
        <form class="audit-filter" method="get" action="/audit" on:submit=submit data-testid="audit-filter">
            <label>"User " <input name="actor" node_ref=actor value=current.actor.clone() placeholder="e.g. ana" /></label>
            <label>"Action " <input name="action" node_ref=action value=current.action.clone() placeholder="e.g. command. or user.add" /></label>
            <label>"Target " <input name="target" node_ref=target value=current.target.clone() placeholder="e.g. shop" /></label>
            <label>"From " <input type="datetime-local" node_ref=from /></label>
            <label>"To " <input type="datetime-local" node_ref=to /></label>
            <button type="submit" class="primary">"Filter"</button>
            <a href="/audit" class="link">"Clear"</a>
            {move || error.get().map(|e| view! { <span class="range-error" role="alert">{e}</span> })}
        </form>
    }
}
