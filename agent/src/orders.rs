//! The hub's stream of orders: the agent declares its host's commands (`--commands`) when it opens the
//! stream, and runs what the hub sends down it with the hub's own runner — no shell, a cleared environment,
//! the command's timeout, a process group of its own — reporting each run's output and end back.
//!
//! The host decides what may run on it: an order is checked again against this agent's own file, whatever
//! the hub checked. A run belongs to the stream it came on: when the stream is lost (the hub restarted, the
//! network went), the hub ends its runs as Interrupted, so the agent stops them too rather than leave
//! programs running that nobody sees.

use crate::config::Config;
use crate::pace::Pace;
use crate::push::{self, PushSetupError, Timeout, backoff, error_text, reason};
use collect::wire::{Hello, MAX_REPORT_LINES, ORDERS_PATH, Order, RUN_PATH, Report, RunEnd};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::StatusCode;
use runner::process::{self, Progress};
use runner::spec::CommandSpec;
use shared::{OutputLine, RunState};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The hub sends a comment at least every 15 s: this long without a byte, the stream is dead.
const STREAM_SILENCE: Duration = Duration::from_secs(45);
/// A report may take this long.
const REPORT_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a run's buffered lines are reported.
const REPORT_EVERY: Duration = Duration::from_millis(100);
/// How long a report is retried before the run is given up (the hub has ended it by then).
const REPORT_PATIENCE: Duration = Duration::from_secs(60);
/// The most output text one report carries: escaped as JSON (a control character takes six bytes) it stays
/// well under the hub's limit for a report.
const REPORT_TEXT_BYTES: usize = 512 * 1024;
/// How long the agent, stopping, waits for its runs to be stopped and their ends reported.
const STOP_PATIENCE: Duration = Duration::from_secs(5);

/// How the stream stands, so that each change is logged once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    Open,
    Away(String),
    Refused(StatusCode),
    Rejected(String),
}

/// A run under way: how to stop it, and who asked.
struct Running {
    cancel: CancellationToken,
    by: Arc<Mutex<Option<String>>>,
}

pub struct Orders {
    /// Every run under way, so that the agent stopping waits for them to stop.
    jobs: TaskTracker,
    stream_client: reqwest::Client,
    client: reqwest::Client,
    orders_url: reqwest::Url,
    runs_url: reqwest::Url,
    token: String,
    name: String,
    commands: Arc<Vec<CommandSpec>>,
    /// The sampling interval, which the hub may set.
    pace: Pace,
}

impl Orders {
    pub fn new(config: &Config, pace: Pace) -> Result<Orders, PushSetupError> {
        let url = |path: &str| {
            config
                .hub
                .join(path)
                .map_err(|e| PushSetupError::Url(config.hub.to_string(), e.to_string()))
        };
        Ok(Orders {
            jobs: TaskTracker::new(),
            stream_client: push::client(config, Timeout::BetweenReads(STREAM_SILENCE))?,
            client: push::client(config, Timeout::Whole(REPORT_TIMEOUT))?,
            orders_url: url(ORDERS_PATH)?,
            runs_url: url(&format!("{RUN_PATH}/"))?,
            token: config.token.clone(),
            name: config.name.clone(),
            commands: Arc::new(config.commands.clone()),
            pace,
        })
    }

