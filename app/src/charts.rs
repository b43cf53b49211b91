//! Chart wrappers over charming (ECharts in the browser). Browser-only: the server renders the containers.
//!
//! A chart is created once, after hydration, and then updated with `setOption` on the same instance when the
//! signals it reads change, so appending a point never re-creates the chart.

use crate::series::Mark;
use charming::component::{Axis, DataZoom, DataZoomType, FilterMode, Grid, Legend};
use charming::element::{
    AxisLabel, AxisLine, AxisLineStyle, AxisTick, AxisType, Label, LineStyle, LineStyleType,
    MarkLine, MarkLineData, MarkLineVariant, SplitLine, Symbol, TextStyle, Tooltip, Trigger,
};
use charming::series::{Gauge, GaugeDetail, GaugeProgress, GaugeTitle, Line};
use charming::{Chart, Echarts, WasmRenderer};
use leptos::prelude::*;
use shared::{HealthPoint, HistorySeries, Metric, RECENT_WINDOW_MS};
use std::cell::RefCell;
use std::rc::Rc;

/// Creates the chart in the element `id` and keeps it up to date with `option`, which may read signals.
pub fn mount(id: &'static str, option: impl Fn(bool) -> Chart + 'static) {
    let dark = prefers_dark();
    let handle: Rc<RefCell<Option<Echarts>>> = Rc::default();
    let chart = handle.clone();
    Effect::new(move |_| {
        let option = option(dark);
        let mut chart = chart.borrow_mut();
        match chart.as_ref() {
            Some(echarts) => WasmRenderer::update(echarts, &option),
            None => match WasmRenderer::new_opt(None, None).render(id, &option) {
                Ok(echarts) => *chart = Some(echarts),
                Err(e) => leptos::logging::error!("cannot draw chart {id}: {e:?}"),
            },
        }
    });
    let resized = handle.clone();
    let listener = window_event_listener(leptos::ev::resize, move |_| {
        if let Some(echarts) = resized.borrow().as_ref() {
            echarts.resize(wasm_bindgen::JsValue::UNDEFINED);
        }
    });
    // A chart whose component goes away (the range changed, say) releases its canvas and listeners.
    let handle = send_wrapper::SendWrapper::new(handle);
    on_cleanup(move || {
        listener.remove();
        if let Some(echarts) = handle.borrow_mut().take() {
            dispose(&echarts);
        }
    });
}

fn dispose(echarts: &Echarts) {
    use wasm_bindgen::JsCast;
    let this: &wasm_bindgen::JsValue = echarts.as_ref();
    if let Some(dispose) = js_sys::Reflect::get(this, &"dispose".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
    {
        let _ = dispose.call0(this);
    }
}

fn prefers_dark() -> bool {
    web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .is_some_and(|m| m.matches())
}

struct Palette {
    text: &'static str,
    grid: &'static str,
    track: &'static str,
}

fn palette(dark: bool) -> Palette {
    if dark {
        Palette {
            text: "#c9d1d9",
            grid: "#30363d",
            track: "#30363d",
        }
    } else {
        Palette {
            text: "#424a53",
            grid: "#d8dee4",
            track: "#e6e9ed",
        }
    }
}

/// Green, amber or red, at the thresholds people page on.
fn level_color(pct: f32) -> &'static str {
    match pct {
        p if p >= 90.0 => "#cf222e",
        p if p >= 75.0 => "#d29922",
        _ => "#2da44e",
    }
}

pub fn gauge(label: &str, pct: f32, dark: bool) -> Chart {
    let p = palette(dark);
    Chart::new()
        .animation(false)
        .color(vec![level_color(pct)])
        .series(
            Gauge::new()
                .name(label)
                .min(0.0)
                .max(100.0)
                .start_angle(200.0)
                .end_angle(-20.0)
                .radius("100%")
                .center(("50%", "60%"))
                .progress(GaugeProgress::new().show(true).width(12.0).round_cap(true))
                .axis_line(
                    AxisLine::new()
                        .round_cap(true)
                        .line_style(AxisLineStyle::new().width(12.0).color((1.0, p.track))),
                )
                .axis_tick(AxisTick::new().show(false))
                .split_line(SplitLine::new().show(false))
                .axis_label(AxisLabel::new().show(false))
                .pointer(charming::element::Pointer::new().show(false))
                .detail(GaugeDetail::new().show(false))
                .title(GaugeTitle::new().show(false))
                .data(vec![(f64::from(pct), label)]),
        )
}

/// A line chart's frame: series colours (the legend takes its swatches from them), legend on top, axis
/// tooltip, and `bottom` px below the plot for labels (and a zoom
/// slider).
fn line_chart(p: &Palette, colors: Vec<&'static str>, bottom: i32) -> Chart {
    Chart::new()
        .animation(false)
        .color(colors)
        .legend(
            Legend::new()
                .top(0)
                .text_style(TextStyle::new().color(p.text)),
        )
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .grid(Grid::new().left(36).right(12).top(28).bottom(bottom))
}

