//! DNS extraction: plain DNS over UDP and TCP (port 53), DNS-over-TLS
//! (port 853) recognised as such.
//!
//! [`DnsExtractor`] emits one [`DnsRecord`] per response *packet*: two
//! replies to one query (an injector's forged answer racing the genuine one)
//! stay two records, with the IP TTL and IP-ID of each, because the
//! interference rules compare them. Queries that never got a reply become a
//! record with `rcode: None` at the query's frame.
//!
//! DNS over TCP uses the RFC 1035 two-byte length prefix; several messages
//! per segment and messages split across segments are handled with a
//! bounded per-direction buffer. DoH and WeChat's HTTP DNS are recognised by
//! [`crate::analysis::names`], which sees TLS and HTTP.

mod wire;

pub use wire::{DnsMessage, id_and_response, parse_message, rcode_name, type_name};

use crate::analysis::model::DnsRecord;
use crate::analysis::names::stream::{DirKey, FastMap, Push, StreamBuf};
use crate::analysis::packet::{Packet, PacketSink, Transport, tcp_flags};
use crate::capture::Timestamp;
use std::collections::HashSet;
use std::net::IpAddr;

/// Errors decoding one DNS message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    /// Fewer bytes than a DNS header.
    #[error("DNS message of {len} bytes is shorter than the 12-byte header")]
    Truncated {
        /// Bytes available.
        len: usize,
    },
}

/// Well-known plain DNS port.
pub const DNS_PORT: u16 = 53;
/// DNS-over-TLS port (RFC 7858).
pub const DOT_PORT: u16 = 853;

/// Longest TCP DNS message plus its length prefix.
const TCP_BUF_LIMIT: usize = 65_537;
/// At most this many TCP DNS directions are buffered at once.
const MAX_TCP_STREAMS: usize = 4096;
/// Queries still unanswered after this many seconds are reported as such
/// and forgotten, so state stays bounded on long captures.
const PENDING_TIMEOUT_SECS: f64 = 120.0;
/// Sweep the pending table every this many DNS packets.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct QueryKey {
    /// Client → server direction of the query.
    dir: DirKey,
    id: u16,
}

#[derive(Debug, Clone)]
struct PendingQuery {
    frame: u64,
    ts: Timestamp,
    query: String,
    qtype: u16,
}

/// Extracts DNS transactions from a capture, one packet at a time.
#[derive(Debug, Default)]
pub struct DnsExtractor {
    pending: FastMap<QueryKey, PendingQuery>,
    records: Vec<DnsRecord>,
    tcp: FastMap<DirKey, StreamBuf>,
    dot_seen: HashSet<DirKey>,
    dns_packets: u64,
}

impl DnsExtractor {
    /// A new extractor with no state.
    pub fn new() -> Self {
        Self::default()
    }

    /// All records (responses, unanswered queries, DoT connections) in frame order.
    pub fn finish(mut self) -> Vec<DnsRecord> {
        self.flush_pending();
        self.records.sort_by_key(|r| r.frame);
        self.records
    }

    /// True when records were produced since the last [`DnsExtractor::take_records`].
    pub fn has_records(&self) -> bool {
        !self.records.is_empty()
    }

