//! Record lists that stay small in memory: an external merge sort for the
//! flow, DNS, TLS and HTTP records of one capture.
//!
//! Records arrive in the order they are *finished* (a flow when it closes,
//! an unanswered query when it times out) but are output sorted by a key
//! (first packet, frame number). A [`Records`] keeps up to `limit` records
//! in memory; when full it sorts them and appends them, already serialised
//! as JSON, as one sorted *run* to an unnamed temporary file (deleted by the
//! OS when closed, also on a crash). The output is the k-way merge of the
//! runs and the in-memory rest, so memory is bounded by `limit` records plus
//! one read buffer per run, whatever the size of the capture.
//!
//! With no spill directory (the library's [`crate::analysis::replay::analyze_file`])
//! everything stays in memory and [`Records::into_vec`] returns the structs.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// A record that [`Records`] can hold: its JSON is what `serde_json`
/// writes for it. A type written very often may write it faster by hand
/// (tests compare the two).
pub trait JsonRecord: Serialize + DeserializeOwned {
    /// Appends the record's compact JSON to `out`.
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        serde_json::to_writer(out, self).map_err(io::Error::from)
    }
}

/// Sort key: compared lexicographically; ties keep arrival order.
pub type SortKey = [u64; 3];

/// Records kept in memory before a run is spilled.
pub const DEFAULT_LIMIT: usize = 2048;
/// Read buffer per run while merging.
const RUN_BUFFER: usize = 32 * 1024;
/// Spill writes are issued in chunks of about this size.
const WRITE_BUFFER: usize = 256 * 1024;

/// Where and when records spill to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillConfig {
    /// Directory for the unnamed temporary files.
    pub dir: PathBuf,
    /// Records per list kept in memory before spilling a sorted run.
    pub limit: usize,
}

impl SpillConfig {
    /// Spill under the system temporary directory with the default limit.
    pub fn temp() -> Self {
        SpillConfig {
            dir: std::env::temp_dir(),
            limit: DEFAULT_LIMIT,
        }
    }
}

/// One sorted run: its byte range in the spill file.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: u64,
    end: u64,
}

/// A list of records sorted by [`SortKey`] on output; see the module docs.
#[derive(Debug)]
pub struct Records<T> {
    mem: Vec<(SortKey, u64, T)>,
    seq: u64,
    len: u64,
    spill: Option<SpillConfig>,
    file: Option<File>,
    file_len: u64,
    runs: Vec<Run>,
    spill_error: Option<String>,
    /// Serialised records of the run being written (reused across runs).
    write_buf: Vec<u8>,
}

impl<T: JsonRecord> Records<T> {
    /// An empty list; `spill: None` keeps everything in memory.
    pub fn new(spill: Option<SpillConfig>) -> Self {
        Records {
            mem: Vec::new(),
            seq: 0,
            len: 0,
            spill,
            file: None,
            file_len: 0,
            runs: Vec::new(),
            spill_error: None,
            write_buf: Vec::new(),
        }
    }

    /// Records pushed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sorted runs written to disk so far.
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    /// Adds a record; may write a sorted run to the spill file. If that
    /// fails (disk full, no temporary directory), spilling stops and the
    /// records stay in memory; [`Records::spill_error`] says why.
    pub fn push(&mut self, key: SortKey, rec: T) {
        self.mem.push((key, self.seq, rec));
        self.seq += 1;
        self.len += 1;
        if let Some(cfg) = &self.spill
            && self.mem.len() >= cfg.limit.max(1)
            && let Err(e) = self.spill_run()
        {
            self.spill = None;
            self.spill_error = Some(e.to_string());
        }
    }

    /// Why spilling to disk stopped, if it did.
    pub fn spill_error(&self) -> Option<&str> {
        self.spill_error.as_deref()
    }

    fn sort_mem(&mut self) {
        self.mem.sort_unstable_by_key(|(k, seq, _)| (*k, *seq));
    }

