//! API performance: per service, latency p50/p95/p99 and request rate over the last intervals (or, with a
//! time range chosen, from the stored history), and the routes behind the newest one.

use crate::format;
use crate::live::LiveStore;
use crate::range::use_time_range;
use crate::series::LivePoint;
use crate::stored::StoredTrend;
use leptos::prelude::*;
use shared::{ApiPoint, Metric, ServiceApi, TimeRange};

#[component]
pub fn ApiPanel() -> impl IntoView {
    let live = LiveStore::expect();
    // (name, whether it has request metrics)
    let services = Memo::new(move |_| {
        live.state.with(|s| {
            s.api()
                .map(|a| {
                    let measured = !a.points.last().is_some_and(|p| p.no_request_metrics);
                    (a.service.clone(), measured)
                })
                .collect::<Vec<_>>()
        })
    });
    let chosen = RwSignal::new(None::<String>);
    let current: Memo<Option<ServiceApi>> = Memo::new(move |_| {
        let wanted = chosen.get();
        live.state.with(|s| match wanted {
            Some(name) => s.api().find(|a| a.service == name).cloned(),
            // A target without request metrics (node_exporter) is not the one to show first.
            None => s
                .api()
                .find(|a| !a.points.last().is_some_and(|p| p.no_request_metrics))
                .or_else(|| s.api().next())
                .cloned(),
        })
    });
    let points = Memo::new(move |_| {
        current.with(|c| c.as_ref().map(|c| c.points.clone()).unwrap_or_default())
    });
    let newest = Memo::new(move |_| points.with(|p| p.last().cloned()));
    // Deployments of the shown service, as markers on its latency chart.
    let marks = Memo::new(move |_| {
        let service = current.with(|c| c.as_ref().map(|c| c.service.clone()));
        live.state.with(|s| {
            s.deployments()
                .iter()
                .filter(|d| Some(&d.service) == service.as_ref())
                .map(|d| (d.created_ms, format!("{} → {}", d.version, d.environment)))
                .collect::<Vec<crate::series::Mark>>()
        })
    });

    let summary = move || {
        newest.with(|n| match n {
            Some(p) if p.no_request_metrics => String::new(),
            Some(p) => format!(
                "{:.1} req/s · p95 {} · {} in the last {}",
                p.rate_per_s,
                p.p95_ms
                    .map_or("–".into(), |v| format!("{} ms", format::millis(v))),
                p.requests,
                format::span(i64::try_from(p.interval_ms).unwrap_or(i64::MAX).max(1000))
            ),
            None => String::new(),
        })
    };
    // Figures are always shown in milliseconds; a scrape target says which unit its histogram came in, so a
    // figure that looks off can be traced to its source.
    let unit = move || {
        newest.with(|n| n.as_ref().and_then(|p| p.unit)).map(|u| {
            view! {
                <span class="panel-meta" data-testid="api-unit">
                    "exposed in " {u.as_str()}
                </span>
            }
        })
    };

    view! {
        <section class="panel api" data-testid="panel-api" aria-labelledby="api-title">
            <div class="panel-head">
                <h2 id="api-title">"API performance"</h2>
                <super::alerts::AlertBadge panel="api" />
                <label class="panel-meta">
                    "Service "
                    <select
                        data-testid="api-service"
                        on:change=move |ev| chosen.set(Some(event_target_value(&ev)))
                    >
                        {move || {
                            services
                                .get()
                                .into_iter()
                                .map(|(s, measured)| {
                                    let label = if measured {
                                        s.clone()
                                    } else {
                                        format!("{s} (no request metrics)")
                                    };
                                    let shown = current
                                        .with(|c| c.as_ref().is_some_and(|c| c.service == s));
                                    view! { <option value=s selected=shown>{label}</option> }
                                })
                                .collect_view()
                        }}
                    </select>
                </label>
                <span class="panel-meta" data-testid="api-summary">{summary}</span>
                {unit}
                {move || {
                    newest
                        .with(|n| n.as_ref().and_then(|p| p.error.clone()))
                        .map(|e| {
                            view! {
                                <span class="badge down-badge" data-testid="api-down" role="status">
                                    "down: " {e}
                                </span>
                            }
                        })
                }}
            </div>
            <Show
                when=move || points.with(|p| !p.is_empty())
                    && !newest.with(|n| n.as_ref().is_some_and(|p| p.no_request_metrics))
                fallback=move || {
                    if newest.with(|n| n.as_ref().is_some_and(|p| p.no_request_metrics)) {
                        view! {
                            <p class="empty" data-testid="api-no-request-metrics">
                                "Up, no request metrics: this target exposes no request-duration histogram."
                            </p>
                        }
                            .into_any()
                    } else {
                        view! { <p class="empty">"Waiting for the first interval of requests…"</p> }
                            .into_any()
                    }
                }
            >
                <ApiTrends points newest marks />
                <RouteTable newest />
            </Show>
        </section>
    }
    .into_any()
}

