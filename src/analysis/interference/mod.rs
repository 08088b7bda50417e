//! Interference detection: forged DNS answers and injected packets, found in
//! a capture without knowing in advance what is censored.
//!
//! [`InterferenceDetector`] is a [`PacketSink`]: the replay engine hands it
//! every packet once; it keeps its own DNS transactions (one record per
//! response packet, so racing replies stay apart), per-flow TCP summaries
//! and ICMP errors, bounded in memory, and [`InterferenceDetector::finish`]
//! applies the rules:
//!
//! - [`dns_rules`]: `dns_forgery` — known forged answers, bogon answers,
//!   duplicate replies to one query, replies whose IP TTL / IP-ID misfit the
//!   resolver's other replies;
//! - [`control`]: `dns_forgery` — answers inconsistent with a control
//!   resolution (OONI-style: overlapping addresses or same ASN = consistent);
//! - [`tcp_rules`]: `injected_packet` — RST/FIN/HTTP responses whose TTL,
//!   IP-ID or window betray that the claimed server did not send them, bogus
//!   SYN/ACKs, and TTL localization of the injector.
//!
//! Rules, evidence, confidence and blind spots: `docs/interference.md`.
//! Rule data (forged answers, bogons, injector IP-IDs, keywords): [`data`].

pub mod control;
pub mod data;
pub mod dns_rules;
pub mod tcp_rules;

use crate::analysis::decode::decode;
use crate::analysis::dns::{DNS_PORT, DnsExtractor, id_and_response};
use crate::analysis::model::{
    CaptureReport, DnsRecord, InterferenceEvent, InterferenceKind, InterferenceRule,
};
use crate::analysis::packet::{Packet, PacketSink, Transport};
use crate::analysis::replay::ReportSink;
use crate::capture::CaptureReader;
use crate::capture::Timestamp;
use control::ControlResolutions;
use data::RuleData;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Errors of the interference module: bad rule data or control files.
#[derive(Debug, thiserror::Error)]
pub enum InterferenceError {
    /// A line of a rule data file could not be parsed.
    #[error("{file}:{line}: {message}")]
    Data {
        /// The file (shipped name or user path).
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A capture could not be read.
    #[error("{file}: {message}")]
    Capture {
        /// The capture file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A control-resolution file could not be read or parsed.
    #[error("control resolutions {file}: {message}")]
    Control {
        /// The file.
        file: String,
        /// What is wrong (with line and column when known).
        message: String,
    },
}

/// Looks up the origin AS of an address (for control consistency).
pub trait AsnLookup: Send + Sync {
    /// Origin ASN of `ip`, if known.
    fn asn(&self, ip: IpAddr) -> Option<u32>;
}

impl AsnLookup for crate::geo::db::MmdbFile {
    fn asn(&self, ip: IpAddr) -> Option<u32> {
        crate::geo::db::MmdbFile::asn(self, ip).ok().flatten()
    }
}

impl AsnLookup for BTreeMap<IpAddr, u32> {
    fn asn(&self, ip: IpAddr) -> Option<u32> {
        self.get(&ip).copied()
    }
}

/// An event as a rule found it, with what the passes after the rules
/// read kept typed beside it (the event's evidence shows the same values
/// as JSON, for the reader; passes never parse it back).
#[derive(Debug, Clone)]
pub struct Finding {
    /// The event.
    pub event: InterferenceEvent,
    /// IP-ID of the suspect packet (`frames[0]`) when the event's
    /// evidence shows it as `ip_id`: the repeated-IP-ID pass groups on it.
    pub ip_id: Option<u16>,
}

/// What the DNS rules found: the findings, and the addresses their forged
/// answers carried, typed, for the TCP rules (the events' evidence lists
/// the same addresses as `forged_addresses`, for the reader).
#[derive(Debug, Default)]
pub struct DnsFindings {
    /// Findings, in the order the rules found them.
    pub events: Vec<Finding>,
    /// Addresses of forged answers (repeats allowed).
    pub forged: Vec<IpAddr>,
}

impl DnsFindings {
    /// Adds an event (with its suspect reply's IP-ID, when its evidence
    /// shows one) and the forged addresses it names.
    pub fn push(
        &mut self,
        event: InterferenceEvent,
        ip_id: Option<u16>,
        forged: impl IntoIterator<Item = IpAddr>,
    ) {
        self.events.push(Finding { event, ip_id });
        self.forged.extend(forged);
    }

    /// The events alone, in the order found.
    pub fn into_events(self) -> Vec<InterferenceEvent> {
        self.events.into_iter().map(|f| f.event).collect()
    }
}

/// What the detector knows beyond the capture.
#[derive(Clone, Default)]
pub struct InterferenceConfig {
    /// Control resolutions (name → addresses seen from an uncensored vantage).
    pub control: ControlResolutions,
    /// ASN lookup used to judge control consistency.
    pub asn: Option<Arc<dyn AsnLookup>>,
    /// Extra trigger keywords (added to `data/keywords.txt`).
    pub keywords: Vec<String>,
    /// Address ranges the caller declares its own, never bogons (the
    /// virtual lab passes its address space explicitly).
    pub exempt: Vec<ipnetwork::IpNetwork>,
}

impl fmt::Debug for InterferenceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterferenceConfig")
            .field("control", &self.control)
            .field("asn", &self.asn.as_ref().map(|_| "<lookup>"))
            .field("keywords", &self.keywords)
            .field("exempt", &self.exempt)
            .finish()
    }
}

