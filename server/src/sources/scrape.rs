//! Scrape targets, the second source of the API panel: the Prometheus text exposition (`/metrics`) of the
//! user's services, read every `--api-interval`.
//!
//! From each scrape the request-duration histogram is taken (the first histogram family whose name says it
//! times requests, e.g. `http_request_duration_seconds`), summed per route and method label over its other
//! labels. The difference between two scrapes is the interval's traffic: its count is the request rate, its
//! buckets give p50/p95/p99 by the same linear interpolation as PromQL's `histogram_quantile`. A target that
//! cannot be read is shown as down in its panel and written to the error log once, when it goes down.

use super::poll::{self, Polled, Schedule};
use crate::clock::now_millis;
use crate::logs::LogBook;
use crate::outlet::OWN_SERVICE;
use crate::outlet::Outlet;
use crate::tasks::Tasks;
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{
    HistogramValue, LabelSet, OpenMetricsType, OpenMetricsValue, ParseError, PrometheusType,
    PrometheusValue,
};
use shared::{ApiPoint, Event, RouteStats};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Labels that name the route, in order of preference, and the method.
const ROUTE_LABELS: &[&str] = &["route", "handler", "path", "uri", "endpoint"];
const METHOD_LABELS: &[&str] = &["method", "verb"];
const STATUS_LABELS: &[&str] = &["status", "code", "status_code"];
/// Expositions larger than this are refused: a scrape must stay cheap.
const MAX_BODY_BYTES: usize = 8 << 20;

/// One service to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    pub service: String,
    pub url: String,
    /// Sent as `Authorization: Bearer …`, for endpoints that need one (another Watchpost's `/metrics`).
    pub token: Option<BearerToken>,
}

/// A scrape token, read from a file so that it stays out of the process list and the shell history; its
/// `Debug` hides it, so printing the configuration never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(…)")
    }
}

/// `--scrape-token-file SERVICE=PATH`: the file holding the bearer token of one scrape target.
pub type ScrapeTokenFile = super::NamedFile;

/// Gives each target the token of its file; a file for no target, or one that cannot be read or is empty,
/// is an error that names it.
pub fn attach_tokens(
    targets: &mut [ScrapeTarget],
    files: &[ScrapeTokenFile],
) -> Result<(), String> {
    for file in files {
        let target = targets
            .iter_mut()
            .find(|t| t.service == file.name)
            .ok_or_else(|| format!("'{}' is not a scrape target", file.name))?;
        let text = std::fs::read_to_string(&file.path)
            .map_err(|e| format!("cannot read {}: {e}", file.path.display()))?;
        let token = text.trim();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{} must hold one token on one line",
                file.path.display()
            ));
        }
        target.token = Some(BearerToken(token.to_owned()));
    }
    Ok(())
}

impl std::str::FromStr for ScrapeTarget {
    type Err = String;

    /// `SERVICE=URL`, with an `http://` URL.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (service, url) = s
            .split_once('=')
            .map(|(a, b)| (a.trim(), b.trim()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| format!("'{s}' is not SERVICE=URL"))?;
        if !url.starts_with("http://") {
            return Err(format!(
                "'{url}': only http:// targets can be scraped (no TLS client is built in)"
            ));
        }
        if service == OWN_SERVICE {
            return Err(format!(
                "'{OWN_SERVICE}' is the name of Watchpost's own figures"
            ));
        }
        Ok(ScrapeTarget {
            service: service.to_owned(),
            url: url.to_owned(),
            token: None,
        })
    }
}

/// Cumulative bucket counts (upper bound, count) of one route, and its 5xx count.
#[derive(Debug, Clone, Default, PartialEq)]
struct RouteHistogram {
    buckets: Vec<(f64, f64)>,
    errors: f64,
}

type Histograms = BTreeMap<(String, String), RouteHistogram>;

