//! How often the agent samples: its own `--interval`, until the hub sets another down the stream of orders
//! ([`collect::wire::Order::Configure`]). The collector thread takes the change at once, and every push
//! says the interval it samples at, so the hub judges the host stale by the interval in force.

use collect::host::Pacer;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Cheap to clone.
#[derive(Clone)]
pub struct Pace {
    own: Duration,
    now_ms: Arc<AtomicU64>,
    pacer: Option<Pacer>,
}

impl Pace {
    /// The agent's own interval, in force until the hub says otherwise; `pacer` moves the collector.
    pub fn new(own: Duration, pacer: Option<Pacer>) -> Pace {
        Pace {
            own,
            now_ms: Arc::new(AtomicU64::new(millis(own))),
            pacer,
        }
    }

    /// The interval in force.
    pub fn get(&self) -> Duration {
        Duration::from_millis(self.now_ms.load(Ordering::Relaxed))
    }

    /// Applies the hub's setting (`None`: the agent's own again). `Ok(Some((was, is)))` when the interval
    /// changed; an interval the hub may not set is refused, and the one in force kept.
    pub fn configure(
        &self,
        interval_ms: Option<u64>,
    ) -> Result<Option<(Duration, Duration)>, String> {
        let is = match interval_ms {
            None => self.own,
            Some(ms)
                if (shared::MIN_SET_INTERVAL_MS..=shared::MAX_SET_INTERVAL_MS).contains(&ms) =>
            {
                Duration::from_millis(ms)
            }
            Some(ms) => {
                return Err(format!(
                    "the hub asked for an interval of {ms} ms, outside {}–{} ms",
                    shared::MIN_SET_INTERVAL_MS,
                    shared::MAX_SET_INTERVAL_MS
                ));
            }
        };
        let was = Duration::from_millis(self.now_ms.swap(millis(is), Ordering::Relaxed));
        if was == is {
            return Ok(None);
        }
        if let Some(pacer) = &self.pacer {
            pacer.set(is);
        }
        Ok(Some((was, is)))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hubs_interval_holds_until_cleared_and_a_wrong_one_is_refused() {
        let pace = Pace::new(Duration::from_secs(1), None);
        assert_eq!(
            pace.configure(Some(5_000)),
            Ok(Some((Duration::from_secs(1), Duration::from_secs(5))))
        );
        assert_eq!(pace.get(), Duration::from_secs(5));
        assert_eq!(pace.configure(Some(5_000)), Ok(None), "no change, no line");
        assert!(pace.configure(Some(10)).is_err());
        assert!(pace.configure(Some(7_200_000)).is_err());
        assert_eq!(pace.get(), Duration::from_secs(5), "kept");
        assert_eq!(
            pace.configure(None),
            Ok(Some((Duration::from_secs(5), Duration::from_secs(1))))
        );
    }
}
