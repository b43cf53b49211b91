//! API performance of Watchpost's own HTTP server, the first source of the API panel.
//!
//! A middleware times every request (route template, method, status class) into an HDR histogram per route
//! for the current interval; at the end of each interval the histograms are swapped out, turned into an
//! `Api` event (latency quantiles and rate per route and for the whole service) and stored as history. The
//! same requests feed cumulative Prometheus metrics served at `/metrics`, so other tools can scrape Watchpost.
//! The event stream itself is left out: a stream lasts as long as the tab, which is not a latency.

use super::poll::{self, Polled, Schedule};
use crate::clock::now_millis;
use crate::logs::LogBook;
use crate::outlet::{OWN_SERVICE, Outlet};
use crate::tasks::Tasks;
use axum::http::{Method, StatusCode};
use hdrhistogram::Histogram as Hdr;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use shared::{ApiPoint, Event, RouteStats};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Routes that are streams, not requests with a latency.
pub(crate) const UNTIMED: &[&str] = &["/api/events"];
/// Requests no route matched (static files, 404s) share one label, so raw paths never become labels.
pub(crate) const FALLBACK_ROUTE: &str = "(other)";
/// Slowest latency a histogram records exactly; slower requests are counted at this value.
const MAX_MICROS: u64 = 3_600_000_000;
/// Route and method pairs tracked at most. The routes are the router's templates and the methods a fixed set,
/// so this is never reached by design; it is the backstop that keeps memory and `/metrics` bounded if a
/// route ever takes its label from the request. Requests beyond it are counted as dropped.
const MAX_SERIES: usize = 256;

/// The label of a request method: the standard ones by name, anything else (a client may send any token
/// as a method, before it is signed in) as `OTHER`, so a made-up method never becomes a series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type DurationFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// One route's requests in the current interval.
struct Interval {
    latency: Hdr<u64>,
    errors: u64,
}

pub struct HttpMetrics {
    current: Mutex<HashMap<(String, String), Interval>>,
    /// Every route and method pair seen since the start, at most [`MAX_SERIES`].
    series: Mutex<HashSet<(String, &'static str)>>,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: DurationFamily,
    /// Requests not recorded because [`MAX_SERIES`] was reached.
    dropped: Counter,
}

/// Upper bounds of the request-duration bands in ms: 0.5 ms to about 16 s, doubling. The same for
/// `/metrics`'s histogram and for the bands history keeps, so a quantile over a range from either agrees.
fn band_bounds_ms() -> impl Iterator<Item = f64> {
    (0..16).map(|k| 0.5 * f64::from(1u32 << k))
}

fn duration_histogram() -> Histogram {
    Histogram::new(band_bounds_ms().map(|ms| ms / 1000.0))
}

/// An interval's requests (recorded in µs) by band, without the empty ones.
fn bands(h: &Hdr<u64>) -> Vec<(f64, u64)> {
    let mut below = 0;
    band_bounds_ms()
        .filter_map(|ms| {
            let upto = h.count_between(0, (ms * 1000.0) as u64);
            let n = upto.saturating_sub(below);
            below = upto;
            (n > 0).then_some((ms, n))
        })
        .collect()
}

impl HttpMetrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: DurationFamily = Family::new_with_constructor(duration_histogram);
        registry.register(
            "watchpost_http_requests",
            "HTTP requests served, by route template, method and status class",
            requests.clone(),
        );
        registry.register(
            "watchpost_http_request_duration_seconds",
            "Time to the response head, by route template and method",
            durations.clone(),
        );
        let dropped = Counter::default();
        registry.register(
            "watchpost_http_series_dropped",
            "Requests not recorded because the number of route and method series reached its cap",
            dropped.clone(),
        );
        Arc::new(HttpMetrics {
            current: Mutex::default(),
            series: Mutex::default(),
            registry,
            requests,
            durations,
            dropped,
        })
    }

    /// Whether a request of `route` and `method` may be recorded: its series exists or there is room for it.
    fn admit(&self, route: &str, method: &'static str) -> bool {
        let Ok(mut series) = self.series.lock() else {
            return false;
        };
        if series.contains(&(route.to_owned(), method)) {
            return true;
        }
        if series.len() >= MAX_SERIES {
            self.dropped.inc();
            return false;
        }
        series.insert((route.to_owned(), method));
        true
    }

    pub fn record(&self, route: &str, method: &'static str, status: StatusCode, elapsed: Duration) {
        if !self.admit(route, method) {
            return;
        }
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_MICROS);
        if let Ok(mut current) = self.current.lock() {
            let slot = current
                .entry((route.to_owned(), method.to_owned()))
                .or_insert_with(|| Interval {
                    latency: Hdr::new_with_bounds(1, MAX_MICROS, 3)
                        .unwrap_or_else(|_| Hdr::new(3).expect("3 significant figures is valid")),
                    errors: 0,
                });
            let _ = slot.latency.record(micros);
            slot.errors += u64::from(status.is_server_error());
        }
        let class = format!("{}xx", status.as_u16() / 100);
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: class,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The figures of the interval that just ended (of `length`), ending at `t_ms`; starts the next one.
    pub fn finish_interval(&self, t_ms: i64, length: Duration) -> ApiPoint {
        let taken = self
            .current
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        let seconds = length.as_secs_f64().max(1e-3);
        let ms = |h: &Hdr<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let mut all: Option<Hdr<u64>> = None;
        let mut errors = 0;
        let mut routes: Vec<RouteStats> = taken
            .into_iter()
            .map(|((route, method), i)| {
                errors += i.errors;
                match &mut all {
                    Some(all) => {
                        let _ = all.add(&i.latency);
                    }
                    None => all = Some(i.latency.clone()),
                }
                RouteStats {
                    route,
                    method,
                    requests: i.latency.len(),
                    errors: i.errors,
                    rate_per_s: i.latency.len() as f64 / seconds,
                    p50_ms: ms(&i.latency, 0.5),
                    p95_ms: ms(&i.latency, 0.95),
                    p99_ms: ms(&i.latency, 0.99),
                }
            })
            .collect();
        routes.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.route.cmp(&b.route)));
        let requests = all.as_ref().map_or(0, Hdr::len);
        ApiPoint {
            service: OWN_SERVICE.into(),
            t_ms,
            interval_ms: u64::try_from(length.as_millis()).unwrap_or(u64::MAX),
            requests,
            errors,
            rate_per_s: requests as f64 / seconds,
            p50_ms: all.as_ref().map(|h| ms(h, 0.5)),
            p95_ms: all.as_ref().map(|h| ms(h, 0.95)),
            p99_ms: all.as_ref().map(|h| ms(h, 0.99)),
            routes,
            error: None,
            unit: None,
            no_request_metrics: false,
            scrape_ms: None,
            bands: all.as_ref().map(bands).unwrap_or_default(),
        }
    }

    /// The registry of these figures, for `/metrics` to encode in the format the scraper asks for.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Watchpost's own request figures, an interval at a time.
