//! `injected_packet` rules: packets that claim to come from a server but
//! whose IP header betrays another sender.
//!
//! Every TCP flow keeps a fixed-size summary of the server's packets (TTLs,
//! IP-ID counter statistics, window range, last sequence number: no list of
//! packets, no allocation per packet); only the rare suspect packets are
//! kept whole. At the end, when the flow goes idle, or shortly after it
//! closed (FIN/RST), each server RST, FIN or HTTP response —
//! the packets an injector forges — is compared with the server's *other*
//! packets in the flow (its baseline; when the flow has none, the server's
//! packets in other flows):
//!
//! | signal | weight |
//! |---|---|
//! | IP TTL ≥ 5 off the baseline's stable value (3–4: 0.3) | 0.5 |
//! | IP-ID is a known injector constant (`data/injector-ip-ids.txt`) | 0.5 |
//! | IP-ID breaks the baseline's counter (0.15 for RSTs: stacks send RSTs from another path) | 0.3 |
//! | the server kept sending after "its" RST | 0.3 |
//! | window far outside the baseline's (not for RSTs) | 0.15 |
//! | a client request shortly before (0.05), containing a keyword (+0.1) | 0.15 |
//!
//! An event needs a header signal (TTL or IP-ID) and a score ≥ 0.5; the
//! confidence is the score, capped at 0.95. Packets that arrive with an
//! initial TTL (64, 128, 255, 32: no router crossed) come from the capturing
//! host itself and are never suspects.
//!
//! One injection, one event: an injector often sends several packets with
//! the same fingerprint (Sandvine/PacketLogic: the HTTP 307 with FIN and a
//! bare ACK, all with its IP-ID and window). Events of one flow whose
//! packets share IP-ID and window become one event listing every frame,
//! and the server's other packets of the flow with that IP-ID and window
//! within [`GROUP_SECS`] — kept aside when they arrive because their window
//! or IP-ID already stood out ([`MAX_ODD`] per flow) — join it
//! (`injection_frames` in the evidence).
//!
//! `bogus_synack`: a SYN/ACK acknowledging a SYN the client sent to that
//! address, but on other ports than the SYN — no TCP stack does that; the
//! Great Firewall answers SYNs to its forged DNS addresses this way.
//!
//! TTL localization: when the client sent TTL-limited probes (a FIN or the
//! request with a small TTL) on several flows to one server and the outcome
//! (injected or not) flips at one TTL `t`, the injector is `t` hops away
//! (`probe_ttl_threshold`); otherwise the hop distance is estimated from the
//! injected packet's TTL against a default initial TTL.

use super::data::RuleData;
use super::dns_rules::{stable_mode, stable_mode_min};
use super::{Finding, event, hops_from_ttl, initial_ttl, round2};
use crate::analysis::model::{InterferenceEvent, InterferenceRule};
use crate::analysis::names::http::looks_like_request;
use crate::analysis::names::stream::{DirKey, FastMap};
use crate::analysis::names::tls::{
    Progress, client_hello_from_records, looks_like_handshake_record,
};
use crate::analysis::packet::{Packet, Transport, tcp_flags};
use crate::capture::Timestamp;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

/// Server packets kept per flow as baseline.
const MAX_BASELINE: usize = 64;
/// Suspect packets kept per flow.
const MAX_SUSPECTS: usize = 32;
/// Flows are evaluated and forgotten after this many idle seconds.
const IDLE_SECS: f64 = 300.0;
/// Closed flows (a FIN or RST seen) are evaluated and forgotten after this
/// many idle seconds, when their verdict no longer depends on other flows.
const CLOSED_GRACE_SECS: f64 = 60.0;
/// Hard bound on live flows.
const MAX_FLOWS: usize = 200_000;
/// Check for idle flows every this many TCP packets.
const SWEEP_EVERY: u64 = 16_384;
/// A request this recent (seconds) is the suspect's trigger.
const TRIGGER_SECS: f64 = 5.0;
/// SYNs remembered per destination for `bogus_synack`.
const SYNS_PER_DST: usize = 16;
/// Server packets of one flow that stood out (window far outside the
/// baseline, or a known injector IP-ID) kept to join an injection event.
const MAX_ODD: usize = 4;
/// Packets of one injection arrive within this many seconds of each other.
const GROUP_SECS: f64 = 2.0;

type Endpoint = (IpAddr, u16);

/// The header facts of one server packet: what a suspect keeps and what a
/// baseline summarises.
#[derive(Debug, Clone, Copy)]
struct Head {
    frame: u64,
    ts: Timestamp,
    ttl: u8,
    ip_id: Option<u16>,
    window: u16,
    seq: u32,
    flags: u8,
    len: usize,
}

/// One server packet as the rules need it (suspects and bogus SYN/ACKs;
/// built only for those, never per ordinary packet).
#[derive(Debug, Clone)]
struct Seg {
    head: Head,
    status_line: Option<String>,
    trigger: Option<Trigger>,
    /// The flow's baseline as it stood around this suspect.
    around: Around,
}

/// What a suspect needs to know of the baseline packets before and after
/// it (the baseline itself is summarised, not kept).
#[derive(Debug, Clone, Copy, Default)]
struct Around {
    /// Last non-zero baseline IP-ID before the suspect.
    prev_id: Option<u16>,
    /// First non-zero baseline IP-ID after the suspect.
    next_id: Option<u16>,
    /// Last baseline packet before the suspect: seq, payload length, flags.
    prev_seg: Option<(u32, u32, u8)>,
    /// First baseline frames more than 10 ms after the suspect.
    after: [u64; MAX_AFTER],
    /// How many of `after` are set.
    n_after: u8,
}

