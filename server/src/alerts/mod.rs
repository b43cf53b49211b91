//! Alert rules: declared as `[[alerts]]` in the configuration file, evaluated on every new reading (host, API
//! and database figures as the outlet hands them over, and the error log's rate), with the state machine in
//! `shared::alerts` per (rule, series). Every change of an alert is stored (its history) and published whole.
//!
//! One task owns the alerts (`engine`): readings from the outlet, the clock, and acknowledgements and
//! silences from the `handle` all reach that one task, so an acknowledgement can never be overwritten by an
//! evaluation that read the alert before it.
//!
//! ```toml
//! [[alerts]]
//! name = "cpu-high"
//! metric = "cpu"               # a stored metric (cpu, memory, disk, http_p95_ms, db_connections, …)
//!                              # or log_errors_per_minute (error and critical entries per service)
//! subject = "web-1"            # one host, service or target; every one when left out
//! above = 90                   # or: below = 10
//! resolve = 80                 # back below this to resolve (default: the threshold)
//! for = "2m"                   # across the threshold this long before it fires (default 0)
//! clear_after = 3              # clean evaluations in a row to resolve (default 1)
//! severity = "warning"         # info, warning, error, critical
//! labels = { team = "ops" }
//! message = "{subject}: CPU at {value}% (over {threshold}%)"
//! ```

mod engine;
mod handle;
mod rules;

pub use engine::start;
pub use handle::{AlertError, Alerts};
pub use rules::{AlertRuleFile, check_rules, rule_from_draft};
