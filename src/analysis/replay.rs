//! The replay engine: one pass over a capture, every decoded packet handed
//! to every [`PacketSink`], one [`CaptureReport`] out.
//!
//! Memory is bounded by the reader's buffer plus each sink's live state
//! (e.g. open flows), never by the size of the file.

use super::attribution::Attributor;
use super::decode::decode;
use super::dns::DnsExtractor;
use super::flows::{FlowConfig, FlowTable};
use super::model::{CaptureReport, DnsRecord, ErrorRecord, FlowRecord, HttpRecord, TlsRecord};
use super::names::NameExtractor;
use super::packet::{Packet, PacketSink, Unopened};
use super::spill::{Records, SortKey, SpillConfig};
use crate::capture::{CaptureError, CaptureReader, LinkType, Timestamp, is_capture_magic};
use crate::scenario::apps::AppProfiles;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
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
    /// Address ranges the caller declares its own (never bogons for
    /// interference detection): the virtual lab passes its address space
    /// here explicitly; empty by default.
    pub exempt: Vec<ipnetwork::IpNetwork>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            flows: FlowConfig::default(),
            apps: Arc::new(AppProfiles::builtin()),
            exempt: Vec::new(),
        }
    }
}

/// An analyser that sees every packet and, once the capture ends, writes its
/// own results into the report. Extra sinks (e.g. interference detection)
/// implement this and are listed in [`extra_sinks`]; `finish` runs at the
/// end with the capture's counters, `servers`, `errors` and `warnings`
/// already in the report. The flow, DNS, TLS and HTTP records are streamed
/// (see [`StreamedReport`]) and are *not* in the report at that point: a sink
/// that needs them keeps what it needs from the packets it sees.
pub trait ReportSink: PacketSink {
    /// Writes this sink's results into `report`.
    fn finish(self: Box<Self>, report: &mut CaptureReport);

    /// Receives every record of the engine's DNS extractor (DNS over UDP
    /// and TCP; not DoH or WeChat HTTP DNS), in the order they are
    /// finished and all before [`ReportSink::finish`], so a sink that
    /// needs them does not parse DNS a second time. Ignored by default.
    fn dns_record(&mut self, _record: &DnsRecord) {}
}

