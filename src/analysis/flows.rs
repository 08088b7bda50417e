//! Bidirectional flow table: one entry per 5-tuple with both directions
//! merged. Flows idle for longer than their timeout are closed, so the live
//! state is bounded by the number of *concurrent* flows; closed flows are
//! kept as compact records until [`FlowTable::finish`].

use super::model::FlowRecord;
use super::names::stream::{FastMap, endpoint_le, hash_addr};
use super::packet::{Encaps, Packet, PacketSink, Transport, tcp_flags};
use crate::capture::Timestamp;
use std::net::IpAddr;

/// Idle timeouts, in seconds of capture time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowConfig {
    /// TCP flow without FIN/RST seen (messaging apps keep long idle connections).
    pub tcp_idle: f64,
    /// TCP flow after FIN or RST.
    pub tcp_closed_idle: f64,
    /// UDP, ICMP and other flows.
    pub other_idle: f64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            tcp_idle: 600.0,
            tcp_closed_idle: 60.0,
            other_idle: 120.0,
        }
    }
}

/// How often (capture seconds) idle flows are swept out.
const SWEEP_EVERY: f64 = 5.0;
/// How long a first fragment's ports are remembered for its later fragments.
const FRAGMENT_MEMORY: f64 = 30.0;

/// Canonical 5-tuple: endpoint `a` sorts before endpoint `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    proto: u8,
    a: IpAddr,
    pa: u16,
    b: IpAddr,
    pb: u16,
}

impl std::hash::Hash for Key {
    /// Whole words (see [`DirKey`](super::names::stream::DirKey)'s hash): the
    /// flow table is looked up for every packet.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(u64::from(self.proto) | (u64::from(self.pa) << 8) | (u64::from(self.pb) << 24));
        hash_addr(&self.a, h);
        hash_addr(&self.b, h);
    }
}

impl Key {
    /// Returns the key and whether `src` is endpoint `a`.
    fn new(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> (Key, bool) {
        if endpoint_le(&src, sport, &dst, dport) {
            (
                Key {
                    proto,
                    a: src,
                    pa: sport,
                    b: dst,
                    pb: dport,
                },
                true,
            )
        } else {
            (
                Key {
                    proto,
                    a: dst,
                    pa: dport,
                    b: src,
                    pb: sport,
                },
                false,
            )
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// True when endpoint `a` initiated the flow.
    a_initiated: bool,
    packets: u64,
    bytes: u64,
    first: Timestamp,
    last: Timestamp,
    first_frame: u64,
    flags: u8,
    /// Tunnels around the flow's packets (the first packet's that had any).
    encap: Encaps,
}

impl State {
    fn idle_limit(&self, proto: u8, cfg: &FlowConfig) -> f64 {
        if proto == 6 {
            if self.flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
                cfg.tcp_closed_idle
            } else {
                cfg.tcp_idle
            }
        } else {
            cfg.other_idle
        }
    }
}

/// (src, dst, proto, IPv4 id) of a fragmented datagram.
type FragmentId = (IpAddr, IpAddr, u8, u16);

/// Tracks flows over a packet stream (a [`PacketSink`]).
#[derive(Debug)]
pub struct FlowTable {
    cfg: FlowConfig,
    live: FastMap<Key, State>,
    closed: Vec<(Key, State)>,
    /// First fragments' flows, for their later fragments.
    fragments: FastMap<FragmentId, (Key, bool, Timestamp)>,
    now: Timestamp,
    last_sweep: Timestamp,
    peak_live: usize,
    /// Set when the current packet triggered a sweep.
    swept: bool,
}

impl Default for FlowTable {
    fn default() -> Self {
        FlowTable::new(FlowConfig::default())
    }
}

impl FlowTable {
    /// An empty table with the given timeouts.
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            cfg,
            live: FastMap::default(),
            closed: Vec::new(),
            fragments: FastMap::default(),
            now: Timestamp::default(),
            last_sweep: Timestamp::default(),
            peak_live: 0,
            swept: false,
        }
    }

    /// Flows currently open.
    pub fn live_flows(&self) -> usize {
        self.live.len()
    }

    /// The largest number of flows that were open at once.
    pub fn peak_live_flows(&self) -> usize {
        self.peak_live
    }

