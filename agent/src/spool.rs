//! The spool: every record the agent reads, on disk, until the hub has acknowledged it.
//!
//! Records are appended as JSON lines to segment files named by their first record's sequence number; the
//! hub's acknowledged mark is kept in `acked` (written to a new file and renamed over the old, so it is whole
//! or the previous one). Sending reads forward from the first unacknowledged record; a segment wholly
//! acknowledged is deleted. Past `max_bytes` the oldest segment goes, acknowledged or not, and what it held
//! unsent becomes a [`Gap`] the hub is told about. A line cut short by a crash is dropped when the spool
//! opens. Each append is written to the file before it returns (the kernel keeps it across a crash of the
//! agent; a power cut may cost the last moments).

use collect::clock::now_micros;
use collect::wire::{Gap, Item, Record};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const SEGMENT_SUFFIX: &str = "spool";
const ACKED_FILE: &str = "acked";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode a record: {0}")]
    Encode(#[from] serde_json::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    bytes: u64,
}

/// Where the next record to send starts: a segment (by its place in the list) and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    segment: usize,
    offset: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// The newest segment, open for appending.
    writer: Option<File>,
    acked: u64,
    last_seq: u64,
    /// The first record not yet acknowledged.
    head: Position,
    /// Records appended and not acknowledged (nor dropped).
    unacked: u64,
    /// The records [`Spool::peek`] returned last, with where each one ends.
    peeked: Vec<(u64, Position)>,
    /// The newest health reading appended, shown by the hub while older ones are still on their way.
    latest_health: Option<Item>,
    /// Dropped stretches the hub has not been told of yet.
    gaps: Vec<Gap>,
}

