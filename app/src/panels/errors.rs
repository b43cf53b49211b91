//! The error log: newest first, errors and criticals highlighted, filters by level, service and text, older
//! entries loaded by cursor as the list is scrolled. New entries stream in from the live store; while the
//! reader is scrolled down the list holds still and a badge counts what arrived.

use crate::format;
use crate::live::LiveStore;
use leptos::prelude::*;
use shared::{Level, LogCursor, LogEntry, LogFilter};

/// Entries fetched per page when scrolling back.
#[cfg(feature = "hydrate")]
const PAGE: u32 = 50;
/// How close to the bottom (px) scrolling has to get before the next page is fetched.
#[cfg(feature = "hydrate")]
const LOAD_MARGIN_PX: i32 = 120;

#[component]
pub fn ErrorLogPanel() -> impl IntoView {
    let live = LiveStore::expect();
    let level = RwSignal::new(None::<Level>);
    let service = RwSignal::new(None::<String>);
    // The host: the one the URL chose (`?host=`), else every host, until the panel's own selector says
    // otherwise.
    let query = leptos_router::hooks::use_query_map();
    let chosen_host = Memo::new(move |_| query.with(|q| q.get("host").filter(|h| !h.is_empty())));
    let host = RwSignal::new(chosen_host.get_untracked());
    Effect::new(move |_| host.set(chosen_host.get()));
    let text = RwSignal::new(String::new());
    let filter = Memo::new(move |_| LogFilter {
        level: level.get(),
        service: service.get(),
        text: Some(text.get().trim().to_owned()).filter(|t| !t.is_empty()),
        host: host.get(),
    });
    // Entries read back from the store for the current filter, and where the next older page starts.
    let older = RwSignal::new(Vec::<LogEntry>::new());
    #[cfg(feature = "hydrate")]
    let next = RwSignal::new(None::<LogCursor>);
    let exhausted = RwSignal::new(false);
    let loading = RwSignal::new(false);
    let failure = RwSignal::new(None::<String>);
    // While the reader is scrolled away from the top, the list shows nothing newer than this.
    let held_at = RwSignal::new(None::<LogCursor>);
    let services = RwSignal::new(Vec::<String>::new());

    let live_matching = Memo::new(move |_| {
        let f = filter.get();
        live.state.with(|s| {
            s.logs()
                .iter()
                .filter(|e| f.matches(e))
                .cloned()
                .collect::<Vec<_>>()
        })
    });
    let shown = Memo::new(move |_| {
        let hold = held_at.get();
        let mut all: Vec<LogEntry> = live_matching
            .get()
            .into_iter()
            .filter(|e| hold.is_none_or(|h| e.cursor() <= h))
            .collect();
        let mut ids: std::collections::HashSet<i64> = all.iter().map(|e| e.id).collect();
        older.with(|o| {
            for e in o {
                if ids.insert(e.id) {
                    all.push(e.clone());
                }
            }
        });
        all.sort_by_key(|e| std::cmp::Reverse(e.cursor()));
        all
    });
    let waiting = Memo::new(move |_| match held_at.get() {
        Some(h) => live_matching.with(|l| l.iter().filter(|e| e.cursor() > h).count()),
        None => 0,
    });
    let list = NodeRef::<leptos::html::Ol>::new();

    // Counts finished page loads, so an effect can look again after the page is drawn.
    #[cfg(feature = "hydrate")]
    let loaded = RwSignal::new(0u32);
    #[cfg(feature = "hydrate")]
    let load = move |reset: bool| {
        let f = filter.get_untracked();
        let before = if reset { None } else { next.get_untracked() };
        if !reset && (loading.get_untracked() || exhausted.get_untracked()) {
            return;
        }
        loading.set(true);
        leptos::task::spawn_local(async move {
            let result = crate::api::get_logs(f.clone(), before, PAGE).await;
            // Answers for a filter that has changed since are dropped.
            if filter.try_get_untracked().as_ref() != Some(&f) {
                return;
            }
            let _ = loading.try_set(false);
            match result {
                Ok(page) => {
                    let _ = exhausted.try_set(page.next.is_none());
                    let _ = next.try_set(page.next);
                    let _ = failure.try_set(None);
                    let _ = older.try_update(|o| {
                        if reset {
                            o.clear();
                        }
                        o.extend(page.entries);
                    });
                    let _ = loaded.try_update(|n| *n += 1);
                }
                Err(e) => {
                    let _ = failure.try_set(Some(e.to_string()));
                }
            }
        });
    };
    #[cfg(feature = "hydrate")]
    {
        // A new filter starts over from the newest entries.
        Effect::new(move |_| {
            crate::reactive::depend_on(filter);
            held_at.set(None);
            next.set(None);
            exhausted.set(false);
            load(true);
        });
        // A page that added nothing new to the list (it overlapped the live entries), or a list too short to
        // scroll: keep going while the bottom is in view, since no scroll event will come to ask.
        Effect::new(move |_| {
            loaded.track();
            request_animation_frame(move || {
                if let Some(el) = list.get_untracked()
                    && el.scroll_top() + el.client_height() >= el.scroll_height() - LOAD_MARGIN_PX
                {
                    load(false);
                }
            });
        });
        Effect::new(move |_| {
            leptos::task::spawn_local(async move {
                if let Ok(list) = crate::api::get_log_services().await {
                    let _ = services.try_set(list);
                }
            });
        });
    }

    // Scrolled away from the top: hold the list still. Near the bottom: fetch the next older page.
    let on_scroll = move |_: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            let Some(el) = list.get_untracked() else {
                return;
            };
            let top = el.scroll_top();
            if top > 8 {
                if held_at.get_untracked().is_none() {
                    held_at.set(shown.with_untracked(|s| s.first().map(LogEntry::cursor)));
                }
            } else if held_at.get_untracked().is_some() {
                held_at.set(None);
            }
            if top + el.client_height() >= el.scroll_height() - LOAD_MARGIN_PX {
                load(false);
            }
        }
    };
    let to_top = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(el) = list.get_untracked() {
            el.set_scroll_top(0);
        }
        held_at.set(None);
    };
    let service_options = move || {
        let mut names = services.get();
        live.state.with(|s| {
            for e in s.logs() {
                if !names.contains(&e.service) {
                    names.push(e.service.clone());
                }
            }
        });
        names.sort();
        names
            .into_iter()
            .map(|name| view! { <option value=name.clone()>{name.clone()}</option> })
            .collect_view()
    };

    let host_options = move || {
        let env = query.with(|q| q.get("env").filter(|e| !e.is_empty()));
        let selected = host.get();
        let mut names: Vec<String> = live.state.with(|s| {
            s.fleet()
                .filter(|h| env.as_deref().is_none_or(|e| h.environment == e))
                .map(|h| h.host.0.clone())
                .collect()
        });
        if let Some(h) = &selected
            && !names.contains(h)
        {
            names.push(h.clone());
        }
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let is = selected.as_deref() == Some(name.as_str());
                view! { <option value=name.clone() selected=is>{name.clone()}</option> }
            })
            .collect_view()
    };

    view! {
        <section class="panel errors" data-testid="panel-errors" aria-labelledby="errors-title">
            <div class="panel-head">
                <h2 id="errors-title">"Error log"</h2>
                <super::alerts::AlertBadge panel="errors" />
                <Show when=move || { waiting.get() > 0 }>
                    <button type="button" class="badge new-badge" data-testid="log-new" on:click=to_top>
                        {move || format!("{} new", waiting.get())}
                    </button>
                </Show>
            </div>
            <div class="log-filters">
                <label>
                    "Level "
                    <select
                        data-testid="log-level"
                        on:change=move |ev| level.set(event_target_value(&ev).parse::<Level>().ok())
                    >
                        <option value="">"all"</option>
                        {Level::ALL
                            .into_iter()
                            .rev()
                            .map(|l| view! { <option value=l.as_str()>{format!("{l} and above")}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "Service "
                    <select
                        data-testid="log-service"
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            service.set(Some(v).filter(|v| !v.is_empty()));
                        }
                    >
                        <option value="">"all"</option>
                        {service_options}
                    </select>
                </label>
                <label>
                    "Host "
                    <select
                        data-testid="log-host"
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            host.set(Some(v).filter(|v| !v.is_empty()));
                        }
                    >
                        <option value="" selected=move || host.with(Option::is_none)>"all"</option>
                        {host_options}
                    </select>
                </label>
                <input
                    type="search"
                    placeholder="Search messages"
                    aria-label="Search messages"
                    data-testid="log-search"
                    on:input=move |ev| text.set(event_target_value(&ev))
                />
            </div>
            <ol class="log-list" node_ref=list data-testid="log-list" aria-live="polite" on:scroll=on_scroll>
                <For each=move || shown.get() key=|e| e.id let:entry>
                    <LogLine entry />
                </For>
            </ol>
            {move || {
                if let Some(e) = failure.get() {
                    view! { <p class="log-status failed" role="alert">{e}</p> }.into_any()
                } else if shown.with(Vec::is_empty) && !loading.get() {
                    view! {
                        <p class="empty">
                            "No entries. Watchpost's own warnings and errors appear here, and whatever is sent to "
                            <code>"POST /api/ingest/logs"</code> "."
                        </p>
                    }
                        .into_any()
                } else if exhausted.get() {
                    view! { <p class="log-status muted">"That is everything stored."</p> }.into_any()
                } else if loading.get() {
                    view! { <p class="log-status muted">"Loading older entries…"</p> }.into_any()
                } else {
                    ().into_any()
                }
            }}
        </section>
    }
    .into_any()
}

#[component]
fn LogLine(entry: LogEntry) -> impl IntoView {
    let fields = entry
        .fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    view! {
        <li
            class=format!("log-entry level-{}", entry.level)
            data-testid="log-entry"
            data-id=entry.id
            data-level=entry.level.as_str()
        >
            <time class="log-time" datetime=format::iso_utc(entry.t_ms) title=format!("{} (UTC)", format::iso_utc(entry.t_ms))>
                {format::clock_utc(entry.t_ms)}
            </time>
            <span class="log-level">{entry.level.as_str()}</span>
            <span class="log-service">{entry.service.clone()}</span>
            <span class="log-message">{entry.message.clone()}</span>
            {(!fields.is_empty()).then(|| view! { <span class="log-fields">{fields}</span> })}
        </li>
    }
}
