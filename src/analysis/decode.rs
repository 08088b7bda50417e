//! Decoding one [`RawFrame`] into a [`Packet`]: link layer by hand (a few
//! fixed headers), IP with etherparse's *lax* slicing so that frames cut by a
//! short snap length still yield their IP facts, transport headers by hand so
//! that a cut TCP/UDP header still yields ports and flags.
//!
//! Decoding never fails: whatever cannot be understood is left out
//! (`ip: None` or `Transport::Other`).
//!
//! Tunnels are opened, so that a flow inside one is seen with its inner
//! 5-tuple (nDPI's test captures `dns.pcap`, `gre.pcapng`, `vxlan.pcap`,
//! `ipv6_in_gtp.pcap`, `capwap_data.pcapng`, `4in6tunnel.pcap`,
//! `6in4tunnel.pcap`, `dlt_ppp.pcap`): PPP links and PPPoE sessions (RFC
//! 1661/1662, RFC 2516), IP in IP (protocols 4 and 41), GRE (RFC 2784/2890,
//! and PPTP's enhanced GRE, RFC 2637), VXLAN (RFC 7348, UDP 4789), GTP-U
//! (3GPP TS 29.281, UDP 2152) and CAPWAP data (RFC 5415, UDP 5247, 802.3 or
//! 802.11 payloads). The packet then carries the innermost IP header and
//! names the tunnels in `Packet.encap`; a tunnel recognised but not opened
//! (MPLS, L2TP, Geneve, Teredo, GRE carrying another protocol, CAPWAP
//! fragments, nesting beyond `MAX_TUNNELS`) is named in
//! `Encaps::unopened` so the replay can warn about it.

use super::packet::{Encap, Encaps, IpInfo, Packet, Transport, Unopened};
use crate::capture::{LinkType, RawFrame};
use etherparse::LaxIpSlice;
use std::net::IpAddr;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
/// PPPoE session stage (RFC 2516).
const ETH_PPPOE_SESSION: u16 = 0x8864;
/// Transparent Ethernet bridging inside GRE.
const ETH_TEB: u16 = 0x6558;
/// PPP inside (PPTP) GRE.
const ETH_PPP: u16 = 0x880b;
/// MPLS unicast and multicast (RFC 3032): recognised, not opened.
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;

/// Tunnels opened inside one another at most this deep.
const MAX_TUNNELS: u8 = 3;

/// Decodes a frame. Non-IP frames give `ip: None`.
pub fn decode<'a>(raw: &RawFrame<'a>) -> Packet<'a> {
    let mut pkt = Packet {
        frame: raw.frame,
        ts: raw.ts,
        orig_len: raw.orig_len,
        cap_len: raw.cap_len,
        ip: None,
        transport: Transport::Other,
        encap: Encaps::NONE,
    };
    if let Some(ip) = link_payload(raw.link_type, raw.data, &mut pkt.encap) {
        decode_ip(ip, &mut pkt);
    }
    pkt
}

/// Strips the link-layer header; returns the IP packet bytes, if IP.
/// Sessions opened on the way (PPPoE) and tunnels recognised but not
/// opened (MPLS) are noted in `enc`.
fn link_payload<'a>(link: LinkType, d: &'a [u8], enc: &mut Encaps) -> Option<&'a [u8]> {
    match link {
        LinkType::ETHERNET => {
            let ether_type = u16::from_be_bytes([*d.get(12)?, *d.get(13)?]);
            ethertype_payload(ether_type, d.get(14..)?, enc)
        }
        LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 | LinkType::IPV4 | LinkType::IPV6 => {
            Some(d)
        }
        LinkType::NULL | LinkType::LOOP => {
            let h: [u8; 4] = d.get(..4)?.try_into().ok()?;
            // NULL is in the writer's byte order, LOOP in network order;
            // family values are small, so the zero half tells the order.
            let family = if link == LinkType::LOOP || (h[0] == 0 && h[1] == 0) {
                u32::from_be_bytes(h)
            } else {
                u32::from_le_bytes(h)
            };
            match family {
                // AF_INET; AF_INET6 on NetBSD/OpenBSD (24), FreeBSD (28), macOS (30).
                2 | 24 | 28 | 30 => Some(&d[4..]),
                _ => None,
            }
        }
        LinkType::LINUX_SLL => {
            let proto = u16::from_be_bytes([*d.get(14)?, *d.get(15)?]);
            ethertype_payload(proto, d.get(16..)?, enc)
        }
        LinkType::LINUX_SLL2 => {
            let proto = u16::from_be_bytes([*d.first()?, *d.get(1)?]);
            ethertype_payload(proto, d.get(20..)?, enc)
        }
        LinkType::PPP | LinkType::PPP_HDLC => ppp_payload(d),
        _ => None,
    }
}