/// The live charts, or with a range chosen in the header, the service's stored figures over it.
#[component]
fn ApiTrends(
    points: Memo<Vec<ApiPoint>>,
    newest: Memo<Option<ApiPoint>>,
    marks: Memo<Vec<crate::series::Mark>>,
) -> impl IntoView {
    let range = use_time_range();
    let chosen = Memo::new(move |_| range.get().unwrap_or_default());
    let service = Memo::new(move |_| newest.with(|n| n.as_ref().map(|p| p.service.clone())));
    move || match (chosen.get(), service.get()) {
        (TimeRange::Live, _) | (_, None) => view! { <ApiCharts points marks /> }.into_any(),
        (range, Some(service)) => {
            let live = move |pick: fn(&ApiPoint) -> Vec<(Metric, f64)>| {
                Signal::derive(move || {
                    newest.with(|n| {
                        n.as_ref().map(|p| LivePoint {
                            t_ms: p.t_ms,
                            values: pick(p),
                        })
                    })
                })
            };
            let latency = live(|p| {
                [
                    (Metric::HttpP50Ms, p.p50_ms),
                    (Metric::HttpP95Ms, p.p95_ms),
                    (Metric::HttpP99Ms, p.p99_ms),
                ]
                .into_iter()
                .filter_map(|(m, v)| v.map(|v| (m, v)))
                .collect()
            });
            let rate = live(|p| vec![(Metric::HttpRequestsPerS, p.rate_per_s)]);
            view! {
                <StoredTrend
                    id="api-history-latency"
                    title="Latency (ms)".to_owned()
                    metrics=vec![Metric::HttpP50Ms, Metric::HttpP95Ms, Metric::HttpP99Ms]
                    maxima=vec![Metric::HttpP99Ms]
                    subject=Some(service.clone())
                    range
                    newest=latency
                    marks=Signal::from(marks)
                />
                <StoredTrend
                    id="api-history-rate"
                    title="Requests per second".to_owned()
                    metrics=vec![Metric::HttpRequestsPerS]
                    maxima=vec![Metric::HttpRequestsPerS]
                    subject=Some(service)
                    range
                    newest=rate
                />
            }
            .into_any()
        }
    }
}