/// Transport facts of a UDP DNS message the [`DnsExtractor`] does not keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsMeta {
    /// Client port.
    pub client_port: u16,
    /// Frame of the (first) matching query, if seen.
    pub query_frame: Option<u64>,
    /// Timestamp of the (first) matching query, if seen.
    pub query_ts: Option<Timestamp>,
    /// How many times the matching query was sent.
    pub query_count: u32,
}

/// An ICMP port unreachable quoting a UDP datagram (a late DNS reply whose
/// socket the client had already closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortUnreachable {
    /// Frame of the ICMP message.
    pub frame: u64,
    /// Source of the quoted datagram (the resolver).
    pub quoted_src: IpAddr,
    /// Destination of the quoted datagram (the client).
    pub quoted_dst: IpAddr,
    /// Quoted source port.
    pub sport: u16,
    /// Quoted destination port.
    pub dport: u16,
    /// DNS id of the quoted message, when enough of it was quoted.
    pub dns_id: Option<u16>,
}

/// Key of a UDP DNS query: client, client port, server, id.
type QueryKey = (IpAddr, u16, IpAddr, u16);
/// Bound on remembered queries and reply metadata.
const MAX_DNS_STATE: usize = 1 << 18;
/// Queries unused (neither resent nor answered) for this many seconds are
/// forgotten: resolvers answer within seconds, so only live queries stay.
const QUERY_IDLE_SECS: f64 = 120.0;
/// Forget idle queries every this many DNS queries.
const QUERY_SWEEP_EVERY: u64 = 4096;

/// What is remembered of a query: first frame and time, how many times it
/// was sent, when it was last sent or answered.
#[derive(Debug, Clone, Copy)]
struct QueryState {
    frame: u64,
    ts: Timestamp,
    count: u32,
    last_ts: Timestamp,
}

/// The interference [`PacketSink`]. Construct, feed, then
/// [`into_events`](Self::into_events); as a [`ReportSink`] (registered in
/// [`crate::analysis::replay::extra_sinks`]) it fills `report.interference`.
#[derive(Debug)]
pub struct InterferenceDetector {
    cfg: InterferenceConfig,
    data: RuleData,
    /// Its own DNS extraction; `None` when a replay hands it the engine's
    /// records ([`ReportSink::dns_record`]) instead.
    dns: Option<DnsExtractor>,
    /// The engine's DNS records (when `dns` is `None`).
    fed_dns: Vec<DnsRecord>,
    queries: HashMap<QueryKey, QueryState>,
    /// Queries seen (drives the idle-query sweep).
    queries_seen: u64,
    dns_meta: HashMap<u64, DnsMeta>,
    unreachable: Vec<PortUnreachable>,
    tcp: tcp_rules::TcpTracker,
}

