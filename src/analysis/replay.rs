//! The replay engine: one pass over a capture, every decoded packet handed
//! to every [`PacketSink`], one [`CaptureReport`] out.
//!
//! Memory is bounded by the reader's buffer plus each sink's live state
//! (e.g. open flows), never by the size of the file.

use super::attribution::Attributor;
use super::decode::decode;
use super::dns::DnsExtractor;
use super::flows::{FlowConfig, FlowTable};
use super::model::{CaptureReport, ErrorRecord};
use super::names::NameExtractor;
use super::packet::PacketSink;
use crate::capture::{CaptureError, CaptureReader, LinkType, Timestamp, is_capture_magic};
use crate::scenario::apps::AppProfiles;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Snap lengths below this cut DNS answers, TLS ClientHellos and QUIC
/// Initials short, so replay warns about them.
pub const MIN_SNAPLEN: u32 = 1500;

/// What a replay extracts and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Flow idle timeouts.
    pub flows: FlowConfig,
    /// App profiles used for attribution (default: the shipped ones).
    pub apps: Arc<AppProfiles>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            flows: FlowConfig::default(),
            apps: Arc::new(AppProfiles::builtin()),
        }
    }
}

/// An analyser that sees every packet and, once the capture ends, writes its
/// own results into the report. Extra sinks (e.g. interference detection)
/// implement this and are listed in [`extra_sinks`]; `finish` runs after
/// flows, DNS, TLS/HTTP and servers are already in the report, so it can
/// read them.
pub trait ReportSink: PacketSink {
    /// Writes this sink's results into `report`.
    fn finish(self: Box<Self>, report: &mut CaptureReport);
}

// ==== REGISTERED EXTRA SINKS =================================================
/// The extra analysers of a replay, one line per analyser. Each gets every
/// decoded packet after the built-in sinks (flows, DNS, names, attribution)
/// and finishes after them, in list order.
pub fn extra_sinks(_opts: &ReplayOptions) -> Vec<Box<dyn ReportSink>> {
    vec![
        // Interference (src/analysis/interference/) registers its
        // InterferenceDetector here; it fills `report.interference`.
    ]
}

/// Analyses one capture file. Never fails: problems become `errors` /
/// `warnings` in the report, which keeps everything decoded before them.
pub fn analyze_file(path: &Path, opts: &ReplayOptions) -> CaptureReport {
    analyze_file_with_progress(path, opts, &|_| {})
}

/// [`analyze_file`], calling `progress(n)` each time `n` more bytes of the
/// file have been read (in the reader's large chunks, so it costs nothing
/// per packet).
pub fn analyze_file_with_progress(
    path: &Path,
    opts: &ReplayOptions,
    progress: &dyn Fn(u64),
) -> CaptureReport {
    let name = path.display().to_string();
    match File::open(path) {
        Ok(f) => analyze_reader(&name, Counting { inner: f, progress }, opts),
        Err(source) => {
            let e = CaptureError::Open {
                file: name.clone(),
                source,
            };
            CaptureReport {
                capture: name,
                errors: vec![error_record(&e)],
                ..CaptureReport::default()
            }
        }
    }
}

/// Analyses a capture from any byte source; `name` is used as `capture` and in errors.
pub fn analyze_reader<R: Read>(name: &str, src: R, opts: &ReplayOptions) -> CaptureReport {
    let mut report = CaptureReport {
        capture: name.to_string(),
        ..CaptureReport::default()
    };
    let mut reader = match CaptureReader::new(src, name) {
        Ok(r) => r,
        Err(e) => {
            report.errors.push(error_record(&e));
            return report;
        }
    };
    report.format = reader.format().as_str().to_string();

    // ---- Sinks: built-in ones here, further analysers in `extra_sinks` ------
    let mut flows = FlowTable::new(opts.flows);
    let mut dns = DnsExtractor::new();
    let mut names = NameExtractor::new();
    let mut attributor = Attributor::new(opts.apps.clone());
    let mut extra = extra_sinks(opts);
    let mut stats = Stats::default();
    {
        let mut sinks: Vec<&mut dyn PacketSink> =
            vec![&mut flows, &mut dns, &mut names, &mut attributor];
        for e in extra.iter_mut() {
            sinks.push(e.as_mut());
        }
        if let Err(e) = pump(&mut reader, &mut stats, &mut sinks) {
            report.errors.push(error_record(&e));
        }
    }

    // ---- Finish (order matters: attribution needs DNS and names) ------------
    report.flows = flows.finish();
    report.dns = dns.finish();
    let names = names.finish();
    report.tls = names.tls;
    report.http = names.http;
    if !names.dns.is_empty() {
        report.dns.extend(names.dns);
        report.dns.sort_by_key(|r| r.frame);
    }
    report.servers = attributor.finish(&mut report.flows, &report.dns, &report.tls, &report.http);

    report.packets = stats.packets;
    report.bytes = stats.bytes;
    report.first_ts = stats.first;
    report.last_ts = stats.last;
    let mut links = stats.links.clone();
    if links.is_empty() {
        links = reader.interfaces().iter().map(|i| i.link_type).collect();
        links.dedup();
    }
    report.link_types = links.iter().map(|l| l.name()).collect();
    report.warnings = warnings(&reader, &stats);
    for e in extra {
        e.finish(&mut report);
    }
    report
}