impl Spool {
    /// Opens (or creates, private to this user) the spool in `dir`, holding at most `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        create_private_dir(dir).map_err(io(dir))?;
        let acked_path = dir.join(ACKED_FILE);
        let acked = match std::fs::read_to_string(&acked_path) {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&acked_path)(e)),
        };
        let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                let first = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(&format!(".{SEGMENT_SUFFIX}"))?
                    .parse::<u64>()
                    .ok()?;
                Some((first, path))
            })
            .collect();
        names.sort();
        let mut spool = Spool {
            dir: dir.to_owned(),
            max_bytes,
            // Small enough that the oldest segment going costs a small part of the spool, large enough
            // that files stay few.
            segment_bytes: (max_bytes / 16).clamp(64 << 10, 8 << 20),
            segments: VecDeque::new(),
            writer: None,
            acked,
            last_seq: acked,
            head: Position {
                segment: 0,
                offset: 0,
            },
            unacked: 0,
            peeked: Vec::new(),
            latest_health: None,
            gaps: Vec::new(),
        };
        for (_, path) in names {
            let (records, bytes, last) = spool.recover(&path)?;
            if bytes == 0 {
                std::fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            spool.last_seq = spool.last_seq.max(last);
            spool.unacked += records;
            spool.segments.push_back(Segment { path, bytes });
        }
        spool.head = spool.first_unacked()?;
        spool.drop_acked_segments()?;
        Ok(spool)
    }

    /// Reads a segment: trims a line cut short, counts the records above the mark, and finds its last number.
    fn recover(&mut self, path: &Path) -> Result<(u64, u64, u64), SpoolError> {
        let lines = read_lines(path, 0, usize::MAX)?;
        let whole: u64 = lines.iter().map(|(len, _)| len).sum();
        let (mut records, mut last) = (0u64, 0u64);
        for (_, item) in lines {
            // A damaged line is skipped, not fatal: the records around it still go.
            let Some(item) = item else {
                tracing::warn!("skipping an unreadable record in {}", path.display());
                continue;
            };
            last = item.seq;
            if item.seq > self.acked {
                records += 1;
                if matches!(item.record, Record::Health(_)) {
                    self.latest_health = Some(item);
                }
            }
        }
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(whole))
            .map_err(io(path))?;
        Ok((records, whole, last))
    }

    /// Where the first record above the mark is.
    fn first_unacked(&self) -> Result<Position, SpoolError> {
        for (i, segment) in self.segments.iter().enumerate() {
            let mut offset = 0;
            for line in read_lines(&segment.path, 0, usize::MAX)? {
                let (len, item) = line;
                if item.is_some_and(|item| item.seq > self.acked) {
                    return Ok(Position { segment: i, offset });
                }
                offset += len;
            }
        }
        Ok(self.end())
    }

    fn end(&self) -> Position {
        match self.segments.back() {
            Some(last) => Position {
                segment: self.segments.len() - 1,
                offset: last.bytes,
            },
            None => Position {
                segment: 0,
                offset: 0,
            },
        }
    }

    /// Keeps `record` under the next sequence number (from the clock, so numbers keep rising across restarts
    /// without being stored), and returns the number.
    pub fn append(&mut self, record: Record) -> Result<u64, SpoolError> {
        let seq = now_micros().max(self.last_seq + 1);
        let item = Item { seq, record };
        let mut line = serde_json::to_vec(&item)?;
        line.push(b'\n');
        let len = line.len() as u64;
        let rotate = self
            .segments
            .back()
            .is_none_or(|s| s.bytes > 0 && s.bytes + len > self.segment_bytes);
        if rotate || self.writer.is_none() {
            self.start_segment(seq, rotate)?;
        }
        let Some(segment) = self.segments.back_mut() else {
            unreachable!("a segment was just started");
        };
        let writer = self.writer.as_mut().ok_or_else(|| SpoolError::Io {
            path: segment.path.clone(),
            source: std::io::Error::other("no open segment"),
        })?;
        writer.write_all(&line).map_err(io(&segment.path))?;
        segment.bytes += len;
        self.last_seq = seq;
        self.unacked += 1;
        if matches!(item.record, Record::Health(_)) {
            self.latest_health = Some(item);
        }
        self.enforce_limit()?;
        Ok(seq)
    }

    /// Opens the newest segment for appending, or a new one named `seq` when `new`.
    fn start_segment(&mut self, seq: u64, new: bool) -> Result<(), SpoolError> {
        if new {
            let path = self.dir.join(format!("{seq:020}.{SEGMENT_SUFFIX}"));
            self.segments.push_back(Segment { path, bytes: 0 });
        }
        let Some(segment) = self.segments.back() else {
            return Ok(());
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&segment.path)
            .map_err(io(&segment.path))?;
        self.writer = Some(file);
        Ok(())
    }

    /// Drops the oldest segments while the spool holds more than its limit, noting what went unsent.
    fn enforce_limit(&mut self) -> Result<(), SpoolError> {
        while self.segments.len() > 1 && self.bytes() > self.max_bytes {
            let Some(oldest) = self.segments.pop_front() else {
                break;
            };
            let from = if self.head.segment == 0 {
                self.head.offset
            } else {
                oldest.bytes
            };
            let lost: Vec<Item> = read_lines(&oldest.path, from, usize::MAX)?
                .into_iter()
                .filter_map(|(_, item)| item)
                .filter(|item| item.seq > self.acked)
                .collect();
            std::fs::remove_file(&oldest.path).map_err(io(&oldest.path))?;
            if let (Some(first), Some(last)) = (lost.first(), lost.last()) {
                let gap = Gap {
                    from_ms: first.t_ms(),
                    to_ms: last.t_ms(),
                    records: lost.len() as u64,
                };
                tracing::warn!(
                    records = gap.records,
                    "the spool is full: dropped its oldest records, which the hub never received"
                );
                self.unacked = self.unacked.saturating_sub(gap.records);
                self.gaps.push(gap);
            }
            self.head = if self.head.segment == 0 {
                Position {
                    segment: 0,
                    offset: 0,
                }
            } else {
                Position {
                    segment: self.head.segment - 1,
                    offset: self.head.offset,
                }
            };
            // What was peeked in the dropped segment is gone; the rest moved up one place.
            self.peeked.retain(|(_, end)| end.segment > 0);
            for (_, end) in &mut self.peeked {
                end.segment -= 1;
            }
        }
        Ok(())
    }

    /// Up to `max_records` records (and about `max_bytes`) from the first unacknowledged one, oldest first.
    pub fn peek(&mut self, max_records: usize, max_bytes: usize) -> Result<Vec<Item>, SpoolError> {
        self.peeked.clear();
        let mut items = Vec::new();
        let mut bytes = 0usize;
        let mut at = self.head;
        while at.segment < self.segments.len() && items.len() < max_records && bytes < max_bytes {
            let segment = &self.segments[at.segment];
            for (len, item) in read_lines(&segment.path, at.offset, max_records - items.len())? {
                at.offset += len;
                bytes += len as usize;
                if let Some(item) = item.filter(|i| i.seq > self.acked) {
                    self.peeked.push((item.seq, at));
                    items.push(item);
                }
                if items.len() >= max_records || bytes >= max_bytes {
                    break;
                }
            }
            if at.offset >= segment.bytes && at.segment + 1 < self.segments.len() {
                at = Position {
                    segment: at.segment + 1,
                    offset: 0,
                };
            } else {
                break;
            }
        }
        Ok(items)
    }

    /// The hub has recorded everything up to `acked`: moves past it, keeps the mark, deletes what is done.
    pub fn ack(&mut self, acked: u64) -> Result<(), SpoolError> {
        if acked <= self.acked {
            return Ok(());
        }
        if let Some(&(_, end)) = self.peeked.iter().rev().find(|(seq, _)| *seq <= acked) {
            let done = self.peeked.iter().filter(|(seq, _)| *seq <= acked).count() as u64;
            self.unacked = self.unacked.saturating_sub(done);
            self.head = end;
        }
        self.peeked.retain(|(seq, _)| *seq > acked);
        self.acked = acked;
        let path = self.dir.join(ACKED_FILE);
        let tmp = self.dir.join(format!("{ACKED_FILE}.tmp"));
        std::fs::write(&tmp, acked.to_string()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        self.drop_acked_segments()
    }

    /// Deletes the segments before the one holding the first unacknowledged record.
    fn drop_acked_segments(&mut self) -> Result<(), SpoolError> {
        while self.head.segment > 0 {
            if let Some(done) = self.segments.pop_front() {
                std::fs::remove_file(&done.path).map_err(io(&done.path))?;
            }
            self.head.segment -= 1;
        }
        // The newest segment wholly sent and large: start afresh, so files do not grow without end.
        if self.segments.len() == 1
            && self.head == self.end()
            && self.segments[0].bytes >= self.segment_bytes / 2
            && let Some(done) = self.segments.pop_front()
        {
            std::fs::remove_file(&done.path).map_err(io(&done.path))?;
            self.writer = None;
            self.head = Position {
                segment: 0,
                offset: 0,
            };
        }
        Ok(())
    }

    /// The newest health reading, when it is not yet acknowledged.
    pub fn latest_health(&self) -> Option<&Item> {
        self.latest_health.as_ref().filter(|i| i.seq > self.acked)
    }

    /// Dropped stretches not yet reported; the caller reports them and calls [`Spool::gaps_reported`].
    pub fn gaps(&self) -> &[Gap] {
        &self.gaps
    }

    pub fn gaps_reported(&mut self, n: usize) {
        self.gaps.drain(..n.min(self.gaps.len()));
    }

    /// Records waiting for the hub.
    pub fn unacked(&self) -> u64 {
        self.unacked
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }
}

