//! The server's long-lived tasks (the recorder, the alert engine, notification delivery, polled sources,
//! command runs…): spawned on one tracker and told to stop by one token, so shutdown reaches every one of
//! them and `Application::run` waits for them to finish — the recorder's last batch, a run's end recorded —
//! within the shutdown grace, instead of the runtime dropping them mid-write.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Tasks {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    pub fn new() -> Self {
        Tasks::default()
    }

    /// Runs `task`; shutdown waits for it to end.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Resolves once shutdown is asked for: a task's cue to finish what it holds and return.
    pub fn stopping(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// The token that asks for shutdown, for what needs it as a value (streams, a run's process).
    pub fn token(&self) -> &CancellationToken {
        &self.stop
    }

    /// Asks every task to stop (if nothing has yet) and waits up to `grace` for them; `false` when some
    /// were still running then.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn stopping_waits_for_a_task_to_finish_what_it_holds() {
        let tasks = Tasks::new();
        let finished = Arc::new(AtomicBool::new(false));
        let (t, done) = (tasks.clone(), finished.clone());
        tasks.spawn(async move {
            t.stopping().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            done.store(true, Ordering::SeqCst);
        });
        assert!(tasks.stop(Duration::from_secs(5)).await);
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_task_that_ignores_shutdown_is_given_up_on_after_the_grace() {
        let tasks = Tasks::new();
        tasks.spawn(std::future::pending());
        assert!(!tasks.stop(Duration::from_millis(20)).await);
    }
}
