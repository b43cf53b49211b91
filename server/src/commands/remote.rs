//! Commands an agent declares for its host, and their runs there.
//!
//! The host decides what may run on it: its agent declares its commands when it opens its stream of orders
//! ([`collect::wire::ORDERS_PATH`]), and the hub offers exactly those for that host. A request is checked on
//! the hub against the declaration (role in the host's environment, target, parameters), recorded and
//! audited as a local run is, and sent down the stream; the agent checks it again against its own file,
//! runs it with the same runner, and reports its output and end, which the hub takes as a local run's come
//! from its process: the same log file, the same chunks on the stream, the same lease on the target.
//!
//! A run needs its agent: with no stream open the request is a 409 at once; when the stream closes while
//! runs are under way (the agent died, the network went) they end Interrupted, and the agent, which has
//! lost the hub, stops them too.

use super::CommandError;
use collect::wire::{MAX_DECLARED_COMMANDS, MAX_REPORT_LINES, Order, Report, RunEnd};
use runner::process::Progress;
use runner::spec::CommandSpec;
use shared::{CommandInfo, RunState};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// An agent holding its stream of orders open.
struct Attached {
    environment: String,
    specs: Vec<CommandSpec>,
    orders: mpsc::UnboundedSender<Order>,
    /// Which of the host's streams this is: a stream replaced by a newer one must not detach the newer.
    epoch: u64,
}

/// A run under way on an agent's host.
struct RemoteRun {
    host: String,
    epoch: u64,
    feed: Arc<tokio::sync::Mutex<Feed>>,
    /// Fired by the run's end when its stream is lost (the feed may be busy with a report then).
    end: Option<oneshot::Sender<RunEnd>>,
}

/// Where a run's reported lines go. One report at a time holds it (a report sent again waits for the
/// first), and it moves on line by line as each is handed over, so a report whose request is dropped half
/// way leaves it where the next one continues.
pub(super) struct Feed {
    progress: mpsc::Sender<Progress>,
    /// The number of the next line the run expects: a report sent again is taken once.
    next_line: u64,
    /// Fired by the agent's first report: it has the order.
    taken: Option<oneshot::Sender<()>>,
    /// Fired by the report that ends the run.
    end: Option<oneshot::Sender<RunEnd>>,
}

/// Every attached agent and every run under way on one.
#[derive(Default)]
pub(super) struct Remote {
    attached: HashMap<String, Attached>,
    /// Each host's last declaration, kept after its agent leaves: who may read a past run's output.
    declared: HashMap<String, Vec<CommandInfo>>,
    runs: HashMap<i64, RemoteRun>,
    next_epoch: u64,
}

/// What a run on an agent's host starts from.
pub(super) struct Dispatch {
    pub spec: CommandSpec,
    pub orders: mpsc::UnboundedSender<Order>,
    pub epoch: u64,
}

/// Checks a declaration as the hub's own configuration is checked; the error is the agent's 400.
pub(super) fn check_declared(declared: Vec<CommandInfo>) -> Result<Vec<CommandSpec>, String> {
    if declared.len() > MAX_DECLARED_COMMANDS {
        return Err(format!(
            "an agent may declare at most {MAX_DECLARED_COMMANDS} commands, not {}",
            declared.len()
        ));
    }
    let mut names = BTreeSet::new();
    let mut specs = Vec::with_capacity(declared.len());
    for info in declared {
        let spec = CommandSpec::declared(info)?;
        if !names.insert(spec.info.name.clone()) {
            return Err(format!("two commands are named '{}'", spec.info.name));
        }
        specs.push(spec);
    }
    Ok(specs)
}

impl Remote {
    /// Attaches `host`'s agent (replacing an older stream of it); its orders come out of the receiver.
    pub(super) fn attach(
        &mut self,
        host: &str,
        environment: &str,
        specs: Vec<CommandSpec>,
    ) -> (u64, mpsc::UnboundedReceiver<Order>) {
        self.next_epoch += 1;
        let epoch = self.next_epoch;
        let (orders, rx) = mpsc::unbounded_channel();
        self.declared.insert(
            host.to_owned(),
            specs.iter().map(|s| s.info.clone()).collect(),
        );
        let replaced = self.attached.insert(
            host.to_owned(),
            Attached {
                environment: environment.to_owned(),
                specs,
                orders,
                epoch,
            },
        );
        if let Some(old) = replaced {
            // The agent opened a new stream: the old one is gone from its side, and its runs with it.
            self.interrupt(host, old.epoch);
        }
        (epoch, rx)
    }

