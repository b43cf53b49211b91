//! A program's raw output as lines: what a run's log file, the stream and an agent's report carry.

/// Longer lines are cut into pieces of this many bytes (each piece its own line), so one line without a
/// newline cannot grow without bound.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Splits raw output into lines: complete lines as they end, over-long ones in pieces, the unfinished rest
/// kept for the next read (or [`Splitter::finish`]).
#[derive(Default)]
pub struct Splitter {
    pending: Vec<u8>,
}

impl Splitter {
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let line = &self.pending[start..start + end];
            cut(line, out);
            start += end + 1;
        }
        self.pending.drain(..start);
        while self.pending.len() >= MAX_LINE_BYTES {
            let rest = self.pending.split_off(MAX_LINE_BYTES);
            out.push(text(&self.pending));
            self.pending = rest;
        }
    }

    /// The last line, if the output did not end with a newline.
    pub fn finish(&mut self, out: &mut Vec<String>) {
        if !self.pending.is_empty() {
            cut(&std::mem::take(&mut self.pending), out);
        }
    }
}

fn cut(line: &[u8], out: &mut Vec<String>) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        out.push(String::new());
    }
    for piece in line.chunks(MAX_LINE_BYTES) {
        out.push(text(piece));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_splits_into_lines_across_reads() {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        s.push(b"one\r\ntw", &mut out);
        s.push(b"o\n\nthree", &mut out);
        assert_eq!(out, ["one", "two", ""]);
        s.finish(&mut out);
        assert_eq!(out, ["one", "two", "", "three"]);
        let mut long = Vec::new();
        s.push(&vec![b'x'; MAX_LINE_BYTES * 2 + 5], &mut long);
        s.finish(&mut long);
        assert_eq!(
            long.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE_BYTES, MAX_LINE_BYTES, 5]
        );
    }
}
