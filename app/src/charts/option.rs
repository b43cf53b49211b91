//! The chart option handed to ECharts, holding charming's components and series, and the few calls into the
//! page's `echarts` that drawing one needs.
//!
//! Why not charming's own `Chart` and `WasmRenderer`: serialising `Chart` compiles a serialiser for every
//! option ECharts has (forty-odd series types, 3D axes, maps, …) whether a chart uses it or not, and its
//! renderer goes through serde-wasm-bindgen, a second serialiser. Together they were some 140 KB of the
//! browser's WASM for the five kinds of thing Watchpost draws (issue 18). This option has only the fields
//! Watchpost sets, with charming's types inside, and goes to ECharts as JSON text through the serialiser the
//! app has anyway. The JSON is what charming would have written for the same fields.

use charming::component::{Axis, DataZoom, Grid, Legend, Title};
use charming::element::{Color, Tooltip};
use charming::series::{Bar, Gauge, Line};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// An ECharts option: the fields Watchpost's charts set, each left out of the JSON while unset (ECharts
/// merges an option into the chart's current one, so an absent field keeps its value).
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    title: Vec<Title>,
    #[serde(skip_serializing_if = "Option::is_none")]
    animation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tooltip: Option<Tooltip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    legend: Option<Legend>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    grid: Vec<Grid>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    x_axis: Vec<Axis>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    y_axis: Vec<Axis>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    data_zoom: Vec<DataZoom>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    color: Vec<Color>,
    series: Vec<Series>,
}

/// The series kinds Watchpost draws. Each of charming's series writes its own `type`, so the enum adds no
/// tag of its own. Boxed: each is a large struct of optional fields.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Series {
    Line(Box<Line>),
    Bar(Box<Bar>),
    Gauge(Box<Gauge>),
}

impl From<Line> for Series {
    fn from(line: Line) -> Self {
        Self::Line(Box::new(line))
    }
}

impl From<Bar> for Series {
    fn from(bar: Bar) -> Self {
        Self::Bar(Box::new(bar))
    }
}

impl From<Gauge> for Series {
    fn from(gauge: Gauge) -> Self {
        Self::Gauge(Box::new(gauge))
    }
}

/// Builders named as charming's `Chart` names them, so chart code reads the same.
impl Chart {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn title(mut self, title: Title) -> Self {
        self.title.push(title);
        self
    }

    pub fn animation(mut self, animation: bool) -> Self {
        self.animation = Some(animation);
        self
    }

    pub fn tooltip(mut self, tooltip: Tooltip) -> Self {
        self.tooltip = Some(tooltip);
        self
    }

    pub fn legend(mut self, legend: Legend) -> Self {
        self.legend = Some(legend);
        self
    }

    pub fn grid(mut self, grid: Grid) -> Self {
        self.grid.push(grid);
        self
    }

    pub fn x_axis(mut self, axis: Axis) -> Self {
        self.x_axis.push(axis);
        self
    }

    pub fn y_axis(mut self, axis: Axis) -> Self {
        self.y_axis.push(axis);
        self
    }

    pub fn data_zoom(mut self, zoom: DataZoom) -> Self {
        self.data_zoom.push(zoom);
        self
    }

    pub fn color<C: Into<Color>>(mut self, colors: Vec<C>) -> Self {
        self.color = colors.into_iter().map(Into::into).collect();
        self
    }

    pub fn series(mut self, series: impl Into<Series>) -> Self {
        self.series.push(series.into());
        self
    }

    /// The option as ECharts takes it: JSON text parsed by the browser.
    fn to_js(&self) -> Result<JsValue, String> {
        let json = serde_json::to_string(self).map_err(|e| e.to_string())?;
        js_sys::JSON::parse(&json).map_err(|e| format!("{e:?}"))
    }
}

#[wasm_bindgen]
extern "C" {
    /// A chart instance of the page's ECharts (the bundle publishes `window.echarts`).
    pub type Echarts;

    #[wasm_bindgen(js_namespace = echarts, js_name = init, catch)]
    fn init(element: &web_sys::Element) -> Result<Echarts, JsValue>;

    #[wasm_bindgen(method, js_name = setOption)]
    fn set_option(this: &Echarts, option: JsValue);

    #[wasm_bindgen(method)]
    pub fn resize(this: &Echarts);

    #[wasm_bindgen(method)]
    pub fn dispose(this: &Echarts);
}

/// A new chart in the element `id`, drawn with `option`.
pub fn draw(id: &str, option: &Chart) -> Result<Echarts, String> {
    let element = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id))
        .ok_or_else(|| format!("no element with id `{id}`"))?;
    let echarts = init(&element).map_err(|e| format!("{e:?}"))?;
    update(&echarts, option)?;
    Ok(echarts)
}

/// Merges `option` into the chart.
pub fn update(echarts: &Echarts, option: &Chart) -> Result<(), String> {
    echarts.set_option(option.to_js()?);
    Ok(())
}