/// The IP packet in a PPP frame: optional `ff 03` address/control (RFC
/// 1662), then the protocol field (1 byte when compressed, RFC 1661 §6.5):
/// 0x0021 IPv4, 0x0057 IPv6.
fn ppp_payload(d: &[u8]) -> Option<&[u8]> {
    let d = d.strip_prefix(&[0xff, 0x03]).unwrap_or(d);
    let (proto, rest) = if d.first()? & 1 == 1 {
        (u16::from(d[0]), d.get(1..)?)
    } else {
        (u16::from_be_bytes([d[0], *d.get(1)?]), d.get(2..)?)
    };
    matches!(proto, 0x0021 | 0x0057).then_some(rest)
}

/// Follows up to three VLAN tags (and a PPPoE session header) to an IP payload.
fn ethertype_payload<'a>(
    mut ether_type: u16,
    mut d: &'a [u8],
    enc: &mut Encaps,
) -> Option<&'a [u8]> {
    for _ in 0..3 {
        match ether_type {
            ETH_IPV4 | ETH_IPV6 => return Some(d),
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => {
                ether_type = u16::from_be_bytes([*d.get(2)?, *d.get(3)?]);
                d = d.get(4..)?;
            }
            // RFC 2516 §4: ver/type 0x11, code 0, session id, length, then PPP.
            ETH_PPPOE_SESSION if d.first() == Some(&0x11) => {
                let ip = ppp_payload(d.get(6..)?)?;
                enc.push(Encap::Pppoe);
                return Some(ip);
            }
            ETH_MPLS | ETH_MPLS_MC => {
                enc.unopened = Some(Unopened::Mpls);
                return None;
            }
            _ => return None,
        }
    }
    matches!(ether_type, ETH_IPV4 | ETH_IPV6).then_some(d)
}

/// The inner IP packet of a tunnel carried by `proto` with IP payload `d`
/// (whose transport header decoded to `t`), if this is a tunnel we open;
/// the tunnel (and any session inside it) is pushed onto `enc`, a tunnel
/// recognised but not opened is set as `enc.unopened`. `outer` is the
/// carrying IP version.
fn tunnel_payload<'a>(
    proto: u8,
    t: &Transport<'a>,
    d: &'a [u8],
    outer: u8,
    enc: &mut Encaps,
) -> Option<&'a [u8]> {
    match (proto, t) {
        (4 | 41, _) => {
            let inner = if proto == 4 { 4 } else { 6 };
            enc.push(Encap::IpInIp { inner, outer });
            Some(d)
        }
        (47, _) => {
            enc.push(Encap::Gre);
            gre_payload(d, enc)
        }
        (
            17,
            Transport::Udp {
                sport,
                dport,
                payload,
            },
        ) => udp_tunnel_payload(*sport, *dport, payload, enc),
        _ => None,
    }
}

