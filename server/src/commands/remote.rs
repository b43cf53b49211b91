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
use tokio::sync::{mpsc, oneshot};

/// An agent holding its stream of orders open.
struct Attached {
    environment: String,
    specs: Vec<CommandSpec>,
    orders: mpsc::UnboundedSender<Order>,
    /// Which of the host's streams this is: a stream replaced by a newer one must not detach the newer.
    epoch: u64,
}

/// A run under way on an agent's host: where its reported lines go, and its end.
struct RemoteRun {
    host: String,
    epoch: u64,
    progress: mpsc::Sender<Progress>,
    /// The number of the next line the run expects: a report sent again is taken once.
    next_line: u64,
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

    /// Registers run `id` before its order goes out, so no report can come before it is expected.
    pub(super) fn expect(
        &mut self,
        id: i64,
        host: &str,
        epoch: u64,
        progress: mpsc::Sender<Progress>,
    ) -> oneshot::Receiver<RunEnd> {
        let (end, ended) = oneshot::channel();
        self.runs.insert(
            id,
            RemoteRun {
                host: host.to_owned(),
                epoch,
                progress,
                next_line: 0,
                end: Some(end),
            },
        );
        ended
    }

    /// The run is over: its lines stop being taken.
    pub(super) fn forget(&mut self, id: i64) {
        self.runs.remove(&id);
    }

    /// Takes a report of `host`'s agent about run `id`: the lines it has not taken yet, in order, and what
    /// to send them to; the end is passed on once the lines are.
    pub(super) fn take(
        &mut self,
        host: &str,
        id: i64,
        report: Report,
    ) -> Result<Taken, CommandError> {
        let run = self
            .runs
            .get_mut(&id)
            .filter(|r| r.host == host)
            .ok_or(CommandError::NoRun(id))?;
        if report.lines.len() > MAX_REPORT_LINES {
            return Err(CommandError::Report(format!(
                "a report carries at most {MAX_REPORT_LINES} lines, not {}",
                report.lines.len()
            )));
        }
        if report.first > run.next_line {
            return Err(CommandError::Report(format!(
                "lines {} to {} of run {id} are missing: send from line {}",
                run.next_line,
                report.first - 1,
                run.next_line
            )));
        }
        let skip = usize::try_from(run.next_line - report.first).unwrap_or(usize::MAX);
        let lines: Vec<_> = report.lines.into_iter().skip(skip).collect();
        run.next_line += lines.len() as u64;
        let end = match report.end {
            Some(end) => run.end.take().map(|tx| (tx, end)),
            None => None,
        };
        Ok(Taken {
            progress: run.progress.clone(),
            lines,
            end,
        })
    }
}

/// A report's new lines and end, to hand over outside the lock.
pub(super) struct Taken {
    progress: mpsc::Sender<Progress>,
    lines: Vec<shared::OutputLine>,
    end: Option<(oneshot::Sender<RunEnd>, RunEnd)>,
}

impl Taken {
    /// The lines to the run's output, in order, then its end.
    pub(super) async fn hand_over(self) {
        for line in self.lines {
            if self.progress.send(Progress::Line(line)).await.is_err() {
                return;
            }
        }
        if let Some((tx, end)) = self.end {
            let _ = tx.send(end);
        }
    }
}

/// While held, `host`'s agent is attached; dropping it (the stream closed) detaches it.
pub struct Attachment {
    pub(super) commands: super::Commands,
    pub(super) host: String,
    pub(super) epoch: u64,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Ok(mut remote) = self.commands.inner.remote.lock() {
            remote.detach(&self.host, self.epoch);
        }
        tracing::info!(host = %self.host, "the agent's stream of orders closed");
    }
}
