//! Log files named in configuration, followed like `tail -F` into the error log.
//!
//! Each file is polled on its own thread (file reads block): new complete lines are read from where the last
//! poll stopped. Rotation is noticed by the path pointing at a different file (rename-and-create: the rest of
//! the old file is read first) or the file shrinking (copy-and-truncate: reading starts over). A file that
//! does not exist yet is waited for. Lines become entries of the file's service; a JSON line with `level` and
//! `message` keeps its own, otherwise the level is read from the usual words (ERROR, WARN, …).

use crate::Sink;
use crate::clock::now_millis;
use shared::{Level, MAX_MESSAGE_BYTES, NewLog, truncate};
use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often each file is looked at.
const POLL: Duration = Duration::from_millis(250);
/// Bytes read per poll at most, so a huge backlog is taken in steps rather than in one allocation.
const READ_CHUNK: usize = 1 << 20;

/// One file to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailedFile {
    pub service: String,
    pub path: PathBuf,
}

impl std::str::FromStr for TailedFile {
    type Err = String;

    /// `SERVICE=PATH`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (service, path) = s
            .split_once('=')
            .filter(|(service, path)| !service.trim().is_empty() && !path.trim().is_empty())
            .ok_or_else(|| format!("'{s}' is not SERVICE=PATH"))?;
        Ok(TailedFile {
            service: service.trim().to_owned(),
            path: PathBuf::from(path.trim()),
        })
    }
}

/// Starts following every file (a thread each) until `shutdown`; the future it returns hands their entries
/// to `sink` and is for the caller to spawn on its runtime. `None` when there is nothing to follow.
pub fn spawn_tailers(
    files: &[TailedFile],
    sink: Arc<dyn Sink>,
    shutdown: &CancellationToken,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    if files.is_empty() {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<Vec<NewLog>>(64);
    for file in files {
        let (file, tx, shutdown) = (file.clone(), tx.clone(), shutdown.clone());
        let name = format!("tail {}", file.path.display());
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || follow(file, tx, shutdown));
        if let Err(e) = spawned {
            tracing::error!("cannot start following a log file: {e}");
        }
    }
    Some(async move {
        while let Some(entries) = rx.recv().await {
            if let Err(e) = sink.lines(entries).await {
                tracing::warn!("cannot keep lines from a log file: {e}");
            }
        }
    })
}

/// Where a followed file stands.
struct Position {
    file: File,
    /// Device and inode: the identity of the file the path named when it was opened.
    id: (u64, u64),
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
}

