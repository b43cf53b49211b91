//! Configured commands and their runs, as the Controls panel shows them and the stream carries them.
//!
//! A command is declared in the server's configuration (a program and argument list with `{param}` slots);
//! the browser sees only what it needs to offer it: its name, targets, parameters and the role it needs. A run
//! is one execution, sent whole on every change (`Command` events), so any single event converges the tab;
//! its output travels separately in numbered chunks (`CommandOutput`), and the whole output stays in a log
//! file on the server.

use crate::{HostId, Role};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the Controls panel offers a command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// A button per target (restart, reload).
    #[default]
    Action,
    /// A button per target whose output is the point (show recent log lines).
    Logs,
    /// A form per target with its parameters (deploy a version to an environment); its runs move the
    /// target's deployment indicator.
    Deploy,
}

/// A parameter of a command and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    pub name: String,
    /// The only values allowed, when the configuration lists them (the form shows a choice).
    pub values: Option<Vec<String>>,
    /// Else the pattern a value must match (anchored), as configured.
    pub pattern: Option<String>,
    /// A value that fits, shown in the empty field (`v1.4.2`); the pattern is the rule, shown as the field's
    /// hint and in the error a value that does not match gets.
    #[serde(default)]
    pub example: Option<String>,
}

/// A configured command as the browser sees it (never its program or arguments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    pub name: String,
    /// The button's text, e.g. "Restart".
    pub title: String,
    /// The button's text while a run is under way, e.g. "Restarting…".
    pub running_title: String,
    pub kind: CommandKind,
    /// The services (or other targets) it may run on.
    pub targets: Vec<String>,
    /// Parameters besides the target.
    pub params: Vec<ParamInfo>,
    /// The least role that may run it, per target (targets not listed need [`CommandInfo::role`]).
    pub role: Role,
    #[serde(default)]
    pub target_roles: BTreeMap<String, Role>,
    /// Whether a run holds its target: a second run of any such command on the same target is refused.
    pub exclusive: bool,
    pub timeout_ms: u64,
}

impl CommandInfo {
    /// The least role that may run this command on `target`.
    pub fn role_for(&self, target: &str) -> Role {
        self.target_roles.get(target).copied().unwrap_or(self.role)
    }

    /// The least role that sees the output of its runs on `target`: who may run it there (an operator at
    /// least).
    pub fn output_audience(&self, target: &str) -> Role {
        self.role_for(target).max(Role::Operator)
    }

    /// The least role that sees its runs on `target` at all: runs only admins may start stay among admins.
    pub fn run_audience(&self, target: &str) -> Role {
        if self.role_for(target) == Role::Admin {
            Role::Admin
        } else {
            Role::Viewer
        }
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Exited with status 0.
    Succeeded,
    /// Exited otherwise, or could not start (the detail says why).
    Failed,
    /// Killed at its timeout, with its children.
    TimedOut,
    /// Stopped by an operator.
    Cancelled,
    /// Watchpost stopped while it ran; found so at the next start.
    Interrupted,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::TimedOut,
        RunState::Cancelled,
        RunState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
            RunState::Cancelled => "cancelled",
            RunState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            RunState::Running => "Running",
            RunState::Succeeded => "Succeeded",
            RunState::Failed => "Failed",
            RunState::TimedOut => "Timed out",
            RunState::Cancelled => "Cancelled",
            RunState::Interrupted => "Interrupted",
        }
    }

    pub fn finished(self) -> bool {
        self != RunState::Running
    }
}

/// One run of a command, whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRun {
    pub id: i64,
    pub command: String,
    pub target: String,
    pub params: BTreeMap<String, String>,
    /// Who started it.
    pub actor: String,
    pub state: RunState,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub exit_code: Option<i32>,
    /// Why it ended as it did, worded for a person ("exit status 1", "program not found: …").
    pub detail: String,
    /// Output lines so far (all of them are in the run's log file).
    pub output_lines: u64,
    /// Set while an operator's cancel is under way.
    #[serde(default)]
    pub cancelling: bool,
    /// The least role that sees this run (see [`CommandInfo::run_audience`], of its target).
    #[serde(default)]
    pub audience: Role,
    /// The host it runs on when that is an agent's (`None`: the hub's own), and that host's environment:
    /// the host declared the command, and a reader sees the run by the role it has there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl CommandRun {
    /// Whether this is a run on `host` (`None`: the hub's own host).
    pub fn runs_on(&self, host: Option<&HostId>) -> bool {
        self.host.as_ref() == host
    }
}

/// Runs kept in the live state, newest first.
pub const RECENT_RUNS: usize = 50;

/// A stretch of a run's output: lines `first`, `first + 1`, … (numbered from 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    pub run: i64,
    pub first: u64,
    pub lines: Vec<OutputLine>,
    /// Set on the last chunk the stream carries when the output is longer than the stream's cap; the rest
    /// is in the log file (and [`OutputPage`]s).
    #[serde(default)]
    pub capped: bool,
    /// The least role that sees this output (see [`CommandInfo::output_audience`]).
    #[serde(default)]
    pub audience: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLine {
    pub stderr: bool,
    pub text: String,
}