/// Parses an exposition into per-route cumulative histograms: OpenMetrics text (it ends with `# EOF`, as
/// another Watchpost's `/metrics` does) or the Prometheus text format.
fn histograms(text: &str) -> Result<Histograms, String> {
    let duration_family = |name: &str| {
        let n = name.to_ascii_lowercase();
        n.contains("request")
            && (n.contains("duration") || n.contains("seconds") || n.contains("latency"))
    };
    const NONE: &str =
        "no request-duration histogram (such as http_request_duration_seconds) in the exposition";
    if text.lines().any(|l| l.trim_end() == "# EOF") {
        let exposition =
            parse_openmetrics(text).map_err(|e| format!("not an OpenMetrics exposition: {e:?}"))?;
        let family = exposition
            .families
            .values()
            .filter(|f| {
                f.family_type == OpenMetricsType::Histogram && duration_family(&f.family_name)
            })
            .min_by_key(|f| f.family_name.clone())
            .ok_or(NONE)?;
        per_route(family.iter_samples().filter_map(|s| match &s.value {
            OpenMetricsValue::Histogram(h) => Some((s.get_labelset(), h)),
            _ => None,
        }))
    } else {
        let exposition =
            parse_prometheus(text).map_err(|e| format!("not a Prometheus exposition: {e:?}"))?;
        let family = exposition
            .families
            .values()
            .filter(|f| {
                f.family_type == PrometheusType::Histogram && duration_family(&f.family_name)
            })
            .min_by_key(|f| f.family_name.clone())
            .ok_or(NONE)?;
        per_route(family.iter_samples().filter_map(|s| match &s.value {
            PrometheusValue::Histogram(h) => Some((s.get_labelset(), h)),
            _ => None,
        }))
    }
}

/// Sums a histogram family's samples per route and method.
fn per_route<'a>(
    samples: impl Iterator<Item = (Result<LabelSet<'a>, ParseError>, &'a HistogramValue)>,
) -> Result<Histograms, String> {
    let mut out = Histograms::new();
    for (labels, h) in samples {
        let labels = labels.map_err(|e| format!("{e:?}"))?;
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| labels.get_label_value(n))
                .unwrap_or_default()
                .to_owned()
        };
        let route = Some(first(ROUTE_LABELS))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "(all)".into());
        let entry = out.entry((route, first(METHOD_LABELS))).or_default();
        let mut buckets: Vec<(f64, f64)> = h
            .buckets
            .iter()
            .map(|b| (b.upper_bound, b.count.as_f64()))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last().map_or(0.0, |b| b.1);
        if first(STATUS_LABELS).starts_with('5') {
            entry.errors += total;
        }
        if entry.buckets.is_empty() {
            entry.buckets = buckets;
        } else {
            for (le, count) in buckets {
                match entry.buckets.iter_mut().find(|b| b.0 == le) {
                    Some(b) => b.1 += count,
                    None => entry.buckets.push((le, count)),
                }
            }
            entry.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    Ok(out)
}

/// `now - before`, bucket by bucket; a counter that went down (the service restarted) counts from zero.
fn delta(now: &RouteHistogram, before: Option<&RouteHistogram>) -> RouteHistogram {
    let Some(before) = before else {
        return now.clone();
    };
    let reset = now
        .buckets
        .iter()
        .any(|(le, c)| before.buckets.iter().any(|(l, b)| l == le && b > c));
    if reset {
        return now.clone();
    }
    RouteHistogram {
        buckets: now
            .buckets
            .iter()
            .map(|(le, c)| {
                let b = before
                    .buckets
                    .iter()
                    .find(|(l, _)| l == le)
                    .map_or(0.0, |x| x.1);
                (*le, c - b)
            })
            .collect(),
        errors: (now.errors - before.errors).max(0.0),
    }
}

/// The `q` quantile of cumulative buckets, as PromQL's `histogram_quantile` computes it; `None` without
/// observations.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                // Beyond the highest finite bucket: its bound is all that is known.
                return Some(lower.0);
            }
            let lower_bound = if lower.0 == 0.0 && le <= 0.0 {
                le
            } else {
                lower.0
            };
            let width = count - lower.1;
            return Some(if width <= 0.0 {
                le
            } else {
                lower_bound + (le - lower_bound) * (rank - lower.1) / width
            });
        }
        lower = (le, count);
    }
    None
}

/// The interval's figures from two consecutive scrapes `seconds` apart.
fn point(
    service: &str,
    t_ms: i64,
    seconds: f64,
    now: &Histograms,
    before: &Histograms,
) -> ApiPoint {
    let mut total: Vec<(f64, f64)> = Vec::new();
    let mut errors = 0.0;
    let mut routes = Vec::new();
    for (key, h) in now {
        let d = delta(h, before.get(key));
        let requests = d.buckets.last().map_or(0.0, |b| b.1);
        errors += d.errors;
        for (le, c) in &d.buckets {
            match total.iter_mut().find(|t| t.0 == *le) {
                Some(t) => t.1 += c,
                None => total.push((*le, *c)),
            }
        }
        if requests > 0.0 {
            routes.push(RouteStats {
                route: key.0.clone(),
                method: key.1.clone(),
                requests: requests as u64,
                errors: d.errors as u64,
                rate_per_s: requests / seconds,
                p50_ms: quantile(0.5, &d.buckets).unwrap_or(0.0) * 1000.0,
                p95_ms: quantile(0.95, &d.buckets).unwrap_or(0.0) * 1000.0,
                p99_ms: quantile(0.99, &d.buckets).unwrap_or(0.0) * 1000.0,
            });
        }
    }
    total.sort_by(|a, b| a.0.total_cmp(&b.0));
    routes.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.route.cmp(&b.route)));
    let requests = total.last().map_or(0.0, |b| b.1);
    let ms = |q| quantile(q, &total).map(|v| v * 1000.0);
    ApiPoint {
        service: service.to_owned(),
        t_ms,
        interval_ms: (seconds * 1000.0) as u64,
        requests: requests as u64,
        errors: errors as u64,
        rate_per_s: requests / seconds,
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        routes,
        error: None,
    }
}

