//! Server identification by timestamp correlation (what the paper did by
//! hand): which server endpoints carry the messages.
//!
//! For every send event on a phone, the endpoints that received at least the
//! message's size in payload from that phone within a window after the tap
//! score a hit; for every receive event, the endpoints that sent at least the
//! message's size to the phone within a window before the notification. A
//! messaging server lines up with both (sends *and* receives of the phones
//! that talk to it); push services line up only with receives, keep-alives
//! and noise with neither more often than chance. Chance is measured, not
//! assumed: the same windows laid over the empty baseline runs and over the
//! quiet parts of the measurement give each endpoint's background rate, and
//! the hit rates are corrected for it (`(hit - bg) / (1 - bg)`).
//!
//! DNS names, SNI and the app [`attribution`](super::attribution) are
//! supporting evidence (names, a veto for servers of *another* app, roles of
//! the non-messaging servers), never the decision, so the identification
//! works with the DNS packets removed.
//!
//! Everything works on stored files alone: a measurement folder holds any
//! number of `*.pcap`/`*.pcapng` files and `events.jsonl` (see
//! `docs/campaign-record.md`), so `matador replay` reproduces the live run.

use super::attribution::Attributor;
use super::decode::decode;
use super::dns::DnsExtractor;
use super::model::{CaptureReport, ServerRecord};
use super::names::NameExtractor;
use super::packet::{PacketSink, Transport, tcp_flags};
use super::replay::{ReplayOptions, analyze_file, collect_inputs};
use crate::capture::CaptureReader;
use crate::scenario::apps::AppProfiles;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Schema tag of `analysis.json`.
pub const ANALYSIS_SCHEMA: &str = "matador/analysis/1";

/// Errors of the correlation stage, naming the file (and line) concerned.
#[derive(Debug, thiserror::Error)]
pub enum CorrelateError {
    /// A file could not be read or written.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of `events.jsonl` is not a valid event (only a torn *last* line is ignored).
    #[error("{}:{line}: {message}", file.display())]
    Event {
        /// The events file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A JSON file of the record is invalid.
    #[error("{}: {message}", file.display())]
    Json {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Tunables of the correlation.
#[derive(Debug, Clone)]
pub struct CorrelateConfig {
    /// Seconds before a send tap that still count (clock uncertainty).
    pub send_before: f64,
    /// Seconds after a send tap in which the message must leave the phone.
    pub send_after: f64,
    /// Seconds before a receive event in which the message must arrive.
    pub recv_before: f64,
    /// Seconds after a receive event that still count (clock uncertainty).
    pub recv_after: f64,
    /// Minimum corrected score for the `messaging` role.
    pub threshold: f64,
    /// Payload bytes above which an app server is called `media`.
    pub media_bytes: u64,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        CorrelateConfig {
            send_before: 0.5,
            send_after: 3.0,
            recv_before: 3.0,
            recv_after: 0.5,
            threshold: 0.6,
            media_bytes: 200_000,
        }
    }
}

/// A server endpoint as the correlation found it (`analysis.json` → `servers`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CorrelatedServer {
    /// App id of the measurement.
    pub app: String,
    /// Server address.
    pub ip: IpAddr,
    /// Server port.
    pub port: u16,
    /// `"tcp"` or `"udp"`.
    pub proto: String,
    /// `"messaging"` (identified by correlation) or, for the app's other
    /// servers, `"push"`, `"media"`, `"dns"`, `"auxiliary"`.
    pub role: String,
    /// Corrected co-occurrence score in [0, 1]: the lower of the send and
    /// receive scores (a messaging server carries both).
    pub score: f64,
    /// Events (sends + receives) with the message's bytes on this endpoint in their window.
    pub hits: u32,
    /// Events considered (sends + receives of the phones that used this endpoint).
    pub events: u32,
    /// Baseline windows with traffic on this endpoint.
    pub baseline_hits: u32,
    /// Baseline (and quiet) windows considered.
    pub baseline_windows: u32,
    /// Phones (device names) that talked to it.
    pub phones: Vec<String>,
    /// DNS / SNI / Host names seen for the address.
    pub names: Vec<String>,
    /// Evidence: correlation figures first, then attribution evidence.
    pub evidence: Vec<String>,
}

impl CorrelatedServer {
    /// The same server as a replay [`ServerRecord`] (role and score set).
    pub fn to_server_record(&self) -> ServerRecord {
        ServerRecord {
            app: self.app.clone(),
            ip: self.ip,
            port: self.port,
            proto: self.proto.clone(),
            names: self.names.clone(),
            evidence: self.evidence.clone(),
            role: Some(self.role.clone()),
            score: Some(self.score),
        }
    }
}

/// What `analysis.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MeasurementAnalysis {
    /// [`ANALYSIS_SCHEMA`].
    pub schema: String,
    /// Measurement id (folder name).
    pub measurement: String,
    /// One replay report per capture file.
    pub captures: Vec<CaptureReport>,
    /// Servers found by correlation (messaging first, best score first).
    pub servers: Vec<CorrelatedServer>,
    /// Remarks (no events, no capture for a phone, ignored lines…).
    #[serde(default)]
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------- events --

/// What happened on a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The send button was tapped.
    Send,
    /// The message was seen on the receiving phone.
    Receive,
    /// Anything else (app launch, baseline markers…).
    Other,
}

