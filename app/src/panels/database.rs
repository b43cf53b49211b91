//! Database metrics: per target, connections by database and state and the costliest queries as bar charts,
//! with transactions per second, cache hit ratio and deadlocks; with a time range chosen, connections and
//! transactions per second from the stored history below them.

use crate::format;
use crate::live::LiveStore;
use crate::range::use_time_range;
use crate::series::LivePoint;
use crate::stored::StoredTrend;
use leptos::prelude::*;
use shared::{DbReading, Metric, TimeRange};

#[component]
pub fn DatabasePanel() -> impl IntoView {
    let live = LiveStore::expect();
    let targets = Memo::new(move |_| {
        live.state
            .with(|s| s.db().map(|r| r.target.clone()).collect::<Vec<_>>())
    });
    let chosen = RwSignal::new(None::<String>);
    let current: Memo<Option<DbReading>> = Memo::new(move |_| {
        let wanted = chosen.get();
        live.state.with(|s| match wanted {
            Some(name) => s.db().find(|r| r.target == name).cloned(),
            // A configured database first: the store is always there and less interesting.
            None => s
                .db()
                .find(|r| r.kind != shared::DbKind::Store)
                .or_else(|| s.db().next())
                .cloned(),
        })
    });
    let summary = move || {
        current.with(|r| {
            r.as_ref()
                .filter(|r| r.error.is_none())
                .map(|r| {
                    let mut parts = vec![format!("{} connections", r.total_connections())];
                    if let Some(tps) = r.tps {
                        parts.push(format!("{tps:.1} tx/s"));
                    }
                    if let Some(hit) = r.cache_hit_ratio {
                        parts.push(format!("cache hit {:.1}%", hit * 100.0));
                    }
                    if let Some(d) = r.deadlocks {
                        parts.push(format!("{d} deadlocks"));
                    }
                    parts.join(" · ")
                })
                .unwrap_or_default()
        })
    };
    let selected =
        move || current.with(|r| r.as_ref().map(|r| r.target.clone()).unwrap_or_default());

    view! {
        <section class="panel database" data-testid="panel-database" aria-labelledby="database-title">
            <div class="panel-head">
                <h2 id="database-title">"Database"</h2>
                <super::alerts::AlertBadge panel="database" />
                <label class="panel-meta">
                    "Target "
                    <select
                        data-testid="db-target"
                        prop:value=selected
                        on:change=move |ev| chosen.set(Some(event_target_value(&ev)))
                    >
                        {move || {
                            targets
                                .get()
                                .into_iter()
                                .map(|t| view! { <option value=t.clone()>{t.clone()}</option> })
                                .collect_view()
                        }}
                    </select>
                </label>
                <span class="panel-meta" data-testid="db-summary">{summary}</span>
            </div>
            {move || {
                current
                    .with(|r| r.as_ref().and_then(|r| r.error.clone()))
                    .map(|e| view! { <p class="db-error" role="alert" data-testid="db-error">"Cannot be read: " {e}</p> })
            }}
            {move || {
                current
                    .with(|r| r.as_ref().and_then(|r| r.note.clone()))
                    .map(|n| view! { <p class="muted db-note" data-testid="db-note">{n}</p> })
            }}
            <Show
                when=move || current.with(|r| r.as_ref().is_some_and(|r| r.error.is_none()))
                fallback=move || {
                    view! {
                        <Show when=move || current.with(Option::is_none)>
                            <p class="empty">"Waiting for the first reading…"</p>
                        </Show>
                    }
                }
            >
                <DbCharts current />
                <DbTrend current />
            </Show>
        </section>
    }
    .into_any()
}

/// With a time range chosen, the target's connections and transactions per second over it.
#[component]
fn DbTrend(current: Memo<Option<DbReading>>) -> impl IntoView {
    let range = use_time_range();
    let chosen = Memo::new(move |_| range.get().unwrap_or_default());
    let target = Memo::new(move |_| current.with(|r| r.as_ref().map(|r| r.target.clone())));
    move || match (chosen.get(), target.get()) {
        (TimeRange::Live, _) | (_, None) => ().into_any(),
        (range, Some(target)) => {
            let newest = Signal::derive(move || {
                current.with(|r| {
                    r.as_ref().filter(|r| r.error.is_none()).map(|r| LivePoint {
                        t_ms: r.t_ms,
                        values: std::iter::once((
                            Metric::DbConnections,
                            r.total_connections() as f64,
                        ))
                        .chain(r.tps.map(|t| (Metric::DbTps, t)))
                        .collect(),
                    })
                })
            });
            view! {
                <StoredTrend
                    id="db-history"
                    title="Connections and transactions/s".to_owned()
                    metrics=vec![Metric::DbConnections, Metric::DbTps]
                    maxima=vec![Metric::DbConnections]
                    subject=Some(target)
                    range
                    newest
                />
            }
            .into_any()
        }
    }
}

