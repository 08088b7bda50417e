//! STUN / TURN messages (RFC 8489, RFC 8656) as far as call attribution
//! needs them: who is the client, the `REALM` and `SOFTWARE` attributes, the
//! addresses a TURN allocation hands out, and WhatsApp's private attributes.
//!
//! Layout (RFC 8489 §5): 2-byte type whose two top bits are zero, 2-byte
//! length, the magic cookie `0x2112A442`, a 12-byte transaction id, then
//! TLV attributes padded to 4 bytes. The message length is *not* required to
//! be a multiple of 4: WhatsApp's Allocate requests carry a 102-byte
//! attribute 0x4000 without padding (nDPI `wa_voice.pcap`, frame 215), so
//! attributes are read as far as they fit and the rest is ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// RFC 8489 §5 magic cookie.
const MAGIC: u32 = 0x2112_a442;

/// Attribute types (IANA "STUN Attributes" registry).
mod attr {
    /// XOR-PEER-ADDRESS (RFC 8656).
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    /// REALM (RFC 8489).
    pub const REALM: u16 = 0x0014;
    /// XOR-RELAYED-ADDRESS (RFC 8656).
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    /// SOFTWARE (RFC 8489).
    pub const SOFTWARE: u16 = 0x8022;
}

/// Attribute types WhatsApp's relays use and no registered STUN usage
/// does: 0x4000–0x4007 lie in the comprehension-required range IANA leaves
/// unassigned. Seen in every WhatsApp call capture of the nDPI set
/// (`wa_voice.pcap` Allocate 0x4000, Allocate response 0x4002;
/// `lru_ipv6_caches.pcapng`), in none of the Zoom, Teams, Skype or
/// Snapchat ones; nDPI's `stun.c` keys WhatsApp calls on the same range.
const WHATSAPP_ATTRS: std::ops::RangeInclusive<u16> = 0x4000..=0x4007;

/// The message class (RFC 8489 §5, bits C1 C0 of the type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A request (client → server).
    Request,
    /// An indication (Send: client → server; Data: server → client).
    Indication,
    /// A success response (server → client).
    Success,
    /// An error response (server → client).
    Error,
}

/// What one STUN message says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StunInfo {
    /// True when the sender is the STUN client (requests, Send indications).
    pub from_client: bool,
    /// The `REALM` attribute (TURN long-term credentials), lower-cased.
    pub realm: Option<String>,
    /// The `SOFTWARE` attribute.
    pub software: Option<String>,
    /// An attribute in WhatsApp's private range was present.
    pub whatsapp_attr: bool,
    /// XOR-RELAYED-ADDRESS and XOR-PEER-ADDRESS values: the relay's and the
    /// peers' transport addresses of a TURN allocation.
    pub addresses: Vec<SocketAddr>,
}

/// The class of a message type (RFC 8489 §5: C1 is bit 8, C0 bit 4).
pub fn class_of(msg_type: u16) -> Class {
    match ((msg_type >> 7) & 2) | ((msg_type >> 4) & 1) {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::Success,
        _ => Class::Error,
    }
}

/// The method of a message type (the 12 bits around C1/C0).
pub fn method_of(msg_type: u16) -> u16 {
    (msg_type & 0x000f) | ((msg_type >> 1) & 0x0070) | ((msg_type >> 2) & 0x0f80)
}

/// Cheap test run on every UDP payload: STUN header shape and cookie.
pub fn looks_like_stun(p: &[u8]) -> bool {
    p.len() >= 20 && p[0] & 0xc0 == 0 && p[4..8] == MAGIC.to_be_bytes()
}

/// Parses a STUN message; `None` when the payload is not STUN.
pub fn parse(p: &[u8]) -> Option<StunInfo> {
    if !looks_like_stun(p) {
        return None;
    }
    let msg_type = u16::from_be_bytes([p[0], p[1]]);
    let len = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if 20 + len > p.len() {
        return None;
    }
    let from_client = match class_of(msg_type) {
        Class::Request => true,
        // Data indication (method 7, RFC 8656 §11.4) comes from the server.
        Class::Indication => method_of(msg_type) != 0x007,
        Class::Success | Class::Error => false,
    };
    let mut info = StunInfo {
        from_client,
        ..StunInfo::default()
    };
    let body = &p[20..20 + len];
    let mut off = 0;
    while off + 4 <= body.len() {
        let t = u16::from_be_bytes([body[off], body[off + 1]]);
        let l = usize::from(u16::from_be_bytes([body[off + 2], body[off + 3]]));
        let Some(v) = body.get(off + 4..off + 4 + l) else {
            // A truncated last attribute still names its type.
            info.whatsapp_attr |= WHATSAPP_ATTRS.contains(&t);
            break;
        };
        read_attr(&mut info, t, v, &p[4..20]);
        off += 4 + l.div_ceil(4) * 4;
    }
    Some(info)
}

