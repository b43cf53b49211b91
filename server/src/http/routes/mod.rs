//! Route handlers, one file per area: each parses its request, asks the domain, and maps the answer to a
//! status and a body.

pub mod agent;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod demo;
pub mod deployments;
pub mod healthz;
pub mod history;
pub mod logs;
pub mod metrics;
