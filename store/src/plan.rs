//! Which tier answers a history query, and how its points are grouped so a chart gets at most
//! [`MAX_POINTS`] of them.

use shared::{HistoryPoint, MAX_POINTS, Tier};
use std::time::Duration;

/// How long each tier keeps its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub second: Duration,
    pub minute: Duration,
    pub hour: Duration,
    /// Error-log entries.
    pub logs: Duration,
    /// Security alerts (failed sign-ins, lockouts, invalid tokens: rows that requests without an account
    /// can cause).
    pub security: Duration,
    /// Security alerts kept at most, the newest, whatever their age: a flood from many addresses stays
    /// bounded within `security`.
    pub security_max: u64,
}

impl Default for Retention {
    /// Netdata's defaults, roughly: a day of seconds, a month of minutes, a year of hours.
    fn default() -> Self {
        Retention {
            second: Duration::from_secs(24 * 3600),
            minute: Duration::from_secs(30 * 24 * 3600),
            hour: Duration::from_secs(365 * 24 * 3600),
            logs: Duration::from_secs(30 * 24 * 3600),
            security: Duration::from_secs(90 * 24 * 3600),
            security_max: 100_000,
        }
    }
}

impl Retention {
    pub fn of(&self, tier: Tier) -> Duration {
        match tier {
            Tier::Second => self.second,
            Tier::Minute => self.minute,
            Tier::Hour => self.hour,
        }
    }

    /// Entries older than this (Unix ms) are pruned at `now_ms`.
    pub fn logs_cutoff(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(i64::try_from(self.logs.as_millis()).unwrap_or(i64::MAX))
    }

    /// Security alerts older than this (Unix ms) are pruned at `now_ms`.
    pub fn security_cutoff(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(i64::try_from(self.security.as_millis()).unwrap_or(i64::MAX))
    }

    /// Points of `tier` older than this (Unix ms) are pruned at `now_ms`.
    pub fn cutoff(&self, tier: Tier, now_ms: i64) -> i64 {
        now_ms.saturating_sub(i64::try_from(self.of(tier).as_millis()).unwrap_or(i64::MAX))
    }
}

/// The tier to read and the width of one returned point for `[from_ms, to_ms)` at `now_ms`: the coarsest tier
/// that still gives about [`MAX_POINTS`] points, or a coarser one when the finer tier's retention does not
/// reach back to `from_ms`.
pub fn plan(from_ms: i64, to_ms: i64, now_ms: i64, retention: &Retention) -> (Tier, i64) {
    let span = to_ms.saturating_sub(from_ms).max(1);
    let wanted = ceil_div(span, MAX_POINTS);
    let mut tier = Tier::ALL
        .into_iter()
        .rev()
        .find(|t| t.resolution_ms() <= wanted)
        .unwrap_or(Tier::Second);
    while from_ms < retention.cutoff(tier, now_ms) {
        match coarser(tier) {
            Some(next) => tier = next,
            None => break,
        }
    }
    let res = tier.resolution_ms();
    (tier, ceil_div(wanted, res).max(1) * res)
}

/// `a / b` rounded up, for `b > 0` (the signed `div_ceil` is not stable).
pub(crate) fn ceil_div(a: i64, b: i64) -> i64 {
    -(-a).div_euclid(b)
}

fn coarser(tier: Tier) -> Option<Tier> {
    match tier {
        Tier::Second => Some(Tier::Minute),
        Tier::Minute => Some(Tier::Hour),
        Tier::Hour => None,
    }
}

/// Groups points (in time order) into buckets aligned to multiples of `step_ms`, merging each bucket's points
/// into one: min of minima, max of maxima, count-weighted average, summed count.
pub fn bucket(points: impl IntoIterator<Item = HistoryPoint>, step_ms: i64) -> Vec<HistoryPoint> {
    let step = step_ms.max(1);
    let mut out: Vec<HistoryPoint> = Vec::new();
    for p in points {
        let start = p.t_ms.div_euclid(step) * step;
        match out.last_mut() {
            Some(last) if last.t_ms == start => last.merge(&p),
            _ => out.push(HistoryPoint { t_ms: start, ..p }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn each_preset_range_reads_the_tier_a_person_would_expect() {
        let r = Retention::default();
        let cases = [
            (HOUR, Tier::Second, 4_000),
            (6 * HOUR, Tier::Second, 22_000),
            (24 * HOUR, Tier::Minute, 120_000),
            (7 * 24 * HOUR, Tier::Minute, 660_000),
            (30 * 24 * HOUR, Tier::Minute, 2_640_000),
            (90 * 24 * HOUR, Tier::Hour, 10_800_000),
        ];
        for (span, tier, step) in cases {
            let (t, s) = plan(NOW - span, NOW, NOW, &r);
            assert_eq!((t, s), (tier, step), "span {span}");
            assert!(span / s <= MAX_POINTS, "span {span}: {} points", span / s);
        }
    }

    #[test]
    fn a_range_older_than_a_tiers_retention_reads_a_coarser_tier() {
        let r = Retention::default();
        // An hour, a week ago: seconds are kept for a day only.
        let from = NOW - 7 * 24 * HOUR;
        assert_eq!(plan(from, from + HOUR, NOW, &r).0, Tier::Minute);
        // Exactly at the cutoff the finer tier still has it.
        let from = NOW - 24 * HOUR;
        assert_eq!(plan(from, from + HOUR, NOW, &r).0, Tier::Second);
        assert_eq!(plan(from - 1, from + HOUR, NOW, &r).0, Tier::Minute);
    }

    #[test]
    fn buckets_align_to_the_step_and_merge_exactly() {
        let points = [
            HistoryPoint::single(1_000, 1.0),
            HistoryPoint::single(2_000, 5.0),
            HistoryPoint::single(3_999, 3.0),
            HistoryPoint::single(4_000, 10.0),
        ];
        let b = bucket(points, 4_000);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].t_ms, b[0].min, b[0].max, b[0].avg, b[0].count),
            (0, 1.0, 5.0, 3.0, 3)
        );
        assert_eq!(
            (b[1].t_ms, b[1].min, b[1].max, b[1].avg, b[1].count),
            (4_000, 10.0, 10.0, 10.0, 1)
        );
    }
}