    /// Holds the stream open (reconnecting with jittered backoff) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut link = Link::Open;
        let mut failures = 0u32;
        loop {
            // Runs of this stream stop when it is lost.
            let lost = shutdown.child_token();
            let outcome = self.listen(&lost, &mut link, &mut failures).await;
            lost.cancel();
            if shutdown.is_cancelled() {
                // The runs stop with the stream; their ends are reported while the hub may still listen.
                self.jobs.close();
                let _ = tokio::time::timeout(STOP_PATIENCE, self.jobs.wait()).await;
                return;
            }
            if outcome != link {
                match &outcome {
                    Link::Away(why) => tracing::warn!(
                        "the hub's stream of orders is closed ({why}); commands cannot run here until it is back"
                    ),
                    Link::Refused(status) => tracing::error!(
                        "the hub refused this agent's stream of orders ({status}); retrying every minute"
                    ),
                    Link::Rejected(why) => tracing::error!(
                        "the hub rejected this agent's commands: {why}; mend --commands, retrying every minute"
                    ),
                    Link::Open => {}
                }
                link = outcome.clone();
            }
            failures = failures.saturating_add(1);
            let wait = match outcome {
                Link::Refused(_) | Link::Rejected(_) => push::REFUSED_BACKOFF,
                _ => backoff(failures),
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Opens the stream and follows it until it ends; how it ended.
    async fn listen(&self, lost: &CancellationToken, link: &mut Link, failures: &mut u32) -> Link {
        let hello = Hello {
            agent: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            commands: self.commands.iter().map(|s| s.info.clone()).collect(),
        };
        let answer = match self
            .stream_client
            .post(self.orders_url.clone())
            .bearer_auth(&self.token)
            .json(&hello)
            .send()
            .await
        {
            Ok(answer) => answer,
            Err(e) => return Link::Away(reason(&e)),
        };
        let status = answer.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Link::Refused(status);
        }
        if status.is_client_error() {
            return Link::Rejected(format!("{status}: {}", error_text(answer).await));
        }
        if !status.is_success() {
            return Link::Away(format!("HTTP {status}"));
        }
        if *link != Link::Open {
            tracing::info!(
                commands = self.commands.len(),
                "the hub's stream of orders is open again"
            );
            *link = Link::Open;
        }
        *failures = 0;
        let running: Arc<Mutex<HashMap<i64, Running>>> = Arc::default();
        let mut events = answer.bytes_stream().eventsource();
        let ended = loop {
            let event = tokio::select! {
                () = lost.cancelled() => break Link::Open,
                event = events.next() => event,
            };
            match event {
                None => break Link::Away("the hub closed it".into()),
                Some(Err(e)) => break Link::Away(format!("{e}")),
                Some(Ok(event)) if event.event == "order" => {
                    match serde_json::from_str::<Order>(&event.data) {
                        Ok(order) => self.take(order, &running, lost),
                        Err(e) => tracing::warn!("an order this agent cannot read: {e}"),
                    }
                }
                Some(Ok(_)) => {}
            }
        };
        // The runs of a lost stream stop (the hub has ended them).
        let under_way = std::mem::take(&mut *running.lock().unwrap_or_else(|p| p.into_inner()));
        if !under_way.is_empty() {
            tracing::warn!(
                runs = under_way.len(),
                "stopping the commands under way: the hub's stream of orders is lost"
            );
        }
        ended
    }

    fn take(
        &self,
        order: Order,
        running: &Arc<Mutex<HashMap<i64, Running>>>,
        lost: &CancellationToken,
    ) {
        match order {
            Order::Configure { interval_ms } => match self.pace.configure(interval_ms) {
                Ok(Some((was, is))) => tracing::info!(
                    was = %humantime::format_duration(was),
                    "sampling every {} from now on{}",
                    humantime::format_duration(is),
                    if interval_ms.is_some() {
                        ", as the hub set"
                    } else {
                        " (this agent's own --interval)"
                    }
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!("{e}; sampling on as before"),
            },
            Order::Cancel { run, by } => {
                if let Some(r) = running.lock().unwrap_or_else(|p| p.into_inner()).get(&run) {
                    *r.by.lock().unwrap_or_else(|p| p.into_inner()) = Some(by);
                    r.cancel.cancel();
                }
            }
            Order::Run {
                run,
                command,
                target,
                params,
            } => {
                let cancel = CancellationToken::new();
                let by = Arc::new(Mutex::new(None));
                running.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    run,
                    Running {
                        cancel: cancel.clone(),
                        by: by.clone(),
                    },
                );
                let job = Job {
                    reporter: Reporter {
                        client: self.client.clone(),
                        url: self.runs_url.join(&run.to_string()).ok(),
                        token: self.token.clone(),
                        run,
                        sent: 0,
                    },
                    spec: self
                        .commands
                        .iter()
                        .find(|s| s.info.name == command)
                        .cloned(),
                    command,
                    target,
                    params,
                    cancel,
                    by,
                    lost: lost.clone(),
                };
                let running = running.clone();
                self.jobs.spawn(async move {
                    job.run().await;
                    running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&run);
                });
            }
        }
    }
}

