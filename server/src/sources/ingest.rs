//! Log lines pushed to `POST /api/ingest/logs`: NDJSON or a JSON array, each entry checked, all or none.

use crate::logs::{MAX_FIELD_BYTES, MAX_FIELDS, MAX_SERVICE_CHARS, clip, truncate};
use serde::Serialize;
use serde_json::Value;
use shared::Level;
use std::collections::BTreeMap;
use store::NewLog;

/// The largest ingest request body: about ten thousand typical lines.
pub const MAX_INGEST_BYTES: usize = 4 << 20;

/// One rejected line of an ingest request.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LineError {
    /// 1-based: the line of NDJSON, or the element of a JSON array.
    pub line: usize,
    pub error: String,
}

#[derive(Debug)]
pub enum IngestError {
    Lines {
        total: usize,
        errors: Vec<LineError>,
    },
    Body(String),
}

/// Parses an ingest body: a JSON object or array (`application/json`), or one JSON object per line
/// (`application/x-ndjson`, or any other type). Every entry is checked; one bad entry rejects the request.
pub fn parse_ingest(
    content_type: Option<&str>,
    body: &[u8],
    now_ms: i64,
) -> Result<Vec<NewLog>, IngestError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| IngestError::Body(format!("the body is not UTF-8: {e}")))?;
    let is_json = content_type.is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    let items: Vec<(usize, Result<Value, String>)> = if is_json {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i + 1, Ok(v)))
                .collect(),
            Ok(other) => vec![(1, Ok(other))],
            Err(e) => return Err(IngestError::Body(format!("the body is not JSON: {e}"))),
        }
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                (
                    i + 1,
                    serde_json::from_str(l).map_err(|e| format!("not JSON: {e}")),
                )
            })
            .collect()
    };
    if items.is_empty() {
        return Err(IngestError::Body("no entries in the body".into()));
    }
    let total = items.len();
    let mut entries = Vec::with_capacity(total);
    let mut errors = Vec::new();
    for (line, item) in items {
        match item.and_then(|v| entry(v, now_ms)) {
            Ok(e) => entries.push(e),
            Err(error) => errors.push(LineError { line, error }),
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(IngestError::Lines { total, errors })
    }
}

/// One entry: `{timestamp?, level, service, message, fields?}`.
fn entry(value: Value, now_ms: i64) -> Result<NewLog, String> {
    let Value::Object(mut map) = value else {
        return Err("an entry must be a JSON object".into());
    };
    let t_ms = match map.remove("timestamp") {
        None | Some(Value::Null) => now_ms,
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|t| *t >= 0)
            .ok_or("timestamp: a number must be Unix milliseconds")?,
        Some(Value::String(s)) => {
            let t = time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| {
                    format!("timestamp: '{}' is not RFC 3339 ({e})", clip(s.clone(), 64))
                })?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| "timestamp: out of range".to_string())?
        }
        Some(_) => return Err("timestamp: use an RFC 3339 string or Unix milliseconds".into()),
    };
    let level = match map.remove("level") {
        Some(Value::String(s)) => s.parse::<Level>().map_err(|e| format!("level: {e}"))?,
        Some(_) => return Err("level: must be a string such as \"error\"".into()),
        None => return Err("level is required".into()),
    };
    let service = match map.remove("service") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::String(_)) | None => return Err("service is required".into()),
        Some(_) => return Err("service: must be a string".into()),
    };
    if service.chars().count() > MAX_SERVICE_CHARS || service.chars().any(char::is_control) {
        return Err(format!(
            "service: at most {MAX_SERVICE_CHARS} characters, no control characters"
        ));
    }
    let message = match map.remove("message") {
        Some(Value::String(s)) => truncate(s),
        Some(_) => return Err("message: must be a string".into()),
        None => return Err("message is required".into()),
    };
    let fields = match map.remove("fields") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(fields)) => {
            if fields.len() > MAX_FIELDS {
                return Err(format!("fields: at most {MAX_FIELDS}"));
            }
            fields
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (clip(k, 128), clip(v, MAX_FIELD_BYTES))
                })
                .collect()
        }
        Some(_) => return Err("fields: must be an object".into()),
    };
    if let Some(unknown) = map.keys().next() {
        return Err(format!(
            "unknown key '{}'; entries have timestamp, level, service, message and fields",
            clip(unknown.clone(), 64)
        ));
    }
    Ok(NewLog {
        t_ms,
        level,
        service,
        message,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn ndjson_and_json_bodies_parse_with_defaults() {
        let body = br#"{"level":"error","service":"api","message":"boom","timestamp":"2026-11-26T03:00:00+01:00","fields":{"code":500,"path":"/x"}}

{"level":"WARNING","service":"db","message":"slow"}"#;
        let entries = parse_ingest(Some("application/x-ndjson"), body, NOW).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].t_ms, 1_795_658_400_000);
        assert_eq!(entries[0].fields["code"], "500");
        assert_eq!(entries[1].level, Level::Warn);
        assert_eq!(entries[1].t_ms, NOW);
        let json = br#"[{"level":"info","service":"a","message":"x","timestamp":1000}]"#;
        let entries = parse_ingest(Some("application/json; charset=utf-8"), json, NOW).unwrap();
        assert_eq!(entries[0].t_ms, 1000);
    }

    #[test]
    fn every_bad_line_is_named_with_its_reason() {
        let body = b"{\"level\":\"error\",\"service\":\"api\",\"message\":\"ok\"}\nnot json\n{\"level\":\"loud\",\"service\":\"api\",\"message\":\"m\"}\n{\"level\":\"info\",\"message\":\"m\"}\n{\"level\":\"info\",\"service\":\"a\",\"message\":\"m\",\"colour\":1}";
        let Err(IngestError::Lines { total, errors }) = parse_ingest(None, body, NOW) else {
            panic!("rejected");
        };
        assert_eq!(total, 5);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5]);
        assert!(errors[0].error.starts_with("not JSON"));
        assert!(errors[1].error.contains("unknown level 'loud'"));
        assert_eq!(errors[2].error, "service is required");
        assert!(errors[3].error.contains("unknown key 'colour'"));
    }

    #[test]
    fn empty_and_non_utf8_bodies_are_errors() {
        assert!(matches!(
            parse_ingest(None, b"\n \n", NOW),
            Err(IngestError::Body(_))
        ));
        assert!(matches!(
            parse_ingest(None, &[0xff, 0xfe], NOW),
            Err(IngestError::Body(_))
        ));
        assert!(matches!(
            parse_ingest(Some("application/json"), b"{", NOW),
            Err(IngestError::Body(_))
        ));
    }
}