/// The two bar charts and the query table. Its own component so the charts are created once their containers
/// exist.
#[component]
fn DbCharts(current: Memo<Option<DbReading>>) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    {
        crate::charts::mount("db-connections", move |dark| {
            current.with(|r| {
                chart::db_connections(r.as_ref().map_or(&[][..], |r| &r.connections), dark)
            })
        });
        crate::charts::mount("db-queries", move |dark| {
            current.with(|r| chart::db_queries(r.as_ref().map_or(&[][..], |r| &r.queries), dark))
        });
    }
    let rows = move || {
        current
            .with(|r| r.as_ref().map(|r| r.queries.clone()).unwrap_or_default())
            .into_iter()
            .map(|q| {
                let text = q.query.split_whitespace().collect::<Vec<_>>().join(" ");
                view! {
                    <tr data-testid="db-query">
                        <td class="db-query-text" title=text.clone()>{text.clone()}</td>
                        <td class="num">{q.calls}</td>
                        <td class="num">{format::millis(q.mean_ms)}</td>
                        <td class="num">{format::millis(q.total_ms)}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <figure class="db-chart">
            <figcaption><h3>"Connections by database and state"</h3></figcaption>
            <div class="chart db-connections-chart" id="db-connections" data-testid="db-connections"></div>
        </figure>
        <figure class="db-chart">
            <figcaption><h3>"Slowest queries (mean ms)"</h3></figcaption>
            <div class="chart db-queries-chart" id="db-queries" data-testid="db-queries"></div>
        </figure>
        <Show when=move || current.with(|r| r.as_ref().is_some_and(|r| !r.queries.is_empty()))>
        <table class="db-queries-table">
            <thead>
                <tr>
                    <th scope="col">"Query"</th>
                    <th scope="col" class="num">"calls"</th>
                    <th scope="col" class="num">"mean ms"</th>
                    <th scope="col" class="num">"total ms"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        </Show>
    }
    .into_any()
}

/// This panel's chart options (browser-only).
#[cfg(feature = "hydrate")]
pub(crate) mod chart {
    use crate::charts::Chart;
    use crate::charts::{category_axis, palette, value_axis, with_empty_note};
    use charming::component::Grid;
    use charming::element::*;

    /// Connections per database and state, one horizontal bar each: the labels
    /// ("watchpost.db (writer) · in use") read level and whole beside their bars, as in the query chart.
    pub fn db_connections(connections: &[shared::ConnectionCount], dark: bool) -> Chart {
        let p = palette(dark);
        let shown: Vec<&shared::ConnectionCount> = connections.iter().rev().collect();
        let labels = shown
            .iter()
            .map(|c| format!("{} · {}", c.database, c.state))
            .collect();
        let values: Vec<f64> = shown.iter().map(|c| c.count as f64).collect();
        let chart = Chart::new()
            .animation(false)
            .color(vec!["#0969da"])
            .tooltip(Tooltip::new().trigger(Trigger::Axis))
            .grid(
                Grid::new()
                    .left(12)
                    .right(16)
                    .top(8)
                    .bottom(24)
                    .contain_label(true),
            )
            .x_axis(value_axis(&p).min_interval(1))
            .y_axis(
                category_axis(&p, labels).axis_label(AxisLabel::new().color(p.text).interval(0)),
            )
            .series(
                charming::series::Bar::new()
                    .name("connections")
                    .data(values),
            );
        with_empty_note(
            chart,
            connections.is_empty(),
            "No client connections right now",
            &p,
        )
    }

    /// Mean time of the costliest statements (or store operations), longest on top.
    pub fn db_queries(queries: &[shared::QueryStat], dark: bool) -> Chart {
        let p = palette(dark);
        let shown: Vec<&shared::QueryStat> = queries.iter().rev().collect();
        let labels = shown
            .iter()
            .map(|q| {
                let one_line = q.query.split_whitespace().collect::<Vec<_>>().join(" ");
                if one_line.chars().count() > 28 {
                    format!("{}…", one_line.chars().take(27).collect::<String>())
                } else {
                    one_line
                }
            })
            .collect();
        let values: Vec<f64> = shown.iter().map(|q| q.mean_ms).collect();
        let chart = Chart::new()
            .animation(false)
            .color(vec!["#8250df"])
            .tooltip(Tooltip::new().trigger(Trigger::Axis))
            .grid(Grid::new().left(170).right(16).top(8).bottom(24))
            .x_axis(value_axis(&p))
            .y_axis(category_axis(&p, labels))
            .series(charming::series::Bar::new().name("mean ms").data(values));
        with_empty_note(chart, queries.is_empty(), "No queries in this interval", &p)
    }
}
