//! Writing the audit trail, and reading it back: `GET /api/audit` (JSON pages or a CSV/JSON export).
//!
//! [`AuditLog::begin`] writes the entry before the action takes effect; when that write fails the action
//! does not happen (an action that cannot be audited is refused with 503). [`AuditLog::complete`] records
//! how it ended. There is no route that changes or deletes an entry, and the store refuses it anyway.

use crate::api_error::ApiError;
use crate::auth::{Auth, Principal};
use crate::clock::now_millis;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::{
    AUDIT_CSV_HEADER, Action, AuditEntry, AuditFilter, AuditPage, Caller, MAX_AUDIT_PAGE, Outcome,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use store::{AuditTrail, NewAudit, StoreError};

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
}

/// The query of `GET /api/audit`.
fn filter_of(
    params: &HashMap<String, String>,
) -> Result<(AuditFilter, Option<i64>, usize), String> {
    let text = |name: &str| {
        params
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let number = |name: &str| -> Result<Option<i64>, String> {
        text(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("{name} must be a whole number, got '{v}'"))
            })
            .transpose()
    };
    let filter = AuditFilter {
        actor: text("actor"),
        action: text("action"),
        target: text("target"),
        from_ms: number("from_ms")?,
        to_ms: number("to_ms")?,
    };
    if let (Some(from), Some(to)) = (filter.from_ms, filter.to_ms)
        && from >= to
    {
        return Err(format!("from_ms ({from}) must be before to_ms ({to})"));
    }
    let limit = match number("limit")? {
        Some(n) if n < 1 => return Err(format!("limit must be at least 1, got {n}")),
        Some(n) => usize::try_from(n)
            .unwrap_or(MAX_AUDIT_PAGE)
            .min(MAX_AUDIT_PAGE),
        None => 100,
    };
    Ok((filter, number("before")?, limit))
}

/// How many entries an export holds at most: a year of a busy team fits, a runaway query does not.
const MAX_EXPORT: usize = 100_000;

/// `GET /api/audit?actor=&action=&target=&from_ms=&to_ms=&before=&limit=`: a page, newest first;
/// `format=csv` or `format=json` exports every matching entry as a download instead.
pub async fn list(
    auth: &Auth,
    log: &AuditLog,
    principal: Option<&Principal>,
    params: HashMap<String, String>,
) -> Response {
    if let Err(e) = auth.authorize(principal, Action::ViewAudit) {
        return e.into_response();
    }
    let (filter, before, limit) = match filter_of(&params) {
        Ok(parsed) => parsed,
        Err(message) => return ApiError::new(StatusCode::BAD_REQUEST, message).into_response(),
    };
    let format = params.get("format").map(String::as_str);
    match format {
        None => match log.store.audit(&filter, before, limit).await {
            Ok(page) => axum::Json(page).into_response(),
            Err(e) => ApiError::unavailable(format!("the audit trail cannot be read: {e}"))
                .into_response(),
        },
        Some(kind @ ("csv" | "json")) => match export(log, &filter, before).await {
            Ok(entries) => download(kind, &entries),
            Err(e) => ApiError::unavailable(format!("the audit trail cannot be read: {e}"))
                .into_response(),
        },
        Some(other) => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("format must be csv or json, got '{other}'"),
        )
        .into_response(),
    }
}

async fn export(
    log: &AuditLog,
    filter: &AuditFilter,
    mut before: Option<i64>,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut entries = Vec::new();
    loop {
        let AuditPage {
            entries: page,
            next,
        } = log.store.audit(filter, before, MAX_AUDIT_PAGE).await?;
        entries.extend(page);
        match next {
            Some(id) if entries.len() < MAX_EXPORT => before = Some(id),
            _ => break,
        }
    }
    entries.truncate(MAX_EXPORT);
    Ok(entries)
}

fn download(kind: &str, entries: &[AuditEntry]) -> Response {
    let (body, content_type) = if kind == "csv" {
        (csv(entries), "text/csv; charset=utf-8")
    } else {
        (
            serde_json::to_string_pretty(entries).unwrap_or_else(|_| "[]".into()),
            "application/json",
        )
    };
    let disposition = format!(
        "attachment; filename=\"watchpost-audit-{}.{kind}\"",
        now_millis()
    );
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response()
}

/// RFC 4180 CSV: fields with a comma, quote or line break are quoted, quotes doubled. A field that a
/// spreadsheet would take for a formula (`=`, `+`, `-`, `@` first) is prefixed with `'`, so an exported
/// trail cannot run anything when opened (CWE-1236).
fn csv(entries: &[AuditEntry]) -> String {
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
        };
        let text = csv(&[entry]);
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next().unwrap(), AUDIT_CSV_HEADER.join(","));
        assert_eq!(
            lines.next().unwrap(),
            "1,1970-01-01T00:00:00Z,'=cmd|' /C calc'!A0,admin,127.0.0.1,user.add,\"a,b\",\
             \"{\"\"role\"\":\"\"viewer\"\"}\",succeeded,\"said \"\"hi\"\"\nthen left\",12"
        );
    }

    #[test]
    fn queries_are_checked() {
        let q = |pairs: &[(&str, &str)]| {
            filter_of(
                &pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        };
        let (f, before, limit) =
            q(&[("actor", "ana"), ("before", "9"), ("limit", "5000")]).unwrap();
        assert_eq!(
            (f.actor.as_deref(), before, limit),
            (Some("ana"), Some(9), MAX_AUDIT_PAGE)
        );
        assert!(q(&[("from_ms", "x")]).unwrap_err().contains("whole number"));
        assert!(
            q(&[("from_ms", "5"), ("to_ms", "5")])
                .unwrap_err()
                .contains("before")
        );
        assert!(q(&[("limit", "0")]).unwrap_err().contains("at least 1"));
    }
}
