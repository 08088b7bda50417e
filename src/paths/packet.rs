//! Probe construction and reply parsing (pure functions over bytes).
//!
//! Every probe of one trace shares its flow identifier (the fields ECMP
//! load balancers hash: addresses, protocol, ports or ICMP type/code/checksum,
//! IPv6 flow label), which is what makes it a *Paris* traceroute; the probe
//! number travels in a field that is quoted back by ICMP errors but not
//! hashed:
//! - UDP: the checksum (two payload bytes are chosen to produce it);
//! - TCP SYN: the sequence number (answered as `ack - 1` by the destination);
//! - ICMP echo: the sequence number, with two payload bytes keeping the ICMP
//!   checksum constant.
//!
//! IPv4 probes carry their whole IP header (raw `IPPROTO_RAW` socket), IPv6
//! probes too (`IPV6_HDRINCL`), so TTL, IP ID and flow label are ours.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Proto;
use super::model::{IcmpExt, IcmpExtObj, MplsLabel};

/// Everything needed to build one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Source address (the kernel's route choice towards `dst`).
    pub src: IpAddr,
    /// Destination.
    pub dst: IpAddr,
    /// Probe protocol.
    pub proto: Proto,
    /// Flow port: UDP/TCP source port, ICMP identifier.
    pub flow: u16,
    /// UDP/TCP destination port (ignored for ICMP).
    pub dport: u16,
    /// Constant ICMP checksum of the flow (ICMP only).
    pub icmp_sum: u16,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Probe number within the trace (1..=0xfffe).
    pub seq: u16,
    /// Total packet size in bytes (IP header included); grown if too small.
    pub size: u16,
}

/// What identifies a probe in a reply: destination, protocol, flow, probe number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    /// Probe destination.
    pub dst: IpAddr,
    /// Probe protocol.
    pub proto: Proto,
    /// Flow port (UDP/TCP source port, ICMP identifier).
    pub flow: u16,
    /// Probe number.
    pub seq: u16,
}

/// Kind of a parsed reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// ICMP time exceeded in transit (an intermediate hop).
    TimeExceeded,
    /// ICMP destination unreachable with its (IPv4 or IPv6) code.
    Unreachable(u8),
    /// ICMP echo reply from the destination.
    EchoReply,
    /// TCP segment from the destination (its flags byte).
    Tcp(u8),
}

/// A reply matched to a probe key, before timing is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReply {
    /// The probe it answers.
    pub key: ProbeKey,
    /// Who sent the reply.
    pub from: IpAddr,
    /// TTL / hop limit of the reply as received.
    pub ttl: u8,
    /// Size of the reply (IP header included).
    pub size: u16,
    /// What it is.
    pub kind: ReplyKind,
    /// TTL of the probe as quoted back (ICMP errors only).
    pub quoted_ttl: Option<u8>,
    /// RFC 4884 / RFC 4950 extensions, when present.
    pub ext: Option<IcmpExt>,
}

/// TCP flag bits.
pub mod tcpflags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Ones-complement sum of `data` added to `acc` (not folded).
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Internet checksum of `data` (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum16(0, data))
}

/// Pseudo-header sum for TCP/UDP (and ICMPv6) over IPv4 or IPv6.
fn pseudo_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut acc = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum16(acc, &s.octets());
            acc = sum16(acc, &d.octets());
            acc += u32::from(proto) + len as u32;
        }
        (s, d) => {
            acc = sum16(acc, &v6(s).octets());
            acc = sum16(acc, &v6(d).octets());
            acc += len as u32 + u32::from(proto);
        }
    }
    acc
}

fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V6(x) => x,
        IpAddr::V4(x) => x.to_ipv6_mapped(),
    }
}

/// Chooses the two bytes at `seg[off..off + 2]` so that the segment (with
/// its checksum field already holding the wanted value) verifies: the sum
/// over `pseudo` + `seg` becomes 0xffff.
fn force_checksum(pseudo: u32, seg: &mut [u8], off: usize) {
    seg[off] = 0;
    seg[off + 1] = 0;
    // With the checksum field holding `want`, a valid segment sums to 0xffff.
    let s = fold(sum16(pseudo, seg));
    // Need s + x ≡ 0xffff (ones complement): x = 0xffff - s = !s.
    let x = !s;
    seg[off..off + 2].copy_from_slice(&x.to_be_bytes());
}

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

