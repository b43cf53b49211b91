//! Server health: gauges for CPU, memory and the fullest disk, the details behind them, and a five-minute
//! trend of CPU and memory. Everything here reads the live store.

use crate::format;
use crate::live::LiveStore;
use crate::range::use_time_range;
use crate::selection::use_selected_host;
use crate::series::LivePoint;
use crate::stored::StoredTrend;
use leptos::prelude::*;
use shared::{HealthPoint, HostHealth, Metric, TimeRange};

#[component]
pub fn HealthPanel() -> impl IntoView {
    let live = LiveStore::expect();
    let selected = use_selected_host();
    let health: Memo<Option<HostHealth>> = Memo::new(move |_| {
        let host = selected.get()?;
        live.state.with(|s| s.host(&host).map(|h| h.health.clone()))
    });
    let read = move |f: fn(&HostHealth) -> String| {
        move || health.with(|h| h.as_ref().map(f).unwrap_or_default())
    };
    let has_reading = move || health.with(Option::is_some);
    let stale = move || live.stale();

    view! {
        <section class="panel wide health" class:stale=stale data-testid="panel-health" aria-labelledby="health-title">
            <div class="panel-head">
                <h2 id="health-title">"Server health"</h2>
                <super::alerts::AlertBadge panel="health" />
                <span class="panel-meta" data-testid="host-meta">
                    {read(|h| {
                        // The host's name in the fleet; the machine's own name beside it when they differ.
                        let name = if h.hostname == h.host.0 {
                            h.hostname.clone()
                        } else {
                            format!("{} ({})", h.host, h.hostname)
                        };
                        format!("{name} · {} · up {}", h.os, format::uptime(h.uptime_s))
                    })}
                </span>
                <Show when=stale>
                    <span class="badge stale-badge">"stale"</span>
                </Show>
            </div>
            <Show
                when=has_reading
                fallback=|| view! { <p class="empty">"Waiting for the first reading of this host…"</p> }
            >
                <div class="gauges">
                    <Gauge
                        id="gauge-cpu"
                        label="CPU"
                        value=Signal::derive(move || health.with(|h| h.as_ref().map_or(0.0, |h| h.cpu_pct)))
                        detail=Signal::derive(read(|h| {
                            format!("load {:.2} {:.2} {:.2}", h.load.one, h.load.five, h.load.fifteen)
                        }))
                    />
                    <Gauge
                        id="gauge-memory"
                        label="Memory"
                        value=Signal::derive(move || health.with(|h| h.as_ref().map_or(0.0, HostHealth::mem_pct)))
                        detail=Signal::derive(read(|h| format::used_of(h.memory.used, h.memory.total)))
                    />
                    <Gauge
                        id="gauge-disk"
                        label="Disk"
                        value=Signal::derive(move || health.with(|h| h.as_ref().map_or(0.0, HostHealth::disk_pct)))
                        detail=Signal::derive(read(|h| {
                            h.fullest_disk()
                                .map(|d| format!("{} · {}", d.mount, format::used_of(d.used, d.total)))
                                .unwrap_or_else(|| "no disks reported".into())
                        }))
                    />
                </div>
                <Details health />
                <Trend />
            </Show>
        </section>
    }
}