/// One device event, host clock, offset already applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unix seconds.
    pub t: f64,
    /// Device (phone profile id, or `A`/`B`).
    pub phone: String,
    /// App id.
    pub app: String,
    /// Kind.
    pub kind: EventKind,
    /// Message id.
    pub msg: Option<String>,
    /// Message length in UTF-8 bytes, when known.
    pub bytes: Option<u64>,
}

/// Reads `events.jsonl`. Both spellings are accepted: the campaign record's
/// (`ts`, `device`, `kind: send_tap|sent|received`, `message_id`) and the
/// open folder format's (`t`, `phone`, `event: send|receive`, `msg`,
/// `bytes`). A torn last line (crash while writing) is ignored.
pub fn read_events(path: &Path) -> Result<Vec<Event>, CorrelateError> {
    let text = std::fs::read_to_string(path).map_err(|e| CorrelateError::Io {
        file: path.to_path_buf(),
        source: e,
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let mut raw = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| CorrelateError::Event {
            file: path.to_path_buf(),
            line: i + 1,
            message: m,
        };
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(bad(format!("not a JSON object: {e}"))),
        };
        let num = |k: &str| match v.get(k) {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
        let t = num("t")
            .or_else(|| num("ts"))
            .filter(|t| t.is_finite())
            .ok_or_else(|| bad("missing time: expected \"t\" or \"ts\" (unix seconds)".into()))?;
        let phone = s("phone")
            .or_else(|| s("device"))
            .ok_or_else(|| bad("missing \"phone\" (or \"device\")".into()))?;
        let kind_s = s("event").or_else(|| s("kind")).unwrap_or_default();
        let bytes = v
            .get("bytes")
            .or_else(|| v.get("text_bytes"))
            .and_then(|b| b.as_u64());
        raw.push((
            kind_s,
            Event {
                t,
                phone,
                app: s("app").unwrap_or_default(),
                kind: EventKind::Other,
                msg: s("msg").or_else(|| s("message_id")),
                bytes,
            },
        ));
    }
    // `send_tap` is the moment of the tap; `sent` counts only for messages
    // without one.
    let tapped: BTreeSet<Option<String>> = raw
        .iter()
        .filter(|(k, _)| k == "send_tap" || k == "send")
        .map(|(_, e)| e.msg.clone())
        .collect();
    let mut out: Vec<Event> = raw
        .into_iter()
        .map(|(k, mut e)| {
            e.kind = match k.as_str() {
                "send" | "send_tap" => EventKind::Send,
                "sent" if !tapped.contains(&e.msg) => EventKind::Send,
                "receive" | "received" => EventKind::Receive,
                _ => EventKind::Other,
            };
            e
        })
        .collect();
    out.sort_by(|a, b| a.t.total_cmp(&b.t));
    Ok(out)
}

// ------------------------------------------------------------- captures --

/// A server endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// 6 or 17.
    pub proto: u8,
}

impl Endpoint {
    fn proto_name(&self) -> &'static str {
        if self.proto == 17 { "udp" } else { "tcp" }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pkt {
    t: f64,
    ep: u32,
    out: bool,
    len: u32,
}

/// What one pass over a capture keeps for correlation.
#[derive(Debug, Default)]
pub struct CaptureLog {
    /// The file.
    pub file: PathBuf,
    endpoints: Vec<Endpoint>,
    index: HashMap<Endpoint, u32>,
    /// Payload-carrying packets, in capture order.
    pkts: Vec<Pkt>,
    /// Payload bytes per endpoint.
    bytes: Vec<u64>,
    /// Attribution's servers (app, evidence, names).
    pub servers: Vec<ServerRecord>,
    /// DNS names that resolved to each address.
    pub names: BTreeMap<IpAddr, BTreeSet<String>>,
    /// Addresses that answered DNS.
    pub resolvers: BTreeSet<IpAddr>,
    /// Earliest and latest packet time.
    pub span: Option<(f64, f64)>,
}

/// Orientation of a 5-tuple: which side is the server.
#[derive(Default)]
struct Orient {
    map: HashMap<(u8, IpAddr, u16, IpAddr, u16), bool>,
}

impl Orient {
    /// Returns (server endpoint, packet goes to the server).
    fn of(
        &mut self,
        proto: u8,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
    ) -> (Endpoint, bool) {
        let fwd = (proto, src, sport, dst, dport);
        let rev = (proto, dst, dport, src, sport);
        let to_server = if let Some(&s) = self.map.get(&fwd) {
            s
        } else if let Some(&s) = self.map.get(&rev) {
            !s
        } else {
            // First packet of the flow: the SYN's receiver, else the side with
            // the well-known (lower) port is the server.
            let s = if proto == 6 && flags & tcp_flags::SYN != 0 {
                flags & tcp_flags::ACK == 0
            } else {
                dport < 1024 || dport <= sport
            };
            self.map.insert(fwd, s);
            s
        };
        if to_server {
            (
                Endpoint {
                    ip: dst,
                    port: dport,
                    proto,
                },
                true,
            )
        } else {
            (
                Endpoint {
                    ip: src,
                    port: sport,
                    proto,
                },
                false,
            )
        }
    }
}

struct LogSink<'a> {
    log: &'a mut CaptureLog,
    orient: Orient,
}