/// Server frames listed as `server_continued_frames`.
const MAX_AFTER: usize = 5;

/// Fixed-size summary of a flow's first [`MAX_BASELINE`] server packets
/// (those neither suspect nor RST nor from a known injector): exactly what
/// the rules read, no per-packet allocation.
#[derive(Debug, Clone)]
struct Baseline {
    /// Packets summarised (at most [`MAX_BASELINE`]).
    n: u8,
    /// Frame of the first one.
    first_frame: Option<u64>,
    /// Their IP TTLs.
    ttls: [u8; MAX_BASELINE],
    /// Non-zero IP-IDs seen, the last of them, deltas between consecutive
    /// ones and how many of those deltas look like a counter (≤ 2000).
    n_ids: u8,
    last_id: Option<u16>,
    n_deltas: u8,
    n_counter: u8,
    /// Minimum and maximum window of non-SYN packets.
    windows: Option<(u16, u16)>,
    /// Last packet: seq, payload length, flags.
    last_seg: Option<(u32, u32, u8)>,
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline {
            n: 0,
            first_frame: None,
            ttls: [0; MAX_BASELINE],
            n_ids: 0,
            last_id: None,
            n_deltas: 0,
            n_counter: 0,
            windows: None,
            last_seg: None,
        }
    }
}

impl Baseline {
    fn is_full(&self) -> bool {
        usize::from(self.n) >= MAX_BASELINE
    }

    fn ttls(&self) -> &[u8] {
        &self.ttls[..usize::from(self.n)]
    }

    /// Adds one packet; tells the flow's suspects what came after them.
    fn push(&mut self, h: Head, suspects: &mut [Seg]) {
        let Head {
            frame,
            ts,
            ttl,
            ip_id,
            window,
            seq,
            flags,
            len,
        } = h;
        self.ttls[usize::from(self.n)] = ttl;
        self.n += 1;
        self.first_frame.get_or_insert(frame);
        let id = ip_id.filter(|&i| i != 0);
        if let Some(i) = id {
            if let Some(l) = self.last_id {
                self.n_deltas += 1;
                if i.wrapping_sub(l) <= 2000 {
                    self.n_counter += 1;
                }
            }
            self.n_ids += 1;
            self.last_id = Some(i);
        }
        if flags & tcp_flags::SYN == 0 {
            self.windows = Some(match self.windows {
                None => (window, window),
                Some((lo, hi)) => (lo.min(window), hi.max(window)),
            });
        }
        self.last_seg = Some((seq, len as u32, flags));
        for s in suspects.iter_mut().filter(|s| s.head.frame < frame) {
            let a = &mut s.around;
            if a.next_id.is_none() {
                a.next_id = id;
            }
            if usize::from(a.n_after) < MAX_AFTER && ts.since(&s.head.ts) > 0.010 {
                a.after[usize::from(a.n_after)] = frame;
                a.n_after += 1;
            }
        }
    }
}

/// The client request that preceded a suspect packet.
#[derive(Debug, Clone)]
struct Trigger {
    frame: u64,
    ts: Timestamp,
    /// Request line + Host, or SNI; `None` for other data.
    head: Option<String>,
}

/// A client packet sent with a deliberately small TTL.
#[derive(Debug, Clone, Copy)]
struct Probe {
    ttl: u8,
    kind: &'static str,
}

#[derive(Debug, Clone)]
struct Flow {
    client: Endpoint,
    server: Endpoint,
    client_ttl: Option<u8>,
    /// The client's SYN on these very ports was seen.
    syn_seen: bool,
    baseline: Baseline,
    suspects: Vec<Seg>,
    last_request: Option<Trigger>,
    probe: Option<Probe>,
    last_ts: Timestamp,
    /// A FIN or RST was seen (either side).
    closed: bool,
    /// Server packets, not suspects, whose window or IP-ID stood out: an
    /// injector's companions of a suspect (e.g. its bare ACK).
    odd: Vec<Head>,
}

impl Flow {
    /// A new flow seen first in a packet from `src` to `dst`: the client is
    /// the sender of a SYN (the receiver of a SYN/ACK), else the higher port.
    fn new(src: Endpoint, dst: Endpoint, syn: bool, has_ack: bool, ts: Timestamp) -> Box<Flow> {
        let client_is_src = if syn { !has_ack } else { src.1 > dst.1 };
        let (client, server) = if client_is_src {
            (src, dst)
        } else {
            (dst, src)
        };
        Box::new(Flow {
            client,
            server,
            client_ttl: None,
            syn_seen: false,
            baseline: Baseline::default(),
            suspects: Vec::new(),
            last_request: None,
            probe: None,
            last_ts: ts,
            closed: false,
            odd: Vec::new(),
        })
    }

    /// Whether the flow may be evaluated after `idle` seconds without
    /// packets: closed flows after [`CLOSED_GRACE_SECS`] unless a suspect
    /// needs the server's other flows as baseline (that grows meanwhile).
    fn expired(&self, now: Timestamp, idle: f64) -> bool {
        let quiet = now.since(&self.last_ts);
        quiet > idle
            || (self.closed
                && quiet > CLOSED_GRACE_SECS
                && (self.baseline.n > 0 || self.suspects.is_empty()))
    }
}

#[derive(Debug, Clone)]
struct Syn {
    frame: u64,
    ts: Timestamp,
    client: Endpoint,
    dport: u16,
    isn: u32,
}

#[derive(Debug, Clone)]
struct OrphanSynAck {
    seg: Seg,
    server: Endpoint,
    client: Endpoint,
    payload_len: usize,
    syn: Syn,
}

