#![recursion_limit = "256"]
//! Integration tests: each starts the real application on port 0 with its own data directory and talks to it
//! over HTTP and SSE, as a browser would. Compiled as one binary (faster to link than one per file).

mod accounts;
mod admin;
mod alerts;
mod api_perf;
mod bad_input;
mod bus;
mod cli;
mod commands;
mod converge;
mod database;
mod demo;
mod deployments;
mod engines;
mod exposition;
mod helpers;
mod history;
mod interop;
mod limits;
mod logs;
mod notify;
mod pages;
mod postgres_store;
mod scrape;
mod security;
mod stream;
