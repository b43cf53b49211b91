//! Configured commands: checked requests become audited runs of a program, whose progress and output stream
//! to every tab that may see them.
//!
//! A run: the permission table (role × action × target) and the parameters are checked; an exclusive
//! command reserves its target (a second run there is a 409 naming who runs what); the audit entry and the
//! run are written; the program starts without a shell, in a process group of its own; its lines go to the
//! run's log file and, up to a cap, onto the stream; it ends as Succeeded, Failed, TimedOut (the whole group
//! killed), Cancelled (by an operator) or, found at the next start after Watchpost died, Interrupted.

pub mod output;
pub mod process;
pub mod spec;

use crate::audit::AuditLog;
use crate::clock::now_millis;
use crate::deploy::DeployBook;
use crate::lease::{Holder, Lease, Leases};
use crate::outlet::Outlet;
use crate::tasks::Tasks;
use output::{LogFile, STREAM_MAX_BYTES, STREAM_MAX_LINES, log_path};
use process::{Ending, Exit, Progress};
use shared::{
    Action, Caller, CommandRun, Event, OutputChunk, OutputLine, OutputPage, RECENT_RUNS, Refused,
    Role, RunState, Target,
};
use spec::{CommandSpec, ParamError};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{NewRun, RunEnd, StoreError};
use tokio_util::sync::CancellationToken;

/// How often buffered output lines go out as one chunk.
const CHUNK_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("there is no command '{0}'")]
    UnknownCommand(String),
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("{0}")]
    Forbidden(Refused),
    #[error("{target} is busy: {actor} is running {command} there (started {started})")]
    Busy {
        target: String,
        actor: String,
        command: String,
        started: String,
    },
    #[error("there is no run {0}")]
    NoRun(i64),
    #[error("run {0} has ended already")]
    Ended(i64),
    #[error("the audit trail cannot be written, so nothing ran: {0}")]
    Store(#[from] StoreError),
    #[error("the run's output cannot be read: {0}")]
    Output(std::io::Error),
    #[error("{0}")]
    Internal(String),
}

struct Live {
    run: CommandRun,
    cancel: CancellationToken,
    cancelled_by: Option<String>,
    /// The exclusive target's lease, given back when the run ends.
    lease: Option<Lease>,
}

#[derive(Default)]
struct Running {
    runs: HashMap<i64, Live>,
}

struct Inner {
    specs: Vec<CommandSpec>,
    audit: AuditLog,
    /// Where deploy commands' runs report their deployment.
    deploys: DeployBook,
    outlet: Outlet,
    /// Where the runs' log files are.
    dir: PathBuf,
    running: Mutex<Running>,
    /// Who runs a command on an exclusive target now.
    leases: Arc<dyn Leases>,
    /// Runs are tasks of the server: shutdown stops their programs and waits for their ends to be recorded.
    tasks: Tasks,
}

/// A run checked and about to be recorded and started.
struct Starting {
    spec: CommandSpec,
    caller: Caller,
    target: String,
    params: BTreeMap<String, String>,
    argv: Vec<String>,
    started_ms: i64,
    /// The exclusive target's lease, when the command has one.
    lease: Option<Lease>,
}

/// Where runs' output is written, and how long it is kept.
pub struct RunLogs {
    pub dir: PathBuf,
    pub keep: Duration,
}

/// The command runner. Cheap to clone.
#[derive(Clone)]
pub struct Commands {
    inner: Arc<Inner>,
}

