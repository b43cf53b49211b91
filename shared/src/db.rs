//! Database metrics: per database target, connections and query performance, as the panel's bar charts show
//! them. Each reading is a target's whole current state.

use serde::{Deserialize, Serialize};

/// What kind of database a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DbKind {
    /// Watchpost's own store.
    Store,
    Postgres,
}

/// Connections in one state (`active`, `idle`, `idle in transaction`, … for PostgreSQL; `in use`, `idle`
/// for the store's pool) of one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionCount {
    pub database: String,
    pub state: String,
    pub count: u64,
}

/// One kind of query (a normalised statement, or for the store an operation) and its cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryStat {
    pub query: String,
    pub calls: u64,
    pub mean_ms: f64,
    pub total_ms: f64,
}

/// A database target's whole current reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbReading {
    /// The target's name from configuration (`store` for Watchpost's own).
    pub target: String,
    pub kind: DbKind,
    pub t_ms: i64,
    /// Why the target could not be read; the other figures are then empty.
    pub error: Option<String>,
    pub connections: Vec<ConnectionCount>,
    /// Costliest first (by mean time), at most a screenful.
    pub queries: Vec<QueryStat>,
    /// Committed and rolled-back transactions per second since the previous reading.
    pub tps: Option<f64>,
    /// Share of block reads served from the buffer cache, 0–1.
    pub cache_hit_ratio: Option<f64>,
    /// Deadlocks since the statistics were reset.
    pub deadlocks: Option<u64>,
    /// Something the user should know to see more, e.g. how to enable pg_stat_statements.
    pub note: Option<String>,
}

/// Who reads a watched database's statement texts. pg_stat_statements keeps utility statements verbatim,
/// so a text may hold a literal that is a secret (`ALTER ROLE app PASSWORD '…'`): readers below this role
/// see each statement's kind only (`ALTER …`), with its figures.
pub const STATEMENT_AUDIENCE: crate::Role = crate::Role::Operator;

impl DbReading {
    /// This reading as a reader with `role` may see it: see [`STATEMENT_AUDIENCE`]. Watchpost's own store
    /// lists operation names, not statements, and is shown whole.
    pub fn for_role(mut self, role: crate::Role) -> DbReading {
        if role < STATEMENT_AUDIENCE && self.kind != DbKind::Store {
            for q in &mut self.queries {
                q.query = statement_kind(&q.query);
            }
        }
        self
    }

    /// Whether a reader below [`STATEMENT_AUDIENCE`] sees this reading differently.
    pub fn has_statements(&self) -> bool {
        self.kind != DbKind::Store && !self.queries.is_empty()
    }

    /// Connections of every state and database together.
    pub fn total_connections(&self) -> u64 {
        self.connections.iter().map(|c| c.count).sum()
    }
}

/// A statement's first word, upper-cased, and an ellipsis: `ALTER …`.
fn statement_kind(text: &str) -> String {
    let word: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .take(16)
        .collect();
    if word.is_empty() {
        "…".to_owned()
    } else {
        format!("{} …", word.to_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    #[test]
    fn statement_texts_are_for_operators() {
        let reading = DbReading {
            target: "shop".into(),
            kind: DbKind::Postgres,
            t_ms: 0,
            error: None,
            connections: Vec::new(),
            queries: vec![QueryStat {
                query: "alter role app password 'hunter2'".into(),
                calls: 1,
                mean_ms: 2.0,
                total_ms: 2.0,
            }],
            tps: None,
            cache_hit_ratio: None,
            deadlocks: None,
            note: None,
        };
        let viewer = reading.clone().for_role(Role::Viewer);
        assert_eq!(viewer.queries[0].query, "ALTER …");
        assert_eq!(viewer.queries[0].calls, 1);
        assert_eq!(reading.clone().for_role(Role::Operator), reading);
        let store = DbReading {
            kind: DbKind::Store,
            ..reading.clone()
        };
        assert_eq!(store.clone().for_role(Role::Viewer), store);
        assert_eq!(statement_kind("  \n"), "…");
    }
}