/// One scrape target, read by the poll driver.
struct Scraper {
    client: reqwest::Client,
    target: ScrapeTarget,
    interval: Duration,
    /// The previous scrape: the histograms' counts are totals, so an interval's figures are differences.
    last: Option<(Instant, Histograms)>,
}

impl Polled for Scraper {
    fn describe(&self) -> Option<String> {
        Some(format!(
            "scrape target {} ({})",
            self.target.service, self.target.url
        ))
    }

    async fn poll(&mut self) -> Result<Option<Event>, String> {
        let started = Instant::now();
        let now = scrape(&self.client, &self.target).await?;
        let event = self.last.as_ref().map(|(at, before)| {
            let seconds = at.elapsed().as_secs_f64().max(1e-3);
            Event::Api(point(
                &self.target.service,
                now_millis(),
                seconds,
                &now,
                before,
            ))
        });
        tracing::debug!(service = %self.target.service, took = ?started.elapsed(), "scraped");
        self.last = Some((started, now));
        Ok(event)
    }

    fn failed(&mut self, reason: &str) -> Option<Event> {
        self.last = None;
        Some(Event::Api(ApiPoint {
            service: self.target.service.clone(),
            t_ms: now_millis(),
            interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            requests: 0,
            errors: 0,
            rate_per_s: 0.0,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            routes: Vec::new(),
            error: Some(reason.to_owned()),
        }))
    }
}

/// Starts polling every target.
pub fn spawn_scrapers(
    targets: &[ScrapeTarget],
    interval: Duration,
    outlet: Outlet,
    logs: LogBook,
    tasks: &Tasks,
) {
    if targets.is_empty() {
        return;
    }
    let schedule = Schedule::every(interval);
    // Redirects are not followed: the bearer token would go along to wherever the target points, and the
    // target is what the operator named, not where its answer sends us.
    let client = match reqwest::Client::builder()
        .timeout(interval.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("cannot create the scrape client: {e}");
            return;
        }
    };
    for target in targets.iter().cloned() {
        let scraper = Scraper {
            client: client.clone(),
            target,
            interval,
            last: None,
        };
        poll::spawn(scraper, schedule, outlet.clone(), logs.clone(), tasks);
    }
}

async fn scrape(client: &reqwest::Client, target: &ScrapeTarget) -> Result<Histograms, String> {
    let mut request = client.get(&target.url);
    if let Some(BearerToken(token)) = &target.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_connect() {
            "connection refused or unreachable".to_string()
        } else {
            e.to_string()
        }
    })?;
    if response.status().is_redirection() {
        return Err(format!(
            "answered {} (redirects are not followed: give the URL it points to)",
            response.status()
        ));
    }
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let body = read_at_most(response, MAX_BODY_BYTES).await?;
    let text = std::str::from_utf8(&body).map_err(|_| "the exposition is not UTF-8".to_string())?;
    histograms(text)
}