    /// The stream `epoch` of `host` closed: its runs end Interrupted.
    pub(super) fn detach(&mut self, host: &str, epoch: u64) {
        if self.attached.get(host).is_some_and(|a| a.epoch == epoch) {
            self.attached.remove(host);
        }
        self.interrupt(host, epoch);
    }

    fn interrupt(&mut self, host: &str, epoch: u64) {
        for run in self
            .runs
            .values_mut()
            .filter(|r| r.host == host && r.epoch == epoch)
        {
            if let Some(end) = run.end.take() {
                let _ = end.send(RunEnd {
                    state: RunState::Interrupted,
                    exit_code: None,
                    detail: format!("the agent of {host} went away while it ran"),
                });
            }
        }
    }

    /// Where a run of `command` on `host` goes, if the host's agent is attached and declares it.
    pub(super) fn dispatch(
        &self,
        host: &str,
        environment: &str,
        command: &str,
    ) -> Result<Dispatch, CommandError> {
        let attached = self
            .attached
            .get(host)
            .filter(|a| a.environment == environment)
            .ok_or_else(|| CommandError::NotConnected(host.to_owned()))?;
        let spec = attached
            .specs
            .iter()
            .find(|s| s.info.name == command)
            .ok_or_else(|| CommandError::UnknownCommand(command.chars().take(64).collect()))?;
        Ok(Dispatch {
            spec: spec.clone(),
            orders: attached.orders.clone(),
            epoch: attached.epoch,
        })
    }

    #[cfg(test)]
    pub(super) fn is_attached(&self, host: &str) -> bool {
        self.attached.contains_key(host)
    }

    /// What `host` last declared of `command`.
    pub(super) fn declared(&self, host: &str, command: &str) -> Option<&CommandInfo> {
        self.declared
            .get(host)?
            .iter()
            .find(|info| info.name == command)
    }

    /// Registers run `id` before its order goes out, so no report can come before it is expected: the
    /// first report says the agent took it; the end comes from a report, or from the stream's loss.
    pub(super) fn expect(
        &mut self,
        id: i64,
        host: &str,
        epoch: u64,
        progress: mpsc::Sender<Progress>,
    ) -> Expected {
        let (taken, taken_rx) = oneshot::channel();
        let (reported, reported_rx) = oneshot::channel();
        let (lost, lost_rx) = oneshot::channel();
        self.runs.insert(
            id,
            RemoteRun {
                host: host.to_owned(),
                epoch,
                feed: Arc::new(tokio::sync::Mutex::new(Feed {
                    progress,
                    next_line: 0,
                    taken: Some(taken),
                    end: Some(reported),
                })),
                end: Some(lost),
            },
        );
        Expected {
            taken: taken_rx,
            reported: reported_rx,
            lost: lost_rx,
        }
    }

    /// The run is over: its lines stop being taken.
    pub(super) fn forget(&mut self, id: i64) {
        self.runs.remove(&id);
    }

    /// The feed of run `id` if it is `host`'s and under way.
    pub(super) fn feed(
        &self,
        host: &str,
        id: i64,
    ) -> Result<Arc<tokio::sync::Mutex<Feed>>, CommandError> {
        self.runs
            .get(&id)
            .filter(|r| r.host == host)
            .map(|r| r.feed.clone())
            .ok_or(CommandError::NoRun(id))
    }
}

/// What a run on an agent's host waits for.
pub(super) struct Expected {
    pub taken: oneshot::Receiver<()>,
    pub reported: oneshot::Receiver<RunEnd>,
    pub lost: oneshot::Receiver<RunEnd>,
}