/// Whole lines of `path` from `offset` (at most `max`), each with its length and the record it holds (`None`
/// when damaged, not UTF-8 or not JSON of a record). A line without its end (cut short by a crash) is left out.
fn read_lines(
    path: &Path,
    offset: u64,
    max: usize,
) -> Result<Vec<(u64, Option<Item>)>, SpoolError> {
    let mut file = File::open(path).map_err(io(path))?;
    file.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut line = Vec::new();
    while out.len() < max {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io(path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        out.push((n as u64, serde_json::from_slice(&line).ok()));
    }
    Ok(out)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{Level, NewLog};

    fn line(t_ms: i64, text: &str) -> Record {
        Record::Lines(vec![NewLog {
            t_ms,
            level: Level::Info,
            service: "s".into(),
            message: text.into(),
            fields: Default::default(),
        }])
    }

    fn texts(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match &i.record {
                Record::Lines(l) => l[0].message.clone(),
                Record::Health(_) => "health".into(),
            })
            .collect()
    }

    #[test]
    fn records_wait_until_acknowledged_and_the_mark_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let seqs: Vec<u64> = (0..5)
            .map(|i| spool.append(line(i, &format!("r{i}"))).unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] > w[0]));
        let first = spool.peek(3, 1 << 20).unwrap();
        assert_eq!(texts(&first), ["r0", "r1", "r2"]);
        // Not acknowledged: the same again.
        assert_eq!(texts(&spool.peek(3, 1 << 20).unwrap()), ["r0", "r1", "r2"]);
        spool.ack(first[1].seq).unwrap();
        assert_eq!(spool.unacked(), 3);
        assert_eq!(texts(&spool.peek(10, 1 << 20).unwrap()), ["r2", "r3", "r4"]);
        drop(spool);

        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.unacked(), 3);
        assert_eq!(texts(&spool.peek(10, 1 << 20).unwrap()), ["r2", "r3", "r4"]);
        let next = spool.append(line(9, "r5")).unwrap();
        assert!(next > seqs[4], "numbers keep rising after a restart");
        let all = spool.peek(10, 1 << 20).unwrap();
        spool.ack(all.last().unwrap().seq).unwrap();
        assert_eq!(spool.unacked(), 0);
        assert!(spool.peek(10, 1 << 20).unwrap().is_empty());
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_reports_the_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let text = "x".repeat(1000);
        for i in 0..3000 {
            spool.append(line(i * 1000, &text)).unwrap();
        }
        assert!(spool.bytes() <= (1 << 20) + 70_000, "{}", spool.bytes());
        let gaps = spool.gaps().to_vec();
        assert!(!gaps.is_empty());
        assert_eq!(gaps[0].from_ms, 0, "the oldest went first");
        let dropped: u64 = gaps.iter().map(|g| g.records).sum();
        assert_eq!(
            spool.unacked() + dropped,
            3000,
            "every record is sent or reported lost"
        );
        let oldest_kept = spool.peek(1, 1 << 20).unwrap();
        assert_eq!(
            oldest_kept[0].t_ms(),
            gaps.last().unwrap().to_ms + 1000,
            "what is kept starts right after the gap"
        );
        spool.gaps_reported(gaps.len());
        assert!(spool.gaps().is_empty());
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(line(1, "whole")).unwrap();
        drop(spool);
        let segment = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.path().extension().is_some_and(|x| x == SEGMENT_SUFFIX))
            .unwrap()
            .path();
        let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
        f.write_all(b"{\"seq\":99999999999999999,\"rec").unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(texts(&spool.peek(10, 1 << 20).unwrap()), ["whole"]);
        spool.append(line(2, "after")).unwrap();
        assert_eq!(texts(&spool.peek(10, 1 << 20).unwrap()), ["whole", "after"]);
    }
}
