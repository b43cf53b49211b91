//! Where readings and log lines come from. Each source knows only where its output goes (the outlet, or the
//! log book for lines), never who consumes it.

pub mod demo;
pub mod host;
pub mod http_self;
pub mod postgres;
pub mod scrape;
pub mod tail;
