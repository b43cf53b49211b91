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

impl DbReading {
    /// Connections of every state and database together.
    pub fn total_connections(&self) -> u64 {
        self.connections.iter().map(|c| c.count).sum()
    }
}
