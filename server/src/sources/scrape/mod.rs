//! Scrape targets, the second source of the API panel: the Prometheus or OpenMetrics text exposition
//! (`/metrics`) of the user's services, over http or https, read every `--api-interval`.
//!
//! Each scrape's request figures are read per route and method ([`exposition`]). The difference between
//! two scrapes is the interval's traffic: its count is the request rate, its buckets give p50/p95/p99 by the
//! same linear interpolation as PromQL's `histogram_quantile`, converted to milliseconds from the unit the
//! target exposed. A target that answers without request metrics is up with nothing for this panel; one
//! that cannot be read is shown as down in its panel and written to the error log once, when it goes down.

mod exposition;
mod target;

pub use target::{ScrapeCaFile, ScrapeLabel, ScrapeTarget, ScrapeTokenFile, TargetOptions, attach};

use super::poll::{self, Polled, Schedule};
use crate::clock::now_millis;
use crate::logs::LogBook;
use crate::outlet::Outlet;
use crate::tasks::Tasks;
use exposition::{Histograms, Requests, RouteHistogram};
use shared::{ApiPoint, Event, LatencyUnit, RouteStats};
use std::time::{Duration, Instant};
use target::BearerToken;

/// Expositions larger than this are refused: a scrape must stay cheap.
const MAX_BODY_BYTES: usize = 8 << 20;

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

/// The interval's figures from two consecutive scrapes `seconds` apart, in milliseconds from `unit`.
fn point(
    service: &str,
    t_ms: i64,
    seconds: f64,
    (now, before): (&Histograms, &Histograms),
    unit: LatencyUnit,
) -> ApiPoint {
    let mut total: Vec<(f64, f64)> = Vec::new();
    let mut errors = 0.0;
    let mut routes = Vec::new();
    let to_ms = unit.in_ms();
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
                p50_ms: quantile(0.5, &d.buckets).unwrap_or(0.0) * to_ms,
                p95_ms: quantile(0.95, &d.buckets).unwrap_or(0.0) * to_ms,
                p99_ms: quantile(0.99, &d.buckets).unwrap_or(0.0) * to_ms,
            });
        }
    }
    total.sort_by(|a, b| a.0.total_cmp(&b.0));
    routes.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.route.cmp(&b.route)));
    let requests = total.last().map_or(0.0, |b| b.1);
    let ms = |q| quantile(q, &total).map(|v| v * to_ms);
    // Cumulative counts become the bands history pools.
    let mut below = 0.0;
    let bands = total
        .iter()
        .filter(|(le, _)| le.is_finite())
        .filter_map(|&(le, count)| {
            let n = (count - below).max(0.0).round() as u64;
            below = below.max(count);
            (n > 0).then_some((le * to_ms, n))
        })
        .collect();
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
        unit: Some(unit),
        no_request_metrics: false,
        scrape_ms: None,
        bands,
    }
}

/// A point with no figures: the target is down (`error`), or up without request metrics.
fn empty_point(service: &str, interval: Duration, error: Option<String>) -> ApiPoint {
    ApiPoint {
        service: service.to_owned(),
        t_ms: now_millis(),
        interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        requests: 0,
        errors: 0,
        rate_per_s: 0.0,
        p50_ms: None,
        p95_ms: None,
        p99_ms: None,
        routes: Vec::new(),
        no_request_metrics: error.is_none(),
        error,
        unit: None,
        scrape_ms: None,
        bands: Vec::new(),
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
        let requests = scrape(&self.client, &self.target).await?;
        let took = started.elapsed();
        tracing::debug!(service = %self.target.service, ?took, "scraped");
        let scrape_ms = Some(took.as_secs_f64() * 1000.0);
        let (now, unit) = match requests {
            Requests::Timed { routes, unit } => (routes, unit),
            Requests::NotMeasured => {
                self.last = None;
                return Ok(Some(Event::Api(ApiPoint {
                    scrape_ms,
                    ..empty_point(&self.target.service, self.interval, None)
                })));
            }
        };
        let event = self.last.as_ref().map(|(at, before)| {
            let seconds = at.elapsed().as_secs_f64().max(1e-3);
            Event::Api(ApiPoint {
                scrape_ms,
                ..point(
                    &self.target.service,
                    now_millis(),
                    seconds,
                    (&now, before),
                    unit,
                )
            })
        });
        self.last = Some((started, now));
        Ok(event)
    }

    fn failed(&mut self, reason: &str) -> Option<Event> {
        self.last = None;
        Some(Event::Api(empty_point(
            &self.target.service,
            self.interval,
            Some(reason.to_owned()),
        )))
    }
}