/// Records one attribute; `xor_key` is cookie + transaction id.
fn read_attr(info: &mut StunInfo, t: u16, v: &[u8], xor_key: &[u8]) {
    let text = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .map(|s| s.trim_end_matches('\0').trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
    };
    match t {
        attr::REALM => info.realm = text(v),
        attr::SOFTWARE => info.software = text(v),
        attr::XOR_PEER_ADDRESS | attr::XOR_RELAYED_ADDRESS => {
            info.addresses.extend(xor_address(v, xor_key));
        }
        t if WHATSAPP_ATTRS.contains(&t) => info.whatsapp_attr = true,
        _ => {}
    }
}

/// Decodes an XOR-…-ADDRESS value (RFC 8489 §14.2): family 1 = IPv4, 2 =
/// IPv6; port XOR the cookie's top 16 bits, address XOR cookie (+ id).
pub fn xor_address(v: &[u8], xor_key: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ (MAGIC >> 16) as u16;
    let ip = match v.get(1)? {
        1 => {
            let mut a = [0u8; 4];
            for (i, b) in a.iter_mut().enumerate() {
                *b = v.get(4 + i)? ^ xor_key.get(i)?;
            }
            IpAddr::V4(Ipv4Addr::from(a))
        }
        2 => {
            let mut a = [0u8; 16];
            for (i, b) in a.iter_mut().enumerate() {
                *b = v.get(4 + i)? ^ xor_key.get(i)?;
            }
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::attribution::tests::hex;

    /// nDPI `wa_voice.pcap` frame 215 (tshark `udp.payload`): WhatsApp's
    /// Allocate request, attribute 0x4000 of 102 bytes, length 106.
    #[test]
    fn whatsapp_allocate_from_wa_voice() {
        let p = hex(concat!(
            "0003006a2112a442a6674f75f0ad2c001315b3364000006605030826d884ea2e",
            "a4c4944ba39f29867bf241bc1d1f5228195ff7602f3302e61e3ef4de0deb9798",
            "9fa132933e675e3981c454d16a5a8caae9521d0421dba60b3b329f858a72e5dd",
            "741369a6808d8481672dade584a273d399fe31d3f91e4545549b729bd734"
        ));
        let i = parse(&p).expect("stun");
        assert!(i.from_client && i.whatsapp_attr);
        assert_eq!(i.realm, None);
    }

    /// nDPI `wa_voice.pcap` frame 225: the Allocate success response with
    /// XOR-MAPPED-ADDRESS and attribute 0x4002.
    #[test]
    fn whatsapp_allocate_response() {
        let p = hex(concat!(
            "010300182112a442a6674f75f0ad2c001315b336002000080001ed8671a60672",
            "400200080000016b8e034333"
        ));
        let i = parse(&p).expect("stun");
        assert!(!i.from_client && i.whatsapp_attr);
        assert_eq!(class_of(0x0103), Class::Success);
        assert_eq!(method_of(0x0103), 3);
    }

    /// A plain RFC 5769 §2.1-style Binding request with SOFTWARE and a TURN
    /// REALM: realm and software are read, nothing WhatsApp-like.
    #[test]
    fn realm_and_software() {
        let mut p = hex("0001001c2112a442b7e7a701bc34d686fa87dfae");
        p.extend(hex("0014000a5369676e616c2e6f72670000")); // REALM "Signal.org"
        p.extend(hex("802200087465737420762031")); // SOFTWARE "test v 1"
        let i = parse(&p).expect("stun");
        assert_eq!(i.realm.as_deref(), Some("signal.org"));
        assert_eq!(i.software.as_deref(), Some("test v 1"));
        assert!(!i.whatsapp_attr && i.from_client);
    }

    /// RFC 5769 §2.2 test vector: XOR-MAPPED-ADDRESS decodes to 192.0.2.1:32853
    /// with the same rule XOR-RELAYED/PEER-ADDRESS use.
    #[test]
    fn xor_address_rfc5769() {
        let key = hex("2112a442b7e7a701bc34d686fa87dfae");
        let v = hex("0001a147e112a643");
        assert_eq!(
            xor_address(&v, &key),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        let v6 = hex("0002a1470113a9faa5d3f179bc25f4b5bed2b9d9");
        assert_eq!(
            xor_address(&v6, &key),
            Some(
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                    .parse()
                    .unwrap()
            )
        );
    }

    /// G.711 silence, RTP and random bytes are not STUN.
    #[test]
    fn not_stun() {
        assert_eq!(parse(&[0xff; 172]), None);
        let rtp = hex("8000059c0002e160f6bf57e27d7dfcfefdf8fcfafb7fff7e");
        assert_eq!(parse(&rtp), None);
        // Right cookie, length beyond the payload.
        assert_eq!(
            parse(&hex("000100402112a442b7e7a701bc34d686fa87dfae")),
            None
        );
    }
}