    fn spill_run(&mut self) -> io::Result<()> {
        self.sort_mem();
        if self.file.is_none() {
            let dir = self
                .spill
                .as_ref()
                .map_or_else(std::env::temp_dir, |c| c.dir.clone());
            self.file = Some(tempfile::tempfile_in(&dir).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create a temporary file in {}: {e}", dir.display()),
                )
            })?);
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(self.file_len))?;
        // Each record is serialised straight into one write buffer kept
        // across runs (no per-run buffer, no per-record copy).
        let buf = &mut self.write_buf;
        buf.clear();
        let mut written = 0u64;
        for (key, _, rec) in &self.mem {
            for k in key {
                buf.extend_from_slice(&k.to_le_bytes());
            }
            let len_at = buf.len();
            buf.extend_from_slice(&[0; 4]);
            rec.write_json(buf)?;
            let len = (buf.len() - len_at - 4) as u32;
            buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            written += 28 + u64::from(len);
            if buf.len() >= WRITE_BUFFER {
                file.write_all(buf)?;
                buf.clear();
            }
        }
        file.write_all(buf)?;
        buf.clear();
        self.mem.clear();
        self.runs.push(Run {
            start: self.file_len,
            end: self.file_len + written,
        });
        self.file_len += written;
        Ok(())
    }

    /// Every record in key order as structs (spilled runs are read back).
    pub fn into_vec(mut self) -> io::Result<Vec<T>> {
        if self.runs.is_empty() {
            self.sort_mem();
            return Ok(self.mem.into_iter().map(|(_, _, r)| r).collect());
        }
        let mut out = Vec::with_capacity(self.len as usize);
        let mut err = None;
        self.merge(|bytes| match serde_json::from_slice(bytes) {
            Ok(r) => {
                out.push(r);
                Ok(())
            }
            Err(e) => {
                err = Some(e);
                Ok(())
            }
        })?;
        match err {
            Some(e) => Err(io::Error::other(e)),
            None => Ok(out),
        }
    }

    /// Writes the records as a JSON array (`[a,b,…]`, compact, exactly as
    /// `serde_json` writes a `Vec<T>`), and each record plus a newline to
    /// `lines` when given (JSON Lines).
    pub fn write_json_array(
        &mut self,
        out: &mut dyn Write,
        mut lines: Option<&mut (dyn Write + '_)>,
    ) -> io::Result<()> {
        out.write_all(b"[")?;
        let mut first = true;
        self.merge(|bytes| {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            out.write_all(bytes)?;
            if let Some(l) = lines.as_deref_mut() {
                l.write_all(bytes)?;
                l.write_all(b"\n")?;
            }
            Ok(())
        })?;
        out.write_all(b"]")
    }

    /// Calls `each` with the JSON of every record in key order.
    fn merge(&mut self, mut each: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        self.sort_mem();
        let mut json = Vec::with_capacity(512);
        let mut mem = self.mem.iter().peekable();
        let file = self.file.as_ref();
        let mut heads: Vec<RunHead<'_>> = Vec::with_capacity(self.runs.len());
        if let Some(file) = file {
            for run in &self.runs {
                let mut h = RunHead {
                    reader: BufReader::with_capacity(
                        RUN_BUFFER,
                        RangeReader {
                            file,
                            pos: run.start,
                            end: run.end,
                        },
                    ),
                    key: None,
                    // Runs are numbered before the in-memory rest: they hold
                    // earlier arrivals, so ties keep arrival order.
                    bytes: Vec::new(),
                };
                h.advance()?;
                heads.push(h);
            }
        }
        loop {
            // The smallest head among the runs (earliest run wins ties) …
            let mut best: Option<(usize, SortKey)> = None;
            for (i, h) in heads.iter().enumerate() {
                if let Some(k) = h.key
                    && best.is_none_or(|(_, b)| k < b)
                {
                    best = Some((i, k));
                }
            }
            // … against the in-memory rest (later arrivals: loses ties).
            let take_mem = match (best, mem.peek()) {
                (None, None) => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some((_, k)), Some((mk, _, _))) => *mk < k,
            };
            if take_mem {
                let Some((_, _, rec)) = mem.next() else { break };
                json.clear();
                rec.write_json(&mut json)?;
                each(&json)?;
            } else if let Some((i, _)) = best {
                each(&heads[i].bytes)?;
                heads[i].advance()?;
            }
        }
        Ok(())
    }
}

/// The next unread record of one run.
struct RunHead<'a> {
    reader: BufReader<RangeReader<'a>>,
    key: Option<SortKey>,
    bytes: Vec<u8>,
}

impl RunHead<'_> {
    fn advance(&mut self) -> io::Result<()> {
        let mut hdr = [0u8; 28];
        match self.reader.read_exact(&mut hdr) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.key = None;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&hdr[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        self.key = Some([word(0), word(1), word(2)]);
        let len = u32::from_le_bytes([hdr[24], hdr[25], hdr[26], hdr[27]]) as usize;
        self.bytes.resize(len, 0);
        self.reader.read_exact(&mut self.bytes)
    }
}

/// Reads `pos..end` of a file with positional reads (runs share one file).
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl JsonRecord for String {}

    fn spill(limit: usize) -> Option<SpillConfig> {
        Some(SpillConfig {
            dir: std::env::temp_dir(),
            limit,
        })
    }

    /// Keys with many ties, pushed in a scrambled order.
    fn items() -> Vec<(SortKey, String)> {
        (0..1000u64)
            .map(|i| ([(i * 7919) % 97, 0, 0], format!("r{i}")))
            .collect()
    }

    #[test]
    fn spilled_merge_equals_in_memory_stable_sort() {
        let mut want = items();
        want.sort_by_key(|(k, _)| *k); // stable: ties keep arrival order
        let want_json =
            serde_json::to_vec(&want.iter().map(|(_, s)| s).collect::<Vec<_>>()).unwrap();
        for limit in [1, 7, 100, 999, 1000, 5000] {
            let mut r = Records::new(spill(limit));
            for (k, s) in items() {
                r.push(k, s);
            }
            assert_eq!(r.len(), 1000);
            assert_eq!(r.spilled_runs(), 1000 / limit);
            let mut out = Vec::new();
            let mut lines = Vec::new();
            r.write_json_array(&mut out, Some(&mut lines)).unwrap();
            assert_eq!(out, want_json, "limit {limit}");
            assert_eq!(lines.iter().filter(|&&b| b == b'\n').count(), 1000);
            let mut r2 = Records::new(spill(limit));
            for (k, s) in items() {
                r2.push(k, s);
            }
            let v = r2.into_vec().unwrap();
            assert_eq!(v, want.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn empty_list_is_an_empty_array() {
        let mut r: Records<String> = Records::new(None);
        let mut out = Vec::new();
        r.write_json_array(&mut out, None).unwrap();
        assert_eq!(out, b"[]");
        assert!(r.is_empty());
    }
}