impl InterferenceDetector {
    /// A detector with the shipped rule data plus `cfg`.
    pub fn new(cfg: InterferenceConfig) -> Self {
        // The shipped files are checked by a unit test; an empty rule set
        // (never a panic) is the fallback should that ever regress.
        let mut data = RuleData::shipped().unwrap_or_default();
        data.add_keywords(&cfg.keywords.join("\n"));
        data.exempt.extend_from_slice(&cfg.exempt);
        Self::with_data(cfg, data)
    }

    /// A detector with explicit rule data (tests, custom lists).
    pub fn with_data(cfg: InterferenceConfig, data: RuleData) -> Self {
        InterferenceDetector {
            cfg,
            data,
            dns: Some(DnsExtractor::new()),
            fed_dns: Vec::new(),
            queries: HashMap::new(),
            queries_seen: 0,
            dns_meta: HashMap::new(),
            unreachable: Vec::new(),
            tcp: tcp_rules::TcpTracker::default(),
        }
    }

    /// The detector `matador replay` runs ([`crate::analysis::replay::extra_sinks`]):
    /// the shipped rule data, and the DNS records of the replay engine
    /// instead of a second DNS extraction of its own.
    pub fn fed_by_replay() -> Self {
        InterferenceDetector {
            dns: None,
            ..Self::default()
        }
    }

    /// The same detector with `nets` declared the caller's own address
    /// space (never bogons; the virtual lab passes its ranges here).
    pub fn exempting(mut self, nets: &[ipnetwork::IpNetwork]) -> Self {
        self.data.exempt.extend_from_slice(nets);
        self
    }

    /// Applies every rule and returns the events, ordered by first frame.
    pub fn into_events(self) -> Vec<InterferenceEvent> {
        let records = match self.dns {
            Some(dns) => dns.finish(),
            None => {
                // As DnsExtractor::finish orders them (a stable sort).
                let mut r = self.fed_dns;
                r.sort_by_key(|r| r.frame);
                r
            }
        };
        let dns = dns_rules::check(&records, &self.dns_meta, &self.unreachable, &self.data);
        let control = control::check(&records, &self.cfg);
        // Addresses that DNS rules found forged make bogus handshakes with
        // them more certain.
        let mut forged = dns.forged;
        forged.extend(control.forged);
        let mut events = dns.events;
        events.extend(control.events);
        events.extend(self.tcp.finish(&self.data, &forged));
        boost_repeated_ip_ids(&mut events);
        let mut events: Vec<InterferenceEvent> = events.into_iter().map(|f| f.event).collect();
        events.sort_by(|a, b| {
            a.frames
                .first()
                .cmp(&b.frames.first())
                .then(a.rule.cmp(&b.rule))
        });
        events
    }

    fn udp_dns(&mut self, pkt: &Packet<'_>, sport: u16, dport: u16, payload: &[u8]) {
        // Only the header counts here; the answers come from the extractor.
        let (Some(ip), Some((id, response))) = (pkt.ip, id_and_response(payload)) else {
            return;
        };
        if self.queries.len() >= MAX_DNS_STATE {
            self.queries.clear();
        }
        if !response && dport == DNS_PORT {
            self.queries_seen += 1;
            if self.queries_seen.is_multiple_of(QUERY_SWEEP_EVERY) {
                let now = pkt.ts;
                self.queries
                    .retain(|_, q| now.since(&q.last_ts) <= QUERY_IDLE_SECS);
            }
            let e = self
                .queries
                .entry((ip.src, sport, ip.dst, id))
                .or_insert(QueryState {
                    frame: pkt.frame,
                    ts: pkt.ts,
                    count: 0,
                    last_ts: pkt.ts,
                });
            e.count += 1;
            e.last_ts = pkt.ts;
        } else if response && sport == DNS_PORT && self.dns_meta.len() < MAX_DNS_STATE {
            let q = self.queries.get_mut(&(ip.dst, dport, ip.src, id));
            let q = q.map(|q| {
                q.last_ts = pkt.ts;
                *q
            });
            self.dns_meta.insert(
                pkt.frame,
                DnsMeta {
                    client_port: dport,
                    query_frame: q.map(|q| q.frame),
                    query_ts: q.map(|q| q.ts),
                    query_count: q.map_or(0, |q| q.count),
                },
            );
        }
    }

