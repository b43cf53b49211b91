//! The time range the charts show, kept in the URL (`?range=1h`, or `?from=…&to=…` in Unix ms) so a reload or
//! a shared link shows the same view, and the picker that changes it.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use shared::{RangeError, TimeRange};

/// The range the URL asks for, or why it cannot be read.
pub fn use_time_range() -> Memo<Result<TimeRange, RangeError>> {
    let query = use_query_map();
    Memo::new(move |_| {
        query.with(|q| TimeRange::parse(q.get_str("range"), q.get_str("from"), q.get_str("to")))
    })
}

/// Live, 1h, 6h, 24h, 7d, 30d, and a custom from–to. Presets are plain links (they work before the WASM has
/// loaded); the router turns them into in-page navigation once it has.
#[component]
pub fn RangePicker() -> impl IntoView {
    let range = use_time_range();
    let query = use_query_map();
    // The environment and host chosen stay chosen when the range changes.
    let keep = move || query.with(crate::selection::choice_suffix);
    let selected = move || range.get().unwrap_or_default();
    let custom_open = RwSignal::new(false);
    let presets = TimeRange::PRESETS
        .into_iter()
        .map(|preset| {
            let current = move || selected() == preset;
            view! {
                <a
                    class="range-option"
                    href=move || format!("?{}{}", preset.to_query(), keep())
                    aria-current=move || current().then_some("true")
                    data-range=preset.name()
                >
                    {if preset == TimeRange::Live { "Live" } else { preset.name() }}
                </a>
            }
        })
        .collect_view();
    let is_custom = move || matches!(selected(), TimeRange::Custom { .. });
    view! {
        <nav class="range-picker" aria-label="Time range" data-testid="range-picker">
            {presets}
            <button
                type="button"
                class="range-option"
                aria-current=move || is_custom().then_some("true")
                aria-expanded=move || custom_open.get().to_string()
                on:click=move |_| custom_open.update(|o| *o = !*o)
            >
                "Custom"
            </button>
            <Show when=move || custom_open.get()>
                <CustomRange close=move || custom_open.set(false) />
            </Show>
            {move || {
                range
                    .get()
                    .err()
                    .map(|e| view! { <span class="range-error" role="alert">{e.to_string()}</span> })
            }}
        </nav>
    }
    .into_any()
}

/// Two local date-times; Apply puts them in the URL.
#[component]
fn CustomRange(close: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let from = NodeRef::<leptos::html::Input>::new();
    let to = NodeRef::<leptos::html::Input>::new();
    let error = RwSignal::new(None::<String>);
    let navigate = leptos_router::hooks::use_navigate();
    let query = use_query_map();
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let value = |node: NodeRef<leptos::html::Input>| {
            node.get_untracked().map(|i| i.value()).unwrap_or_default()
        };
        match (local_ms(&value(from)), local_ms(&value(to))) {
            (Some(from_ms), Some(to_ms)) => match TimeRange::custom(from_ms, to_ms) {
                Ok(range) => {
                    error.set(None);
                    navigate(
                        &format!(
                            "?{}{}",
                            range.to_query(),
                            query.with_untracked(crate::selection::choice_suffix)
                        ),
                        leptos_router::NavigateOptions {
                            scroll: false,
                            ..Default::default()
                        },
                    );
                    close();
                }
                Err(e) => error.set(Some(e.to_string())),
            },
            _ => error.set(Some("enter both a start and an end".into())),
        }
    };
    view! {
        <form class="custom-range" on:submit=apply data-testid="custom-range">
            <label>"From " <input type="datetime-local" node_ref=from required /></label>
            <label>"To " <input type="datetime-local" node_ref=to required /></label>
            <button type="submit">"Apply"</button>
            {move || error.get().map(|e| view! { <span class="range-error" role="alert">{e}</span> })}
        </form>
    }
    .into_any()
}

/// A `datetime-local` value ("2026-11-26T14:30") as Unix ms in the browser's time zone.
pub(crate) fn local_ms(value: &str) -> Option<i64> {
    #[cfg(feature = "hydrate")]
    {
        if value.is_empty() {
            return None;
        }
        let ms = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(value)).get_time();
        ms.is_finite().then_some(ms as i64)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = value;
        None
    }
}

/// The From and To fields of a filter form (`datetime-local` values, in the browser's time zone) as Unix ms;
/// the error names what is wrong.
pub(crate) fn from_to(
    from: Option<String>,
    to: Option<String>,
) -> Result<(Option<i64>, Option<i64>), String> {
    let time = |value: Option<String>| match value {
        None => Ok(None),
        Some(v) => local_ms(&v)
            .map(Some)
            .ok_or_else(|| format!("'{v}' is not a date and time")),
    };
    let (from_ms, to_ms) = (time(from)?, time(to)?);
    if let (Some(f), Some(t)) = (from_ms, to_ms)
        && f >= t
    {
        return Err("“From” must be before “To”".into());
    }
    Ok((from_ms, to_ms))
}
