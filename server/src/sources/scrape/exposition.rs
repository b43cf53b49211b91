//! Reading one scrape: the request figures of a Prometheus or OpenMetrics exposition, per route and method.
//!
//! Both text formats are first read into one neutral form ([`Family`]), so that what is taken from them is
//! decided once: the request-duration histogram (the first histogram family whose name says it times
//! requests), its unit (the OpenMetrics `# UNIT` line, else the name's suffix, else seconds as Prometheus's
//! conventions say), and the 5xx count, from the histogram's status label or, when the histogram has none,
//! from the request counter that carries it (Prometheus's own `prometheus_http_requests_total{code=…}`).
//! Label names follow the Prometheus client libraries and OpenTelemetry's semantic conventions; a target may
//! name its own (`--scrape-label`).

use super::target::{LabelMap, LabelRole};
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{
    HistogramValue, LabelSet, OpenMetricsType, OpenMetricsValue, PrometheusType, PrometheusValue,
};
use shared::LatencyUnit;
use std::collections::{BTreeMap, HashMap};

/// Cumulative bucket counts (upper bound, count) of one route, and its 5xx count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteHistogram {
    pub buckets: Vec<(f64, f64)>,
    pub errors: f64,
}

/// Per (route, method).
pub type Histograms = BTreeMap<(String, String), RouteHistogram>;

/// What one scrape says about requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Requests {
    /// The target times its requests: per-route histograms, in `unit`.
    Timed {
        routes: Histograms,
        unit: LatencyUnit,
    },
    /// The target answered with no request-duration histogram (node_exporter, a database exporter).
    NotMeasured,
}

/// One metric family, whichever format it came in.
struct Family {
    name: String,
    kind: Kind,
    /// The OpenMetrics `# UNIT`, empty when none was given.
    unit: String,
    samples: Vec<(Labels, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Histogram,
    Counter,
    Other,
}

type Labels = Vec<(String, String)>;

enum Value {
    Buckets(Vec<(f64, f64)>),
    Number(f64),
}

/// Reads an exposition: OpenMetrics text (it ends with `# EOF`, as another Watchpost's `/metrics` does when
/// asked for it) or the Prometheus text format.
pub fn read(text: &str, labels: &LabelMap) -> Result<Requests, String> {
    let families = families(text)?;
    let times_requests = |name: &str| {
        let n = name.to_ascii_lowercase();
        (n.contains("request") || n.starts_with("http_server"))
            && (n.contains("duration")
                || n.contains("latency")
                || n.contains("seconds")
                || n.contains("time"))
    };
    let Some(histogram) = families
        .iter()
        .filter(|f| f.kind == Kind::Histogram && times_requests(&f.name))
        .min_by_key(|f| f.name.as_str())
    else {
        return Ok(Requests::NotMeasured);
    };
    let unit = unit_of(&histogram.name, &histogram.unit);
    let mut routes = per_route(histogram, labels);
    let status_in_histogram = histogram
        .samples
        .iter()
        .any(|(l, _)| label(l, labels, LabelRole::Status).is_some());
    if !status_in_histogram {
        errors_from_counter(&families, labels, &mut routes);
    }
    Ok(Requests::Timed { routes, unit })
}

/// A histogram's unit: the `# UNIT` line when there is one, else the name's suffix, else seconds (the unit
/// Prometheus's conventions give a duration).
pub fn unit_of(family: &str, declared: &str) -> LatencyUnit {
    let by_word = |word: &str| match word {
        "milliseconds" | "ms" => Some(LatencyUnit::Milliseconds),
        "microseconds" | "us" => Some(LatencyUnit::Microseconds),
        "seconds" | "s" => Some(LatencyUnit::Seconds),
        _ => None,
    };
    if let Some(unit) = by_word(declared.trim()) {
        return unit;
    }
    let name = family.to_ascii_lowercase();
    let name = name.strip_suffix("_bucket").unwrap_or(&name);
    ["milliseconds", "microseconds", "seconds", "ms", "us"]
        .into_iter()
        .find(|suffix| name.ends_with(&format!("_{suffix}")))
        .and_then(by_word)
        .unwrap_or(LatencyUnit::Seconds)
}

/// The first label of `role` a series carries, in the target's order of preference.
fn label<'a>(series: &'a Labels, map: &LabelMap, role: LabelRole) -> Option<&'a str> {
    map.names(role).find_map(|name| {
        series
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    })
}

fn route_key(series: &Labels, map: &LabelMap) -> (String, String) {
    (
        label(series, map, LabelRole::Route)
            .unwrap_or("(all)")
            .to_owned(),
        label(series, map, LabelRole::Method)
            .unwrap_or_default()
            .to_owned(),
    )
}

fn is_5xx(series: &Labels, map: &LabelMap) -> bool {
    label(series, map, LabelRole::Status).is_some_and(|s| s.starts_with('5'))
}