impl PacketSink for LogSink<'_> {
    fn packet(&mut self, pkt: &super::packet::Packet<'_>) {
        let Some(ip) = pkt.ip else { return };
        let (sport, dport, payload, flags) = match pkt.transport {
            Transport::Tcp {
                sport,
                dport,
                payload,
                flags,
                ..
            } => (sport, dport, payload, flags),
            Transport::Udp {
                sport,
                dport,
                payload,
            } => (sport, dport, payload, 0),
            _ => return,
        };
        let t = pkt.ts.as_f64();
        let (ep, out) = self
            .orient
            .of(ip.proto, ip.src, sport, ip.dst, dport, flags);
        let log = &mut *self.log;
        log.span = Some(match log.span {
            Some((a, b)) => (a.min(t), b.max(t)),
            None => (t, t),
        });
        // Payload length on the wire (the capture may be cut by the snap length).
        let hdr = pkt
            .cap_len
            .saturating_sub(payload.len() as u32)
            .min(pkt.orig_len);
        let len = pkt.orig_len.saturating_sub(hdr);
        if payload.is_empty() && len == 0 {
            return;
        }
        let n = log.endpoints.len() as u32;
        let idx = *log.index.entry(ep).or_insert_with(|| {
            log.endpoints.push(ep);
            log.bytes.push(0);
            n
        });
        log.bytes[idx as usize] += u64::from(len);
        log.pkts.push(Pkt {
            t,
            ep: idx,
            out,
            len,
        });
    }
}

/// One pass over a capture: the payload packets per server endpoint, plus
/// DNS, names and attribution for the evidence. Reading errors keep what was
/// read before them.
pub fn scan_capture(path: &Path, profiles: &Arc<AppProfiles>) -> CaptureLog {
    let mut log = CaptureLog {
        file: path.to_path_buf(),
        ..CaptureLog::default()
    };
    let Ok(mut reader) = CaptureReader::open(path) else {
        return log;
    };
    let mut flows = super::flows::FlowTable::new(Default::default());
    let mut dns = DnsExtractor::new();
    let mut names = NameExtractor::new();
    let mut attr = Attributor::new(profiles.clone());
    {
        let mut sink = LogSink {
            log: &mut log,
            orient: Orient::default(),
        };
        let sinks: &mut [&mut dyn PacketSink] =
            &mut [&mut sink, &mut flows, &mut dns, &mut names, &mut attr];
        while let Ok(Some(raw)) = reader.next_frame() {
            let pkt = decode(&raw);
            for s in sinks.iter_mut() {
                s.packet(&pkt);
            }
        }
    }
    let mut flows = flows.finish();
    let mut dns = dns.finish();
    let names_out = names.finish();
    dns.extend(names_out.dns);
    log.servers = attr.finish(&mut flows, &dns, &names_out.tls, &names_out.http);
    for d in &dns {
        log.resolvers.insert(d.server);
        for a in &d.answers {
            if let Ok(ip) = a.data.parse::<IpAddr>() {
                log.names
                    .entry(ip)
                    .or_default()
                    .insert(d.query.trim_end_matches('.').to_string());
            }
        }
    }
    for t in &names_out.tls {
        if let Some(s) = &t.sni {
            log.names.entry(t.dst).or_default().insert(s.clone());
        }
    }
    for h in &names_out.http {
        if let Some(s) = &h.host {
            log.names.entry(h.dst).or_default().insert(s.clone());
        }
    }
    log
}

impl CaptureLog {
    /// Endpoints with a payload of at least `min` bytes in `[from, to]` in
    /// the given direction (sums the packets, so segmented messages count).
    fn active(&self, from: f64, to: f64, out: bool, min: u64, acc: &mut HashMap<u32, u64>) {
        acc.clear();
        let start = self.pkts.partition_point(|p| p.t < from);
        for p in &self.pkts[start..] {
            if p.t > to {
                break;
            }
            if p.out == out {
                *acc.entry(p.ep).or_default() += u64::from(p.len);
            }
        }
        acc.retain(|_, b| *b >= min.max(1));
    }
}

// ----------------------------------------------------------- tallies --

/// Per-endpoint counts over the events and background windows of one phone.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    send_hits: u32,
    recv_hits: u32,
    bg_out: u32,
    bg_in: u32,
}

#[derive(Debug, Default)]
struct PhoneTally {
    sends: u32,
    recvs: u32,
    bg_windows: u32,
    by_ep: HashMap<Endpoint, Tally>,
}