/// The client for one target: certificates verified against the public web roots (and the target's own CA
/// file, if it has one), never a redirect followed (the bearer token would go along to wherever the target
/// points; the target is what the operator named, not where its answer sends us).
fn client_for(target: &ScrapeTarget, interval: Duration) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("watchpost/", env!("CARGO_PKG_VERSION")))
        .timeout(interval.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .https_only(target.url.starts_with("https://"));
    if let Some(ca) = &target.ca {
        builder = ca.trusted_by(builder);
    }
    builder
        .build()
        .map_err(|e| format!("cannot create the scrape client: {e}"))
}

/// Starts polling every target.
pub fn spawn_scrapers(
    targets: &[ScrapeTarget],
    interval: Duration,
    outlet: Outlet,
    logs: LogBook,
    tasks: &Tasks,
) {
    let schedule = Schedule::every(interval);
    for target in targets.iter().cloned() {
        let client = match client_for(&target, interval) {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(service = %target.service, "{e}");
                continue;
            }
        };
        let scraper = Scraper {
            client,
            target,
            interval,
            last: None,
        };
        poll::spawn(scraper, schedule, outlet.clone(), logs.clone(), tasks);
    }
}

/// What a scrape asks for, as Prometheus does: OpenMetrics first (it carries `# UNIT`), the classic text
/// format otherwise.
const ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.9,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

async fn scrape(client: &reqwest::Client, target: &ScrapeTarget) -> Result<Requests, String> {
    let mut request = client
        .get(&target.url)
        .header(reqwest::header::ACCEPT, ACCEPT);
    if let Some(BearerToken(token)) = &target.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_connect() {
            // The TLS handshake is part of connecting: say why it failed (an unknown issuer, a name that
            // does not match), not just that it did.
            let mut reason = String::from("connection refused or unreachable");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let text = s.to_string();
                if text.contains("certificate") || text.contains("tls") || text.contains("TLS") {
                    reason = format!("TLS: {text}");
                    break;
                }
                source = s.source();
            }
            reason
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
    exposition::read(text, &target.labels)
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

    fn histograms(text: &str) -> Histograms {
        match exposition::read(text, &target::LabelMap::default()).unwrap() {
            Requests::Timed { routes, .. } => routes,
            Requests::NotMeasured => panic!("no request histogram"),
        }
    }

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
        let before = histograms(&exposition([10, 10, 10, 10], 1));
        let now = histograms(&exposition([60, 100, 110, 110], 3));
        let p = point("shop", 1_000, 10.0, (&now, &before), LatencyUnit::Seconds);
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
        // The bands history keeps, in ms; the two above the last bound are `requests` minus their sum.
        assert_eq!(p.bands, vec![(100.0, 50), (200.0, 40), (500.0, 10)]);
    }

    #[test]
    fn a_counter_reset_counts_from_zero_and_garbage_is_an_error() {
        let before = histograms(&exposition([500, 500, 500, 500], 0));
        let now = histograms(&exposition([5, 5, 5, 5], 0));
        let p = point("s", 0, 1.0, (&now, &before), LatencyUnit::Seconds);
        assert_eq!(p.requests, 5);
    }

    #[test]
    fn milliseconds_stay_milliseconds() {
        // Kong's style: the same buckets in milliseconds; 27.5 ms reads as 27.5, not 27,500.
        let ms = |counts: [u64; 2]| {
            format!(
                "# TYPE kong_request_latency_ms histogram\n\
                 kong_request_latency_ms_bucket{{route=\"/a\",le=\"25\"}} {}\n\
                 kong_request_latency_ms_bucket{{route=\"/a\",le=\"30\"}} {}\n\
                 kong_request_latency_ms_bucket{{route=\"/a\",le=\"+Inf\"}} {}\n\
                 kong_request_latency_ms_count{{route=\"/a\"}} {}\n\
                 kong_request_latency_ms_sum{{route=\"/a\"}} 1\n",
                counts[0], counts[1], counts[1], counts[1]
            )
        };
        let Requests::Timed {
            routes: before,
            unit,
        } = exposition::read(&ms([0, 0]), &target::LabelMap::default()).unwrap()
        else {
            panic!("timed")
        };
        let Requests::Timed { routes: now, .. } =
            exposition::read(&ms([25, 100]), &target::LabelMap::default()).unwrap()
        else {
            panic!("timed")
        };
        assert_eq!(unit, LatencyUnit::Milliseconds);
        let p = point("kong", 0, 10.0, (&now, &before), unit);
        // Rank 50 of 100: 25 in the first bucket, 25 of the 75 in (25, 30].
        assert!(
            (p.p50_ms.unwrap() - 26.666_666).abs() < 1e-3,
            "{:?}",
            p.p50_ms
        );
        assert_eq!(p.unit, Some(LatencyUnit::Milliseconds));
    }
}
