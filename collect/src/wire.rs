//! What an agent sends the hub, and what the hub answers: the push protocol both ends compile against.
//!
//! An agent numbers every record it keeps (`seq`, from the clock in microseconds and strictly increasing,
//! so numbers survive the agent's restart without being stored) and sends them oldest first. The hub records
//! each record above the agent's acknowledged mark once and answers with the new mark; the agent then
//! forgets what is at or below it. While a backlog drains, the newest reading rides along as `live` so the
//! dashboard shows now, not the past, and is recorded later in its turn.

use serde::{Deserialize, Serialize};
use shared::{CommandInfo, HostHealth, NewLog, OutputLine, RunState};
use std::collections::BTreeMap;

/// Where agents push.
pub const PUSH_PATH: &str = "/api/agent/push";

/// Where an agent opens the stream of orders (a `POST` of its [`Hello`], answered with server-sent events,
/// each an [`Order`]), and where it reports a run (`POST {RUN_PATH}/{run}` with a [`Report`]).
pub const ORDERS_PATH: &str = "/api/agent/orders";
pub const RUN_PATH: &str = "/api/agent/runs";
/// Whether `path` is one of the agent's routes, which its token (not a user's credential) speaks for.
pub fn is_agent_path(path: &str) -> bool {
    path == PUSH_PATH
        || path == ORDERS_PATH
        || path
            .strip_prefix(RUN_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The most commands an agent may declare, and the most output lines one report carries.
pub const MAX_DECLARED_COMMANDS: usize = 64;
pub const MAX_REPORT_LINES: usize = 500;

/// The most records in one batch, and the most bytes an agent puts in one (the hub's body limit is above).
pub const MAX_BATCH_RECORDS: usize = 256;
pub const MAX_BATCH_BYTES: usize = 2 << 20;

/// One push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The host the agent pushes for; must be the name its token was enrolled with.
    pub agent: String,
    /// The environment the agent was told it is in; must be the one the host was added to.
    pub environment: String,
    /// The agent's version, shown on the fleet page beside the hub's.
    pub version: String,
    /// How often the agent samples, so the hub knows when a host has gone quiet.
    pub interval_ms: u64,
    /// Records oldest first, `seq` strictly increasing.
    #[serde(default)]
    pub items: Vec<Item>,
    /// The newest reading while older ones are still being sent.
    #[serde(default)]
    pub live: Option<Item>,
    /// Stretches the agent had to drop because its spool was full.
    #[serde(default)]
    pub gaps: Vec<Gap>,
}

/// One numbered record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub seq: u64,
    pub record: Record,
}

impl Item {
    /// When what the record holds happened (Unix ms).
    pub fn t_ms(&self) -> i64 {
        match &self.record {
            Record::Health(h) => h.sampled_at_ms,
            Record::Lines(lines) => lines.first().map_or(0, |l| l.t_ms),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Record {
    /// A whole health reading of the host.
    Health(HostHealth),
    /// Lines read from the host's log files.
    Lines(Vec<NewLog>),
}

/// Records an agent dropped, unsent, because its spool was full: the hub shows the hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub from_ms: i64,
    pub to_ms: i64,
    pub records: u64,
}

/// The hub's answer to a push: every record at or below `acked` is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub acked: u64,
}

/// What an agent says when it opens its stream of orders: who it is and what may run on its host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The host; must be the name its token was enrolled with.
    pub agent: String,
    pub version: String,
    /// The commands of its `--commands` file, as the browser may see them (never their programs).
    #[serde(default)]
    pub commands: Vec<CommandInfo>,
}

/// What the hub asks of an agent, one per event on its stream of orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "order", rename_all = "snake_case")]
pub enum Order {
    /// Run a declared command; the agent checks the parameters against its own declaration again.
    Run {
        run: i64,
        command: String,
        target: String,
        #[serde(default)]
        params: BTreeMap<String, String>,
    },
    /// Stop a run (its process group): `by` cancelled it.
    Cancel { run: i64, by: String },
    /// Sample every `interval_ms` from now on, without a restart; `None`: at the agent's own `--interval`.
    /// Sent first on every stream the agent opens and again whenever an operator changes it, so an agent
    /// that restarts, or reconnects after the setting changed, samples as the hub says.
    Configure {
        #[serde(default)]
        interval_ms: Option<u64>,
    },
}

/// A run's progress from the agent, in order: its next output lines and, last, how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The number of the first line in `lines` (counted from 0 over the whole run), so a report sent again
    /// after a lost answer is taken once.
    pub first: u64,
    #[serde(default)]
    pub lines: Vec<OutputLine>,
    #[serde(default)]
    pub end: Option<RunEnd>,
}

/// How a run ended on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnd {
    pub state: RunState,
    pub exit_code: Option<i32>,
    pub detail: String,
}