/// The UDP tunnels: VXLAN, GTP-U and CAPWAP data are opened; L2TP, Geneve
/// and Teredo are recognised by port *and* header shape and named.
fn udp_tunnel_payload<'a>(
    sport: u16,
    dport: u16,
    payload: &'a [u8],
    enc: &mut Encaps,
) -> Option<&'a [u8]> {
    let on = |p: u16| sport == p || dport == p;
    if on(4789) {
        enc.push(Encap::Vxlan);
        vxlan_payload(payload, enc)
    } else if on(2152) {
        enc.push(Encap::GtpU);
        gtpu_payload(payload)
    } else if on(5247) {
        enc.push(Encap::Capwap);
        capwap_data_payload(payload, enc)
    } else {
        let unopened = match payload {
            [b0, b1, b2, b3, ..] if on(1701) && l2tp_header([*b0, *b1, *b2, *b3]) => {
                Some(Unopened::L2tp)
            }
            // RFC 8926 §3.4: version 0, protocol type Ethernet or IP.
            [b0, _, p0, p1, ..]
                if on(6081)
                    && b0 >> 6 == 0
                    && matches!(
                        u16::from_be_bytes([*p0, *p1]),
                        ETH_TEB | ETH_IPV4 | ETH_IPV6
                    ) =>
            {
                Some(Unopened::Geneve)
            }
            // RFC 4380 §5.1.1: an IPv6 packet whose payload length fills
            // the datagram, possibly behind an authentication (0x0001) or
            // origin indication (0x0000) header.
            [b0, b1, ..] if on(3544) && (teredo_ipv6(payload) || (*b0 == 0 && *b1 <= 1)) => {
                Some(Unopened::Teredo)
            }
            _ => None,
        };
        enc.unopened = unopened.or(enc.unopened);
        None
    }
}

/// An L2TP header's first word: version 2 (RFC 2661 §3.1: reserved flag
/// bits 2, 3, 5 and 8–11 zero) or version 3 over UDP (RFC 3931 §4.1.2.1:
/// T bit, then zeros, version 3, reserved 16 bits zero).
fn l2tp_header(w: [u8; 4]) -> bool {
    match w[1] {
        0x02 => w[0] & 0x34 == 0,
        0x03 => w[0] & 0x7f == 0 && w[2] == 0 && w[3] == 0,
        _ => false,
    }
}

/// A whole IPv6 packet (Teredo's plain form): version 6 and a payload
/// length that accounts for the rest of the datagram.
fn teredo_ipv6(p: &[u8]) -> bool {
    p.len() >= 40 && p[0] >> 4 == 6 && usize::from(u16::from_be_bytes([p[4], p[5]])) + 40 == p.len()
}

/// GRE (RFC 2784, keys and sequence numbers RFC 2890; version 1 is PPTP's
/// enhanced GRE, RFC 2637 §4.1, with an optional acknowledgement number).
fn gre_payload<'a>(d: &'a [u8], enc: &mut Encaps) -> Option<&'a [u8]> {
    let (f0, f1) = (*d.first()?, *d.get(1)?);
    let version = f1 & 0x07;
    let mut len = 4;
    if f0 & 0xc0 != 0 {
        len += 4; // checksum (+ reserved), or routing present
    }
    if f0 & 0x20 != 0 {
        len += 4; // key
    }
    if f0 & 0x10 != 0 {
        len += 4; // sequence number
    }
    if version == 1 && f1 & 0x80 != 0 {
        len += 4; // acknowledgement number
    }
    if version > 1 || f0 & 0x40 != 0 {
        return None; // unknown version, or source routing (obsolete)
    }
    let proto = u16::from_be_bytes([*d.get(2)?, *d.get(3)?]);
    let inner = d.get(len..)?;
    match proto {
        ETH_TEB => link_payload(LinkType::ETHERNET, inner, enc),
        ETH_PPP => ppp_payload(inner),
        ETH_IPV4 | ETH_IPV6 | ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD | ETH_PPPOE_SESSION | ETH_MPLS
        | ETH_MPLS_MC => ethertype_payload(proto, inner, enc),
        p => {
            enc.unopened = Some(Unopened::GreProto(p));
            None
        }
    }
}

/// VXLAN (RFC 7348 §5): 8-byte header with the I flag, then Ethernet.
fn vxlan_payload<'a>(d: &'a [u8], enc: &mut Encaps) -> Option<&'a [u8]> {
    (d.first()? & 0x08 != 0).then_some(())?;
    link_payload(LinkType::ETHERNET, d.get(8..)?, enc)
}

/// GTP-U G-PDU (3GPP TS 29.281 §5.1): version 1, message type 255; with
/// any of E/S/PN set, 4 more bytes and a chain of extension headers (length
/// in 4-byte units, next type in the last byte).
fn gtpu_payload(d: &[u8]) -> Option<&[u8]> {
    let flags = *d.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || *d.get(1)? != 0xff {
        return None;
    }
    let mut pos = 8;
    if flags & 0x07 != 0 {
        let mut next = *d.get(11)?;
        pos = 12;
        for _ in 0..8 {
            if next == 0 {
                break;
            }
            let units = usize::from(*d.get(pos)?);
            if units == 0 {
                return None;
            }
            pos += units * 4;
            next = *d.get(pos - 1)?;
        }
    }
    let inner = d.get(pos..)?;
    matches!(inner.first()? >> 4, 4 | 6).then_some(inner)
}

