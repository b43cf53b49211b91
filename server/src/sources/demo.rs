//! `--demo`: a sample workload for a first look, so every panel moves on a fresh install.
//!
//! Nothing here produces a figure for display. A small sample API is served under `/demo/…` (by
//! `http::routes::demo`); the load task here calls it over real HTTP. Its handlers do real work: they query the store, take time, and sometimes fail and
//! log an error. The ordinary sources then measure all of it: the request middleware (API panel), the store's
//! own timings (database panel) and the tracing capture (error log).

use crate::tasks::Tasks;
use std::time::Duration;

/// Requests the load task sends per second, on average.
const REQUESTS_PER_S: f64 = 8.0;

/// Calls the sample API at `base` (this server) until shutdown.
pub fn spawn_load(base: String, tasks: &Tasks) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("cannot start the demo workload: {e}");
            return;
        }
    };
    let shutdown = tasks.token().clone();
    tasks.spawn(async move {
        loop {
            // Exponential gaps: a Poisson stream of requests, as real traffic roughly is.
            let gap = -(1.0 - fastrand::f64()).ln() / REQUESTS_PER_S;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs_f64(gap)) => {}
                () = shutdown.cancelled() => return,
            }
            let request = if fastrand::bool() {
                client.get(format!("{base}/demo/orders"))
            } else {
                client.post(format!("{base}/demo/checkout"))
            };
            // Fire and forget: a slow checkout must not hold back the next request.
            tokio::spawn(async move {
                let _ = request.send().await;
            });
        }
    });
}