/// Output read back from a run's log file, from line `first` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputPage {
    pub run: i64,
    pub first: u64,
    pub lines: Vec<OutputLine>,
    /// Whether more lines follow in the file than this page holds.
    pub more: bool,
}

/// Upserts `run` into `runs` (newest first by id), keeping at most [`RECENT_RUNS`]. An older copy of a run
/// never replaces a finished one.
pub fn merge_run(runs: &mut Vec<CommandRun>, run: CommandRun) {
    match runs.iter_mut().find(|r| r.id == run.id) {
        Some(existing) => {
            if !existing.state.finished() || run.state.finished() {
                *existing = run;
            }
        }
        None => {
            let at = runs
                .iter()
                .position(|r| r.id < run.id)
                .unwrap_or(runs.len());
            runs.insert(at, run);
            // Runs under way are never dropped for room (their Cancel button must stay): the oldest
            // finished ones go.
            while runs.len() > RECENT_RUNS {
                match runs.iter().rposition(|r| r.state.finished()) {
                    Some(oldest) => {
                        runs.remove(oldest);
                    }
                    None => break,
                }
            }
        }
    }
}

/// Puts `chunk`'s lines at their numbers in `lines` (a run's output as a tab holds it): lines already held
/// are not added twice. Returns false when the chunk starts past the end, i.e. lines in between are
/// missing (the tab then reads them from the run's log).
pub fn merge_output(lines: &mut Vec<OutputLine>, first: u64, chunk: &[OutputLine]) -> bool {
    let held = lines.len() as u64;
    if first > held {
        return false;
    }
    let skip = usize::try_from(held - first).unwrap_or(usize::MAX);
    lines.extend(chunk.iter().skip(skip).cloned());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_merges_by_line_number_once() {
        let line = |t: &str| OutputLine {
            stderr: false,
            text: t.into(),
        };
        let mut held = Vec::new();
        assert!(merge_output(&mut held, 0, &[line("a"), line("b")]));
        assert!(
            merge_output(&mut held, 1, &[line("b"), line("c")]),
            "overlap"
        );
        assert!(!merge_output(&mut held, 5, &[line("f")]), "a gap");
        assert_eq!(
            held.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    fn run(id: i64, state: RunState) -> CommandRun {
        CommandRun {
            id,
            command: "restart".into(),
            target: "shop".into(),
            params: BTreeMap::new(),
            actor: "ana".into(),
            state,
            started_ms: id,
            finished_ms: None,
            exit_code: None,
            detail: String::new(),
            output_lines: 0,
            cancelling: false,
            audience: Role::Viewer,
            host: None,
            environment: None,
        }
    }

    #[test]
    fn runs_merge_newest_first_and_a_finished_run_stays_finished() {
        let mut runs = Vec::new();
        merge_run(&mut runs, run(2, RunState::Running));
        merge_run(&mut runs, run(1, RunState::Running));
        merge_run(&mut runs, run(3, RunState::Running));
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [3, 2, 1]);
        merge_run(&mut runs, run(2, RunState::Succeeded));
        merge_run(&mut runs, run(2, RunState::Running));
        assert_eq!(
            runs[1].state,
            RunState::Succeeded,
            "a stale copy is ignored"
        );
        for id in 4..100 {
            merge_run(&mut runs, run(id, RunState::Succeeded));
        }
        assert_eq!(runs.len(), RECENT_RUNS);
        assert_eq!(runs[0].id, 99);
        assert!(
            runs.iter()
                .any(|r| r.id == 3 && r.state == RunState::Running),
            "a run under way stays"
        );
    }

    #[test]
    fn audiences_follow_each_targets_role() {
        let mut info = CommandInfo {
            name: "restart".into(),
            title: "Restart".into(),
            running_title: "Restarting…".into(),
            kind: CommandKind::Action,
            targets: vec!["shop".into(), "db".into()],
            params: Vec::new(),
            role: Role::Operator,
            target_roles: BTreeMap::new(),
            exclusive: true,
            timeout_ms: 1000,
        };
        assert_eq!(
            (info.output_audience("shop"), info.run_audience("shop")),
            (Role::Operator, Role::Viewer)
        );
        info.target_roles.insert("db".into(), Role::Admin);
        assert_eq!(info.role_for("db"), Role::Admin);
        // Each target by its own role: an operator still sees the runs it may start on shop.
        assert_eq!(
            (info.output_audience("shop"), info.run_audience("shop")),
            (Role::Operator, Role::Viewer)
        );
        assert_eq!(
            (info.output_audience("db"), info.run_audience("db")),
            (Role::Admin, Role::Admin)
        );
    }
}