/// CAPWAP data channel (RFC 5415 §4.3): preamble 0, header length HLEN in
/// 4-byte words, T set = native frames of binding WBID (1 = IEEE 802.11),
/// T clear = IEEE 802.3. Fragments (F) are not reassembled.
fn capwap_data_payload<'a>(d: &'a [u8], enc: &mut Encaps) -> Option<&'a [u8]> {
    let w = u32::from_be_bytes(d.get(..4)?.try_into().ok()?);
    if w >> 24 != 0 {
        return None; // not a CAPWAP preamble (DTLS-protected data starts 0x01)
    }
    if (w >> 7) & 1 == 1 {
        enc.unopened = Some(Unopened::CapwapOther);
        return None;
    }
    let hlen = ((w >> 19) & 0x1f) as usize * 4;
    let wbid = (w >> 9) & 0x1f;
    let frame = d.get(hlen.max(8)..)?;
    match ((w >> 8) & 1, wbid) {
        (0, _) => link_payload(LinkType::ETHERNET, frame, enc),
        (1, 1) => wlan_payload(frame, enc),
        _ => {
            enc.unopened = Some(Unopened::CapwapOther);
            None
        }
    }
}

/// An IEEE 802.11 data frame's IP payload: MAC header (24 bytes, +6 with
/// four addresses, +2 QoS control, +4 HT control), then LLC/SNAP.
fn wlan_payload<'a>(d: &'a [u8], enc: &mut Encaps) -> Option<&'a [u8]> {
    let (mut fc0, mut fc1) = (*d.first()?, *d.get(1)?);
    // Cisco controllers send the frame control bytes swapped (Wireshark's
    // CAPWAP "swap frame control" preference; nDPI capwap_data.pcapng:
    // `11 08` for a data frame with flags 0x11).
    if fc0 & 0x0c != 0x08 && fc1 & 0x0c == 0x08 {
        std::mem::swap(&mut fc0, &mut fc1);
    }
    if fc0 & 0x0c != 0x08 || fc0 & 0x40 != 0 {
        return None; // not a data frame, or a null-data subtype
    }
    let mut len = 24;
    if fc1 & 0x03 == 0x03 {
        len += 6;
    }
    if fc0 & 0x80 != 0 {
        len += 2;
        if fc1 & 0x80 != 0 {
            len += 4;
        }
    }
    let llc = d.get(len..)?;
    if llc.get(..6)? != [0xaa, 0xaa, 0x03, 0, 0, 0] {
        return None;
    }
    ethertype_payload(
        u16::from_be_bytes([*llc.get(6)?, *llc.get(7)?]),
        llc.get(8..)?,
        enc,
    )
}

fn decode_ip<'a>(bytes: &'a [u8], pkt: &mut Packet<'a>) {
    decode_ip_at(bytes, pkt, 0);
}