/// Localization group: server, port, probe kind.
type ProbeGroup = (IpAddr, u16, &'static str);

/// Per-capture TCP state of the injection rules.
#[derive(Debug, Default)]
pub struct TcpTracker {
    /// Boxed: the table stays small (48-byte entries), so growing it never
    /// holds two copies of every flow at once.
    flows: FastMap<DirKey, Box<Flow>>,
    /// TTL histogram of each address's baseline packets, across flows.
    server_ttls: FastMap<IpAddr, BTreeMap<u8, u32>>,
    syns: FastMap<IpAddr, VecDeque<Syn>>,
    orphans: Vec<OrphanSynAck>,
    events: Vec<(Option<(ProbeGroup, u8)>, Finding)>,
    probes: Vec<(ProbeGroup, u8, bool)>,
    packets: u64,
}

/// The direction-independent key of a TCP flow.
fn key(a: Endpoint, b: Endpoint) -> DirKey {
    DirKey {
        proto: 6,
        src: a.0,
        sport: a.1,
        dst: b.0,
        dport: b.1,
    }
    .canonical()
}

/// What a client segment asks for, for evidence: the HTTP request line and
/// Host header, or the TLS ClientHello's SNI; `None` for other payloads
/// (kept cheap: this runs on every client segment with data).
/// Writes it into `head` (cleared by the caller) and tells whether there was one.
fn request_head(payload: &[u8], head: &mut String) -> bool {
    if looks_like_handshake_record(payload) {
        match client_hello_from_records(payload) {
            Progress::Done(h) => {
                head.push_str("TLS ClientHello | SNI: ");
                head.push_str(h.sni.as_deref().unwrap_or("-"));
            }
            _ => head.push_str("TLS handshake"),
        }
        return true;
    }
    if !looks_like_request(payload) {
        return false;
    }
    let text = String::from_utf8_lossy(&payload[..payload.len().min(1024)]);
    let mut lines = text.split("\r\n");
    head.extend(lines.next().unwrap_or("").chars().take(120));
    if let Some(h) = lines.find(|l| l.len() > 5 && l.as_bytes()[..5].eq_ignore_ascii_case(b"host:"))
    {
        head.push_str(" | ");
        head.extend(h.chars().take(120));
    }
    true
}

impl TcpTracker {
    /// Feeds one packet (TCP only; others are ignored).
    pub fn packet(&mut self, pkt: &Packet<'_>, data: &RuleData) {
        let (
            Some(ip),
            Transport::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                payload,
            },
        ) = (pkt.ip, pkt.transport)
        else {
            return;
        };
        self.packets += 1;
        if self.packets.is_multiple_of(SWEEP_EVERY) {
            self.sweep(pkt.ts, IDLE_SECS, data);
        }
        let src = (ip.src, sport);
        let dst = (ip.dst, dport);
        let syn = flags & tcp_flags::SYN != 0;
        let has_ack = flags & tcp_flags::ACK != 0;
        let is_http = payload.starts_with(b"HTTP/");
        let head = Head {
            frame: pkt.frame,
            ts: pkt.ts,
            ttl: ip.ttl,
            ip_id: ip.ip_id,
            window,
            seq,
            flags,
            len: payload.len(),
        };
        let make_seg = || Seg {
            head,
            status_line: is_http.then(|| status_line(payload)),
            trigger: None,
            around: Around::default(),
        };
        let k = key(src, dst);
        if syn && !has_ack {
            self.note_syn(pkt, src, dst, seq);
        }
        // (one hash lookup per packet: the others only when needed)
        if syn && has_ack && !self.flows.get(&k).is_some_and(|f| f.syn_seen) {
            // A SYN/ACK for a connection never opened on these ports: does
            // it acknowledge a SYN sent to this address on other ports?
            if let Some(s) = self.acknowledged_syn(pkt.ts, src, dst, ack) {
                if self.orphans.len() < MAX_FLOWS {
                    self.orphans.push(OrphanSynAck {
                        seg: make_seg(),
                        server: src,
                        client: dst,
                        payload_len: payload.len(),
                        syn: s,
                    });
                }
                return;
            }
        }
        self.make_room(k, pkt.ts, data);
        let flow = self
            .flows
            .entry(k)
            .or_insert_with(|| Flow::new(src, dst, syn, has_ack, pkt.ts));
        flow.last_ts = pkt.ts;
        flow.closed |= flags & (tcp_flags::RST | tcp_flags::FIN) != 0;
        if syn && !has_ack && src == flow.client {
            flow.syn_seen = true;
        }
        if src == flow.client {
            client_segment(flow, pkt, ip.ttl, syn, flags, payload);
            return;
        }
        let suspect = flags & (tcp_flags::RST | tcp_flags::FIN) != 0 || is_http;
        let local = hops_from_ttl(ip.ttl) == 0;
        let suspect = suspect && !local;
        if suspect {
            if flow.suspects.len() < MAX_SUSPECTS {
                // Most flows get one suspect (the server's FIN): no spare room.
                flow.suspects.reserve_exact(1);
                let mut s = make_seg();
                s.trigger = flow
                    .last_request
                    .as_ref()
                    .filter(|t| pkt.ts.since(&t.ts) <= TRIGGER_SECS)
                    .cloned();
                s.around.prev_id = flow.baseline.last_id;
                s.around.prev_seg = flow.baseline.last_seg;
                flow.suspects.push(s);
            }
        } else if flags & tcp_flags::RST == 0
            && flow.odd.len() < MAX_ODD
            && stands_out(&flow.baseline, &head, data)
        {
            flow.odd.push(head);
        }
        if !suspect
            && flags & tcp_flags::RST == 0
            && !flow.baseline.is_full()
            && !ip
                .ip_id
                .is_some_and(|i| data.injector_ip_ids.contains_key(&i))
        {
            let h = self.server_ttls.entry(ip.src).or_default();
            *h.entry(ip.ttl).or_default() += 1;
            flow.baseline.push(head, &mut flow.suspects);
        }
        if self.server_ttls.len() > MAX_FLOWS {
            self.server_ttls.clear();
        }
    }

    /// Remembers a client's SYN by destination address (the last
    /// [`SYNS_PER_DST`] of each), for [`Self::acknowledged_syn`].
    fn note_syn(&mut self, pkt: &Packet<'_>, client: Endpoint, dst: Endpoint, isn: u32) {
        let (server, dport) = dst;
        let q = self.syns.entry(server).or_default();
        if q.len() >= SYNS_PER_DST {
            q.pop_front();
        }
        q.push_back(Syn {
            frame: pkt.frame,
            ts: pkt.ts,
            client,
            dport,
            isn,
        });
        if self.syns.len() > MAX_FLOWS {
            self.syns.clear();
        }
    }

    /// The recent SYN a SYN/ACK from `server` to `client` acknowledges when
    /// that SYN went to `server`'s address on other ports (or from another
    /// client port): the SYN/ACK answers a connection it does not belong to.
    fn acknowledged_syn(
        &self,
        ts: Timestamp,
        server: Endpoint,
        client: Endpoint,
        ack: u32,
    ) -> Option<Syn> {
        let s = self.syns.get(&server.0).and_then(|q| {
            q.iter()
                .rev()
                .find(|s| {
                    s.client.0 == client.0
                        && s.isn.wrapping_add(1) == ack
                        && ts.since(&s.ts) <= TRIGGER_SECS
                })
                .cloned()
        })?;
        (s.client != client || s.dport != server.1).then_some(s)
    }

    /// Evaluates idle flows when the table is full and `k` is new.
    fn make_room(&mut self, k: DirKey, ts: Timestamp, data: &RuleData) {
        if self.flows.len() >= MAX_FLOWS && !self.flows.contains_key(&k) {
            self.sweep(ts, 10.0, data);
            if self.flows.len() >= MAX_FLOWS {
                self.sweep(ts, -1.0, data);
            }
        }
    }

    /// Evaluates and forgets flows idle for more than `idle` seconds.
    fn sweep(&mut self, now: Timestamp, idle: f64, data: &RuleData) {
        let old: Vec<_> = self
            .flows
            .iter()
            .filter(|(_, f)| f.expired(now, idle))
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            if let Some(f) = self.flows.remove(&k) {
                self.evaluate(&f, data);
            }
        }
    }

    /// Evaluates every remaining flow and returns all events;
    /// `forged_dns` are addresses that DNS rules found in forged answers.
    pub fn finish(mut self, data: &RuleData, forged_dns: &[IpAddr]) -> Vec<Finding> {
        let mut flows: Vec<Box<Flow>> = self.flows.drain().map(|(_, f)| f).collect();
        flows.sort_by_key(|f| {
            f.baseline
                .first_frame
                .or(f.suspects.first().map(|s| s.head.frame))
        });
        for f in &flows {
            self.evaluate(f, data);
        }
        let thresholds = localize(&self.probes);
        let mut out: Vec<Finding> = self
            .events
            .into_iter()
            .map(|(group, mut f)| {
                if let Some((g, probe_ttl)) = group
                    && let Some(&t) = thresholds.get(&g)
                {
                    let e = &mut f.event;
                    e.evidence.insert("probe_ttl_threshold".into(), json!(t));
                    e.evidence.insert("probe_kind".into(), json!(g.2));
                    e.evidence.insert("probe_ttl".into(), json!(probe_ttl));
                    e.injector_hops = Some(t);
                }
                f
            })
            .collect();
        out.extend(bogus_synacks(&self.orphans, forged_dns));
        out
    }

    fn evaluate(&mut self, f: &Flow, data: &RuleData) {
        let mut found: Vec<(Head, InterferenceEvent)> = Vec::new();
        for s in &f.suspects {
            if let Some(e) = self.judge(f, s, data) {
                found.push((s.head, e));
            }
        }
        let injected = !found.is_empty();
        for e in group_injection(found, &f.odd) {
            let group = f.probe.map(|p| ((f.server.0, f.server.1, p.kind), p.ttl));
            self.events.push((group, e));
        }
        if let Some(p) = f.probe {
            self.probes
                .push(((f.server.0, f.server.1, p.kind), p.ttl, injected));
        }
    }

    /// Scores one suspect packet against the flow's baseline. Most
    /// suspects are genuine (a server's FIN), so the score is worked out
    /// first without evidence; only an event is scored again with it.
    fn judge(&self, f: &Flow, s: &Seg, data: &RuleData) -> Option<InterferenceEvent> {
        self.score(f, s, data, false)?;
        self.score(f, s, data, true)
    }

    /// [`Self::judge`]'s rules; with `explain` false the event returned
    /// (if any) has no evidence or reasons, only its verdict. The rules
    /// add up in a fixed order (the score is a sum of decimal fractions).
    fn score(
        &self,
        f: &Flow,
        s: &Seg,
        data: &RuleData,
        explain: bool,
    ) -> Option<InterferenceEvent> {
        let rst = s.head.flags & tcp_flags::RST != 0;
        let mut j = Judgement {
            score: 0.0,
            header: false,
            reasons: Reasons::new(explain),
            ev: Evidence::new(explain),
        };
        segment_evidence(&mut j.ev, f, s);
        let genuine_ttl = self.ttl_rule(f, s, &mut j);
        ipid_rules(f, s, data, rst, &mut j);
        window_rule(f, s, rst, &mut j);
        seq_evidence(s, &mut j.ev);
        if rst {
            continued_after_rst(f, s, &mut j);
        }
        trigger_rules(s, data, &mut j);
        if let Some(line) = &s.status_line {
            j.ev.put("http_status_line", || json!(line));
        }
        // (epsilon: the weights are decimal fractions)
        if !j.header || j.score < 0.5 - 1e-9 {
            return None;
        }
        Some(injection_event(f, s, rst, genuine_ttl, j))
    }

    /// TTL: against the flow's own baseline, else the server's other
    /// flows; returns the genuine TTL when there is one.
    fn ttl_rule(&self, f: &Flow, s: &Seg, j: &mut Judgement) -> Option<u8> {
        let flow_ttls = f.baseline.ttls();
        let expected_ttl = if !flow_ttls.is_empty() {
            j.ev.put("ttl_baseline", || json!("flow"));
            stable_mode_min(flow_ttls, 1)
        } else {
            let hist = self.server_ttls.get(&f.server.0);
            let all: Vec<u8> = hist
                .map(|h| {
                    h.iter()
                        .flat_map(|(t, n)| std::iter::repeat_n(*t, (*n).min(1000) as usize))
                        .collect()
                })
                .unwrap_or_default();
            j.ev.put("ttl_baseline", || json!("server"));
            stable_mode(&all)
        };
        let exp = expected_ttl?;
        j.ev.put("expected_ip_ttl", || json!(exp));
        let d = s.head.ttl.abs_diff(exp);
        if d >= 5 {
            j.add(0.5, true, || format!("TTL {} vs {}", s.head.ttl, exp));
        } else if d >= 3 {
            j.add(0.3, true, || format!("TTL {} vs {}", s.head.ttl, exp));
        }
        Some(exp)
    }
}

