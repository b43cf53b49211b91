//! Calls and total time per kind of store operation since start, for the database panel: kept the same way
//! by both engines, so the panel reads the same figures whichever store runs.

use crate::OperationStats;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Timings {
    by_kind: Mutex<BTreeMap<&'static str, (u64, Duration)>>,
}

/// Adds the time from its creation to its drop to the figures for its kind.
pub(crate) struct Timed<'a> {
    timings: &'a Timings,
    kind: &'static str,
    started: Instant,
}

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        if let Ok(mut by_kind) = self.timings.by_kind.lock() {
            let entry = by_kind.entry(self.kind).or_default();
            entry.0 += 1;
            entry.1 += self.started.elapsed();
        }
    }
}

impl Timings {
    pub(crate) fn start(&self, kind: &'static str) -> Timed<'_> {
        Timed {
            timings: self,
            kind,
            started: Instant::now(),
        }
    }

    pub(crate) fn operations(&self) -> Vec<OperationStats> {
        self.by_kind
            .lock()
            .map(|t| {
                t.iter()
                    .map(|(kind, (calls, total))| OperationStats {
                        kind,
                        calls: *calls,
                        total: *total,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