/// The body, read a chunk at a time and abandoned as soon as it passes `limit`, so an endless or huge
/// answer costs at most `limit` bytes of memory.
async fn read_at_most(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let too_big = || format!("the exposition is over {} MiB", limit >> 20);
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(counts: [u64; 4], errors: u64) -> String {
        let [a, b, c, d] = counts;
        format!(
            "# HELP http_request_duration_seconds Request latency.\n\
             # TYPE http_request_duration_seconds histogram\n\
             http_request_duration_seconds_bucket{{route=\"/orders\",method=\"GET\",status=\"200\",le=\"0.1\"}} {a}\n\
             http_request_duration_seconds_bucket{{route=\"/orders\",method=\"GET\",status=\"200\",le=\"0.2\"}} {b}\n\
             http_request_duration_seconds_bucket{{route=\"/orders\",method=\"GET\",status=\"200\",le=\"0.5\"}} {c}\n\
             http_request_duration_seconds_bucket{{route=\"/orders\",method=\"GET\",status=\"200\",le=\"+Inf\"}} {d}\n\
             http_request_duration_seconds_sum{{route=\"/orders\",method=\"GET\",status=\"200\"}} 1\n\
             http_request_duration_seconds_count{{route=\"/orders\",method=\"GET\",status=\"200\"}} {d}\n\
             http_request_duration_seconds_bucket{{route=\"/orders\",method=\"GET\",status=\"503\",le=\"0.1\"}} 0\n\
             http_request_duration_seconds_bucket{{route=\"/orders\",method=\"GET\",status=\"503\",le=\"0.2\"}} 0\n\
             http_request_duration_seconds_bucket{{route=\"/orders\",method=\"GET\",status=\"503\",le=\"0.5\"}} 0\n\
             http_request_duration_seconds_bucket{{route=\"/orders\",method=\"GET\",status=\"503\",le=\"+Inf\"}} {errors}\n\
             http_request_duration_seconds_sum{{route=\"/orders\",method=\"GET\",status=\"503\"}} 9\n\
             http_request_duration_seconds_count{{route=\"/orders\",method=\"GET\",status=\"503\"}} {errors}\n"
        )
    }

    #[test]
    fn quantiles_interpolate_as_histogram_quantile_does() {
        let b = [
            (0.1, 50.0),
            (0.2, 90.0),
            (0.5, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(0.5, &b), Some(0.1));
        assert!((quantile(0.95, &b).unwrap() - 0.35).abs() < 1e-12);
        assert!((quantile(0.99, &b).unwrap() - 0.47).abs() < 1e-12);
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        // Everything slower than the last finite bound: that bound is the answer.
        assert_eq!(
            quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 10.0)]),
            Some(0.1)
        );
    }

    #[test]
    fn two_scrapes_give_the_intervals_rate_quantiles_and_errors() {
        let before = histograms(&exposition([10, 10, 10, 10], 1)).unwrap();
        let now = histograms(&exposition([60, 100, 110, 110], 3)).unwrap();
        let p = point("shop", 1_000, 10.0, &now, &before);
        assert_eq!((p.requests, p.errors), (102, 2));
        assert!((p.rate_per_s - 10.2).abs() < 1e-9);
        let r = &p.routes[0];
        assert_eq!(
            (r.route.as_str(), r.method.as_str(), r.requests),
            ("/orders", "GET", 102)
        );
        // 100 fast ones from status 200 (50 ≤ 0.1 s, 40 ≤ 0.2 s, 10 ≤ 0.5 s) and 2 slow 503s.
        assert!((p.p50_ms.unwrap() - 102.5).abs() < 1e-6, "{:?}", p.p50_ms);
        assert_eq!(p.p99_ms, Some(500.0));
    }

    #[test]
    fn a_counter_reset_counts_from_zero_and_garbage_is_an_error() {
        let before = histograms(&exposition([500, 500, 500, 500], 0)).unwrap();
        let now = histograms(&exposition([5, 5, 5, 5], 0)).unwrap();
        assert_eq!(point("s", 0, 1.0, &now, &before).requests, 5);
        assert!(histograms("this is not prometheus {").is_err());
        let e = histograms("# TYPE up gauge\nup 1\n").unwrap_err();
        assert!(e.contains("no request-duration histogram"), "{e}");
    }

    #[test]
    fn token_files_attach_to_their_target_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("token");
        std::fs::write(&good, "wpt_secret\n").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let file = |s: &str, p: &std::path::Path| -> ScrapeTokenFile {
            format!("{s}={}", p.display()).parse().unwrap()
        };
        let mut targets: Vec<ScrapeTarget> = vec!["shop=http://x/metrics".parse().unwrap()];
        attach_tokens(&mut targets, &[file("shop", &good)]).unwrap();
        assert_eq!(targets[0].token, Some(BearerToken("wpt_secret".to_owned())));
        assert!(!format!("{targets:?}").contains("wpt_secret"));
        let e = attach_tokens(&mut targets, &[file("blog", &good)]).unwrap_err();
        assert!(e.contains("'blog' is not a scrape target"), "{e}");
        let e = attach_tokens(&mut targets, &[file("shop", &empty)]).unwrap_err();
        assert!(e.contains("one token on one line"), "{e}");
        let e = attach_tokens(&mut targets, &[file("shop", &dir.path().join("gone"))]).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn targets_are_service_equals_http_url() {
        let t: ScrapeTarget = "shop=http://10.0.0.5:9100/metrics".parse().unwrap();
        assert_eq!(t.service, "shop");
        assert!("shop".parse::<ScrapeTarget>().is_err());
        assert!("shop=https://x/metrics".parse::<ScrapeTarget>().is_err());
        assert!(
            "watchpost=http://x/metrics"
                .parse::<ScrapeTarget>()
                .is_err()
        );
    }
}