/// Background windows of a message measurement: tiles of the window length
/// over the capture span, skipping those that overlap an event window.
fn background(log: &CaptureLog, events: &[(f64, f64)], len: f64, min: u64, pt: &mut PhoneTally) {
    let Some((a, b)) = log.span else { return };
    let mut acc = HashMap::new();
    let mut t = a;
    while t + len <= b {
        let overlaps = events.iter().any(|&(f, to)| t < to && f < t + len);
        if !overlaps {
            pt.bg_windows += 1;
            for out in [true, false] {
                log.active(t, t + len, out, min, &mut acc);
                for &ep in acc.keys() {
                    let e = pt.by_ep.entry(log.endpoints[ep as usize]).or_default();
                    if out {
                        e.bg_out += 1;
                    } else {
                        e.bg_in += 1;
                    }
                }
            }
        }
        t += len;
    }
}

fn tally_phone(
    logs: &[&CaptureLog],
    events: &[Event],
    phone: &str,
    cfg: &CorrelateConfig,
) -> PhoneTally {
    let mut pt = PhoneTally::default();
    let mut acc = HashMap::new();
    let mut windows = Vec::new();
    for e in events.iter().filter(|e| e.phone == phone) {
        let (from, to, out) = match e.kind {
            EventKind::Send => (e.t - cfg.send_before, e.t + cfg.send_after, true),
            EventKind::Receive => (e.t - cfg.recv_before, e.t + cfg.recv_after, false),
            EventKind::Other => continue,
        };
        windows.push((from, to));
        if out {
            pt.sends += 1;
        } else {
            pt.recvs += 1;
        }
        let mut hit: BTreeSet<Endpoint> = BTreeSet::new();
        for log in logs {
            log.active(from, to, out, e.bytes.unwrap_or(1), &mut acc);
            hit.extend(acc.keys().map(|&i| log.endpoints[i as usize]));
        }
        for ep in hit {
            let t = pt.by_ep.entry(ep).or_default();
            if out {
                t.send_hits += 1;
            } else {
                t.recv_hits += 1;
            }
        }
    }
    let len = cfg.send_before + cfg.send_after;
    let min = typical_bytes(events);
    for log in logs {
        background(log, &windows, len, min, &mut pt);
    }
    pt
}

/// The median message size of the events (1 when unknown): background
/// windows count an endpoint only with as much payload as a message needs.
fn typical_bytes(events: &[Event]) -> u64 {
    let mut b: Vec<u64> = events.iter().filter_map(|e| e.bytes).collect();
    if b.is_empty() {
        return 1;
    }
    b.sort_unstable();
    b[b.len() / 2].max(1)
}

/// Background counts of a baseline capture set for one phone.
fn tally_baseline(logs: &[&CaptureLog], min: u64, cfg: &CorrelateConfig) -> PhoneTally {
    let mut pt = PhoneTally::default();
    let len = cfg.send_before + cfg.send_after;
    for log in logs {
        background(log, &[], len, min, &mut pt);
    }
    pt
}

// --------------------------------------------------------- measurement --

/// The files of one measurement folder.
#[derive(Debug, Clone)]
pub struct MeasurementFiles {
    /// The folder.
    pub dir: PathBuf,
    /// Its id (folder name).
    pub id: String,
    /// Capture files.
    pub captures: Vec<PathBuf>,
    /// `events.jsonl`, if present.
    pub events: Option<PathBuf>,
}

impl MeasurementFiles {
    /// Lists a folder (captures recognised by magic number, not name).
    pub fn of(dir: &Path) -> MeasurementFiles {
        let captures = collect_inputs(&[dir.to_path_buf()])
            .into_iter()
            .filter(|p| p.parent() == Some(dir))
            .collect();
        let ev = dir.join("events.jsonl");
        MeasurementFiles {
            dir: dir.to_path_buf(),
            id: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            captures,
            events: ev.is_file().then_some(ev),
        }
    }
}

/// Captures that belong to a phone: `capture-router-<phone>.*` or any file
/// whose name contains the phone's name; else every non-node capture (a
/// shared router capture), else every capture.
fn captures_of<'a>(logs: &'a [CaptureLog], phone: &str) -> Vec<&'a CaptureLog> {
    let stem = |l: &CaptureLog| {
        l.file
            .file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    };
    let p = phone.to_lowercase();
    let named: Vec<&CaptureLog> = logs
        .iter()
        .filter(|l| {
            let s = stem(l);
            s == format!("capture-router-{p}")
                || (!s.starts_with("capture-node-")
                    && s.split(|c: char| !c.is_alphanumeric() && c != '-')
                        .any(|w| w == p))
        })
        .collect();
    if !named.is_empty() {
        return named;
    }
    let non_node: Vec<&CaptureLog> = logs
        .iter()
        .filter(|l| !stem(l).starts_with("capture-node-"))
        .collect();
    if non_node.is_empty() {
        logs.iter().collect()
    } else {
        non_node
    }
}

/// Everything needed to correlate one measurement whose files are scanned.
#[derive(Debug, Default)]
pub struct Scanned {
    /// The measurement's files.
    pub logs: Vec<CaptureLog>,
    /// Its events.
    pub events: Vec<Event>,
}

