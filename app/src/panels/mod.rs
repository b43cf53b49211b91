//! The dashboard's panels, one module each, each with its own chart options; the page that lays them out is
//! `pages::dashboard`.

pub(crate) mod alerts;
pub(crate) mod api;
pub(crate) mod controls;
pub(crate) mod database;
pub(crate) mod deployments;
pub(crate) mod errors;
pub(crate) mod health;
pub(crate) mod security;