/// IP protocol number of a probe protocol in address family `v6`.
fn proto_number(proto: Proto, is_v6: bool) -> u8 {
    match proto {
        Proto::Icmp if is_v6 => IPPROTO_ICMPV6,
        Proto::Icmp => IPPROTO_ICMP,
        Proto::Udp => IPPROTO_UDP,
        Proto::Tcp => IPPROTO_TCP,
    }
}

/// Builds the full packet (IP header included) of a probe.
pub fn build_probe(p: &ProbeSpec) -> Vec<u8> {
    let is_v6 = p.dst.is_ipv6();
    let ip_len = if is_v6 { 40 } else { 20 };
    let pnum = proto_number(p.proto, is_v6);
    let min_l4 = match p.proto {
        Proto::Tcp => 20,
        Proto::Udp | Proto::Icmp => 10, // header + the two checksum-fix bytes
    };
    let l4_len = match p.proto {
        // SYNs carry no payload: some middleboxes drop SYNs with data.
        Proto::Tcp => 20,
        _ => (usize::from(p.size).saturating_sub(ip_len)).max(min_l4),
    };
    let mut seg = vec![0u8; l4_len];
    // Filler after the fixed part: recognisable, constant.
    if p.proto != Proto::Tcp {
        for (i, b) in seg.iter_mut().enumerate().skip(10) {
            *b = b"matador-trace"[i % 13];
        }
    }
    match p.proto {
        Proto::Udp => {
            seg[0..2].copy_from_slice(&p.flow.to_be_bytes());
            seg[2..4].copy_from_slice(&p.dport.to_be_bytes());
            seg[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            seg[6..8].copy_from_slice(&p.seq.to_be_bytes());
            let ps = pseudo_sum(p.src, p.dst, pnum, l4_len);
            force_checksum(ps, &mut seg, 8);
        }
        Proto::Tcp => {
            seg[0..2].copy_from_slice(&p.flow.to_be_bytes());
            seg[2..4].copy_from_slice(&p.dport.to_be_bytes());
            seg[4..8].copy_from_slice(&u32::from(p.seq).to_be_bytes());
            seg[12] = 5 << 4; // data offset: 5 words, no options
            seg[13] = tcpflags::SYN;
            seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
            let ps = pseudo_sum(p.src, p.dst, pnum, l4_len);
            let c = !fold(sum16(ps, &seg));
            seg[16..18].copy_from_slice(&c.to_be_bytes());
        }
        Proto::Icmp => {
            seg[0] = if is_v6 { 128 } else { 8 };
            seg[2..4].copy_from_slice(&p.icmp_sum.to_be_bytes());
            seg[4..6].copy_from_slice(&p.flow.to_be_bytes());
            seg[6..8].copy_from_slice(&p.seq.to_be_bytes());
            let ps = if is_v6 {
                pseudo_sum(p.src, p.dst, pnum, l4_len)
            } else {
                0
            };
            force_checksum(ps, &mut seg, 8);
        }
    }
    let mut pkt = Vec::with_capacity(ip_len + l4_len);
    match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + l4_len) as u16;
            pkt.extend_from_slice(&[0x45, 0]);
            pkt.extend_from_slice(&total.to_be_bytes());
            pkt.extend_from_slice(&p.seq.to_be_bytes()); // IP ID: a second copy of the probe number
            pkt.extend_from_slice(&[0, 0, p.ttl, pnum, 0, 0]);
            pkt.extend_from_slice(&s.octets());
            pkt.extend_from_slice(&d.octets());
            let c = checksum(&pkt);
            pkt[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (s, d) => {
            // Version 6, traffic class 0, flow label 0: constant per flow.
            pkt.extend_from_slice(&[0x60, 0, 0, 0]);
            pkt.extend_from_slice(&(l4_len as u16).to_be_bytes());
            pkt.extend_from_slice(&[pnum, p.ttl]);
            pkt.extend_from_slice(&v6(s).octets());
            pkt.extend_from_slice(&v6(d).octets());
        }
    }
    pkt.extend_from_slice(&seg);
    pkt
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Probe key from a quoted transport header (`l4` starts at it; at least
/// 8 bytes are quoted by every ICMP error).
fn quoted_key(dst: IpAddr, pnum: u8, l4: &[u8]) -> Option<ProbeKey> {
    let (proto, flow, seq) = match pnum {
        IPPROTO_UDP => (Proto::Udp, be16(l4, 0)?, be16(l4, 6)?),
        IPPROTO_TCP => (Proto::Tcp, be16(l4, 0)?, be32(l4, 4)? as u16),
        IPPROTO_ICMP if l4.first() == Some(&8) => (Proto::Icmp, be16(l4, 4)?, be16(l4, 6)?),
        IPPROTO_ICMPV6 if l4.first() == Some(&128) => (Proto::Icmp, be16(l4, 4)?, be16(l4, 6)?),
        _ => return None,
    };
    Some(ProbeKey {
        dst,
        proto,
        flow,
        seq,
    })
}

/// Parses an IPv4 packet (IP header included, as raw IPv4 sockets deliver
/// it) carrying ICMP or TCP. `None` if it answers no probe of ours.
pub fn parse_v4(pkt: &[u8]) -> Option<ParsedReply> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(be16(pkt, 2)?).min(pkt.len());
    if ihl < 20 || total < ihl {
        return None;
    }
    let ttl = pkt[8];
    let pnum = pkt[9];
    let from = IpAddr::V4(Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]));
    let body = &pkt[ihl..total];
    let size = total as u16;
    match pnum {
        IPPROTO_ICMP => {
            let t = *body.first()?;
            let code = *body.get(1)?;
            match t {
                0 => {
                    let key = ProbeKey {
                        dst: from,
                        proto: Proto::Icmp,
                        flow: be16(body, 4)?,
                        seq: be16(body, 6)?,
                    };
                    Some(ParsedReply {
                        key,
                        from,
                        ttl,
                        size,
                        kind: ReplyKind::EchoReply,
                        quoted_ttl: None,
                        ext: None,
                    })
                }
                3 | 11 => {
                    let q = body.get(8..)?;
                    if q.len() < 28 || q[0] >> 4 != 4 {
                        return None;
                    }
                    let qihl = usize::from(q[0] & 0x0f) * 4;
                    let qdst = IpAddr::V4(Ipv4Addr::new(q[16], q[17], q[18], q[19]));
                    let key = quoted_key(qdst, q[9], q.get(qihl..)?)?;
                    // RFC 4884: length of the original datagram in 32-bit words.
                    let ext = parse_extensions(body, usize::from(body[5]) * 4);
                    Some(ParsedReply {
                        key,
                        from,
                        ttl,
                        size,
                        kind: if t == 11 {
                            ReplyKind::TimeExceeded
                        } else {
                            ReplyKind::Unreachable(code)
                        },
                        quoted_ttl: Some(q[8]),
                        ext,
                    })
                }
                _ => None,
            }
        }
        IPPROTO_TCP => parse_tcp(from, body, ttl, size),
        _ => None,
    }
}