/// Decodes an IP packet `depth` tunnels deep, and the tunnel inside it.
fn decode_ip_at<'a>(bytes: &'a [u8], pkt: &mut Packet<'a>, depth: u8) {
    let Ok((ip, _ext_err)) = LaxIpSlice::from_slice(bytes) else {
        return;
    };
    let payload = ip.payload();
    let (info, later) = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            let offset = h.fragments_offset().value();
            let info = IpInfo {
                src: IpAddr::V4(h.source_addr()),
                dst: IpAddr::V4(h.destination_addr()),
                ttl: h.ttl(),
                ip_id: Some(h.identification()),
                proto: payload.ip_number.0,
                total_len: u32::from(h.total_len()),
                fragment: h.more_fragments() || offset > 0,
                later_fragment: offset > 0,
            };
            (info, offset > 0)
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            // etherparse's extension iterator reads out of bounds on some
            // damaged lax slices (found by tests/replay_mutations.rs), so
            // the chain is walked here on the raw bytes.
            let (fragment, later) = ipv6_fragment(bytes);
            let info = IpInfo {
                src: IpAddr::V6(h.source_addr()),
                dst: IpAddr::V6(h.destination_addr()),
                ttl: h.hop_limit(),
                ip_id: None,
                proto: payload.ip_number.0,
                total_len: u32::from(h.payload_length()) + 40,
                fragment,
                later_fragment: later,
            };
            (info, later)
        }
    };
    pkt.ip = Some(info);
    if !later {
        pkt.transport = transport(info.proto, payload.payload);
        let outer = if matches!(ip, LaxIpSlice::Ipv4(_)) {
            4
        } else {
            6
        };
        let mut enc = pkt.encap;
        let tunnel = tunnel_payload(info.proto, &pkt.transport, payload.payload, outer, &mut enc);
        match tunnel {
            Some(_) if depth >= MAX_TUNNELS => pkt.encap.unopened = Some(Unopened::TooDeep),
            Some(inner) => {
                let mut inner_pkt = *pkt;
                inner_pkt.ip = None;
                inner_pkt.transport = Transport::Other;
                inner_pkt.encap = enc;
                decode_ip_at(inner, &mut inner_pkt, depth + 1);
                if inner_pkt.ip.is_some() {
                    *pkt = inner_pkt;
                }
            }
            None => pkt.encap.unopened = enc.unopened.or(pkt.encap.unopened),
        }
    }
}

/// Walks the IPv6 extension chain of `ip` (fixed header first) to its
/// fragment header: (is a fragment, is a non-first fragment).
fn ipv6_fragment(ip: &[u8]) -> (bool, bool) {
    let Some(&first) = ip.get(6) else {
        return (false, false);
    };
    let (mut next, mut off) = (first, 40usize);
    // A bounded number of headers: a looping or absurd chain is not followed.
    for _ in 0..16 {
        match next {
            44 => {
                let Some(f) = ip.get(off..off + 4) else { break };
                let offset = u16::from_be_bytes([f[2], f[3]]) >> 3;
                let more = f[3] & 1 != 0;
                return (offset > 0 || more, offset > 0);
            }
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let (Some(&n), Some(&len)) = (ip.get(off), ip.get(off + 1)) else {
                    break;
                };
                next = n;
                off += (usize::from(len) + 1) * 8;
            }
            // Authentication header: length in 4-byte units minus 2.
            51 => {
                let (Some(&n), Some(&len)) = (ip.get(off), ip.get(off + 1)) else {
                    break;
                };
                next = n;
                off += (usize::from(len) + 2) * 4;
            }
            _ => break,
        }
    }
    (false, false)
}