/// A suspect's running judgement: its score, whether a header field
/// betrayed it, and (when explaining) the reasons and the evidence.
struct Judgement {
    score: f64,
    header: bool,
    reasons: Reasons,
    ev: Evidence,
}

impl Judgement {
    /// Adds `points` for a reason; `header`: the reason is a header field.
    fn add(&mut self, points: f64, header: bool, reason: impl FnOnce() -> String) {
        self.score += points;
        self.header |= header;
        self.reasons.push(reason);
    }
}

/// The suspect segment's own fields, as evidence.
fn segment_evidence(ev: &mut Evidence, f: &Flow, s: &Seg) {
    ev.put("ip_ttl", || json!(s.head.ttl));
    if let Some(id) = s.head.ip_id {
        ev.put("ip_id", || json!(format!("{id:#06x}")));
    }
    ev.put("window", || json!(s.head.window));
    ev.put("flags", || json!(flag_names(s.head.flags)));
    ev.put("seq", || json!(s.head.seq));
    ev.put("payload_len", || json!(s.head.len));
    ev.put("server_port", || json!(f.server.1));
    ev.put("client", || json!(format!("{}:{}", f.client.0, f.client.1)));
}

/// IP-ID: a known injector's constant (unless the server's own counter
/// explains it: a counter passes through 0x3412 too), or an ID off the
/// server's counter.
fn ipid_rules(f: &Flow, s: &Seg, data: &RuleData, rst: bool, j: &mut Judgement) {
    let Some(id) = s.head.ip_id else { return };
    let fit = ipid_fit(&f.baseline, s);
    if let Some(note) = data.injector_ip_ids.get(&id)
        && fit != IpIdFit::Fits
    {
        j.add(0.5, true, || format!("IP-ID {id:#06x} of a known injector"));
        j.ev.put("known_injector", || json!(note));
    }
    if let IpIdFit::Misfit(exp) = fit {
        let points = if rst { 0.15 } else { 0.3 };
        j.add(points, true, || {
            format!("IP-ID {id:#06x} off the server's counter")
        });
        j.ev.put("expected_ip_id_near", || json!(format!("{exp:#06x}")));
    }
}

