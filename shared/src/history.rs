//! Metric history: the series Watchpost stores, the time ranges a chart can ask for, and the points it gets
//! back. Parsed once at the edge (query string, URL) into these types; everything behind works with them.

use crate::HostHealth;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A metric kept in history: a host reading, an API figure of a service, or a database target's figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Cpu,
    Memory,
    Disk,
    Swap,
    Load1,
    NetRx,
    NetTx,
    HttpP50Ms,
    HttpP95Ms,
    HttpP99Ms,
    HttpRequestsPerS,
    DbConnections,
    DbTps,
    DbCacheHitPct,
}

/// What one series of a metric is about: the label that tells it from the metric's other series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// A host, by name (`host=`).
    Host,
    /// A service whose requests are measured (`service=`).
    Service,
    /// A database target from configuration, or `store` (`target=`).
    Target,
}

impl Subject {
    pub const ALL: [Subject; 3] = [Subject::Host, Subject::Service, Subject::Target];

    /// The label in a series name, and the query parameter that names the subject.
    pub fn label(self) -> &'static str {
        match self {
            Subject::Host => "host",
            Subject::Service => "service",
            Subject::Target => "target",
        }
    }
}

/// How a metric's values read, which decides a chart's axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Percent,
    Millis,
    PerSecond,
    Bytes,
    Count,
}

impl Metric {
    /// The metrics a host reading carries, in the order the recorder writes them.
    pub const HOST: [Metric; 7] = [
        Metric::Cpu,
        Metric::Memory,
        Metric::Disk,
        Metric::Swap,
        Metric::Load1,
        Metric::NetRx,
        Metric::NetTx,
    ];

    pub const ALL: [Metric; 14] = [
        Metric::Cpu,
        Metric::Memory,
        Metric::Disk,
        Metric::Swap,
        Metric::Load1,
        Metric::NetRx,
        Metric::NetTx,
        Metric::HttpP50Ms,
        Metric::HttpP95Ms,
        Metric::HttpP99Ms,
        Metric::HttpRequestsPerS,
        Metric::DbConnections,
        Metric::DbTps,
        Metric::DbCacheHitPct,
    ];

