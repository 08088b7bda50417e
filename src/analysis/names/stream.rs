//! Small helpers shared by the protocol extractors: direction-aware
//! connection keys and a bounded, in-order TCP byte buffer.
//!
//! The extractors only need the first few kilobytes of a direction (a
//! ClientHello, an HTTP header, a DNS message), so reassembly here is
//! deliberately simple: in-order segments are appended, retransmitted bytes
//! are skipped, and a gap or an oversized stream ends the buffer. That keeps
//! memory per flow bounded by the caller's limit.

use crate::analysis::packet::{Packet, Transport};
use std::net::IpAddr;

/// One direction of a TCP or UDP conversation: `(src, sport) → (dst, dport)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DirKey {
    /// 6 for TCP, 17 for UDP.
    pub proto: u8,
    /// Sender address.
    pub src: IpAddr,
    /// Sender port.
    pub sport: u16,
    /// Receiver address.
    pub dst: IpAddr,
    /// Receiver port.
    pub dport: u16,
}

impl std::hash::Hash for DirKey {
    /// Protocol and ports in one word, each address in one (IPv4) or two
    /// (IPv6) words: 3 mixing rounds for IPv4 instead of 9 for the derived
    /// field-by-field hash; this runs several times per packet.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(
            u64::from(self.proto) | (u64::from(self.sport) << 8) | (u64::from(self.dport) << 24),
        );
        hash_addr(&self.src, h);
        hash_addr(&self.dst, h);
    }
}

/// `(a, pa) <= (b, pb)` in the derived order of `(IpAddr, u16)` (every
/// IPv4 address before every IPv6 one, each numerically), compared as
/// integers: this runs for every packet in several analysers.
#[inline]
pub(crate) fn endpoint_le(a: &IpAddr, pa: u16, b: &IpAddr, pb: u16) -> bool {
    #[inline]
    fn rank(ip: &IpAddr) -> (bool, u128) {
        match ip {
            IpAddr::V4(v4) => (false, u128::from(v4.to_bits())),
            IpAddr::V6(v6) => (true, v6.to_bits()),
        }
    }
    (rank(a), pa) <= (rank(b), pb)
}

/// Feeds an address to a hasher as whole words (the IPv4 case is tagged
/// so that it never equals an IPv6 address's words).
#[inline]
pub(crate) fn hash_addr<H: std::hash::Hasher>(a: &IpAddr, h: &mut H) {
    match a {
        IpAddr::V4(v4) => h.write_u64(u64::from(v4.to_bits()) | (1 << 40)),
        IpAddr::V6(v6) => {
            let b = v6.to_bits();
            h.write_u64(b as u64);
            h.write_u64((b >> 64) as u64);
        }
    }
}

impl DirKey {
    /// Builds the key of a TCP/UDP packet, `None` for anything else.
    pub fn of(pkt: &Packet<'_>) -> Option<DirKey> {
        let ip = pkt.ip?;
        let (proto, sport, dport) = match pkt.transport {
            Transport::Tcp { sport, dport, .. } => (6, sport, dport),
            Transport::Udp { sport, dport, .. } => (17, sport, dport),
            _ => return None,
        };
        Some(DirKey {
            proto,
            src: ip.src,
            sport,
            dst: ip.dst,
            dport,
        })
    }

    /// The opposite direction.
    pub fn reversed(&self) -> DirKey {
        DirKey {
            proto: self.proto,
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }

    /// A direction-independent key (the smaller endpoint first).
    #[inline]
    pub fn canonical(&self) -> DirKey {
        if endpoint_le(&self.src, self.sport, &self.dst, self.dport) {
            *self
        } else {
            self.reversed()
        }
    }
}

/// A hash map for the per-packet flow tables: a seeded multiply-fold hash
/// (much cheaper than SipHash for the small fixed-size keys used here; the
/// per-map random seed keeps crafted captures from choosing collisions).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;

/// Builds [`FastHasher`]s with a per-map random seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastState {
    seed: u64,
}

impl Default for FastState {
    fn default() -> Self {
        use std::hash::BuildHasher;
        // RandomState is randomly keyed per process and per instance.
        let seed =
            std::collections::hash_map::RandomState::new().hash_one(0x9e37_79b9_7f4a_7c15_u64);
        FastState { seed }
    }
}

impl std::hash::BuildHasher for FastState {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher { state: self.seed }
    }
}

/// Multiply-fold hasher (the core step of wyhash/foldhash).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastHasher {
    state: u64,
}

impl FastHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        let m = u128::from(self.state ^ v) * 0x2d35_8dcc_aa6c_78a5_u128;
        self.state = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl std::hash::Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // one more round so the last word is spread over all bits
        let m = u128::from(self.state) * 0x9e37_79b9_7f4a_7c15_u128;
        (m as u64) ^ ((m >> 64) as u64)
    }
}

/// Result of offering a segment to a [`StreamBuf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// New bytes were appended.
    Appended,
    /// Nothing new (pure retransmission or empty payload).
    Nothing,
    /// A sequence gap (lost or reordered segment) or the size limit: the
    /// buffer cannot be completed and should be dropped.
    Broken,
}

/// In-order bytes of one TCP direction, bounded by `limit`.
#[derive(Debug, Clone)]
pub(crate) struct StreamBuf {
    next_seq: Option<u32>,
    /// The bytes collected so far (callers drain what they consumed).
    pub buf: Vec<u8>,
    limit: usize,
}