/// Latency quantiles and request rate over the service's recent intervals. A component of its own so the
/// charts are created only once their containers exist.
#[component]
fn ApiCharts(points: Memo<Vec<ApiPoint>>, marks: Memo<Vec<crate::series::Mark>>) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    {
        crate::charts::mount("api-latency", move |dark| {
            let marks = marks.get();
            points.with(|p| chart::api_latency(p, &marks, dark))
        });
        crate::charts::mount("api-rate", move |dark| {
            points.with(|p| chart::api_rate(p, dark))
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = points;
    // How many deployment markers the live chart draws (its canvas cannot be read by tests).
    let drawn = move || {
        let first = points.with(|p| {
            p.first()
                .map_or(i64::MAX, |pt| pt.t_ms - pt.interval_ms as i64)
        });
        marks
            .with(|m| m.iter().filter(|(t, _)| *t >= first).count())
            .to_string()
    };
    view! {
        <figure class="api-chart">
            <figcaption><h3>"Latency (ms)"</h3></figcaption>
            <div class="chart api-latency-chart" id="api-latency" data-testid="api-latency" data-marks=drawn></div>
        </figure>
        <figure class="api-chart">
            <figcaption><h3>"Requests per second"</h3></figcaption>
            <div class="chart api-rate-chart" id="api-rate" data-testid="api-rate"></div>
        </figure>
    }
    .into_any()
}

/// The routes of the newest interval, busiest first.
#[component]
fn RouteTable(newest: Memo<Option<ApiPoint>>) -> impl IntoView {
    let rows = move || {
        newest
            .with(|n| n.as_ref().map(|p| p.routes.clone()).unwrap_or_default())
            .into_iter()
            .map(|r| {
                let error_class = if r.errors > 0 { "num bad" } else { "num" };
                view! {
                    <tr data-testid="api-route">
                        <td><code>{r.method.clone()}</code> " " {r.route.clone()}</td>
                        <td class="num">{format!("{:.1}", r.rate_per_s)}</td>
                        <td class="num">{format::millis(r.p50_ms)}</td>
                        <td class="num">{format::millis(r.p95_ms)}</td>
                        <td class="num">{format::millis(r.p99_ms)}</td>
                        <td class=error_class>{r.errors}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <table class="api-routes" data-testid="api-routes">
            <thead>
                <tr>
                    <th scope="col">"Route"</th>
                    <th scope="col" class="num">"req/s"</th>
                    <th scope="col" class="num">"p50"</th>
                    <th scope="col" class="num">"p95"</th>
                    <th scope="col" class="num">"p99"</th>
                    <th scope="col" class="num">"5xx"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

/// This panel's chart options (browser-only).
#[cfg(feature = "hydrate")]
pub(crate) mod chart {
    use crate::charts::Chart;
    use crate::charts::{deploy_marks, line_chart, palette, time_axis, value_axis};
    use crate::series::Mark;
    use charming::element::*;
    use charming::series::Line;

    /// The points' span: from the start of the first interval to the end of the last.
    fn span(points: &[shared::ApiPoint]) -> Option<(i64, i64)> {
        let first = points.first()?;
        let last = points.last()?;
        Some((first.t_ms - first.interval_ms as i64, last.t_ms))
    }

    fn api_line(name: &str, color: &str, data: Vec<Vec<f64>>) -> Line {
        Line::new()
            .name(name)
            .show_symbol(data.len() < 3)
            .line_style(LineStyle::new().width(2.0).color(color))
            .data(data)
    }

    /// p50, p95 and p99 latency of a service, one point per interval; intervals without requests are gaps.
    /// Deployments of the service within the points' span are dashed markers.
    pub fn api_latency(points: &[shared::ApiPoint], marks: &[Mark], dark: bool) -> Chart {
        let p = palette(dark);
        let series = |q: fn(&shared::ApiPoint) -> Option<f64>| {
            points
                .iter()
                .filter_map(|pt| q(pt).map(|v| vec![pt.t_ms as f64, v]))
                .collect::<Vec<_>>()
        };
        let first = points
            .first()
            .map_or(i64::MAX, |pt| pt.t_ms - pt.interval_ms as i64);
        let marks: Vec<Mark> = marks.iter().filter(|(t, _)| *t >= first).cloned().collect();
        line_chart(&p, vec!["#2da44e", "#d29922", "#cf222e"], 24)
            .x_axis(time_axis(&p, span(points)))
            .y_axis(value_axis(&p))
            .series(
                api_line("p50", "#2da44e", series(|pt| pt.p50_ms))
                    .mark_line(deploy_marks(&marks, &p)),
            )
            .series(api_line("p95", "#d29922", series(|pt| pt.p95_ms)))
            .series(api_line("p99", "#cf222e", series(|pt| pt.p99_ms)))
    }

    /// Requests per second of a service, one point per interval.
    pub fn api_rate(points: &[shared::ApiPoint], dark: bool) -> Chart {
        let p = palette(dark);
        let data = points
            .iter()
            .map(|pt| vec![pt.t_ms as f64, pt.rate_per_s])
            .collect();
        line_chart(&p, vec!["#0969da"], 24)
            .x_axis(time_axis(&p, span(points)))
            .y_axis(value_axis(&p))
            .series(api_line("requests/s", "#0969da", data))
    }
}