impl Commands {
    /// Marks runs a previous process left running as interrupted, then publishes the commands and the
    /// newest runs so the hub's state (and every snapshot) holds them.
    pub async fn start(
        specs: Vec<CommandSpec>,
        audit: AuditLog,
        deploys: DeployBook,
        outlet: Outlet,
        leases: Arc<dyn Leases>,
        logs: RunLogs,
        tasks: Tasks,
    ) -> Result<Commands, StoreError> {
        let RunLogs { dir, keep } = logs;
        match output::prune(&dir, keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "old command logs removed"),
            Err(e) => tracing::warn!("cannot remove old command logs: {e}"),
        }
        let commands = Commands {
            inner: Arc::new(Inner {
                specs,
                audit,
                deploys,
                outlet,
                dir,
                running: Mutex::default(),
                leases,
                tasks,
            }),
        };
        let store = commands.inner.audit.store().clone();
        for run in store.interrupt_runs(now_millis()).await? {
            tracing::warn!(
                run = run.id,
                command = %run.command,
                target = %run.target,
                "a command run was interrupted: Watchpost stopped while it ran"
            );
        }
        let inner = &commands.inner;
        inner.outlet.emit(
            None,
            Event::Commands(inner.specs.iter().map(|s| s.info.clone()).collect()),
        );
        let mut recent = store.recent_runs(RECENT_RUNS).await?;
        recent.reverse();
        for mut run in recent {
            run.audience = commands.run_audience(&run.command, &run.target);
            inner.outlet.emit(None, Event::Command(run));
        }
        Ok(commands)
    }

    fn spec(&self, name: &str) -> Result<&CommandSpec, CommandError> {
        self.inner
            .specs
            .iter()
            .find(|s| s.info.name == name)
            .ok_or_else(|| CommandError::UnknownCommand(name.chars().take(64).collect()))
    }

    /// Who sees runs of `command` on `target` (admins only for a command no longer configured, to be safe).
    fn run_audience(&self, command: &str, target: &str) -> Role {
        self.spec(command)
            .map_or(Role::Admin, |s| s.info.run_audience(target))
    }

    fn output_audience(&self, command: &str, target: &str) -> Role {
        self.spec(command)
            .map_or(Role::Admin, |s| s.info.output_audience(target))
    }

    /// Starts `name` on `target`; returns the run as it starts. The program's progress follows as events.
    ///
    /// Once the checks pass and the target is reserved, the rest (audit entry, run, deployment, the program)
    /// happens in a task of its own: a request that goes away half-way (a closed tab, a shutdown) cannot leave
    /// the target reserved or a run recorded but never started.
    pub async fn run(
        &self,
        caller: &Caller,
        name: &str,
        target: &str,
        params: BTreeMap<String, String>,
    ) -> Result<CommandRun, CommandError> {
        let spec = self.spec(name)?.clone();
        // The role first: a refusal is a 403 (and a security alert) whatever the parameters were.
        let needed = Action::RunCommand.least_role_on(Target::Command(&spec.info, target));
        if caller.role < needed {
            return Err(CommandError::Forbidden(Refused {
                needed,
                what: format!(
                    "run {name} on {}",
                    target.chars().take(64).collect::<String>()
                ),
                who: caller.name.clone(),
                role: caller.role,
                outside: None,
            }));
        }
        let argv = spec.argv(target, &params)?;
        let started_ms = now_millis();
        let lease = if spec.info.exclusive {
            Some(self.reserve(target, caller, name, started_ms)?)
        } else {
            None
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let (this, caller, target) = (self.clone(), caller.clone(), target.to_owned());
        tokio::spawn(async move {
            let result = this
                .begin(Starting {
                    spec,
                    caller,
                    target,
                    params,
                    argv,
                    started_ms,
                    lease,
                })
                .await;
            let _ = reply.send(result);
        });
        answer
            .await
            .map_err(|_| CommandError::Internal("the run's task ended early".into()))?
    }

    /// Records the run (audit entry first), registers it and starts the program; the reservation is given
    /// back if recording fails.
    async fn begin(self, starting: Starting) -> Result<CommandRun, CommandError> {
        let Starting {
            spec,
            caller,
            target,
            params,
            argv,
            started_ms,
            lease,
        } = starting;
        let run = match self
            .record(&caller, &spec, &target, params, started_ms)
            .await
        {
            Ok(run) => run,
            Err(e) => {
                if let Some(lease) = &lease {
                    self.inner.leases.release(lease);
                }
                return Err(e);
            }
        };
        // A deploy command's run moves its target's deployment indicator.
        let deployment = if spec.info.kind == shared::CommandKind::Deploy {
            match self
                .inner
                .deploys
                .queue_run(&caller.name, &target, &run.params, run.id, run.audience)
                .await
            {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!(run = run.id, "cannot record the deployment: {e}");
                    None
                }
            }
        } else {
            None
        };
        let cancel = CancellationToken::new();
        if let Ok(mut running) = self.inner.running.lock() {
            running.runs.insert(
                run.id,
                Live {
                    run: run.clone(),
                    cancel: cancel.clone(),
                    cancelled_by: None,
                    lease,
                },
            );
        }
        tracing::info!(
            run = run.id,
            by = %caller.name,
            command = %spec.info.name,
            target,
            "command started"
        );
        self.inner.outlet.emit(None, Event::Command(run.clone()));
        let this = self.clone();
        let started = run.clone();
        self.inner
            .tasks
            .spawn(async move { this.execute(spec, started, argv, cancel, deployment).await });
        Ok(run)
    }

    fn reserve(
        &self,
        target: &str,
        caller: &Caller,
        command: &str,
        now_ms: i64,
    ) -> Result<Lease, CommandError> {
        let holder = Holder {
            who: caller.name.clone(),
            what: command.to_owned(),
            since_ms: now_ms,
        };
        self.inner
            .leases
            .acquire(&format!("command-target:{target}"), holder)
            .map_err(|holder| CommandError::Busy {
                target: target.to_owned(),
                actor: holder.who,
                command: holder.what,
                started: crate::clock::rfc3339(holder.since_ms),
            })
    }

    /// Writes the audit entry, then the run: both before the program starts.
    async fn record(
        &self,
        caller: &Caller,
        spec: &CommandSpec,
        target: &str,
        params: BTreeMap<String, String>,
        started_ms: i64,
    ) -> Result<CommandRun, CommandError> {
        let audit = &self.inner.audit;
        let action = format!("command.{}", spec.info.name);
        let begun = audit.begin(caller, &action, target, params.clone()).await?;
        let stored = audit
            .store()
            .add_run(NewRun {
                command: spec.info.name.clone(),
                target: target.to_owned(),
                params,
                actor: caller.name.clone(),
                audit_id: begun.id,
                started_ms,
            })
            .await;
        match stored {
            Ok(mut run) => {
                run.audience = spec.info.run_audience(target);
                Ok(run)
            }
            Err(e) => {
                let result: Result<(), _> = Err(format!("the run could not be recorded: {e}"));
                audit.complete(begun, &result, |_| String::new()).await;
                Err(e.into())
            }
        }
    }

    /// Asks a running run to stop; its end comes as an event.
    pub async fn cancel(&self, caller: &Caller, id: i64) -> Result<CommandRun, CommandError> {
        let found = self
            .inner
            .running
            .lock()
            .map_err(|_| CommandError::NoRun(id))?
            .runs
            .get(&id)
            .map(|live| (live.run.command.clone(), live.run.target.clone()));
        let Some((command, target)) = found else {
            return match self.inner.audit.store().run(id).await? {
                Some(_) => Err(CommandError::Ended(id)),
                None => Err(CommandError::NoRun(id)),
            };
        };
        let spec = self.spec(&command)?;
        let needed = Action::RunCommand.least_role_on(Target::Command(&spec.info, &target));
        if caller.role < needed {
            return Err(CommandError::Forbidden(Refused {
                needed,
                what: format!("cancel {command} on {target}"),
                who: caller.name.clone(),
                role: caller.role,
                outside: None,
            }));
        }
        let params = BTreeMap::from([("run".to_owned(), id.to_string())]);
        let begun = self
            .inner
            .audit
            .begin(caller, "command.cancel", &target, params)
            .await?;
        let result = {
            let mut running = self
                .inner
                .running
                .lock()
                .map_err(|_| CommandError::NoRun(id))?;
            match running.runs.get_mut(&id) {
                Some(live) => {
                    live.run.cancelling = true;
                    live.cancelled_by.get_or_insert_with(|| caller.name.clone());
                    live.cancel.cancel();
                    Ok(live.run.clone())
                }
                None => Err(CommandError::Ended(id)),
            }
        };
        self.inner
            .audit
            .complete(begun, &result, |run| {
                format!("asked run {} ({}) to stop", run.id, run.command)
            })
            .await;
        let run = result?;
        tracing::info!(run = id, by = %caller.name, "command cancelled");
        self.inner.outlet.emit(None, Event::Command(run.clone()));
        Ok(run)
    }

    /// Lines of a run's output from its log file, for a tab that opens it late or missed chunks.
    pub async fn output(
        &self,
        caller: &Caller,
        id: i64,
        first: u64,
        limit: usize,
    ) -> Result<OutputPage, CommandError> {
        let run = self
            .inner
            .audit
            .store()
            .run(id)
            .await?
            .ok_or(CommandError::NoRun(id))?;
        let needed = self.output_audience(&run.command, &run.target);
        if caller.role < needed {
            return Err(CommandError::Forbidden(Refused {
                needed,
                what: format!("read the output of {}", run.command),
                who: caller.name.clone(),
                role: caller.role,
                outside: None,
            }));
        }
        match output::read_page(&self.inner.dir, id, first, limit).await {
            Ok(page) => Ok(page),
            // A run that failed before its file was made has no output.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OutputPage {
                run: id,
                first,
                lines: Vec::new(),
                more: false,
            }),
            Err(e) => Err(CommandError::Output(e)),
        }
    }

    /// Runs the program to its end and records how it ended.
    async fn execute(
        self,
        spec: CommandSpec,
        run: CommandRun,
        argv: Vec<String>,
        cancel: CancellationToken,
        mut deployment: Option<shared::Deployment>,
    ) {
        let audience = spec.info.output_audience(&run.target);
        let mut relay = Relay::new(&self.inner.outlet, run.id, audience);
        let exit = match LogFile::create(&log_path(&self.inner.dir, run.id)).await {
            Err(e) => Exit::NotStarted(format!("cannot write the run's log file: {e}")),
            Ok(mut log) => {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Progress>(1024);
                let program = process::run(
                    &spec.program,
                    &argv,
                    spec.timeout,
                    &cancel,
                    self.inner.tasks.token(),
                    tx,
                );
                // Every line to the file, the first ones onto the stream, in chunks at most
                // CHUNK_EVERY apart.
                let consume = async {
                    let mut tick = tokio::time::interval(CHUNK_EVERY);
                    loop {
                        tokio::select! {
                            progress = rx.recv() => match progress {
                                Some(Progress::Started) => {
                                    if let Some(d) = deployment.take() {
                                        deployment = Some(self.inner.deploys.run_started(d).await);
                                    }
                                }
                                Some(Progress::Line(line)) => {
                                    if let Err(e) = log.write(&line).await {
                                        tracing::warn!(run = run.id, "cannot write the run's log file: {e}");
                                    }
                                    relay.line(&line);
                                    if let Some(d) = deployment.take() {
                                        deployment = Some(self.inner.deploys.run_line(d, &line.text).await);
                                    }
                                }
                                None => break,
                            },
                            _ = tick.tick() => {
                                relay.flush();
                                // Readers of the file (a tab opening the run late) see whole lines.
                                if let Err(e) = log.flush().await {
                                    tracing::warn!(run = run.id, "cannot write the run's log file: {e}");
                                }
                            }
                        }
                    }
                    if let Err(e) = log.flush().await {
                        tracing::warn!(run = run.id, "cannot finish the run's log file: {e}");
                    }
                };
                let (exit, ()) = tokio::join!(program, consume);
                exit
            }
        };
        relay.flush();
        let cancelled_by = self
            .inner
            .running
            .lock()
            .ok()
            .and_then(|r| r.runs.get(&run.id).and_then(|l| l.cancelled_by.clone()));
        let (state, exit_code, detail) = describe(&spec, exit, cancelled_by);
        let end = RunEnd {
            state,
            finished_ms: now_millis(),
            exit_code,
            detail: detail.clone(),
            output_lines: relay.lines,
        };
        let finished = match self
            .inner
            .audit
            .store()
            .finish_run(run.id, end.clone())
            .await
        {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                tracing::warn!(run = run.id, "the run had been marked ended already");
                ended(run.clone(), &end)
            }
            Err(e) => {
                // The tabs still learn the end; the store marks the run interrupted at the next start.
                tracing::error!(run = run.id, "cannot record how the run ended: {e}");
                ended(run.clone(), &end)
            }
        };
        let finished = CommandRun {
            audience: run.audience,
            ..finished
        };
        let live = self
            .inner
            .running
            .lock()
            .ok()
            .and_then(|mut running| running.runs.remove(&run.id));
        if let Some(lease) = live.and_then(|l| l.lease) {
            self.inner.leases.release(&lease);
        }
        tracing::info!(
            run = run.id,
            command = %run.command,
            target = %run.target,
            state = state.as_str(),
            detail,
            "command ended"
        );
        self.inner.outlet.emit(None, Event::Command(finished));
        if let Some(d) = deployment {
            self.inner.deploys.run_ended(d, state, &detail).await;
        }
    }
}

