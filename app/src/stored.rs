//! A chart of stored history over the range in the URL, continued by live points while the range ends now.
//! One component for every panel: host health, API performance and database figures all read the same
//! `get_history` and append what the live store brings.

#[cfg(feature = "hydrate")]
use crate::api::get_history;
use crate::error::AppError;
use crate::format;
use crate::series::{LivePoint, Mark};
use leptos::prelude::*;
use shared::{HistorySeries, Metric, TimeRange};

/// Live points a history chart holds at most, whatever the interval; older ones leave by time first.
const MAX_APPENDED: usize = 36_000;

/// Stored `metrics` of `subject` over `range` (which is not `Live`), loaded once the page is interactive,
/// then extended by `newest` while the range ends now. `maxima` are the metrics whose per-point maximum is
/// drawn as a faint line too, so a short spike still shows when zoomed out.
#[component]
pub fn StoredTrend(
    /// The chart element's id (and, with `-points`, the test id of its summary).
    id: &'static str,
    title: String,
    metrics: Vec<Metric>,
    maxima: Vec<Metric>,
    /// The host, service or database target; `None` for this server's own host.
    subject: Option<String>,
    range: TimeRange,
    /// The newest live reading of the metrics.
    newest: Signal<Option<LivePoint>>,
    /// Deployments to mark on the time axis.
    #[prop(optional)]
    marks: Option<Signal<Vec<Mark>>>,
) -> impl IntoView {
    // Fetched once the page is interactive. Not a resource: a resource read inside the dashboard's Suspense
    // would put the whole panel back to its fallback while the history loads.
    let history = RwSignal::new(None::<Result<Vec<HistorySeries>, AppError>>);
    #[cfg(feature = "hydrate")]
    {
        let (metrics, subject) = (metrics.clone(), subject.clone());
        Effect::new(move |_| {
            let (metrics, subject) = (metrics.clone(), subject.clone());
            leptos::task::spawn_local(async move {
                let result = get_history(metrics, range, subject).await;
                // The range may have changed meanwhile, taking this chart (and its signal) away.
                let _ = history.try_set(Some(result));
            });
        });
    }
    let appended = RwSignal::new(Vec::<LivePoint>::new());
    if range.follows_now() {
        Effect::new(move |_| {
            if let Some(point) = newest.get() {
                let (from, to) = range.bounds(0);
                let span = to - from;
                appended.update(|points| {
                    if points.last().is_none_or(|last| last.t_ms < point.t_ms) {
                        let t = point.t_ms;
                        points.push(point);
                        // Points that slid out of the window leave; the cap only guards memory.
                        let old = points
                            .iter()
                            .take_while(|p| p.t_ms < t - span)
                            .count()
                            .max(points.len().saturating_sub(MAX_APPENDED));
                        points.drain(..old);
                    }
                });
            }
        });
    }
    let series = Memo::new(move |_| history.get().and_then(Result::ok).unwrap_or_default());
    #[cfg(feature = "hydrate")]
    {
        let (metrics, maxima) = (metrics.clone(), maxima.clone());
        crate::charts::mount(id, move |dark| {
            let series = series.get();
            let marks = marks.map(|m| m.get()).unwrap_or_default();
            appended.with(|live| {
                let window = window(range, &series, live);
                crate::charts::history(&series, &metrics, &maxima, live, window, &marks, dark)
            })
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (maxima, subject, marks);
    let first_metric = metrics.first().copied();
    let first_ms = move || {
        series.with(|s: &Vec<HistorySeries>| {
            s.first()
                .and_then(|s| s.points.first())
                .map(|p| p.t_ms.to_string())
        })
    };
    let stored = move || {
        series.with(|s: &Vec<HistorySeries>| {
            s.iter()
                .find(|s| Some(s.metric) == first_metric)
                .map(|s| s.points.len())
        })
    };
    let summary = move || match history.get() {
        None => "loading history…".to_owned(),
        Some(Err(e)) => e.to_string(),
        Some(Ok(s)) => match s.first() {
            Some(first) => format!(
                "{} stored points · {} tier · {} per point",
                first.points.len(),
                first.tier.as_str(),
                format::span(first.step_ms)
            ),
            None => "no history".to_owned(),
        },
    };
    let title = match range {
        TimeRange::Custom { .. } => format!("{title}, custom range"),
        other => format!("{title}, last {}", other.label()),
    };
    view! {
        <figure class="trend">
            <figcaption>
                <h3>{title}</h3>
                <span
                    class="muted"
                    data-testid=format!("{id}-points")
                    data-count=move || stored().map(|n| n.to_string())
                    data-first-ms=first_ms
                >
                    {summary}
                </span>
            </figcaption>
            <div class="chart history-chart" id=id data-testid=id></div>
        </figure>
    }
    .into_any()
}

/// The time window a history chart shows: the range's bounds, moved forward to the newest point while the
/// range ends now.
#[cfg(feature = "hydrate")]
fn window(range: TimeRange, series: &[HistorySeries], live: &[LivePoint]) -> (i64, i64) {
    let (from, to) = series
        .first()
        .map(|s| (s.from_ms, s.to_ms))
        .unwrap_or_else(|| range.bounds(js_sys::Date::now() as i64));
    match (range.follows_now(), live.last()) {
        (true, Some(last)) if last.t_ms > to => (from + (last.t_ms - to), last.t_ms),
        _ => (from, to),
    }
}
