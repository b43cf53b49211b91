//! Running one program: argv only (no shell), no input, its own process group so that a timeout or a cancel
//! stops its children too, and both output streams read line by line.

use crate::lines::Splitter;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use shared::{OutputLine, RunState};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The environment variables a program gets from Watchpost's; nothing else passes.
pub const KEPT_ENV: [&str; 7] = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ"];

/// How long a program asked to stop (SIGTERM) has before it is killed (SIGKILL).
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long the output of an exited program is still read: a child it left behind may hold the pipes.
const DRAIN: Duration = Duration::from_secs(2);

/// What a running program reports, in order.
#[derive(Debug)]
pub enum Progress {
    /// The program is running (it was spawned).
    Started,
    Line(OutputLine),
}

/// Why the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// By itself.
    Exited,
    TimedOut,
    Cancelled,
    /// Watchpost is shutting down.
    Shutdown,
}

#[derive(Debug)]
pub enum Exit {
    /// It never ran; the text says why ("program not found: …").
    NotStarted(String),
    Ended {
        code: Option<i32>,
        signal: Option<i32>,
        ending: Ending,
    },
}

/// Runs `program` with `argv` to its end, telling `lines` when it started and each output line.
pub async fn run(
    program: &str,
    argv: &[String],
    timeout: Duration,
    cancel: &CancellationToken,
    shutdown: &CancellationToken,
    lines: mpsc::Sender<Progress>,
) -> Exit {
    let mut command = tokio::process::Command::new(program);
    // Not Watchpost's environment: it may hold secrets (a database URL with its password). Only what
    // programs need to run and to format their output.
    command.env_clear();
    for name in KEPT_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Exit::NotStarted(spawn_error(program, &e)),
    };
    let _ = lines.send(Progress::Started).await;
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(read(out, false, lines.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(read(err, true, lines)));
    }

    let (status, ending) = tokio::select! {
        status = child.wait() => (status, Ending::Exited),
        () = tokio::time::sleep(timeout) => (stop(&mut child, group, STOP_GRACE).await, Ending::TimedOut),
        () = cancel.cancelled() => (stop(&mut child, group, STOP_GRACE).await, Ending::Cancelled),
        () = shutdown.cancelled() => (stop(&mut child, group, Duration::ZERO).await, Ending::Shutdown),
    };
    if ending != Ending::Exited {
        // Whatever of the group is left (a child that ignored SIGTERM) goes too.
        signal_group(group, Signal::SIGKILL);
    }
    let drained = tokio::time::timeout(DRAIN, async {
        for reader in &mut readers {
            let _ = reader.await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            program,
            "output still open after the program ended; no longer read"
        );
        for reader in &readers {
            reader.abort();
        }
    }
    match status {
        Ok(status) => ended(status, ending),
        Err(e) => Exit::NotStarted(format!("cannot wait for {program}: {e}")),
    }
}

fn ended(status: ExitStatus, ending: Ending) -> Exit {
    Exit::Ended {
        code: status.code(),
        signal: status.signal(),
        ending,
    }
}

fn spawn_error(program: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("program not found: {program}"),
        std::io::ErrorKind::PermissionDenied => {
            format!("program cannot be run (permission denied): {program}")
        }
        _ => format!("cannot start {program}: {e}"),
    }
}

fn signal_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group
        && let Err(e) = killpg(group, signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(%group, ?signal, "cannot signal the process group: {e}");
    }
}

/// Asks the group to stop, then kills it after `grace`; the leader's status.
async fn stop(
    child: &mut tokio::process::Child,
    group: Option<Pid>,
    grace: Duration,
) -> std::io::Result<ExitStatus> {
    if !grace.is_zero() {
        signal_group(group, Signal::SIGTERM);
        if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
            return status;
        }
    }
    signal_group(group, Signal::SIGKILL);
    child.wait().await
}

async fn read(mut from: impl AsyncRead + Unpin, stderr: bool, to: mpsc::Sender<Progress>) {
    let mut splitter = Splitter::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut lines = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        splitter.push(&buf[..n], &mut lines);
        for text in lines.drain(..) {
            if to
                .send(Progress::Line(OutputLine { stderr, text }))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    splitter.finish(&mut lines);
    for text in lines {
        if to
            .send(Progress::Line(OutputLine { stderr, text }))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// How a run ended, worded for a person: its state, exit code and detail ("exit status 1", "no result after
/// 1m; killed with its children"). `cancelled_by` names who cancelled it; `stopped` says why a run cut
/// short by [`Ending::Shutdown`] was (whose process went away).
pub fn describe(
    exit: Exit,
    timeout: Duration,
    cancelled_by: Option<String>,
    stopped: &str,
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
                    humantime::format_duration(timeout)
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
                format!("{stopped}; killed with its children"),
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
