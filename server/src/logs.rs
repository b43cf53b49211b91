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
pub use shared::{ENVIRONMENT_FIELD, HOST_FIELD};

/// Writes entries and tells every dashboard. Cheap to clone.
#[derive(Clone)]
pub struct LogBook {
    store: Arc<dyn Store>,
    outlet: Outlet,
    /// Where the hub's own entries (and those ingested through it) come from: the `host` and
    /// `environment` fields they are marked with, by which the error log is filtered and scoped.
    home: Arc<Origin>,
}

/// The host and environment an entry is marked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub host: String,
    pub environment: String,
}

impl LogBook {
    pub fn new(store: Arc<dyn Store>, outlet: Outlet, home: Origin) -> Self {
        LogBook {
            store,
            outlet,
            home: Arc::new(home),
        }
    }

    /// Stores `entries` of the hub's own environment (all or none) and publishes the newest of them. An
    /// entry that names no host is the hub's; none may name another environment than the hub's.
    pub async fn append(&self, mut entries: Vec<NewLog>) -> Result<Vec<LogEntry>, StoreError> {
        for entry in &mut entries {
            entry
                .fields
                .entry(HOST_FIELD.into())
                .or_insert_with(|| self.home.host.clone());
            entry
                .fields
                .insert(ENVIRONMENT_FIELD.into(), self.home.environment.clone());
        }
        self.store_and_publish(entries).await
    }

    /// Stores `entries` of another host of the fleet, marked as its.
    pub async fn append_from(
        &self,
        origin: &Origin,
        mut entries: Vec<NewLog>,
    ) -> Result<Vec<LogEntry>, StoreError> {
        for entry in &mut entries {
            entry.fields.insert(HOST_FIELD.into(), origin.host.clone());
            entry
                .fields
                .insert(ENVIRONMENT_FIELD.into(), origin.environment.clone());
        }
        self.store_and_publish(entries).await
    }

    async fn store_and_publish(&self, entries: Vec<NewLog>) -> Result<Vec<LogEntry>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let stored = self.store.append_logs(entries).await?;
        self.outlet.logged(&stored);
        Ok(stored)
    }

    /// Writes one entry under Watchpost's own name (a source's state change, say); a failure is only logged.
    pub async fn own(&self, level: Level, message: String) {
        let home = self.home.clone();
        self.own_about(&home, level, message).await;
    }

    /// As [`LogBook::own`], about another host of the fleet: marked as that host's, so it is shown to
    /// whoever may see that host's environment and no one else.
    pub async fn own_about(&self, origin: &Origin, level: Level, message: String) {
        let entry = NewLog {
            t_ms: now_millis(),
            level,
            service: OWN_SERVICE.into(),
            message,
            fields: Default::default(),
        };
        if let Err(e) = self.append_from(origin, vec![entry]).await {
            tracing::warn!("cannot write to the error log: {e}");
        }
    }

    /// A page of entries matching `filter` of the environments `access` may see.
    pub async fn page(
        &self,
        filter: &LogFilter,
        access: &shared::Access,
        before: Option<LogCursor>,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        self.store
            .logs(filter, &self.scope_for(access), before, limit)
            .await
    }

    /// What `access` may be given of the log and the alert history, as the store's queries take it.
    pub fn scope_for(&self, access: &shared::Access) -> store::ReaderScope {
        store::ReaderScope {
            hidden: access.hidden(),
            home_host: self.home.host.clone(),
            home_environment: self.home.environment.clone(),
        }
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