/// 0–100 %, with the palette's grid lines.
fn percent_axis(p: &Palette) -> Axis {
    Axis::new()
        .type_(AxisType::Value)
        .min(0)
        .max(100)
        .axis_label(AxisLabel::new().color(p.text).formatter("{value}%"))
        .split_line(SplitLine::new().line_style(LineStyle::new().color(p.grid)))
}

pub fn trend(points: &[HealthPoint], dark: bool) -> Chart {
    let p = palette(dark);
    let series = |name: &str, color: &str, value: fn(&HealthPoint) -> f32| {
        Line::new()
            .name(name)
            .show_symbol(false)
            .line_style(LineStyle::new().width(2.0).color(color))
            .data(
                points
                    .iter()
                    .map(|pt| vec![pt.at_ms as f64, f64::from(value(pt))])
                    .collect(),
            )
    };
    let end = points.last().map_or(0.0, |pt| pt.at_ms as f64);
    line_chart(&p, vec!["#0969da", "#8250df"], 24)
        .x_axis(
            // A fixed five-minute window ending at the newest point: the axis does not rescale as points
            // arrive, and its labels stay a few minutes apart even on a phone.
            Axis::new()
                .type_(AxisType::Time)
                .min(end - RECENT_WINDOW_MS as f64)
                .max(end)
                .split_number(4)
                .axis_label(AxisLabel::new().color(p.text).formatter("{HH}:{mm}"))
                .axis_line(AxisLine::new().line_style(AxisLineStyle::new().color((1.0, p.grid)))),
        )
        .y_axis(percent_axis(&p))
        .series(series("CPU %", "#0969da", |pt| pt.cpu_pct))
        .series(series("Memory %", "#8250df", |pt| pt.mem_pct))
}

/// Stored `metrics` over a chosen range, with points that arrived live since appended: the average as a
/// line and, for `maxima`, the maximum as a faint line above it, so a short spike still shows when zoomed
/// out. Zoom with the wheel or the slider (ECharts dataZoom).
pub fn history(
    series: &[HistorySeries],
    metrics: &[Metric],
    maxima: &[Metric],
    live: &[crate::series::LivePoint],
    window: (i64, i64),
    marks: &[Mark],
    dark: bool,
) -> Chart {
    let p = palette(dark);
    let stored = |metric: Metric| series.iter().find(|s| s.metric == metric);
    let line = |metric: Metric, max: bool| {
        let mut data: Vec<Vec<f64>> = stored(metric)
            .map(|s| {
                s.points
                    .iter()
                    .map(|pt| vec![pt.t_ms as f64, if max { pt.max } else { pt.avg }])
                    .collect()
            })
            .unwrap_or_default();
        let last = stored(metric)
            .and_then(|s| s.points.last())
            .map_or(i64::MIN, |pt| pt.t_ms);
        data.extend(live.iter().filter(|pt| pt.t_ms > last).filter_map(|pt| {
            pt.values
                .iter()
                .find(|(m, _)| *m == metric)
                .map(|(_, v)| vec![pt.t_ms as f64, *v])
        }));
        data
    };
    // The palette follows the series order (averages, then maxima), so each legend mark has its line's color.
    let colors: Vec<&'static str> = metrics
        .iter()
        .chain(maxima)
        .map(|m| metric_color(*m))
        .collect();
    let span = window.1 - window.0;
    let label = if span <= 2 * 24 * 3_600_000 {
        "{HH}:{mm}"
    } else {
        "{MM}-{dd} {HH}:{mm}"
    };
    let all_percent = metrics.iter().all(|m| m.unit() == shared::Unit::Percent);
    let mut chart = line_chart(&p, colors, 64)
        .data_zoom(
            DataZoom::new()
                .type_(DataZoomType::Inside)
                .filter_mode(FilterMode::None),
        )
        .data_zoom(
            DataZoom::new()
                .type_(DataZoomType::Slider)
                .bottom(4)
                .filter_mode(FilterMode::None),
        )
        .x_axis(
            Axis::new()
                .type_(AxisType::Time)
                .min(window.0 as f64)
                .max(window.1 as f64)
                .split_number(4)
                .axis_label(AxisLabel::new().color(p.text).formatter(label))
                .axis_line(AxisLine::new().line_style(AxisLineStyle::new().color((1.0, p.grid)))),
        )
        .y_axis(if all_percent {
            percent_axis(&p)
        } else {
            value_axis(&p)
        });
    let marks: Vec<Mark> = marks
        .iter()
        .filter(|(t, _)| (window.0..=window.1).contains(t))
        .cloned()
        .collect();
    for (i, &metric) in metrics.iter().enumerate() {
        let mut series = Line::new()
            .name(metric.label())
            .show_symbol(false)
            .line_style(LineStyle::new().width(2.0).color(metric_color(metric)))
            .data(line(metric, false));
        if i == 0 && !marks.is_empty() {
            series = series.mark_line(deploy_marks(&marks, &p));
        }
        chart = chart.series(series);
    }
    for &metric in maxima {
        chart = chart.series(
            Line::new()
                .name(format!("{} max", metric.label()))
                .show_symbol(false)
                .line_style(
                    LineStyle::new()
                        .width(1.0)
                        .opacity(0.45)
                        .color(metric_color(metric)),
                )
                .data(line(metric, true)),
        );
    }
    chart
}