struct Intervals {
    metrics: Arc<HttpMetrics>,
    /// When the current interval began.
    began: Instant,
}

impl Polled for Intervals {
    fn describe(&self) -> Option<String> {
        None
    }

    async fn poll(&mut self) -> Result<Option<Event>, String> {
        let length = self.began.elapsed();
        self.began = Instant::now();
        Ok(Some(Event::Api(
            self.metrics.finish_interval(now_millis(), length),
        )))
    }

    fn failed(&mut self, _: &str) -> Option<Event> {
        None
    }
}

/// Ends an interval every `interval`: publishes its figures (which the history recorder stores).
pub fn spawn_aggregator(
    metrics: Arc<HttpMetrics>,
    interval: Duration,
    outlet: Outlet,
    logs: LogBook,
    tasks: &Tasks,
) {
    let intervals = Intervals {
        metrics,
        began: Instant::now(),
    };
    let schedule = Schedule::every(interval).after_first_interval();
    poll::spawn(intervals, schedule, outlet, logs, tasks);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_reports_quantiles_per_route_and_for_the_service() {
        let m = HttpMetrics::new();
        for ms in 1..=100 {
            m.record("/a", "GET", StatusCode::OK, Duration::from_millis(ms));
        }
        m.record(
            "/b",
            "POST",
            StatusCode::BAD_GATEWAY,
            Duration::from_millis(500),
        );
        let p = m.finish_interval(10_000, Duration::from_secs(10));
        assert_eq!((p.requests, p.errors), (101, 1));
        assert!((p.rate_per_s - 10.1).abs() < 1e-9);
        let a = &p.routes[0];
        assert_eq!((a.route.as_str(), a.requests), ("/a", 100));
        // HDR histograms with 3 significant figures: within 0.1 %.
        assert!((a.p50_ms - 50.0).abs() < 0.1, "{}", a.p50_ms);
        assert!((a.p95_ms - 95.0).abs() < 0.1, "{}", a.p95_ms);
        assert!((a.p99_ms - 99.0).abs() < 0.1, "{}", a.p99_ms);
        assert!(p.p99_ms.unwrap() >= 99.0);
        // The bands history keeps: the /metrics histogram's bounds, the empty ones left out.
        assert_eq!(
            p.bands,
            vec![
                (1.0, 1),
                (2.0, 1),
                (4.0, 2),
                (8.0, 4),
                (16.0, 8),
                (32.0, 16),
                (64.0, 32),
                (128.0, 36),
                (512.0, 1)
            ]
        );
        // The next interval starts empty.
        let next = m.finish_interval(20_000, Duration::from_secs(10));
        assert_eq!(
            (next.requests, next.p50_ms, next.routes.len()),
            (0, None, 0)
        );
        let text = m.encode().unwrap();
        assert!(
            text.contains(
                r#"watchpost_http_requests_total{method="GET",route="/a",status="2xx"} 100"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"status="5xx"} 1"#), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn made_up_methods_share_one_label_and_series_are_capped() {
        let weird = Method::from_bytes(b"XCHECKOUT").unwrap();
        assert_eq!(method_label(&weird), "OTHER");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let m = HttpMetrics::new();
        for i in 0..MAX_SERIES + 50 {
            m.record(
                &format!("/r{i}"),
                "GET",
                StatusCode::OK,
                Duration::from_millis(1),
            );
        }
        let p = m.finish_interval(1, Duration::from_secs(1));
        assert_eq!(p.routes.len(), MAX_SERIES);
        let text = m.encode().unwrap();
        assert!(
            text.contains("watchpost_http_series_dropped_total 50"),
            "{text}"
        );
        // A series already known is still recorded after the cap is reached.
        m.record("/r0", "GET", StatusCode::OK, Duration::from_millis(1));
        assert_eq!(m.finish_interval(2, Duration::from_secs(1)).requests, 1);
    }
}
