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
