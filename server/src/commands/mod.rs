//! Configured commands: checked requests become audited runs of a program, whose progress and output stream
//! to every tab that may see them.
//!
//! A run: the permission table (role × action × target) and the parameters are checked; an exclusive
//! command reserves its target (a second run there is a 409 naming who runs what); the audit entry and the
//! run are written; the program starts without a shell, in a process group of its own; its lines go to the
//! run's log file and, up to a cap, onto the stream; it ends as Succeeded, Failed, TimedOut (the whole group
//! killed), Cancelled (by an operator) or, found at the next start after Watchpost died, Interrupted.

pub mod output;
pub mod remote;

use crate::audit::AuditLog;
use crate::clock::now_millis;
use crate::deploy::DeployBook;
use crate::lease::{Holder, Lease, Leases, Refusal};
use crate::outlet::Outlet;
use crate::tasks::Tasks;
use collect::wire::{Order, Report};
use output::{LogFile, STREAM_MAX_BYTES, STREAM_MAX_LINES, log_path};
use runner::process::{self, Progress};
use runner::spec::{CommandSpec, ParamError};
use shared::{
    Action, Caller, CommandInfo, CommandRun, Event, HostId, OutputChunk, OutputLine, OutputPage,
    RECENT_RUNS, Refused, Role, RunState, Scope, Target,
};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{NewRun, Place, RunEnd, StoreError};
use tokio_util::sync::CancellationToken;

/// How often buffered output lines go out as one chunk.
const CHUNK_EVERY: Duration = Duration::from_millis(100);
/// How long past its timeout a run on an agent's host may go unreported before the hub ends it: the agent
/// kills it at the timeout and reports at once, unless it is gone.
const REMOTE_GRACE: Duration = Duration::from_secs(30);
/// How soon an agent says it has an order (its first report, sent as the run starts).
const ORDER_TAKEN_WITHIN: Duration = Duration::from_secs(15);

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
    #[error(
        "{0}'s agent is not connected, so nothing ran: a command runs on a host while its agent holds its \
         stream to the hub"
    )]
    NotConnected(String),
    /// An agent's report that cannot be taken.
    #[error("{0}")]
    Report(String),
}

struct Live {
    run: CommandRun,
    /// The command as declared when the run started (the hub's own, or the agent's).
    info: CommandInfo,
    place: Option<Place>,
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
    /// Agents holding their stream of orders open, and runs under way on their hosts.
    remote: Mutex<remote::Remote>,
}

/// What a run executes: a program here, or an order to an agent.
enum Program {
    Local(Vec<String>),
    Remote {
        host: String,
        orders: tokio::sync::mpsc::UnboundedSender<Order>,
        epoch: u64,
        params: BTreeMap<String, String>,
    },
}

/// A run checked and about to be recorded and started.
struct Starting {
    spec: CommandSpec,
    caller: Caller,
    target: String,
    params: BTreeMap<String, String>,
    place: Option<Place>,
    program: Program,
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
                remote: Mutex::default(),
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
            // An agent's declaration is not known until it attaches again: its runs stay among admins.
            run.audience = if run.host.is_some() {
                Role::Admin
            } else {
                commands.run_audience(&run.command, &run.target)
            };
            let place = place_of(&run);
            commands.publish(place.as_ref(), Event::Command(run));
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

