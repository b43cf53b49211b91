//! The app's pages, one module each: the dashboard, the fleet (`hosts`), the Alerts page, the audit trail, users and tokens, and
//! signing in.

pub mod account;
pub mod admin;
pub mod alerts;
pub mod audit;
pub mod dashboard;
#[cfg(feature = "dashboard-only")]
pub mod elsewhere;
pub mod hosts;
