//! The decoded view of one captured frame that every analyser consumes.
//!
//! The replay engine reads frames ([`crate::capture`]), decodes each once into
//! a [`Packet`] borrowing the frame's bytes, and hands it to every
//! [`PacketSink`] (flow table, DNS, TLS/QUIC/HTTP extractors, interference
//! rules) in a single pass, so memory depends on the number of live flows,
//! never on the size of the file.

use crate::capture::Timestamp;
use std::net::IpAddr;

/// IP-layer facts of a packet (the outermost IP header after link decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit, as received.
    pub ttl: u8,
    /// IPv4 identification field; `None` for IPv6.
    pub ip_id: Option<u16>,
    /// Transport protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, …).
    pub proto: u8,
    /// Total IP length from the header (may exceed what was captured).
    pub total_len: u32,
    /// True for a fragment (MF set or offset > 0, or an IPv6 fragment header).
    pub fragment: bool,
    /// True when this is a non-first fragment: no transport header follows.
    pub later_fragment: bool,
}

/// TCP flag bits as on the wire (FIN 0x01 … CWR 0x80).
pub mod tcp_flags {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
}

/// Transport-layer view of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// TCP segment.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
        /// Flag bits, see [`tcp_flags`].
        flags: u8,
        /// Advertised window (unscaled).
        window: u16,
        /// Captured payload (may be shorter than on the wire if truncated).
        payload: &'a [u8],
    },
    /// UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Captured payload.
        payload: &'a [u8],
    },
    /// ICMP (v4) or ICMPv6 message.
    Icmp {
        /// True for ICMPv6.
        v6: bool,
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
        /// Bytes after the 8-byte ICMP header (for errors: the quoted packet).
        payload: &'a [u8],
    },
    /// Another protocol, or a later fragment: no transport header decoded.
    Other,
}

/// A tunnel or session encapsulation the decoder opened around a packet
/// (docs/replay-json.md, `flows[].encap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encap {
    /// PPPoE session (RFC 2516).
    Pppoe,
    /// GRE (RFC 2784/2890) or PPTP's enhanced GRE (RFC 2637).
    Gre,
    /// VXLAN (RFC 7348).
    Vxlan,
    /// GTP-U (3GPP TS 29.281).
    GtpU,
    /// CAPWAP data channel (RFC 5415).
    Capwap,
    /// IP in IP: inner and outer IP versions (`4in4`, `6in4`, `4in6`, `6in6`).
    IpInIp {
        /// Inner IP version.
        inner: u8,
        /// Outer IP version.
        outer: u8,
    },
}

impl Encap {
    /// All names [`std::fmt::Display`] writes, for parsing.
    const NAMED: [Encap; 9] = [
        Encap::Pppoe,
        Encap::Gre,
        Encap::Vxlan,
        Encap::GtpU,
        Encap::Capwap,
        Encap::IpInIp { inner: 4, outer: 4 },
        Encap::IpInIp { inner: 6, outer: 4 },
        Encap::IpInIp { inner: 4, outer: 6 },
        Encap::IpInIp { inner: 6, outer: 6 },
    ];
}

impl std::fmt::Display for Encap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encap::Pppoe => f.write_str("pppoe"),
            Encap::Gre => f.write_str("gre"),
            Encap::Vxlan => f.write_str("vxlan"),
            Encap::GtpU => f.write_str("gtp-u"),
            Encap::Capwap => f.write_str("capwap"),
            Encap::IpInIp { inner, outer } => write!(f, "{inner}in{outer}"),
        }
    }
}

impl std::str::FromStr for Encap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Encap::NAMED
            .into_iter()
            .find(|e| e.to_string() == s)
            .ok_or_else(|| format!("unknown encapsulation {s:?}"))
    }
}

impl serde::Serialize for Encap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Encap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A tunnel the decoder recognised but does not open: the packet is
/// analysed by its outer header and the replay names the kind in its
/// `warnings`, so inner traffic is never dropped silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unopened {
    /// MPLS label stack (ethertype 0x8847/0x8848, RFC 3032).
    Mpls,
    /// L2TP (UDP 1701, RFC 2661 / RFC 3931).
    L2tp,
    /// Geneve (UDP 6081, RFC 8926).
    Geneve,
    /// Teredo (UDP 3544, RFC 4380).
    Teredo,
    /// GRE carrying a protocol other than IP, Ethernet or PPP (ERSPAN, MPLS, …), by its type.
    GreProto(u16),
    /// A CAPWAP data fragment, or a binding other than IEEE 802.11.
    CapwapOther,
    /// Tunnels nested deeper than the decoder follows.
    TooDeep,
}

impl std::fmt::Display for Unopened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unopened::Mpls => f.write_str("mpls"),
            Unopened::L2tp => f.write_str("l2tp"),
            Unopened::Geneve => f.write_str("geneve"),
            Unopened::Teredo => f.write_str("teredo"),
            Unopened::GreProto(p) => write!(f, "gre carrying 0x{p:04x}"),
            Unopened::CapwapOther => f.write_str("capwap fragment or non-802.11 binding"),
            Unopened::TooDeep => f.write_str("tunnels nested more than 3 deep"),
        }
    }
}

/// The encapsulations around one packet, outermost first (at most four).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Encaps {
    kinds: [Option<Encap>; 4],
    /// A tunnel inside the innermost opened layer that was not opened.
    pub unopened: Option<Unopened>,
}

impl Encaps {
    /// No encapsulation.
    pub const NONE: Encaps = Encaps {
        kinds: [None; 4],
        unopened: None,
    };

    /// Adds an inner layer (ignored beyond four).
    pub fn push(&mut self, e: Encap) {
        if let Some(slot) = self.kinds.iter_mut().find(|k| k.is_none()) {
            *slot = Some(e);
        }
    }

    /// The layers, outermost first.
    pub fn iter(&self) -> impl Iterator<Item = Encap> + '_ {
        self.kinds.iter().map_while(|k| *k)
    }

    /// True without any opened layer.
    pub fn is_empty(&self) -> bool {
        self.kinds[0].is_none()
    }
}

/// One decoded frame.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// 1-based frame number within its capture file, as Wireshark numbers them.
    pub frame: u64,
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// Number of bytes captured.
    pub cap_len: u32,
    /// IP layer, if the frame carried IPv4 or IPv6.
    pub ip: Option<IpInfo>,
    /// Transport layer (meaningful only when `ip` is `Some`).
    pub transport: Transport<'a>,
    /// Tunnels opened to reach `ip` (outermost first), and one recognised
    /// but not opened.
    pub encap: Encaps,
}

impl Packet<'_> {
    /// Source and destination ports for TCP/UDP.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.transport {
            Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport, .. } => {
                Some((sport, dport))
            }
            _ => None,
        }
    }

    /// The TCP/UDP payload, or an empty slice.
    pub fn payload(&self) -> &[u8] {
        match self.transport {
            Transport::Tcp { payload, .. } | Transport::Udp { payload, .. } => payload,
            _ => &[],
        }
    }
}

/// Something that looks at every decoded packet of a capture in order.
///
/// Sinks must be cheap per packet and bound their own state (e.g. drop
/// per-flow reassembly buffers once a flow is classified or idle).
pub trait PacketSink {
    /// Called once per decoded frame, in capture order.
    fn packet(&mut self, pkt: &Packet<'_>);
}
