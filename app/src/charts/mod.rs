//! The shared chart builders over charming (ECharts in the browser): mounting, palettes, axes, and the
//! stored-history chart every panel draws. Each panel's own chart options live beside the panel.
//! Browser-only: the server renders the containers.
//!
//! A chart is created once, after hydration, and then updated with `setOption` on the same instance when the
//! signals it reads change, so appending a point never re-creates the chart.

use crate::series::Mark;
use charming::component::{Axis, DataZoom, DataZoomType, FilterMode, Grid, Legend};
use charming::element::{
    AxisLabel, AxisLine, AxisLineStyle, AxisType, Label, LineStyle, LineStyleType, MarkLine,
    MarkLineData, MarkLineVariant, SplitLine, Symbol, TextStyle, Tooltip, Trigger,
};
use charming::series::Line;
use leptos::prelude::*;
pub(crate) use option::Chart;
use option::Echarts;
use shared::{HistorySeries, Metric};
use std::cell::RefCell;
use std::rc::Rc;

mod option;

/// Creates the chart in the element `id` and keeps it up to date with `option`, which may read signals.
pub fn mount(id: &'static str, option: impl Fn(bool) -> Chart + 'static) {
    let dark = prefers_dark();
    let handle: Rc<RefCell<Option<Echarts>>> = Rc::default();
    let chart = handle.clone();
    Effect::new(move |_| {
        let option = option(dark);
        let mut chart = chart.borrow_mut();
        let drawn = match chart.as_ref() {
            Some(echarts) => option::update(echarts, &option),
            None => option::draw(id, &option).map(|echarts| *chart = Some(echarts)),
        };
        if let Err(e) = drawn {
            leptos::logging::error!("cannot draw chart {id}: {e}");
        }
    });
    let resized = handle.clone();
    let listener = window_event_listener(leptos::ev::resize, move |_| {
        if let Some(echarts) = resized.borrow().as_ref() {
            echarts.resize();
        }
    });
    // A chart whose component goes away (the range changed, say) releases its canvas and listeners.
    let handle = send_wrapper::SendWrapper::new(handle);
    on_cleanup(move || {
        listener.remove();
        if let Some(echarts) = handle.borrow_mut().take() {
            echarts.dispose();
        }
    });
}

fn prefers_dark() -> bool {
    web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .is_some_and(|m| m.matches())
}

pub(crate) struct Palette {
    pub(crate) text: &'static str,
    pub(crate) grid: &'static str,
    pub(crate) track: &'static str,
}

pub(crate) fn palette(dark: bool) -> Palette {
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
pub(crate) fn level_color(pct: f32) -> &'static str {
    match pct {
        p if p >= 90.0 => "#cf222e",
        p if p >= 75.0 => "#d29922",
        _ => "#2da44e",
    }
}

/// A line chart's frame: series colours (the legend takes its swatches from them), legend on top, axis
/// tooltip, and `bottom` px below the plot for labels (and a zoom
/// slider).
pub(crate) fn line_chart(p: &Palette, colors: Vec<&'static str>, bottom: i32) -> Chart {
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
pub(crate) fn percent_axis(p: &Palette) -> Axis {
    Axis::new()
        .type_(AxisType::Value)
        .min(0)
        .max(100)
        .axis_label(AxisLabel::new().color(p.text).formatter("{value}%"))
        .split_line(SplitLine::new().line_style(LineStyle::new().color(p.grid)))
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
pub(crate) fn metric_color(metric: Metric) -> &'static str {
    match metric {
        Metric::Memory | Metric::DbTps => "#8250df",
        Metric::HttpP50Ms => "#2da44e",
        Metric::HttpP95Ms => "#d29922",
        Metric::HttpP99Ms => "#cf222e",
        _ => "#0969da",
    }
}

/// A time axis over `span` (first and last time, ms), at least two minutes wide so a single point does not
/// leave ECharts to pick a span of days; labels are whole minutes (`12:34`), at most five, so they never
/// overlap each other.
pub(crate) fn time_axis(p: &Palette, span: Option<(i64, i64)>) -> Axis {
    const LEAST_SPAN_MS: i64 = 120_000;
    let axis = Axis::new()
        .type_(AxisType::Time)
        .split_number(4)
        .min_interval(60_000)
        .axis_label(AxisLabel::new().color(p.text).formatter("{HH}:{mm}"))
        .axis_line(AxisLine::new().line_style(AxisLineStyle::new().color((1.0, p.grid))));
    match span {
        Some((first, last)) => axis
            .min(first.min(last - LEAST_SPAN_MS) as f64)
            .max(last as f64),
        None => axis,
    }
}

pub(crate) fn value_axis(p: &Palette) -> Axis {
    Axis::new()
        .type_(AxisType::Value)
        .min(0)
        .axis_label(AxisLabel::new().color(p.text))
        .split_line(SplitLine::new().line_style(LineStyle::new().color(p.grid)))
}

/// Dashed vertical lines at the deployments' times, labelled with the version.
pub(crate) fn deploy_marks(marks: &[Mark], p: &Palette) -> MarkLine {
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

pub(crate) fn category_axis(p: &Palette, labels: Vec<String>) -> Axis {
    Axis::new()
        .type_(AxisType::Category)
        .data(labels)
        .axis_label(AxisLabel::new().color(p.text))
        .axis_line(AxisLine::new().line_style(AxisLineStyle::new().color((1.0, p.grid))))
}

/// A chart with nothing to draw says so in its middle, rather than showing bare axes. A chart with data says
/// so too, with a hidden note: ECharts merges each option into the chart, so a note left out would stay
/// from the option before (an empty target, then one with data).
pub(crate) fn with_empty_note(chart: Chart, empty: bool, text: &str, p: &Palette) -> Chart {
    if !empty {
        return chart.title(charming::component::Title::new().show(false));
    }
    chart.title(
        charming::component::Title::new()
            .show(true)
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
