//! The one driver of every polled source, as vector's `http_client` poller is: it owns the schedule, the
//! timeout, shutdown and outage reporting, so a new polled source is one `impl Polled` and a line in
//! startup. A source only says how to read once, and what to publish when a read fails.

use crate::logs::LogBook;
use crate::outlet::Outlet;
use crate::tasks::Tasks;
use shared::{Event, Level};
use std::future::Future;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// A source read on a schedule.
pub trait Polled: Send + 'static {
    /// How the error log names what is polled, e.g. `scrape target shop (http://…)`; `None` for one of
    /// Watchpost's own figures, which cannot be "down".
    fn describe(&self) -> Option<String>;

    /// Reads once: the event to publish (`None` when there is nothing yet, such as a first scrape that
    /// only sets the baseline), or why the target could not be read.
    fn poll(&mut self) -> impl Future<Output = Result<Option<Event>, String>> + Send;

    /// What to publish when a read failed or timed out (the panel shows the reason).
    fn failed(&mut self, reason: &str) -> Option<Event>;
}

/// When a source is read.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub every: Duration,
    /// Read at once on start, or first after one interval (a reading that covers an interval, such as a
    /// rate, has nothing to say sooner).
    pub at_start: bool,
    /// A read taking longer is abandoned and counts as a failure. A backstop against a read that hangs:
    /// sources keep their own, tighter limits (the scrape client's timeout, the database pool's), whose
    /// messages say more.
    pub timeout: Duration,
}

/// The least a read may take before the driver abandons it.
const MIN_BACKSTOP: Duration = Duration::from_secs(30);

impl Schedule {
    /// Every `every`, at once on start; a read is abandoned after three intervals, and no sooner than
    /// [`MIN_BACKSTOP`].
    pub fn every(every: Duration) -> Self {
        Schedule {
            every,
            at_start: true,
            timeout: (every * 3).max(MIN_BACKSTOP),
        }
    }

    /// As [`Schedule::every`], the first read one interval after start.
    pub fn after_first_interval(self) -> Self {
        Schedule {
            at_start: false,
            ..self
        }
    }
}

/// Reads `source` on `schedule` until `shutdown`, publishing what it reads on `outlet`.
pub fn spawn<P: Polled>(
    mut source: P,
    schedule: Schedule,
    outlet: Outlet,
    logs: LogBook,
    tasks: &Tasks,
) {
    let shutdown = tasks.token().clone();
    tasks.spawn(async move {
        let start = tokio::time::Instant::now();
        let first = if schedule.at_start {
            start
        } else {
            start + schedule.every
        };
        let mut ticks = tokio::time::interval_at(first, schedule.every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut outage = source.describe().map(Outage::new);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let read = tokio::select! {
                read = tokio::time::timeout(schedule.timeout, source.poll()) => read,
                () = shutdown.cancelled() => return,
            };
            let result = read.unwrap_or_else(|_| {
                Err(format!(
                    "no answer within {}",
                    humantime::format_duration(schedule.timeout)
                ))
            });
            let event = match result {
                Ok(event) => {
                    if let Some(outage) = &mut outage {
                        outage.up(&logs).await;
                    }
                    event
                }
                Err(reason) => {
                    if let Some(outage) = &mut outage {
                        outage.down(&logs, &reason).await;
                    }
                    source.failed(&reason)
                }
            };
            if let Some(event) = event {
                outlet.emit(None, event);
            }
        }
    });
}

/// Whether a polled source is down, so that its going down and its coming back are each written to the
/// error log once, not on every failed poll.
struct Outage {
    /// How the log names the source, e.g. `scrape target shop (http://…)`.
    what: String,
    down: Option<String>,
}

impl Outage {
    fn new(what: String) -> Self {
        Outage { what, down: None }
    }

    /// A poll succeeded.
    async fn up(&mut self, logs: &LogBook) {
        if let Some(was) = self.down.take() {
            let message = format!("{} is back after: {was}", self.what);
            logs.own(Level::Info, message).await;
        }
    }

    /// A poll failed for `reason`.
    async fn down(&mut self, logs: &LogBook, reason: &str) {
        if self.down.is_none() {
            let message = format!("{} is down: {reason}", self.what);
            logs.own(Level::Error, message).await;
        }
        self.down = Some(reason.to_owned());
    }
}