/// Window: far outside the flow's range (not judged for a RST).
fn window_rule(f: &Flow, s: &Seg, rst: bool, j: &mut Judgement) {
    if rst {
        return;
    }
    if let Some((lo, hi)) = f.baseline.windows {
        let lo2 = u32::from(lo) / 2;
        let hi2 = u32::from(hi) * 2;
        if u32::from(s.head.window) < lo2 || u32::from(s.head.window) > hi2 {
            j.add(0.15, false, || {
                format!("window {} vs {lo}..{hi}", s.head.window)
            });
            j.ev.put("expected_window", || json!([lo, hi]));
        }
    }
}

/// Sequence number against the server's next one (evidence only: genuine
/// RSTs answering stray segments use other numbers too).
fn seq_evidence(s: &Seg, ev: &mut Evidence) {
    if let Some((b_seq, b_len, b_flags)) = s.around.prev_seg {
        let syn_fin =
            u32::from(b_flags & tcp_flags::SYN != 0) + u32::from(b_flags & tcp_flags::FIN != 0);
        let next = b_seq.wrapping_add(b_len).wrapping_add(syn_fin);
        ev.put("expected_seq", || json!(next));
        ev.put("seq_offset", || json!(s.head.seq.wrapping_sub(next) as i32));
    }
}

/// The server kept sending after a RST that claims to close the flow.
fn continued_after_rst(f: &Flow, s: &Seg, j: &mut Judgement) {
    // Baseline frames first, then other non-RST suspects (the order the
    // evidence always had).
    let after: Vec<u64> = s.around.after[..usize::from(s.around.n_after)]
        .iter()
        .copied()
        .chain(
            f.suspects
                .iter()
                .filter(|o| o.head.flags & tcp_flags::RST == 0)
                .filter(|b| b.head.frame > s.head.frame && b.head.ts.since(&s.head.ts) > 0.010)
                .map(|b| b.head.frame),
        )
        .take(MAX_AFTER)
        .collect();
    if !after.is_empty() {
        j.add(0.3, false, || "server kept sending after the RST".into());
        j.ev.put("server_continued_frames", || json!(after));
    }
}