/// One run ordered by the hub.
struct Job {
    reporter: Reporter,
    spec: Option<CommandSpec>,
    command: String,
    target: String,
    params: BTreeMap<String, String>,
    cancel: CancellationToken,
    by: Arc<Mutex<Option<String>>>,
    lost: CancellationToken,
}

impl Job {
    async fn run(mut self) {
        let Some(spec) = self.spec.take() else {
            let end = failed(format!(
                "this host declares no command '{}'",
                self.command.chars().take(64).collect::<String>()
            ));
            self.reporter.end(Vec::new(), end).await;
            return;
        };
        // The host's own check: whatever the hub checked, this file decides.
        let argv = match spec.argv(&self.target, &self.params) {
            Ok(argv) => argv,
            Err(e) => {
                self.reporter.end(Vec::new(), failed(e.to_string())).await;
                return;
            }
        };
        tracing::info!(run = self.reporter.run, command = %spec.info.name, target = %self.target, "running a command the hub ordered");
        // The first report tells the hub the order arrived (a hub that hears nothing ends the run).
        if !self.reporter.send(Vec::new(), None).await {
            return;
        }
        let (tx, mut rx) = mpsc::channel::<Progress>(1024);
        let program = process::run(
            &spec.program,
            &argv,
            spec.timeout,
            &self.cancel,
            &self.lost,
            tx,
        );
        let reporter = &mut self.reporter;
        let cancel = &self.cancel;
        let report = async move {
            let mut pending: Vec<OutputLine> = Vec::new();
            let mut pending_bytes = 0usize;
            let mut tick = tokio::time::interval(REPORT_EVERY);
            loop {
                tokio::select! {
                    progress = rx.recv() => match progress {
                        Some(Progress::Line(line)) => {
                            pending_bytes += line.text.len();
                            pending.push(line);
                            if (pending.len() >= MAX_REPORT_LINES || pending_bytes >= REPORT_TEXT_BYTES)
                                && !reporter.lines(std::mem::take(&mut pending)).await
                            {
                                cancel.cancel();
                            }
                            if pending.is_empty() {
                                pending_bytes = 0;
                            }
                        }
                        Some(Progress::Started) => {}
                        None => break,
                    },
                    _ = tick.tick() => {
                        if !pending.is_empty() && !reporter.lines(std::mem::take(&mut pending)).await {
                            // The hub no longer takes this run: it is over there, so it stops here.
                            cancel.cancel();
                        }
                        pending_bytes = 0;
                    }
                }
            }
            pending
        };
        let (exit, rest) = tokio::join!(program, report);
        let by = self.by.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (state, exit_code, detail) = process::describe(
            exit,
            spec.timeout,
            by,
            "the agent lost the hub's stream of orders while it ran",
        );
        tracing::info!(
            run = self.reporter.run,
            state = state.as_str(),
            detail,
            "the command ended"
        );
        self.reporter
            .end(
                rest,
                RunEnd {
                    state,
                    exit_code,
                    detail,
                },
            )
            .await;
    }
}