/// Per-core CPU, memory and swap, network rates and every mounted disk.
#[component]
fn Details(health: Memo<Option<HostHealth>>) -> impl IntoView {
    let read = move |f: fn(&HostHealth) -> String| {
        move || health.with(|h| h.as_ref().map(f).unwrap_or_default())
    };
    view! {
        <div class="details">
            <div class="detail">
                <h3>"CPU cores"</h3>
                <ul class="cores" data-testid="cores">
                    {move || {
                        health
                            .with(|h| h.as_ref().map(|h| h.cores.clone()).unwrap_or_default())
                            .into_iter()
                            .enumerate()
                            .map(|(i, pct)| {
                                view! {
                                    <li>
                                        <span class="core-name">{format!("cpu{i}")}</span>
                                        <span class="bar"><span style=format!("width:{:.1}%", pct.clamp(0.0, 100.0))></span></span>
                                        <span class="num">{format!("{pct:.0}%")}</span>
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
                <p class="muted">
                    "Load average "
                    {read(|h| format!("{:.2} · {:.2} · {:.2}", h.load.one, h.load.five, h.load.fifteen))}
                </p>
            </div>
            <div class="detail">
                <h3>"Memory"</h3>
                <dl>
                    <dt>"RAM"</dt>
                    <dd data-testid="memory">{read(|h| format::used_of(h.memory.used, h.memory.total))}</dd>
                    <dt>"Swap"</dt>
                    <dd>
                        {read(|h| {
                            if h.swap.total == 0 { "none".into() } else { format::used_of(h.swap.used, h.swap.total) }
                        })}
                    </dd>
                </dl>
                <h3>"Network"</h3>
                <dl>
                    <dt>"Receive"</dt>
                    <dd data-testid="net-rx">{read(|h| format::rate(h.net.rx_bytes_per_s))}</dd>
                    <dt>"Transmit"</dt>
                    <dd data-testid="net-tx">{read(|h| format::rate(h.net.tx_bytes_per_s))}</dd>
                </dl>
            </div>
            <div class="detail disks">
                <h3>"Disks"</h3>
                <table data-testid="disks">
                    <thead>
                        <tr>
                            <th scope="col">"Mount"</th>
                            <th scope="col">"Used"</th>
                            <th scope="col" class="num">"%"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            health
                                .with(|h| h.as_ref().map(|h| h.disks.clone()).unwrap_or_default())
                                .into_iter()
                                .map(|d| {
                                    let pct = d.usage().pct();
                                    view! {
                                        <tr>
                                            <td title=d.fs.clone()>{d.mount.clone()}</td>
                                            <td>{format::used_of(d.used, d.total)}</td>
                                            <td class="num">{format!("{pct:.0}%")}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()
                        }}
                    </tbody>
                </table>
            </div>
        </div>
    }
    .into_any()
}

/// A semicircle gauge. The number is HTML laid over the canvas, so it is in the server-rendered page and
/// readable before (and without) the chart.
#[component]
fn Gauge(
    id: &'static str,
    label: &'static str,
    value: Signal<f32>,
    detail: Signal<String>,
) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    crate::charts::mount(id, move |dark| chart::gauge(label, value.get(), dark));
    view! {
        <figure class="gauge" data-testid=id>
            <div class="gauge-dial">
                <div class="chart gauge-chart" id=id></div>
                <div class="gauge-center">
                    <span class="gauge-value" data-testid=format!("{id}-value")>
                        {move || format!("{:.1}%", value.get())}
                    </span>
                    <span class="gauge-label">{label}</span>
                </div>
            </div>
            <figcaption class="gauge-detail">{detail}</figcaption>
        </figure>
    }
    .into_any()
}

/// CPU and memory over the range in the URL: the live five minutes, or stored history.
#[component]
fn Trend() -> impl IntoView {
    let range = use_time_range();
    let chosen = Memo::new(move |_| range.get().unwrap_or_default());
    let host = use_selected_host();
    move || {
        // Drawn again for another host: the stored trend reads its host once.
        crate::reactive::depend_on(host);
        match chosen.get() {
            TimeRange::Live => view! { <LiveTrend /> }.into_any(),
            range => view! { <HistoryTrend range /> }.into_any(),
        }
    }
}

/// The last five minutes of CPU and memory; new points are appended to the same chart instance.
#[component]
fn LiveTrend() -> impl IntoView {
    let live = LiveStore::expect();
    let selected = use_selected_host();
    let points: Memo<Vec<HealthPoint>> = Memo::new(move |_| {
        let Some(host) = selected.get() else {
            return Vec::new();
        };
        live.state
            .with(|s| s.host(&host).map(|h| h.recent.clone()).unwrap_or_default())
    });
    #[cfg(feature = "hydrate")]
    crate::charts::mount("trend-cpu-memory", move |dark| {
        points.with(|p| chart::trend(p, dark))
    });
    let summary = move || points.with(|p| format!("{} points", p.len()));
    view! {
        <figure class="trend">
            <figcaption>
                <h3>"CPU and memory, last 5 minutes"</h3>
                <span class="muted" data-testid="trend-points">{summary}</span>
            </figcaption>
            <div class="chart trend-chart" id="trend-cpu-memory" data-testid="trend-chart"></div>
        </figure>
    }
    .into_any()
}

/// Stored CPU and memory over `range`, continued by live readings while the range ends now.
#[component]
fn HistoryTrend(range: TimeRange) -> impl IntoView {
    let live = LiveStore::expect();
    let selected = use_selected_host();
    let newest = Signal::derive(move || {
        let host = selected.get()?;
        live.state.with(|s| {
            s.host(&host)
                .and_then(|h| h.recent.last())
                .map(|p| LivePoint {
                    t_ms: p.at_ms,
                    values: vec![
                        (Metric::Cpu, f64::from(p.cpu_pct)),
                        (Metric::Memory, f64::from(p.mem_pct)),
                    ],
                })
        })
    });
    view! {
        <StoredTrend
            id="history-cpu-memory"
            title="CPU and memory".to_owned()
            metrics=vec![Metric::Cpu, Metric::Memory]
            maxima=vec![Metric::Cpu, Metric::Memory]
            subject=selected.get_untracked().map(|h| h.0)
            range
            newest
        />
    }
    .into_any()
}

/// This panel's chart options (browser-only).
#[cfg(feature = "hydrate")]
pub(crate) mod chart {
    use crate::charts::Chart;
    use crate::charts::{level_color, line_chart, palette, percent_axis};
    use charming::component::Axis;
    use charming::element::*;
    use charming::series::{Gauge, GaugeDetail, GaugeProgress, GaugeTitle, Line};
    use shared::{HealthPoint, RECENT_WINDOW_MS};

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
                    .axis_line(
                        AxisLine::new().line_style(AxisLineStyle::new().color((1.0, p.grid))),
                    ),
            )
            .y_axis(percent_axis(&p))
            .series(series("CPU %", "#0969da", |pt| pt.cpu_pct))
            .series(series("Memory %", "#8250df", |pt| pt.mem_pct))
    }
}
