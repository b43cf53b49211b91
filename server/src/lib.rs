//! The Watchpost server: configuration, the event hub, the host collector, metric history, the SSE stream
//! and the web app.
//!
//! `main.rs` only parses flags and calls [`startup`]; tests build the same application on port 0.

pub mod accounts_cli;
pub mod alerts;
pub mod api_error;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod collector;
pub mod commands;
pub mod config;
pub mod db_metrics;
pub mod demo;
pub mod deploy;
pub mod healthz;
pub mod history;
pub mod http_metrics;
pub mod hub;
pub mod logs;
pub mod notify;
pub mod outlet;
pub mod scrape;
pub mod serve;
pub mod startup;
pub mod stream;
pub mod tail;