fn follow(target: TailedFile, tx: mpsc::Sender<Vec<NewLog>>, shutdown: CancellationToken) {
    let mut position: Option<Position> = None;
    let mut missing_reported = false;
    // The first opening starts at the end, as `tail -F` does: what was there before is history.
    let mut from_start = false;
    while !shutdown.is_cancelled() {
        let current = std::fs::metadata(&target.path)
            .ok()
            .map(|m| ((m.dev(), m.ino()), m.len()));
        match (&mut position, current) {
            (None, None) => {
                if !missing_reported {
                    tracing::warn!(
                        "log file {} does not exist (yet); waiting for it",
                        target.path.display()
                    );
                    missing_reported = true;
                }
                from_start = true;
            }
            (None, Some(_)) => match File::open(&target.path) {
                Ok(mut file) => {
                    let id = file
                        .metadata()
                        .map(|m| (m.dev(), m.ino()))
                        .unwrap_or_default();
                    let offset = if from_start {
                        0
                    } else {
                        file.seek(SeekFrom::End(0)).unwrap_or(0)
                    };
                    missing_reported = false;
                    position = Some(Position {
                        file,
                        id,
                        offset,
                        partial: Vec::new(),
                    });
                    continue;
                }
                Err(e) => {
                    if !missing_reported {
                        tracing::warn!("cannot open log file {}: {e}", target.path.display());
                        missing_reported = true;
                    }
                }
            },
            (Some(pos), current) => {
                // Read what the open file has, whatever the path now points at.
                send(&tx, &target.service, read_new(pos));
                match current {
                    // Rotated away (renamed, or deleted): the next file starts from its beginning.
                    Some((id, _)) if id != pos.id => {
                        position = None;
                        from_start = true;
                        continue;
                    }
                    None => {
                        position = None;
                        from_start = true;
                    }
                    // Truncated in place: start over.
                    Some((_, len)) if len < pos.offset => {
                        pos.offset = 0;
                        pos.partial.clear();
                        continue;
                    }
                    Some(_) => {}
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Complete lines added since the last read.
fn read_new(pos: &mut Position) -> Vec<String> {
    let mut buf = Vec::new();
    if pos.file.seek(SeekFrom::Start(pos.offset)).is_err() {
        return Vec::new();
    }
    let read = (&mut pos.file)
        .take(READ_CHUNK as u64)
        .read_to_end(&mut buf)
        .unwrap_or(0);
    pos.offset += read as u64;
    let mut lines = Vec::new();
    let mut rest = buf.as_slice();
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        pos.partial.extend_from_slice(&rest[..end]);
        rest = &rest[end + 1..];
        let line = String::from_utf8_lossy(&pos.partial)
            .trim_end_matches('\r')
            .to_owned();
        pos.partial.clear();
        if !line.trim().is_empty() {
            lines.push(line);
        }
    }
    pos.partial.extend_from_slice(rest);
    // A "line" that never ends is cut into entries rather than held forever.
    if pos.partial.len() > MAX_MESSAGE_BYTES * 2 {
        lines.push(String::from_utf8_lossy(&pos.partial).into_owned());
        pos.partial.clear();
    }
    lines
}

fn send(tx: &mpsc::Sender<Vec<NewLog>>, service: &str, lines: Vec<String>) {
    if lines.is_empty() {
        return;
    }
    let now = now_millis();
    let entries = lines.into_iter().map(|l| entry(service, l, now)).collect();
    // The writer task is gone only at shutdown.
    let _ = tx.blocking_send(entries);
}

/// One line as an entry: a JSON object with `level` and `message` speaks for itself; a plain line gets the
/// level its words say.
fn entry(service: &str, line: String, now_ms: i64) -> NewLog {
    if line.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&line)
        && let (Some(level), Some(message)) = (
            map.get("level")
                .and_then(|l| l.as_str())
                .and_then(|l| l.parse::<Level>().ok()),
            map.get("message")
                .or_else(|| map.get("msg"))
                .and_then(|m| m.as_str()),
        )
    {
        return NewLog {
            t_ms: now_ms,
            level,
            service: service.to_owned(),
            message: truncate(message.to_owned()),
            fields: Default::default(),
        };
    }
    NewLog {
        t_ms: now_ms,
        level: level_of(&line),
        service: service.to_owned(),
        message: truncate(line),
        fields: Default::default(),
    }
}

/// The level a plain log line announces, by the first level word in it; `info` when it names none.
fn level_of(line: &str) -> Level {
    let upper = line.to_ascii_uppercase();
    upper
        .split(|c: char| !c.is_ascii_alphabetic())
        .find_map(|word| match word {
            "CRITICAL" | "CRIT" | "FATAL" | "PANIC" | "EMERG" | "ALERT" => Some(Level::Critical),
            "ERROR" | "ERR" => Some(Level::Error),
            "WARN" | "WARNING" => Some(Level::Warn),
            "INFO" | "NOTICE" => Some(Level::Info),
            "DEBUG" => Some(Level::Debug),
            "TRACE" => Some(Level::Trace),
            _ => None,
        })
        .unwrap_or(Level::Info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_take_the_level_they_name() {
        assert_eq!(level_of("2026-11-26 ERROR [api] boom"), Level::Error);
        assert_eq!(level_of("level=warning msg=slow"), Level::Warn);
        assert_eq!(level_of("nginx: [emerg] bind() failed"), Level::Critical);
        assert_eq!(
            level_of("GET /errors 200"),
            Level::Info,
            "a word, not a substring"
        );
    }

    #[test]
    fn json_lines_keep_their_own_level_and_message() {
        let e = entry(
            "app",
            r#"{"level":"error","msg":"db down","x":1}"#.into(),
            5,
        );
        assert_eq!((e.level, e.message.as_str()), (Level::Error, "db down"));
        let e = entry("app", r#"{"not":"a log"}"#.into(), 5);
        assert_eq!(e.level, Level::Info);
    }

    #[test]
    fn the_flag_form_is_service_equals_path() {
        let t: TailedFile = "nginx=/var/log/nginx/error.log".parse().unwrap();
        assert_eq!(t.service, "nginx");
        assert!("nginx".parse::<TailedFile>().is_err());
        assert!("=/x".parse::<TailedFile>().is_err());
    }
}