// ==== REGISTERED EXTRA SINKS =================================================
/// The extra analysers of a replay, one line per analyser. Each gets every
/// decoded packet after the built-in sinks (flows, DNS, names, attribution)
/// and finishes after them, in list order.
pub fn extra_sinks(opts: &ReplayOptions) -> Vec<Box<dyn ReportSink>> {
    vec![
        // Interference (src/analysis/interference/) registers its
        // InterferenceDetector here; it fills `report.interference`.
        Box::new(
            super::interference::InterferenceDetector::fed_by_replay().exempting(&opts.exempt),
        ),
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
    analyze_reader_with(name, src, opts, extra_sinks(opts))
}

/// [`analyze_reader`] with an explicit list of extra sinks instead of the
/// registered ones (tests, or callers adding their own analysers).
pub fn analyze_reader_with<R: Read>(
    name: &str,
    src: R,
    opts: &ReplayOptions,
    extra: Vec<Box<dyn ReportSink>>,
) -> CaptureReport {
    let streamed = stream_reader_with(name, src, opts, None, extra);
    // Nothing was spilled (no spill directory), so this cannot fail.
    streamed.into_report().unwrap_or_else(|e| CaptureReport {
        capture: name.to_string(),
        errors: vec![ErrorRecord {
            file: name.to_string(),
            offset: None,
            frame: None,
            message: format!("{name}: cannot read back the records: {e}"),
        }],
        ..CaptureReport::default()
    })
}

/// A capture's results with the (possibly many) flow, DNS, TLS and HTTP
/// records held in bounded [`Records`] lists that spill to disk, so a
/// replay's memory follows the number of concurrent flows, not the size of
/// the capture. [`StreamedReport::write_json`] writes exactly what
/// `serde_json` writes for the equivalent [`CaptureReport`].
#[derive(Debug)]
pub struct StreamedReport {
    /// Everything but the four record lists below (left empty here).
    pub report: CaptureReport,
    /// Flows, sorted by first packet on output.
    pub flows: Records<FlowRecord>,
    /// DNS records, in frame order on output.
    pub dns: Records<DnsRecord>,
    /// ClientHellos, in frame order on output.
    pub tls: Records<TlsRecord>,
    /// HTTP requests, in frame order on output.
    pub http: Records<HttpRecord>,
    /// DNS records with a response code (answered queries).
    pub dns_answered: u64,
    /// Distinct SNIs of the ClientHellos.
    pub snis: BTreeSet<String>,
    /// The largest flows with their sort keys, see [`StreamedReport::top_flows`].
    top_flows: Vec<(SortKey, FlowRecord)>,
}

/// Flows kept in [`StreamedReport::top_flows`].
pub const TOP_FLOWS: usize = 15;

impl StreamedReport {
    /// The whole report in memory (spilled records are read back).
    pub fn into_report(self) -> std::io::Result<CaptureReport> {
        let mut r = self.report;
        r.flows = self.flows.into_vec()?;
        r.dns = self.dns.into_vec()?;
        r.tls = self.tls.into_vec()?;
        r.http = self.http.into_vec()?;
        Ok(r)
    }

    /// Writes the report as one compact JSON object (no newline), byte for
    /// byte what `serde_json::to_writer` writes for [`Self::into_report`].
    /// With `lines`, each flow / DNS / TLS record is also written to the
    /// matching JSON Lines writer.
    pub fn write_json(
        &mut self,
        out: &mut dyn Write,
        lines: Option<[&mut dyn Write; 3]>,
    ) -> std::io::Result<()> {
        let r = &self.report;
        let [fl, dl, tl] = match lines {
            Some([f, d, t]) => [Some(f), Some(d), Some(t)],
            None => [None, None, None],
        };
        out.write_all(b"{\"capture\":")?;
        serde_json::to_writer(&mut *out, &r.capture)?;
        out.write_all(b",\"format\":")?;
        serde_json::to_writer(&mut *out, &r.format)?;
        out.write_all(b",\"link_types\":")?;
        serde_json::to_writer(&mut *out, &r.link_types)?;
        out.write_all(b",\"packets\":")?;
        serde_json::to_writer(&mut *out, &r.packets)?;
        out.write_all(b",\"bytes\":")?;
        serde_json::to_writer(&mut *out, &r.bytes)?;
        out.write_all(b",\"first_ts\":")?;
        serde_json::to_writer(&mut *out, &r.first_ts)?;
        out.write_all(b",\"last_ts\":")?;
        serde_json::to_writer(&mut *out, &r.last_ts)?;
        out.write_all(b",\"flows\":")?;
        self.flows.write_json_array(out, fl)?;
        out.write_all(b",\"dns\":")?;
        self.dns.write_json_array(out, dl)?;
        out.write_all(b",\"tls\":")?;
        self.tls.write_json_array(out, tl)?;
        out.write_all(b",\"http\":")?;
        self.http.write_json_array(out, None)?;
        let r = &self.report;
        out.write_all(b",\"servers\":")?;
        serde_json::to_writer(&mut *out, &r.servers)?;
        out.write_all(b",\"interference\":")?;
        serde_json::to_writer(&mut *out, &r.interference)?;
        out.write_all(b",\"errors\":")?;
        serde_json::to_writer(&mut *out, &r.errors)?;
        out.write_all(b",\"warnings\":")?;
        serde_json::to_writer(&mut *out, &r.warnings)?;
        out.write_all(b"}")
    }

    /// The [`TOP_FLOWS`] largest flows by bytes (ties: earlier flow first).
    pub fn top_flows(&self) -> impl Iterator<Item = &FlowRecord> {
        self.top_flows.iter().map(|(_, f)| f)
    }

    fn add_top_flow(&mut self, key: SortKey, f: &FlowRecord) {
        let rank = |bytes: u64, key: SortKey| (std::cmp::Reverse(bytes), key);
        if self.top_flows.len() >= TOP_FLOWS
            && self
                .top_flows
                .last()
                .is_some_and(|(k, l)| rank(l.bytes, *k) < rank(f.bytes, key))
        {
            return;
        }
        self.top_flows.push((key, f.clone()));
        self.top_flows.sort_by_key(|(k, f)| rank(f.bytes, *k));
        self.top_flows.truncate(TOP_FLOWS);
    }

    fn add_dns(&mut self, d: DnsRecord, source: u64) {
        if d.rcode.is_some() {
            self.dns_answered += 1;
        }
        self.dns.push([d.frame, source, 0], d);
    }
}

/// [`analyze_file_with_progress`] in streaming form: records spill under
/// `spill.dir` (when given) as the capture is read.
pub fn stream_file(
    path: &Path,
    opts: &ReplayOptions,
    spill: Option<&SpillConfig>,
    progress: &dyn Fn(u64),
) -> StreamedReport {
    let name = path.display().to_string();
    match File::open(path) {
        Ok(f) => stream_reader_with(
            &name,
            Counting { inner: f, progress },
            opts,
            spill,
            extra_sinks(opts),
        ),
        Err(source) => {
            let e = CaptureError::Open {
                file: name.clone(),
                source,
            };
            let mut s = StreamedReport::empty(name, spill);
            s.report.errors.push(error_record(&e));
            s
        }
    }
}

impl StreamedReport {
    fn empty(name: String, spill: Option<&SpillConfig>) -> Self {
        StreamedReport {
            report: CaptureReport {
                capture: name,
                ..CaptureReport::default()
            },
            flows: Records::new(spill.cloned()),
            dns: Records::new(spill.cloned()),
            tls: Records::new(spill.cloned()),
            http: Records::new(spill.cloned()),
            dns_answered: 0,
            snis: BTreeSet::new(),
            top_flows: Vec::new(),
        }
    }
}

/// The streaming replay engine; see [`StreamedReport`].
pub fn stream_reader_with<R: Read>(
    name: &str,
    src: R,
    opts: &ReplayOptions,
    spill: Option<&SpillConfig>,
    extra: Vec<Box<dyn ReportSink>>,
) -> StreamedReport {
    let mut out = StreamedReport::empty(name.to_string(), spill);
    let mut reader = match CaptureReader::new(src, name) {
        Ok(r) => r,
        Err(e) => {
            out.report.errors.push(error_record(&e));
            return out;
        }
    };
    out.report.format = reader.format().as_str().to_string();

    let mut e = Engine {
        flows: FlowTable::new(opts.flows),
        dns: DnsExtractor::new(),
        names: NameExtractor::new(),
        attributor: Attributor::new(opts.apps.clone()),
        extra,
        out,
    };
    let mut stats = Stats::default();
    if let Err(err) = pump(&mut reader, &mut stats, &mut e) {
        e.out.report.errors.push(error_record(&err));
    }

    // ---- End of capture: every record in, then every flow closed ----------
    e.dns.flush_pending();
    e.collect();
    e.flows.close_all();
    e.collect();
    let Engine {
        attributor,
        extra,
        mut out,
        ..
    } = e;
    let report = &mut out.report;
    report.servers = attributor.servers();
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
    report.warnings = warnings(name, &reader, &stats);
    let spill_errors = [
        out.flows.spill_error(),
        out.dns.spill_error(),
        out.tls.spill_error(),
        out.http.spill_error(),
    ];
    if let Some(err) = spill_errors.into_iter().flatten().next() {
        out.report.warnings.push(format!(
            "records could not be spilled to disk ({err}); they were kept in memory"
        ));
    }
    for x in extra {
        x.finish(&mut out.report);
    }
    out
}

/// The built-in analysers, the extra ones, and where their finished
/// records go.
struct Engine {
    flows: FlowTable,
    dns: DnsExtractor,
    names: NameExtractor,
    attributor: Attributor,
    /// Extra sinks: each packet after the built-in ones.
    extra: Vec<Box<dyn ReportSink>>,
    out: StreamedReport,
}

impl Engine {
    fn packet(&mut self, pkt: &Packet<'_>) {
        self.flows.packet(pkt);
        self.dns.packet(pkt);
        self.names.packet(pkt);
        self.attributor.packet(pkt);
        if self.flows.has_closed() || self.dns.has_records() || self.names.has_records() {
            self.collect();
        }
        if self.flows.swept()
            && let Some(oldest) = self.flows.oldest_open()
        {
            self.attributor.prune_http(oldest);
        }
        for sink in &mut self.extra {
            sink.packet(pkt);
        }
    }

    /// Moves finished records to the output: flows that closed are
    /// attributed first (the names and DNS they need all came earlier),
    /// then the new DNS / TLS / HTTP records are learnt and stored.
    fn collect(&mut self) {
        let Engine {
            flows,
            dns,
            names,
            attributor,
            extra,
            out,
        } = self;
        flows.take_closed(|mut f, frame| {
            attributor.attribute(&mut f);
            attributor.forget_flow(&f);
            let key = flow_sort_key(&f, frame);
            out.add_top_flow(key, &f);
            out.flows.push(key, f);
        });
        for d in dns.take_records() {
            attributor.add_dns(&d);
            for sink in extra.iter_mut() {
                sink.dns_record(&d);
            }
            out.add_dns(d, 0);
        }
        if names.has_records() {
            let n = names.take();
            for t in n.tls {
                attributor.add_tls(&t);
                if let Some(sni) = &t.sni
                    && !out.snis.contains(sni)
                {
                    out.snis.insert(sni.clone());
                }
                out.tls.push([t.frame, 0, 0], t);
            }
            for h in n.http {
                attributor.add_http(&h);
                out.http.push([h.frame, 0, 0], h);
            }
            for d in n.dns {
                attributor.add_dns(&d);
                out.add_dns(d, 1);
            }
        }
    }
}

/// Output order of flows: first packet's timestamp, then its frame (the
/// order [`FlowTable::finish`] sorts by), as an order-preserving key.
fn flow_sort_key(f: &FlowRecord, frame: u64) -> SortKey {
    let t = f.first_ts;
    [
        (t.secs as u64) ^ (1 << 63),
        (u64::from(t.nanos) << 8) | u64::from(t.digits),
        frame,
    ]
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
    /// Frames inside a tunnel recognised but not opened, per kind.
    unopened: std::collections::BTreeMap<Unopened, u64>,
}

fn pump<R: Read>(
    reader: &mut CaptureReader<R>,
    stats: &mut Stats,
    engine: &mut Engine,
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
        if stats.links.last() != Some(&raw.link_type) && !stats.links.contains(&raw.link_type) {
            stats.links.push(raw.link_type);
        }
        if !raw.link_type.is_supported() {
            stats.undecoded_links += 1;
        }
        if raw.cap_len < raw.orig_len {
            stats.cut_frames += 1;
        }
        let pkt = decode(&raw);
        if let Some(u) = pkt.encap.unopened {
            *stats.unopened.entry(u).or_default() += 1;
        }
        engine.packet(&pkt);
    }
    Ok(())
}