/// Parses a TCP segment from `from` (a reply of the destination to a SYN).
pub fn parse_tcp(from: IpAddr, seg: &[u8], ttl: u8, size: u16) -> Option<ParsedReply> {
    let flags = *seg.get(13)?;
    if flags & (tcpflags::SYN | tcpflags::RST) == 0 || flags & tcpflags::ACK == 0 {
        return None;
    }
    let ack = be32(seg, 8)?;
    let key = ProbeKey {
        dst: from,
        proto: Proto::Tcp,
        flow: be16(seg, 2)?,
        seq: ack.wrapping_sub(1) as u16,
    };
    Some(ParsedReply {
        key,
        from,
        ttl,
        size,
        kind: ReplyKind::Tcp(flags),
        quoted_ttl: None,
        ext: None,
    })
}

/// Parses an ICMPv6 message (without its IPv6 header, as raw ICMPv6 sockets
/// deliver it) from `from`, received with hop limit `hlim`.
pub fn parse_icmp6(from: IpAddr, msg: &[u8], hlim: u8) -> Option<ParsedReply> {
    let t = *msg.first()?;
    let code = *msg.get(1)?;
    let size = (msg.len() + 40).min(usize::from(u16::MAX)) as u16;
    match t {
        129 => Some(ParsedReply {
            key: ProbeKey {
                dst: from,
                proto: Proto::Icmp,
                flow: be16(msg, 4)?,
                seq: be16(msg, 6)?,
            },
            from,
            ttl: hlim,
            size,
            kind: ReplyKind::EchoReply,
            quoted_ttl: None,
            ext: None,
        }),
        1 | 3 => {
            let q = msg.get(8..)?;
            if q.len() < 48 || q[0] >> 4 != 6 {
                return None;
            }
            let dst: [u8; 16] = q[24..40].try_into().ok()?;
            let key = quoted_key(IpAddr::V6(Ipv6Addr::from(dst)), q[6], &q[40..])?;
            // RFC 4884 for ICMPv6: length in 64-bit words, in byte 4.
            let ext = parse_extensions(msg, usize::from(msg[4]) * 8);
            Some(ParsedReply {
                key,
                from,
                ttl: hlim,
                size,
                kind: if t == 3 {
                    ReplyKind::TimeExceeded
                } else {
                    ReplyKind::Unreachable(code)
                },
                quoted_ttl: Some(q[7]),
                ext,
            })
        }
        _ => None,
    }
}

