//! The Watchpost server: configuration, the event hub, the host collector, metric history, the SSE stream
//! and the web app.
//!
//! `main.rs` only parses flags and calls [`startup`]; tests build the same application on port 0.

pub mod accounts_cli;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod history;
pub mod http;
pub mod hub;
pub mod logs;
pub mod notify;
pub mod outlet;
pub mod sources;
pub mod startup;
