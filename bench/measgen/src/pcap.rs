//! Writes frames as a classic pcap file with nanosecond timestamps
//! (magic 0xa1b23c4d, LINKTYPE_ETHERNET; format: draft-ietf-opsawg-pcap
//! §4–5) holding Ethernet II + IPv4 (RFC 791) / IPv6 (RFC 8200) + TCP
//! (RFC 9293) / UDP (RFC 768) with correct checksums (RFC 1071).

use std::io::{self, Write};
use std::net::IpAddr;

/// Transport of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP with these flags (FIN 0x01, SYN 0x02, PSH 0x08, ACK 0x10).
    Tcp {
        /// Flag bits.
        flags: u8,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
    },
    /// UDP.
    Udp,
}

/// One packet on the wire.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Capture time, unix seconds.
    pub t: f64,
    /// Source address.
    pub src: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination address (same family as `src`).
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// Transport.
    pub l4: L4,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        let hi = u32::from(c[0]) << 8;
        acc += hi | c.get(1).map_or(0, |&b| u32::from(b));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn l4_bytes(f: &Frame) -> Vec<u8> {
    let mut v = Vec::with_capacity(20 + f.payload.len());
    v.extend_from_slice(&f.sport.to_be_bytes());
    v.extend_from_slice(&f.dport.to_be_bytes());
    match f.l4 {
        L4::Tcp { flags, seq, ack } => {
            v.extend_from_slice(&seq.to_be_bytes());
            v.extend_from_slice(&ack.to_be_bytes());
            v.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        }
        L4::Udp => {
            v.extend_from_slice(&((8 + f.payload.len()) as u16).to_be_bytes());
            v.extend_from_slice(&[0, 0]);
        }
    }
    v.extend_from_slice(&f.payload);
    v
}

/// The IP packet (header, transport header, payload) of a frame.
pub fn ip_packet(f: &Frame) -> Vec<u8> {
    let proto = if matches!(f.l4, L4::Udp) { 17u8 } else { 6 };
    let mut l4 = l4_bytes(f);
    let ck_at = if proto == 6 { 16 } else { 6 };
    let (mut hdr, pseudo) = match (f.src, f.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            h.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = fold(sum16(&h, 0));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let mut p = Vec::new();
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            (h, p)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            h.extend_from_slice(&[proto, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let mut p = Vec::new();
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
            (h, p)
        }
        _ => panic!("measgen: mixed address families in one frame"),
    };
    let c = fold(sum16(&l4, sum16(&pseudo, 0)));
    l4[ck_at..ck_at + 2].copy_from_slice(&c.to_be_bytes());
    hdr.extend_from_slice(&l4);
    hdr
}

/// Writes `frames` (sorted here by time) as a pcap file.
pub fn write_pcap(out: &mut impl Write, frames: &mut [Frame]) -> io::Result<()> {
    frames.sort_by(|a, b| a.t.total_cmp(&b.t));
    out.write_all(&0xa1b2_3c4d_u32.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&[0; 8])?;
    out.write_all(&65535u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;
    for f in frames.iter() {
        let ip = ip_packet(f);
        let ethertype: u16 = if f.src.is_ipv4() { 0x0800 } else { 0x86dd };
        let mut eth = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        eth.extend_from_slice(&ethertype.to_be_bytes());
        let len = (eth.len() + ip.len()) as u32;
        let secs = f.t.floor();
        let nanos = (((f.t - secs) * 1e9).round() as u32).min(999_999_999);
        out.write_all(&(secs as u32).to_le_bytes())?;
        out.write_all(&nanos.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&eth)?;
        out.write_all(&ip)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f = Frame {
            t: 1.5,
            src: "10.0.0.2".parse().unwrap(),
            sport: 40000,
            dst: "45.1.2.3".parse().unwrap(),
            dport: 443,
            l4: L4::Tcp {
                flags: 0x18,
                seq: 1,
                ack: 1,
            },
            payload: vec![1, 2, 3],
        };
        let p = ip_packet(&f);
        assert_eq!(fold(sum16(&p[..20], 0)), 0);
        assert_eq!(p.len(), 20 + 20 + 3);
    }
}
