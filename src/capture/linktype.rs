//! Link-layer header types (tcpdump.org LINKTYPE_* values).

use std::fmt;

/// A link-layer header type as stored in a pcap header or pcapng IDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u16);

impl LinkType {
    /// BSD loopback: 4-byte address family in the writer's byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II (with optional 802.1Q / 802.1ad tags).
    pub const ETHERNET: LinkType = LinkType(1);
    /// PPP (RFC 1661), optionally with the HDLC-like `ff 03` header (RFC 1662).
    pub const PPP: LinkType = LinkType(9);
    /// PPP in HDLC-like framing (RFC 1662), e.g. from Cisco routers.
    pub const PPP_HDLC: LinkType = LinkType(50);
    /// Raw IP as written by some BSDs (DLT_RAW = 12).
    pub const RAW_12: LinkType = LinkType(12);
    /// Raw IP as written by OpenBSD (DLT_RAW = 14).
    pub const RAW_14: LinkType = LinkType(14);
    /// Raw IP (LINKTYPE_RAW).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: 4-byte address family, network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// Short name used in reports (`"ethernet"`, `"linux_sll"`, `"raw"`, …).
    pub fn name(self) -> String {
        match self {
            LinkType::NULL => "null".into(),
            LinkType::ETHERNET => "ethernet".into(),
            LinkType::PPP => "ppp".into(),
            LinkType::PPP_HDLC => "ppp_hdlc".into(),
            LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 => "raw".into(),
            LinkType::LOOP => "loop".into(),
            LinkType::LINUX_SLL => "linux_sll".into(),
            LinkType::IPV4 => "ipv4".into(),
            LinkType::IPV6 => "ipv6".into(),
            LinkType::LINUX_SLL2 => "linux_sll2".into(),
            LinkType(n) => format!("linktype_{n}"),
        }
    }

    /// True for the link types the decoder understands.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            LinkType::NULL
                | LinkType::ETHERNET
                | LinkType::PPP
                | LinkType::PPP_HDLC
                | LinkType::RAW
                | LinkType::RAW_12
                | LinkType::RAW_14
                | LinkType::LOOP
                | LinkType::LINUX_SLL
                | LinkType::IPV4
                | LinkType::IPV6
                | LinkType::LINUX_SLL2
        )
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}