/// Parses the transport header laxly: a header cut short still gives what
/// its captured bytes hold, with an empty payload.
fn transport(proto: u8, d: &[u8]) -> Transport<'_> {
    let be16 = |o: usize| u16::from_be_bytes([d[o], d[o + 1]]);
    let be32 = |o: usize| u32::from_be_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
    match proto {
        6 if d.len() >= 14 => {
            let hlen = usize::from(d[12] >> 4) * 4;
            let flags = d[13];
            let window = if d.len() >= 16 { be16(14) } else { 0 };
            let payload = if hlen >= 20 && d.len() >= hlen {
                &d[hlen..]
            } else {
                &[]
            };
            Transport::Tcp {
                sport: be16(0),
                dport: be16(2),
                seq: be32(4),
                ack: be32(8),
                flags,
                window,
                payload,
            }
        }
        17 if d.len() >= 4 => {
            let mut payload: &[u8] = d.get(8..).unwrap_or(&[]);
            if d.len() >= 8 {
                // Trim link-layer padding using the UDP length when it is sane.
                let ulen = usize::from(be16(4));
                if ulen >= 8 && ulen - 8 < payload.len() {
                    payload = &payload[..ulen - 8];
                }
            }
            Transport::Udp {
                sport: be16(0),
                dport: be16(2),
                payload,
            }
        }
        1 | 58 if d.len() >= 2 => Transport::Icmp {
            v6: proto == 58,
            icmp_type: d[0],
            code: d[1],
            payload: d.get(8..).unwrap_or(&[]),
        },
        _ => Transport::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use etherparse::PacketBuilder;

    fn raw(link: LinkType, data: &[u8]) -> RawFrame<'_> {
        RawFrame {
            frame: 1,
            ts: Timestamp::default(),
            link_type: link,
            interface: 0,
            cap_len: data.len() as u32,
            orig_len: data.len() as u32,
            data,
        }
    }

    fn udp_v4() -> Vec<u8> {
        let b = PacketBuilder::ipv4([192, 0, 2, 1], [198, 51, 100, 2], 57).udp(5353, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"hello").unwrap();
        v
    }

    #[test]
    fn raw_udp() {
        let v = udp_v4();
        let p = decode(&raw(LinkType::RAW, &v));
        let ip = p.ip.unwrap();
        assert_eq!(ip.ttl, 57);
        assert_eq!(ip.proto, 17);
        assert_eq!(p.ports(), Some((5353, 53)));
        assert_eq!(p.payload(), b"hello");
    }

    #[test]
    fn ethernet_qinq_and_padding() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
        f.extend_from_slice(&udp_v4());
        f.extend_from_slice(&[0; 6]); // padding
        let p = decode(&raw(LinkType::ETHERNET, &f));
        assert_eq!(p.payload(), b"hello");
    }

    #[test]
    fn null_both_orders_and_sll2() {
        for hdr in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
            let mut f = hdr.to_vec();
            f.extend_from_slice(&udp_v4());
            assert!(decode(&raw(LinkType::NULL, &f)).ip.is_some());
        }
        let mut f = vec![0x08, 0x00];
        f.extend_from_slice(&[0; 18]);
        f.extend_from_slice(&udp_v4());
        assert_eq!(
            decode(&raw(LinkType::LINUX_SLL2, &f)).ports(),
            Some((5353, 53))
        );
    }

    #[test]
    fn truncated_tcp_keeps_ports() {
        let b = PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .tcp(443, 5222, 7, 1000)
            .syn();
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 100]).unwrap();
        let cut = &v[..40 + 14];
        let p = decode(&raw(LinkType::RAW, cut));
        let ip = p.ip.unwrap();
        assert_eq!(ip.total_len, 40 + 20 + 100);
        match p.transport {
            Transport::Tcp {
                sport,
                dport,
                flags,
                payload,
                ..
            } => {
                assert_eq!((sport, dport), (443, 5222));
                assert_eq!(flags & crate::analysis::packet::tcp_flags::SYN, 0x02);
                assert!(payload.is_empty());
            }
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn fragments_flagged() {
        let mut v = udp_v4();
        // Set offset 185 (×8 bytes): a later fragment.
        v[6] = 0;
        v[7] = 185;
        let p = decode(&raw(LinkType::RAW, &v));
        let ip = p.ip.unwrap();
        assert!(ip.fragment && ip.later_fragment);
        assert_eq!(p.transport, Transport::Other);
        let mut v = udp_v4();
        v[6] = 0x20; // MF, offset 0: first fragment keeps its UDP header
        let p = decode(&raw(LinkType::RAW, &v));
        assert!(p.ip.unwrap().fragment && !p.ip.unwrap().later_fragment);
        assert_eq!(p.ports(), Some((5353, 53)));
    }

    /// IPv6 with a hop-by-hop header, then a fragment header, then UDP.
    fn v6_fragment(offset_units: u16, more: bool) -> Vec<u8> {
        let udp = [0x14, 0xe9, 0, 53, 0, 13, 0, 0, b'h', b'e', b'l', b'l', b'o'];
        let mut v = vec![0x60, 0, 0, 0, 0, 8 + 8 + 13, 0, 64];
        v.extend_from_slice(&[1; 16]);
        v.extend_from_slice(&[2; 16]);
        v.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop → fragment
        let off = (offset_units << 3) | u16::from(more);
        v.extend_from_slice(&[17, 0]);
        v.extend_from_slice(&off.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 9]);
        v.extend_from_slice(&udp);
        v
    }

    #[test]
    fn ipv6_fragments_through_extension_headers() {
        let first = v6_fragment(0, true);
        let p = decode(&raw(LinkType::RAW, &first));
        let ip = p.ip.unwrap();
        assert!(ip.fragment && !ip.later_fragment);
        assert_eq!(p.ports(), Some((5353, 53)));
        let later = v6_fragment(100, false);
        let p = decode(&raw(LinkType::RAW, &later));
        let ip = p.ip.unwrap();
        assert!(ip.fragment && ip.later_fragment);
        assert_eq!(p.transport, Transport::Other);
        let ip = decode(&raw(LinkType::RAW, &v6_fragment(0, false)))
            .ip
            .unwrap();
        assert!(!ip.fragment);
        // Cut inside the extension chain, or a chain that claims to go on
        // past the end: no fragment, no panic.
        let v = v6_fragment(100, true);
        for cut in 40..v.len() {
            let _ = decode(&raw(LinkType::RAW, &v[..cut]));
        }
        assert_eq!(ipv6_fragment(&[0x60, 0, 0, 0, 0, 0, 0]), (false, false));
        let mut looped = vec![0u8; 40];
        looped[6] = 0;
        looped.extend_from_slice(&[0, 255]);
        assert_eq!(ipv6_fragment(&looped), (false, false));
    }

    /// IPv4 with protocol `proto` around `inner`.
    fn ip4(proto: u8, inner: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        etherparse::Ipv4Header::new(
            inner.len() as u16,
            64,
            etherparse::IpNumber(proto),
            [198, 18, 0, 1],
            [198, 18, 0, 2],
        )
        .unwrap()
        .write(&mut v)
        .unwrap();
        v.extend_from_slice(inner);
        v
    }

    #[test]
    fn tunnels_named_opened_or_not() {
        // IP in IP in IP: two layers named, the innermost UDP reached.
        let two = ip4(4, &ip4(4, &udp_v4()));
        let p = decode(&raw(LinkType::RAW, &two));
        let names: Vec<String> = p.encap.iter().map(|e| e.to_string()).collect();
        assert_eq!(names, ["4in4", "4in4"]);
        assert_eq!(p.ports(), Some((5353, 53)));
        // Four levels: the fourth is recognised, not opened.
        let deep = ip4(4, &ip4(4, &ip4(4, &ip4(4, &udp_v4()))));
        let p = decode(&raw(LinkType::RAW, &deep));
        assert_eq!(p.encap.iter().count(), 3);
        assert_eq!(p.encap.unopened, Some(Unopened::TooDeep));
        // GRE carrying ERSPAN type II (0x88be): named by its protocol type.
        let mut gre = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1];
        gre.extend_from_slice(&[0; 8]);
        let gre = ip4(47, &gre);
        let p = decode(&raw(LinkType::RAW, &gre));
        assert_eq!(p.encap.unopened, Some(Unopened::GreProto(0x88be)));
        assert!(p.encap.is_empty() && p.ip.unwrap().proto == 47);
        assert_eq!(
            Unopened::GreProto(0x88be).to_string(),
            "gre carrying 0x88be"
        );
        // Teredo (RFC 4380): IPv6 straight in UDP 3544.
        let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
        v6.extend_from_slice(&[0; 32]);
        let mut teredo = Vec::new();
        PacketBuilder::ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .udp(3544, 40000)
            .write(&mut teredo, &v6)
            .unwrap();
        let p = decode(&raw(LinkType::RAW, &teredo));
        assert_eq!(p.encap.unopened, Some(Unopened::Teredo));
        // Plain DNS on a tunnel port is nothing, nor a DNS-like payload
        // whose first byte looks like IPv6 or an L2TP version.
        assert_eq!(decode(&raw(LinkType::RAW, &udp_v4())).encap, Encaps::NONE);
        for (port, payload) in [
            (3544, [0x61u8, 0x02, 1, 0, 0, 1, 0, 0]),
            (1701, [0x94, 0x02, 1, 0, 0, 1, 0, 0]),
        ] {
            let mut v = Vec::new();
            PacketBuilder::ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
                .udp(port, 53)
                .write(&mut v, &payload)
                .unwrap();
            assert_eq!(
                decode(&raw(LinkType::RAW, &v)).encap,
                Encaps::NONE,
                "{port}"
            );
        }
        assert!(l2tp_header([0xc8, 0x02, 0, 0]) && l2tp_header([0x80, 0x03, 0, 0]));
    }

    #[test]
    fn garbage_never_panics() {
        for link in [0u16, 1, 12, 101, 108, 113, 228, 229, 276, 999] {
            for len in 0..64 {
                let d: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
                let _ = decode(&raw(LinkType(link), &d));
            }
        }
    }
}
