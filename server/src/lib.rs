//! The Watchpost server. Read top to bottom, the modules are the flow: `sources` turn readings into typed
//! events and hand them to the `outlet`, which publishes them on the `hub` and hands them to the consumers
//! that subscribed (`history`, `alerts`); the domain (`logs`, `deploy`, `commands`, `audit`, `auth`,
//! `notify`) emits through the same door; `http` is the edge where requests come in and domain answers
//! become statuses; `startup` builds it all in dependency order.
//!
//! This file is the facade: what `main.rs`, the integration tests and the bench need is re-exported here;
//! everything else is the crate's own.

mod accounts_cli;
mod actions;
mod alerts;
mod audit;
mod auth;
mod clock;
mod commands;
mod config;
mod data_dir;
mod deploy;
mod exports;
mod fleet;
mod history;
mod http;
mod hub;
mod lease;
mod logs;
mod notify;
mod outlet;
mod sources;
mod startup;
mod storage;
mod tasks;
mod tls;

pub use accounts_cli::{token as token_command, user as user_command};
pub use config::{BusSection, Cli, Command, Config};
pub use sources::own_logs::{CaptureLayer, OwnLogs, capture_layer};
pub use startup::{Application, StartupError};
pub use storage::DATABASE_FILE;

/// What the integration tests reach below the facade: parsing and checking configuration sections, and
/// writing accounts straight into a store, as the CLI does.
pub mod testing {
    pub use crate::alerts::{AlertRuleFile, check_rules};
    pub use crate::auth::secrets::{digest, hash_password, new_token};
    pub use crate::fleet::enrol as enrol_agent;
    pub use crate::notify::NotifyConfig;
    pub use crate::notify::channel::{Channel, ChannelFile, check_channels};
    pub use crate::notify::group::Timing;
    pub use crate::sources::scrape::{ScrapeTarget, TargetOptions, attach as attach_to_targets};
    pub use runner::spec::{CommandFile, CommandSpec, check_all};

    /// Every server function the app registers, as (path, method): what the bad-input suite sends to.
    pub fn server_fn_paths() -> Vec<(String, String)> {
        // The app's functions register themselves when the app crate is linked; naming it makes sure it is.
        let _ = app::App;
        let mut paths: Vec<(String, String)> = leptos::server_fn::axum::server_fn_paths()
            .map(|(path, method)| (path.to_owned(), method.to_string()))
            .collect();
        paths.sort();
        paths
    }
}