impl Feed {
    /// Takes a report: the lines not taken yet, in order, each handed over before the next line counts as
    /// taken; then the end. An end is taken even when lines before it are missing (they were refused or
    /// lost on the way): the run must end.
    pub(super) async fn take(&mut self, id: i64, report: Report) -> Result<(), CommandError> {
        if report.lines.len() > MAX_REPORT_LINES {
            return Err(CommandError::Report(format!(
                "a report carries at most {MAX_REPORT_LINES} lines, not {}",
                report.lines.len()
            )));
        }
        if let Some(taken) = self.taken.take() {
            let _ = taken.send(());
        }
        if report.first > self.next_line {
            if let Some(end) = report.end
                && let Some(tx) = self.end.take()
            {
                tracing::warn!(
                    run = id,
                    missing = report.first - self.next_line,
                    "an agent's run ended with some of its output lines missing"
                );
                let _ = tx.send(end);
                return Ok(());
            }
            return Err(CommandError::Report(format!(
                "lines {} to {} of run {id} are missing: send from line {}",
                self.next_line,
                report.first - 1,
                self.next_line
            )));
        }
        let skip = usize::try_from(self.next_line - report.first).unwrap_or(usize::MAX);
        for line in report.lines.into_iter().skip(skip) {
            if self.progress.send(Progress::Line(line)).await.is_err() {
                // The run is over on the hub already.
                return Err(CommandError::Ended(id));
            }
            self.next_line += 1;
        }
        if let Some(end) = report.end
            && let Some(tx) = self.end.take()
        {
            let _ = tx.send(end);
        }
        Ok(())
    }
}

/// While held, `host`'s agent is attached; dropping it (the stream closed) detaches it.
pub struct Attachment {
    pub(super) commands: super::Commands,
    pub(super) host: String,
    pub(super) epoch: u64,
}

impl Attachment {
    /// Which of the host's streams this is: newer streams have greater numbers.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Ok(mut remote) = self.commands.inner.remote.lock() {
            remote.detach(&self.host, self.epoch);
        }
        tracing::info!(host = %self.host, "the agent's stream of orders closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> shared::OutputLine {
        shared::OutputLine {
            stderr: false,
            text: text.into(),
        }
    }

    fn report(first: u64, lines: &[&str], end: Option<RunState>) -> Report {
        Report {
            first,
            lines: lines.iter().map(|t| line(t)).collect(),
            end: end.map(|state| RunEnd {
                state,
                exit_code: Some(0),
                detail: String::new(),
            }),
        }
    }

    #[tokio::test]
    async fn a_report_sent_again_is_taken_once_and_an_end_is_taken_past_missing_lines() {
        let mut remote = Remote::default();
        let (tx, mut rx) = mpsc::channel(16);
        let mut expected = remote.expect(7, "web-1", 1, tx);
        assert!(
            matches!(remote.feed("db-1", 7), Err(CommandError::NoRun(7))),
            "another host's run"
        );
        let feed = remote.feed("web-1", 7).unwrap();
        feed.lock()
            .await
            .take(7, report(0, &["a", "b"], None))
            .await
            .unwrap();
        assert!(
            expected.taken.try_recv().is_ok(),
            "the first report says the order arrived"
        );
        // Sent again with one more line: only the new one is taken.
        feed.lock()
            .await
            .take(7, report(0, &["a", "b", "c"], None))
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Ok(Progress::Line(l)) = rx.try_recv() {
            got.push(l.text);
        }
        assert_eq!(got, ["a", "b", "c"]);
        // Lines missing and no end: refused, so the agent sends from where the hub is.
        assert!(
            feed.lock()
                .await
                .take(7, report(9, &["j"], None))
                .await
                .is_err()
        );
        // An end past missing lines still ends the run.
        feed.lock()
            .await
            .take(7, report(9, &[], Some(RunState::Succeeded)))
            .await
            .unwrap();
        assert_eq!(
            expected.reported.try_recv().unwrap().state,
            RunState::Succeeded
        );
    }

    #[test]
    fn a_lost_stream_interrupts_its_runs_only() {
        let mut remote = Remote::default();
        let (tx, _rx) = mpsc::channel(16);
        let (epoch, _orders) = remote.attach("web-1", "prod", Vec::new());
        let mut run = remote.expect(1, "web-1", epoch, tx.clone());
        let mut other = remote.expect(2, "db-1", epoch, tx);
        remote.detach("web-1", epoch);
        assert_eq!(run.lost.try_recv().unwrap().state, RunState::Interrupted);
        assert!(other.lost.try_recv().is_err());
        assert!(!remote.is_attached("web-1"));
    }
}
