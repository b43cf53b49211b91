//! Which host and environment the dashboard shows: `?env=prod&host=web-1` in the URL, beside the range, so a
//! link or a reload shows the same. Without `host`, the hub's own host (or, when the environment chosen does
//! not hold it, the first host of that environment).

use crate::live::LiveStore;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use leptos_router::params::ParamsMap;
use shared::{FleetHost, HostId, LiveState};

/// The parameters that choose what the dashboard shows, kept when another of them changes.
const KEPT: [&str; 5] = ["range", "from", "to", "env", "host"];

/// The environment in the URL, if any.
pub fn use_environment() -> Memo<Option<String>> {
    let query = use_query_map();
    Memo::new(move |_| query.with(|q| q.get("env").filter(|e| !e.is_empty())))
}

/// The host whose health the dashboard shows.
pub fn use_selected_host() -> Memo<Option<HostId>> {
    let query = use_query_map();
    let live = LiveStore::expect();
    Memo::new(move |_| {
        let (asked, env) = query.with(|q| (q.get("host"), q.get("env")));
        live.state
            .with(|s| chosen(s, asked.as_deref(), env.as_deref()))
    })
}

fn chosen(state: &LiveState, asked: Option<&str>, env: Option<&str>) -> Option<HostId> {
    if let Some(host) = asked.filter(|h| !h.is_empty()) {
        return Some(HostId(host.to_owned()));
    }
    let in_env = |h: &&FleetHost| env.is_none_or(|e| h.environment == e);
    state
        .fleet()
        .filter(in_env)
        .find(|h| h.hub)
        .or_else(|| state.fleet().find(in_env))
        .map(|h| h.host.clone())
        .or_else(|| state.hosts().next().map(|h| h.health.host.clone()))
}

/// `?…` with `changes` applied (a `None` value removes the parameter) to what the URL chose, the rest of
/// the query left out: how the environment and host pickers link without losing the range.
pub fn query_with(query: &ParamsMap, changes: &[(&str, Option<&str>)]) -> String {
    let mut pairs: Vec<(&str, String)> = KEPT
        .into_iter()
        .filter(|k| !changes.iter().any(|(c, _)| c == k))
        .filter_map(|k| query.get(k).map(|v| (k, v)))
        .collect();
    pairs.extend(
        changes
            .iter()
            .filter_map(|(k, v)| v.map(|v| (*k, v.to_owned()))),
    );
    let text = crate::format::query_string(&pairs);
    if text.is_empty() {
        text
    } else {
        format!("?{text}")
    }
}

/// `&env=…&host=…` for what the URL chose, to follow a range's own parameters in the range picker's links.
pub fn choice_suffix(query: &ParamsMap) -> String {
    let pairs: Vec<(&str, String)> = ["env", "host"]
        .into_iter()
        .filter_map(|k| query.get(k).filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("&{}", crate::format::query_string(&pairs))
    }
}

/// The environment and host selectors of the top bar.
#[component]
pub fn HostPicker() -> impl IntoView {
    let live = LiveStore::expect();
    let query = use_query_map();
    let navigate = leptos_router::hooks::use_navigate();
    let location = leptos_router::hooks::use_location();
    let env = use_environment();
    let host = use_selected_host();
    let environments = Memo::new(move |_| {
        live.state.with(|s| {
            let mut envs: Vec<String> = s.fleet().map(|h| h.environment.clone()).collect();
            envs.sort();
            envs.dedup();
            envs
        })
    });
    let hosts = Memo::new(move |_| {
        let env = env.get();
        live.state.with(|s| {
            s.fleet()
                .filter(|h| env.as_deref().is_none_or(|e| h.environment == e))
                .map(|h| (h.host.0.clone(), h.presence))
                .collect::<Vec<_>>()
        })
    });
    let go = move |changes: &[(&str, Option<&str>)]| {
        let to = query.with_untracked(|q| query_with(q, changes));
        navigate(
            &format!("{}{to}", location.pathname.get_untracked()),
            leptos_router::NavigateOptions {
                scroll: false,
                ..Default::default()
            },
        );
    };
    let go_env = go.clone();
    let on_env = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        let value = (!value.is_empty()).then_some(value);
        go_env(&[("env", value.as_deref()), ("host", None)]);
    };
    let on_host = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        go(&[("host", Some(value.as_str()))]);
    };
    view! {
        <div class="host-picker" data-testid="host-picker">
            <label>
                <span class="sr-only">"Environment"</span>
                <select on:change=on_env data-testid="env-select" aria-label="Environment">
                    <option value="" selected=move || env.get().is_none()>"All environments"</option>
                    {move || {
                        let chosen = env.get();
                        environments
                            .get()
                            .into_iter()
                            .map(|e| {
                                let selected = chosen.as_deref() == Some(e.as_str());
                                { let label = e.clone(); view! { <option value=e selected=selected>{label}</option> } }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            <label>
                <span class="sr-only">"Host"</span>
                <select on:change=on_host data-testid="host-select" aria-label="Host">
                    {move || {
                        let chosen = host.get();
                        hosts
                            .get()
                            .into_iter()
                            .map(|(name, presence)| {
                                let selected = chosen.as_ref().is_some_and(|c| c.0 == name);
                                let label = format!("{name} · {}", presence.as_str());
                                view! { <option value=name selected=selected>{label}</option> }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
        </div>
    }
    .into_any()
}