    /// The name in URLs, the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::Disk => "disk",
            Metric::Swap => "swap",
            Metric::Load1 => "load1",
            Metric::NetRx => "net_rx",
            Metric::NetTx => "net_tx",
            Metric::HttpP50Ms => "http_p50_ms",
            Metric::HttpP95Ms => "http_p95_ms",
            Metric::HttpP99Ms => "http_p99_ms",
            Metric::HttpRequestsPerS => "http_requests_per_s",
            Metric::DbConnections => "db_connections",
            Metric::DbTps => "db_tps",
            Metric::DbCacheHitPct => "db_cache_hit_pct",
        }
    }

    /// What a chart legend says.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Cpu => "CPU %",
            Metric::Memory => "Memory %",
            Metric::Disk => "Disk % (fullest mount)",
            Metric::Swap => "Swap %",
            Metric::Load1 => "Load (1 min)",
            Metric::NetRx => "Network receive (B/s)",
            Metric::NetTx => "Network transmit (B/s)",
            Metric::HttpP50Ms => "p50",
            Metric::HttpP95Ms => "p95",
            Metric::HttpP99Ms => "p99",
            Metric::HttpRequestsPerS => "requests/s",
            Metric::DbConnections => "connections",
            Metric::DbTps => "transactions/s",
            Metric::DbCacheHitPct => "cache hit %",
        }
    }

    /// Which label tells this metric's series apart.
    pub fn subject(self) -> Subject {
        match self {
            Metric::Cpu
            | Metric::Memory
            | Metric::Disk
            | Metric::Swap
            | Metric::Load1
            | Metric::NetRx
            | Metric::NetTx => Subject::Host,
            Metric::HttpP50Ms
            | Metric::HttpP95Ms
            | Metric::HttpP99Ms
            | Metric::HttpRequestsPerS => Subject::Service,
            Metric::DbConnections | Metric::DbTps | Metric::DbCacheHitPct => Subject::Target,
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Metric::Cpu | Metric::Memory | Metric::Disk | Metric::Swap | Metric::DbCacheHitPct => {
                Unit::Percent
            }
            Metric::NetRx | Metric::NetTx => Unit::Bytes,
            Metric::HttpP50Ms | Metric::HttpP95Ms | Metric::HttpP99Ms => Unit::Millis,
            Metric::HttpRequestsPerS | Metric::DbTps => Unit::PerSecond,
            Metric::Load1 | Metric::DbConnections => Unit::Count,
        }
    }

    /// Storage precision. A reading is rounded to a multiple of this before it is stored: finer digits are
    /// measurement noise (CPU time is counted in 10 ms ticks, the kernel prints load with two decimals), and
    /// dropping them is what lets the per-second tier stay near one byte per sample. Netdata stores 32-bit
    /// numbers for the same reason. Latencies keep microseconds, rates thousandths.
    pub fn quantum(self) -> f64 {
        match self {
            Metric::Cpu
            | Metric::Memory
            | Metric::Disk
            | Metric::Swap
            | Metric::Load1
            | Metric::DbTps
            | Metric::DbCacheHitPct => 0.01,
            Metric::NetRx | Metric::NetTx | Metric::DbConnections => 1.0,
            Metric::HttpP50Ms
            | Metric::HttpP95Ms
            | Metric::HttpP99Ms
            | Metric::HttpRequestsPerS => 0.001,
        }
    }

    /// This host metric's value in a reading; `None` for metrics that are not host readings.
    pub fn read(self, h: &HostHealth) -> Option<f64> {
        Some(match self {
            Metric::Cpu => f64::from(h.cpu_pct),
            Metric::Memory => f64::from(h.mem_pct()),
            Metric::Disk => f64::from(h.disk_pct()),
            Metric::Swap => f64::from(h.swap.pct()),
            Metric::Load1 => h.load.one,
            Metric::NetRx => h.net.rx_bytes_per_s,
            Metric::NetTx => h.net.tx_bytes_per_s,
            _ => return None,
        })
    }

    /// The reading rounded to the storage precision.
    pub fn quantize(self, value: f64) -> f64 {
        let q = self.quantum();
        (value / q).round() * q
    }

    /// Every metric's name, for error messages.
    pub fn names() -> String {
        Metric::ALL.map(Metric::as_str).join(", ")
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric '{0}'; known metrics: {known}", known = Metric::names())]
pub struct UnknownMetric(pub String);

impl FromStr for Metric {
    type Err = UnknownMetric;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMetric(s.chars().take(64).collect()))
    }
}

/// The storage tiers, finest first. Each keeps min, max, average and count per point, so a one-second spike
/// is still visible as a maximum in an hourly point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Second,
    Minute,
    Hour,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Second, Tier::Minute, Tier::Hour];

    /// The time one point covers.
    pub fn resolution_ms(self) -> i64 {
        match self {
            Tier::Second => 1_000,
            Tier::Minute => 60_000,
            Tier::Hour => 3_600_000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Second => "second",
            Tier::Minute => "minute",
            Tier::Hour => "hour",
        }
    }
}

/// One point of a series: the aggregate of the `count` readings taken in `[t_ms, t_ms + step)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub t_ms: i64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub count: u32,
}

impl HistoryPoint {
    /// A point holding one reading.
    pub fn single(t_ms: i64, value: f64) -> Self {
        HistoryPoint {
            t_ms,
            min: value,
            max: value,
            avg: value,
            count: 1,
        }
    }

    /// Folds `other` into this point: min of mins, max of maxes, count-weighted average.
    pub fn merge(&mut self, other: &HistoryPoint) {
        let total = u64::from(self.count) + u64::from(other.count);
        if total == 0 {
            return;
        }
        self.avg =
            (self.avg * f64::from(self.count) + other.avg * f64::from(other.count)) / total as f64;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count = u32::try_from(total).unwrap_or(u32::MAX);
    }
}