/// Scans a measurement folder (captures and events).
pub fn scan_measurement(
    files: &MeasurementFiles,
    profiles: &Arc<AppProfiles>,
) -> Result<Scanned, CorrelateError> {
    let events = match &files.events {
        Some(p) => read_events(p)?,
        None => Vec::new(),
    };
    let logs = files
        .captures
        .iter()
        .map(|c| scan_capture(c, profiles))
        .collect();
    Ok(Scanned { logs, events })
}

/// Baseline background of one phone, for subtraction.
#[derive(Debug, Default)]
pub struct BaselineBackground {
    by_phone: BTreeMap<String, PhoneTally>,
}

impl BaselineBackground {
    /// Adds a baseline measurement's captures for these phones; `min` is
    /// the payload an endpoint needs in a window to count (the typical
    /// message size of the measurement it is compared with).
    pub fn add(&mut self, scanned: &Scanned, phones: &[String], min: u64, cfg: &CorrelateConfig) {
        for ph in phones {
            let logs = captures_of(&scanned.logs, ph);
            let t = tally_baseline(&logs, min, cfg);
            let acc = self.by_phone.entry(ph.clone()).or_default();
            acc.bg_windows += t.bg_windows;
            for (ep, x) in t.by_ep {
                let e = acc.by_ep.entry(ep).or_default();
                e.bg_out += x.bg_out;
                e.bg_in += x.bg_in;
            }
        }
    }
}

fn corrected(hits: u32, n: u32, bg: u32, bg_n: u32) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let r = f64::from(hits) / f64::from(n);
    // Laplace-smoothed background rate: a quiet endpoint never scores as
    // if its background were exactly zero on few windows.
    let b = (f64::from(bg) + 0.5) / (f64::from(bg_n) + 1.0);
    if b >= 1.0 {
        return 0.0;
    }
    ((r - b) / (1.0 - b)).clamp(0.0, 1.0)
}

fn is_dns_port(ep: &Endpoint) -> bool {
    matches!(ep.port, 53 | 853 | 5353)
}

/// Counts of one endpoint over a measurement's events and background windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Sends with the message's bytes leaving towards the endpoint.
    pub send_hits: u32,
    /// Sends of the phones that used the endpoint.
    pub sends: u32,
    /// Receives with the message's bytes arriving from the endpoint.
    pub recv_hits: u32,
    /// Receives of the phones that used the endpoint.
    pub recvs: u32,
    /// Background windows with outgoing traffic to it.
    pub bg_out: u32,
    /// Background windows with incoming traffic from it.
    pub bg_in: u32,
    /// Background windows (quiet parts of the measurement and baselines).
    pub bg_n: u32,
    /// Of those, baseline windows with traffic.
    pub base_hits: u32,
    /// Baseline windows.
    pub base_n: u32,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.send_hits += o.send_hits;
        self.sends += o.sends;
        self.recv_hits += o.recv_hits;
        self.recvs += o.recvs;
        self.bg_out += o.bg_out;
        self.bg_in += o.bg_in;
        self.bg_n += o.bg_n;
        self.base_hits += o.base_hits;
        self.base_n += o.base_n;
    }

    /// (corrected send score, corrected receive score, combined score).
    pub fn scores(&self) -> (f64, f64, f64) {
        let cs = corrected(self.send_hits, self.sends, self.bg_out, self.bg_n);
        let cr = corrected(self.recv_hits, self.recvs, self.bg_in, self.bg_n);
        let score = match (self.sends > 0, self.recvs > 0) {
            (true, true) => cs.min(cr),
            (true, false) => cs,
            (false, true) => cr,
            (false, false) => 0.0,
        };
        (cs, cr, score)
    }
}

/// One endpoint of a measurement before classification.
#[derive(Debug, Clone)]
pub struct Tallied {
    /// The endpoint.
    pub ep: Endpoint,
    /// Its counts.
    pub counts: Counts,
    /// Phones that talked to it.
    pub phones: BTreeSet<String>,
    /// Attribution's record for it, if any.
    pub attr: Option<ServerRecord>,
    /// DNS/SNI/Host names of the address.
    pub names: BTreeSet<String>,
    /// A DNS port or an address that answered DNS.
    pub is_dns: bool,
    /// Payload bytes in the measurement.
    pub bytes: u64,
}