/// Parses the RFC 4884 extension structure of an ICMP error message `icmp`
/// (ICMP header included). `orig_len` is the RFC 4884 length field in bytes
/// (0 when the sender did not set it: then, as RFC 4884 §5 allows for
/// pre-RFC 4884 MPLS routers, a structure right after 128 bytes of quoted
/// datagram is accepted if its checksum is valid).
pub fn parse_extensions(icmp: &[u8], orig_len: usize) -> Option<IcmpExt> {
    let (start, rfc4884) = if orig_len > 0 {
        (8 + orig_len, true)
    } else {
        (8 + 128, false)
    };
    let ext = icmp.get(start..)?;
    if ext.len() < 4 || ext[0] >> 4 != 2 {
        return None;
    }
    // A zero checksum means "not computed" (RFC 4884 §7).
    if be16(ext, 2)? != 0 && checksum(ext) != 0 {
        return None;
    }
    let mut objs = Vec::new();
    let mut rest = &ext[4..];
    while rest.len() >= 4 {
        let len = usize::from(be16(rest, 0)?);
        if len < 4 || len > rest.len() {
            return None;
        }
        let (class, ctype) = (rest[2], rest[3]);
        let payload = &rest[4..len];
        let mpls = if class == 1 && ctype == 1 {
            payload
                .chunks_exact(4)
                .map(|e| {
                    let v = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
                    MplsLabel {
                        label: v >> 12,
                        exp: ((v >> 9) & 7) as u8,
                        s: ((v >> 8) & 1) as u8,
                        ttl: (v & 0xff) as u8,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        objs.push(IcmpExtObj { class, ctype, mpls });
        rest = &rest[len..];
    }
    Some(IcmpExt {
        version: 2,
        rfc4884: u8::from(rfc4884),
        obj: objs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(proto: Proto, src: &str, dst: &str) -> ProbeSpec {
        ProbeSpec {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            flow: 40001,
            dport: 33434,
            icmp_sum: 0x1234,
            ttl: 3,
            seq: 77,
            size: 60,
        }
    }

    #[test]
    fn paris_fields_constant_and_checksums_valid() {
        for (src, dst) in [("198.18.1.1", "198.18.4.2"), ("fd00::1", "fd00:4::2")] {
            let is_v6 = src.contains(':');
            let ip_len = if is_v6 { 40 } else { 20 };
            for proto in [Proto::Udp, Proto::Icmp, Proto::Tcp] {
                let mut a = spec(proto, src, dst);
                let pa = build_probe(&a);
                a.seq = 78;
                a.ttl = 9;
                let pb = build_probe(&a);
                let (sa, sb) = (&pa[ip_len..], &pb[ip_len..]);
                // Flow fields: first 4 bytes for UDP/TCP (ports), type/code/checksum for ICMP.
                assert_eq!(sa[..4], sb[..4], "{proto:?} {src}");
                if proto == Proto::Udp {
                    assert_eq!(be16(sa, 6), Some(77));
                    assert_eq!(be16(sb, 6), Some(78));
                }
                // Transport checksum verifies with the pseudo header.
                let s: IpAddr = src.parse().unwrap();
                let d: IpAddr = dst.parse().unwrap();
                let ps = if proto == Proto::Icmp && !is_v6 {
                    0
                } else {
                    pseudo_sum(s, d, proto_number(proto, is_v6), sa.len())
                };
                assert_eq!(fold(sum16(ps, sa)), 0xffff, "{proto:?} {src}");
                if !is_v6 {
                    assert_eq!(checksum(&pa[..20]), 0);
                    assert_eq!(pa[8], 3);
                    assert_eq!(pa.len(), if proto == Proto::Tcp { 40 } else { 60 });
                } else {
                    assert_eq!(pa[7], 3);
                    assert_eq!(&pa[1..4], &[0, 0, 0], "flow label constant");
                }
            }
        }
    }

    /// An ICMPv4 time-exceeded quoting `probe`, with optional extension
    /// structure (MPLS label stack), RFC 4884 length set or not.
    fn time_exceeded_v4(probe: &[u8], labels: &[(u32, u8, u8, u8)], rfc4884: bool) -> Vec<u8> {
        let mut quoted = probe.to_vec();
        let mut icmp = vec![11, 0, 0, 0, 0, 0, 0, 0];
        if !labels.is_empty() {
            quoted.resize(128, 0);
            if rfc4884 {
                icmp[5] = (128 / 4) as u8;
            }
        }
        icmp.extend_from_slice(&quoted);
        if !labels.is_empty() {
            let mut obj = Vec::new();
            let len = 4 + 4 * labels.len();
            obj.extend_from_slice(&(len as u16).to_be_bytes());
            obj.extend_from_slice(&[1, 1]);
            for &(label, exp, s, ttl) in labels {
                let v =
                    (label << 12) | (u32::from(exp) << 9) | (u32::from(s) << 8) | u32::from(ttl);
                obj.extend_from_slice(&v.to_be_bytes());
            }
            let mut ext = vec![0x20, 0, 0, 0];
            ext.extend_from_slice(&obj);
            let c = checksum(&ext);
            ext[2..4].copy_from_slice(&c.to_be_bytes());
            icmp.extend_from_slice(&ext);
        }
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 250, 1, 0, 0, 198, 18, 2, 2, 198, 18, 1, 1,
        ];
        let total = (20 + icmp.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&icmp);
        ip
    }

    #[test]
    fn time_exceeded_matches_quoted_probe_all_protocols() {
        for proto in [Proto::Udp, Proto::Icmp, Proto::Tcp] {
            let s = spec(proto, "198.18.1.1", "198.18.4.2");
            let probe = build_probe(&s);
            // Routers quote at least 28 bytes; some rewrite nothing else.
            let r = parse_v4(&time_exceeded_v4(&probe[..28], &[], false)).unwrap();
            assert_eq!(
                r.key,
                ProbeKey {
                    dst: s.dst,
                    proto,
                    flow: 40001,
                    seq: 77
                }
            );
            assert_eq!(r.from, "198.18.2.2".parse::<IpAddr>().unwrap());
            assert_eq!(r.ttl, 250);
            assert_eq!(r.kind, ReplyKind::TimeExceeded);
            assert_eq!(r.quoted_ttl, Some(3));
            assert_eq!(r.ext, None);
        }
    }

    #[test]
    fn mpls_extension_rfc4884_and_legacy() {
        let s = spec(Proto::Udp, "198.18.1.1", "198.18.4.2");
        let probe = build_probe(&s);
        let labels = [(16005, 0, 0, 1), (299_792, 5, 1, 254)];
        for rfc4884 in [true, false] {
            let pkt = time_exceeded_v4(&probe, &labels, rfc4884);
            let r = parse_v4(&pkt).unwrap();
            assert_eq!(r.key.seq, 77);
            let ext = r.ext.expect("extension parsed");
            assert_eq!(ext.rfc4884, u8::from(rfc4884));
            assert_eq!(ext.obj.len(), 1);
            assert_eq!((ext.obj[0].class, ext.obj[0].ctype), (1, 1));
            let got: Vec<_> = ext.obj[0]
                .mpls
                .iter()
                .map(|m| (m.label, m.exp, m.s, m.ttl))
                .collect();
            assert_eq!(got, labels);
        }
        // A corrupted extension checksum is rejected, the reply still parses.
        let mut pkt = time_exceeded_v4(&probe, &labels, true);
        let n = pkt.len();
        pkt[n - 1] ^= 0xff;
        let r = parse_v4(&pkt).unwrap();
        assert_eq!(r.ext, None);
        // Truncated object length never panics.
        let mut pkt = time_exceeded_v4(&probe, &labels, true);
        pkt.truncate(n - 3);
        let _ = parse_v4(&pkt);
    }

    #[test]
    fn icmp6_time_exceeded_and_mpls() {
        let s = spec(Proto::Icmp, "fd00::1", "fd00:4::2");
        let probe = build_probe(&s);
        let mut msg = vec![3, 0, 0, 0, 16, 0, 0, 0];
        let mut q = probe.clone();
        q.resize(128, 0);
        msg.extend_from_slice(&q);
        let mut ext = vec![0x20, 0, 0, 0, 0, 8, 1, 1];
        ext.extend_from_slice(&((24u32 << 12) | (1 << 8) | 7).to_be_bytes());
        let c = checksum(&ext);
        ext[2..4].copy_from_slice(&c.to_be_bytes());
        msg.extend_from_slice(&ext);
        let from: IpAddr = "fd00:2::2".parse().unwrap();
        let r = parse_icmp6(from, &msg, 63).unwrap();
        assert_eq!(r.key.seq, 77);
        assert_eq!(r.key.flow, 40001);
        assert_eq!(r.kind, ReplyKind::TimeExceeded);
        assert_eq!(r.size as usize, msg.len() + 40);
        let m = &r.ext.unwrap().obj[0].mpls[0];
        assert_eq!((m.label, m.s, m.ttl), (24, 1, 7));
    }

    #[test]
    fn tcp_reply_and_echo_reply() {
        let from: IpAddr = "198.18.4.2".parse().unwrap();
        let mut seg = vec![0u8; 20];
        seg[0..2].copy_from_slice(&443u16.to_be_bytes());
        seg[2..4].copy_from_slice(&40001u16.to_be_bytes());
        seg[8..12].copy_from_slice(&78u32.to_be_bytes());
        seg[13] = tcpflags::RST | tcpflags::ACK;
        let r = parse_tcp(from, &seg, 61, 40).unwrap();
        assert_eq!((r.key.flow, r.key.seq), (40001, 77));
        seg[13] = tcpflags::SYN; // a SYN without ACK is not an answer
        assert!(parse_tcp(from, &seg, 61, 40).is_none());
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 12345;
        for len in 0..200 {
            let mut b = vec![0u8; len];
            for v in b.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *v = (x >> 16) as u8;
            }
            if len > 0 {
                b[0] = 0x45;
            }
            let _ = parse_v4(&b);
            let _ = parse_icmp6("fd00::1".parse().unwrap(), &b, 1);
            let _ = parse_tcp("fd00::1".parse().unwrap(), &b, 1, 1);
            let _ = parse_extensions(&b, 0);
        }
    }
}