/// The client request the suspect answers (a little more when it holds a
/// censored keyword).
fn trigger_rules(s: &Seg, data: &RuleData, j: &mut Judgement) {
    let Some(t) = &s.trigger else { return };
    j.score += 0.05;
    j.ev.put("trigger_frame", || json!(t.frame));
    if let Some(h) = &t.head {
        j.ev.put("trigger", || json!(h));
    }
    j.ev.put("delay_ms", || {
        json!(round2(s.head.ts.since(&t.ts) * 1000.0))
    });
    if let Some(k) = t.head.as_deref().and_then(|h| data.keyword_in(h)) {
        j.score += 0.1;
        j.ev.put("keyword", || json!(k));
    }
}

/// The `injected_*` event of a suspect judged injected.
fn injection_event(
    f: &Flow,
    s: &Seg,
    rst: bool,
    genuine_ttl: Option<u8>,
    mut j: Judgement,
) -> InterferenceEvent {
    let (what, rule) = if rst {
        ("RST", InterferenceRule::InjectedRst)
    } else if s.status_line.is_some() {
        ("HTTP response", InterferenceRule::InjectedHttpResponse)
    } else {
        ("FIN", InterferenceRule::InjectedFin)
    };
    let mut e = event(
        rule,
        vec![s.head.frame],
        f.server.0,
        j.score.min(0.95),
        format!(
            "{what} claiming to be from {}:{} is not the server's: {}",
            f.server.0,
            f.server.1,
            j.reasons.0.unwrap_or_default().join(", ")
        ),
    );
    if let Some(g) = genuine_ttl
        && s.head.ttl != g
    {
        e.injector_hops = Some(hops_from_ttl(s.head.ttl));
        j.ev.put("injector_hops_from_ttl", || {
            json!(hops_from_ttl(s.head.ttl))
        });
        j.ev.put("injector_initial_ttl", || json!(initial_ttl(s.head.ttl)));
        j.ev.put("server_hops", || json!(hops_from_ttl(g)));
    }
    e.evidence = j.ev.0.unwrap_or_default();
    e
}

/// A client segment: the client's usual TTL, a TTL-limited probe (a
/// segment with a TTL at most half the usual, at most 32), and the last
/// request (HTTP request line and Host, or the ClientHello's SNI) that
/// may trigger an injection.
fn client_segment(
    flow: &mut Flow,
    pkt: &Packet<'_>,
    ttl: u8,
    syn: bool,
    flags: u8,
    payload: &[u8],
) {
    match flow.client_ttl {
        None => flow.client_ttl = Some(ttl),
        Some(normal) if !syn && ttl <= 32 && u16::from(ttl) * 2 <= u16::from(normal) => {
            let kind = if payload.is_empty() { "fin" } else { "data" };
            if (payload.is_empty() && flags & tcp_flags::FIN != 0) || !payload.is_empty() {
                let keep = flow.probe.is_none_or(|p| ttl < p.ttl);
                if keep {
                    flow.probe = Some(Probe { ttl, kind });
                }
            }
        }
        Some(_) => {}
    }
    if !payload.is_empty() {
        // Reuse the flow's buffer: no allocation per client segment.
        let t = flow.last_request.get_or_insert(Trigger {
            frame: pkt.frame,
            ts: pkt.ts,
            head: None,
        });
        t.frame = pkt.frame;
        t.ts = pkt.ts;
        let mut buf = t.head.take().unwrap_or_default();
        buf.clear();
        if request_head(payload, &mut buf) {
            t.head = Some(buf);
        }
    }
}

/// True when a server packet's window is far outside the flow's baseline so
/// far, or its IP-ID is a known injector's: a candidate companion of an
/// injected packet.
fn stands_out(b: &Baseline, h: &Head, data: &RuleData) -> bool {
    let odd_window = b.windows.is_some_and(|(lo, hi)| {
        u32::from(h.window) < u32::from(lo) / 2 || u32::from(h.window) > u32::from(hi) * 2
    });
    odd_window
        || h.ip_id
            .is_some_and(|i| data.injector_ip_ids.contains_key(&i))
}

/// Groups one flow's injected packets by injector fingerprint (IP-ID and
/// window): one event per group, listing every frame (in order) with the
/// first event's rule and evidence, plus the flow's `odd` packets with the
/// same fingerprint within [`GROUP_SECS`] of the group.
fn group_injection(found: Vec<(Head, InterferenceEvent)>, odd: &[Head]) -> Vec<Finding> {
    let mut groups: Vec<(Head, InterferenceEvent)> = Vec::new();
    let same = |a: &Head, b: &Head| {
        a.ip_id.is_some() && a.ip_id == b.ip_id && a.window == b.window && {
            let dt = a.ts.since(&b.ts).abs();
            dt <= GROUP_SECS
        }
    };
    for (h, e) in found {
        match groups.iter_mut().find(|(g, _)| same(g, &h)) {
            Some((_, g)) => {
                g.frames.extend(e.frames);
                g.confidence = g.confidence.max(e.confidence);
            }
            None => groups.push((h, e)),
        }
    }
    for (h, e) in &mut groups {
        let before = e.frames.len();
        e.frames
            .extend(odd.iter().filter(|o| same(h, o)).map(|o| o.frame));
        e.frames.sort_unstable();
        e.frames.dedup();
        if e.frames.len() > 1 {
            e.evidence
                .insert("injection_frames".into(), json!(e.frames.clone()));
            if e.frames.len() > before {
                e.summary.push_str(" (with the injector's other packets)");
            }
        }
    }
    // Every packet of a group has the group's IP-ID (`same`), the one the
    // event's evidence shows.
    groups
        .into_iter()
        .map(|(h, event)| Finding {
            event,
            ip_id: h.ip_id,
        })
        .collect()
}

