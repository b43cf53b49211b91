//! The error log: entries, their levels, and the query that pages through them newest first.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// How many of the newest entries the live state (and so every snapshot) carries; older ones are paged in
/// from the store.
pub const RECENT_LOGS: usize = 100;

/// Severity, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }

    /// Stored as a small integer, so "at least warn" is a range.
    pub fn rank(self) -> i64 {
        self as i64
    }

    pub fn from_rank(rank: i64) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.rank() == rank)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level '{0}'; use trace, debug, info, warn, error or critical")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    /// Also the spellings other tools write: `warning`, `err`, `fatal`, `crit`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" | "information" | "notice" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" | "err" => Level::Error,
            "critical" | "crit" | "fatal" | "alert" | "emergency" | "panic" => Level::Critical,
            _ => return Err(UnknownLevel(s.chars().take(32).collect())),
        })
    }
}

/// One stored log entry. Entries are immutable: `id` is assigned by the store and never reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub id: i64,
    /// When it happened (Unix ms), as the source said.
    pub t_ms: i64,
    pub level: Level,
    pub service: String,
    /// Plain text; shown as text, never as HTML.
    pub message: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl LogEntry {
    /// Where this entry sits in newest-first order.
    pub fn cursor(&self) -> LogCursor {
        LogCursor {
            t_ms: self.t_ms,
            id: self.id,
        }
    }
}

/// A position in newest-first order: a page "before" it holds strictly older entries. Opaque to users; a
/// cursor rather than an offset, so entries arriving meanwhile never shift or repeat a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogCursor {
    pub t_ms: i64,
    pub id: i64,
}

impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.t_ms, self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a log cursor (use the `next` value of the previous page)")]
pub struct BadCursor(pub String);

impl FromStr for LogCursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCursor(s.chars().take(48).collect());
        let (t, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(LogCursor {
            t_ms: t.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// Which entries to page through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFilter {
    /// Only entries at least this severe.
    pub level: Option<Level>,
    /// Only this service.
    pub service: Option<String>,
    /// Only entries whose message contains this text (case-insensitive).
    pub text: Option<String>,
    /// Only entries of this host.
    #[serde(default)]
    pub host: Option<String>,
}

/// The field an entry's host is kept in (the hub's own entries carry the hub's host name).
pub const HOST_FIELD: &str = "host";
/// The field an entry's environment is kept in, by which a reader's access is checked.
pub const ENVIRONMENT_FIELD: &str = "environment";

impl LogFilter {
    pub fn matches(&self, e: &LogEntry) -> bool {
        self.level.is_none_or(|l| e.level >= l)
            && self.service.as_ref().is_none_or(|s| &e.service == s)
            && self
                .host
                .as_ref()
                .is_none_or(|h| e.fields.get(HOST_FIELD) == Some(h))
            && self
                .text
                .as_ref()
                .is_none_or(|t| e.message.to_lowercase().contains(&t.to_lowercase()))
    }
}

/// One page, newest first, and where the next (older) page starts, if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    pub next: Option<LogCursor>,
}

/// A log entry before the store has given it an id: what a source read, and what an agent ships to the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLog {
    pub t_ms: i64,
    pub level: Level,
    pub service: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// Longer messages are cut here (at a character boundary) and marked, so one runaway line cannot bloat the
/// store or every dashboard.
pub const MAX_MESSAGE_BYTES: usize = 8 << 10;

/// Cuts a message to [`MAX_MESSAGE_BYTES`], saying how much was cut.
pub fn truncate(message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let cut = message.floor_char_boundary(MAX_MESSAGE_BYTES);
    format!(
        "{}… [truncated {} bytes]",
        &message[..cut],
        message.len() - cut
    )
}

/// Folds new entries into a newest-first list of at most [`RECENT_LOGS`], ignoring ids already present.
pub fn merge_recent(recent: &mut Vec<LogEntry>, new: &[LogEntry]) {
    for e in new {
        if !recent.iter().any(|r| r.id == e.id) {
            recent.push(e.clone());
        }
    }
    recent.sort_by_key(|e| std::cmp::Reverse(e.cursor()));
    recent.truncate(RECENT_LOGS);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, t_ms: i64, level: Level) -> LogEntry {
        LogEntry {
            id,
            t_ms,
            level,
            service: "api".into(),
            message: format!("Message {id}"),
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn levels_parse_the_spellings_tools_use() {
        assert_eq!("WARNING".parse::<Level>(), Ok(Level::Warn));
        assert_eq!("fatal".parse::<Level>(), Ok(Level::Critical));
        assert!("loud".parse::<Level>().is_err());
        for l in Level::ALL {
            assert_eq!(Level::from_rank(l.rank()), Some(l));
        }
    }

    #[test]
    fn cursors_round_trip_and_order_newest_first() {
        let c = LogCursor { t_ms: 17, id: 4 };
        assert_eq!(c.to_string().parse::<LogCursor>(), Ok(c));
        assert!("17".parse::<LogCursor>().is_err());
        assert!("a.b".parse::<LogCursor>().is_err());
    }

    #[test]
    fn recent_entries_merge_without_duplicates_and_stay_bounded() {
        let mut recent = vec![entry(1, 10, Level::Error)];
        merge_recent(
            &mut recent,
            &[entry(1, 10, Level::Error), entry(2, 5, Level::Warn)],
        );
        assert_eq!(recent.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
        let many: Vec<_> = (3..300).map(|i| entry(i, 100 + i, Level::Info)).collect();
        merge_recent(&mut recent, &many);
        assert_eq!(recent.len(), RECENT_LOGS);
        assert_eq!(recent[0].id, 299);
    }

    #[test]
    fn filters_match_level_service_and_text() {
        let e = entry(7, 1, Level::Error);
        let f = |level, service: Option<&str>, text: Option<&str>| LogFilter {
            level,
            service: service.map(Into::into),
            text: text.map(Into::into),
            host: None,
        };
        assert!(f(Some(Level::Warn), Some("api"), Some("message 7")).matches(&e));
        let mut on_web = e.clone();
        on_web.fields.insert(HOST_FIELD.into(), "web-1".into());
        let host = |h: &str| LogFilter {
            host: Some(h.into()),
            ..LogFilter::default()
        };
        assert!(host("web-1").matches(&on_web) && !host("web-2").matches(&on_web));
        assert!(!host("web-1").matches(&e));
        assert!(!f(Some(Level::Critical), None, None).matches(&e));
        assert!(!f(None, Some("db"), None).matches(&e));
        assert!(!f(None, None, Some("nope")).matches(&e));
    }
}