/// A reader that reports how many bytes went through it.
struct Counting<'a, R> {
    inner: R,
    progress: &'a dyn Fn(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Frame-level counters kept by the engine itself.
#[derive(Debug, Default)]
struct Stats {
    packets: u64,
    bytes: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    /// Link types in order of first appearance.
    links: Vec<LinkType>,
    /// Frames whose link type the decoder does not understand.
    undecoded_links: u64,
    /// Frames captured shorter than on the wire.
    cut_frames: u64,
}

fn pump<R: Read>(
    reader: &mut CaptureReader<R>,
    stats: &mut Stats,
    sinks: &mut [&mut dyn PacketSink],
) -> Result<(), CaptureError> {
    while let Some(raw) = reader.next_frame()? {
        stats.packets += 1;
        stats.bytes += u64::from(raw.orig_len);
        if stats.first.is_none_or(|f| raw.ts < f) {
            stats.first = Some(raw.ts);
        }
        if stats.last.is_none_or(|l| raw.ts > l) {
            stats.last = Some(raw.ts);
        }
        if !stats.links.contains(&raw.link_type) {
            stats.links.push(raw.link_type);
        }
        if !raw.link_type.is_supported() {
            stats.undecoded_links += 1;
        }
        if raw.cap_len < raw.orig_len {
            stats.cut_frames += 1;
        }
        let pkt = decode(&raw);
        for sink in sinks.iter_mut() {
            sink.packet(&pkt);
        }
    }
    Ok(())
}

fn warnings<R: Read>(reader: &CaptureReader<R>, stats: &Stats) -> Vec<String> {
    let mut out = Vec::new();
    for i in reader.interfaces() {
        if i.snaplen > 0 && i.snaplen < MIN_SNAPLEN {
            let iface = if reader.interfaces().len() > 1 {
                format!(" on interface {} of section {}", i.index, i.section)
            } else {
                String::new()
            };
            out.push(format!(
                "snap length {} bytes{iface} is below {MIN_SNAPLEN}: DNS answers, TLS ClientHellos and QUIC Initials may be cut off",
                i.snaplen
            ));
        }
    }
    if stats.cut_frames > 0 {
        out.push(format!(
            "{} of {} frames were captured shorter than on the wire",
            stats.cut_frames, stats.packets
        ));
    }
    if stats.undecoded_links > 0 {
        let names: Vec<String> = stats
            .links
            .iter()
            .filter(|l| !l.is_supported())
            .map(|l| l.to_string())
            .collect();
        out.push(format!(
            "{} frames of unsupported link type {} were counted but not decoded",
            stats.undecoded_links,
            names.join(", ")
        ));
    }
    out
}

/// Turns a reader error into the report's error record.
pub fn error_record(e: &CaptureError) -> ErrorRecord {
    ErrorRecord {
        file: e.file().to_string(),
        offset: e.offset(),
        frame: e.frame(),
        message: e.to_string(),
    }
}

/// Expands the command-line paths: files are kept as given (even if they
/// are not captures, so that the failure is reported); directories are
/// searched recursively, in name order, for files whose first bytes are a
/// pcap or pcapng magic number, whatever their name. Symbolic links to
/// directories are not followed (no cycles).
pub fn collect_inputs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out);
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        // Unreadable directory: let the attempt to open it report the error.
        out.push(dir.to_path_buf());
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        let Ok(meta) = std::fs::symlink_metadata(&e) else {
            continue;
        };
        if meta.is_dir() {
            walk(&e, out);
        } else if looks_like_capture(&e) {
            out.push(e);
        }
    }
}

fn looks_like_capture(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && is_capture_magic(magic)
}
