//! Writing the audit trail, and reading it back: `GET /api/audit` (JSON pages or a CSV/JSON export).
//!
//! [`AuditLog::begin`] writes the entry before the action takes effect; when that write fails the action
//! does not happen (an action that cannot be audited is refused with 503). [`AuditLog::complete`] records
//! how it ended. There is no route that changes or deletes an entry, and the store refuses it anyway.

use crate::clock::now_millis;
use shared::{
    AUDIT_CSV_HEADER, AuditEntry, AuditFilter, AuditPage, Caller, MAX_AUDIT_PAGE, Outcome,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use store::{AuditTrail, NewAudit, Place, StoreError};

/// The audit trail as the server writes it. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn AuditTrail>,
}

/// An entry begun and not yet completed.
#[must_use = "complete the entry with how the action ended"]
pub struct Begun {
    pub id: i64,
}

impl AuditLog {
    pub fn new(store: Arc<dyn AuditTrail>) -> Self {
        AuditLog { store }
    }

    pub fn store(&self) -> &Arc<dyn AuditTrail> {
        &self.store
    }

    /// Writes the entry for an action `caller` is about to take.
    pub async fn begin(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        params: BTreeMap<String, String>,
    ) -> Result<Begun, StoreError> {
        self.begin_at(caller, None, action, target, params).await
    }

    /// As [`AuditLog::begin`], for an action on an agent's host (`place`), which the entry names.
    pub async fn begin_at(
        &self,
        caller: &Caller,
        place: Option<Place>,
        action: &str,
        target: &str,
        params: BTreeMap<String, String>,
    ) -> Result<Begun, StoreError> {
        let entry = self
            .store
            .begin_audit(NewAudit {
                at_ms: now_millis(),
                actor: caller.name.clone(),
                role: caller.role,
                ip: caller.ip.clone(),
                action: action.to_owned(),
                target: target.to_owned(),
                params,
                place,
            })
            .await
            .inspect_err(|e| tracing::error!("cannot write the audit trail: {e}"))?;
        Ok(Begun { id: entry.id })
    }

    /// Records how the action ended: `Ok` with a detail, or the error's text.
    pub async fn complete<T, E: std::fmt::Display>(
        &self,
        begun: Begun,
        result: &Result<T, E>,
        detail: impl FnOnce(&T) -> String,
    ) {
        let (outcome, text) = match result {
            Ok(value) => (Outcome::Succeeded, detail(value)),
            Err(e) => (Outcome::Failed, e.to_string()),
        };
        if let Err(e) = self
            .store
            .complete_audit(begun.id, outcome, &text, now_millis())
            .await
        {
            // The entry stays pending; the next start marks it interrupted rather than losing it.
            tracing::error!(entry = begun.id, "cannot complete the audit entry: {e}");
        }
    }

    /// Begins, runs `action`, completes: the usual shape of an audited admin action. An entry that cannot
    /// be written stops the action (503).
    pub async fn around<T, E>(
        &self,
        caller: &Caller,
        what: (&str, &str),
        params: BTreeMap<String, String>,
        action: impl std::future::Future<Output = Result<T, E>>,
        detail: impl FnOnce(&T) -> String,
    ) -> Result<T, E>
    where
        E: std::fmt::Display + From<StoreError>,
    {
        let begun = self.begin(caller, what.0, what.1, params).await?;
        let result = action.await;
        self.complete(begun, &result, detail).await;
        result
    }

    /// A page of entries that match `filter`, newest first.
    pub async fn page(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        self.store.audit(filter, before, limit).await
    }

    /// Every entry that matches `filter` (older than `before`), newest first, up to [`MAX_EXPORT`].
    pub async fn export(
        &self,
        filter: &AuditFilter,
        mut before: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut entries = Vec::new();
        loop {
            let AuditPage {
                entries: page,
                next,
            } = self.store.audit(filter, before, MAX_AUDIT_PAGE).await?;
            entries.extend(page);
            match next {
                Some(id) if entries.len() < MAX_EXPORT => before = Some(id),
                _ => break,
            }
        }
        entries.truncate(MAX_EXPORT);
        Ok(entries)
    }
}

/// How many entries an export holds at most: a year of a busy team fits, a runaway query does not.
const MAX_EXPORT: usize = 100_000;

/// RFC 4180 CSV: fields with a comma, quote or line break are quoted, quotes doubled. A field that a
/// spreadsheet would take for a formula (`=`, `+`, `-`, `@` first) is prefixed with `'`, so an exported
/// trail cannot run anything when opened (CWE-1236).
pub fn csv(entries: &[AuditEntry]) -> String {
    fn field(out: &mut String, value: &str) {
        let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{value}")
        } else {
            value.to_owned()
        };
        if value.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&value.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&value);
        }
    }
    let mut out = AUDIT_CSV_HEADER.join(",");
    out.push_str("\r\n");
    for e in entries {
        let time = crate::clock::rfc3339(e.at_ms);
        let params = serde_json::to_string(&e.params).unwrap_or_default();
        let duration = e.duration_ms().map(|d| d.to_string()).unwrap_or_default();
        let fields = [
            e.id.to_string(),
            time,
            e.actor.clone(),
            e.role.to_string(),
            e.ip.clone(),
            e.action.clone(),
            e.target.clone(),
            params,
            e.outcome.as_str().to_owned(),
            e.detail.clone(),
            duration,
            e.host.clone().unwrap_or_default(),
            e.environment.clone().unwrap_or_default(),
        ];
        for (i, value) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, value);
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Role;

    #[test]
    fn csv_quotes_what_needs_it_and_defuses_formulas() {
        let entry = AuditEntry {
            id: 1,
            at_ms: 0,
            actor: "=cmd|' /C calc'!A0".into(),
            role: Role::Admin,
            ip: "127.0.0.1".into(),
            action: "user.add".into(),
            target: "a,b".into(),
            params: BTreeMap::from([("role".into(), "viewer".into())]),
            outcome: Outcome::Succeeded,
            detail: "said \"hi\"\nthen left".into(),
            finished_ms: Some(12),
            host: None,
            environment: None,
        };
        let text = csv(&[entry]);
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next().unwrap(), AUDIT_CSV_HEADER.join(","));
        assert_eq!(
            lines.next().unwrap(),
            "1,1970-01-01T00:00:00Z,'=cmd|' /C calc'!A0,admin,127.0.0.1,user.add,\"a,b\",\
             \"{\"\"role\"\":\"\"viewer\"\"}\",succeeded,\"said \"\"hi\"\"\nthen left\",12,,"
        );
    }
}
