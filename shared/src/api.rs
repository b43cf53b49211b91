//! API performance: per service, one point per aggregation interval (latency quantiles and request rate),
//! with the per-route figures behind it.

use serde::{Deserialize, Serialize};

/// Intervals of API figures the live state keeps per service: ten minutes at the default 10 s.
pub const RECENT_API_POINTS: usize = 60;

/// One route's figures over one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteStats {
    /// The route template (`/api/history`), never the raw path, so ids in paths do not explode the list.
    pub route: String,
    pub method: String,
    pub requests: u64,
    /// Responses with a 5xx status.
    pub errors: u64,
    pub rate_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// One service's figures over one interval, all routes together, with the routes beside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiPoint {
    pub service: String,
    /// The end of the interval (Unix ms).
    pub t_ms: i64,
    pub interval_ms: u64,
    pub requests: u64,
    pub errors: u64,
    pub rate_per_s: f64,
    /// Quantiles of every request of the interval; `None` when there were none.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Busiest first.
    pub routes: Vec<RouteStats>,
    /// Why the service could not be measured this interval (a scrape target that is down); `None` when it
    /// was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The unit a scrape target's histogram came in (figures here are always milliseconds), for the panel to
    /// say; `None` for Watchpost's own figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<LatencyUnit>,
    /// The target answered but exposes no request metrics (node_exporter, say): it is up, and it has nothing
    /// for this panel, so it is not the service the panel shows first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_request_metrics: bool,
    /// How long the scrape that gave this point took (ms), exported as `watchpost_scrape_duration_seconds`;
    /// `None` for Watchpost's own figures and for a scrape that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_ms: Option<f64>,
    /// The interval's requests by duration: `(upper bound in ms, requests above the bound before it and
    /// up to this one)`, ascending, bands without requests left out; those above the last bound are
    /// `requests` minus the sum. History keeps them per interval, so a quantile over hours or days is
    /// computed from the pooled distribution (as Prometheus's `histogram_quantile` over `increase()` is),
    /// not averaged from ten-second quantiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<(f64, u64)>,
}

/// The `q`-quantile of a distribution given as bands `(upper bound, count)`, ascending, with `overflow`
/// more above the last bound, interpolated within its band as Prometheus's `histogram_quantile` does: the
/// first band starts at 0, and a quantile in the overflow is the last bound. `None` without requests.
pub fn band_quantile(q: f64, bands: &[(f64, f64)], overflow: f64) -> Option<f64> {
    let total = bands.iter().map(|b| b.1).sum::<f64>() + overflow;
    if total <= 0.0 || bands.is_empty() {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut below = 0.0;
    let mut lower = 0.0;
    for &(upper, count) in bands {
        if count > 0.0 && below + count >= rank {
            return Some(lower + (upper - lower) * ((rank - below) / count));
        }
        below += count;
        lower = upper;
    }
    Some(lower)
}

/// The unit of a request-duration histogram, from the OpenMetrics `# UNIT` line or the name's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyUnit {
    Seconds,
    Milliseconds,
    Microseconds,
}

impl LatencyUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyUnit::Seconds => "seconds",
            LatencyUnit::Milliseconds => "milliseconds",
            LatencyUnit::Microseconds => "microseconds",
        }
    }

    /// Milliseconds in one of this unit.
    pub fn in_ms(self) -> f64 {
        match self {
            LatencyUnit::Seconds => 1000.0,
            LatencyUnit::Milliseconds => 1.0,
            LatencyUnit::Microseconds => 0.001,
        }
    }
}

/// A service as the API panel shows it: its newest points, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceApi {
    pub service: String,
    pub points: Vec<ApiPoint>,
}

impl ServiceApi {
    /// Appends a point in time order, keeping the newest [`RECENT_API_POINTS`]; an older or repeated point
    /// changes nothing.
    pub fn push(&mut self, point: ApiPoint) {
        if self
            .points
            .last()
            .is_some_and(|last| last.t_ms >= point.t_ms)
        {
            return;
        }
        self.points.push(point);
        let excess = self.points.len().saturating_sub(RECENT_API_POINTS);
        self.points.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t_ms: i64) -> ApiPoint {
        ApiPoint {
            service: "watchpost".into(),
            t_ms,
            interval_ms: 10_000,
            requests: 3,
            errors: 0,
            rate_per_s: 0.3,
            p50_ms: Some(1.0),
            p95_ms: Some(2.0),
            p99_ms: Some(3.0),
            routes: Vec::new(),
            error: None,
            unit: None,
            no_request_metrics: false,
            scrape_ms: None,
            bands: Vec::new(),
        }
    }

    #[test]
    fn points_append_in_order_and_stay_bounded() {
        let mut s = ServiceApi {
            service: "watchpost".into(),
            points: Vec::new(),
        };
        for t in 0..100 {
            s.push(point(t));
        }
        s.push(point(50));
        assert_eq!(s.points.len(), RECENT_API_POINTS);
        assert_eq!(s.points.first().unwrap().t_ms, 40);
        assert_eq!(s.points.last().unwrap().t_ms, 99);
    }
}