fn warnings<R: Read>(name: &str, reader: &CaptureReader<R>, stats: &Stats) -> Vec<String> {
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
    for (kind, n) in &stats.unopened {
        out.push(format!(
            "{name}: {n} frames inside an unsupported encapsulation ({kind}): analysed by their outer headers only, the traffic inside is not"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::packet::Packet;

    /// Counts UDP packets and checks what is in the report at `finish`.
    struct Probe {
        udp: u64,
    }

    impl PacketSink for Probe {
        fn packet(&mut self, pkt: &Packet<'_>) {
            if matches!(
                pkt.transport,
                crate::analysis::packet::Transport::Udp { .. }
            ) {
                self.udp += 1;
            }
        }
    }

    impl ReportSink for Probe {
        fn finish(self: Box<Self>, report: &mut CaptureReport) {
            // Streamed records are not in the report yet; the rest is.
            assert!(report.flows.is_empty() && report.packets > 0);
            assert!(!report.servers.is_empty());
            report.warnings.push(format!("probe: {} udp", self.udp));
        }
    }

    #[test]
    fn extra_sinks_see_every_packet_and_finish_last() {
        let file = crate::source_dir().join("captures/ndpi-signal.pcap");
        let bytes = std::fs::read(&file).unwrap();
        let opts = ReplayOptions::default();
        let plain = analyze_reader("signal", &bytes[..], &opts);
        let probed = analyze_reader_with(
            "signal",
            &bytes[..],
            &opts,
            vec![Box::new(Probe { udp: 0 })],
        );
        let udp: u64 = plain
            .flows
            .iter()
            .filter(|f| f.proto == "udp")
            .map(|f| f.packets)
            .sum();
        assert!(udp > 0);
        assert_eq!(probed.warnings.last(), Some(&format!("probe: {udp} udp")));
        assert_eq!(probed.flows, plain.flows);
        assert_eq!(probed.servers, plain.servers);
    }

    /// Spilling every few records (many sorted runs, merged on output)
    /// writes exactly the JSON of the in-memory report, for every sample
    /// capture, and the streamed summary figures agree with it.
    #[test]
    fn spilled_stream_writes_the_same_json() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillConfig {
            dir: dir.path().to_path_buf(),
            limit: 3,
        };
        let samples = collect_inputs(&[crate::source_dir().join("captures")]);
        assert!(samples.len() >= 3, "{samples:?}");
        let opts = ReplayOptions::default();
        let mut spilled_somewhere = false;
        for file in samples {
            let whole = analyze_file(&file, &opts);
            let want = serde_json::to_vec(&whole).unwrap();
            let mut s = stream_file(&file, &opts, Some(&spill), &|_| {});
            spilled_somewhere |= s.flows.spilled_runs() > 1 && s.dns.spilled_runs() > 0;
            assert_eq!(s.flows.len(), whole.flows.len() as u64);
            let answered = whole.dns.iter().filter(|d| d.rcode.is_some()).count();
            assert_eq!(s.dns_answered, answered as u64);
            let snis: BTreeSet<String> = whole.tls.iter().filter_map(|t| t.sni.clone()).collect();
            assert_eq!(s.snis, snis);
            let mut top: Vec<&FlowRecord> = whole.flows.iter().collect();
            top.sort_by_key(|f| std::cmp::Reverse(f.bytes));
            top.truncate(TOP_FLOWS);
            assert_eq!(s.top_flows().collect::<Vec<_>>(), top, "{}", file.display());
            let mut got = Vec::new();
            let (mut fl, mut dl, mut tl) = (Vec::new(), Vec::new(), Vec::new());
            s.write_json(&mut got, Some([&mut fl, &mut dl, &mut tl]))
                .unwrap();
            assert!(got == want, "{}: streamed JSON differs", file.display());
            assert_eq!(
                fl.iter().filter(|&&b| b == b'\n').count(),
                whole.flows.len()
            );
            assert_eq!(dl.iter().filter(|&&b| b == b'\n').count(), whole.dns.len());
            assert_eq!(tl.iter().filter(|&&b| b == b'\n').count(), whole.tls.len());
        }
        assert!(spilled_somewhere, "no sample capture made several runs");
        // The spill files are unnamed: nothing is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