/// Counts every endpoint of a scanned measurement (see [`classify`]).
pub fn tally(
    scanned: &Scanned,
    baseline: &BaselineBackground,
    cfg: &CorrelateConfig,
) -> Vec<Tallied> {
    let mut phones: Vec<String> = scanned
        .events
        .iter()
        .filter(|e| e.kind != EventKind::Other)
        .map(|e| e.phone.clone())
        .collect();
    phones.sort();
    phones.dedup();

    let mut acc: BTreeMap<Endpoint, (Counts, BTreeSet<String>)> = BTreeMap::new();
    for ph in &phones {
        let logs = captures_of(&scanned.logs, ph);
        let pt = tally_phone(&logs, &scanned.events, ph, cfg);
        let base = baseline.by_phone.get(ph);
        let bn = base.map_or(0, |b| b.bg_windows);
        // Endpoints this phone talked to at all.
        let mut seen: BTreeSet<Endpoint> = BTreeSet::new();
        for l in &logs {
            seen.extend(l.endpoints.iter().copied());
        }
        for ep in seen {
            let t = pt.by_ep.get(&ep).copied().unwrap_or_default();
            let b = base
                .and_then(|b| b.by_ep.get(&ep).copied())
                .unwrap_or_default();
            let (c, p) = acc.entry(ep).or_default();
            c.add(&Counts {
                send_hits: t.send_hits,
                sends: pt.sends,
                recv_hits: t.recv_hits,
                recvs: pt.recvs,
                bg_out: t.bg_out + b.bg_out,
                bg_in: t.bg_in + b.bg_in,
                bg_n: pt.bg_windows + bn,
                base_hits: b.bg_out.max(b.bg_in),
                base_n: bn,
            });
            p.insert(ph.clone());
        }
    }

    // Evidence from attribution and DNS, merged over the captures.
    let mut attributed: HashMap<(IpAddr, u16, String), &ServerRecord> = HashMap::new();
    let mut names: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
    let mut resolvers = BTreeSet::new();
    let mut bytes: HashMap<Endpoint, u64> = HashMap::new();
    for l in &scanned.logs {
        for s in &l.servers {
            attributed
                .entry((s.ip, s.port, s.proto.clone()))
                .or_insert(s);
        }
        for (ip, n) in &l.names {
            names.entry(*ip).or_default().extend(n.iter().cloned());
        }
        resolvers.extend(l.resolvers.iter().copied());
        for (i, ep) in l.endpoints.iter().enumerate() {
            *bytes.entry(*ep).or_default() += l.bytes[i];
        }
    }
    acc.into_iter()
        .map(|(ep, (counts, phones))| {
            let attr = attributed
                .get(&(ep.ip, ep.port, ep.proto_name().to_string()))
                .map(|s| (*s).clone());
            let mut n = names.get(&ep.ip).cloned().unwrap_or_default();
            if let Some(s) = &attr {
                n.extend(s.names.iter().cloned());
            }
            Tallied {
                ep,
                counts,
                phones,
                attr,
                names: n,
                is_dns: is_dns_port(&ep) || resolvers.contains(&ep.ip),
                bytes: bytes.get(&ep).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// Counts pooled over a campaign's message measurements, per (app, endpoint).
pub type Pool = HashMap<(String, Endpoint), Counts>;

/// Adds a measurement's counts to a campaign pool.
pub fn pool_add(pool: &mut Pool, app: &str, t: &[Tallied]) {
    for x in t {
        pool.entry((app.to_string(), x.ep))
            .or_default()
            .add(&x.counts);
    }
}

/// Classifies a measurement's endpoints. An endpoint is `messaging` when its
/// score is at least the threshold in this measurement *and* over the pool
/// (all the campaign's measurements of the app where it was seen; `None`:
/// this measurement alone), it is not a DNS server and attribution does not
/// give it to another app. The app's other servers get a role; endpoints
/// that are neither are background and left out.
pub fn classify(
    tallied: &[Tallied],
    app: &str,
    pool: Option<&Pool>,
    cfg: &CorrelateConfig,
) -> Vec<CorrelatedServer> {
    let mut out = Vec::new();
    for x in tallied {
        let (cs, cr, score) = x.counts.scores();
        let pooled = pool
            .and_then(|p| p.get(&(app.to_string(), x.ep)))
            .map_or(score, |c| c.scores().2);
        let other_app = x.attr.as_ref().is_some_and(|s| s.app != app);
        let doh = x
            .attr
            .as_ref()
            .is_some_and(|s| s.evidence.iter().any(|e| e.contains("doh")));
        let role =
            if score >= cfg.threshold && pooled >= cfg.threshold && !other_app && !x.is_dns && !doh
            {
                "messaging"
            } else if other_app || x.attr.is_none() {
                continue;
            } else if x.is_dns || doh {
                "dns"
            } else if cr >= cfg.threshold && cs < cfg.threshold {
                "push"
            } else if x.bytes >= cfg.media_bytes {
                "media"
            } else {
                "auxiliary"
            };
        let c = &x.counts;
        let mut evidence = vec![
            format!("sends:{}/{}", c.send_hits, c.sends),
            format!("receives:{}/{}", c.recv_hits, c.recvs),
            format!("background:{}/{}", c.bg_out.max(c.bg_in), c.bg_n),
            format!("campaign-score:{:.3}", pooled),
        ];
        if let Some(s) = &x.attr {
            evidence.extend(s.evidence.iter().cloned());
        }
        out.push(CorrelatedServer {
            app: app.to_string(),
            ip: x.ep.ip,
            port: x.ep.port,
            proto: x.ep.proto_name().to_string(),
            role: role.to_string(),
            score: (score.min(pooled) * 1000.0).round() / 1000.0,
            hits: c.send_hits + c.recv_hits,
            events: c.sends + c.recvs,
            baseline_hits: c.base_hits,
            baseline_windows: c.base_n,
            phones: x.phones.iter().cloned().collect(),
            names: x.names.iter().cloned().collect(),
            evidence,
        });
    }
    out.sort_by(|a, b| {
        (b.role == "messaging")
            .cmp(&(a.role == "messaging"))
            .then(b.score.total_cmp(&a.score))
            .then((a.ip, a.port).cmp(&(b.ip, b.port)))
    });
    out
}

/// Correlates one scanned measurement on its own. `app` is the measurement's
/// app (from the record or the events); `baseline` the background of the
/// campaign's baseline runs for the same app and vantages (may be empty).
pub fn correlate(
    scanned: &Scanned,
    app: &str,
    baseline: &BaselineBackground,
    cfg: &CorrelateConfig,
) -> Vec<CorrelatedServer> {
    classify(&tally(scanned, baseline, cfg), app, None, cfg)
}

// ------------------------------------------------------------ campaign --

/// The index entry fields correlation needs (`meta.json`).
/// The fields of a measurement's `meta.json` (index entry) correlation uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Meta {
    #[serde(default)]
    id: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    receiver: String,
    #[serde(default)]
    sender_country: String,
    #[serde(default)]
    receiver_country: String,
    #[serde(default)]
    status: String,
}

fn read_meta(dir: &Path) -> Option<Meta> {
    let text = std::fs::read_to_string(dir.join("meta.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// True when `dir` is a campaign folder (`index.json`, or `measurements/`
/// with at least one `events.jsonl`).
pub fn is_campaign(dir: &Path) -> bool {
    dir.join("index.json").is_file() || !measurement_dirs(dir).is_empty()
}

/// True when `dir` is a single measurement folder (`events.jsonl` beside captures).
pub fn is_measurement(dir: &Path) -> bool {
    dir.join("events.jsonl").is_file()
}

/// Measurement folders of a campaign, in name (= plan) order.
pub fn measurement_dirs(campaign: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(campaign.join("measurements")) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// A measurement scanned and counted, waiting for the campaign pool.
#[derive(Debug)]
pub struct Prepared {
    /// The folder.
    pub dir: PathBuf,
    /// Measurement id.
    pub id: String,
    /// `message`, `baseline` (from `meta.json`; empty for a standalone folder).
    pub kind: String,
    /// App id.
    pub app: String,
    /// Endpoint counts.
    pub tallied: Vec<Tallied>,
    /// Capture files.
    pub captures: Vec<PathBuf>,
    /// Remarks.
    pub warnings: Vec<String>,
}

/// The baseline measurements of a campaign, scanned.
pub type Baselines = BTreeMap<PathBuf, (Meta, Scanned)>;

/// Scans every baseline measurement of a campaign (in parallel).
pub fn scan_baselines(
    campaign: &Path,
    profiles: &Arc<AppProfiles>,
) -> Result<Baselines, CorrelateError> {
    use rayon::prelude::*;
    let dirs: Vec<(PathBuf, Meta)> = measurement_dirs(campaign)
        .into_iter()
        .filter_map(|d| read_meta(&d).map(|m| (d, m)))
        .filter(|(_, m)| m.kind == "baseline")
        .collect();
    dirs.into_par_iter()
        .map(|(d, m)| {
            let s = scan_measurement(&MeasurementFiles::of(&d), profiles)?;
            Ok((d, (m, s)))
        })
        .collect()
}

/// Scans and counts one measurement. With `campaign`, the campaign's
/// baseline runs for the same app and country pair are the background
/// (from `cache` when given, else scanned here).
pub fn prepare(
    dir: &Path,
    campaign: Option<&Path>,
    profiles: &Arc<AppProfiles>,
    cfg: &CorrelateConfig,
    cache: Option<&Baselines>,
) -> Result<Prepared, CorrelateError> {
    let files = MeasurementFiles::of(dir);
    let scanned = scan_measurement(&files, profiles)?;
    let meta = read_meta(dir).unwrap_or_default();
    let mut warnings = Vec::new();
    let app = if !meta.app.is_empty() {
        meta.app.clone()
    } else {
        let apps: BTreeSet<&str> = scanned
            .events
            .iter()
            .map(|e| e.app.as_str())
            .filter(|a| !a.is_empty())
            .collect();
        if apps.len() > 1 {
            warnings.push(format!(
                "events name several apps ({}); using the first",
                apps.iter().copied().collect::<Vec<_>>().join(", ")
            ));
        }
        apps.first().map(|s| s.to_string()).unwrap_or_default()
    };
    if files.events.is_none() {
        warnings.push("no events.jsonl: no correlation".into());
    }
    if files.captures.is_empty() {
        warnings.push("no capture files".into());
    }
    let mut base = BaselineBackground::default();
    if let Some(c) = campaign
        && meta.kind != "baseline"
    {
        let min = typical_bytes(&scanned.events);
        let own;
        let baselines = match cache {
            Some(c) => c,
            None => {
                own = scan_baselines(c, profiles)?;
                &own
            }
        };
        for (m, s) in baselines.values() {
            if m.app == app
                && m.status != "failed"
                && m.sender_country == meta.sender_country
                && m.receiver_country == meta.receiver_country
            {
                base.add(s, &[m.sender.clone(), m.receiver.clone()], min, cfg);
            }
        }
    }
    let tallied = if meta.kind == "baseline" {
        Vec::new()
    } else {
        tally(&scanned, &base, cfg)
    };
    Ok(Prepared {
        dir: dir.to_path_buf(),
        id: if meta.id.is_empty() {
            files.id.clone()
        } else {
            meta.id.clone()
        },
        kind: meta.kind,
        app,
        tallied,
        captures: files.captures,
        warnings,
    })
}

/// Classifies a prepared measurement against the pool and runs replay on
/// its captures: the content of `analysis.json`.
pub fn finish(p: Prepared, pool: Option<&Pool>, cfg: &CorrelateConfig) -> MeasurementAnalysis {
    let servers = classify(&p.tallied, &p.app, pool, cfg);
    let opts = ReplayOptions::default();
    MeasurementAnalysis {
        schema: ANALYSIS_SCHEMA.into(),
        measurement: p.id,
        captures: p.captures.iter().map(|c| analyze_file(c, &opts)).collect(),
        servers,
        warnings: p.warnings,
    }
}

/// Analyses one measurement folder on its own (no campaign pool): a
/// standalone folder, or a campaign measurement right after it ran.
pub fn analyze_measurement(
    dir: &Path,
    campaign: Option<&Path>,
    profiles: &Arc<AppProfiles>,
    cfg: &CorrelateConfig,
) -> Result<MeasurementAnalysis, CorrelateError> {
    let p = prepare(dir, campaign, profiles, cfg, None)?;
    Ok(finish(p, None, cfg))
}

/// Writes `analysis.json` atomically and durably ([`crate::atomic_file`]).
pub fn write_analysis(dir: &Path, a: &MeasurementAnalysis) -> Result<(), CorrelateError> {
    let path = dir.join("analysis.json");
    let io = |e| CorrelateError::Io {
        file: path.clone(),
        source: e,
    };
    let body = serde_json::to_vec_pretty(a).map_err(|e| CorrelateError::Json {
        file: path.clone(),
        message: e.to_string(),
    })?;
    crate::atomic_file::write(&path, &body).map_err(io)
}

/// Re-analyses every measurement of a campaign folder from its files and
/// rewrites their `analysis.json`; returns (folder, analysis) in plan order.
/// Two passes: count every measurement, pool the counts per (app, endpoint)
/// over the campaign, then classify each measurement against the pool.
pub fn replay_campaign(
    campaign: &Path,
    profiles: &Arc<AppProfiles>,
    cfg: &CorrelateConfig,
) -> Result<Vec<(PathBuf, MeasurementAnalysis)>, CorrelateError> {
    use rayon::prelude::*;
    let cache = scan_baselines(campaign, profiles)?;
    let prepared: Vec<Prepared> = measurement_dirs(campaign)
        .par_iter()
        .map(|d| prepare(d, Some(campaign), profiles, cfg, Some(&cache)))
        .collect::<Result<_, _>>()?;
    drop(cache);
    let mut pool = Pool::new();
    for p in &prepared {
        pool_add(&mut pool, &p.app, &p.tallied);
    }
    prepared
        .into_par_iter()
        .map(|p| {
            let d = p.dir.clone();
            let a = finish(p, Some(&pool), cfg);
            write_analysis(&d, &a)?;
            Ok((d, a))
        })
        .collect()
}

/// Servers pooled over a whole campaign: per (app, ip, port, proto), the
/// hits and events summed over its message measurements, the best role.
pub fn campaign_servers(analyses: &[MeasurementAnalysis]) -> Vec<CorrelatedServer> {
    let mut pooled: BTreeMap<(String, IpAddr, u16, String), CorrelatedServer> = BTreeMap::new();
    let mut messaging: BTreeMap<(String, IpAddr, u16, String), (u32, u32)> = BTreeMap::new();
    for a in analyses {
        for s in &a.servers {
            let key = (s.app.clone(), s.ip, s.port, s.proto.clone());
            let m = messaging.entry(key.clone()).or_default();
            m.1 += 1;
            if s.role == "messaging" {
                m.0 += 1;
            }
            let e = pooled.entry(key).or_insert_with(|| CorrelatedServer {
                hits: 0,
                events: 0,
                baseline_hits: 0,
                baseline_windows: 0,
                score: 0.0,
                ..s.clone()
            });
            e.hits += s.hits;
            e.events += s.events;
            e.baseline_hits += s.baseline_hits;
            e.baseline_windows += s.baseline_windows;
            for n in &s.names {
                if !e.names.contains(n) {
                    e.names.push(n.clone());
                }
            }
            for p in &s.phones {
                if !e.phones.contains(p) {
                    e.phones.push(p.clone());
                }
            }
        }
    }
    pooled
        .into_iter()
        .map(|(k, mut s)| {
            let (m, n) = messaging[&k];
            // Messaging in most measurements where the endpoint was seen.
            s.role = if 2 * m > n {
                "messaging".into()
            } else if s.role == "messaging" {
                "auxiliary".into()
            } else {
                s.role
            };
            s.score = if n > 0 {
                f64::from(m) / f64::from(n)
            } else {
                0.0
            };
            s.evidence = vec![format!("messaging in {m}/{n} measurements")];
            s
        })
        .collect()
}