fn ended(run: CommandRun, end: &RunEnd) -> CommandRun {
    CommandRun {
        state: end.state,
        finished_ms: Some(end.finished_ms),
        exit_code: end.exit_code,
        detail: end.detail.clone(),
        output_lines: end.output_lines,
        cancelling: false,
        ..run
    }
}

/// The state, exit code and detail a process's end makes.
fn describe(
    spec: &CommandSpec,
    exit: Exit,
    cancelled_by: Option<String>,
) -> (RunState, Option<i32>, String) {
    match exit {
        Exit::NotStarted(reason) => (RunState::Failed, None, reason),
        Exit::Ended {
            code,
            signal,
            ending,
        } => match ending {
            Ending::TimedOut => (
                RunState::TimedOut,
                code,
                format!(
                    "no result after {}; killed with its children",
                    humantime::format_duration(spec.timeout)
                ),
            ),
            Ending::Cancelled => (
                RunState::Cancelled,
                code,
                format!(
                    "cancelled by {}",
                    cancelled_by.unwrap_or_else(|| "an operator".into())
                ),
            ),
            Ending::Shutdown => (
                RunState::Interrupted,
                code,
                "Watchpost was stopped while it ran; killed with its children".into(),
            ),
            Ending::Exited => match (code, signal) {
                (Some(0), _) => (RunState::Succeeded, Some(0), "exit status 0".into()),
                (Some(code), _) => (RunState::Failed, Some(code), format!("exit status {code}")),
                (None, Some(signal)) => {
                    (RunState::Failed, None, format!("killed by signal {signal}"))
                }
                (None, None) => (RunState::Failed, None, "ended without a status".into()),
            },
        },
    }
}