    fn sweep(&mut self) {
        let now = self.now;
        let cfg = self.cfg;
        let closed = &mut self.closed;
        self.live.retain(|k, s| {
            let keep = now.since(&s.last) <= s.idle_limit(k.proto, &cfg);
            if !keep {
                closed.push((*k, *s));
            }
            keep
        });
        self.fragments
            .retain(|_, (_, _, ts)| now.since(ts) <= FRAGMENT_MEMORY);
        self.last_sweep = now;
    }

    /// Closes every flow and returns them all, sorted by first packet
    /// (timestamp, then frame number), a stable order for equal inputs.
    pub fn finish(mut self) -> Vec<FlowRecord> {
        self.close_all();
        self.closed.sort_by_key(|(_, s)| (s.first, s.first_frame));
        self.closed
            .into_iter()
            .map(|(k, s)| record(&k, &s))
            .collect()
    }

    /// True when flows closed since the last [`FlowTable::take_closed`].
    pub fn has_closed(&self) -> bool {
        !self.closed.is_empty()
    }

    /// Moves the flows closed so far out, as records with their sort key
    /// (first packet's timestamp and frame), in closing order.
    pub fn take_closed(&mut self, mut each: impl FnMut(FlowRecord, u64)) {
        for (k, s) in self.closed.drain(..) {
            each(record(&k, &s), s.first_frame);
        }
    }

    /// Closes every open flow (end of capture).
    pub fn close_all(&mut self) {
        self.closed.extend(self.live.drain());
    }

    /// The earliest first packet among the open flows (`None` when none is open).
    pub fn oldest_open(&self) -> Option<Timestamp> {
        self.live.values().map(|s| s.first).min()
    }

    /// True when the last packet made the table sweep out idle flows.
    pub fn swept(&self) -> bool {
        self.swept
    }
}

impl PacketSink for FlowTable {
    fn packet(&mut self, pkt: &Packet<'_>) {
        let Some(ip) = pkt.ip else { return };
        if pkt.ts > self.now {
            self.now = pkt.ts;
        }
        self.swept = self.now.since(&self.last_sweep) >= SWEEP_EVERY;
        if self.swept {
            self.sweep();
        }
        let (sport, dport, flags) = match pkt.transport {
            Transport::Tcp {
                sport,
                dport,
                flags,
                ..
            } => (sport, dport, flags),
            Transport::Udp { sport, dport, .. } => (sport, dport, 0),
            _ => (0, 0, 0),
        };
        let (key, src_is_a) = if ip.later_fragment {
            // Later fragments carry no ports: use the first fragment's flow.
            match ip
                .ip_id
                .and_then(|id| self.fragments.get(&(ip.src, ip.dst, ip.proto, id)))
            {
                Some((k, a, _)) => (*k, *a),
                None => Key::new(ip.proto, ip.src, 0, ip.dst, 0),
            }
        } else {
            let (k, a) = Key::new(ip.proto, ip.src, sport, ip.dst, dport);
            if let (true, Some(id)) = (ip.fragment, ip.ip_id) {
                self.fragments
                    .insert((ip.src, ip.dst, ip.proto, id), (k, a, pkt.ts));
            }
            (k, a)
        };
        let bytes = if ip.total_len > 0 {
            u64::from(ip.total_len)
        } else {
            u64::from(pkt.orig_len)
        };
        let cfg = self.cfg;
        if let Some(s) = self.live.get_mut(&key) {
            if pkt.ts.since(&s.last) <= s.idle_limit(key.proto, &cfg) {
                s.packets += 1;
                s.bytes += bytes;
                if pkt.ts > s.last {
                    s.last = pkt.ts;
                }
                if pkt.ts < s.first {
                    s.first = pkt.ts;
                }
                s.flags |= flags;
                if s.encap.is_empty() {
                    s.encap = pkt.encap;
                }
                return;
            }
            // Idle too long: the old flow ends, a new one starts below.
            let old = *s;
            self.closed.push((key, old));
        }
        // A SYN+ACK first means the SYN was missed: its sender is the responder.
        let syn_ack = flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN | tcp_flags::ACK;
        let state = State {
            a_initiated: src_is_a != syn_ack,
            packets: 1,
            bytes,
            first: pkt.ts,
            last: pkt.ts,
            first_frame: pkt.frame,
            flags,
            encap: pkt.encap,
        };
        self.live.insert(key, state);
        self.peak_live = self.peak_live.max(self.live.len());
    }
}