/// Points read back for a chart, at most about [`MAX_POINTS`] of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistorySeries {
    pub metric: Metric,
    /// The host, service or database target (as `metric.subject()` says) the series is of.
    pub subject: String,
    /// The tier the points were read from.
    pub tier: Tier,
    /// Each point covers this long (a multiple of the tier's resolution).
    pub step_ms: i64,
    pub from_ms: i64,
    pub to_ms: i64,
    pub points: Vec<HistoryPoint>,
}

/// The most points a history query returns per series: more than a chart can show side by side.
pub const MAX_POINTS: i64 = 1000;

/// The time range a chart shows: a window ending now, or fixed bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TimeRange {
    /// The last five minutes, from the live stream only.
    #[default]
    Live,
    Hour,
    SixHours,
    Day,
    Week,
    Month,
    /// Fixed bounds in Unix ms, `from_ms < to_ms`.
    Custom {
        from_ms: i64,
        to_ms: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error(
        "unknown range '{0}'; use live, 1h, 6h, 24h, 7d, 30d, or from and to in Unix milliseconds"
    )]
    Unknown(String),
    #[error("a custom range needs both from and to (Unix milliseconds)")]
    Incomplete,
    #[error("'{0}' is not a time in Unix milliseconds")]
    NotATime(String),
    #[error("the range must start before it ends")]
    Backwards,
    #[error("the range may span at most 5 years")]
    TooLong,
}

/// Five years: longer custom ranges are a typo, not a question.
const MAX_SPAN_MS: i64 = 5 * 366 * 24 * 3_600_000;

impl TimeRange {
    /// The named ranges, in the order the picker shows them.
    pub const PRESETS: [TimeRange; 6] = [
        TimeRange::Live,
        TimeRange::Hour,
        TimeRange::SixHours,
        TimeRange::Day,
        TimeRange::Week,
        TimeRange::Month,
    ];

    /// Parses the URL or query-string form: `range=1h`, or `from` and `to` for a custom range.
    pub fn parse(
        range: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<TimeRange, RangeError> {
        let time = |s: &str| {
            s.trim()
                .parse::<i64>()
                .ok()
                .filter(|t| *t >= 0)
                .ok_or_else(|| RangeError::NotATime(s.chars().take(32).collect()))
        };
        match (range, from, to) {
            (None | Some("custom"), Some(from), Some(to)) => {
                TimeRange::custom(time(from)?, time(to)?)
            }
            (Some("custom"), _, _) | (None, Some(_), None) | (None, None, Some(_)) => {
                Err(RangeError::Incomplete)
            }
            (None, None, None) => Ok(TimeRange::Live),
            (Some(name), _, _) => TimeRange::PRESETS
                .into_iter()
                .find(|r| r.name() == name)
                .ok_or_else(|| RangeError::Unknown(name.chars().take(32).collect())),
        }
    }

    pub fn custom(from_ms: i64, to_ms: i64) -> Result<TimeRange, RangeError> {
        if from_ms < 0 {
            return Err(RangeError::NotATime(from_ms.to_string()));
        }
        if from_ms >= to_ms {
            return Err(RangeError::Backwards);
        }
        if to_ms.saturating_sub(from_ms) > MAX_SPAN_MS {
            return Err(RangeError::TooLong);
        }
        Ok(TimeRange::Custom { from_ms, to_ms })
    }

    /// The `range=` value; `custom` for fixed bounds.
    pub fn name(self) -> &'static str {
        match self {
            TimeRange::Live => "live",
            TimeRange::Hour => "1h",
            TimeRange::SixHours => "6h",
            TimeRange::Day => "24h",
            TimeRange::Week => "7d",
            TimeRange::Month => "30d",
            TimeRange::Custom { .. } => "custom",
        }
    }