    fn icmp(&mut self, pkt: &Packet<'_>, v6: bool, icmp_type: u8, code: u8, quoted: &[u8]) {
        let unreachable = if v6 {
            icmp_type == 1 && code == 4
        } else {
            icmp_type == 3 && code == 3
        };
        if !unreachable || self.unreachable.len() >= MAX_DNS_STATE {
            return;
        }
        if let Some(pu) = parse_quoted_udp(pkt.frame, v6, quoted)
            && (pu.sport == DNS_PORT)
        {
            self.unreachable.push(pu);
        }
    }
}

impl Default for InterferenceDetector {
    /// The shipped rule data and no extra knowledge (what `matador replay` runs).
    fn default() -> Self {
        Self::new(InterferenceConfig::default())
    }
}

impl ReportSink for InterferenceDetector {
    fn finish(self: Box<Self>, report: &mut CaptureReport) {
        report.interference = self.into_events();
    }

    fn dns_record(&mut self, record: &DnsRecord) {
        // A detector with its own extractor has these records already.
        if self.dns.is_none() {
            self.fed_dns.push(record.clone());
        }
    }
}

/// Runs the interference rules alone over a capture file with `cfg` (e.g.
/// control resolutions from a campaign), without the rest of a replay.
pub fn analyze_capture(
    path: &Path,
    cfg: InterferenceConfig,
) -> Result<Vec<InterferenceEvent>, InterferenceError> {
    let file = path.display().to_string();
    let err = |e: &dyn fmt::Display| InterferenceError::Capture {
        file: file.clone(),
        message: e.to_string(),
    };
    let f = std::fs::File::open(path).map_err(|e| err(&e))?;
    let mut reader = CaptureReader::new(f, &file).map_err(|e| err(&e))?;
    let mut det = InterferenceDetector::new(cfg);
    while let Some(raw) = reader.next_frame().map_err(|e| err(&e))? {
        det.packet(&decode(&raw));
    }
    Ok(det.into_events())
}

/// An injector stamping one IP-ID on all its packets is betrayed by the
/// repetition: events of one kind and claimed source sharing a non-zero
/// IP-ID get `repeated_ip_id` (how many) and +0.1 confidence (max 0.95).
fn boost_repeated_ip_ids(findings: &mut [Finding]) {
    let key = |f: &Finding| {
        f.ip_id
            .filter(|id| *id != 0)
            .map(|id| (f.event.kind.clone(), f.event.claimed_src, id))
    };
    let mut counts: HashMap<(InterferenceKind, IpAddr, u16), usize> = HashMap::new();
    for f in findings.iter() {
        if let Some(k) = key(f) {
            *counts.entry(k).or_default() += 1;
        }
    }
    for f in findings.iter_mut() {
        if let Some(&n) = key(f).as_ref().and_then(|k| counts.get(k))
            && n > 1
        {
            let e = &mut f.event;
            e.evidence
                .insert("repeated_ip_id".into(), serde_json::json!(n));
            e.confidence = round2((e.confidence + 0.1).min(0.95));
        }
    }
}