fn record(k: &Key, s: &State) -> FlowRecord {
    let (src, sport, dst, dport) = if s.a_initiated {
        (k.a, k.pa, k.b, k.pb)
    } else {
        (k.b, k.pb, k.a, k.pa)
    };
    FlowRecord {
        proto: proto_name(k.proto),
        src,
        sport,
        dst,
        dport,
        packets: s.packets,
        bytes: s.bytes,
        first_ts: s.first,
        last_ts: s.last,
        tcp_flags: flag_names(s.flags),
        sni: None,
        app: None,
        evidence: Vec::new(),
        encap: s.encap.iter().collect(),
    }
}

/// `"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"` or the protocol number.
pub fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    }
}

/// TCP flag bits as a comma-separated list (`"SYN,ACK,PSH,FIN"`).
pub fn flag_names(f: u8) -> String {
    const NAMES: [(u8, &str); 8] = [
        (tcp_flags::SYN, "SYN"),
        (tcp_flags::ACK, "ACK"),
        (tcp_flags::PSH, "PSH"),
        (tcp_flags::URG, "URG"),
        (tcp_flags::FIN, "FIN"),
        (tcp_flags::RST, "RST"),
        (0x40, "ECE"),
        (0x80, "CWR"),
    ];
    let mut out = String::new();
    for (bit, name) in NAMES {
        if f & bit != 0 {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::packet::IpInfo;

    fn tcp(
        frame: u64,
        secs: i64,
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        flags: u8,
    ) -> Packet<'static> {
        Packet {
            frame,
            ts: Timestamp::new(secs, 0, 6),
            orig_len: 60,
            cap_len: 60,
            ip: Some(IpInfo {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                ttl: 64,
                ip_id: Some(1),
                proto: 6,
                total_len: 40,
                fragment: false,
                later_fragment: false,
            }),
            transport: Transport::Tcp {
                sport,
                dport,
                seq: 0,
                ack: 0,
                flags,
                window: 0,
                payload: &[],
            },
            encap: Default::default(),
        }
    }

    #[test]
    fn merges_directions_and_keeps_initiator() {
        let mut t = FlowTable::default();
        t.packet(&tcp(
            1,
            100,
            "10.0.0.9",
            40000,
            "1.2.3.4",
            443,
            tcp_flags::SYN,
        ));
        t.packet(&tcp(2, 100, "1.2.3.4", 443, "10.0.0.9", 40000, 0x12));
        t.packet(&tcp(3, 101, "10.0.0.9", 40000, "1.2.3.4", 443, 0x11));
        let f = t.finish();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].src.to_string(), "10.0.0.9");
        assert_eq!(
            (f[0].sport, f[0].dport, f[0].packets, f[0].bytes),
            (40000, 443, 3, 120)
        );
        assert_eq!(f[0].tcp_flags, "SYN,ACK,FIN");
    }

    #[test]
    fn syn_ack_first_means_missed_syn() {
        let mut t = FlowTable::default();
        t.packet(&tcp(1, 100, "1.2.3.4", 443, "10.0.0.9", 40000, 0x12));
        let f = t.finish();
        assert_eq!(
            (f[0].src.to_string().as_str(), f[0].dport),
            ("10.0.0.9", 443)
        );
    }

    #[test]
    fn idle_flows_close_and_state_stays_bounded() {
        let cfg = FlowConfig {
            tcp_idle: 10.0,
            tcp_closed_idle: 1.0,
            other_idle: 10.0,
        };
        let mut t = FlowTable::new(cfg);
        // 1000 short flows, one every second: at most ~12 are open at once.
        for i in 0..1000u16 {
            let s = i64::from(i);
            t.packet(&tcp(
                u64::from(i) + 1,
                s,
                "10.0.0.1",
                1000 + i,
                "1.1.1.1",
                443,
                2,
            ));
        }
        assert!(t.peak_live_flows() < 20, "{}", t.peak_live_flows());
        // The same tuple after a long pause is a new flow.
        t.packet(&tcp(2000, 5000, "10.0.0.1", 1000, "1.1.1.1", 443, 2));
        assert_eq!(t.finish().len(), 1001);
    }
}