    /// Starts `name` on `target` — on the hub's own host, or with `place` on an agent's host, by the
    /// command that host declared — and returns the run as it starts. The program's progress follows as
    /// events.
    ///
    /// Once the checks pass and the target is reserved, the rest (audit entry, run, deployment, the program)
    /// happens in a task of its own: a request that goes away half-way (a closed tab, a shutdown) cannot leave
    /// the target reserved or a run recorded but never started.
    pub async fn run(
        &self,
        caller: &Caller,
        place: Option<Place>,
        name: &str,
        target: &str,
        params: BTreeMap<String, String>,
    ) -> Result<CommandRun, CommandError> {
        // For an agent's host, the declaration the role is checked against is the one the run goes out
        // with (taken under one lock: the agent may declare again meanwhile).
        let (info, role, dispatch) = match &place {
            None => (self.spec(name)?.info.clone(), Some(caller.role), None),
            Some(place) => {
                let (info, dispatch) = self.declared_remotely(place, name)?;
                (info, caller.role_in(&place.environment), dispatch)
            }
        };
        let on = place
            .as_ref()
            .map(|p| format!(" on {}", p.host))
            .unwrap_or_default();
        // The role first: a refusal is a 403 (and a security alert) whatever the parameters were.
        let needed = Action::RunCommand.least_role_on(Target::Command(&info, target));
        if role.is_none_or(|role| role < needed) {
            return Err(CommandError::Forbidden(Refused {
                needed,
                what: format!(
                    "run {name} on {}{on}",
                    target.chars().take(64).collect::<String>()
                ),
                who: caller.name.clone(),
                role: role.unwrap_or(Role::Viewer),
                outside: match (&place, role) {
                    (Some(place), None) => Some(place.environment.clone()),
                    _ => None,
                },
            }));
        }
        let (spec, program) = match (&place, dispatch) {
            (None, _) => {
                let spec = self.spec(name)?.clone();
                let argv = spec.argv(target, &params)?;
                (spec, Program::Local(argv))
            }
            (Some(place), None) => return Err(CommandError::NotConnected(place.host.clone())),
            (Some(place), Some(dispatch)) => {
                // Checked here for a clear 400; the agent checks again against its own file.
                dispatch.spec.argv(target, &params)?;
                let program = Program::Remote {
                    host: place.host.clone(),
                    orders: dispatch.orders,
                    epoch: dispatch.epoch,
                    params: params.clone(),
                };
                (dispatch.spec, program)
            }
        };
        let started_ms = now_millis();
        let lease = if spec.info.exclusive {
            Some(
                self.reserve(place.as_ref(), target, caller, name, started_ms)
                    .await?,
            )
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
                    place,
                    program,
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

    fn lock_remote(&self) -> Result<std::sync::MutexGuard<'_, remote::Remote>, CommandError> {
        self.inner
            .remote
            .lock()
            .map_err(|_| CommandError::Internal("the agents' registry is poisoned".into()))
    }

    /// `name` as `place`'s host declared it, and where a run of it goes: the attached agent's declaration;
    /// with no agent attached, its last one (so that a refusal by role comes before "not connected") and
    /// nowhere to go. A host that never declared it: not connected, or no such command.
    fn declared_remotely(
        &self,
        place: &Place,
        name: &str,
    ) -> Result<(CommandInfo, Option<remote::Dispatch>), CommandError> {
        let remote = self.lock_remote()?;
        match remote.dispatch(&place.host, &place.environment, name) {
            Ok(dispatch) => Ok((dispatch.spec.info.clone(), Some(dispatch))),
            Err(CommandError::NotConnected(host)) => match remote.declared(&host, name) {
                Some(info) => Ok((info.clone(), None)),
                None => Err(CommandError::NotConnected(host)),
            },
            Err(CommandError::UnknownCommand(_)) => Err(CommandError::UnknownCommand(format!(
                "{} on {}",
                name.chars().take(64).collect::<String>(),
                place.host
            ))),
            Err(e) => Err(e),
        }
    }

    /// Attaches `host`'s agent, which declares `declared`: until the attachment is dropped (its stream
    /// closed), runs of those commands on `host` go out of the receiver as orders. A declaration the hub's
    /// own configuration would refuse is refused (the text says why).
    pub fn attach(
        &self,
        host: &str,
        environment: &str,
        declared: Vec<CommandInfo>,
    ) -> Result<
        (
            remote::Attachment,
            tokio::sync::mpsc::UnboundedReceiver<Order>,
        ),
        CommandError,
    > {
        let specs = remote::check_declared(declared).map_err(CommandError::Report)?;
        let (epoch, orders) = self.lock_remote()?.attach(host, environment, specs);
        tracing::info!(host, environment, "an agent's stream of orders opened");
        // The host's recent runs were published for admins only while its declaration was not known (after
        // the hub's start): now it is.
        let this = self.clone();
        let host_id = HostId(host.to_owned());
        self.inner.tasks.spawn(async move {
            let recent = match this.inner.audit.store().recent_runs(RECENT_RUNS).await {
                Ok(recent) => recent,
                Err(e) => return tracing::warn!("cannot read the recent runs: {e}"),
            };
            for mut run in recent.into_iter().rev() {
                if run.host.as_ref() != Some(&host_id) || !run.state.finished() {
                    continue;
                }
                let audience = this.lock_remote().ok().and_then(|r| {
                    r.declared(&host_id.0, &run.command)
                        .map(|i| i.run_audience(&run.target))
                });
                if let Some(audience) = audience.filter(|a| *a != Role::Admin) {
                    run.audience = audience;
                    let place = place_of(&run);
                    this.publish(place.as_ref(), Event::Command(run));
                }
            }
        });
        Ok((
            remote::Attachment {
                commands: self.clone(),
                host: host.to_owned(),
                epoch,
            },
            orders,
        ))
    }

    /// Takes `host`'s agent's report about run `id`: its next lines, and maybe its end.
    pub async fn report(&self, host: &str, id: i64, report: Report) -> Result<(), CommandError> {
        let feed = self.lock_remote()?.feed(host, id);
        match feed {
            Ok(feed) => feed.lock().await.take(id, report).await,
            // A run already over (the hub ended it, or took its end before): the agent stops reporting.
            Err(CommandError::NoRun(_)) => match self.inner.audit.store().run(id).await? {
                Some(run)
                    if run.state.finished() && run.host.as_ref().is_some_and(|h| h.0 == host) =>
                {
                    Err(CommandError::Ended(id))
                }
                _ => Err(CommandError::NoRun(id)),
            },
            Err(e) => Err(e),
        }
    }

    /// Publishes a run's event in the environment of the host it runs on.
    fn publish(&self, place: Option<&Place>, event: Event) {
        match place {
            None => self.inner.outlet.emit(None, event),
            Some(place) => self.inner.outlet.emit_in(scope_of(place), event),
        }
    }

    /// Records the run (audit entry first), registers it and starts the program; the reservation is given
    /// back if recording fails.
    async fn begin(self, starting: Starting) -> Result<CommandRun, CommandError> {
        let Starting {
            spec,
            caller,
            target,
            params,
            place,
            program,
            started_ms,
            lease,
        } = starting;
        let run = match self
            .record(&caller, &spec, place.as_ref(), &target, params, started_ms)
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
        // A deploy command's run moves its target's deployment indicator (of the hub's own services).
        let deployment = if spec.info.kind == shared::CommandKind::Deploy && place.is_none() {
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
                    info: spec.info.clone(),
                    place: place.clone(),
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
            host = place.as_ref().map_or("", |p| p.host.as_str()),
            "command started"
        );
        self.publish(place.as_ref(), Event::Command(run.clone()));
        let this = self.clone();
        let started = run.clone();
        self.inner.tasks.spawn(async move {
            this.execute(spec, started, place, program, cancel, deployment)
                .await
        });
        Ok(run)
    }

    async fn reserve(
        &self,
        place: Option<&Place>,
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
        // The hub's own targets keep their key; an agent's are its host's.
        let (key, shown) = match place {
            None => (format!("command-target:{target}"), target.to_owned()),
            Some(place) => (
                format!("command-target:{}/{target}", place.host),
                format!("{target} on {}", place.host),
            ),
        };
        self.inner
            .leases
            .acquire(&key, holder)
            .await
            .map_err(|refusal| match refusal {
                Refusal::Held(holder) => CommandError::Busy {
                    target: shown,
                    actor: holder.who,
                    command: holder.what,
                    started: crate::clock::rfc3339(holder.since_ms),
                },
                Refusal::Unavailable(why) => CommandError::Internal(format!(
                    "{shown} cannot be reserved, so nothing ran: the lease store is unreachable ({why})"
                )),
            })
    }

    /// Writes the audit entry, then the run: both before the program starts.
    async fn record(
        &self,
        caller: &Caller,
        spec: &CommandSpec,
        place: Option<&Place>,
        target: &str,
        params: BTreeMap<String, String>,
        started_ms: i64,
    ) -> Result<CommandRun, CommandError> {
        let audit = &self.inner.audit;
        let action = format!("command.{}", spec.info.name);
        let begun = audit
            .begin_at(caller, place.cloned(), &action, target, params.clone())
            .await?;
        let stored = audit
            .store()
            .add_run(NewRun {
                command: spec.info.name.clone(),
                target: target.to_owned(),
                params,
                actor: caller.name.clone(),
                audit_id: begun.id,
                started_ms,
                place: place.cloned(),
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
            .map(|live| {
                (
                    live.run.command.clone(),
                    live.run.target.clone(),
                    live.info.clone(),
                    live.place.clone(),
                )
            });
        let Some((command, target, info, place)) = found else {
            return match self.inner.audit.store().run(id).await? {
                Some(_) => Err(CommandError::Ended(id)),
                None => Err(CommandError::NoRun(id)),
            };
        };
        let role = match &place {
            None => Some(caller.role),
            Some(place) => caller.role_in(&place.environment),
        };
        let needed = Action::RunCommand.least_role_on(Target::Command(&info, &target));
        if role.is_none_or(|role| role < needed) {
            let on = place
                .as_ref()
                .map(|p| format!(" on {}", p.host))
                .unwrap_or_default();
            return Err(CommandError::Forbidden(Refused {
                needed,
                what: format!("cancel {command} on {target}{on}"),
                who: caller.name.clone(),
                role: role.unwrap_or(Role::Viewer),
                outside: match (&place, role) {
                    (Some(place), None) => Some(place.environment.clone()),
                    _ => None,
                },
            }));
        }
        let params = BTreeMap::from([("run".to_owned(), id.to_string())]);
        let begun = self
            .inner
            .audit
            .begin_at(caller, place.clone(), "command.cancel", &target, params)
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
        self.publish(place.as_ref(), Event::Command(run.clone()));
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
        let (needed, role) = match (&run.host, &run.environment) {
            (Some(host), Some(environment)) => (
                // What the host declared (admins only when the hub has not heard it since it started).
                self.lock_remote()?
                    .declared(&host.0, &run.command)
                    .map_or(Role::Admin, |info| info.output_audience(&run.target)),
                caller.role_in(environment),
            ),
            _ => (
                self.output_audience(&run.command, &run.target),
                Some(caller.role),
            ),
        };
        if role.is_none_or(|role| role < needed) {
            return Err(CommandError::Forbidden(Refused {
                needed,
                what: format!("read the output of {}", run.command),
                who: caller.name.clone(),
                role: role.unwrap_or(Role::Viewer),
                outside: match (&run.environment, role) {
                    (Some(environment), None) => Some(environment.clone()),
                    _ => None,
                },
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

    /// Runs the program (here, or by the host's agent) to its end and records how it ended.
    async fn execute(
        self,
        spec: CommandSpec,
        run: CommandRun,
        place: Option<Place>,
        program: Program,
        cancel: CancellationToken,
        mut deployment: Option<shared::Deployment>,
    ) {
        let audience = spec.info.output_audience(&run.target);
        let mut relay = Relay::new(
            &self.inner.outlet,
            place.as_ref().map(scope_of),
            run.id,
            audience,
        );
        let (state, exit_code, detail) = match LogFile::create(&log_path(&self.inner.dir, run.id))
            .await
        {
            Err(e) => (
                RunState::Failed,
                None,
                format!("cannot write the run's log file: {e}"),
            ),
            Ok(mut log) => {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Progress>(1024);
                let program = async {
                    match &program {
                        Program::Local(argv) => {
                            let exit = process::run(
                                &spec.program,
                                argv,
                                spec.timeout,
                                &cancel,
                                self.inner.tasks.token(),
                                tx,
                            )
                            .await;
                            process::describe(
                                exit,
                                spec.timeout,
                                self.cancelled_by(run.id),
                                "Watchpost was stopped while it ran",
                            )
                        }
                        Program::Remote {
                            host,
                            orders,
                            epoch,
                            params,
                        } => {
                            let remote = RemoteRun {
                                run: &run,
                                host,
                                orders,
                                epoch: *epoch,
                                params,
                                timeout: spec.timeout,
                            };
                            self.run_remotely(remote, &cancel, tx).await
                        }
                    }
                };
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
                let (ended, ()) = tokio::join!(program, consume);
                ended
            }
        };
        relay.flush();
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
        self.publish(place.as_ref(), Event::Command(finished));
        if let Some(d) = deployment {
            self.inner.deploys.run_ended(d, state, &detail).await;
        }
    }
}

/// A run on an agent's host, as [`Commands::run_remotely`] follows it.
struct RemoteRun<'a> {
    run: &'a CommandRun,
    host: &'a str,
    orders: &'a tokio::sync::mpsc::UnboundedSender<Order>,
    epoch: u64,
    params: &'a BTreeMap<String, String>,
    timeout: Duration,
}

impl Commands {
    /// Who cancelled run `id`, once someone has.
    fn cancelled_by(&self, id: i64) -> Option<String> {
        self.inner
            .running
            .lock()
            .ok()
            .and_then(|r| r.runs.get(&id).and_then(|l| l.cancelled_by.clone()))
    }

    /// Sends the run to the host's agent and follows it to its end: the agent's reported lines go to
    /// `progress` (through [`Commands::report`]), a cancel goes down as an order, and a run whose agent
    /// goes away, or reports no end well past its timeout, ends Interrupted.
    async fn run_remotely(
        &self,
        remote: RemoteRun<'_>,
        cancel: &CancellationToken,
        progress: tokio::sync::mpsc::Sender<Progress>,
    ) -> (RunState, Option<i32>, String) {
        let RemoteRun {
            run,
            host,
            orders,
            epoch,
            params,
            timeout,
        } = remote;
        let expected = match self.lock_remote() {
            Ok(mut registry) => registry.expect(run.id, host, epoch, progress),
            Err(e) => return (RunState::Failed, None, e.to_string()),
        };
        let gone = || {
            (
                RunState::Interrupted,
                None,
                format!("the agent of {host} went away while it ran"),
            )
        };
        let order = Order::Run {
            run: run.id,
            command: run.command.clone(),
            target: run.target.clone(),
            params: params.clone(),
        };
        let result = if orders.send(order).is_err() {
            gone()
        } else {
            let remote::Expected {
                mut taken,
                mut reported,
                mut lost,
            } = expected;
            let deadline = tokio::time::sleep(timeout + REMOTE_GRACE);
            let unanswered = tokio::time::sleep(ORDER_TAKEN_WITHIN);
            tokio::pin!(deadline, unanswered);
            let (mut asked, mut answered) = (false, false);
            loop {
                tokio::select! {
                    end = &mut reported => break match end {
                        Ok(end) => (end.state, end.exit_code, end.detail),
                        Err(_) => gone(),
                    },
                    end = &mut lost => break match end {
                        Ok(end) => (end.state, end.exit_code, end.detail),
                        Err(_) => gone(),
                    },
                    _ = &mut taken, if !answered => answered = true,
                    // A stream whose peer is gone without a word (a cut cable) still looks open: the order
                    // is not taken, and the run ends rather than hold its target until its timeout.
                    () = &mut unanswered, if !answered => break (
                        RunState::Interrupted,
                        None,
                        format!(
                            "the agent of {host} did not take the run within {}: it may be unreachable",
                            humantime::format_duration(ORDER_TAKEN_WITHIN)
                        ),
                    ),
                    () = cancel.cancelled(), if !asked => {
                        asked = true;
                        let by = self.cancelled_by(run.id).unwrap_or_else(|| "an operator".into());
                        let _ = orders.send(Order::Cancel { run: run.id, by });
                    }
                    () = &mut deadline => break (
                        RunState::Interrupted,
                        None,
                        format!(
                            "the agent of {host} reported no end within the command's timeout and {} more",
                            humantime::format_duration(REMOTE_GRACE)
                        ),
                    ),
                    () = self.inner.tasks.token().cancelled() => break (
                        RunState::Interrupted,
                        None,
                        format!("Watchpost was stopped while it ran on {host}"),
                    ),
                }
            }
        };
        if let Ok(mut registry) = self.lock_remote() {
            registry.forget(run.id);
        }
        result
    }
}

/// Where a stored run ran, when that was an agent's host.
fn place_of(run: &CommandRun) -> Option<Place> {
    match (&run.host, &run.environment) {
        (Some(host), Some(environment)) => Some(Place {
            host: host.0.clone(),
            environment: environment.clone(),
        }),
        _ => None,
    }
}

/// The scope of events about an agent's host.
fn scope_of(place: &Place) -> Scope {
    Scope {
        environment: place.environment.clone(),
        host: Some(HostId(place.host.clone())),
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

/// Collects a run's lines into numbered chunks on the stream, up to the stream's cap.
struct Relay<'a> {
    outlet: &'a Outlet,
    /// The environment and host of the run's host, when that is an agent's.
    scope: Option<Scope>,
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
    fn new(outlet: &'a Outlet, scope: Option<Scope>, run: i64, audience: Role) -> Self {
        Relay {
            outlet,
            scope,
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
        let event = Event::CommandOutput(OutputChunk {
            run: self.run,
            first: self.first,
            lines,
            capped: self.capped,
            audience: self.audience,
        });
        match &self.scope {
            None => self.outlet.emit(None, event),
            Some(scope) => self.outlet.emit_in(scope.clone(), event),
        }
        self.first += count;
        self.done = self.capped;
    }
}