/// One color per metric, the same in live and stored charts.
fn metric_color(metric: Metric) -> &'static str {
    match metric {
        Metric::Memory | Metric::DbTps => "#8250df",
        Metric::HttpP50Ms => "#2da44e",
        Metric::HttpP95Ms => "#d29922",
        Metric::HttpP99Ms => "#cf222e",
        _ => "#0969da",
    }
}

/// A time axis over the points' own span; ECharts picks the label format (seconds when the span is short).
fn time_axis(p: &Palette) -> Axis {
    Axis::new()
        .type_(AxisType::Time)
        .split_number(4)
        .axis_label(AxisLabel::new().color(p.text))
        .axis_line(AxisLine::new().line_style(AxisLineStyle::new().color((1.0, p.grid))))
}

fn value_axis(p: &Palette) -> Axis {
    Axis::new()
        .type_(AxisType::Value)
        .min(0)
        .axis_label(AxisLabel::new().color(p.text))
        .split_line(SplitLine::new().line_style(LineStyle::new().color(p.grid)))
}

fn api_line(name: &str, color: &str, data: Vec<Vec<f64>>) -> Line {
    Line::new()
        .name(name)
        .show_symbol(data.len() < 3)
        .line_style(LineStyle::new().width(2.0).color(color))
        .data(data)
}

/// Dashed vertical lines at the deployments' times, labelled with the version.
fn deploy_marks(marks: &[Mark], p: &Palette) -> MarkLine {
    MarkLine::new()
        .silent(true)
        .symbol(vec![Symbol::None, Symbol::None])
        .line_style(
            LineStyle::new()
                .color(p.text)
                .opacity(0.6)
                .type_(LineStyleType::Dashed),
        )
        .label(Label::new().formatter("{b}").color(p.text).font_size(10))
        .data(
            marks
                .iter()
                .map(|(t, label)| {
                    MarkLineVariant::Simple(
                        MarkLineData::new().x_axis(*t as f64).name(label.clone()),
                    )
                })
                .collect(),
        )
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
        .x_axis(time_axis(&p))
        .y_axis(value_axis(&p))
        .series(
            api_line("p50", "#2da44e", series(|pt| pt.p50_ms)).mark_line(deploy_marks(&marks, &p)),
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
        .x_axis(time_axis(&p))
        .y_axis(value_axis(&p))
        .series(api_line("requests/s", "#0969da", data))
}

fn category_axis(p: &Palette, labels: Vec<String>) -> Axis {
    Axis::new()
        .type_(AxisType::Category)
        .data(labels)
        .axis_label(AxisLabel::new().color(p.text))
        .axis_line(AxisLine::new().line_style(AxisLineStyle::new().color((1.0, p.grid))))
}

/// A chart with nothing to draw says so in its middle, rather than showing bare axes.
fn with_empty_note(chart: Chart, empty: bool, text: &str, p: &Palette) -> Chart {
    if !empty {
        return chart;
    }
    chart.title(
        charming::component::Title::new()
            .text(text)
            .left("center")
            .top("middle")
            .text_style(
                TextStyle::new()
                    .color(p.text)
                    .font_size(13)
                    .font_weight(charming::element::font_settings::FontWeight::Normal),
            ),
    )
}

/// Connections per database and state, one bar each.
pub fn db_connections(connections: &[shared::ConnectionCount], dark: bool) -> Chart {
    let p = palette(dark);
    let labels = connections
        .iter()
        .map(|c| format!("{} · {}", c.database, c.state))
        .collect();
    let values: Vec<f64> = connections.iter().map(|c| c.count as f64).collect();
    let chart = Chart::new()
        .animation(false)
        .color(vec!["#0969da"])
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .grid(Grid::new().left(40).right(12).top(12).bottom(64))
        .x_axis(
            category_axis(&p, labels)
                .axis_label(AxisLabel::new().color(p.text).rotate(25).interval(0)),
        )
        .y_axis(value_axis(&p))
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