/// Evidence of a judgement, collected only when asked for.
struct Evidence(Option<BTreeMap<String, serde_json::Value>>);

impl Evidence {
    fn new(on: bool) -> Self {
        Evidence(on.then(BTreeMap::new))
    }

    fn put(&mut self, key: &str, value: impl FnOnce() -> serde_json::Value) {
        if let Some(m) = &mut self.0 {
            m.insert(key.to_string(), value());
        }
    }
}

/// The reasons of a judgement (summary text), collected only when asked for.
struct Reasons(Option<Vec<String>>);

impl Reasons {
    fn new(on: bool) -> Self {
        Reasons(on.then(Vec::new))
    }

    fn push(&mut self, reason: impl FnOnce() -> String) {
        if let Some(v) = &mut self.0 {
            v.push(reason());
        }
    }
}

/// How a suspect's IP-ID relates to the server's counter in the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpIdFit {
    /// No counter to compare with (too few IDs, random IDs, or ID 0).
    Unknown,
    /// The ID is where the counter would be.
    Fits,
    /// The ID breaks the counter; the value expected near it.
    Misfit(u16),
}

/// Compares `s`'s IP-ID with the counter of the baseline's IDs.
fn ipid_fit(baseline: &Baseline, s: &Seg) -> IpIdFit {
    let Some(id) = s.head.ip_id.filter(|&i| i != 0) else {
        return IpIdFit::Unknown;
    };
    if baseline.n_ids < 2 {
        return IpIdFit::Unknown;
    }
    if usize::from(baseline.n_counter) * 5 < usize::from(baseline.n_deltas) * 4 {
        return IpIdFit::Unknown;
    }
    let (prev, next) = (s.around.prev_id, s.around.next_id);
    let dist = |a: u16, b: u16| a.wrapping_sub(b).min(b.wrapping_sub(a));
    let classify = |fits: bool, misfit: bool, near: u16| {
        if fits {
            IpIdFit::Fits
        } else if misfit {
            IpIdFit::Misfit(near)
        } else {
            IpIdFit::Unknown
        }
    };
    match (prev, next) {
        (Some(p), Some(n)) => {
            let inside = id.wrapping_sub(p) <= n.wrapping_sub(p);
            classify(inside, dist(id, p) > 1000 && dist(id, n) > 1000, p)
        }
        (Some(p), None) => {
            let ahead = id.wrapping_sub(p);
            classify((1..=2000).contains(&ahead), ahead > 16_384, p)
        }
        (None, Some(n)) => {
            let behind = n.wrapping_sub(id);
            classify((1..=2000).contains(&behind), behind > 16_384, n)
        }
        (None, None) => IpIdFit::Unknown,
    }
}

/// The status line of an HTTP response (at most 120 characters).
fn status_line(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .take(512)
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(payload.len().min(512));
    String::from_utf8_lossy(&payload[..end])
        .chars()
        .take(120)
        .collect()
}

