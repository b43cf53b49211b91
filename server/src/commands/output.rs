//! A run's output: every line into the run's log file (`commands/<id>.log` under the data directory), and
//! the first ones, in numbered chunks, onto the stream.
//!
//! Each file line is `1 text` (standard output) or `2 text` (standard error), so the file keeps which
//! stream a line came from and is still readable with `cut -c3-`. The stream carries at most
//! [`STREAM_MAX_LINES`] lines or [`STREAM_MAX_BYTES`] bytes of a run, so a program that prints megabytes
//! cannot flood every dashboard; the file keeps up to [`FILE_MAX_BYTES`], which protects the disk.

use shared::{OutputLine, OutputPage};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

pub const STREAM_MAX_LINES: u64 = 2_000;
pub const STREAM_MAX_BYTES: u64 = 512 * 1024;
pub const FILE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// The most lines one page read back from a file holds.
pub const MAX_PAGE_LINES: usize = 2_000;

/// Removes run logs older than `keep` (by when they were last written); how many went.
pub async fn prune(dir: &Path, keep: std::time::Duration) -> std::io::Result<usize> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let old = entry
            .metadata()
            .await?
            .modified()?
            .elapsed()
            .is_ok_and(|age| age > keep);
        if old && path.extension().is_some_and(|e| e == "log") {
            tokio::fs::remove_file(&path).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Where the log of run `id` is kept.
pub fn log_path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("{id}.log"))
}

/// Writes a run's lines to its file, stopping (with a last line saying so) at [`FILE_MAX_BYTES`].
pub struct LogFile {
    out: BufWriter<tokio::fs::File>,
    written: u64,
    full: bool,
}

impl LogFile {
    pub async fn create(path: &Path) -> std::io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // Output may hold what only operators should read: not for other local users.
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .await?;
        Ok(LogFile {
            out: BufWriter::new(file),
            written: 0,
            full: false,
        })
    }

    pub async fn write(&mut self, line: &OutputLine) -> std::io::Result<()> {
        if self.full {
            return Ok(());
        }
        let size = line.text.len() as u64 + 3;
        if self.written + size > FILE_MAX_BYTES {
            self.full = true;
            let note = format!(
                "2 [watchpost] the log file reached {} MiB; later output was not kept\n",
                FILE_MAX_BYTES >> 20
            );
            return self.out.write_all(note.as_bytes()).await;
        }
        self.written += size;
        let prefix: &[u8] = if line.stderr { b"2 " } else { b"1 " };
        self.out.write_all(prefix).await?;
        self.out.write_all(line.text.as_bytes()).await?;
        self.out.write_all(b"\n").await
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().await
    }
}

/// Lines `first`, `first + 1`, … of run `id`'s file, at most `limit` of them.
pub async fn read_page(
    dir: &Path,
    id: i64,
    first: u64,
    limit: usize,
) -> std::io::Result<OutputPage> {
    let file = tokio::fs::File::open(log_path(dir, id)).await?;
    let mut reader = BufReader::new(file);
    let limit = limit.clamp(1, MAX_PAGE_LINES);
    let mut page = OutputPage {
        run: id,
        first,
        lines: Vec::new(),
        more: false,
    };
    let mut n = 0u64;
    let mut raw = Vec::new();
    loop {
        raw.clear();
        if reader.read_until(b'\n', &mut raw).await? == 0 {
            break;
        }
        // A last line without its newline is still being written: it comes with a later read.
        let Some(bytes) = raw.strip_suffix(b"\n") else {
            break;
        };
        let line = String::from_utf8_lossy(bytes);
        if n >= first {
            if page.lines.len() == limit {
                page.more = true;
                break;
            }
            let (stderr, text) = match line.split_at_checked(2) {
                Some(("2 ", text)) => (true, text),
                Some((_, text)) => (false, text),
                None => (false, ""),
            };
            page.lines.push(OutputLine {
                stderr,
                text: text.to_owned(),
            });
        }
        n += 1;
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_log_file_reads_back_in_pages_with_its_streams() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = LogFile::create(&log_path(dir.path(), 7)).await.unwrap();
        for i in 0..5 {
            file.write(&OutputLine {
                stderr: i == 3,
                text: format!("line {i}"),
            })
            .await
            .unwrap();
        }
        file.flush().await.unwrap();
        let page = read_page(dir.path(), 7, 2, 2).await.unwrap();
        assert_eq!(
            page.lines,
            [
                OutputLine {
                    stderr: false,
                    text: "line 2".into()
                },
                OutputLine {
                    stderr: true,
                    text: "line 3".into()
                }
            ]
        );
        assert!(page.more);
        assert!(!read_page(dir.path(), 7, 4, 10).await.unwrap().more);
    }
}
