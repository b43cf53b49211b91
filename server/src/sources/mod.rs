//! Where readings and log lines come from. Each source knows only where its output goes, never who consumes
//! it: polled sources hand events to the outlet through the [`poll`] driver; the host and file-tail sources
//! (crate `collect`, which `watchpost-agent` runs too) hand theirs to a [`Sink`].

pub mod demo;
pub mod http_self;
pub mod ingest;
pub mod own_logs;
pub mod poll;
pub mod postgres;
pub mod scrape;

pub use collect::{Sink, host, tail};

use crate::logs::LogBook;
use crate::outlet::Outlet;
use shared::{Event, HostId};
use std::future::Future;
use std::pin::Pin;
use store::NewLog;

/// The sink of the server itself.
pub struct Local {
    pub outlet: Outlet,
    pub logs: LogBook,
}

impl Sink for Local {
    fn emit(&self, host: Option<HostId>, event: Event) {
        self.outlet.emit(host, event);
    }

    fn lines(
        &self,
        entries: Vec<NewLog>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.logs
                .append(entries)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

/// `NAME=PATH`: a file holding a secret for one named target (a scrape target's bearer token, a database's
/// URL with its password), so the secret is in neither the command line nor the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFile {
    pub name: String,
    pub path: std::path::PathBuf,
}

impl std::str::FromStr for NamedFile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, path) = s
            .split_once('=')
            .map(|(a, b)| (a.trim(), b.trim()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| format!("'{s}' is not NAME=PATH"))?;
        Ok(NamedFile {
            name: name.to_owned(),
            path: path.into(),
        })
    }
}