/// Reads the quoted IP + UDP header (and DNS id) of an ICMP error.
fn parse_quoted_udp(frame: u64, v6: bool, q: &[u8]) -> Option<PortUnreachable> {
    let (src, dst, udp) = if v6 {
        if q.len() < 48 || q[6] != 17 {
            return None;
        }
        let s: [u8; 16] = q[8..24].try_into().ok()?;
        let d: [u8; 16] = q[24..40].try_into().ok()?;
        (IpAddr::from(s), IpAddr::from(d), &q[40..])
    } else {
        let ihl = usize::from(q.first()? & 0x0f) * 4;
        if ihl < 20 || q.len() < ihl + 8 || q[9] != 17 {
            return None;
        }
        let s: [u8; 4] = q[12..16].try_into().ok()?;
        let d: [u8; 4] = q[16..20].try_into().ok()?;
        (IpAddr::from(s), IpAddr::from(d), &q[ihl..])
    };
    let be = |i: usize| u16::from_be_bytes([udp[i], udp[i + 1]]);
    Some(PortUnreachable {
        frame,
        quoted_src: src,
        quoted_dst: dst,
        sport: be(0),
        dport: be(2),
        dns_id: (udp.len() >= 10).then(|| be(8)),
    })
}

impl PacketSink for InterferenceDetector {
    fn packet(&mut self, pkt: &Packet<'_>) {
        if let Some(dns) = &mut self.dns {
            dns.packet(pkt);
        }
        match pkt.transport {
            Transport::Udp {
                sport,
                dport,
                payload,
            } if sport == DNS_PORT || dport == DNS_PORT => {
                self.udp_dns(pkt, sport, dport, payload);
            }
            Transport::Icmp {
                v6,
                icmp_type,
                code,
                payload,
            } => self.icmp(pkt, v6, icmp_type, code, payload),
            Transport::Tcp { .. } => self.tcp.packet(pkt, &self.data),
            _ => {}
        }
    }
}

/// Builds an event (evidence filled by the caller); the kind is the rule's.
pub(crate) fn event(
    rule: InterferenceRule,
    frames: Vec<u64>,
    claimed_src: IpAddr,
    confidence: f64,
    summary: String,
) -> InterferenceEvent {
    InterferenceEvent {
        // The detector only fires known rules, each of one kind.
        kind: rule
            .kind()
            .unwrap_or_else(|| InterferenceKind::Other(String::new())),
        rule,
        frames,
        claimed_src,
        evidence: BTreeMap::new(),
        confidence: round2(confidence.clamp(0.0, 1.0)),
        injector_hops: None,
        summary,
    }
}

/// Rounds to two decimals so JSON output and snapshots stay stable.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Most likely initial TTL of a packet received with `ttl` (the common
/// stack defaults 32, 64, 128, 255).
pub fn initial_ttl(ttl: u8) -> u8 {
    [32u8, 64, 128, 255]
        .into_iter()
        .find(|&i| ttl <= i)
        .unwrap_or(255)
}

/// Hops travelled by a packet received with `ttl`, assuming a default initial TTL.
pub fn hops_from_ttl(ttl: u8) -> u8 {
    initial_ttl(ttl) - ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_estimates() {
        assert_eq!(hops_from_ttl(51), 13);
        assert_eq!(hops_from_ttl(237), 18);
        assert_eq!(hops_from_ttl(64), 0);
        assert_eq!(hops_from_ttl(120), 8);
    }

    #[test]
    fn quoted_udp_v4() {
        let mut q = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0, 8, 8, 8, 8, 10, 0, 0, 1,
        ];
        q.extend_from_slice(&[0, 53, 0x30, 0x39, 0, 20, 0, 0, 0xbe, 0xef]);
        let p = parse_quoted_udp(7, false, &q).unwrap();
        assert_eq!(p.sport, 53);
        assert_eq!(p.dport, 12345);
        assert_eq!(p.dns_id, Some(0xbeef));
        assert_eq!(p.quoted_src, "8.8.8.8".parse::<IpAddr>().unwrap());
        assert!(parse_quoted_udp(7, false, &q[..25]).is_none());
        assert!(parse_quoted_udp(7, true, &q).is_none());
    }
}