    /// What the picker and chart titles say.
    pub fn label(self) -> &'static str {
        match self {
            TimeRange::Live => "Live (5 min)",
            TimeRange::Hour => "1 hour",
            TimeRange::SixHours => "6 hours",
            TimeRange::Day => "24 hours",
            TimeRange::Week => "7 days",
            TimeRange::Month => "30 days",
            TimeRange::Custom { .. } => "Custom",
        }
    }

    /// The query string that selects this range (without `?`).
    pub fn to_query(self) -> String {
        match self {
            TimeRange::Custom { from_ms, to_ms } => format!("from={from_ms}&to={to_ms}"),
            other => format!("range={}", other.name()),
        }
    }

    /// Whether the window ends now and so keeps taking live points.
    pub fn follows_now(self) -> bool {
        !matches!(self, TimeRange::Custom { .. })
    }

    /// The bounds in Unix ms at `now_ms`.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        let back = |ms: i64| (now_ms - ms, now_ms);
        match self {
            TimeRange::Live => back(crate::RECENT_WINDOW_MS),
            TimeRange::Hour => back(3_600_000),
            TimeRange::SixHours => back(6 * 3_600_000),
            TimeRange::Day => back(24 * 3_600_000),
            TimeRange::Week => back(7 * 24 * 3_600_000),
            TimeRange::Month => back(30 * 24 * 3_600_000),
            TimeRange::Custom { from_ms, to_ms } => (from_ms, to_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_round_trip_and_unknown_names_are_errors() {
        for m in Metric::ALL {
            assert_eq!(m.as_str().parse::<Metric>().unwrap(), m);
        }
        let e = "cpux".parse::<Metric>().unwrap_err();
        assert!(e.to_string().contains("cpux") && e.to_string().contains("memory"));
        assert!(e.to_string().contains("http_p95_ms"));
        assert!(Metric::HOST.iter().all(|m| m.subject() == Subject::Host));
        assert_eq!(Metric::DbTps.subject().label(), "target");
    }

    #[test]
    fn quantizing_rounds_to_the_storage_precision() {
        assert_eq!(Metric::Cpu.quantize(12.3456), 12.35);
        assert_eq!(Metric::NetRx.quantize(1023.6), 1024.0);
        assert!((Metric::HttpP95Ms.quantize(12.345_67) - 12.346).abs() < 1e-9);
    }

    #[test]
    fn ranges_parse_from_the_url_forms() {
        assert_eq!(TimeRange::parse(None, None, None), Ok(TimeRange::Live));
        assert_eq!(
            TimeRange::parse(Some("24h"), None, None),
            Ok(TimeRange::Day)
        );
        assert_eq!(
            TimeRange::parse(None, Some("1000"), Some("2000")),
            Ok(TimeRange::Custom {
                from_ms: 1000,
                to_ms: 2000
            })
        );
        assert_eq!(
            TimeRange::parse(Some("2h"), None, None),
            Err(RangeError::Unknown("2h".into()))
        );
        assert_eq!(
            TimeRange::parse(None, Some("1000"), None),
            Err(RangeError::Incomplete)
        );
        assert_eq!(
            TimeRange::parse(None, Some("2000"), Some("1000")),
            Err(RangeError::Backwards)
        );
        assert!(matches!(
            TimeRange::parse(None, Some("x"), Some("1")),
            Err(RangeError::NotATime(_))
        ));
        assert!(TimeRange::custom(i64::MIN, 1).is_err());
        assert_eq!(TimeRange::custom(0, i64::MAX), Err(RangeError::TooLong));
        for r in TimeRange::PRESETS {
            let q = r.to_query();
            let name = q.strip_prefix("range=").unwrap();
            assert_eq!(TimeRange::parse(Some(name), None, None), Ok(r));
        }
    }

    #[test]
    fn merging_points_keeps_extremes_and_weights_the_average() {
        let mut p = HistoryPoint::single(0, 1.0);
        p.merge(&HistoryPoint {
            t_ms: 1000,
            min: 0.5,
            max: 9.0,
            avg: 4.0,
            count: 3,
        });
        assert_eq!((p.min, p.max, p.avg, p.count), (0.5, 9.0, 3.25, 4));
    }
}