impl StreamBuf {
    /// A new empty buffer that refuses to hold more than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        StreamBuf {
            next_seq: None,
            buf: Vec::new(),
            limit,
        }
    }

    /// Offers a segment with sequence number `seq`.
    pub fn push(&mut self, seq: u32, payload: &[u8]) -> Push {
        if payload.is_empty() {
            return Push::Nothing;
        }
        let next = *self.next_seq.get_or_insert(seq);
        // Signed distance in sequence space handles wrap-around.
        let diff = seq.wrapping_sub(next) as i32;
        let fresh = if diff > 0 {
            return Push::Broken;
        } else {
            let skip = diff.unsigned_abs() as usize;
            if skip >= payload.len() {
                return Push::Nothing;
            }
            &payload[skip..]
        };
        if self.buf.len() + fresh.len() > self.limit {
            return Push::Broken;
        }
        self.buf.extend_from_slice(fresh);
        self.next_seq = Some(next.wrapping_add(fresh.len() as u32));
        Push::Appended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_in_order_and_skips_retransmissions() {
        let mut s = StreamBuf::new(100);
        assert_eq!(s.push(1000, b"abc"), Push::Appended);
        assert_eq!(s.push(1000, b"abc"), Push::Nothing);
        assert_eq!(s.push(1001, b"bcde"), Push::Appended);
        assert_eq!(s.buf, b"abcde");
        assert_eq!(s.push(1010, b"x"), Push::Broken);
    }

    #[test]
    fn endpoint_order_is_the_derived_one() {
        let ips: Vec<IpAddr> = [
            "0.0.0.0",
            "1.2.3.4",
            "1.2.3.5",
            "9.0.0.0",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:1.2.3.4",
            "fd00::1",
            "fe80::1",
            "ffff::",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for a in &ips {
            for b in &ips {
                for (pa, pb) in [(1, 2), (2, 1), (7, 7), (0, 65535)] {
                    assert_eq!(
                        endpoint_le(a, pa, b, pb),
                        (*a, pa) <= (*b, pb),
                        "{a} {pa} {b} {pb}"
                    );
                }
            }
        }
    }

    #[test]
    fn fast_map_behaves_like_a_map() {
        let mut m: FastMap<DirKey, u32> = FastMap::default();
        for i in 0..10_000u16 {
            let k = DirKey {
                proto: 6,
                src: "10.0.0.1".parse().unwrap(),
                sport: i,
                dst: "2001:db8::1".parse().unwrap(),
                dport: 443,
            };
            m.insert(k, u32::from(i));
            m.insert(k.reversed(), u32::from(i) + 1);
        }
        assert_eq!(m.len(), 20_000);
        let k = DirKey {
            proto: 6,
            src: "10.0.0.1".parse().unwrap(),
            sport: 77,
            dst: "2001:db8::1".parse().unwrap(),
            dport: 443,
        };
        assert_eq!(m.get(&k), Some(&77));
        assert_eq!(m.get(&k.reversed()), Some(&78));
    }

    #[test]
    fn wraps_around_sequence_space_and_enforces_limit() {
        let mut s = StreamBuf::new(6);
        assert_eq!(s.push(u32::MAX - 1, b"abc"), Push::Appended);
        assert_eq!(s.push(1, b"def"), Push::Appended);
        assert_eq!(s.buf, b"abcdef");
        assert_eq!(s.push(4, b"g"), Push::Broken);
    }
}

/// Packet builders for the extractors' unit tests.
#[cfg(test)]
pub(crate) mod testpkt {
    use crate::analysis::packet::{IpInfo, Packet, Transport};
    use crate::capture::Timestamp;
    use std::net::IpAddr;

    fn ip(src: &str, dst: &str, proto: u8, ttl: u8, ip_id: u16) -> IpInfo {
        let src: IpAddr = src.parse().unwrap();
        let dst: IpAddr = dst.parse().unwrap();
        IpInfo {
            src,
            dst,
            ttl,
            ip_id: src.is_ipv4().then_some(ip_id),
            proto,
            total_len: 0,
            fragment: false,
            later_fragment: false,
        }
    }

    /// A UDP packet `src:sport → dst:dport` at `frame` (timestamp = frame seconds).
    pub fn udp<'a>(
        frame: u64,
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        payload: &'a [u8],
    ) -> Packet<'a> {
        Packet {
            frame,
            ts: Timestamp::new(frame as i64, 0, 6),
            orig_len: payload.len() as u32 + 42,
            cap_len: payload.len() as u32 + 42,
            ip: Some(ip(src, dst, 17, 64, frame as u16)),
            transport: Transport::Udp {
                sport,
                dport,
                payload,
            },
            encap: Default::default(),
        }
    }

    /// A TCP segment with sequence number `seq` and `flags`.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp<'a>(
        frame: u64,
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        seq: u32,
        flags: u8,
        payload: &'a [u8],
    ) -> Packet<'a> {
        Packet {
            frame,
            ts: Timestamp::new(frame as i64, 0, 6),
            orig_len: payload.len() as u32 + 54,
            cap_len: payload.len() as u32 + 54,
            ip: Some(ip(src, dst, 6, 64, frame as u16)),
            transport: Transport::Tcp {
                sport,
                dport,
                seq,
                ack: 0,
                flags,
                window: 65535,
                payload,
            },
            encap: Default::default(),
        }
    }

    /// Sets the IP TTL and ID of a packet.
    pub fn with_ttl_id(mut p: Packet<'_>, ttl: u8, id: u16) -> Packet<'_> {
        if let Some(ip) = p.ip.as_mut() {
            ip.ttl = ttl;
            ip.ip_id = Some(id);
        }
        p
    }
}