/// `lines` cut into reports of at most [`MAX_REPORT_LINES`] lines and about [`REPORT_TEXT_BYTES`] of text.
fn reports(lines: Vec<OutputLine>) -> Vec<Vec<OutputLine>> {
    let mut out = Vec::new();
    let (mut current, mut bytes) = (Vec::new(), 0usize);
    for line in lines {
        if !current.is_empty()
            && (current.len() >= MAX_REPORT_LINES || bytes + line.text.len() > REPORT_TEXT_BYTES)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += line.text.len();
        current.push(line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn failed(detail: String) -> RunEnd {
    RunEnd {
        state: RunState::Failed,
        exit_code: None,
        detail,
    }
}

/// Sends a run's reports to the hub, in order, each retried until the hub takes it.
struct Reporter {
    client: reqwest::Client,
    url: Option<reqwest::Url>,
    token: String,
    run: i64,
    /// Lines the hub has taken.
    sent: u64,
}

impl Reporter {
    /// Reports `lines`; false when the hub no longer takes reports of this run.
    async fn lines(&mut self, lines: Vec<OutputLine>) -> bool {
        for chunk in reports(lines) {
            if !self.send(chunk, None).await {
                return false;
            }
        }
        true
    }

    /// Reports the last lines and the end; the end alone when some lines could not be sent (the hub takes
    /// an end however many lines it missed).
    async fn end(&mut self, lines: Vec<OutputLine>, end: RunEnd) {
        let mut chunks = reports(lines);
        let last = chunks.pop().unwrap_or_default();
        for chunk in chunks {
            if !self.send(chunk, None).await {
                self.send(Vec::new(), Some(end)).await;
                return;
            }
        }
        if !self.send(last, Some(end.clone())).await {
            self.send(Vec::new(), Some(end)).await;
        }
    }

    /// One report, retried with backoff for [`REPORT_PATIENCE`]; false when the hub refuses it for good.
    async fn send(&mut self, lines: Vec<OutputLine>, end: Option<RunEnd>) -> bool {
        let Some(url) = self.url.clone() else {
            return false;
        };
        let count = lines.len() as u64;
        let report = Report {
            first: self.sent,
            lines,
            end,
        };
        let give_up = tokio::time::Instant::now() + REPORT_PATIENCE;
        let mut failures = 0u32;
        loop {
            let answer = self
                .client
                .post(url.clone())
                .bearer_auth(&self.token)
                .json(&report)
                .send()
                .await;
            match answer {
                Ok(a) if a.status().is_success() => {
                    self.sent += count;
                    return true;
                }
                Ok(a) if a.status().is_client_error() => {
                    let status = a.status();
                    tracing::warn!(
                        run = self.run,
                        "the hub no longer takes this run's output ({status}: {})",
                        error_text(a).await
                    );
                    return false;
                }
                Ok(_) | Err(_) if tokio::time::Instant::now() >= give_up => {
                    tracing::warn!(
                        run = self.run,
                        "cannot report this run to the hub; giving it up"
                    );
                    return false;
                }
                Ok(_) | Err(_) => {
                    failures = failures.saturating_add(1);
                    tokio::time::sleep(backoff(failures).min(Duration::from_secs(5))).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_into_reports_by_lines_and_by_bytes() {
        let line = |n: usize| OutputLine {
            stderr: false,
            text: "x".repeat(n),
        };
        let many: Vec<OutputLine> = (0..1_200).map(|_| line(1)).collect();
        let cut = reports(many);
        assert_eq!(
            cut.iter().map(Vec::len).collect::<Vec<_>>(),
            [500, 500, 200]
        );
        // 16 KiB lines: a report holds 32 of them, not 500.
        let long: Vec<OutputLine> = (0..100).map(|_| line(16 * 1024)).collect();
        let cut = reports(long);
        assert!(
            cut.iter()
                .all(|r| r.iter().map(|l| l.text.len()).sum::<usize>() <= REPORT_TEXT_BYTES)
        );
        assert_eq!(cut.iter().map(Vec::len).sum::<usize>(), 100);
        assert!(reports(Vec::new()).is_empty());
    }
}