/// Sums a histogram family's series per route and method, over their other labels.
fn per_route(family: &Family, map: &LabelMap) -> Histograms {
    let mut out = Histograms::new();
    for (series, value) in &family.samples {
        let Value::Buckets(buckets) = value else {
            continue;
        };
        let entry = out.entry(route_key(series, map)).or_default();
        let total = buckets.last().map_or(0.0, |b| b.1);
        if is_5xx(series, map) {
            entry.errors += total;
        }
        for &(le, count) in buckets {
            match entry.buckets.iter_mut().find(|b| b.0 == le) {
                Some(b) => b.1 += count,
                None => entry.buckets.push((le, count)),
            }
        }
        entry.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// 5xx counts from the request counter that carries a status label, given to the histogram's routes: by
/// route and method where the histogram has both, else by route alone; a route the histogram lacks still
/// counts in the service's total.
fn errors_from_counter(families: &[Family], map: &LabelMap, routes: &mut Histograms) {
    let Some(counter) = families
        .iter()
        .filter(|f| {
            f.kind == Kind::Counter
                && f.name.to_ascii_lowercase().contains("request")
                && f.samples
                    .iter()
                    .any(|(l, _)| label(l, map, LabelRole::Status).is_some())
        })
        .min_by_key(|f| f.name.as_str())
    else {
        return;
    };
    for (series, value) in &counter.samples {
        let Value::Number(count) = value else {
            continue;
        };
        if !is_5xx(series, map) {
            continue;
        }
        let (route, method) = route_key(series, map);
        let key = if routes.contains_key(&(route.clone(), method.clone())) {
            (route, method)
        } else {
            routes
                .keys()
                .find(|(r, m)| *r == route && m.is_empty())
                .cloned()
                .unwrap_or((route, method))
        };
        routes.entry(key).or_default().errors += count;
    }
}

/// Both text formats, read into [`Family`]s.
fn families(text: &str) -> Result<Vec<Family>, String> {
    fn labels_of(set: Result<LabelSet<'_>, openmetrics_parser::ParseError>) -> Labels {
        set.map(|s| s.iter().map(|(n, v)| (n.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
    fn buckets(h: &HistogramValue) -> Value {
        let mut b: Vec<(f64, f64)> = h
            .buckets
            .iter()
            .map(|b| (b.upper_bound, b.count.as_f64()))
            .collect();
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        Value::Buckets(b)
    }
    if text.lines().any(|l| l.trim_end() == "# EOF") {
        // openmetrics-parser 0.5 refuses a `# UNIT` line on a histogram, which the OpenMetrics spec allows
        // and which is the very line that says a histogram counts milliseconds: the unit lines are read
        // here and left out of what the parser sees.
        let mut units: HashMap<&str, &str> = HashMap::new();
        let mut rest = String::with_capacity(text.len());
        for line in text.lines() {
            match line.strip_prefix("# UNIT ").map(|u| u.split_whitespace()) {
                Some(mut words) => {
                    if let (Some(family), Some(unit)) = (words.next(), words.next()) {
                        units.insert(family, unit);
                    }
                }
                None => {
                    rest.push_str(line);
                    rest.push('\n');
                }
            }
        }
        let exposition = parse_openmetrics(&rest)
            .map_err(|e| format!("not an OpenMetrics exposition: {e:?}"))?;
        Ok(exposition
            .families
            .values()
            .map(|f| Family {
                name: f.family_name.clone(),
                kind: match f.family_type {
                    OpenMetricsType::Histogram => Kind::Histogram,
                    OpenMetricsType::Counter => Kind::Counter,
                    _ => Kind::Other,
                },
                unit: units
                    .get(f.family_name.as_str())
                    .map_or_else(|| f.unit.clone(), |u| (*u).to_owned()),
                samples: f
                    .iter_samples()
                    .filter_map(|s| {
                        let value = match &s.value {
                            OpenMetricsValue::Histogram(h) => buckets(h),
                            OpenMetricsValue::Counter(c) => Value::Number(c.value.as_f64()),
                            _ => return None,
                        };
                        Some((labels_of(s.get_labelset()), value))
                    })
                    .collect(),
            })
            .collect())
    } else {
        let exposition =
            parse_prometheus(text).map_err(|e| format!("not a Prometheus exposition: {e:?}"))?;
        Ok(exposition
            .families
            .values()
            .map(|f| Family {
                name: f.family_name.clone(),
                kind: match f.family_type {
                    PrometheusType::Histogram => Kind::Histogram,
                    PrometheusType::Counter => Kind::Counter,
                    _ => Kind::Other,
                },
                unit: String::new(),
                samples: f
                    .iter_samples()
                    .filter_map(|s| {
                        let value = match &s.value {
                            PrometheusValue::Histogram(h) => buckets(h),
                            PrometheusValue::Counter(c) => Value::Number(c.value.as_f64()),
                            _ => return None,
                        };
                        Some((labels_of(s.get_labelset()), value))
                    })
                    .collect(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(text: &str) -> (Histograms, LatencyUnit) {
        match read(text, &LabelMap::default()).unwrap() {
            Requests::Timed { routes, unit } => (routes, unit),
            Requests::NotMeasured => panic!("no request histogram found"),
        }
    }

    #[test]
    fn the_unit_comes_from_the_unit_line_or_the_name() {
        assert_eq!(
            unit_of("kong_request_latency_ms", ""),
            LatencyUnit::Milliseconds
        );
        assert_eq!(
            unit_of("x_request_duration_milliseconds", ""),
            LatencyUnit::Milliseconds
        );
        assert_eq!(
            unit_of("x_request_duration_us", ""),
            LatencyUnit::Microseconds
        );
        assert_eq!(
            unit_of("x_request_duration_microseconds", ""),
            LatencyUnit::Microseconds
        );
        assert_eq!(
            unit_of("http_request_duration_seconds", ""),
            LatencyUnit::Seconds
        );
        assert_eq!(unit_of("http_request_duration", ""), LatencyUnit::Seconds);
        assert_eq!(
            unit_of("http_request_duration", "milliseconds"),
            LatencyUnit::Milliseconds
        );
        // `_status` is not `_us`.
        assert_eq!(unit_of("http_request_status", ""), LatencyUnit::Seconds);
    }

    #[test]
    fn opentelemetry_labels_name_route_method_and_status() {
        let text = "# TYPE http_server_request_duration_seconds histogram\n\
            http_server_request_duration_seconds_bucket{http_route=\"/cart\",http_request_method=\"POST\",http_response_status_code=\"503\",le=\"0.1\"} 2\n\
            http_server_request_duration_seconds_bucket{http_route=\"/cart\",http_request_method=\"POST\",http_response_status_code=\"503\",le=\"+Inf\"} 3\n\
            http_server_request_duration_seconds_count{http_route=\"/cart\",http_request_method=\"POST\",http_response_status_code=\"503\"} 3\n\
            http_server_request_duration_seconds_sum{http_route=\"/cart\",http_request_method=\"POST\",http_response_status_code=\"503\"} 0.2\n";
        let (routes, unit) = timed(text);
        assert_eq!(unit, LatencyUnit::Seconds);
        let r = &routes[&("/cart".to_owned(), "POST".to_owned())];
        assert_eq!(r.errors, 3.0);
    }

    #[test]
    fn a_targets_own_label_names_come_first() {
        let text = "# TYPE api_request_duration_seconds histogram\n\
            api_request_duration_seconds_bucket{op=\"getUser\",verb2=\"GET\",rc=\"500\",le=\"+Inf\"} 4\n\
            api_request_duration_seconds_count{op=\"getUser\",verb2=\"GET\",rc=\"500\"} 4\n\
            api_request_duration_seconds_sum{op=\"getUser\",verb2=\"GET\",rc=\"500\"} 1\n";
        let map = LabelMap {
            route: Some("op".into()),
            method: Some("verb2".into()),
            status: Some("rc".into()),
        };
        let Requests::Timed { routes, .. } = read(text, &map).unwrap() else {
            panic!("timed");
        };
        assert_eq!(
            routes[&("getUser".to_owned(), "GET".to_owned())].errors,
            4.0
        );
        let Requests::Timed { routes, .. } = read(text, &LabelMap::default()).unwrap() else {
            panic!("timed");
        };
        assert_eq!(routes[&("(all)".to_owned(), String::new())].errors, 0.0);
    }

    #[test]
    fn errors_come_from_the_counter_when_the_histogram_has_no_status() {
        let text = "# TYPE prometheus_http_request_duration_seconds histogram\n\
            prometheus_http_request_duration_seconds_bucket{handler=\"/api/v1/query\",le=\"0.1\"} 8\n\
            prometheus_http_request_duration_seconds_bucket{handler=\"/api/v1/query\",le=\"+Inf\"} 10\n\
            prometheus_http_request_duration_seconds_sum{handler=\"/api/v1/query\"} 0.5\n\
            prometheus_http_request_duration_seconds_count{handler=\"/api/v1/query\"} 10\n\
            # TYPE prometheus_http_requests_total counter\n\
            prometheus_http_requests_total{code=\"200\",handler=\"/api/v1/query\"} 5\n\
            prometheus_http_requests_total{code=\"503\",handler=\"/api/v1/query\"} 5\n\
            prometheus_http_requests_total{code=\"500\",handler=\"/-/ready\"} 2\n";
        let (routes, _) = timed(text);
        assert_eq!(
            routes[&("/api/v1/query".to_owned(), String::new())].errors,
            5.0
        );
        assert_eq!(routes[&("/-/ready".to_owned(), String::new())].errors, 2.0);
    }

    #[test]
    fn an_exposition_without_request_histograms_is_not_measured() {
        let text = "# TYPE node_load1 gauge\nnode_load1 0.5\n\
            # TYPE node_cpu_seconds_total counter\nnode_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 100\n";
        assert_eq!(
            read(text, &LabelMap::default()).unwrap(),
            Requests::NotMeasured
        );
        assert!(read("this is not prometheus {", &LabelMap::default()).is_err());
    }
}