fn flag_names(flags: u8) -> String {
    let names = [
        (tcp_flags::SYN, "SYN"),
        (tcp_flags::ACK, "ACK"),
        (tcp_flags::PSH, "PSH"),
        (tcp_flags::FIN, "FIN"),
        (tcp_flags::RST, "RST"),
        (tcp_flags::URG, "URG"),
    ];
    names
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// For each probe group whose outcome flips at one TTL, that TTL.
fn localize(probes: &[(ProbeGroup, u8, bool)]) -> HashMap<ProbeGroup, u8> {
    let mut groups: HashMap<ProbeGroup, Vec<(u8, bool)>> = HashMap::new();
    for (g, t, inj) in probes {
        groups.entry(*g).or_default().push((*t, *inj));
    }
    let mut out = HashMap::new();
    for (g, mut obs) in groups {
        obs.sort();
        // Find t with all outcomes below t equal, all at/above t equal and different.
        for i in 1..obs.len() {
            let (lo, hi) = obs.split_at(i);
            let t = hi[0].0;
            if lo.last().is_some_and(|l| l.0 == t) {
                continue;
            }
            let a = lo[0].1;
            if lo.iter().all(|o| o.1 == a) && hi.iter().all(|o| o.1 != a) {
                out.insert(g, t);
                break;
            }
        }
    }
    out
}

fn bogus_synacks(orphans: &[OrphanSynAck], forged_dns: &[IpAddr]) -> Vec<Finding> {
    // TTLs of all bogus SYN/ACKs per (server, seq): an injector drawing a
    // random TTL per packet shows a spread no real retransmission has.
    let mut ttls: HashMap<(IpAddr, u32), Vec<u8>> = HashMap::new();
    for o in orphans {
        ttls.entry((o.server.0, o.seg.head.seq))
            .or_default()
            .push(o.seg.head.ttl);
    }
    orphans
        .iter()
        .map(|o| {
            let mut conf: f64 = 0.7;
            let seen = &ttls[&(o.server.0, o.seg.head.seq)];
            let spread = seen.iter().max().unwrap_or(&0) - seen.iter().min().unwrap_or(&0);
            let mut reasons = vec![format!(
                "acknowledges SYN frame {} sent to port {} from port {}, but arrives from port {} to port {}",
                o.syn.frame, o.syn.dport, o.syn.client.1, o.server.1, o.client.1
            )];
            if o.payload_len > 0 {
                conf += 0.1;
                reasons.push(format!("carries {} bytes of payload", o.payload_len));
            }
            if spread >= 8 {
                conf += 0.1;
                reasons.push(format!("TTL varies by {spread} across retransmissions"));
            }
            let forged = forged_dns.contains(&o.server.0);
            if forged {
                conf += 0.15;
                reasons.push("address came from a forged DNS answer".into());
            }
            let mut e = event(
                InterferenceRule::BogusSynack,
                vec![o.seg.head.frame],
                o.server.0,
                conf.min(0.95),
                format!("bogus SYN/ACK from {}: {}", o.server.0, reasons.join("; ")),
            );
            let ev = &mut e.evidence;
            ev.insert("ip_ttl".into(), json!(o.seg.head.ttl));
            if let Some(id) = o.seg.head.ip_id {
                ev.insert("ip_id".into(), json!(format!("{id:#06x}")));
            }
            ev.insert("window".into(), json!(o.seg.head.window));
            ev.insert("syn_frame".into(), json!(o.syn.frame));
            ev.insert("syn_ports".into(), json!([o.syn.client.1, o.syn.dport]));
            ev.insert("synack_ports".into(), json!([o.server.1, o.client.1]));
            ev.insert("payload_len".into(), json!(o.payload_len));
            ev.insert("ttl_values_seen".into(), json!(seen));
            ev.insert(
                "delay_ms".into(),
                json!(round2(o.seg.head.ts.since(&o.syn.ts) * 1000.0)),
            );
            ev.insert("dns_forged_address".into(), json!(forged));
            Finding {
                event: e,
                ip_id: o.seg.head.ip_id,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, window: u16, seq: u32) -> Seg {
        Seg {
            head: Head {
                frame: 9,
                ts: Timestamp::new(9, 0, 6),
                ttl: 50,
                ip_id: None,
                window,
                seq,
                flags,
                len: 0,
            },
            status_line: None,
            trigger: None,
            around: Around::default(),
        }
    }

    fn judgement() -> Judgement {
        Judgement {
            score: 0.0,
            header: false,
            reasons: Reasons::new(true),
            ev: Evidence::new(true),
        }
    }

    #[test]
    fn flows_are_oriented_by_syn_else_by_port() {
        let (a, b) = (
            ("192.0.2.1".parse().unwrap(), 40_000),
            ("198.51.100.1".parse().unwrap(), 443),
        );
        let ts = Timestamp::new(1, 0, 6);
        assert_eq!(Flow::new(a, b, true, false, ts).client, a); // SYN from a
        assert_eq!(Flow::new(b, a, true, true, ts).client, a); // SYN/ACK to a
        assert_eq!(Flow::new(b, a, false, true, ts).client, a); // higher port
    }

    #[test]
    fn window_and_seq_pieces() {
        let mut f = Flow::new(
            ("192.0.2.1".parse().unwrap(), 40_000),
            ("198.51.100.1".parse().unwrap(), 443),
            true,
            false,
            Timestamp::new(1, 0, 6),
        );
        f.baseline.windows = Some((1000, 2000));
        let mut j = judgement();
        window_rule(&f, &seg(tcp_flags::FIN, 1500, 0), false, &mut j);
        assert_eq!(j.score, 0.0);
        window_rule(&f, &seg(tcp_flags::FIN, 100, 0), false, &mut j);
        assert_eq!((j.score, j.header), (0.15, false));
        assert_eq!(
            j.reasons.0.as_deref(),
            Some(&["window 100 vs 1000..2000".to_string()][..])
        );
        // A RST's window is not judged.
        window_rule(&f, &seg(tcp_flags::RST, 100, 0), true, &mut j);
        assert_eq!(j.score, 0.15);
        let mut s = seg(tcp_flags::RST, 0, 1010);
        s.around.prev_seg = Some((1000, 9, tcp_flags::FIN));
        let mut ev = Evidence::new(true);
        seq_evidence(&s, &mut ev);
        let ev = ev.0.unwrap();
        assert_eq!(ev["expected_seq"], json!(1010));
        assert_eq!(ev["seq_offset"], json!(0));
    }

    #[test]
    fn localization_threshold() {
        let g: ProbeGroup = ("192.0.2.1".parse().unwrap(), 80, "data");
        let mut obs: Vec<(ProbeGroup, u8, bool)> = (1..=13).map(|t| (g, t, false)).collect();
        obs.extend((14..=19).map(|t| (g, t, true)));
        assert_eq!(localize(&obs).get(&g), Some(&14));
        obs.push((g, 3, true)); // inconsistent: no threshold
        assert_eq!(localize(&obs).get(&g), None);
    }

    #[test]
    fn request_heads() {
        let head_of = |p: &[u8]| {
            let mut h = String::new();
            request_head(p, &mut h).then_some(h)
        };
        assert_eq!(
            head_of(b"GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: line.me\r\n\r\n").unwrap(),
            "GET / HTTP/1.1 | Host: line.me"
        );
        assert_eq!(head_of(b"\xff\xfe"), None);
        use crate::analysis::names::tls::build;
        let hello = build::records(&build::client_hello(Some("talk.kakao.com"), &[], 0), 16384);
        let head = head_of(&hello).unwrap();
        assert_eq!(head, "TLS ClientHello | SNI: talk.kakao.com");
        let data = RuleData::shipped().unwrap();
        assert_eq!(data.keyword_in(&head), Some("kakao.com"));
        assert_eq!(
            status_line(b"HTTP/1.1 307 Temporary Redirect\r\nX: y"),
            "HTTP/1.1 307 Temporary Redirect"
        );
        assert_eq!(status_line(b"HTTP/1.1 200"), "HTTP/1.1 200");
    }
}