    /// Moves the records produced so far out, in the order they were
    /// finished (not sorted: unanswered queries come late).
    pub fn take_records(&mut self) -> std::vec::Drain<'_, DnsRecord> {
        self.records.drain(..)
    }

    /// Reports every query still waiting as unanswered (end of capture).
    pub fn flush_pending(&mut self) {
        let pending: Vec<(QueryKey, PendingQuery)> = self.pending.drain().collect();
        for (key, q) in pending {
            self.records.push(unanswered(&key, q));
        }
    }

    fn message(&mut self, pkt: &Packet<'_>, dir: DirKey, transport: &str, data: &[u8]) {
        let Ok(msg) = parse_message(data) else {
            return;
        };
        self.dns_packets += 1;
        if self.dns_packets.is_multiple_of(SWEEP_EVERY) {
            self.sweep(pkt.ts);
        }
        if !msg.response {
            if let Some((query, qtype)) = msg.question {
                // A retransmitted query keeps the first one's frame.
                self.pending
                    .entry(QueryKey { dir, id: msg.id })
                    .or_insert(PendingQuery {
                        frame: pkt.frame,
                        ts: pkt.ts,
                        query,
                        qtype,
                    });
            }
            return;
        }
        let asked = self.pending.remove(&QueryKey {
            dir: dir.reversed(),
            id: msg.id,
        });
        let (query, qtype) = match (msg.question, asked) {
            (Some(q), _) => q,
            (None, Some(a)) => (a.query, a.qtype),
            (None, None) => (String::new(), 0),
        };
        let ip = pkt.ip;
        self.records.push(DnsRecord {
            frame: pkt.frame,
            ts: pkt.ts,
            transport: transport.to_string(),
            server: dir.src,
            client: dir.dst,
            id: msg.id,
            query,
            qtype: type_name(qtype),
            rcode: Some(rcode_name(msg.rcode)),
            ip_ttl: ip.map(|i| i.ttl),
            ip_id: ip.and_then(|i| i.ip_id),
            answers: msg.answers,
        });
    }

    /// Reports and forgets queries that waited too long for an answer.
    fn sweep(&mut self, now: Timestamp) {
        let old: Vec<QueryKey> = self
            .pending
            .iter()
            .filter(|(_, q)| now.since(&q.ts) > PENDING_TIMEOUT_SECS)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            if let Some(q) = self.pending.remove(&k) {
                self.records.push(unanswered(&k, q));
            }
        }
    }

    fn tcp_segment(&mut self, pkt: &Packet<'_>, dir: DirKey, seq: u32, flags: u8, payload: &[u8]) {
        if flags & (tcp_flags::SYN | tcp_flags::RST) != 0 {
            self.tcp.remove(&dir);
        }
        if !payload.is_empty() {
            if !self.tcp.contains_key(&dir) && self.tcp.len() >= MAX_TCP_STREAMS {
                // Pathological number of half-open DNS streams: start over
                // rather than grow without bound.
                self.tcp.clear();
            }
            let stream = self
                .tcp
                .entry(dir)
                .or_insert_with(|| StreamBuf::new(TCP_BUF_LIMIT));
            match stream.push(seq, payload) {
                Push::Broken => {
                    self.tcp.remove(&dir);
                }
                Push::Nothing => {}
                Push::Appended => {
                    let mut messages = Vec::new();
                    let buf = &mut stream.buf;
                    let mut used = 0;
                    while buf.len() - used >= 2 {
                        let len = usize::from(u16::from_be_bytes([buf[used], buf[used + 1]]));
                        if buf.len() - used - 2 < len {
                            break;
                        }
                        messages.push(buf[used + 2..used + 2 + len].to_vec());
                        used += 2 + len;
                    }
                    buf.drain(..used);
                    for m in messages {
                        self.message(pkt, dir, "tcp", &m);
                    }
                }
            }
        }
        if flags & tcp_flags::FIN != 0 {
            self.tcp.remove(&dir);
        }
    }

    fn dot(&mut self, pkt: &Packet<'_>, dir: DirKey) {
        // One record per DoT connection, at its first packet.
        let (client, server) = if dir.dport == DOT_PORT {
            (dir.src, dir.dst)
        } else {
            (dir.dst, dir.src)
        };
        let conn = dir.canonical();
        if self.dot_seen.contains(&conn) {
            return;
        }
        if self.dot_seen.len() >= 65_536 {
            self.dot_seen.clear(); // bounded memory; an old connection may be counted twice
        }
        self.dot_seen.insert(conn);
        self.records.push(encrypted_dns_record(
            pkt.frame,
            pkt.ts,
            "dot",
            server,
            client,
            String::new(),
        ));
    }
}

/// A record standing for an encrypted DNS connection (DoT/DoH): the queries
/// are not visible, `query` holds the resolver's name when known (SNI), and
/// `qtype` is empty.
pub(crate) fn encrypted_dns_record(
    frame: u64,
    ts: Timestamp,
    transport: &str,
    server: IpAddr,
    client: IpAddr,
    name: String,
) -> DnsRecord {
    DnsRecord {
        frame,
        ts,
        transport: transport.to_string(),
        server,
        client,
        id: 0,
        query: name,
        qtype: String::new(),
        rcode: None,
        ip_ttl: None,
        ip_id: None,
        answers: Vec::new(),
    }
}

fn unanswered(key: &QueryKey, q: PendingQuery) -> DnsRecord {
    DnsRecord {
        frame: q.frame,
        ts: q.ts,
        transport: if key.dir.proto == 6 { "tcp" } else { "udp" }.to_string(),
        server: key.dir.dst,
        client: key.dir.src,
        id: key.id,
        query: q.query,
        qtype: type_name(q.qtype),
        rcode: None,
        ip_ttl: None,
        ip_id: None,
        answers: Vec::new(),
    }
}

impl PacketSink for DnsExtractor {
    fn packet(&mut self, pkt: &Packet<'_>) {
        let Some(dir) = DirKey::of(pkt) else {
            return;
        };
        match pkt.transport {
            Transport::Udp {
                sport,
                dport,
                payload,
            } if sport == DNS_PORT || dport == DNS_PORT => {
                self.message(pkt, dir, "udp", payload);
            }
            Transport::Tcp {
                sport,
                dport,
                seq,
                flags,
                payload,
                ..
            } => {
                if sport == DNS_PORT || dport == DNS_PORT {
                    self.tcp_segment(pkt, dir, seq, flags, payload);
                } else if sport == DOT_PORT || dport == DOT_PORT {
                    self.dot(pkt, dir);
                    if flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
                        self.dot_seen.remove(&dir.canonical());
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