/// Collects a run's lines into numbered chunks on the stream, up to the stream's cap.
struct Relay<'a> {
    outlet: &'a Outlet,
    run: i64,
    audience: Role,
    /// Lines seen so far (every one goes to the file).
    lines: u64,
    streamed_bytes: u64,
    /// The number of the first line in `pending`.
    first: u64,
    pending: Vec<OutputLine>,
    /// The cap was reached: the stream's last chunk says so, and nothing follows it.
    capped: bool,
    done: bool,
}

/// A chunk goes out at the latest with this many lines, between the timed flushes.
const CHUNK_LINES: usize = 500;

impl<'a> Relay<'a> {
    fn new(outlet: &'a Outlet, run: i64, audience: Role) -> Self {
        Relay {
            outlet,
            run,
            audience,
            lines: 0,
            streamed_bytes: 0,
            first: 0,
            pending: Vec::new(),
            capped: false,
            done: false,
        }
    }

    /// Takes one line (already written to the file).
    fn line(&mut self, line: &OutputLine) {
        self.lines += 1;
        if self.capped {
            return;
        }
        let size = line.text.len() as u64;
        if self.lines > STREAM_MAX_LINES || self.streamed_bytes + size > STREAM_MAX_BYTES {
            self.capped = true;
            self.flush();
            return;
        }
        self.streamed_bytes += size;
        self.pending.push(line.clone());
        if self.pending.len() >= CHUNK_LINES {
            self.flush();
        }
    }

    /// Sends what is buffered (and, once, the chunk that says the stream stops here).
    fn flush(&mut self) {
        if self.done || (self.pending.is_empty() && !self.capped) {
            return;
        }
        let lines = std::mem::take(&mut self.pending);
        let count = lines.len() as u64;
        self.outlet.emit(
            None,
            Event::CommandOutput(OutputChunk {
                run: self.run,
                first: self.first,
                lines,
                capped: self.capped,
                audience: self.audience,
            }),
        );
        self.first += count;
        self.done = self.capped;
    }
}
