//! The error log: entries from Watchpost's own WARN/ERROR tracing events and from `POST /api/ingest/logs`,
//! stored, streamed to every dashboard as `Logs` events, and paged back newest first by cursor.

use crate::clock::now_millis;
use crate::outlet::{OWN_SERVICE, Outlet};
use shared::{Level, LogCursor, LogEntry, LogFilter, LogPage};
use std::sync::Arc;
use store::{NewLog, Store, StoreError};

pub use shared::truncate;
pub(crate) const MAX_SERVICE_CHARS: usize = 128;
pub(crate) const MAX_FIELDS: usize = 32;
pub(crate) const MAX_FIELD_BYTES: usize = 1024;

/// Writes entries and tells every dashboard. Cheap to clone.
#[derive(Clone)]
pub struct LogBook {
    store: Arc<dyn Store>,
    outlet: Outlet,
}

impl LogBook {
    pub fn new(store: Arc<dyn Store>, outlet: Outlet) -> Self {
        LogBook { store, outlet }
    }

    /// Stores `entries` (all or none) and publishes the newest of them.
    pub async fn append(&self, entries: Vec<NewLog>) -> Result<Vec<LogEntry>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let stored = self.store.append_logs(entries).await?;
        self.outlet.logged(&stored);
        Ok(stored)
    }

    /// Writes one entry under Watchpost's own name (a source's state change, say); a failure is only logged.
    pub async fn own(&self, level: Level, message: String) {
        let entry = NewLog {
            t_ms: now_millis(),
            level,
            service: OWN_SERVICE.into(),
            message,
            fields: Default::default(),
        };
        if let Err(e) = self.append(vec![entry]).await {
            tracing::warn!("cannot write to the error log: {e}");
        }
    }

    pub async fn page(
        &self,
        filter: &LogFilter,
        before: Option<LogCursor>,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        self.store.logs(filter, before, limit).await
    }

    pub async fn services(&self) -> Result<Vec<String>, StoreError> {
        self.store.log_services().await
    }
}

pub(crate) fn clip(value: String, max: usize) -> String {
    if value.len() <= max {
        value
    } else {
        let cut = value.floor_char_boundary(max);
        format!("{}…", &value[..cut])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::MAX_MESSAGE_BYTES;

    #[test]
    fn oversized_messages_are_cut_at_a_character_with_a_marker() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let cut = truncate(long.clone());
        assert!(cut.len() < long.len());
        assert!(cut.ends_with(&format!(
            "[truncated {} bytes]",
            long.len() - MAX_MESSAGE_BYTES
        )));
        assert_eq!(truncate("short".into()), "short");
    }
}
