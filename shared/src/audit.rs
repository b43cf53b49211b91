//! The audit trail: who did what, to what, from where, and how it ended. Every command and every admin
//! action is written before it takes effect and completed after; nothing edits or deletes an entry.

use crate::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still going (a command that runs), or the process died before it could say.
    Pending,
    Succeeded,
    Failed,
    /// Watchpost stopped while it ran; found so at the next start.
    Interrupted,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Pending,
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// When it was asked for (ms since the epoch).
    pub at_ms: i64,
    /// Who: a user's name, or `token:NAME`.
    pub actor: String,
    pub role: Role,
    /// The address the request came from.
    pub ip: String,
    /// What, e.g. `command.restart`, `user.add`, `token.revoke`.
    pub action: String,
    /// To what: a service, a user, a token.
    pub target: String,
    /// The parameters as given (never a password or a secret).
    pub params: BTreeMap<String, String>,
    pub outcome: Outcome,
    /// What the outcome says: an exit status, an error message.
    pub detail: String,
    /// When it ended, once it has.
    pub finished_ms: Option<i64>,
    /// The host it was done on when that is not the hub's own (a command run by a host's agent), and that
    /// host's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl AuditEntry {
    /// How long it took, once it ended.
    pub fn duration_ms(&self) -> Option<i64> {
        self.finished_ms.map(|f| f - self.at_ms)
    }
}

/// Which entries to list; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// An action, or the start of one (`command.` matches every command).
    pub action: Option<String>,
    pub target: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// A page of entries, newest first, and the id to continue below.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `None` at the oldest.
    pub next: Option<i64>,
}

/// The most entries one page holds.
pub const MAX_AUDIT_PAGE: usize = 500;

/// Column order of the CSV export.
pub const AUDIT_CSV_HEADER: [&str; 13] = [
    "id",
    "time",
    "actor",
    "role",
    "ip",
    "action",
    "target",
    "params",
    "outcome",
    "detail",
    "duration_ms",
    "host",
    "environment",
];
